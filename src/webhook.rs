//! The call-log webhook receiver: NXLink POSTs each finished call to
//! `<public base>/nxlink/calls`; each is stored in the ledger once per
//! callId, and answered 200 only once it is durable there.
//!
//! - The `token` header is compared with the configured secret (in
//!   constant time) when one is set: 401 otherwise.
//! - A malformed body gets 400 with the reason, and nothing is kept.
//! - Bodies are capped ([`BODY_LIMIT`]); a client that takes longer than
//!   [`REQUEST_TIMEOUT`] (or the configured time) to send its request
//!   gets 408, or its connection closed.
//! - Deliveries that arrive together are written in one transaction (a
//!   group commit), so a burst of hundreds costs a few transactions, not
//!   hundreds of waits for the ledger's write lock; each is answered when
//!   the transaction that holds it has committed.
//! - `GET /healthz` answers 200 while the receiver runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt as _;

use crate::clock::now_ms;
use crate::ledger::{Ledger, LedgerError, StoredCalls};
use crate::listen::Acceptor;
use crate::nxlink::calls::Call;

/// Where NXLink posts calls.
pub const CALLS_PATH: &str = "/nxlink/calls";
/// The largest body taken: a call record is a few kilobytes.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// How long a client may take to send its whole request, by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most calls written in one transaction: a few milliseconds of the
/// ledger's write lock.
const GROUP_MOST: usize = 500;

/// What the receiver checks deliveries against.
#[derive(Clone)]
pub struct Settings {
    /// The secret the `token` header must carry; `None`: not checked.
    pub token: Option<String>,
    /// How long a client may take to send its whole request.
    pub request_timeout: Duration,
}

/// One delivery waiting for its transaction.
struct Delivery {
    calls: Vec<Call>,
    done: oneshot::Sender<Result<StoredCalls, String>>,
}

struct Shared {
    token_digest: Option<[u8; 32]>,
    deliveries: mpsc::Sender<Delivery>,
}

/// A running receiver.
pub struct Receiver {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts receiving on `listener`, storing into `ledger`.
    pub fn start(
        listener: TcpListener,
        ledger: Ledger,
        settings: Settings,
    ) -> std::io::Result<Receiver> {
        let addr = listener.local_addr()?;
        let (deliveries, queue) = mpsc::channel(4096);
        let writer = tokio::spawn(write_deliveries(ledger, queue));
        let shared = Arc::new(Shared {
            token_digest: settings.token.as_deref().map(digest),
            deliveries,
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve(listener, shared, stopped, settings.request_timeout));
        Ok(Receiver {
            addr,
            stop,
            server,
            writer,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking connections, lets the requests in progress finish and
    /// their calls be written.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.writer.await;
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Equal digests, compared without stopping at the first difference.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The writer: takes whatever deliveries are waiting, stores their calls in
/// transactions of at most [`GROUP_MOST`] calls (so that a big delivery
/// never holds the ledger's write lock for long), then answers each.
async fn write_deliveries(ledger: Ledger, mut queue: mpsc::Receiver<Delivery>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        let mut calls: usize = group[0].calls.len();
        while calls < GROUP_MOST {
            match queue.try_recv() {
                Ok(next) => {
                    calls += next.calls.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let all: Vec<&Call> = group.iter().flat_map(|d| &d.calls).collect();
        match store_in_chunks(&ledger, &all).await {
            Ok(stored) => {
                tracing::debug!(
                    deliveries = group.len(),
                    new = stored.new,
                    replaced = stored.replaced,
                    unknown = stored.unknown,
                    "calls stored"
                );
                for delivery in group {
                    // The group's counts: a delivery only needs to know it is durable.
                    let _ = delivery.done.send(Ok(stored));
                }
            }
            // One delivery the ledger refuses must not hold back the
            // others that arrived with it: each is tried alone.
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e, "calls not stored together; storing each delivery alone");
                for delivery in group {
                    let calls: Vec<&Call> = delivery.calls.iter().collect();
                    let stored = store_in_chunks(&ledger, &calls).await;
                    let _ = delivery.done.send(stored.map_err(|e| e.to_string()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "calls not stored; the vendor will deliver them again");
                for delivery in group {
                    let _ = delivery.done.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Stores `calls`, [`GROUP_MOST`] to a transaction; the counts of all.
async fn store_in_chunks(ledger: &Ledger, calls: &[&Call]) -> Result<StoredCalls, LedgerError> {
    let mut stored = StoredCalls::default();
    for chunk in calls.chunks(GROUP_MOST) {
        let chunk: Vec<Call> = chunk.iter().map(|call| (*call).clone()).collect();
        let now = ledger.store_calls(chunk, "webhook", now_ms()).await?;
        stored.new += now.new;
        stored.replaced += now.replaced;
        stored.unknown += now.unknown;
    }
    Ok(stored)
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    request_timeout: Duration,
) {
    let router = Router::new()
        .route(CALLS_PATH, post(receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared);
    let mut connections = tokio::task::JoinSet::new();
    let mut listener = Acceptor::new(listener, "webhook");
    loop {
        let stream = tokio::select! {
            stream = listener.accept() => stream,
            _ = stopped.changed() => break,
        };
        // Answers are small: send them at once, not after the client's
        // delayed acknowledgement.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stopping = stopped.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let router = router.clone();
                    async move {
                        match tokio::time::timeout(request_timeout, router.oneshot(request)).await {
                            Ok(response) => response,
                            Err(_) => Ok((
                                StatusCode::REQUEST_TIMEOUT,
                                "the request took too long to arrive\n",
                            )
                                .into_response()),
                        }
                    }
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(request_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.changed() => {}
            }
            // Stopping: the request in progress is answered, an idle
            // kept-alive connection is closed now.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    // The requests in progress finish (their calls are written); then the
    // writer's queue closes with the last of them.
    while connections.join_next().await.is_some() {}
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(expected) = &shared.token_digest {
        let given = headers
            .get("token")
            .map(|v| digest(&String::from_utf8_lossy(v.as_bytes())));
        if !given.is_some_and(|given| same(&given, expected)) {
            return (
                StatusCode::UNAUTHORIZED,
                "missing or wrong `token` header\n",
            )
                .into_response();
        }
    }
    let calls = match Call::parse_body(&body) {
        Ok(calls) => calls,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let (done, stored) = oneshot::channel();
    let count = calls.len();
    if shared
        .deliveries
        .send(Delivery { calls, done })
        .await
        .is_err()
    {
        return unavailable("the receiver is stopping");
    }
    match stored.await {
        Ok(Ok(_)) => Json(crate::nxlink::calls::stored_reply(count)).into_response(),
        Ok(Err(e)) => unavailable(&e),
        Err(_) => unavailable("the receiver is stopping"),
    }
}

/// 503: not stored; the vendor delivers again.
fn unavailable(why: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("not stored ({why}); deliver again\n"),
    )
        .into_response()
}
