//! The lake: `<lake>/<table>/date=YYYY-MM-DD/<batch>-<uuid>.parquet`, in a local
//! directory or under an object-store prefix ([`LakeUrl`]).
//!
//! Files are written atomically (on disk: temporary name, fsync, rename, fsync the
//! directory; in an object store: one put or a multipart upload, each complete or
//! absent) but a written file is not yet *visible*: only the manifest in the state
//! database says which files readers see. Anything else under the lake is garbage
//! once old enough, and [`Lake::gc`] removes it.

mod location;
pub(crate) mod objects;

pub use location::{Cloud, LakeUrl};

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::compute::{SortOptions, sort_to_indices, take_record_batch};
use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::Length;
use serde::Serialize;

use crate::ids::{IdCache, IdSet, id_hash};
use crate::state::NewLakeFile;
use crate::{Result, StoreError};

const TMP_PREFIX: &str = ".tmp-";

/// Where query sessions find a lake in an object store (see [`Lake::query_url`]).
pub const QUERY_STORE_URL: &str = "tollgate-lake://lake/";

#[derive(Debug, Clone)]
pub struct Lake {
    url: Arc<LakeUrl>,
    /// The directory of a local lake (absolute); its files are read and written
    /// with the file system's own calls, fsync included.
    root: PathBuf,
    /// The object store of a lake that is not local, rooted at the lake.
    objects: Option<Arc<dyn ObjectStore>>,
    /// The same store unrooted (its whole bucket or container), and the lake's
    /// prefix in it: what query sessions read through. Not the rooted store:
    /// object_store 0.13's `PrefixStore` answers `head` with the full path,
    /// which DataFusion then does not recognise as the file it asked for.
    bucket: Option<(Arc<dyn ObjectStore>, String)>,
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
    /// A lake in a local directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Lake {
            url: Arc::new(LakeUrl::Local(root.clone())),
            root,
            objects: None,
            bucket: None,
            ids: Arc::default(),
        }
    }

    /// The lake at `url`: a local directory (created, made absolute) or an
    /// object-store prefix (opened with the environment's credentials).
    pub fn open(url: &LakeUrl) -> Result<Self> {
        match url {
            LakeUrl::Local(dir) => {
                fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
                // Readers address files by absolute URL: a relative path must work too.
                let root = std::path::absolute(dir).map_err(|e| StoreError::io(dir, e))?;
                Ok(Lake::new(root))
            }
            LakeUrl::Object { .. } => {
                let bucket = url.open_objects()?;
                let objects = bucket
                    .as_ref()
                    .map(|(store, prefix)| -> Arc<dyn ObjectStore> {
                        if prefix.is_empty() {
                            Arc::clone(store)
                        } else {
                            Arc::new(PrefixStore::new(Arc::clone(store), prefix.as_str()))
                        }
                    });
                Ok(Lake {
                    url: Arc::new(url.clone()),
                    root: PathBuf::new(),
                    objects,
                    bucket,
                    ids: Arc::default(),
                })
            }
        }
    }

    /// Where the lake is, as configured (no credentials are ever part of it).
    pub fn url(&self) -> &LakeUrl {
        &self.url
    }

    /// The directory of a local lake; `None` for one in an object store.
    pub fn local_root(&self) -> Option<&Path> {
        self.objects.is_none().then_some(self.root.as_path())
    }

    /// The object store of a lake that is not local, rooted at the lake.
    pub fn object_store(&self) -> Option<&Arc<dyn ObjectStore>> {
        self.objects.as_ref()
    }

    /// The store query sessions register under [`QUERY_STORE_URL`] (the
    /// whole bucket; [`Lake::query_url`] adds the lake's prefix).
    pub fn query_store(&self) -> Option<&Arc<dyn ObjectStore>> {
        self.bucket.as_ref().map(|(store, _)| store)
    }

    /// The URL DataFusion reads a lake file at: `file://` for a local lake; for
    /// one in an object store, under [`QUERY_STORE_URL`], where each session
    /// registers the lake's store. A URL of our own, not the cloud's: DataFusion
    /// keys stores by scheme and host, and `abfss://container@account...` URLs
    /// of two containers share a host.
    pub fn query_url(&self, rel: &str) -> Result<url::Url> {
        let invalid = |e: String| StoreError::InvalidLakeUrl {
            url: self.url.to_string(),
            reason: e,
        };
        match &self.bucket {
            None => {
                let path = self.root.join(rel);
                url::Url::from_file_path(&path)
                    .map_err(|()| invalid(format!("{} is not an absolute path", path.display())))
            }
            Some((_, prefix)) => {
                let mut url =
                    url::Url::parse(QUERY_STORE_URL).map_err(|e| invalid(e.to_string()))?;
                // Segment by segment: a `?`, `#` or `[` in a name is escaped, not parsed.
                url.path_segments_mut()
                    .map_err(|()| invalid("the query URL has no path".into()))?
                    .pop_if_empty()
                    .extend(prefix.split('/').filter(|s| !s.is_empty()))
                    .extend(rel.split('/'));
                Ok(url)
            }
        }
    }

    /// Where a manifest path is: a local path, or the object's URL.
    pub fn absolute(&self, rel: &str) -> PathBuf {
        match self.objects {
            None => self.root.join(rel),
            Some(_) => PathBuf::from(format!("{}/{rel}", self.url)),
        }
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

    /// Writes `batch` as `<dir_rel>/<name>` (on disk under a temporary name,
    /// fsynced, renamed, the directory fsynced). Returns the file's size.
    pub(crate) fn write_parquet(
        &self,
        dir_rel: &str,
        name: &str,
        batch: &RecordBatch,
        sorting: Option<SortingColumn>,
        codec: Codec,
    ) -> Result<u64> {
        let props = writer_properties(sorting, codec);
        if let Some(objects) = &self.objects {
            let rel = format!("{dir_rel}/{name}");
            let parquet_err = |source| StoreError::Parquet {
                path: self.absolute(&rel),
                source,
            };
            let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))
                .map_err(parquet_err)?;
            writer.write(batch).map_err(parquet_err)?;
            let bytes = writer.into_inner().map_err(parquet_err)?;
            let size = bytes.len() as u64;
            objects::wait(objects::put(Arc::clone(objects), rel, bytes))?;
            return Ok(size);
        }
        let dir = self.root.join(dir_rel);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let final_path = dir.join(name);
        let tmp_path = dir.join(format!("{TMP_PREFIX}{name}"));
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

    /// A reader of a file of the lake; a missing one is
    /// [`StoreError::MissingLakeFile`].
    fn reader(&self, rel: &str) -> Result<(PathBuf, ParquetRecordBatchReaderBuilder<Source>)> {
        let path = self.absolute(rel);
        let source = match &self.objects {
            Some(objects) => Source::Object(objects::wait(objects::get(
                Arc::clone(objects),
                rel.to_owned(),
            ))?),
            None => match File::open(&path) {
                Ok(f) => Source::File(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::MissingLakeFile { path });
                }
                Err(e) => return Err(StoreError::io(&path, e)),
            },
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(source).map_err(|source| {
            StoreError::Parquet {
                path: path.clone(),
                source,
            }
        })?;
        Ok((path, builder))
    }

    /// Reads a whole Parquet file of the lake.
    pub(crate) fn read_parquet(&self, rel: &str) -> Result<Vec<RecordBatch>> {
        let (path, builder) = self.reader(rel)?;
        let reader = builder
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|source| StoreError::Parquet {
                path: path.clone(),
                source,
            })?;
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
        let (path, builder) = self.reader(rel)?;
        let parquet_err = |source| StoreError::Parquet {
            path: path.clone(),
            source,
        };
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
        if let Err(e) = self.remove(rel) {
            tracing::warn!(error = %e, "could not discard uncommitted lake file");
        }
    }

    /// Deletes a file of the lake; one already gone is not an error.
    pub fn remove(&self, rel: &str) -> Result<()> {
        if let Some(objects) = &self.objects {
            return objects::wait(objects::delete(Arc::clone(objects), rel.to_owned()));
        }
        let path = self.absolute(rel);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
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
        for file in self.table_files(table)? {
            let Some(name) = file.rel.rsplit('/').next() else {
                continue;
            };
            let ours = name.ends_with(".parquet") || name.starts_with(TMP_PREFIX);
            if !ours || referenced.contains(&file.rel) {
                continue;
            }
            if live.is_some_and(|live| batch_of(name).is_some_and(|b| live.contains(&b))) {
                report.files_kept_young += 1;
                continue;
            }
            if file.age < grace {
                report.files_kept_young += 1;
                continue;
            }
            self.remove(&file.rel)?;
            tracing::info!(path = %file.rel, bytes = file.size, "removed unreferenced lake file");
            report.files_removed += 1;
            report.bytes_removed += file.size;
        }
        if self.objects.is_none() {
            // An emptied partition directory goes too; a non-empty one stays.
            for date_dir in read_dir_if_exists(&self.root.join(table))? {
                let _ = fs::remove_dir(&date_dir);
            }
        }
        Ok(())
    }

    /// The files under `table/date=*/`, with their age and size.
    fn table_files(&self, table: &str) -> Result<Vec<ListedFile>> {
        let now = SystemTime::now();
        let in_partition = |rel: &str| {
            rel.strip_prefix(table)
                .and_then(|r| r.strip_prefix("/date="))
                .is_some_and(|r| r.matches('/').count() == 1)
        };
        if let Some(objects) = &self.objects {
            let listed = objects::wait(objects::list(Arc::clone(objects), table.to_owned()))?;
            let now = Utc::now();
            return Ok(listed
                .into_iter()
                .map(|meta| ListedFile {
                    rel: meta.location.to_string(),
                    size: meta.size,
                    age: (now - meta.last_modified).to_std().unwrap_or_default(),
                })
                .filter(|f| in_partition(&f.rel))
                .collect());
        }
        let mut files = Vec::new();
        for date_dir in read_dir_if_exists(&self.root.join(table))? {
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
                files.push(ListedFile {
                    rel: format!("{table}/{date_name}/{name}"),
                    size: meta.len(),
                    age,
                });
            }
        }
        Ok(files)
    }
}

/// A file garbage collection looked at.
#[derive(Debug)]
struct ListedFile {
    rel: String,
    size: u64,
    age: Duration,
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

/// What a lake file is read from: a local file, or an object's bytes.
#[derive(Debug)]
enum Source {
    File(File),
    Object(bytes::Bytes),
}

impl parquet::file::reader::Length for Source {
    fn len(&self) -> u64 {
        match self {
            Source::File(f) => Length::len(f),
            Source::Object(b) => Length::len(b),
        }
    }
}

impl parquet::file::reader::ChunkReader for Source {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            Source::File(f) => Box::new(f.get_read(start)?),
            Source::Object(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self {
            Source::File(f) => f.get_bytes(start, length),
            Source::Object(b) => b.get_bytes(start, length),
        }
    }
}

fn writer_properties(sorting: Option<SortingColumn>, codec: Codec) -> WriterProperties {
    let compression = match codec {
        // Level 3 is valid by the zstd crate's own range (1..=22).
        Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()),
        Codec::Plain => Compression::UNCOMPRESSED,
    };
    WriterProperties::builder()
        .set_compression(compression)
        .set_sorting_columns(sorting.map(|s| vec![s]))
        .build()
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
