//! Push-ingest answers by `Idempotency-Key`: a retried push gets the answer the
//! first one got, without a second batch.

use chrono::Utc;

use super::{StateDb, on_pool};
use crate::Result;

impl StateDb {
    /// The answer recorded for a key, with the sha256 of the body it was for.
    pub async fn idempotent_answer(&self, key: &str) -> Result<Option<(String, String)>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, (String, String)>(
                "SELECT body_sha256, response FROM ingest_requests WHERE idempotency_key = $1",
            )
            .bind(key)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Records the answer for a key; the first recorded answer wins.
    pub async fn record_idempotent_answer(
        &self,
        key: &str,
        body_sha256: &str,
        response: &str,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>(
                "INSERT INTO ingest_requests (idempotency_key, body_sha256, response, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(key)
            .bind(body_sha256)
            .bind(response)
            .bind(Utc::now().to_rfc3339())
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
