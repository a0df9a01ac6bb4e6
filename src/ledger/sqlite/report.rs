//! Ledger reads for reports: counts by state and per-order outcomes.
//!
//! Counts come from batch rows (orders follow their batch) and from the
//! small set of orders set aside, so `status` does not scan every order.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{CampaignId, LedgerError, Sqlite};
use crate::ledger::model::{
    AttemptGroup, BatchOutcome, CallFilter, CampaignStatus, LastCall, OrderLine, OrderStream,
    ReportData, SlowAttempt, TroubledBatch, REPORT_ROWS, TIMELINE_BUCKETS,
};
use crate::state::{BatchState, OrderState};
use rusqlite::params;

impl Sqlite {
    /// Where the campaign's contacts stand with redials at `now_ms`, by
    /// `policy`, else the `[redial]` its last run kept; `None` without one.
    pub async fn funnel(
        &self,
        campaign: CampaignId,
        now_ms: i64,
        policy: Option<crate::redial::Policy>,
    ) -> Result<Option<crate::redial::Funnel>, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let snapshot = conn.unchecked_transaction().map_err(e)?;
            let (kept, stopped_at_ms): (Option<String>, Option<i64>) = snapshot
                .query_row(
                    "SELECT redial_policy, redials_stopped_at_ms FROM campaigns WHERE id = ?1",
                    [campaign.0],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(e)?;
            let Some(policy) =
                policy.or_else(|| kept.as_deref().and_then(crate::redial::Policy::from_json))
            else {
                return Ok(None);
            };
            let mut walk = crate::ledger::redials::Walk::counting(&policy, now_ms);
            super::ingest::walk_contacts(&snapshot, campaign.0, |row| {
                walk.take(row);
                Ok(())
            })
            .map_err(e)?;
            walk.finish();
            let mut funnel = walk.funnel;
            funnel.stopped_at_ms = stopped_at_ms;
            funnel.orders = snapshot
                .query_row(crate::ledger::redials::REDIAL_ORDERS, [campaign.0], |row| {
                    row.get::<_, i64>(0)
                })
                .map_err(e)? as u64;
            Ok(Some(funnel))
        })
        .await
    }
}

