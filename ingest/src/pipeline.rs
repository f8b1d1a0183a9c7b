//! One file in, one batch out: hash, dedupe against the committed lake, buffer by
//! date, write Parquet, quarantine bad lines, commit atomically.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::DateTime;
use serde::Serialize;
use tokio::runtime::Handle;
use tollgate_store::ids::{IdSet, id_hash};
use tollgate_store::schema::{
    BILLED_COSTS, DLP_HITS, GENAI_SPANS, REQUESTS, TOKEN_METRICS, TOKEN_USAGE, dedupe_column,
};
use tollgate_store::state::{BatchCounts, NewLakeFile, QuarantineRow};
use tollgate_store::{Lake, StateDb, Store, StoreError};

use crate::batch::BatchRun;
use crate::dimensions::Dimensions;
use crate::document::{Layout, csv_raw, csv_row, document_records, for_each_array_element};
use crate::format::Format;
use crate::limits::{Check, Limits};
use crate::progress::Progress;
use crate::reader::{LineReader, RecordBound, RecordMarks, TooLarge};
use crate::record::{LakeBuffers, MICROS_PER_DAY, Record, TokenRecord};
use crate::{IngestError, Result};

/// How much of a quarantined line is kept.
pub const QUARANTINE_RAW_BYTES: usize = 4096;
/// How much of a quarantine reason is kept (a reason may quote the value).
const QUARANTINE_REASON_BYTES: usize = 1024;
pub(crate) const MAX_COMMIT_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub format: Format,
    /// Buffered rows (all dates together) that trigger writing files; bounds memory.
    pub max_buffered_rows: usize,
    /// Where agent, user, tool and priority come from.
    pub dimensions: Dimensions,
    /// What a record, a file and a batch may hold.
    pub limits: Limits,
    /// Whether the batch's rollups are computed before [`ingest_file`] returns.
    pub derive: Derive,
    /// Whether a cost export (the bill) may be read: a log shipper's push
    /// must not write the invoice FinOps reconciles against.
    pub allow_cost_exports: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: Format::Canonical,
            max_buffered_rows: 262_144,
            dimensions: Dimensions::default(),
            limits: Limits::default(),
            derive: Derive::Inline,
            allow_cost_exports: true,
        }
    }
}

/// When a committed batch's derived data (its hours' rollups) is computed.
/// Either way the commit lists the batch as owed its rollups, so nothing is
/// lost if the process dies before they are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derive {
    /// Right after the commit, before the ingest returns.
    Inline,
    /// Later, by whoever catches up ([`Store::catch_up_rollups`]): a server's
    /// deriver after acknowledging a push, or a CLI ingest once all its files
    /// are in, so a burst of batches is rolled up once.
    Deferred,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Committed,
    /// The same content was committed before; nothing changed.
    AlreadyIngested,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    pub source: String,
    pub batch_id: i64,
    pub outcome: Outcome,
    pub counts: BatchCounts,
    pub files: usize,
    /// The manifest watermark once the batch was committed: a derived answer
    /// whose watermark is at least this one includes the batch.
    pub watermark: i64,
}

impl std::fmt::Display for IngestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        let what = match self.outcome {
            Outcome::Committed => format!("batch {} committed", self.batch_id),
            Outcome::AlreadyIngested => {
                format!(
                    "already ingested as batch {}, nothing changed",
                    self.batch_id
                )
            }
        };
        write!(
            f,
            "{}: {what}: read {} = written {} + duplicate {} + quarantined {}",
            self.source, c.read, c.written, c.duplicate, c.quarantined
        )
    }
}

/// Ingests one file as one batch. Re-ingesting the same content changes nothing.
pub async fn ingest_file(
    store: &Store,
    path: &Path,
    options: &IngestOptions,
    progress: Arc<dyn Progress>,
) -> Result<IngestReport> {
    ingest_named(store, path, &path.display().to_string(), options, progress).await
}

