//! The web pages: server-rendered askama templates (`web/templates/`), one
//! module per section, each section open to the roles that need it. People log
//! in with an API key into a session ([`session`]); every changing form carries
//! the session's CSRF token. Charts and the lineage picture are SVG drawn here
//! ([`chart`], [`graph_svg`]) and the stylesheet is compiled into the binary, so
//! the pages work offline. Every chart has its numbers one click away as a table.

mod admin;
pub mod chart;
mod dlp;
mod finops;
pub mod graph_svg;
mod login;
mod ops;
mod security;
pub mod session;
mod sql_console;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::Role;
use crate::error::AppError;
use crate::state::AppState;
use session::WebUser;

/// A part of the site and who may open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Finops,
    Operations,
    Security,
    Admin,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::Finops,
        Section::Operations,
        Section::Security,
        Section::Admin,
    ];

    pub fn roles(self) -> &'static [Role] {
        match self {
            Section::Finops => &[Role::Admin, Role::Finops],
            Section::Operations => &[Role::Admin, Role::Operator],
            Section::Security => &[Role::Admin, Role::Security],
            Section::Admin => &[Role::Admin],
        }
    }

    pub fn href(self) -> &'static str {
        match self {
            Section::Finops => "/finops",
            Section::Operations => "/operations",
            Section::Security => "/security",
            Section::Admin => "/admin",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Section::Finops => "FinOps",
            Section::Operations => "Operations",
            Section::Security => "Security",
            Section::Admin => "Admin",
        }
    }

    /// The first section a role may open: where its login lands.
    pub fn home(role: Role) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.roles().contains(&role))
    }
}

impl WebUser {
    /// Refuses (403, with this user's navigation) unless their role may open
    /// the section.
    pub fn require(&self, section: Section) -> Result<(), PageError> {
        self.who
            .require(
                section.roles(),
                &format!("open the {} pages", section.name()),
            )
            .map_err(|e| PageError::Denied(Box::new(Chrome::new(self, section, "Forbidden")), e))
    }
}

/// A link in the navigation.
#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the base layout shows around every page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    /// The key's name and role, when logged in.
    pub user: Option<(String, &'static str)>,
    pub nav: Vec<NavLink>,
    /// The session's CSRF token, for the logout form.
    pub csrf: String,
}

impl Chrome {
    pub fn new(user: &WebUser, current: Section, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            user: Some((user.who.name.clone(), user.who.role.name())),
            nav: Section::ALL
                .into_iter()
                .filter(|s| s.roles().contains(&user.who.role))
                .map(|s| NavLink {
                    href: s.href(),
                    label: s.name(),
                    current: s == current,
                })
                .collect(),
            csrf: user.session.csrf.clone(),
        }
    }

    pub fn anonymous(title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            user: None,
            nav: Vec::new(),
            csrf: String::new(),
        }
    }
}

/// A rendered template as an HTML answer, with the headers every page gets:
/// no caching (pages carry figures people may not share), no framing, and a
/// content policy that allows only this server's own assets.
#[derive(Debug)]
pub struct Page<T>(pub T);

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => with_page_headers(Html(html).into_response()),
            Err(e) => AppError::fault("rendering a page", e).into_response(),
        }
    }
}

fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Why a page was not shown.
#[derive(Debug)]
pub enum PageError {
    /// Not logged in: to the login page, then back here.
    Login {
        next: String,
    },
    /// A changing form without this session's CSRF token, or from another site.
    Csrf,
    /// A page this user's role may not open: answered within their own layout.
    Denied(Box<Chrome>, AppError),
    App(AppError),
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError::App(e)
    }
}

impl From<tollgate_store::StoreError> for PageError {
    fn from(e: tollgate_store::StoreError) -> Self {
        PageError::App(e.into())
    }
}

impl From<tollgate_reports::ReportsError> for PageError {
    fn from(e: tollgate_reports::ReportsError) -> Self {
        PageError::App(e.into())
    }
}

impl From<tollgate_lineage::LineageError> for PageError {
    fn from(e: tollgate_lineage::LineageError) -> Self {
        PageError::App(e.into())
    }
}

pub type PageResult<T> = Result<T, PageError>;

