//! Call outcomes from the vendor's call records, and what they settle:
//!
//! - [`sync`] reads `cdr/page` (AI outbound calls, windows of at most a
//!   day, pages of 100 until a short one, under the job's rate limit) and
//!   stores every record as the webhook would: a backstop for missed
//!   deliveries, safe to repeat.
//! - [`reconcile`] looks at each `uncertain` batch: a call that names one
//!   of its orders (in the ledger, or found at the vendor now) proves that
//!   the vendor received it, so it becomes `accepted`. A batch with no call
//!   after a complete look at the vendor's records, long after it was
//!   sent, was probably lost; it is re-queued only when asked, after saying
//!   what that bets on, and never inside the vendor's window of a request
//!   that may still arrive.
//!
//! Only documented queries are used: `cdr/page` has no order filter, so a
//! batch is looked for in every record of the account over its window
//! (one scan serves every uncertain batch); `cdr/queryByOrderId` needs the
//! team id.

use std::io::Write;
use std::time::Duration;

use crate::batch::BatchSeq;
use crate::clock::{human_duration, rfc3339};
use crate::job::Job;
use crate::ledger::{CampaignId, Ledger, LedgerError, Resend, StoredCalls, UncertainBatch};
use crate::nxlink::client::{QueryError, RecordWindow, Records};
use crate::nxlink::Client;
use crate::state::BatchState;
use crate::throttle::Throttle;

/// The longest span of one `cdr/page` query, in seconds.
const WINDOW_SECONDS: i64 = 24 * 3600;
/// How far back a sync reads again before where the last one ended: a call
/// is listed by its start, and it is reported once it ends.
const OVERLAP_MS: i64 = 6 * 3600 * 1000;
/// How long before a campaign's first request its calls are looked for
/// by default, and the earliest `--since` that can find any.
const BEFORE_FIRST_MS: i64 = 3600 * 1000;
/// How long before a batch's first request a reconciling scan begins: the
/// vendor refuses a request whose clock is a minute from its own, so its
/// calls cannot start earlier than that by this machine's clock.
const SCAN_MARGIN_MS: i64 = 5 * 60 * 1000;
/// Pages read of one window at most: a server that never sends a short
/// page cannot keep a scan going for ever.
const MOST_PAGES: u32 = 100_000;

/// Why reading call records stopped.
#[derive(Debug, thiserror::Error)]
pub enum CallRecordsError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{what}: {source}")]
    Vendor {
        what: String,
        #[source]
        source: QueryError,
    },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CallRecordsError {
    /// A refusal for the credentials or the parameters will not pass by
    /// itself; anything else (no reply, a busy gateway) may.
    pub fn retrying_helps(&self) -> bool {
        match self {
            CallRecordsError::Vendor { source, .. } => source.may_pass(),
            CallRecordsError::Ledger(e) => e.is_transient(),
            CallRecordsError::Output(_) => false,
        }
    }
}

/// What a scan of the vendor's records read and stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    pub from_ms: i64,
    pub to_ms: i64,
    pub windows: u64,
    pub pages: u64,
    pub records: u64,
    /// Records that are not calls as documented (not stored).
    pub unreadable: u64,
    pub stored: StoredCalls,
    /// `--since` was earlier than any call of the campaign can be: the
    /// scan began here instead.
    pub clamped_from: Option<i64>,
}

/// Reads the vendor's AI outbound call records from `since_ms` (default:
/// some hours before where the last sync ended, or an hour before the
/// campaign's first request) to `now_ms`, and stores them. A start before
/// the campaign's first request could find no call of it, and is moved
/// there; the point up to which the campaign's records are read moves
/// only when this sync began at or before it.
pub async fn sync(
    ledger: &Ledger,
    campaign: CampaignId,
    client: &Client,
    throttle: &Throttle,
    since_ms: Option<i64>,
    now_ms: i64,
) -> Result<Synced, CallRecordsError> {
    let (first_attempt, synced) = ledger.sync_span(campaign).await?;
    let Some(first_attempt) = first_attempt else {
        // Nothing was ever sent: there are no calls to read.
        return Ok(Synced {
            from_ms: now_ms,
            to_ms: now_ms,
            ..Synced::default()
        });
    };
    let earliest = first_attempt - BEFORE_FIRST_MS;
    let default_from = synced.map_or(earliest, |synced| synced - OVERLAP_MS);
    let (from_ms, clamped_from) = match since_ms {
        Some(since) if since < earliest => (earliest, Some(earliest)),
        Some(since) => (since, None),
        None => (default_from, None),
    };
    let mut done = scan(ledger, client, throttle, from_ms, now_ms, "sync").await?;
    done.clamped_from = clamped_from;
    // A sync that began after the point already read leaves a gap behind
    // it: the point stays, so the next sync reads the gap.
    if from_ms <= synced.unwrap_or(earliest).max(earliest) {
        ledger.set_calls_synced(campaign, now_ms).await?;
    }
    Ok(done)
}

