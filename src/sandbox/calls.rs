//! The sandbox's calls: for every order of an accepted task it makes up
//! what the vendor's dialer would report (answered or not, durations,
//! hang-up, intent; sometimes a redial), seeded by the order id so that
//! the same order always gets the same calls. It posts each call to a
//! configured webhook (with a `token` header, again on any non-200 answer,
//! as the vendor does), and serves the same calls through `cdr/page` and
//! `cdr/queryByOrderId`.

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::wire::CreateAndCall;

/// How the sandbox makes up and delivers calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallSim {
    /// Share of calls answered (0.0–1.0).
    pub answered_share: f64,
    /// Share of unanswered orders dialled a second time (the vendor's own
    /// redial, under the task's dial strategy).
    pub redial_share: f64,
    /// Shares of unanswered calls that were busy, rejected or failed (the
    /// rest rang out unanswered), each with its hang-up code.
    pub busy_share: f64,
    pub rejected_share: f64,
    pub failed_share: f64,
    /// Every call of a task starts at least this long after the task was
    /// accepted (a vendor queue, a task started late); 0: 1 to 30 s after.
    pub delay_ms: u64,
    /// And up to this much later still (spread evenly), for call records
    /// that span days.
    pub spread_ms: u64,
    /// Where to post each call (the receiver's `/nxlink/calls` URL).
    pub webhook_url: Option<String>,
    /// The `token` header of each post.
    pub webhook_token: Option<String>,
    /// Wait between deliveries of a call that was not answered 200.
    pub webhook_retry_ms: u64,
    /// Deliveries of one call before giving up (the vendor: about an hour
    /// of one a minute).
    pub webhook_attempts: u32,
    /// Seed of the outcomes.
    pub seed: u64,
}

impl Default for CallSim {
    fn default() -> Self {
        CallSim {
            answered_share: 0.6,
            redial_share: 0.3,
            busy_share: 0.15,
            rejected_share: 0.05,
            failed_share: 0.05,
            delay_ms: 0,
            spread_ms: 0,
            webhook_url: None,
            webhook_token: None,
            webhook_retry_ms: 60_000,
            webhook_attempts: 60,
            seed: 0,
        }
    }
}

/// What the AI heard, by how often.
const INTENTS: &[(&str, u32)] = &[
    ("interested", 30),
    ("not interested", 35),
    ("call back later", 20),
    ("wrong number", 10),
    ("do not call", 5),
];

/// The calls an order of `task` gets, accepted at `accepted_ms`; each
/// call's number is `next_call` onwards.
pub(super) fn calls_for(
    sim: &CallSim,
    task: &CreateAndCall,
    task_id: u64,
    accepted_ms: i64,
) -> Vec<Value> {
    let mut calls = Vec::new();
    for item in &task.call_list {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sim.seed.hash(&mut hasher);
        item.order_id.hash(&mut hasher);
        let mut dice = StdRng::seed_from_u64(hasher.finish());
        let offset = sim.delay_ms as i64
            + dice.gen_range(1_000..30_000)
            + (dice.gen::<f64>() * sim.spread_ms as f64) as i64;
        let mut start = accepted_ms + offset;
        for dial in 0..2 {
            let answered = dice.gen::<f64>() < sim.answered_share;
            let ring_ms: i64 = dice.gen_range(2_000..20_000);
            let talk: i64 = if answered { dice.gen_range(8..240) } else { 0 };
            let answer_ms = start + ring_ms;
            let end_ms = answer_ms + talk * 1000;
            let mut pick = dice.gen_range(0..INTENTS.iter().map(|(_, w)| w).sum::<u32>());
            let intent = INTENTS
                .iter()
                .find(|(_, weight)| {
                    let here = pick < *weight;
                    pick = pick.saturating_sub(*weight);
                    here
                })
                .map_or("interested", |(intent, _)| intent);
            let user_hung_up = dice.gen_bool(0.5);
            // How an unanswered call ended, on dice of its own (the
            // others' draws stay as they were).
            let (code, status, reason) = if answered {
                (
                    "16",
                    "ANSWERED",
                    if user_hung_up {
                        "user hung up"
                    } else {
                        "agent hung up"
                    },
                )
            } else {
                unanswered_outcome(sim, &item.order_id, dial)
            };
            calls.push(json!({
                "callId": format!("sbx-{task_id}-{}-{dial}", item.order_id),
                "orderId": item.order_id,
                "other": item.other,
                "taskId": task_id,
                "caller": item.user_phone,
                "callee": format!("sip:{}@ai.sandbox", task.agent_group_no),
                "direction": 2,
                "answered": answered,
                "startTime": start,
                "answerTime": if answered { Value::from(answer_ms) } else { Value::Null },
                "endTime": if answered { end_ms } else { answer_ms },
                "ringTime": ring_ms,
                "ringDuration": ring_ms / 1000,
                "callDuration": talk,
                "hangupBy": if !answered { 2 } else if user_hung_up { 1 } else { 0 },
                "hangupCode": code,
                "hangupReason": reason,
                "callStatus": status,
                "intent": if answered { Value::from(intent) } else { Value::Null },
                "recordUrl": if answered { Value::from(format!("https://records.sandbox.invalid/{}.mp3", item.order_id)) } else { Value::Null },
                "totalCustomerPrice": format!("{:.4}", 0.002 * (talk as f64 / 60.0).ceil().max(1.0)),
            }));
            if answered || dial == 1 || dice.gen::<f64>() >= sim.redial_share {
                break;
            }
            start = end_ms + 60_000;
        }
    }
    calls
}

