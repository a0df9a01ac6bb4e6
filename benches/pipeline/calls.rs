//! Call outcomes at campaign size: a campaign of N orders, all sent; then
//!
//! - the webhook receiver: `/healthz` answered a second, and calls stored a
//!   second (each delivery an answered call of one of the first tenth of
//!   the campaign's orders), both with 64 connections from this process;
//! - `sync` of N call records (one per order), served by a stand-in of
//!   `cdr/page` that costs next to nothing;
//! - `orders --format csv` of the N orders, every one with a call;
//! - redials: the same campaign given a `[redial]` policy, the due
//!   redials planned (every contact whose call was not answered: most of
//!   them) by `ingest`, beside an `ingest` with nothing to do; then
//!   `status`, which walks every contact for the funnel.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nxcampaign::sandbox::{Sandbox, DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET};

use super::{fresh_db, generate, measure_with, row, write_job, BINARY, EASY};

/// Connections the load comes over.
const CONNECTIONS: usize = 64;
/// How long each load runs.
const LOAD_FOR: Duration = Duration::from_secs(4);

/// The figures for a campaign of `orders` orders.
pub fn bench(
    table: &mut String,
    runtime: &tokio::runtime::Runtime,
    work: &Path,
    sandbox: &Sandbox,
    orders: usize,
) {
    let data = work.join(format!("contacts-{orders}.csv"));
    if !data.exists() {
        eprintln!("generating {orders} rows into {}", data.display());
        generate(&data, orders);
    }
    let job = write_job(work, &EASY, &data, &sandbox.base_url(), "10000.0", 1000);
    let db = fresh_db(work, &format!("calls-{orders}"));
    eprintln!("calls: sending {orders} orders");
    measure_with(&[BINARY, "--db", &db, "run", &job], &credentials());
    let sent = accepted_orders(&db);
    let sent_at = nxcampaign::clock::now_ms();

    // The webhook, loaded by 64 connections.
    let (mut receiver, url) = start_webhook(&db);
    let base = url.trim_end_matches("/nxlink/calls").to_owned();
    let healthz = runtime.block_on(load(CONNECTIONS, LOAD_FOR, {
        let base = base.clone();
        move |client: &reqwest::Client, _| client.get(format!("{base}/healthz"))
    }));
    let stored = runtime.block_on(load(CONNECTIONS, LOAD_FOR, {
        let sent = Arc::clone(&sent);
        move |client: &reqwest::Client, i: u64| {
            // Answered calls of the first tenth of the orders only: the
            // rest stay unanswered, for the redials below.
            let (order_id, phone) = &sent[i as usize % answerable(sent.len())];
            client
                .post(url.as_str())
                .header("token", TOKEN)
                .header("content-type", "application/json")
                .body(call_json(
                    &format!("hook-{i}"),
                    order_id,
                    phone,
                    sent_at + 1_000,
                    true,
                ))
        }
    }));
    let _ = Command::new("kill")
        .args(["-TERM", &receiver.id().to_string()])
        .status();
    let _ = receiver.wait();
    writeln!(
        table,
        "| {orders} | webhook: `/healthz`, {CONNECTIONS} connections | {:.0} answers/s | | | |",
        healthz.per_second()
    )
    .unwrap();
    writeln!(
        table,
        "| {orders} | webhook: calls stored, {CONNECTIONS} connections | {:.0} deliveries/s | | | {:.2} of `/healthz`'s rate; {} refused |",
        stored.per_second(),
        stored.per_second() / healthz.per_second(),
        stored.failed
    )
    .unwrap();
    eprint!("{table}");

    // `sync` of one record per order, from a stand-in that costs nothing.
    let records = Arc::new(Records::new(Arc::clone(&sent), sent_at));
    let (stand_in, stand_in_url) = runtime.block_on(serve_records(Arc::clone(&records)));
    let since = nxcampaign::clock::rfc3339(sent_at);
    let mut env = credentials();
    env.push(("NXLINK_BASE_URL".to_owned(), stand_in_url));
    // The records start a millisecond apart after the send: the sync runs
    // once the last has (its clock moved on; the stand-in checks none).
    env.push((
        nxcampaign::clock::TEST_OFFSET_VAR.to_owned(),
        (orders as i64 + 60_000).to_string(),
    ));
    let sync = measure_with(
        &[BINARY, "--db", &db, "sync", &job, "--since", &since],
        &env,
    );
    stand_in.abort();
    assert_eq!(
        records.served.load(Ordering::Relaxed),
        sent.len() as u64,
        "the sync read every record"
    );
    row(
        table,
        orders,
        "sync (cdr/page, 100 a page)",
        &sync,
        orders as f64,
        None,
    );

    let export = measure_with(
        &[BINARY, "--db", &db, "orders", "bench", "--format", "csv"],
        &[],
    );
    row(
        table,
        orders,
        "orders --format csv, every order with a call",
        &export,
        orders as f64,
        None,
    );

    // Redials: the contacts the webhook's answered calls reached are done;
    // every other one's call rang out, and is due a minute after it ended.
    let answered = (stored.done as usize).min(answerable(sent.len()));
    let redial_job = job.replace(".toml", "-redials.toml");
    std::fs::write(
        &redial_job,
        std::fs::read_to_string(&job).expect("the job")
            + "[redial]\nmax_attempts = 3\nafter = [\"1m\"]\n",
    )
    .expect("the redial job");
    let mut later = credentials();
    later.push((
        nxcampaign::clock::TEST_OFFSET_VAR.to_owned(),
        (orders as i64 + 60_000 + 30_000 + 120_000).to_string(),
    ));
    let idle = measure_with(&[BINARY, "--db", &db, "ingest", &job], &later);
    row(
        table,
        orders,
        "ingest, nothing new (the file's checkpoint checked)",
        &idle,
        orders as f64,
        None,
    );
    let planned = measure_with(&[BINARY, "--db", &db, "ingest", &redial_job], &later);
    let status = Command::new(BINARY)
        .args(["--db", &db, "status", "bench", "--json"])
        .envs(later.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("status runs");
    let status: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status prints JSON");
    assert_eq!(
        status["redials"]["redial_orders"].as_u64(),
        Some((sent.len() - answered) as u64),
        "every contact not answered got its redial: {status}"
    );
    row(
        table,
        orders,
        &format!(
            "ingest planning {} due redials (each contact's calls read; {answered} contacts answered)",
            sent.len() - answered
        ),
        &planned,
        orders as f64,
        None,
    );
    let funnel = measure_with(&[BINARY, "--db", &db, "status", "bench", "--json"], &later);
    row(
        table,
        orders,
        "status --json with the redial funnel (every contact walked)",
        &funnel,
        orders as f64,
        None,
    );
}

const TOKEN: &str = "bench-token";

/// The orders the webhook's answered calls go to: the first tenth.
fn answerable(orders: usize) -> usize {
    (orders / 10).max(1)
}

fn credentials() -> Vec<(String, String)> {
    vec![
        (
            "NXLINK_ACCESS_KEY".to_owned(),
            DEFAULT_ACCESS_KEY.to_owned(),
        ),
        (
            "NXLINK_ACCESS_SECRET".to_owned(),
            DEFAULT_ACCESS_SECRET.to_owned(),
        ),
    ]
}

/// The campaign's accepted orders: (order id, phone).
fn accepted_orders(db: &str) -> Arc<Vec<(String, String)>> {
    let out = Command::new(BINARY)
        .args([
            "--db", db, "orders", "bench", "--format", "csv", "--state", "accepted",
        ])
        .stderr(Stdio::null())
        .output()
        .expect("orders runs");
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let orders: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.expect("a row");
            (r[0].to_owned(), r[1].to_owned())
        })
        .collect();
    assert!(!orders.is_empty(), "the campaign was sent");
    Arc::new(orders)
}

