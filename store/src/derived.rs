//! The rollups' columnar home. Each rolled-up hour is one Parquet file per
//! tier under `lake/derived/` (`rollup_hourly/date=YYYY-MM-DD/HH-<uuid>.parquet`,
//! and `rollup_minute/...` for the minute tier of the newest hours), written
//! before the state database names it in `rollup_hours`: the state database
//! says which file holds an hour, the lake holds the aggregates.
//!
//! A file never changes (a recomputation writes a new one and the old one is
//! deleted once no longer named), so decoded hours are kept in memory by path
//! ([`RollupCache`]): a report after a push decodes only the hours the push
//! touched. Readers of another process may find a file just replaced; they
//! list the hours again.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use chrono::DateTime;

use crate::state::{RollupFile, RollupRow, UsageRollup};
use crate::symbol::Sym;
use crate::{Result, Store, StoreError};

/// Where derived tables live under the lake root (never a lake table: the
/// manifest does not list them and the lake's gc does not walk them).
pub const DERIVED_DIR: &str = "derived";

/// The two tiers of rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Per hour and every dimension.
    Hourly,
    /// Per minute, on fewer dimensions, for the newest hours of data.
    Minute,
}

impl Tier {
    pub fn table(self) -> &'static str {
        match self {
            Tier::Hourly => "rollup_hourly",
            Tier::Minute => "rollup_minute",
        }
    }
}

const DIMENSIONS: [&str; 9] = [
    "subscription",
    "product",
    "agent",
    "api",
    "gateway_id",
    "backend",
    "deployment",
    "model",
    "region",
];
const COUNTS: [&str; 14] = [
    "requests",
    "cache_hits",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "client_429",
    "backend_429",
    "quota_403",
    "breaker_trips",
];
const SKETCHES: [&str; 2] = ["latency_sketch", "backend_latency_sketch"];

/// The rollup files' schema: the time (`hour_us`, the minute's start in the
/// minute tier), the dimensions, the counts and the two latency sketches.
pub fn rollup_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = vec![Field::new("hour_us", DataType::Int64, false)];
        fields.extend(DIMENSIONS.map(|d| Field::new(d, DataType::Utf8, true)));
        fields.extend(COUNTS.map(|c| Field::new(c, DataType::Int64, false)));
        fields.extend(SKETCHES.map(|s| Field::new(s, DataType::Binary, false)));
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

fn dimension(r: &RollupRow, i: usize) -> Option<&str> {
    let u = &r.usage;
    [
        &u.subscription,
        &u.product,
        &u.agent,
        &u.api,
        &u.gateway_id,
        &u.backend,
        &u.deployment,
        &u.model,
        &r.region,
    ][i]
        .as_deref()
}

fn counts(r: &RollupRow) -> [i64; 14] {
    let u = &r.usage;
    [
        u.requests,
        u.cache_hits,
        u.prompt_tokens,
        u.cached_tokens,
        u.completion_tokens,
        u.reasoning_tokens,
        r.status_2xx,
        r.status_3xx,
        r.status_4xx,
        r.status_5xx,
        r.client_429,
        r.backend_429,
        r.quota_403,
        r.breaker_trips,
    ]
}

/// Rollup rows as one Arrow batch of [`rollup_schema`].
pub fn encode(rows: &[RollupRow]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.usage.hour_us),
    ))];
    for i in 0..DIMENSIONS.len() {
        columns.push(Arc::new(StringArray::from_iter(
            rows.iter().map(|r| dimension(r, i)),
        )));
    }
    for i in 0..COUNTS.len() {
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| counts(r)[i]),
        )));
    }
    columns.push(Arc::new(BinaryArray::from_iter_values(
        rows.iter().map(|r| r.latency_sketch.as_slice()),
    )));
    columns.push(Arc::new(BinaryArray::from_iter_values(
        rows.iter().map(|r| r.backend_latency_sketch.as_slice()),
    )));
    Ok(RecordBatch::try_new(rollup_schema(), columns)?)
}

