//! The do-not-call list on SQLite: entries added, removed and listed, and
//! the one statement pair that takes suppressed numbers out of their
//! batches, at planning and again just before a batch is sent.

use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, Connection};

use super::{LedgerError, Sqlite};
use crate::ledger::model::{Scope, Suppression, SuppressionEntry};
use crate::state::OrderState;

/// Sets aside, as suppressed, the live orders of campaign `campaign` that
/// `which` selects (a condition on `o`, an order, whose parameters are
/// `?3` onwards: `extra`) and whose number is on the list at `now_ms`;
/// their batches shrink. Returns how many. The caller's transaction
/// decides what to do with batches left empty.
///
/// The chosen orders are looked up on the list in number order (sorted
/// first), so a big list is read front to back instead of a page per
/// order.
pub(super) fn set_aside_suppressed(
    conn: &Connection,
    campaign: i64,
    now_ms: i64,
    which: &str,
    extra: &[&dyn ToSql],
) -> rusqlite::Result<usize> {
    let any: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM suppressions)", [], |row| {
        row.get(0)
    })?;
    if !any {
        return Ok(0);
    }
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS listed (id INTEGER PRIMARY KEY, reason TEXT NOT NULL);
         DELETE FROM temp.listed;",
    )?;
    let mut values: Vec<&dyn ToSql> = vec![&campaign, &now_ms];
    values.extend_from_slice(extra);
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO temp.listed (id, reason)
             WITH chosen AS MATERIALIZED (
                 SELECT o.id, o.phone FROM orders o
                 WHERE o.campaign_id = ?1 AND o.set_aside IS NULL AND ({which}) ORDER BY o.phone)
             SELECT c.id, 'on the do-not-call list' || COALESCE(': ' || s.reason, '')
             FROM chosen c CROSS JOIN suppressions s ON s.phone = c.phone
             WHERE s.scope IN (0, ?1) AND (s.until_ms IS NULL OR s.until_ms > ?2)"
        ),
        params_from_iter(values.iter()),
    )?;
    conn.execute(
        "UPDATE batches SET size = size - g.n FROM (
             SELECT o.batch_seq AS seq, COUNT(*) AS n FROM temp.listed l CROSS JOIN orders o ON o.id = l.id
             GROUP BY o.batch_seq) g
         WHERE batches.campaign_id = ?1 AND batches.seq = g.seq",
        [campaign],
    )?;
    conn.execute(
        &format!(
            "UPDATE orders SET set_aside = '{}', batch_seq = NULL,
                 reason = (SELECT reason FROM temp.listed l WHERE l.id = orders.id)
             WHERE id IN (SELECT id FROM temp.listed)",
            OrderState::Suppressed.as_str()
        ),
        [],
    )
}

/// Adds one number to the list (phone, scope, reason, until, added,
/// source); a number already on it keeps the stronger entry (for good
/// beats until a date, a later date beats an earlier one) and every reason
/// given.
pub(in crate::ledger::sqlite) const UPSERT_SUPPRESSION: &str =
    "INSERT INTO suppressions (phone, scope, reason, until_ms, added_at_ms, source)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (phone, scope) DO UPDATE SET
         until_ms = CASE WHEN suppressions.until_ms IS NULL OR excluded.until_ms IS NULL THEN NULL
                         WHEN excluded.until_ms > suppressions.until_ms THEN excluded.until_ms
                         ELSE suppressions.until_ms END,
         reason = CASE WHEN excluded.reason IS NULL
                         OR instr(COALESCE(suppressions.reason, ''), excluded.reason) > 0
                       THEN suppressions.reason
                       WHEN suppressions.reason IS NULL THEN excluded.reason
                       ELSE suppressions.reason || '; ' || excluded.reason END";

impl Sqlite {
    /// Adds `phones` (normalized) to the list; a number already on it keeps
    /// the stronger entry (for good beats until a date, a later date beats
    /// an earlier one) and every reason given. One transaction.
    pub async fn suppress(
        &self,
        phones: Vec<String>,
        entry: &SuppressionEntry,
    ) -> Result<u64, LedgerError> {
        let entry = entry.clone();
        let mut phones = phones;
        // In key order: each page of the list is written once.
        phones.sort_unstable();
        phones.dedup();
        self.write(move |this, tx| {
            let mut insert = tx
                .prepare_cached(UPSERT_SUPPRESSION)
                .map_err(this.error())?;
            for phone in &phones {
                insert
                    .execute(params![
                        phone,
                        entry.scope.stored(),
                        entry.reason,
                        entry.until_ms,
                        entry.added_at_ms,
                        entry.source,
                    ])
                    .map_err(this.error())?;
            }
            Ok(phones.len() as u64)
        })
        .await
    }

