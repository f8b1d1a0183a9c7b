//! App Insights token metrics: their own table, overlapping exports add nothing,
//! and their totals reconcile with the per-request counts of the same requests.

use std::sync::Arc;

use tollgate_ingest::{Format, IngestOptions, NoProgress, ingest_file};
use tollgate_store::testing::TestStore;

use crate::helpers::{csv_of, sample, scalar};

tollgate_store::backend_tests!(token_metrics_reconcile_with_the_requests_they_count);

async fn token_metrics_reconcile_with_the_requests_they_count(store: TestStore) {
    let auto = IngestOptions {
        format: Format::Auto,
        ..IngestOptions::default()
    };
    let ingest = |name: &'static str| {
        let store = store.store.clone();
        let options = auto.clone();
        async move {
            ingest_file(&store, &sample(name), &options, Arc::new(NoProgress))
                .await
                .unwrap()
        }
    };
    let c = ingest("appinsights-token-metrics.csv").await.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (9, 9, 0, 0)
    );
    // The same metrics exported again as JSON, dimensions reordered: nothing new.
    let c = ingest("appinsights-token-metrics.json").await.counts;
    assert_eq!((c.read, c.written, c.duplicate), (9, 0, 9));
    // Pre-aggregated: they never become requests or token usage.
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM requests").await, 0);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM token_usage").await, 0);

    ingest("apim-gateway-logs.jsonl").await;
    ingest("apim-llm-logs.json").await;
    let reconciliation = csv_of(
        &store,
        "SELECT m.subscription, m.metric_total, u.request_total FROM \
         (SELECT subscription, CAST(SUM(value) AS BIGINT) AS metric_total FROM token_metrics \
          WHERE metric = 'total' GROUP BY subscription) m \
         JOIN (SELECT subscription, CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT) AS request_total \
          FROM usage GROUP BY subscription) u USING (subscription) ORDER BY subscription",
    )
    .await;
    assert_eq!(
        reconciliation,
        "subscription,metric_total,request_total\nsub-finance-gold,32280,32280\nsub-hr-silver,715,715\n"
    );
}