/// Rollup rows back from a batch of [`rollup_schema`] (columns found by name,
/// so a file with its columns in another order still reads).
pub fn decode(batch: &RecordBatch) -> Result<Vec<RollupRow>> {
    let column = |name: &str| -> Result<&ArrayRef> {
        batch.column_by_name(name).ok_or_else(|| {
            StoreError::from(arrow::error::ArrowError::SchemaError(format!(
                "rollup file without column {name}"
            )))
        })
    };
    let ints = |name: &str| -> Result<&arrow::array::PrimitiveArray<Int64Type>> {
        column(name)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("rollup column {name} is not Int64"))
                    .into()
            })
    };
    let texts = |name: &str| -> Result<&StringArray> {
        column(name)?.as_string_opt::<i32>().ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("rollup column {name} is not Utf8"))
                .into()
        })
    };
    let bytes = |name: &str| -> Result<&BinaryArray> {
        column(name)?.as_binary_opt::<i32>().ok_or_else(|| {
            arrow::error::ArrowError::SchemaError(format!("rollup column {name} is not Binary"))
                .into()
        })
    };
    let hour = ints("hour_us")?;
    let dims: Vec<&StringArray> = DIMENSIONS.iter().map(|d| texts(d)).collect::<Result<_>>()?;
    let count: Vec<_> = COUNTS.iter().map(|c| ints(c)).collect::<Result<_>>()?;
    let (sketch, backend_sketch) = (bytes(SKETCHES[0])?, bytes(SKETCHES[1])?);
    let rows = (0..batch.num_rows())
        .map(|row| {
            let text = |i: usize| (!dims[i].is_null(row)).then(|| Sym::new(dims[i].value(row)));
            let n = |i: usize| count[i].value(row);
            RollupRow {
                usage: UsageRollup {
                    hour_us: hour.value(row),
                    subscription: text(0),
                    product: text(1),
                    agent: text(2),
                    api: text(3),
                    gateway_id: text(4),
                    backend: text(5),
                    deployment: text(6),
                    model: text(7),
                    requests: n(0),
                    cache_hits: n(1),
                    prompt_tokens: n(2),
                    cached_tokens: n(3),
                    completion_tokens: n(4),
                    reasoning_tokens: n(5),
                },
                status_2xx: n(6),
                status_3xx: n(7),
                status_4xx: n(8),
                status_5xx: n(9),
                client_429: n(10),
                backend_429: n(11),
                quota_403: n(12),
                breaker_trips: n(13),
                region: text(8),
                latency_sketch: sketch.value(row).to_vec(),
                backend_latency_sketch: backend_sketch.value(row).to_vec(),
            }
        })
        .collect();
    Ok(rows)
}

/// The lake path a new file of `tier` for the hour starting at `hour_us` gets.
pub fn new_path(tier: Tier, hour_us: i64) -> (String, String) {
    let hour = DateTime::from_timestamp_micros(hour_us).unwrap_or_default();
    let dir = format!(
        "{DERIVED_DIR}/{}/date={}",
        tier.table(),
        hour.format("%Y-%m-%d")
    );
    let name = format!(
        "{}-{}.parquet",
        hour.format("%H"),
        uuid::Uuid::now_v7().simple()
    );
    (dir, name)
}

/// Decoded rollup files by path, bounded by the rows held.
#[derive(Debug, Default)]
pub struct RollupCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    files: HashMap<String, Arc<[RollupRow]>>,
    rows: usize,
}

/// At about 0.5 KiB a row, a few hundred MiB: a month of a 1M-request estate
/// with realistic cardinality, or the open week of a larger one.
const CACHE_MAX_ROWS: usize = 1_000_000;

