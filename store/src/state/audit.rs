//! The audit log: every change made through the API or the CLI, who made it,
//! when, and the row before and after (as JSON). Rows are only ever added; the
//! migrations make both databases refuse an update or a delete.

use serde::Serialize;

use super::{StateDb, begin_write, on_pool};
use crate::Result;

/// One change as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// `key:<id>:<name>` for the API, `cli:<user>` for the command line.
    pub actor: String,
    /// What was done, `<thing>.<verb>` (`budget.update`, `key.revoke`).
    pub action: String,
    /// What it was done to (`budget:7`, `prices`).
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A change to record; `before` and `after` are JSON texts.
#[derive(Debug, Clone, Default)]
pub struct NewAudit {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl NewAudit {
    pub fn new(actor: &str, action: &str, target: impl Into<String>) -> NewAudit {
        NewAudit {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.into(),
            before: None,
            after: None,
        }
    }

    pub fn before<T: Serialize>(mut self, value: &T) -> NewAudit {
        self.before = serde_json::to_string(value).ok();
        self
    }

    pub fn after<T: Serialize>(mut self, value: &T) -> NewAudit {
        self.after = serde_json::to_string(value).ok();
        self
    }
}

/// Inside an `on_pool!` transaction: records `$entry`, so the change and its
/// record commit together or not at all.
macro_rules! audit {
    ($tx:expr, $entry:expr) => {{
        let entry: &$crate::state::NewAudit = $entry;
        sqlx::query::<Db>(
            "INSERT INTO audit_log (at, actor, action, target, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(chrono::Utc::now().to_rfc3339())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.before)
        .bind(&entry.after)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use audit;

impl StateDb {
    /// Records a change made elsewhere (an import that has its own transaction).
    #[tracing::instrument(skip_all, fields(action = %entry.action), err)]
    pub async fn record_audit(&self, entry: &NewAudit) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            audit!(tx, entry);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The newest `limit` entries with an id below `before` (all when `None`),
    /// newest first.
    pub async fn audit_log(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, AuditEntry>(
                "SELECT id, at, actor, action, target, before, after FROM audit_log \
                 WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(feature = "testing")]
impl StateDb {
    /// Tries to rewrite and delete audit entries, as an attacker with the
    /// database's own credentials would; the migrations' triggers must refuse.
    pub async fn tamper_with_audit_log_for_tests(&self) -> Result<u64> {
        Ok(on_pool!(self, |pool| {
            let updated = sqlx::query::<Db>("UPDATE audit_log SET actor = 'nobody'")
                .execute(pool)
                .await?
                .rows_affected();
            let deleted = sqlx::query::<Db>("DELETE FROM audit_log")
                .execute(pool)
                .await?
                .rows_affected();
            updated + deleted
        }))
    }
}
