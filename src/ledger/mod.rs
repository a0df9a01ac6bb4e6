//! The ledger: every campaign, order, batch and attempt, in SQLite.
//!
//! All SQL lives under this module. It decides nothing: callers say what
//! happened and the ledger writes it, in the transactions the promises of
//! DESIGN.md need (a batch is durably `sending` before its request leaves;
//! an attempt's result and its batch's outcome are one transaction).

mod dispatch;
mod ingest;
mod lease;
mod report;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

pub use dispatch::{AttemptResult, BatchOrder, BatchToSend, Resend};
pub use ingest::{Checkpoint, IngestWriter, KnownKey, Planned, StagedChunk, StagedRow};
pub use lease::{LeaseGrant, LeaseHolder};
pub use report::{CampaignStatus, OrderLine, OrderStream};

use crate::job::CampaignName;

/// How long a write waits for another process's transaction to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The error of a statement on a connection of ours (not the pool's).
fn bulk_error(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + Copy + '_ {
    move |source| LedgerError::Bulk {
        path: path.to_owned(),
        source,
    }
}

/// A handle on the ledger database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Ledger {
    pool: SqlitePool,
    path: PathBuf,
}

/// A campaign's row id in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignId(i64);

/// The ledger cannot be used or a statement failed: the run cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: cannot open: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("ledger {path}: {source} (was it written by a newer nxcampaign? this one does not migrate down)")]
    Migrate {
        path: PathBuf,
        source: sqlx::migrate::MigrateError,
    },
    #[error("ledger {path}: {source}")]
    Query { path: PathBuf, source: sqlx::Error },
    /// A statement of ingest's own connection failed.
    #[error("ledger {path}: {source}")]
    Bulk {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("ledger {path}: unknown campaign {name:?}")]
    UnknownCampaign { path: PathBuf, name: String },
    #[error("ledger {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// Writing a report's output failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

impl LedgerError {
    /// Whether this error is what another process creating the ledger at
    /// the same moment causes.
    fn is_first_open_race(&self) -> bool {
        let database_error = match self {
            LedgerError::Open { source, .. } => source.as_database_error(),
            LedgerError::Migrate {
                source: sqlx::migrate::MigrateError::Execute(source),
                ..
            }
            | LedgerError::Migrate {
                source: sqlx::migrate::MigrateError::ExecuteMigration(source, _),
                ..
            } => source.as_database_error(),
            _ => None,
        };
        database_error.is_some_and(|e| {
            // SQLITE_BUSY and SQLITE_LOCKED (with extended codes), or a
            // table the other process created first.
            let code = e.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            matches!(code & 0xff, 5 | 6) || e.message().contains("already exists")
        })
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` and brings its schema
    /// up to date.
    ///
    /// Two processes creating the same new ledger at once collide on the
    /// switch to WAL (which cannot wait on a lock) and on the first
    /// migration; the loser tries again after a short pause.
    pub async fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let mut pause = Duration::from_millis(20);
        for _ in 0..6 {
            match Ledger::open_once(path).await {
                Err(e) if e.is_first_open_race() => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                opened => return opened,
            }
        }
        Ledger::open_once(path).await
    }

    async fn open_once(path: &Path) -> Result<Ledger, LedgerError> {
        let open_error = |source| LedgerError::Open {
            path: path.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit reaches the disk before it returns: `sending` must
            // be durable before a request leaves.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(3)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| LedgerError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        Ok(Ledger {
            pool,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The campaign's id, creating it on first use.
    pub async fn ensure_campaign(
        &self,
        name: &CampaignName,
        now_ms: i64,
    ) -> Result<CampaignId, LedgerError> {
        sqlx::query("INSERT INTO campaigns (name, created_at_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name.as_str())
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        self.campaign(name.as_str()).await
    }

    /// The id of an existing campaign.
    pub async fn campaign(&self, name: &str) -> Result<CampaignId, LedgerError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM campaigns WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        id.map(CampaignId)
            .ok_or_else(|| LedgerError::UnknownCampaign {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    /// Every campaign name, in the order they were created.
    pub async fn campaign_names(&self) -> Result<Vec<String>, LedgerError> {
        sqlx::query_scalar("SELECT name FROM campaigns ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.query_error(e))
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that holds the write lock from its first statement
    /// (`BEGIN IMMEDIATE`): one that read first and wrote later could not
    /// wait for a busy ledger and would fail at once with "database is
    /// locked" when another process wrote in between.
    async fn write_transaction(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, LedgerError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.query_error(e))
    }

    /// A read-only connection of its own, for long reads on one blocking
    /// thread.
    fn read_connection(&self) -> Result<rusqlite::Connection, LedgerError> {
        let e = bulk_error(&self.path);
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(e)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(e)?;
        Ok(conn)
    }

    fn query_error(&self, source: sqlx::Error) -> LedgerError {
        LedgerError::Query {
            path: self.path.clone(),
            source,
        }
    }

    fn parse_state<T: FromStr>(&self, raw: &str) -> Result<T, LedgerError>
    where
        T::Err: std::fmt::Display,
    {
        raw.parse().map_err(|e: T::Err| LedgerError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    /// `.cargo/config.toml` passes SQLite's speed options to its bundled
    /// build; this fails if they stop reaching it.
    #[test]
    fn sqlite_is_built_with_the_options_of_cargo_config() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for wanted in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "{wanted} not in {options:?}"
            );
        }
    }
}
