//! Ledger writes of ingest, in two steps that keep big files fast:
//!
//! 1. `stage_chunk`: rows are appended as staged orders (row ids in file
//!    order, no random-key index touched), already placed in batches, with
//!    the checkpoint, one chunk per transaction.
//! 2. `plan_staged`: in one transaction, duplicates are found by sorting
//!    and leave their batches, and the keys of the live orders are claimed
//!    in `order_keys` by one sorted insert.
//!
//! A crash between the two leaves staged orders, which the next ingest
//! plans; `status` counts them as pending.

use sqlx::Row as _;

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

/// One row as it is staged.
#[derive(Debug, Clone)]
pub struct StagedRow<'a> {
    pub line: u64,
    pub order_id: Option<&'a str>,
    /// The normalized number, or the text found for an invalid row.
    pub phone: &'a str,
    /// The number's country; `None` for an invalid row.
    pub country: Option<&'a str>,
    pub other: &'a str,
    /// The batch a contact is placed in; `None` for an invalid row.
    pub batch_seq: Option<BatchSeq>,
    /// Why the row is invalid; `None` for a contact.
    pub invalid: Option<&'a str>,
}

/// Rows per multi-row INSERT: 9 parameters each, below SQLite's limit.
const STAGE_ROWS_PER_INSERT: usize = 1000;

/// What one staging transaction writes.
#[derive(Debug, Clone)]
pub struct StagedChunk<'a> {
    pub rows: &'a [StagedRow<'a>],
    /// Batches opened by these rows, with their country.
    pub new_batches: &'a [(BatchSeq, Country)],
    /// Rows of the file this chunk accounts for.
    pub rows_read: u64,
    /// Where to resume after it.
    pub checkpoint: &'a Checkpoint,
}

/// A live order's claim on a phone or an order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    pub order_id: String,
    pub phone: String,
}

