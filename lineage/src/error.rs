use thiserror::Error;

pub type Result<T, E = LineageError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum LineageError {
    #[error("unknown label {label:?} (labels, least to most sensitive: {known})")]
    UnknownLabel { label: String, known: String },
    #[error("label taxonomy: {0}")]
    Taxonomy(String),
    #[error("unknown node kind {0:?}")]
    UnknownKind(String),
    #[error("unknown edge origin {0:?}")]
    UnknownOrigin(String),
    #[error("no node {0} in the lineage graph")]
    UnknownNode(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Argument(String),
    #[error("{name:?} names nodes in several namespaces ({namespaces}); give the namespace")]
    AmbiguousNode { name: String, namespaces: String },
    #[error("{source_name}: refused, nothing imported:\n  {}", problems.join("\n  "))]
    Refused {
        source_name: String,
        problems: Vec<String>,
    },
    #[error("stored lineage no longer fits the configuration: {0}")]
    Stored(String),
    #[cfg(feature = "store")]
    #[error(transparent)]
    Store(#[from] tollgate_store::StoreError),
}
