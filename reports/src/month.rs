//! A calendar month in UTC, written `YYYY-MM`.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

use crate::{ReportsError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    first: NaiveDate,
}

impl Month {
    pub fn new(year: i32, month: u32) -> Result<Month> {
        NaiveDate::from_ymd_opt(year, month, 1)
            .map(|first| Month { first })
            .ok_or_else(|| ReportsError::Argument(format!("{year}-{month:02} is not a month")))
    }

    pub fn year(self) -> i32 {
        self.first.year()
    }

    /// 1 to 12.
    pub fn number(self) -> u32 {
        self.first.month()
    }

    pub fn first_day(self) -> NaiveDate {
        self.first
    }

    pub fn next(self) -> Result<Month> {
        self.shift(self.first.checked_add_months(chrono::Months::new(1)))
    }

    pub fn previous(self) -> Result<Month> {
        self.shift(self.first.checked_sub_months(chrono::Months::new(1)))
    }

    fn shift(self, to: Option<NaiveDate>) -> Result<Month> {
        to.map(|first| Month { first })
            .ok_or_else(|| ReportsError::Argument(format!("no month next to {self}")))
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

impl FromStr for Month {
    type Err = ReportsError;

    fn from_str(s: &str) -> Result<Month> {
        let bad = || ReportsError::Argument(format!("{s:?} is not a month (YYYY-MM)"));
        let (year, month) = s.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        Month::new(
            year.parse().map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
        )
    }
}

/// Serde's view of a month: its `YYYY-MM` text.
pub fn serialize<S: serde::Serializer>(month: &Month, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly_and_step() {
        let m: Month = "2026-01".parse().unwrap();
        assert_eq!(m.previous().unwrap().to_string(), "2025-12");
        assert_eq!(m.next().unwrap().to_string(), "2026-02");
        for bad in ["2026-1", "2026-13", "26-01", "2026/01", ""] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }
}
