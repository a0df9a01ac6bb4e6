//! Ledger writes of dispatch: picking due batches, the durable `sending`
//! mark before a request, the outcome after it, and operator re-sends.

use crate::ledger::model::window_key_sql;
use rusqlite::params;

use super::{CampaignId, Fence, LedgerError, Sqlite};
use crate::batch::{BatchOrder, BatchSeq};
use crate::ledger::model::{
    not_sending_when_it_ended, AttemptResult, BatchToSend, Claim, Resend, Resent,
    EMPTIED_BEFORE_SENDING,
};
use crate::ledger::redials::{recheck, ClaimedRedial, CALLS_BEFORE_REDIAL};
use crate::redial::{CallSeen, Recheck};
use crate::state::{BatchState, OrderState};

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
        claim: &Claim<'_>,
    ) -> Result<Vec<BatchToSend>, LedgerError> {
        let fence = fence.clone();
        let only = countries_json(claim.countries);
        let (now_ms, limit) = (claim.now_ms, claim.batches);
        let most_orders = claim.orders.map(|n| n as i64);
        let redial = claim.redial.cloned();
        self.write(move |this, tx| {
            let e = this.error();
            let campaign = fence.campaign;
            this.check_fence_on(tx, &fence)?;
            let mut taken: Vec<(i64, String, i64, i64, Option<i64>)> = tx
                .prepare(
                    concat!("UPDATE batches SET state = ?4, attempts = attempts + 1, updated_at_ms = ?1
                     WHERE campaign_id = ?2 AND state = ?5 AND seq IN (
                         SELECT seq FROM (
                             SELECT seq, SUM(size) OVER (ORDER BY seq) AS orders_through FROM batches
                             WHERE campaign_id = ?2 AND state = ?5 AND not_before_ms <= ?1
                               AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = ?2)
                               AND (?6 IS NULL OR ", window_key_sql!(), " IN (SELECT value FROM json_each(?6)))
                             ORDER BY seq LIMIT ?3)
                         WHERE ?7 IS NULL OR orders_through <= ?7)
                     RETURNING seq, country, attempts, attempts_before_resend, code"),
                )
                .map_err(e)?
                .query_map(
                    params![
                        now_ms,
                        campaign.0,
                        limit as i64,
                        BatchState::Sending.as_str(),
                        BatchState::Pending.as_str(),
                        only,
                        most_orders,
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
                )
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            taken.sort_by_key(|row| row.0);
            // Numbers put on the do-not-call list since planning leave
            // their batches now, just before they are sent.
            let seqs = serde_json::to_string(&taken.iter().map(|row| row.0).collect::<Vec<_>>())
                .expect("numbers serialize");
            let suppressed = super::suppress::set_aside_suppressed(
                tx,
                campaign.0,
                now_ms,
                "o.batch_seq IN (SELECT value FROM json_each(?3))",
                &[&seqs],
            )
            .map_err(e)?;
            // Redials whose contact was answered, opted out or ran out of
            // attempts meanwhile are settled; one due later is withdrawn.
            let rechecked = match &redial {
                Some(policy) => recheck_redials(tx, campaign.0, &seqs, policy, now_ms).map_err(e)?,
                None => 0,
            };
            if suppressed + rechecked > 0 {
                let emptied: Vec<i64> = tx
                    .prepare(EMPTIED)
                    .map_err(e)?
                    .query_map(
                        params![
                            campaign.0,
                            seqs,
                            BatchState::Cancelled.as_str(),
                            now_ms,
                            EMPTIED_BEFORE_SENDING
                        ],
                        |row| row.get(0),
                    )
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                taken.retain(|row| !emptied.contains(&row.0));
            }
            let mut record_attempt = tx
                .prepare_cached(
                    "INSERT INTO attempts (campaign_id, batch_seq, number, started_at_ms) VALUES (?, ?, ?, ?)",
                )
                .map_err(e)?;
            let mut batches = Vec::with_capacity(taken.len());
            for (seq, country, attempts, attempts_before_resend, last_code) in taken {
                let seq = this.batch_seq(seq)?;
                let attempt = attempts as u32;
                record_attempt
                    .execute(params![campaign.0, seq, attempt, now_ms])
                    .map_err(e)?;
                let orders = orders_of_batch(tx, campaign.0, seq).map_err(e)?;
                batches.push(BatchToSend::claimed(
                    seq,
                    country,
                    attempts,
                    attempts_before_resend,
                    last_code,
                    orders,
                ));
            }
            // Durable (synchronous = FULL) once `write` commits, before the
            // caller sends anything.
            Ok(batches)
        })
        .await
    }

    /// The earliest time a pending batch of the campaign (of one of the
    /// `only` countries, if given) becomes due, if any.
    pub async fn next_due_at(
        &self,
        campaign: CampaignId,
        only: Option<&[String]>,
    ) -> Result<Option<i64>, LedgerError> {
        let only = countries_json(only);
        self.read(move |this, conn| {
            conn.query_row(
                concat!(
                    "SELECT MIN(not_before_ms) FROM batches WHERE campaign_id = ?1 AND state = ?2
                   AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = ?1)
                   AND (?3 IS NULL OR ",
                    window_key_sql!(),
                    " IN (SELECT value FROM json_each(?3)))"
                ),
                params![campaign.0, BatchState::Pending.as_str(), only],
                |row| row.get(0),
            )
            .map_err(this.error())
        })
        .await
    }

    /// The countries of the campaign's planned pending batches.
    pub async fn existing_batches(
        &self,
        campaign: CampaignId,
        seqs: Vec<i64>,
    ) -> Result<Vec<i64>, LedgerError> {
        let seqs = serde_json::to_string(&seqs).expect("numbers serialize");
        self.read(move |this, conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT seq FROM batches WHERE campaign_id = ?1 AND seq IN (SELECT value FROM json_each(?2))",
                )
                .map_err(this.error())?;
            let rows = statement
                .query_map(params![campaign.0, seqs], |row| row.get(0))
                .map_err(this.error())?;
            rows.collect::<Result<_, _>>().map_err(this.error())
        })
        .await
    }

    pub async fn pending_windows(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        self.read(move |this, conn| {
            let mut statement = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    window_key_sql!(),
                    " AS window_key, SUM(size) FROM batches WHERE campaign_id = ?1 AND state = ?2
                       AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = ?1)
                     GROUP BY window_key ORDER BY window_key"
                ))
                .map_err(this.error())?;
            let rows = statement
                .query_map(params![campaign.0, BatchState::Pending.as_str()], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
                })
                .map_err(this.error())?;
            rows.collect::<Result<_, _>>().map_err(this.error())
        })
        .await
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
        let fence = fence.clone();
        let result = result.clone();
        self.write(move |this, tx| {
            let e = this.error();
            let campaign = fence.campaign;
            this.check_fence_on(tx, &fence)?;
            tx.execute(
                "UPDATE attempts SET duration_ms = ?, http_status = ?, code = ?, message = ?, req_id = ?, decision = ?
                 WHERE campaign_id = ? AND batch_seq = ? AND number = ?",
                params![
                    result.duration_ms,
                    result.http_status,
                    result.code,
                    result.message,
                    result.req_id,
                    result.decision.as_str(),
                    campaign.0,
                    seq,
                    attempt,
                ],
            )
            .map_err(e)?;
            let updated = tx
                .execute(
                    "UPDATE batches SET state = ?, code = ?, message = ?, req_id = ?, not_before_ms = ?, updated_at_ms = ?,
                            attempts_before_resend = attempts_before_resend + ?
                     WHERE campaign_id = ? AND seq = ? AND state = ?",
                    params![
                        result.batch_state.as_str(),
                        result.code,
                        result.message,
                        result.req_id,
                        result.not_before_ms,
                        result.finished_at_ms,
                        i64::from(!result.spends_budget),
                        campaign.0,
                        seq,
                        BatchState::Sending.as_str(),
                    ],
                )
                .map_err(e)?;
            if updated != 1 {
                return Err(LedgerError::Corrupt {
                    path: this.path.clone(),
                    message: not_sending_when_it_ended(seq.into(), attempt),
                });
            }
            Ok(())
        })
        .await
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
        let from = resend.from.as_str();
        let requested_by = resend.requested_by.to_owned();
        let now_ms = resend.now_ms;
        self.write(move |this, tx| {
            let e = this.error();
            let chosen: Vec<(i64, i64)> = tx
                .prepare(
                    "SELECT seq, resend_after_ms FROM batches
                     WHERE campaign_id = ?1 AND state = ?2
                       AND (?3 IS NULL OR seq IN (SELECT value FROM json_each(?3)))
                     ORDER BY seq",
                )
                .map_err(e)?
                .query_map(params![campaign.0, from, only], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let chosen = chosen
                .into_iter()
                .map(|(seq, until)| Ok((this.batch_seq(seq)?, until)))
                .collect::<Result<Vec<_>, LedgerError>>()?;
            let resent = Resent::split(chosen, now_ms);
            // `?2` is the JSON array of the batches re-queued.
            let requeued = json_numbers(&resent.requeued);
            tx.execute(
                "INSERT INTO resends (campaign_id, batch_seq, from_state, requested_by, requested_at_ms)
                 SELECT ?1, value, ?3, ?4, ?5 FROM json_each(?2)",
                params![campaign.0, requeued, from, requested_by, now_ms],
            )
            .map_err(e)?;
            tx.execute(
                "UPDATE batches SET state = ?4, not_before_ms = 0, attempts_before_resend = attempts, updated_at_ms = ?3
                 WHERE campaign_id = ?1 AND seq IN (SELECT value FROM json_each(?2))",
                params![campaign.0, requeued, now_ms, BatchState::Pending.as_str()],
            )
            .map_err(e)?;
            Ok(resent)
        })
        .await
    }
}

