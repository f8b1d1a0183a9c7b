//! What servers side by side share through the state database: web sessions
//! (a login on one server works on the others) and leases (background work
//! done by one server at a time, taken over when its holder stops renewing).
//!
//! The store only persists; what a session or a lease means is decided in
//! `web` (sessions are found by the SHA-256 of their token, never the token).

use super::{StateDb, on_pool};
use crate::Result;

/// A web session as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredSession {
    /// Hex SHA-256 of the API key the session was opened with.
    pub key_sha256: String,
    pub csrf: String,
    pub expires_at_us: i64,
}

impl StateDb {
    /// Stores a new session under its token's SHA-256, dropping expired ones
    /// and any sealed message left for a session that is gone.
    pub async fn insert_session(
        &self,
        token_sha256: &str,
        session: &StoredSession,
        now_us: i64,
    ) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>("DELETE FROM web_sessions WHERE expires_at_us <= $1")
                .bind(now_us)
                .execute(pool)
                .await?;
            sqlx::query::<Db>(
                "DELETE FROM web_session_flash WHERE token_sha256 NOT IN \
                 (SELECT token_sha256 FROM web_sessions)",
            )
            .execute(pool)
            .await?;
            sqlx::query::<Db>(
                "INSERT INTO web_sessions (token_sha256, key_sha256, csrf, expires_at_us) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_sha256)
            .bind(&session.key_sha256)
            .bind(&session.csrf)
            .bind(session.expires_at_us)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The live session with this token's SHA-256, if any.
    pub async fn session(&self, token_sha256: &str, now_us: i64) -> Result<Option<StoredSession>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, StoredSession>(
                "SELECT key_sha256, csrf, expires_at_us FROM web_sessions \
                 WHERE token_sha256 = $1 AND expires_at_us > $2",
            )
            .bind(token_sha256)
            .bind(now_us)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Ends a session, on every server.
    pub async fn delete_session(&self, token_sha256: &str) -> Result<()> {
        on_pool!(self, |pool| {
            for sql in [
                "DELETE FROM web_session_flash WHERE token_sha256 = $1",
                "DELETE FROM web_sessions WHERE token_sha256 = $1",
            ] {
                sqlx::query::<Db>(sql)
                    .bind(token_sha256)
                    .execute(pool)
                    .await?;
            }
        });
        Ok(())
    }

    /// Keeps a sealed message for the session's next page.
    pub async fn set_session_flash(&self, token_sha256: &str, sealed: &[u8]) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>(
                "INSERT INTO web_session_flash (token_sha256, sealed) VALUES ($1, $2) \
                 ON CONFLICT (token_sha256) DO UPDATE SET sealed = excluded.sealed",
            )
            .bind(token_sha256)
            .bind(sealed)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The session's sealed message, taken: of two pages asking at once, one
    /// gets it.
    pub async fn take_session_flash(&self, token_sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, Vec<u8>>(
                "DELETE FROM web_session_flash WHERE token_sha256 = $1 RETURNING sealed",
            )
            .bind(token_sha256)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Takes or renews the lease `name` for `holder` until `until_us`: granted
    /// when no one holds it, `holder` already does, or the holder's lease has
    /// expired. One statement, so of two servers asking at once one wins.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_us: i64,
        until_us: i64,
    ) -> Result<bool> {
        let granted = on_pool!(self, |pool| {
            sqlx::query::<Db>(
                "INSERT INTO leases (name, holder, expires_at_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at_us = excluded.expires_at_us \
                 WHERE leases.holder = excluded.holder OR leases.expires_at_us <= $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until_us)
            .bind(now_us)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(granted == 1)
    }

    /// Gives the lease up (a server stopping), so another takes it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        on_pool!(self, |pool| {
            sqlx::query::<Db>("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
