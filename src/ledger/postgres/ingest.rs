//! Ingest's writes on PostgreSQL, in the same two steps as on SQLite:
//!
//! 1. `stage_chunk`: rows go in with `COPY … FROM STDIN` (text format) as
//!    staged orders, with their new batches and the checkpoint, one chunk
//!    per transaction. The staged orders (ids above the campaign's
//!    `planned_through`) are the staging area.
//! 2. `plan_staged`: set-wise, in one transaction: rows repeating a key
//!    already claimed, then rows repeating an earlier staged row (window
//!    functions over the staged rows), become duplicates and leave their
//!    batches; the rest claim their keys with one insert each.
//!
//! Only the runner holding the campaign's ingest lease writes here; every
//! transaction checks it. The writer lives on a thread of its own and runs
//! its statements on the runtime through a handle.

use std::fmt::Write as _;

use sqlx::Row as _;
use tokio::runtime::Handle;

use super::Postgres;
use crate::ledger::model::{Checkpoint, Fence, Planned, StagedChunk};
use crate::ledger::redials::{RedialsPlanned, Walk};
use crate::ledger::{CampaignId, LedgerError};
use crate::state::{BatchState, OrderState};

impl Postgres {
    pub async fn checkpoint(&self, campaign: CampaignId) -> Result<Checkpoint, LedgerError> {
        let row = sqlx::query(
            "SELECT source_fingerprint, source_offset, source_line, source_path FROM campaigns WHERE id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(Checkpoint {
            source: row.get(3),
            fingerprint: row.get(0),
            offset: row.get::<i64, _>(1) as u64,
            line: row.get::<i64, _>(2) as u64,
        })
    }

    pub async fn next_batch_seq(
        &self,
        campaign: CampaignId,
    ) -> Result<crate::batch::BatchSeq, LedgerError> {
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE campaign_id = $1",
        )
        .bind(campaign.0)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        self.batch_seq(next)
    }

    /// Ingest's writer for the runner holding `fence`; call it on the
    /// writer's own thread, never on the runtime.
    pub fn ingest_writer(&self, fence: &Fence) -> Result<IngestWriter, LedgerError> {
        let left_staged: bool = self
            .runtime
            .block_on(
                sqlx::query_scalar(
                    "SELECT COALESCE((SELECT MAX(id) FROM orders WHERE campaign_id = $1), 0) > planned_through
                     FROM campaigns WHERE id = $1",
                )
                .bind(fence.campaign.0)
                .fetch_one(&self.pool),
            )
            .map_err(|e| self.query_error(e))?;
        Ok(IngestWriter {
            ledger: self.clone(),
            fence: fence.clone(),
            runtime: self.runtime.clone(),
            copy: String::new(),
            suspects_complete: !left_staged,
            ids_from_file: false,
        })
    }
}

/// Ingest's writer on PostgreSQL.
pub struct IngestWriter {
    ledger: Postgres,
    fence: Fence,
    runtime: Handle,
    /// The `COPY` text of a chunk, reused.
    copy: String,
    /// Whether every staged row that may repeat a key of an earlier one is
    /// marked `suspect`: none were left staged by an interrupted ingest,
    /// and every chunk marked its repeats. Then planning looks only at the
    /// suspects; otherwise it groups every staged row.
    suspects_complete: bool,
    /// Whether the order ids come from the contact file: then each is
    /// checked against every other campaign's.
    ids_from_file: bool,
}

impl IngestWriter {
    /// Plans run beside a dispatch on their own connections anyway.
    pub fn beside_dispatch(&mut self) {}

    /// Says that the order ids come from the contact file.
    pub fn ids_from_file(&mut self) {
        self.ids_from_file = true;
    }

