//! Stored hourly rollups: replaced an hour at a time, and only by a computation
//! that saw at least as much of the lake as the one it replaces.

use chrono::Utc;
use serde::Serialize;
use sqlx::QueryBuilder;

use super::{StateDb, begin_write, bump_version, on_pool};
use crate::Result;

/// The dimensions and usage of one hourly rollup row: what chargeback reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, sqlx::FromRow, Serialize)]
pub struct UsageRollup {
    /// The first microsecond of the UTC hour.
    pub hour_us: i64,
    pub subscription: Option<String>,
    pub product: Option<String>,
    pub agent: Option<String>,
    pub api: Option<String>,
    pub gateway_id: Option<String>,
    pub backend: Option<String>,
    pub deployment: Option<String>,
    pub model: Option<String>,
    pub requests: i64,
    pub cache_hits: i64,
    pub prompt_tokens: i64,
    pub cached_tokens: i64,
    pub completion_tokens: i64,
    pub reasoning_tokens: i64,
}

/// A whole rollup row: usage plus status classes, 429s and the latency sketch.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct RollupRow {
    #[sqlx(flatten)]
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
    pub region: Option<String>,
    /// [`crate::sketch::LatencySketch::encode`]d total latency.
    #[serde(skip)]
    pub latency_sketch: Vec<u8>,
    /// The backend's share of the latency, encoded the same way.
    #[serde(skip)]
    pub backend_latency_sketch: Vec<u8>,
}

/// The columns of [`RollupRow`] beyond the usage ones.
macro_rules! measure_columns {
    () => {
        "status_2xx, status_3xx, status_4xx, status_5xx, client_429, backend_429, quota_403, \
         breaker_trips, region, latency_sketch, backend_latency_sketch"
    };
}

/// The columns of [`UsageRollup`], as a literal so queries stay `&'static str`.
macro_rules! usage_columns {
    () => {
        "hour_us, subscription, product, agent, api, gateway_id, backend, deployment, model, \
         requests, cache_hits, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens"
    };
}

