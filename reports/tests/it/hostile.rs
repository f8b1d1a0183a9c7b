//! A lake already holding values no ingest accepts now (written before the
//! bounds, or by another tool) must not stop the reports: rows dated 0001 or
//! 9999 are left out, counts near `i64::MAX` saturate instead of overflowing.

use chrono::DateTime;
use tollgate_ingest::record::{LakeBuffers, RequestRecord, TokenRecord};
use tollgate_reports::month::Month;
use tollgate_store::schema::{REQUESTS, TOKEN_USAGE};
use tollgate_store::state::{BatchCommit, BatchCounts, RollupRow, UsageRollup};
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(reports_answer_over_a_lake_with_absurd_values);

fn at(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
}

/// Commits one batch of these rows straight into the lake, past ingest's checks.
async fn commit_raw(store: &TestStore, requests: &[RequestRecord], tokens: &[TokenRecord]) {
    let batch_id = store
        .db
        .begin_batch("raw", "raw", "canonical")
        .await
        .unwrap();
    let mut buffers = LakeBuffers::default();
    requests.iter().for_each(|r| buffers.push_request(r));
    tokens.iter().for_each(|t| buffers.push_tokens(t));
    let mut files = Vec::new();
    for (table, day, batch) in buffers.drain(batch_id).unwrap() {
        let date = DateTime::from_timestamp(day * 86_400, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string();
        files.push(
            store
                .lake
                .write_file(table, &date, batch_id, &batch)
                .unwrap(),
        );
    }
    assert!(files.iter().any(|f| f.table_name == REQUESTS));
    assert!(files.iter().any(|f| f.table_name == TOKEN_USAGE));
    let rows = (requests.len() + tokens.len()) as i64;
    let commit = BatchCommit {
        batch_id,
        counts: BatchCounts {
            read: rows,
            written: rows,
            ..BatchCounts::default()
        },
        files,
        watermark: store.db.manifest_watermark().await.unwrap(),
    };
    store.db.commit_batch(&commit).await.unwrap();
}

fn request(id: &str, time: &str) -> RequestRecord {
    RequestRecord {
        time_us: at(time),
        request_id: id.into(),
        subscription: Some("sub-a".into()),
        status_code: 200,
        ..Default::default()
    }
}

fn tokens(id: &str, time: &str, prompt: i64) -> TokenRecord {
    TokenRecord {
        time_us: at(time),
        request_id: id.into(),
        model: Some("gpt-4o".into()),
        prompt_tokens: prompt,
        ..Default::default()
    }
}

async fn reports_answer_over_a_lake_with_absurd_values(store: TestStore) {
    let huge = 9_223_372_036_854_775_000;
    commit_raw(
        &store,
        &[
            request("ancient", "0001-01-01T00:00:00Z"),
            request("far", "9999-12-31T00:00:00Z"),
            request("big-1", "2026-10-01T10:00:00Z"),
            request("big-2", "2026-10-01T10:00:01Z"),
        ],
        &[
            tokens("ancient", "0001-01-01T00:00:00Z", 5),
            tokens("big-1", "2026-10-01T10:00:00Z", huge),
            tokens("big-2", "2026-10-01T10:00:01Z", huge),
        ],
    )
    .await;
    // An hour a line dated 2030 left in the rollups before ingest bounded times.
    let future = at("2030-01-01T00:00:00Z");
    let row = RollupRow {
        usage: UsageRollup {
            hour_us: future,
            requests: 1,
            ..UsageRollup::default()
        },
        ..RollupRow::default()
    };
    let watermark = store.db.manifest_watermark().await.unwrap();
    store
        .store_hours(&[future], vec![row], Vec::new(), future, watermark)
        .await
        .unwrap();
    assert_eq!(store.db.latest_rollup_hour().await.unwrap(), Some(future));
    // The rollups are owed: the reader (the CLI, a server's deriver) catches
    // them up first, and the reports answer from what that derived.
    let caught_up = store.catch_up_rollups().await.unwrap();
    assert_eq!(caught_up.batches, 1);
    let month = Month::new(2026, 10).unwrap();
    let by = vec!["subscription".to_owned()];
    let report = tollgate_reports::chargeback::chargeback(&store, month, &by)
        .await
        .unwrap();
    assert_eq!(report.total.requests, 2);
    assert_eq!(report.total.prompt_tokens, i64::MAX);
    tollgate_reports::sla::sla(&store, month, &by, &tollgate_reports::sla::slo_of(&[]))
        .await
        .unwrap();
    tollgate_reports::focus::export(&store, month)
        .await
        .unwrap();
    tollgate_reports::chargeback::daily(&store, month, &by)
        .await
        .unwrap();
    tollgate_reports::alerts::install_rules(&store, &[])
        .await
        .unwrap();
    tollgate_reports::alerts::evaluate_live(&store, &Default::default(), false)
        .await
        .unwrap();
    let cache = tollgate_reports::chargeback::ChargebackCache::default();
    tollgate_reports::budget_eval::evaluate(&store, &cache)
        .await
        .unwrap();
    // The files holding what was left out are named.
    let faults = store.lake_faults().await.unwrap();
    assert_eq!(faults.len(), 3, "{faults:?}");
    assert!(
        faults.iter().any(|f| f.contains("date=0001-01-01")),
        "{faults:?}"
    );
    assert!(
        faults.iter().any(|f| f.contains("date=9999-12-31")),
        "{faults:?}"
    );
    // Only the accepted window was rolled up (no hour of 0001 or 9999), and
    // the 2030 hour is gone.
    assert_eq!(
        store.db.latest_rollup_hour().await.unwrap(),
        Some(at("2026-10-01T10:00:00Z"))
    );
    let hours = store.rollups(i64::MIN, i64::MAX).await.unwrap();
    assert!(
        hours
            .iter()
            .all(|r| r.usage.hour_us == at("2026-10-01T10:00:00Z"))
    );
}