    pub fn stage_chunk(&mut self, chunk: &StagedChunk<'_>, now_ms: i64) -> Result<(), LedgerError> {
        self.copy.clear();
        self.suspects_complete &= chunk.repeats_marked;
        for row in chunk.rows {
            let batch_seq = row.batch_seq.map(i64::from);
            let set_aside = row.invalid.map(|_| OrderState::Invalid.as_str());
            let _ = write!(self.copy, "{}\t{}\t", self.fence.campaign.0, row.line);
            copy_text(&mut self.copy, row.order_id);
            copy_text(&mut self.copy, Some(row.phone));
            copy_text(&mut self.copy, row.country);
            copy_text(&mut self.copy, Some(row.other));
            match batch_seq {
                Some(seq) => {
                    let _ = write!(self.copy, "{seq}\t");
                }
                None => self.copy.push_str("\\N\t"),
            }
            copy_text(&mut self.copy, set_aside);
            copy_text(&mut self.copy, row.invalid);
            copy_text(&mut self.copy, row.suspect.then_some("t"));
            // The last tab becomes the line's end.
            self.copy.pop();
            self.copy.push('\n');
        }
        let mut sizes: Vec<(i64, i64)> = Vec::new();
        for seq in chunk.rows.iter().filter_map(|row| row.batch_seq) {
            match sizes.last_mut() {
                Some((s, n)) if *s == i64::from(seq) => *n += 1,
                _ => match sizes.iter_mut().find(|(s, _)| *s == i64::from(seq)) {
                    Some((_, n)) => *n += 1,
                    None => sizes.push((i64::from(seq), 1)),
                },
            }
        }
        let ledger = &self.ledger;
        let fence = &self.fence;
        let copy = &self.copy;
        let e = |source| ledger.query_error(source);
        let invalid = chunk
            .rows
            .iter()
            .filter(|row| row.invalid.is_some())
            .count() as i64;
        let staged = self.runtime.block_on(async {
            let mut tx = ledger.transaction().await?;
            quick_commit(&mut tx).await.map_err(e)?;
            ledger.check_ingest_lease(&mut tx, fence).await?;
            let seqs: Vec<i64> = chunk.new_batches.iter().map(|(seq, _, _)| i64::from(*seq)).collect();
            let countries: Vec<&str> = chunk.new_batches.iter().map(|(_, country, _)| country.as_str()).collect();
            let zones: Vec<&str> = chunk.new_batches.iter().map(|(_, _, zones)| zones.as_str()).collect();
            sqlx::query(
                "INSERT INTO batches (campaign_id, seq, country, zones, size, updated_at_ms)
                 SELECT $1, seq, country, zones, 0, $4
                 FROM UNNEST($2::BIGINT[], $3::TEXT[], $5::TEXT[]) AS t (seq, country, zones)",
            )
            .bind(fence.campaign.0)
            .bind(&seqs)
            .bind(&countries)
            .bind(now_ms)
            .bind(&zones)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            let (grown, by): (Vec<i64>, Vec<i64>) = sizes.iter().copied().unzip();
            sqlx::query(
                "UPDATE batches b SET size = b.size + t.n
                 FROM UNNEST($2::BIGINT[], $3::BIGINT[]) AS t (seq, n)
                 WHERE b.campaign_id = $1 AND b.seq = t.seq",
            )
            .bind(fence.campaign.0)
            .bind(&grown)
            .bind(&by)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            let mut sink = tx
                .copy_in_raw(
                    "COPY orders (campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason, suspect)
                     FROM STDIN",
                )
                .await
                .map_err(e)?;
            sink.send(copy.as_bytes()).await.map_err(e)?;
            sink.finish().await.map_err(e)?;
            sqlx::query(
                "UPDATE campaigns SET rows_read = rows_read + $1, source_fingerprint = $2, source_offset = $3,
                     source_line = $4, source_path = $6, invalid_orders = invalid_orders + $7
                 WHERE id = $5",
            )
            .bind(chunk.rows_read as i64)
            .bind(chunk.checkpoint.fingerprint.as_deref())
            .bind(chunk.checkpoint.offset as i64)
            .bind(chunk.checkpoint.line as i64)
            .bind(fence.campaign.0)
            .bind(chunk.checkpoint.source.as_deref())
            .bind(invalid)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            tx.commit().await.map_err(e)
        });
        self.lost_or(staged)
    }

    /// A failed write may mean that this runner was presumed dead while
    /// it wrote (a paused process's session is ended by the server).
    fn lost_or<T>(&self, result: Result<T, LedgerError>) -> Result<T, LedgerError> {
        match result {
            Err(e @ LedgerError::Query { .. }) => {
                Err(self.runtime.block_on(self.ledger.lost_or(&self.fence, e)))
            }
            result => result,
        }
    }

