//! Idempotency-Key claims: one push per key and key holder, answered once,
//! released on failure, taken over when their push died.

use chrono::{Duration, Utc};
use tollgate_store::state::IdempotencyClaim;
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(a_key_is_claimed_once_per_holder_and_answered_once);

async fn a_key_is_claimed_once_per_holder_and_answered_once(store: TestStore) {
    let db = &store.db;
    let now = Utc::now();
    // Each claim's token is its body's sha: enough to tell the pushes apart here.
    let claim = |who: &'static str, sha: &'static str, at| async move {
        db.claim_idempotency_key(who, "k", sha, sha, at, at - Duration::minutes(10))
            .await
            .unwrap()
    };
    // step 1: the first claim wins; a second, of either body, sees it in flight.
    assert_eq!(claim("key:1", "aa", now).await, IdempotencyClaim::Claimed);
    assert_eq!(
        claim("key:1", "bb", now).await,
        IdempotencyClaim::InFlight {
            body_sha256: "aa".into()
        }
    );
    // step 2: another key holder's key of the same name is its own.
    assert_eq!(claim("key:2", "bb", now).await, IdempotencyClaim::Claimed);
    // step 3: answered once, by the push holding the claim; the answer is
    // what later claims find.
    db.answer_idempotency_key("key:1", "k", "bb", "{\"batch_id\":9}")
        .await
        .unwrap();
    db.answer_idempotency_key("key:1", "k", "aa", "{\"batch_id\":1}")
        .await
        .unwrap();
    db.answer_idempotency_key("key:1", "k", "aa", "{\"batch_id\":2}")
        .await
        .unwrap();
    assert_eq!(
        claim("key:1", "aa", now).await,
        IdempotencyClaim::Answered {
            body_sha256: "aa".into(),
            response: "{\"batch_id\":1}".into()
        }
    );
    // step 4: a failed push releases its claim (not another's); an answered
    // one keeps it.
    db.release_idempotency_key("key:2", "k", "other")
        .await
        .unwrap();
    assert!(matches!(
        claim("key:2", "bb", now).await,
        IdempotencyClaim::InFlight { .. }
    ));
    db.release_idempotency_key("key:2", "k", "bb")
        .await
        .unwrap();
    db.release_idempotency_key("key:1", "k", "aa")
        .await
        .unwrap();
    assert_eq!(claim("key:2", "cc", now).await, IdempotencyClaim::Claimed);
    assert!(matches!(
        claim("key:1", "aa", now).await,
        IdempotencyClaim::Answered { .. }
    ));
    // step 5: a claim whose push died is taken over by the same body only.
    let later = now + Duration::minutes(11);
    assert!(matches!(
        claim("key:2", "dd", later).await,
        IdempotencyClaim::InFlight { .. }
    ));
    assert_eq!(claim("key:2", "cc", later).await, IdempotencyClaim::Claimed);
}
