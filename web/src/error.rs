//! The one mapping from what went wrong to an HTTP answer: JSON `{error, message}`
//! with the right status; a server error is logged with its cause and answered
//! generically.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_reports::ReportsError;
use tollgate_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No key, or one that is unknown, revoked or expired: all answered alike.
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("this key's role may not {0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// Input checked and refused, every problem named.
    #[error("{} problem(s) found", .0.len())]
    Invalid(Vec<String>),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body did not arrive in time (a slow or stalled client).
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too much work in flight: retry after this many seconds.
    #[error("busy: retry in {0} s")]
    Busy(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reports(#[from] ReportsError),
    #[error(transparent)]
    Ingest(#[from] tollgate_ingest::IngestError),
    #[error(transparent)]
    Lineage(#[from] tollgate_lineage::LineageError),
    /// A fault of the server's own with no error beneath it (a panic, a
    /// refused key or nonce).
    #[error("{0}")]
    Internal(String),
    /// A fault of the server's own: what it was doing, and why that failed.
    #[error("{what}: {source}")]
    Fault {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AppError {
    /// The server failed at `what` because of `source`, kept for the log.
    pub(crate) fn fault(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        AppError::Fault {
            what: what.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Every error answer: a stable `error` code, a message for people, and for
/// refused input every problem found, each naming its field.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    problems: Vec<String>,
}

impl AppError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Store(e) => store_status(e),
            AppError::Reports(ReportsError::Store(e)) => store_status(e),
            AppError::Reports(ReportsError::Argument(_)) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            // What was imported conflicts with what is asked: 409, fixed by
            // importing again, as a clash with stored state is.
            AppError::Reports(ReportsError::Reference(_)) => (StatusCode::CONFLICT, "conflict"),
            AppError::Reports(ReportsError::Invalid { .. } | ReportsError::InvalidRule { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            AppError::Lineage(e) => lineage_status(e),
            AppError::Reports(_)
            | AppError::Ingest(_)
            | AppError::Internal(_)
            | AppError::Fault { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

fn lineage_status(e: &tollgate_lineage::LineageError) -> (StatusCode, &'static str) {
    use tollgate_lineage::LineageError as E;
    match e {
        E::UnknownNode(_) | E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        E::AmbiguousNode { .. }
        | E::UnknownLabel { .. }
        | E::UnknownKind(_)
        | E::UnknownOrigin(_)
        | E::Argument(_)
        | E::Taxonomy(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        E::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
        E::Store(e) => store_status(e),
        E::Stored(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn store_status(e: &StoreError) -> (StatusCode, &'static str) {
    match e {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        StoreError::Conflict(_) | StoreError::MonthState(_) => (StatusCode::CONFLICT, "conflict"),
        // A query the user wrote that fails is their mistake; one of
        // Tollgate's own over stored data failing is the server's.
        StoreError::UserQuery(_) | StoreError::NotReadOnly(_) => {
            (StatusCode::BAD_REQUEST, "bad_request")
        }
        StoreError::QueryLimit(_) => (StatusCode::BAD_REQUEST, "query_limit"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// What an error answer says, for the JSON API and the web pages alike.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    pub problems: Vec<String>,
    pub retry_after: Option<u64>,
}

impl AppError {
    /// The answer to give; a server error is answered generically (the
    /// response carries the error itself for [`log_server_errors`]).
    pub(crate) fn answer(&self) -> Answer {
        let (status, error) = self.status();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error; the server log has the cause".to_owned()
        } else {
            self.to_string()
        };
        let retry_after = match self {
            AppError::Busy(seconds) => Some(*seconds),
            _ => None,
        };
        let problems = match self {
            AppError::Invalid(problems) => problems.clone(),
            AppError::Reports(
                ReportsError::Invalid { problems, .. } | ReportsError::InvalidRule { problems, .. },
            ) => problems.clone(),
            AppError::Lineage(tollgate_lineage::LineageError::Refused { problems, .. }) => {
                problems.clone()
            }
            _ => Vec::new(),
        };
        Answer {
            status,
            error,
            message,
            problems,
            retry_after,
        }
    }

    /// `response`, answering this error, carrying the error for the one
    /// middleware that logs server errors with their cause.
    pub(crate) fn attach(self, mut response: Response) -> Response {
        // A fault met while answering this one (an error page that did not
        // render) is the one to log: it is already there.
        if response.status().is_server_error() && response.extensions().get::<Fault>().is_none() {
            response.extensions_mut().insert(Fault(Arc::new(self)));
        }
        response
    }
}

/// A server error an answer stands for, kept on the response for
/// [`log_server_errors`].
#[derive(Debug, Clone)]
pub(crate) struct Fault(Arc<AppError>);

/// The one place a request's server error is logged, with its cause chain,
/// whichever handler, extractor, page or panic answered it. It runs inside
/// the request's span, which names the method and route: nothing is copied
/// from a request that does not fail.
pub(crate) async fn log_server_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(Fault(e)) = response.extensions().get::<Fault>() {
        tracing::error!(error = %e, cause = ?e, "request failed");
    }
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let Answer {
            status,
            error,
            message,
            problems,
            retry_after,
        } = self.answer();
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error,
                message,
                problems,
            }),
        )
            .into_response();
        if let Some(value) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tollgate\""),
            );
        }
        self.attach(response)
    }
}

impl From<axum::extract::rejection::JsonRejection> for AppError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        match e.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(e.body_text()),
            StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(e.body_text()),
            StatusCode::UNPROCESSABLE_ENTITY => AppError::Invalid(vec![e.body_text()]),
            _ => AppError::BadRequest(e.body_text()),
        }
    }
}

/// A body that could not be read, as the JSON error: past `limit` bytes it
/// is a 413 saying so, else a 400 saying why. Handlers take their body as a
/// `Result` and call this after the role check, so a key that may not send a
/// body is refused for that first.
pub(crate) fn body_refused(
    rejection: &(dyn std::error::Error + 'static),
    status: StatusCode,
    limit: usize,
) -> AppError {
    let mut cause = Some(rejection);
    while let Some(e) = cause {
        if let Some(slow) = e.downcast_ref::<crate::listener::BodyTooSlow>() {
            return AppError::RequestTimeout(slow.to_string());
        }
        cause = e.source();
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(format!(
            "the body is larger than {}; split it",
            byte_size(limit)
        )),
        _ => AppError::BadRequest(format!("the body: {rejection}")),
    }
}

/// Refuses a request whose `Content-Length` already says its body is past
/// `limit`, before reading any of it (a layer on routes taking big bodies).
pub(crate) async fn refuse_declared_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let mut refused =
            body_refused(&Oversize, StatusCode::PAYLOAD_TOO_LARGE, limit).into_response();
        // The unread body is still on the wire, so the server closes this
        // connection after answering; saying so keeps a client from pooling it
        // and sending its next request into a socket about to close.
        refused.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return refused;
    }
    next.run(request).await
}

/// `limit` in the largest binary unit it is a whole number of.
fn byte_size(limit: usize) -> String {
    match limit {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the body is too large")]
struct Oversize;

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        AppError::BadRequest(e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_server_error_carries_its_fault_to_the_log() {
        let cases = [
            (AppError::Internal("a panic".into()), 500, true),
            (
                AppError::fault("encoding", std::io::Error::other("disk gone")),
                500,
                true,
            ),
            (
                AppError::Reports(ReportsError::Integrity("bad date".into())),
                500,
                true,
            ),
            (
                AppError::Reports(ReportsError::Reference("two currencies".into())),
                409,
                false,
            ),
            (AppError::BadRequest("no".into()), 400, false),
        ];
        for (error, status, logged) in cases {
            let text = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{text}");
            assert_eq!(
                response.extensions().get::<Fault>().is_some(),
                logged,
                "{text}"
            );
        }
    }

    #[test]
    fn a_bound_is_said_in_the_unit_it_is_whole_in() {
        for (limit, said) in [
            (64 << 20, "64 MiB"),
            (64 << 10, "64 KiB"),
            ((1 << 20) + (1 << 10), "1025 KiB"),
            (1000, "1000 bytes"),
        ] {
            assert_eq!(byte_size(limit), said, "{limit}");
        }
    }
}
