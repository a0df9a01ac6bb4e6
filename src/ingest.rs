//! Ingest: a job's contact file into the ledger as orders and batches.
//!
//! A reader thread parses and validates rows, and marks the ones that may
//! repeat an earlier row's key ([`seen`]); a writer thread stages them in the
//! ledger, one chunk and its checkpoint per transaction, then plans every
//! staged order at once (duplicates, keys, batches), set-wise. Memory holds
//! a few chunks and a fixed-size filter, never the file. Ingest sends
//! nothing.

mod seen;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use crate::contacts::{ContactReader, ContactsError, Resume, Row};
use crate::job::{CampaignName, Job};
use crate::ledger::{
    Checkpoint, Fence, IngestWriter, Ledger, LedgerError, RedialsPlanned, StagedChunk, StagedRow,
};
use crate::meter::Reading;
use crate::phone::Country;
use crate::plan::{self, Batcher, Contact, InvalidRow, Zoning};
use seen::SeenKeys;

/// What one ingest added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Rows that entered the ledger, in any state.
    pub rows: u64,
    /// Orders planned into batches (rows of this ingest, and any an
    /// interrupted ingest had left staged).
    pub orders: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// Orders whose number was on the do-not-call list.
    pub suppressed: u64,
    /// What was left in the file for a later run (a last line still being
    /// written, a gzip file not yet whole), said for a person.
    pub waiting: Option<String>,
    /// True when a stop (signal, `--max-runtime`) ended reading early, at a
    /// record boundary; what was read is kept.
    pub interrupted: bool,
    /// What planning redials did, when the job has them and this ingest
    /// planned them (`run`).
    pub redials: Option<RedialsPlanned>,
}

/// What a caller hands ingest besides the job: when to stop, where plans
/// are announced (`run`, which sends as it reads), the meter the progress
/// bars read, and whether to plan the job's redials at the end.
pub struct Hooks {
    pub stop: Arc<AtomicBool>,
    pub feed: Option<PlanFeed>,
    pub meter: Arc<Reading>,
    pub redials: bool,
}

