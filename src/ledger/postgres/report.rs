//! Reads for reports on PostgreSQL: counts by state from the batches and
//! the campaign's counts of orders set aside (never a scan of orders), and
//! the orders export through a server-side cursor, a page at a time.

use std::borrow::Cow;
use std::collections::HashMap;

use sqlx::Row as _;

use super::Postgres;
use crate::ledger::model::{
    AttemptGroup, BatchOutcome, CallFilter, CampaignStatus, KeyKind, LastCall, OrderLine,
    OrderStream, ReportData, SlowAttempt, TroubledBatch, REPORT_ROWS, TIMELINE_BUCKETS,
};
use crate::ledger::{CampaignId, LedgerError};
use crate::state::{BatchState, OrderState};

/// `$1` a campaign: each order's last call, and whether any was answered.
pub(super) const CALLS_OF_ORDERS: &str =
    "SELECT DISTINCT ON (order_row) order_row, answered, call_seconds, hangup_reason, intent,
            bool_or(answered) OVER (PARTITION BY order_row) AS any_answered
     FROM calls WHERE campaign_id = $1 AND order_row IS NOT NULL
     ORDER BY order_row, COALESCE(start_ms, received_at_ms) DESC, call_id DESC";

/// Orders fetched from the cursor at a time.
const PAGE: usize = 5_000;