    /// Plans every staged order of the campaign in one transaction. The
    /// primary key of `order_keys` is the last line of defence: a plan
    /// that would give two live orders one key fails and commits nothing.
    pub fn plan_staged(&mut self, now_ms: i64) -> Result<Planned, LedgerError> {
        let ledger = &self.ledger;
        let fence = &self.fence;
        let campaign = fence.campaign.0;
        let e = |source| ledger.query_error(source);
        let planned = self.runtime.block_on(async {
            let mut tx = ledger.transaction().await?;
            quick_commit(&mut tx).await.map_err(e)?;
            // Room for the plan's sorts in memory.
            sqlx::query("SET LOCAL work_mem = '64MB'")
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            ledger.check_ingest_lease(&mut tx, fence).await?;
            let (after, through, claimed): (i64, Option<i64>, bool) = sqlx::query_as(
                "SELECT planned_through, (SELECT MAX(id) FROM orders WHERE campaign_id = $1), planned_through > 0
                 FROM campaigns WHERE id = $1 FOR UPDATE",
            )
            .bind(campaign)
            .fetch_one(&mut *tx)
            .await
            .map_err(e)?;
            let Some(through) = through.filter(|through| *through > after) else {
                return Ok(Planned::default());
            };
            let staged = Staged {
                campaign,
                after,
                through,
            };
            // The tables grew since the planner last looked (autovacuum
            // analyzes them only now and then): without fresh statistics it
            // would take thousands of staged rows for one, and join them
            // with a scan of every claim each.
            sqlx::raw_sql("ANALYZE orders; ANALYZE order_keys")
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            let mut duplicates = 0;
            // 1. Rows whose phone or order id an earlier plan claimed (the
            //    phone's reason first); a campaign's first plan has none.
            if claimed {
            duplicates += staged
                .set_aside(&mut tx, &format!(
                "SELECT o.id, o.batch_seq,
                        CASE WHEN p.line IS NOT NULL THEN 'same phone as line ' || p.line
                             ELSE 'same order id as line ' || i.line END AS reason
                 FROM orders o
                 LEFT JOIN order_keys p ON p.campaign_id = $1 AND p.kind = 0 AND p.key = o.phone
                 LEFT JOIN order_keys i ON i.campaign_id = $1 AND i.kind = 1 AND i.key = o.order_id
                 WHERE {STAGED} AND (p.line IS NOT NULL OR i.line IS NOT NULL)"
            ))
                .await
                .map_err(e)?;
            }
            // 1b. A row whose order id another campaign holds is set
            //     aside. Plans of campaigns whose ids come from their files
            //     take turns, so that two of them never both take one id.
            if self.ids_from_file {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ORDER_IDS_LOCK)
                    .execute(&mut *tx)
                    .await
                    .map_err(e)?;
                duplicates += staged
                    .set_aside(&mut tx, USED_ELSEWHERE)
                    .await
                    .map_err(e)?;
            }
            let suspects_complete = self.suspects_complete;
            let claims = if suspects_complete {
                // 2. The rows that are not suspects claim their keys with a
                //    plain sorted insert (the primary key refuses a repeat
                //    the filter missed); the suspects claim theirs in row
                //    order, the first row of a key winning; a suspect whose
                //    key another line claimed is a duplicate of it, and
                //    gives back what it claimed.
                let mut claims = [0u64; 2];
                for (kind, column) in KEYS {
                    claims[kind as usize] += staged
                        .execute(&mut tx, &format!(
                        "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
                         SELECT $1, {kind}, o.{column}, o.line, o.id FROM orders o
                         WHERE {STAGED} AND o.suspect IS NULL ORDER BY o.{column}"
                    ))
                        .await
                        .map_err(e)?;
                    claims[kind as usize] += staged
                        .execute(&mut tx, &format!(
                        "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
                         SELECT $1, {kind}, o.{column}, o.line, o.id FROM orders o
                         WHERE {STAGED} AND o.suspect ORDER BY o.id
                         ON CONFLICT DO NOTHING"
                    ))
                        .await
                        .map_err(e)?;
                }
                let (set_aside, released_phones, released_ids): (i64, i64, i64) =
                    sqlx::query_as(&format!(
                        "WITH chosen AS (
                             SELECT o.id, o.batch_seq, o.phone, o.order_id, o.line,
                                    CASE WHEN p.line <> o.line THEN 'same phone as line ' || p.line
                                         ELSE 'same order id as line ' || i.line END AS reason
                             FROM orders o
                             JOIN order_keys p ON p.campaign_id = $1 AND p.kind = 0 AND p.key = o.phone
                             JOIN order_keys i ON i.campaign_id = $1 AND i.kind = 1 AND i.key = o.order_id
                             WHERE {STAGED} AND o.suspect AND (p.line <> o.line OR i.line <> o.line)),
                         released_phones AS (
                             DELETE FROM order_keys k USING chosen c
                             WHERE k.campaign_id = $1 AND k.kind = 0 AND k.key = c.phone AND k.line = c.line
                             RETURNING 1),
                         released_ids AS (
                             DELETE FROM order_keys k USING chosen c
                             WHERE k.campaign_id = $1 AND k.kind = 1 AND k.key = c.order_id AND k.line = c.line
                             RETURNING 1),
                         {MOVE}
                         SELECT (SELECT COUNT(*) FROM moved), (SELECT COUNT(*) FROM released_phones),
                                (SELECT COUNT(*) FROM released_ids)"
                    ))
                    .bind(staged.campaign)
                    .bind(staged.after)
                    .bind(staged.through)
                    .bind(OrderState::Duplicate.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(e)?;
                duplicates += set_aside as u64;
                claims[0] -= released_phones as u64;
                claims[1] -= released_ids as u64;
                claims
            } else {
                // 2. Any staged rows (some left by an interrupted ingest):
                //    later rows repeating an earlier one's phone or order
                //    id, both judged among the same live rows, by window
                //    functions over all of them; then the live orders
                //    claim their keys.
                duplicates += staged
                .set_aside(&mut tx, &format!(
                    "SELECT id, batch_seq,
                            CASE WHEN by_phone > 1 THEN 'same phone as line ' || first_phone
                                 ELSE 'same order id as line ' || first_id END AS reason
                     FROM (SELECT id, batch_seq,
                                  row_number() OVER (PARTITION BY phone ORDER BY id) AS by_phone,
                                  first_value(line) OVER (PARTITION BY phone ORDER BY id) AS first_phone,
                                  row_number() OVER (PARTITION BY order_id ORDER BY id) AS by_id,
                                  first_value(line) OVER (PARTITION BY order_id ORDER BY id) AS first_id
                           FROM orders o WHERE {STAGED}) ranked
                     WHERE by_phone > 1 OR by_id > 1"
                ))
                .await
                .map_err(e)?;
                let mut claims = [0u64; 2];
                for (kind, column) in KEYS {
                    claims[kind as usize] = staged
                        .execute(&mut tx, &format!(
                        "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
                         SELECT $1, {kind}, o.{column}, o.line, o.id FROM orders o WHERE {STAGED}
                         ORDER BY o.{column}"
                    ))
                        .await
                        .map_err(e)?;
                }
                claims
            };
            let orders = staged
                .count(&mut tx, &format!("SELECT COUNT(*) FROM orders o WHERE {STAGED}"))
                .await
                .map_err(e)?;
            // 3. Every live order holds both of its keys, or nothing commits.
            if claims != [orders as u64; 2] {
                return Err(ledger.corrupt(format!(
                    "planning refused: {orders} live order(s) but {} phone and {} order id claim(s); nothing was planned",
                    claims[0], claims[1]
                )));
            }
            // 4. Numbers on the do-not-call list leave their batches (their
            //    claims stay: a later row with the number is a duplicate).
            let suppressed = super::suppress::set_aside_suppressed(
                &mut tx,
                campaign,
                now_ms,
                super::suppress::Which::Staged { after, through },
            )
            .await
            .map_err(e)?;
            sqlx::query(
                "DELETE FROM batches WHERE campaign_id = $1 AND size = 0 AND state = $2 AND attempts = 0",
            )
            .bind(campaign)
            .bind(BatchState::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            sqlx::query(
                "UPDATE campaigns SET planned_through = $2, duplicate_orders = duplicate_orders + $3,
                     batches_planned_through = (SELECT COALESCE(MAX(seq), 0) FROM batches WHERE campaign_id = $1)
                 WHERE id = $1",
            )
            .bind(campaign)
            .bind(through)
            .bind(duplicates as i64)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            tx.commit().await.map_err(e)?;
            Ok(Planned {
                orders: orders as u64 - suppressed,
                duplicates,
                suppressed,
            })
        });
        self.lost_or(planned)
    }
}

