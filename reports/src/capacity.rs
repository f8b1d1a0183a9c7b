//! What the gateways' backends are, and the provisioned throughput paid for
//! whatever the traffic (`docs/reference-data.md`: `backends.csv`,
//! `ptu-reservations.csv`). Both files are checked whole like the price book.

use std::path::Path;

use tollgate_store::StateDb;
use tollgate_store::state::{BackendRow, PtuReservation};

use crate::Result;
use crate::csv_table::{self, Fields, overlaps, read_file};
use crate::price_book::DEPLOYMENT_TYPES;
use crate::rate::{PICO, parse_pico};

const BACKEND_COLUMNS: [&str; 4] = ["backend", "deployment_type", "region", "resource_id"];

/// Reads and checks a backends CSV: each backend once, with a known deployment type.
pub fn parse_backends(path: &Path, text: &str) -> Result<Vec<BackendRow>> {
    let optional = ["resource_id"];
    let mut table = csv_table::read(path, text, &BACKEND_COLUMNS, &optional, |f, source| {
        Some(BackendRow {
            backend: f.required("backend"),
            deployment_type: f.one_of("deployment_type", &DEPLOYMENT_TYPES),
            region: f.required("region"),
            resource_id: resource_id(f),
            source: source.to_owned(),
        })
    })?;
    let rows = &table.rows;
    let twice: Vec<String> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, (line, row))| {
            let (first, _) = rows[..i].iter().find(|(_, r)| r.backend == row.backend)?;
            Some(format!(
                "lines {first} and {line}: backend {:?} is described twice",
                row.backend
            ))
        })
        .collect();
    table.problems.extend(twice);
    table.finish(path)
}

/// An Azure resource id as cost exports name it (`/subscriptions/...`), or none.
fn resource_id(f: &mut Fields<'_>) -> Option<String> {
    let text = f.text("resource_id").trim().to_owned();
    if text.is_empty() {
        return None;
    }
    if !text.starts_with('/') || text.len() > 1024 || text.chars().any(char::is_control) {
        f.problem(
            "resource_id",
            format!("{text:?} is not an Azure resource id (/subscriptions/...)"),
        );
        return None;
    }
    Some(text)
}

const PTU_COLUMNS: [&str; 10] = [
    "backend",
    "deployment",
    "ptus",
    "cost_per_ptu_hour",
    "cost_per_ptu_month",
    "currency",
    "output_token_weight",
    "idle_charged_to",
    "effective_from",
    "effective_to",
];

/// Reads and checks a PTU reservations CSV. Each row prices its PTUs per hour or
/// per month (one of the two columns); ranges of one deployment must not overlap.
pub fn parse_ptu(path: &Path, text: &str) -> Result<Vec<PtuReservation>> {
    read_ptu(path, text)?.finish(path)
}

fn read_ptu(path: &Path, text: &str) -> Result<csv_table::Table<PtuReservation>> {
    let optional = ["cost_per_ptu_hour", "cost_per_ptu_month"];
    let mut table = csv_table::read(path, text, &PTU_COLUMNS, &optional, ptu_row)?;
    let overlapping = overlaps(
        table.rows.iter().map(|(line, r)| {
            let key = (r.backend.as_str(), r.deployment.as_str());
            (
                *line,
                key,
                r.effective_from.as_str(),
                r.effective_to.as_deref(),
            )
        }),
        |(backend, deployment)| format!("the PTU reservation of {deployment} on {backend}"),
    );
    table.problems.extend(overlapping);
    Ok(table)
}

/// What a reservation refers to must exist: its backend, as a provisioned one (a
/// reservation on a pay-as-you-go backend would charge its traffic twice), and
/// the cost centre its idle capacity goes to.
fn check_references(
    table: &mut csv_table::Table<PtuReservation>,
    backends: &[BackendRow],
    cost_centres: &[String],
) {
    for (line, r) in &table.rows {
        match backends.iter().find(|b| b.backend == r.backend) {
            None => table.problems.push(format!(
                "line {line}, field `backend`: {:?} is not a known backend (import backends first)",
                r.backend
            )),
            Some(b) if !b.deployment_type.ends_with("ProvisionedManaged") => {
                table.problems.push(format!(
                    "line {line}, field `backend`: {:?} is a {} backend, not a provisioned one",
                    r.backend, b.deployment_type
                ))
            }
            Some(_) => {}
        }
        if r.idle_charged_to != "spread" && !cost_centres.contains(&r.idle_charged_to) {
            table.problems.push(format!(
                "line {line}, field `idle_charged_to`: {:?} is neither `spread` nor a declared cost centre",
                r.idle_charged_to
            ));
        }
    }
}

