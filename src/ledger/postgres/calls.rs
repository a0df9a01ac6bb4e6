//! Calls on PostgreSQL (see the SQLite backend's module of the same name
//! for what each method promises). Several receivers may store at once:
//! the upsert on `call_id` makes repeats and races one row.

use sqlx::{PgConnection, Row as _};

use super::Postgres;
use crate::ledger::model::{
    sent_by_for, CallOwner, CallRow, CallStats, MatchedBy, StoredCalls, UncertainBatch, UPSERT_CALL,
};
use crate::ledger::redials::OptOuts;
use crate::ledger::{CampaignId, LedgerError};
use crate::nxlink::calls::Call;
use crate::state::BatchState;

/// The order `call` belongs to, if it is one of this ledger's (the rule
/// is the SQLite backend's).
async fn match_order(tx: &mut PgConnection, call: &Call) -> Result<Option<CallOwner>, sqlx::Error> {
    let sent_by = sent_by_for(call);
    if let Some(order_id) = &call.order_id {
        let found: Option<(i64, i64)> = sqlx::query_as(MATCH_BY_ORDER_ID)
            .bind(order_id)
            .bind(sent_by)
            .fetch_optional(&mut *tx)
            .await?;
        return Ok(found.map(|(campaign, order_row)| CallOwner {
            campaign,
            order_row,
            order_id: order_id.clone(),
            by: MatchedBy::OrderId,
        }));
    }
    let Some(phone) = call
        .caller
        .as_deref()
        .and_then(crate::ledger::caller_digits)
    else {
        return Ok(None);
    };
    let found: Option<(i64, i64, String)> = sqlx::query_as(MATCH_BY_PHONE)
        .bind(phone)
        .bind(sent_by)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found.map(|(campaign, order_row, order_id)| CallOwner {
        campaign,
        order_row,
        order_id,
        by: MatchedBy::Phone,
    }))
}

/// `$1` an order id, `$2` the latest start of its batch's first request.
const MATCH_BY_ORDER_ID: &str = "SELECT k.campaign_id, k.order_row FROM order_keys k
     JOIN orders o ON o.id = k.order_row
     WHERE k.kind = 1 AND k.key = $1 AND o.batch_seq IS NOT NULL
       AND EXISTS (SELECT 1 FROM attempts a
                   WHERE a.campaign_id = k.campaign_id AND a.batch_seq = o.batch_seq AND a.started_at_ms <= $2)
     ORDER BY k.campaign_id DESC LIMIT 1";

/// `$1` a number, `$2` as above; campaign by campaign, the newest first.
const MATCH_BY_PHONE: &str = "SELECT k.campaign_id, k.order_row, o.order_id FROM campaigns c
     JOIN LATERAL (SELECT k.campaign_id, k.order_row FROM order_keys k
                   WHERE k.campaign_id = c.id AND k.kind = 0 AND k.key = $1) k ON TRUE
     JOIN orders o ON o.id = k.order_row
     WHERE o.batch_seq IS NOT NULL AND o.order_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM attempts a
                   WHERE a.campaign_id = k.campaign_id AND a.batch_seq = o.batch_seq AND a.started_at_ms <= $2)
     ORDER BY c.id DESC LIMIT 1";

/// `$1` a campaign, `$2` the uncertain state: its uncertain batches with
/// when they were sent, and their orders, each with whether a call names it.
const UNCERTAIN_BATCHES: &str = "SELECT b.seq, t.first, t.last, o.order_id,
        EXISTS (SELECT 1 FROM calls c WHERE c.campaign_id = o.campaign_id
                AND c.order_row = o.id AND c.matched_by = 'order_id')
     FROM batches b
     JOIN LATERAL (SELECT MIN(a.started_at_ms) AS first, MAX(a.started_at_ms) AS last
                   FROM attempts a WHERE a.campaign_id = b.campaign_id AND a.batch_seq = b.seq) t
          ON t.first IS NOT NULL
     JOIN orders o ON o.campaign_id = b.campaign_id AND o.batch_seq = b.seq
          AND o.set_aside IS NULL AND o.order_id IS NOT NULL
     WHERE b.campaign_id = $1 AND b.state = $2
     ORDER BY b.seq, o.id";

/// `$1` a campaign: what `status` shows of its calls.
const CALL_COUNTS: &str = "SELECT COUNT(*), COUNT(DISTINCT order_row),
        COUNT(DISTINCT CASE WHEN answered THEN order_row END),
        COALESCE(SUM(CASE WHEN answered AND call_seconds BETWEEN 0 AND 86400 THEN call_seconds END), 0)::BIGINT,
        (SELECT COUNT(*) FROM calls WHERE campaign_id IS NULL)
     FROM calls WHERE campaign_id = $1";
