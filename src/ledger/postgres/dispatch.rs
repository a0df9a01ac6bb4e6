//! Dispatch's writes on PostgreSQL: claiming due batches (`SKIP LOCKED`,
//! so runners never wait for each other's claims), the outcome of an
//! attempt, and operator re-sends.

use crate::ledger::model::window_key_sql;
use sqlx::Row as _;

use super::{seq_array, Postgres};
use crate::batch::{BatchOrder, BatchSeq};
use crate::ledger::model::{
    not_sending_when_it_ended, AttemptResult, BatchToSend, Claim, Fence, Resend, Resent,
    EMPTIED_BEFORE_SENDING,
};
use crate::ledger::redials::{recheck, ClaimedRedial, CALLS_BEFORE_REDIAL};
use crate::ledger::{CampaignId, LedgerError};
use crate::redial::{CallSeen, Recheck};
use crate::state::{BatchState, OrderState};

impl Postgres {
    /// Claims up to `limit` due batches for `fence`'s runner: marks them
    /// `sending`, bound to the runner, each with a new attempt, in one
    /// durable transaction that first checks the runner is still
    /// registered. Rows another runner is claiming are skipped, not waited
    /// for; a batch's `state = 'pending'` guard is re-checked on the locked
    /// row, so no batch is claimed twice.
    pub async fn take_due_batches(
        &self,
        fence: &Fence,
        claim: &Claim<'_>,
    ) -> Result<Vec<BatchToSend>, LedgerError> {
        match self.claim(fence, claim).await {
            Err(e @ LedgerError::Query { .. }) => Err(self.lost_or(fence, e).await),
            claimed => claimed,
        }
    }

