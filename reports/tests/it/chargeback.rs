//! A small month priced by hand: a price change mid-month, cached tokens, a PTU
//! hour shared by two consumers, PTU hours without traffic charged to an owner, a
//! client 429 that costs nothing, and spend nobody owns.

use std::sync::Arc;

use tollgate_ingest::{IngestOptions, NoProgress, ingest_file};
use tollgate_reports::chargeback::{
    ChargebackCache, ChargebackRow, DailyCache, chargeback, chargeback_cached, daily, daily_cached,
};
use tollgate_reports::month::Month;
use tollgate_reports::{capacity, ownership, price_book};
use tollgate_store::testing::TestStore;

use crate::write;

tollgate_store::backend_tests!(
    a_hand_priced_month_adds_up_in_every_grouping,
    unpriced_tokens_name_their_causes_and_fixes,
    a_month_without_traffic_is_no_data
);

pub(crate) fn request(
    id: &str,
    time: &str,
    sub: &str,
    backend: &str,
    deployment: &str,
    tokens: (i64, i64, i64),
) -> String {
    let (prompt, cached, completion) = tokens;
    format!(
        r#"{{"request_id":"{id}","time":"{time}","status_code":200,"subscription":"{sub}","backend":"{backend}","deployment":"{deployment}","model":"{deployment}","prompt_tokens":{prompt},"cached_tokens":{cached},"completion_tokens":{completion}}}"#
    )
}

pub(crate) fn october() -> Month {
    Month::new(2026, 10).unwrap()
}

pub(crate) async fn load_reference(store: &TestStore) {
    let prices = "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n\
                  m-payg,GlobalStandard,any,USD,1M,2.00,1.00,8.00,2026-01-01,2026-10-16\n\
                  m-payg,GlobalStandard,any,USD,1M,1.00,0.50,4.00,2026-10-16,\n";
    price_book::import(&store.db, &write(store, "prices.csv", prices))
        .await
        .unwrap();
    let owners = "[cost_centres]\n\"cc-a\" = { name = \"A\" }\n\"cc-b\" = { name = \"B\" }\n\"cc-ops\" = { name = \"Ops\" }\n\
                  [subscriptions]\n\"sub-a\" = \"cc-a\"\n\"sub-b\" = \"cc-b\"\n";
    ownership::import(&store.db, &write(store, "owners.toml", owners))
        .await
        .unwrap();
    let backends = "backend,deployment_type,region\nb-payg,GlobalStandard,eastus2\nb-ptu,ProvisionedManaged,eastus\n";
    capacity::import_backends(&store.db, &write(store, "backends.csv", backends))
        .await
        .unwrap();
    // One PTU at $1 an hour for the first day of October only: $24.
    let ptu = "backend,deployment,ptus,cost_per_ptu_hour,currency,output_token_weight,idle_charged_to,effective_from,effective_to\n\
               b-ptu,m-ptu,1,1.00,USD,4,cc-ops,2026-10-01,2026-10-02\n";
    capacity::import_ptu(&store.db, &write(store, "ptu.csv", ptu))
        .await
        .unwrap();
}

