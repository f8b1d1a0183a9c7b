//! The same lake story on local disk, Azure Blob (Azurite in CI) and S3 (moto
//! in CI), each on SQLite and Postgres: files are visible once committed and
//! read through DataFusion, garbage is collected, and every fact table is a
//! Delta table whose log adds exactly the committed files, once, even after a
//! crash between a manifest commit and its Delta commit.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;
use tollgate_store::LakeUrl;
use tollgate_store::delta::{APP_ID, read_head};
use tollgate_store::schema::{LAKE_TABLES, REQUESTS};
use tollgate_store::testing::{AZURE_LAKE_VAR, S3_LAKE_VAR, TestStore, object_lake};

use crate::commit::{count, write_and_commit, write_uncommitted};

/// Declares `story` for each lake and state backend.
macro_rules! lake_matrix {
    ($($story:ident),* $(,)?) => {
        mod local { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$story(super::TestStore::sqlite().await).await; }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(s) = super::TestStore::postgres().await { super::$story(s).await; }
            }
        )* }
        mod azure { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::on(super::AZURE_LAKE_VAR, false, super::$story).await; }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::on(super::AZURE_LAKE_VAR, true, super::$story).await; }
        )* }
        mod s3 { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::on(super::S3_LAKE_VAR, false, super::$story).await; }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::on(super::S3_LAKE_VAR, true, super::$story).await; }
        )* }
    };
}

lake_matrix!(the_lake_story);

async fn on<F: std::future::Future<Output = ()>>(
    var: &str,
    postgres: bool,
    story: impl FnOnce(TestStore) -> F,
) {
    let Some(url) = object_lake(var) else { return };
    let store = if postgres {
        match TestStore::postgres_on(Some(url)).await {
            Some(store) => store,
            None => return,
        }
    } else {
        TestStore::sqlite_on(Some(url)).await
    };
    story(store).await;
}

async fn the_lake_story(store: TestStore) {
    // Step 1: a committed file is read through DataFusion, from wherever the lake is.
    let first = write_and_commit(&store, "a1", &["a", "b"], 0)
        .await
        .unwrap();
    assert_eq!(count(&store).await, 2);
    // SQL from the network runs on a runtime of its own, without an I/O
    // driver: the store's requests must not need one.
    let bounded = store
        .sql_bounded(
            "SELECT request_id FROM requests",
            tollgate_store::bounded_sql::SqlLimits::default(),
        )
        .await
        .unwrap();
    assert_eq!(bounded.result.num_rows(), 2);
    let ids = store.lake.id_set(&first.path, "request_id").unwrap();
    assert!(ids.meets(&store.lake.id_set(&first.path, "request_id").unwrap()));

    // Step 2: a file no batch commits is invisible, and garbage once collected.
    let (batch, orphan) = write_uncommitted(&store, "c1", &["z"]).await;
    assert_eq!(count(&store).await, 2, "an uncommitted file is not read");
    let kept = store
        .gc(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(kept.files_removed, 0, "young files stay: {kept:?}");
    store
        .db
        .fail_batch(batch, Default::default(), "crashed")
        .await
        .unwrap();
    let gc = store.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(gc.files_removed, 1, "{gc:?}");
    assert!(matches!(
        store.lake.id_set(&orphan.path, "request_id"),
        Err(tollgate_store::StoreError::MissingLakeFile { .. })
    ));
    assert_eq!(count(&store).await, 2, "committed files survive gc");

    // Step 3: publishing makes every fact table a Delta table; again, nothing new.
    let published = store.publish_delta().await.unwrap();
    assert_eq!(published.len(), LAKE_TABLES.len());
    let requests_pub = published.iter().find(|p| p.table == REQUESTS).unwrap();
    assert_eq!(
        (requests_pub.version, requests_pub.files_added),
        (Some(0), 1)
    );
    let again = store.publish_delta().await.unwrap();
    assert!(again.iter().all(|p| p.version.is_none()), "{again:?}");

    // Step 4: a crash between a manifest commit and its Delta commit: another
    // process (fresh caches) publishes the missing file, once.
    let watermark = store.db.manifest_watermark().await.unwrap();
    let second = write_and_commit(&store, "a2", &["c"], watermark)
        .await
        .unwrap();
    let other = store.reopen().await;
    let caught_up = other.publish_delta().await.unwrap();
    let requests_pub = caught_up.iter().find(|p| p.table == REQUESTS).unwrap();
    assert_eq!(
        (requests_pub.version, requests_pub.files_added),
        (Some(1), 1)
    );
    assert!(
        store
            .publish_delta()
            .await
            .unwrap()
            .iter()
            .all(|p| p.version.is_none())
    );

    // Step 5: the log adds exactly the committed files, each once, and its
    // last transaction reaches the manifest's watermark.
    let log = log_store(&store);
    let added = added_paths(&log, REQUESTS).await;
    let expected: Vec<String> = [&first.path, &second.path]
        .iter()
        .map(|p| p.trim_start_matches("requests/").to_owned())
        .collect();
    assert_eq!(added, expected);
    let head = read_head(&log, REQUESTS).await.unwrap().unwrap();
    assert_eq!(head.version, 1);
    assert_eq!(head.watermark, store.db.manifest_watermark().await.unwrap());
}

fn log_store(store: &TestStore) -> Arc<dyn ObjectStore> {
    match store.lake.url() {
        LakeUrl::Local(_) => {
            Arc::new(LocalFileSystem::new_with_prefix(store.lake.local_root().unwrap()).unwrap())
        }
        LakeUrl::Object { .. } => Arc::clone(store.lake.object_store().unwrap()),
    }
}

/// Every path the table's log adds, in commit order; each commit checked for
/// Tollgate's transaction.
async fn added_paths(log: &Arc<dyn ObjectStore>, table: &str) -> Vec<String> {
    let prefix = Path::from(format!("{table}/_delta_log"));
    let mut commits: Vec<Path> = log
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    commits.sort();
    let mut added = Vec::new();
    let mut seen = BTreeSet::new();
    for commit in commits {
        let bytes = log.get(&commit).await.unwrap().bytes().await.unwrap();
        let mut txn = false;
        for line in std::str::from_utf8(&bytes).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(add) = action.get("add") {
                let path = add["path"].as_str().unwrap().to_owned();
                assert!(seen.insert(path.clone()), "{path} added twice");
                added.push(path);
            }
            txn |= action.get("txn").is_some_and(|t| t["appId"] == APP_ID);
        }
        assert!(txn, "{commit} carries no {APP_ID} transaction");
    }
    added
}
