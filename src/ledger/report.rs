//! Ledger reads for reports: counts by state and per-order outcomes.
//!
//! Counts come from batch rows (orders follow their batch) and from the
//! small set of orders set aside, so `status` does not scan every order.

use futures_util::TryStreamExt;
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

/// One order's outcome, as `orders` lists it.
#[derive(Debug, Clone)]
pub struct OrderLine {
    pub order_id: Option<String>,
    pub phone: String,
    pub state: OrderState,
    pub batch: Option<u32>,
    pub code: Option<i64>,
    pub message: Option<String>,
    pub line: u64,
}

/// Something that takes order lines one at a time (a writer to stdout).
pub type OrderStream<'a> = &'a mut dyn FnMut(&OrderLine) -> std::io::Result<()>;

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
    pub async fn for_each_order(
        &self,
        campaign: CampaignId,
        state: Option<OrderState>,
        sink: OrderStream<'_>,
    ) -> Result<(), LedgerError> {
        // An order with neither a batch nor a reason is staged: pending.
        const SELECT: &str = "SELECT o.order_id, o.phone, COALESCE(o.set_aside, b.state, 'pending'), o.batch_seq,
                                     b.code, COALESCE(o.reason, b.message), o.line
                              FROM orders o
                              LEFT JOIN batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq
                              WHERE o.campaign_id = ?";
        let (sql, filter) = match state {
            None => (format!("{SELECT} ORDER BY o.id"), None),
            Some(OrderState::InBatch(batch_state)) => (
                format!("{SELECT} AND o.set_aside IS NULL AND COALESCE(b.state, 'pending') = ? ORDER BY o.id"),
                Some(batch_state.as_str()),
            ),
            Some(set_aside) => (
                format!("{SELECT} AND o.set_aside = ? ORDER BY o.id"),
                Some(set_aside.as_str()),
            ),
        };
        let mut query = sqlx::query(&sql).bind(campaign.0);
        if let Some(filter) = filter {
            query = query.bind(filter);
        }
        let mut rows = query.fetch(&self.pool);
        while let Some(row) = rows.try_next().await.map_err(|e| self.query_error(e))? {
            let line = OrderLine {
                order_id: row.get(0),
                phone: row.get(1),
                state: self.parse_state(row.get::<&str, _>(2))?,
                batch: row.get::<Option<i64>, _>(3).map(|s| s as u32),
                code: row.get(4),
                message: row.get(5),
                line: row.get::<i64, _>(6) as u64,
            };
            sink(&line).map_err(LedgerError::Output)?;
        }
        Ok(())
    }
}
