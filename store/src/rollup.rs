//! Hourly rollups: the lake aggregated per hour and dimension combination
//! (requests by status class, client and backend 429s, quota 403s, circuit
//! breaker trips, cache hits, tokens by kind, total and backend latency
//! sketches), which reports and alert rules read instead of raw rows.
//!
//! An hour's rollup is always recomputed whole from the committed lake, never
//! incremented, so the order the two APIM categories arrive in does not matter:
//! whichever of a request and its LLM row commits second, the recomputation of
//! that hour sees both. A commit lists its batch as owed a rollup in the same
//! transaction ([`crate::StateDb::commit_batch`]); [`Store::roll_up_batch`] then
//! recomputes the hours its files touch, and [`Store::catch_up_rollups`] does
//! whatever a crashed process left owed. Each stored hour carries the manifest
//! watermark it was computed at and is only replaced by a computation that saw as
//! much, so two refreshes racing cannot leave the older one's result.

use std::collections::HashMap;

use futures::StreamExt;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::derived;
use crate::lake::Codec;
use crate::schema::{REQUESTS, TOKEN_USAGE};
use crate::sketch::LatencySketch;
use crate::state::{LakeFile, RollupHour, RollupRow, UsageRollup};
use crate::symbol::Sym;
use crate::{Result, Store, StoreError};

pub const HOUR_US: i64 = 3_600_000_000;
/// How far apart a request and its LLM row may be logged and still be paired in
/// the rollups (gateways log both within the request's timeout). The join says
/// the same as `INTERVAL '1 hour'`, per request, so an hour's result does not
/// depend on the window it was computed in.
pub const PAIRING_WINDOW_US: i64 = HOUR_US;
/// How many of the newest hours of data the minute tier keeps.
pub const MINUTE_TIER_HOURS: i64 = 48;
/// Recomputed at most a day at a time, to bound memory.
const MAX_WINDOW_US: i64 = 24 * HOUR_US;

/// What a rollup run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RollupReport {
    pub batches: usize,
    /// Hours recomputed (an hour a newer computation had stored is not counted).
    pub hours: usize,
    pub rows: usize,
}

impl RollupReport {
    fn add(&mut self, other: RollupReport) {
        self.batches += other.batches;
        self.hours += other.hours;
        self.rows += other.rows;
    }
}

impl Store {
    /// What readers leave out, said of the files: committed files holding
    /// times outside the accepted window (reports, which cover the window,
    /// never include those rows).
    pub async fn lake_faults(&self) -> Result<Vec<String>> {
        let now = self.clock.now();
        let latest = self.window.latest(now);
        let files = self
            .db
            .lake_files_outside(self.window.earliest, latest)
            .await?;
        Ok(files
            .iter()
            .map(|f| {
                format!(
                    "lake file {} (batch {}) holds times {} to {}, outside the accepted window {}: its rows outside are left out",
                    f.file.path,
                    f.batch_id,
                    f.file.min_time.to_rfc3339(),
                    f.file.max_time.to_rfc3339(),
                    self.window.describe(now)
                )
            })
            .collect())
    }

    /// Recomputes the hours one committed batch's files touch.
    #[tracing::instrument(skip(self), err)]
    pub async fn roll_up_batch(&self, batch_id: i64) -> Result<RollupReport> {
        self.roll_up_batches(&[batch_id]).await
    }

    /// Rolls up every committed batch still owed one (a process died between
    /// its commit and its rollup, or deferred it): the server's deriver and
    /// the CLI call this before anything reads the rollups.
    #[tracing::instrument(skip_all, err)]
    pub async fn catch_up_rollups(&self) -> Result<RollupReport> {
        let (from, to) = self.accepted_us();
        let (dropped, files) = self.db.drop_rollup_hours_outside(from, to).await?;
        self.remove_rollup_files(files);
        if dropped > 0 {
            tracing::warn!(
                hours = dropped,
                "dropped rollup hours outside the accepted time window"
            );
        }
        let pending = self.db.pending_rollup_batches().await?;
        if pending.is_empty() {
            return Ok(RollupReport::default());
        }
        self.roll_up_batches(&pending).await
    }

    /// Recomputes the hours these committed batches' files touch, then marks
    /// them rolled up.
    async fn roll_up_batches(&self, batch_ids: &[i64]) -> Result<RollupReport> {
        let files = self.db.lake_files_of_batches(batch_ids).await?;
        let windows = windows(&files, self.accepted_us());
        let mut report = self.refresh_windows(windows, &|_, _| {}).await?;
        self.db.clear_pending_rollups(batch_ids).await?;
        report.batches = batch_ids.len();
        Ok(report)
    }

