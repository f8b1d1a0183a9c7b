//! A begun batch, run to its commit: one pass over the file against a manifest
//! watermark, then the commit, with the answer to a commit conflict.
//!
//! A conflict means another batch committed files for one of this batch's tables
//! and dates after its watermark. If none of the rows this batch wrote is in those
//! files, its deduplication still holds and it commits against the newer
//! watermark; only a real overlap costs a second pass. Files of one day ingested
//! side by side (`--jobs`) thus rarely read their input twice.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Handle;
use tollgate_store::schema::{LAKE_TABLES, dedupe_column};
use tollgate_store::state::{BatchCommit, BatchCounts, BatchStatus, NewLakeFile};
use tollgate_store::{Store, StoreError};

use crate::pipeline::{
    Fingerprint, IngestOptions, IngestReport, MAX_COMMIT_ATTEMPTS, Outcome, Pass, already_ingested,
    committed, discard, failpoint, fingerprint, record_failure,
};
use crate::progress::Progress;
use crate::{IngestError, Result};

pub(crate) struct BatchRun<'a> {
    pub store: &'a Store,
    pub path: &'a Path,
    pub options: &'a IngestOptions,
    pub progress: &'a Arc<dyn Progress>,
    pub batch_id: i64,
    pub source: String,
    pub size: u64,
    pub fingerprint: Fingerprint,
}

/// Commits retried against a newer watermark, per pass.
const MAX_RECOMMITS: u32 = 1000;

enum Overlap {
    /// None of the batch's rows is in the newer files: commit against `newer`.
    None {
        newer: i64,
    },
    Some,
}

/// What a finished pass left to commit.
struct Written {
    files: Vec<NewLakeFile>,
    counts: BatchCounts,
}

