//! The ground every other crate stands on: where facts and state live.
//!
//! Ingest hands this crate Arrow batches; [`Lake::write_file`] turns them into
//! immutable, date-partitioned ZSTD Parquet files, and [`StateDb::commit_batch`]
//! makes a batch's files visible by committing their manifest rows and its counts
//! and status in one transaction (its quarantined lines, stored as it runs, count
//! only once it is committed). Readers never list directories: the
//! [`Store::query_session`] registers exactly the committed files with DataFusion,
//! the one SQL engine. After each commit [`Store::roll_up_batch`] recomputes the
//! hourly rollups of the hours the batch touched, which reports read instead of
//! raw rows ([`rollup`]): one Parquet file per hour under `lake/derived/`,
//! named in the state database and decoded once per process ([`derived`]). The state database is SQLite by default and Postgres when a
//! `postgres://` URL is given; both run the same queries and their own migrations.

pub mod billed;
pub mod bounded_functions;
pub mod bounded_sql;
pub mod clock;
pub mod delta;
pub mod derived;
mod error;
pub mod genai;
pub mod ids;
pub mod lake;
pub mod output;
pub mod query;
pub mod rate;
pub mod rollup;
pub mod schema;
pub mod security_hits;
pub mod sketch;
pub mod state;
pub mod symbol;
#[cfg(feature = "testing")]
pub mod testing;
pub mod versioned;
pub mod vocab;

use std::path::{Path, PathBuf};

pub use clock::{Clock, TimeWindow};
pub use error::{Result, StoreError};
pub use lake::{GcReport, Lake, LakeUrl};
pub use state::{Backend, DatabaseUrl, StateDb};
pub use symbol::Sym;
pub use vocab::{BudgetAction, BudgetScope, BudgetState, EpisodeState, StateVersion, UnknownWord};

/// Where the store lives. With no database URL, state is SQLite in the data dir.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
    /// Where the lake is; `None` is `<data dir>/lake`.
    pub lake_url: Option<LakeUrl>,
    /// The wall clock budgets and the ingest time window follow.
    pub clock: Clock,
    /// The times records may carry; readers leave anything else out.
    pub window: TimeWindow,
}

impl StoreConfig {
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            database_url: None,
            lake_url: None,
            clock: Clock::system(),
            window: TimeWindow::default(),
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("tollgate.db")
    }

    /// Where the lake is: the configured URL, or `<data dir>/lake`.
    pub fn lake_url(&self) -> LakeUrl {
        self.lake_url
            .clone()
            .unwrap_or_else(|| LakeUrl::Local(self.data_dir.join("lake")))
    }
}

/// The lake plus the state database that says which of its files are committed.
#[derive(Debug, Clone)]
pub struct Store {
    pub lake: Lake,
    pub db: StateDb,
    /// The local data directory (SQLite, spooled uploads), wherever the lake is.
    pub data_dir: PathBuf,
    /// Where month-close snapshots are written (`<data dir>/snapshots`), apart
    /// from the lake, whose garbage collection removes what the manifest lacks.
    pub snapshots_dir: PathBuf,
    pub clock: Clock,
    pub window: TimeWindow,
    /// Decoded rollup files, shared by every clone of the store.
    pub(crate) rollup_cache: std::sync::Arc<derived::RollupCache>,
    /// What the dimension reads (gateways, scopes seen, observed usage) need
    /// of each rollup file, shared likewise.
    pub(crate) summary_cache: std::sync::Arc<derived::SummaryCache>,
    /// Each Delta table's newest commit, as last read or written.
    pub(crate) delta_heads: std::sync::Arc<delta::Heads>,
    /// MCP tool calls per agent so far, added to as files are committed.
    pub(crate) tool_calls: std::sync::Arc<tokio::sync::Mutex<derived::ToolCallsSoFar>>,
}

impl Store {
    /// Opens the store, creating the data directory and applying migrations.
    #[tracing::instrument(skip_all, fields(data_dir = %config.data_dir.display(), lake = %config.lake_url()), err)]
    pub async fn open(config: &StoreConfig) -> Result<Store> {
        create_dir(&config.data_dir)?;
        let data_dir = std::path::absolute(&config.data_dir)
            .map_err(|e| StoreError::io(&config.data_dir, e))?;
        let lake = Lake::open(&config.lake_url())?;
        let db = match &config.database_url {
            Some(url) => StateDb::connect(url).await?,
            None => StateDb::open_sqlite(&config.sqlite_path()).await?,
        };
        db.migrate().await?;
        Ok(Store {
            lake,
            db,
            snapshots_dir: data_dir.join("snapshots"),
            data_dir,
            clock: config.clock.clone(),
            window: config.window,
            rollup_cache: Default::default(),
            summary_cache: Default::default(),
            tool_calls: Default::default(),
            delta_heads: Default::default(),
        })
    }

    /// Removes lake files no committed batch names, and marks batches that have been
    /// `writing` for longer than `grace` as abandoned (their process died).
    #[tracing::instrument(skip_all, err)]
    pub async fn gc(&self, grace: std::time::Duration) -> Result<GcReport> {
        let cutoff = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|g| chrono::Utc::now().checked_sub_signed(g))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let abandoned = self.db.abandon_stale_batches(cutoff).await?;
        if abandoned > 0 {
            tracing::info!(abandoned, "marked stale writing batches abandoned");
        }
        // Files of a batch still writing are never removed, whatever their age:
        // file times and batch times come from different clocks.
        let live = self.db.writing_batch_ids().await?.into_iter().collect();
        let referenced = self.db.all_lake_paths().await?.into_iter().collect();
        // Listed after the lake's: a rollup file written meanwhile is younger
        // than the grace period.
        let derived = self.db.all_rollup_paths().await?.into_iter().collect();
        let lake = self.lake.clone();
        tokio::task::spawn_blocking(move || -> Result<GcReport> {
            let mut report = lake.gc(&referenced, &live, grace)?;
            let more = lake.gc_derived(&derived, grace)?;
            report.files_removed += more.files_removed;
            report.bytes_removed += more.bytes_removed;
            report.files_kept_young += more.files_kept_young;
            Ok(report)
        })
        .await
        .map_err(|e| StoreError::io(PathBuf::from("<gc task>"), std::io::Error::other(e)))?
    }
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))
}
