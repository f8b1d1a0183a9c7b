//! The invoice against the estimate: the hand-checked bills of
//! `fixtures/samples/reconcile` (EXPECTED.md) in both Azure shapes, restated
//! lines, and a generated month whose bill carries injected differences,
//! each found as its cause and the true-up equal to the bill to the cent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tollgate_ingest::{Format, IngestOptions, IngestReport, NoProgress, ingest_file};
use tollgate_reports::invoice::{Reconciliation, reconciliation};
use tollgate_reports::month::Month;
use tollgate_reports::reconcile::{ReconcileBy, ReconcileRow};
use tollgate_reports::trueup::{UNATTRIBUTED, chargeback_billed};
use tollgate_reports::{capacity, price_book};
use tollgate_store::Store;
use tollgate_store::testing::TestStore;

use crate::write;

tollgate_store::backend_tests!(
    a_focus_bill_reconciles_as_checked_by_hand,
    a_cost_details_bill_reconciles_as_checked_by_hand,
    a_restated_line_replaces_the_line_it_restates,
    a_generated_month_finds_each_injected_difference,
    a_variance_rule_fires_on_the_days_the_bill_is_off,
    a_month_closes_on_the_billed_basis,
);

const PICO: i128 = 1_000_000_000_000;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/samples/reconcile")
        .join(name)
}

fn october() -> Month {
    Month::new(2026, 10).unwrap()
}

/// `text` in pico-units (`"2.5"` -> 2.5 x 10^12).
fn pico(text: &str) -> i128 {
    tollgate_store::rate::parse_pico_rounded(text).unwrap()
}

async fn ingest(store: &Store, path: &Path, format: Format) -> IngestReport {
    let options = IngestOptions {
        format,
        ..IngestOptions::default()
    };
    ingest_file(store, path, &options, Arc::new(NoProgress))
        .await
        .unwrap()
}

async fn load_reference(store: &Store, dir: impl Fn(&str) -> PathBuf) {
    price_book::import(&store.db, &dir("prices.csv"))
        .await
        .unwrap();
    capacity::import_backends(&store.db, &dir("backends.csv"))
        .await
        .unwrap();
    capacity::import_ptu(&store.db, &dir("ptu-reservations.csv"))
        .await
        .unwrap();
}

/// The sample estate with its traffic and one of its two bills.
async fn sample_month(store: &TestStore, bill: &str) -> IngestReport {
    load_reference(store, sample).await;
    let traffic = ingest(store, &sample("traffic.jsonl"), Format::Canonical).await;
    assert_eq!(traffic.counts.written, 18, "{traffic}");
    ingest(store, &sample(bill), Format::AzureCost).await
}

fn causes(row: &ReconcileRow) -> BTreeMap<&'static str, i128> {
    let mut causes: BTreeMap<&'static str, i128> = row.causes.named().into_iter().collect();
    causes.insert("residual", row.residual());
    causes
}

