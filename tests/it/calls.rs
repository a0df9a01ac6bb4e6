//! Call outcomes: the webhook receiver (token, repeats, bursts, malformed
//! bodies, calls of unknown orders), and the sandbox's calls reaching the
//! ledger through it, on the suite's backend.

use std::time::Duration;

use nxcampaign::sandbox::{CallSim, Faults};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_checks_its_token_stores_each_call_once_and_refuses_bad_bodies() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(200));
    assert_success(&campaign.run().await);
    let made = sandbox.calls();
    assert!(made.len() >= 200, "{}", made.len());
    let hook = start_webhook(&campaign, Some("s3cret")).await;

    // Without the token, or with another: 401, nothing kept.
    let one = made[0].to_string();
    assert_eq!(post(&hook.url, None, one.clone()).await.0, 401);
    assert_eq!(post(&hook.url, Some("s3cre"), one.clone()).await.0, 401);
    // Malformed: 400 with the reason, nothing kept.
    let (status, why) = post(&hook.url, Some("s3cret"), "{\"callId\": ").await;
    assert_eq!(status, 400);
    assert!(why.contains("not JSON"), "{why}");
    let (status, why) = post(&hook.url, Some("s3cret"), "{\"orderId\": \"x\"}").await;
    assert_eq!((status, why.contains("callId")), (400, true), "{why}");
    let big = format!(
        "{{\"callId\":\"big\",\"other\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    assert_eq!(post(&hook.url, Some("s3cret"), big).await.0, 413);
    assert_eq!(calls_of(&campaign.status().await)["records"], 0);

    // Every call, each delivered twice (the second a later version): one
    // row per call.
    for call in &made {
        assert_eq!(
            post(&hook.url, Some("s3cret"), call.to_string()).await.0,
            200
        );
    }
    for call in &made {
        let mut later = call.clone();
        later["hangupReason"] = json!("delivered again");
        assert_eq!(
            post(&hook.url, Some("s3cret"), later.to_string()).await.0,
            200
        );
    }
    // A call of an order the ledger does not know is kept.
    // (Its odd text too: a NUL, which PostgreSQL's text cannot hold.)
    let stranger = json!({"callId": "stranger-1", "orderId": "nobody-knows", "answered": true, "callDuration": 5, "hangupReason": "odd\u{0}text"});
    assert_eq!(
        post(&hook.url, Some("s3cret"), stranger.to_string())
            .await
            .0,
        200
    );

    let status = campaign.status().await;
    let calls = calls_of(&status);
    assert_eq!(calls["records"], made.len() as u64 + 1, "{status}");
    assert_eq!(calls["unknown_order_records"], 1, "{status}");
    assert_eq!(calls["orders_called"], 200, "{status}");
    assert_eq!(calls["answered"], sandbox.orders_answered(), "{status}");
    let talk: u64 = made
        .iter()
        .filter(|c| c["answered"] == true)
        .map(|c| c["callDuration"].as_u64().unwrap())
        .sum();
    assert_eq!(calls["talk_seconds"], talk, "{status}");
    let healthz = reqwest::get(format!("{}/healthz", hook.base))
        .await
        .unwrap();
    assert_eq!(healthz.status().as_u16(), 200);

    // SIGTERM stops it promptly, kept-alive connections and all.
    let client = reqwest::Client::new();
    let kept = client
        .get(format!("{}/healthz", hook.base))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status().as_u16(), 200);
    let stopping = std::time::Instant::now();
    sigterm(&hook.child);
    let status = tokio::time::timeout(Duration::from_secs(10), hook.child.wait_with_output())
        .await
        .expect("the webhook stops within seconds")
        .unwrap();
    assert_eq!(exit_code(&status), 0);
    assert!(stopping.elapsed() < Duration::from_secs(5));
    drop(client);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_500_concurrent_deliveries_is_stored_whole() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(500));
    assert_success(&campaign.run().await);
    let hook = start_webhook(&campaign, None).await;
    let made: Vec<Value> = sandbox.calls().into_iter().take(500).collect();
    assert_eq!(made.len(), 500);
    let answers = post_at_once(
        made.iter()
            .map(|call| (hook.url.clone(), call.to_string()))
            .collect(),
    )
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["records"], 500, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandboxs_calls_reach_status_through_the_webhook() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    let hook = start_webhook(&campaign, Some("t0ken")).await;
    sandbox.set_calls(CallSim {
        webhook_url: Some(hook.url.clone()),
        webhook_token: Some("t0ken".into()),
        webhook_retry_ms: 50,
        seed: 7,
        ..CallSim::default()
    });
    assert_success(&campaign.run().await);
    let made = sandbox.calls().len() as u64;
    wait_until(Duration::from_secs(30), "every call is delivered", || {
        sandbox.stats().webhook_delivered == made
    })
    .await;
    let status = campaign.status().await;
    let calls = calls_of(&status);
    assert_eq!(calls["records"], made, "{status}");
    assert_eq!(calls["orders_called"], 300, "{status}");
    assert_eq!(calls["answered"], sandbox.orders_answered(), "{status}");
    assert!(sandbox.orders_answered() > 0);
    assert_eq!(sandbox.stats().webhook_refused, 0);
    // The text status shows the same.
    let text = nxcampaign(&campaign.db())
        .arg("status")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("answered"), "{text}");
    assert!(text.contains("intents of"), "{text}");

    // `orders`: the last call's columns, and the filter by calls.
    let orders = |filter: &'static str| {
        let campaign = &campaign;
        async move {
            let out = nxcampaign(&campaign.db())
                .args([
                    "orders",
                    &campaign.name,
                    "--format",
                    "csv",
                    "--call",
                    filter,
                ])
                .output()
                .await
                .unwrap();
            assert_success(&out);
            let mut reader = csv::Reader::from_reader(&out.stdout[..]);
            let header: Vec<String> = reader
                .headers()
                .unwrap()
                .iter()
                .map(str::to_owned)
                .collect();
            let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            (header, rows)
        }
    };
    let (header, answered) = orders("answered").await;
    assert_eq!(
        header[7..],
        [
            "answered",
            "talk_seconds",
            "hangup_reason",
            "intent",
            "req_id",
            "attempt",
            "first_order_id"
        ]
    );
    assert_eq!(answered.len() as u64, sandbox.orders_answered());
    for row in &answered {
        // The last call of an answered order is the answered one (the
        // sandbox redials only unanswered orders).
        assert_eq!(&row[7], "true", "{row:?}");
        assert!(row[8].parse::<u64>().unwrap() > 0, "{row:?}");
        assert!(!row[10].is_empty(), "{row:?}");
    }
    let (_, unanswered) = orders("unanswered").await;
    assert_eq!(answered.len() + unanswered.len(), 300);
    assert!(unanswered.iter().all(|row| &row[7] == "false"
        && [
            "no answer",
            "user busy",
            "call rejected",
            "no circuit available"
        ]
        .contains(&&row[9])));
    let (_, none) = orders("none").await;
    assert!(none.is_empty());

    // `report` shows them too, as text and in its HTML page.
    let page = campaign.job_path().with_extension("html");
    let report = nxcampaign(&campaign.db())
        .args(["report", &campaign.name, "--html"])
        .arg(&page)
        .output()
        .await
        .unwrap();
    assert_success(&report);
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    let answered_line = format!("{:<24} {:>10}", "orders answered", answered.len());
    assert!(text.contains("call outcomes"), "{text}");
    assert!(text.contains(&answered_line), "{answered_line:?} in {text}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<section id=\"calls\"><h2>Call outcomes</h2>"),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<td>orders answered</td><td>{}</td>",
            answered.len()
        )),
        "{html}"
    );
}

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

