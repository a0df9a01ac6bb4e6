//! A local stand-in for NXLink's `createandcall`, for the demo and tests.
//!
//! It checks headers, clock, signature and body as ARCHITECTURE.md ("The
//! vendor's rules the code relies on") describes, answers with the
//! documented codes, counts how often it accepted each
//! `orderID`, and can inject faults (dropped connections, 503/429, 88/99,
//! slowness, clock skew, a `callList` limit), seeded so tests repeat. It is
//! not a model of the vendor's dialing; it never calls anyone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower::ServiceExt;

mod calls;
mod wire;

pub use calls::{CallSim, MOST_SECONDS_PER_QUERY};

use crate::clock::vendor_now_ms;
use crate::nxlink::calls::{CDR_BY_ORDER_PATH, CDR_PAGE_PATH};
use crate::nxlink::sign::{sign, Credentials, SignedParts};
use crate::nxlink::{ACTION_CC, BIZ_TYPE_CC, CREATE_AND_CALL_PATH};
use wire::{code, ApiReply, CreateAndCall};

/// The credentials the sandbox accepts unless told otherwise.
pub const DEFAULT_ACCESS_KEY: &str = "sandbox-key";
pub const DEFAULT_ACCESS_SECRET: &str = "sandbox-secret";

/// Faults, each a probability per request (0.0–1.0) unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Close the connection without processing.
    pub drop_before: f64,
    /// Accept the task, then close the connection without replying.
    pub drop_after: f64,
    /// Answer 503 with `Retry-After`, not processed.
    pub http503: f64,
    /// Answer 429 with `Retry-After`, not processed.
    pub http429: f64,
    /// Answer HTTP 200 with code 99, not processed.
    pub code99: f64,
    /// Answer HTTP 200 with code 88, not processed.
    pub code88: f64,
    /// Create the task, then answer code 88 (the vendor never says it did not).
    pub code88_processed: f64,
    /// Create the task, then answer code 99.
    pub code99_processed: f64,
    /// Create the task, then answer HTTP 500 without an NXLink body.
    pub http500_processed: f64,
    /// After accepting, wait this long before replying...
    pub slow_ms: u64,
    /// ...for this share of the requests (1.0: all of them).
    pub slow_share: f64,
    /// The sandbox's clock runs this far ahead of the real one.
    pub skew_ms: i64,
    /// Refuse a `callList` longer than this with 41000.
    pub max_list: Option<usize>,
    /// `Retry-After` seconds sent with 503 and 429.
    pub retry_after_s: u64,
    /// Answer every request with this code, unprocessed (e.g. 1001 or 1002,
    /// as a gateway behind a header-stripping proxy would).
    pub reply_code: Option<i64>,
    /// The HTTP status of every reply that carries an NXLink body (the
    /// vendor uses 200; a proxy may say 201 or 400).
    pub reply_status: Option<u16>,
    /// Hold every request this long before looking at it, as a request held
    /// up on its way would be: its `ts` is checked after the wait.
    pub stall_ms: u64,
    /// Send no usable `Date` header.
    pub omit_date: bool,
    /// Answer this many call-record queries, then refuse every later one
    /// with HTTP 503 (a gateway that stops answering mid-way).
    pub queries_answered: Option<u64>,
    /// How far a request's `ts` may be from the sandbox's clock (the vendor
    /// documents 60 000 ms).
    pub ts_window_ms: i64,
    /// Seed of the fault dice.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_before: 0.0,
            drop_after: 0.0,
            http503: 0.0,
            http429: 0.0,
            code99: 0.0,
            code88: 0.0,
            code88_processed: 0.0,
            code99_processed: 0.0,
            http500_processed: 0.0,
            slow_ms: 0,
            slow_share: 1.0,
            skew_ms: 0,
            max_list: None,
            retry_after_s: 0,
            reply_code: None,
            reply_status: None,
            stall_ms: 0,
            omit_date: false,
            queries_answered: None,
            ts_window_ms: 60_000,
            seed: 0,
        }
    }
}