impl Sqlite {
    pub async fn status(
        &self,
        campaign: CampaignId,
        name: &str,
    ) -> Result<CampaignStatus, LedgerError> {
        let name = name.to_owned();
        self.read(move |this, conn| {
            let e = this.error();
            // One snapshot for every count.
            let snapshot = conn.unchecked_transaction().map_err(e)?;
            let rows_read: i64 = snapshot
                .query_row("SELECT rows_read FROM campaigns WHERE id = ?", [campaign.0], |row| {
                    row.get(0)
                })
                .map_err(e)?;
            let mut batches = Vec::new();
            let mut statement = snapshot
                .prepare(
                    "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM batches WHERE campaign_id = ? GROUP BY state",
                )
                .map_err(e)?;
            let mut rows = statement.query([campaign.0]).map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                let state: String = row.get(0).map_err(e)?;
                let state: BatchState = this.parse_state(&state)?;
                let count: i64 = row.get(1).map_err(e)?;
                let orders: i64 = row.get(2).map_err(e)?;
                batches.push((state, count as u64, orders as u64));
            }
            let mut set_aside = Vec::new();
            let mut statement = snapshot
                .prepare(
                    "SELECT set_aside, COUNT(*) FROM orders WHERE campaign_id = ? AND set_aside IS NOT NULL GROUP BY set_aside",
                )
                .map_err(e)?;
            let mut rows = statement.query([campaign.0]).map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                let state: String = row.get(0).map_err(e)?;
                let state: OrderState = this.parse_state(&state)?;
                let count: i64 = row.get(1).map_err(e)?;
                set_aside.push((state, count as u64));
            }
            Ok(CampaignStatus::from_counts(
                &name,
                rows_read as u64,
                batches,
                set_aside,
            ))
        })
        .await
    }

    /// Streams the campaign's orders in input order, optionally only those in
    /// `state`, into `sink`; memory stays flat whatever the campaign's size.
    ///
    /// Blocking (call it off the async runtime): it reads on a connection of
    /// its own, one snapshot of the ledger, one row at a time, its text
    /// borrowed from SQLite, for an export of millions of orders.
    pub fn for_each_order(
        &self,
        campaign: CampaignId,
        state: Option<OrderState>,
        call: Option<CallFilter>,
        sink: OrderStream<'_>,
    ) -> Result<(), LedgerError> {
        let e = self.error();
        let mut conn = self.read_connection()?;
        let snapshot = conn.transaction().map_err(e)?;
        // Orders in a batch take its state and last answer: the batches are
        // few, so they are read once instead of joined to every order.
        let mut batches: HashMap<u32, BatchOutcome> = HashMap::new();
        {
            let mut statement = snapshot
                .prepare("SELECT seq, state, code, message, updated_at_ms, req_id FROM batches WHERE campaign_id = ?1")
                .map_err(e)?;
            let mut rows = statement.query([campaign.0]).map_err(e)?;
            while let Some(row) = rows.next().map_err(e)? {
                let state: String = row.get(1).map_err(e)?;
                batches.insert(
                    row.get(0).map_err(e)?,
                    BatchOutcome {
                        state: self.parse_state(&state)?,
                        code: row.get(2).map_err(e)?,
                        message: row.get(3).map_err(e)?,
                        updated_at_ms: row.get(4).map_err(e)?,
                        req_id: row.get(5).map_err(e)?,
                    },
                );
            }
        }
        let filter = match state {
            None => String::new(),
            Some(OrderState::InBatch(wanted)) => {
                let seqs: Vec<u32> = batches
                    .iter()
                    .filter(|(_, batch)| batch.state == wanted)
                    .map(|(seq, _)| *seq)
                    .collect();
                format!(
                    "AND set_aside IS NULL AND batch_seq IN (SELECT value FROM json_each('{}'))",
                    serde_json::to_string(&seqs).expect("numbers serialize")
                )
            }
            Some(set_aside) => format!("AND set_aside = '{}'", set_aside.as_str()),
        };
        let any_calls: bool = snapshot
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM calls WHERE campaign_id = ?1)",
                [campaign.0],
                |row| row.get(0),
            )
            .map_err(e)?;
        // Orders in row order, merged with their calls in the same order
        // (both read along an index): no lookup per order.
        let mut statement = snapshot
            .prepare(&format!(
                "SELECT o.id, o.order_id, o.phone, o.set_aside, o.batch_seq, o.reason, o.line, o.attempt,
                        (SELECT f.order_id FROM orders f WHERE f.id = o.contact_row)
                 FROM orders o WHERE o.campaign_id = ?1 {filter} ORDER BY o.id"
            ))
            .map_err(e)?;
        let mut calls_statement = snapshot.prepare(CALLS_OF_ORDERS).map_err(e)?;
        let mut calls = CallsOfOrders::new(
            calls_statement
                .query(params![campaign.0, any_calls])
                .map_err(e)?,
        );
        let mut rows = statement.query([campaign.0]).map_err(e)?;
        while let Some(row) = rows.next().map_err(e)? {
            let text = |index: usize| -> Result<Option<&str>, LedgerError> {
                let value = row.get_ref(index).map_err(e)?;
                value.as_str_or_null().map_err(|source| e(source.into()))
            };
            let row_id: i64 = row.get(0).map_err(e)?;
            let set_aside = text(3)?;
            let batch: Option<u32> = row.get(4).map_err(e)?;
            let batch_outcome = batch.and_then(|seq| batches.get(&seq));
            let state = match (set_aside, batch_outcome) {
                (Some(set_aside), _) => self.parse_state(set_aside)?,
                (None, Some(batch)) => OrderState::InBatch(batch.state),
                // Neither a batch nor a reason: staged, so pending.
                (None, None) => OrderState::InBatch(BatchState::Pending),
            };
            let of_order = calls.of(row_id).map_err(e)?;
            if let Some(wanted) = call {
                if set_aside.is_some()
                    || !wanted.keeps(
                        of_order.is_some(),
                        of_order.as_ref().is_some_and(|c| c.any_answered),
                    )
                {
                    continue;
                }
            }
            let line = OrderLine {
                // A row set aside was never an order of its own: it shows
                // no id (a duplicate's would be its original's).
                order_id: if set_aside.is_some() {
                    None
                } else {
                    text(1)?.map(Cow::Borrowed)
                },
                phone: Cow::Borrowed(text(2)?.unwrap_or_default()),
                state,
                batch,
                code: batch_outcome.and_then(|batch| batch.code),
                message: text(5)?.map(Cow::Borrowed).or_else(|| {
                    batch_outcome.and_then(|batch| batch.message.as_deref().map(Cow::Borrowed))
                }),
                line: row.get(6).map_err(e)?,
                updated_at_ms: batch_outcome.map(|batch| batch.updated_at_ms),
                last_call: of_order.map(|c| c.last),
                req_id: batch_outcome.and_then(BatchOutcome::shown_req_id),
                attempt: row.get(7).map_err(e)?,
                first_order_id: text(8)?.map(Cow::Borrowed),
            };
            sink(&line).map_err(LedgerError::Output)?;
        }
        Ok(())
    }
}

