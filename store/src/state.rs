//! The state database: configuration and state (batches, the lake manifest,
//! quarantine, the price book, ownership, backends and PTU reservations, which
//! lake file holds each rolled-up hour), never request facts nor aggregates.
//! One interface, two backends chosen by URL;
//! the SQL text is shared (both drivers take `$N` placeholders), the migrations are
//! one folder per backend.

mod alerts;
mod audit;
mod batches;
mod budgets;
mod capacity;
mod closes;
mod ingest_requests;
mod keys;
mod lineage;
mod manifest;
mod meters;
mod ownership;
mod prices;
mod rollups;
mod shared;
mod url;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use self::alerts::{
    AlertApplied, AlertChanges, AlertCursor, AlertEpisode, AlertEvaluation, AlertNotification,
    AlertRuleRow, AlertShed, AlertsRead, AlertsStored, EpisodeKey, NewAlertNotification,
};
pub(crate) use self::audit::audit;
pub use self::audit::{AuditEntry, NewAudit};
pub use self::batches::{Batch, BatchCommit, BatchCounts, BatchStatus, QuarantineRow};
pub use self::budgets::{
    BudgetChanges, BudgetEvaluation, BudgetEvent, BudgetRow, EvaluationApplied, GatewayView,
    NewBudget, NewBudgetEvent, NewGatewayView, StoredBudgetState, WebhookDelivery, timestamp,
};
pub use self::capacity::{BackendRow, PtuReservation};
pub use self::closes::{MonthClose, NewMonthClose};
pub use self::ingest_requests::IdempotencyClaim;
pub use self::keys::{ApiKeyHash, ApiKeyRow, NewApiKey};
pub use self::lineage::{LineageApplied, LineageEdgeRow, LineageMode, LineageNodeRow};
pub use self::manifest::{LakeFile, LakeSummaryRow, NewLakeFile};
pub use self::meters::MeterRow;
pub use self::ownership::{CostCentre, OwnershipRow};
pub use self::prices::PriceRow;
pub use self::rollups::{
    ObservedUsage, RollupFile, RollupHour, RollupRow, RollupsReplaced, ToolCalls, UsageRollup,
};
pub use self::shared::StoredSession;
pub use self::url::{Backend, DatabaseUrl};
use crate::Result;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool and `Db` naming its
/// database type, so one query text serves both backends.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::state::Pool::Sqlite($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Sqlite;
                $body
            }
            $crate::state::Pool::Postgres($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// Inside `on_pool!`: begins a transaction that will write. On SQLite it is
/// `BEGIN IMMEDIATE`, which takes the write lock at once (waiting up to the busy
/// timeout for another writer), so a transaction that reads before it writes
/// cannot fail because another writer (a background evaluation, a concurrent
/// ingest) committed in between, as a deferred one would.
macro_rules! begin_write {
    ($pool:ident) => {
        if <Db as sqlx::Database>::NAME == "SQLite" {
            $pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            $pool.begin().await?
        }
    };
}
pub(crate) use begin_write;

/// Inside an `on_pool!` transaction that replaces whole tables: on Postgres, locks
/// them first, so two imports racing cannot each delete the old rows and leave
/// both new sets (READ COMMITTED would let them). SQLite's write lock does this.
macro_rules! lock_for_replace {
    ($db:expr, $tx:expr, $tables:literal) => {
        if matches!($db.pool, $crate::state::Pool::Postgres(_)) {
            sqlx::query::<Db>(concat!("LOCK TABLE ", $tables, " IN EXCLUSIVE MODE"))
                .execute(&mut *$tx)
                .await?;
        }
    };
}
pub(crate) use lock_for_replace;

/// Inside an `on_pool!` transaction: counts one more change of `$name` (see
/// [`StateDb::inputs_version`]).
macro_rules! bump_version {
    ($tx:expr, $name:expr) => {
        sqlx::query::<Db>(
            "INSERT INTO state_versions (name, version) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET version = state_versions.version + 1",
        )
        .bind(($name as $crate::StateVersion).as_str())
        .execute(&mut *$tx)
        .await?;
    };
}
pub(crate) use bump_version;

/// sqlx warns of every statement slower than a second, with its whole SQL text,
/// on every command's output: that is for operators (`-vv`), not users.
fn quiet_statements<O: sqlx::ConnectOptions>(options: O) -> O {
    options.log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
}

/// Handle to the state database; cheap to clone (it is a connection pool).
#[derive(Clone, Debug)]
pub struct StateDb {
    pool: Pool,
}

impl StateDb {
    /// Opens (creating if needed) the embedded SQLite database at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::connect_sqlite(options).await
    }

    /// Connects to the database a URL names.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self> {
        match url.backend() {
            Backend::Sqlite => {
                Self::connect_sqlite(SqliteConnectOptions::from_str(url.expose())?).await
            }
            Backend::Postgres => {
                let options = quiet_statements(PgConnectOptions::from_str(url.expose())?);
                let pool = PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?;
                Ok(StateDb {
                    pool: Pool::Postgres(pool),
                })
            }
        }
    }

    async fn connect_sqlite(options: SqliteConnectOptions) -> Result<Self> {
        // WAL lets readers (the web server, `lake ls`) run beside an ingest; the busy
        // timeout makes concurrent writers queue instead of failing.
        let options = quiet_statements(options)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(StateDb {
            pool: Pool::Sqlite(pool),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations of this backend; a no-op when up to date.
    #[tracing::instrument(skip_all, err)]
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Grows whenever anything a report is computed from changes (rollups, the
    /// price book, backends, PTU reservations, ownership, month closes): a report
    /// cached at one value is still right while it stays the same.
    pub async fn inputs_version(&self) -> Result<i64> {
        let versions = on_pool!(self, |pool| {
            sqlx::query_as::<Db, (String, i64)>("SELECT name, version FROM state_versions")
                .fetch_all(pool)
                .await?
        });
        // Keys, what gateways are served, lineage and alert state are no
        // report's input. A name this build does not know counts: a newer
        // server beside this one may have added an input.
        Ok(versions
            .into_iter()
            .filter(|(name, _)| {
                name.parse::<crate::StateVersion>()
                    .map_or(true, |v| v.is_report_input())
            })
            .map(|(_, version)| version)
            .sum())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the process logs, as text.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs one statement that takes over a second on `db`'s backend.
    async fn run_slowly(db: &StateDb) {
        if db.backend() == Backend::Postgres {
            let slow = "SELECT count(*) FROM (SELECT pg_sleep(1.2)) AS s";
            on_pool!(db, |pool| {
                sqlx::query(slow).fetch_one(pool).await.unwrap();
            });
            return;
        }
        // SQLite has no sleep: count ever further until a count is slow.
        let mut rows = 100_000;
        loop {
            let slow = format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                 WHERE x < {rows}) SELECT count(*) FROM c"
            );
            let started = std::time::Instant::now();
            on_pool!(db, |pool| {
                let query = sqlx::query(sqlx::AssertSqlSafe(slow.clone()));
                query.fetch_one(pool).await.unwrap();
            });
            if started.elapsed() > Duration::from_millis(1100) {
                return;
            }
            rows *= 4;
        }
    }

    #[tokio::test]
    async fn a_slow_statement_is_logged_for_operators_not_as_a_warning() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // sqlx's SQLite worker logs from a thread of its own: a thread-local
        // subscriber would not see it.
        tracing::subscriber::set_global_default(subscriber).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut dbs = vec![
            StateDb::open_sqlite(&dir.path().join("state.db"))
                .await
                .unwrap(),
        ];
        if let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") {
            dbs.push(
                StateDb::connect(&DatabaseUrl::parse(&url).unwrap())
                    .await
                    .unwrap(),
            );
        }
        for db in &dbs {
            run_slowly(db).await;
        }
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let slow: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("slow statement"))
            .collect();
        assert!(slow.len() >= dbs.len(), "{text}");
        assert!(slow.iter().all(|l| l.contains("DEBUG")), "{slow:#?}");
    }
}
