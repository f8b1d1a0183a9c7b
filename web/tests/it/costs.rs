//! The provider's bill over HTTP: a cost export put as one batch by FinOps,
//! the month's reconciliation against the estimate, the chargeback on the
//! invoice's basis, and the FinOps page's Invoice section, on the hand-checked
//! inputs of `fixtures/samples/reconcile` (its EXPECTED.md gives every number).

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::Value;
use tollgate_store::rate::parse_pico_wide;
use tollgate_store::testing::TestStore;
use tollgate_web::Role::{self, *};
use tollgate_web::ServerConfig;

use crate::helpers::{TestApp, requests, test_config};
use crate::pages::Browser;

const MONTH: &str = "2026-10";

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/samples/reconcile")
        .join(name)
}

fn focus_costs() -> Vec<u8> {
    std::fs::read(sample("focus-costs.csv")).unwrap()
}

/// The estate's prices, backends (with their resource ids) and PTU reservation.
async fn reference(store: &TestStore) {
    let db = &store.db;
    tollgate_reports::price_book::import(db, &sample("prices.csv"))
        .await
        .unwrap();
    tollgate_reports::capacity::import_backends(db, &sample("backends.csv"))
        .await
        .unwrap();
    tollgate_reports::capacity::import_ptu(db, &sample("ptu-reservations.csv"))
        .await
        .unwrap();
}

/// The reference data loaded, a server over it on October 3rd, and the
/// month's traffic pushed and derived.
async fn estate(mut store: TestStore, config: ServerConfig) -> TestApp {
    reference(&store).await;
    // Just after the two days: the chargeback's estimate holds their PTU
    // hours, not the whole month's (EXPECTED.md's 482.298).
    store.store.clock = tollgate_store::Clock::fixed(crate::helpers::at("2026-10-03T00:00:00Z"));
    let app = TestApp::spawn_with(store, config).await;
    let traffic = std::fs::read_to_string(sample("traffic.jsonl")).unwrap();
    let pushed = app.push_ok(&traffic).await;
    assert_eq!(pushed["counts"]["written"], 18, "{pushed}");
    app
}

async fn put_costs(app: &TestApp, role: Option<Role>, body: Vec<u8>) -> reqwest::Response {
    let mut request = app
        .client
        .put(app.url("/api/v1/costs"))
        .header("content-type", "text/csv")
        .body(body);
    if let Some(role) = role {
        request = request.bearer_auth(app.key(role));
    }
    request.send().await.unwrap()
}

/// Puts the sample FOCUS export as `role`; its ingest report.
async fn put_focus(app: &TestApp, role: Role) -> Value {
    let response = put_costs(app, Some(role), focus_costs()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    app.derived(report["watermark"].as_i64().unwrap()).await;
    report
}

async fn reconcile_json(app: &TestApp, month: &str) -> Value {
    let response = app
        .get(&format!("/api/v1/reports/reconcile?month={month}"), Finops)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{month}");
    response.json().await.unwrap()
}

async fn text(app: &TestApp, path: &str) -> String {
    let response = app.get(path, Finops).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

/// A CSV without quoted commas: (header, rows).
fn csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<String>>());
    let header = lines.next().unwrap();
    (header, lines.collect())
}

/// `column` of the row whose first cell is `first`.
fn cell<'a>(table: &'a (Vec<String>, Vec<Vec<String>>), first: &str, column: &str) -> &'a str {
    let (header, rows) = table;
    let at = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    let row = rows
        .iter()
        .find(|r| r[0] == first)
        .unwrap_or_else(|| panic!("no row {first} in {rows:?}"));
    &row[at]
}

fn pico(v: &Value) -> i128 {
    parse_pico_wide(v.as_str().unwrap_or_else(|| panic!("{v} is no amount"))).unwrap()
}

