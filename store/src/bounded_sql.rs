//! SQL people send over the network: read-only, as `tollgate sql`, and bounded,
//! because one careless query must not take the server's memory or a core for
//! minutes. A memory pool caps what operators may hold (sorts and joins fail
//! instead of growing), a timeout stops the query, and only the first rows are
//! kept, the answer saying it was cut.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use futures::StreamExt;

use crate::query::{QueryResult, plan_read_only};
use crate::{Result, Store, StoreError};

/// The bounds of one query.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub max_rows: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            timeout: Duration::from_secs(10),
            max_rows: 10_000,
        }
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
        let run = async {
            let frame = plan_read_only(&ctx, sql).await?;
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
            Ok::<_, StoreError>(BoundedResult {
                result: QueryResult { schema, batches },
                truncated,
            })
        };
        match tokio::time::timeout(limits.timeout, run).await {
            Err(_) => Err(StoreError::QueryLimit(format!(
                "the query ran longer than {} s and was stopped",
                limits.timeout.as_secs_f64()
            ))),
            Ok(Err(StoreError::Query(e)))
                if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) =>
            {
                Err(StoreError::QueryLimit(format!(
                    "the query needs more than {} MiB of memory ({})",
                    limits.memory_bytes >> 20,
                    e.find_root()
                )))
            }
            Ok(result) => result,
        }
    }
}