/// EXPECTED.md's month: every cause, to the pico.
fn check_expected(report: &Reconciliation) {
    let total = &report.total;
    assert_eq!(total.billed, pico("482.38025"));
    assert_eq!(total.estimated, pico("482.298"));
    let expected = BTreeMap::from([
        ("unlogged_tokens", pico("2.5")),
        ("unbilled_tokens", pico("-0.11")),
        ("rate_difference", pico("0.04")),
        ("ptu_hours", pico("10")),
        ("discount", pico("-12.54775")),
        ("commitment", 0),
        ("unmapped_meter", pico("0.2")),
        // 0.048 billed on an account no backend names, 0.048 logged on a
        // backend with no resource id.
        ("unmapped_resource", 0),
        ("residual", 0),
    ]);
    assert_eq!(causes(total), expected);
    assert!(
        total.price_rows.iter().any(|r| r.ends_with("prices.csv:2")),
        "the gpt-4o row to check: {:?}",
        total.price_rows
    );
    assert_eq!(report.period, ("2026-10-01".into(), "2026-10-02".into()));
    assert_eq!(report.currency.as_deref(), Some("USD"));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

/// The true-up: the bill split by usage, to the cent.
async fn check_true_up(store: &Store) {
    let billed = chargeback_billed(store, october(), &["subscription".to_owned()])
        .await
        .unwrap();
    let by: BTreeMap<String, i128> = billed
        .chargeback
        .rows
        .iter()
        .map(|r| (r.group[0].clone(), r.total_pico()))
        .collect();
    assert_eq!(
        by,
        BTreeMap::from([
            ("sub-finance".to_owned(), pico("120.750875")),
            ("sub-research".to_owned(), pico("361.381375")),
            (UNATTRIBUTED.to_owned(), pico("0.248")),
        ])
    );
    assert_eq!(billed.chargeback.total.total_pico(), pico("482.38025"));
    assert_eq!(billed.unattributed_pico, pico("0.248"));
    let (_, cents) = tollgate_reports::chargeback::to_cents(
        &billed
            .chargeback
            .rows
            .iter()
            .map(|r| r.total_pico())
            .collect::<Vec<_>>(),
    );
    assert_eq!(cents, 48_238, "the invoice to the cent");
}

async fn check_bill(store: TestStore, bill: &str, bad_field: &str) {
    let imported = sample_month(&store, bill).await;
    assert_eq!(
        (
            imported.counts.read,
            imported.counts.written,
            imported.counts.quarantined
        ),
        (12, 11, 1),
        "{imported}"
    );
    let quarantined = store.db.quarantined_lines(imported.batch_id).await.unwrap();
    assert_eq!(quarantined[0].line_number, 12);
    assert!(
        quarantined[0]
            .reason
            .contains(&format!("field `{bad_field}`")),
        "{}",
        quarantined[0].reason
    );
    let again = ingest(&store, &sample(bill), Format::AzureCost).await;
    assert_eq!(
        again.batch_id, imported.batch_id,
        "the same file changes nothing"
    );

    let report = reconciliation(&store, october(), &[ReconcileBy::TokenKind])
        .await
        .unwrap();
    check_expected(&report);
    assert_eq!(report.cost_files.len(), 1);
    assert!(report.cost_files[0].source.ends_with(bill));
    // The unmapped resource's two halves, each on its own row.
    let by_resource = reconciliation(&store, october(), &[ReconcileBy::Resource])
        .await
        .unwrap();
    let unmapped = |resource: &str| {
        let row = by_resource.rows.iter().find(|r| r.group[0] == resource);
        row.map(|r| r.causes.unmapped_resource)
    };
    let sweden = "/subscriptions/00000000-0000-4000-8000-000000000001/resourcegroups/rg-ai/\
                  providers/microsoft.cognitiveservices/accounts/aoai-sweden";
    assert_eq!(
        unmapped(sweden),
        Some(pico("0.048")),
        "billed where no backend is"
    );
    assert_eq!(
        unmapped("(no resource_id: aoai-sweden-mini)"),
        Some(pico("-0.048")),
        "logged where no resource id is"
    );
    // Every grouping adds up to the same total.
    for by in [
        vec![ReconcileBy::Day, ReconcileBy::Resource],
        vec![ReconcileBy::Model],
    ] {
        let grouped = reconciliation(&store, october(), &by).await.unwrap();
        assert_eq!(grouped.total, report.total);
        let sum: i128 = grouped.rows.iter().map(ReconcileRow::variance).sum();
        assert_eq!(sum, report.total.variance());
    }
    check_true_up(&store).await;
}

async fn a_focus_bill_reconciles_as_checked_by_hand(store: TestStore) {
    check_bill(store, "focus-costs.csv", "BilledCost").await;
}

async fn a_cost_details_bill_reconciles_as_checked_by_hand(store: TestStore) {
    check_bill(store, "cost-details.csv", "Date").await;
}

/// A provider restates a day: the new export's line is read, not both.
async fn a_restated_line_replaces_the_line_it_restates(store: TestStore) {
    sample_month(&store, "focus-costs.csv").await;
    let text = std::fs::read_to_string(sample("focus-costs.csv")).unwrap();
    // The storage line, restated from 0.2 to 0.3.
    let restated: String = text
        .lines()
        .map(|line| match line.contains("Standard Storage LRS") {
            true => line.replacen("0.2,", "0.3,", 1),
            false => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(restated, text.trim_end());
    let path = write(&store, "focus-restated.csv", &restated);
    let report = ingest(&store, &path, Format::AzureCost).await;
    assert_eq!(
        report.counts.written, 1,
        "only the restated line is new: {report}"
    );
    let after = reconciliation(&store, october(), &[]).await.unwrap();
    assert_eq!(after.total.billed, pico("482.48025"), "0.1 more, not 0.3");
    assert_eq!(after.total.causes.unmapped_meter, pico("0.3"));
    assert_eq!(after.cost_files.len(), 2);
}

/// A generated month and the bill the generator made from its traffic,
/// with a 3% discount, gpt-4.1's price raised mid-month, traffic that
/// bypassed the gateways and a PTU scale-up the reservations do not have.
async fn a_generated_month_finds_each_injected_difference(store: TestStore) {
    use tollgate_fixtures::costs;
    let out = store.dir.path().join("month");
    let generated = tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests: 3_000,
        seed: 5,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    load_reference(&store, |name| out.join("reference").join(name)).await;
    for file in generated
        .files
        .iter()
        .filter(|f| !f.starts_with(out.join("reference")))
    {
        let report = ingest(&store, file, Format::Auto).await;
        assert_eq!(report.counts.quarantined, 0, "{report}");
    }
    for file in &generated.cost_files {
        let report = ingest(&store, file, Format::AzureCost).await;
        assert_eq!(report.counts.quarantined, 0, "{report}");
    }
    let by = [ReconcileBy::Model, ReconcileBy::TokenKind, ReconcileBy::Day];
    let report = reconciliation(&store, october(), &by).await.unwrap();
    let row = |model: &str, kind: &str, day: u32| {
        let day = format!("2026-10-{day:02}");
        report
            .rows
            .iter()
            .find(|r| r.group == [model, kind, day.as_str()])
            .cloned()
            .unwrap_or_default()
    };
    let total = &report.total;
    // The discount: 3% of the list cost, to rounding of each line's cost.
    let lines = report.rows.len() as i128;
    let three_percent = total.list * i128::from(costs::DISCOUNT_PERCENT) / 100;
    assert!(
        (total.causes.discount + three_percent).abs() <= lines * 100,
        "{total:?}"
    );
    // gpt-4.1 costs more from the day its price changed, and only from then.
    let before = row(
        costs::PRICE_CHANGE_MODEL,
        "output",
        costs::PRICE_CHANGE_DAY - 1,
    );
    let after = row(costs::PRICE_CHANGE_MODEL, "output", costs::PRICE_CHANGE_DAY);
    assert!(
        before.estimated > 0 && after.estimated > 0,
        "gpt-4.1 has traffic both days"
    );
    assert!(
        before.causes.rate_difference.abs() < PICO / 100,
        "{before:?}"
    );
    let ten_percent = after.estimated * i128::from(costs::PRICE_CHANGE_PERCENT) / 100;
    assert!(
        (after.causes.rate_difference - ten_percent).abs() < PICO / 100,
        "{after:?}"
    );
    assert!(
        !after.price_rows.is_empty(),
        "names the price-book row to fix"
    );
    // Tokens no gateway logged, on the days they went around it.
    for day in costs::BYPASS_DAYS {
        let bypass = row(costs::BYPASS_MODEL, "input", day);
        let unlogged = bypass.billed_quantity_milli - bypass.logged_quantity_milli;
        assert_eq!(
            unlogged,
            i128::from(costs::BYPASS_TOKENS_PER_DAY) * 1000,
            "day {day}"
        );
        assert!(bypass.causes.unlogged_tokens > 0);
    }
    // PTU hours billed beyond the reservation on the day it was scaled up.
    let scaled = row("(none)", "provisioned_hour", costs::PTU_SCALE_UP_DAY);
    let extra = scaled.billed_quantity_milli - scaled.logged_quantity_milli;
    assert_eq!(extra, i128::from(costs::PTU_EXTRA_HOURS) * 1000);
    assert!(scaled.causes.ptu_hours > 0);
    let ordinary = row("(none)", "provisioned_hour", costs::PTU_SCALE_UP_DAY - 1);
    assert_eq!(ordinary.causes.ptu_hours, 0);
    // Nothing left unexplained beyond rounding of the bill's own lines.
    assert!(total.residual().abs() <= lines * 100, "{total:?}");
    // The true-up is the bill, to the pico, on both backends.
    let billed = chargeback_billed(&store, october(), &["cost_centre".to_owned()])
        .await
        .unwrap();
    assert_eq!(billed.chargeback.total.total_pico(), total.billed);
    assert_eq!(billed.billed_pico, total.billed);
}

/// `variance_above`: each day the bill covers is judged per model; gpt-4o is
/// off by 204% and -11.5% on the two days, the rest by under 2%.
async fn a_variance_rule_fires_on_the_days_the_bill_is_off(store: TestStore) {
    use tollgate_reports::alerts::{self, AlertOptions, RulesFile};
    sample_month(&store, "focus-costs.csv").await;
    let rules: RulesFile = toml::from_str(
        r#"
        [[rule]]
        name = "invoice-variance"
        kind = "variance_above"
        threshold = 0.10
        group_by = ["model"]
        annotations = { summary = "{{ labels.model }} billed {{ value }} off the estimate" }
        "#,
    )
    .unwrap();
    let mut refused = rules.rule[0].clone();
    refused.group_by = vec!["subscription".into()];
    let error = alerts::install_rules(&store, &[refused]).await.unwrap_err();
    assert!(
        error.to_string().contains("group_by: \"subscription\""),
        "{error}"
    );
    alerts::install_rules(&store, &rules.rule).await.unwrap();

    let day = |d: u32| {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
        date.and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_micros()
    };
    // As an import judges them: over the previous and this month, on the 3rd.
    let options = AlertOptions::default();
    let run = alerts::evaluate_bill(&store, &options, day(3))
        .await
        .unwrap()
        .expect("a variance rule is installed");
    assert_eq!(run.rules, 1, "only the variance rules");
    let episodes = store
        .db
        .alert_episodes(None, Some("invoice-variance"), i64::MIN, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(episodes.len(), 1, "{episodes:?}");
    let episode = &episodes[0];
    assert_eq!(
        episode.labels,
        r#"{"alertname":"invoice-variance","model":"gpt-4o"}"#
    );
    assert_eq!(episode.active_at, day(1));
    assert!((episode.peak - 2.0408).abs() < 0.001, "{}", episode.peak);
    // The summary says the latest day's value.
    assert!(
        episode.annotations.contains("gpt-4o billed -11.5% off"),
        "{}",
        episode.annotations
    );
}

/// A billed-basis close freezes the bill as allocated, names its cost file,
/// exports the bill as FOCUS BilledCost, and is not adjusted by late data.
async fn a_month_closes_on_the_billed_basis(store: TestStore) {
    use tollgate_reports::close::close_month_on;
    use tollgate_reports::trueup::Basis;
    load_reference(&store, sample).await;
    ingest(&store, &sample("traffic.jsonl"), Format::Canonical).await;
    let refused = close_month_on(&store, october(), Basis::Billed)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no cost export"), "{refused}");

    ingest(&store, &sample("focus-costs.csv"), Format::AzureCost).await;
    let closure = close_month_on(&store, october(), Basis::Billed)
        .await
        .unwrap();
    assert_eq!(closure.basis, Basis::Billed);
    assert_eq!(closure.cost_files.len(), 1);
    assert!(closure.cost_files[0].source.ends_with("focus-costs.csv"));
    assert_eq!(closure.total, "482.38025");

    let by = ["subscription".to_owned()];
    let served = tollgate_reports::chargeback::chargeback(&store, october(), &by)
        .await
        .unwrap();
    assert_eq!(served.closed.as_ref().map(|c| c.basis), Some(Basis::Billed));
    assert_eq!(served.total.total_pico(), pico("482.38025"));

    let focus = tollgate_reports::focus::export(&store, october())
        .await
        .unwrap();
    assert_eq!(focus.billed_cost, "482.38025");
    let text = String::from_utf8(focus.csv).unwrap();
    assert!(text.contains("x_tollgate_basis") && text.contains("x_allocation_method"));

    // Traffic logged late for October changes no bill: November adjusts nothing.
    let late = write(
        &store,
        "late.jsonl",
        r#"{"request_id":"late-1","time":"2026-10-02T12:00:00Z","status_code":200,"subscription":"sub-finance","backend":"aoai-eastus2-gpt4o","deployment":"gpt-4o","model":"gpt-4o","prompt_tokens":1000,"cached_tokens":0,"completion_tokens":100}"#,
    );
    ingest(&store, &late, Format::Canonical).await;
    let november = tollgate_reports::chargeback::chargeback(&store, october().next().unwrap(), &by)
        .await
        .unwrap();
    assert_eq!(november.total.adjustment_pico, 0);
}