const TOP_INTENTS: &str = "SELECT intent, COUNT(*) AS n FROM calls
     WHERE campaign_id = $1 AND answered AND intent IS NOT NULL
     GROUP BY intent ORDER BY n DESC, intent LIMIT 5";

/// Every statement a call, a delivery, a reconciliation, an export of
/// orders with calls or the claim of a redial runs per item, with values for its parameters.
const HOT_STATEMENTS: &[(&str, &[&str])] = &[
    (
        MATCH_BY_ORDER_ID,
        &["'0123456789ABCDEF0123456789ABCDEF'", "1767225600000"],
    ),
    (MATCH_BY_PHONE, &["'85251234567'", "1767225600000"]),
    ("SELECT 1 FROM calls WHERE call_id = $1", &["'c-1'"]),
    (UNCERTAIN_BATCHES, &["1", "'uncertain'"]),
    (CALL_COUNTS, &["1"]),
    (TOP_INTENTS, &["1"]),
    (super::report::CALLS_OF_ORDERS, &["1"]),
    (super::ingest::USED_ELSEWHERE, &["2", "0", "100"]),
    (crate::ledger::redials::CALLS_BEFORE_REDIAL, &["7", "3"]),
    (crate::ledger::redials::REDIAL_ORDERS, &["1"]),
];

