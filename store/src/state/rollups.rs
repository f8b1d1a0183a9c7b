//! Which file holds each rolled-up hour (the rows are Parquet in the lake,
//! `crate::derived`): replaced an hour at a time, and only by a computation
//! that saw at least as much of the lake as the one it replaces.

use chrono::Utc;
use serde::Serialize;

use super::{StateDb, begin_write, bump_version, on_pool};
use crate::Result;
use crate::symbol::Sym;

/// The dimensions and usage of one hourly rollup row: what chargeback reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct UsageRollup {
    /// The first microsecond of the UTC hour.
    pub hour_us: i64,
    pub subscription: Option<Sym>,
    pub product: Option<Sym>,
    pub agent: Option<Sym>,
    pub api: Option<Sym>,
    pub gateway_id: Option<Sym>,
    pub backend: Option<Sym>,
    pub deployment: Option<Sym>,
    pub model: Option<Sym>,
    pub requests: i64,
    pub cache_hits: i64,
    pub prompt_tokens: i64,
    pub cached_tokens: i64,
    pub completion_tokens: i64,
    pub reasoning_tokens: i64,
}

/// A whole rollup row: usage plus status classes, 429s and the latency sketch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RollupRow {
    #[serde(flatten)]
    pub usage: UsageRollup,
    pub status_2xx: i64,
    pub status_3xx: i64,
    pub status_4xx: i64,
    pub status_5xx: i64,
    pub client_429: i64,
    pub backend_429: i64,
    /// Refused by a quota policy: status 403 from the gateway, no backend call.
    pub quota_403: i64,
    /// Answered by an open circuit breaker (its error source or reason says so).
    pub breaker_trips: i64,
    pub region: Option<Sym>,
    /// [`crate::sketch::LatencySketch::encode`]d total latency.
    #[serde(skip)]
    pub latency_sketch: Vec<u8>,
    /// The backend's share of the latency, encoded the same way.
    #[serde(skip)]
    pub backend_latency_sketch: Vec<u8>,
}

/// The file holding one hour of a tier.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RollupFile {
    pub hour_us: i64,
    /// Under the lake root.
    pub path: String,
}

/// One recomputed hour, its files already written (`None`: no rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupHour {
    pub hour_us: i64,
    pub row_count: i64,
    pub hourly_path: Option<String>,
    pub minute_path: Option<String>,
}

/// What storing recomputed hours did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RollupsReplaced {
    /// Hours stored (a newer computation had the others).
    pub hours: usize,
    /// Files no hour names any more, to delete: the replaced ones, and this
    /// computation's own for hours it lost.
    pub obsolete: Vec<String>,
}

