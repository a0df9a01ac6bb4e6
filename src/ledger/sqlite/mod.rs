//! The SQLite backend: the embedded default, one file beside the job.
//!
//! One driver, rusqlite, and one function ([`connect`]) that opens every
//! connection to the file and sets its durability for what it is for.
//! rusqlite is blocking: the async methods queue their statements for a
//! few threads of the handle's own, each with its connection
//! ([`Sqlite::write`], [`Sqlite::read`]); ingest and the orders export hold
//! a connection of their own on one thread, binding borrowed text row by
//! row. A connection stays on one thread for its life: SQLite's page cache
//! then stays in that thread's malloc arena instead of spreading over
//! every thread's (13 MiB more at the peak of a 1M-row run when
//! connections moved between tokio's blocking threads).

mod calls;
mod campaigns;
mod dispatch;
mod ingest;
mod lease;
mod migrate;
mod report;
mod scratch;
mod suppress;

use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, TransactionBehavior};

pub use ingest::IngestWriter;

use super::model::*;
use super::{CampaignId, LedgerError, OpenMode};

use crate::batch::BatchSeq;
use crate::job::CampaignName;

/// How long a write waits for another connection's transaction to end.
/// While `run` reads a big file, dispatch's writes wait for ingest's plans
/// (a few seconds each, up to a minute for millions of rows): a reply
/// must wait to be recorded, never fail for want of patience.
const BUSY_TIMEOUT: Duration = Duration::from_secs(300);

/// The size SQLite cuts the WAL file back to after a checkpoint restarts it
/// (`journal_size_limit`): big plans grow it to gigabytes, and the next
/// process would read all of it back.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// How many connections (and threads) serve a handle's async methods;
/// calls beyond wait their turn in the queue.
const CONNECTIONS: usize = 3;

/// Work for a connection thread, given the thread's connection slot (empty
/// until the work opens it).
type Work = Box<dyn FnOnce(&mut Option<Connection>) + Send>;

/// What a connection thread is asked to do.
enum Task {
    /// Run this on the thread's connection.
    Work(Work),
    /// Close the connection and end the thread, then say so.
    Close(tokio::sync::oneshot::Sender<()>),
}

/// What a connection is for, which decides how it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The handle's own connections: dispatch, leases, reports. Every
    /// commit reaches the disk before it returns (`synchronous = FULL`):
    /// `sending` must be durable before a request leaves.
    Durable,
    /// Ingest's connection for bulk writes. Its commits skip the WAL's
    /// fsync (`synchronous = NORMAL`: the WAL stays consistent; the last
    /// commits may be lost with power, never torn). That is safe there:
    /// staged rows and the checkpoint commit together, so a lost commit is
    /// read again from the file; and the next `Durable` commit makes the
    /// WAL durable up to and including it.
    Bulk,
    /// A read-only connection for long reads (the orders export), and
    /// every connection of a handle opened to read only.
    ReadOnly,
    /// Read-only where SQLite cannot keep its shared-memory file beside
    /// the ledger (a read-only folder or mount): the file is taken as one
    /// no one changes, which is what such a copy is.
    Immutable,
}