impl Postgres {
    /// Where the campaign's contacts stand with redials at `now_ms` (see
    /// SQLite's `funnel`).
    pub async fn funnel(
        &self,
        campaign: CampaignId,
        now_ms: i64,
        policy: Option<crate::redial::Policy>,
    ) -> Result<Option<crate::redial::Funnel>, LedgerError> {
        let e = |source| self.query_error(source);
        let mut tx = self.pool.begin().await.map_err(e)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        let (kept, stopped_at_ms): (Option<String>, Option<i64>) = sqlx::query_as(
            "SELECT redial_policy, redials_stopped_at_ms FROM campaigns WHERE id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        let Some(policy) =
            policy.or_else(|| kept.as_deref().and_then(crate::redial::Policy::from_json))
        else {
            return Ok(None);
        };
        let mut walk = crate::ledger::redials::Walk::counting(&policy, now_ms);
        super::redials::walk_contacts(&mut tx, campaign.0, &mut walk, false)
            .await
            .map_err(e)?;
        let mut funnel = walk.funnel;
        funnel.stopped_at_ms = stopped_at_ms;
        funnel.orders = sqlx::query_scalar::<_, i64>(crate::ledger::redials::REDIAL_ORDERS)
            .bind(campaign.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(e)? as u64;
        tx.commit().await.map_err(e)?;
        Ok(Some(funnel))
    }
}

impl Postgres {
    /// Which of `keys` (of one kind) the campaign's live orders hold, with
    /// the line of the order holding each.
    pub async fn known_keys(
        &self,
        campaign: CampaignId,
        kind: KeyKind,
        keys: Vec<String>,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        let found: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key, line FROM order_keys WHERE campaign_id = $1 AND kind = $2 AND key = ANY($3)",
        )
        .bind(campaign.0)
        .bind(kind as i16)
        .bind(&keys)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(found
            .into_iter()
            .map(|(key, line)| (key, line as u64))
            .collect())
    }

    pub async fn order_ids_elsewhere(
        &self,
        except: Option<CampaignId>,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        sqlx::query_as(
            "SELECT k.key, MIN(c.name) FROM order_keys k JOIN campaigns c ON c.id = k.campaign_id
             WHERE k.kind = 1 AND k.key = ANY($2) AND k.campaign_id <> $1
             GROUP BY k.key",
        )
        .bind(except.map_or(0, |c| c.0))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))
    }

    pub async fn status(
        &self,
        campaign: CampaignId,
        name: &str,
    ) -> Result<CampaignStatus, LedgerError> {
        // Settled redials are few: counted, not kept as a counter.
        let (rows_read, invalid, duplicate, suppressed, settled): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT rows_read, invalid_orders, duplicate_orders, suppressed_orders,
                    (SELECT COUNT(*) FROM orders WHERE campaign_id = $1 AND set_aside = 'settled')
             FROM campaigns WHERE id = $1",
            )
            .bind(campaign.0)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        let batch_rows = sqlx::query(
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0)::BIGINT FROM batches WHERE campaign_id = $1 GROUP BY state",
        )
        .bind(campaign.0)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        let mut batches = Vec::with_capacity(batch_rows.len());
        for row in batch_rows {
            let state: BatchState = self.parse_state(row.get::<&str, _>(0))?;
            batches.push((
                state,
                row.get::<i64, _>(1) as u64,
                row.get::<i64, _>(2) as u64,
            ));
        }
        Ok(CampaignStatus::from_counts(
            name,
            rows_read as u64,
            batches,
            [
                (OrderState::Invalid, invalid as u64),
                (OrderState::Duplicate, duplicate as u64),
                (OrderState::Suppressed, suppressed as u64),
                (OrderState::Settled, settled as u64),
            ],
        ))
    }

    /// Streams the campaign's orders in input order (optionally only those
    /// in `state`) into `sink`, from one snapshot, `PAGE` rows at a time
    /// through a server-side cursor. Blocking: call it off the runtime's
    /// worker threads.
    pub fn for_each_order(
        &self,
        campaign: CampaignId,
        state: Option<OrderState>,
        call: Option<CallFilter>,
        sink: OrderStream<'_>,
    ) -> Result<(), LedgerError> {
        let e = |source| self.query_error(source);
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            let mut tx = self.pool.begin().await.map_err(e)?;
            // One snapshot; and the reader of the output may be slow (a
            // pager): this session may wait for it between pages.
            sqlx::raw_sql(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;
                 SET LOCAL idle_in_transaction_session_timeout = 0",
            )
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            let mut batches: HashMap<i64, BatchOutcome> = HashMap::new();
            let rows = sqlx::query(
                "SELECT seq, state, code, message, updated_at_ms, req_id FROM batches WHERE campaign_id = $1",
            )
            .bind(campaign.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(e)?;
            for row in rows {
                let state: BatchState = self.parse_state(row.get::<&str, _>(1))?;
                batches.insert(
                    row.get(0),
                    BatchOutcome {
                        state,
                        code: row.get(2),
                        message: row.get(3),
                        updated_at_ms: row.get(4),
                        req_id: row.get(5),
                    },
                );
            }
            let filter = match state {
                None => String::new(),
                Some(OrderState::InBatch(wanted)) => {
                    let seqs: Vec<String> = batches
                        .iter()
                        .filter(|(_, batch)| batch.state == wanted)
                        .map(|(seq, _)| seq.to_string())
                        .collect();
                    format!(
                        "AND set_aside IS NULL AND batch_seq = ANY('{{{}}}'::BIGINT[])",
                        seqs.join(",")
                    )
                }
                Some(set_aside) => format!("AND set_aside = '{}'", set_aside.as_str()),
            };
            let any_calls: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM calls WHERE campaign_id = $1)")
                    .bind(campaign.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(e)?;
            // Each order's last call and whether any was answered, joined
            // set-wise (both sides in order-row order).
            let (columns, join) = if any_calls {
                (
                    "lc.answered, lc.call_seconds, lc.hangup_reason, lc.intent, lc.order_row, lc.any_answered",
                    format!("LEFT JOIN ({CALLS_OF_ORDERS}) lc ON lc.order_row = o.id AND o.set_aside IS NULL"),
                )
            } else {
                (
                    "CAST(NULL AS BOOLEAN), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS TEXT),
                     CAST(NULL AS BIGINT), CAST(NULL AS BOOLEAN)",
                    String::new(),
                )
            };
            let calls = match call {
                None => "",
                Some(CallFilter::Answered) if any_calls => "AND o.set_aside IS NULL AND lc.any_answered",
                Some(CallFilter::Unanswered) if any_calls => {
                    "AND o.set_aside IS NULL AND lc.order_row IS NOT NULL AND NOT lc.any_answered"
                }
                Some(CallFilter::None) if any_calls => "AND o.set_aside IS NULL AND lc.order_row IS NULL",
                Some(CallFilter::None) => "AND o.set_aside IS NULL",
                Some(CallFilter::Answered | CallFilter::Unanswered) => "AND FALSE",
            };
            sqlx::query(&format!(
                "DECLARE orders_out NO SCROLL CURSOR FOR
                 SELECT o.order_id, o.phone, o.set_aside, o.batch_seq, o.reason, o.line,
                        {columns}, o.attempt,
                        (SELECT f.order_id FROM orders f WHERE f.id = o.contact_row)
                 FROM orders o {join}
                 WHERE o.campaign_id = $1 {filter} {calls} ORDER BY o.id"
            ))
            .bind(campaign.0)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            loop {
                let page = sqlx::query(&format!("FETCH {PAGE} FROM orders_out"))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(e)?;
                for row in &page {
                    let batch: Option<i64> = row.get(3);
                    let outcome = batch.and_then(|seq| batches.get(&seq));
                    let set_aside: Option<&str> = row.get(2);
                    let state = match (set_aside, outcome) {
                        (Some(set_aside), _) => self.parse_state(set_aside)?,
                        (None, Some(batch)) => OrderState::InBatch(batch.state),
                        (None, None) => OrderState::InBatch(BatchState::Pending),
                    };
                    let line = OrderLine {
                        // A row set aside shows no order id (see SQLite's).
                        order_id: row
                            .get::<Option<&str>, _>(0)
                            .filter(|_| set_aside.is_none())
                            .map(Cow::Borrowed),
                        phone: Cow::Borrowed(row.get::<&str, _>(1)),
                        state,
                        batch: batch.map(|seq| seq as u32),
                        code: outcome.and_then(|batch| batch.code),
                        message: row
                            .get::<Option<&str>, _>(4)
                            .map(Cow::Borrowed)
                            .or_else(|| {
                                outcome.and_then(|batch| batch.message.as_deref().map(Cow::Borrowed))
                            }),
                        line: row.get::<i64, _>(5) as u64,
                        updated_at_ms: outcome.map(|batch| batch.updated_at_ms),
                        req_id: outcome.and_then(BatchOutcome::shown_req_id),
                        attempt: row.get::<i32, _>(12) as u32,
                        first_order_id: row.get::<Option<&str>, _>(13).map(Cow::Borrowed),
                        last_call: row.get::<Option<i64>, _>(10).map(|_| LastCall {
                            answered: row.get(6),
                            talk_seconds: row.get(7),
                            hangup_reason: row.get::<Option<&str>, _>(8).map(Cow::Borrowed),
                            intent: row.get::<Option<&str>, _>(9).map(Cow::Borrowed),
                        }),
                    };
                    sink(&line).map_err(LedgerError::Output)?;
                }
                if page.len() < PAGE {
                    break;
                }
            }
            tx.commit().await.map_err(e)
        })
    }
}

