//! Push-ingest answers by `Idempotency-Key`, per key holder. A key is claimed
//! before its push is ingested (the claim is a unique row), so two pushes
//! racing with one key cannot both ingest: the second sees the claim and is
//! refused, or, once the first is answered, gets its answer. A claim whose
//! push never answered (its process died) is taken over by a retry of the same
//! body after a while.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{StateDb, on_pool};
use crate::Result;

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is this push's to ingest under; answer or release it after.
    Claimed,
    /// A push with this key was answered: this is its answer, for the body
    /// with that sha256.
    Answered {
        body_sha256: String,
        response: String,
    },
    /// Another push holds the key and has not answered yet.
    InFlight { body_sha256: String },
}

fn stamp(at: DateTime<Utc>) -> String {
    // Fixed width, so that stamps order as texts.
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl StateDb {
    /// Claims `key` for `principal`'s push of the body with `body_sha256`,
    /// as the push `claim` (its own token, which answers or releases it). A
    /// claim of the same body not answered since `stale_before` is taken over.
    pub async fn claim_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        body_sha256: &str,
        claim: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<IdempotencyClaim> {
        // A row released between the insert and the read: try again.
        for _ in 0..3 {
            let inserted = on_pool!(self, |pool| {
                sqlx::query::<Db>(
                    "INSERT INTO ingest_requests (principal, idempotency_key, body_sha256, \
                     response, claim, claimed_at) VALUES ($1, $2, $3, NULL, $4, $5) \
                     ON CONFLICT (principal, idempotency_key) DO NOTHING",
                )
                .bind(principal)
                .bind(key)
                .bind(body_sha256)
                .bind(claim)
                .bind(stamp(now))
                .execute(pool)
                .await?
                .rows_affected()
            });
            if inserted == 1 {
                return Ok(IdempotencyClaim::Claimed);
            }
            let taken_over = on_pool!(self, |pool| {
                sqlx::query::<Db>(
                    "UPDATE ingest_requests SET claim = $4, claimed_at = $5 WHERE principal = $1 \
                     AND idempotency_key = $2 AND body_sha256 = $3 AND response IS NULL \
                     AND claimed_at < $6",
                )
                .bind(principal)
                .bind(key)
                .bind(body_sha256)
                .bind(claim)
                .bind(stamp(now))
                .bind(stamp(stale_before))
                .execute(pool)
                .await?
                .rows_affected()
            });
            if taken_over == 1 {
                return Ok(IdempotencyClaim::Claimed);
            }
            let row = on_pool!(self, |pool| {
                sqlx::query_as::<Db, (String, Option<String>)>(
                    "SELECT body_sha256, response FROM ingest_requests \
                     WHERE principal = $1 AND idempotency_key = $2",
                )
                .bind(principal)
                .bind(key)
                .fetch_optional(pool)
                .await?
            });
            match row {
                Some((body_sha256, Some(response))) => {
                    return Ok(IdempotencyClaim::Answered {
                        body_sha256,
                        response,
                    });
                }
                Some((body_sha256, None)) => {
                    return Ok(IdempotencyClaim::InFlight { body_sha256 });
                }
                None => continue,
            }
        }
        Ok(IdempotencyClaim::InFlight {
            body_sha256: String::new(),
        })
    }

    /// Records the answer of the push `claim` that holds `key`.
    pub async fn answer_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        claim: &str,
        response: &str,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>(
                "UPDATE ingest_requests SET response = $4 WHERE principal = $1 \
                 AND idempotency_key = $2 AND claim = $3 AND response IS NULL",
            )
            .bind(principal)
            .bind(key)
            .bind(claim)
            .bind(response)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Gives up the claim `claim` holds, its push having failed before
    /// committing, so a retry may run; another push's claim is left alone.
    pub async fn release_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        claim: &str,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>(
                "DELETE FROM ingest_requests WHERE principal = $1 \
                 AND idempotency_key = $2 AND claim = $3 AND response IS NULL",
            )
            .bind(principal)
            .bind(key)
            .bind(claim)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
