//! Reports stories, each run against SQLite and (when configured) Postgres.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

mod alerts;
mod capacity;
mod chargeback;
mod close;
mod hostile;
mod ownership;
mod price_book;
mod reconcile;
mod rollups;

use std::path::PathBuf;

use tollgate_store::testing::TestStore;

/// Writes `text` to `name` in the test's directory.
pub fn write(store: &TestStore, name: &str, text: &str) -> PathBuf {
    let path = store.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}
