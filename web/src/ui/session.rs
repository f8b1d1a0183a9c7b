//! Web sessions. Logging in with an API key starts a session: a random token
//! in a cookie (HttpOnly, SameSite=Strict, Secure when served over TLS) naming
//! the key it was opened with, and a CSRF token every changing form carries.
//! The key is checked again on every request, so revoking it (or its expiry)
//! ends its sessions at once. Sessions live in the state database, found by
//! their token's SHA-256 (the token itself is never stored), so servers side
//! by side share them: a login on one works on the others, and logging out ends
//! it everywhere.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use tollgate_store::StateDb;
use tollgate_store::state::StoredSession;

use crate::auth::{Principal, constant_time_eq, digest, random_hex};
use crate::error::AppError;
use crate::state::AppState;
use crate::ui::PageError;

pub const COOKIE: &str = "tg_session";
/// The cookie's name over TLS: `__Host-` makes browsers refuse it unless it
/// was set by this host, over TLS, for the whole site, so a sibling subdomain
/// cannot plant one.
pub const SECURE_COOKIE: &str = "__Host-tg_session";
/// How long a session lasts from its login.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// A session found by its token.
#[derive(Debug, Clone)]
struct Entry {
    key_digest: [u8; 32],
    csrf: String,
}

/// The sessions of every server on this state database.
#[derive(Debug, Clone)]
pub struct Sessions {
    db: StateDb,
}

/// A started session: the cookie's token and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Started {
    pub token: String,
    pub csrf: String,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn token_id(token: &str) -> String {
    hex::encode(digest(token))
}

impl Sessions {
    pub fn new(db: StateDb) -> Self {
        Sessions { db }
    }

    /// Opens a session for the key with this digest.
    pub async fn start(&self, key_digest: [u8; 32]) -> Result<Started, AppError> {
        let started = Started {
            token: random_hex("a session")?,
            csrf: random_hex("a session")?,
        };
        let now = now_us();
        let stored = StoredSession {
            key_sha256: hex::encode(key_digest),
            csrf: started.csrf.clone(),
            expires_at_us: now + LIFETIME.as_micros() as i64,
        };
        self.db
            .insert_session(&token_id(&started.token), &stored, now)
            .await?;
        Ok(started)
    }

    async fn find(&self, token: &str) -> Result<Option<Entry>, AppError> {
        let Some(stored) = self.db.session(&token_id(token), now_us()).await? else {
            return Ok(None);
        };
        let mut key_digest = [0u8; 32];
        // A stored digest that is not 32 hex bytes names no key: no session.
        if hex::decode_to_slice(&stored.key_sha256, &mut key_digest).is_err() {
            return Ok(None);
        }
        Ok(Some(Entry {
            key_digest,
            csrf: stored.csrf,
        }))
    }

    /// Keeps `flash` for the session's next page, on whichever server serves
    /// it: sealed with a key derived from the token, so the state database
    /// holds nothing readable without the browser's cookie.
    pub async fn set_flash(&self, token: &str, flash: (String, String)) -> Result<(), AppError> {
        let sealed = seal(token, &flash)?;
        self.db.set_session_flash(&token_id(token), &sealed).await?;
        Ok(())
    }

    /// The flash kept for this page, taken: it is shown once.
    pub async fn take_flash(&self, token: &str) -> Result<Option<(String, String)>, AppError> {
        let Some(sealed) = self.db.take_session_flash(&token_id(token)).await? else {
            return Ok(None);
        };
        Ok(open(token, &sealed))
    }

    pub async fn end(&self, token: &str) -> Result<(), AppError> {
        self.db.delete_session(&token_id(token)).await?;
        Ok(())
    }
}

/// The flash's key: the SHA-256 of the token under a label of its own (the
/// stored id is the token's plain SHA-256, so the two never coincide).
fn flash_key(token: &str) -> Result<LessSafeKey, AppError> {
    let key = digest(&format!("tollgate web flash\n{token}"));
    let key = UnboundKey::new(&CHACHA20_POLY1305, &key)
        .map_err(|_| AppError::Internal("the flash key was refused".into()))?;
    Ok(LessSafeKey::new(key))
}

fn seal(token: &str, flash: &(String, String)) -> Result<Vec<u8>, AppError> {
    let nonce_hex = random_hex("a flash nonce")?;
    let mut nonce = [0u8; NONCE_LEN];
    hex::decode_to_slice(&nonce_hex[..NONCE_LEN * 2], &mut nonce)
        .map_err(|e| AppError::fault("flash nonce", e))?;
    let mut body = serde_json::to_vec(flash).map_err(|e| AppError::fault("flash", e))?;
    flash_key(token)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
        .map_err(|_| AppError::Internal("sealing the flash failed".into()))?;
    let mut sealed = nonce.to_vec();
    sealed.extend(body);
    Ok(sealed)
}

/// The flash, or `None` if it does not open with this token's key (it was
/// tampered with): a flash is a convenience, never worth an error page.
fn open(token: &str, sealed: &[u8]) -> Option<(String, String)> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = flash_key(token)
        .ok()?
        .open_in_place(nonce, Aad::empty(), &mut body)
        .ok()?;
    serde_json::from_slice(plain).ok()
}

