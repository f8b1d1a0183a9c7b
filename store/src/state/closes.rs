//! The record of month closes and re-opens. Rows are only ever added: the
//! history of who closed and re-opened what stays.

use chrono::Utc;
use serde::Serialize;

use super::{StateDb, begin_write, bump_version, lock_for_replace, on_pool};
use crate::{Result, StoreError};

/// One close or re-open of a month.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct MonthClose {
    pub id: i64,
    pub month: String,
    /// `close` or `reopen`.
    pub action: String,
    pub at: String,
    pub reason: Option<String>,
    pub watermark: Option<i64>,
    /// The committed batches the snapshot used, as a JSON array of ids.
    pub batch_ids: Option<String>,
    pub json_path: Option<String>,
    pub json_sha256: Option<String>,
    pub parquet_path: Option<String>,
    pub parquet_sha256: Option<String>,
    /// The month's total, as a decimal of its currency.
    pub total: Option<String>,
}

/// What a close records (its snapshot files are written before).
#[derive(Debug, Clone, Default)]
pub struct NewMonthClose {
    pub month: String,
    pub watermark: i64,
    pub batch_ids: Vec<i64>,
    pub json_path: String,
    pub json_sha256: String,
    pub parquet_path: String,
    pub parquet_sha256: String,
    pub total: String,
}

/// The month's latest action (`close` or `reopen`), read under the write lock
/// (`begin_write!` on SQLite, the table lock on Postgres), so the check that
/// follows cannot race another close.
macro_rules! latest_action {
    ($tx:expr, $month:expr) => {{
        sqlx::query_scalar::<Db, String>(
            "SELECT action FROM month_closes WHERE month = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind($month)
        .fetch_optional(&mut *$tx)
        .await?
    }};
}

impl StateDb {
    /// Records a close, refused if the month is closed already (checked under a
    /// lock, so two closes racing cannot both succeed).
    #[tracing::instrument(skip_all, fields(month = %close.month), err)]
    pub async fn record_month_close(&self, close: &NewMonthClose) -> Result<MonthClose> {
        let batch_ids = format!(
            "[{}]",
            close
                .batch_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "month_closes");
            bump_version!(tx, crate::StateVersion::Closes);
            let latest = latest_action!(tx, &close.month);
            if latest.as_deref() == Some("close") {
                return Err(StoreError::MonthState(format!(
                    "{} is closed already (re-open it with --force first)",
                    close.month
                )));
            }
            let row = sqlx::query_as::<Db, MonthClose>(
                "INSERT INTO month_closes (month, action, at, watermark, batch_ids, json_path, \
                 json_sha256, parquet_path, parquet_sha256, total) \
                 VALUES ($1, 'close', $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING id, month, action, at, reason, watermark, batch_ids, json_path, \
                 json_sha256, parquet_path, parquet_sha256, total",
            )
            .bind(&close.month)
            .bind(Utc::now().to_rfc3339())
            .bind(close.watermark)
            .bind(&batch_ids)
            .bind(&close.json_path)
            .bind(&close.json_sha256)
            .bind(&close.parquet_path)
            .bind(&close.parquet_sha256)
            .bind(&close.total)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            row
        }))
    }

    /// Records a re-open of a closed month, with why.
    #[tracing::instrument(skip_all, fields(month), err)]
    pub async fn record_month_reopen(&self, month: &str, reason: &str) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "month_closes");
            bump_version!(tx, crate::StateVersion::Closes);
            let latest = latest_action!(tx, month);
            if latest.as_deref() != Some("close") {
                return Err(StoreError::MonthState(format!("{month} is not closed")));
            }
            sqlx::query::<Db>(
                "INSERT INTO month_closes (month, action, at, reason) VALUES ($1, 'reopen', $2, $3)",
            )
            .bind(month)
            .bind(Utc::now().to_rfc3339())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every close and re-open, oldest first.
    pub async fn month_close_history(&self) -> Result<Vec<MonthClose>> {
        const SQL: &str = concat!(
            "SELECT id, month, action, at, reason, watermark, batch_ids, json_path, ",
            "json_sha256, parquet_path, parquet_sha256, total FROM month_closes ORDER BY id"
        );
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, MonthClose>(SQL)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The months closed now, each with the close that holds its snapshot.
    pub async fn closed_months(&self) -> Result<Vec<MonthClose>> {
        let mut latest: std::collections::BTreeMap<String, MonthClose> = Default::default();
        for row in self.month_close_history().await? {
            latest.insert(row.month.clone(), row);
        }
        Ok(latest
            .into_values()
            .filter(|row| row.action == "close")
            .collect())
    }
}
