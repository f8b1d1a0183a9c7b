//! Gateway logs in, committed lake batches out.
//!
//! Each input file becomes one ingest batch: [`reader`] turns it into numbered lines
//! (plain or gzip), a format adapter turns each line into a canonical [`Record`] or a
//! quarantine reason, rows whose request id the lake already holds for that date are
//! counted as duplicates, and the rest are buffered per date and written as Parquet
//! through `tollgate-store`. The batch then commits in one state-database
//! transaction, so every line ends up committed, counted as a duplicate, or
//! quarantined with its line number: `read = written + duplicate + quarantined`.

pub mod apim;
pub mod appinsights;
mod batch;
pub mod canonical;
pub mod cost;
pub mod dimensions;
pub mod dlp;
pub mod document;
mod error;
pub mod format;
mod headers;
mod hit;
pub mod kong;
pub mod limits;
pub mod litellm;
pub mod otel;
mod parquet_rows;
mod pipeline;
pub mod progress;
pub mod reader;
pub mod record;
mod scalar;
pub mod span;

pub use dimensions::{DimensionSources, Dimensions};
pub use error::{IngestError, Result};
pub use format::Format;
pub use limits::Limits;
pub use pipeline::{
    Derive, IngestOptions, IngestReport, Outcome, QUARANTINE_RAW_BYTES, ingest_file, ingest_named,
};
pub use progress::{NoProgress, Progress};
pub use record::Record;