/// What planning decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    pub orders: u64,
    pub duplicates: u64,
}

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
            let country =
                Country::parse(row.get::<&str, _>(0)).map_err(|e| LedgerError::Corrupt {
                    path: self.path.clone(),
                    message: format!("batch country: {e}"),
                })?;
            let batch = OpenBatch {
                seq: row.get::<i64, _>(1) as BatchSeq,
                len: row.get::<i64, _>(2) as u32,
            };
            open.push((country, batch));
        }
        Ok((next as BatchSeq, open))
    }

    /// Of these (order id, phone) pairs, the ones live orders of the
    /// campaign already hold both keys of.
    pub async fn known_pairs(
        &self,
        campaign: CampaignId,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<KnownKey>, LedgerError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let json = serde_json::to_string(pairs).expect("strings serialize");
        let rows = sqlx::query(
            "SELECT p.value ->> 0, p.value ->> 1 FROM json_each(?2) p
             WHERE EXISTS (SELECT 1 FROM order_keys WHERE campaign_id = ?1 AND kind = 1 AND key = p.value ->> 0)
               AND EXISTS (SELECT 1 FROM order_keys WHERE campaign_id = ?1 AND kind = 0 AND key = p.value ->> 1)",
        )
        .bind(campaign.0)
        .bind(json)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(rows
            .into_iter()
            .map(|row| KnownKey {
                order_id: row.get(0),
                phone: row.get(1),
            })
            .collect())
    }

    /// Appends rows as staged orders (invalid ones set aside at once) and
    /// moves the checkpoint, all or nothing.
    pub async fn stage_chunk(
        &self,
        campaign: CampaignId,
        chunk: &StagedChunk<'_>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let StagedChunk {
            rows,
            new_batches,
            rows_read,
            checkpoint,
        } = chunk;
        let mut tx = self.write_transaction().await?;
        for (seq, country) in *new_batches {
            sqlx::query("INSERT INTO batches (campaign_id, seq, country, size, updated_at_ms) VALUES (?, ?, ?, 0, ?)")
                .bind(campaign.0)
                .bind(seq)
                .bind(country.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
        }
        let mut growth: Vec<(BatchSeq, u32)> = Vec::new();
        for seq in rows.iter().filter_map(|row| row.batch_seq) {
            match growth.iter_mut().find(|(s, _)| *s == seq) {
                Some((_, n)) => *n += 1,
                None => growth.push((seq, 1)),
            }
        }
        if !growth.is_empty() {
            sqlx::query(
                "UPDATE batches SET size = size + (g.value ->> 1) FROM json_each(?2) g
                 WHERE batches.campaign_id = ?1 AND batches.seq = g.value ->> 0",
            )
            .bind(campaign.0)
            .bind(serde_json::to_string(&growth).expect("numbers serialize"))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        }
        for rows in rows.chunks(STAGE_ROWS_PER_INSERT) {
            let mut insert: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(
                "INSERT INTO orders (campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason) ",
            );
            insert.push_values(rows, |mut values, row| {
                values
                    .push_bind(campaign.0)
                    .push_bind(row.line as i64)
                    .push_bind(row.order_id)
                    .push_bind(row.phone)
                    .push_bind(row.country)
                    .push_bind(row.other)
                    .push_bind(row.batch_seq)
                    .push_bind(row.invalid.map(|_| "invalid"))
                    .push_bind(row.invalid);
            });
            insert
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(e))?;
        }
        sqlx::query(
            "UPDATE campaigns SET rows_read = rows_read + ?, source_fingerprint = ?, source_offset = ?, source_line = ?
             WHERE id = ?",
        )
        .bind(*rows_read as i64)
        .bind(checkpoint.fingerprint.as_deref())
        .bind(checkpoint.offset as i64)
        .bind(checkpoint.line as i64)
        .bind(campaign.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        tx.commit().await.map_err(|e| self.query_error(e))
    }

    /// Plans every staged order of the campaign, in one transaction: a row
    /// whose phone or order id an earlier row of the campaign has is a
    /// duplicate and leaves its batch (a batch left empty is dropped); the
    /// others claim their keys in `order_keys`, inserted in key order.
    pub async fn plan_staged(&self, campaign: CampaignId) -> Result<Planned, LedgerError> {
        let mut tx = self.write_transaction().await?;
        let e = |e| self.query_error(e);
        let row = sqlx::query(
            "SELECT planned_through, (SELECT MAX(id) FROM orders WHERE campaign_id = ?1),
                    EXISTS (SELECT 1 FROM order_keys WHERE campaign_id = ?1)
             FROM campaigns WHERE id = ?1",
        )
        .bind(campaign.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        let (planned_through, last, claimed): (i64, Option<i64>, bool) =
            (row.get(0), row.get(1), row.get(2));
        let Some(last) = last.filter(|last| *last > planned_through) else {
            return Ok(Planned::default());
        };
        // Every statement below works on the staged orders: `?1` is the
        // campaign, `?2`..`?3` their row ids.
        let staged = Staged {
            campaign: campaign.0,
            after: planned_through,
            through: last,
        };

        // 1. Duplicates: against what earlier plans claimed (a campaign's
        //    first plan has nothing to check), then among the staged rows
        //    by grouping (a sort, not a lookup per row): the keys staged rows
        //    repeat, each with its first row (`line` comes from the row with
        //    the smallest id, SQLite's bare-column rule for MIN), then every
        //    later row of such a key, with the orders as the outer loop.
        sqlx::raw_sql(
            "CREATE TEMP TABLE IF NOT EXISTS plan_duplicates (id INTEGER PRIMARY KEY, reason TEXT NOT NULL);
             CREATE TEMP TABLE IF NOT EXISTS plan_repeated (
                 key TEXT PRIMARY KEY, first_id INTEGER NOT NULL, first_line INTEGER NOT NULL) WITHOUT ROWID;
             DELETE FROM plan_duplicates;",
        )
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        for (kind, column, what) in [(0, "phone", "phone"), (1, "order_id", "order id")] {
            if claimed {
                staged
                    .execute(
                        &mut tx,
                        &format!(
                            "INSERT OR IGNORE INTO plan_duplicates (id, reason)
                             SELECT o.id, 'same {what} as line ' || k.line FROM orders o
                             JOIN order_keys k ON k.campaign_id = ?1 AND k.kind = {kind} AND k.key = o.{column}
                             WHERE o.campaign_id = ?1 AND o.id > ?2 AND o.id <= ?3 AND o.set_aside IS NULL"
                        ),
                    )
                    .await
                    .map_err(e)?;
            }
            sqlx::query("DELETE FROM plan_repeated")
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            staged
                .execute(
                    &mut tx,
                    &format!(
                        "INSERT INTO plan_repeated (key, first_id, first_line)
                         SELECT {column}, MIN(id), line FROM orders
                         WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL
                         GROUP BY {column} HAVING COUNT(*) > 1"
                    ),
                )
                .await
                .map_err(e)?;
            staged
                .execute(
                    &mut tx,
                    &format!(
                        "INSERT OR IGNORE INTO plan_duplicates (id, reason)
                         SELECT o.id, 'same {what} as line ' || r.first_line
                         FROM orders o CROSS JOIN plan_repeated r ON r.key = o.{column}
                         WHERE o.campaign_id = ?1 AND o.id > ?2 AND o.id <= ?3 AND o.set_aside IS NULL
                           AND o.id > r.first_id"
                    ),
                )
                .await
                .map_err(e)?;
        }
        // Duplicates leave their batches; a batch left empty goes.
        staged
            .execute(
                &mut tx,
                "UPDATE batches SET size = size - g.n FROM (
                     SELECT o.batch_seq AS seq, COUNT(*) AS n FROM plan_duplicates d JOIN orders o ON o.id = d.id
                     GROUP BY o.batch_seq) g
                 WHERE batches.campaign_id = ?1 AND batches.seq = g.seq",
            )
            .await
            .map_err(e)?;
        let duplicates = staged
            .execute(
                &mut tx,
                "UPDATE orders SET set_aside = 'duplicate', batch_seq = NULL, reason = d.reason
                 FROM plan_duplicates d WHERE orders.id = d.id",
            )
            .await
            .map_err(e)?;
        staged
            .execute(
                &mut tx,
                "DELETE FROM batches WHERE campaign_id = ?1 AND size = 0 AND state = 'pending' AND attempts = 0",
            )
            .await
            .map_err(e)?;

        // 2. The live orders claim their keys, inserted in key order.
        let mut orders = 0;
        for (kind, column) in [(0, "phone"), (1, "order_id")] {
            orders = staged
                .execute(
                    &mut tx,
                    &format!(
                        "INSERT INTO order_keys (campaign_id, kind, key, line)
                         SELECT ?1, {kind}, {column}, line FROM orders
                         WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL
                         ORDER BY {column}"
                    ),
                )
                .await
                .map_err(e)?;
        }
        staged
            .execute(
                &mut tx,
                "UPDATE campaigns SET planned_through = ?3 WHERE id = ?1",
            )
            .await
            .map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(Planned { orders, duplicates })
    }
}

/// The staged orders of one plan: a campaign and a range of row ids.
struct Staged {
    campaign: i64,
    after: i64,
    through: i64,
}

impl Staged {
    /// Runs a statement whose `?1`, `?2`, `?3` are the campaign and the
    /// range; returns the rows it changed.
    async fn execute(
        &self,
        tx: &mut sqlx::SqliteConnection,
        sql: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(sql)
            .bind(self.campaign)
            .bind(self.after)
            .bind(self.through)
            .execute(tx)
            .await?;
        Ok(done.rows_affected())
    }
}
