//! Calls on PostgreSQL (see the SQLite backend's module of the same name
//! for what each method promises). Several receivers may store at once:
//! the upsert on `call_id` makes repeats and races one row.

use sqlx::{PgConnection, Row as _};

use super::Postgres;
use crate::ledger::model::{CallStats, StoredCalls, UncertainBatch, UPSERT_CALL};
use crate::ledger::{CampaignId, LedgerError};
use crate::nxlink::calls::Call;
use crate::outcome::BatchState;

/// The order a call was made for: by its orderId among live orders, else
/// by the caller's number among orders sent (the newest campaign first).
async fn match_order(
    tx: &mut PgConnection,
    call: &Call,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    if let Some(order_id) = &call.order_id {
        let found: Option<(i64, String)> = sqlx::query_as(
            "SELECT o.campaign_id, o.order_id FROM orders o
             WHERE o.campaign_id = ANY(ARRAY(SELECT id FROM campaigns)) AND o.order_id = $1
               AND o.set_aside IS NULL
             ORDER BY o.campaign_id DESC LIMIT 1",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
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
    sqlx::query_as(
        "SELECT o.campaign_id, o.order_id FROM orders o
         JOIN batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq AND b.state <> 'pending'
         WHERE o.campaign_id = ANY(ARRAY(SELECT id FROM campaigns)) AND o.phone = $1
           AND o.set_aside IS NULL AND o.order_id IS NOT NULL
         ORDER BY o.campaign_id DESC LIMIT 1",
    )
    .bind(phone)
    .fetch_optional(&mut *tx)
    .await
}

impl Postgres {
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
        for call in &calls {
            let matched = match_order(&mut tx, call).await.map_err(e)?;
            stored.unknown += u64::from(matched.is_none());
            let (campaign, order) = matched.unzip();
            let inserted: bool = sqlx::query_scalar(&upsert)
                .bind(&call.call_id)
                .bind(&call.order_id)
                .bind(campaign)
                .bind(order)
                .bind(&call.task_id)
                .bind(&call.caller)
                .bind(&call.callee)
                .bind(call.answered)
                .bind(call.start_ms)
                .bind(call.answer_ms)
                .bind(call.end_ms)
                .bind(call.ring_ms)
                .bind(call.ring_seconds)
                .bind(call.call_seconds)
                .bind(call.hangup_by)
                .bind(&call.hangup_code)
                .bind(&call.hangup_reason)
                .bind(&call.call_status)
                .bind(&call.intent)
                .bind(&call.record_url)
                .bind(call.price)
                .bind(&call.raw)
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
        }
        tx.commit().await.map_err(e)?;
        Ok(stored)
    }

    pub async fn call_stats(&self, campaign: CampaignId) -> Result<CallStats, LedgerError> {
        let e = |source| self.query_error(source);
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT matched_order_id),
                    COUNT(DISTINCT CASE WHEN answered THEN matched_order_id END),
                    COALESCE(SUM(CASE WHEN answered THEN call_seconds END), 0)::BIGINT,
                    (SELECT COUNT(*) FROM calls WHERE campaign_id IS NULL)
             FROM calls WHERE campaign_id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await
        .map_err(e)?;
        let intents: Vec<(String, i64)> = sqlx::query_as(
            "SELECT intent, COUNT(*) AS n FROM calls
             WHERE campaign_id = $1 AND answered AND intent IS NOT NULL
             GROUP BY intent ORDER BY n DESC, intent LIMIT 5",
        )
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
        let rows = sqlx::query(
            "SELECT b.seq, b.updated_at_ms, o.order_id,
                    EXISTS (SELECT 1 FROM calls c WHERE c.campaign_id = o.campaign_id
                            AND c.matched_order_id = o.order_id)
             FROM batches b
             JOIN orders o ON o.campaign_id = b.campaign_id AND o.batch_seq = b.seq
                  AND o.set_aside IS NULL AND o.order_id IS NOT NULL
             WHERE b.campaign_id = $1 AND b.state = $2
             ORDER BY b.seq, o.id",
        )
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
                    updated_at_ms: row.get(1),
                    order_ids: Vec::new(),
                    orders_with_calls: 0,
                });
            }
            let batch = found.last_mut().expect("pushed above");
            batch.order_ids.push(row.get(2));
            batch.orders_with_calls += u64::from(row.get::<bool, _>(3));
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
