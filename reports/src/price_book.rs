//! The price book: per-token rates by model, deployment type and region, each in
//! force over a date range (`docs/reference-data.md`, `prices.csv`). A file is
//! checked whole and refused whole: a half-imported price book would price
//! some requests by last month's sheet without anyone noticing.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use tollgate_store::StateDb;
use tollgate_store::state::PriceRow;

use crate::rate::parse_pico;
use crate::{ReportsError, Result};

/// The deployment types Azure prices apart.
pub const DEPLOYMENT_TYPES: [&str; 8] = [
    "GlobalStandard",
    "DataZoneStandard",
    "Standard",
    "GlobalProvisionedManaged",
    "DataZoneProvisionedManaged",
    "ProvisionedManaged",
    "GlobalBatch",
    "DataZoneBatch",
];

const COLUMNS: [&str; 10] = [
    "model",
    "deployment_type",
    "region",
    "currency",
    "unit",
    "input_rate",
    "cached_input_rate",
    "output_rate",
    "effective_from",
    "effective_to",
];

/// Reads and checks a price book CSV; every problem is reported, by line.
pub fn parse(path: &Path, text: &str) -> Result<Vec<PriceRow>> {
    let invalid = |problems: Vec<String>| ReportsError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = csv
        .headers()
        .map_err(|e| invalid(vec![format!("line 1: no readable CSV header: {e}")]))?
        .clone();
    let mut position = Columns::new();
    let mut problems = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if let Some(column) = COLUMNS.iter().find(|c| **c == name) {
            position.insert(column, i);
        } else {
            problems.push(format!(
                "line 1: unknown column {name:?} (expected {})",
                COLUMNS.join(", ")
            ));
        }
    }
    for column in COLUMNS {
        if !position.contains_key(column) {
            problems.push(format!("line 1: missing column `{column}`"));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }

    let source = path.display().to_string();
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
        match row(&record, &position, &format!("{source}:{line}")) {
            Ok(row) => rows.push((line, row)),
            Err(field_problems) => problems.extend(
                field_problems
                    .into_iter()
                    .map(|p| format!("line {line}, {p}")),
            ),
        }
    }
    problems.extend(overlaps(&rows));
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(rows.into_iter().map(|(_, row)| row).collect())
}

fn field<'r>(record: &'r csv::StringRecord, position: &Columns, column: &str) -> &'r str {
    position
        .get(column)
        .and_then(|&i| record.get(i))
        .unwrap_or_default()
}

type Columns = BTreeMap<&'static str, usize>;

