//! What servers side by side share: sessions and the background lease.

use tollgate_store::state::StoredSession;
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(
    a_session_is_seen_by_every_handle_until_it_ends_or_expires,
    a_flash_is_taken_once,
    one_holder_at_a_time_and_the_lease_moves_when_it_expires,
);

const NOW: i64 = 1_790_845_200_000_000;

async fn a_session_is_seen_by_every_handle_until_it_ends_or_expires(store: TestStore) {
    let other = store.reopen().await;
    let session = StoredSession {
        key_sha256: "ab".repeat(32),
        csrf: "c".into(),
        expires_at_us: NOW + 10,
    };
    store.db.insert_session("t1", &session, NOW).await.unwrap();
    assert_eq!(
        other.db.session("t1", NOW).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        other.db.session("t1", NOW + 10).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(other.db.session("forged", NOW).await.unwrap(), None);
    other.db.delete_session("t1").await.unwrap();
    assert_eq!(
        store.db.session("t1", NOW).await.unwrap(),
        None,
        "ended everywhere"
    );
    // A new login sweeps sessions already expired.
    store.db.insert_session("old", &session, NOW).await.unwrap();
    store
        .db
        .insert_session("new", &session, NOW + 20)
        .await
        .unwrap();
    assert_eq!(store.db.session("old", 0).await.unwrap(), None, "swept");
}

async fn a_flash_is_taken_once(store: TestStore) {
    store.db.set_session_flash("t", b"one").await.unwrap();
    store.db.set_session_flash("t", b"two").await.unwrap();
    let other = store.reopen().await;
    assert_eq!(
        other.db.take_session_flash("t").await.unwrap(),
        Some(b"two".to_vec())
    );
    assert_eq!(store.db.take_session_flash("t").await.unwrap(), None);
}

async fn one_holder_at_a_time_and_the_lease_moves_when_it_expires(store: TestStore) {
    let db = &store.db;
    assert!(db.acquire_lease("bg", "a", NOW, NOW + 100).await.unwrap());
    assert!(
        !db.acquire_lease("bg", "b", NOW + 50, NOW + 150)
            .await
            .unwrap(),
        "a holds it"
    );
    assert!(
        db.acquire_lease("bg", "a", NOW + 60, NOW + 160)
            .await
            .unwrap(),
        "a renews"
    );
    assert!(
        !db.acquire_lease("bg", "b", NOW + 150, NOW + 250)
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        db.acquire_lease("bg", "b", NOW + 160, NOW + 260)
            .await
            .unwrap(),
        "a died"
    );
    assert!(
        !db.acquire_lease("bg", "a", NOW + 170, NOW + 270)
            .await
            .unwrap(),
        "b holds it"
    );
    db.release_lease("bg", "a").await.unwrap();
    assert!(
        !db.acquire_lease("bg", "a", NOW + 171, NOW + 271)
            .await
            .unwrap(),
        "not a's to release"
    );
    db.release_lease("bg", "b").await.unwrap();
    assert!(
        db.acquire_lease("bg", "a", NOW + 172, NOW + 272)
            .await
            .unwrap(),
        "released"
    );
}