/// [`ingest_file`] with the batch named `source` (a pushed body is named by
/// its spool entry, not by where the server keeps it).
#[tracing::instrument(skip_all, fields(path = %path.display()), err)]
pub async fn ingest_named(
    store: &Store,
    path: &Path,
    source: &str,
    options: &IngestOptions,
    progress: Arc<dyn Progress>,
) -> Result<IngestReport> {
    let source = source.to_owned();
    // Taken before hashing, compared after reading: an append at any point in
    // between is noticed.
    let fingerprint = fingerprint(path)?;
    let owned = path.to_path_buf();
    let (sha256, size) = tokio::task::spawn_blocking(move || hash_file(&owned)).await??;

    if let Some(existing) = store.db.committed_batch_by_content(&sha256).await? {
        let mut report = already_ingested(source, &existing);
        report.watermark = store.db.manifest_watermark().await?;
        return Ok(report);
    }
    // Detected only for content not yet committed: a file ingested before under
    // an explicit format is "already ingested", whatever auto would make of it.
    let resolved;
    let options = if options.format == Format::Auto {
        let owned = path.to_path_buf();
        let limits = options.limits.clone();
        let format = tokio::task::spawn_blocking(move || detect_format(&owned, &limits)).await??;
        resolved = IngestOptions {
            format,
            ..options.clone()
        };
        &resolved
    } else {
        options
    };
    if options.format == Format::AzureCost && !options.allow_cost_exports {
        return Err(IngestError::CostExportNotHere {
            path: path.to_path_buf(),
        });
    }
    let batch_id = store
        .db
        .begin_batch(&source, &sha256, options.format.name())
        .await?;
    progress.start(&source, size);
    let batch = BatchRun {
        store,
        path,
        options,
        progress: &progress,
        batch_id,
        source,
        size,
        fingerprint,
    };
    let mut outcome = batch.run().await;
    if let Ok(report) = &mut outcome {
        report.watermark = store.db.manifest_watermark().await?;
    }
    match &outcome {
        Ok(report) if report.outcome == Outcome::Committed && options.derive == Derive::Inline => {
            // The commit listed the batch as owed a rollup: if this fails, the
            // next report or `tollgate rollups catch-up` does it. On a task of
            // its own, so that even a panic in derived work cannot turn a
            // committed batch into a failed ingest.
            let started = std::time::Instant::now();
            let owned = store.clone();
            let rolled = tokio::spawn(async move { owned.roll_up_batch(batch_id).await });
            match rolled.await.unwrap_or_else(|e| {
                Err(tollgate_store::StoreError::Io {
                    path: PathBuf::from("<rollup task>"),
                    source: std::io::Error::other(e.to_string()),
                })
            }) {
                Ok(r) => tracing::info!(
                    batch_id,
                    hours = r.hours,
                    rows = r.rows,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "rolled up"
                ),
                Err(e) => {
                    tracing::warn!(batch_id, error = %e, "batch committed, its rollup is left owed")
                }
            }
        }
        Ok(_) => {}
        // A no-op when a more precise failure (with counts) was recorded already.
        Err(e) => record_failure(&store.db, batch_id, BatchCounts::default(), e).await,
    }
    outcome
}