/// Reads every record that started from `from_ms` to `to_ms`, window by
/// window, page by page until a short one, and stores them. An error
/// anywhere ends it: what was stored stays, the scan is incomplete.
async fn scan(
    ledger: &Ledger,
    client: &Client,
    throttle: &Throttle,
    from_ms: i64,
    to_ms: i64,
    source: &'static str,
) -> Result<Synced, CallRecordsError> {
    let mut done = Synced {
        from_ms,
        to_ms,
        ..Synced::default()
    };
    let mut start = from_ms.div_euclid(1000);
    let end = to_ms.div_euclid(1000) + 1;
    while start < end {
        let window = RecordWindow {
            start_s: start,
            end_s: (start + WINDOW_SECONDS).min(end),
        };
        done.windows += 1;
        for page in 1..=MOST_PAGES {
            let _turn = throttle.admit(1).await;
            let records = client.call_records(&window, page).await.map_err(|source| {
                CallRecordsError::Vendor {
                    what: format!(
                        "cdr/page from {} to {}, page {page}",
                        rfc3339(window.start_s * 1000),
                        rfc3339(window.end_s * 1000)
                    ),
                    source,
                }
            })?;
            done.pages += 1;
            let last = records.last;
            store(ledger, records, source, &mut done).await?;
            if last {
                break;
            }
        }
        start = window.end_s;
    }
    Ok(done)
}

/// Stores what one query returned, adding to the counts.
async fn store(
    ledger: &Ledger,
    records: Records,
    source: &'static str,
    done: &mut Synced,
) -> Result<(), LedgerError> {
    done.records += (records.calls.len() + records.unreadable.len()) as u64;
    done.unreadable += records.unreadable.len() as u64;
    for e in &records.unreadable {
        tracing::warn!(error = %e, "a call record that cannot be stored");
    }
    if records.calls.is_empty() {
        return Ok(());
    }
    let now = ledger
        .store_calls(records.calls, source, crate::clock::now_ms())
        .await?;
    done.stored.new += now.new;
    done.stored.replaced += now.replaced;
    done.stored.unknown += now.unknown;
    Ok(())
}

/// What reconciliation decided for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Calls naming `called` of its `orders` orders exist: it was received.
    Accepted { called: u64, orders: u64 },
    /// No call yet, and its last request left less than `lost_after` ago.
    Waiting { sent_ago: Duration },
    /// No call, and none can be expected yet: the reason why.
    CannotTell { why: String },
    /// No call in a complete look at the vendor's records, long after its
    /// last request; `requeued` when a re-send was asked for and allowed,
    /// `fenced_until` when a request may still arrive.
    ProbablyLost {
        sent_ago: Duration,
        requeued: bool,
        fenced_until: Option<i64>,
    },
    /// The vendor's records could not be read whole; nothing decided.
    NotAsked { why: String },
}

/// How reconciliation goes.
pub struct Reconciling<'a> {
    pub ledger: &'a Ledger,
    pub job: &'a Job,
    pub campaign: CampaignId,
    /// The vendor, to look for the calls of batches the ledger has none
    /// of; `None`: the ledger's calls only (nothing is then said lost).
    pub vendor: Option<(&'a Client, &'a Throttle)>,
    pub lost_after: Duration,
    pub resend_lost: bool,
    pub requested_by: &'a str,
    pub now_ms: i64,
}