#[tokio::test(flavor = "multi_thread")]
async fn sync_pages_through_two_days_of_records_and_repeats_harmlessly() {
    let sandbox = start_sandbox(Faults::default()).await;
    // Sent three days ago; the calls spread over the two days after.
    sandbox.set_calls(CallSim {
        spread_ms: 2 * DAY_MS as u64,
        seed: 11,
        ..CallSim::default()
    });
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(250));
    assert_success(&campaign.at(&sandbox, -3 * DAY_MS, "run", &[]).await);
    let made = sandbox.calls().len() as u64;
    assert!(made > 250, "{made}");
    let four_days_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(96)).to_string();

    // A start before the campaign's first request can find none of its
    // calls: it begins an hour before that request instead.
    let first = campaign
        .with_credentials("sync", &["--since", &four_days_ago])
        .await;
    assert_success(&first);
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(said.contains(&format!("sync: {made} record(s)")), "{said}");
    assert!(
        said.contains(&format!("{made} new, 0 again, 0 of orders")),
        "{said}"
    );
    assert!(
        stderr(&first).contains("an hour before the campaign's first request"),
        "{}",
        stderr(&first)
    );
    // Three full days and an hour: four windows of at most a day (the
    // sandbox refuses longer ones), and several pages.
    assert!(said.contains("(4 window(s)"), "{said}");
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["records"], made, "{status}");
    assert_eq!(calls_of(&status)["orders_called"], 250, "{status}");
    assert_eq!(
        calls_of(&status)["answered"],
        sandbox.orders_answered(),
        "{status}"
    );

    // Again: the same records, one row each.
    let again = campaign.with_credentials("sync", &[]).await;
    assert_success(&again);
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(said.contains("0 new"), "{said}");
    assert_eq!(calls_of(&campaign.status().await)["records"], made);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_ends_with_the_call_outcomes_its_webhook_received() {
    let dir = tempfile::tempdir().unwrap();
    let demo = nxcampaign(&dir.path().join("unused.db"))
        .env_remove("NXCAMPAIGN_DB")
        .env("TMPDIR", dir.path())
        .current_dir(dir.path())
        .arg("demo")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&demo.stdout).into_owned();
    assert_eq!(exit_code(&demo), 0, "{said}{}", stderr(&demo));
    // Every call the sandbox made up reached the ledger through the webhook...
    let received = said
        .lines()
        .find_map(|l| l.strip_prefix("webhook: "))
        .unwrap_or_else(|| panic!("no webhook line in {said}"));
    let numbers: Vec<&str> = received.split_whitespace().collect();
    assert_eq!(numbers[0], numbers[2], "{received}");
    // ...and the ledger counts the answered orders the sandbox simulated.
    let answered = said
        .lines()
        .find(|l| l.starts_with("sandbox: ") && l.contains("answered"))
        .unwrap_or_else(|| panic!("no answered line in {said}"));
    let figures: Vec<u64> = answered
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(figures.len(), 2, "{answered}");
    assert_eq!(figures[0], figures[1], "{answered}");
    assert!(figures[0] > 1000, "{answered}");
    assert!(
        said.contains("intents of example's answered calls"),
        "{said}"
    );
    assert!(
        said.contains("reconcile (from the calls in the ledger):"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_client_is_timed_out() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    let hook = start_webhook_with(
        &campaign,
        None,
        &["--listen", "127.0.0.1:0", "--request-timeout", "1s"],
    )
    .await;
    let addr = hook.base.trim_start_matches("http://").to_owned();
    // Headers sent, the body promised and never finished: 408.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /nxlink/calls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"callId\"")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Headers never finished: the connection is closed.
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(b"POST /nxlink/calls HTTP/1.1\r\nHost:")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stays open");
    // The receiver still takes calls.
    let (status, _) = post(&hook.url, None, json!({"callId": "after"}).to_string()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_receivers_on_one_ledger_store_each_call_once() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(200));
    assert_success(&campaign.run().await);
    let (one, two) = (
        start_webhook(&campaign, None).await,
        start_webhook(&campaign, None).await,
    );
    let made = sandbox.calls();
    // Every call to both at once, as a vendor retrying through a load
    // balancer would deliver it.
    let answers = post_at_once(
        made.iter()
            .flat_map(|call| [one.url.clone(), two.url.clone()].map(|url| (url, call.to_string())))
            .collect(),
    )
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["records"], made.len() as u64, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_delivers_a_call_again_until_the_webhook_takes_it() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    sandbox.set_calls(CallSim {
        webhook_url: Some(format!("http://127.0.0.1:{port}/nxlink/calls")),
        webhook_retry_ms: 50,
        ..CallSim::default()
    });
    assert_success(&campaign.run().await);
    let made = sandbox.calls().len() as u64;
    wait_until(Duration::from_secs(20), "deliveries are refused", || {
        sandbox.stats().webhook_refused >= made
    })
    .await;
    let _hook =
        start_webhook_with(&campaign, None, &["--listen", &format!("127.0.0.1:{port}")]).await;
    wait_until(Duration::from_secs(30), "every call is delivered", || {
        sandbox.stats().webhook_delivered == made
    })
    .await;
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["records"], made, "{status}");
    assert_eq!(sandbox.stats().webhook_given_up, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_statement_a_call_or_a_reconcile_makes_is_an_index_lookup() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    assert_success(&campaign.run().await);
    let hook = start_webhook(&campaign, None).await;
    for call in sandbox.calls().iter().take(50) {
        assert_eq!(post(&hook.url, None, call.to_string()).await.0, 200);
    }
    let location = nxcampaign::ledger::LedgerLocation::parse(
        &campaign.db().to_string_lossy(),
        std::path::Path::new(""),
    );
    let ledger = nxcampaign::ledger::Ledger::open(&location).await.unwrap();
    let plans = ledger.explain_hot_statements().await.unwrap();
    assert!(plans.len() >= 8, "{plans:?}");
    for (sql, plan) in &plans {
        for line in plan.lines() {
            // SQLite: `SCAN <table or alias>` reads a whole table; only
            // the few campaigns and a list of values may be.
            let sqlite_scan = line.trim_start().starts_with("SCAN ")
                && ![
                    "SCAN c",
                    "SCAN campaigns",
                    "SCAN j VIRTUAL TABLE",
                    "SCAN json_each",
                ]
                .iter()
                .any(|allowed| line.trim_start().starts_with(allowed));
            // PostgreSQL (sequential scans off): one left means no index
            // can serve the statement.
            let postgres_scan = line.contains("Seq Scan")
                && ["orders", "calls", "order_keys", "attempts", "batches"]
                    .iter()
                    .any(|table| line.contains(&format!("Seq Scan on {table}")));
            assert!(!sqlite_scan && !postgres_scan, "{sql}\n{plan}");
        }
    }
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_report_delivered_later_leaves_the_call_answered() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    assert_success(&campaign.run().await);
    let answered = sandbox
        .calls()
        .into_iter()
        .find(|call| call["answered"] == true)
        .expect("an answered call");
    // The same call as the vendor saw it while it rang: before it was
    // answered, without its intent, duration or recording.
    let mut ringing = answered.clone();
    ringing["answered"] = json!(false);
    ringing["answerTime"] = Value::Null;
    ringing["callDuration"] = json!(0);
    ringing["intent"] = Value::Null;
    ringing["recordUrl"] = Value::Null;
    ringing["endTime"] = answered["startTime"].clone();
    let hook = start_webhook(&campaign, None).await;
    assert_eq!(post(&hook.url, None, answered.to_string()).await.0, 200);
    assert_eq!(post(&hook.url, None, ringing.to_string()).await.0, 200);
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["answered"], 1, "{status}");
    assert_eq!(
        calls_of(&status)["talk_seconds"],
        answered["callDuration"],
        "{status}"
    );
    let rows = campaign.orders_csv().await;
    let row = rows
        .iter()
        .find(|row| row[0] == answered["orderId"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (row[7].as_str(), row[10].as_str()),
        ("true", answered["intent"].as_str().unwrap()),
        "{row:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_vendors_push_example_counts_as_answered_everywhere() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    assert_success(&campaign.run().await);
    let order_id = campaign.order_states().await.into_keys().next().unwrap();
    // The vendor's own example, word for word: no `answered` key, though
    // the call was answered. Its order id is one of ours, and its times
    // are moved to now (a call older than its order is not its call).
    let mut example: Value = serde_json::from_str(
        r#"{"agentName":"fang.cheng@nxcloud.com","answerTime":1691372192000,"callDuration":7,"callId":"b1920376-5e15-4f22-9996-6233f297685e","callee":"NX09445G000025@43.134.225.234:5060","caller":"85235757581","direction":2,"endTime":1691372213000,"intent":"转人工-成功","orderId":"ORDER_ID","other":"OTHER","startTime":1691372191000,"taskId":"1688363452814331904"}"#,
    )
    .unwrap();
    let shift = nxcampaign::clock::now_ms() + 5_000 - 1_691_372_191_000;
    for key in ["startTime", "answerTime", "endTime"] {
        example[key] = json!(example[key].as_i64().unwrap() + shift);
    }
    example["orderId"] = json!(order_id);
    assert!(example.get("answered").is_none());
    let hook = start_webhook(&campaign, None).await;
    assert_eq!(post(&hook.url, None, example.to_string()).await.0, 200);

    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["answered"], 1, "{status}");
    let text = nxcampaign(&campaign.db())
        .args(["status", &campaign.name])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("100.0%"), "{text}");
    let answered = nxcampaign(&campaign.db())
        .args([
            "orders",
            &campaign.name,
            "--call",
            "answered",
            "--format",
            "csv",
        ])
        .output()
        .await
        .unwrap();
    let answered = String::from_utf8_lossy(&answered.stdout).into_owned();
    assert_eq!(answered.lines().count(), 2, "{answered}");
    assert!(answered.contains(&order_id), "{answered}");
    let report = nxcampaign(&campaign.db())
        .args(["report", &campaign.name])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(report.contains("转人工-成功"), "{report}");
    assert!(
        report
            .lines()
            .any(|line| line.contains("orders answered") && line.trim_end().ends_with('1')),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_refuses_to_start_open() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(10));
    assert_success(
        &nxcampaign(&campaign.db())
            .arg("migrate")
            .output()
            .await
            .unwrap(),
    );
    let webhook = |env: &[(&str, &str)], flags: &[&str]| {
        let mut command = nxcampaign(&campaign.db());
        command
            .env_remove("NXCAMPAIGN_WEBHOOK_TOKEN")
            .envs(env.iter().copied())
            .args(["webhook", "--listen", "127.0.0.1:0"])
            .args(flags);
        command
    };
    // A token variable set but empty, named or by default; none at all.
    for (env, flags) in [
        (&[("HOOK", "")][..], &["--token-env", "HOOK"][..]),
        (&[("NXCAMPAIGN_WEBHOOK_TOKEN", "  ")][..], &[][..]),
        (&[][..], &[][..]),
    ] {
        let output = tokio::time::timeout(Duration::from_secs(20), webhook(env, flags).output())
            .await
            .expect("it stops at once")
            .unwrap();
        assert_exit_saying(&output, 2, "--no-token");
    }
    // --no-token is the way to run without one, and it says so.
    let mut open = webhook(&[], &["--no-token"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It handles signals before it says where it listens.
    let mut lines = tokio::io::BufReader::new(open.stderr.take().unwrap()).lines();
    let mut said = read_until(&mut lines, "receiving calls at ").await;
    sigterm(&open);
    while let Some(line) = lines.next_line().await.unwrap() {
        said.push_str(&line);
        said.push('\n');
    }
    let status = open.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{said}");
    assert!(
        said.contains("--no-token: calls are taken from anyone"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_numbers_and_giant_call_ids_are_refused_and_reports_survive_old_ones() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    assert_success(&campaign.run().await);
    let hook = start_webhook(&campaign, None).await;
    let mut call = sandbox.calls()[0].clone();
    call["callDuration"] = json!("1e19");
    let (status, why) = post(&hook.url, None, call.to_string()).await;
    assert_eq!(status, 400, "{why}");
    assert!(why.contains("callDuration"), "{why}");
    for (key, value) in [
        ("startTime", json!(-5)),
        ("endTime", json!(9_999_999_999_999_i64)),
        ("ringTime", json!(1e12)),
        ("totalCustomerPrice", json!("inf")),
    ] {
        let mut bad = sandbox.calls()[0].clone();
        bad[key] = value;
        let (status, why) = post(&hook.url, None, bad.to_string()).await;
        assert_eq!(status, 400, "{key}: {why}");
    }
    let mut giant = sandbox.calls()[0].clone();
    giant["callId"] = json!("c".repeat(8 * 1024));
    let (status, why) = post(&hook.url, None, giant.to_string()).await;
    assert_eq!(status, 400, "{why}");
    assert!(why.contains("callId"), "{why}");
    assert_eq!(calls_of(&campaign.status().await)["records"], 0);

    // A ledger an older version filled with such a call still reports.
    let good = sandbox.calls()[0].clone();
    assert_eq!(post(&hook.url, None, good.to_string()).await.0, 200);
    let absurd = "UPDATE calls SET call_seconds = 9223372036854775807, answered = TRUE";
    if campaign.on_sqlite() {
        let db = rusqlite::Connection::open(campaign.db()).unwrap();
        db.execute(absurd, []).unwrap();
    } else {
        let url = campaign.db().to_string_lossy().into_owned();
        Schema::on_server(&url, absurd.to_owned());
    }
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["records"], 1, "{status}");
    for args in [
        vec!["status", campaign.name.as_str()],
        vec!["report", campaign.name.as_str()],
    ] {
        let output = nxcampaign(&campaign.db())
            .args(&args)
            .output()
            .await
            .unwrap();
        assert_success(&output);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_big_delivery_leaves_the_ledger_to_other_writers_in_milliseconds() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(2_000));
    assert_success(&campaign.run().await);
    let hook = start_webhook(&campaign, None).await;
    let calls: Vec<Value> = sandbox.calls().into_iter().take(1_600).collect();
    let body = serde_json::to_string(&calls).unwrap();
    assert!(body.len() < 1 << 20, "{}", body.len());
    let delivering = tokio::spawn({
        let url = hook.url.clone();
        async move { post(&url, None, body).await }
    });
    // Another writer meanwhile: a number onto the do-not-call list.
    let started = std::time::Instant::now();
    let added = nxcampaign(&campaign.db())
        .args(["suppress", "add", &format!("+852{}", hk_number(80_000))])
        .output()
        .await
        .unwrap();
    assert_success(&added);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let (status, why) = delivering.await.unwrap();
    assert_eq!(status, 200, "{why}");
    assert_eq!(
        calls_of(&campaign.status().await)["records"],
        calls.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_file_descriptors_the_webhook_neither_spins_nor_floods_its_log() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new_on_sqlite(&sandbox);
    campaign.write_contacts(Mix::valid(10));
    assert_success(
        &nxcampaign(&campaign.db())
            .arg("migrate")
            .output()
            .await
            .unwrap(),
    );
    // 48 descriptors in all: a few dozen connections exhaust them.
    let mut child = nxcampaign(&campaign.db())
        .arg("-v")
        .args(["webhook", "--listen", "127.0.0.1:0", "--no-token"])
        .stderr(std::process::Stdio::piped())
        .spawn_with_descriptors(48);
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let said = read_until(&mut lines, "receiving calls at ").await;
    let base = said
        .split("receiving calls at ")
        .nth(1)
        .and_then(|rest| rest.split("/nxlink").next())
        .unwrap()
        .to_owned();
    let said = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = std::sync::Arc::clone(&said);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            counting.fetch_add(line.len() as u64 + 1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let addr = base.trim_start_matches("http://").to_owned();
    // More than it can take, fewer than its listen queue holds (so no
    // connection waits for a SYN to be sent again).
    let mut held = Vec::new();
    for _ in 0..100 {
        if let Ok(stream) = tokio::net::TcpStream::connect(&addr).await {
            held.push(stream);
        }
    }
    let pid = child.id().unwrap();
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let (cpu_before, said_before) = (cpu(), said.load(std::sync::atomic::Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ticks = cpu() - cpu_before;
    let logged = said.load(std::sync::atomic::Ordering::Relaxed) - said_before;
    // Two seconds are 200 clock ticks: a spinning loop takes them all.
    assert!(ticks < 40, "{ticks} ticks of CPU in 2 s");
    assert!(logged < 4_096, "{logged} bytes logged in 2 s");
    // Descriptors back: it serves again.
    drop(held);
    let mut served = false;
    for _ in 0..50 {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served);
    let _ = child.start_kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_that_starts_late_never_marks_the_records_before_it_as_read() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(CallSim {
        spread_ms: 2 * DAY_MS as u64,
        seed: 5,
        ..CallSim::default()
    });
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    assert_success(&campaign.at(&sandbox, -3 * DAY_MS, "run", &[]).await);
    let made = sandbox.calls().len() as u64;
    // Only the last day first...
    let yesterday = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24)).to_string();
    let late = campaign
        .with_credentials("sync", &["--since", &yesterday])
        .await;
    assert_success(&late);
    let read = calls_of(&campaign.status().await)["records"]
        .as_u64()
        .unwrap();
    assert!(read < made, "{read} of {made}");
    // ...then the usual sync still reads the days before it.
    let usual = campaign.with_credentials("sync", &[]).await;
    assert_success(&usual);
    assert_eq!(calls_of(&campaign.status().await)["records"], made);
}