/// Opens a connection to the ledger file for `purpose`: the only place
/// that opens connections to a SQLite ledger.
fn connect(path: &Path, purpose: Purpose) -> Result<Connection, LedgerError> {
    let e = query_error(path);
    let access = match purpose {
        Purpose::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Purpose::Immutable => OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        Purpose::Durable | Purpose::Bulk => OpenFlags::SQLITE_OPEN_READ_WRITE,
    };
    let open_error = |source: rusqlite::Error| LedgerError::Open {
        path: path.to_owned(),
        source: source.into(),
    };
    // The file exists already (`open_with` made it, mode 0600).
    let conn = match purpose {
        Purpose::Immutable => {
            let uri = url::Url::from_file_path(
                std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            )
            .map(|url| format!("{url}?immutable=1"))
            .map_err(|()| LedgerError::Corrupt {
                path: path.to_owned(),
                message: "cannot be named as a URI".into(),
            })?;
            Connection::open_with_flags(uri, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(open_error)?
        }
        _ => Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(open_error)?,
    };
    conn.busy_timeout(BUSY_TIMEOUT).map_err(e)?;
    if matches!(purpose, Purpose::ReadOnly | Purpose::Immutable) {
        return Ok(conn);
    }
    let synchronous = match purpose {
        Purpose::Bulk => "NORMAL",
        _ => "FULL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(e)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(e)?;
    // A WAL that grew beside a plan is cut back when it restarts.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(e)?;
    Ok(conn)
}

/// The error of a statement on the ledger at `path`.
fn query_error(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + Copy + '_ {
    move |source| LedgerError::Query {
        path: path.to_owned(),
        source: source.into(),
    }
}

/// A handle on the ledger database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Sqlite {
    /// The queue of the connection threads. The first connection stays
    /// open until `close`: SQLite removes the WAL when the last connection
    /// closes, and a WAL that vanishes under an open ledger must mean that
    /// someone removed it.
    queue: mpsc::Sender<Task>,
    /// Held by a write transaction of this handle from its `BEGIN`: writes
    /// of one process queue here, in order, rather than in SQLite's busy
    /// handler, which polls with sleeps of up to 100 ms.
    write_turn: Arc<Mutex<()>>,
    path: PathBuf,
    /// The file this handle opened, to notice when the path stops naming it.
    identity: Arc<FileIdentity>,
    /// Mixed into derived order ids (empty in ledgers older than the salt).
    salt: Arc<str>,
    /// Whether this handle created the file.
    created: bool,
    /// This handle's own descriptor of the file, open while any clone of
    /// the handle lives (see `open_with`).
    _file: Arc<std::fs::File>,
    /// How the handle's own connections are opened: `Durable`, or one of
    /// the read-only ways for a handle that only reads.
    connections: Purpose,
}

impl LedgerError {
    /// Whether this error is what another process creating the ledger at
    /// the same moment causes: SQLITE_BUSY or SQLITE_LOCKED where SQLite
    /// cannot wait (the switch to WAL).
    fn is_first_open_race(&self) -> bool {
        let source = match self {
            LedgerError::Open { source, .. } | LedgerError::Query { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.sqlite_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

impl Sqlite {
    /// Opens (creating if needed) the ledger at `path` and brings its schema
    /// up to date.
    pub async fn open(path: &Path) -> Result<Sqlite, LedgerError> {
        Sqlite::open_with(path, OpenMode::CreateIfMissing).await
    }

    /// Opens the ledger at `path`, creating it (readable by its owner only:
    /// it holds phone numbers) only if `mode` allows. A file with more than
    /// one hard link is refused.
    ///
    /// Two processes creating the same new ledger at once collide on the
    /// switch to WAL (which cannot wait on a lock); the loser tries again
    /// after a short pause.
    pub async fn open_with(path: &Path, mode: OpenMode) -> Result<Sqlite, LedgerError> {
        let created = match (mode, std::fs::symlink_metadata(path)) {
            (_, Ok(_)) => false,
            (OpenMode::MustExist | OpenMode::ReadOnly, Err(e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(LedgerError::Missing {
                    path: path.to_owned(),
                })
            }
            (OpenMode::CreateIfMissing, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(_) => true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(file_error(path, e)),
                }
            }
            (_, Err(e)) => return Err(file_error(path, e)),
        };
        // This handle's own descriptor of the file, kept open as long as
        // the ledger is: under POSIX, closing any descriptor of a file drops
        // every lock the process holds on it, SQLite's included, and
        // without them another process closing the ledger would delete the
        // WAL this one is still writing to.
        let file = own_descriptor(path, mode)?;
        let identity = FileIdentity::of(path)?;
        // Processes opening the ledger take turns (an advisory lock,
        // apart from SQLite's own locks): two runs started together on a
        // new or older ledger would otherwise race to migrate it.
        let file = take_turn_to_open(file).await;
        let path = path.to_owned();
        let opening = Arc::clone(&file);
        let opened = tokio::task::spawn_blocking(move || {
            if mode == OpenMode::ReadOnly {
                return Sqlite::open_to_read(&path, &identity, &opening);
            }
            let mut pause = Duration::from_millis(20);
            let mut opened = Sqlite::open_once(&path, &identity, created, &opening);
            for _ in 0..6 {
                match opened {
                    Err(e) if e.is_first_open_race() => {
                        std::thread::sleep(pause);
                        pause *= 2;
                        opened = Sqlite::open_once(&path, &identity, created, &opening);
                    }
                    _ => break,
                }
            }
            opened
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        let _ = file.unlock();
        opened
    }

    /// Opens the ledger to read only (blocking): as it is where SQLite can
    /// keep its shared memory beside it, else as a file no one changes. It
    /// is not migrated: one a newer version must migrate first is refused.
    fn open_to_read(
        path: &Path,
        identity: &Arc<FileIdentity>,
        file: &Arc<std::fs::File>,
    ) -> Result<Sqlite, LedgerError> {
        let first = |purpose| -> Result<(Connection, String), LedgerError> {
            let mut conn = connect(path, purpose)?;
            migrate::check_current(&mut conn, path)?;
            let salt = conn
                .query_row("SELECT salt FROM ledger_salt", [], |row| row.get(0))
                .map_err(query_error(path))?;
            Ok((conn, salt))
        };
        let (connections, (conn, salt)) = match first(Purpose::ReadOnly) {
            Ok(opened) => (Purpose::ReadOnly, opened),
            Err(e @ (LedgerError::Newer { .. } | LedgerError::Corrupt { .. })) => return Err(e),
            Err(_) => (Purpose::Immutable, first(Purpose::Immutable)?),
        };
        Ok(Sqlite {
            queue: start_connection_threads(conn),
            write_turn: Arc::new(Mutex::new(())),
            path: path.to_owned(),
            identity: Arc::clone(identity),
            salt: salt.into(),
            created: false,
            _file: Arc::clone(file),
            connections,
        })
    }

    /// Opens the first connection, switches the file to WAL, migrates it
    /// and reads its salt (blocking).
    fn open_once(
        path: &Path,
        identity: &Arc<FileIdentity>,
        created: bool,
        file: &Arc<std::fs::File>,
    ) -> Result<Sqlite, LedgerError> {
        let e = query_error(path);
        let mut conn = connect(path, Purpose::Durable)?;
        // Persistent in the file; a no-op once it is WAL.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        migrate::run(&mut conn, path)?;
        let salt: String = conn
            .query_row("SELECT salt FROM ledger_salt", [], |row| row.get(0))
            .map_err(e)?;
        Ok(Sqlite {
            queue: start_connection_threads(conn),
            write_turn: Arc::new(Mutex::new(())),
            path: path.to_owned(),
            identity: Arc::clone(identity),
            salt: salt.into(),
            created,
            _file: Arc::clone(file),
            connections: Purpose::Durable,
        })
    }

    /// The ledger's file, as an absolute path where it can be made one.
    pub fn shown(&self) -> String {
        std::path::absolute(&self.path)
            .unwrap_or_else(|_| self.path.clone())
            .display()
            .to_string()
    }

    /// Whether this handle created the ledger file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The ledger's salt for derived order ids.
    pub fn order_id_salt(&self) -> &str {
        &self.salt
    }

    /// Fails when the path no longer names the file this handle opened
    /// (deleted, moved, replaced), when the file gained a hard link, or when
    /// its WAL was removed: what this run writes would not be where the next
    /// run looks. Every write transaction checks it first.
    pub fn check_file(&self) -> Result<(), LedgerError> {
        self.identity.check(&self.path)
    }

    /// The campaign's id, creating it on first use.
    pub async fn ensure_campaign(
        &self,
        name: &CampaignName,
        now_ms: i64,
    ) -> Result<CampaignId, LedgerError> {
        let name = name.as_str().to_owned();
        self.write(move |this, tx| {
            tx.execute(
                "INSERT INTO campaigns (name, created_at_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                rusqlite::params![name, now_ms],
            )
            .map_err(this.error())?;
            this.campaign_on(tx, &name)
        })
        .await
    }

    /// The id of an existing campaign.
    pub async fn campaign(&self, name: &str) -> Result<CampaignId, LedgerError> {
        let name = name.to_owned();
        self.read(move |this, conn| this.campaign_on(conn, &name))
            .await
    }

    fn campaign_on(&self, conn: &Connection, name: &str) -> Result<CampaignId, LedgerError> {
        conn.query_row("SELECT id FROM campaigns WHERE name = ?", [name], |row| {
            row.get(0)
        })
        .optional()
        .map_err(self.error())?
        .map(CampaignId)
        .ok_or_else(|| LedgerError::UnknownCampaign {
            path: self.path.clone(),
            name: name.to_owned(),
        })
    }

    /// Every campaign name, in the order they were created.
    pub async fn campaign_names(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|this, conn| {
            let mut statement = conn
                .prepare("SELECT name FROM campaigns ORDER BY id")
                .map_err(this.error())?;
            let names = statement
                .query_map([], |row| row.get(0))
                .map_err(this.error())?
                .collect::<Result<_, _>>()
                .map_err(this.error())?;
            Ok(names)
        })
        .await
    }

    /// Closes the handle's connections once the work queued before is
    /// done (the last connection to close checkpoints the WAL); the handle
    /// and its clones are not to be used after.
    pub async fn close(&self) {
        let mut closed = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let (done, is_done) = tokio::sync::oneshot::channel();
            // Each thread takes one `Close` and ends, so every one gets one.
            if self.queue.send(Task::Close(done)).is_ok() {
                closed.push(is_done);
            }
        }
        for is_done in closed {
            let _ = is_done.await;
        }
    }

    /// Runs `work` in a write transaction on a blocking thread, committing
    /// what it returns `Ok` for (durably: see [`Purpose::Durable`]) and
    /// rolling back the rest.
    ///
    /// The transaction holds the write lock from its first statement
    /// (`BEGIN IMMEDIATE`): one that read first and wrote later could not
    /// wait for a busy ledger and would fail at once with "database is
    /// locked" when another process wrote in between. Every write first
    /// checks that the path still names the file this handle opened.
    async fn write<T, F>(&self, work: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Sqlite, &rusqlite::Transaction<'_>) -> Result<T, LedgerError> + Send + 'static,
    {
        self.on_connection(move |this, conn| {
            this.check_file()?;
            let _turn = this.write_turn();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(this.error())?;
            let done = work(this, &tx)?;
            tx.commit().map_err(this.error())?;
            Ok(done)
        })
        .await
    }

    /// Runs `work` (reads, or one statement that writes) on a blocking
    /// thread.
    async fn read<T, F>(&self, work: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Sqlite, &Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        self.on_connection(move |this, conn| work(this, conn)).await
    }

    /// Runs `work` on one of the handle's connection threads, with its
    /// connection. A transaction `work` left open is rolled back when it is
    /// dropped, so the connection stays clean. The work runs to its end
    /// even if the caller stops waiting: a transaction is never cut in
    /// half.
    async fn on_connection<T, F>(&self, work: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Sqlite, &mut Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let task = Task::Work(Box::new(move |slot: &mut Option<Connection>| {
            let outcome = match slot {
                Some(conn) => work(&this, conn),
                None => connect(&this.path, this.connections)
                    .and_then(|conn| work(&this, slot.insert(conn))),
            };
            let _ = done.send(outcome);
        }));
        if self.queue.send(task).is_err() {
            return Err(LedgerError::Corrupt {
                path: self.path.clone(),
                message: "the ledger was closed".to_owned(),
            });
        }
        result
            .await
            .unwrap_or_else(|_| panic!("a ledger connection thread panicked"))
    }

    /// The turn every write transaction of this process takes first, its
    /// own connections' and ingest's alike: they queue here, in turn,
    /// rather than in SQLite's busy handler, which polls with sleeps of up
    /// to 100 ms and lets a writer that commits back to back starve the
    /// others.
    fn write_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write_turn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ingest's own connection, for bulk writes on one blocking thread.
    fn bulk_connection(&self) -> Result<Connection, LedgerError> {
        connect(&self.path, Purpose::Bulk)
    }

    /// A read-only connection of its own, for long reads on one blocking
    /// thread.
    fn read_connection(&self) -> Result<Connection, LedgerError> {
        match self.connections {
            Purpose::Immutable => connect(&self.path, Purpose::Immutable),
            _ => connect(&self.path, Purpose::ReadOnly),
        }
    }

    /// Turns a statement's error into the ledger's.
    fn error(&self) -> impl Fn(rusqlite::Error) -> LedgerError + Copy + '_ {
        query_error(&self.path)
    }

    /// A batch number as the ledger stores it; anything else is corrupt.
    fn batch_seq(&self, raw: i64) -> Result<BatchSeq, LedgerError> {
        BatchSeq::new(raw).ok_or_else(|| LedgerError::Corrupt {
            path: self.path.clone(),
            message: format!("batch number {raw}"),
        })
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

/// Starts the [`CONNECTIONS`] threads that serve a handle's queue, the
/// first with `first` (the others open theirs when first needed).
fn start_connection_threads(first: Connection) -> mpsc::Sender<Task> {
    let (queue, tasks) = mpsc::channel::<Task>();
    let tasks = Arc::new(Mutex::new(tasks));
    let mut first = Some(first);
    for i in 0..CONNECTIONS {
        let tasks = Arc::clone(&tasks);
        let mut conn = first.take();
        std::thread::Builder::new()
            .name(format!("ledger-{i}"))
            .spawn(move || loop {
                let task = tasks.lock().unwrap_or_else(|p| p.into_inner()).recv();
                match task {
                    Ok(Task::Work(work)) => work(&mut conn),
                    Ok(Task::Close(done)) => {
                        drop(conn);
                        let _ = done.send(());
                        return;
                    }
                    // Every handle is gone.
                    Err(_) => return,
                }
            })
            .expect("a ledger connection thread starts");
    }
    queue
}

/// The file a ledger handle opened, and its WAL once seen.
#[derive(Debug)]
struct FileIdentity {
    file: (u64, u64),
    wal: Mutex<Option<(u64, u64)>>,
}

impl FileIdentity {
    fn of(path: &Path) -> Result<Arc<FileIdentity>, LedgerError> {
        let meta = std::fs::metadata(path).map_err(|e| file_error(path, e))?;
        if meta.nlink() > 1 {
            return Err(LedgerError::HardLinked {
                path: path.to_owned(),
                links: meta.nlink(),
            });
        }
        Ok(Arc::new(FileIdentity {
            file: (meta.dev(), meta.ino()),
            wal: Mutex::new(None),
        }))
    }

    fn check(&self, path: &Path) -> Result<(), LedgerError> {
        let vanished = |what| LedgerError::Vanished {
            path: path.to_owned(),
            what,
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(vanished("the file was deleted or moved"))
            }
            Err(e) => return Err(file_error(path, e)),
        };
        if (meta.dev(), meta.ino()) != self.file {
            return Err(vanished("the file was replaced by another one"));
        }
        if meta.nlink() > 1 {
            return Err(LedgerError::HardLinked {
                path: path.to_owned(),
                links: meta.nlink(),
            });
        }
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal = std::fs::metadata(&wal_path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let mut known = self.wal.lock().unwrap_or_else(|p| p.into_inner());
        match (*known, wal) {
            (Some(known), Some(now)) if known != now => {
                Err(vanished("its write-ahead log (-wal) was replaced"))
            }
            (Some(_), None) => Err(vanished("its write-ahead log (-wal) was removed")),
            (_, now) => {
                *known = known.or(now);
                Ok(())
            }
        }
    }
}

/// Waits for this process's turn to open (and migrate) the ledger: an
/// exclusive advisory lock on `file`, released once it is open. Where the
/// file system has no advisory locks, the retries of `open_with` are all
/// there is.
async fn take_turn_to_open(file: std::fs::File) -> Arc<std::fs::File> {
    let file = Arc::new(file);
    let locking = Arc::clone(&file);
    let _ = tokio::task::spawn_blocking(move || locking.lock()).await;
    file
}

/// Opens the descriptor a ledger handle keeps: for writing when the command
/// writes (an error saying so if it cannot), else for reading; a command
/// that writes also needs to create files beside it (SQLite's WAL).
fn own_descriptor(path: &Path, mode: OpenMode) -> Result<std::fs::File, LedgerError> {
    let read_only = |what: String| LedgerError::ReadOnly {
        path: path.to_owned(),
        what,
    };
    if mode != OpenMode::CreateIfMissing {
        return std::fs::File::open(path).map_err(|e| file_error(path, e));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| read_only(format!("the file: {e}")))?;
    let mut probe = path.as_os_str().to_owned();
    probe.push(format!("-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(file)
        }
        Err(e) => Err(read_only(format!("its folder: {e}"))),
    }
}

/// An error of the ledger's file itself (not of SQLite).
fn file_error(path: &Path, e: std::io::Error) -> LedgerError {
    LedgerError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Batch numbers go into SQLite as integers.
impl rusqlite::ToSql for BatchSeq {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(i64::from(*self)))
    }
}

#[cfg(test)]
mod tests {
    /// Two runs started together on a new ledger race to create and
    /// migrate it; every one of them must end up with it open.
    #[tokio::test(flavor = "multi_thread")]
    async fn runs_creating_one_ledger_at_once_all_open_it() {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ledger.db");
            let opens = (0..8).map(|_| super::Sqlite::open(&path));
            for opened in futures_util::future::join_all(opens).await {
                opened.expect("every opener gets the ledger");
            }
        }
    }

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
