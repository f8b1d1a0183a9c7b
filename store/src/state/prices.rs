//! The price book as stored: rows are validated before they get here
//! (`tollgate-reports`), and an import replaces the whole book at once, so a
//! reader never sees half of an old book and half of a new one.

use serde::{Deserialize, Serialize};

use super::{StateDb, begin_write, bump_version, lock_for_replace, on_pool};
use crate::Result;

/// One price row. Rates are pico-units of `currency` per `unit_tokens` tokens.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PriceRow {
    pub model: String,
    pub deployment_type: String,
    /// An Azure region, or `any`.
    pub region: String,
    pub currency: String,
    pub unit_tokens: i64,
    pub input_rate_pico: i64,
    pub cached_input_rate_pico: i64,
    pub output_rate_pico: i64,
    /// `YYYY-MM-DD`, inclusive.
    pub effective_from: String,
    /// `YYYY-MM-DD`, exclusive; `None` for open-ended.
    pub effective_to: Option<String>,
    /// `file:line` the row was read from.
    pub source: String,
}

impl StateDb {
    /// Replaces the price book with `rows`, in one transaction.
    #[tracing::instrument(skip_all, fields(rows = rows.len()), err)]
    pub async fn replace_price_book(&self, rows: &[PriceRow]) -> Result<()> {
        const INSERT: &str = "INSERT INTO prices (model, deployment_type, region, currency, \
            unit_tokens, input_rate_pico, cached_input_rate_pico, output_rate_pico, \
            effective_from, effective_to, source) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            lock_for_replace!(self, tx, "prices");
            bump_version!(tx, crate::StateVersion::Prices);
            sqlx::query::<Db>("DELETE FROM prices")
                .execute(&mut *tx)
                .await?;
            for r in rows {
                sqlx::query::<Db>(INSERT)
                    .bind(&r.model)
                    .bind(&r.deployment_type)
                    .bind(&r.region)
                    .bind(&r.currency)
                    .bind(r.unit_tokens)
                    .bind(r.input_rate_pico)
                    .bind(r.cached_input_rate_pico)
                    .bind(r.output_rate_pico)
                    .bind(&r.effective_from)
                    .bind(&r.effective_to)
                    .bind(&r.source)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The price book, by model, deployment type, region and date.
    pub async fn price_book(&self) -> Result<Vec<PriceRow>> {
        const SELECT: &str = "SELECT model, deployment_type, region, currency, unit_tokens, \
            input_rate_pico, cached_input_rate_pico, output_rate_pico, effective_from, \
            effective_to, source FROM prices";
        let mut rows = on_pool!(self, |pool| {
            sqlx::query_as::<Db, PriceRow>(SELECT)
                .fetch_all(pool)
                .await?
        });
        // Ordered here, not in SQL: Postgres' collation may order text differently.
        rows.sort_by(|a, b| {
            let key = |r: &PriceRow| {
                (
                    r.model.clone(),
                    r.deployment_type.clone(),
                    r.region.clone(),
                    r.currency.clone(),
                    r.effective_from.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(rows)
    }
}
