//! Ledger writes of ingest: orders, batches and the checkpoint, one chunk of
//! rows per transaction.

use sqlx::{QueryBuilder, Row as _, Sqlite};

use super::{CampaignId, Ledger, LedgerError};
use crate::phone::Country;
use crate::plan::{BatchSeq, OpenBatch};

/// Where ingest of a campaign's contact file stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Fingerprint of the file that was being read; `None` before any ingest.
    pub fingerprint: Option<String>,
    /// Byte offset of the next record to read.
    pub offset: u64,
    /// Line number of that record.
    pub line: u64,
}

/// One row as it enters the ledger.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub line: u64,
    pub order_id: Option<String>,
    pub phone: String,
    pub country: Option<String>,
    pub other: String,
    /// The batch of a live order; `None` for one set aside.
    pub batch_seq: Option<BatchSeq>,
    /// `invalid`, `duplicate` or `suppressed` for an order set aside.
    pub set_aside: Option<&'static str>,
    pub reason: Option<String>,
}

/// What one chunk of rows adds to the ledger, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct IngestChunk {
    pub orders: Vec<NewOrder>,
    /// Batches opened by this chunk, with their country.
    pub new_batches: Vec<(BatchSeq, Country)>,
    /// Rows of the file this chunk accounts for.
    pub rows_read: u64,
    /// Where to resume after this chunk.
    pub checkpoint: Checkpoint,
}

/// A live order that already holds a phone or an order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    pub order_id: String,
    pub phone: String,
    pub line: u64,
}

/// Rows per multi-row INSERT: 9 parameters each stays far below SQLite's limit.
const INSERT_ROWS: usize = 100;

impl Ledger {
    pub async fn checkpoint(&self, campaign: CampaignId) -> Result<Checkpoint, LedgerError> {
        let row = sqlx::query(
            "SELECT source_fingerprint, source_offset, source_line FROM campaigns WHERE id = ?",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(Checkpoint {
            fingerprint: row.get(0),
            offset: row.get::<i64, _>(1) as u64,
            line: row.get::<i64, _>(2) as u64,
        })
    }

    /// The first unused batch sequence number, and each country's newest
    /// batch when it was never tried and still has room for `size` orders.
    pub async fn open_batches(
        &self,
        campaign: CampaignId,
        size: u32,
    ) -> Result<(BatchSeq, Vec<(Country, OpenBatch)>), LedgerError> {
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE campaign_id = ?",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        let rows = sqlx::query(
            "SELECT b.country, b.seq, b.size FROM batches b
             WHERE b.campaign_id = ?1 AND b.state = 'pending' AND b.attempts = 0 AND b.size < ?2
               AND b.seq = (SELECT MAX(seq) FROM batches WHERE campaign_id = ?1 AND country = b.country)",
        )
        .bind(campaign.0)
        .bind(size)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        let mut open = Vec::with_capacity(rows.len());
        for row in rows {
            let country: String = row.get(0);
            let country = Country::parse(&country).map_err(|e| LedgerError::Corrupt {
                path: self.path.clone(),
                message: format!("batch country: {e}"),
            })?;
            open.push((
                country,
                OpenBatch {
                    seq: row.get::<i64, _>(1) as BatchSeq,
                    len: row.get::<i64, _>(2) as u32,
                },
            ));
        }
        Ok((next as BatchSeq, open))
    }

    /// Live orders of the campaign holding any of these phones or order ids.
    pub async fn known_keys(
        &self,
        campaign: CampaignId,
        phones: &[&str],
        order_ids: &[&str],
    ) -> Result<Vec<KnownKey>, LedgerError> {
        if phones.is_empty() && order_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Two lookups, each able to use its own unique index.
        let mut known = Vec::new();
        for (column, keys) in [("phone", phones), ("order_id", order_ids)] {
            for keys in keys.chunks(500) {
                let mut query: QueryBuilder<Sqlite> =
                    QueryBuilder::new("SELECT order_id, phone, line FROM orders WHERE set_aside IS NULL AND campaign_id = ");
                query.push_bind(campaign.0);
                query.push(format_args!(" AND {column} IN ("));
                let mut list = query.separated(", ");
                for key in keys {
                    list.push_bind(*key);
                }
                list.push_unseparated(")");
                let rows = query
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.query_error(e))?;
                known.extend(rows.into_iter().map(|row| KnownKey {
                    order_id: row.get(0),
                    phone: row.get(1),
                    line: row.get::<i64, _>(2) as u64,
                }));
            }
        }
        Ok(known)
    }

    /// Writes one chunk: its new batches, its orders (growing their batches)
    /// and the checkpoint, all or nothing.
    pub async fn record_chunk(
        &self,
        campaign: CampaignId,
        chunk: &IngestChunk,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.query_error(e))?;
        for (seq, country) in &chunk.new_batches {
            sqlx::query(
                "INSERT INTO batches (campaign_id, seq, country, size, updated_at_ms) VALUES (?, ?, ?, 0, ?)",
            )
            .bind(campaign.0)
            .bind(seq)
            .bind(country.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        }
        for rows in chunk.orders.chunks(INSERT_ROWS) {
            let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO orders (campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason) ",
            );
            query.push_values(rows, |mut row, order| {
                row.push_bind(campaign.0)
                    .push_bind(order.line as i64)
                    .push_bind(order.order_id.as_deref())
                    .push_bind(order.phone.as_str())
                    .push_bind(order.country.as_deref())
                    .push_bind(order.other.as_str())
                    .push_bind(order.batch_seq)
                    .push_bind(order.set_aside)
                    .push_bind(order.reason.as_deref());
            });
            query
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
        }
        let mut growth: Vec<(BatchSeq, i64)> = Vec::new();
        for seq in chunk.orders.iter().filter_map(|o| o.batch_seq) {
            match growth.last_mut() {
                Some((last, n)) if *last == seq => *n += 1,
                _ => growth.push((seq, 1)),
            }
        }
        for (seq, n) in growth {
            sqlx::query("UPDATE batches SET size = size + ? WHERE campaign_id = ? AND seq = ?")
                .bind(n)
                .bind(campaign.0)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
        }
        sqlx::query(
            "UPDATE campaigns SET rows_read = rows_read + ?, source_fingerprint = ?, source_offset = ?, source_line = ?
             WHERE id = ?",
        )
        .bind(chunk.rows_read as i64)
        .bind(chunk.checkpoint.fingerprint.as_deref())
        .bind(chunk.checkpoint.offset as i64)
        .bind(chunk.checkpoint.line as i64)
        .bind(campaign.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        tx.commit().await.map_err(|e| self.query_error(e))
    }
}
