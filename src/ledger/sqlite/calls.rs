//! Calls on SQLite: stored once per callId, matched to the order that
//! made them by index lookups alone, and counted for `status`, `orders`
//! and reconciliation.

use rusqlite::{params, OptionalExtension as _, Transaction};

use super::{LedgerError, Sqlite};
use crate::ledger::model::{
    sent_by_for, CallOwner, CallRow, CallStats, MatchedBy, StoredCalls, UncertainBatch, UPSERT_CALL,
};
use crate::ledger::redials::OptOuts;
use crate::ledger::CampaignId;
use crate::nxlink::calls::Call;
use crate::state::BatchState;

/// The order `call` belongs to, if it is one of this ledger's: by its
/// orderId, the order of that id whose batch was sent before the call
/// began (the newest campaign's first); only a call that names no order
/// is matched by its number, the same way.
fn match_order(tx: &Transaction<'_>, call: &Call) -> rusqlite::Result<Option<CallOwner>> {
    let sent_by = sent_by_for(call);
    if let Some(order_id) = &call.order_id {
        return tx
            .prepare_cached(MATCH_BY_ORDER_ID)?
            .query_row(params![order_id, sent_by], |row| {
                Ok(CallOwner {
                    campaign: row.get(0)?,
                    order_row: row.get(1)?,
                    order_id: order_id.clone(),
                    by: MatchedBy::OrderId,
                })
            })
            .optional();
    }
    let Some(phone) = call
        .caller
        .as_deref()
        .and_then(crate::ledger::caller_digits)
    else {
        return Ok(None);
    };
    tx.prepare_cached(MATCH_BY_PHONE)?
        .query_row(params![phone, sent_by], |row| {
            Ok(CallOwner {
                campaign: row.get(0)?,
                order_row: row.get(1)?,
                order_id: row.get(2)?,
                by: MatchedBy::Phone,
            })
        })
        .optional()
}

/// `?1` an order id, `?2` the latest start of its batch's first request.
const MATCH_BY_ORDER_ID: &str = "SELECT k.campaign_id, k.order_row FROM order_keys k
     CROSS JOIN orders o ON o.id = k.order_row
     WHERE k.kind = 1 AND k.key = ?1 AND o.batch_seq IS NOT NULL
       AND EXISTS (SELECT 1 FROM attempts a
                   WHERE a.campaign_id = k.campaign_id AND a.batch_seq = o.batch_seq AND a.started_at_ms <= ?2)
     ORDER BY k.campaign_id DESC LIMIT 1";

/// `?1` a number, `?2` as above; campaign by campaign, the newest first.
const MATCH_BY_PHONE: &str = "SELECT k.campaign_id, k.order_row, o.order_id FROM campaigns c
     CROSS JOIN order_keys k ON k.campaign_id = c.id AND k.kind = 0 AND k.key = ?1
     CROSS JOIN orders o ON o.id = k.order_row
     WHERE o.batch_seq IS NOT NULL AND o.order_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM attempts a
                   WHERE a.campaign_id = k.campaign_id AND a.batch_seq = o.batch_seq AND a.started_at_ms <= ?2)
     ORDER BY c.id DESC LIMIT 1";

/// `?1` a campaign, `?2` a batch: its orders, each with whether a call
/// names it.
const ORDERS_OF_UNCERTAIN_BATCH: &str = "SELECT o.order_id, EXISTS (SELECT 1 FROM calls c
         WHERE c.campaign_id = o.campaign_id AND c.order_row = o.id AND c.matched_by = 'order_id')
     FROM orders o WHERE o.campaign_id = ?1 AND o.batch_seq = ?2 AND o.set_aside IS NULL
       AND o.order_id IS NOT NULL ORDER BY o.id";

/// `?1` a campaign: what `status` shows of its calls.
const CALL_COUNTS: &str = "SELECT COUNT(*), COUNT(DISTINCT order_row),
        COUNT(DISTINCT CASE WHEN answered THEN order_row END),
        SUM(CASE WHEN answered AND call_seconds BETWEEN 0 AND 86400 THEN call_seconds END)
     FROM calls WHERE campaign_id = ?1";
const UNKNOWN_CALLS: &str = "SELECT COUNT(*) FROM calls WHERE campaign_id IS NULL";
const TOP_INTENTS: &str = "SELECT intent, COUNT(*) AS n FROM calls
     WHERE campaign_id = ?1 AND answered AND intent IS NOT NULL
     GROUP BY intent ORDER BY n DESC, intent LIMIT 5";