/// Re-checks the redial orders of the batches `seqs` (a JSON array) of
/// `campaign` against their contacts' calls now: settled ones are set
/// aside, withdrawn ones deleted (with their id's claim), to be planned
/// again when due. Returns how many left their batches.
fn recheck_redials(
    tx: &rusqlite::Transaction<'_>,
    campaign: i64,
    seqs: &str,
    policy: &crate::redial::Policy,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let redials: Vec<ClaimedRedial> = tx
        .prepare_cached(
            "SELECT o.id, o.contact_row, o.attempt, b.country, o.order_id, o.batch_seq, b.zones
             FROM orders o CROSS JOIN batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq
             WHERE o.campaign_id = ?1 AND o.batch_seq IN (SELECT value FROM json_each(?2))
               AND o.set_aside IS NULL AND o.contact_row IS NOT NULL",
        )?
        .query_map(params![campaign, seqs], |row| {
            Ok(ClaimedRedial {
                row: row.get(0)?,
                contact: row.get(1)?,
                attempt: row.get(2)?,
                country: row.get(3)?,
                order_id: row.get(4)?,
                batch_seq: row.get(5)?,
                zones: row.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut left = 0;
    for redial in &redials {
        let calls = tx
            .prepare_cached(CALLS_BEFORE_REDIAL)?
            .query_map(params![redial.contact, redial.attempt], |row| {
                Ok((
                    row.get::<_, u32>(0)?,
                    CallSeen {
                        start_ms: row.get(1)?,
                        end_ms: row.get(2)?,
                        answered: row.get(3)?,
                        hangup_code: row.get(4)?,
                        call_status: row.get(5)?,
                        intent: row.get(6)?,
                        of_latest: false,
                    },
                ))
            })?
            .collect::<Result<_, _>>()?;
        match recheck(policy, redial, calls, now_ms) {
            Recheck::Send => continue,
            Recheck::Settle(reason) => {
                tx.prepare_cached(
                    "UPDATE orders SET set_aside = ?2, batch_seq = NULL, reason = ?3 WHERE id = ?1",
                )?
                .execute(params![
                    redial.row,
                    OrderState::Settled.as_str(),
                    reason
                ])?;
            }
            Recheck::Withdraw => {
                tx.prepare_cached(
                    "DELETE FROM order_keys WHERE campaign_id = ?1 AND kind = 1 AND key = ?2",
                )?
                .execute(params![campaign, redial.order_id])?;
                tx.prepare_cached("DELETE FROM orders WHERE id = ?1")?
                    .execute([redial.row])?;
            }
        }
        tx.prepare_cached(
            "UPDATE batches SET size = size - 1 WHERE campaign_id = ?1 AND seq = ?2",
        )?
        .execute(params![campaign, redial.batch_seq])?;
        left += 1;
    }
    Ok(left)
}

/// Cancels the batches of campaign `?1` among `?2` (a JSON array) that
/// suppressions left empty, undoing the attempt they were taken for.
const EMPTIED: &str = "UPDATE batches SET state = ?3, attempts = attempts - 1, updated_at_ms = ?4,
        message = ?5
    WHERE campaign_id = ?1 AND seq IN (SELECT value FROM json_each(?2)) AND size = 0
    RETURNING seq";

/// The planned, live orders of batch `seq` of campaign `campaign`, in file
/// order: what its request carries.
pub(super) fn orders_of_batch(
    conn: &rusqlite::Connection,
    campaign: i64,
    seq: impl rusqlite::ToSql,
) -> rusqlite::Result<Vec<BatchOrder>> {
    conn.prepare_cached(
        "SELECT order_id, phone, other FROM orders
         WHERE campaign_id = ?1 AND batch_seq = ?2 AND set_aside IS NULL
           AND id <= (SELECT planned_through FROM campaigns WHERE id = ?1)
         ORDER BY id",
    )?
    .query_map(params![campaign, seq], |row| {
        Ok(BatchOrder {
            order_id: row.get(0)?,
            phone: row.get(1)?,
            other: row.get(2)?,
        })
    })?
    .collect()
}

/// A country filter as a JSON array for `json_each`; `None` for all.
fn countries_json(only: Option<&[String]>) -> Option<String> {
    only.map(|countries| serde_json::to_string(countries).expect("strings serialize"))
}

/// Batch numbers as a JSON array, for `json_each`.
pub(super) fn json_numbers(seqs: &[BatchSeq]) -> String {
    let numbers: Vec<u32> = seqs.iter().map(|seq| seq.get()).collect();
    serde_json::to_string(&numbers).unwrap_or_default()
}