/// `?1` a campaign, `?2` whether it has calls: its orders' calls, in the
/// orders' row order.
pub(super) const CALLS_OF_ORDERS: &str =
    "SELECT order_row, answered, call_seconds, hangup_reason, intent,
            COALESCE(start_ms, received_at_ms), call_id
     FROM calls WHERE campaign_id = ?1 AND ?2 AND order_row IS NOT NULL
     ORDER BY order_row";

/// The calls of a campaign's orders, read in order-row order beside the
/// orders themselves.
struct CallsOfOrders<'s> {
    rows: rusqlite::Rows<'s>,
    /// The next call not yet taken: its order row and what `orders` shows.
    next: Option<(i64, bool, (i64, String), LastCall<'static>)>,
    started: bool,
}

/// One order's calls, as `orders` shows them.
struct OrderCalls {
    last: LastCall<'static>,
    any_answered: bool,
}

impl<'s> CallsOfOrders<'s> {
    fn new(rows: rusqlite::Rows<'s>) -> Self {
        CallsOfOrders {
            rows,
            next: None,
            started: false,
        }
    }

    fn advance(&mut self) -> rusqlite::Result<()> {
        self.next = match self.rows.next()? {
            None => None,
            Some(row) => {
                let answered: bool = row.get(1)?;
                Some((
                    row.get(0)?,
                    answered,
                    (row.get::<_, Option<i64>>(5)?.unwrap_or(0), row.get(6)?),
                    LastCall {
                        answered,
                        talk_seconds: row.get(2)?,
                        hangup_reason: row.get::<_, Option<String>>(3)?.map(Cow::Owned),
                        intent: row.get::<_, Option<String>>(4)?.map(Cow::Owned),
                    },
                ))
            }
        };
        Ok(())
    }

    /// The calls of the order in row `order_row`; rows are asked for in
    /// increasing order.
    fn of(&mut self, order_row: i64) -> rusqlite::Result<Option<OrderCalls>> {
        if !self.started {
            self.started = true;
            self.advance()?;
        }
        while self.next.as_ref().is_some_and(|(row, ..)| *row < order_row) {
            self.advance()?;
        }
        let mut found: Option<(OrderCalls, (i64, String))> = None;
        while let Some((row, answered, when, last)) = self.next.take() {
            if row != order_row {
                self.next = Some((row, answered, when, last));
                break;
            }
            match &mut found {
                None => {
                    found = Some((
                        OrderCalls {
                            last,
                            any_answered: answered,
                        },
                        when,
                    ))
                }
                Some((calls, latest)) => {
                    calls.any_answered |= answered;
                    if when > *latest {
                        calls.last = last;
                        *latest = when;
                    }
                }
            }
            self.advance()?;
        }
        Ok(found.map(|(calls, _)| calls))
    }
}