/// Every statement a call, a delivery, a reconciliation, an export of
/// orders with calls or the claim of a redial runs per item, with values for its parameters: each
/// must be an index lookup at any size (`explain_hot_statements`).
const HOT_STATEMENTS: &[(&str, &[&str])] = &[
    (
        MATCH_BY_ORDER_ID,
        &["'0123456789ABCDEF0123456789ABCDEF'", "1767225600000"],
    ),
    (MATCH_BY_PHONE, &["'85251234567'", "1767225600000"]),
    ("SELECT 1 FROM calls WHERE call_id = ?1", &["'c-1'"]),
    (ORDERS_OF_UNCERTAIN_BATCH, &["1", "7"]),
    (CALL_COUNTS, &["1"]),
    (UNKNOWN_CALLS, &[]),
    (TOP_INTENTS, &["1"]),
    (super::report::CALLS_OF_ORDERS, &["1", "1"]),
    (super::ingest::USED_ELSEWHERE, &["2", "0", "100"]),
    (crate::ledger::redials::CALLS_BEFORE_REDIAL, &["7", "3"]),
    (crate::ledger::redials::REDIAL_ORDERS, &["1"]),
];

/// Stores one call in `tx`: says whether it was stored before, and whose
/// it is.
fn store_call(
    tx: &Transaction<'_>,
    call: &Call,
    source: &str,
    now_ms: i64,
) -> rusqlite::Result<(bool, Option<CallOwner>)> {
    let known = tx
        .prepare_cached("SELECT 1 FROM calls WHERE call_id = ?1")?
        .exists([&call.call_id])?;
    let owner = match_order(tx, call)?;
    let row = CallRow {
        owner: owner.as_ref(),
    };
    tx.prepare_cached(UPSERT_CALL)?.execute(params![
        call.call_id,
        row.kept(call.order_id.as_deref()),
        owner.as_ref().map(|o| o.campaign),
        owner.as_ref().map(|o| o.order_row),
        owner.as_ref().map(|o| &o.order_id),
        owner.as_ref().map(|o| o.by.as_str()),
        row.kept(call.task_id.as_deref()),
        row.kept(call.caller.as_deref()),
        row.kept(call.callee.as_deref()),
        row.kept(Some(call.answered)).unwrap_or(false),
        row.kept(call.start_ms),
        row.kept(call.answer_ms),
        row.kept(call.end_ms),
        row.kept(call.ring_ms),
        row.kept(call.ring_seconds),
        row.kept(call.call_seconds),
        row.kept(call.hangup_by),
        row.kept(call.hangup_code.as_deref()),
        row.kept(call.hangup_reason.as_deref()),
        row.kept(call.call_status.as_deref()),
        row.kept(call.intent.as_deref()),
        row.kept(call.record_url.as_deref()),
        row.kept(call.price),
        row.kept(Some(call.raw.as_str())),
        source,
        now_ms,
    ])?;
    Ok((known, owner))
}

/// Puts the number of `owner`'s order on the do-not-call list (for every
/// campaign, for good) when `call` is an answered call whose intent is one
/// of the campaign's opt-outs. Says whether it did.
fn opt_out(
    tx: &Transaction<'_>,
    opt_outs: &mut OptOuts,
    owner: &CallOwner,
    call: &Call,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    if !call.answered || call.intent.is_none() {
        return Ok(false);
    }
    if !opt_outs.knows(owner.campaign) {
        let policy: Option<String> = tx
            .prepare_cached("SELECT redial_policy FROM campaigns WHERE id = ?1")?
            .query_row([owner.campaign], |row| row.get(0))?;
        opt_outs.learn(owner.campaign, policy.as_deref());
    }
    let Some((reason, source)) = opt_outs.entry(owner.campaign, call) else {
        return Ok(false);
    };
    let phone: String = tx
        .prepare_cached("SELECT phone FROM orders WHERE id = ?1")?
        .query_row([owner.order_row], |row| row.get(0))?;
    tx.prepare_cached(crate::ledger::sqlite::suppress::UPSERT_SUPPRESSION)?
        .execute(params![phone, 0, reason, None::<i64>, now_ms, source])?;
    Ok(true)
}