/// Crash-test hook: with `TOLLGATE_FAILPOINTS=ingest.before_commit` the process dies
/// (SIGABRT: no destructor, no cleanup, as with `kill -9`) after writing a batch's
/// files and before committing them. Tests use it to prove a dead ingest leaves
/// nothing visible.
pub(crate) fn failpoint(name: &str) {
    if std::env::var("TOLLGATE_FAILPOINTS").is_ok_and(|v| v.split(',').any(|p| p.trim() == name)) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

pub(crate) fn committed(
    source: String,
    batch_id: i64,
    counts: BatchCounts,
    files: &[NewLakeFile],
) -> IngestReport {
    IngestReport {
        source,
        batch_id,
        outcome: Outcome::Committed,
        counts,
        files: files.len(),
        watermark: 0,
    }
}

pub(crate) fn already_ingested(
    source: String,
    existing: &tollgate_store::state::Batch,
) -> IngestReport {
    IngestReport {
        source,
        batch_id: existing.id,
        outcome: Outcome::AlreadyIngested,
        counts: BatchCounts {
            read: existing.rows_read,
            written: existing.rows_written,
            duplicate: existing.rows_duplicate,
            quarantined: existing.rows_quarantined,
            bytes_read: existing.bytes_read,
        },
        files: 0,
        watermark: 0,
    }
}

/// Best effort: the ingest error is what the caller must see, not a second one.
pub(crate) async fn record_failure(
    db: &StateDb,
    batch_id: i64,
    counts: BatchCounts,
    error: &IngestError,
) {
    if let Err(e) = db.fail_batch(batch_id, counts, &error.to_string()).await {
        tracing::warn!(batch_id, error = %e, "could not mark batch failed");
    }
}

pub(crate) fn discard(lake: &Lake, files: &[NewLakeFile]) {
    for f in files {
        lake.discard(&f.path);
    }
}

/// Recognises the format of a file from its first 64 KiB.
fn detect_format(path: &Path, limits: &Limits) -> Result<Format> {
    let open_err = |source| IngestError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut reader =
        LineReader::open(path, Arc::new(crate::progress::NoProgress), limits).map_err(open_err)?;
    let head = reader
        .head(64 * 1024)
        .map_err(|source| read_error(path, 0, source))?;
    // An empty export (a quiet hour's blob) has no format to find and no records:
    // it commits an empty batch, as under any format.
    if head.iter().all(u8::is_ascii_whitespace) {
        return Ok(Format::Canonical);
    }
    Format::detect(&head).ok_or_else(|| IngestError::Unrecognised {
        path: path.to_path_buf(),
        known: Format::ALL.map(Format::name).join(", "),
    })
}

pub(crate) type Fingerprint = (u64, Option<std::time::SystemTime>);

/// Size and modification time: enough to notice a file appended to mid-ingest.
pub(crate) fn fingerprint(path: &Path) -> Result<Fingerprint> {
    let meta = std::fs::metadata(path).map_err(|source| IngestError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((meta.len(), meta.modified().ok()))
}

fn hash_file(path: &Path) -> Result<(String, u64)> {
    let open_err = |source| IngestError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(open_err)?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(open_err)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finish()), size))
}

/// The synchronous part of an ingest, run on a blocking thread.
pub(crate) struct Pass {
    pub lake: Lake,
    pub db: StateDb,
    pub handle: Handle,
    pub path: PathBuf,
    pub batch_id: i64,
    pub options: IngestOptions,
    /// Committed files per (table, date) as of the batch's manifest watermark.
    pub files_by_date: HashMap<(&'static str, String), Vec<String>>,
    pub progress: Arc<dyn Progress>,
    /// The bounds every record is held to, with the clock read at the start.
    pub check: Check,
}

/// A read error, or the bound that stopped the read.
fn read_error(path: &Path, line: u64, source: std::io::Error) -> IngestError {
    match TooLarge::of(&source) {
        Some(bound) => IngestError::TooLarge {
            path: path.to_path_buf(),
            line,
            bound: bound.clone(),
        },
        None => IngestError::Read {
            path: path.to_path_buf(),
            line,
            source,
        },
    }
}

impl Pass {
    /// Returns the files written, or the error after discarding them; counts either way.
    pub(crate) fn run(self) -> (Result<Vec<NewLakeFile>>, BatchCounts) {
        let mut state = PassState::default();
        let outcome = self.read_all(&mut state);
        match outcome {
            Ok(()) => (Ok(state.files), state.counts),
            Err(e) => {
                discard(&self.lake, &state.files);
                (Err(e), state.counts)
            }
        }
    }

