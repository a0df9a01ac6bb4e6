//! Call outcomes: the webhook receiver (token, repeats, bursts, malformed
//! bodies, calls of unknown orders), and the sandbox's calls reaching the
//! ledger through it, on the suite's backend.

use std::process::Stdio;
use std::time::Duration;

use nxcampaign::sandbox::{CallSim, Faults};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::Child;

use crate::support::*;

/// A running `nxcampaign webhook` and the URL it receives calls at.
struct Webhook {
    _child: Child,
    url: String,
    base: String,
}

/// Starts `nxcampaign webhook` on the campaign's ledger (made first if
/// need be), with `token` in its environment when given.
async fn start_webhook(campaign: &Campaign, token: Option<&str>) -> Webhook {
    let migrate = nxcampaign(&campaign.db())
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert_success(&migrate);
    let mut command = nxcampaign(&campaign.db());
    command
        .args(["webhook", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = token {
        command
            .env("HOOK_TOKEN", token)
            .args(["--token-env", "HOOK_TOKEN"]);
    }
    let mut child = command.spawn().expect("webhook starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the webhook says where it listens")
            .unwrap()
            .expect("the webhook runs");
        if let Some(rest) = line.split("receiving calls at ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep reading its stderr, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = url.trim_end_matches("/nxlink/calls").to_owned();
    Webhook {
        _child: child,
        url,
        base,
    }
}

async fn post(url: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.header("token", token);
    }
    let reply = request.send().await.expect("the webhook answers");
    (
        reply.status().as_u16(),
        reply.text().await.unwrap_or_default(),
    )
}

fn calls_of(status: &Value) -> &Value {
    &status["calls"]
}

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
    let stranger = json!({"callId": "stranger-1", "orderId": "nobody-knows", "answered": true, "callDuration": 5});
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
    assert_eq!(
        calls["answered"],
        sandbox.stats().orders_answered,
        "{status}"
    );
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
    let client = reqwest::Client::new();
    let posts = made.into_iter().map(|call| {
        let client = client.clone();
        let url = hook.url.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(call.to_string())
                .send()
                .await
                .map(|reply| reply.status().as_u16())
        })
    });
    let answers: Vec<u16> = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().expect("answered"))
        .collect();
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
    assert_eq!(
        calls["answered"],
        sandbox.stats().orders_answered,
        "{status}"
    );
    assert!(sandbox.stats().orders_answered > 0);
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
        ["answered", "talk_seconds", "hangup_reason", "intent"]
    );
    assert_eq!(answered.len() as u64, sandbox.stats().orders_answered);
    for row in &answered {
        // The last call of an answered order is the answered one (the
        // sandbox redials only unanswered orders).
        assert_eq!(&row[7], "true", "{row:?}");
        assert!(row[8].parse::<u64>().unwrap() > 0, "{row:?}");
        assert!(!row[10].is_empty(), "{row:?}");
    }
    let (_, unanswered) = orders("unanswered").await;
    assert_eq!(answered.len() + unanswered.len(), 300);
    assert!(unanswered
        .iter()
        .all(|row| &row[7] == "false" && &row[9] == "no answer"));
    let (_, none) = orders("none").await;
    assert!(none.is_empty());
}