impl Sqlite {
    /// The numbers behind `report`: see [`ReportData`].
    pub async fn report_data(&self, campaign: CampaignId) -> Result<ReportData, LedgerError> {
        self.read(move |this, conn| {
            let e = this.error();
            let snapshot = conn.unchecked_transaction().map_err(e)?;
            let mut data = ReportData::default();
            let (first, last): (Option<i64>, Option<i64>) = snapshot
                .query_row(
                    "SELECT MIN(started_at_ms), MAX(started_at_ms) FROM attempts WHERE campaign_id = ?",
                    [campaign.0],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(e)?;
            if let (Some(first), Some(last)) = (first, last) {
                data.first_ms = first;
                data.bucket_ms = ((last - first) / TIMELINE_BUCKETS + 1).max(1);
                data.timeline = vec![0; TIMELINE_BUCKETS as usize];
                let mut statement = snapshot
                    .prepare(
                        "SELECT (started_at_ms - ?2) / ?3, COUNT(*) FROM attempts WHERE campaign_id = ?1 GROUP BY 1",
                    )
                    .map_err(e)?;
                let mut rows = statement
                    .query(params![campaign.0, first, data.bucket_ms])
                    .map_err(e)?;
                while let Some(row) = rows.next().map_err(e)? {
                    let bucket: i64 = row.get(0).map_err(e)?;
                    let count: i64 = row.get(1).map_err(e)?;
                    if let Some(slot) = data.timeline.get_mut(bucket as usize) {
                        *slot += count as u64;
                    }
                }
            }
            let mut statement = snapshot
                .prepare(
                    "SELECT COALESCE(decision, 'in flight'), http_status, code, COUNT(*) FROM attempts
                     WHERE campaign_id = ? GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1",
                )
                .map_err(e)?;
            data.attempts = statement
                .query_map([campaign.0], |row| {
                    Ok(AttemptGroup {
                        decision: row.get(0)?,
                        http_status: row.get(1)?,
                        code: row.get(2)?,
                        count: row.get::<_, i64>(3)? as u64,
                    })
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let mut statement = snapshot
                .prepare(
                    "SELECT batch_seq, number, duration_ms, COALESCE(decision, 'in flight') FROM attempts
                     WHERE campaign_id = ? AND duration_ms IS NOT NULL
                     ORDER BY duration_ms DESC, batch_seq LIMIT ?",
                )
                .map_err(e)?;
            data.slowest = statement
                .query_map(params![campaign.0, REPORT_ROWS], |row| {
                    Ok(SlowAttempt {
                        batch: row.get(0)?,
                        attempt: row.get(1)?,
                        duration_ms: row.get(2)?,
                        decision: row.get(3)?,
                    })
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            let mut statement = snapshot
                .prepare(
                    "SELECT seq, country, state, code, message, req_id FROM batches
                     WHERE campaign_id = ?1 AND state IN (?2, ?3, ?4) ORDER BY seq LIMIT ?5",
                )
                .map_err(e)?;
            data.troubled = statement
                .query_map(
                    params![
                        campaign.0,
                        BatchState::Rejected.as_str(),
                        BatchState::Failed.as_str(),
                        BatchState::Uncertain.as_str(),
                        REPORT_ROWS
                    ],
                    |row| {
                        Ok(TroubledBatch {
                            batch: row.get(0)?,
                            country: row.get(1)?,
                            state: row.get(2)?,
                            code: row.get(3)?,
                            message: row.get(4)?,
                            req_id: row.get(5)?,
                        })
                    },
                )
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            Ok(data)
        })
        .await
    }
}
