//! Ledger writes of dispatch: picking due batches, the durable `sending`
//! mark before a request, the outcome after it, and operator re-sends.

use sqlx::Row as _;

use super::{CampaignId, Fence, LedgerError, Sqlite};
use crate::batch::{BatchOrder, BatchSeq};
use crate::ledger::model::{AttemptResult, BatchToSend, Resend, Resent};
use crate::nxlink::wire::code;
use crate::outcome::BatchState;

impl Sqlite {
    /// Marks up to `limit` due batches `sending`, each with a new attempt,
    /// in one durable transaction, and returns them with their orders, in
    /// sequence order; empty when no batch is due now.
    ///
    /// The `state = 'pending'` guard makes the mark the one point where a
    /// batch is taken: it cannot be taken twice. Taking several at once
    /// keeps the write made durable before each request (promise 1) from
    /// capping the request rate at one disk flush per batch.
    ///
    /// Nothing is taken unless `fence` still holds the campaign, checked in
    /// the same transaction; only planned batches are taken, with only
    /// their planned orders.
    pub async fn take_due_batches(
        &self,
        fence: &Fence,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<BatchToSend>, LedgerError> {
        let campaign = fence.campaign;
        let mut tx = self.write_transaction().await?;
        self.check_fence(&mut tx, fence).await?;
        let mut taken = sqlx::query(
            "UPDATE batches SET state = ?4, attempts = attempts + 1, updated_at_ms = ?1
             WHERE campaign_id = ?2 AND state = ?5 AND seq IN (
                 SELECT seq FROM batches
                 WHERE campaign_id = ?2 AND state = ?5 AND not_before_ms <= ?1
                   AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = ?2)
                 ORDER BY seq LIMIT ?3)
             RETURNING seq, country, attempts, attempts_before_resend, code",
        )
        .bind(now_ms)
        .bind(campaign.0)
        .bind(limit as i64)
        .bind(BatchState::Sending.as_str())
        .bind(BatchState::Pending.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        taken.sort_by_key(|row| row.get::<i64, _>(0));
        let mut batches = Vec::with_capacity(taken.len());
        for row in taken {
            let seq = self.batch_seq(row.get::<i64, _>(0))?;
            let attempt = row.get::<i64, _>(2) as u32;
            sqlx::query("INSERT INTO attempts (campaign_id, batch_seq, number, started_at_ms) VALUES (?, ?, ?, ?)")
                .bind(campaign.0)
                .bind(i64::from(seq))
                .bind(attempt)
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
            // The batch's orders as one JSON array: one sqlx row per order
            // would cost more than the request.
            let orders: String = sqlx::query_scalar(
                "SELECT json_group_array(json_array(order_id, phone, other)) FROM (
                     SELECT order_id, phone, other FROM orders
                     WHERE campaign_id = ?1 AND batch_seq = ?2 AND set_aside IS NULL
                       AND id <= (SELECT planned_through FROM campaigns WHERE id = ?1)
                     ORDER BY id)",
            )
            .bind(campaign.0)
            .bind(i64::from(seq))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
            let orders: Vec<(String, String, String)> =
                serde_json::from_str(&orders).map_err(|e| LedgerError::Corrupt {
                    path: self.path.clone(),
                    message: format!("orders of batch #{seq}: {e}"),
                })?;
            batches.push(BatchToSend {
                seq,
                country: row.get(1),
                attempt,
                attempt_in_round: attempt - row.get::<i64, _>(3) as u32,
                after_clock_fix: row.get::<Option<i64>, _>(4) == Some(code::TIMESTAMP_EXPIRED),
                orders: orders
                    .into_iter()
                    .map(|(order_id, phone, other)| BatchOrder {
                        order_id,
                        phone,
                        other,
                    })
                    .collect(),
            });
        }
        // Durable (synchronous = FULL) before the caller sends anything.
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(batches)
    }

