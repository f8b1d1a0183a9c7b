//! The lake on disk: `<root>/<table>/date=YYYY-MM-DD/<batch>-<uuid>.parquet`.
//!
//! Files are written atomically (temporary name, fsync, rename, fsync the directory)
//! but a written file is not yet *visible*: only the manifest in the state database
//! says which files readers see. Anything else under the root is garbage once old
//! enough, and [`Lake::gc`] removes it.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::{SortOptions, sort_to_indices, take_record_batch};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::ids::{IdCache, IdSet, id_hash};
use crate::state::NewLakeFile;
use crate::{Result, StoreError};

const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
    /// Committed files' id sets, shared by every clone (see [`Lake::id_set`]).
    ids: Arc<IdCache>,
}

/// What garbage collection removed.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct GcReport {
    pub files_removed: u64,
    pub bytes_removed: u64,
    /// Unreferenced files kept because they are younger than the grace period
    /// (they may belong to a batch still being written).
    pub files_kept_young: u64,
}

impl Lake {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Lake {
            root: root.into(),
            ids: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a manifest path.
    pub fn absolute(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Sorts `batch` by its `time` column and writes it as one ZSTD Parquet file of
    /// `table` for `date`. The file exists afterwards but stays invisible until its
    /// [`NewLakeFile`] is committed.
    pub fn write_file(
        &self,
        table: &str,
        date: &str,
        batch_id: i64,
        batch: &RecordBatch,
    ) -> Result<NewLakeFile> {
        let time_idx = batch.schema().index_of("time")?;
        let order = sort_to_indices(
            batch.column(time_idx),
            Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
            None,
        )?;
        let sorted = take_record_batch(batch, &order)?;
        let (min_time, max_time) = time_range(&sorted, time_idx)?;

        let dir_rel = format!("{table}/date={date}");
        let name = format!("{batch_id:010}-{}.parquet", uuid::Uuid::now_v7().simple());
        let sorting = SortingColumn {
            column_idx: time_idx as i32,
            descending: false,
            nulls_first: false,
        };
        let byte_size = self.write_parquet(&dir_rel, &name, &sorted, Some(sorting), Codec::Zstd)?;

        Ok(NewLakeFile {
            table_name: table.to_owned(),
            partition_date: date.to_owned(),
            path: format!("{dir_rel}/{name}"),
            row_count: sorted.num_rows() as i64,
            byte_size: byte_size as i64,
            min_time,
            max_time,
        })
    }

    /// Writes `batch` as `<dir_rel>/<name>`: under a temporary name, fsynced,
    /// renamed, the directory fsynced. Returns the file's size.
    pub(crate) fn write_parquet(
        &self,
        dir_rel: &str,
        name: &str,
        batch: &RecordBatch,
        sorting: Option<SortingColumn>,
        codec: Codec,
    ) -> Result<u64> {
        let dir = self.root.join(dir_rel);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let final_path = dir.join(name);
        let tmp_path = dir.join(format!("{TMP_PREFIX}{name}"));
        let compression = match codec {
            Codec::Zstd => {
                Compression::ZSTD(ZstdLevel::try_new(3).map_err(|e| StoreError::Parquet {
                    path: tmp_path.clone(),
                    source: e,
                })?)
            }
            Codec::Plain => Compression::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_sorting_columns(sorting.map(|s| vec![s]))
            .build();
        let parquet_err = |source| StoreError::Parquet {
            path: tmp_path.clone(),
            source,
        };
        let file = File::create(&tmp_path).map_err(|e| StoreError::io(&tmp_path, e))?;
        let mut writer = ArrowWriter::try_new(BufWriter::new(file), batch.schema(), Some(props))
            .map_err(parquet_err)?;
        writer.write(batch).map_err(parquet_err)?;
        let file = writer
            .into_inner()
            .map_err(parquet_err)?
            .into_inner()
            .map_err(|e| StoreError::io(&tmp_path, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&tmp_path, e))?;
        let byte_size = file
            .metadata()
            .map_err(|e| StoreError::io(&tmp_path, e))?
            .len();
        drop(file);
        fs::rename(&tmp_path, &final_path).map_err(|e| StoreError::io(&final_path, e))?;
        sync_dir(&dir)?;
        Ok(byte_size)
    }

    /// Opens a file under the root; a missing one is [`StoreError::MissingLakeFile`].
    fn open_file(&self, rel: &str) -> Result<(PathBuf, File)> {
        let path = self.absolute(rel);
        match File::open(&path) {
            Ok(f) => Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::MissingLakeFile { path })
            }
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }

    /// Reads a whole Parquet file under the root.
    pub(crate) fn read_parquet(&self, rel: &str) -> Result<Vec<RecordBatch>> {
        let (path, file) = self.open_file(rel)?;
        let parquet_err = |source| StoreError::Parquet {
            path: path.clone(),
            source,
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(parquet_err)?
            .with_batch_size(64 * 1024)
            .build()
            .map_err(parquet_err)?;
        reader
            .map(|b| {
                b.map_err(|source| StoreError::ArrowInFile {
                    path: path.clone(),
                    source,
                })
            })
            .collect()
    }

    /// The ids of the file `rel` in its dedupe `column`, hashed once and kept
    /// (lake files never change).
    pub fn id_set(&self, rel: &str, column: &'static str) -> Result<Arc<IdSet>> {
        if let Some(set) = self.ids.get(rel, column) {
            return Ok(set);
        }
        let (path, file) = self.open_file(rel)?;
        let parquet_err = |source| StoreError::Parquet {
            path: path.clone(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        let arrow_err = |source| StoreError::ArrowInFile {
            path: path.clone(),
            source,
        };
        let idx = builder.schema().index_of(column).map_err(arrow_err)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
        let reader = builder.with_projection(mask).build().map_err(parquet_err)?;
        let mut hashes = Vec::new();
        for batch in reader {
            let batch = batch.map_err(arrow_err)?;
            let strings = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| {
                    arrow_err(arrow::error::ArrowError::SchemaError(format!(
                        "column {column} is not a string column"
                    )))
                })?;
            hashes.extend(strings.iter().flatten().map(id_hash));
        }
        let set = Arc::new(IdSet::from_hashes(hashes));
        self.ids.put(rel, column, Arc::clone(&set));
        Ok(set)
    }

    /// Removes a file this process wrote but will not commit. Best effort: what is
    /// left behind is garbage `gc` collects.
    pub fn discard(&self, rel: &str) {
        let path = self.absolute(rel);
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not discard uncommitted lake file");
        }
    }

    /// Deletes Parquet and temporary files under the table directories that no
    /// manifest row names, if they are older than `grace`.
    /// Files named for a batch in `live` (still writing) are kept whatever their age.
    pub fn gc(
        &self,
        referenced: &HashSet<String>,
        live: &HashSet<i64>,
        grace: Duration,
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        for table in crate::schema::LAKE_TABLES {
            self.gc_table(table, referenced, Some(live), grace, &mut report)?;
        }
        Ok(report)
    }

    /// The same for the derived tables (`derived/<table>`), whose files the
    /// rollup hours name (`referenced`).
    pub fn gc_derived(&self, referenced: &HashSet<String>, grace: Duration) -> Result<GcReport> {
        let mut report = GcReport::default();
        for tier in [crate::derived::Tier::Hourly, crate::derived::Tier::Minute] {
            let table = format!("{}/{}", crate::derived::DERIVED_DIR, tier.table());
            self.gc_table(&table, referenced, None, grace, &mut report)?;
        }
        Ok(report)
    }

    fn gc_table(
        &self,
        table: &str,
        referenced: &HashSet<String>,
        live: Option<&HashSet<i64>>,
        grace: Duration,
        report: &mut GcReport,
    ) -> Result<()> {
        let now = SystemTime::now();
        let table_dir = self.root.join(table);
        for date_dir in read_dir_if_exists(&table_dir)? {
            let Some(date_name) = file_name(&date_dir) else {
                continue;
            };
            if !date_name.starts_with("date=") || !date_dir.is_dir() {
                continue;
            }
            for path in read_dir_if_exists(&date_dir)? {
                let Some(name) = file_name(&path) else {
                    continue;
                };
                let ours = name.ends_with(".parquet") || name.starts_with(TMP_PREFIX);
                let rel = format!("{table}/{date_name}/{name}");
                if !ours || referenced.contains(&rel) {
                    continue;
                }
                if live.is_some_and(|live| batch_of(&name).is_some_and(|b| live.contains(&b))) {
                    report.files_kept_young += 1;
                    continue;
                }
                // A temporary file may be renamed by a running ingest meanwhile.
                let meta = match fs::metadata(&path) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(&path, e)),
                };
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                if age < grace {
                    report.files_kept_young += 1;
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(&path, e)),
                }
                tracing::info!(path = %rel, bytes = meta.len(), "removed unreferenced lake file");
                report.files_removed += 1;
                report.bytes_removed += meta.len();
            }
            // An emptied partition directory goes too; a non-empty one stays.
            let _ = fs::remove_dir(&date_dir);
        }
        Ok(())
    }
}