impl Postgres {
    /// The numbers behind `report`: see [`ReportData`].
    pub async fn report_data(&self, campaign: CampaignId) -> Result<ReportData, LedgerError> {
        let e = |source| self.query_error(source);
        let mut tx = self.pool.begin().await.map_err(e)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        let mut data = ReportData::default();
        let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(started_at_ms), MAX(started_at_ms) FROM attempts WHERE campaign_id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        if let (Some(first), Some(last)) = (first, last) {
            data.first_ms = first;
            data.bucket_ms = ((last - first) / TIMELINE_BUCKETS + 1).max(1);
            data.timeline = vec![0; TIMELINE_BUCKETS as usize];
            let rows: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT (started_at_ms - $2) / $3, COUNT(*) FROM attempts WHERE campaign_id = $1 GROUP BY 1",
            )
            .bind(campaign.0)
            .bind(first)
            .bind(data.bucket_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(e)?;
            for (bucket, count) in rows {
                if let Some(slot) = data.timeline.get_mut(bucket as usize) {
                    *slot += count as u64;
                }
            }
        }
        let rows = sqlx::query(
            "SELECT COALESCE(decision, 'in flight'), http_status::BIGINT, code, COUNT(*) FROM attempts
             WHERE campaign_id = $1 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1",
        )
        .bind(campaign.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(e)?;
        data.attempts = rows
            .iter()
            .map(|row| AttemptGroup {
                decision: row.get(0),
                http_status: row.get(1),
                code: row.get(2),
                count: row.get::<i64, _>(3) as u64,
            })
            .collect();
        let rows = sqlx::query(
            "SELECT batch_seq, number, duration_ms, COALESCE(decision, 'in flight') FROM attempts
             WHERE campaign_id = $1 AND duration_ms IS NOT NULL
             ORDER BY duration_ms DESC, batch_seq LIMIT $2",
        )
        .bind(campaign.0)
        .bind(REPORT_ROWS)
        .fetch_all(&mut *tx)
        .await
        .map_err(e)?;
        data.slowest = rows
            .iter()
            .map(|row| SlowAttempt {
                batch: row.get::<i64, _>(0) as u32,
                attempt: row.get::<i32, _>(1) as u32,
                duration_ms: row.get(2),
                decision: row.get(3),
            })
            .collect();
        let rows = sqlx::query(
            "SELECT seq, country, state, code, message, req_id FROM batches
             WHERE campaign_id = $1 AND state = ANY($2) ORDER BY seq LIMIT $3",
        )
        .bind(campaign.0)
        .bind(
            [
                BatchState::Rejected,
                BatchState::Failed,
                BatchState::Uncertain,
            ]
            .map(|s| s.as_str().to_owned())
            .to_vec(),
        )
        .bind(REPORT_ROWS)
        .fetch_all(&mut *tx)
        .await
        .map_err(e)?;
        data.troubled = rows
            .iter()
            .map(|row| TroubledBatch {
                batch: row.get::<i64, _>(0) as u32,
                country: row.get(1),
                state: row.get(2),
                code: row.get(3),
                message: row.get(4),
                req_id: row.get(5),
            })
            .collect();
        tx.commit().await.map_err(e)?;
        Ok(data)
    }
}
