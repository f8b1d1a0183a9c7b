//! How a long ingest reports progress; the CLI draws a bar, tests and the server don't.

/// Progress in raw input bytes. Implementations must be cheap: `advance` is called
/// for every read.
pub trait Progress: Send + Sync {
    /// A new file of `total_bytes` starts.
    fn start(&self, _source: &str, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
