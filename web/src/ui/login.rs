//! Logging in with an API key, and out.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::session::{self, WebUser};
use super::{Chrome, Page, PageError, PageForm, PageQuery, PageResult, Section};
use crate::auth::digest;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(form).post(login))
        .route("/logout", post(logout))
}

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only a path on this site: a login never sends anyone elsewhere. Browsers
/// drop tabs and newlines from a URL (`/\t/evil.example` is `//evil.example`)
/// and read `\` as `/`, so none of them may appear.
fn local(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n
                .chars()
                .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
    })
    .map(str::to_owned)
}

async fn form(PageQuery(q): PageQuery<NextQuery>) -> impl IntoResponse {
    Page(LoginPage {
        chrome: Chrome::anonymous("Log in"),
        next: local(q.next.as_deref()).unwrap_or_default(),
        error: None,
    })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(f): PageForm<LoginForm>,
) -> PageResult<Response> {
    // A login form posted from another site would log the victim in as the
    // attacker's key.
    if session::cross_origin(&state, &headers) {
        return Err(PageError::Csrf);
    }
    let refuse = |status: StatusCode, message: &str| {
        let mut response = Page(LoginPage {
            chrome: Chrome::anonymous("Log in"),
            next: local(Some(&f.next)).unwrap_or_default(),
            error: Some(message.to_owned()),
        })
        .into_response();
        *response.status_mut() = status;
        Ok(response)
    };
    let key = f.key.trim();
    let Some(who) = state.keys.check(key) else {
        tracing::info!("web login refused: unknown, revoked or expired key");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "That key is unknown, revoked or expired.",
        );
    };
    let Some(home) = Section::home(who.role) else {
        return refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "A {} key has no pages: it is for programs. Log in with an admin, finops, \
                 operator or security key.",
                who.role.name()
            ),
        );
    };
    // A new login replaces the session the browser had.
    if let Some(old) = session::token(&headers) {
        state.sessions.end(old).await?;
    }
    let started = state.sessions.start(digest(key)).await?;
    tracing::info!(key = %who.actor(), "web login");
    let to = local(Some(&f.next)).unwrap_or_else(|| home.href().to_owned());
    let mut response = Redirect::to(&to).into_response();
    let cookie = session::cookie(
        Some(&started.token),
        session::served_over_tls(&state, &headers),
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    user: WebUser,
    headers: HeaderMap,
    PageForm(f): PageForm<CsrfForm>,
) -> PageResult<Response> {
    user.check_csrf(&state, &headers, &f.csrf)?;
    state.sessions.end(&user.session.token).await?;
    let mut response = Redirect::to("/login").into_response();
    let cookie = session::cookie(None, session::served_over_tls(&state, &headers));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn a_login_only_returns_to_this_site() {
        assert_eq!(
            local(Some("/finops?month=2026-10")).as_deref(),
            Some("/finops?month=2026-10")
        );
        assert_eq!(local(Some("//evil.example/")), None);
        assert_eq!(local(Some("https://evil.example/")), None);
        assert_eq!(local(Some("/\\evil.example")), None);
        assert_eq!(local(Some("/\t/evil.example")), None);
        assert_eq!(local(Some("/finops\n")), None);
        assert_eq!(local(None), None);
    }
}