    fn read_all(&self, state: &mut PassState) -> Result<()> {
        if self.options.format == Format::AzureCost && self.is_parquet()? {
            crate::parquet_rows::for_each_row(&self.path, &self.options.limits, |row, value| {
                self.account_value(state, row, 0, value, || {
                    serde_json::to_vec(value).unwrap_or_default()
                })
            })?;
            self.progress
                .advance(std::fs::metadata(&self.path).map_or(0, |m| m.len()));
            self.flush_rows(state)?;
            return self.flush_quarantine(state);
        }
        let limits = &self.options.limits;
        let mut reader =
            LineReader::open(&self.path, self.progress.clone(), limits).map_err(|source| {
                IngestError::Open {
                    path: self.path.clone(),
                    source,
                }
            })?;
        let read_err = |line, source| read_error(&self.path, line, source);
        let layout = if self.options.format.reads_documents() {
            Layout::sniff(&reader.head(64 * 1024).map_err(|e| read_err(0, e))?)
        } else {
            Layout::JsonLines
        };
        match layout {
            Layout::JsonLines => self.read_lines(reader, state)?,
            Layout::JsonArray => {
                let stream = reader.into_stream().map_err(|e| read_err(0, e))?;
                let max = limits.max_record_bytes as u64;
                let stream = RecordBound::new(stream, max, u64::MAX, "one element of the array");
                let marks = stream.marks();
                self.bounded(marks.clone(), state, |s| {
                    self.read_array(BufReader::new(stream), &marks, s)
                })?;
            }
            Layout::JsonDocument => {
                let stream = reader.into_stream().map_err(|e| read_err(0, e))?;
                let max = limits.max_document_bytes;
                let stream = RecordBound::new(stream, max, max, "a JSON document read whole");
                self.bounded(stream.marks(), state, |s| {
                    self.read_document(BufReader::new(stream), s)
                })?;
            }
            Layout::Csv => {
                let stream = reader.into_stream().map_err(|e| read_err(0, e))?;
                let max = limits.max_record_bytes as u64;
                let stream = RecordBound::new(stream, max, u64::MAX, "one CSV row");
                let marks = stream.marks();
                self.bounded(marks.clone(), state, |s| self.read_csv(stream, &marks, s))?;
            }
        }
        self.settle_countless(state)?;
        self.flush_rows(state)?;
        self.flush_quarantine(state)?;
        Ok(())
    }