pub async fn a_cost_export_is_put_and_reconciled_to_the_hand_checked_numbers(store: TestStore) {
    let app = estate(store, test_config()).await;

    // Before any bill: nothing billed, the whole month compared.
    let before = reconcile_json(&app, MONTH).await;
    assert_eq!(before["total"]["billed"], "0", "{before}");
    assert_eq!(before["cost_files"], serde_json::json!([]));
    assert_eq!(
        before["period"],
        serde_json::json!(["2026-10-01", "2026-10-31"])
    );

    // The FOCUS export: 12 lines, one quarantined (BilledCost "abc").
    let first = put_focus(&app, Finops).await;
    assert_eq!(first["outcome"], "committed", "{first}");
    let counts = &first["counts"];
    assert_eq!(
        (
            counts["read"].as_i64(),
            counts["written"].as_i64(),
            counts["duplicate"].as_i64(),
            counts["quarantined"].as_i64()
        ),
        (Some(12), Some(11), Some(0), Some(1)),
        "{first}"
    );
    assert!(
        first["source"].as_str().unwrap().starts_with("costs/"),
        "{first}"
    );
    // The same body again changes nothing.
    let again = put_focus(&app, Finops).await;
    assert_eq!(again["outcome"], "already_ingested", "{again}");
    assert_eq!(again["batch_id"], first["batch_id"]);

    // The totals EXPECTED.md works out by hand.
    let report = reconcile_json(&app, MONTH).await;
    let total = &report["total"];
    assert_eq!(total["billed"], "482.38025", "{total}");
    assert_eq!(total["estimated"], "482.298", "{total}");
    let causes = &total["causes"];
    for (cause, amount) in [
        ("discount", "-12.54775"),
        ("commitment", "0"),
        ("unlogged_tokens", "2.5"),
        ("unbilled_tokens", "-0.11"),
        ("rate_difference", "0.04"),
        ("ptu_hours", "10"),
        ("unmapped_meter", "0.2"),
        ("unmapped_resource", "0"),
    ] {
        assert_eq!(causes[cause], amount, "{cause}: {causes}");
    }
    let explained: i128 = causes.as_object().unwrap().values().map(pico).sum();
    let variance = pico(&total["billed"]) - pico(&total["estimated"]);
    assert_eq!(variance, parse_pico_wide("0.08225").unwrap());
    assert_eq!(variance - explained, 0, "the residual is zero");
    // The rate difference names the price-book row to fix.
    let price_rows = total["price_rows"].as_array().unwrap();
    assert!(
        !price_rows.is_empty()
            && price_rows
                .iter()
                .all(|r| r.as_str().unwrap().contains("prices.csv")),
        "{total}"
    );
    // One cost file however often it was put; the days it covers.
    let files = report["cost_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{report}");
    assert_eq!(files[0]["batch_id"], first["batch_id"]);
    assert_eq!(
        report["period"],
        serde_json::json!(["2026-10-01", "2026-10-02"])
    );
    assert_eq!(report["currency"], "USD");
    assert_eq!(report["warnings"], serde_json::json!([]));
    let rows = report["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["group"].as_array().unwrap().len() == 3),
        "grouped by resource, model and token kind"
    );

    // The table as CSV, to the cent, with its TOTAL row.
    let table = csv(&text(
        &app,
        &format!("/api/v1/reports/reconcile?month={MONTH}&format=csv"),
    )
    .await);
    assert_eq!(
        table.0[..3],
        ["resource", "model", "token_kind"],
        "{:?}",
        table.0
    );
    assert_eq!(cell(&table, "TOTAL", "billed"), "482.38");
    assert_eq!(cell(&table, "TOTAL", "estimated"), "482.30");
    assert_eq!(cell(&table, "TOTAL", "variance"), "0.08");
    assert_eq!(cell(&table, "TOTAL", "residual"), "0.00");
    let by_day = csv(&text(
        &app,
        &format!("/api/v1/reports/reconcile?month={MONTH}&by=day&format=csv"),
    )
    .await);
    assert_eq!(by_day.1.len(), 3, "two days and the total: {:?}", by_day.1);
    for (query, what) in [
        ("by=colour", "by"),
        ("format=xml", "format"),
        ("month=October", "month"),
    ] {
        let path = if query.starts_with("month") {
            format!("/api/v1/reports/reconcile?{query}")
        } else {
            format!("/api/v1/reports/reconcile?month={MONTH}&{query}")
        };
        let response = app.get(&path, Finops).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    }

    // The true-up: the bill allocated by usage, equal to it to the cent.
    let billed = csv(&text(
        &app,
        &format!(
            "/api/v1/reports/chargeback?month={MONTH}&basis=billed&by=subscription&format=csv"
        ),
    )
    .await);
    assert_eq!(billed.0[0], "subscription");
    assert_eq!(cell(&billed, "sub-finance", "total"), "120.75");
    assert_eq!(cell(&billed, "sub-research", "total"), "361.38");
    assert_eq!(
        cell(&billed, tollgate_reports::trueup::UNATTRIBUTED, "total"),
        "0.25"
    );
    assert_eq!(cell(&billed, "TOTAL", "total"), "482.38");
    assert_eq!(billed.1.len(), 4, "{:?}", billed.1);
    // The estimate stays the default basis: the whole month, whose PTU
    // reservation is held on all its 31 days (29 more than the export covers).
    let estimated = csv(&text(
        &app,
        &format!("/api/v1/reports/chargeback?month={MONTH}&by=subscription&format=csv"),
    )
    .await);
    assert_eq!(cell(&estimated, "TOTAL", "total"), "7442.30");
    let bogus = app
        .get(
            &format!("/api/v1/reports/chargeback?month={MONTH}&basis=bogus"),
            Finops,
        )
        .await;
    assert_eq!(bogus.status(), StatusCode::BAD_REQUEST);
    assert!(bogus.text().await.unwrap().contains("basis"));

    // A month no export covers: nothing billed, on either report.
    let september = reconcile_json(&app, "2026-09").await;
    assert_eq!(september["total"]["billed"], "0", "{september}");
    assert_eq!(september["cost_files"], serde_json::json!([]));
    let nothing = csv(&text(
        &app,
        "/api/v1/reports/chargeback?month=2026-09&basis=billed&by=subscription&format=csv",
    )
    .await);
    assert_eq!(cell(&nothing, "TOTAL", "total"), "0.00");
    app.stop().await;
}