impl RollupCache {
    fn get(&self, path: &str) -> Option<Arc<[RollupRow]>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.files.get(path).cloned()
    }

    fn put(&self, path: &str, rows: Arc<[RollupRow]>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if rows.len() > CACHE_MAX_ROWS {
            return;
        }
        while inner.rows + rows.len() > CACHE_MAX_ROWS {
            // Any file will do: it is decoded again when read again.
            let Some(victim) = inner.files.keys().next().cloned() else {
                break;
            };
            if let Some(gone) = inner.files.remove(&victim) {
                inner.rows -= gone.len();
            }
        }
        inner.rows += rows.len();
        if let Some(old) = inner.files.insert(path.to_owned(), rows) {
            inner.rows -= old.len();
        }
    }

    /// Forgets files no longer named (replaced or dropped).
    pub(crate) fn forget(&self, paths: &[String]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for path in paths {
            if let Some(gone) = inner.files.remove(path) {
                inner.rows -= gone.len();
            }
        }
    }
}

/// One decoded rollup file.
type Hour = Arc<[RollupRow]>;

/// Rollup rows of a time range, as the decoded hours that hold them (shared
/// with the cache, never copied), each with the path of its file.
#[derive(Debug, Clone, Default)]
pub struct Rollups {
    hours: Vec<Arc<[RollupRow]>>,
    /// The file each of `hours` was read from (empty for rows made elsewhere).
    paths: Vec<Arc<str>>,
    from: i64,
    to: i64,
}

/// One file's rows within a [`Rollups`] range.
#[derive(Debug, Clone, Copy)]
pub struct RollupPart<'a> {
    /// The file the rows come from: the same path always holds the same rows
    /// (files are immutable), so what is computed from a part may be kept by
    /// its path. Empty for rows made elsewhere.
    pub path: &'a str,
    rows: &'a [RollupRow],
    from: i64,
    to: i64,
}

impl<'a> RollupPart<'a> {
    /// Whether every row of the file is within the range: what is computed
    /// from the part is then what the file gives.
    pub fn is_whole(&self) -> bool {
        // A file's rows are in time order: its first and last say.
        let inside = |r: Option<&RollupRow>| {
            r.is_none_or(|r| (self.from..self.to).contains(&r.usage.hour_us))
        };
        !self.path.is_empty() && inside(self.rows.first()) && inside(self.rows.last())
    }

    /// The part's rows within the range.
    pub fn iter(&self) -> impl Iterator<Item = &'a RollupRow> + Clone + 'a {
        let (from, to) = (self.from, self.to);
        self.rows
            .iter()
            .filter(move |r| (from..to).contains(&r.usage.hour_us))
    }
}

/// Which file holds each hour of a range (not their rows).
#[derive(Debug, Clone, Default)]
pub struct RollupListing {
    pub files: Vec<RollupFile>,
    from: i64,
    to: i64,
}

impl RollupListing {
    /// Whether the range holds every row of the file (a file holds one hour).
    pub fn is_whole(&self, file: &RollupFile) -> bool {
        self.from <= file.hour_us && file.hour_us.saturating_add(crate::rollup::HOUR_US) <= self.to
    }
}

impl Rollups {
    /// The rows read from `path`, if this set holds them.
    pub fn part(&self, path: &str) -> Option<RollupPart<'_>> {
        self.parts().find(|p| p.path == path)
    }

    /// Rows made elsewhere (tests, a computation not stored), as one part.
    pub fn from_rows(rows: Vec<RollupRow>) -> Rollups {
        Rollups {
            hours: vec![rows.into()],
            paths: vec![Arc::from("")],
            from: i64::MIN,
            to: i64::MAX,
        }
    }

    /// The rows within the range, ordered by time.
    pub fn iter(&self) -> RollupIter<'_> {
        RollupIter {
            hours: &self.hours,
            current: [].iter(),
            from: self.from,
            to: self.to,
        }
    }

    /// The rows file by file, in time order.
    pub fn parts(&self) -> impl Iterator<Item = RollupPart<'_>> {
        self.hours
            .iter()
            .zip(&self.paths)
            .map(|(rows, path)| RollupPart {
                path,
                rows,
                from: self.from,
                to: self.to,
            })
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }
}

impl<'a> IntoIterator for &'a Rollups {
    type Item = &'a RollupRow;
    type IntoIter = RollupIter<'a>;
    fn into_iter(self) -> RollupIter<'a> {
        self.iter()
    }
}