    fn is_parquet(&self) -> Result<bool> {
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(&self.path).and_then(|mut f| f.read(&mut magic));
        match read {
            Ok(n) => Ok(magic[..n] == *crate::format::PARQUET_MAGIC),
            Err(source) => Err(IngestError::Open {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Runs a whole-document reader; a bound it passed is the error, whatever
    /// the parser made of it, with the last position accounted.
    fn bounded(
        &self,
        marks: RecordMarks,
        state: &mut PassState,
        read: impl FnOnce(&mut PassState) -> Result<()>,
    ) -> Result<()> {
        let outcome = read(state);
        match (outcome, marks.tripped()) {
            (Err(_), Some(bound)) => Err(IngestError::TooLarge {
                path: self.path.clone(),
                line: state.counts.read as u64,
                bound: bound.clone(),
            }),
            (outcome, _) => outcome,
        }
    }

    fn read_lines(&self, mut reader: LineReader, state: &mut PassState) -> Result<()> {
        let mut last_line = 0;
        let max_line = reader.max_line();
        loop {
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return Ok(()),
                Err(source) => return Err(read_error(&self.path, last_line, source)),
            };
            last_line = line.number;
            let mut parsed = std::mem::take(&mut state.parsed);
            if line.too_long {
                let reason = format!("line longer than {max_line} bytes ([ingest.limits])");
                parsed.push(Err(reason));
            } else {
                self.options
                    .format
                    .parse_line(line.bytes, &self.options.dimensions, &mut parsed);
                if parsed.is_empty() && !self.options.format.may_hold_no_records() {
                    // e.g. an empty envelope: the line must still be accounted for.
                    parsed.push(Err("no records in this line".to_owned()));
                }
            }
            for item in parsed.drain(..) {
                self.account(state, line.number, line.offset, line.bytes, item)?;
            }
            state.parsed = parsed;
        }
    }

    /// A JSON array document; positions are element numbers.
    fn read_array(
        &self,
        stream: impl std::io::BufRead,
        marks: &RecordMarks,
        state: &mut PassState,
    ) -> Result<()> {
        let walked = for_each_array_element(stream, |index, value| {
            marks.mark();
            self.account_value(state, index, 0, &value, || {
                serde_json::to_vec(&value).unwrap_or_default()
            })
        });
        match walked {
            Ok(()) => Ok(()),
            Err(Ok(e)) => Err(e),
            Err(Err(message)) => Err(IngestError::Unparseable {
                path: self.path.clone(),
                message,
            }),
        }
    }

    /// One JSON document spread over lines, read whole (such exports are small);
    /// positions are record numbers.
    fn read_document(&self, stream: impl std::io::BufRead, state: &mut PassState) -> Result<()> {
        let doc: serde_json::Value =
            serde_json::from_reader(stream).map_err(|e| IngestError::Unparseable {
                path: self.path.clone(),
                message: format!("not a readable JSON document: {e}"),
            })?;
        for (i, value) in document_records(doc).into_iter().enumerate() {
            self.account_value(state, i as u64 + 1, 0, &value, || {
                serde_json::to_vec(&value).unwrap_or_default()
            })?;
        }
        Ok(())
    }

    /// A CSV table with a header row; positions are CSV line numbers.
    fn read_csv(
        &self,
        stream: impl std::io::Read,
        marks: &RecordMarks,
        state: &mut PassState,
    ) -> Result<()> {
        let mut csv = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(stream);
        let headers = match csv.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return Err(IngestError::Unparseable {
                    path: self.path.clone(),
                    message: format!("no readable CSV header: {e}"),
                });
            }
        };
        let mut row = csv::StringRecord::new();
        loop {
            let position = csv.position().clone();
            match csv.read_record(&mut row) {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    marks.mark();
                    let line = row.position().map_or(position.line(), |p| p.line());
                    let offset = row.position().map_or(position.byte(), |p| p.byte());
                    let value = csv_row(&headers, &row);
                    self.account_value(state, line, offset, &value, || csv_raw(&row))?;
                }
                Err(e) => match e.kind() {
                    csv::ErrorKind::Io(_) => {
                        let source = match e.into_kind() {
                            csv::ErrorKind::Io(io) => io,
                            _ => std::io::Error::other("CSV read error"),
                        };
                        return Err(read_error(&self.path, position.line(), source));
                    }
                    // A malformed row (wrong field count, invalid UTF-8) is that
                    // row's problem, not the file's.
                    _ => {
                        marks.mark();
                        let line = e.position().map_or(position.line(), |p| p.line());
                        let reason = format!("malformed CSV row: {e}");
                        self.account(state, line, position.byte(), &[], Err(reason))?;
                    }
                },
            }
        }
    }

    /// Parses one document element (a JSON-array element, a CSV row) and counts
    /// its records; `raw` renders it for the quarantine only if needed.
    fn account_value(
        &self,
        state: &mut PassState,
        line: u64,
        offset: u64,
        value: &serde_json::Value,
        raw: impl FnOnce() -> Vec<u8>,
    ) -> Result<()> {
        let mut parsed = std::mem::take(&mut state.parsed);
        self.options
            .format
            .parse_value(value, &self.options.dimensions, &mut parsed);
        if parsed.is_empty() {
            parsed.push(Err("no records in this element".to_owned()));
        }
        let raw = if parsed.iter().any(|p| p.is_err()) {
            raw()
        } else {
            Vec::new()
        };
        for item in parsed.drain(..) {
            self.account(state, line, offset, &raw, item)?;
        }
        state.parsed = parsed;
        Ok(())
    }

