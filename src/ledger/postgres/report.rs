//! Reads for reports on PostgreSQL: counts by state from the batches and
//! the campaign's counts of orders set aside (never a scan of orders), and
//! the orders export through a server-side cursor, a page at a time.

use std::borrow::Cow;
use std::collections::HashMap;

use sqlx::Row as _;

use super::Postgres;
use crate::ledger::model::{
    last_call_columns, AttemptGroup, CallFilter, CampaignStatus, KeyKind, LastCall, OrderLine,
    OrderStream, ReportData, SlowAttempt, TroubledBatch, REPORT_ROWS, TIMELINE_BUCKETS,
};
use crate::ledger::{CampaignId, LedgerError};
use crate::outcome::{BatchState, OrderState};

/// Orders fetched from the cursor at a time.
const PAGE: usize = 5_000;

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

    pub async fn status(
        &self,
        campaign: CampaignId,
        name: &str,
    ) -> Result<CampaignStatus, LedgerError> {
        let (rows_read, invalid, duplicate, suppressed): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT rows_read, invalid_orders, duplicate_orders, suppressed_orders FROM campaigns WHERE id = $1",
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
            let mut batches: HashMap<i64, (BatchState, Option<i64>, Option<String>, i64)> =
                HashMap::new();
            let rows =
                sqlx::query("SELECT seq, state, code, message, updated_at_ms FROM batches WHERE campaign_id = $1")
                    .bind(campaign.0)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(e)?;
            for row in rows {
                let state: BatchState = self.parse_state(row.get::<&str, _>(1))?;
                batches.insert(row.get(0), (state, row.get(2), row.get(3), row.get(4)));
            }
            let filter = match state {
                None => String::new(),
                Some(OrderState::InBatch(wanted)) => {
                    let seqs: Vec<String> = batches
                        .iter()
                        .filter(|(_, (state, _, _, _))| *state == wanted)
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
            let calls = call.map_or("", CallFilter::sql);
            let (columns, join) = last_call_columns(any_calls);
            sqlx::query(&format!(
                "DECLARE orders_out NO SCROLL CURSOR FOR
                 SELECT o.order_id, o.phone, o.set_aside, o.batch_seq, o.reason, o.line,
                        {columns}
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
                        (None, Some((state, _, _, _))) => OrderState::InBatch(*state),
                        (None, None) => OrderState::InBatch(BatchState::Pending),
                    };
                    let line = OrderLine {
                        order_id: row.get::<Option<&str>, _>(0).map(Cow::Borrowed),
                        phone: Cow::Borrowed(row.get::<&str, _>(1)),
                        state,
                        batch: batch.map(|seq| seq as u32),
                        code: outcome.and_then(|(_, code, _, _)| *code),
                        message: row
                            .get::<Option<&str>, _>(4)
                            .map(Cow::Borrowed)
                            .or_else(|| {
                                outcome.and_then(|(_, _, message, _)| {
                                    message.as_deref().map(Cow::Borrowed)
                                })
                            }),
                        line: row.get::<i64, _>(5) as u64,
                        updated_at_ms: outcome.map(|(_, _, _, at)| *at),
                        last_call: row.get::<Option<&str>, _>(10).map(|_| LastCall {
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
            "SELECT seq, country, state, code, message FROM batches
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
            })
            .collect();
        tx.commit().await.map_err(e)?;
        Ok(data)
    }
}
