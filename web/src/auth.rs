//! API keys and roles. A key is 32 random bytes shown once (`tg_` + hex); only
//! its SHA-256 is stored. The server keeps the live keys in memory by hash,
//! reloaded whenever the `keys` state version moves (a key created or revoked by
//! the CLI is seen within the refresh interval, one made through the API at once),
//! so checking a key costs one hash and one map lookup.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use tollgate_store::StateDb;
use tollgate_store::versioned::Versioned;

use crate::error::AppError;
use crate::state::AppState;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Finops,
    Security,
    Operator,
    /// Reads its own gateways' budgets only.
    Gateway,
    /// Pushes logs.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Finops,
        Role::Security,
        Role::Operator,
        Role::Gateway,
        Role::Ingest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Finops => "finops",
            Role::Security => "security",
            Role::Operator => "operator",
            Role::Gateway => "gateway",
            Role::Ingest => "ingest",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?}; one of {}",
                    Role::ALL.map(Role::name).join(", ")
                )
            })
    }
}

/// Who is asking: the key's id, name, role and (for gateway keys) gateways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: i64,
    pub name: String,
    pub role: Role,
    pub gateways: Vec<String>,
}

impl Principal {
    /// How the audit log names this key.
    pub fn actor(&self) -> String {
        format!("key:{}:{}", self.key_id, self.name)
    }

    /// Refuses (403) unless the key's role is one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(what.to_owned()))
        }
    }

    /// A gateway key may only see its own gateways: another gateway's data is
    /// answered as if it did not exist (404).
    pub fn may_see_gateway(&self, gateway: &str) -> bool {
        self.role != Role::Gateway || self.gateways.iter().any(|g| g == gateway)
    }
}

/// A new key: the secret to show once, and what is stored.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    pub secret: String,
    pub prefix: String,
    pub sha256: String,
}

/// Makes a key from the operating system's random source.
pub fn generate_key() -> Result<GeneratedKey, AppError> {
    let secret = format!("tg_{}", random_hex("a new key")?);
    Ok(GeneratedKey {
        prefix: secret[..11].to_owned(),
        sha256: hash_key(&secret),
        secret,
    })
}

/// 32 random bytes from the operating system, as hex: key secrets, session
/// and CSRF tokens.
pub(crate) fn random_hex(what: &str) -> Result<String, AppError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AppError::Internal(format!("no randomness for {what}")))?;
    Ok(hex::encode(bytes))
}

pub fn hash_key(secret: &str) -> String {
    hex::encode(digest(secret))
}

pub(crate) fn digest(secret: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref());
    out
}

/// Equal in time independent of where two strings first differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Clone)]
struct LiveKey {
    sha256: [u8; 32],
    principal: Arc<Principal>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The live keys by hash, with the `keys` version they were loaded at.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: Versioned<HashMap<[u8; 32], LiveKey>>,
}

impl KeyCache {
    /// Reloads the keys if the stored version moved (or `force`).
    pub async fn refresh(&self, db: &StateDb, force: bool) -> tollgate_store::Result<()> {
        let version = db.state_version(tollgate_store::StateVersion::Keys).await?;
        if !self.keys.is_stale(version) && !force {
            return Ok(());
        }
        let mut map = HashMap::new();
        for row in db.live_api_keys().await? {
            let Ok(role) = row.key.role.parse::<Role>() else {
                continue;
            };
            let expires_at = row
                .key
                .expires_at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc());
            let mut sha256 = [0u8; 32];
            if hex::decode_to_slice(&row.key_sha256, &mut sha256).is_err() {
                continue;
            }
            map.insert(
                sha256,
                LiveKey {
                    sha256,
                    principal: Arc::new(Principal {
                        key_id: row.key.id,
                        name: row.key.name.clone(),
                        role,
                        gateways: row.key.gateway_ids(),
                    }),
                    expires_at,
                },
            );
        }
        self.keys.replace(version, map);
        Ok(())
    }

    /// The key's principal, if it is live and not expired.
    pub fn check(&self, secret: &str) -> Option<Arc<Principal>> {
        self.check_digest(&digest(secret))
    }

    /// [`KeyCache::check`] by the key's SHA-256, as a web session keeps it: a
    /// key revoked or expired since the login ends the session.
    pub fn check_digest(&self, hash: &[u8; 32]) -> Option<Arc<Principal>> {
        let hash = *hash;
        let keys = self.keys.current();
        let key = keys.get(&hash)?;
        if !constant_time_eq(&key.sha256, &hash) {
            return None;
        }
        if key.expires_at.is_some_and(|t| t <= chrono::Utc::now()) {
            return None;
        }
        Some(key.principal.clone())
    }
}

/// The caller, from `Authorization: Bearer <key>` (or `X-Api-Key`); 401 otherwise.
/// A read (GET, HEAD) may instead come with a web session's cookie, so that
/// the pages' export links download through the same endpoints; anything that
/// changes state needs the key itself, so a forged cross-site request carries
/// no authority.
#[derive(Debug, Clone)]
pub struct Auth(pub Arc<Principal>);

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let headers = &parts.headers;
        let secret = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(secret) = secret else {
            let read =
                parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
            if !read {
                return Err(AppError::Unauthorized);
            }
            return crate::ui::session::principal(state, headers)
                .await?
                .map(|(who, _)| Auth(who))
                .ok_or(AppError::Unauthorized);
        };
        state
            .keys
            .check(secret)
            .map(Auth)
            .ok_or(AppError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let (a, b) = (generate_key().unwrap(), generate_key().unwrap());
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 3 + 64);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(a.sha256, hash_key(&a.secret));
        assert_ne!(a.sha256, hash_key(&b.secret));
    }

    #[test]
    fn roles_parse_by_name() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().unwrap_err().contains("admin"));
    }

    #[test]
    fn constant_time_eq_compares_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
