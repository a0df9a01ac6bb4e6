//! Ledger reads for reports: counts by state and per-order outcomes.
//!
//! Counts come from batch rows (orders follow their batch) and from the
//! small set of orders set aside, so `status` does not scan every order.

use std::borrow::Cow;
use std::collections::HashMap;

use sqlx::Row as _;

use super::{CampaignId, Ledger, LedgerError};
use crate::outcome::{BatchState, OrderState};

/// What `status` shows of one campaign.
#[derive(Debug, Clone)]
pub struct CampaignStatus {
    pub campaign: String,
    pub rows_read: u64,
    /// Every order state with its count, zeros included, in `OrderState::ALL` order.
    pub orders: Vec<(OrderState, u64)>,
    /// Every batch state with its count, zeros included, in `BatchState::ALL` order.
    pub batches: Vec<(BatchState, u64)>,
}

impl CampaignStatus {
    pub fn orders_in(&self, state: OrderState) -> u64 {
        self.orders
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    pub fn batches_in(&self, state: BatchState) -> u64 {
        self.batches
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// One order's outcome, as `orders` lists it (borrowed from a page).
#[derive(Debug, Clone)]
pub struct OrderLine<'a> {
    pub order_id: Option<Cow<'a, str>>,
    pub phone: Cow<'a, str>,
    pub state: OrderState,
    pub batch: Option<u32>,
    pub code: Option<i64>,
    pub message: Option<Cow<'a, str>>,
    pub line: u64,
}

/// Something that takes order lines one at a time (a writer to stdout).
pub type OrderStream<'a> = &'a mut dyn FnMut(&OrderLine<'_>) -> std::io::Result<()>;

impl Ledger {
    pub async fn status(
        &self,
        campaign: CampaignId,
        name: &str,
    ) -> Result<CampaignStatus, LedgerError> {
        let rows_read: i64 = sqlx::query_scalar("SELECT rows_read FROM campaigns WHERE id = ?")
            .bind(campaign.0)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        let mut orders: Vec<(OrderState, u64)> = OrderState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut batches: Vec<(BatchState, u64)> = BatchState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut add_order = |state: OrderState, n: u64| {
            if let Some(slot) = orders.iter_mut().find(|(s, _)| *s == state) {
                slot.1 += n;
            }
        };

        let batch_rows = sqlx::query(
            "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM batches WHERE campaign_id = ? GROUP BY state",
        )
        .bind(campaign.0)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        for row in batch_rows {
            let state: BatchState = self.parse_state(row.get::<&str, _>(0))?;
            if let Some(slot) = batches.iter_mut().find(|(s, _)| *s == state) {
                slot.1 += row.get::<i64, _>(1) as u64;
            }
            add_order(OrderState::InBatch(state), row.get::<i64, _>(2) as u64);
        }
        let set_aside_rows = sqlx::query(
            "SELECT set_aside, COUNT(*) FROM orders WHERE campaign_id = ? AND set_aside IS NOT NULL GROUP BY set_aside",
        )
        .bind(campaign.0)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        for row in set_aside_rows {
            let state: OrderState = self.parse_state(row.get::<&str, _>(0))?;
            add_order(state, row.get::<i64, _>(1) as u64);
        }
        Ok(CampaignStatus {
            campaign: name.to_owned(),
            rows_read: rows_read as u64,
            orders,
            batches,
        })
    }

    /// Streams the campaign's orders in input order, optionally only those in
    /// `state`, into `sink`; memory stays flat whatever the campaign's size.
    ///
    /// SQLite hands over a page of orders as one JSON array: one row per
    /// order through sqlx would cost a thread hand-off and an allocation
    /// each, several times what reading the order costs.
    pub async fn for_each_order(
        &self,
        campaign: CampaignId,
        state: Option<OrderState>,
        sink: OrderStream<'_>,
    ) -> Result<(), LedgerError> {
        // Orders in a batch take its state and last answer: the batches are
        // few, so they are read once instead of joined to every order.
        let mut batches: HashMap<u32, (BatchState, Option<i64>, Option<String>)> = HashMap::new();
        let rows =
            sqlx::query("SELECT seq, state, code, message FROM batches WHERE campaign_id = ?")
                .bind(campaign.0)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.query_error(e))?;
        for row in rows {
            let state: BatchState = self.parse_state(row.get::<&str, _>(1))?;
            batches.insert(row.get::<i64, _>(0) as u32, (state, row.get(2), row.get(3)));
        }
        let filter = match state {
            None => String::new(),
            Some(OrderState::InBatch(wanted)) => {
                let seqs: Vec<u32> = batches
                    .iter()
                    .filter(|(_, (state, _, _))| *state == wanted)
                    .map(|(seq, _)| *seq)
                    .collect();
                format!(
                    "AND set_aside IS NULL AND batch_seq IN (SELECT value FROM json_each('{}'))",
                    serde_json::to_string(&seqs).expect("numbers serialize")
                )
            }
            Some(set_aside) => format!("AND set_aside = '{}'", set_aside.as_str()),
        };
        let sql = format!(
            "SELECT json_group_array(json_array(id, order_id, phone, set_aside, batch_seq, reason, line))
             FROM (SELECT id, order_id, phone, set_aside, batch_seq, reason, line FROM orders
                   WHERE campaign_id = ?1 AND id > ?2 {filter} ORDER BY id LIMIT {ORDERS_PAGE})"
        );
        let mut after: i64 = 0;
        loop {
            let page: String = sqlx::query_scalar(&sql)
                .bind(campaign.0)
                .bind(after)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.query_error(e))?;
            let mut page: Vec<PageRow<'_>> =
                serde_json::from_str(&page).map_err(|e| LedgerError::Corrupt {
                    path: self.path.clone(),
                    message: format!("order page: {e}"),
                })?;
            // The aggregate keeps the subquery's order; make sure of it.
            if !page.is_sorted_by_key(|row| row.0) {
                page.sort_by_key(|row| row.0);
            }
            let Some(last) = page.last().map(|row| row.0) else {
                return Ok(());
            };
            for (_, order_id, phone, set_aside, batch, reason, line) in page {
                let batch_outcome = batch.and_then(|seq| batches.get(&seq));
                let state = match (&set_aside, batch_outcome) {
                    (Some(set_aside), _) => self.parse_state(set_aside)?,
                    (None, Some((state, _, _))) => OrderState::InBatch(*state),
                    // Neither a batch nor a reason: staged, so pending.
                    (None, None) => OrderState::InBatch(BatchState::Pending),
                };
                let line = OrderLine {
                    order_id,
                    phone,
                    state,
                    batch,
                    code: batch_outcome.and_then(|(_, code, _)| *code),
                    message: reason.or_else(|| {
                        batch_outcome
                            .and_then(|(_, _, message)| message.as_deref().map(Cow::Borrowed))
                    }),
                    line,
                };
                sink(&line).map_err(LedgerError::Output)?;
            }
            after = last;
        }
    }
}

/// Orders per page of `for_each_order`.
const ORDERS_PAGE: u32 = 20_000;

/// One order of a page, as SQLite's `json_array` lays it out.
type PageRow<'a> = (
    i64,
    Option<Cow<'a, str>>,
    Cow<'a, str>,
    Option<Cow<'a, str>>,
    Option<u32>,
    Option<Cow<'a, str>>,
    u64,
);