impl Sqlite {
    /// Each hot statement with SQLite's plan for it (`EXPLAIN QUERY PLAN`),
    /// one step a line.
    pub async fn explain_hot_statements(&self) -> Result<Vec<(String, String)>, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            // The plan's own temporary tables (ingest's) exist on its
            // connection only; here, empty stand-ins.
            conn.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS plan_duplicates (id INTEGER PRIMARY KEY, reason TEXT NOT NULL)",
            )
            .map_err(e)?;
            let mut plans = Vec::new();
            for (sql, values) in HOT_STATEMENTS {
                // The statements shared with PostgreSQL number theirs `$N`.
                let sql = crate::ledger::model::with_values(
                    &crate::ledger::model::with_values(sql, '?', values),
                    '$',
                    values,
                );
                let mut statement = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .map_err(e)?;
                let steps: Vec<String> = statement
                    .query_map([], |row| row.get::<_, String>(3))
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                plans.push((sql, steps.join("\n")));
            }
            Ok(plans)
        })
        .await
    }

    /// Stores `calls` in one transaction: a callId stored before is
    /// completed by the later report (see `UPSERT_CALL`).
    pub async fn store_calls(
        &self,
        calls: Vec<Call>,
        source: &'static str,
        now_ms: i64,
    ) -> Result<StoredCalls, LedgerError> {
        self.write(move |this, tx| {
            let e = this.error();
            let mut stored = StoredCalls::default();
            let mut opt_outs = OptOuts::default();
            for call in &calls {
                let (known, owner) = store_call(tx, call, source, now_ms).map_err(e)?;
                if known {
                    stored.replaced += 1;
                } else {
                    stored.new += 1;
                }
                stored.unknown += u64::from(owner.is_none());
                if let Some(owner) = &owner {
                    if opt_out(tx, &mut opt_outs, owner, call, now_ms).map_err(e)? {
                        stored.opted_out += 1;
                    }
                }
            }
            Ok(stored)
        })
        .await
    }

    /// The campaign's call outcomes.
    pub async fn call_stats(&self, campaign: CampaignId) -> Result<CallStats, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let snapshot = conn.unchecked_transaction().map_err(e)?;
            let (records, orders_called, answered, talk): (i64, i64, i64, Option<i64>) = snapshot
                .query_row(CALL_COUNTS, [campaign.0], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .map_err(e)?;
            let unknown: i64 = snapshot
                .query_row(UNKNOWN_CALLS, [], |row| row.get(0))
                .map_err(e)?;
            let intents = snapshot
                .prepare(TOP_INTENTS)
                .map_err(e)?
                .query_map([campaign.0], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            Ok(CallStats {
                records: records as u64,
                unknown_records: unknown as u64,
                orders_called: orders_called as u64,
                answered: answered as u64,
                talk_seconds: talk.unwrap_or(0).max(0) as u64,
                intents,
            })
        })
        .await
    }

    /// The campaign's `uncertain` batches, with their orders, when their
    /// requests were sent, and how many of their orders have a call that
    /// names them.
    pub async fn uncertain_batches(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<UncertainBatch>, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let snapshot = conn.unchecked_transaction().map_err(e)?;
            let batches: Vec<(i64, Option<i64>, Option<i64>)> = snapshot
                .prepare(
                    "SELECT b.seq,
                            (SELECT MIN(a.started_at_ms) FROM attempts a WHERE a.campaign_id = b.campaign_id AND a.batch_seq = b.seq),
                            (SELECT MAX(a.started_at_ms) FROM attempts a WHERE a.campaign_id = b.campaign_id AND a.batch_seq = b.seq)
                     FROM batches b WHERE b.campaign_id = ?1 AND b.state = ?2 ORDER BY b.seq",
                )
                .map_err(e)?
                .query_map(params![campaign.0, BatchState::Uncertain.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let mut found = Vec::with_capacity(batches.len());
            let mut orders = snapshot.prepare(ORDERS_OF_UNCERTAIN_BATCH).map_err(e)?;
            for (seq, first, last) in batches {
                let rows: Vec<(String, bool)> = orders
                    .query_map(params![campaign.0, seq], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                // An uncertain batch was sent at least once; a ledger
                // without its attempts says nothing of when.
                let (Some(first), Some(last)) = (first, last) else {
                    continue;
                };
                found.push(UncertainBatch {
                    seq: this.batch_seq(seq)?,
                    first_attempt_ms: first,
                    last_attempt_ms: last,
                    orders_with_calls: rows.iter().filter(|(_, called)| *called).count() as u64,
                    order_ids: rows.into_iter().map(|(id, _)| id).collect(),
                });
            }
            Ok(found)
        })
        .await
    }

    /// Marks an `uncertain` batch (and so its orders) `accepted`: the vendor
    /// has calls of its orders, so it received the batch. False when the
    /// batch is no longer uncertain.
    pub async fn accept_reconciled(
        &self,
        campaign: CampaignId,
        seq: crate::batch::BatchSeq,
        message: String,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        self.write(move |this, tx| {
            let changed = tx
                .execute(
                    "UPDATE batches SET state = ?3, message = ?4, updated_at_ms = ?5
                     WHERE campaign_id = ?1 AND seq = ?2 AND state = ?6",
                    params![
                        campaign.0,
                        i64::from(seq.get()),
                        BatchState::Accepted.as_str(),
                        message,
                        now_ms,
                        BatchState::Uncertain.as_str(),
                    ],
                )
                .map_err(this.error())?;
            Ok(changed == 1)
        })
        .await
    }

    /// When the campaign's first attempt started, and up to when `sync`
    /// has read call records.
    pub async fn sync_span(
        &self,
        campaign: CampaignId,
    ) -> Result<(Option<i64>, Option<i64>), LedgerError> {
        self.read(move |this, conn| {
            conn.query_row(
                "SELECT (SELECT MIN(started_at_ms) FROM attempts WHERE campaign_id = ?1),
                        (SELECT calls_synced_ms FROM campaigns WHERE id = ?1)",
                [campaign.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(this.error())
        })
        .await
    }

    pub async fn set_calls_synced(&self, campaign: CampaignId, ms: i64) -> Result<(), LedgerError> {
        self.write(move |this, tx| {
            tx.execute(
                "UPDATE campaigns SET calls_synced_ms = MAX(COALESCE(calls_synced_ms, 0), ?2) WHERE id = ?1",
                params![campaign.0, ms],
            )
            .map_err(this.error())?;
            Ok(())
        })
        .await
    }
}
