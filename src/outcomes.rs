//! Call outcomes from the vendor's call records, and what they settle:
//!
//! - [`sync`] reads `cdr/page` (AI outbound calls, windows of at most a
//!   day, pages of 100 until a short one, under the job's rate limit) and
//!   stores every record as the webhook would: a backstop for missed
//!   deliveries, safe to repeat.
//! - [`reconcile`] looks at each `uncertain` batch: a call for any of its
//!   orders (in the ledger, or found at the vendor now) proves that the
//!   vendor received it, so it becomes `accepted`. A batch with no call long
//!   after it was sent was probably lost; it is re-queued only when asked,
//!   and never inside the vendor's window of a request that may still
//!   arrive.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::batch::BatchSeq;
use crate::job::Job;
use crate::ledger::{CampaignId, Ledger, LedgerError, Resend, StoredCalls, UncertainBatch};
use crate::nxlink::calls::{
    Call, CDR_BY_ORDER_PATH, CDR_FILTER_AI_OUTBOUND, CDR_PAGE_PATH, CDR_PAGE_SIZE,
};
use crate::nxlink::client::QueryError;
use crate::nxlink::Client;
use crate::outcome::BatchState;
use crate::throttle::Throttle;

/// The longest span of one `cdr/page` query, in seconds.
const WINDOW_SECONDS: i64 = 24 * 3600;
/// How far back a sync reads again before where the last one ended: a call
/// is listed by its start, and it is reported once it ends.
const OVERLAP_MS: i64 = 6 * 3600 * 1000;
/// How long before a campaign's first request its calls are looked for.
const BEFORE_FIRST_MS: i64 = 10 * 60 * 1000;
/// Pages read of one window at most: a server that never sends a short
/// page cannot keep a sync going for ever.
const MOST_PAGES: u32 = 100_000;

/// Why reading call records stopped.
#[derive(Debug, thiserror::Error)]
pub enum OutcomesError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{what}: {source}")]
    Vendor {
        what: String,
        #[source]
        source: QueryError,
    },
}

impl OutcomesError {
    /// A refusal for the credentials or the parameters will not pass by
    /// itself; anything else (no reply, a busy gateway) may.
    pub fn retrying_helps(&self) -> bool {
        match self {
            OutcomesError::Vendor {
                source: QueryError::Refused { code, .. },
                ..
            } => {
                use crate::nxlink::wire::code;
                !code::AUTH_RANGE.contains(code) && *code != code::PARAMETER_ERROR
            }
            OutcomesError::Vendor { .. } => true,
            OutcomesError::Ledger(_) => false,
        }
    }
}

/// What a sync read and stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub from_ms: i64,
    pub to_ms: i64,
    pub windows: u64,
    pub pages: u64,
    pub records: u64,
    /// Records without a `callId` (not stored).
    pub unreadable: u64,
    pub stored: StoredCalls,
}

/// Reads the vendor's AI outbound call records from `since_ms` (default:
/// some hours before where the last sync ended, or just before the
/// campaign's first request) to `now_ms`, and stores them.
pub async fn sync(
    ledger: &Ledger,
    campaign: CampaignId,
    client: &Client,
    throttle: &Throttle,
    since_ms: Option<i64>,
    now_ms: i64,
) -> Result<Synced, OutcomesError> {
    let (first_attempt, synced) = ledger.sync_span(campaign).await?;
    let from_ms = match (since_ms, synced, first_attempt) {
        (Some(since), _, _) => since,
        (None, Some(synced), _) => synced - OVERLAP_MS,
        (None, None, Some(first)) => first - BEFORE_FIRST_MS,
        // Nothing was ever sent: there are no calls to read.
        (None, None, None) => {
            return Ok(Synced {
                from_ms: now_ms,
                to_ms: now_ms,
                ..Synced::default()
            })
        }
    };
    let mut done = Synced {
        from_ms,
        to_ms: now_ms,
        ..Synced::default()
    };
    let mut start = from_ms.div_euclid(1000);
    let end = now_ms.div_euclid(1000) + 1;
    while start < end {
        let window_end = (start + WINDOW_SECONDS).min(end);
        done.windows += 1;
        for page in 1..=MOST_PAGES {
            let _turn = throttle.admit(1).await;
            let query = json!({
                "startTime": start,
                "endTime": window_end,
                "page": page,
                "size": CDR_PAGE_SIZE,
                "direction": CDR_FILTER_AI_OUTBOUND,
            });
            let records = client
                .query(CDR_PAGE_PATH, &query)
                .await
                .map_err(|source| OutcomesError::Vendor {
                    what: format!("cdr/page {start}..{window_end} page {page}"),
                    source,
                })?;
            done.pages += 1;
            done.records += records.len() as u64;
            let full = records.len() as u32 >= CDR_PAGE_SIZE;
            store(
                ledger,
                &records,
                "sync",
                &mut done.unreadable,
                &mut done.stored,
            )
            .await?;
            if !full {
                break;
            }
        }
        start = window_end;
    }
    ledger.set_calls_synced(campaign, now_ms).await?;
    Ok(done)
}

