//! Reference CSV files (price book, backends, PTU reservations) read one way:
//! a header with exactly the known columns, then rows whose fields are checked
//! one by one, every problem named by line and field, so a file is refused whole
//! with all that is wrong with it.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;

use crate::rate::parse_pico;
use crate::{ReportsError, Result};

type Columns = BTreeMap<&'static str, usize>;

/// The good rows of a file with their line numbers, and the problems of the rest.
pub(crate) struct Table<T> {
    pub rows: Vec<(u64, T)>,
    pub problems: Vec<String>,
}

impl<T> Table<T> {
    /// The rows, or the file refused with every problem found.
    pub fn finish(self, path: &Path) -> Result<Vec<T>> {
        if self.problems.is_empty() {
            Ok(self.rows.into_iter().map(|(_, row)| row).collect())
        } else {
            Err(invalid(path, self.problems))
        }
    }
}

/// Reads `text` as a CSV with `columns` (any order; those in `optional` may be
/// absent) and maps each row with `map`, which reads fields through [`Fields`].
/// A bad header refuses the file at once; bad rows are noted and skipped, so the
/// caller's checks across rows still run on the good ones.
pub(crate) fn read<T>(
    path: &Path,
    text: &str,
    columns: &[&'static str],
    optional: &[&'static str],
    mut map: impl FnMut(&mut Fields<'_>, &str) -> Option<T>,
) -> Result<Table<T>> {
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = csv
        .headers()
        .map_err(|e| invalid(path, vec![format!("line 1: no readable CSV header: {e}")]))?
        .clone();
    let mut position = Columns::new();
    let mut problems = Vec::new();
    for (i, name) in header.iter().enumerate() {
        match columns.iter().find(|c| **c == name) {
            Some(column) => {
                if position.insert(column, i).is_some() {
                    problems.push(format!("line 1: column `{column}` appears twice"));
                }
            }
            None => problems.push(format!(
                "line 1: unknown column {name:?} (expected {})",
                columns.join(", ")
            )),
        }
    }
    for column in columns {
        if !position.contains_key(column) && !optional.contains(column) {
            problems.push(format!("line 1: missing column `{column}`"));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(path, problems));
    }
    let mut rows = Vec::new();
    for record in csv.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("line {line}: malformed CSV row: {e}"));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mut fields = Fields {
            record: &record,
            position: &position,
            problems: Vec::new(),
        };
        let row = map(&mut fields, &format!("{}:{line}", path.display()));
        if fields.problems.is_empty()
            && let Some(row) = row
        {
            rows.push((line, row));
        }
        problems.extend(
            fields
                .problems
                .into_iter()
                .map(|p| format!("line {line}, {p}")),
        );
    }
    Ok(Table { rows, problems })
}

/// Refuses `path` with its problems.
pub(crate) fn invalid(path: &Path, problems: Vec<String>) -> ReportsError {
    ReportsError::Invalid {
        path: path.to_path_buf(),
        problems,
    }
}

/// The fields of one row; each accessor checks its field and notes a problem.
pub(crate) struct Fields<'r> {
    record: &'r csv::StringRecord,
    position: &'r Columns,
    problems: Vec<String>,
}

impl Fields<'_> {
    /// The cell, empty if the column is absent.
    pub fn text(&self, column: &str) -> &str {
        self.position
            .get(column)
            .and_then(|&i| self.record.get(i))
            .unwrap_or_default()
    }

    pub fn problem(&mut self, column: &str, what: String) {
        self.problems.push(format!("field `{column}`: {what}"));
    }

    pub fn required(&mut self, column: &str) -> String {
        let value = self.text(column).to_owned();
        if value.is_empty() {
            self.problem(column, "missing".to_owned());
        }
        value
    }

    /// A required value from a fixed list.
    pub fn one_of(&mut self, column: &str, allowed: &[&str]) -> String {
        let value = self.required(column);
        if !value.is_empty() && !allowed.contains(&value.as_str()) {
            self.problem(
                column,
                format!("{value:?} is not one of {}", allowed.join(", ")),
            );
        }
        value
    }

    /// An ISO 4217 currency code.
    pub fn currency(&mut self, column: &str) -> String {
        let value = self.required(column);
        let iso = value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase());
        if !value.is_empty() && !iso {
            self.problem(
                column,
                format!("{value:?} is not an ISO 4217 code such as USD"),
            );
        }
        value
    }

    /// A non-negative exact decimal, in pico-units.
    pub fn pico(&mut self, column: &str) -> i64 {
        match parse_pico(self.text(column)) {
            Ok(pico) => pico,
            Err(e) => {
                self.problem(column, e);
                0
            }
        }
    }

    /// A `[from, to)` date range: `from` required, `to` empty for open-ended and
    /// otherwise after `from`. Returned as `YYYY-MM-DD` text.
    pub fn date_range(&mut self, from: &str, to: &str) -> (String, Option<String>) {
        let from_text = self.required(from);
        let to_text = self.text(to).to_owned();
        let from_date = self.date(from, &from_text);
        let to_date = self.date(to, &to_text);
        if let (Some(f), Some(t)) = (from_date, to_date)
            && t <= f
        {
            self.problem(to, format!("{t} is not after {from} {f}"));
        }
        (from_text, (!to_text.is_empty()).then_some(to_text))
    }

    fn date(&mut self, column: &str, value: &str) -> Option<NaiveDate> {
        if value.is_empty() {
            return None;
        }
        // Only the canonical spelling: dates are compared as text later, and
        // `2026-2-1` would sort after `2026-10-01`.
        let parsed = NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .filter(|d| d.format("%Y-%m-%d").to_string() == value);
        if parsed.is_none() {
            self.problem(column, format!("{value:?} is not a date (YYYY-MM-DD)"));
        }
        parsed
    }
}

/// Rows with the same key whose `[from, to)` ranges overlap, each named by its
/// two lines: which row is in force would be ambiguous.
pub(crate) fn overlaps<'a, K: Ord>(
    rows: impl Iterator<Item = (u64, K, &'a str, Option<&'a str>)>,
    describe: impl Fn(&K) -> String,
) -> Vec<String> {
    /// A row's line and its `[from, to)`.
    type Range<'a> = (u64, &'a str, Option<&'a str>);
    let mut by_key: BTreeMap<K, Vec<Range>> = BTreeMap::new();
    for (line, key, from, to) in rows {
        by_key.entry(key).or_default().push((line, from, to));
    }
    let mut problems = Vec::new();
    for (key, mut ranges) in by_key {
        // Dates are YYYY-MM-DD, so text order is date order.
        ranges.sort_by_key(|r| r.1);
        for pair in ranges.windows(2) {
            let ((line_a, _, to_a), (line_b, from_b, _)) = (pair[0], pair[1]);
            if to_a.is_none_or(|to| to > from_b) {
                problems.push(format!(
                    "lines {line_a} and {line_b}: {} is in force twice from {from_b} (effective ranges overlap)",
                    describe(&key)
                ));
            }
        }
    }
    problems
}

/// Reads a file for an import, naming it if it cannot be read.
pub(crate) fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ReportsError::Read {
        path: path.to_path_buf(),
        source,
    })
}