/// A page's query string; one it cannot read is a 400 page naming the field.
#[derive(Debug)]
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for PageQuery<T>
{
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, PageError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| PageQuery(q))
            .map_err(|e| PageError::App(AppError::BadRequest(e.body_text())))
    }
}

/// A submitted form; one it cannot read is a 400 page naming the field.
#[derive(Debug)]
pub struct PageForm<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, PageError> {
        axum::Form::<T>::from_request(req, state)
            .await
            .map(|axum::Form(f)| PageForm(f))
            .map_err(|e| PageError::App(AppError::BadRequest(e.body_text())))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    reason: String,
    message: String,
    problems: Vec<String>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (chrome, error) = match self {
            PageError::Login { next } => {
                let to = format!("/login?next={}", urlencode(&next));
                return Redirect::to(&to).into_response();
            }
            PageError::Csrf => return error_page(None, csrf_answer()),
            PageError::Denied(chrome, e) => {
                let mut chrome = *chrome;
                // None of the sections is this page's.
                chrome.nav.iter_mut().for_each(|l| l.current = false);
                (Some(chrome), e)
            }
            PageError::App(e) => (None, e),
        };
        let response = error_page(chrome, error.answer());
        error.attach(response)
    }
}

fn csrf_answer() -> crate::error::Answer {
    crate::error::Answer {
        status: axum::http::StatusCode::FORBIDDEN,
        error: "csrf",
        message: "This form did not come from a page of this session (CSRF \
                  check). Reload the page and send it again."
            .into(),
        problems: Vec::new(),
        retry_after: None,
    }
}

/// The error page saying `answer`, within `chrome` (the user's layout) if given.
fn error_page(chrome: Option<Chrome>, answer: crate::error::Answer) -> Response {
    let title = answer.status.canonical_reason().unwrap_or("Error");
    let page = ErrorPage {
        chrome: chrome.unwrap_or_else(|| Chrome::anonymous(title)),
        status: answer.status.as_u16(),
        reason: title.to_owned(),
        message: answer.message,
        problems: answer.problems,
    };
    let mut response = Page(page).into_response();
    *response.status_mut() = answer.status;
    response
}

/// Encodes a query value (`application/x-www-form-urlencoded`).
pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

const STYLESHEET: &str = include_str!("../assets/app.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// Where `/` leads: the login page, or the first section the user may open.
async fn home(user: Result<WebUser, PageError>) -> Response {
    match user.ok().and_then(|u| Section::home(u.who.role)) {
        Some(section) => Redirect::to(section.href()).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

/// The answer for a path that is neither a page nor an API route: JSON under
/// `/api/`, a page elsewhere.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    let e = AppError::NotFound(format!("no such page or endpoint: {}", uri.path()));
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        PageError::App(e).into_response()
    }
}

/// Every page, the login and the stylesheet.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/assets/app.css", get(stylesheet))
        .merge(login::router())
        .merge(finops::router())
        .merge(ops::router())
        .merge(security::router())
        .merge(admin::router())
}

/// Formats an amount in pico-units (10^-12 of the currency) as dollars and cents.
pub fn money(pico: i128) -> String {
    chart::format_value(pico as f64 / 1e12, chart::Unit::Money)
}

/// A share as a percentage with one decimal.
pub fn percent(share: f64) -> String {
    chart::format_value(share, chart::Unit::Percent)
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    chart::format_value(n as f64, chart::Unit::Count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_lands_on_a_section_it_may_open_or_none() {
        assert_eq!(Section::home(Role::Security), Some(Section::Security));
        assert_eq!(Section::home(Role::Finops), Some(Section::Finops));
        assert_eq!(Section::home(Role::Operator), Some(Section::Operations));
        assert_eq!(Section::home(Role::Admin), Some(Section::Finops));
        assert_eq!(Section::home(Role::Gateway), None);
        assert_eq!(Section::home(Role::Ingest), None);
        assert!(!Section::Admin.roles().contains(&Role::Security));
        assert!(!Section::Finops.roles().contains(&Role::Security));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            urlencode("/finops?month=2026-10&x=a b"),
            "%2Ffinops%3Fmonth%3D2026-10%26x%3Da+b"
        );
    }
}
