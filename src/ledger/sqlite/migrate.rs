//! The schema of a SQLite ledger, brought up to date when it is opened.
//!
//! Applied migrations are recorded in `_sqlx_migrations`, in the format
//! earlier nxcampaign versions wrote through sqlx (version, description,
//! SHA-384 of the SQL): ledgers they made open unchanged, and they can
//! still open a ledger this one migrated, as long as it knows every
//! migration in it.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};
use sha2::{Digest as _, Sha384};

use super::query_error;
use crate::ledger::LedgerError;

/// One step of the schema, applied once, in version order.
struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $description:literal, $file:literal) => {
        Migration {
            version: $version,
            description: $description,
            sql: include_str!(concat!("../../../migrations/sqlite/", $file)),
        }
    };
}

/// Every migration, oldest first; the files are in `migrations/sqlite`.
const MIGRATIONS: &[Migration] = &[
    migration!(1, "ledger", "0001_ledger.sql"),
    migration!(2, "leases", "0002_leases.sql"),
    migration!(3, "staged ingest", "0003_staged_ingest.sql"),
    migration!(
        4,
        "orders check without in",
        "0004_orders_check_without_in.sql"
    ),
    migration!(5, "fences", "0005_fences.sql"),
    migration!(6, "source path", "0006_source_path.sql"),
    migration!(7, "suppressions", "0007_suppressions.sql"),
    migration!(8, "campaign runs", "0008_campaign_runs.sql"),
    migration!(9, "calls", "0009_calls.sql"),
    migration!(10, "call matching", "0010_call_matching.sql"),
    migration!(11, "redials", "0011_redials.sql"),
    migration!(12, "batch zones", "0012_batch_zones.sql"),
    migration!(13, "order keys by key", "0013_order_keys_by_key.sql"),
    migration!(14, "calls for redials", "0014_calls_for_redials.sql"),
];

impl Migration {
    fn checksum(&self) -> Vec<u8> {
        Sha384::digest(self.sql.as_bytes()).to_vec()
    }
}

/// A migration the ledger records as applied.
struct Applied {
    version: i64,
    success: bool,
    checksum: Vec<u8>,
}

/// Applies the migrations the ledger lacks, all in one transaction, after
/// checking the ones it has: a ledger that a newer nxcampaign migrated is
/// refused (this one does not migrate down), and so is one whose applied
/// migrations differ from this binary's.
///
/// A ledger that is up to date is only read, so commands that read do not
/// wait for a run's write lock; otherwise the check is made again under
/// the write lock, since another process may have migrated meanwhile.
pub(super) fn run(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    let e = query_error(path);
    if pending(&applied(conn, path)?, path)?.is_empty() {
        return Ok(());
    }
    // A migration that rebuilds a table others refer to runs with foreign
    // keys off (they cannot change inside a transaction), and they are
    // checked before it commits: SQLite's own procedure for such changes.
    conn.pragma_update(None, "foreign_keys", false).map_err(e)?;
    let migrated = apply(conn, path);
    conn.pragma_update(None, "foreign_keys", true).map_err(e)?;
    migrated
}

/// Refuses a ledger that is not up to date, without changing it (for a
/// handle that only reads).
pub(super) fn check_current(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    let pending = pending(&applied(conn, path)?, path)?;
    match pending.first() {
        None => Ok(()),
        Some(first) => Err(LedgerError::Corrupt {
            path: path.to_owned(),
            message: format!(
                "its schema is older than this nxcampaign's (migration {} is not applied), and a reading command does not migrate it: run `nxcampaign migrate` on it first (it needs to be writable then)",
                first.version
            ),
        }),
    }
}

/// Applies what is pending, in one transaction (see [`run`]).
fn apply(conn: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    let e = query_error(path);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(e)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
             version BIGINT PRIMARY KEY,
             description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
             success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL,
             execution_time BIGINT NOT NULL)",
    )
    .map_err(e)?;
    for migration in pending(&applied(&tx, path)?, path)? {
        let started = Instant::now();
        tx.execute_batch(migration.sql).map_err(e)?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (?, ?, TRUE, ?, ?)",
            rusqlite::params![
                migration.version,
                migration.description,
                migration.checksum(),
                i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
            ],
        )
        .map_err(e)?;
    }
    let broken = tx
        .query_row(
            "SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1",
            [],
            |row| row.get::<_, String>(0),
        )
        .optional()
        .map_err(e)?;
    if let Some(table) = broken {
        return Err(LedgerError::Corrupt {
            path: path.to_owned(),
            message: format!(
                "a migration left rows of {table} without their parent; nothing of it was kept"
            ),
        });
    }
    tx.commit().map_err(e)
}