/// Lets the transaction commit without waiting for the server's disk. As
/// on SQLite, ingest may: its rows and checkpoint commit together, so a
/// commit lost in a server crash is only read again, and the next `sending`
/// commit (which waits for the disk) makes the log durable up to itself,
/// this commit included.
impl IngestWriter {
    /// Plans the campaign's due redials into new batches, in one
    /// transaction (see the SQLite writer's `plan_redials`, which does the
    /// same): the contacts are read through a cursor, a page at a time, and
    /// the due redials gathered in a temporary table before they become
    /// orders set-wise.
    pub fn plan_redials(
        &mut self,
        policy: &crate::redial::Policy,
        campaign_name: &str,
        batch_size: u32,
        now_ms: i64,
    ) -> Result<RedialsPlanned, LedgerError> {
        let ledger = &self.ledger;
        let fence = &self.fence;
        let campaign = fence.campaign.0;
        let e = |source| ledger.query_error(source);
        self.runtime.block_on(async {
            let mut tx = ledger.transaction().await?;
            ledger.check_ingest_lease(&mut tx, fence).await?;
            let (planned_through, last, stopped, next_seq): (i64, Option<i64>, bool, i64) =
                sqlx::query_as(
                    "SELECT planned_through, (SELECT MAX(id) FROM orders WHERE campaign_id = $1),
                            redials_stopped_at_ms IS NOT NULL,
                            (SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE campaign_id = $1)
                     FROM campaigns WHERE id = $1 FOR UPDATE",
                )
                .bind(campaign)
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
            if last.unwrap_or(0) > planned_through {
                return Err(ledger.corrupt("redials planned while rows are staged".into()));
            }
            sqlx::raw_sql(
                "CREATE TEMP TABLE redials_due (
                     contact BIGINT NOT NULL, attempt INTEGER NOT NULL, order_id TEXT COLLATE \"C\" NOT NULL,
                     batch_seq BIGINT NOT NULL, country TEXT NOT NULL, zones TEXT NOT NULL) ON COMMIT DROP",
            )
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            let salt = ledger.order_id_salt().to_owned();
            let next_seq = ledger.batch_seq(next_seq)?;
            let mut walk =
                Walk::planning(policy, now_ms, &salt, campaign_name, batch_size, next_seq);
            super::redials::walk_contacts(&mut tx, campaign, &mut walk, !stopped)
                .await
                .map_err(e)?;
            let funnel = &walk.funnel;
            let mut planned = RedialsPlanned {
                orders: 0,
                waiting: funnel.waiting,
                next_due_ms: funnel.next_due_ms,
                awaiting_call: funnel.awaiting_call,
            };
            if stopped || funnel.due_now == 0 {
                tx.commit().await.map_err(e)?;
                return Ok(planned);
            }
            let batches = walk.new_batches();
            sqlx::query(
                "INSERT INTO batches (campaign_id, seq, country, zones, size, updated_at_ms)
                 SELECT $1, * , $2 FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::INTEGER[])",
            )
            .bind(campaign)
            .bind(now_ms)
            .bind(batches.iter().map(|b| i64::from(b.seq)).collect::<Vec<_>>())
            .bind(batches.iter().map(|b| b.country.as_str()).collect::<Vec<_>>())
            .bind(batches.iter().map(|b| b.zones.as_str()).collect::<Vec<_>>())
            .bind(batches.iter().map(|b| b.size as i32).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM orders")
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
            planned.orders = sqlx::query(
                "INSERT INTO orders (campaign_id, line, order_id, phone, country, other, batch_seq, attempt, contact_row)
                 SELECT $1, f.line, d.order_id, f.phone, f.country, f.other, d.batch_seq, d.attempt, d.contact
                 FROM redials_due d JOIN orders f ON f.id = d.contact
                 ORDER BY d.contact",
            )
            .bind(campaign)
            .execute(&mut *tx)
            .await
            .map_err(e)?
            .rows_affected();
            let through: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM orders WHERE campaign_id = $1")
                .bind(campaign)
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
            sqlx::query(
                "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
                 SELECT $1, 1, order_id, line, id FROM orders WHERE campaign_id = $1 AND id > $2 ORDER BY order_id",
            )
            .bind(campaign)
            .bind(before)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            let suppressed = super::suppress::set_aside_suppressed(
                &mut tx,
                campaign,
                now_ms,
                super::suppress::Which::Staged {
                    after: before,
                    through,
                },
            )
            .await
            .map_err(e)?;
            planned.orders -= suppressed;
            sqlx::query(
                "DELETE FROM batches WHERE campaign_id = $1 AND size = 0 AND state = $2 AND attempts = 0",
            )
            .bind(campaign)
            .bind(BatchState::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            sqlx::query(
                "UPDATE campaigns SET planned_through = $2,
                     batches_planned_through = (SELECT COALESCE(MAX(seq), 0) FROM batches WHERE campaign_id = $1)
                 WHERE id = $1",
            )
            .bind(campaign)
            .bind(through)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
            tx.commit().await.map_err(e)?;
            Ok(planned)
        })
    }
}