/// Decides every `uncertain` batch, saying each decision on `out` as it is
/// made (a re-queue only after saying what it bets on).
pub async fn reconcile(
    how: &Reconciling<'_>,
    out: &mut dyn Write,
) -> Result<Vec<(BatchSeq, Decision)>, CallRecordsError> {
    let batches = how.ledger.uncertain_batches(how.campaign).await?;
    if batches.is_empty() {
        say(out, "no uncertain batch: nothing to reconcile")?;
        return Ok(Vec::new());
    }
    let mut decided = Vec::new();
    // 1. The ledger's own calls: proof enough, whatever the vendor says.
    let mut open = Vec::new();
    for batch in batches {
        if batch.orders_with_calls > 0 {
            let decision = accept(how, &batch, batch.orders_with_calls).await?;
            tell(out, &batch, &decision, how)?;
            decided.push((batch.seq, decision));
        } else {
            open.push(batch);
        }
    }
    // 2. The vendor's records of the rest, read whole, or nothing decided.
    let looked = match (how.vendor, open.is_empty()) {
        (_, true) => Looked::Completely,
        (None, false) => Looked::NotAtAll,
        (Some((client, throttle)), false) => look_at_vendor(how, client, throttle, &open).await?,
    };
    let again = match looked {
        Looked::Completely => how.ledger.uncertain_batches(how.campaign).await?,
        _ => Vec::new(),
    };
    for batch in open {
        let decision = match &looked {
            Looked::Failed(why) => Decision::NotAsked { why: why.clone() },
            Looked::NotAtAll => judge_without_vendor(how, &batch),
            Looked::Completely => {
                let now = again.iter().find(|b| b.seq == batch.seq);
                match now {
                    // Settled meanwhile (another command): nothing to do.
                    None => continue,
                    Some(now) if now.orders_with_calls > 0 => {
                        accept(how, now, now.orders_with_calls).await?
                    }
                    Some(now) => judge_lost(how, now, out).await?,
                }
            }
        };
        tell(out, &batch, &decision, how)?;
        decided.push((batch.seq, decision));
    }
    Ok(decided)
}

/// How much of the vendor's records was read for the open batches.
enum Looked {
    /// Every record that could belong to them, to now.
    Completely,
    /// None: no credentials.
    NotAtAll,
    /// A query failed: why.
    Failed(String),
}

/// Reads the vendor's records of the open batches' orders into the
/// ledger: each order's own with a team id, else every record of the
/// account from just before the earliest batch's first request to now.
async fn look_at_vendor(
    how: &Reconciling<'_>,
    client: &Client,
    throttle: &Throttle,
    open: &[UncertainBatch],
) -> Result<Looked, LedgerError> {
    if let Some(tenant) = how.job.api.tenant_id {
        for batch in open {
            for order_id in &batch.order_ids {
                let _turn = throttle.admit(1).await;
                match client.calls_of_order(tenant, order_id).await {
                    Ok(records) if records.calls.is_empty() => {}
                    Ok(records) => {
                        let mut done = Synced::default();
                        store(how.ledger, records, "reconcile", &mut done).await?;
                        // One call of one order proves the whole batch.
                        break;
                    }
                    Err(e) => {
                        return Ok(Looked::Failed(format!(
                            "cdr/queryByOrderId for order {order_id}: {e}"
                        )))
                    }
                }
            }
        }
        return Ok(Looked::Completely);
    }
    let from = open
        .iter()
        .map(|b| b.first_attempt_ms)
        .min()
        .expect("open batches")
        - SCAN_MARGIN_MS;
    match scan(how.ledger, client, throttle, from, how.now_ms, "reconcile").await {
        Ok(scanned) => {
            tracing::info!(
                pages = scanned.pages,
                records = scanned.records,
                "reconcile: the vendor's records read"
            );
            Ok(Looked::Completely)
        }
        Err(CallRecordsError::Ledger(e)) => Err(e),
        Err(e) => Ok(Looked::Failed(e.to_string())),
    }
}