impl StateDb {
    /// Replaces the rollups of each hour in `hours` (sorted, `[start, end)` in
    /// microseconds, hour aligned) with `rows`, and their minute tier with
    /// `minutes` (each `hour_us` holding its minute), unless an hour was already
    /// computed at a newer `watermark`; drops minute rows of hours before
    /// `minutes_from`. Returns how many hours were replaced.
    #[tracing::instrument(skip_all, fields(rows = rows.len(), minutes = minutes.len()), err)]
    pub async fn replace_rollup_hours(
        &self,
        hours: &[i64],
        rows: &[RollupRow],
        minutes: &[RollupRow],
        minutes_from: i64,
        watermark: i64,
    ) -> Result<usize> {
        let now = Utc::now().to_rfc3339();
        let replaced;
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            // Counted first: it takes SQLite's write lock, and on Postgres the
            // version row's lock until commit, so `seq`s commit in order and an
            // alert evaluation that saw `seq` N has seen every hour stored below.
            bump_version!(tx, "rollups");
            let seq = sqlx::query_scalar::<Db, i64>(
                "SELECT version FROM state_versions WHERE name = 'rollups'",
            )
            .fetch_one(&mut *tx)
            .await?;
            let mut won = Vec::with_capacity(hours.len());
            for &hour in hours {
                // The conditional upsert is the first write: it takes SQLite's write
                // lock, or on Postgres the hour's row lock until commit, so two
                // refreshes of one hour are ordered and the older one loses.
                let claimed = sqlx::query::<Db>(
                    "INSERT INTO rollup_hours (hour_us, watermark, computed_at, seq) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (hour_us) DO UPDATE SET watermark = excluded.watermark, \
                     computed_at = excluded.computed_at, seq = excluded.seq \
                     WHERE rollup_hours.watermark <= excluded.watermark",
                )
                .bind(hour)
                .bind(watermark)
                .bind(&now)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                if claimed.rows_affected() == 1 {
                    sqlx::query::<Db>("DELETE FROM rollup_hourly WHERE hour_us = $1")
                        .bind(hour)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query::<Db>("DELETE FROM rollup_minute WHERE hour_us = $1")
                        .bind(hour)
                        .execute(&mut *tx)
                        .await?;
                    won.push(hour);
                }
            }
            replaced = won.len();
            let kept: Vec<&RollupRow> = rows
                .iter()
                .filter(|r| won.binary_search(&r.usage.hour_us).is_ok())
                .collect();
            // 26 binds a row: well under both drivers' limits per statement.
            for chunk in kept.chunks(500) {
                let mut query = QueryBuilder::<Db>::new(concat!(
                    "INSERT INTO rollup_hourly (",
                    usage_columns!(),
                    ", ",
                    measure_columns!(),
                    ") "
                ));
                query.push_values(chunk, |mut b, r| {
                    let u = &r.usage;
                    b.push_bind(u.hour_us)
                        .push_bind(u.subscription.clone())
                        .push_bind(u.product.clone())
                        .push_bind(u.agent.clone())
                        .push_bind(u.api.clone())
                        .push_bind(u.gateway_id.clone())
                        .push_bind(u.backend.clone())
                        .push_bind(u.deployment.clone())
                        .push_bind(u.model.clone())
                        .push_bind(u.requests)
                        .push_bind(u.cache_hits)
                        .push_bind(u.prompt_tokens)
                        .push_bind(u.cached_tokens)
                        .push_bind(u.completion_tokens)
                        .push_bind(u.reasoning_tokens)
                        .push_bind(r.status_2xx)
                        .push_bind(r.status_3xx)
                        .push_bind(r.status_4xx)
                        .push_bind(r.status_5xx)
                        .push_bind(r.client_429)
                        .push_bind(r.backend_429)
                        .push_bind(r.quota_403)
                        .push_bind(r.breaker_trips)
                        .push_bind(r.region.clone())
                        .push_bind(r.latency_sketch.clone())
                        .push_bind(r.backend_latency_sketch.clone());
                });
                query.build().execute(&mut *tx).await?;
            }
            let floor = |us: i64| us.div_euclid(crate::rollup::HOUR_US) * crate::rollup::HOUR_US;
            let kept: Vec<&RollupRow> = minutes
                .iter()
                .filter(|r| won.binary_search(&floor(r.usage.hour_us)).is_ok())
                .collect();
            for chunk in kept.chunks(500) {
                let mut query = QueryBuilder::<Db>::new(
                    "INSERT INTO rollup_minute (minute_us, hour_us, subscription, product, \
                     gateway_id, backend, deployment, region, requests, status_5xx, client_429, \
                     backend_429, quota_403, breaker_trips, cache_hits, prompt_tokens, \
                     completion_tokens, latency_sketch, backend_latency_sketch) ",
                );
                query.push_values(chunk, |mut b, r| {
                    let u = &r.usage;
                    b.push_bind(u.hour_us)
                        .push_bind(floor(u.hour_us))
                        .push_bind(u.subscription.clone())
                        .push_bind(u.product.clone())
                        .push_bind(u.gateway_id.clone())
                        .push_bind(u.backend.clone())
                        .push_bind(u.deployment.clone())
                        .push_bind(r.region.clone())
                        .push_bind(u.requests)
                        .push_bind(r.status_5xx)
                        .push_bind(r.client_429)
                        .push_bind(r.backend_429)
                        .push_bind(r.quota_403)
                        .push_bind(r.breaker_trips)
                        .push_bind(u.cache_hits)
                        .push_bind(u.prompt_tokens)
                        .push_bind(u.completion_tokens)
                        .push_bind(r.latency_sketch.clone())
                        .push_bind(r.backend_latency_sketch.clone());
                });
                query.build().execute(&mut *tx).await?;
            }
            sqlx::query::<Db>("DELETE FROM rollup_minute WHERE hour_us < $1")
                .bind(minutes_from)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(replaced)
    }