    /// Removes `phones` from the list in `scope`; returns how many were on
    /// it.
    pub async fn unsuppress(&self, phones: Vec<String>, scope: Scope) -> Result<u64, LedgerError> {
        self.write(move |this, tx| {
            let mut delete = tx
                .prepare_cached("DELETE FROM suppressions WHERE phone = ? AND scope = ?")
                .map_err(this.error())?;
            let mut removed = 0;
            for phone in &phones {
                removed += delete
                    .execute(params![phone, scope.stored()])
                    .map_err(this.error())?;
            }
            Ok(removed as u64)
        })
        .await
    }

    pub async fn replace_suppressions(
        &self,
        scope: Scope,
        listed: Vec<(String, String)>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        self.write(move |this, tx| {
            let e = this.error();
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS listed_now (phone TEXT PRIMARY KEY, file TEXT NOT NULL) WITHOUT ROWID;
                 DELETE FROM temp.listed_now;",
            )
            .map_err(e)?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO temp.listed_now (phone, file) VALUES (?, ?)")
                    .map_err(e)?;
                for (phone, file) in &listed {
                    insert.execute(params![phone, file]).map_err(e)?;
                }
            }
            tx.execute(
                "DELETE FROM suppressions WHERE scope = ?1
                   AND phone NOT IN (SELECT phone FROM temp.listed_now)",
                [scope.stored()],
            )
            .map_err(e)?;
            tx.execute(
                "INSERT INTO suppressions (phone, scope, reason, until_ms, added_at_ms, source)
                 SELECT phone, ?1, 'listed in ' || file, NULL, ?2, 'list file ' || file FROM temp.listed_now WHERE true
                 ON CONFLICT (phone, scope) DO UPDATE SET reason = excluded.reason, until_ms = NULL,
                     source = excluded.source
                 WHERE suppressions.reason IS NOT excluded.reason OR suppressions.until_ms IS NOT NULL",
                params![scope.stored(), now_ms],
            )
            .map_err(e)?;
            tx.execute("DELETE FROM temp.listed_now", []).map_err(e)?;
            Ok(())
        })
        .await
    }

    /// Up to `limit` entries after (`phone`, `scope`), in that order.
    pub async fn suppressions_after(
        &self,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<Suppression>, LedgerError> {
        self.read(move |this, conn| {
            let (phone, scope) = after.unwrap_or_default();
            let mut statement = conn
                .prepare_cached(
                    "SELECT s.phone, s.scope, c.name, s.reason, s.until_ms, s.added_at_ms, s.source
                     FROM suppressions s LEFT JOIN campaigns c ON c.id = s.scope
                     WHERE (s.phone, s.scope) > (?, ?) ORDER BY s.phone, s.scope LIMIT ?",
                )
                .map_err(this.error())?;
            let rows = statement
                .query_map(params![phone, scope, limit as i64], |row| {
                    Ok(Suppression {
                        phone: row.get(0)?,
                        scope: row.get(1)?,
                        campaign: row.get(2)?,
                        reason: row.get(3)?,
                        until_ms: row.get(4)?,
                        added_at_ms: row.get(5)?,
                        source: row.get(6)?,
                    })
                })
                .map_err(this.error())?;
            rows.collect::<Result<_, _>>().map_err(this.error())
        })
        .await
    }

    /// Which of `phones` the list holds at `now_ms` for the campaign with
    /// id `campaign` (0: none yet, so only entries for every campaign).
    pub async fn suppressed_among(
        &self,
        campaign: i64,
        phones: Vec<String>,
        now_ms: i64,
    ) -> Result<Vec<String>, LedgerError> {
        let phones = serde_json::to_string(&phones).expect("strings serialize");
        self.read(move |this, conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT DISTINCT s.phone FROM suppressions s
                     WHERE s.phone IN (SELECT value FROM json_each(?3)) AND s.scope IN (0, ?1)
                       AND (s.until_ms IS NULL OR s.until_ms > ?2)",
                )
                .map_err(this.error())?;
            let rows = statement
                .query_map(params![campaign, now_ms, phones], |row| row.get(0))
                .map_err(this.error())?;
            rows.collect::<Result<_, _>>().map_err(this.error())
        })
        .await
    }
}