/// The job's redials, for the writer thread.
struct Redials {
    policy: crate::redial::Policy,
    campaign: String,
    batch_size: u32,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Contacts(#[from] ContactsError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Rows per staging transaction.
const CHUNK_ROWS: usize = 5_000;

/// When ingest plans as it goes: first after this many rows (one chunk, so
/// sending starts at once), then after twice as many each time, while the
/// file's first [`PLAN_AS_IT_GOES_UP_TO`] rows are read; the rest is
/// planned at the end, at once. Early plans are cheap (few claims to check
/// them against); later ones would each go through millions of claims and
/// hold the memory of a sort beside a busy dispatch, and by then dispatch
/// has thousands of batches to send. Each plan closes the open batches (one
/// per country), so few plans keep part-filled batches rare.
const FIRST_PLAN_ROWS: u64 = CHUNK_ROWS as u64;
const PLAN_AS_IT_GOES_UP_TO: u64 = 2_000_000;

/// Where planned orders are announced while ingest goes on.
pub type PlanFeed = tokio::sync::watch::Sender<()>;

/// Reads what is new in the job's contact file into the ledger, then plans
/// every staged order into batches, for the run that holds `fence` (every
/// transaction checks it). Reading stops early, at a record boundary, once
/// `stop` is set.
///
/// With a `feed`, it plans as it goes and announces each plan there, so
/// the run can send the first batches while the rest of the file is read:
/// a later row can only repeat an earlier one, so what is planned stays
/// planned. Without one, it plans once, at the end (the fastest way to
/// take in a whole file).
///
/// The checkpoint names its file: the same file changed in the part
/// already read is refused ([`ContactsError::Changed`]); another file named
/// by the job is read from its start, its rows de-duplicated against the
/// campaign as usual.
#[tracing::instrument(skip_all, fields(campaign = %job.name))]
pub async fn ingest(
    ledger: &Ledger,
    job: &Job,
    fence: &Fence,
    now_ms: i64,
    hooks: Hooks,
) -> Result<IngestReport, IngestError> {
    let Hooks {
        stop,
        feed,
        meter,
        redials,
    } = hooks;
    let campaign = fence.campaign;
    let checkpoint = ledger.checkpoint(campaign).await?;
    let source = job.contacts.to_string_lossy().into_owned();
    let resume = resume_point(&checkpoint, job);
    if let (None, Some(read)) = (&resume, &checkpoint.source) {
        tracing::warn!(was = %read, now = %source, "the job names another contact file: reading it from its start");
    }
    // Opening here reports a missing file or column before anything else.
    let (reader, waiting) = match ContactReader::open(&job.contacts, &job.columns, resume.as_ref())
    {
        Ok(reader) => {
            let (start, end) = reader.span();
            meter.opened(start, end);
            (Some(reader), None)
        }
        Err(e @ ContactsError::NotReady { .. }) => (None, Some(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let size = u32::from(job.batch_size.get());
    let placing = Placing {
        batcher: Batcher::new(size, ledger.next_batch_seq(campaign).await?),
        zoning: Zoning::new(job.schedule.as_ref()),
    };

    let redials = redials
        .then(|| job.redial.clone())
        .flatten()
        .map(|policy| Redials {
            policy,
            campaign: job.name.to_string(),
            batch_size: size,
            stop: Arc::clone(&stop),
        });
    let (tx, rx) = mpsc::sync_channel(2);
    let name = job.name.clone();
    let country = job.default_country;
    let salt = ledger.order_id_salt().to_owned();
    let reading = thread("ingest-reader", move || match reader {
        Some(reader) => read_chunks(reader, source, &salt, &name, country, &stop, &tx),
        None => Ended::default(),
    });
    let ledger = ledger.clone();
    let fence = fence.clone();
    let ids_from_file = job.columns.order_id.is_some();
    let writing = thread("ingest-writer", move || {
        let mut writer = ledger.ingest_writer(&fence)?;
        if feed.is_some() {
            writer.beside_dispatch();
        }
        if ids_from_file {
            writer.ids_from_file();
        }
        let ended = write_chunks(writer, &rx, placing, now_ms, feed, &meter, redials);
        meter.finished();
        ended
    });
    let written = writing.await;
    let ended = reading.await;
    let mut report = written?;
    report.waiting = waiting.or(ended.waiting);
    report.interrupted = ended.interrupted;
    Ok(report)
}

/// Where reading the job's contact file goes on after `checkpoint`: at
/// its start (`None`) for a campaign never read, or when the checkpoint
/// names another file. A checkpoint that names the same file another way
/// (relative to the folder an older version was run from) still names it;
/// the checkpoint's digest of what was read vouches for the content.
pub fn resume_point(checkpoint: &Checkpoint, job: &Job) -> Option<Resume> {
    let source = job.contacts.to_string_lossy();
    let same_file =
        |read: &str| *read == source || names_the_same_file(Path::new(read), &job.contacts);
    match (&checkpoint.fingerprint, &checkpoint.source) {
        (Some(_), Some(read)) if !same_file(read) => None,
        (Some(fingerprint), _) => Some(Resume {
            offset: checkpoint.offset,
            line: checkpoint.line,
            fingerprint: fingerprint.clone(),
        }),
        (None, _) => None,
    }
}

/// Whether `recorded`, a path as an earlier run recorded it, names
/// `contacts`: the same path, or a relative one that does from the current
/// folder or from a folder above the file.
fn names_the_same_file(recorded: &Path, contacts: &Path) -> bool {
    let Ok(file) = std::fs::canonicalize(contacts) else {
        return false;
    };
    let is_it = |candidate: &Path| std::fs::canonicalize(candidate).is_ok_and(|c| c == file);
    if recorded.is_absolute() {
        return is_it(recorded);
    }
    is_it(recorded)
        || contacts
            .ancestors()
            .skip(1)
            .any(|folder| is_it(&folder.join(recorded)))
}

/// Runs `work` on a thread of its own, named for profilers and debuggers;
/// the future resolves to its result.
fn thread<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = done.send(work());
        });
    let name = name.to_owned();
    async move {
        spawned.unwrap_or_else(|e| panic!("cannot start the {name} thread: {e}"));
        result
            .await
            .unwrap_or_else(|_| panic!("the {name} thread panicked"))
    }
}

/// The writer thread: stage every chunk the reader sends, and plan at the
/// end, or as it goes when there is a `feed` to announce plans on.
fn write_chunks(
    mut writer: IngestWriter,
    chunks: &mpsc::Receiver<Result<ReadChunk, ContactsError>>,
    mut placing: Placing,
    now_ms: i64,
    feed: Option<PlanFeed>,
    meter: &Reading,
    redials: Option<Redials>,
) -> Result<IngestReport, IngestError> {
    let mut report = IngestReport::default();
    let started = std::time::Instant::now();
    let mut plan_after = FIRST_PLAN_ROWS;
    let mut unplanned = 0;
    for chunk in chunks {
        let before = report.rows;
        let chunk = chunk?;
        let at = chunk.checkpoint.offset;
        stage(&mut writer, chunk, &mut placing, &mut report, now_ms)?;
        meter.advanced(at, report.rows - before);
        unplanned += report.rows - before;
        let early = report.rows - unplanned < PLAN_AS_IT_GOES_UP_TO;
        if let Some(feed) = feed.as_ref().filter(|_| early && unplanned >= plan_after) {
            plan(
                &mut writer,
                &mut placing.batcher,
                &mut report,
                now_ms,
                meter,
            )?;
            feed.send_replace(());
            unplanned = 0;
            plan_after *= 2;
        }
    }
    tracing::debug!(
        rows = report.rows,
        seconds = started.elapsed().as_secs_f64(),
        "staged"
    );
    plan(
        &mut writer,
        &mut placing.batcher,
        &mut report,
        now_ms,
        meter,
    )?;
    // Redials are planned once nothing is staged, and not after a stop.
    if let Some(redials) = redials.filter(|r| !r.stop.load(Ordering::Relaxed)) {
        let planned = writer.plan_redials(
            &redials.policy,
            &redials.campaign,
            redials.batch_size,
            now_ms,
        )?;
        meter.planned(planned.orders);
        report.redials = Some(planned);
    }
    if let Some(feed) = feed {
        feed.send_replace(());
    }
    Ok(report)
}

/// Plans what is staged; the batches open until now are closed first.
fn plan(
    writer: &mut IngestWriter,
    batcher: &mut Batcher,
    report: &mut IngestReport,
    now_ms: i64,
    meter: &Reading,
) -> Result<(), LedgerError> {
    let started = std::time::Instant::now();
    batcher.close_all();
    let planned = writer.plan_staged(now_ms)?;
    tracing::debug!(
        orders = planned.orders,
        seconds = started.elapsed().as_secs_f64(),
        "planned"
    );
    meter.planned(planned.orders);
    report.orders += planned.orders;
    report.duplicates += planned.duplicates;
    report.suppressed += planned.suppressed;
    Ok(())
}

/// Rows of one chunk, validated, with the checkpoint after them.
struct ReadChunk {
    rows: Vec<Result<ReadContact, InvalidRow>>,
    checkpoint: Checkpoint,
    /// Whether every contact that may repeat a key of an earlier row of
    /// this ingest is marked.
    repeats_marked: bool,
}

/// A valid row, and whether it may repeat a key of an earlier row.
struct ReadContact {
    contact: Contact,
    suspect: bool,
}

/// How the reader thread ended, besides the rows it handed over.
#[derive(Debug, Default)]
struct Ended {
    waiting: Option<String>,
    interrupted: bool,
}

/// The reader thread: parse and validate rows, mark possible repeats while
/// the filter is sharp, hand rows over in chunks; stop at a record
/// boundary once `stop` is set.
fn read_chunks(
    mut reader: ContactReader,
    source: String,
    salt: &str,
    campaign: &CampaignName,
    default_country: Country,
    stop: &AtomicBool,
    tx: &mpsc::SyncSender<Result<ReadChunk, ContactsError>>,
) -> Ended {
    let mut seen = SeenKeys::new();
    let mut ended = Ended::default();
    loop {
        let mut rows = Vec::with_capacity(CHUNK_ROWS);
        let mut failure = None;
        while rows.len() < CHUNK_ROWS {
            if stop.load(Ordering::Relaxed) {
                ended.interrupted = true;
                break;
            }
            match reader.next_row() {
                Ok(Some(Row::Fields(raw))) => {
                    let row = plan::contact_from_row(raw, salt, campaign, default_country);
                    rows.push(row.map(|contact| {
                        // Both keys go in, whatever the first answers.
                        let suspect = seen.is_sharp()
                            && (seen.insert(0, contact.phone.digits())
                                | seen.insert(1, contact.order_id.as_str()));
                        ReadContact { contact, suspect }
                    }))
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
            let chunk = ReadChunk {
                rows,
                checkpoint: Checkpoint {
                    source: Some(source.clone()),
                    fingerprint: Some(resume.fingerprint),
                    offset: resume.offset,
                    line: resume.line,
                },
                repeats_marked: seen.is_sharp(),
            };
            if tx.send(Ok(chunk)).is_err() {
                return ended;
            }
        }
        if let Some(e) = failure {
            let _ = tx.send(Err(e));
            return ended;
        }
        if !full || ended.interrupted {
            ended.waiting = reader.left_for_later().map(|(line, why)| {
                format!("{source}: line {line}: {why}; it is left for a later run")
            });
            return ended;
        }
    }
}

/// Where staged contacts go: batches of one country and one set of time
/// zones.
struct Placing {
    batcher: Batcher,
    zoning: Zoning,
}

/// Stages one chunk, placing its contacts in batches (duplicates, found
/// when planning, leave them again).
fn stage(
    writer: &mut IngestWriter,
    chunk: ReadChunk,
    placing: &mut Placing,
    report: &mut IngestReport,
    now_ms: i64,
) -> Result<(), LedgerError> {
    let mut rows = Vec::with_capacity(chunk.rows.len());
    let mut new_batches = Vec::new();
    for row in &chunk.rows {
        match row {
            Ok(ReadContact { contact, suspect }) => {
                let zones = placing
                    .zoning
                    .key(&contact.phone, contact.timezone.as_deref());
                let placement = placing.batcher.place(contact.phone.country(), zones);
                if placement.opens {
                    new_batches.push((
                        placement.seq,
                        contact.phone.country(),
                        placing.zoning.names(zones).to_owned(),
                    ));
                }
                rows.push(StagedRow {
                    line: contact.line,
                    order_id: Some(contact.order_id.as_str()),
                    phone: contact.phone.digits(),
                    country: Some(contact.phone.country_iso()),
                    other: &contact.other,
                    batch_seq: Some(placement.seq),
                    invalid: None,
                    suspect: *suspect,
                });
            }
            Err(invalid) => {
                report.invalid += 1;
                rows.push(StagedRow {
                    line: invalid.line,
                    order_id: invalid.order_id.as_deref(),
                    phone: &invalid.phone,
                    country: None,
                    other: "",
                    batch_seq: None,
                    invalid: Some(&invalid.reason),
                    suspect: false,
                });
            }
        }
    }
    report.rows += rows.len() as u64;
    let staged = StagedChunk {
        rows: &rows,
        new_batches: &new_batches,
        rows_read: rows.len() as u64,
        checkpoint: &chunk.checkpoint,
        repeats_marked: chunk.repeats_marked,
    };
    writer.stage_chunk(&staged, now_ms)
}