async fn accept(
    how: &Reconciling<'_>,
    batch: &UncertainBatch,
    called: u64,
) -> Result<Decision, LedgerError> {
    let orders = batch.order_ids.len() as u64;
    let message = format!(
        "reconciled: the vendor has calls of {called} of its {orders} orders, so it received the batch"
    );
    how.ledger
        .accept_reconciled(how.campaign, batch.seq, message, how.now_ms)
        .await?;
    Ok(Decision::Accepted { called, orders })
}

/// Without the vendor's records, no call in the ledger proves nothing.
fn judge_without_vendor(how: &Reconciling<'_>, batch: &UncertainBatch) -> Decision {
    let sent_ago = since(how.now_ms, batch.last_attempt_ms);
    if sent_ago < how.lost_after {
        return Decision::Waiting { sent_ago };
    }
    Decision::CannotTell {
        why: "the ledger has no call of it, and without credentials the vendor's records were not read".into(),
    }
}

/// A batch with no call after a complete look at the vendor's records.
async fn judge_lost(
    how: &Reconciling<'_>,
    batch: &UncertainBatch,
    out: &mut dyn Write,
) -> Result<Decision, CallRecordsError> {
    let task = &how.job.task;
    if !task.starts_at_once() {
        return Ok(Decision::CannotTell {
            why: format!(
                "its task is {} (task.startup_type = {}), so no call yet proves nothing",
                task.startup_words(),
                task.startup_type
            ),
        });
    }
    let sent_ago = since(how.now_ms, batch.last_attempt_ms);
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
    let may_arrive_until = batch.last_attempt_ms + how.job.api.clock_window.as_millis() as i64;
    if how.now_ms < may_arrive_until {
        return Ok(Decision::ProbablyLost {
            sent_ago,
            requeued: false,
            fenced_until: Some(may_arrive_until),
        });
    }
    say(
        out,
        &format!(
            "batch {}: betting it was lost: no call of any of its {} orders in the vendor's records from {} (before its first request) to {} (now), and its last request left {} ago; if the vendor created its task after all and dials late, these {} people are called twice",
            batch.seq,
            batch.order_ids.len(),
            rfc3339(batch.first_attempt_ms - SCAN_MARGIN_MS),
            rfc3339(how.now_ms),
            human_duration(sent_ago),
            batch.order_ids.len()
        ),
    )?;
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

fn since(now_ms: i64, then_ms: i64) -> Duration {
    Duration::from_millis((now_ms - then_ms).max(0) as u64)
}

fn say(out: &mut dyn Write, line: &str) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}

/// Says what was decided for one batch, with its real send time.
fn tell(
    out: &mut dyn Write,
    batch: &UncertainBatch,
    decision: &Decision,
    how: &Reconciling<'_>,
) -> std::io::Result<()> {
    let seq = batch.seq.get();
    let sent = format!("last sent {}", rfc3339(batch.last_attempt_ms));
    let line = match decision {
        Decision::Accepted { called, orders } => format!(
            "batch {seq}: accepted: the vendor has calls of {called} of its {orders} orders ({sent})"
        ),
        Decision::Waiting { sent_ago } => format!(
            "batch {seq}: still uncertain: no call yet, {sent}, {} ago (judged after {})",
            human_duration(*sent_ago),
            human_duration(how.lost_after)
        ),
        Decision::CannotTell { why } => {
            format!("batch {seq}: still uncertain: no call ({sent}); {why}")
        }
        Decision::ProbablyLost {
            requeued: true, ..
        } => format!("batch {seq}: re-queued; the next run sends it"),
        Decision::ProbablyLost {
            fenced_until: Some(until),
            ..
        } => format!(
            "batch {seq}: probably lost, but a request for it may still arrive until {}: not re-queued; reconcile again after that",
            rfc3339(*until)
        ),
        Decision::ProbablyLost { sent_ago, .. } => format!(
            "batch {seq}: probably lost: no call of any of its orders in the vendor's records, {sent}, {} ago; the vendor may still dial late: re-send it with --resend-lost if you bet it never arrived",
            human_duration(*sent_ago)
        ),
        Decision::NotAsked { why } => format!(
            "batch {seq}: still uncertain: the vendor's records could not be read whole ({why}); nothing was decided"
        ),
    };
    say(out, &line)
}