impl BatchRun<'_> {
    pub(crate) async fn run(self) -> Result<IngestReport> {
        let mut passes = 0;
        'pass: loop {
            passes += 1;
            let mut watermark = self.store.db.manifest_watermark().await?;
            let Written { files, counts } = self.pass(watermark).await?;
            // Each retry follows another batch's commit, so this ends; the bound
            // only guards against a manifest that keeps moving for other reasons.
            for _ in 0..MAX_RECOMMITS {
                failpoint("ingest.before_commit");
                let commit = BatchCommit {
                    batch_id: self.batch_id,
                    counts,
                    files: files.clone(),
                    watermark,
                };
                match self.store.db.commit_batch(&commit).await {
                    Ok(()) => return Ok(self.committed(counts, &files)),
                    Err(StoreError::CommitConflict { .. }) => {}
                    Err(e) => return self.commit_failed(e, counts, &files).await,
                }
                let newer = match self.overlap_since(&files, watermark).await {
                    Ok(Overlap::None { newer }) => newer,
                    Ok(Overlap::Some) if passes < MAX_COMMIT_ATTEMPTS => {
                        tracing::info!(
                            batch_id = self.batch_id,
                            "a concurrent batch committed some of the same rows; deduplicating again"
                        );
                        discard(&self.store.lake, &files);
                        self.store.db.clear_quarantine(self.batch_id).await?;
                        continue 'pass;
                    }
                    Ok(Overlap::Some) => break,
                    Err(e) => {
                        discard(&self.store.lake, &files);
                        record_failure(&self.store.db, self.batch_id, counts, &e).await;
                        return Err(e);
                    }
                };
                tracing::info!(
                    batch_id = self.batch_id,
                    watermark = newer,
                    "a concurrent batch committed the same dates but none of these rows; committing as is"
                );
                watermark = newer;
            }
            discard(&self.store.lake, &files);
            let e = IngestError::TooManyConflicts {
                path: self.path.to_path_buf(),
                attempts: passes,
            };
            record_failure(&self.store.db, self.batch_id, counts, &e).await;
            return Err(e);
        }
    }

    /// Reads the whole file once, deduplicating against the lake as of `watermark`.
    async fn pass(&self, watermark: i64) -> Result<Written> {
        let mut files_by_date: HashMap<(&'static str, String), Vec<String>> = HashMap::new();
        for table in LAKE_TABLES {
            for f in self.store.db.lake_files_upto(table, watermark).await? {
                files_by_date
                    .entry((table, f.file.partition_date))
                    .or_default()
                    .push(f.file.path);
            }
        }
        let pass = Pass {
            lake: self.store.lake.clone(),
            db: self.store.db.clone(),
            handle: Handle::current(),
            path: self.path.to_path_buf(),
            batch_id: self.batch_id,
            options: self.options.clone(),
            files_by_date,
            progress: self.progress.clone(),
            check: crate::limits::Check {
                limits: self.options.limits.clone(),
                window: self.store.window,
                now: self.store.clock.now(),
            },
        };
        let (outcome, mut counts) = tokio::task::spawn_blocking(move || pass.run()).await?;
        counts.bytes_read = self.size as i64;
        let files = match outcome {
            Ok(files) => files,
            Err(e) => {
                record_failure(&self.store.db, self.batch_id, counts, &e).await;
                return Err(e);
            }
        };
        debug_assert!(counts.reconciles());
        if fingerprint(self.path)? != self.fingerprint {
            discard(&self.store.lake, &files);
            let e = IngestError::ChangedDuringIngest {
                path: self.path.to_path_buf(),
            };
            record_failure(&self.store.db, self.batch_id, counts, &e).await;
            return Err(e);
        }
        Ok(Written { files, counts })
    }

    /// Whether a row of `files` is in a file committed for the same table and date
    /// since `watermark`.
    async fn overlap_since(&self, files: &[NewLakeFile], watermark: i64) -> Result<Overlap> {
        let newer = self.store.db.manifest_watermark().await?;
        let tables: HashSet<&str> = files.iter().map(|f| f.table_name.as_str()).collect();
        let mut pairs: Vec<(&'static str, String, Vec<String>)> = Vec::new();
        for table in LAKE_TABLES.into_iter().filter(|t| tables.contains(t)) {
            let since: Vec<_> = self
                .store
                .db
                .lake_files_upto(table, newer)
                .await?
                .into_iter()
                .filter(|f| f.id > watermark)
                .collect();
            for ours in files.iter().filter(|f| f.table_name == table) {
                let theirs: Vec<String> = since
                    .iter()
                    .filter(|f| f.file.partition_date == ours.partition_date)
                    .map(|f| f.file.path.clone())
                    .collect();
                if !theirs.is_empty() {
                    pairs.push((table, ours.path.clone(), theirs));
                }
            }
        }
        let lake = self.store.lake.clone();
        let overlaps = tokio::task::spawn_blocking(move || -> Result<bool> {
            for (table, ours, theirs) in pairs {
                let column = dedupe_column(table);
                let ours = lake.id_set(&ours, column)?;
                for path in theirs {
                    if lake.id_set(&path, column)?.meets(&ours) {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        })
        .await??;
        Ok(match overlaps {
            true => Overlap::Some,
            false => Overlap::None { newer },
        })
    }

    fn committed(&self, counts: BatchCounts, files: &[NewLakeFile]) -> IngestReport {
        self.progress.finish();
        tracing::info!(
            batch_id = self.batch_id,
            read = counts.read,
            written = counts.written,
            duplicate = counts.duplicate,
            quarantined = counts.quarantined,
            "batch committed"
        );
        committed(self.source.clone(), self.batch_id, counts, files)
    }

    /// A commit that failed for another reason than a conflict.
    async fn commit_failed(
        &self,
        error: StoreError,
        counts: BatchCounts,
        files: &[NewLakeFile],
    ) -> Result<IngestReport> {
        let (store, batch_id) = (self.store, self.batch_id);
        if let StoreError::AlreadyCommitted { existing_batch, .. } = error {
            discard(&store.lake, files);
            store
                .db
                .fail_batch(
                    batch_id,
                    counts,
                    &format!("same content committed as batch {existing_batch}"),
                )
                .await?;
            let existing = store.db.batch(existing_batch).await?;
            self.progress.finish();
            return Ok(match existing {
                Some(b) => already_ingested(self.source.clone(), &b),
                None => IngestReport {
                    source: self.source.clone(),
                    batch_id: existing_batch,
                    outcome: Outcome::AlreadyIngested,
                    counts: BatchCounts::default(),
                    files: 0,
                    watermark: 0,
                },
            });
        }
        // The outcome is unknown when the connection broke around the commit: the
        // server may have committed. Only a batch known not to be committed may
        // lose its files; otherwise gc decides later.
        match store.db.batch(batch_id).await {
            Ok(Some(b)) if b.status == BatchStatus::Committed.as_str() => {
                tracing::warn!(batch_id, error = %error, "commit reported an error but is committed");
                return Ok(self.committed(counts, files));
            }
            Ok(Some(_)) => discard(&store.lake, files),
            _ => tracing::warn!(batch_id, "commit outcome unknown; leaving its files to gc"),
        }
        let e = IngestError::from(error);
        record_failure(&store.db, batch_id, counts, &e).await;
        Err(e)
    }
}
