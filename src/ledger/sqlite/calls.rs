//! Calls on SQLite: stored once per callId, matched to their orders, and
//! counted for `status`, `orders` and reconciliation.

use rusqlite::{params, OptionalExtension as _, Transaction};

use super::{LedgerError, Sqlite};
use crate::ledger::model::{CallStats, StoredCalls, UncertainBatch, UPSERT_CALL};
use crate::ledger::CampaignId;
use crate::nxlink::calls::Call;
use crate::outcome::BatchState;

/// The order a call was made for: by its orderId among live orders, else
/// by the caller's number among orders sent (the newest campaign first).
fn match_order(tx: &Transaction<'_>, call: &Call) -> rusqlite::Result<Option<(i64, String)>> {
    if let Some(order_id) = &call.order_id {
        let found = tx
            .query_row(
                "SELECT o.campaign_id, o.order_id FROM campaigns c
                 CROSS JOIN orders o ON o.campaign_id = c.id AND o.order_id = ?1 AND o.set_aside IS NULL
                 ORDER BY c.id DESC LIMIT 1",
                [order_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(phone) = call
        .caller
        .as_deref()
        .and_then(crate::ledger::caller_digits)
    else {
        return Ok(None);
    };
    tx.query_row(
        "SELECT o.campaign_id, o.order_id FROM campaigns c
         CROSS JOIN orders o ON o.campaign_id = c.id AND o.phone = ?1 AND o.set_aside IS NULL
         CROSS JOIN batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq AND b.state <> 'pending'
         WHERE o.order_id IS NOT NULL
         ORDER BY c.id DESC LIMIT 1",
        [phone],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

impl Sqlite {
    /// Stores `calls` in one transaction: a callId stored before is
    /// replaced (the later report wins).
    pub async fn store_calls(
        &self,
        calls: Vec<Call>,
        source: &'static str,
        now_ms: i64,
    ) -> Result<StoredCalls, LedgerError> {
        self.write(move |this, tx| {
            let e = this.error();
            let mut stored = StoredCalls::default();
            for call in &calls {
                let known: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM calls WHERE call_id = ?1)",
                        [&call.call_id],
                        |row| row.get(0),
                    )
                    .map_err(e)?;
                let matched = match_order(tx, call).map_err(e)?;
                if known {
                    stored.replaced += 1;
                } else {
                    stored.new += 1;
                }
                stored.unknown += u64::from(matched.is_none());
                let (campaign, order) = matched.unzip();
                tx.execute(
                    UPSERT_CALL,
                    params![
                        call.call_id,
                        call.order_id,
                        campaign,
                        order,
                        call.task_id,
                        call.caller,
                        call.callee,
                        call.answered,
                        call.start_ms,
                        call.answer_ms,
                        call.end_ms,
                        call.ring_ms,
                        call.ring_seconds,
                        call.call_seconds,
                        call.hangup_by,
                        call.hangup_code,
                        call.hangup_reason,
                        call.call_status,
                        call.intent,
                        call.record_url,
                        call.price,
                        call.raw,
                        source,
                        now_ms,
                    ],
                )
                .map_err(e)?;
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
                .query_row(
                    "SELECT COUNT(*), COUNT(DISTINCT matched_order_id),
                            COUNT(DISTINCT CASE WHEN answered THEN matched_order_id END),
                            SUM(CASE WHEN answered THEN call_seconds END)
                     FROM calls WHERE campaign_id = ?1",
                    [campaign.0],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .map_err(e)?;
            let unknown: i64 = snapshot
                .query_row(
                    "SELECT COUNT(*) FROM calls WHERE campaign_id IS NULL",
                    [],
                    |row| row.get(0),
                )
                .map_err(e)?;
            let intents = snapshot
                .prepare(
                    "SELECT intent, COUNT(*) AS n FROM calls
                     WHERE campaign_id = ?1 AND answered AND intent IS NOT NULL
                     GROUP BY intent ORDER BY n DESC, intent LIMIT 5",
                )
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

    /// The campaign's `uncertain` batches, with their orders and how many
    /// of those have a call in the ledger.
    pub async fn uncertain_batches(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<UncertainBatch>, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let snapshot = conn.unchecked_transaction().map_err(e)?;
            let batches: Vec<(i64, i64)> = snapshot
                .prepare("SELECT seq, updated_at_ms FROM batches WHERE campaign_id = ?1 AND state = ?2 ORDER BY seq")
                .map_err(e)?
                .query_map(params![campaign.0, BatchState::Uncertain.as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let mut found = Vec::with_capacity(batches.len());
            let mut orders = snapshot
                .prepare(
                    "SELECT o.order_id, EXISTS (SELECT 1 FROM calls c
                         WHERE c.campaign_id = o.campaign_id AND c.matched_order_id = o.order_id)
                     FROM orders o WHERE o.campaign_id = ?1 AND o.batch_seq = ?2 AND o.set_aside IS NULL
                       AND o.order_id IS NOT NULL ORDER BY o.id",
                )
                .map_err(e)?;
            for (seq, updated_at_ms) in batches {
                let rows: Vec<(String, bool)> = orders
                    .query_map(params![campaign.0, seq], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                found.push(UncertainBatch {
                    seq: this.batch_seq(seq)?,
                    updated_at_ms,
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