/// How an unanswered call of `order_id` (its dial number `dial`) ended:
/// its hang-up code (Q.850), status and reason.
fn unanswered_outcome(
    sim: &CallSim,
    order_id: &str,
    dial: u32,
) -> (&'static str, &'static str, &'static str) {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (sim.seed, order_id, dial, "outcome").hash(&mut hasher);
    let draw = StdRng::seed_from_u64(hasher.finish()).gen::<f64>();
    if draw < sim.busy_share {
        ("17", "BUSY", "user busy")
    } else if draw < sim.busy_share + sim.rejected_share {
        ("21", "REJECTED", "call rejected")
    } else if draw < sim.busy_share + sim.rejected_share + sim.failed_share {
        ("34", "FAILED", "no circuit available")
    } else {
        ("19", "NO_ANSWER", "no answer")
    }
}

/// Whether `call` has ended by `now_ms`: the vendor reports a call once
/// it is over.
pub(super) fn has_ended(call: &Value, now_ms: i64) -> bool {
    call["endTime"].as_i64().unwrap_or(0) <= now_ms
}

/// `count` calls of other campaigns of the account (other tools, other
/// ledgers): order ids this ledger never made, numbers of their own or
/// `numbers` (the same people, called by someone else), starting evenly
/// from `from_ms` to `to_ms`.
pub(super) fn foreign_calls(
    count: usize,
    from_ms: i64,
    to_ms: i64,
    numbers: &[String],
    seed: u64,
) -> Vec<Value> {
    let mut dice = StdRng::seed_from_u64(seed);
    let span = (to_ms - from_ms).max(1);
    (0..count)
        .map(|i| {
            let start = from_ms + span * i as i64 / count.max(1) as i64;
            let number = match numbers.get(i % numbers.len().max(1)) {
                Some(number) => number.clone(),
                None => format!("8529{:07}", dice.gen_range(0..10_000_000)),
            };
            let answered = dice.gen_bool(0.5);
            let talk: i64 = if answered { dice.gen_range(5..120) } else { 0 };
            json!({
                "callId": format!("foreign-{seed}-{i}"),
                "orderId": format!("{:032X}", dice.gen::<u128>()),
                "other": "another campaign's contact",
                "taskId": 900_000 + i as u64 / 100,
                "caller": number,
                "callee": "sip:NX00000000000000@ai.sandbox",
                "direction": 2,
                "answered": answered,
                "startTime": start,
                "answerTime": if answered { Value::from(start + 3_000) } else { Value::Null },
                "endTime": start + 3_000 + talk * 1000,
                "callDuration": talk,
                "hangupCode": if answered { "16" } else { "19" },
                "intent": if answered { Value::from("someone else's business") } else { Value::Null },
            })
        })
        .collect()
}

/// How the deliveries went.
#[derive(Debug, Default)]
pub(super) struct Delivered {
    /// Calls answered 200.
    pub delivered: std::sync::atomic::AtomicU64,
    /// Posts answered otherwise, or not at all.
    pub refused: std::sync::atomic::AtomicU64,
    /// Calls given up on.
    pub given_up: std::sync::atomic::AtomicU64,
}