/// The rows of [`Rollups`], hour after hour.
#[derive(Debug, Clone)]
pub struct RollupIter<'a> {
    hours: &'a [Arc<[RollupRow]>],
    current: std::slice::Iter<'a, RollupRow>,
    from: i64,
    to: i64,
}

impl<'a> Iterator for RollupIter<'a> {
    type Item = &'a RollupRow;
    fn next(&mut self) -> Option<&'a RollupRow> {
        loop {
            if let Some(row) = self.current.next() {
                if (self.from..self.to).contains(&row.usage.hour_us) {
                    return Some(row);
                }
                continue;
            }
            let (first, rest) = self.hours.split_first()?;
            self.current = first.iter();
            self.hours = rest;
        }
    }
}

impl Store {
    /// Whole hourly rollup rows of `[from_us, to_us)`, ordered by hour.
    pub async fn rollups(&self, from_us: i64, to_us: i64) -> Result<Rollups> {
        self.read_tier(Tier::Hourly, from_us, to_us).await
    }

    /// The minute tier of `[from_us, to_us)`, as rollup rows whose `hour_us`
    /// holds the minute (agent, API, model, cached and reasoning tokens and the
    /// status classes other than 5xx are not kept per minute).
    pub async fn minute_rollups(&self, from_us: i64, to_us: i64) -> Result<Rollups> {
        self.read_tier(Tier::Minute, from_us, to_us).await
    }

    async fn read_tier(&self, tier: Tier, from_us: i64, to_us: i64) -> Result<Rollups> {
        let (_, rows) = self
            .rollups_where(tier, from_us, to_us, |_, _| true)
            .await?;
        Ok(rows)
    }