/// The migrations recorded in the ledger (none in a new file).
fn applied(conn: &Connection, path: &Path) -> Result<Vec<Applied>, LedgerError> {
    let e = query_error(path);
    let recorded = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(e)?;
    if recorded.is_none() {
        return Ok(Vec::new());
    }
    let mut statement = conn
        .prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
        .map_err(e)?;
    let rows = statement
        .query_map([], |row| {
            Ok(Applied {
                version: row.get(0)?,
                success: row.get(1)?,
                checksum: row.get(2)?,
            })
        })
        .map_err(e)?;
    rows.collect::<Result<_, _>>().map_err(e)
}

/// The migrations still to apply, once every applied one is known and
/// intact.
fn pending(applied: &[Applied], path: &Path) -> Result<Vec<&'static Migration>, LedgerError> {
    for done in applied {
        let corrupt = |message| LedgerError::Corrupt {
            path: path.to_owned(),
            message,
        };
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == done.version) else {
            return Err(LedgerError::Newer {
                path: path.to_owned(),
                version: done.version,
            });
        };
        if !done.success {
            return Err(corrupt(format!(
                "migration {} ({}) was left half-applied",
                known.version, known.description
            )));
        }
        if known.checksum() != done.checksum {
            return Err(corrupt(format!(
                "migration {} ({}) in the ledger is not this nxcampaign's",
                known.version, known.description
            )));
        }
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| applied.iter().all(|done| done.version != m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    /// A ledger planned before the claims' primary key led with the key
    /// keeps every claim, and its primary key still refuses a second one.
    #[test]
    fn claims_survive_the_rebuild_of_their_table() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        // Claims alone, without their campaigns and orders.
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        for migration in MIGRATIONS.iter().filter(|m| m.version <= 12) {
            conn.execute_batch(migration.sql).unwrap();
        }
        let claims = "SELECT campaign_id, kind, key, line, order_row FROM order_keys
                      ORDER BY campaign_id, kind, key";
        let read = |conn: &rusqlite::Connection| -> Vec<(i64, i64, String, i64, i64)> {
            let mut statement = conn.prepare(claims).unwrap();
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })
                .unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        conn.execute_batch(
            "INSERT INTO order_keys (campaign_id, kind, key, line, order_row) VALUES
                 (1, 0, '85251234567', 2, 10), (1, 1, 'ID-A', 2, 10),
                 (2, 0, '85251234567', 5, 20), (2, 1, 'ID-B', 5, 20)",
        )
        .unwrap();
        let before = read(&conn);
        for migration in MIGRATIONS.iter().filter(|m| m.version > 12) {
            conn.execute_batch(migration.sql).unwrap();
        }
        assert_eq!(read(&conn), before);
        let refused = conn
            .execute(
                "INSERT INTO order_keys (campaign_id, kind, key, line, order_row) VALUES (1, 1, 'ID-A', 9, 90)",
                [],
            )
            .unwrap_err();
        assert!(refused.to_string().contains("UNIQUE"), "{refused}");
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT campaign_id, order_row FROM order_keys WHERE kind = 1 AND key = 'ID-A'",
                [],
                |row| row.get(3),
            )
            .unwrap();
        assert!(plan.contains("PRIMARY KEY (kind=? AND key=?)"), "{plan}");
    }

    /// The records are those earlier versions made through sqlx's
    /// migrator: the same versions, descriptions and checksums, for every
    /// file in `migrations/sqlite`.
    #[test]
    fn migrations_are_recorded_as_earlier_versions_recorded_them() {
        let sqlx: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
        let theirs: Vec<_> = sqlx
            .iter()
            .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec()))
            .collect();
        let ours: Vec<_> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.description.to_owned(), m.checksum()))
            .collect();
        assert_eq!(ours, theirs);
    }
}
