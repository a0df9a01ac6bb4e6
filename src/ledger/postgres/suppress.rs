//! The do-not-call list on PostgreSQL (see the SQLite backend's module of
//! the same name for what each method promises).

use sqlx::PgConnection;

use super::Postgres;
use crate::ledger::model::{Scope, Suppression, SuppressionEntry};
use crate::ledger::LedgerError;
use crate::state::OrderState;

/// Which live orders of a campaign to look at.
pub(super) enum Which<'a> {
    /// Staged orders with ids in `after < id <= through`.
    Staged { after: i64, through: i64 },
    /// The orders of these batches.
    Batches(&'a [i64]),
}

/// Sets aside, as suppressed, the live orders `which` names whose number
/// is on the list at `now_ms`; their batches shrink, the campaign's count
/// grows. Returns how many.
pub(super) async fn set_aside_suppressed(
    tx: &mut PgConnection,
    campaign: i64,
    now_ms: i64,
    which: Which<'_>,
) -> Result<u64, sqlx::Error> {
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM suppressions)")
        .fetch_one(&mut *tx)
        .await?;
    if !any {
        return Ok(0);
    }
    let filter = match which {
        Which::Staged { .. } => "o.id > $4 AND o.id <= $5",
        Which::Batches(_) => "o.batch_seq = ANY($4)",
    };
    let sql = format!(
        "WITH listed AS (
             SELECT o.id, o.batch_seq,
                    (SELECT 'on the do-not-call list' || COALESCE(': ' || s.reason, '') FROM suppressions s
                     WHERE s.phone = o.phone AND s.scope IN (0, $1) AND (s.until_ms IS NULL OR s.until_ms > $2)
                     ORDER BY s.scope LIMIT 1) AS reason
             FROM orders o WHERE o.campaign_id = $1 AND o.set_aside IS NULL AND {filter}),
         chosen AS (SELECT * FROM listed WHERE reason IS NOT NULL),
         moved AS (UPDATE orders SET set_aside = $3, batch_seq = NULL, reason = chosen.reason
                   FROM chosen WHERE orders.id = chosen.id RETURNING chosen.batch_seq),
         shrunk AS (UPDATE batches b SET size = b.size - g.n
                    FROM (SELECT batch_seq, COUNT(*) AS n FROM moved GROUP BY batch_seq) g
                    WHERE b.campaign_id = $1 AND b.seq = g.batch_seq)
         SELECT COUNT(*) FROM moved"
    );
    let query = sqlx::query_scalar::<_, i64>(&sql)
        .bind(campaign)
        .bind(now_ms)
        .bind(OrderState::Suppressed.as_str());
    let moved = match which {
        Which::Staged { after, through } => query.bind(after).bind(through),
        Which::Batches(seqs) => query.bind(seqs),
    }
    .fetch_one(&mut *tx)
    .await?;
    if moved > 0 {
        sqlx::query(
            "UPDATE campaigns SET suppressed_orders = suppressed_orders + $2 WHERE id = $1",
        )
        .bind(campaign)
        .bind(moved)
        .execute(&mut *tx)
        .await?;
    }
    Ok(moved as u64)
}

/// Adds numbers `$1` to the list (scope, reason, until, added, source); a
/// number already on it keeps the stronger entry (for good beats until a
/// date, a later date beats an earlier one) and every reason given.
pub(super) const UPSERT_SUPPRESSION: &str =
    "INSERT INTO suppressions (phone, scope, reason, until_ms, added_at_ms, source)
     SELECT DISTINCT phone, $2, $3, $4, $5, $6 FROM UNNEST($1::TEXT[]) AS t (phone)
     ON CONFLICT (phone, scope) DO UPDATE SET
         until_ms = CASE WHEN suppressions.until_ms IS NULL OR excluded.until_ms IS NULL THEN NULL
                         ELSE GREATEST(suppressions.until_ms, excluded.until_ms) END,
         reason = CASE WHEN excluded.reason IS NULL
                         OR position(excluded.reason IN COALESCE(suppressions.reason, '')) > 0
                       THEN suppressions.reason
                       WHEN suppressions.reason IS NULL THEN excluded.reason
                       ELSE suppressions.reason || '; ' || excluded.reason END";

