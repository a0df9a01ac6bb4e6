//! The PostgreSQL backend: one server ledger that runners on several hosts
//! share. Everything goes through sqlx's pool; bulk paths use `COPY` and a
//! server-side cursor.
//!
//! Several runners work on one campaign at once: each has a row in
//! `runners` with its heartbeat, batches are claimed with
//! `FOR UPDATE SKIP LOCKED` and bound to the runner that claimed them, and
//! every write of a runner checks, in its own transaction, that its row is
//! still there (a runner presumed dead is deleted, and its `sending`
//! batches become `uncertain` in the same transaction). The contact file is
//! read by one runner at a time, the holder of the campaign's ingest lease
//! (`leases`).

mod calls;
mod campaigns;
mod dispatch;
mod ingest;
mod redials;
mod report;
mod runners;
mod suppress;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, PgPool};

pub use ingest::IngestWriter;

use super::model::*;
use super::{CampaignId, LedgerError, OpenMode};
use crate::batch::BatchSeq;
use crate::job::CampaignName;

/// How long a statement may wait for a lock before the run gives up on it.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a session may sit in a transaction waiting for its client.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

/// A handle on a PostgreSQL ledger; cheap to clone.
#[derive(Clone, Debug)]
pub struct Postgres {
    pool: PgPool,
    /// The server URL without its password, for messages.
    shown: PathBuf,
    salt: Arc<str>,
    created: bool,
    /// The runtime the handle was opened on: ingest's writer thread runs
    /// its statements there.
    runtime: tokio::runtime::Handle,
}