pub async fn cost_imports_are_finops_work_and_refuse_what_is_no_cost_export(store: TestStore) {
    let config = ServerConfig {
        max_ingest_bytes: 64 << 10,
        ..test_config()
    };
    let app = estate(store, config).await;
    let reconcile = format!("/api/v1/reports/reconcile?month={MONTH}");

    // Only FinOps and admins put the bill or read its reconciliation.
    for role in [Operator, Security, Gateway, Ingest] {
        let response = put_costs(&app, Some(role), focus_costs()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role:?}");
        let response = app.get(&reconcile, role).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role:?}");
    }
    let response = put_costs(&app, None, focus_costs()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app.client.get(app.url(&reconcile)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // An empty body, and one past the bound.
    let empty = put_costs(&app, Some(Finops), Vec::new()).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert!(empty.text().await.unwrap().contains("empty"));
    let huge = put_costs(&app, Some(Finops), vec![b'x'; 65 << 10]).await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = huge.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");

    // And the bill is not pushed as logs, named or detected.
    for query in ["?format=azure-cost", ""] {
        let response = app
            .client
            .post(app.url(&format!("/api/v1/ingest{query}")))
            .bearer_auth(app.key(Ingest))
            .body(focus_costs())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{query}"
        );
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains("PUT /api/v1/costs"),
            "{answer}"
        );
    }

    // Gateway logs are no cost export: refused whole, saying what one is.
    let logs = requests("r", "2026-10-01T00:00:00Z", "sub-a", 3, 10, 10);
    let response = put_costs(&app, Some(Finops), logs.into_bytes()).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let answer: Value = response.json().await.unwrap();
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("not a cost export") && message.contains("BilledCost"),
        "{answer}"
    );
    // Broken or hostile bodies: a clear 4xx or lines quarantined, never a 5xx.
    let hostile: [&[u8]; 7] = [
        b"PAR1\x00\x00\x00\x00not parquet at allPAR1",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab",
        b"\xff\xfe\x00\x01binary\x00\x00",
        b"-5.27e16",
        b"BilledCost,ChargePeriodStart\n",
        b"BilledCost,ChargePeriodStart\n1,not-a-date\n\"unterminated,2026-10-01\n",
        b"CostInBillingCurrency,MeterName,Date\n1e400,gpt-4o 0806 Inp glbl 1M Tokens,10/01/2026\n",
    ];
    for body in hostile {
        let response = put_costs(&app, Some(Finops), body.to_vec()).await;
        let status = response.status();
        let answer = response.text().await.unwrap();
        let shown = String::from_utf8_lossy(body);
        assert!(
            status == StatusCode::OK || status.is_client_error(),
            "{shown:?}: {status} {answer}"
        );
        if status == StatusCode::OK {
            let answer: Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(answer["counts"]["written"], 0, "{shown:?}: {answer}");
        }
    }
    let report = reconcile_json(&app, MONTH).await;
    assert_eq!(report["total"]["billed"], "0", "{report}");
    assert_eq!(report["cost_files"], serde_json::json!([]), "{report}");
    let lines = app
        .store
        .billed_lines(0, i64::MAX)
        .await
        .unwrap_or_default();
    assert!(lines.is_empty(), "{lines:?}");

    // An admin may put it too.
    let report = put_focus(&app, Admin).await;
    assert_eq!(report["counts"]["written"], 11, "{report}");
    let report = reconcile_json(&app, MONTH).await;
    assert_eq!(report["total"]["billed"], "482.38025");
    app.stop().await;
}

