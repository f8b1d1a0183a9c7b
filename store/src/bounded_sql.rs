//! SQL people send over the network: read-only, as `tollgate sql`, and bounded,
//! because one careless (or hostile) query must not take the server's memory,
//! its cores or its other requests. Queries run on a runtime of their own
//! ([`SQL_THREADS`] threads), so `/healthz`, the budget pull and pushes keep
//! theirs; a memory pool caps what operators may hold (sorts and joins fail
//! instead of growing) and [`crate::bounded_functions`] what one function call
//! may build; at the deadline, or when the caller goes away (its future is
//! dropped), the query is cancelled; only the first rows are kept, the answer
//! saying it was cut.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::query::{QueryResult, plan_read_only};
use crate::{Result, Store, StoreError};

/// Threads of the runtime user SQL runs on: one, so that on a small machine
/// the other cores stay the server's.
pub const SQL_THREADS: usize = 1;

/// The bounds of one query.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    pub memory_bytes: usize,
    /// What one call of a value-building function (`repeat`, `range`, ...) may build.
    pub max_value_bytes: u64,
    pub timeout: Duration,
    pub max_rows: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            max_value_bytes: 64 << 20,
            timeout: Duration::from_secs(10),
            max_rows: 10_000,
        }
    }
}

/// The runtime user SQL runs on, started on first use.
fn sql_runtime() -> Result<&'static tokio::runtime::Runtime> {
    // Built inside the initialiser, once, whoever asks first: two racing
    // builds would drop the loser's runtime inside an async context (a panic).
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let built = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SQL_THREADS)
            .thread_name("tollgate-sql")
            .enable_time()
            .build()
            .map_err(|e| e.to_string())
    });
    built
        .as_ref()
        .map_err(|e| StoreError::io("<sql runtime>", std::io::Error::other(e.clone())))
}

/// User queries running now, in this process (a query cancelled by its
/// deadline or its caller leaving stops counting when it has stopped).
pub fn running() -> usize {
    RUNNING.load(std::sync::atomic::Ordering::Relaxed)
}

static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one running query while it lives.
struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Aborts the task when dropped: a caller that stops waiting (a deadline, a
/// client gone) stops the query.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A bounded query's rows, and whether more were left out.
#[derive(Debug)]
pub struct BoundedResult {
    pub result: QueryResult,
    pub truncated: bool,
}

impl Store {
    /// Runs one read-only statement within `limits`; exceeding the memory or
    /// the time is [`StoreError::QueryLimit`].
    #[tracing::instrument(skip_all, err(level = tracing::Level::DEBUG))]
    pub async fn sql_bounded(&self, sql: &str, limits: SqlLimits) -> Result<BoundedResult> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()?;
        let ctx = self.query_session_in(Some(runtime)).await?;
        crate::bounded_functions::bound_functions(&ctx, limits.max_value_bytes)?;
        let mut task = AbortOnDrop(sql_runtime()?.spawn(run_bounded(ctx, sql.to_owned(), limits)));
        let lake_root = match self.lake.local_root() {
            Some(root) => root.display().to_string(),
            None => self
                .lake
                .query_url("")?
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        };
        let outcome = match tokio::time::timeout(limits.timeout, &mut task.0).await {
            Err(_) => Err(StoreError::QueryLimit(format!(
                "the query ran longer than {} s and was stopped",
                limits.timeout.as_secs_f64()
            ))),
            Ok(Err(e)) => Err(StoreError::QueryLimit(format!("the query stopped: {e}"))),
            Ok(Ok(Err(StoreError::Query(e))))
                if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) =>
            {
                Err(StoreError::QueryLimit(format!(
                    "the query needs more memory than it may have ({} MiB for its operators): {}",
                    limits.memory_bytes >> 20,
                    e.find_root().strip_backtrace()
                )))
            }
            Ok(Ok(result)) => result,
        };
        // Plans and errors name lake files: relative to the lake, never the
        // server's directories.
        // (DataFusion shows a file path without its leading `/`.)
        let roots = [lake_root.as_str(), lake_root.trim_start_matches('/')];
        match outcome {
            Ok(mut answer) => {
                for root in roots {
                    answer.result.batches =
                        crate::output::without_prefix(&answer.result.batches, root, "lake")?;
                }
                Ok(answer)
            }
            Err(StoreError::Query(e)) => {
                let message = roots
                    .iter()
                    .fold(e.strip_backtrace(), |m, root| m.replace(root, "lake"));
                Err(StoreError::UserQuery(message))
            }
            Err(e) => Err(e),
        }
    }
}

/// Plans and runs one statement, keeping rows up to the limits.
async fn run_bounded(ctx: SessionContext, sql: String, limits: SqlLimits) -> Result<BoundedResult> {
    let _running = Running::start();
    let frame = plan_read_only(&ctx, &sql).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let mut stream = frame.execute_stream().await?;
    let (mut batches, mut rows, mut truncated) = (Vec::new(), 0usize, false);
    // The rows kept count against the same memory as the operators did.
    let mut kept = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        kept += batch.get_array_memory_size();
        if kept > limits.memory_bytes {
            return Err(StoreError::QueryLimit(format!(
                "the query's rows need more than {} MiB of memory; ask for fewer",
                limits.memory_bytes >> 20
            )));
        }
        let room = limits.max_rows - rows;
        if batch.num_rows() > room {
            batches.push(batch.slice(0, room));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    // A result exactly at the cap may still have more behind it.
    if !truncated && rows == limits.max_rows {
        truncated = stream.next().await.is_some();
    }
    Ok(BoundedResult {
        result: QueryResult { schema, batches },
        truncated,
    })
}
