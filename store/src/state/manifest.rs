//! The lake manifest: which Parquet files exist as far as readers are concerned.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{StateDb, on_pool};
use crate::Result;

/// A committed lake file.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct LakeFile {
    pub id: i64,
    pub batch_id: i64,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub file: NewLakeFile,
}

/// A file a batch wrote and wants committed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct NewLakeFile {
    pub table_name: String,
    pub partition_date: String,
    /// Relative to the lake root, `/`-separated.
    pub path: String,
    pub row_count: i64,
    pub byte_size: i64,
    pub min_time: DateTime<Utc>,
    pub max_time: DateTime<Utc>,
}

/// One line of `tollgate lake ls`.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, PartialEq, Eq)]
pub struct LakeSummaryRow {
    pub table_name: String,
    pub partition_date: String,
    pub files: i64,
    pub rows: i64,
    pub bytes: i64,
}

impl StateDb {
    /// Committed files holding a time before `from` or after `to`: written
    /// before ingest bounded times, or by another tool.
    pub async fn lake_files_outside(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LakeFile>> {
        let sql = "SELECT id, batch_id, table_name, partition_date, path, row_count, byte_size, \
                   min_time, max_time FROM lake_files WHERE min_time < $1 OR max_time > $2 ORDER BY id";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, LakeFile>(sql)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every committed file of `table`, oldest first.
    pub async fn lake_files(&self, table: &str) -> Result<Vec<LakeFile>> {
        self.lake_files_upto(table, i64::MAX).await
    }

    /// The committed files of `table` up to a manifest watermark: read every table
    /// up to one watermark and no batch is seen half committed.
    pub async fn lake_files_upto(&self, table: &str, watermark: i64) -> Result<Vec<LakeFile>> {
        let sql = "SELECT id, batch_id, table_name, partition_date, path, row_count, byte_size, \
                   min_time, max_time FROM lake_files WHERE table_name = $1 AND id <= $2 ORDER BY id";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, LakeFile>(sql)
                .bind(table)
                .bind(watermark)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The committed files of `table` with ids in `(after, upto]`: what a Delta
    /// table lacks that has reached `after`.
    pub async fn lake_files_between(
        &self,
        table: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<LakeFile>> {
        let sql = "SELECT id, batch_id, table_name, partition_date, path, row_count, byte_size, \
                   min_time, max_time FROM lake_files \
                   WHERE table_name = $1 AND id > $2 AND id <= $3 ORDER BY id";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, LakeFile>(sql)
                .bind(table)
                .bind(after)
                .bind(upto)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The files batches committed.
    pub async fn lake_files_of_batches(&self, batch_ids: &[i64]) -> Result<Vec<LakeFile>> {
        let sql = "SELECT id, batch_id, table_name, partition_date, path, row_count, byte_size, \
                   min_time, max_time FROM lake_files WHERE batch_id = $1 ORDER BY id";
        let mut files = Vec::new();
        for id in batch_ids {
            files.extend(on_pool!(self, |pool| {
                sqlx::query_as::<Db, LakeFile>(sql)
                    .bind(id)
                    .fetch_all(pool)
                    .await?
            }));
        }
        Ok(files)
    }

    /// Every committed path, for garbage collection.
    pub async fn all_lake_paths(&self) -> Result<Vec<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, String>("SELECT path FROM lake_files")
                .fetch_all(pool)
                .await?
        }))
    }

    /// The highest committed lake file id: what a batch deduplicates against.
    pub async fn manifest_watermark(&self) -> Result<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>("SELECT COALESCE(MAX(id), 0) FROM lake_files")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Files, rows and bytes per table and date.
    pub async fn lake_summary(&self) -> Result<Vec<LakeSummaryRow>> {
        let sql = "SELECT table_name, partition_date, COUNT(*) AS files, \
                   CAST(SUM(row_count) AS BIGINT) AS rows, CAST(SUM(byte_size) AS BIGINT) AS bytes \
                   FROM lake_files GROUP BY table_name, partition_date \
                   ORDER BY table_name, partition_date";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, LakeSummaryRow>(sql)
                .fetch_all(pool)
                .await?
        }))
    }
}