/// Starts `webhook` on `db` with a token; returns it and its calls URL.
fn start_webhook(db: &str) -> (std::process::Child, String) {
    let mut child = Command::new(BINARY)
        .args([
            "--db",
            db,
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--token-env",
            "BENCH_TOKEN",
        ])
        .env("BENCH_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("webhook starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the webhook says where")
            .expect("a line");
        if let Some(rest) = line.split("receiving calls at ").nth(1) {
            break rest.split_whitespace().next().expect("a URL").to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// One call of `order_id`, as the vendor posts it: answered (a minute's
/// talk), or rung out unanswered (Q.850 cause 19).
fn call_json(call_id: &str, order_id: &str, phone: &str, start_ms: i64, answered: bool) -> String {
    let mut call = serde_json::json!({
        "callId": call_id,
        "orderId": order_id,
        "taskId": "1688363452814331904",
        "caller": phone.trim_start_matches('+').replace(' ', ""),
        "callee": "NX09445G000025@43.134.225.234:5060",
        "direction": 2,
        "answered": answered,
        "startTime": start_ms,
    });
    let rest = if answered {
        serde_json::json!({
            "answerTime": start_ms + 4_000,
            "endTime": start_ms + 64_000,
            "callDuration": 60,
            "hangupBy": 1,
            "hangupCode": "16",
            "intent": "interested",
        })
    } else {
        serde_json::json!({
            "endTime": start_ms + 30_000,
            "ringDuration": 30,
            "callDuration": 0,
            "hangupBy": 2,
            "hangupCode": "19",
            "callStatus": "NO_ANSWER",
        })
    };
    call.as_object_mut()
        .expect("an object")
        .extend(rest.as_object().expect("an object").clone());
    call.to_string()
}

/// What a load did.
struct Load {
    done: u64,
    failed: u64,
    seconds: f64,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.done as f64 / self.seconds
    }
}

/// `connections` clients sending `request(client, i)` back to back for
/// `duration`; counts the 200s and the rest.
async fn load(
    connections: usize,
    duration: Duration,
    request: impl Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Load {
    let request = Arc::new(request);
    let next = Arc::new(AtomicU64::new(0));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (request, next, done, failed) = (
            Arc::clone(&request),
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&failed),
        );
        tasks.spawn(async move {
            // A client each: one kept-alive connection each.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("a client");
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match request(&client, i).send().await {
                    Ok(reply) if reply.status().is_success() => {
                        let _ = reply.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Load {
        done: done.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// One call record per order, a millisecond apart from `from_ms` on: what
/// `cdr/page` lists, ordered by start.
struct Records {
    orders: Arc<Vec<(String, String)>>,
    from_ms: i64,
    /// Records served so far.
    served: AtomicU64,
}

impl Records {
    fn new(orders: Arc<Vec<(String, String)>>, from_ms: i64) -> Records {
        Records {
            orders,
            from_ms,
            served: AtomicU64::new(0),
        }
    }

    /// The records that started in `[start_s, end_s)`, page `page` of
    /// `size`.
    fn page(&self, start_s: i64, end_s: i64, page: usize, size: usize) -> Vec<String> {
        let index = |ms: i64| (ms - self.from_ms).clamp(0, self.orders.len() as i64) as usize;
        let (first, end) = (index(start_s * 1000), index(end_s * 1000));
        let from = (first + (page - 1) * size).min(end);
        let to = (from + size).min(end);
        self.served.fetch_add((to - from) as u64, Ordering::Relaxed);
        (from..to)
            .map(|i| {
                let (order_id, phone) = &self.orders[i];
                call_json(
                    &format!("sync-{i}"),
                    order_id,
                    phone,
                    self.from_ms + i as i64,
                    false,
                )
            })
            .collect()
    }
}

/// Serves `cdr/page` from `records` on 127.0.0.1 (signatures unchecked:
/// the client is what is measured).
async fn serve_records(records: Arc<Records>) -> (tokio::task::JoinHandle<()>, String) {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/saas/cc/openapi/cdr/page",
        post(move |body: axum::body::Bytes| {
            let records = Arc::clone(&records);
            async move {
                let query: serde_json::Value = serde_json::from_slice(&body).expect("a query");
                let number = |key: &str| query[key].as_i64().expect("a number");
                let page = records.page(
                    number("startTime"),
                    number("endTime"),
                    number("page") as usize,
                    number("size") as usize,
                );
                format!(
                    "{{\"reqId\":\"stand-in\",\"code\":0,\"msg\":\"success\",\"data\":[{}]}}",
                    page.join(",")
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (server, url)
}