    /// Recomputes every hour the committed lake covers and drops the rollups of
    /// hours it no longer does. `progress(done, total)` is called per window.
    #[tracing::instrument(skip_all, err)]
    pub async fn rebuild_rollups(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<RollupReport> {
        // Listed before the files are: every batch listed is then covered.
        let pending = self.db.pending_rollup_batches().await?;
        let watermark = self.db.manifest_watermark().await?;
        let mut files = Vec::new();
        for table in [REQUESTS, TOKEN_USAGE] {
            files.extend(self.db.lake_files_upto(table, watermark).await?);
        }
        let windows = windows(&files, self.accepted_us());
        let hours: Vec<i64> = windows
            .iter()
            .flat_map(|&(from, to)| (from..to).step_by(HOUR_US as usize))
            .collect();
        let report = self.refresh_windows(windows, progress).await?;
        // Hours rolled up from newer batches meanwhile are not this rebuild's to drop.
        let (_, files) = self.db.drop_rollup_hours_except(&hours, watermark).await?;
        self.remove_rollup_files(files);
        self.db.clear_pending_rollups(&pending).await?;
        Ok(RollupReport {
            batches: pending.len(),
            ..report
        })
    }

    /// The hours rollups may cover: the accepted time window as of now. Rows
    /// outside it (in a lake written before ingest bounded times, or by another
    /// tool) are left out, and the files holding them named in the log.
    fn accepted_us(&self) -> (i64, i64) {
        let (from, to) = self.window.bounds_us(self.clock.now());
        (floor_hour_us(from), floor_hour_us(to) + HOUR_US)
    }

    async fn refresh_windows(
        &self,
        windows: Vec<(i64, i64)>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<RollupReport> {
        let mut windows = windows;
        let total = windows.len();
        // The newest first, alone: the minute tier follows the newest hour
        // stored, which the other windows then find in place.
        windows.sort_unstable_by_key(|w| std::cmp::Reverse(w.0));
        let mut report = RollupReport::default();
        let Some(&(from, to)) = windows.first() else {
            return Ok(report);
        };
        report.add(self.refresh_window(from, to).await?);
        progress(1, total);
        // The others side by side, one per core: each is its own hours.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut running = futures::stream::iter(windows.into_iter().skip(1).map(|(from, to)| {
            let store = self.clone();
            tokio::spawn(async move { store.refresh_window(from, to).await })
        }))
        .buffer_unordered(cores.clamp(1, 4));
        let mut done = 1;
        while let Some(joined) = running.next().await {
            let part = joined
                .map_err(|e| StoreError::io("<rollup window task>", std::io::Error::other(e)))??;
            report.add(part);
            done += 1;
            progress(done, total);
        }
        Ok(report)
    }

    /// Recomputes the hours of `[from, to)` from the lake as committed now.
    #[tracing::instrument(skip(self), err)]
    async fn refresh_window(&self, from: i64, to: i64) -> Result<RollupReport> {
        let watermark = self.db.manifest_watermark().await?;
        let (pair_from, pair_to) = (from - PAIRING_WINDOW_US, to + PAIRING_WINDOW_US);
        let overlaps = |f: &LakeFile, a: i64, b: i64| {
            f.file.min_time.timestamp_micros() < b && f.file.max_time.timestamp_micros() >= a
        };
        let ctx = self
            .session_at(watermark, &|f| match f.file.table_name.as_str() {
                REQUESTS => overlaps(f, from, to),
                TOKEN_USAGE => overlaps(f, pair_from, pair_to),
                _ => false,
            })
            .await?;
        let sql = format!(
            "SELECT CAST(date_trunc('hour', r.time) AS BIGINT), r.subscription, r.product, \
             r.agent, r.api, r.gateway_id, r.backend, t.deployment, t.model, \
             r.status_code, r.backend_status_code, r.total_latency_ms, r.cache_status, \
             t.prompt_tokens, t.cached_tokens, t.completion_tokens, t.reasoning_tokens, \
             r.region, r.backend_latency_ms, r.error_source, r.error_reason, \
             CAST(date_trunc('minute', r.time) AS BIGINT) \
             FROM requests r LEFT JOIN (SELECT time, request_id, deployment, model, \
             prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens FROM token_usage \
             WHERE time >= '{}' AND time < '{}') t ON r.request_id = t.request_id \
             AND t.time >= r.time - INTERVAL '1 hour' AND t.time <= r.time + INTERVAL '1 hour' \
             WHERE r.time >= '{}' AND r.time < '{}'",
            timestamp(pair_from),
            timestamp(pair_to),
            timestamp(from),
            timestamp(to),
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        // The minute tier covers the newest hours of data, whichever batch
        // brings them.
        let mut newest = self.db.latest_rollup_hour().await?.unwrap_or(i64::MIN);
        for batch in &batches {
            let hours = arrow::compute::cast(batch.column(0), &DataType::Int64)?;
            if let Some(h) = arrow::compute::max(hours.as_primitive::<Int64Type>()) {
                newest = newest.max(h);
            }
        }
        let minute_from = newest.saturating_sub((MINUTE_TIER_HOURS - 1) * HOUR_US);
        let mut groups = Groups::new((to > minute_from).then_some(minute_from));
        for batch in &batches {
            groups.add(batch)?;
        }
        let (rows, minutes) = groups.finish();
        let row_count = rows.len();
        let hours: Vec<i64> = (from..to).step_by(HOUR_US as usize).collect();
        let replaced = self
            .store_hours(&hours, rows, minutes, minute_from, watermark)
            .await?;
        Ok(RollupReport {
            batches: 0,
            hours: replaced,
            rows: row_count,
        })
    }

    /// Writes each hour's rows (and minute rows) as its files, then names them
    /// in the state database unless a newer computation has the hour; the
    /// files no hour names any more are deleted. Returns the hours stored.
    /// (Public so that tests can plant an hour as an older version left it.)
    pub async fn store_hours(
        &self,
        hours: &[i64],
        rows: Vec<RollupRow>,
        minutes: Vec<RollupRow>,
        minute_from: i64,
        watermark: i64,
    ) -> Result<usize> {
        let lake = self.lake.clone();
        let hours_owned = hours.to_vec();
        let written = tokio::task::spawn_blocking(move || -> Result<Vec<RollupHour>> {
            let hourly = by_hour(rows);
            let minute = by_hour(minutes);
            hours_owned
                .iter()
                .map(|&hour| {
                    let write = |tier, rows: Option<&Vec<RollupRow>>| -> Result<Option<String>> {
                        let Some(rows) = rows.filter(|r| !r.is_empty()) else {
                            return Ok(None);
                        };
                        let (dir, name) = derived::new_path(tier, hour);
                        let batch = derived::encode(rows)?;
                        lake.write_parquet(&dir, &name, &batch, None, Codec::Plain)?;
                        Ok(Some(format!("{dir}/{name}")))
                    };
                    Ok(RollupHour {
                        hour_us: hour,
                        row_count: hourly.get(&hour).map_or(0, |r| r.len() as i64),
                        hourly_path: write(derived::Tier::Hourly, hourly.get(&hour))?,
                        minute_path: write(derived::Tier::Minute, minute.get(&hour))?,
                    })
                })
                .collect()
        })
        .await
        .map_err(|e| StoreError::io("<rollup write task>", std::io::Error::other(e)))??;
        let done = match self
            .db
            .replace_rollup_hours(&written, minute_from, watermark)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                let ours: Vec<String> = written
                    .into_iter()
                    .flat_map(|h| h.hourly_path.into_iter().chain(h.minute_path))
                    .collect();
                self.remove_rollup_files(ours);
                return Err(e);
            }
        };
        self.remove_rollup_files(done.obsolete);
        Ok(done.hours)
    }

    /// Deletes rollup files no hour names (best effort: what is left is
    /// garbage [`Store::gc`] collects) and forgets their decoded rows.
    pub(crate) fn remove_rollup_files(&self, paths: Vec<String>) {
        self.rollup_cache.forget(&paths);
        self.summary_cache.forget(&paths);
        for path in paths {
            if let Err(e) = self.lake.remove(&path) {
                tracing::warn!(error = %e, "an obsolete rollup file was not removed");
            }
        }
    }
}