    /// The files holding `[from_us, to_us)` of `tier`, and the rows of those
    /// `needed` asks for (given each file and whether the range holds all of
    /// it): a reader that keeps what it computes from a file by its path
    /// decodes only the files it has not seen. `needed` should take what it
    /// answers "not needed" for out of its cache there and then: a cache
    /// cleared before it looks again must not lose the file.
    pub async fn rollups_where(
        &self,
        tier: Tier,
        from_us: i64,
        to_us: i64,
        mut needed: impl FnMut(&RollupFile, bool) -> bool,
    ) -> Result<(RollupListing, Rollups)> {
        let hour = crate::rollup::HOUR_US;
        let first_hour = from_us.div_euclid(hour).saturating_mul(hour);
        // A file listed may be replaced (and deleted) by another process before
        // it is read: the hours are listed again.
        let mut attempt = 0;
        loop {
            let listing = RollupListing {
                files: self.db.rollup_files(tier, first_hour, to_us).await?,
                from: from_us,
                to: to_us,
            };
            let wanted: Vec<RollupFile> = listing
                .files
                .iter()
                .filter(|f| needed(f, listing.is_whole(f)))
                .cloned()
                .collect();
            match self.load_files(&wanted).await {
                Ok(hours) => {
                    let rows = Rollups {
                        hours,
                        paths: wanted.iter().map(|f| Arc::from(f.path.as_str())).collect(),
                        from: from_us,
                        to: to_us,
                    };
                    return Ok((listing, rows));
                }
                Err(StoreError::MissingLakeFile { .. }) if attempt < 10 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The decoded rows of each file, from the cache or read on a blocking
    /// thread (all misses in one go).
    async fn load_files(&self, files: &[RollupFile]) -> Result<Vec<Arc<[RollupRow]>>> {
        let mut hours: Vec<Option<Arc<[RollupRow]>>> = files
            .iter()
            .map(|f| self.rollup_cache.get(&f.path))
            .collect();
        let missing: Vec<(usize, String)> = hours
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_none())
            .map(|(i, _)| (i, files[i].path.clone()))
            .collect();
        if !missing.is_empty() {
            let lake = self.lake.clone();
            let read = tokio::task::spawn_blocking(move || {
                missing
                    .into_iter()
                    .map(|(i, path)| {
                        let rows = read_hour(&lake, &path);
                        (i, path, rows)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| StoreError::io("<rollup read task>", std::io::Error::other(e)))?;
            // What was read is kept even if another file was gone: the next
            // listing then only has the replaced hours to read.
            let mut gone = None;
            for (i, path, rows) in read {
                match rows {
                    Ok(rows) => {
                        self.rollup_cache.put(&path, Arc::clone(&rows));
                        hours[i] = Some(rows);
                    }
                    Err(e @ StoreError::MissingLakeFile { .. }) => gone = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if let Some(e) = gone {
                return Err(e);
            }
        }
        Ok(hours.into_iter().flatten().collect())
    }

    /// Every value a dimension (`subscription`, `product` or `agent`) has taken
    /// in the rollups, for checking that a budget names something real.
    pub async fn seen_dimension_values(&self, dimension: &str) -> Result<Vec<String>> {
        let pick: fn(&Summary) -> &[Sym] = match dimension {
            "subscription" => |s| &s.subscriptions,
            "product" => |s| &s.products,
            "agent" => |s| &s.agents,
            other => {
                return Err(StoreError::NotFound(format!(
                    "no rollup dimension {other:?}"
                )));
            }
        };
        let summaries = self.summaries(i64::MIN, i64::MAX).await?;
        let seen: std::collections::BTreeSet<Sym> = summaries
            .iter()
            .flat_map(|s| pick(s).iter().copied())
            .collect();
        Ok(seen.into_iter().map(String::from).collect())
    }

    /// The gateways seen in `[from_us, to_us)`, sorted.
    pub async fn rollup_gateways(&self, from_us: i64, to_us: i64) -> Result<Vec<String>> {
        let summaries = self.summaries(from_us, to_us).await?;
        let ids: std::collections::BTreeSet<Sym> = summaries
            .iter()
            .flat_map(|s| s.gateways.iter().copied())
            .collect();
        Ok(ids.into_iter().map(String::from).collect())
    }

    /// Requests per agent, subscription, gateway, backend and deployment over
    /// every rolled-up hour, with the first and last hour they were seen: what
    /// the lineage graph's observed edges are made of.
    pub async fn observed_usage(&self) -> Result<Vec<crate::state::ObservedUsage>> {
        let summaries = self.summaries(i64::MIN, i64::MAX).await?;
        let mut groups: HashMap<ObservedKey, (i64, i64, i64)> = HashMap::new();
        for summary in &summaries {
            for (key, requests) in &summary.observed {
                let g = groups.entry(*key).or_insert((0, i64::MAX, i64::MIN));
                g.0 = g.0.saturating_add(*requests);
                g.1 = g.1.min(summary.hour_us);
                g.2 = g.2.max(summary.hour_us);
            }
        }
        Ok(groups
            .into_iter()
            .map(|(k, (requests, first, last))| crate::state::ObservedUsage {
                agent: k[0].map(String::from),
                subscription: k[1].map(String::from),
                gateway_id: k[2].map(String::from),
                backend: k[3].map(String::from),
                deployment: k[4].map(String::from),
                requests,
                first_hour_us: first,
                last_hour_us: last,
            })
            .collect())
    }

    /// The summary of every hourly file of `[from_us, to_us)` (hour-aligned
    /// ranges), each made once per process: only the files not summarised
    /// yet are decoded.
    async fn summaries(&self, from_us: i64, to_us: i64) -> Result<Vec<Arc<Summary>>> {
        let cache = &self.summary_cache;
        let mut kept: HashMap<String, Arc<Summary>> = HashMap::new();
        let (listing, decoded) = self
            .rollups_where(Tier::Hourly, from_us, to_us, |f, whole| {
                let hit = whole.then(|| cache.get(&f.path)).flatten();
                hit.map(|s| kept.insert(f.path.clone(), s)).is_none()
            })
            .await?;
        for part in decoded.parts() {
            let summary = Summary::of(part);
            if part.is_whole() {
                cache.put(part.path, Arc::clone(&summary));
            }
            kept.insert(part.path.to_owned(), summary);
        }
        // Every file listed was either kept or decoded.
        Ok(listing
            .files
            .iter()
            .filter_map(|f| kept.get(&f.path).cloned())
            .collect())
    }
}

/// Tool calls accumulated over the requests files up to a manifest watermark.
#[derive(Debug, Default)]
pub struct ToolCallsSoFar {
    watermark: i64,
    /// (tool, agent) -> (calls, first µs, last µs).
    calls: std::collections::BTreeMap<(String, String), (i64, i64, i64)>,
}

impl Store {
    /// Calls per MCP tool and agent over the whole lake. Lake files are
    /// immutable and a request is in one of them: each call adds only the
    /// requests files committed since the last, so its cost grows with what
    /// was committed meanwhile, not with the lake.
    pub async fn tool_calls(&self) -> Result<Vec<crate::state::ToolCalls>> {
        let watermark = self.db.manifest_watermark().await?;
        let mut so_far = self.tool_calls.lock().await;
        if so_far.watermark < watermark {
            let after = so_far.watermark;
            let ctx = self
                .session_at(watermark, &|f| {
                    f.id > after && f.file.table_name == crate::schema::REQUESTS
                })
                .await?;
            let batches = ctx
                .sql(
                    "SELECT tool, agent, COUNT(*), \
                     CAST(MIN(time) AS BIGINT), CAST(MAX(time) AS BIGINT) FROM requests \
                     WHERE tool IS NOT NULL AND agent IS NOT NULL GROUP BY tool, agent",
                )
                .await?
                .collect()
                .await?;
            for batch in &batches {
                let text = |i: usize| arrow::compute::cast(batch.column(i), &DataType::Utf8);
                let (tool, agent) = (text(0)?, text(1)?);
                let (tool, agent) = (tool.as_string::<i32>(), agent.as_string::<i32>());
                let calls = batch.column(2).as_primitive::<Int64Type>();
                let (first, last) = (
                    batch.column(3).as_primitive::<Int64Type>(),
                    batch.column(4).as_primitive::<Int64Type>(),
                );
                for row in 0..batch.num_rows() {
                    if tool.is_null(row) || agent.is_null(row) {
                        continue;
                    }
                    let key = (tool.value(row).to_owned(), agent.value(row).to_owned());
                    let seen = so_far.calls.entry(key).or_insert((0, i64::MAX, i64::MIN));
                    seen.0 = seen.0.saturating_add(calls.value(row));
                    seen.1 = seen.1.min(first.value(row));
                    seen.2 = seen.2.max(last.value(row));
                }
            }
            so_far.watermark = watermark;
        }
        Ok(so_far
            .calls
            .iter()
            .map(
                |((tool, agent), &(calls, first_us, last_us))| crate::state::ToolCalls {
                    tool: tool.clone(),
                    agent: agent.clone(),
                    calls,
                    first_us,
                    last_us,
                },
            )
            .collect())
    }
}

/// Agent, subscription, gateway, backend, deployment: an observed edge's key.
type ObservedKey = [Option<Sym>; 5];

/// What the dimension reads need of one hourly file.
#[derive(Debug)]
pub(crate) struct Summary {
    hour_us: i64,
    gateways: Vec<Sym>,
    subscriptions: Vec<Sym>,
    products: Vec<Sym>,
    agents: Vec<Sym>,
    observed: Vec<(ObservedKey, i64)>,
}

impl Summary {
    fn of(part: RollupPart<'_>) -> Arc<Summary> {
        let distinct = |pick: fn(&UsageRollup) -> Option<Sym>| -> Vec<Sym> {
            let set: std::collections::HashSet<Sym> =
                part.iter().filter_map(|r| pick(&r.usage)).collect();
            set.into_iter().collect()
        };
        let mut observed: HashMap<ObservedKey, i64> = HashMap::new();
        for r in part.iter() {
            let u = &r.usage;
            let n = observed
                .entry([
                    u.agent,
                    u.subscription,
                    u.gateway_id,
                    u.backend,
                    u.deployment,
                ])
                .or_default();
            *n = n.saturating_add(u.requests);
        }
        Arc::new(Summary {
            hour_us: part.iter().next().map_or(0, |r| r.usage.hour_us),
            gateways: distinct(|u| u.gateway_id),
            subscriptions: distinct(|u| u.subscription),
            products: distinct(|u| u.product),
            agents: distinct(|u| u.agent),
            observed: observed.into_iter().collect(),
        })
    }
}

/// File summaries by path (files never change; a replaced hour is a new path).
#[derive(Debug, Default)]
pub struct SummaryCache {
    files: Mutex<HashMap<Arc<str>, Arc<Summary>>>,
}

/// Summaries kept at most: over ten years of hours.
const SUMMARIES_KEPT: usize = 100_000;

impl SummaryCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<Summary>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, path: &str) -> Option<Arc<Summary>> {
        self.lock().get(path).cloned()
    }

    fn put(&self, path: &str, summary: Arc<Summary>) {
        let mut files = self.lock();
        if files.len() >= SUMMARIES_KEPT {
            files.clear();
        }
        files.insert(Arc::from(path), summary);
    }

    /// Forgets files no longer named.
    pub(crate) fn forget(&self, paths: &[String]) {
        let mut files = self.lock();
        for path in paths {
            files.remove(path.as_str());
        }
    }
}

/// One rollup file's rows.
fn read_hour(lake: &crate::Lake, path: &str) -> Result<Hour> {
    let mut rows = Vec::new();
    for batch in lake.read_parquet(path)? {
        rows.extend(decode(&batch).map_err(|e| in_file(lake, path, e))?);
    }
    Ok(rows.into())
}

fn in_file(lake: &crate::Lake, path: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Arrow(source) => StoreError::ArrowInFile {
            path: lake.absolute(path),
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hour_us: i64, subscription: Option<&str>, requests: i64) -> RollupRow {
        RollupRow {
            usage: UsageRollup {
                hour_us,
                subscription: subscription.map(Sym::new),
                model: Some("gpt-4o".into()),
                requests,
                prompt_tokens: 7,
                ..UsageRollup::default()
            },
            status_2xx: requests,
            client_429: 1,
            region: Some("eastus".into()),
            latency_sketch: vec![1, 2, 3],
            backend_latency_sketch: vec![],
            ..RollupRow::default()
        }
    }

    #[test]
    fn rows_survive_the_columnar_round_trip() {
        let rows = vec![row(0, Some("s1"), 3), row(3_600_000_000, None, i64::MAX)];
        let batch = encode(&rows).unwrap();
        assert_eq!(batch.schema(), rollup_schema());
        assert_eq!(decode(&batch).unwrap(), rows);
    }

    #[test]
    fn a_file_without_a_column_is_an_error_naming_it() {
        let batch = encode(&[row(0, None, 1)]).unwrap();
        let batch = batch.project(&[0, 1]).unwrap();
        let e = decode(&batch).unwrap_err().to_string();
        assert!(e.contains("without column product"), "{e}");
    }

    #[test]
    fn rollups_iterate_only_their_range_in_order() {
        let hours: Vec<Arc<[RollupRow]>> = vec![
            vec![row(10, None, 1), row(20, None, 2)].into(),
            Vec::new().into(),
            vec![row(30, None, 3), row(40, None, 4)].into(),
        ];
        let set = Rollups {
            paths: vec![Arc::from("a"), Arc::from("b"), Arc::from("c")],
            hours,
            from: 20,
            to: 40,
        };
        let got: Vec<i64> = set.iter().map(|r| r.usage.requests).collect();
        assert_eq!(got, [2, 3]);
        assert_eq!(set.len(), 2);
        assert!(!Rollups::default().iter().any(|_| true));
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let cache = RollupCache::default();
        let big: Arc<[RollupRow]> = vec![row(0, None, 1); CACHE_MAX_ROWS / 2 + 1].into();
        cache.put("a", Arc::clone(&big));
        cache.put("b", Arc::clone(&big));
        let inner = cache.inner.lock().unwrap();
        assert!(inner.rows <= CACHE_MAX_ROWS);
        assert_eq!(inner.files.len(), 1);
        drop(inner);
        cache.forget(&["a".into(), "b".into()]);
        assert_eq!(cache.inner.lock().unwrap().rows, 0);
    }
}
