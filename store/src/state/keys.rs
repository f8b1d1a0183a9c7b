//! API keys as stored: never the key itself, only its SHA-256 and a short prefix
//! for people to tell keys apart. Creating and revoking a key are audited.

use chrono::Utc;
use serde::Serialize;

use super::{StateDb, audit, begin_write, bump_version, on_pool};
use crate::state::NewAudit;
use crate::{Result, StoreError};

/// A key as listed (without its hash).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// For a gateway key, the gateway ids it may read, comma separated.
    pub gateways: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl ApiKeyRow {
    pub fn gateway_ids(&self) -> Vec<String> {
        split_list(&self.gateways)
    }
}

/// A key with the hash it is found by, for the server's lookup table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyHash {
    #[sqlx(flatten)]
    pub key: ApiKeyRow,
    pub key_sha256: String,
}

/// What creating a key stores.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub role: String,
    pub gateways: Vec<String>,
    pub prefix: String,
    pub key_sha256: String,
    pub expires_at: Option<String>,
}

/// The columns of [`ApiKeyRow`], as a literal for `concat!`.
macro_rules! key_columns {
    () => {
        "id, name, role, gateways, prefix, created_at, expires_at, revoked_at"
    };
}

/// Splits a stored comma-separated list; empty gives none.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl StateDb {
    #[tracing::instrument(skip_all, fields(role = %key.role), err)]
    pub async fn create_api_key(&self, key: &NewApiKey, actor: &str) -> Result<ApiKeyRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let row = sqlx::query_as::<Db, ApiKeyRow>(concat!(
                "INSERT INTO api_keys (name, role, gateways, prefix, key_sha256, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
                key_columns!()
            ))
            .bind(&key.name)
            .bind(&key.role)
            .bind(key.gateways.join(","))
            .bind(&key.prefix)
            .bind(&key.key_sha256)
            .bind(Utc::now().to_rfc3339())
            .bind(&key.expires_at)
            .fetch_one(&mut *tx)
            .await?;
            audit!(
                tx,
                &NewAudit::new(actor, "key.create", format!("key:{}", row.id)).after(&row)
            );
            bump_version!(tx, crate::StateVersion::Keys);
            tx.commit().await?;
            row
        }))
    }

    /// Every key, revoked ones too, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, ApiKeyRow>(concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_keys ORDER BY id"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Keys not revoked, with their hashes (expiry is checked at use).
    pub async fn live_api_keys(&self) -> Result<Vec<ApiKeyHash>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<Db, ApiKeyHash>(concat!(
                "SELECT ",
                key_columns!(),
                ", key_sha256 FROM api_keys WHERE revoked_at IS NULL"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Revokes a key for good; revoking it again is refused.
    #[tracing::instrument(skip_all, fields(id), err)]
    pub async fn revoke_api_key(&self, id: i64, actor: &str) -> Result<ApiKeyRow> {
        Ok(on_pool!(self, |pool| {
            let mut tx = begin_write!(pool);
            let row = sqlx::query_as::<Db, ApiKeyRow>(concat!(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                 RETURNING ",
                key_columns!()
            ))
            .bind(Utc::now().to_rfc3339())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no live key with id {id}")))?;
            let before = ApiKeyRow {
                revoked_at: None,
                ..row.clone()
            };
            audit!(
                tx,
                &NewAudit::new(actor, "key.revoke", format!("key:{id}"))
                    .before(&before)
                    .after(&row)
            );
            bump_version!(tx, crate::StateVersion::Keys);
            tx.commit().await?;
            row
        }))
    }

    /// The version of one kind of state (see `state_versions`), 0 before any change.
    pub async fn state_version(&self, name: crate::StateVersion) -> Result<i64> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar::<Db, i64>("SELECT version FROM state_versions WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?
                .unwrap_or(0)
        }))
    }
}