    /// The earliest time a pending batch of the campaign becomes due, if any.
    pub async fn next_due_at(&self, campaign: CampaignId) -> Result<Option<i64>, LedgerError> {
        sqlx::query_scalar(
            "SELECT MIN(not_before_ms) FROM batches WHERE campaign_id = ?1 AND state = ?2
               AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = ?1)",
        )
        .bind(campaign.0)
        .bind(BatchState::Pending.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))
    }

    /// Records an attempt's result and its batch's new state in one
    /// transaction, unless `fence` lost the campaign meanwhile (then the
    /// run that took it over has made the batch `uncertain`).
    pub async fn finish_attempt(
        &self,
        fence: &Fence,
        seq: BatchSeq,
        attempt: u32,
        result: &AttemptResult,
    ) -> Result<(), LedgerError> {
        debug_assert_ne!(result.batch_state, BatchState::Sending);
        let campaign = fence.campaign;
        let mut tx = self.write_transaction().await?;
        self.check_fence(&mut tx, fence).await?;
        sqlx::query(
            "UPDATE attempts SET duration_ms = ?, http_status = ?, code = ?, message = ?, req_id = ?, decision = ?
             WHERE campaign_id = ? AND batch_seq = ? AND number = ?",
        )
        .bind(result.duration_ms)
        .bind(result.http_status)
        .bind(result.code)
        .bind(result.message.as_deref())
        .bind(result.req_id.as_deref())
        .bind(result.decision.as_str())
        .bind(campaign.0)
        .bind(i64::from(seq))
        .bind(attempt)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let updated = sqlx::query(
            "UPDATE batches SET state = ?, code = ?, message = ?, req_id = ?, not_before_ms = ?, updated_at_ms = ?,
                    attempts_before_resend = attempts_before_resend + ?
             WHERE campaign_id = ? AND seq = ? AND state = ?",
        )
        .bind(result.batch_state.as_str())
        .bind(result.code)
        .bind(result.message.as_deref())
        .bind(result.req_id.as_deref())
        .bind(result.not_before_ms)
        .bind(result.finished_at_ms)
        .bind(i64::from(!result.spends_budget))
        .bind(campaign.0)
        .bind(i64::from(seq))
        .bind(BatchState::Sending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        if updated.rows_affected() != 1 {
            return Err(LedgerError::Corrupt {
                path: self.path.clone(),
                message: format!(
                    "batch #{seq} was not in state sending when its attempt {attempt} ended"
                ),
            });
        }
        tx.commit().await.map_err(|e| self.query_error(e))
    }

    /// Puts every batch of the campaign in `resend.from` back to `pending`
    /// with a fresh retry budget, recording who asked. An uncertain batch
    /// that a run which may still live was sending is left alone until its
    /// `resend_after_ms`.
    pub async fn resend(
        &self,
        campaign: CampaignId,
        resend: &Resend<'_>,
    ) -> Result<Resent, LedgerError> {
        // `?3` is a JSON array of sequence numbers, or null for all.
        let only = (!resend.only.is_empty()).then(|| json_numbers(resend.only));
        let mut tx = self.write_transaction().await?;
        let chosen: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT seq, resend_after_ms FROM batches
             WHERE campaign_id = ?1 AND state = ?2
               AND (?3 IS NULL OR seq IN (SELECT value FROM json_each(?3)))
             ORDER BY seq",
        )
        .bind(campaign.0)
        .bind(resend.from.as_str())
        .bind(only.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let mut resent = Resent::default();
        for (seq, until) in chosen {
            let seq = self.batch_seq(seq)?;
            if until <= resend.now_ms {
                resent.requeued.push(seq);
            } else {
                resent.fenced.push((seq, until));
            }
        }
        // `?2` is the JSON array of the batches re-queued.
        let requeued = json_numbers(&resent.requeued);
        sqlx::query(
            "INSERT INTO resends (campaign_id, batch_seq, from_state, requested_by, requested_at_ms)
             SELECT ?1, value, ?3, ?4, ?5 FROM json_each(?2)",
        )
        .bind(campaign.0)
        .bind(&requeued)
        .bind(resend.from.as_str())
        .bind(resend.requested_by)
        .bind(resend.now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        sqlx::query(
            "UPDATE batches SET state = ?4, not_before_ms = 0, attempts_before_resend = attempts, updated_at_ms = ?3
             WHERE campaign_id = ?1 AND seq IN (SELECT value FROM json_each(?2))",
        )
        .bind(campaign.0)
        .bind(&requeued)
        .bind(resend.now_ms)
        .bind(BatchState::Pending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(resent)
    }
}

/// Batch numbers as a JSON array, for `json_each`.
fn json_numbers(seqs: &[BatchSeq]) -> String {
    let numbers: Vec<u32> = seqs.iter().map(|seq| seq.get()).collect();
    serde_json::to_string(&numbers).unwrap_or_default()
}
