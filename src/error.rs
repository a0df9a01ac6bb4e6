//! Why a command could not do its work, and the one mapping from how a
//! command ended to the exit code cron reads (README, "Exit codes"), as
//! nextest's `process_exit_code`: no command turns anything into a number.
//!
//! An error says what failed and on which input; where it belongs to the
//! exit codes follows from what it is: an input error before anything was
//! sent is 2, what will pass by itself is 75, the rest is 3.

use std::io;
use std::path::PathBuf;

use crate::batch::BatchSeq;
use crate::contacts::ContactsError;
use crate::ingest::IngestError;
use crate::job::JobError;
use crate::ledger::LedgerError;

/// How a command ended, as cron reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Nothing left to do, and nothing new that needs attention.
    Done,
    /// Something new needs attention (news wins over every ending but a
    /// stop).
    Attention,
    /// Usage, job file or input error; nothing was sent.
    BadInput,
    /// Stopped by an error that retrying will not fix.
    Stopped,
    /// Try again later: interrupted, busy, outside the windows, deferred.
    TryLater,
}

impl Exit {
    /// The process's exit code: the only place the numbers are written.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Attention => 1,
            Exit::BadInput => 2,
            Exit::Stopped => 3,
            Exit::TryLater => 75,
        }
    }
}

/// The exit code of a command's result.
pub fn process_exit_code(result: &Result<Exit, Error>) -> u8 {
    match result {
        Ok(exit) => exit.code(),
        // `orders … | head`: the reader has all it wanted.
        Err(e) if e.is_closed_pipe() => Exit::Done.code(),
        Err(e) => e.exit().code(),
    }
}

/// Ends the process at once with `exit`'s code: for a second signal,
/// which must not wait for anything.
pub fn exit_now(exit: Exit) -> ! {
    std::process::exit(i32::from(exit.code()))
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Contacts(#[from] ContactsError),
    #[error("environment variable {var} is not set: it must hold the NXLink {what} (the job's api.{key} names it); or put {var}=... in a credentials file only its owner can read, named by NXLINK_CREDENTIALS_FILE or the job's api.credentials_file")]
    MissingCredential {
        var: String,
        what: &'static str,
        key: &'static str,
    },
    /// A credentials file that cannot be used (the secret is never shown).
    #[error("credentials file {path}: {why}")]
    CredentialsFile { path: PathBuf, why: String },
    /// A command-line value that cannot be used, found before anything
    /// was done.
    #[error("{flag}: {why}")]
    Argument { flag: String, why: String },
    /// An output path that names a file the campaign depends on.
    #[error(transparent)]
    Refused(#[from] crate::output::files::Refused),
    /// A do-not-call list file that cannot be read whole.
    #[error("{why}")]
    ListFile { why: String },
    #[error("campaign {campaign:?} has no batch {batches}; nothing was {done} (`nxcampaign report {campaign}` lists its batches)")]
    NoSuchBatches {
        campaign: String,
        batches: String,
        done: &'static str,
    },
    #[error("this run would send {would} order(s), more than {most} (--confirm-above or the job's limits.confirm_above): nothing was sent; look at them with `nxcampaign check {job}`, then run again with --yes")]
    TooManyToSend { would: u64, most: u64, job: String },
    #[error("campaign {campaign:?} sent {attempts} request(s): its record is what keeps its contacts from being called again, so it is kept; add --i-know-it-was-sent to delete it anyway")]
    KeptSent { campaign: String, attempts: u64 },
    #[error("refused: batch {batches} was being sent by a run that lost the campaign but may still live; a request of it could still be accepted until {until} (in {seconds} s): re-send it after that")]
    Fenced {
        batches: String,
        first: crate::batch::BatchSeq,
        until: String,
        seconds: u64,
    },
    #[error("campaign {campaign:?} is being run by {holder}; try again later")]
    CampaignBusy { campaign: String, holder: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot start the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot listen: {0}")]
    Listen(io::Error),
    /// The process could not start its async runtime (threads, memory).
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
    #[error("call records: {0}")]
    CallRecords(#[from] crate::call_records::CallRecordsError),
    #[error(transparent)]
    Rejects(#[from] crate::output::rejects::RejectsError),
}

impl Error {
    /// A command-line value that cannot be used.
    pub fn argument(flag: impl Into<String>, why: impl Into<String>) -> Error {
        Error::Argument {
            flag: flag.into(),
            why: why.into(),
        }
    }

    /// Whether the output's reader went away (`orders … | head`): not a
    /// failure of the command.
    pub fn is_closed_pipe(&self) -> bool {
        match self {
            Error::Output(e) | Error::Ledger(LedgerError::Output(e)) => {
                e.kind() == io::ErrorKind::BrokenPipe
            }
            _ => false,
        }
    }

    /// Where the error belongs among the exit codes.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Job(_)
            | Error::Contacts(_)
            | Error::MissingCredential { .. }
            | Error::CredentialsFile { .. }
            | Error::Argument { .. }
            | Error::Refused(_)
            | Error::ListFile { .. }
            | Error::NoSuchBatches { .. }
            | Error::TooManyToSend { .. }
            | Error::KeptSent { .. }
            | Error::Fenced { .. }
            | Error::Listen(_) => Exit::BadInput,
            Error::Ledger(LedgerError::UnknownCampaign { .. } | LedgerError::Missing { .. }) => {
                Exit::BadInput
            }
            // A server restarting, a connection reset, a lost lease: it
            // passes.
            Error::Ledger(e) if e.is_transient() => Exit::TryLater,
            Error::CampaignBusy { .. } => Exit::TryLater,
            Error::CallRecords(e) if e.retrying_helps() => Exit::TryLater,
            Error::CallRecords(_)
            | Error::Ledger(_)
            | Error::Client(_)
            | Error::Runtime(_)
            | Error::Output(_)
            | Error::Rejects(_) => Exit::Stopped,
        }
    }
}

impl From<IngestError> for Error {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Contacts(e) => Error::Contacts(e),
            IngestError::Ledger(e) => Error::Ledger(e),
        }
    }
}

/// `#1, #2, …` for up to 20 batches.
pub fn batch_list(seqs: &[BatchSeq]) -> String {
    let shown: Vec<String> = seqs.iter().take(20).map(|s| format!("#{s}")).collect();
    let more = if seqs.len() > 20 { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ending_has_its_documented_code() {
        let codes: Vec<u8> = [
            Exit::Done,
            Exit::Attention,
            Exit::BadInput,
            Exit::Stopped,
            Exit::TryLater,
        ]
        .into_iter()
        .map(Exit::code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 75]);
        let closed = Error::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(process_exit_code(&Err(closed)), 0);
        let refused = Error::argument("--state", "not a state");
        assert_eq!(process_exit_code(&Err(refused)), 2);
        // Written after something was sent, a file that cannot be written
        // is not "nothing was sent".
        let output = Error::Output(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(process_exit_code(&Err(output)), 3);
    }
}