async fn quick_commit(tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(tx)
        .await
        .map(drop)
}

/// The staged orders of one plan: statements over them take `$1` the
/// campaign and `$2`..`$3` the range of their ids.
struct Staged {
    campaign: i64,
    after: i64,
    through: i64,
}

impl Staged {
    /// Runs a statement over the staged orders; returns the rows it changed.
    async fn execute(&self, tx: &mut sqlx::PgConnection, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(sqlx::query(sql)
            .bind(self.campaign)
            .bind(self.after)
            .bind(self.through)
            .execute(tx)
            .await?
            .rows_affected())
    }

    /// Runs a `COUNT` over the staged orders.
    async fn count(&self, tx: &mut sqlx::PgConnection, sql: &str) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(sql)
            .bind(self.campaign)
            .bind(self.after)
            .bind(self.through)
            .fetch_one(tx)
            .await
    }

    /// Sets aside as duplicates the orders `chosen` selects (columns id,
    /// batch_seq, reason); returns how many.
    async fn set_aside(
        &self,
        tx: &mut sqlx::PgConnection,
        chosen: &str,
    ) -> Result<u64, sqlx::Error> {
        let moved: i64 = sqlx::query_scalar(&format!(
            "WITH chosen AS ({chosen}), {MOVE} SELECT COUNT(*) FROM moved"
        ))
        .bind(self.campaign)
        .bind(self.after)
        .bind(self.through)
        .bind(OrderState::Duplicate.as_str())
        .fetch_one(tx)
        .await?;
        Ok(moved as u64)
    }
}