    /// The minute tier of `[from_us, to_us)`, as rollup rows whose `hour_us`
    /// holds the minute (agent, API, model and the status classes other than
    /// 5xx are not kept per minute).
    pub async fn minute_rollups(&self, from_us: i64, to_us: i64) -> Result<Vec<RollupRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, RollupRow>(
                "SELECT minute_us AS hour_us, subscription, product, \
                 CAST(NULL AS TEXT) AS agent, CAST(NULL AS TEXT) AS api, gateway_id, backend, \
                 deployment, CAST(NULL AS TEXT) AS model, requests, cache_hits, prompt_tokens, \
                 CAST(0 AS BIGINT) AS cached_tokens, completion_tokens, \
                 CAST(0 AS BIGINT) AS reasoning_tokens, CAST(0 AS BIGINT) AS status_2xx, \
                 CAST(0 AS BIGINT) AS status_3xx, CAST(0 AS BIGINT) AS status_4xx, status_5xx, \
                 client_429, backend_429, quota_403, breaker_trips, region, latency_sketch, \
                 backend_latency_sketch FROM rollup_minute \
                 WHERE minute_us >= $1 AND minute_us < $2 ORDER BY minute_us",
            )
            .bind(from_us)
            .bind(to_us)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Usage rollups of `[from_us, to_us)`, without the latency sketches.
    pub async fn usage_rollups(&self, from_us: i64, to_us: i64) -> Result<Vec<UsageRollup>> {
        const SQL: &str = concat!(
            "SELECT ",
            usage_columns!(),
            " FROM rollup_hourly WHERE hour_us >= $1 AND hour_us < $2"
        );
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, UsageRollup>(SQL)
                .bind(from_us)
                .bind(to_us)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Whole rollup rows of `[from_us, to_us)`, ordered by hour.
    pub async fn rollups(&self, from_us: i64, to_us: i64) -> Result<Vec<RollupRow>> {
        const SQL: &str = concat!(
            "SELECT ",
            usage_columns!(),
            ", ",
            measure_columns!(),
            " FROM rollup_hourly WHERE hour_us >= $1 AND hour_us < $2 ORDER BY hour_us"
        );
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, RollupRow>(SQL)
                .bind(from_us)
                .bind(to_us)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The newest hour rolled up with any traffic: the data time budgets are
    /// evaluated at.
    pub async fn latest_rollup_hour(&self) -> Result<Option<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, Option<i64>>("SELECT MAX(hour_us) FROM rollup_hourly")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Every value a dimension (`subscription`, `product` or `agent`) has taken in
    /// the rollups, for checking that a budget names something real.
    pub async fn seen_dimension_values(&self, dimension: &str) -> Result<Vec<String>> {
        let sql = match dimension {
            "subscription" => {
                "SELECT DISTINCT subscription FROM rollup_hourly WHERE subscription IS NOT NULL"
            }
            "product" => "SELECT DISTINCT product FROM rollup_hourly WHERE product IS NOT NULL",
            "agent" => "SELECT DISTINCT agent FROM rollup_hourly WHERE agent IS NOT NULL",
            other => {
                return Err(crate::StoreError::NotFound(format!(
                    "no rollup dimension {other:?}"
                )));
            }
        };
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, String>(sql)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The gateways seen in `[from_us, to_us)`, sorted.
    pub async fn rollup_gateways(&self, from_us: i64, to_us: i64) -> Result<Vec<String>> {
        let mut ids = on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, String>(
                "SELECT DISTINCT gateway_id FROM rollup_hourly \
                 WHERE hour_us >= $1 AND hour_us < $2 AND gateway_id IS NOT NULL",
            )
            .bind(from_us)
            .bind(to_us)
            .fetch_all(pool)
            .await?
        });
        ids.sort();
        Ok(ids)
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

    /// Removes the rollups of hours outside `keep` (sorted hour starts) computed
    /// at or below `watermark`: what a rebuild that listed the files at
    /// `watermark` does to hours no committed file covers any more. An hour a
    /// newer batch rolled up meanwhile is left alone.
    /// Drops stored rollup hours outside `[from, to)`: hours rolled up before
    /// ingest bounded times (a line dated 2030 left its hour, which moved the
    /// newest hour for alerts and pages). Writes only when there are some.
    pub async fn drop_rollup_hours_outside(&self, from: i64, to: i64) -> Result<u64> {
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
            return Ok(0);
        }
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            for sql in [
                "DELETE FROM rollup_hourly WHERE hour_us < $1 OR hour_us >= $2",
                "DELETE FROM rollup_minute WHERE hour_us < $1 OR hour_us >= $2",
                "DELETE FROM rollup_hours WHERE hour_us < $1 OR hour_us >= $2",
            ] {
                sqlx::query::<Db>(sql)
                    .bind(from)
                    .bind(to)
                    .execute(&mut *tx)
                    .await?;
            }
            bump_version!(tx, "rollups");
            tx.commit().await?;
        });
        Ok(outside as u64)
    }

    pub async fn drop_rollup_hours_except(&self, keep: &[i64], watermark: i64) -> Result<u64> {
        let mut dropped = 0;
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let stored: Vec<i64> = sqlx::query_scalar::<Db, i64>(
                "SELECT hour_us FROM rollup_hours WHERE watermark <= $1",
            )
            .bind(watermark)
            .fetch_all(&mut *tx)
            .await?;
            for hour in stored.iter().filter(|h| keep.binary_search(h).is_err()) {
                let gone = sqlx::query::<Db>(
                    "DELETE FROM rollup_hours WHERE hour_us = $1 AND watermark <= $2",
                )
                .bind(hour)
                .bind(watermark)
                .execute(&mut *tx)
                .await?;
                if gone.rows_affected() == 1 {
                    sqlx::query::<Db>("DELETE FROM rollup_hourly WHERE hour_us = $1")
                        .bind(hour)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query::<Db>("DELETE FROM rollup_minute WHERE hour_us = $1")
                        .bind(hour)
                        .execute(&mut *tx)
                        .await?;
                    dropped += 1;
                }
            }
            if dropped > 0 {
                bump_version!(tx, "rollups");
            }
            tx.commit().await?;
        });
        Ok(dropped)
    }
}

/// Traffic between an agent, a subscription, a gateway and a deployment over all
/// rolled-up hours: what the lineage graph's observed edges are made of.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

impl StateDb {
    /// Requests per agent, subscription, gateway, backend and deployment, with
    /// the first and last hour they were seen.
    pub async fn observed_usage(&self) -> Result<Vec<ObservedUsage>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, ObservedUsage>(
                "SELECT agent, subscription, gateway_id, backend, deployment, \
                 CAST(SUM(requests) AS BIGINT) AS requests, MIN(hour_us) AS first_hour_us, \
                 MAX(hour_us) AS last_hour_us FROM rollup_hourly \
                 GROUP BY agent, subscription, gateway_id, backend, deployment",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}
