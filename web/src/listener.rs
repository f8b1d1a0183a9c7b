//! Connections, as a server facing slow or hostile clients must take them:
//! headers must arrive within `ServerConfig::header_read_timeout`, a body
//! within `ServerConfig::body_timeout` of its request, and at shutdown the
//! connections in flight get `ServerConfig::shutdown_grace` to finish before
//! they are cut. (`axum::serve` sets no header timeout and waits for ever.)
//! A push in flight runs on its own task, so cutting its connection does not
//! cut its commit: it commits and is answered to nobody, or it is not
//! acknowledged; the shutdown waits for it too, within the grace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::state::AppState;

/// Accepts connections until `shutdown`, then drains them within the grace.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    app: Router,
    state: &AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let config = &state.config;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors, a reset before accept: the next one may do.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        // Reap finished connections so the set does not grow with the uptime.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let grace = config.shutdown_grace;
    tracing::info!(
        connections = connections.len(),
        grace_s = grace.as_secs_f64(),
        "shutting down"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "connections still open after the shutdown grace; cut"
        );
    }
    connections.abort_all();
    // Pushes run on tasks of their own: wait for them to commit (or not), so
    // none is cut half way through.
    let all = u32::try_from(config.ingest_slots.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, state.ingest_slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "a push was still ingesting after the shutdown grace; it is not acknowledged"
        );
    }
}

/// Limits how long a request's body may take to arrive, whole.
pub(crate) async fn body_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let limit = state.config.body_timeout;
    let request = request.map(|body| {
        Body::new(Deadline {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    });
    next.run(request).await
}

/// A body that fails once its deadline passes.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body took longer than {0} s to arrive")]
struct BodyTooSlow(u64);

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow(
                this.limit.as_secs(),
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The defaults `tollgate serve` uses (ServerConfig documents each).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(120);
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