/// Puts the number of `owner`'s order on the do-not-call list (for every
/// campaign, for good) when `call` is an answered call whose intent is one
/// of the campaign's opt-outs (see SQLite's `opt_out`).
async fn opt_out(
    tx: &mut sqlx::PgConnection,
    opt_outs: &mut OptOuts,
    owner: &CallOwner,
    call: &Call,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    if !call.answered || call.intent.is_none() {
        return Ok(false);
    }
    if !opt_outs.knows(owner.campaign) {
        let policy: Option<String> =
            sqlx::query_scalar("SELECT redial_policy FROM campaigns WHERE id = $1")
                .bind(owner.campaign)
                .fetch_one(&mut *tx)
                .await?;
        opt_outs.learn(owner.campaign, policy.as_deref());
    }
    let Some((reason, source)) = opt_outs.entry(owner.campaign, call) else {
        return Ok(false);
    };
    let phone: String = sqlx::query_scalar("SELECT phone FROM orders WHERE id = $1")
        .bind(owner.order_row)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(super::suppress::UPSERT_SUPPRESSION)
        .bind(vec![phone])
        .bind(0_i64)
        .bind(reason)
        .bind(None::<i64>)
        .bind(now_ms)
        .bind(source)
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

impl Postgres {
    /// Each hot statement with the server's plan for it, sequential scans
    /// switched off: a statement that still scans a table has no index to
    /// serve it.
    pub async fn explain_hot_statements(&self) -> Result<Vec<(String, String)>, LedgerError> {
        let e = |source| self.query_error(source);
        let mut tx = self.pool.begin().await.map_err(e)?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        let mut plans = Vec::new();
        for (sql, values) in HOT_STATEMENTS {
            let sql = crate::ledger::model::with_values(sql, '$', values);
            let steps: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {sql}"))
                .fetch_all(&mut *tx)
                .await
                .map_err(e)?;
            plans.push((sql, steps.join("\n")));
        }
        tx.rollback().await.map_err(e)?;
        Ok(plans)
    }

    pub async fn store_calls(
        &self,
        calls: Vec<Call>,
        source: &'static str,
        now_ms: i64,
    ) -> Result<StoredCalls, LedgerError> {
        let e = |source| self.query_error(source);
        let mut tx = self.pool.begin().await.map_err(e)?;
        let mut stored = StoredCalls::default();
        // `xmax = 0` only for a row this statement inserted.
        let upsert = format!("{UPSERT_CALL} RETURNING (xmax = 0)");
        let mut opt_outs = OptOuts::default();
        for call in &calls {
            let owner = match_order(&mut tx, call).await.map_err(e)?;
            stored.unknown += u64::from(owner.is_none());
            let row = CallRow {
                owner: owner.as_ref(),
            };
            let inserted: bool = sqlx::query_scalar(&upsert)
                .bind(&call.call_id)
                .bind(row.kept(call.order_id.as_deref()))
                .bind(owner.as_ref().map(|o| o.campaign))
                .bind(owner.as_ref().map(|o| o.order_row))
                .bind(owner.as_ref().map(|o| &o.order_id))
                .bind(owner.as_ref().map(|o| o.by.as_str()))
                .bind(row.kept(call.task_id.as_deref()))
                .bind(row.kept(call.caller.as_deref()))
                .bind(row.kept(call.callee.as_deref()))
                .bind(row.kept(Some(call.answered)).unwrap_or(false))
                .bind(row.kept(call.start_ms))
                .bind(row.kept(call.answer_ms))
                .bind(row.kept(call.end_ms))
                .bind(row.kept(call.ring_ms))
                .bind(row.kept(call.ring_seconds))
                .bind(row.kept(call.call_seconds))
                .bind(row.kept(call.hangup_by))
                .bind(row.kept(call.hangup_code.as_deref()))
                .bind(row.kept(call.hangup_reason.as_deref()))
                .bind(row.kept(call.call_status.as_deref()))
                .bind(row.kept(call.intent.as_deref()))
                .bind(row.kept(call.record_url.as_deref()))
                .bind(row.kept(call.price))
                .bind(row.kept(Some(call.raw.as_str())))
                .bind(source)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
            if inserted {
                stored.new += 1;
            } else {
                stored.replaced += 1;
            }
            if let Some(owner) = &owner {
                if opt_out(&mut tx, &mut opt_outs, owner, call, now_ms)
                    .await
                    .map_err(e)?
                {
                    stored.opted_out += 1;
                }
            }
        }
        tx.commit().await.map_err(e)?;
        Ok(stored)
    }

    pub async fn call_stats(&self, campaign: CampaignId) -> Result<CallStats, LedgerError> {
        let e = |source| self.query_error(source);
        let row = sqlx::query(CALL_COUNTS)
            .bind(campaign.0)
            .fetch_one(&self.pool)
            .await
            .map_err(e)?;
        let intents: Vec<(String, i64)> = sqlx::query_as(TOP_INTENTS)
            .bind(campaign.0)
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        Ok(CallStats {
            records: row.get::<i64, _>(0) as u64,
            orders_called: row.get::<i64, _>(1) as u64,
            answered: row.get::<i64, _>(2) as u64,
            talk_seconds: row.get::<i64, _>(3).max(0) as u64,
            unknown_records: row.get::<i64, _>(4) as u64,
            intents: intents.into_iter().map(|(i, n)| (i, n as u64)).collect(),
        })
    }

    pub async fn uncertain_batches(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<UncertainBatch>, LedgerError> {
        let e = |source| self.query_error(source);
        let rows = sqlx::query(UNCERTAIN_BATCHES)
            .bind(campaign.0)
            .bind(BatchState::Uncertain.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(e)?;
        let mut found: Vec<UncertainBatch> = Vec::new();
        for row in rows {
            let seq = self.batch_seq(row.get(0))?;
            if found.last().is_none_or(|b| b.seq != seq) {
                found.push(UncertainBatch {
                    seq,
                    first_attempt_ms: row.get(1),
                    last_attempt_ms: row.get(2),
                    order_ids: Vec::new(),
                    orders_with_calls: 0,
                });
            }
            let batch = found.last_mut().expect("pushed above");
            batch.order_ids.push(row.get(3));
            batch.orders_with_calls += u64::from(row.get::<bool, _>(4));
        }
        Ok(found)
    }

    pub async fn accept_reconciled(
        &self,
        campaign: CampaignId,
        seq: crate::batch::BatchSeq,
        message: String,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        let changed = sqlx::query(
            "UPDATE batches SET state = $3, message = $4, updated_at_ms = $5
             WHERE campaign_id = $1 AND seq = $2 AND state = $6",
        )
        .bind(campaign.0)
        .bind(i64::from(seq.get()))
        .bind(BatchState::Accepted.as_str())
        .bind(message)
        .bind(now_ms)
        .bind(BatchState::Uncertain.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(changed.rows_affected() == 1)
    }

    pub async fn sync_span(
        &self,
        campaign: CampaignId,
    ) -> Result<(Option<i64>, Option<i64>), LedgerError> {
        sqlx::query_as(
            "SELECT (SELECT MIN(started_at_ms) FROM attempts WHERE campaign_id = $1),
                    (SELECT calls_synced_ms FROM campaigns WHERE id = $1)",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))
    }

    pub async fn set_calls_synced(&self, campaign: CampaignId, ms: i64) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE campaigns SET calls_synced_ms = GREATEST(COALESCE(calls_synced_ms, 0), $2) WHERE id = $1",
        )
        .bind(campaign.0)
        .bind(ms)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(())
    }
}
