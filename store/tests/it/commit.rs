use std::sync::Arc;

use arrow::array::{Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use tollgate_store::StoreError;
use tollgate_store::schema::{REQUESTS, REQUESTS_SCHEMA};
use tollgate_store::state::{BatchCommit, BatchCounts, NewLakeFile};
use tollgate_store::testing::TestStore;

tollgate_store::backend_tests!(
    commit_makes_files_visible_atomically,
    a_commit_after_a_newer_one_on_the_same_date_conflicts,
    the_same_content_commits_once,
    lake_summary_counts_files_rows_bytes,
);

/// A `requests` batch of `ids`, all at `time_us`, with only required columns set.
pub fn requests(ids: &[&str], time_us: i64, batch_id: i64) -> RecordBatch {
    let n = ids.len();
    let schema = REQUESTS_SCHEMA.clone();
    let columns = schema
        .fields()
        .iter()
        .map(|f| -> arrow::array::ArrayRef {
            match f.name().as_str() {
                "time" => {
                    Arc::new(TimestampMicrosecondArray::from(vec![time_us; n]).with_timezone("UTC"))
                }
                "request_id" => Arc::new(StringArray::from(ids.to_vec())),
                "status_code" => Arc::new(Int32Array::from(vec![200; n])),
                "batch_id" => Arc::new(Int64Array::from(vec![batch_id; n])),
                _ => arrow::array::new_null_array(f.data_type(), n),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

pub(crate) const OCT_1: i64 = 1_790_845_200_000_000; // 2026-10-01T09:00:00Z

pub(crate) async fn write_and_commit(
    store: &TestStore,
    sha: &str,
    ids: &[&str],
    watermark: i64,
) -> Result<NewLakeFile, StoreError> {
    let batch_id = store.db.begin_batch("test", sha, "canonical").await?;
    let file = store.lake.write_file(
        REQUESTS,
        "2026-10-01",
        batch_id,
        &requests(ids, OCT_1, batch_id),
    )?;
    let counts = BatchCounts {
        read: ids.len() as i64,
        written: ids.len() as i64,
        ..Default::default()
    };
    store
        .db
        .commit_batch(&BatchCommit {
            batch_id,
            counts,
            files: vec![file.clone()],
            watermark,
        })
        .await?;
    Ok(file)
}

/// Begins a batch and writes its request file, without committing it.
pub(crate) async fn write_uncommitted(
    store: &TestStore,
    sha: &str,
    ids: &[&str],
) -> (i64, NewLakeFile) {
    let batch_id = store
        .db
        .begin_batch("test", sha, "canonical")
        .await
        .unwrap();
    let file = store
        .lake
        .write_file(
            REQUESTS,
            "2026-10-01",
            batch_id,
            &requests(ids, OCT_1, batch_id),
        )
        .unwrap();
    (batch_id, file)
}

pub(crate) async fn count(store: &TestStore) -> usize {
    store
        .sql_read_only("SELECT * FROM requests")
        .await
        .unwrap()
        .num_rows()
}

async fn commit_makes_files_visible_atomically(store: TestStore) {
    let (batch_id, file) = write_uncommitted(&store, "aa", &["a", "b"]).await;
    assert_eq!(
        file.path,
        format!(
            "requests/date=2026-10-01/{}",
            file.path.rsplit('/').next().unwrap()
        )
    );
    assert_eq!(count(&store).await, 0, "written is not visible");

    let commit = BatchCommit {
        batch_id,
        counts: BatchCounts {
            read: 2,
            written: 2,
            ..Default::default()
        },
        files: vec![file],
        watermark: 0,
    };
    store.db.commit_batch(&commit).await.unwrap();
    assert_eq!(count(&store).await, 2);
    let batch = store.db.batch(batch_id).await.unwrap().unwrap();
    assert_eq!(
        (batch.status.as_str(), batch.rows_written),
        ("committed", 2)
    );

    // Committing twice is refused: the batch is no longer writing.
    let err = store.db.commit_batch(&commit).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatchState { .. }), "{err}");
}

async fn a_commit_after_a_newer_one_on_the_same_date_conflicts(store: TestStore) {
    let stale_watermark = store.db.manifest_watermark().await.unwrap();
    write_and_commit(&store, "s1", &["a"], stale_watermark)
        .await
        .unwrap();
    // This batch deduplicated before "s1" committed: it must dedupe again.
    let err = write_and_commit(&store, "s2", &["a"], stale_watermark)
        .await
        .unwrap_err();
    match err {
        StoreError::CommitConflict { clashing, .. } => assert_eq!(clashing, "requests 2026-10-01"),
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(count(&store).await, 1);
    let fresh = store.db.manifest_watermark().await.unwrap();
    write_and_commit(&store, "s3", &["b"], fresh).await.unwrap();
    assert_eq!(count(&store).await, 2);
}

async fn the_same_content_commits_once(store: TestStore) {
    write_and_commit(&store, "same", &["a"], 0).await.unwrap();
    let watermark = store.db.manifest_watermark().await.unwrap();
    let err = write_and_commit(&store, "same", &["b"], watermark)
        .await
        .unwrap_err();
    // Fresh databases number batches from 1 on both backends.
    assert!(
        matches!(
            err,
            StoreError::AlreadyCommitted {
                existing_batch: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(count(&store).await, 1);
}

async fn lake_summary_counts_files_rows_bytes(store: TestStore) {
    let f1 = write_and_commit(&store, "x1", &["a", "b"], 0)
        .await
        .unwrap();
    let w = store.db.manifest_watermark().await.unwrap();
    let f2 = write_and_commit(&store, "x2", &["c"], w).await.unwrap();
    let summary = store.db.lake_summary().await.unwrap();
    assert_eq!(summary.len(), 1);
    let row = &summary[0];
    assert_eq!(
        (
            row.table_name.as_str(),
            row.partition_date.as_str(),
            row.files,
            row.rows
        ),
        (REQUESTS, "2026-10-01", 2, 3)
    );
    assert_eq!(row.bytes, f1.byte_size + f2.byte_size);
}