    /// Counts one input record as written, duplicate or quarantined.
    fn account(
        &self,
        state: &mut PassState,
        line: u64,
        offset: u64,
        raw: &[u8],
        item: Result<crate::record::Record, String>,
    ) -> Result<()> {
        state.counts.read += 1;
        let item =
            item.and_then(
                |r| {
                    match (&r.request, &r.tokens, &r.metric, &r.hit, &r.span, &r.cost) {
                (None, None, None, None, None, None) => Err(
                    "record has neither a request, token usage, a metric, a hit, a span nor a cost"
                        .to_owned(),
                ),
                _ => self.check.record(r),
            }
                },
            );
        match item {
            Err(reason) => {
                state.counts.quarantined += 1;
                // The first ones are kept with their reasons; the rest are counted.
                if state.quarantine_kept >= self.options.limits.max_quarantine_rows {
                    return Ok(());
                }
                state.quarantine_kept += 1;
                state.quarantine.push(QuarantineRow {
                    batch_id: self.batch_id,
                    line_number: line as i64,
                    byte_offset: offset as i64,
                    reason: cut(reason, QUARANTINE_REASON_BYTES),
                    raw_line: raw[..raw.len().min(QUARANTINE_RAW_BYTES)].to_vec(),
                });
                if state.quarantine.len() >= 1000 {
                    self.flush_quarantine(state)?;
                }
            }
            Ok(record) if is_countless_token_row(&record) => {
                if let Some(tokens) = record.tokens {
                    self.hold_countless(state, tokens)?;
                }
            }
            Ok(record) => {
                // A record is written if any part of it is new; a request and its
                // token usage are deduplicated each in its table.
                let mut new = false;
                if let Some(request) = &record.request
                    && self.is_new(state, REQUESTS, request.day(), &request.request_id)?
                {
                    state.buffers.push_request(request);
                    new = true;
                }
                if let Some(tokens) = &record.tokens
                    && self.is_new(state, TOKEN_USAGE, tokens.day(), &tokens.request_id)?
                {
                    state.buffers.push_tokens(tokens);
                    new = true;
                    // A countless piece of the same request was waiting for this one.
                    if state
                        .countless
                        .remove(&(tokens.day(), tokens.request_id.clone()))
                        .is_some()
                    {
                        state.counts.duplicate += 1;
                    }
                }
                if let Some(metric) = &record.metric
                    && self.is_new(state, TOKEN_METRICS, metric.day(), &metric.metric_id)?
                {
                    state.buffers.push_metric(metric);
                    new = true;
                }
                if let Some(hit) = &record.hit
                    && self.is_new(state, DLP_HITS, hit.day(), &hit.hit_id)?
                {
                    state.buffers.push_hit(hit);
                    new = true;
                }
                if let Some(span) = &record.span
                    && self.is_new(state, GENAI_SPANS, span.day(), &span.uid())?
                {
                    state.buffers.push_span(span);
                    new = true;
                }
                if let Some(cost) = &record.cost
                    && self.is_new(state, BILLED_COSTS, cost.day(), &cost.line_uid)?
                {
                    state.buffers.push_cost(cost);
                    new = true;
                }
                if new {
                    state.counts.written += 1;
                } else {
                    state.counts.duplicate += 1;
                }
                if state.buffers.len() >= self.options.max_buffered_rows {
                    self.flush_rows(state)?;
                }
            }
        }
        Ok(())
    }

    /// A token row with no counts (a continuation piece of a split LLM log) waits
    /// until the end of the pass: a piece of the same request that has the counts
    /// may still come, and must be the one kept.
    fn hold_countless(&self, state: &mut PassState, tokens: TokenRecord) -> Result<()> {
        let key = (tokens.day(), tokens.request_id.clone());
        if state.countless.contains_key(&key)
            || !self.is_unseen(state, TOKEN_USAGE, key.0, &key.1)?
        {
            state.counts.duplicate += 1;
        } else {
            state.countless.insert(key, tokens);
            // Bounded like the other buffers: pieces of one request are logged
            // together, so settling the held ones early rarely keeps a countless one.
            if state.countless.len() >= (self.options.max_buffered_rows / 4).max(1) {
                self.settle_countless(state)?;
            }
        }
        Ok(())
    }

    /// Writes the countless token rows no piece with counts replaced.
    fn settle_countless(&self, state: &mut PassState) -> Result<()> {
        for ((day, request_id), tokens) in std::mem::take(&mut state.countless) {
            if self.is_new(state, TOKEN_USAGE, day, &request_id)? {
                state.buffers.push_tokens(&tokens);
                state.counts.written += 1;
            } else {
                state.counts.duplicate += 1;
            }
        }
        Ok(())
    }

