//! Ingest: a job's contact file into the ledger as orders and batches.
//!
//! A reader thread parses and validates rows while this task de-duplicates
//! them against the ledger and writes one chunk per transaction, with the
//! checkpoint. Memory holds a few chunks, never the file. Ingest sends
//! nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::contacts::{self, ContactReader, ContactsError, Resume, Row};
use crate::job::Job;
use crate::ledger::{CampaignId, Checkpoint, IngestChunk, Ledger, LedgerError, NewOrder};
use crate::plan::{self, Batcher, Contact, InvalidRow};

/// What one ingest added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Rows that entered the ledger, in any state.
    pub rows: u64,
    /// Of those, orders that will be sent.
    pub orders: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// Rows skipped because the ledger already held them (a replaced file
    /// read again from its start).
    pub known: u64,
    /// True when the file no longer matched its checkpoint and was read
    /// again from its start.
    pub reread: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Contacts(#[from] ContactsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Rows per ledger transaction.
const CHUNK_ROWS: usize = 2000;

/// Reads what is new in the job's contact file into the ledger.
#[tracing::instrument(skip_all, fields(campaign = %job.name))]
pub async fn ingest(
    ledger: &Ledger,
    job: &Job,
    campaign: CampaignId,
    now_ms: i64,
) -> Result<IngestReport, IngestError> {
    let checkpoint = ledger.checkpoint(campaign).await?;
    let (resume, reread) = match &checkpoint.fingerprint {
        None => (None, false),
        Some(stored) => {
            let current = contacts::fingerprint(&job.contacts, checkpoint.offset)?;
            if &current == stored && data_reaches(&job.contacts, checkpoint.offset) {
                let resume = Resume {
                    offset: checkpoint.offset,
                    line: checkpoint.line,
                };
                (Some(resume), false)
            } else {
                tracing::warn!(
                    file = %job.contacts.display(),
                    "the contact file changed since it was last read; reading it again from the start, skipping orders the ledger already has"
                );
                (None, true)
            }
        }
    };
    // Opening here reports a missing file or column before anything else.
    let reader = ContactReader::open(&job.contacts, &job.columns, resume)?;

    let (size, (next_seq, open)) = (
        u32::from(job.batch_size.get()),
        ledger
            .open_batches(campaign, u32::from(job.batch_size.get()))
            .await?,
    );
    let mut batcher = Batcher::new(size, next_seq, open);
    let mut report = IngestReport {
        reread,
        ..IngestReport::default()
    };

    let (tx, mut rx) = mpsc::channel(2);
    let path = job.contacts.clone();
    let name = job.name.clone();
    let country = job.task.country;
    let reading =
        tokio::task::spawn_blocking(move || read_chunks(reader, path, &name, country, &tx));

    while let Some(chunk) = rx.recv().await {
        let chunk = chunk?;
        let written =
            plan_chunk(ledger, campaign, chunk, reread, &mut batcher, &mut report).await?;
        ledger.record_chunk(campaign, &written, now_ms).await?;
    }
    reading
        .await
        .expect("the contact reader thread does not panic");
    Ok(report)
}

/// Rows of one chunk, validated, with the checkpoint after them.
struct ReadChunk {
    rows: Vec<Result<Contact, InvalidRow>>,
    checkpoint: Checkpoint,
}

/// The reader thread: parse and validate rows, hand them over in chunks.
fn read_chunks(
    mut reader: ContactReader,
    path: PathBuf,
    campaign: &crate::job::CampaignName,
    default_country: crate::phone::Country,
    tx: &mpsc::Sender<Result<ReadChunk, ContactsError>>,
) {
    loop {
        let mut rows = Vec::with_capacity(CHUNK_ROWS);
        let mut failure = None;
        while rows.len() < CHUNK_ROWS {
            match reader.next_row() {
                Ok(Some(Row::Fields(raw))) => {
                    rows.push(plan::contact_from_row(raw, campaign, default_country))
                }
                Ok(Some(Row::Unreadable { line, reason })) => rows.push(Err(InvalidRow {
                    line,
                    order_id: None,
                    phone: String::new(),
                    reason,
                })),
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let full = rows.len() == CHUNK_ROWS;
        if !rows.is_empty() {
            let resume = reader.resume_point();
            let chunk = contacts::fingerprint(&path, resume.offset).map(|fingerprint| ReadChunk {
                rows,
                checkpoint: Checkpoint {
                    fingerprint: Some(fingerprint),
                    offset: resume.offset,
                    line: resume.line,
                },
            });
            if tx.blocking_send(chunk).is_err() {
                return;
            }
        }
        if let Some(e) = failure {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        if !full {
            return;
        }
    }
}

/// Decides every row of a chunk: live order (placed in a batch), duplicate,
/// invalid, or already known.
async fn plan_chunk(
    ledger: &Ledger,
    campaign: CampaignId,
    chunk: ReadChunk,
    reread: bool,
    batcher: &mut Batcher,
    report: &mut IngestReport,
) -> Result<IngestChunk, LedgerError> {
    let (phones, order_ids): (Vec<&str>, Vec<&str>) = chunk
        .rows
        .iter()
        .filter_map(|row| row.as_ref().ok())
        .map(|c| (c.phone.digits(), c.order_id.as_str()))
        .unzip();
    let known = ledger.known_keys(campaign, &phones, &order_ids).await?;
    let mut line_of_phone: HashMap<String, u64> =
        HashMap::with_capacity(known.len() + chunk.rows.len());
    let mut line_of_id: HashMap<String, u64> =
        HashMap::with_capacity(known.len() + chunk.rows.len());
    let mut known_pairs: HashMap<String, String> = HashMap::new();
    for key in known {
        line_of_phone.insert(key.phone.clone(), key.line);
        line_of_id.insert(key.order_id.clone(), key.line);
        if reread {
            known_pairs.insert(key.order_id, key.phone);
        }
    }

    let mut out = IngestChunk {
        orders: Vec::with_capacity(chunk.rows.len()),
        checkpoint: chunk.checkpoint,
        ..IngestChunk::default()
    };
    for row in chunk.rows {
        let contact = match row {
            Ok(contact) => contact,
            Err(invalid) => {
                report.invalid += 1;
                out.orders.push(NewOrder {
                    line: invalid.line,
                    order_id: invalid.order_id,
                    phone: invalid.phone,
                    country: None,
                    other: String::new(),
                    batch_seq: None,
                    set_aside: Some("invalid"),
                    reason: Some(invalid.reason),
                });
                continue;
            }
        };
        let phone = contact.phone.digits();
        let order_id = contact.order_id.as_str();
        if known_pairs.get(order_id).is_some_and(|p| p == phone) {
            report.known += 1;
            continue;
        }
        let duplicate_of = line_of_phone
            .get(phone)
            .map(|line| format!("same phone as line {line}"))
            .or_else(|| {
                line_of_id
                    .get(order_id)
                    .map(|line| format!("same order id as line {line}"))
            });
        let (batch_seq, set_aside) = match &duplicate_of {
            Some(_) => {
                report.duplicates += 1;
                (None, Some("duplicate"))
            }
            None => {
                report.orders += 1;
                line_of_phone.insert(phone.to_owned(), contact.line);
                line_of_id.insert(order_id.to_owned(), contact.line);
                let placement = batcher.place(contact.phone.country());
                if placement.opens {
                    out.new_batches
                        .push((placement.seq, contact.phone.country()));
                }
                (Some(placement.seq), None)
            }
        };
        out.orders.push(NewOrder {
            line: contact.line,
            order_id: Some(order_id.to_owned()),
            phone: phone.to_owned(),
            country: Some(contact.phone.country().as_str().to_owned()),
            other: contact.other,
            batch_seq,
            set_aside,
            reason: duplicate_of,
        });
    }
    out.rows_read = out.orders.len() as u64;
    report.rows += out.rows_read;
    Ok(out)
}

/// Whether a plain file is at least `offset` bytes long (a compressed one is
/// checked when it is read).
fn data_reaches(path: &std::path::Path, offset: u64) -> bool {
    let compressed = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"));
    compressed || std::fs::metadata(path).is_ok_and(|m| m.len() >= offset)
}
