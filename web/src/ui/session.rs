//! Web sessions. Logging in with an API key starts a session: a random token
//! in a cookie (HttpOnly, SameSite=Strict, Secure when served over TLS) naming
//! the key it was opened with, and a CSRF token every changing form carries.
//! The key is checked again on every request, so revoking it (or its expiry)
//! ends its sessions at once. Sessions live in this process: a restart asks
//! people to log in again, which is cheaper than storing bearer secrets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

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

#[derive(Debug, Clone)]
struct Entry {
    key_digest: [u8; 32],
    csrf: String,
    expires: Instant,
    /// A message for the next page only (a new key's secret, shown once).
    flash: Option<(String, String)>,
}

/// Live sessions by the SHA-256 of their token.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

/// A started session: the cookie's token and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Started {
    pub token: String,
    pub csrf: String,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for the key with this digest.
    pub fn start(&self, key_digest: [u8; 32]) -> Result<Started, AppError> {
        let started = Started {
            token: random_hex("a session")?,
            csrf: random_hex("a session")?,
        };
        let now = Instant::now();
        let mut map = self.lock();
        // Expired sessions go when new ones come: the map stays as large as
        // the logins of one lifetime.
        map.retain(|_, e| e.expires > now);
        map.insert(
            digest(&started.token),
            Entry {
                key_digest,
                csrf: started.csrf.clone(),
                expires: now + LIFETIME,
                flash: None,
            },
        );
        Ok(started)
    }

    fn find(&self, token: &str) -> Option<Entry> {
        let mut map = self.lock();
        let id = digest(token);
        match map.get(&id) {
            Some(e) if e.expires > Instant::now() => Some(e.clone()),
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Keeps `flash` for the session's next page.
    pub fn set_flash(&self, token: &str, flash: (String, String)) {
        if let Some(entry) = self.lock().get_mut(&digest(token)) {
            entry.flash = Some(flash);
        }
    }

    /// The flash kept for this page, taken: it is shown once.
    pub fn take_flash(&self, token: &str) -> Option<(String, String)> {
        self.lock()
            .get_mut(&digest(token))
            .and_then(|entry| entry.flash.take())
    }

    pub fn end(&self, token: &str) {
        self.lock().remove(&digest(token));
    }
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
pub fn principal(state: &AppState, headers: &HeaderMap) -> Option<(Arc<Principal>, SessionRef)> {
    let token = token(headers)?;
    let entry = state.sessions.find(token)?;
    let who = state.keys.check_digest(&entry.key_digest)?;
    Some((
        who,
        SessionRef {
            token: token.to_owned(),
            csrf: entry.csrf,
        },
    ))
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
        match principal(state, &parts.headers) {
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
    fn sessions_end_and_expire() {
        let sessions = Sessions::default();
        let started = sessions.start([7; 32]).unwrap();
        assert_eq!(sessions.find(&started.token).unwrap().key_digest, [7; 32]);
        assert!(sessions.find("forged").is_none());
        sessions.set_flash(&started.token, ("k".into(), "secret".into()));
        assert_eq!(sessions.take_flash(&started.token).unwrap().1, "secret");
        assert!(sessions.take_flash(&started.token).is_none(), "shown once");
        sessions.end(&started.token);
        assert!(sessions.find(&started.token).is_none());
        let old = sessions.start([8; 32]).unwrap();
        sessions
            .lock()
            .values_mut()
            .for_each(|e| e.expires = Instant::now());
        assert!(sessions.find(&old.token).is_none());
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
