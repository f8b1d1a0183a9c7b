//! Writers racing each other: a transaction that reads before it writes (a rule
//! change reads the rule it replaces) beside another that commits meanwhile (a
//! background evaluation). On SQLite a deferred transaction then fails with
//! "database is locked"; every write transaction starts `BEGIN IMMEDIATE`, so
//! they queue instead.

use tollgate_store::state::AlertEvaluation;
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(read_then_write_transactions_queue_behind_other_writers);

async fn read_then_write_transactions_queue_behind_other_writers(store: TestStore) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = store.db.clone();
        tasks.push(tokio::spawn(async move {
            let spec = format!("{{\"name\":\"r{}\"}}", i % 4);
            db.put_alert_rule(&format!("r{}", i % 4), &spec, "api", "test")
                .await
                .map(|_| ())
        }));
        let db = store.db.clone();
        tasks.push(tokio::spawn(async move {
            let evaluation = AlertEvaluation {
                from_us: i,
                to_us: i + 1,
                ..AlertEvaluation::default()
            };
            db.apply_alert_evaluation(&evaluation, |_, _, _| String::new())
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.db.alert_rules().await.unwrap().len(), 4);
}