async fn a_hand_priced_month_adds_up_in_every_grouping(store: TestStore) {
    load_reference(&store).await;
    let lines = [
        // Before the price change: 1000 x 2 + 100 x 8 = 2800 per 1M = $0.0028.
        request("r1", "2026-10-10T10:00:00Z", "sub-a", "b-payg", "m-payg", (1000, 0, 100)),
        // After: 1000 x 1 + 1000 cached x 0.5 + 500 x 4 = 3500 per 1M = $0.0035.
        request("r2", "2026-10-20T10:00:00Z", "sub-a", "b-payg", "m-payg", (2000, 1000, 500)),
        // One PTU hour, weights 300 + 100 x 4 = 700 and 100 + 25 x 4 = 200: $1 as 7:2.
        request("r3", "2026-10-01T05:10:00Z", "sub-a", "b-ptu", "m-ptu", (300, 0, 100)),
        request("r4", "2026-10-01T05:40:00Z", "sub-b", "b-ptu", "m-ptu", (100, 0, 25)),
        // Nobody owns sub-c: 1000 x 2 = $0.002 unallocated.
        request("r6", "2026-10-05T09:00:00Z", "sub-c", "b-payg", "m-payg", (1000, 0, 0)),
        // A client 429 never reached a model: it costs nothing.
        r#"{"request_id":"r5","time":"2026-10-05T09:00:00Z","status_code":429,"subscription":"sub-c"}"#.to_owned(),
        // September is not October.
        request("r0", "2026-09-30T23:59:59Z", "sub-a", "b-payg", "m-payg", (1_000_000, 0, 0)),
    ];
    let path = write(&store, "month.jsonl", &(lines.join("\n") + "\n"));
    ingest_file(
        &store,
        &path,
        &IngestOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();

    const PICO: i128 = 1_000_000_000_000;
    let by_cc = chargeback(&store, october(), &["cost_centre".to_owned()])
        .await
        .unwrap();
    let row = |g: &str| -> ChargebackRow {
        by_cc
            .rows
            .iter()
            .find(|r| r.group == [g])
            .cloned()
            .unwrap_or_else(|| panic!("no {g}"))
    };
    // 777_777_777_777.7 and 222_222_222_222.2: the spare pico to the larger remainder.
    assert_eq!(
        (row("cc-a").payg_pico, row("cc-a").ptu_pico),
        (6_300_000_000, 777_777_777_778)
    );
    assert_eq!(
        (row("cc-b").payg_pico, row("cc-b").ptu_pico),
        (0, 222_222_222_222)
    );
    assert_eq!(
        row("cc-ops").idle_pico,
        23 * PICO,
        "23 hours without traffic"
    );
    assert_eq!(
        (row("unallocated").payg_pico, row("unallocated").requests),
        (2_000_000_000, 2)
    );
    let total = by_cc.total.total_pico();
    assert_eq!(total, 24 * PICO + 8_300_000_000);
    assert_eq!(by_cc.total.requests, 6);
    assert_eq!(by_cc.total.unpriced_tokens, 0);

    for by in [
        vec!["model"],
        vec!["subscription", "deployment_type"],
        vec!["region", "agent", "cost_centre"],
        vec![],
    ] {
        let by: Vec<String> = by.into_iter().map(str::to_owned).collect();
        let report = chargeback(&store, october(), &by).await.unwrap();
        let sum: i128 = report.rows.iter().map(ChargebackRow::total_pico).sum();
        assert_eq!(sum, total, "grouped by {by:?}");
        assert_eq!(report.total.total_pico(), total);
    }

    // A cached report is reused only while nothing it was computed from changes.
    let cache = ChargebackCache::default();
    let by = vec!["cost_centre".to_owned()];
    let cached = chargeback_cached(&store, &cache, october(), &by)
        .await
        .unwrap();
    assert_eq!(cached.total.total_pico(), total);
    let version = store.db.inputs_version().await.unwrap();
    let late = write(
        &store,
        "late.jsonl",
        &(request(
            "r7",
            "2026-10-06T09:00:00Z",
            "sub-c",
            "b-payg",
            "m-payg",
            (1000, 0, 0),
        ) + "\n"),
    );
    ingest_file(
        &store,
        &late,
        &IngestOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert!(store.db.inputs_version().await.unwrap() > version);
    let fresh = chargeback_cached(&store, &cache, october(), &by)
        .await
        .unwrap();
    assert_eq!(fresh.total.total_pico(), total + 2_000_000_000);

    daily_spend_adds_up_to_the_month(&store, total + 2_000_000_000).await;

    let err = chargeback(&store, october(), &["colour".to_owned()])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot group by \"colour\""),
        "{err}"
    );
}