fn ptu_row(f: &mut Fields<'_>, source: &str) -> Option<PtuReservation> {
    let backend = f.required("backend");
    let deployment = f.required("deployment");
    let digits = f.text("ptus").bytes().all(|b| b.is_ascii_digit());
    let ptus = match f.text("ptus").parse::<i64>() {
        Ok(n) if n > 0 && digits => n,
        _ => {
            let what = format!("{:?} is not a positive whole number", f.text("ptus"));
            f.problem("ptus", what);
            0
        }
    };
    let (cost_pico, cost_period) = match (f.text("cost_per_ptu_hour"), f.text("cost_per_ptu_month"))
    {
        (hour, "") if !hour.is_empty() => (f.pico("cost_per_ptu_hour"), "hour"),
        ("", month) if !month.is_empty() => (f.pico("cost_per_ptu_month"), "month"),
        _ => {
            let what = "give exactly one of cost_per_ptu_hour and cost_per_ptu_month".to_owned();
            f.problem("cost_per_ptu_hour", what);
            (0, "hour")
        }
    };
    let currency = f.currency("currency");
    let weight = f.pico("output_token_weight");
    // A weight that is not a number at all has been reported by `pico` already.
    let parsed = parse_pico(f.text("output_token_weight")).is_ok();
    if parsed && (weight == 0 || weight % (PICO / 1000) != 0) {
        let what = format!(
            "{:?} is not a positive weight with at most 3 decimals",
            f.text("output_token_weight")
        );
        f.problem("output_token_weight", what);
    }
    let idle_charged_to = f.required("idle_charged_to");
    let (effective_from, effective_to) = f.date_range("effective_from", "effective_to");
    Some(PtuReservation {
        backend,
        deployment,
        ptus,
        cost_pico,
        cost_period: cost_period.to_owned(),
        currency,
        output_token_weight_milli: weight / (PICO / 1000),
        idle_charged_to,
        effective_from,
        effective_to,
        source: source.to_owned(),
    })
}

/// Reads, checks and stores a backends file, replacing the current list.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub async fn import_backends(db: &StateDb, path: &Path) -> Result<Vec<BackendRow>> {
    let rows = parse_backends(path, &read_file(path)?)?;
    db.replace_backends(&rows).await?;
    Ok(rows)
}

/// Reads, checks and stores a PTU reservations file, replacing the current ones.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub async fn import_ptu(db: &StateDb, path: &Path) -> Result<Vec<PtuReservation>> {
    let mut table = read_ptu(path, &read_file(path)?)?;
    let cost_centres: Vec<String> = db.cost_centres().await?.into_iter().map(|c| c.id).collect();
    check_references(&mut table, &db.backends().await?, &cost_centres);
    let rows = table.finish(path)?;
    db.replace_ptu_reservations(&rows).await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReportsError;

    fn problems(result: Result<impl std::fmt::Debug>) -> Vec<String> {
        match result {
            Err(ReportsError::Invalid { problems, .. }) => problems,
            other => panic!("expected refusal, got {other:?}"),
        }
    }

    const PTU_HEADER: &str = "backend,deployment,ptus,cost_per_ptu_hour,currency,output_token_weight,idle_charged_to,effective_from,effective_to\n";

    #[test]
    fn a_ptu_reservation_reads_exactly() {
        let rows = parse_ptu(
            Path::new("ptu.csv"),
            &format!("{PTU_HEADER}aoai-eastus-ptu,gpt-4o,50,1.00,USD,4,spread,2026-01-01,\n"),
        )
        .unwrap();
        let r = &rows[0];
        assert_eq!(
            (
                r.ptus,
                r.cost_pico,
                r.cost_period.as_str(),
                r.output_token_weight_milli
            ),
            (50, PICO, "hour", 4000)
        );
        let monthly = parse_ptu(
            Path::new("ptu.csv"),
            "backend,deployment,ptus,cost_per_ptu_month,currency,output_token_weight,idle_charged_to,effective_from,effective_to\n\
             ptu-1,gpt-4.1,100,260,USD,3.5,cc-rnd,2026-01-01,2027-01-01\n",
        )
        .unwrap();
        assert_eq!(
            (
                monthly[0].cost_period.as_str(),
                monthly[0].output_token_weight_milli
            ),
            ("month", 3500)
        );
    }

    #[test]
    fn bad_ptu_rows_and_overlaps_are_named() {
        let got = problems(parse_ptu(
            Path::new("ptu.csv"),
            &format!(
                "{PTU_HEADER}p,gpt-4o,0,,USD,0.0001,spread,2026-01-01,\n\
                 p,gpt-4o,10,1,USD,4,spread,2026-01-01,2026-07-01\n\
                 p,gpt-4o,10,1,USD,4,spread,2026-06-01,\n"
            ),
        ));
        assert_eq!(
            got,
            vec![
                "line 2, field `ptus`: \"0\" is not a positive whole number",
                "line 2, field `cost_per_ptu_hour`: give exactly one of cost_per_ptu_hour and cost_per_ptu_month",
                "line 2, field `output_token_weight`: \"0.0001\" is not a positive weight with at most 3 decimals",
                // Checks across rows still run on the good ones.
                "lines 3 and 4: the PTU reservation of gpt-4o on p is in force twice from 2026-06-01 (effective ranges overlap)",
            ]
        );
    }

    #[test]
    fn a_signed_ptu_count_and_a_bad_weight_are_named_once() {
        let got = problems(parse_ptu(
            Path::new("ptu.csv"),
            &format!("{PTU_HEADER}p,gpt-4o,+5,1,USD,heavy,spread,2026-01-01,\n"),
        ));
        assert_eq!(
            got,
            vec![
                "line 2, field `ptus`: \"+5\" is not a positive whole number",
                "line 2, field `output_token_weight`: \"heavy\" is not a non-negative decimal number",
            ]
        );
    }

    #[test]
    fn a_backend_described_twice_or_of_an_unknown_type_is_refused() {
        let got = problems(parse_backends(
            Path::new("backends.csv"),
            "backend,deployment_type,region\nb1,GlobalStandard,eastus2\nb2,Premium,eastus\nb1,Standard,eastus\n",
        ));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("line 3, field `deployment_type`: \"Premium\""));
        assert_eq!(got[1], "lines 2 and 4: backend \"b1\" is described twice");
    }
}
