//! Ingest batches and their quarantined lines.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::QueryBuilder;

use super::manifest::NewLakeFile;
use super::{Pool, StateDb, begin_write, on_pool};
use crate::{Result, StoreError};

/// Where a batch is in its life. Only `committed` batches have visible files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// Writing files; invisible. A batch left here by a crash is abandoned by `gc`.
    Writing,
    Committed,
    Failed,
    Abandoned,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Writing => "writing",
            BatchStatus::Committed => "committed",
            BatchStatus::Failed => "failed",
            BatchStatus::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Batch {
    pub id: i64,
    pub source_name: String,
    pub content_sha256: String,
    pub format: String,
    pub status: String,
    pub rows_read: i64,
    pub rows_written: i64,
    pub rows_duplicate: i64,
    pub rows_quarantined: i64,
    pub bytes_read: i64,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The reconciliation of one batch: `read = written + duplicate + quarantined`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BatchCounts {
    pub read: i64,
    pub written: i64,
    pub duplicate: i64,
    pub quarantined: i64,
    pub bytes_read: i64,
}

impl BatchCounts {
    pub fn reconciles(&self) -> bool {
        self.read == self.written + self.duplicate + self.quarantined
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct QuarantineRow {
    pub batch_id: i64,
    pub line_number: i64,
    pub byte_offset: i64,
    pub reason: String,
    /// The raw bytes of the line, cut to 4 KiB.
    pub raw_line: Vec<u8>,
}

/// Everything that becomes visible at once when a batch commits.
#[derive(Debug, Clone)]
pub struct BatchCommit {
    pub batch_id: i64,
    pub counts: BatchCounts,
    pub files: Vec<NewLakeFile>,
    /// The manifest watermark (highest lake file id) the batch deduplicated against:
    /// files committed after it for any (table, date) this batch writes conflict.
    pub watermark: i64,
}

/// `SELECT` prefix for [`Batch`] rows, as a literal so queries stay `&'static str`.
macro_rules! select_batches {
    ($rest:literal) => {
        concat!(
            "SELECT id, source_name, content_sha256, format, status, rows_read, rows_written, \
             rows_duplicate, rows_quarantined, bytes_read, error, started_at, finished_at \
             FROM ingest_batches ",
            $rest
        )
    };
}

/// Postgres advisory lock serialising manifest commits ("tollgate" in ASCII).
const COMMIT_LOCK: i64 = 0x746f_6c6c_6761_7465;

impl StateDb {
    /// The committed batch holding this content, if any.
    pub async fn committed_batch_by_content(&self, sha256: &str) -> Result<Option<Batch>> {
        let sql = select_batches!("WHERE content_sha256 = $1 AND status = 'committed'");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, Batch>(sql)
                .bind(sha256)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn batch(&self, id: i64) -> Result<Option<Batch>> {
        let sql = select_batches!("WHERE id = $1");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, Batch>(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The most recent batches, newest first.
    pub async fn recent_batches(&self, limit: i64) -> Result<Vec<Batch>> {
        let sql = select_batches!("ORDER BY id DESC LIMIT $1");
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, Batch>(sql)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records the start of a batch; its files stay invisible until [`Self::commit_batch`].
    pub async fn begin_batch(&self, source_name: &str, sha256: &str, format: &str) -> Result<i64> {
        let sql = "INSERT INTO ingest_batches (source_name, content_sha256, format, status, started_at) \
                   VALUES ($1, $2, $3, 'writing', $4) RETURNING id";
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>(sql)
                .bind(source_name)
                .bind(sha256)
                .bind(format)
                .bind(Utc::now())
                .fetch_one(pool)
                .await?
        }))
    }

    /// Stores quarantined lines of a running batch. They count once it commits.
    pub async fn add_quarantine(&self, rows: &[QuarantineRow]) -> Result<()> {
        // 5 binds a row; keep well under SQLite's 32766 variables.
        for chunk in rows.chunks(1000) {
            on_pool!(self, |pool| {
                let mut query = QueryBuilder::<Db>::new(
                    "INSERT INTO quarantine (batch_id, line_number, byte_offset, reason, raw_line) ",
                );
                query.push_values(chunk, |mut row, q| {
                    row.push_bind(q.batch_id)
                        .push_bind(q.line_number)
                        .push_bind(q.byte_offset)
                        .push_bind(q.reason.clone())
                        .push_bind(q.raw_line.clone());
                });
                query.build().execute(pool).await?;
            });
        }
        Ok(())
    }

    /// Forgets the quarantined lines of a batch that is about to run again.
    pub async fn clear_quarantine(&self, batch_id: i64) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>("DELETE FROM quarantine WHERE batch_id = $1")
                .bind(batch_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn quarantined_lines(&self, batch_id: i64) -> Result<Vec<QuarantineRow>> {
        let sql = "SELECT batch_id, line_number, byte_offset, reason, raw_line FROM quarantine \
                   WHERE batch_id = $1 ORDER BY line_number";
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, QuarantineRow>(sql)
                .bind(batch_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Marks a batch failed with its error; its files are left for `gc`.
    pub async fn fail_batch(&self, batch_id: i64, counts: BatchCounts, error: &str) -> Result<()> {
        self.finish_without_commit(batch_id, BatchStatus::Failed, counts, Some(error))
            .await
    }

    async fn finish_without_commit(
        &self,
        batch_id: i64,
        status: BatchStatus,
        counts: BatchCounts,
        error: Option<&str>,
    ) -> Result<()> {
        let sql = "UPDATE ingest_batches SET status = $2, rows_read = $3, rows_written = $4, \
                   rows_duplicate = $5, rows_quarantined = $6, bytes_read = $7, error = $8, \
                   finished_at = $9 WHERE id = $1 AND status = 'writing'";
        on_pool!(self, |pool| {
            sqlx::query::<Db>(sql)
                .bind(batch_id)
                .bind(status.as_str())
                .bind(counts.read)
                .bind(counts.written)
                .bind(counts.duplicate)
                .bind(counts.quarantined)
                .bind(counts.bytes_read)
                .bind(error)
                .bind(Utc::now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Ids of the batches still writing their files.
    pub async fn writing_batch_ids(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>("SELECT id FROM ingest_batches WHERE status = 'writing'")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Marks batches still `writing` since before `cutoff` as abandoned (their
    /// process died). Returns how many.
    pub async fn abandon_stale_batches(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let sql = "UPDATE ingest_batches SET status = 'abandoned', finished_at = $2, \
                   error = 'abandoned: still writing at garbage collection' \
                   WHERE status = 'writing' AND started_at < $1";
        Ok(on_pool!(self, |pool| {
            sqlx::query::<Db>(sql)
                .bind(cutoff)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Makes a batch visible: its manifest rows, counts and `committed` status land in
    /// one transaction. Fails with [`StoreError::CommitConflict`] if another batch
    /// committed files for the same dedupe table and dates after `commit.watermark`,
    /// and with [`StoreError::AlreadyCommitted`] if the same content won a race.
    // Errors at debug level: a conflict is routine under concurrent ingest and is
    // handled by the caller, which also reports every other failure.
    // Long, and on purpose: one transaction of plain writes in order, on both
    // backends through `on_pool!`; split up, each part would have to be generic
    // over sqlx's `Database` and its executor, which reads worse than the list.
    #[tracing::instrument(skip_all, fields(batch_id = commit.batch_id), err(level = "debug"))]
    pub async fn commit_batch(&self, commit: &BatchCommit) -> Result<()> {
        let counts = commit.counts;
        let outcome: Result<()> = on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            if matches!(self.pool, Pool::Postgres(_)) {
                sqlx::query::<Db>("SELECT pg_advisory_xact_lock($1)")
                    .bind(COMMIT_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            // On SQLite this first write takes the database's write lock, so the
            // conflict check below cannot race another commit.
            let updated = sqlx::query::<Db>(
                "UPDATE ingest_batches SET status = 'committed', rows_read = $2, rows_written = $3, \
                 rows_duplicate = $4, rows_quarantined = $5, bytes_read = $6, finished_at = $7 \
                 WHERE id = $1 AND status = 'writing'",
            )
            .bind(commit.batch_id)
            .bind(counts.read)
            .bind(counts.written)
            .bind(counts.duplicate)
            .bind(counts.quarantined)
            .bind(counts.bytes_read)
            .bind(Utc::now())
            .execute(&mut *tx)
            .await;
            match updated {
                Ok(done) if done.rows_affected() == 1 => {}
                Ok(_) => {
                    return Err(StoreError::InvalidBatchState {
                        batch_id: commit.batch_id,
                    });
                }
                Err(e) if crate::error::is_unique_violation(&e) => {
                    drop(tx);
                    return Err(self.already_committed(commit.batch_id).await);
                }
                Err(e) => return Err(e.into()),
            }

            let touched: std::collections::BTreeSet<(&str, &str)> = commit
                .files
                .iter()
                .map(|f| (f.table_name.as_str(), f.partition_date.as_str()))
                .collect();
            let newer: Vec<(String, String)> = sqlx::query_as::<Db, (String, String)>(
                "SELECT DISTINCT table_name, partition_date FROM lake_files WHERE id > $1",
            )
            .bind(commit.watermark)
            .fetch_all(&mut *tx)
            .await?;
            let clashing: Vec<String> = newer
                .iter()
                .filter(|(t, d)| touched.contains(&(t.as_str(), d.as_str())))
                .map(|(t, d)| format!("{t} {d}"))
                .collect();
            if !clashing.is_empty() {
                return Err(StoreError::CommitConflict {
                    batch_id: commit.batch_id,
                    clashing: clashing.join(", "),
                });
            }

            let now = Utc::now();
            for chunk in commit.files.chunks(500) {
                let mut query = QueryBuilder::<Db>::new(
                    "INSERT INTO lake_files (batch_id, table_name, partition_date, path, \
                     row_count, byte_size, min_time, max_time, created_at) ",
                );
                query.push_values(chunk, |mut row, f| {
                    row.push_bind(commit.batch_id)
                        .push_bind(f.table_name.clone())
                        .push_bind(f.partition_date.clone())
                        .push_bind(f.path.clone())
                        .push_bind(f.row_count)
                        .push_bind(f.byte_size)
                        .push_bind(f.min_time)
                        .push_bind(f.max_time)
                        .push_bind(now);
                });
                query.build().execute(&mut *tx).await?;
            }
            if !commit.files.is_empty() {
                // Its hours' rollups are owed from now on, even if this process
                // dies before it computes them.
                sqlx::query::<Db>("INSERT INTO rollup_pending (batch_id) VALUES ($1)")
                    .bind(commit.batch_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        });
        outcome
    }

    async fn already_committed(&self, batch_id: i64) -> StoreError {
        let sha = match self.batch(batch_id).await {
            Ok(Some(b)) => b.content_sha256,
            Ok(None) => return StoreError::InvalidBatchState { batch_id },
            Err(e) => return e,
        };
        match self.committed_batch_by_content(&sha).await {
            Ok(Some(existing)) => StoreError::AlreadyCommitted {
                sha256: sha,
                existing_batch: existing.id,
            },
            Ok(None) => StoreError::InvalidBatchState { batch_id },
            Err(e) => e,
        }
    }
}