/// Rows by the hour they fall in (a minute row's `hour_us` holds its minute).
fn by_hour(rows: Vec<RollupRow>) -> HashMap<i64, Vec<RollupRow>> {
    let mut hours: HashMap<i64, Vec<RollupRow>> = HashMap::new();
    for row in rows {
        hours
            .entry(floor_hour_us(row.usage.hour_us))
            .or_default()
            .push(row);
    }
    hours
}

fn timestamp(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn floor_hour_us(us: i64) -> i64 {
    us.div_euclid(HOUR_US) * HOUR_US
}

fn floor_hour(t: DateTime<Utc>) -> i64 {
    floor_hour_us(t.timestamp_micros())
}

/// The hours files touch within `accepted` (`[from, to)`), as merged
/// `[from, to)` windows of at most a day. A token file also touches the hours
/// its requests may be in. A file with times outside `accepted` is named in
/// the log; only its hours inside are rolled up.
pub fn windows(files: &[LakeFile], accepted: (i64, i64)) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = files
        .iter()
        .filter_map(|f| {
            let (from, to) = (
                floor_hour(f.file.min_time),
                floor_hour(f.file.max_time).saturating_add(HOUR_US),
            );
            let (from, to) = match f.file.table_name.as_str() {
                REQUESTS => (from, to),
                TOKEN_USAGE => (
                    from.saturating_sub(PAIRING_WINDOW_US),
                    to.saturating_add(PAIRING_WINDOW_US),
                ),
                _ => return None,
            };
            if from < accepted.0 || to > accepted.1 {
                tracing::warn!(
                    file = %f.file.path,
                    min_time = %f.file.min_time,
                    max_time = %f.file.max_time,
                    "lake file holds times outside the accepted window; rows outside it are left out of the rollups"
                );
            }
            let (from, to) = (from.max(accepted.0), to.min(accepted.1));
            (from < to).then_some((from, to))
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
        .into_iter()
        .flat_map(|(from, to)| {
            (from..to)
                .step_by(MAX_WINDOW_US as usize)
                .map(move |start| (start, (start + MAX_WINDOW_US).min(to)))
        })
        .collect()
}

/// Requests grouped by hour and dimensions as they stream out of the join, and
/// for recent hours also by minute on fewer dimensions (the minute tier).
#[derive(Default)]
struct Groups {
    hourly: Tier,
    minutely: Tier,
    /// The first hour that also gets minute rows, if any does.
    minute_from: Option<i64>,
}

/// One tier's rows, found by the bytes of their key.
#[derive(Default)]
struct Tier {
    index: foldhash::HashMap<Vec<u8>, usize>,
    rows: Vec<(RollupRow, LatencySketch, LatencySketch)>,
    key: Vec<u8>,
}

/// One request's measures, as both tiers add them up.
struct Observed {
    status: i64,
    backend_status: Option<i64>,
    cache_hit: bool,
    breaker: bool,
    latency_ms: Option<i64>,
    backend_latency_ms: Option<i64>,
    tokens: [i64; 4],
}

/// The dimensions the minute tier keeps (indices into the hourly ones:
/// subscription, product, gateway, backend, deployment, region).
const MINUTE_DIMENSIONS: [usize; 6] = [0, 1, 4, 5, 6, 8];

impl Tier {
    /// The row for `time` and these dimension values (`None` where a
    /// dimension is not kept), created on first sight.
    fn entry(
        &mut self,
        time: i64,
        dims: &[Option<&str>],
    ) -> &mut (RollupRow, LatencySketch, LatencySketch) {
        self.key.clear();
        self.key.extend_from_slice(&time.to_le_bytes());
        for d in dims {
            match d {
                None => self.key.push(0),
                Some(v) => {
                    self.key.push(1);
                    self.key.extend_from_slice(v.as_bytes());
                    self.key.push(0xff); // not in UTF-8: ends the value
                }
            }
        }
        let at = match self.index.get(self.key.as_slice()) {
            Some(&at) => at,
            None => {
                let text = |i: usize| dims[i].map(Sym::new);
                let usage = UsageRollup {
                    hour_us: time,
                    subscription: text(0),
                    product: text(1),
                    agent: text(2),
                    api: text(3),
                    gateway_id: text(4),
                    backend: text(5),
                    deployment: text(6),
                    model: text(7),
                    ..UsageRollup::default()
                };
                let row = RollupRow {
                    usage,
                    region: text(8),
                    ..RollupRow::default()
                };
                self.rows
                    .push((row, LatencySketch::new(), LatencySketch::new()));
                self.index.insert(self.key.clone(), self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        &mut self.rows[at]
    }

    fn finish(self) -> Vec<RollupRow> {
        let mut rows: Vec<RollupRow> = self
            .rows
            .into_iter()
            .map(|(mut row, sketch, backend_sketch)| {
                row.latency_sketch = sketch.encode();
                row.backend_latency_sketch = backend_sketch.encode();
                row
            })
            .collect();
        rows.sort_by_key(|r| r.usage.hour_us);
        rows
    }
}

fn add(entry: &mut (RollupRow, LatencySketch, LatencySketch), o: &Observed) {
    let (r, sketch, backend_sketch) = entry;
    r.usage.requests += 1;
    match o.status / 100 {
        2 => r.status_2xx += 1,
        3 => r.status_3xx += 1,
        4 => r.status_4xx += 1,
        5 => r.status_5xx += 1,
        _ => {}
    }
    if o.backend_status == Some(429) {
        r.backend_429 += 1;
    } else if o.status == 429 {
        r.client_429 += 1;
    } else if o.status == 403 && o.backend_status.is_none() {
        r.quota_403 += 1;
    }
    if o.breaker {
        r.breaker_trips += 1;
    }
    if o.cache_hit {
        r.usage.cache_hits += 1;
    }
    if let Some(ms) = o.latency_ms {
        sketch.add(ms as f64);
    }
    if let Some(ms) = o.backend_latency_ms {
        backend_sketch.add(ms as f64);
    }
    // Saturating: ingest bounds every count, but a lake written before those
    // bounds (or by another tool) must not stop every report.
    let u = &mut r.usage;
    u.prompt_tokens = u.prompt_tokens.saturating_add(o.tokens[0]);
    u.cached_tokens = u.cached_tokens.saturating_add(o.tokens[1]);
    u.completion_tokens = u.completion_tokens.saturating_add(o.tokens[2]);
    u.reasoning_tokens = u.reasoning_tokens.saturating_add(o.tokens[3]);
}

impl Groups {
    fn new(minute_from: Option<i64>) -> Groups {
        Groups {
            minute_from,
            ..Groups::default()
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let cast = |i: usize, to: &DataType| -> Result<ArrayRef> {
            arrow::compute::cast(batch.column(i), to).map_err(StoreError::from)
        };
        let hour = cast(0, &DataType::Int64)?;
        let hour = hour.as_primitive::<Int64Type>();
        let minute = cast(21, &DataType::Int64)?;
        let minute = minute.as_primitive::<Int64Type>();
        // The eight grouping dimensions, then the region (column 17).
        let dims: Vec<ArrayRef> = (1..9)
            .chain([17])
            .map(|i| cast(i, &DataType::Utf8))
            .collect::<Result<_>>()?;
        let dims: Vec<_> = dims.iter().map(|a| a.as_string::<i32>()).collect();
        let ints: Vec<ArrayRef> = [9, 10, 11, 13, 14, 15, 16, 18]
            .into_iter()
            .map(|i| cast(i, &DataType::Int64))
            .collect::<Result<_>>()?;
        let ints: Vec<_> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
        let int = |col: usize, row: usize| (!ints[col].is_null(row)).then(|| ints[col].value(row));
        let cache = cast(12, &DataType::Utf8)?;
        let cache = cache.as_string::<i32>();
        let error_source = cast(19, &DataType::Utf8)?;
        let error_source = error_source.as_string::<i32>();
        let error_reason = cast(20, &DataType::Utf8)?;
        let error_reason = error_reason.as_string::<i32>();
        let mentions_breaker = |column: &arrow::array::StringArray, row: usize| {
            !column.is_null(row) && column.value(row).to_ascii_lowercase().contains("circuit")
        };

        let mut values: Vec<Option<&str>> = Vec::with_capacity(dims.len());
        let mut kept: Vec<Option<&str>> = vec![None; dims.len()];
        for row in 0..batch.num_rows() {
            values.clear();
            values.extend(dims.iter().map(|d| (!d.is_null(row)).then(|| d.value(row))));
            let observed = Observed {
                status: int(0, row).unwrap_or(0),
                backend_status: int(1, row),
                cache_hit: !cache.is_null(row) && cache.value(row) == "hit",
                breaker: mentions_breaker(error_source, row) || mentions_breaker(error_reason, row),
                latency_ms: int(2, row),
                backend_latency_ms: int(7, row),
                tokens: [3, 4, 5, 6].map(|c| int(c, row).unwrap_or(0)),
            };
            add(self.hourly.entry(hour.value(row), &values), &observed);
            if self.minute_from.is_some_and(|from| hour.value(row) >= from) {
                for (i, slot) in kept.iter_mut().enumerate() {
                    *slot = if MINUTE_DIMENSIONS.contains(&i) {
                        values[i]
                    } else {
                        None
                    };
                }
                add(self.minutely.entry(minute.value(row), &kept), &observed);
            }
        }
        Ok(())
    }

    /// The hourly rows, and the minute rows (each `hour_us` holding its minute).
    fn finish(self) -> (Vec<RollupRow>, Vec<RollupRow>) {
        (self.hourly.finish(), self.minutely.finish())
    }
}
