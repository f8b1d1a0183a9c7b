//! The lake's files in an object store: written whole under unique names (a
//! put, or a multipart upload that completes atomically), read whole, listed
//! and deleted by garbage collection.
//!
//! The lake's file API is synchronous (ingest writes from worker threads,
//! derived reads decode on blocking threads), and object stores are async:
//! each call runs on a small runtime of the lake's own and the caller waits for
//! it. Every HTTP request of the lake's stores runs on that runtime too (see
//! [`connector`]), whoever awaits it (DataFusion on the SQL runtime, Delta
//! commits on the server's), so waiting never needs the caller's threads: a
//! connection opened on a runtime whose workers are all waiting here would
//! otherwise stall, and the SQL runtime has no I/O driver at all.

use std::future::Future;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::client::SpawnedReqwestConnector;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::{Result, StoreError};

/// Above this size a file goes up in parts (each part this large).
const PART_BYTES: usize = 16 << 20;

/// The lake's I/O runtime, made on first use and kept for the process (made
/// once, under the lock: a second one built by a racing thread would be
/// dropped, and dropping a runtime inside another panics).
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: LazyLock<std::io::Result<tokio::runtime::Runtime>> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lake-io")
            .enable_all()
            .build()
    });
    RUNTIME.as_ref().map_err(|e| {
        StoreError::io(
            "<lake I/O runtime>",
            std::io::Error::new(e.kind(), e.to_string()),
        )
    })
}

/// The HTTP connector of the lake's object stores: requests spawned on the
/// lake's I/O runtime.
pub(crate) fn connector() -> Result<SpawnedReqwestConnector> {
    Ok(SpawnedReqwestConnector::new(io_runtime()?.handle().clone()))
}

/// Runs `work` on the lake's I/O runtime and waits for it.
pub(crate) fn wait<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let task = io_runtime()?.spawn(work);
    futures::executor::block_on(task).map_err(|e| StoreError::io("<lake I/O task>", e.into()))?
}

fn object_err(path: &str) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
    move |source| StoreError::Object {
        path: path.to_owned(),
        source,
    }
}

/// Uploads `bytes` as `rel`: one put when small, parts when large.
pub(crate) async fn put(store: Arc<dyn ObjectStore>, rel: String, bytes: Vec<u8>) -> Result<()> {
    let path = Path::from(rel.as_str());
    if bytes.len() <= PART_BYTES {
        store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(object_err(&rel))?;
        return Ok(());
    }
    let mut writer = BufWriter::with_capacity(store, path, PART_BYTES);
    let io_err = |e| StoreError::io(rel.clone(), e);
    writer.write_all(&bytes).await.map_err(io_err)?;
    writer.shutdown().await.map_err(io_err)
}

/// The whole object `rel`; a missing one is [`StoreError::MissingLakeFile`].
pub(crate) async fn get(store: Arc<dyn ObjectStore>, rel: String) -> Result<Bytes> {
    let path = Path::from(rel.as_str());
    let got = match store.get(&path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(StoreError::MissingLakeFile { path: rel.into() });
        }
        Err(e) => return Err(object_err(&rel)(e)),
    };
    got.bytes().await.map_err(object_err(&rel))
}

/// Every object under `prefix`.
pub(crate) async fn list(store: Arc<dyn ObjectStore>, prefix: String) -> Result<Vec<ObjectMeta>> {
    let path = Path::from(prefix.as_str());
    store
        .list(Some(&path))
        .try_collect()
        .await
        .map_err(object_err(&prefix))
}

/// Deletes `rel`; one already gone is not an error.
pub(crate) async fn delete(store: Arc<dyn ObjectStore>, rel: String) -> Result<()> {
    match store.delete(&Path::from(rel.as_str())).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(object_err(&rel)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_on_a_single_threaded_runtime_does_not_deadlock() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = Arc::clone(&store);
        wait(put(s, "t/date=2026-01-01/a.parquet".into(), vec![1, 2, 3])).unwrap();
        let got = wait(get(
            Arc::clone(&store),
            "t/date=2026-01-01/a.parquet".into(),
        ))
        .unwrap();
        assert_eq!(&got[..], &[1, 2, 3]);
    }

    #[test]
    fn a_large_file_goes_up_in_parts_and_reads_back_whole() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let bytes: Vec<u8> = (0..PART_BYTES * 2 + 5).map(|i| (i % 251) as u8).collect();
        wait(put(Arc::clone(&store), "big".into(), bytes.clone())).unwrap();
        assert_eq!(wait(get(store, "big".into())).unwrap().to_vec(), bytes);
    }

    #[test]
    fn a_missing_object_is_a_damaged_lake_and_deleting_one_is_not_an_error() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let err = wait(get(Arc::clone(&store), "gone".into())).unwrap_err();
        assert!(matches!(err, StoreError::MissingLakeFile { .. }), "{err}");
        wait(delete(store, "gone".into())).unwrap();
    }
}
