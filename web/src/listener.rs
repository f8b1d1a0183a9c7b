//! Connections, as a server facing slow or hostile clients must take them:
//! headers must arrive within `ServerConfig::header_read_timeout`, a body
//! within `ServerConfig::body_timeout` plus a second per [`MIN_BODY_RATE`]
//! bytes it brought (a slow uplink may send a big body; a client trickling
//! bytes may not hold a connection), and at shutdown the
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

/// The slowest a body may arrive once past its base allowance: 64 KiB/s.
pub(crate) const MIN_BODY_RATE: u64 = 64 * 1024;

/// Limits how long a request's body may take to arrive.
pub(crate) async fn body_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let base = state.config.body_timeout;
    let request = request.map(|body| {
        let start = tokio::time::Instant::now();
        Body::new(Deadline {
            inner: body,
            sleep: Box::pin(tokio::time::sleep_until(start + base)),
            start,
            base,
            received: 0,
        })
    });
    next.run(request).await
}

/// A body that fails once it falls behind its deadline: `base` after the
/// request, plus a second per [`MIN_BODY_RATE`] bytes received so far.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    start: tokio::time::Instant,
    base: Duration,
    received: u64,
}

impl Deadline {
    fn deadline(&self) -> tokio::time::Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / MIN_BODY_RATE as f64);
        self.start + self.base + earned
    }
}

/// A body that fell behind its deadline (answered 408).
#[derive(Debug, thiserror::Error)]
#[error(
    "the request body arrived too slowly: {received} bytes in {seconds} s, below {rate} KiB/s past the first {base} s; send it faster or in smaller pieces"
)]
pub(crate) struct BodyTooSlow {
    received: u64,
    seconds: u64,
    rate: u64,
    base: u64,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(|f| f.data_ref())) {
                this.received += data.map_or(0, |d| d.len() as u64);
                let deadline = this.deadline();
                this.sleep.as_mut().reset(deadline);
            }
            return Poll::Ready(frame);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTooSlow {
                received: this.received,
                seconds: this.start.elapsed().as_secs(),
                rate: MIN_BODY_RATE / 1024,
                base: this.base.as_secs(),
            })))),
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
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