/// The page's element marked `testid`: up to the end of its row, stat or paragraph.
fn marked<'a>(html: &'a str, testid: &str) -> &'a str {
    let mark = format!("data-testid=\"{testid}\"");
    let at = html
        .find(&mark)
        .unwrap_or_else(|| panic!("no {mark} on the page"));
    let rest = &html[at..];
    let end = ["</tr>", "</div></div>", "</p>"]
        .iter()
        .filter_map(|e| rest.find(e))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

pub async fn the_finops_page_shows_the_invoice_once_a_cost_export_is_imported(store: TestStore) {
    let app = estate(store, test_config()).await;
    let mut finops = Browser::new(&app);
    finops.login(Finops).await;
    let page = format!("/finops?month={MONTH}");

    // No export yet: the section says so, and how to import one.
    let html = finops.page(&page).await;
    assert!(html.contains("data-testid=\"invoice\""), "{html}");
    let none = marked(&html, "no-invoice");
    assert!(
        none.contains("tollgate costs import FILE") && none.contains("PUT /api/v1/costs"),
        "{none}"
    );
    assert!(!html.contains("data-testid=\"invoice-billed\""));

    let imported = put_focus(&app, Finops).await;
    let html = finops.page(&page).await;
    assert!(!html.contains("data-testid=\"no-invoice\""), "{html}");
    let check = |testid: &str, expect: &str| {
        let part = marked(&html, testid);
        assert!(part.contains(expect), "{testid}: {expect} not in {part}");
    };
    check("invoice-billed", "$482.38");
    check("invoice-estimated", "$482.30");
    check("invoice-variance", "$0.08");
    check("cause-unlogged_tokens", "$2.50");
    check("cause-unbilled_tokens", "-$0.11");
    check("cause-rate_difference", "$0.04");
    check("cause-ptu_hours", "$10.00");
    check("cause-discount", "-$12.55");
    check("cause-commitment", "$0.00");
    check("cause-unmapped_meter", "$0.20");
    check("cause-unmapped_resource", "$0.00");
    check("cause-residual", "$0.00");
    check("cause-variance", "$0.08");
    assert!(
        html.contains("from 2026-10-01 to 2026-10-02"),
        "the period compared"
    );
    let source = imported["source"].as_str().unwrap();
    check(
        "cost-files",
        &format!("batch {}: {source}", imported["batch_id"]),
    );
    let report = reconcile_json(&app, MONTH).await;
    for row in report["total"]["price_rows"].as_array().unwrap() {
        check("price-rows", row.as_str().unwrap());
    }
    assert!(html.contains(&format!(
        "href=\"/api/v1/reports/reconcile?month={MONTH}&amp;format=csv\""
    )));
    assert!(html.contains(&format!(
        "href=\"/api/v1/reports/chargeback?month={MONTH}&amp;basis=billed&amp;by=cost_centre&amp;format=csv\""
    )));
    // The month before has no export.
    let september = finops.page("/finops?month=2026-09").await;
    assert!(september.contains("data-testid=\"no-invoice\""));
    app.stop().await;
}
