//! Month close: a closed month's chargeback never changes, late data for it is
//! charged as an adjustment in the next open month, re-opening needs force and
//! is recorded, a changed snapshot is refused; FOCUS adds up to the chargeback.

use std::sync::Arc;

use tollgate_ingest::{IngestOptions, NoProgress, ingest_file};
use tollgate_reports::ReportsError;
use tollgate_reports::chargeback::{
    Chargeback, ChargebackCache, ChargebackRow, chargeback, chargeback_cached,
};
use tollgate_reports::close::{close_month, history, reopen_month};
use tollgate_reports::month::Month;
use tollgate_reports::rate::parse_pico_wide;
use tollgate_reports::snapshot::sha256_hex;
use tollgate_reports::{capacity, focus, ownership, price_book};
use tollgate_store::testing::TestStore;

use crate::chargeback::{load_reference, october, request};
use crate::write;

tollgate_store::backend_tests!(a_closed_month_never_changes_and_late_data_adjusts_the_next);

async fn ingest(store: &TestStore, name: &str, lines: &[String]) {
    let path = write(store, name, &(lines.join("\n") + "\n"));
    ingest_file(
        store,
        &path,
        &IngestOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
}

fn by_cost_centre() -> Vec<String> {
    vec!["cost_centre".to_owned()]
}

fn row(rows: &[ChargebackRow], group: &str) -> ChargebackRow {
    rows.iter()
        .find(|r| r.group == [group])
        .cloned()
        .unwrap_or_default()
}

/// BilledCost of every row, by ChargeCategory.
fn focus_billed(csv: &[u8]) -> Vec<(String, String, i128)> {
    let mut reader = csv::Reader::from_reader(csv);
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (category, class, billed) = (col("ChargeCategory"), col("ChargeClass"), col("BilledCost"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[category].to_owned(),
                r[class].to_owned(),
                parse_pico_wide(&r[billed]).unwrap(),
            )
        })
        .collect()
}

/// A story in named steps: a failure says which step it was.
async fn a_closed_month_never_changes_and_late_data_adjusts_the_next(store: TestStore) {
    let open = october_closes_once_with_its_snapshot(&store).await;
    late_data_leaves_october_and_adjusts_november(&store, &open).await;
    the_closed_months_focus_adds_up_to_its_total(&store, &open).await;
    new_reference_data_corrects_nothing_closed(&store).await;
    reopening_takes_force_and_makes_the_month_live(&store, &open).await;
    months_reopen_latest_first_and_an_edited_snapshot_is_refused(&store).await;
}