    /// Whether `request_id` is new in `table` for `day`, counting the committed lake
    /// and the rows of this batch so far.
    fn is_new(
        &self,
        state: &mut PassState,
        table: &'static str,
        day: i64,
        request_id: &str,
    ) -> Result<bool> {
        let hash = id_hash(request_id);
        let seen = self.load_seen(state, table, day)?;
        Ok(!seen.committed.iter().any(|set| set.contains_hash(hash)) && seen.ours.insert(hash))
    }

    /// The ids seen in `table` for `day`: the committed files' sets (loaded the
    /// first time, from the lake's cache) and this batch's own.
    fn load_seen<'s>(
        &self,
        state: &'s mut PassState,
        table: &'static str,
        day: i64,
    ) -> Result<&'s mut Seen> {
        Ok(match state.seen.entry((table, day)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let key = (table, date_of_day(day));
                let column = dedupe_column(table);
                let committed = (self.files_by_date.get(&key).into_iter().flatten())
                    .map(|path| self.lake.id_set(path, column))
                    .collect::<tollgate_store::Result<_>>()?;
                e.insert(Seen {
                    committed,
                    ours: HashSet::new(),
                })
            }
        })
    }

    /// [`Pass::is_new`] without marking the id as seen.
    fn is_unseen(
        &self,
        state: &mut PassState,
        table: &'static str,
        day: i64,
        request_id: &str,
    ) -> Result<bool> {
        let hash = id_hash(request_id);
        let seen = self.load_seen(state, table, day)?;
        Ok(!seen.committed.iter().any(|set| set.contains_hash(hash)) && !seen.ours.contains(&hash))
    }

    fn flush_rows(&self, state: &mut PassState) -> Result<()> {
        for (table, day, batch) in state
            .buffers
            .drain(self.batch_id)
            .map_err(StoreError::from)?
        {
            let date = date_of_day(day);
            state
                .files
                .push(self.lake.write_file(table, &date, self.batch_id, &batch)?);
        }
        Ok(())
    }

    fn flush_quarantine(&self, state: &mut PassState) -> Result<()> {
        if state.quarantine.is_empty() {
            return Ok(());
        }
        self.handle
            .block_on(self.db.add_quarantine(&state.quarantine))?;
        state.quarantine.clear();
        Ok(())
    }
}

/// The ids of one (table, day) a pass has seen.
struct Seen {
    committed: Vec<Arc<IdSet>>,
    ours: HashSet<u128>,
}

#[derive(Default)]
struct PassState {
    counts: BatchCounts,
    buffers: LakeBuffers,
    /// Request ids per (table, day): committed ones plus this batch's.
    seen: HashMap<(&'static str, i64), Seen>,
    /// Token rows without counts, held until the pass ends (see `hold_countless`).
    countless: BTreeMap<(i64, String), TokenRecord>,
    /// The records of the current line, reused across lines.
    parsed: Vec<Result<crate::record::Record, String>>,
    quarantine: Vec<QuarantineRow>,
    /// Quarantined records stored so far (at most `max_quarantine_rows`).
    quarantine_kept: usize,
    files: Vec<NewLakeFile>,
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [...]");
    }
    text
}

/// A token row alone (no request, no metric) whose counts are all zero: APIM
/// splits long messages into several LLM rows, and only some may carry counts.
fn is_countless_token_row(record: &Record) -> bool {
    record.request.is_none()
        && record.metric.is_none()
        && record.hit.is_none()
        && record.span.is_none()
        && record.tokens.as_ref().is_some_and(|t| {
            t.prompt_tokens == 0
                && t.cached_tokens == 0
                && t.completion_tokens == 0
                && t.reasoning_tokens == 0
        })
}

/// `YYYY-MM-DD` of a day number since the epoch.
pub fn date_of_day(day: i64) -> String {
    DateTime::from_timestamp(day * (MICROS_PER_DAY / 1_000_000), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}