/// The days of the month add up to its total once the idle PTU hours nobody
/// used (charged to their owner, on no day) are added.
async fn daily_spend_adds_up_to_the_month(store: &TestStore, total: i128) {
    let by = ["cost_centre".to_owned(), "model".to_owned()];
    let spend = daily(store, october(), &by).await.unwrap();
    let dated: i128 = spend.days.iter().map(|(_, r)| r.total_pico()).sum();
    let undated: i128 = spend.undated.iter().map(ChargebackRow::total_pico).sum();
    assert_eq!(dated + undated, total);
    // The PTU reservation's 23 unused hours of 1 October, $1 each, to cc-ops.
    assert_eq!(undated, 23 * 1_000_000_000_000);
    assert_eq!(spend.undated[0].group, ["cc-ops", "m-ptu"]);
    let days: Vec<&str> = spend.days.iter().map(|(d, _)| d.as_str()).collect();
    assert!(days.windows(2).all(|w| w[0] <= w[1]), "{days:?}");
    let on = |day: &str, cc: &str| -> i128 {
        spend
            .days
            .iter()
            .filter(|(d, r)| d == day && r.group[0] == cc)
            .map(|(_, r)| r.total_pico())
            .sum()
    };
    // r1 before the price change, r2 after it.
    assert_eq!(on("2026-10-10", "cc-a"), 2_800_000_000);
    assert_eq!(on("2026-10-20", "cc-a"), 3_500_000_000);
    assert_eq!(on("2026-09-30", "cc-a"), 0);
    // Kept while the inputs stay the same; computed again once they move.
    let cache = DailyCache::default();
    let first = daily_cached(store, &cache, october(), &by).await.unwrap();
    let again = daily_cached(store, &cache, october(), &by).await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again));
    let version = store.db.inputs_version().await.unwrap();
    load_reference(store).await;
    assert!(store.db.inputs_version().await.unwrap() > version);
    let fresh = daily_cached(store, &cache, october(), &by).await.unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &fresh));
    assert_eq!(fresh.days.len(), first.days.len());
    let err = daily(store, october(), &["colour".to_owned()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot group by"), "{err}");
}

async fn unpriced_tokens_name_their_causes_and_fixes(store: TestStore) {
    use tollgate_reports::unpriced::{Cause, unpriced};
    load_reference(&store).await;
    let lines = [
        // A backend backends.csv does not list.
        request(
            "u1",
            "2026-10-03T10:00:00Z",
            "sub-a",
            "b-new",
            "m-payg",
            (1000, 0, 0),
        ),
        // A model the price book has no row for.
        request(
            "u2",
            "2026-10-04T10:00:00Z",
            "sub-a",
            "b-payg",
            "m-other",
            (200, 0, 100),
        ),
        // Provisioned traffic after the reservation's one day.
        request(
            "u3",
            "2026-10-05T10:00:00Z",
            "sub-a",
            "b-ptu",
            "m-ptu",
            (50, 0, 0),
        ),
        // Priced: no cause.
        request(
            "u4",
            "2026-10-05T10:00:00Z",
            "sub-a",
            "b-payg",
            "m-payg",
            (10, 0, 0),
        ),
    ];
    let path = write(&store, "unpriced.jsonl", &(lines.join("\n") + "\n"));
    ingest_file(
        &store,
        &path,
        &IngestOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let report = chargeback(&store, october(), &["cost_centre".to_owned()])
        .await
        .unwrap();
    assert_eq!(report.total.unpriced_tokens, 1350);
    let causes = unpriced(&store, october()).await.unwrap();
    let found: Vec<(Cause, i64, Option<&str>, Option<&str>)> = causes
        .iter()
        .map(|u| (u.cause, u.tokens, u.backend.as_deref(), u.model.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (Cause::UnknownBackend, 1000, Some("b-new"), None),
            (Cause::NoPriceRow, 300, None, Some("m-other")),
            (Cause::NoReservation, 50, Some("b-ptu"), None),
        ]
    );
    // Every unpriced token has its cause.
    assert_eq!(causes.iter().map(|u| u.tokens).sum::<i64>(), 1350);
}

async fn a_month_without_traffic_is_no_data(store: TestStore) {
    use arrow::array::{Array, AsArray};
    // October holds a reservation's day (idle, $24) but no traffic.
    load_reference(&store).await;
    let by = ["cost_centre".to_owned()];
    let october_report = chargeback(&store, october(), &by).await.unwrap();
    assert!(!october_report.has_data);
    assert!(october_report.rows.is_empty(), "{:?}", october_report.rows);
    assert_eq!(october_report.total.total_pico(), 0);
    // November's traffic has no October to compare with: not -100%, not $24.
    let line = request(
        "n1",
        "2026-11-03T10:00:00Z",
        "sub-a",
        "b-payg",
        "m-payg",
        (1000, 0, 0),
    );
    let path = write(&store, "november.jsonl", &(line + "\n"));
    ingest_file(
        &store,
        &path,
        &IngestOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let november = chargeback(&store, october().next().unwrap(), &by)
        .await
        .unwrap();
    assert!(november.has_data);
    assert!(!november.previous_has_data);
    assert_eq!(november.total.previous_total_pico, 0);
    let (_, table) = tollgate_reports::table::chargeback_table(&november).unwrap();
    for column in ["previous_month_total", "change_pct"] {
        let values = table.column_by_name(column).unwrap().as_string::<i32>();
        assert_eq!(values.null_count(), values.len(), "{column}");
    }
}
