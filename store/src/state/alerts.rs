//! Alert state: rules as checked, the episodes an evaluation derives from the
//! rollups (replaced whenever the hours they cover are evaluated again), the
//! notification outbox (one row per episode, status and receiver, so repeating an
//! evaluation sends nothing twice) and the budget cuts firing rules make.

use chrono::Utc;
use serde::Serialize;

use super::{StateDb, audit, begin_write, bump_version, lock_for_replace, on_pool};
use crate::state::{NewAudit, timestamp};
use crate::{EpisodeState, Result, StoreError};

/// A rule as stored: its checked spec as JSON.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct AlertRuleRow {
    pub id: i64,
    pub name: String,
    pub spec: String,
    /// `default` (shipped), `config` (the config file) or `api`.
    pub origin: String,
    pub updated_at: String,
}

/// One episode of an alert instance, at data time (microseconds).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct AlertEpisode {
    pub rule: String,
    /// Identifies the instance: a hash of its label set.
    pub fingerprint: String,
    /// The label set, as a JSON object.
    pub labels: String,
    pub annotations: String,
    #[sqlx(try_from = "String")]
    pub state: EpisodeState,
    /// When the condition first held.
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// The value at the last evaluation the condition held.
    pub value: f64,
    /// The highest value while active.
    pub peak: f64,
}

/// A budget cut a firing episode asks for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct AlertShed {
    pub rule: String,
    pub fingerprint: String,
    pub active_at: i64,
    pub budget_id: i64,
    pub factor: f64,
    #[sqlx(default)]
    pub started_at: String,
    #[sqlx(default)]
    pub ended_at: Option<String>,
}

/// A notification waiting in (or gone through) the outbox.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct AlertNotification {
    pub id: i64,
    pub rule: String,
    pub fingerprint: String,
    pub active_at: i64,
    #[sqlx(try_from = "String")]
    pub status: EpisodeState,
    pub receiver: String,
    pub payload: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub failed_at: Option<String>,
}

/// How far the live evaluation has gone: the data time, and the highest
/// rollup `seq` seen (column `watermark`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct AlertCursor {
    pub evaluated_to: i64,
    pub watermark: i64,
}

/// What one evaluation of `[from_us, to_us)` found, to apply.
#[derive(Debug, Clone, Default)]
pub struct AlertEvaluation {
    pub from_us: i64,
    pub to_us: i64,
    /// The rules evaluated: only their episodes are replaced.
    pub rules: Vec<String>,
    /// Episodes active within the period; one starting before `from_us` continues
    /// the stored episode of its instance that was open then.
    pub episodes: Vec<AlertEpisode>,
    /// Receivers to queue transitions for (none for a silent replay).
    pub receivers: Vec<String>,
    /// Only transitions at or after this data time are queued.
    pub notify_since: i64,
    /// An open episode found where the stored one of the same start had ended
    /// keeps the stored end (the judgement stopped before it could see it).
    pub keep_resolved: bool,
    /// The budget cuts in force now; `None` leaves them as they are (a replay of
    /// a past period).
    pub sheds: Option<Vec<AlertShed>>,
    /// The cursor to store, for a live evaluation.
    pub cursor: Option<AlertCursor>,
}

/// What applying an evaluation changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertApplied {
    pub episodes: usize,
    pub notifications: usize,
    pub sheds_started: Vec<AlertShed>,
    pub sheds_ended: Vec<AlertShed>,
}

/// Which period an evaluation replaces, and whether it keeps the ends
/// stored for episodes it judged still open.
#[derive(Debug, Clone, Copy)]
pub struct AlertsRead {
    pub from_us: i64,
    pub to_us: i64,
    pub keep_resolved: bool,
}

/// What the store holds for an evaluation's period, read under its lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertsStored {
    /// Resolved episodes that started within the period (when asked to keep
    /// their ends).
    pub resolved_in_period: Vec<AlertEpisode>,
    /// Episodes open when the period began.
    pub open_before: Vec<AlertEpisode>,
    /// The budget cuts in force.
    pub active_sheds: Vec<AlertShed>,
}

/// An episode's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeKey {
    pub rule: String,
    pub fingerprint: String,
    pub active_at: i64,
}