/// Stores the readable records of `records`, adding to the counts.
async fn store(
    ledger: &Ledger,
    records: &[serde_json::Value],
    source: &'static str,
    unreadable: &mut u64,
    stored: &mut StoredCalls,
) -> Result<(), LedgerError> {
    let mut calls = Vec::with_capacity(records.len());
    for record in records {
        match Call::from_json(record) {
            Ok(call) => calls.push(call),
            Err(e) => {
                *unreadable += 1;
                tracing::warn!(error = %e, "a call record that cannot be stored");
            }
        }
    }
    if calls.is_empty() {
        return Ok(());
    }
    let now = ledger
        .store_calls(calls, source, crate::clock::now_ms())
        .await?;
    stored.new += now.new;
    stored.replaced += now.replaced;
    stored.unknown += now.unknown;
    Ok(())
}

/// What reconciliation decided for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Calls of `called` of its `orders` orders exist: it was received.
    Accepted { called: u64, orders: u64 },
    /// No call yet, and it was sent less than `lost_after` ago.
    Waiting { sent_ago: Duration },
    /// No call long after it was sent; `requeued` when re-sent was asked
    /// for and allowed, `fenced_until` when a request may still arrive.
    ProbablyLost {
        sent_ago: Duration,
        requeued: bool,
        fenced_until: Option<i64>,
    },
    /// The vendor could not be asked; nothing decided.
    NotAsked { why: String },
}

/// How reconciliation goes.
pub struct Reconciling<'a> {
    pub ledger: &'a Ledger,
    pub job: &'a Job,
    pub campaign: CampaignId,
    /// The vendor, to ask about batches whose orders have no call in the
    /// ledger; `None`: the ledger's calls only.
    pub vendor: Option<(&'a Client, &'a Throttle)>,
    pub lost_after: Duration,
    pub resend_lost: bool,
    pub requested_by: &'a str,
    pub now_ms: i64,
}

/// Decides every `uncertain` batch; returns each decision.
pub async fn reconcile(how: &Reconciling<'_>) -> Result<Vec<(BatchSeq, Decision)>, LedgerError> {
    let mut decided = Vec::new();
    for batch in how.ledger.uncertain_batches(how.campaign).await? {
        let decision = decide(how, &batch).await?;
        decided.push((batch.seq, decision));
    }
    Ok(decided)
}

async fn decide(how: &Reconciling<'_>, batch: &UncertainBatch) -> Result<Decision, LedgerError> {
    let orders = batch.order_ids.len() as u64;
    let mut called = batch.orders_with_calls;
    if called == 0 {
        if let Some((client, throttle)) = how.vendor {
            match ask_vendor(how, client, throttle, batch).await {
                Ok(found) => called = found,
                Err(e) => return Ok(Decision::NotAsked { why: e.to_string() }),
            }
        }
    }
    if called > 0 {
        let message = format!(
            "reconciled: the vendor has calls of {called} of its {orders} orders, so it received the batch"
        );
        how.ledger
            .accept_reconciled(how.campaign, batch.seq, message, how.now_ms)
            .await?;
        return Ok(Decision::Accepted { called, orders });
    }
    let sent_ago = Duration::from_millis((how.now_ms - batch.updated_at_ms).max(0) as u64);
    if sent_ago < how.lost_after {
        return Ok(Decision::Waiting { sent_ago });
    }
    if !how.resend_lost {
        return Ok(Decision::ProbablyLost {
            sent_ago,
            requeued: false,
            fenced_until: None,
        });
    }
    // A request held up on its way is refused by the vendor once its `ts`
    // is older than the clock window; until then it may still arrive.
    let may_arrive_until = batch.updated_at_ms + how.job.api.clock_window.as_millis() as i64;
    if how.now_ms < may_arrive_until {
        return Ok(Decision::ProbablyLost {
            sent_ago,
            requeued: false,
            fenced_until: Some(may_arrive_until),
        });
    }
    let resent = how
        .ledger
        .resend(
            how.campaign,
            &Resend {
                from: BatchState::Uncertain,
                only: &[batch.seq],
                requested_by: how.requested_by,
                now_ms: how.now_ms,
            },
        )
        .await?;
    Ok(Decision::ProbablyLost {
        sent_ago,
        requeued: resent.requeued.contains(&batch.seq),
        fenced_until: resent
            .fenced
            .iter()
            .find(|(seq, _)| *seq == batch.seq)
            .map(|(_, until)| *until),
    })
}

