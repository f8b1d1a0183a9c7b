//! Writers racing each other: a transaction that reads before it writes (a rule
//! change reads the rule it replaces) beside another that commits meanwhile (a
//! background evaluation). On SQLite a deferred transaction then fails with
//! "database is locked"; every write transaction starts `BEGIN IMMEDIATE`, so
//! they queue instead. Also the alert outbox's order and a deleted rule's cuts.

use tollgate_store::state::{
    AlertChanges, AlertEpisode, AlertShed, AlertsRead, EpisodeKey, NewAlertNotification,
};
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(
    read_then_write_transactions_queue_behind_other_writers,
    a_deleted_rule_ends_its_cuts_and_a_resolution_waits_for_its_firing
);

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
            let read = AlertsRead {
                from_us: i,
                to_us: i + 1,
                keep_resolved: false,
            };
            db.apply_alert_changes(&read, |_| AlertChanges::default())
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.db.alert_rules().await.unwrap().len(), 4);
}

fn episode(state: &str, resolved_at: Option<i64>) -> AlertEpisode {
    AlertEpisode {
        rule: "r".into(),
        fingerprint: "f".into(),
        labels: "{}".into(),
        annotations: "{}".into(),
        state: state.parse().unwrap(),
        active_at: 10,
        fired_at: Some(10),
        resolved_at,
        value: 1.0,
        peak: 1.0,
    }
}

async fn a_deleted_rule_ends_its_cuts_and_a_resolution_waits_for_its_firing(store: TestStore) {
    let db = &store.db;
    db.put_alert_rule("r", "{}", "api", "test").await.unwrap();
    let shed = AlertShed {
        rule: "r".into(),
        fingerprint: "f".into(),
        active_at: 10,
        budget_id: 7,
        factor: 0.5,
        started_at: String::new(),
        ended_at: None,
    };
    let read = AlertsRead {
        from_us: 0,
        to_us: 100,
        keep_resolved: false,
    };
    let notify = |e: &AlertEpisode, status: &str| NewAlertNotification {
        episode: EpisodeKey::of(e),
        status: status.parse().unwrap(),
        receiver: "webhook".into(),
        payload: status.into(),
    };
    let firing = episode("firing", None);
    let changes = AlertChanges {
        rules: vec!["r".into()],
        from_us: 0,
        to_us: 100,
        notify: vec![notify(&firing, "firing")],
        upsert: vec![firing],
        episodes: 1,
        start_sheds: vec![shed],
        ..AlertChanges::default()
    };
    let applied = db
        .apply_alert_changes(&read, |stored| {
            assert!(stored.open_before.is_empty() && stored.active_sheds.is_empty());
            changes.clone()
        })
        .await
        .unwrap();
    assert_eq!((applied.notifications, applied.sheds_started.len()), (1, 1));
    let resolved = episode("resolved", Some(50));
    let changes = AlertChanges {
        // The firing is queued already: not a second time.
        notify: vec![notify(&resolved, "firing"), notify(&resolved, "resolved")],
        upsert: vec![resolved],
        start_sheds: Vec::new(),
        ..changes
    };
    let applied = db
        .apply_alert_changes(&read, |stored| {
            assert_eq!(stored.active_sheds.len(), 1, "the cut is in force");
            changes.clone()
        })
        .await
        .unwrap();
    assert_eq!(applied.notifications, 1);
    // The resolution is queued but not due while its firing is undelivered.
    let due = db.due_alert_notifications(10).await.unwrap();
    assert_eq!(
        due.iter().map(|n| n.status.as_str()).collect::<Vec<_>>(),
        ["firing"]
    );
    db.record_alert_attempt(due[0].id, Some(200), None, "delivered", None)
        .await
        .unwrap();
    let due = db.due_alert_notifications(10).await.unwrap();
    assert_eq!(
        due.iter().map(|n| n.status.as_str()).collect::<Vec<_>>(),
        ["resolved"]
    );

    // Deleting the rule ends its cut, in the audit log.
    assert_eq!(db.alert_sheds(true).await.unwrap().len(), 1);
    db.delete_alert_rule("r", "test").await.unwrap();
    assert!(db.alert_sheds(true).await.unwrap().is_empty());
    let audit = db.audit_log(None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "budget.shed.end" && e.target == "budget:7")
    );
}