/// The live staged orders `o` of campaign `$1`: ids in `$2 < id <= $3`.
const STAGED: &str = "o.campaign_id = $1 AND o.id > $2 AND o.id <= $3 AND o.set_aside IS NULL";

/// The part of a statement that sets aside as `$4` the orders of `chosen`
/// (columns id, batch_seq, reason) and takes them out of their batches.
const MOVE: &str =
    "moved AS (UPDATE orders SET set_aside = $4, batch_seq = NULL, reason = chosen.reason
                        FROM chosen WHERE orders.id = chosen.id RETURNING chosen.batch_seq),
              shrunk AS (UPDATE batches b SET size = b.size - g.n
                         FROM (SELECT batch_seq, COUNT(*) AS n FROM moved GROUP BY batch_seq) g
                         WHERE b.campaign_id = $1 AND b.seq = g.batch_seq)";

/// Staged rows (`$1` the campaign, `$2`..`$3` their ids) whose order id
/// another campaign of the ledger holds, with the reason.
pub(super) const USED_ELSEWHERE: &str = "SELECT o.id, o.batch_seq,
        'order id already used by campaign \"' || c.name || '\"' AS reason
     FROM orders o
     JOIN LATERAL (SELECT k.campaign_id FROM order_keys k
                   WHERE k.kind = 1 AND k.key = o.order_id AND k.campaign_id <> $1
                   LIMIT 1) k ON TRUE
     JOIN campaigns c ON c.id = k.campaign_id
     WHERE o.campaign_id = $1 AND o.id > $2 AND o.id <= $3 AND o.set_aside IS NULL";

/// The advisory lock plans hold while they check order ids against other
/// campaigns' (any constant the ledger uses for nothing else).
const ORDER_IDS_LOCK: i64 = 0x6e78_6f72_6469_6473;

/// The keys a live order claims: kind in `order_keys`, column of `orders`.
const KEYS: [(u8, &str); 2] = [(0, "phone"), (1, "order_id")];

/// Appends a field of `COPY`'s text format and its tab: `\N` for null,
/// backslash escapes for what would end a field or a line.
fn copy_text(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N\t");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\t');
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_text_escapes_what_would_end_a_field_or_a_line() {
        let mut out = String::new();
        super::copy_text(&mut out, Some("a\tb\\c\nd\re"));
        super::copy_text(&mut out, None);
        assert_eq!(out, "a\\tb\\\\c\\nd\\re\t\\N\t");
    }
}
