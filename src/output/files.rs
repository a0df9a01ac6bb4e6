//! The files commands write for people and schedulers (`--rejects`,
//! `orders --output`, `report --html`, `--summary-json`,
//! `--metrics-file`): never over a file a campaign depends on (its ledger,
//! contacts, job or lists) nor over any SQLite database, readable by their
//! owner only (they hold phone numbers and outcomes), and whole or not at
//! all (written beside, then renamed over the old one).
//!
//! It knows nothing of what goes into them.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Why an output path is refused.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {why}; refusing to write over it (name another file)")]
pub struct Refused {
    flag: String,
    path: String,
    why: String,
}

/// The files no output may replace, each with what it is.
#[derive(Debug, Default, Clone)]
pub struct Protected {
    files: Vec<(PathBuf, String)>,
}

impl Protected {
    /// Adds `path`, described as `what` ("the campaign's ledger").
    pub fn add(&mut self, path: &Path, what: impl Into<String>) {
        self.files.push((resolved(path), what.into()));
    }

    /// Adds a SQLite ledger with the files SQLite keeps beside it.
    pub fn add_ledger_file(&mut self, path: &Path) {
        self.add(path, "the ledger");
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut beside = path.as_os_str().to_owned();
            beside.push(suffix);
            self.add(Path::new(&beside), format!("the ledger's {suffix} file"));
        }
    }

    /// Refuses `path` (given with `flag`) when it names a protected file,
    /// a folder, or an existing SQLite database.
    pub fn check(&self, flag: &str, path: &Path) -> Result<(), Refused> {
        let refuse = |why: String| Refused {
            flag: flag.to_owned(),
            path: path.display().to_string(),
            why,
        };
        let target = resolved(path);
        if let Some((_, what)) = self.files.iter().find(|(file, _)| *file == target) {
            return Err(refuse(format!("that is {what}")));
        }
        if target.is_dir() {
            return Err(refuse("that is a folder".into()));
        }
        if is_sqlite_database(&target) {
            return Err(refuse("that is a SQLite database (a ledger?)".into()));
        }
        Ok(())
    }
}

/// An output being written: it replaces `path` only when committed.
pub struct Partial {
    file: io::BufWriter<File>,
    partial: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Partial {
    /// Starts writing `path`: a file beside it, readable by its owner only.
    pub fn create(path: &Path) -> io::Result<Partial> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(format!(".{}.partial", std::process::id()));
        let partial = PathBuf::from(partial);
        // A partial file a crashed write left behind is ours to replace.
        let _ = std::fs::remove_file(&partial);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| in_file(path, e))?;
        Ok(Partial {
            file: io::BufWriter::with_capacity(1 << 16, file),
            partial,
            path: path.to_owned(),
            committed: false,
        })
    }

    /// Makes the output durable and puts it in place.
    pub fn commit(mut self) -> io::Result<()> {
        let path = self.path.clone();
        self.file.flush().map_err(|e| in_file(&path, e))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(|e| in_file(&path, e))?;
        // Checked again at the last moment: a database put there meanwhile
        // is not replaced either.
        if is_sqlite_database(&path) {
            return Err(in_file(
                &path,
                io::Error::other("it became a SQLite database meanwhile; not replaced"),
            ));
        }
        std::fs::rename(&self.partial, &path).map_err(|e| in_file(&path, e))?;
        self.committed = true;
        Ok(())
    }
}

impl io::Write for Partial {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // Not committed: the old file stays, the partial one goes.
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Writes `bytes` to `path` whole, readable by its owner only.
pub fn write_whole(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut out = Partial::create(path)?;
    out.write_all(bytes).map_err(|e| in_file(path, e))?;
    out.commit()
}

/// An I/O error that names the file.
fn in_file(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `path` absolute, through symbolic links where it exists (its folder
/// where only that does), so two names of one file compare equal.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    match (absolute.parent(), absolute.file_name()) {
        (Some(folder), Some(name)) => std::fs::canonicalize(folder)
            .map(|folder| folder.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

/// Whether `path` is a file that starts as every SQLite database does.
fn is_sqlite_database(path: &Path) -> bool {
    let mut head = [0u8; 16];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut head))
        .is_ok_and(|()| &head == b"SQLite format 3\0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_never_replace_what_a_campaign_depends_on() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("nxcampaign.db");
        std::fs::write(&ledger, b"SQLite format 3\0and the rest").unwrap();
        let other_db = dir.path().join("archive.sqlite");
        std::fs::write(&other_db, b"SQLite format 3\0another").unwrap();
        let contacts = dir.path().join("contacts.csv");
        std::fs::write(&contacts, "phone\n").unwrap();
        let mut protected = Protected::default();
        protected.add_ledger_file(&ledger);
        protected.add(&contacts, "the campaign's contact file");

        let refused = |path: &Path| protected.check("--rejects", path).unwrap_err().to_string();
        assert!(refused(&ledger).contains("that is the ledger"));
        assert!(refused(&dir.path().join("nxcampaign.db-wal")).contains("-wal"));
        assert!(refused(&dir.path().join("./contacts.csv")).contains("contact file"));
        assert!(refused(&other_db).contains("SQLite database"));
        assert!(refused(dir.path()).contains("folder"));
        protected
            .check("--rejects", &dir.path().join("rejects.csv"))
            .unwrap();
    }

    #[test]
    fn an_output_appears_whole_and_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        std::fs::write(&path, "old").unwrap();
        let mut out = Partial::create(&path).unwrap();
        out.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        out.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Dropped without a commit: the old file stays, nothing is left.
        let mut dropped = Partial::create(&path).unwrap();
        dropped.write_all(b"half").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