/// Posts each call it is handed to its webhook, 16 at a time, each again
/// after `webhook_retry_ms` until it is answered 200.
pub(super) async fn deliver(
    mut queue: tokio::sync::mpsc::UnboundedReceiver<(CallSim, Value)>,
    counts: Arc<Delivered>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    let mut posting = tokio::task::JoinSet::new();
    while let Some((sim, call)) = queue.recv().await {
        let Some(url) = sim.webhook_url.clone() else {
            continue;
        };
        let (client, counts, slots) = (client.clone(), Arc::clone(&counts), Arc::clone(&slots));
        posting.spawn(async move {
            for attempt in 1..=sim.webhook_attempts.max(1) {
                // A slot per attempt, not per call: a call waiting to be
                // delivered again holds none.
                let slot = slots.acquire().await.expect("never closed");
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(call.to_string());
                if let Some(token) = &sim.webhook_token {
                    request = request.header("token", token);
                }
                let answer = request.send().await;
                drop(slot);
                match answer {
                    Ok(reply) if reply.status() == reqwest::StatusCode::OK => {
                        counts.delivered.fetch_add(1, Relaxed);
                        return;
                    }
                    _ => {
                        counts.refused.fetch_add(1, Relaxed);
                    }
                }
                if attempt < sim.webhook_attempts {
                    tokio::time::sleep(Duration::from_millis(sim.webhook_retry_ms)).await;
                }
            }
            counts.given_up.fetch_add(1, Relaxed);
        });
        while posting.try_join_next().is_some() {}
    }
    while posting.join_next().await.is_some() {}
}

/// A `cdr/page` query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageQuery {
    pub start_time: i64,
    pub end_time: i64,
    pub page: u32,
    pub size: u32,
    #[serde(default)]
    pub direction: Option<u8>,
    #[serde(default)]
    pub answered: Option<u8>,
    #[serde(default)]
    pub call_id: Option<String>,
    // No `orderId`: the vendor documents no such filter, and a key the
    // gateway does not know is ignored, as here.
}

/// Longest span of one `cdr/page` query the sandbox takes, in seconds.
pub const MOST_SECONDS_PER_QUERY: i64 = 24 * 3600;

/// One page of `calls` for `query`, or why the query is refused: the
/// records of calls that started in its window and have ended by `now_ms`
/// (a record appears when its call ends), oldest first.
pub(super) fn page(calls: &[&Value], query: &PageQuery, now_ms: i64) -> Result<Vec<Value>, String> {
    if query.page == 0 || query.size == 0 || query.size > 100 {
        return Err(format!(
            "page {} size {}: page starts at 1, size is 1 to 100",
            query.page, query.size
        ));
    }
    if query.end_time <= query.start_time
        || query.end_time - query.start_time > MOST_SECONDS_PER_QUERY
    {
        return Err("startTime/endTime: a span of at most 24 hours, in seconds".into());
    }
    // Records count AI outbound as 2; the filter counts it as 3.
    let direction_ok = |call: &Value| match query.direction {
        None | Some(0) => true,
        Some(3) => call["direction"] == 2,
        Some(2) => call["direction"] == 1,
        Some(1) => call["direction"] == 0,
        Some(_) => false,
    };
    let answered_ok = |call: &Value| match query.answered {
        None | Some(0) => true,
        Some(1) => call["answered"] == false,
        Some(_) => call["answered"] == true,
    };
    let mut chosen: Vec<&Value> = calls
        .iter()
        .copied()
        .filter(|call| {
            let start_s = call["startTime"].as_i64().unwrap_or(0) / 1000;
            start_s >= query.start_time
                && start_s < query.end_time
                && has_ended(call, now_ms)
                && direction_ok(call)
                && answered_ok(call)
                && query
                    .call_id
                    .as_ref()
                    .is_none_or(|id| call["callId"] == id.as_str())
        })
        .collect();
    chosen.sort_by_key(|call| {
        (
            call["startTime"].as_i64(),
            call["callId"].as_str().map(str::to_owned),
        )
    });
    let skip = (query.page as usize - 1) * query.size as usize;
    Ok(chosen
        .into_iter()
        .skip(skip)
        .take(query.size as usize)
        .cloned()
        .collect())
}