/// October's traffic; closing a month not ended is refused, October closes
/// once. October's chargeback as it was open.
async fn october_closes_once_with_its_snapshot(store: &TestStore) -> Chargeback {
    load_reference(store).await;
    ingest(
        store,
        "october.jsonl",
        &[
            // $0.0035 after the mid-month price change.
            request(
                "r2",
                "2026-10-20T10:00:00Z",
                "sub-a",
                "b-payg",
                "m-payg",
                (2000, 1000, 500),
            ),
            request(
                "r3",
                "2026-10-01T05:10:00Z",
                "sub-a",
                "b-ptu",
                "m-ptu",
                (300, 0, 100),
            ),
        ],
    )
    .await;
    let open = chargeback(store, october(), &by_cost_centre())
        .await
        .unwrap();
    assert!(open.closed.is_none());

    let err = close_month(store, Month::new(2099, 1).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has not ended"), "{err}");
    let closure = close_month(store, october()).await.unwrap();
    assert_eq!(closure.batches, 1);
    let json = std::fs::read(&closure.json_path).unwrap();
    assert_eq!(sha256_hex(&json), closure.json_sha256);
    let parquet = std::fs::read(&closure.parquet_path).unwrap();
    assert_eq!(sha256_hex(&parquet), closure.parquet_sha256);
    let err = close_month(store, october()).await.unwrap_err();
    assert!(err.to_string().contains("closed already"), "{err}");

    open
}

/// Late October data: 1000 prompt tokens at $1/1M = $0.001 for sub-b.
async fn late_data_leaves_october_and_adjusts_november(store: &TestStore, open: &Chargeback) {
    let november = Month::new(2026, 11).unwrap();
    ingest(
        store,
        "late.jsonl",
        &[request(
            "r9",
            "2026-10-25T09:00:00Z",
            "sub-b",
            "b-payg",
            "m-payg",
            (1000, 0, 0),
        )],
    )
    .await;
    let closed = chargeback(store, october(), &by_cost_centre())
        .await
        .unwrap();
    assert!(closed.closed.is_some());
    assert_eq!(closed.rows, open.rows, "a closed month never changes");
    assert_eq!(closed.total, open.total);

    let next = chargeback(store, november, &by_cost_centre())
        .await
        .unwrap();
    assert_eq!(row(&next.rows, "cc-b").adjustment_pico, 1_000_000_000);
    assert_eq!(
        next.total.total_pico(),
        1_000_000_000,
        "only the adjustment"
    );
    assert_eq!(next.total.previous_total_pico, open.total.total_pico());
    let exported = focus::export(store, november).await.unwrap();
    assert_eq!(
        focus_billed(&exported.csv),
        vec![(
            "Adjustment".to_owned(),
            "Correction".to_owned(),
            1_000_000_000
        )]
    );
}

async fn the_closed_months_focus_adds_up_to_its_total(store: &TestStore, open: &Chargeback) {
    // FOCUS of the closed month: Usage and Purchase, adding up to its total.
    let exported = focus::export(store, october()).await.unwrap();
    let billed = focus_billed(&exported.csv);
    assert!(billed.iter().any(|(c, _, _)| c == "Usage"));
    assert!(billed.iter().any(|(c, _, _)| c == "Purchase"));
    assert_eq!(
        billed.iter().map(|(_, _, b)| b).sum::<i128>(),
        open.total.total_pico()
    );
}

async fn new_reference_data_corrects_nothing_closed(store: &TestStore) {
    let november = Month::new(2026, 11).unwrap();
    // Changing the reference tables after close is not late data: the closed
    // month is corrected with the tables it was closed with.
    let no_ptu = "backend,deployment,ptus,cost_per_ptu_hour,currency,output_token_weight,idle_charged_to,effective_from,effective_to\n";
    capacity::import_ptu(&store.db, &write(store, "no-ptu.csv", no_ptu))
        .await
        .unwrap();
    let moved = "[cost_centres]\n\"cc-a\" = { name = \"A\" }\n\"cc-b\" = { name = \"B\" }\n\"cc-ops\" = { name = \"Ops\" }\n\
                 [subscriptions]\n\"sub-a\" = \"cc-a\"\n\"sub-b\" = \"cc-a\"\n";
    ownership::import(&store.db, &write(store, "moved.toml", moved))
        .await
        .unwrap();
    let next = chargeback(store, november, &by_cost_centre())
        .await
        .unwrap();
    assert_eq!(row(&next.rows, "cc-b").adjustment_pico, 1_000_000_000);
    assert_eq!(next.total.adjustment_pico, 1_000_000_000);
    // Its FOCUS export keeps the currency it was closed in, too.
    let euro = "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n\
                m-payg,GlobalStandard,any,EUR,1M,1.00,0.50,4.00,2026-01-01,\n";
    price_book::import(&store.db, &write(store, "euro.csv", euro))
        .await
        .unwrap();
    let exported = focus::export(store, october()).await.unwrap();
    assert_eq!(exported.currency, "USD");
    load_reference(store).await;
}

async fn reopening_takes_force_and_makes_the_month_live(store: &TestStore, open: &Chargeback) {
    let november = Month::new(2026, 11).unwrap();
    // Re-opening takes force, is recorded, and makes the month live again.
    let err = reopen_month(store, october(), false, "late usage")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    reopen_month(store, october(), true, "late usage")
        .await
        .unwrap();
    let actions: Vec<(String, Option<String>)> = history(store)
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.action, h.reason))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("close".to_owned(), None),
            ("reopen".to_owned(), Some("late usage".to_owned()))
        ]
    );
    let live = chargeback(store, october(), &by_cost_centre())
        .await
        .unwrap();
    assert_eq!(
        live.total.total_pico(),
        open.total.total_pico() + 1_000_000_000
    );
    let next = chargeback(store, november, &by_cost_centre())
        .await
        .unwrap();
    assert_eq!(next.total.adjustment_pico, 0, "nothing to adjust");
}

async fn months_reopen_latest_first_and_an_edited_snapshot_is_refused(store: &TestStore) {
    // Closed again, then its snapshot is edited: refused, not served, even by
    // a process that had it cached.
    let september = october().previous().unwrap();
    reopen_month(store, october(), true, "to close September first")
        .await
        .unwrap_err();
    let closure = close_month(store, october()).await.unwrap();
    // Months re-open latest first: October's snapshot could hold September's
    // adjustments.
    reopen_month(store, october(), true, "to close September first")
        .await
        .unwrap();
    close_month(store, september).await.unwrap();
    let closure_again = close_month(store, october()).await.unwrap();
    let err = reopen_month(store, september, true, "typo")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("2026-10 closed after 2026-09"),
        "{err}"
    );
    assert_ne!(closure.json_path, closure_again.json_path);
    let closure = closure_again;
    let cache = ChargebackCache::default();
    chargeback_cached(store, &cache, october(), &by_cost_centre())
        .await
        .unwrap();
    std::fs::write(&closure.json_path, b"{}").unwrap();
    let err = chargeback(store, october(), &by_cost_centre())
        .await
        .unwrap_err();
    assert!(matches!(err, ReportsError::Integrity(_)), "{err}");
    let err = chargeback_cached(store, &cache, october(), &by_cost_centre())
        .await
        .unwrap_err();
    assert!(matches!(err, ReportsError::Integrity(_)), "{err}");
}