/// One row, or the problems of each of its fields.
fn row(
    record: &csv::StringRecord,
    position: &Columns,
    source: &str,
) -> Result<PriceRow, Vec<String>> {
    let get = |column: &str| field(record, position, column);
    let mut problems = Vec::new();
    let mut required = |column: &str| {
        let value = get(column);
        if value.is_empty() {
            problems.push(format!("field `{column}`: missing"));
        }
        value.to_owned()
    };
    let model = required("model");
    let deployment_type = required("deployment_type");
    let region = required("region");
    let currency = required("currency");
    let unit = required("unit");
    let (from, to) = (required("effective_from"), get("effective_to").to_owned());

    if !deployment_type.is_empty() && !DEPLOYMENT_TYPES.contains(&deployment_type.as_str()) {
        problems.push(format!(
            "field `deployment_type`: {deployment_type:?} is not one of {}",
            DEPLOYMENT_TYPES.join(", ")
        ));
    }
    let iso_code = currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase());
    if !currency.is_empty() && !iso_code {
        problems.push(format!(
            "field `currency`: {currency:?} is not an ISO 4217 code such as USD"
        ));
    }
    let unit_tokens = match unit.as_str() {
        "1K" => 1_000,
        "1M" => 1_000_000,
        "" => 0,
        other => {
            problems.push(format!(
                "field `unit`: {other:?} is not 1K or 1M (rates per thousand or per million tokens)"
            ));
            0
        }
    };
    let mut rate = |column: &str| match parse_pico(get(column)) {
        Ok(pico) => pico,
        Err(e) => {
            problems.push(format!("field `{column}`: {e}"));
            0
        }
    };
    let input_rate_pico = rate("input_rate");
    let cached_input_rate_pico = rate("cached_input_rate");
    let output_rate_pico = rate("output_rate");
    let mut date = |column: &str, value: &str| match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) if value.is_empty() => None,
        Err(_) => {
            problems.push(format!(
                "field `{column}`: {value:?} is not a date (YYYY-MM-DD)"
            ));
            None
        }
    };
    if let (Some(from), Some(to)) = (date("effective_from", &from), date("effective_to", &to))
        && to <= from
    {
        problems.push(format!(
            "field `effective_to`: {to} is not after effective_from {from}"
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(PriceRow {
        model,
        deployment_type,
        region,
        currency,
        unit_tokens,
        input_rate_pico,
        cached_input_rate_pico,
        output_rate_pico,
        effective_from: from,
        effective_to: (!to.is_empty()).then_some(to),
        source: source.to_owned(),
    })
}

/// Rows for the same model, deployment type, region and currency whose date
/// ranges overlap: the price in force would be ambiguous.
fn overlaps(rows: &[(u64, PriceRow)]) -> Vec<String> {
    // (model, deployment type, region, currency) -> the rows and their lines.
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str);
    let mut by_key: BTreeMap<Key, Vec<(u64, &PriceRow)>> = BTreeMap::new();
    for (line, r) in rows {
        by_key
            .entry((&r.model, &r.deployment_type, &r.region, &r.currency))
            .or_default()
            .push((*line, r));
    }
    let mut problems = Vec::new();
    for ((model, kind, region, currency), mut ranges) in by_key {
        // Dates are YYYY-MM-DD, so text order is date order.
        ranges.sort_by(|a, b| a.1.effective_from.cmp(&b.1.effective_from));
        for pair in ranges.windows(2) {
            let ((line_a, a), (line_b, b)) = (pair[0], pair[1]);
            if a.effective_to
                .as_deref()
                .is_none_or(|to| to > b.effective_from.as_str())
            {
                problems.push(format!(
                    "lines {line_a} and {line_b}: {model} {kind} in {region} ({currency}) has two prices from {} (effective ranges overlap)",
                    b.effective_from
                ));
            }
        }
    }
    problems
}

/// Reads, checks and stores a price book file, replacing the current book. Errors
/// are the caller's to report (they name the file and every problem).
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub async fn import(db: &StateDb, path: &Path) -> Result<Vec<PriceRow>> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let rows = parse(path, &text)?;
    db.replace_price_book(&rows).await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n";

    fn problems(body: &str) -> Vec<String> {
        match parse(Path::new("prices.csv"), &format!("{HEADER}{body}")) {
            Err(ReportsError::Invalid { problems, .. }) => problems,
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_good_book_parses_to_exact_rates() {
        let rows = parse(
            Path::new("prices.csv"),
            &format!(
                "{HEADER}gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,10.00,2026-01-01,\n\
                 o3-mini,GlobalBatch,any,USD,1K,0.00055,0.000275,0.0022,2026-01-01,2026-10-16\n\
                 o3-mini,GlobalBatch,any,USD,1K,0.0005,0.00025,0.002,2026-10-16,\n"
            ),
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (
                rows[0].unit_tokens,
                rows[0].input_rate_pico,
                rows[0].output_rate_pico
            ),
            (1_000_000, 2_500_000_000_000, 10_000_000_000_000)
        );
        assert_eq!(
            (rows[1].unit_tokens, rows[1].cached_input_rate_pico),
            (1_000, 275_000_000)
        );
        assert_eq!(rows[1].effective_to.as_deref(), Some("2026-10-16"));
        assert_eq!(rows[2].effective_to, None);
        assert_eq!(rows[2].source, "prices.csv:4");
    }

    #[test]
    fn a_missing_unit_is_named_with_its_line() {
        assert_eq!(
            problems("gpt-4o,GlobalStandard,any,USD,,2.50,1.25,10.00,2026-01-01,\n"),
            vec!["line 2, field `unit`: missing"]
        );
        assert_eq!(
            problems("gpt-4o,GlobalStandard,any,USD,per token,2.50,1.25,10.00,2026-01-01,\n"),
            vec![
                "line 2, field `unit`: \"per token\" is not 1K or 1M (rates per thousand or per million tokens)"
            ]
        );
    }

    #[test]
    fn overlapping_ranges_name_both_lines() {
        let got = problems(
            "gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,10.00,2026-01-01,2026-11-01\n\
             gpt-4o,GlobalStandard,eastus,USD,1M,2.75,1.25,11.00,2026-01-01,\n\
             gpt-4o,GlobalStandard,any,USD,1M,2.00,1.00,8.00,2026-10-16,\n\
             gpt-4o,GlobalStandard,any,USD,1M,2.00,1.00,8.00,2027-01-01,\n",
        );
        assert_eq!(
            got,
            vec![
                "lines 2 and 4: gpt-4o GlobalStandard in any (USD) has two prices from 2026-10-16 (effective ranges overlap)",
                "lines 4 and 5: gpt-4o GlobalStandard in any (USD) has two prices from 2027-01-01 (effective ranges overlap)",
            ]
        );
    }

    #[test]
    fn every_bad_field_of_every_row_is_reported() {
        let got = problems(
            "gpt-4o,Premium,any,usd,1M,-2,1.25,ten,2026-13-01,\n\
             ,GlobalStandard,any,USD,1K,1,1,1,2026-02-01,2026-01-01\n",
        );
        assert_eq!(got.len(), 7, "{got:#?}");
        assert!(got[0].starts_with("line 2, field `deployment_type`: \"Premium\""));
        assert!(got.iter().any(|p| p == "line 3, field `model`: missing"));
        assert!(
            got.iter()
                .any(|p| p.starts_with("line 3, field `effective_to`: 2026-01-01 is not after"))
        );
    }

    #[test]
    fn unknown_and_missing_columns_are_refused() {
        let got = match parse(
            Path::new("p.csv"),
            "model,deployment_type,region,currency,rate\n",
        ) {
            Err(ReportsError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        };
        assert!(got[0].starts_with("line 1: unknown column \"rate\""));
        assert!(got.contains(&"line 1: missing column `unit`".to_owned()));
    }
}