impl StateDb {
    /// Names the files of each hour in `hours` (hour aligned, sorted), unless
    /// an hour was already computed at a newer `watermark`; stops naming minute
    /// files of hours before `minutes_from`.
    #[tracing::instrument(skip_all, fields(hours = hours.len()), err)]
    pub async fn replace_rollup_hours(
        &self,
        hours: &[RollupHour],
        minutes_from: i64,
        watermark: i64,
    ) -> Result<RollupsReplaced> {
        let now = Utc::now().to_rfc3339();
        let mut done = RollupsReplaced::default();
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            // Counted first: it takes SQLite's write lock, and on Postgres the
            // version row's lock until commit, so `seq`s commit in order and an
            // alert evaluation that saw `seq` N has seen every hour stored below.
            bump_version!(tx, crate::StateVersion::Rollups);
            let seq =
                sqlx::query_scalar::<Db, i64>("SELECT version FROM state_versions WHERE name = $1")
                    .bind(crate::StateVersion::Rollups.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            for hour in hours {
                let old: Option<(Option<String>, Option<String>)> = sqlx::query_as::<Db, _>(
                    "SELECT hourly_path, minute_path FROM rollup_hours \
                     WHERE hour_us = $1 AND watermark <= $2",
                )
                .bind(hour.hour_us)
                .bind(watermark)
                .fetch_optional(&mut *tx)
                .await?;
                // The conditional upsert takes SQLite's write lock, or on Postgres
                // the hour's row lock until commit, so two refreshes of one hour
                // are ordered and the older one loses.
                let claimed = sqlx::query::<Db>(
                    "INSERT INTO rollup_hours (hour_us, watermark, computed_at, seq, row_count, \
                     hourly_path, minute_path) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (hour_us) DO UPDATE SET watermark = excluded.watermark, \
                     computed_at = excluded.computed_at, seq = excluded.seq, \
                     row_count = excluded.row_count, hourly_path = excluded.hourly_path, \
                     minute_path = excluded.minute_path \
                     WHERE rollup_hours.watermark <= excluded.watermark",
                )
                .bind(hour.hour_us)
                .bind(watermark)
                .bind(&now)
                .bind(seq)
                .bind(hour.row_count)
                .bind(&hour.hourly_path)
                .bind(&hour.minute_path)
                .execute(&mut *tx)
                .await?;
                let (replaced, lost) = if claimed.rows_affected() == 1 {
                    done.hours += 1;
                    let (a, b) = old.unwrap_or_default();
                    (a, b)
                } else {
                    (hour.hourly_path.clone(), hour.minute_path.clone())
                };
                done.obsolete.extend(replaced.into_iter().chain(lost));
            }
            let old_minutes: Vec<String> = sqlx::query_scalar::<Db, String>(
                "SELECT minute_path FROM rollup_hours \
                 WHERE hour_us < $1 AND minute_path IS NOT NULL",
            )
            .bind(minutes_from)
            .fetch_all(&mut *tx)
            .await?;
            if !old_minutes.is_empty() {
                sqlx::query::<Db>(
                    "UPDATE rollup_hours SET minute_path = NULL \
                     WHERE hour_us < $1 AND minute_path IS NOT NULL",
                )
                .bind(minutes_from)
                .execute(&mut *tx)
                .await?;
            }
            done.obsolete.extend(old_minutes);
            tx.commit().await?;
        });
        Ok(done)
    }

    /// The files of a tier holding hours in `[from_us, to_us)`, ordered by hour.
    pub async fn rollup_files(
        &self,
        tier: crate::derived::Tier,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<RollupFile>> {
        let sql = match tier {
            crate::derived::Tier::Hourly => {
                "SELECT hour_us, hourly_path AS path FROM rollup_hours \
                 WHERE hour_us >= $1 AND hour_us < $2 AND hourly_path IS NOT NULL ORDER BY hour_us"
            }
            crate::derived::Tier::Minute => {
                "SELECT hour_us, minute_path AS path FROM rollup_hours \
                 WHERE hour_us >= $1 AND hour_us < $2 AND minute_path IS NOT NULL ORDER BY hour_us"
            }
        };
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, RollupFile>(sql)
                .bind(from_us)
                .bind(to_us)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every file the rollups name, for the derived tables' garbage collection.
    pub async fn all_rollup_paths(&self) -> Result<Vec<String>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, String>(
                "SELECT hourly_path FROM rollup_hours WHERE hourly_path IS NOT NULL \
                 UNION ALL SELECT minute_path FROM rollup_hours WHERE minute_path IS NOT NULL",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// The newest hour rolled up with any traffic: the data time budgets are
    /// evaluated at.
    pub async fn latest_rollup_hour(&self) -> Result<Option<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, Option<i64>>(
                "SELECT MAX(hour_us) FROM rollup_hours WHERE row_count > 0",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// The earliest hour rolled up with any traffic.
    pub async fn first_rollup_hour(&self) -> Result<Option<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, Option<i64>>(
                "SELECT MIN(hour_us) FROM rollup_hours WHERE row_count > 0",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// Batches committed but not rolled up yet, oldest first.
    pub async fn pending_rollup_batches(&self) -> Result<Vec<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>("SELECT batch_id FROM rollup_pending ORDER BY batch_id")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Marks batches rolled up.
    pub async fn clear_pending_rollups(&self, batch_ids: &[i64]) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            for id in batch_ids {
                sqlx::query::<Db>("DELETE FROM rollup_pending WHERE batch_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Drops stored rollup hours outside `[from, to)`: hours rolled up before
    /// ingest bounded times (a line dated 2030 left its hour, which moved the
    /// newest hour for alerts and pages). Writes only when there are some.
    /// Returns the hours dropped and the files no longer named.
    pub async fn drop_rollup_hours_outside(
        &self,
        from: i64,
        to: i64,
    ) -> Result<(u64, Vec<String>)> {
        let outside = on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>(
                "SELECT COUNT(*) FROM rollup_hours WHERE hour_us < $1 OR hour_us >= $2",
            )
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await?
        });
        if outside == 0 {
            return Ok((0, Vec::new()));
        }
        let mut paths = Vec::new();
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let files: Vec<(Option<String>, Option<String>)> = sqlx::query_as::<Db, _>(
                "SELECT hourly_path, minute_path FROM rollup_hours \
                 WHERE hour_us < $1 OR hour_us >= $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(&mut *tx)
            .await?;
            paths.extend(files.into_iter().flat_map(|(a, b)| a.into_iter().chain(b)));
            sqlx::query::<Db>("DELETE FROM rollup_hours WHERE hour_us < $1 OR hour_us >= $2")
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
            bump_version!(tx, crate::StateVersion::Rollups);
            tx.commit().await?;
        });
        Ok((outside as u64, paths))
    }

    /// Removes the rollups of hours outside `keep` (sorted hour starts) computed
    /// at or below `watermark`: what a rebuild that listed the files at
    /// `watermark` does to hours no committed file covers any more. An hour a
    /// newer batch rolled up meanwhile is left alone. Returns the hours dropped
    /// and the files no longer named.
    pub async fn drop_rollup_hours_except(
        &self,
        keep: &[i64],
        watermark: i64,
    ) -> Result<(u64, Vec<String>)> {
        let mut dropped = 0;
        let mut paths = Vec::new();
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let stored: Vec<(i64, Option<String>, Option<String>)> = sqlx::query_as::<Db, _>(
                "SELECT hour_us, hourly_path, minute_path FROM rollup_hours WHERE watermark <= $1",
            )
            .bind(watermark)
            .fetch_all(&mut *tx)
            .await?;
            for (hour, hourly, minute) in stored
                .into_iter()
                .filter(|(h, _, _)| keep.binary_search(h).is_err())
            {
                let gone = sqlx::query::<Db>(
                    "DELETE FROM rollup_hours WHERE hour_us = $1 AND watermark <= $2",
                )
                .bind(hour)
                .bind(watermark)
                .execute(&mut *tx)
                .await?;
                if gone.rows_affected() == 1 {
                    paths.extend(hourly.into_iter().chain(minute));
                    dropped += 1;
                }
            }
            if dropped > 0 {
                bump_version!(tx, crate::StateVersion::Rollups);
            }
            tx.commit().await?;
        });
        Ok((dropped, paths))
    }
}

/// Calls of one MCP tool by one agent over the whole lake, with the first and
/// last time (microseconds): the observed tool -> agent edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCalls {
    pub tool: String,
    pub agent: String,
    pub calls: i64,
    pub first_us: i64,
    pub last_us: i64,
}

/// Traffic between an agent, a subscription, a gateway and a deployment over all
/// rolled-up hours: what the lineage graph's observed edges are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedUsage {
    pub agent: Option<String>,
    pub subscription: Option<String>,
    pub gateway_id: Option<String>,
    pub backend: Option<String>,
    pub deployment: Option<String>,
    pub requests: i64,
    pub first_hour_us: i64,
    pub last_hour_us: i64,
}