impl EpisodeKey {
    pub fn of(e: &AlertEpisode) -> EpisodeKey {
        EpisodeKey {
            rule: e.rule.clone(),
            fingerprint: e.fingerprint.clone(),
            active_at: e.active_at,
        }
    }
}

/// A notification to queue for an episode's transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlertNotification {
    pub episode: EpisodeKey,
    pub status: EpisodeState,
    pub receiver: String,
    pub payload: String,
}

/// What to write for an evaluation, as `tollgate_reports` decided it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertChanges {
    /// The evaluated rules: their episodes that started within
    /// `[from_us, to_us)` are replaced by `upsert`.
    pub rules: Vec<String>,
    pub from_us: i64,
    pub to_us: i64,
    pub upsert: Vec<AlertEpisode>,
    /// Episodes open before the period, never fired, that nothing continued.
    pub delete: Vec<EpisodeKey>,
    /// Episodes open before the period, fired, that nothing continued: ended
    /// at the given time.
    pub resolve: Vec<(EpisodeKey, i64)>,
    /// Episodes as judged now (stored and resolved).
    pub episodes: usize,
    pub notify: Vec<NewAlertNotification>,
    pub start_sheds: Vec<AlertShed>,
    pub end_sheds: Vec<AlertShed>,
    pub cursor: Option<AlertCursor>,
}

macro_rules! episode_columns {
    () => {
        "rule, fingerprint, labels, annotations, state, active_at, fired_at, resolved_at, value, peak"
    };
}

macro_rules! notification_columns {
    () => {
        "id, rule, fingerprint, active_at, status, receiver, payload, attempts, last_status, \
         last_error, delivered_at, failed_at"
    };
}

