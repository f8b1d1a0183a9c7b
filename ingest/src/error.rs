use std::path::PathBuf;

use tollgate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("{}: cannot open: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file stopped being readable part way (I/O error, truncated or corrupt
    /// gzip). Nothing of it is committed: a partial file would later be re-sent whole.
    #[error("{}: unreadable after line {line} ({}); nothing from this file was committed", path.display(), describe_read_error(.source))]
    Read {
        path: PathBuf,
        line: u64,
        #[source]
        source: std::io::Error,
    },

    /// The content passed a bound of [`crate::Limits`] (decompressed size, one
    /// record of a document, a document read whole); nothing is committed.
    #[error("{}: {bound}, after line {line}; nothing from this file was committed", path.display())]
    TooLarge {
        path: PathBuf,
        line: u64,
        #[source]
        bound: crate::reader::TooLarge,
    },

    /// The file changed between hashing and reading (a log still being written):
    /// its hash would not describe what was committed.
    #[error("{}: changed while being ingested; nothing from it was committed (ingest it again once it is complete)", path.display())]
    ChangedDuringIngest { path: PathBuf },

    /// A whole-document input (JSON array) that does not parse.
    #[error("{}: {message}; nothing from this file was committed", path.display())]
    Unparseable { path: PathBuf, message: String },

    #[error("{}: still conflicting with concurrent ingests after {attempts} attempts", path.display())]
    TooManyConflicts { path: PathBuf, attempts: u32 },

    #[error("{}: not a format Tollgate recognises; known formats: {known} (name one with --format)", path.display())]
    Unrecognised { path: PathBuf, known: String },

    /// A cost export where only logs are taken (a push): the bill is
    /// imported by FinOps (`tollgate costs import`, `PUT /api/v1/costs`).
    #[error("{}: a cost export; the bill is imported with `tollgate costs import` or PUT /api/v1/costs (finops, admin), not pushed as logs", path.display())]
    CostExportNotHere { path: PathBuf },

    #[error("unknown format {given:?}; known formats: {known}")]
    UnknownFormat { given: String, known: String },

    #[error("ingest task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn describe_read_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "truncated: the compressed stream ends early".to_owned()
    } else {
        e.to_string()
    }
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