/// The session token the request's cookie carries.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SECURE_COOKIE || *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The principal of the request's session, if it has a live one whose key is
/// still live.
/// A state database that does not answer is the server's fault (500), not a
/// request to log in again.
pub async fn principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Arc<Principal>, SessionRef)>, AppError> {
    let Some(token) = token(headers) else {
        return Ok(None);
    };
    let Some(entry) = state.sessions.find(token).await? else {
        return Ok(None);
    };
    let Some(who) = state.keys.check_digest(&entry.key_digest) else {
        return Ok(None);
    };
    Ok(Some((
        who,
        SessionRef {
            token: token.to_owned(),
            csrf: entry.csrf,
        },
    )))
}

/// What a page needs of its session besides who: the token (to log out) and
/// the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub token: String,
    pub csrf: String,
}

/// The cookie that carries a session (or, with `None`, removes it).
pub fn cookie(token: Option<&str>, secure: bool) -> String {
    let (name, secure) = if secure {
        (SECURE_COOKIE, "; Secure")
    } else {
        (COOKIE, "")
    };
    match token {
        Some(token) => format!(
            "{name}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME.as_secs()
        ),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether people reach this server over TLS: its external URL says so, or a
/// TLS-terminating proxy in front does.
pub fn served_over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.external_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A form from another site: its `Origin` is neither the scheme and host the
/// request was sent to (`https` when a proxy in front says so in
/// `X-Forwarded-Proto`, else `http`) nor the server's external URL (a proxy
/// may rewrite `Host`). A page of the same host over another scheme (plain
/// HTTP beside the HTTPS service) is another origin. Browsers send `Origin` on
/// every POST; a request without one (a script) is judged by its CSRF token
/// alone.
pub fn cross_origin(state: &AppState, headers: &HeaderMap) -> bool {
    origin_elsewhere(headers, &state.config.external_url)
}

fn origin_elsewhere(headers: &HeaderMap, external_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin.eq_ignore_ascii_case(external_url.trim_end_matches('/')) {
        return false;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let forwarded_tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let scheme = if forwarded_tls { "https" } else { "http" };
    !origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

/// Someone logged in to the web pages.
#[derive(Debug, Clone)]
pub struct WebUser {
    pub who: Arc<Principal>,
    pub session: SessionRef,
}

impl WebUser {
    /// Refuses a changing form whose CSRF token is not this session's, or
    /// that came from another site.
    pub fn check_csrf(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        sent: &str,
    ) -> Result<(), PageError> {
        if cross_origin(state, headers)
            || !constant_time_eq(sent.as_bytes(), self.session.csrf.as_bytes())
        {
            return Err(PageError::Csrf);
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match principal(state, &parts.headers).await? {
            Some((who, session)) => Ok(WebUser { who, session }),
            // Back to the page after the login; a form's target cannot be
            // returned to with a GET.
            None => Err(PageError::Login {
                next: if parts.method == axum::http::Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map_or("/".to_owned(), |p| p.as_str().to_owned())
                } else {
                    "/".to_owned()
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tg_session=abc ; b=2"),
        );
        assert_eq!(token(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-tg_session=def"),
        );
        assert_eq!(token(&headers), Some("def"));
        headers.insert(header::COOKIE, HeaderValue::from_static("tg_sessionx=1"));
        assert_eq!(token(&headers), None);
    }

    #[test]
    fn a_flash_opens_only_with_its_sessions_token() {
        let flash = ("ci".to_owned(), "tgk_secret".to_owned());
        let sealed = seal("token-a", &flash).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("tgk_secret"));
        assert_eq!(open("token-a", &sealed), Some(flash.clone()));
        assert_eq!(open("token-b", &sealed), None, "another session's token");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open("token-a", &tampered), None);
        assert_eq!(open("token-a", &sealed[..5]), None);
        assert_ne!(
            seal("token-a", &flash).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn cookies_are_strict_and_secure_over_tls() {
        let c = cookie(Some("t"), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(c.starts_with("__Host-tg_session=t; Path=/;"));
        assert!(!cookie(Some("t"), false).contains("Secure"));
        assert!(cookie(None, false).contains("Max-Age=0"));
    }

    #[test]
    fn a_form_from_another_site_is_cross_origin() {
        let ours = "https://tollgate.example.com";
        let mut headers = HeaderMap::new();
        assert!(!origin_elsewhere(&headers, ours));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!origin_elsewhere(&headers, ours));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(origin_elsewhere(&headers, ours));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(origin_elsewhere(&headers, ours));
        // Behind a proxy that rewrote Host: the external URL is ours.
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://tollgate.example.com"),
        );
        assert!(!origin_elsewhere(&headers, ours));
        // The same host over another scheme is another origin.
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8080"),
        );
        assert!(origin_elsewhere(&headers, ours));
        headers.insert(header::HOST, HeaderValue::from_static("tollgate.internal"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://tollgate.internal"),
        );
        assert!(origin_elsewhere(&headers, ours));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://tollgate.internal"),
        );
        assert!(!origin_elsewhere(&headers, ours));
        headers.remove(header::HOST);
        assert!(origin_elsewhere(&headers, ours));
    }
}