/// What the sandbox has seen, as `GET /_sandbox/stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    /// Requests by the reply code they got (`"drop"` for a dropped one).
    pub replies: BTreeMap<String, u64>,
    pub tasks_accepted: u64,
    /// Distinct orderIDs accepted at least once.
    pub orders_accepted: u64,
    /// orderIDs accepted more than once (a tool calling someone twice).
    pub orders_accepted_twice: u64,
    /// Task names seen more than once.
    pub duplicate_task_names: u64,
    /// Calls the webhook answered 200.
    #[serde(default)]
    pub webhook_delivered: u64,
    /// Posts the webhook answered otherwise (or not at all).
    #[serde(default)]
    pub webhook_refused: u64,
    /// Calls given up on after every delivery failed.
    #[serde(default)]
    pub webhook_given_up: u64,
    /// Queries of `cdr/page` and of `cdr/queryByOrderId` answered.
    #[serde(default)]
    pub cdr_page_queries: u64,
    #[serde(default)]
    pub cdr_order_queries: u64,
}

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Sandbox {
    /// Listens on `listen` (port 0 picks a free one) with the given
    /// credentials and faults.
    pub async fn start(
        listen: SocketAddr,
        credentials: Credentials,
        faults: Faults,
    ) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (deliveries, queue) = tokio::sync::mpsc::unbounded_channel();
        let delivered = Arc::new(calls::Delivered::default());
        tokio::spawn(calls::deliver(queue, Arc::clone(&delivered)));
        let state = Arc::new(Shared {
            credentials,
            inner: Mutex::new(Inner::new(faults)),
            deliveries,
            delivered,
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::clone(&state), stopped));
        Ok(Sandbox {
            addr,
            state,
            stop,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for a job's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// How calls are made up and delivered from now on.
    pub fn set_calls(&self, sim: CallSim) {
        self.state.lock().sim = sim;
    }

    /// Every call made up so far, as the vendor would report it.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        self.state.lock().calls().to_vec()
    }

    /// Adds `count` calls of the account's other campaigns, starting evenly
    /// from `from_ms` to `to_ms`, with the numbers in `numbers` (in turn)
    /// or numbers of their own; `cdr/page` lists them with the rest.
    pub fn add_foreign_calls(&self, count: usize, from_ms: i64, to_ms: i64, numbers: &[String]) {
        let mut inner = self.state.lock();
        let seed = inner.foreign.len() as u64;
        let calls = calls::foreign_calls(count, from_ms, to_ms, numbers, seed);
        inner.foreign.extend(calls);
    }

    /// Orders with an answered call among those made up so far.
    pub fn orders_answered(&self) -> u64 {
        self.state
            .lock()
            .calls()
            .iter()
            .filter(|call| call["answered"] == true)
            .filter_map(|call| call["orderId"].as_str())
            .collect::<HashSet<_>>()
            .len() as u64
    }

    /// How many times each orderID was accepted.
    pub fn accepted_orders(&self) -> HashMap<String, u32> {
        self.state.lock().accepted.clone()
    }

    /// When each request arrived, in order (for rate measurements).
    pub fn arrivals(&self) -> Vec<Instant> {
        self.state.lock().arrivals.clone()
    }

    /// Names of the tasks accepted, in arrival order.
    pub fn task_names(&self) -> Vec<String> {
        self.state.lock().task_names.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().set_faults(faults);
    }

    /// Moves the sandbox's clock `ms` ahead of the real one (behind when
    /// negative), its other faults unchanged: calls it makes up from now
    /// on are timed by it, and the records it lists are those ended by it.
    pub fn set_clock_ahead(&self, ms: i64) {
        self.state.lock().faults.skew_ms = ms;
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
    }
}

struct Shared {
    credentials: Credentials,
    inner: Mutex<Inner>,
    /// Calls to post to the webhook.
    deliveries: tokio::sync::mpsc::UnboundedSender<(CallSim, serde_json::Value)>,
    delivered: Arc<calls::Delivered>,
}

impl Shared {
    fn stats(&self) -> Stats {
        use std::sync::atomic::Ordering::Relaxed;
        Stats {
            webhook_delivered: self.delivered.delivered.load(Relaxed),
            webhook_refused: self.delivered.refused.load(Relaxed),
            webhook_given_up: self.delivered.given_up.load(Relaxed),
            ..self.lock().stats()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Inner {
    faults: Faults,
    dice: StdRng,
    requests: u64,
    arrivals: Vec<Instant>,
    replies: BTreeMap<String, u64>,
    accepted: HashMap<String, u32>,
    task_names: Vec<String>,
    seen_task_names: HashSet<String>,
    duplicate_task_names: u64,
    sim: CallSim,
    /// Every task accepted, with how its calls are made up and when it was
    /// accepted: its calls are made from these when they are asked for
    /// (a benchmark's million orders never are).
    tasks: Vec<(CallSim, CreateAndCall, i64)>,
    /// The calls of the first `made.0` tasks.
    made: (usize, Vec<serde_json::Value>),
    /// Calls of the account's other campaigns, listed beside these.
    foreign: Vec<serde_json::Value>,
    cdr_page_queries: u64,
    cdr_order_queries: u64,
}

impl Inner {
    fn new(faults: Faults) -> Inner {
        Inner {
            dice: StdRng::seed_from_u64(faults.seed),
            faults,
            requests: 0,
            arrivals: Vec::new(),
            replies: BTreeMap::new(),
            accepted: HashMap::new(),
            task_names: Vec::new(),
            seen_task_names: HashSet::new(),
            duplicate_task_names: 0,
            sim: CallSim::default(),
            tasks: Vec::new(),
            made: (0, Vec::new()),
            foreign: Vec::new(),
            cdr_page_queries: 0,
            cdr_order_queries: 0,
        }
    }

    fn set_faults(&mut self, faults: Faults) {
        self.dice = StdRng::seed_from_u64(faults.seed);
        self.faults = faults;
    }

    fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.dice.gen::<f64>() < probability
    }

    /// Every call made up so far, in the order of their tasks.
    fn calls(&mut self) -> &[serde_json::Value] {
        while self.made.0 < self.tasks.len() {
            let (sim, task, accepted_ms) = &self.tasks[self.made.0];
            let calls = calls::calls_for(sim, task, self.made.0 as u64 + 1, *accepted_ms);
            self.made.1.extend(calls);
            self.made.0 += 1;
        }
        &self.made.1
    }

    /// Every record of the account: this tool's calls and the others'.
    fn records(&mut self) -> Vec<&serde_json::Value> {
        self.calls();
        self.made.1.iter().chain(&self.foreign).collect()
    }

    /// The vendor's clock now (its skew included).
    fn now_ms(&self) -> i64 {
        vendor_now_ms() + self.faults.skew_ms
    }

    /// Whether the next call-record query is refused (the gateway has
    /// stopped answering).
    fn refuses_query(&self) -> bool {
        self.faults
            .queries_answered
            .is_some_and(|most| self.cdr_page_queries + self.cdr_order_queries >= most)
    }

    fn stats(&self) -> Stats {
        Stats {
            requests: self.requests,
            replies: self.replies.clone(),
            tasks_accepted: self.task_names.len() as u64,
            orders_accepted: self.accepted.len() as u64,
            orders_accepted_twice: self.accepted.values().filter(|n| **n > 1).count() as u64,
            duplicate_task_names: self.duplicate_task_names,
            cdr_page_queries: self.cdr_page_queries,
            cdr_order_queries: self.cdr_order_queries,
            ..Stats::default()
        }
    }

    fn count_reply(&mut self, what: impl Into<String>) {
        *self.replies.entry(what.into()).or_default() += 1;
    }

    /// Records an accepted task; returns what its calls are made from
    /// when they are to be posted to a webhook.
    fn accept(&mut self, task: &CreateAndCall) -> Option<(CallSim, CreateAndCall, u64, i64)> {
        let accepted_ms = self.now_ms();
        self.tasks
            .push((self.sim.clone(), task.clone(), accepted_ms));
        let to_post = self.sim.webhook_url.is_some().then(|| {
            (
                self.sim.clone(),
                task.clone(),
                self.tasks.len() as u64,
                accepted_ms,
            )
        });
        for item in &task.call_list {
            *self.accepted.entry(item.order_id.clone()).or_default() += 1;
        }
        if !self.seen_task_names.insert(task.task_name.clone()) {
            self.duplicate_task_names += 1;
        }
        self.task_names.push(task.task_name.clone());
        to_post
    }
}

/// Closes the current connection without a reply when notified.
#[derive(Clone)]
struct DropConnection(Arc<Notify>);

async fn serve(listener: TcpListener, state: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let router = Router::new()
        .route(CREATE_AND_CALL_PATH, post(create_and_call))
        .route(CDR_PAGE_PATH, post(cdr_page))
        .route(CDR_BY_ORDER_PATH, post(cdr_by_order))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/calls", post(set_calls).get(get_calls))
        .route("/_sandbox/faults", post(set_faults).get(get_faults))
        .with_state(state);
    let mut connections = tokio::task::JoinSet::new();
    let mut listener = crate::listen::Acceptor::new(listener, "sandbox");
    loop {
        let stream = tokio::select! {
            stream = listener.accept() => stream,
            _ = stopped.changed() => break,
        };
        let router = router.clone();
        connections.spawn(async move {
            let drop_now = Arc::new(Notify::new());
            let handle = DropConnection(Arc::clone(&drop_now));
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(handle.clone());
                    router.clone().oneshot(request)
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                // Dropping the connection future closes the socket unanswered.
                () = drop_now.notified() => {}
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

async fn stats(State(state): State<Arc<Shared>>) -> Json<Stats> {
    Json(state.stats())
}

async fn get_calls(State(state): State<Arc<Shared>>) -> Json<CallSim> {
    Json(state.lock().sim.clone())
}

async fn set_calls(State(state): State<Arc<Shared>>, Json(sim): Json<CallSim>) -> Json<CallSim> {
    state.lock().sim = sim.clone();
    Json(sim)
}

/// An NXLink reply with `data`.
fn data_reply(code: i64, msg: &str, data: serde_json::Value) -> Response {
    Json(ApiReply {
        req_id: Some(format!("sandbox-{:x}", vendor_now_ms())),
        code,
        msg: Some(msg.to_owned()),
        data,
    })
    .into_response()
}

/// A call-record query, checked as the gateway checks every request and
/// read, or the reply that refuses it.
fn read_query<T: serde::de::DeserializeOwned>(
    state: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Box<Response>> {
    let (window, now_ms) = {
        let inner = state.lock();
        (inner.faults.ts_window_ms, inner.now_ms())
    };
    check_signed(&state.credentials, headers, body, now_ms, window)
        .map_err(|(code, msg)| Box::new(data_reply(code, &msg, serde_json::Value::Null)))?;
    serde_json::from_slice(body).map_err(|e| Box::new(parameter_error(&e.to_string())))
}

/// The vendor's refusal of a query's parameters.
fn parameter_error(why: &str) -> Response {
    data_reply(
        code::PARAMETER_ERROR,
        &format!("parameter error: {why}"),
        serde_json::Value::Null,
    )
}

async fn cdr_page(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let query: calls::PageQuery = match read_query(&state, &headers, &body) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    let page = {
        let mut inner = state.lock();
        if inner.refuses_query() {
            return (StatusCode::SERVICE_UNAVAILABLE, "sandbox: not answering").into_response();
        }
        inner.cdr_page_queries += 1;
        let now_ms = inner.now_ms();
        calls::page(&inner.records(), &query, now_ms)
    };
    match page {
        Ok(records) => data_reply(code::SUCCESS, "success", serde_json::Value::Array(records)),
        Err(why) => parameter_error(&why),
    }
}

async fn cdr_by_order(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ByOrder {
        tenant_id: i64,
        order_id: String,
    }
    let query: ByOrder = match read_query(&state, &headers, &body) {
        Ok(query) => query,
        Err(refused) => return *refused,
    };
    if query.tenant_id <= 0 {
        return data_reply(
            code::PARAMETER_ERROR,
            "parameter error: tenantId",
            serde_json::Value::Null,
        );
    }
    let mut inner = state.lock();
    if inner.refuses_query() {
        return (StatusCode::SERVICE_UNAVAILABLE, "sandbox: not answering").into_response();
    }
    inner.cdr_order_queries += 1;
    let now_ms = inner.now_ms();
    let records: Vec<serde_json::Value> = inner
        .records()
        .into_iter()
        .filter(|call| call["orderId"] == query.order_id.as_str())
        .filter(|call| calls::has_ended(call, now_ms))
        .cloned()
        .collect();
    drop(inner);
    data_reply(code::SUCCESS, "success", serde_json::Value::Array(records))
}

async fn get_faults(State(state): State<Arc<Shared>>) -> Json<Faults> {
    Json(state.lock().faults.clone())
}

async fn set_faults(State(state): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Json<Faults> {
    state.lock().set_faults(faults.clone());
    Json(faults)
}

/// What the dice said for one request.
enum Fate {
    /// Create the task; then drop the connection, or answer (after `slow`)
    /// with success or with `then`.
    Process {
        drop_after: bool,
        slow: Duration,
        then: Option<Then>,
    },
    DropBefore,
    Status(StatusCode),
    Code(i64),
}

/// A reply that follows a created task.
#[derive(Clone, Copy)]
enum Then {
    Code(i64),
    Status(StatusCode),
}

async fn create_and_call(
    State(state): State<Arc<Shared>>,
    Extension(drop_connection): Extension<DropConnection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stall = {
        let mut inner = state.lock();
        inner.requests += 1;
        inner.arrivals.push(Instant::now());
        Duration::from_millis(inner.faults.stall_ms)
    };
    if !stall.is_zero() {
        tokio::time::sleep(stall).await;
    }
    let (now_ms, fate, faults) = {
        let mut inner = state.lock();
        let faults = inner.faults.clone();
        let now_ms = vendor_now_ms() + faults.skew_ms;
        let fate = if inner.roll(faults.drop_before) {
            Fate::DropBefore
        } else if let Some(code) = faults.reply_code {
            Fate::Code(code)
        } else if inner.roll(faults.http503) {
            Fate::Status(StatusCode::SERVICE_UNAVAILABLE)
        } else if inner.roll(faults.http429) {
            Fate::Status(StatusCode::TOO_MANY_REQUESTS)
        } else if inner.roll(faults.code99) {
            Fate::Code(code::SYSTEM_ERROR)
        } else if inner.roll(faults.code88) {
            Fate::Code(code::REQUEST_FAILED)
        } else {
            let then = if inner.roll(faults.code88_processed) {
                Some(Then::Code(code::REQUEST_FAILED))
            } else if inner.roll(faults.code99_processed) {
                Some(Then::Code(code::SYSTEM_ERROR))
            } else if inner.roll(faults.http500_processed) {
                Some(Then::Status(StatusCode::INTERNAL_SERVER_ERROR))
            } else {
                None
            };
            let drop_after = inner.roll(faults.drop_after);
            let slow = faults.slow_ms > 0 && inner.roll(faults.slow_share);
            Fate::Process {
                drop_after,
                slow: Duration::from_millis(if slow { faults.slow_ms } else { 0 }),
                then,
            }
        };
        (now_ms, fate, faults)
    };
    let reply_status = faults
        .reply_status
        .and_then(|s| StatusCode::from_u16(s).ok());
    let reply = |status: StatusCode, code: i64, msg: &str| -> Response {
        let mut response = (
            reply_status.unwrap_or(status),
            Json(ApiReply {
                req_id: Some(format!("sandbox-{now_ms:x}")),
                code,
                msg: Some(msg.to_owned()),
                data: serde_json::Value::Null,
            }),
        )
            .into_response();
        let date = SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms.max(0) as u64);
        // Without a date of ours, hyper would add its own: an unusable one
        // stands in for none.
        let value = if faults.omit_date {
            Some(HeaderValue::from_static("unknown"))
        } else {
            HeaderValue::from_str(&httpdate::fmt_http_date(date)).ok()
        };
        if let Some(value) = value {
            response
                .headers_mut()
                .insert(axum::http::header::DATE, value);
        }
        response
    };

    let (drop_after, slow, then) = match fate {
        Fate::DropBefore => {
            state.lock().count_reply("drop_before");
            return drop_connection_now(drop_connection).await;
        }
        Fate::Status(status) => {
            state.lock().count_reply(status.as_u16().to_string());
            let mut response = (status, "sandbox: try again later").into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(faults.retry_after_s),
            );
            return response;
        }
        Fate::Code(code) => {
            state.lock().count_reply(code.to_string());
            return reply(StatusCode::OK, code, "sandbox: injected reply code");
        }
        Fate::Process {
            drop_after,
            slow,
            then,
        } => (drop_after, slow, then),
    };

    let task = match check(
        &state.credentials,
        &headers,
        &body,
        now_ms,
        faults.ts_window_ms,
        faults.max_list,
    ) {
        Ok(task) => task,
        Err((code, msg)) => {
            state.lock().count_reply(code.to_string());
            return reply(StatusCode::OK, code, &msg);
        }
    };
    let to_post = {
        let mut inner = state.lock();
        let to_post = inner.accept(&task);
        let what = match (drop_after, then) {
            (true, _) => "drop_after".to_owned(),
            (false, Some(Then::Code(code))) => format!("{code}_processed"),
            (false, Some(Then::Status(status))) => format!("{}_processed", status.as_u16()),
            (false, None) => "0".to_owned(),
        };
        inner.count_reply(what);
        to_post
    };
    // Made up outside the lock: other requests need not wait for them.
    if let Some((sim, task, task_id, accepted_ms)) = to_post {
        for call in calls::calls_for(&sim, &task, task_id, accepted_ms) {
            let _ = state.deliveries.send((sim.clone(), call));
        }
    }
    if drop_after {
        return drop_connection_now(drop_connection).await;
    }
    if !slow.is_zero() {
        tokio::time::sleep(slow).await;
    }
    match then {
        Some(Then::Code(code)) => reply(StatusCode::OK, code, "sandbox: injected reply code"),
        Some(Then::Status(status)) => (status, "sandbox: internal error").into_response(),
        None => reply(StatusCode::OK, code::SUCCESS, "success"),
    }
}

async fn drop_connection_now(drop_connection: DropConnection) -> Response {
    drop_connection.0.notify_one();
    // The connection task drops this future with the connection.
    std::future::pending().await
}

/// Checks a request the way the gateway does (ARCHITECTURE.md), in the
/// gateway's order: headers, bizType/action, content type, clock, key,
/// signature, body.
fn check(
    credentials: &Credentials,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    ts_window_ms: i64,
    max_list: Option<usize>,
) -> Result<CreateAndCall, (i64, String)> {
    check_signed(credentials, headers, body, now_ms, ts_window_ms)?;
    let task: CreateAndCall = serde_json::from_slice(body)
        .map_err(|e| (code::PARAMETER_ERROR, format!("parameter error: {e}")))?;
    check_task(&task, max_list)
        .map_err(|msg| (code::PARAMETER_ERROR, format!("parameter error: {msg}")))?;
    Ok(task)
}

/// The checks every request of the API gets: headers, bizType/action,
/// content type, clock, key, signature.
fn check_signed(
    credentials: &Credentials,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
    ts_window_ms: i64,
) -> Result<(), (i64, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut values = Vec::with_capacity(5);
    for name in ["accessKey", "ts", "bizType", "action", "sign"] {
        match header(name) {
            Some(value) => values.push(value),
            None => return Err((code::MISSING_HEADER, format!("missing header {name}"))),
        }
    }
    let [access_key, ts, biz_type, action, signature] = values[..] else {
        unreachable!("five headers were pushed")
    };
    if biz_type != BIZ_TYPE_CC || action != ACTION_CC {
        return Err((
            code::WRONG_BIZ_TYPE_OR_ACTION,
            "bizType or action is wrong".into(),
        ));
    }
    if !header("content-type").is_some_and(|v| v.starts_with("application/json")) {
        return Err((
            code::INVALID_SIGNATURE,
            "Content-Type must be application/json".into(),
        ));
    }
    let ts: i64 = ts
        .parse()
        .map_err(|_| (code::TIMESTAMP_EXPIRED, "ts is not a number".to_owned()))?;
    if (ts - now_ms).abs() > ts_window_ms {
        return Err((code::TIMESTAMP_EXPIRED, "timestamp expired".into()));
    }
    if access_key != credentials.access_key() {
        return Err((code::ACCESS_KEY_INVALID, "access key invalid".into()));
    }
    let expected = sign(
        credentials,
        &SignedParts {
            biz_type,
            action,
            ts,
            body,
        },
    );
    if signature != expected {
        return Err((code::INVALID_SIGNATURE, "invalid signature".into()));
    }
    Ok(())
}

fn check_task(task: &CreateAndCall, max_list: Option<usize>) -> Result<(), String> {
    if task.country.len() != 2 || !task.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("country {:?}", task.country));
    }
    for (name, value) in [
        ("taskName", &task.task_name),
        ("strategyName", &task.strategy_name),
        ("agentGroupNo", &task.agent_group_no),
    ] {
        if value.trim().is_empty() {
            return Err(format!("{name} is empty"));
        }
    }
    if task.dispatch_type > 2 {
        return Err(format!("dispatchType {}", task.dispatch_type));
    }
    for (name, rate) in [
        ("predictCallRate", task.predict_call_rate),
        ("ratioCallRate", task.ratio_call_rate),
    ] {
        if !rate.is_finite() || rate < 0.0 {
            return Err(format!("{name} {rate}"));
        }
    }
    if task.startup_type.is_some_and(|startup| startup > 3) {
        return Err(format!("startupType {:?}", task.startup_type));
    }
    if task.call_list.is_empty() {
        return Err("callList is empty".into());
    }
    if let Some(max) = max_list {
        if task.call_list.len() > max {
            return Err(format!(
                "too many array elements: {} > {max}",
                task.call_list.len()
            ));
        }
    }
    let mut ids = HashSet::with_capacity(task.call_list.len());
    for item in &task.call_list {
        if item.order_id.is_empty() || item.order_id.len() > 32 {
            return Err(format!("orderID {:?}", item.order_id));
        }
        if !ids.insert(item.order_id.as_str()) {
            return Err(format!("orderID {:?} twice in callList", item.order_id));
        }
        if item.user_phone.is_empty() || !item.user_phone.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("userPhone {:?}", item.user_phone));
        }
        if item.other.is_empty() {
            return Err(format!("other of orderID {:?} is empty", item.order_id));
        }
    }
    Ok(())
}