impl StateDb {
    /// Every rule, by name.
    pub async fn alert_rules(&self) -> Result<Vec<AlertRuleRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AlertRuleRow>(
                "SELECT id, name, spec, origin, updated_at FROM alert_rules ORDER BY name",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Creates or replaces the rule called `name`; recorded in the audit log.
    #[tracing::instrument(skip(self, spec), err)]
    pub async fn put_alert_rule(
        &self,
        name: &str,
        spec: &str,
        origin: &str,
        actor: &str,
    ) -> Result<AlertRuleRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let before = sqlx::query_as::<Db, AlertRuleRow>(
                "SELECT id, name, spec, origin, updated_at FROM alert_rules WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let row = sqlx::query_as::<Db, AlertRuleRow>(
                "INSERT INTO alert_rules (name, spec, origin, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, origin = excluded.origin, \
                 updated_at = excluded.updated_at \
                 RETURNING id, name, spec, origin, updated_at",
            )
            .bind(name)
            .bind(spec)
            .bind(origin)
            .bind(timestamp(Utc::now()))
            .fetch_one(&mut *tx)
            .await?;
            let verb = if before.is_some() {
                "alert_rule.update"
            } else {
                "alert_rule.create"
            };
            let mut entry = NewAudit::new(actor, verb, format!("alert_rule:{name}")).after(&row);
            if let Some(before) = &before {
                entry = entry.before(before);
            }
            audit!(tx, &entry);
            bump_version!(tx, crate::StateVersion::AlertRules);
            tx.commit().await?;
            row
        }))
    }

    /// Deletes a rule and its episodes; recorded in the audit log.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_alert_rule(&self, name: &str, actor: &str) -> Result<AlertRuleRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let row = sqlx::query_as::<Db, AlertRuleRow>(
                "DELETE FROM alert_rules WHERE name = $1 \
                 RETURNING id, name, spec, origin, updated_at",
            )
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no alert rule {name:?}")))?;
            sqlx::query::<Db>("DELETE FROM alert_episodes WHERE rule = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            // Its cuts end with it: gateways get their limits back.
            let now = timestamp(Utc::now());
            let ended = sqlx::query_as::<Db, AlertShed>(
                "UPDATE alert_sheds SET ended_at = $2 WHERE rule = $1 AND ended_at IS NULL \
                 RETURNING rule, fingerprint, active_at, budget_id, factor, started_at, ended_at",
            )
            .bind(name)
            .bind(&now)
            .fetch_all(&mut *tx)
            .await?;
            for shed in &ended {
                audit!(
                    tx,
                    &NewAudit::new(
                        actor,
                        "budget.shed.end",
                        format!("budget:{}", shed.budget_id)
                    )
                    .after(shed)
                );
            }
            audit!(
                tx,
                &NewAudit::new(actor, "alert_rule.delete", format!("alert_rule:{name}"))
                    .before(&row)
            );
            bump_version!(tx, crate::StateVersion::AlertRules);
            tx.commit().await?;
            row
        }))
    }

    pub async fn alert_cursor(&self) -> Result<Option<AlertCursor>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AlertCursor>(
                "SELECT evaluated_to, watermark FROM alert_cursor WHERE id = 1",
            )
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The highest `seq` a stored rollup hour has: hours stored later have a
    /// higher one.
    pub async fn rollup_seq(&self) -> Result<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>(
                "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM rollup_hours",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// The earliest hour stored at a `seq` above `seq`: where an evaluation
    /// must start again to judge late data at its own hour.
    pub async fn first_rollup_hour_after(&self, seq: i64) -> Result<Option<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, Option<i64>>(
                "SELECT MIN(hour_us) FROM rollup_hours WHERE seq > $1",
            )
            .bind(seq)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Applies an evaluation under a lock: reads what the period holds
    /// ([`AlertsStored`]), hands it to `plan` (`tollgate_reports` decides what
    /// changes), and writes the changes in the same transaction: the
    /// evaluated rules' episodes that started within the period replaced,
    /// open ones deleted or resolved, notifications queued (one per episode,
    /// status and receiver), cuts ended and started (each in the audit log),
    /// the cursor stored.
    // Long, and on purpose: one transaction of plain writes in order, on both
    // backends through `on_pool!`; split up, each part would have to be generic
    // over sqlx's `Database` and its executor, which reads worse than the list.
    #[tracing::instrument(skip_all, fields(from = read.from_us, to = read.to_us), err)]
    pub async fn apply_alert_changes<F>(&self, read: &AlertsRead, plan: F) -> Result<AlertApplied>
    where
        F: FnOnce(&AlertsStored) -> AlertChanges,
    {
        let now = timestamp(Utc::now());
        let mut applied = AlertApplied::default();
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "alert_episodes, alert_sheds, alert_notifications");
            let (from, to) = (read.from_us, read.to_us);
            let mut stored = AlertsStored::default();
            if read.keep_resolved {
                stored.resolved_in_period = sqlx::query_as::<Db, AlertEpisode>(concat!(
                    "SELECT ",
                    episode_columns!(),
                    " FROM alert_episodes WHERE state = $3 AND active_at >= $1 AND active_at < $2"
                ))
                .bind(from)
                .bind(to)
                .bind(EpisodeState::Resolved.as_str())
                .fetch_all(&mut *tx)
                .await?;
            }
            stored.open_before = sqlx::query_as::<Db, AlertEpisode>(concat!(
                "SELECT ",
                episode_columns!(),
                " FROM alert_episodes WHERE active_at < $1                  AND (resolved_at IS NULL OR resolved_at >= $1)"
            ))
            .bind(from)
            .fetch_all(&mut *tx)
            .await?;
            stored.active_sheds = sqlx::query_as::<Db, AlertShed>(
                "SELECT rule, fingerprint, active_at, budget_id, factor, started_at, ended_at                  FROM alert_sheds WHERE ended_at IS NULL",
            )
            .fetch_all(&mut *tx)
            .await?;

            let changes = plan(&stored);

            for rule in &changes.rules {
                sqlx::query::<Db>(
                    "DELETE FROM alert_episodes WHERE rule = $1 AND active_at >= $2                      AND active_at < $3",
                )
                .bind(rule)
                .bind(changes.from_us)
                .bind(changes.to_us)
                .execute(&mut *tx)
                .await?;
            }
            for episode in &changes.upsert {
                sqlx::query::<Db>(concat!(
                    "INSERT INTO alert_episodes (",
                    episode_columns!(),
                    ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)                      ON CONFLICT (rule, fingerprint, active_at) DO UPDATE SET                      labels = excluded.labels, annotations = excluded.annotations,                      state = excluded.state, fired_at = excluded.fired_at,                      resolved_at = excluded.resolved_at, value = excluded.value,                      peak = excluded.peak, updated_at = excluded.updated_at"
                ))
                .bind(&episode.rule)
                .bind(&episode.fingerprint)
                .bind(&episode.labels)
                .bind(&episode.annotations)
                .bind(episode.state.as_str())
                .bind(episode.active_at)
                .bind(episode.fired_at)
                .bind(episode.resolved_at)
                .bind(episode.value)
                .bind(episode.peak)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            for key in &changes.delete {
                sqlx::query::<Db>(
                    "DELETE FROM alert_episodes WHERE rule = $1 AND fingerprint = $2                      AND active_at = $3",
                )
                .bind(&key.rule)
                .bind(&key.fingerprint)
                .bind(key.active_at)
                .execute(&mut *tx)
                .await?;
            }
            for (key, at) in &changes.resolve {
                sqlx::query::<Db>(
                    "UPDATE alert_episodes SET state = $6, resolved_at = $4, updated_at = $5 \
                     WHERE rule = $1 AND fingerprint = $2 AND active_at = $3",
                )
                .bind(&key.rule)
                .bind(&key.fingerprint)
                .bind(key.active_at)
                .bind(at)
                .bind(&now)
                .bind(EpisodeState::Resolved.as_str())
                .execute(&mut *tx)
                .await?;
            }
            applied.episodes = changes.episodes;
            for n in &changes.notify {
                let queued = sqlx::query::<Db>(
                    "INSERT INTO alert_notifications (rule, fingerprint, active_at,                      status, receiver, payload, created_at, next_at)                      VALUES ($1, $2, $3, $4, $5, $6, $7, $7)                      ON CONFLICT (rule, fingerprint, active_at, status, receiver)                      DO NOTHING",
                )
                .bind(&n.episode.rule)
                .bind(&n.episode.fingerprint)
                .bind(n.episode.active_at)
                .bind(n.status.as_str())
                .bind(&n.receiver)
                .bind(&n.payload)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                applied.notifications += queued.rows_affected() as usize;
            }
            for shed in &changes.end_sheds {
                sqlx::query::<Db>(
                    "UPDATE alert_sheds SET ended_at = $5 WHERE rule = $1 AND fingerprint = $2                      AND active_at = $3 AND budget_id = $4",
                )
                .bind(&shed.rule)
                .bind(&shed.fingerprint)
                .bind(shed.active_at)
                .bind(shed.budget_id)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                let mut ended = shed.clone();
                ended.ended_at = Some(now.clone());
                audit!(
                    tx,
                    &NewAudit::new(
                        "alerts",
                        "budget.shed.end",
                        format!("budget:{}", shed.budget_id)
                    )
                    .before(shed)
                    .after(&ended)
                );
                applied.sheds_ended.push(ended);
            }
            for shed in &changes.start_sheds {
                // A resolved episode's cut stays ended, even if asked again.
                let started = sqlx::query::<Db>(
                    "INSERT INTO alert_sheds (rule, fingerprint, active_at, budget_id,                      factor, started_at) VALUES ($1, $2, $3, $4, $5, $6)                      ON CONFLICT (rule, fingerprint, active_at, budget_id) DO NOTHING",
                )
                .bind(&shed.rule)
                .bind(&shed.fingerprint)
                .bind(shed.active_at)
                .bind(shed.budget_id)
                .bind(shed.factor)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
                if started.rows_affected() == 1 {
                    let mut row = shed.clone();
                    row.started_at = now.clone();
                    audit!(
                        tx,
                        &NewAudit::new(
                            "alerts",
                            "budget.shed.start",
                            format!("budget:{}", shed.budget_id)
                        )
                        .after(&row)
                    );
                    applied.sheds_started.push(row);
                }
            }
            if let Some(cursor) = changes.cursor {
                sqlx::query::<Db>(
                    "INSERT INTO alert_cursor (id, evaluated_to, watermark, evaluated_at) \
                     VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET \
                     evaluated_to = excluded.evaluated_to, watermark = excluded.watermark, \
                     evaluated_at = excluded.evaluated_at",
                )
                .bind(cursor.evaluated_to)
                .bind(cursor.watermark)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
            bump_version!(tx, crate::StateVersion::Alerts);
            tx.commit().await?;
        });
        Ok(applied)
    }

    /// Episodes, newest first: in `state` if given, of `rule` if given, active
    /// within `[from_us, to_us)`.
    pub async fn alert_episodes(
        &self,
        state: Option<EpisodeState>,
        rule: Option<&str>,
        from_us: i64,
        to_us: i64,
        limit: i64,
    ) -> Result<Vec<AlertEpisode>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AlertEpisode>(concat!(
                "SELECT ",
                episode_columns!(),
                " FROM alert_episodes WHERE ($1 IS NULL OR state = $1) \
                 AND ($2 IS NULL OR rule = $2) AND active_at < $4 \
                 AND (resolved_at IS NULL OR resolved_at >= $3) \
                 ORDER BY active_at DESC, rule, fingerprint LIMIT $5"
            ))
            .bind(state.map(EpisodeState::as_str))
            .bind(rule)
            .bind(from_us)
            .bind(to_us)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Open episodes per rule and state (pending, firing).
    pub async fn open_alert_counts(&self) -> Result<Vec<(String, EpisodeState, i64)>> {
        let counts = on_pool!(self, |pool| {
            sqlx::query_as::<Db, (String, String, i64)>(
                "SELECT rule, state, CAST(COUNT(*) AS BIGINT) FROM alert_episodes \
                 WHERE state <> $1 GROUP BY rule, state",
            )
            .bind(EpisodeState::Resolved.as_str())
            .fetch_all(pool)
            .await?
        });
        counts
            .into_iter()
            .map(|(rule, state, n)| {
                let state = state.parse().map_err(|e| StoreError::Integrity {
                    what: "alert episode",
                    source: Box::new(e),
                })?;
                Ok((rule, state, n))
            })
            .collect()
    }

    /// Budget cuts: those in force, or all of them.
    pub async fn alert_sheds(&self, active_only: bool) -> Result<Vec<AlertShed>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AlertShed>(
                "SELECT rule, fingerprint, active_at, budget_id, factor, started_at, ended_at \
                 FROM alert_sheds WHERE ($1 = FALSE OR ended_at IS NULL) ORDER BY id",
            )
            .bind(active_only)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Notifications due for a (first or next) attempt, oldest first.
    pub async fn due_alert_notifications(&self, limit: i64) -> Result<Vec<AlertNotification>> {
        let now = timestamp(Utc::now());
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AlertNotification>(concat!(
                "SELECT ",
                notification_columns!(),
                " FROM alert_notifications n WHERE delivered_at IS NULL AND failed_at IS NULL \
                 AND next_at <= $1 AND NOT EXISTS (SELECT 1 FROM alert_notifications e \
                 WHERE e.rule = n.rule AND e.fingerprint = n.fingerprint \
                 AND e.active_at = n.active_at AND e.receiver = n.receiver AND e.id < n.id \
                 AND e.delivered_at IS NULL AND e.failed_at IS NULL) ORDER BY id LIMIT $2"
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Every notification of a rule (all rules when `None`), in order queued.
    pub async fn alert_notifications(&self, rule: Option<&str>) -> Result<Vec<AlertNotification>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AlertNotification>(concat!(
                "SELECT ",
                notification_columns!(),
                " FROM alert_notifications WHERE ($1 IS NULL OR rule = $1) ORDER BY id"
            ))
            .bind(rule)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Records one delivery attempt: delivered, to retry at `retry_at`, or given up.
    pub async fn record_alert_attempt(
        &self,
        id: i64,
        status: Option<i64>,
        error: Option<&str>,
        outcome: &str,
        retry_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<()> {
        let now = timestamp(Utc::now());
        let (delivered, failed) = match outcome {
            "delivered" => (Some(now.clone()), None),
            "failed" => (None, Some(now.clone())),
            _ => (None, None),
        };
        on_pool!(self, |pool| {
            sqlx::query::<Db>(
                "UPDATE alert_notifications SET attempts = attempts + 1, last_status = $2, \
                 last_error = $3, delivered_at = $4, failed_at = $5, next_at = $6 WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(error)
            .bind(delivered)
            .bind(failed)
            .bind(retry_at.map(timestamp))
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