    async fn claim(
        &self,
        fence: &Fence,
        claim: &Claim<'_>,
    ) -> Result<Vec<BatchToSend>, LedgerError> {
        let (now_ms, limit, only) = (claim.now_ms, claim.batches, claim.countries);
        let campaign = fence.campaign;
        let mut tx = self.transaction().await?;
        self.check_runner(&mut tx, fence).await?;
        let taken = sqlx::query(
            concat!("WITH due AS (
                 SELECT seq, size FROM batches
                 WHERE campaign_id = $2 AND state = $5 AND not_before_ms <= $1
                   AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = $2)
                   AND ($7::TEXT[] IS NULL OR ", window_key_sql!(), " = ANY($7))
                 ORDER BY seq LIMIT $3
                 FOR UPDATE SKIP LOCKED),
             fits AS (
                 SELECT seq FROM (SELECT seq, SUM(size) OVER (ORDER BY seq) AS orders_through FROM due) d
                 WHERE $8::BIGINT IS NULL OR orders_through <= $8)
             UPDATE batches b SET state = $4, attempts = attempts + 1, updated_at_ms = $1, runner = $6
             FROM fits WHERE b.campaign_id = $2 AND b.seq = fits.seq AND b.state = $5
             RETURNING b.seq, b.country, b.attempts, b.attempts_before_resend, b.code"),
        )
        .bind(now_ms)
        .bind(campaign.0)
        .bind(limit as i64)
        .bind(BatchState::Sending.as_str())
        .bind(BatchState::Pending.as_str())
        .bind(&fence.owner)
        .bind(only)
        .bind(claim.orders.map(|n| n as i64))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let claimed: Vec<i64> = taken.iter().map(|row| row.get::<i64, _>(0)).collect();
        // Numbers put on the do-not-call list since planning leave their
        // batches now, just before they are sent; a batch left empty is
        // never sent.
        let mut emptied: Vec<i64> = Vec::new();
        let suppressed = super::suppress::set_aside_suppressed(
            &mut tx,
            campaign.0,
            now_ms,
            super::suppress::Which::Batches(&claimed),
        )
        .await
        .map_err(|e| self.query_error(e))?;
        // Redials whose contact was answered, opted out or ran out of
        // attempts meanwhile are settled; one due later is withdrawn.
        let rechecked = match claim.redial {
            Some(policy) => recheck_redials(&mut tx, campaign.0, &claimed, policy, now_ms)
                .await
                .map_err(|e| self.query_error(e))?,
            None => 0,
        };
        if suppressed + rechecked > 0 {
            emptied = sqlx::query_scalar(
                "UPDATE batches SET state = $3, attempts = attempts - 1, updated_at_ms = $4, runner = NULL,
                     message = $5
                 WHERE campaign_id = $1 AND seq = ANY($2) AND size = 0
                 RETURNING seq",
            )
            .bind(campaign.0)
            .bind(&claimed)
            .bind(BatchState::Cancelled.as_str())
            .bind(now_ms)
            .bind(EMPTIED_BEFORE_SENDING)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        }
        let mut batches = Vec::with_capacity(taken.len());
        for row in taken
            .iter()
            .filter(|row| !emptied.contains(&row.get::<i64, _>(0)))
        {
            batches.push(BatchToSend::claimed(
                self.batch_seq(row.get::<i64, _>(0))?,
                row.get(1),
                row.get::<i32, _>(2).into(),
                row.get::<i32, _>(3).into(),
                row.get(4),
                Vec::new(),
            ));
        }
        batches.sort_by_key(|batch| batch.seq);
        if batches.is_empty() {
            tx.commit().await.map_err(|e| self.query_error(e))?;
            return Ok(batches);
        }
        let seqs: Vec<i64> = batches.iter().map(|b| i64::from(b.seq)).collect();
        let numbers: Vec<i32> = batches.iter().map(|b| b.attempt as i32).collect();
        sqlx::query(
            "INSERT INTO attempts (campaign_id, batch_seq, number, started_at_ms)
             SELECT $1, seq, number, $4 FROM UNNEST($2::BIGINT[], $3::INTEGER[]) AS t (seq, number)",
        )
        .bind(campaign.0)
        .bind(&seqs)
        .bind(&numbers)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let orders = sqlx::query(
            "SELECT batch_seq, order_id, phone, other FROM orders
             WHERE campaign_id = $1 AND batch_seq = ANY($2) AND set_aside IS NULL
               AND id <= (SELECT planned_through FROM campaigns WHERE id = $1)
             ORDER BY batch_seq, id",
        )
        .bind(campaign.0)
        .bind(&seqs)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let mut batch = batches.iter_mut().peekable();
        for row in orders {
            let seq = row.get::<i64, _>(0);
            while batch.peek().is_some_and(|b| i64::from(b.seq) != seq) {
                batch.next();
            }
            let Some(into) = batch.peek_mut() else {
                return Err(self.corrupt(format!("an order of batch #{seq} out of order")));
            };
            into.orders.push(BatchOrder {
                order_id: row.get::<Option<String>, _>(1).unwrap_or_default(),
                phone: row.get(2),
                other: row.get(3),
            });
        }
        // Durable (synchronous_commit = on) before the caller sends anything.
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(batches)
    }

    pub async fn next_due_at(
        &self,
        campaign: CampaignId,
        only: Option<&[String]>,
    ) -> Result<Option<i64>, LedgerError> {
        sqlx::query_scalar(concat!(
            "SELECT MIN(not_before_ms) FROM batches WHERE campaign_id = $1 AND state = $2
               AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = $1)
               AND ($3::TEXT[] IS NULL OR ",
            window_key_sql!(),
            " = ANY($3))"
        ))
        .bind(campaign.0)
        .bind(BatchState::Pending.as_str())
        .bind(only)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))
    }

    pub async fn existing_batches(
        &self,
        campaign: CampaignId,
        seqs: Vec<i64>,
    ) -> Result<Vec<i64>, LedgerError> {
        sqlx::query_scalar("SELECT seq FROM batches WHERE campaign_id = $1 AND seq = ANY($2)")
            .bind(campaign.0)
            .bind(&seqs)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.query_error(e))
    }

    pub async fn pending_windows(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
            "SELECT ",
            window_key_sql!(),
            " AS window_key, SUM(size)::BIGINT FROM batches WHERE campaign_id = $1 AND state = $2
               AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = $1)
             GROUP BY window_key ORDER BY window_key"
        ))
        .bind(campaign.0)
        .bind(BatchState::Pending.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(rows.into_iter().map(|(key, n)| (key, n as u64)).collect())
    }

    /// Records an attempt's result and its batch's new state in one
    /// transaction, unless `fence`'s runner was presumed dead meanwhile.
    pub async fn finish_attempt(
        &self,
        fence: &Fence,
        seq: BatchSeq,
        attempt: u32,
        result: &AttemptResult,
    ) -> Result<(), LedgerError> {
        match self.record(fence, seq, attempt, result).await {
            Err(e @ LedgerError::Query { .. }) => Err(self.lost_or(fence, e).await),
            recorded => recorded,
        }
    }

    async fn record(
        &self,
        fence: &Fence,
        seq: BatchSeq,
        attempt: u32,
        result: &AttemptResult,
    ) -> Result<(), LedgerError> {
        debug_assert_ne!(result.batch_state, BatchState::Sending);
        let campaign = fence.campaign;
        let mut tx = self.transaction().await?;
        self.check_runner(&mut tx, fence).await?;
        sqlx::query(
            "UPDATE attempts SET duration_ms = $1, http_status = $2, code = $3, message = $4, req_id = $5, decision = $6
             WHERE campaign_id = $7 AND batch_seq = $8 AND number = $9",
        )
        .bind(result.duration_ms)
        .bind(result.http_status.map(i32::from))
        .bind(result.code)
        .bind(result.message.as_deref())
        .bind(result.req_id.as_deref())
        .bind(result.decision.as_str())
        .bind(campaign.0)
        .bind(i64::from(seq))
        .bind(attempt as i32)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let updated = sqlx::query(
            "UPDATE batches SET state = $1, code = $2, message = $3, req_id = $4, not_before_ms = $5, updated_at_ms = $6,
                    attempts_before_resend = attempts_before_resend + $7
             WHERE campaign_id = $8 AND seq = $9 AND state = $10 AND runner = $11",
        )
        .bind(result.batch_state.as_str())
        .bind(result.code)
        .bind(result.message.as_deref())
        .bind(result.req_id.as_deref())
        .bind(result.not_before_ms)
        .bind(result.finished_at_ms)
        .bind(i32::from(!result.spends_budget))
        .bind(campaign.0)
        .bind(i64::from(seq))
        .bind(BatchState::Sending.as_str())
        .bind(&fence.owner)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        if updated.rows_affected() != 1 {
            return Err(self.corrupt(not_sending_when_it_ended(seq.into(), attempt)));
        }
        tx.commit().await.map_err(|e| self.query_error(e))
    }

    pub async fn resend(
        &self,
        campaign: CampaignId,
        resend: &Resend<'_>,
    ) -> Result<Resent, LedgerError> {
        let only = (!resend.only.is_empty()).then(|| seq_array(resend.only));
        let mut tx = self.transaction().await?;
        let chosen: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT seq, resend_after_ms FROM batches
             WHERE campaign_id = $1 AND state = $2 AND ($3::BIGINT[] IS NULL OR seq = ANY($3))
             ORDER BY seq FOR UPDATE",
        )
        .bind(campaign.0)
        .bind(resend.from.as_str())
        .bind(only.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let chosen = chosen
            .into_iter()
            .map(|(seq, until)| Ok((self.batch_seq(seq)?, until)))
            .collect::<Result<Vec<_>, LedgerError>>()?;
        let resent = Resent::split(chosen, resend.now_ms);
        let requeued = seq_array(&resent.requeued);
        sqlx::query(
            "INSERT INTO resends (campaign_id, batch_seq, from_state, requested_by, requested_at_ms)
             SELECT $1, seq, $3, $4, $5 FROM UNNEST($2::BIGINT[]) AS t (seq)",
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
            "UPDATE batches SET state = $4, not_before_ms = 0, attempts_before_resend = attempts, updated_at_ms = $3,
                    runner = NULL
             WHERE campaign_id = $1 AND seq = ANY($2)",
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

/// Re-checks the redial orders of the batches `seqs` of `campaign` against
/// their contacts' calls now (see the SQLite claim's `recheck_redials`).
async fn recheck_redials(
    tx: &mut sqlx::PgConnection,
    campaign: i64,
    seqs: &[i64],
    policy: &crate::redial::Policy,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let redials: Vec<ClaimedRedial> = sqlx::query(
        "SELECT o.id, o.contact_row, o.attempt, b.country, o.order_id, o.batch_seq, b.zones
         FROM orders o JOIN batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq
         WHERE o.campaign_id = $1 AND o.batch_seq = ANY($2)
           AND o.set_aside IS NULL AND o.contact_row IS NOT NULL",
    )
    .bind(campaign)
    .bind(seqs)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| ClaimedRedial {
        row: row.get(0),
        contact: row.get(1),
        attempt: row.get::<i32, _>(2) as u32,
        country: row.get(3),
        order_id: row.get(4),
        batch_seq: row.get(5),
        zones: row.get(6),
    })
    .collect();
    let mut left = 0;
    for redial in &redials {
        let calls = sqlx::query(CALLS_BEFORE_REDIAL)
            .bind(redial.contact)
            .bind(redial.attempt as i32)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                (
                    row.get::<i32, _>(0) as u32,
                    CallSeen {
                        start_ms: row.get(1),
                        end_ms: row.get(2),
                        answered: row.get(3),
                        hangup_code: row.get(4),
                        call_status: row.get(5),
                        intent: row.get(6),
                        of_latest: false,
                    },
                )
            })
            .collect();
        match recheck(policy, redial, calls, now_ms) {
            Recheck::Send => continue,
            Recheck::Settle(reason) => {
                sqlx::query(
                    "UPDATE orders SET set_aside = $2, batch_seq = NULL, reason = $3 WHERE id = $1",
                )
                .bind(redial.row)
                .bind(OrderState::Settled.as_str())
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            }
            Recheck::Withdraw => {
                sqlx::query(
                    "DELETE FROM order_keys WHERE campaign_id = $1 AND kind = 1 AND key = $2",
                )
                .bind(campaign)
                .bind(&redial.order_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM orders WHERE id = $1")
                    .bind(redial.row)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("UPDATE batches SET size = size - 1 WHERE campaign_id = $1 AND seq = $2")
            .bind(campaign)
            .bind(redial.batch_seq)
            .execute(&mut *tx)
            .await?;
        left += 1;
    }
    Ok(left)
}