/// The advisory lock class of list reloads (the scope is the object).
const SUPPRESSIONS_LOCK: i32 = 0x6e78_646e;

impl Postgres {
    pub async fn suppress(
        &self,
        phones: Vec<String>,
        entry: &SuppressionEntry,
    ) -> Result<u64, LedgerError> {
        let added = sqlx::query(UPSERT_SUPPRESSION)
            .bind(&phones)
            .bind(entry.scope.stored())
            .bind(entry.reason.as_deref())
            .bind(entry.until_ms)
            .bind(entry.added_at_ms)
            .bind(&entry.source)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(added.rows_affected())
    }

    pub async fn unsuppress(&self, phones: Vec<String>, scope: Scope) -> Result<u64, LedgerError> {
        let removed = sqlx::query("DELETE FROM suppressions WHERE phone = ANY($1) AND scope = $2")
            .bind(&phones)
            .bind(scope.stored())
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(removed.rows_affected())
    }

    pub async fn replace_suppressions(
        &self,
        scope: Scope,
        listed: Vec<(String, String)>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let e = |source| self.query_error(source);
        let (phones, files): (Vec<String>, Vec<String>) = listed.into_iter().unzip();
        let mut tx = self.pool.begin().await.map_err(e)?;
        // Reloads of one campaign's lists take turns: the two versions
        // never interleave into a list emptier than either.
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(SUPPRESSIONS_LOCK)
            .bind(scope.stored() as i32)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        sqlx::raw_sql(
            "CREATE TEMP TABLE listed_now (phone TEXT COLLATE \"C\" PRIMARY KEY, file TEXT NOT NULL) ON COMMIT DROP",
        )
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        sqlx::query("INSERT INTO listed_now SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[])")
            .bind(&phones)
            .bind(&files)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        sqlx::query(
            "DELETE FROM suppressions s WHERE s.scope = $1
               AND NOT EXISTS (SELECT 1 FROM listed_now l WHERE l.phone = s.phone)",
        )
        .bind(scope.stored())
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        sqlx::query(
            "INSERT INTO suppressions (phone, scope, reason, until_ms, added_at_ms, source)
             SELECT phone, $1, 'listed in ' || file, NULL, $2, 'list file ' || file FROM listed_now
             ON CONFLICT (phone, scope) DO UPDATE SET reason = excluded.reason, until_ms = NULL,
                 source = excluded.source
             WHERE suppressions.reason IS DISTINCT FROM excluded.reason OR suppressions.until_ms IS NOT NULL",
        )
        .bind(scope.stored())
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
        tx.commit().await.map_err(e)
    }

    pub async fn suppressions_after(
        &self,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<Suppression>, LedgerError> {
        use sqlx::Row as _;
        let (phone, scope) = after.unwrap_or_default();
        let rows = sqlx::query(
            "SELECT s.phone, s.scope, c.name, s.reason, s.until_ms, s.added_at_ms, s.source
             FROM suppressions s LEFT JOIN campaigns c ON c.id = s.scope
             WHERE (s.phone, s.scope) > ($1, $2) ORDER BY s.phone, s.scope LIMIT $3",
        )
        .bind(phone)
        .bind(scope)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(rows
            .into_iter()
            .map(|row| Suppression {
                phone: row.get(0),
                scope: row.get(1),
                campaign: row.get(2),
                reason: row.get(3),
                until_ms: row.get(4),
                added_at_ms: row.get(5),
                source: row.get(6),
            })
            .collect())
    }

    pub async fn suppressed_among(
        &self,
        campaign: i64,
        phones: Vec<String>,
        now_ms: i64,
    ) -> Result<Vec<String>, LedgerError> {
        sqlx::query_scalar(
            "SELECT DISTINCT s.phone FROM suppressions s
             WHERE s.phone = ANY($3) AND s.scope IN (0, $1) AND (s.until_ms IS NULL OR s.until_ms > $2)",
        )
        .bind(campaign)
        .bind(now_ms)
        .bind(&phones)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))
    }
}