impl Postgres {
    /// Connects, and brings the schema up to date (sqlx holds an advisory
    /// lock while it migrates, so runners starting together take turns).
    /// With `MustExist`, a database without the ledger's tables is an
    /// error, not a new ledger.
    pub async fn open_with(url: &str, mode: OpenMode) -> Result<Postgres, LedgerError> {
        let shown = PathBuf::from(without_password(url));
        let open_error = |source: sqlx::Error| LedgerError::Open {
            path: shown.clone(),
            source: source.into(),
        };
        let options = PgConnectOptions::from_str(url).map_err(open_error)?;
        // What `pg_stat_activity` shows: the URL's own name, else ours.
        let name = options
            .get_application_name()
            .unwrap_or("nxcampaign")
            .to_owned();
        let options = options
            .application_name(&name)
            // Every commit is on the server's disk before it returns:
            // `sending` must be durable before a request leaves.
            .options([
                ("synchronous_commit", "on"),
                ("lock_timeout", &format!("{}s", LOCK_TIMEOUT.as_secs())),
                // Our transactions never wait for their client between
                // statements; one that does belongs to a paused or stuck
                // process, and its row locks would keep the other runners
                // from presuming it dead. The server ends such a session
                // (rolling it back) after this long.
                (
                    "idle_in_transaction_session_timeout",
                    &format!("{}ms", IDLE_IN_TRANSACTION.as_millis()),
                ),
            ])
            .log_slow_statements(log::LevelFilter::Warn, LOCK_TIMEOUT)
            // SQL only at trace (-vvv): -vv is for what the run does.
            .log_statements(log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .acquire_slow_threshold(LOCK_TIMEOUT)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let query_error = |source: sqlx::Error| LedgerError::Query {
            path: shown.clone(),
            source: source.into(),
        };
        let migrated: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&pool)
                .await
                .map_err(query_error)?;
        if !migrated && mode != OpenMode::CreateIfMissing {
            return Err(LedgerError::Missing { path: shown });
        }
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| migrate_error(&shown, e))?;
        let salt: String = sqlx::query_scalar("SELECT salt FROM ledger_salt")
            .fetch_one(&pool)
            .await
            .map_err(query_error)?;
        Ok(Postgres {
            pool,
            shown,
            salt: salt.into(),
            created: !migrated,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn shown(&self) -> String {
        self.shown.display().to_string()
    }

    pub fn created(&self) -> bool {
        self.created
    }

    pub fn order_id_salt(&self) -> &str {
        &self.salt
    }

    pub async fn ensure_campaign(
        &self,
        name: &CampaignName,
        now_ms: i64,
    ) -> Result<CampaignId, LedgerError> {
        sqlx::query(
            "INSERT INTO campaigns (name, created_at_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        self.campaign(name.as_str()).await
    }

    pub async fn campaign(&self, name: &str) -> Result<CampaignId, LedgerError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM campaigns WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        id.map(CampaignId)
            .ok_or_else(|| LedgerError::UnknownCampaign {
                path: self.shown.clone(),
                name: name.to_owned(),
            })
    }

    pub async fn campaign_names(&self) -> Result<Vec<String>, LedgerError> {
        sqlx::query_scalar("SELECT name FROM campaigns ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.query_error(e))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn transaction(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, LedgerError> {
        self.pool.begin().await.map_err(|e| self.query_error(e))
    }

    fn query_error(&self, source: sqlx::Error) -> LedgerError {
        LedgerError::Query {
            path: self.shown.clone(),
            source: source.into(),
        }
    }

    fn corrupt(&self, message: String) -> LedgerError {
        LedgerError::Corrupt {
            path: self.shown.clone(),
            message,
        }
    }

    /// A batch number as the ledger stores it; anything else is corrupt.
    fn batch_seq(&self, raw: i64) -> Result<BatchSeq, LedgerError> {
        BatchSeq::new(raw).ok_or_else(|| self.corrupt(format!("batch number {raw}")))
    }

    fn parse_state<T: FromStr>(&self, raw: &str) -> Result<T, LedgerError>
    where
        T::Err: std::fmt::Display,
    {
        raw.parse().map_err(|e: T::Err| self.corrupt(e.to_string()))
    }

    /// Fails with `LeaseLost` unless `fence`'s runner is still registered
    /// on its campaign; call it inside the transaction it guards. The row
    /// stays share-locked until that transaction ends, so a runner that
    /// presumes this one dead waits for it, then sees what it wrote.
    async fn check_runner(
        &self,
        tx: &mut sqlx::PgConnection,
        fence: &Fence,
    ) -> Result<(), LedgerError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM runners WHERE owner = $1 AND campaign_id = $2 FOR KEY SHARE",
        )
        .bind(&fence.owner)
        .bind(fence.campaign.0)
        .fetch_optional(tx)
        .await
        .map_err(|e| self.query_error(e))?;
        match found {
            Some(_) => Ok(()),
            None => Err(LedgerError::LeaseLost {
                path: self.shown.clone(),
                by: "(another runner presumed this one dead)".into(),
            }),
        }
    }
}

impl Postgres {
    /// What a failed write of `fence`'s runner means: if the runner was
    /// presumed dead meanwhile (its session may have been ended under a
    /// paused process), the lease was lost, whatever the statement said.
    async fn lost_or(&self, fence: &Fence, error: LedgerError) -> LedgerError {
        let registered: Result<Option<i64>, _> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM runners WHERE owner = $1 AND campaign_id = $2",
        )
        .bind(&fence.owner)
        .bind(fence.campaign.0)
        .fetch_optional(&self.pool)
        .await;
        match registered {
            Ok(None) => LedgerError::LeaseLost {
                path: self.shown.clone(),
                by: "(another runner presumed this one dead)".into(),
            },
            _ => error,
        }
    }
}

/// The URL as people may see it: without a password.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(a PostgreSQL URL that does not parse)".into(),
    }
}

/// Batch numbers as PostgreSQL takes an array of them.
fn seq_array(seqs: &[BatchSeq]) -> Vec<i64> {
    seqs.iter().map(|seq| i64::from(*seq)).collect()
}

/// A failed migration as the ledger reports it: a ledger a newer
/// nxcampaign migrated, or a statement that failed.
fn migrate_error(shown: &std::path::Path, error: sqlx::migrate::MigrateError) -> LedgerError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::VersionMissing(version) => LedgerError::Newer {
            path: shown.to_owned(),
            version,
        },
        MigrateError::Execute(source) | MigrateError::ExecuteMigration(source, _) => {
            LedgerError::Query {
                path: shown.to_owned(),
                source: source.into(),
            }
        }
        other => LedgerError::Corrupt {
            path: shown.to_owned(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_is_shown_without_its_password() {
        let shown = super::without_password("postgres://app:s3cret@db.example:5432/ledger");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db.example"), "{shown}");
    }
}
