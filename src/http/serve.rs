//! The accept loop, with the connection hygiene `axum::serve` does not offer:
//! - at most `MAX_CONNECTIONS` at once; one more is closed as soon as it is accepted (and counted
//!   in `connections_refused_total`), so a flood of sockets cannot exhaust file descriptors and
//!   take the health probes with it;
//! - `HEADER_READ_TIMEOUT_MS`: a new connection must send its first byte, and a request's headers,
//!   in time (HTTP/1; hyper closes it otherwise) — silent sockets, slowloris clients and
//!   keep-alive connections left silent, let go;
//! - `IDLE_TIMEOUT_MS`: a connection (HTTP/1 or HTTP/2) on which nothing is read or written for
//!   that long is shut down gracefully;
//! - graceful shutdown: stop accepting, let every connection finish what it is doing, then return.
//!
//! HTTP/1.1 and HTTP/2 (prior knowledge) are both served, as `axum::serve` did.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::metrics::Metrics;

/// How long a connection asked to close may take to finish its requests.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

/// The connection limits (from `ServerSettings`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for open connections to
/// finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let permits = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let (stop, stopped) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the connections we hold
                    // will close and free descriptors.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connection_refused();
            tracing::debug!(max = limits.max_connections, "connection refused: MAX_CONNECTIONS open");
            drop(stream);
            continue;
        };
        // Small answers go out at once rather than waiting for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let (builder, app, mut stopped) = (builder.clone(), app.clone(), stopped.clone());
        tokio::spawn(async move {
            let _slot = slot;
            // hyper's header timeout starts with a request's first byte: a connection that never
            // sends one would hold its slot until IDLE_TIMEOUT_MS (measured: 768 silent sockets
            // kept the probes out for a minute). The first byte must come within the header timeout.
            let mut first_byte = [0u8; 1];
            tokio::select! {
                first = tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first_byte)) => {
                    // Nothing in time, an error, or the peer already gone (0 bytes): let it go.
                    if !matches!(first, Ok(Ok(1..))) {
                        return;
                    }
                }
                _ = stopped.changed() => return,
            }
            let activity = Activity::new();
            let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
            let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app));
            tokio::pin!(conn);
            let mut check = tokio::time::interval(limits.idle_timeout / 4 + Duration::from_millis(10));
            // Once asked to close, a connection has this long to finish (a client that ignores an
            // HTTP/2 GOAWAY must not hold the shutdown up for ever).
            let mut close_by: Option<tokio::time::Instant> = None;
            loop {
                let deadline = close_by.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = tokio::time::sleep_until(deadline), if close_by.is_some() => break,
                    _ = stopped.changed(), if close_by.is_none() => {
                        conn.as_mut().graceful_shutdown();
                        close_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                    _ = check.tick(), if close_by.is_none() => {
                        if activity.idle_for() >= limits.idle_timeout {
                            conn.as_mut().graceful_shutdown();
                            close_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a slot until it is done: all slots back = all connections closed.
    let _all = slots.acquire_many(permits).await;
    Ok(())
}

/// When a connection last moved bytes.
#[derive(Clone)]
struct Activity {
    since: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Self { since: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }

    fn touch(&self) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// A TCP stream that records its activity.
struct Tracked {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
