//! The DataFusion session over the committed lake: the one SQL engine.
//!
//! Tables are registered from the manifest's file list, never from a directory
//! listing, so a file whose batch has not committed cannot be read.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use crate::derived::{Tier, rollup_schema};
use crate::schema::{LAKE_TABLES, USAGE_VIEW, USAGE_VIEW_SQL, schema_of};
use crate::security_hits::{SECURITY_HITS_VIEW, view_sql as security_hits_sql};
use crate::state::LakeFile;
use crate::{Result, Store, StoreError};

/// The result of a query, with its schema even when no row came back.
#[derive(Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl Store {
    /// A session with every lake table and the `usage` and `security_hits`
    /// views, as committed now.
    #[tracing::instrument(skip_all, err)]
    pub async fn query_session(&self) -> Result<SessionContext> {
        self.query_session_in(None).await
    }

    /// [`Store::query_session`] on a runtime of the caller's (a memory limit).
    pub(crate) async fn query_session_in(
        &self,
        runtime: Option<Arc<RuntimeEnv>>,
    ) -> Result<SessionContext> {
        // One watermark for all tables: a batch committing meanwhile is wholly
        // visible or wholly not.
        let watermark = self.db.manifest_watermark().await?;
        let ctx = self.session_with(watermark, &|_| true, runtime).await?;
        self.register_rollups(&ctx).await?;
        for (view, sql) in [
            (USAGE_VIEW, USAGE_VIEW_SQL.to_owned()),
            (SECURITY_HITS_VIEW, security_hits_sql()),
        ] {
            ctx.sql(&format!("CREATE VIEW {view} AS {sql}"))
                .await?
                .collect()
                .await?;
        }
        Ok(ctx)
    }

    /// The lake tables (no view) over the files committed up to `watermark` that
    /// `keep` accepts (a rollup reads only the files overlapping its hours).
    pub(crate) async fn session_at(
        &self,
        watermark: i64,
        keep: &(dyn Fn(&LakeFile) -> bool + Sync),
    ) -> Result<SessionContext> {
        self.session_with(watermark, keep, None).await
    }

    async fn session_with(
        &self,
        watermark: i64,
        keep: &(dyn Fn(&LakeFile) -> bool + Sync),
        runtime: Option<Arc<RuntimeEnv>>,
    ) -> Result<SessionContext> {
        let config = SessionConfig::new()
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .with_information_schema(true);
        let ctx = match runtime {
            Some(runtime) => SessionContext::new_with_config_rt(config, runtime),
            None => SessionContext::new_with_config(config),
        };
        if let Some(objects) = self.lake.query_store() {
            let url = url::Url::parse(crate::lake::QUERY_STORE_URL)
                .map_err(|e| DataFusionError::Plan(e.to_string()))?;
            ctx.register_object_store(&url, Arc::clone(objects));
        }
        for table in LAKE_TABLES {
            let provider = self.table_provider(table, watermark, keep).await?;
            ctx.register_table(TableReference::bare(table), provider)?;
        }
        Ok(ctx)
    }

    async fn table_provider(
        &self,
        table: &str,
        watermark: i64,
        keep: &(dyn Fn(&LakeFile) -> bool + Sync),
    ) -> Result<Arc<dyn TableProvider>> {
        let schema = schema_of(table)
            .ok_or_else(|| DataFusionError::Plan(format!("unknown lake table {table}")))?;
        let mut files = self.db.lake_files_upto(table, watermark).await?;
        files.retain(|f| keep(f));
        let paths: Vec<&str> = files.iter().map(|f| f.file.path.as_str()).collect();
        self.listing(schema, &paths)
    }

    /// The derived tables, as SQL sees them: every rolled-up hour's file.
    async fn register_rollups(&self, ctx: &SessionContext) -> Result<()> {
        for tier in [Tier::Hourly, Tier::Minute] {
            let files = self.db.rollup_files(tier, i64::MIN, i64::MAX).await?;
            let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
            let provider = self.listing(rollup_schema(), &paths)?;
            ctx.register_table(TableReference::bare(tier.table()), provider)?;
        }
        Ok(())
    }

    /// A table over these Parquet files (paths under the lake root).
    fn listing(&self, schema: SchemaRef, paths: &[&str]) -> Result<Arc<dyn TableProvider>> {
        if paths.is_empty() {
            return Ok(Arc::new(EmptyTable::new(schema)));
        }
        let urls = paths
            .iter()
            .map(|rel| {
                // From a URL, not a string: a path with `[`, `?` or `*` in it is a
                // path, not a glob.
                Ok(ListingTableUrl::try_new(self.lake.query_url(rel)?, None)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(ListingOptions::new(Arc::new(ParquetFormat::default())))
            .with_schema(schema);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }

    /// Runs one read-only SQL statement over the committed lake. Anything that would
    /// write or define something (DDL, DML, `COPY`, `SET`) is refused.
    // A bad query is the user's error, reported to them; not worth an ERROR log line.
    #[tracing::instrument(skip_all, err(level = tracing::Level::DEBUG))]
    pub async fn sql_read_only(&self, sql: &str) -> Result<QueryResult> {
        let ctx = self.query_session().await?;
        run_read_only(&ctx, sql).await
    }
}

/// Runs `sql` on `ctx` refusing anything but queries.
pub async fn run_read_only(ctx: &SessionContext, sql: &str) -> Result<QueryResult> {
    let frame = plan_read_only(ctx, sql).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok(QueryResult { schema, batches })
}

/// Plans `sql`, refusing DDL, DML, `COPY`, `SET` and external tables.
pub(crate) async fn plan_read_only(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    match ctx.sql_with_options(sql, options).await {
        Ok(frame) => Ok(frame),
        Err(e) if is_refused(&e) => Err(StoreError::NotReadOnly(format!(
            "only queries are allowed ({})",
            e.strip_backtrace()
        ))),
        Err(e) => Err(e.into()),
    }
}

fn is_refused(e: &DataFusionError) -> bool {
    let msg = e.to_string();
    [
        "DDL not supported",
        "DML not supported",
        "Statement not supported",
    ]
    .iter()
    .any(|m| msg.contains(m))
}