/// Asks the vendor for the calls of the batch's orders, one order at a
/// time until one has a call; stores what it finds. Returns how many
/// orders have calls (0 or 1: one is proof enough).
async fn ask_vendor(
    how: &Reconciling<'_>,
    client: &Client,
    throttle: &Throttle,
    batch: &UncertainBatch,
) -> Result<u64, OutcomesError> {
    let sent_s = batch.updated_at_ms.div_euclid(1000);
    for order_id in &batch.order_ids {
        let _turn = throttle.admit(1).await;
        let (path, query) = match how.job.api.tenant_id {
            Some(tenant) => (
                CDR_BY_ORDER_PATH,
                json!({ "tenantId": tenant, "orderId": order_id }),
            ),
            None => (
                CDR_PAGE_PATH,
                json!({
                    "startTime": sent_s - 3600,
                    // A day from an hour before it was sent: calls of
                    // startupType 3 start within minutes.
                    "endTime": sent_s - 3600 + WINDOW_SECONDS,
                    "page": 1,
                    "size": CDR_PAGE_SIZE,
                    "direction": CDR_FILTER_AI_OUTBOUND,
                    "orderId": order_id,
                }),
            ),
        };
        let records = client
            .query(path, &query)
            .await
            .map_err(|source| OutcomesError::Vendor {
                what: format!("the calls of order {order_id}"),
                source,
            })?;
        let mine: Vec<serde_json::Value> = records
            .into_iter()
            .filter(|r| r["orderId"].as_str() == Some(order_id.as_str()))
            .collect();
        if !mine.is_empty() {
            let (mut unreadable, mut stored) = (0, StoredCalls::default());
            store(how.ledger, &mine, "reconcile", &mut unreadable, &mut stored).await?;
            return Ok(1);
        }
    }
    Ok(0)
}

/// Says what was decided, one line per batch.
pub fn write_decisions(
    out: &mut dyn Write,
    decided: &[(BatchSeq, Decision)],
    lost_after: Duration,
) -> std::io::Result<()> {
    use crate::clock::{human_duration, rfc3339};
    if decided.is_empty() {
        writeln!(out, "no uncertain batch: nothing to reconcile")?;
    }
    for (seq, decision) in decided {
        let seq = seq.get();
        match decision {
            Decision::Accepted { called, orders } => writeln!(
                out,
                "batch {seq}: accepted: the vendor has calls of {called} of its {orders} orders"
            )?,
            Decision::Waiting { sent_ago } => writeln!(
                out,
                "batch {seq}: still uncertain: no call yet, sent {} ago (probably lost after {})",
                human_duration(*sent_ago),
                human_duration(lost_after)
            )?,
            Decision::ProbablyLost {
                sent_ago,
                requeued: true,
                ..
            } => writeln!(
                out,
                "batch {seq}: probably lost (no call, sent {} ago): re-queued; the next run sends it",
                human_duration(*sent_ago)
            )?,
            Decision::ProbablyLost {
                fenced_until: Some(until),
                ..
            } => writeln!(
                out,
                "batch {seq}: probably lost, but a request for it may still arrive until {}: not re-queued; reconcile again after that",
                rfc3339(*until)
            )?,
            Decision::ProbablyLost { sent_ago, .. } => writeln!(
                out,
                "batch {seq}: probably lost: no call for any of its orders, sent {} ago; re-send it with --resend-lost",
                human_duration(*sent_ago)
            )?,
            Decision::NotAsked { why } => writeln!(
                out,
                "batch {seq}: still uncertain: the vendor could not be asked ({why})"
            )?,
        }
    }
    Ok(())
}
