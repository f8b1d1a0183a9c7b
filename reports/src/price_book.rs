//! The price book: per-token rates by model, deployment type and region, each in
//! force over a date range (`docs/reference-data.md`, `prices.csv`). A file is
//! checked whole and refused whole: a half-imported price book would price
//! some requests by last month's sheet without anyone noticing.

use std::path::Path;

use tollgate_store::StateDb;
use tollgate_store::state::PriceRow;

use crate::Result;
use crate::csv_table::{self, Fields, overlaps, read_file};

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
    let mut table = csv_table::read(path, text, &COLUMNS, &[], row)?;
    let overlapping = overlaps(
        table.rows.iter().map(|(line, r)| {
            let key = (
                r.model.as_str(),
                r.deployment_type.as_str(),
                r.region.as_str(),
                r.currency.as_str(),
            );
            (
                *line,
                key,
                r.effective_from.as_str(),
                r.effective_to.as_deref(),
            )
        }),
        |(model, kind, region, currency)| format!("{model} {kind} in {region} ({currency})"),
    );
    table.problems.extend(overlapping);
    table.finish(path)
}

fn row(f: &mut Fields<'_>, source: &str) -> Option<PriceRow> {
    let model = f.required("model");
    let deployment_type = f.one_of("deployment_type", &DEPLOYMENT_TYPES);
    let region = f.required("region");
    let currency = f.currency("currency");
    let unit_tokens = match f.text("unit") {
        "1K" => 1_000,
        "1M" => 1_000_000,
        "" => {
            f.problem("unit", "missing".to_owned());
            0
        }
        other => {
            let what =
                format!("{other:?} is not 1K or 1M (rates per thousand or per million tokens)");
            f.problem("unit", what);
            0
        }
    };
    let input_rate_pico = f.pico("input_rate");
    let cached_input_rate_pico = f.pico("cached_input_rate");
    let output_rate_pico = f.pico("output_rate");
    let rates = [input_rate_pico, cached_input_rate_pico, output_rate_pico];
    if deployment_type.ends_with("ProvisionedManaged") && rates.iter().any(|&r| r != 0) {
        // Otherwise they would be ignored without a word.
        let what = format!(
            "{deployment_type} is paid by PTU reservation (ptu-reservations.csv), so its token rates must be 0"
        );
        f.problem("input_rate", what);
    }
    let (effective_from, effective_to) = f.date_range("effective_from", "effective_to");
    Some(PriceRow {
        model,
        deployment_type,
        region,
        currency,
        unit_tokens,
        input_rate_pico,
        cached_input_rate_pico,
        output_rate_pico,
        effective_from,
        effective_to,
        source: source.to_owned(),
    })
}

/// Reads, checks and stores a price book file, replacing the current book. Errors
/// are the caller's to report (they name the file and every problem).
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub async fn import(db: &StateDb, path: &Path) -> Result<Vec<PriceRow>> {
    let rows = parse(path, &read_file(path)?)?;
    db.replace_price_book(&rows).await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReportsError;

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
                "lines 2 and 4: gpt-4o GlobalStandard in any (USD) is in force twice from 2026-10-16 (effective ranges overlap)",
                "lines 4 and 5: gpt-4o GlobalStandard in any (USD) is in force twice from 2027-01-01 (effective ranges overlap)",
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
    fn provisioned_token_rates_and_loose_dates_are_refused() {
        let got = problems(
            "gpt-4o,ProvisionedManaged,any,USD,1M,2.50,1.25,10.00,2026-01-01,\n\
             gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,10.00,2026-2-1,\n\
             gpt-4o,ProvisionedManaged,eastus,USD,1M,0,0,0,2026-01-01,\n",
        );
        assert_eq!(
            got,
            vec![
                "line 2, field `input_rate`: ProvisionedManaged is paid by PTU reservation (ptu-reservations.csv), so its token rates must be 0",
                // Text order of `2026-2-1` is not date order: only the canonical form.
                "line 3, field `effective_from`: \"2026-2-1\" is not a date (YYYY-MM-DD)",
            ]
        );
    }

    #[test]
    fn a_column_given_twice_is_refused() {
        let got = match parse(Path::new("p.csv"), &HEADER.replace("unit,", "unit,unit,")) {
            Err(ReportsError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        };
        assert_eq!(got, vec!["line 1: column `unit` appears twice"]);
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
