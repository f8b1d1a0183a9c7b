use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    #[error(transparent)]
    Store(#[from] tollgate_store::StoreError),

    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    /// Stored data that is not what was stored (a snapshot whose checksum differs).
    #[error("{0}")]
    Integrity(String),

    /// A request that cannot be answered as asked (an unknown grouping, a month
    /// that does not exist).
    #[error("{0}")]
    Argument(String),

    /// An alert rule refused: every problem, each naming its field.
    #[error("alert rule {name:?} refused ({} problem{}):\n  {}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.join("\n  "))]
    InvalidRule { name: String, problems: Vec<String> },

    /// Input refused whole: every problem found, each naming its line and field.
    #[error("{}: refused, nothing was stored ({} problem{}):\n  {}", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

pub type Result<T, E = ReportsError> = std::result::Result<T, E>;
