//! The wall clock and the window of times Tollgate accepts as traffic.
//!
//! Budgets are enforced for the current calendar period by the wall clock, and
//! ingest quarantines times outside [`TimeWindow`] (before 2000, or later than
//! now plus the allowed skew), so one line dated 0001 or 2030 can neither break
//! the readers nor move a budget period. The clock is injectable: the demo and
//! tests fix it, everything else reads the system's.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The wall clock: the system's, or one set by hand (`--now`, tests).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Microseconds since the epoch when set by hand; shared by every clone, so
    /// a test moving its clock moves the server's.
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that says `at` until it is [`Clock::set`] again.
    pub fn fixed(at: DateTime<Utc>) -> Clock {
        Clock {
            fixed: Some(Arc::new(AtomicI64::new(at.timestamp_micros()))),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.fixed {
            None => Utc::now(),
            Some(at) => {
                DateTime::from_timestamp_micros(at.load(Ordering::Relaxed)).unwrap_or_else(Utc::now)
            }
        }
    }

    /// Moves a fixed clock (and every clone of it); a system clock ignores it.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(fixed) = &self.fixed {
            fixed.store(at.timestamp_micros(), Ordering::Relaxed);
        }
    }

    pub fn is_system(&self) -> bool {
        self.fixed.is_none()
    }
}

/// The times a record may carry: from `earliest` to now plus `future_skew`
/// (gateway clocks drift, and a shipper's batch may straddle midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub earliest: DateTime<Utc>,
    pub future_skew: Duration,
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow {
            earliest: NaiveDate::from_ymd_opt(2000, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            future_skew: Duration::days(1),
        }
    }
}

/// Why a time is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutsideWindow {
    TooEarly,
    TooLate,
}

impl TimeWindow {
    /// The latest time accepted when the clock says `now`.
    pub fn latest(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.future_skew)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `[earliest, latest]` in microseconds since the epoch.
    pub fn bounds_us(&self, now: DateTime<Utc>) -> (i64, i64) {
        (
            self.earliest.timestamp_micros(),
            self.latest(now).timestamp_micros(),
        )
    }

    pub fn check_us(&self, time_us: i64, now: DateTime<Utc>) -> Result<(), OutsideWindow> {
        let (from, to) = self.bounds_us(now);
        if time_us < from {
            Err(OutsideWindow::TooEarly)
        } else if time_us > to {
            Err(OutsideWindow::TooLate)
        } else {
            Ok(())
        }
    }

    /// The window in words, for refusals and docs.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        format!(
            "{} to {} (now + {} h)",
            self.earliest
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.latest(now)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.future_skew.num_hours()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_fixed_clock_moves_in_every_clone() {
        let clock = Clock::fixed(at("2026-10-01T00:00:00Z"));
        let other = clock.clone();
        clock.set(at("2026-11-01T00:00:00Z"));
        assert_eq!(other.now(), at("2026-11-01T00:00:00Z"));
        let system = Clock::system();
        system.set(at("2001-01-01T00:00:00Z"));
        assert!(system.now() > at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn the_window_runs_from_2000_to_a_day_from_now() {
        let window = TimeWindow::default();
        let now = at("2026-12-02T12:00:00Z");
        let check = |t: &str| window.check_us(at(t).timestamp_micros(), now);
        assert_eq!(check("0001-01-01T00:00:00Z"), Err(OutsideWindow::TooEarly));
        assert_eq!(check("1999-12-31T23:59:59Z"), Err(OutsideWindow::TooEarly));
        assert_eq!(check("2000-01-01T00:00:00Z"), Ok(()));
        assert_eq!(check("2026-12-03T12:00:00Z"), Ok(()));
        assert_eq!(check("2026-12-03T12:00:01Z"), Err(OutsideWindow::TooLate));
        assert_eq!(check("9999-12-31T00:00:00Z"), Err(OutsideWindow::TooLate));
        assert_eq!(window.check_us(i64::MIN, now), Err(OutsideWindow::TooEarly));
        assert_eq!(window.check_us(i64::MAX, now), Err(OutsideWindow::TooLate));
    }
}
