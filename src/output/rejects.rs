//! The rejects file: every row a read set aside (invalid, duplicate,
//! suppressed), with the original row's columns as the file has them, then
//! `line` and `reason`, in file order: the file to fix and load again
//! (Salesforce's failed-results file and Five9's rejected-records report
//! are the models).
//!
//! It is written after the read, from the ledger's set-aside orders and a
//! second pass over the contact file, so memory holds one row, whatever
//! the file's size; it appears whole (written beside, then renamed).

use std::io;
use std::path::Path;

use crate::contacts::{ContactReader, Resume, Row};
use crate::job::Job;
use crate::ledger::{CampaignId, Ledger, LedgerError};
use crate::output::files::Partial;
use crate::state::OrderState;

#[derive(Debug, thiserror::Error)]
pub enum RejectsError {
    #[error("rejects file {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Writes the rows the campaign's last read set aside to `path`: the
/// campaign's orders after its first `skip` (those of earlier reads), read
/// back from the contact file starting at `from` (where that read began).
/// Returns how many rows it wrote. Blocking: call it off the async
/// runtime.
pub fn write_rejects(
    ledger: &Ledger,
    campaign: CampaignId,
    job: &Job,
    from: Option<&Resume>,
    skip: u64,
    path: &Path,
) -> Result<u64, RejectsError> {
    let failed = |source: io::Error| RejectsError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut reader = ContactReader::open(&job.contacts, &job.columns, from)
        .map_err(|e| failed(io::Error::other(e)))?;
    let file = Partial::create(path).map_err(failed)?;
    let mut out = csv::Writer::from_writer(file);
    let mut header = reader.header().to_vec();
    header.extend(["line".to_owned(), "reason".to_owned()]);
    out.write_record(&header).map_err(|e| failed(e.into()))?;
    let mut seen = 0u64;
    let mut written = 0u64;
    ledger
        .for_each_order(campaign, None, None, &mut |order| {
            seen += 1;
            let set_aside = matches!(
                order.state,
                OrderState::Invalid | OrderState::Duplicate | OrderState::Suppressed
            );
            if seen <= skip || !set_aside {
                return Ok(());
            }
            let mut fields = record_on_line(&mut reader, order.line)?;
            fields.push(order.line.to_string());
            fields.push(match &order.message {
                Some(why) => format!("{}: {why}", order.state),
                None => order.state.to_string(),
            });
            out.write_record(&fields).map_err(io::Error::from)?;
            written += 1;
            Ok(())
        })
        .map_err(|e| match e {
            LedgerError::Output(e) => failed(e),
            e => e.into(),
        })?;
    let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
    file.commit().map_err(failed)?;
    Ok(written)
}

/// Reads on to the record that starts on `line` and returns its fields.
fn record_on_line(reader: &mut ContactReader, line: u64) -> io::Result<Vec<String>> {
    loop {
        let at = match reader.next_row().map_err(io::Error::other)? {
            Some(Row::Fields(raw)) => raw.line,
            Some(Row::Unreadable { line, .. }) => line,
            None => break,
        };
        if at == line {
            return Ok(reader.last_fields());
        }
        if at > line {
            break;
        }
    }
    Err(io::Error::other(format!(
        "line {line} of the contact file is not where it was when it was read: the file changed since"
    )))
}
