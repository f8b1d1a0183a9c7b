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

    /// Stored data that is not what was stored (a snapshot whose checksum
    /// differs) or not what Tollgate stores (a date that does not parse):
    /// the server's fault, never the caller's.
    #[error("{0}")]
    Integrity(String),

    /// Reference data, as imported, that cannot answer the question (a
    /// price book and reservations in two currencies): neither the request's
    /// fault nor the server's, but what was imported, to correct there.
    #[error("{0}")]
    Reference(String),

    /// Writing out an answer failed: what was being written, and why.
    #[error("{what}: {source}")]
    Fault {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

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

impl ReportsError {
    /// Writing `what` failed because of `source`, kept for the log.
    pub(crate) fn fault(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ReportsError::Fault {
            what,
            source: source.into(),
        }
    }
}

pub type Result<T, E = ReportsError> = std::result::Result<T, E>;
