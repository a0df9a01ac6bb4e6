//! Ledger writes of ingest, in two steps that keep big files fast:
//!
//! 1. `stage_chunk`: rows are appended as staged orders (row ids in file
//!    order, no random-key index touched), already placed in batches, with
//!    the checkpoint, one chunk per transaction.
//! 2. `plan_staged`: in one transaction, duplicates are found and leave
//!    their batches, and the keys of the live orders are claimed in
//!    `order_keys` by one sorted insert.
//!
//! Both run on ingest's own connection ([`IngestWriter`]), from one blocking
//! thread: binding each row to one prepared statement, borrowing its text,
//! is several times faster than multi-row statements, and staging is what
//! a big file waits for.
//!
//! A crash between the two leaves staged orders, which the next ingest
//! plans; `status` counts them as pending.

use rusqlite::{params, TransactionBehavior};

use super::{CampaignId, Fence, LedgerError, Sqlite};
use crate::batch::BatchSeq;
use crate::ledger::model::{Checkpoint, Planned, StagedChunk};
use crate::ledger::redials::{ContactRow, DueRedial, RedialsPlanned, Walk, CONTACT_ROWS_SQLITE};
use crate::redial::CallSeen;
use crate::state::{BatchState, OrderState};

impl Sqlite {
    pub async fn checkpoint(&self, campaign: CampaignId) -> Result<Checkpoint, LedgerError> {
        self.read(move |this, conn| {
            conn.query_row(
                "SELECT source_fingerprint, source_offset, source_line, source_path FROM campaigns WHERE id = ?",
                [campaign.0],
                |row| {
                    Ok(Checkpoint {
                        source: row.get(3)?,
                        fingerprint: row.get(0)?,
                        offset: row.get::<_, i64>(1)? as u64,
                        line: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .map_err(this.error())
        })
        .await
    }

    /// The first unused batch sequence number of the campaign.
    pub async fn next_batch_seq(&self, campaign: CampaignId) -> Result<BatchSeq, LedgerError> {
        self.read(move |this, conn| {
            let next: i64 = conn
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE campaign_id = ?",
                    [campaign.0],
                    |row| row.get(0),
                )
                .map_err(this.error())?;
            this.batch_seq(next)
        })
        .await
    }
}

/// Ingest's own connection to the ledger, for one blocking thread. Its
/// writes are `BEGIN IMMEDIATE` transactions, like every ledger write.
pub struct IngestWriter {
    conn: rusqlite::Connection,
    ledger: Sqlite,
    /// Every transaction checks that the run still holds the campaign.
    fence: Fence,
    campaign: i64,
    /// Whether every staged order's possible repeats are in
    /// `temp.plan_suspects`: none were left staged by an interrupted ingest,
    /// and every chunk marked its repeats.
    suspects_complete: bool,
    /// Whether the campaign had claimed keys before this ingest began. If
    /// not, every claim is this ingest's own, made by rows the reader's
    /// filter has seen: while the suspects are complete, a staged row that
    /// repeats one is a suspect, and planning need not look every staged
    /// row up among the claims.
    claims_before: bool,
    /// Whether a dispatch reads and writes the ledger while this writer
    /// plans (`run`): then a plan must not wait for its readers.
    beside_dispatch: bool,
    /// Whether the order ids come from the contact file (`columns.order_id`):
    /// then each is checked against every other campaign's, which an id
    /// derived from the campaign's own name cannot repeat.
    ids_from_file: bool,
}

impl Sqlite {
    /// Opens ingest's own connection to the ledger (blocking: call it off
    /// the async runtime), for the run that holds `fence`.
    pub fn ingest_writer(&self, fence: &Fence) -> Result<IngestWriter, LedgerError> {
        let campaign = fence.campaign;
        let e = self.error();
        let conn = self.bulk_connection()?;
        conn.execute_batch(
            "CREATE TEMP TABLE plan_suspects (id INTEGER PRIMARY KEY);
             CREATE TEMP TABLE plan_repeated (
                 key TEXT PRIMARY KEY, first_id INTEGER NOT NULL, first_line INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TEMP TABLE plan_duplicates (id INTEGER PRIMARY KEY, reason TEXT NOT NULL);
             CREATE TEMP TABLE plan_keys (key TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (key, id)) WITHOUT ROWID;",
        )
        .map_err(e)?;
        let (left_staged, claims_before): (bool, bool) = conn
            .query_row(
                "SELECT COALESCE((SELECT MAX(id) FROM orders WHERE campaign_id = ?1), 0) > planned_through,
                        planned_through > 0
                 FROM campaigns WHERE id = ?1",
                [campaign.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(e)?;
        Ok(IngestWriter {
            conn,
            ledger: self.clone(),
            fence: fence.clone(),
            campaign: campaign.0,
            suspects_complete: !left_staged,
            claims_before,
            beside_dispatch: false,
            ids_from_file: false,
        })
    }
}

impl IngestWriter {
    /// Says that a dispatch works on the ledger meanwhile: plans then
    /// leave the WAL to SQLite's own checkpoints instead of truncating it
    /// (which waits for every reader to reach the newest snapshot).
    pub fn beside_dispatch(&mut self) {
        self.beside_dispatch = true;
    }

    /// Says that the order ids come from the contact file.
    pub fn ids_from_file(&mut self) {
        self.ids_from_file = true;
    }

    /// Appends rows as staged orders (invalid ones set aside at once) and
    /// moves the checkpoint, all or nothing.
    pub fn stage_chunk(&mut self, chunk: &StagedChunk<'_>, now_ms: i64) -> Result<(), LedgerError> {
        self.ledger.check_file()?;
        let e = self.ledger.error();
        let campaign = self.campaign;
        self.suspects_complete &= chunk.repeats_marked;
        let note_suspects = self.suspects_complete;
        // The handle's write turn (see `Sqlite::write`): dispatch's writes
        // of this process queue for it instead of polling SQLite's busy
        // handler while chunks commit back to back.
        let _turn = self.ledger.write_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        self.ledger.check_fence_on(&tx, &self.fence)?;
        {
            let mut open = tx
                .prepare_cached(
                    "INSERT INTO batches (campaign_id, seq, country, zones, size, updated_at_ms) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                )
                .map_err(e)?;
            for (seq, country, zones) in chunk.new_batches {
                open.execute(params![campaign, seq, country.as_str(), zones, now_ms])
                    .map_err(e)?;
            }
            let mut growth: Vec<(BatchSeq, u32)> = Vec::new();
            for seq in chunk.rows.iter().filter_map(|row| row.batch_seq) {
                match growth.last_mut() {
                    Some((s, n)) if *s == seq => *n += 1,
                    _ => match growth.iter_mut().find(|(s, _)| *s == seq) {
                        Some((_, n)) => *n += 1,
                        None => growth.push((seq, 1)),
                    },
                }
            }
            let mut grow = tx
                .prepare_cached(
                    "UPDATE batches SET size = size + ?3 WHERE campaign_id = ?1 AND seq = ?2",
                )
                .map_err(e)?;
            for (seq, n) in growth {
                grow.execute(params![campaign, seq, n]).map_err(e)?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO orders (campaign_id, line, order_id, phone, country, other, batch_seq, set_aside, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(e)?;
            let mut suspect = tx
                .prepare_cached("INSERT INTO temp.plan_suspects (id) VALUES (?1)")
                .map_err(e)?;
            for row in chunk.rows {
                insert
                    .execute(params![
                        campaign,
                        row.line as i64,
                        row.order_id,
                        row.phone,
                        row.country,
                        row.other,
                        row.batch_seq,
                        row.invalid.map(|_| OrderState::Invalid.as_str()),
                        row.invalid,
                    ])
                    .map_err(e)?;
                if row.suspect && note_suspects {
                    suspect.execute([tx.last_insert_rowid()]).map_err(e)?;
                }
            }
            tx.execute(
                "UPDATE campaigns SET rows_read = rows_read + ?1, source_fingerprint = ?2, source_offset = ?3, source_line = ?4,
                     source_path = ?6
                 WHERE id = ?5",
                params![
                    chunk.rows_read as i64,
                    chunk.checkpoint.fingerprint.as_deref(),
                    chunk.checkpoint.offset as i64,
                    chunk.checkpoint.line as i64,
                    campaign,
                    chunk.checkpoint.source.as_deref(),
                ],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Plans every staged order of the campaign, in one transaction: a row
    /// whose phone or order id an earlier row of the campaign has is a
    /// duplicate and leaves its batch (a batch left empty is dropped); the
    /// others claim their keys in `order_keys`, inserted in key order.
    ///
    /// The claims are the ledger's last line of defence: `order_keys`'
    /// primary key refuses a second claim of a campaign's phone or order
    /// id, and only rows that may repeat a key (suspects) may lose a claim
    /// quietly, to be set aside as duplicates. Before committing, the plan
    /// checks that every live order holds both of its keys; whatever the
    /// fast path decided, a plan that would leave two live orders with one
    /// key fails and commits nothing.
    pub fn plan_staged(&mut self, now_ms: i64) -> Result<Planned, LedgerError> {
        self.ledger.check_file()?;
        let e = self.ledger.error();
        let campaign = self.campaign;
        let suspects_complete = self.suspects_complete;
        // Planning sorts every staged key. While the suspects are known (up
        // to a few million rows), helper threads sort part of them on the
        // core the reader thread has left idle; beyond, the sorts are big
        // and each helper would hold its own cache-sized buffers, so memory
        // stays flat instead.
        // Beside a dispatch, memory is shared with it: no helpers.
        let helpers = if suspects_complete && !self.beside_dispatch {
            2
        } else {
            0
        };
        self.conn
            .pragma_update(None, "threads", helpers)
            .map_err(e)?;
        let turn = self.ledger.write_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        self.ledger.check_fence_on(&tx, &self.fence)?;
        let (planned_through, last, claimed): (i64, Option<i64>, bool) = tx
            .query_row(
                "SELECT planned_through, (SELECT MAX(id) FROM orders WHERE campaign_id = ?1), planned_through > 0
                 FROM campaigns WHERE id = ?1",
                [campaign],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .map_err(e)?;
        let Some(last) = last.filter(|last| *last > planned_through) else {
            return Ok(Planned::default());
        };
        // Every statement below works on the staged orders: `?1` is the
        // campaign, `?2`..`?3` their row ids.
        let staged = Staged {
            campaign,
            after: planned_through,
            through: last,
        };

        // 1. Rows with a key an earlier plan claimed are duplicates (a
        //    campaign's first plan has none). Claims of this ingest's own
        //    earlier plans are found with the suspects, in step 2.
        let mut duplicates = 0;
        //    The staged keys are looked up in key order (sorted into a
        //    temporary table first): the claims are a big B-tree, and
        //    lookups in row order would read one of its pages each.
        if claimed && (self.claims_before || !suspects_complete) {
            for (kind, column, what) in KEYS {
                staged
                    .execute(&tx, "DELETE FROM temp.plan_keys")
                    .map_err(e)?;
                staged
                    .execute(
                        &tx,
                        &format!(
                            "INSERT INTO temp.plan_keys (key, id)
                             SELECT {column}, id FROM orders
                             WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL
                             ORDER BY {column}, id"
                        ),
                    )
                    .map_err(e)?;
                staged
                    .execute(
                        &tx,
                        &format!(
                            "INSERT OR IGNORE INTO temp.plan_duplicates (id, reason)
                             SELECT p.id, 'same {what} as line ' || k.line FROM temp.plan_keys p
                             CROSS JOIN order_keys k ON k.campaign_id = ?1 AND k.kind = {kind} AND k.key = p.key"
                        ),
                    )
                    .map_err(e)?;
            }
            staged
                .execute(&tx, "DELETE FROM temp.plan_keys")
                .map_err(e)?;
            duplicates += staged.set_aside_duplicates(&tx).map_err(e)?;
        }

        // 1b. An order id is the vendor's id of one call list entry, in
        //     every campaign of the ledger: a row whose id another campaign
        //     holds is set aside (else that campaign's calls would be
        //     credited to this one, or this one's to that).
        if self.ids_from_file {
            let others: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM campaigns WHERE id <> ?1 AND planned_through > 0)",
                    [campaign],
                    |row| row.get(0),
                )
                .map_err(e)?;
            if others {
                staged.execute(&tx, USED_ELSEWHERE).map_err(e)?;
                duplicates += staged.set_aside_duplicates(&tx).map_err(e)?;
            }
        }

        // 2. Among the staged rows, a later row repeating a key is a
        //    duplicate of the first; the live orders claim their keys.
        let claims = if suspects_complete {
            let (claims, found) = staged.claim_checking_suspects(&tx).map_err(e)?;
            duplicates += found;
            claims
        } else {
            duplicates += staged.find_repeats_by_grouping(&tx).map_err(e)?;
            let mut claims = [0; 2];
            for (kind, column, _) in KEYS {
                claims[usize::from(kind)] = staged
                    .execute(
                        &tx,
                        &format!(
                            "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
                             SELECT ?1, {kind}, {column}, line, id FROM orders
                             WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL
                             ORDER BY {column}"
                        ),
                    )
                    .map_err(e)?;
            }
            claims
        };
        // 3. Every live order holds both of its keys, or nothing commits.
        let orders = staged
            .count(
                &tx,
                "SELECT COUNT(*) FROM orders WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL",
            )
            .map_err(e)?;
        if claims != [orders; 2] {
            return Err(LedgerError::Corrupt {
                path: self.ledger.path.clone(),
                message: format!(
                    "planning refused: {orders} live order(s) but {} phone and {} order id claim(s); nothing was planned",
                    claims[0], claims[1]
                ),
            });
        }
        // 4. Orders whose number is on the do-not-call list leave their
        //    batches. They keep their claims: a later row with the same
        //    number is a duplicate, never a call.
        let suppressed = super::suppress::set_aside_suppressed(
            &tx,
            campaign,
            now_ms,
            "o.id > ?3 AND o.id <= ?4",
            &[&planned_through, &last],
        )
        .map_err(e)?;
        staged
            .execute(
                &tx,
                &format!(
                    "DELETE FROM batches WHERE campaign_id = ?1 AND size = 0 AND state = '{}' AND attempts = 0",
                    BatchState::Pending.as_str()
                ),
            )
            .map_err(e)?;
        staged
            .execute(
                &tx,
                "UPDATE campaigns SET planned_through = ?3,
                     batches_planned_through = (SELECT COALESCE(MAX(seq), 0) FROM batches WHERE campaign_id = ?1)
                 WHERE id = ?1",
            )
            .map_err(e)?;
        tx.execute("DELETE FROM temp.plan_suspects", [])
            .map_err(e)?;
        tx.commit().map_err(e)?;
        drop(turn);
        // A big plan leaves a WAL as big as what it wrote; the commit
        // copied it into the database. Truncating it now spares the next
        // process reading all of it back when it opens the ledger (SQLite
        // rebuilds its WAL index from the whole file). Beside a dispatch,
        // a passive checkpoint does what it can without waiting; the
        // dispatch's last connection truncates the WAL when the run ends.
        let started = std::time::Instant::now();
        let checkpoint = if self.beside_dispatch {
            "PRAGMA wal_checkpoint(PASSIVE)"
        } else {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        };
        self.conn.query_row(checkpoint, [], |_| Ok(())).map_err(e)?;
        tracing::trace!(
            seconds = started.elapsed().as_secs_f64(),
            checkpoint,
            "WAL checkpointed"
        );
        self.suspects_complete = true;
        Ok(Planned {
            orders: (orders - suppressed) as u64,
            duplicates: duplicates as u64,
            suppressed: suppressed as u64,
        })
    }
}

impl IngestWriter {
    /// Plans the campaign's due redials (see [`crate::redial::next`]) into
    /// new batches, in one transaction, unless `cancel` stopped them:
    /// each an order of its own with a new id, linked to its contact, its
    /// number put aside if it went on the do-not-call list. Call it when
    /// nothing is staged (after the last plan): the new orders count as
    /// planned at once. A second plan of the same attempt is refused by
    /// the ledger (`orders_redials`).
    pub fn plan_redials(
        &mut self,
        policy: &crate::redial::Policy,
        campaign_name: &str,
        batch_size: u32,
        now_ms: i64,
    ) -> Result<RedialsPlanned, LedgerError> {
        self.ledger.check_file()?;
        let e = self.ledger.error();
        let campaign = self.campaign;
        let salt = self.ledger.order_id_salt().to_owned();
        let turn = self.ledger.write_turn();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        self.ledger.check_fence_on(&tx, &self.fence)?;
        let (planned_through, last, stopped, next_seq): (i64, Option<i64>, bool, i64) = tx
            .query_row(
                "SELECT planned_through, (SELECT MAX(id) FROM orders WHERE campaign_id = ?1),
                        redials_stopped_at_ms IS NOT NULL,
                        (SELECT COALESCE(MAX(seq), 0) + 1 FROM batches WHERE campaign_id = ?1)
                 FROM campaigns WHERE id = ?1",
                [campaign],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .map_err(e)?;
        if last.unwrap_or(0) > planned_through {
            return Err(LedgerError::Corrupt {
                path: self.ledger.path.clone(),
                message: "redials planned while rows are staged".into(),
            });
        }
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS redials_due (
                 contact INTEGER NOT NULL, attempt INTEGER NOT NULL, order_id TEXT NOT NULL,
                 batch_seq INTEGER NOT NULL, country TEXT NOT NULL, zones TEXT NOT NULL);
             DELETE FROM temp.redials_due;",
        )
        .map_err(e)?;
        let next_seq = self.ledger.batch_seq(next_seq)?;
        let mut walk = Walk::planning(policy, now_ms, &salt, campaign_name, batch_size, next_seq);
        {
            let mut due = tx
                .prepare_cached(
                    "INSERT INTO temp.redials_due (contact, attempt, order_id, batch_seq, country, zones)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            let mut store = |redial: DueRedial| {
                due.execute(params![
                    redial.contact,
                    redial.attempt,
                    redial.order_id,
                    redial.batch_seq,
                    redial.country,
                    redial.zones
                ])
                .map(|_| ())
            };
            walk_contacts(&tx, campaign, |row| match walk.take(row) {
                Some(redial) if !stopped => store(redial),
                _ => Ok(()),
            })
            .map_err(e)?;
            if let Some(redial) = walk.finish().filter(|_| !stopped) {
                store(redial).map_err(e)?;
            }
        }
        let funnel = &walk.funnel;
        let mut planned = RedialsPlanned {
            orders: 0,
            waiting: funnel.waiting,
            next_due_ms: funnel.next_due_ms,
            awaiting_call: funnel.awaiting_call,
        };
        if stopped || funnel.due_now == 0 {
            tx.commit().map_err(e)?;
            return Ok(planned);
        }
        {
            let mut open = tx
                .prepare_cached(
                    "INSERT INTO batches (campaign_id, seq, country, zones, size, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(e)?;
            for batch in walk.new_batches() {
                open.execute(params![
                    campaign,
                    batch.seq,
                    batch.country,
                    batch.zones,
                    batch.size,
                    now_ms
                ])
                .map_err(e)?;
            }
        }
        let before: i64 = tx
            .query_row("SELECT COALESCE(MAX(id), 0) FROM orders", [], |row| {
                row.get(0)
            })
            .map_err(e)?;
        planned.orders = tx
            .execute(
                "INSERT INTO orders (campaign_id, line, order_id, phone, country, other, batch_seq, attempt, contact_row)
                 SELECT ?1, f.line, d.order_id, f.phone, f.country, f.other, d.batch_seq, d.attempt, d.contact
                 FROM temp.redials_due d CROSS JOIN orders f ON f.id = d.contact
                 ORDER BY d.rowid",
                [campaign],
            )
            .map_err(e)? as u64;
        tx.execute(
            "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
             SELECT ?1, 1, order_id, line, id FROM orders WHERE id > ?2 ORDER BY order_id",
            params![campaign, before],
        )
        .map_err(e)?;
        // A number that went on the do-not-call list since: set aside now.
        let suppressed =
            super::suppress::set_aside_suppressed(&tx, campaign, now_ms, "o.id > ?3", &[&before])
                .map_err(e)?;
        planned.orders -= suppressed as u64;
        tx.execute(
            &format!(
                "DELETE FROM batches WHERE campaign_id = ?1 AND size = 0 AND state = '{}' AND attempts = 0",
                BatchState::Pending.as_str()
            ),
            [campaign],
        )
        .map_err(e)?;
        tx.execute(
            "UPDATE campaigns SET planned_through = (SELECT MAX(id) FROM orders WHERE campaign_id = ?1),
                 batches_planned_through = (SELECT COALESCE(MAX(seq), 0) FROM batches WHERE campaign_id = ?1)
             WHERE id = ?1",
            [campaign],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        drop(turn);
        Ok(planned)
    }
}

/// Hands each row of campaign `campaign`'s contacts (see
/// [`CONTACT_ROWS_SQLITE`]), in contact order, to `take`.
pub(super) fn walk_contacts(
    conn: &rusqlite::Connection,
    campaign: i64,
    mut take: impl FnMut(ContactRow) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut rows = conn.prepare(CONTACT_ROWS_SQLITE)?;
    let mut rows = rows.query([campaign])?;
    while let Some(row) = rows.next()? {
        take(contact_row(row)?)?;
    }
    Ok(())
}

/// A row of [`CONTACT_ROWS_SQLITE`] as SQLite gives it.
fn contact_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRow> {
    let contact: i64 = row.get(0)?;
    Ok(if row.get::<_, i64>(1)? == 0 {
        ContactRow::Order {
            contact,
            row: row.get(2)?,
            attempt: row.get(3)?,
            country: row.get(4)?,
            order_id: row.get(5)?,
            accepted: row.get(6)?,
            zones: row.get(13)?,
        }
    } else {
        ContactRow::Call {
            contact,
            order_row: row.get(2)?,
            call: CallSeen {
                start_ms: row.get(7)?,
                end_ms: row.get(8)?,
                answered: row.get::<_, Option<bool>>(9)?.unwrap_or(false),
                hangup_code: row.get(10)?,
                call_status: row.get(11)?,
                intent: row.get(12)?,
                of_latest: false,
            },
        }
    })
}

/// Staged rows whose order id another campaign of the ledger holds.
pub(in crate::ledger) const USED_ELSEWHERE: &str =
    "INSERT OR IGNORE INTO temp.plan_duplicates (id, reason)
     SELECT o.id, 'order id already used by campaign \"' || c.name || '\"'
     FROM orders o
     CROSS JOIN order_keys k ON k.kind = 1 AND k.key = o.order_id AND k.campaign_id <> ?1
     CROSS JOIN campaigns c ON c.id = k.campaign_id
     WHERE o.campaign_id = ?1 AND o.id > ?2 AND o.id <= ?3 AND o.set_aside IS NULL";

/// The keys a live order claims: kind in `order_keys`, column of `orders`,
/// and the words for it.
const KEYS: [(u8, &str, &str); 2] = [(0, "phone", "phone"), (1, "order_id", "order id")];

/// The staged orders of one plan: a campaign and a range of row ids.
struct Staged {
    campaign: i64,
    after: i64,
    through: i64,
}

impl Staged {
    /// Runs a statement whose `?1`, `?2`, `?3` (as many as it has) are the
    /// campaign and the range; returns the rows it changed.
    fn execute(&self, conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<usize> {
        let mut statement = conn.prepare(sql)?;
        let values = [self.campaign, self.after, self.through];
        for (index, value) in values.iter().enumerate().take(statement.parameter_count()) {
            statement.raw_bind_parameter(index + 1, value)?;
        }
        let started = std::time::Instant::now();
        let changed = statement.raw_execute()?;
        tracing::trace!(
            seconds = started.elapsed().as_secs_f64(),
            changed,
            sql,
            "plan step"
        );
        Ok(changed)
    }

    /// The way when every row that may repeat a key is a suspect: rows
    /// that are not suspects claim their keys with a plain sorted insert,
    /// which the primary key of `order_keys` refuses if one of them repeats
    /// a key after all; then the suspects claim theirs in row order, the
    /// first row of a key winning, and each suspect whose key another line
    /// claimed is a duplicate of it, and gives up what it claimed. Lines
    /// tell rows apart here: the staged rows come from one pass over one
    /// file. Returns the claims left per kind, and the duplicates.
    fn claim_checking_suspects(
        &self,
        conn: &rusqlite::Connection,
    ) -> rusqlite::Result<([usize; 2], usize)> {
        let mut claims = [0; 2];
        for (kind, column, _) in KEYS {
            claims[usize::from(kind)] += self.execute(
                conn,
                &format!(
                    "INSERT INTO order_keys (campaign_id, kind, key, line, order_row)
                     SELECT ?1, {kind}, {column}, line, id FROM orders
                     WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL
                       AND id NOT IN temp.plan_suspects
                     ORDER BY {column}"
                ),
            )?;
            claims[usize::from(kind)] += self.execute(
                conn,
                &format!(
                    "INSERT OR IGNORE INTO order_keys (campaign_id, kind, key, line, order_row)
                     SELECT ?1, {kind}, o.{column}, o.line, o.id
                     FROM temp.plan_suspects s CROSS JOIN orders o ON o.id = s.id
                     WHERE o.set_aside IS NULL
                     ORDER BY o.{column}, o.id"
                ),
            )?;
        }
        for (kind, column, what) in KEYS {
            self.execute(
                conn,
                &format!(
                    "INSERT OR IGNORE INTO temp.plan_duplicates (id, reason)
                     SELECT o.id, 'same {what} as line ' || k.line
                     FROM temp.plan_suspects s CROSS JOIN orders o ON o.id = s.id
                     CROSS JOIN order_keys k ON k.campaign_id = ?1 AND k.kind = {kind} AND k.key = o.{column}
                     WHERE o.set_aside IS NULL AND k.line <> o.line"
                ),
            )?;
        }
        for (kind, column, _) in KEYS {
            claims[usize::from(kind)] -= self.execute(
                conn,
                &format!(
                    "DELETE FROM order_keys WHERE campaign_id = ?1 AND kind = {kind} AND (key, line) IN (
                         SELECT o.{column}, o.line FROM temp.plan_duplicates d CROSS JOIN orders o ON o.id = d.id)"
                ),
            )?;
        }
        Ok((claims, self.set_aside_duplicates(conn)?))
    }

    /// Runs a `COUNT` whose `?1`, `?2`, `?3` are the campaign and the range.
    fn count(&self, conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<usize> {
        conn.query_row(sql, [self.campaign, self.after, self.through], |row| {
            row.get::<_, i64>(0)
        })
        .map(|n| n as usize)
    }

    /// The way for any staged rows: the keys they repeat, found by
    /// grouping (a sort, not a lookup per row), each with its first row
    /// (`line` comes from the row with the smallest id, SQLite's
    /// bare-column rule for MIN), then every later row of such a key, with
    /// the orders as the outer loop.
    fn find_repeats_by_grouping(&self, conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
        for (_, column, what) in KEYS {
            self.execute(conn, "DELETE FROM temp.plan_repeated")?;
            self.execute(
                conn,
                &format!(
                    "INSERT INTO temp.plan_repeated (key, first_id, first_line)
                     SELECT {column}, MIN(id), line FROM orders
                     WHERE campaign_id = ?1 AND id > ?2 AND id <= ?3 AND set_aside IS NULL
                     GROUP BY {column} HAVING COUNT(*) > 1"
                ),
            )?;
            self.execute(
                conn,
                &format!(
                    "INSERT OR IGNORE INTO temp.plan_duplicates (id, reason)
                     SELECT o.id, 'same {what} as line ' || r.first_line
                     FROM orders o CROSS JOIN temp.plan_repeated r ON r.key = o.{column}
                     WHERE o.campaign_id = ?1 AND o.id > ?2 AND o.id <= ?3 AND o.set_aside IS NULL
                       AND o.id > r.first_id"
                ),
            )?;
        }
        self.set_aside_duplicates(conn)
    }

    /// Sets aside the orders in `temp.plan_duplicates`, which leave their
    /// batches, and empties it; returns how many.
    fn set_aside_duplicates(&self, conn: &rusqlite::Connection) -> rusqlite::Result<usize> {
        self.execute(
            conn,
            "UPDATE batches SET size = size - g.n FROM (
                 SELECT o.batch_seq AS seq, COUNT(*) AS n FROM temp.plan_duplicates d CROSS JOIN orders o ON o.id = d.id
                 GROUP BY o.batch_seq) g
             WHERE batches.campaign_id = ?1 AND batches.seq = g.seq",
        )?;
        let set_aside = self.execute(
            conn,
            &format!(
                "UPDATE orders SET set_aside = '{}', batch_seq = NULL,
                 reason = (SELECT reason FROM temp.plan_duplicates d WHERE d.id = orders.id)
             WHERE id IN (SELECT id FROM temp.plan_duplicates)",
                OrderState::Duplicate.as_str()
            ),
        )?;
        self.execute(conn, "DELETE FROM temp.plan_duplicates")?;
        Ok(set_aside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::CampaignName;
    use crate::ledger::model::{Checkpoint, StagedRow};
    use crate::phone::Country;

    /// A staged row: line, order id, phone, batch; `None` phone is an
    /// invalid row.
    type Given = (u64, &'static str, Option<&'static str>, u32);

    /// How a test marks rows that may repeat an earlier key.
    #[derive(Debug, Clone, Copy)]
    enum Marking {
        /// Exactly the rows that do repeat one.
        Exact,
        /// Every row (as a saturated filter would).
        All,
        /// None, and the chunk says so: planning compares every row.
        Unmarked,
        /// Exactly, but the first chunk's ingest dies before planning: the
        /// next one (with a filter of its own) plans both chunks.
        ExactWithCrash,
        /// None, though the chunk says every repeat is marked: a filter
        /// that missed them (bypassed).
        Missed,
    }

    /// What a plan leaves: each order's line, state and reason, each
    /// batch's size, each claimed key.
    type Outcome = (
        Vec<(i64, Option<String>, Option<String>)>,
        Vec<(i64, i64)>,
        Vec<(i64, String, i64)>,
    );

    /// A run named `owner`.
    fn holder(owner: &str) -> crate::ledger::LeaseHolder {
        crate::ledger::LeaseHolder {
            owner: owner.into(),
            host: "here".into(),
            pid: 1,
            acquired_at_ms: 0,
            heartbeat_ms: 0,
            beats: 0,
        }
    }

    /// A new ledger whose campaign "spring" run `owner` holds.
    async fn campaign_held_by(owner: &str) -> (tempfile::TempDir, Sqlite, Fence) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Sqlite::open(&dir.path().join("ledger.db")).await.unwrap();
        let campaign = ledger
            .ensure_campaign(&CampaignName::parse("spring").unwrap(), 0)
            .await
            .unwrap();
        ledger
            .take_lease(campaign, &holder(owner), None, 0)
            .await
            .unwrap();
        let fence = Fence {
            campaign,
            owner: owner.into(),
        };
        (dir, ledger, fence)
    }

    #[tokio::test]
    async fn the_redial_walk_reads_contacts_in_order_from_b_trees_without_a_sort() {
        let (_dir, ledger, fence) = campaign_held_by("test-run").await;
        let plan = ledger
            .read(move |this, conn| {
                let sql = CONTACT_ROWS_SQLITE.replace("$1", &fence.campaign.0.to_string());
                let mut statement = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .map_err(this.error())?;
                let steps = statement
                    .query_map([], |row| row.get::<_, String>(3))
                    .map_err(this.error())?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(this.error())?;
                Ok(steps.join("\n"))
            })
            .await
            .unwrap();
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        assert_eq!(plan.matches("MERGE (UNION ALL)").count(), 3, "{plan}");
        assert_eq!(plan.matches("orders_redials").count(), 2, "{plan}");
        assert_eq!(
            plan.matches("COVERING INDEX calls_by_order").count(),
            2,
            "{plan}"
        );
        // The only whole-table read: the orders by row id, each first
        // order its own contact.
        assert_eq!(plan.matches("SCAN ").count(), 1, "{plan}");
    }

    /// Stages `chunks` as `marking` says and plans them; returns each
    /// plan's result and what the ledger holds afterwards.
    async fn plan(
        chunks: &[&[Given]],
        marking: Marking,
    ) -> (Vec<Result<Planned, String>>, Outcome) {
        let (_dir, ledger, fence) = campaign_held_by("test-run").await;
        let hk = Country::parse("HK").unwrap();
        let mut writer = ledger.ingest_writer(&fence).unwrap();
        let mut keys_seen = std::collections::HashSet::new();
        let mut batches_open = std::collections::HashSet::new();
        let mut planned = Vec::new();
        for (index, chunk) in chunks.iter().enumerate() {
            if index == 1 && matches!(marking, Marking::ExactWithCrash) {
                writer = ledger.ingest_writer(&fence).unwrap();
                keys_seen.clear();
            }
            let rows: Vec<StagedRow> = chunk
                .iter()
                .map(|&(line, order_id, phone, batch)| {
                    let Some(phone) = phone else {
                        return StagedRow {
                            line,
                            order_id: Some(order_id),
                            phone: "12",
                            country: None,
                            other: "",
                            batch_seq: None,
                            invalid: Some("\"12\" is not a valid phone number"),
                            suspect: false,
                        };
                    };
                    let repeats = !keys_seen.insert((0, phone)) | !keys_seen.insert((1, order_id));
                    StagedRow {
                        line,
                        order_id: Some(order_id),
                        phone,
                        country: Some("HK"),
                        other: "",
                        batch_seq: BatchSeq::new(i64::from(batch)),
                        invalid: None,
                        suspect: match marking {
                            Marking::Exact | Marking::ExactWithCrash => repeats,
                            Marking::All => true,
                            Marking::Unmarked | Marking::Missed => false,
                        },
                    }
                })
                .collect();
            let new_batches: Vec<(BatchSeq, Country, String)> = rows
                .iter()
                .filter_map(|row| row.batch_seq)
                .filter(|seq| batches_open.insert(*seq))
                .map(|seq| (seq, hk, String::new()))
                .collect();
            let checkpoint = Checkpoint::default();
            let staged = StagedChunk {
                rows: &rows,
                new_batches: &new_batches,
                rows_read: rows.len() as u64,
                checkpoint: &checkpoint,
                repeats_marked: !matches!(marking, Marking::Unmarked),
            };
            writer.stage_chunk(&staged, 0).unwrap();
            if !(index == 0 && matches!(marking, Marking::ExactWithCrash)) {
                planned.push(writer.plan_staged(0).map_err(|e| e.to_string()));
            }
        }
        let conn = &writer.conn;
        let orders = all(
            conn,
            "SELECT line, set_aside, reason FROM orders ORDER BY id",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        );
        let batches = all(conn, "SELECT seq, size FROM batches ORDER BY seq", |r| {
            Ok((r.get(0)?, r.get(1)?))
        });
        let keys = all(
            conn,
            "SELECT kind, key, line FROM order_keys ORDER BY kind, key",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        );
        (planned, (orders, batches, keys))
    }

    /// Every row of a query, each made into a `T`.
    fn all<T>(
        conn: &rusqlite::Connection,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], row)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn state(line: i64, reason: Option<&str>) -> (i64, Option<String>, Option<String>) {
        (
            line,
            reason.map(|r| {
                if r.starts_with('"') {
                    "invalid"
                } else {
                    "duplicate"
                }
                .to_owned()
            }),
            reason.map(str::to_owned),
        )
    }

    #[tokio::test]
    async fn repeats_are_found_alike_whether_rows_are_marked_exactly_wholly_or_not_at_all() {
        let first: &[Given] = &[
            (2, "A", Some("85251000001"), 1),
            (3, "B", Some("85251000002"), 1),
            (4, "A", Some("85251000003"), 1), // same id as line 2
            (5, "C", Some("85251000003"), 1), // same phone as line 4, itself a duplicate
            (6, "D", Some("85251000001"), 1), // same phone as line 2
            (7, "E", Some("85251000004"), 1),
            (8, "Z", None, 1),                // invalid
            (9, "E", Some("85251000004"), 2), // both keys as line 7; batch 2 empties
        ];
        let second: &[Given] = &[
            (10, "F", Some("85251000002"), 2), // same phone as line 3, an earlier plan
            (11, "B", Some("85251000005"), 3), // same id as line 3
            (12, "G", Some("85251000006"), 3),
            (13, "G", Some("85251000007"), 3), // same id as line 12, in this plan
        ];
        let (planned, exact) = plan(&[first, second], Marking::Exact).await;
        assert_eq!(
            planned,
            [
                Ok(Planned {
                    orders: 3,
                    duplicates: 4,
                    suppressed: 0
                }),
                Ok(Planned {
                    orders: 1,
                    duplicates: 3,
                    suppressed: 0
                }),
            ]
        );
        assert_eq!(
            exact.0,
            [
                state(2, None),
                state(3, None),
                state(4, Some("same order id as line 2")),
                state(5, Some("same phone as line 4")),
                state(6, Some("same phone as line 2")),
                state(7, None),
                state(8, Some("\"12\" is not a valid phone number")),
                state(9, Some("same phone as line 7")),
                state(10, Some("same phone as line 3")),
                state(11, Some("same order id as line 3")),
                state(12, None),
                state(13, Some("same order id as line 12")),
            ]
        );
        // Batch 2 lost its only order (line 9), then got line 10, which
        // left it again; only the one still planned to be sent remains.
        assert_eq!(exact.1, [(1, 3), (3, 1)]);
        let claims: Vec<i64> = exact.2.iter().map(|(_, _, line)| *line).collect();
        assert_eq!(claims, [2, 3, 7, 12, 2, 3, 7, 12], "{:?}", exact.2);

        for marking in [Marking::All, Marking::Unmarked] {
            let (other_planned, other) = plan(&[first, second], marking).await;
            assert_eq!((&other_planned, &other), (&planned, &exact), "{marking:?}");
        }

        // Staged by a crashed ingest and by the next: one plan of both,
        // where the second ingest's filter never saw the first chunk.
        let (crashed_planned, crashed) = plan(&[first, second], Marking::ExactWithCrash).await;
        assert_eq!(
            crashed_planned,
            [Ok(Planned {
                orders: 4,
                duplicates: 7,
                suppressed: 0
            })]
        );
        assert_eq!(crashed.0, exact.0);
        assert_eq!(crashed.1, exact.1);
        assert_eq!(crashed.2, exact.2);
    }

    #[tokio::test]
    async fn the_ledger_refuses_a_second_live_order_for_a_key_whatever_the_filter_says() {
        // Line 4 repeats line 2's phone, line 5 line 3's order id; the
        // filter is bypassed: nothing is marked, yet the chunk says every
        // repeat is.
        let chunk: &[Given] = &[
            (2, "A", Some("85251000001"), 1),
            (3, "B", Some("85251000002"), 1),
            (4, "C", Some("85251000001"), 1),
            (5, "B", Some("85251000003"), 1),
        ];
        let (planned, (orders, _, keys)) = plan(&[chunk], Marking::Missed).await;
        let refusal = planned[0].as_ref().expect_err("the plan is refused");
        assert!(
            refusal.contains("UNIQUE constraint failed: order_keys"),
            "{refusal}"
        );
        assert!(keys.is_empty(), "nothing was claimed: {keys:?}");
        assert!(
            orders.iter().all(|(_, state, _)| state.is_none()),
            "the rows stay staged (the next ingest plans them by grouping): {orders:?}"
        );
    }

    #[tokio::test]
    async fn a_writer_whose_run_was_taken_over_stages_and_plans_nothing_more() {
        let (_dir, ledger, fence) = campaign_held_by("a").await;
        let campaign = fence.campaign;
        let mut writer = ledger.ingest_writer(&fence).unwrap();
        let row = StagedRow {
            line: 2,
            order_id: Some("A"),
            phone: "85251000001",
            country: Some("HK"),
            other: "",
            batch_seq: Some(BatchSeq::FIRST),
            invalid: None,
            suspect: false,
        };
        let hk = Country::parse("HK").unwrap();
        let checkpoint = Checkpoint::default();
        let chunk = StagedChunk {
            rows: std::slice::from_ref(&row),
            new_batches: &[(BatchSeq::FIRST, hk, String::new())],
            rows_read: 1,
            checkpoint: &checkpoint,
            repeats_marked: true,
        };
        writer.stage_chunk(&chunk, 0).unwrap();

        // Run "b" watched "a" go silent and took the campaign.
        ledger
            .take_lease(campaign, &holder("b"), Some(&holder("a")), 0)
            .await
            .unwrap();
        let refused = writer.stage_chunk(&chunk, 0).unwrap_err();
        assert!(
            matches!(refused, LedgerError::LeaseLost { .. }),
            "{refused}"
        );
        let refused = writer.plan_staged(0).unwrap_err();
        assert!(
            matches!(refused, LedgerError::LeaseLost { .. }),
            "{refused}"
        );
        let staged = all(&writer.conn, "SELECT line FROM orders", |r| {
            r.get::<_, i64>(0)
        });
        assert_eq!(staged, [2], "the second chunk was not staged");
        let planned = all(&writer.conn, "SELECT planned_through FROM campaigns", |r| {
            r.get::<_, i64>(0)
        });
        assert_eq!(planned, [0], "nothing was planned");
    }
}