/// The batch id a lake file name starts with (`0000000042-<uuid>.parquet`, or its
/// temporary `.tmp-` form).
fn batch_of(name: &str) -> Option<i64> {
    let name = name.strip_prefix(TMP_PREFIX).unwrap_or(name);
    name.split_once('-')?.0.parse().ok()
}

fn time_range(sorted: &RecordBatch, time_idx: usize) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    let times = sorted
        .column(time_idx)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| {
            arrow::error::ArrowError::SchemaError("time is not a microsecond timestamp".into())
        })?;
    let to_time = |i: usize| {
        DateTime::from_timestamp_micros(times.value(i)).ok_or_else(|| {
            arrow::error::ArrowError::ComputeError(format!("time {} out of range", times.value(i)))
        })
    };
    if times.is_empty() {
        return Err(arrow::error::ArrowError::ComputeError("empty lake file".into()).into());
    }
    Ok((to_time(0)?, to_time(times.len() - 1)?))
}

fn read_dir_if_exists(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(|err| StoreError::io(dir, err)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io(dir, e)),
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_owned)
}

/// How a file's pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The lake's facts: written once, read by every engine, smallest.
    Zstd,
    /// Derived files, a thousand small ones a month, rewritten as data
    /// arrives: zstd made a compression context per column chunk, which
    /// cost more than the bytes it saved.
    Plain,
}

/// Makes a rename durable: the directory entry itself must reach the disk.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}
