use std::path::PathBuf;

/// Everything the store can fail with. Lower-level errors are wrapped, not flattened,
/// so callers can still tell a database outage from a corrupt lake file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Database(#[from] sqlx::Error),

    #[error("applying state database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("parquet file {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("lake file {}: {source}", path.display())]
    ArrowInFile {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },

    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),

    /// A month close or re-open that the month's state does not allow.
    #[error("{0}")]
    MonthState(String),

    /// A row asked for by id or name that does not exist.
    #[error("{0}")]
    NotFound(String),

    /// A change refused because it clashes with what is stored (a name taken).
    #[error("{0}")]
    Conflict(String),

    #[error("invalid database URL: {0}")]
    InvalidDatabaseUrl(String),

    /// Another batch committed files for the same tables and dates after this batch
    /// took its deduplication snapshot; the caller must dedupe again and retry.
    #[error("batch {batch_id} conflicts with a batch committed meanwhile ({clashing})")]
    CommitConflict { batch_id: i64, clashing: String },

    /// A file with the same content was committed, by this batch's competitor.
    #[error("content {sha256} was already committed as batch {existing_batch}")]
    AlreadyCommitted { sha256: String, existing_batch: i64 },

    /// The batch is not `writing` any more (garbage collection abandoned it).
    #[error("batch {batch_id} is no longer open for commit")]
    InvalidBatchState { batch_id: i64 },

    #[error("read-only SQL: {0}")]
    NotReadOnly(String),

    /// A query stopped for exceeding its memory or time bound.
    #[error("{0}")]
    QueryLimit(String),

    /// SQL a user sent that failed (a plan or execution error of theirs),
    /// apart from [`StoreError::Query`], a failure of Tollgate's own queries.
    #[error("{0}")]
    UserQuery(String),

    /// The lake on object storage failed (the path is relative to the lake URL).
    #[error("lake object {path}: {source}")]
    Object {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A lake URL that names no lake Tollgate can open.
    #[error("lake URL {url}: {reason}")]
    InvalidLakeUrl { url: String, reason: String },

    /// A Delta log that does not read as the protocol says.
    #[error("Delta log of {table}: {reason}")]
    DeltaLog { table: String, reason: String },

    /// Stored state that is not what Tollgate writes (a word outside its
    /// set): the store's fault, never the caller's.
    #[error("stored {what}: {source}")]
    Integrity {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("lake manifest names {} but it is missing: the lake is damaged", path.display())]
    MissingLakeFile { path: PathBuf },
}

impl StoreError {
    /// `e` as the conflict `clash` names when it violates a unique
    /// constraint (a row clashing with one stored), else as a database error.
    pub(crate) fn on_constraint(e: sqlx::Error, clash: impl FnOnce() -> String) -> StoreError {
        if is_unique_violation(&e) {
            StoreError::Conflict(clash())
        } else {
            StoreError::Database(e)
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Whether `e` is a unique-constraint violation, on either backend.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
