//! Streaming reader of contact files (CSV with a header row, optionally
//! gzip-compressed), yielding one `Row` at a time with its line number.
//!
//! It holds one record in memory (at most [`MAX_RECORD_BYTES`] of it), never
//! the file. It reads only what is complete: a plain file up to its last
//! line break while it may still be written to, a gzip file only once its
//! checksum is verified whole. A checkpoint carries a CRC of every byte
//! before it, so a file changed in the part already read is noticed. It
//! does not validate phone numbers (that is `phone`) nor decide duplicates
//! (that is ingest).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::job::Columns;

/// A record longer than this is an invalid row, read past in bounded
/// memory.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// A plain file unchanged for this long is complete: its last line is read
/// even without a line break at its end.
pub const SETTLED_AFTER: Duration = Duration::from_secs(60);

/// One data record of a contact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A record with the right number of fields, as text.
    Fields(RawContact),
    /// A record that could not be read as text fields (bad UTF-8, wrong
    /// number of fields, too long, a quote never closed); it is reported,
    /// not fatal.
    Unreadable { line: u64, reason: String },
}

/// The fields of one record that matter, before any validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawContact {
    /// Line in the file where the record starts (1 is the header).
    pub line: u64,
    pub phone: String,
    /// The row's country column, when the job names one and it is not blank.
    pub country: Option<String>,
    /// The row's order id column, when the job names one and it is not blank.
    pub order_id: Option<String>,
    /// The row's time zone column, when the job names one and it is not blank.
    pub timezone: Option<String>,
    /// The job's `other` columns packed as compact JSON, or `""` when none.
    pub other: String,
}

/// Where reading stopped: the checkpoint ingest stores, and resumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Byte offset (in the decompressed data) where the next record starts.
    pub offset: u64,
    /// The line number that record starts on.
    pub line: u64,
    /// A digest of every byte before `offset` (`crc32:<hex>`; older ledgers
    /// hold `<n>:<md5>` of the first 64 KiB, still understood).
    pub fingerprint: String,
}

/// A failure that stops reading the file (a bad row is not one of them).
#[derive(Debug, thiserror::Error)]
pub enum ContactsError {
    #[error("{path}: cannot open the contact file: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path}: the contact file is empty: it needs a header row")]
    Empty { path: PathBuf },
    #[error("{path}: line 1: missing column {column:?} (the header has: {header})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        header: String,
    },
    #[error("{path}: line 1: the header row is not {encoding} text (set [columns] encoding, e.g. \"windows-1252\")")]
    HeaderNotText {
        path: PathBuf,
        encoding: &'static str,
    },
    #[error("{path}: the file is UTF-16 text (what Excel saves as \"Unicode Text\"), which is not read: save it as \"CSV UTF-8\" and run again")]
    Utf16 { path: PathBuf },
    #[error("{path}: line {line}: {source}")]
    Read {
        path: PathBuf,
        line: u64,
        source: csv::Error,
    },
    #[error("{path}: the file changed in the part already read (before line {line}): nxcampaign reads a contact file once, so it stops rather than guess which rows are new; put the file back as it was and append new contacts at its end, or put them in a new file and point the job's `contacts` at it")]
    Changed { path: PathBuf, line: u64 },
    #[error("{path}: the gzip data is corrupt ({source}); nothing was read from it: replace it with a good copy")]
    Corrupt { path: PathBuf, source: io::Error },
    /// Nothing can be read yet: the file is still being written.
    #[error("{path}: {why}; nothing was read from it this time")]
    NotReady { path: PathBuf, why: &'static str },
}

/// Reads rows from a contact file, starting at the data or at a checkpoint.
pub struct ContactReader {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    layout: Layout,
    /// The header row's fields, as text.
    header: Vec<String>,
    record: csv::ByteRecord,
    /// Where the reader's own positions start in the file.
    base: Place,
    /// The bytes the reader took from the file, not yet part of a record
    /// read, and the digest of everything before them.
    feed: Arc<Mutex<Feed>>,
    /// The end of what may be read now (absolute offset).
    data_end: u64,
    /// Whether `data_end` is the end of the file as it is now.
    complete: bool,
    /// Whether the file is finished: a gzip file verified whole, or a plain
    /// one unchanged for [`SETTLED_AFTER`]. A quote still open at its end
    /// is then never closed.
    settled: bool,
    /// After the last record returned: where the next one starts.
    boundary: Place,
    /// A last record left for a later run, with why.
    left: Option<(u64, &'static str)>,
}

impl ContactReader {
    /// Opens `path`, reads its header and checks that `columns` exist; then
    /// positions the reader at `resume` (or right after the header),
    /// checking that nothing before it changed.
    pub fn open(
        path: &Path,
        columns: &Columns,
        resume: Option<&Resume>,
    ) -> Result<ContactReader, ContactsError> {
        let extent = Extent::measure(path)?;
        if is_utf16(path)? {
            return Err(ContactsError::Utf16 {
                path: path.to_owned(),
            });
        }
        let delimiter = match columns.delimiter {
            Some(delimiter) => delimiter,
            None => detect_delimiter(path)?,
        };
        let mut header_reader = csv_reader(Box::new(open_data(path)?.take(extent.end)), delimiter);
        let mut header = csv::ByteRecord::new();
        let has_header = header_reader
            .read_byte_record(&mut header)
            .map_err(|source| ContactsError::Read {
                path: path.to_owned(),
                line: 1,
                source,
            })?;
        if !has_header {
            return Err(if extent.complete {
                ContactsError::Empty {
                    path: path.to_owned(),
                }
            } else {
                ContactsError::NotReady {
                    path: path.to_owned(),
                    why: "its header row has no line break yet and the file changed in the last minute (it may still be being written)",
                }
            });
        }
        let layout = Layout::new(path, &header, columns)?;
        let data_start = (
            header_reader.position().byte(),
            header_reader.position().line(),
        );
        drop(header_reader);
        if extent.complete && data_start.0 >= extent.end && resume.is_none() {
            tracing::warn!(
                "{}: the contact file has a header row and no contacts",
                path.display()
            );
        }

        // Read (and digest) everything before where reading starts: the
        // digest proves the part already read is unchanged.
        let (start, start_line) = resume.map_or(data_start, |r| (r.offset, r.line));
        let mut data = BufReader::with_capacity(256 * 1024, open_data(path)?);
        let mut hasher = crc32fast::Hasher::new();
        let mut legacy = Vec::new();
        let mut left = start;
        while left > 0 {
            let chunk = data.fill_buf().map_err(|source| open_error(path, source))?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min(left as usize);
            hasher.update(&chunk[..n]);
            let room = (LEGACY_FINGERPRINT_BYTES as usize).saturating_sub(legacy.len());
            legacy.extend_from_slice(&chunk[..n.min(room)]);
            data.consume(n);
            left -= n as u64;
        }
        if let Some(resume) = resume {
            let digest = format!("crc32:{:08x}", hasher.clone().finalize());
            let same = left == 0
                && (resume.fingerprint == digest
                    || resume.fingerprint == legacy_fingerprint(&legacy));
            if !same {
                return Err(ContactsError::Changed {
                    path: path.to_owned(),
                    line: resume.line,
                });
            }
        }
        let mut base = Place {
            offset: start,
            line: start_line,
        };
        // A record ending in CRLF leaves the reader between `\r` and `\n`:
        // step over that `\n` so that line numbers stay true.
        let next = data.fill_buf().map_err(|source| open_error(path, source))?;
        if base.offset < extent.end && next.first() == Some(&b'\n') {
            hasher.update(b"\n");
            data.consume(1);
            base.offset += 1;
            base.line += 1;
        }
        let feed = Arc::new(Mutex::new(Feed {
            pending: VecDeque::new(),
            pending_start: base.offset,
            hasher,
            record_start_out: 0,
            out: 0,
            adjust: 0,
            overlong: false,
            carry: Vec::new(),
        }));
        let tee = Tee {
            inner: data.take(extent.end.saturating_sub(base.offset)),
            feed: Arc::clone(&feed),
        };
        Ok(ContactReader {
            path: path.to_owned(),
            reader: csv_reader(Box::new(tee), delimiter),
            layout,
            header: lossy_fields(&header, columns.encoding),
            record: csv::ByteRecord::new(),
            boundary: base,
            base,
            feed,
            data_end: extent.end,
            complete: extent.complete,
            settled: extent.settled,
            left: None,
        })
    }

    /// The next row, `None` at the end of what can be read now.
    pub fn next_row(&mut self) -> Result<Option<Row>, ContactsError> {
        self.lock().record_start_out = self.reader.position().byte();
        let read = self.reader.read_byte_record(&mut self.record);
        let line = self.record_line();
        match read {
            Ok(false) => {
                if !self.complete && self.left.is_none() {
                    self.left = Some((
                        self.boundary.line,
                        "its line has no line break yet and the file changed in the last minute (it may still be being written)",
                    ));
                }
                return Ok(None);
            }
            Ok(true) => {}
            Err(source) => {
                return Err(ContactsError::Read {
                    path: self.path.clone(),
                    line,
                    source,
                })
            }
        }
        let mut feed = lock(&self.feed);
        let end = self.base.offset as i64 + self.reader.position().byte() as i64 + feed.adjust;
        let end = end as u64;
        let overlong = std::mem::take(&mut feed.overlong);
        if !overlong && end == self.data_end && feed.quote_open_before(end) {
            if !self.settled {
                // A record whose quote is still open where the readable
                // data ends: the rest of it may not be written yet.
                drop(feed);
                self.left = Some((
                    line,
                    "its record is not complete yet (a quote is still open)",
                ));
                return Ok(None);
            }
            feed.digest_to(end);
            drop(feed);
            self.boundary = self.place_after(end);
            return Ok(Some(Row::Unreadable {
                line,
                reason: format!("quote opened on line {line} never closed"),
            }));
        }
        feed.digest_to(end);
        drop(feed);
        self.boundary = self.place_after(end);
        if overlong {
            return Ok(Some(Row::Unreadable {
                line,
                reason: format!(
                    "the record is longer than {MAX_RECORD_BYTES} bytes (read past it)"
                ),
            }));
        }
        Ok(Some(self.layout.row(line, &self.record)))
    }

    /// The header row's fields, as text (bytes that are not UTF-8 become
    /// U+FFFD).
    /// Where reading starts and where what may be read now ends, in bytes
    /// of (decompressed) data.
    pub fn span(&self) -> (u64, u64) {
        (self.boundary.offset, self.data_end)
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The fields of the record [`ContactReader::next_row`] returned last,
    /// as the file has them (bytes that are not UTF-8 become U+FFFD): what
    /// a rejects file gives back to the person who made the file.
    pub fn last_fields(&self) -> Vec<String> {
        lossy_fields(&self.record, self.layout.encoding)
    }

    /// Where the record after the last one returned starts, with a digest
    /// of everything before it: the checkpoint to resume from.
    pub fn resume_point(&self) -> Resume {
        let feed = lock(&self.feed);
        Resume {
            offset: self.boundary.offset,
            line: self.boundary.line,
            fingerprint: format!("crc32:{:08x}", feed.hasher.clone().finalize()),
        }
    }

    /// What was left unread for a later run, once the reader has ended:
    /// the line it starts on, and why.
    pub fn left_for_later(&self) -> Option<(u64, &'static str)> {
        self.left
    }

    fn lock(&self) -> MutexGuard<'_, Feed> {
        lock(&self.feed)
    }

    /// The place after the record just read, which ends at `end`.
    fn place_after(&self, end: u64) -> Place {
        Place {
            offset: end,
            line: self.base.line + self.reader.position().line() - 1,
        }
    }

    fn record_line(&self) -> u64 {
        let line = self
            .record
            .position()
            .map(|p| p.line())
            .unwrap_or_else(|| self.reader.position().line());
        self.base.line + line - 1
    }
}

fn lock(feed: &Mutex<Feed>) -> MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(|p| p.into_inner())
}

/// A record's fields as text, whatever their bytes.
/// A record's fields as text, without the `\r` a CRLF line leaves on its
/// last field (only `\n` ends a record here).
fn lossy_fields(record: &csv::ByteRecord, encoding: &'static encoding_rs::Encoding) -> Vec<String> {
    let last = record.len().saturating_sub(1);
    record
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let field = match field.strip_suffix(b"\r") {
                Some(stripped) if index == last => stripped,
                _ => field,
            };
            encoding.decode_without_bom_handling(field).0.into_owned()
        })
        .collect()
}

/// `bytes` as text in `encoding`; `None` for bytes it does not allow. UTF-8
/// is borrowed as it is.
fn decode<'a>(
    encoding: &'static encoding_rs::Encoding,
    bytes: &'a [u8],
) -> Option<std::borrow::Cow<'a, str>> {
    if encoding == encoding_rs::UTF_8 {
        return std::str::from_utf8(bytes)
            .ok()
            .map(std::borrow::Cow::Borrowed);
    }
    encoding.decode_without_bom_handling_and_without_replacement(bytes)
}

fn open_error(path: &Path, source: io::Error) -> ContactsError {
    if is_gzip(path) {
        ContactsError::Corrupt {
            path: path.to_owned(),
            source,
        }
    } else {
        ContactsError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

/// A place in the file: a byte offset (decompressed) and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    offset: u64,
    line: u64,
}

/// How much of a file may be read now.
struct Extent {
    /// Absolute offset (decompressed) where readable data ends.
    end: u64,
    /// Whether that is the end of the file as it is now.
    complete: bool,
    /// Whether the file is finished (see `ContactReader::settled`).
    settled: bool,
}

impl Extent {
    /// A gzip file is readable only whole, once its checksum is verified; a
    /// plain file up to its last line break, or whole once it has not
    /// changed for [`SETTLED_AFTER`].
    fn measure(path: &Path) -> Result<Extent, ContactsError> {
        if is_gzip(path) {
            let mut data = open_data(path)?;
            return match io::copy(&mut data, &mut io::sink()) {
                Ok(end) => Ok(Extent {
                    end,
                    complete: true,
                    settled: true,
                }),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Err(ContactsError::NotReady {
                        path: path.to_owned(),
                        why: "the gzip file ends early (it may still be being written)",
                    })
                }
                Err(source) => Err(ContactsError::Corrupt {
                    path: path.to_owned(),
                    source,
                }),
            };
        }
        let mut file = File::open(path).map_err(|source| open_error(path, source))?;
        let meta = file.metadata().map_err(|source| open_error(path, source))?;
        let len = meta.len();
        let settled = meta
            .modified()
            .ok()
            .and_then(crate::clock::age_of)
            .is_some_and(|age| age >= SETTLED_AFTER);
        if settled || len == 0 {
            return Ok(Extent {
                end: len,
                complete: true,
                settled,
            });
        }
        // Back from the end to the last line break.
        let mut end = len;
        let mut block = vec![0; 64 * 1024];
        while end > 0 {
            let from = end.saturating_sub(block.len() as u64);
            let n = (end - from) as usize;
            file.seek(SeekFrom::Start(from))
                .and_then(|_| file.read_exact(&mut block[..n]))
                .map_err(|source| open_error(path, source))?;
            if let Some(at) = block[..n].iter().rposition(|b| *b == b'\n') {
                let end = from + at as u64 + 1;
                return Ok(Extent {
                    end,
                    complete: end == len,
                    settled: false,
                });
            }
            end = from;
        }
        Ok(Extent {
            end: 0,
            complete: false,
            settled: false,
        })
    }
}

/// What the reader took from the file and has not yet digested.
struct Feed {
    /// Bytes read from the file, from `pending_start` on.
    pending: VecDeque<u8>,
    pending_start: u64,
    /// The CRC of every byte before `pending_start`.
    hasher: crc32fast::Hasher,
    /// Where (in the CSV parser's positions) the record being read began.
    record_start_out: u64,
    /// Bytes handed to the parser so far.
    out: u64,
    /// Absolute offset minus parser position, after skipping past records
    /// too long to hold.
    adjust: i64,
    /// Whether the record being read was too long and was skipped.
    overlong: bool,
    /// Real bytes read past a skipped record, to hand over next.
    carry: Vec<u8>,
}

impl Feed {
    /// Digests the bytes before absolute offset `end`.
    fn digest_to(&mut self, end: u64) {
        let n = end
            .saturating_sub(self.pending_start)
            .min(self.pending.len() as u64) as usize;
        let (a, b) = self.pending.as_slices();
        let first = n.min(a.len());
        self.hasher.update(&a[..first]);
        self.hasher.update(&b[..n - first]);
        self.pending.drain(..n);
        self.pending_start += n as u64;
    }

    /// Whether the record from `pending_start` to `end` leaves a quoted
    /// field open.
    fn quote_open_before(&self, end: u64) -> bool {
        let n = end.saturating_sub(self.pending_start) as usize;
        quote_state(self.pending.iter().take(n).copied()) == QuoteState::InQuotes
    }
}

/// Where a CSV parser stands after some bytes of a record, as far as quotes
/// go (CSV's rules: a quote opens a field only at its start; inside one, a
/// doubled quote is a quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    /// Not in a quoted field: a line break ends the record.
    Outside,
    /// In a quoted field: a line break is part of it.
    InQuotes,
    /// Right after a quote in a quoted field (closing it, or the first of a
    /// doubled quote): a line break ends the record, a quote does not.
    AfterQuote,
}

fn quote_state(bytes: impl IntoIterator<Item = u8>) -> QuoteState {
    let mut state = QuoteState::Outside;
    let mut at_start = true;
    for b in bytes {
        state = match state {
            QuoteState::InQuotes if b == b'"' => QuoteState::AfterQuote,
            QuoteState::InQuotes => QuoteState::InQuotes,
            QuoteState::AfterQuote if b == b'"' => QuoteState::InQuotes,
            QuoteState::Outside if b == b'"' && at_start => QuoteState::InQuotes,
            QuoteState::AfterQuote | QuoteState::Outside => QuoteState::Outside,
        };
        at_start = state == QuoteState::Outside && (b == b',' || b == b'\n');
    }
    state
}

/// Hands the file's bytes to the CSV parser, keeping them for the digest,
/// and skips to the next line break when one record grows past
/// [`MAX_RECORD_BYTES`], ending it for the parser there.
struct Tee<R> {
    inner: R,
    feed: Arc<Mutex<Feed>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut feed = lock(&self.feed);
        if !feed.carry.is_empty() {
            let n = feed.carry.len().min(buf.len());
            buf[..n].copy_from_slice(&feed.carry[..n]);
            feed.carry.drain(..n);
            feed.pending.extend(&buf[..n]);
            feed.out += n as u64;
            return Ok(n);
        }
        if feed.out - feed.record_start_out > MAX_RECORD_BYTES && !feed.overlong && buf.len() >= 2 {
            // Digest what was taken, then skip to the next line break.
            let state = quote_state(feed.pending.iter().copied());
            let end = feed.pending_start + feed.pending.len() as u64;
            feed.digest_to(end);
            let mut skipped = 0u64;
            let mut chunk = vec![0; 64 * 1024];
            loop {
                let n = self.inner.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                match chunk[..n].iter().position(|b| *b == b'\n') {
                    Some(at) => {
                        feed.hasher.update(&chunk[..=at]);
                        skipped += at as u64 + 1;
                        feed.carry.extend_from_slice(&chunk[at + 1..n]);
                        break;
                    }
                    None => {
                        feed.hasher.update(&chunk[..n]);
                        skipped += n as u64;
                    }
                }
            }
            feed.pending_start += skipped;
            // End the record for the parser, wherever it stands in it.
            let end: &[u8] = match state {
                QuoteState::InQuotes => b"\"\n",
                QuoteState::Outside | QuoteState::AfterQuote => b"\n",
            };
            buf[..end.len()].copy_from_slice(end);
            feed.adjust += skipped as i64 - end.len() as i64;
            feed.out += end.len() as u64;
            feed.overlong = true;
            return Ok(end.len());
        }
        drop(feed);
        let n = self.inner.read(buf)?;
        let mut feed = lock(&self.feed);
        feed.pending.extend(&buf[..n]);
        feed.out += n as u64;
        Ok(n)
    }
}

/// The digest older ledgers stored: MD5 of the first (at most) 64 KiB
/// before the checkpoint, with its length.
fn legacy_fingerprint(head: &[u8]) -> String {
    format!("{}:{}", head.len(), hex::encode(Md5::digest(head)))
}

const LEGACY_FINGERPRINT_BYTES: u64 = 64 * 1024;

/// Column positions of one file's header.
#[derive(Debug, Clone)]
struct Layout {
    /// The file's text encoding.
    encoding: &'static encoding_rs::Encoding,
    width: usize,
    phone: usize,
    country: Option<usize>,
    order_id: Option<usize>,
    timezone: Option<usize>,
    /// The `other` columns as JSON keys (`"name":`) and field indexes, in
    /// key order, each name once (the last column named so wins), as a
    /// JSON object would hold them.
    other: Vec<(String, usize)>,
}

impl Layout {
    fn new(
        path: &Path,
        header: &csv::ByteRecord,
        columns: &Columns,
    ) -> Result<Layout, ContactsError> {
        let encoding = columns.encoding;
        let names: Vec<String> = header
            .iter()
            .map(|field| decode(encoding, field).map(|s| s.trim().to_owned()))
            .collect::<Option<_>>()
            .ok_or_else(|| ContactsError::HeaderNotText {
                path: path.to_owned(),
                encoding: encoding.name(),
            })?;
        let find = |column: &str| -> Result<usize, ContactsError> {
            names
                .iter()
                .position(|name| name == column.trim())
                .ok_or_else(|| ContactsError::MissingColumn {
                    path: path.to_owned(),
                    column: column.to_owned(),
                    header: names.join(", "),
                })
        };
        Ok(Layout {
            encoding,
            width: names.len(),
            phone: find(&columns.phone)?,
            country: columns.country.as_deref().map(find).transpose()?,
            order_id: columns.order_id.as_deref().map(find).transpose()?,
            timezone: columns.timezone.as_deref().map(find).transpose()?,
            other: {
                let mut other = std::collections::BTreeMap::new();
                for name in &columns.other {
                    other.insert(name.as_str(), find(name)?);
                }
                other
                    .into_iter()
                    .map(|(name, index)| (format!("{}:", serde_json::Value::from(name)), index))
                    .collect()
            },
        })
    }

    fn row(&self, line: u64, record: &csv::ByteRecord) -> Row {
        if record.len() != self.width {
            return Row::Unreadable {
                line,
                reason: format!("has {} fields, the header has {}", record.len(), self.width),
            };
        }
        let field = |index: usize| -> Result<std::borrow::Cow<'_, str>, String> {
            let bytes = &record[index];
            let bytes = match bytes.strip_suffix(b"\r") {
                Some(stripped) if index + 1 == record.len() => stripped,
                _ => bytes,
            };
            decode(self.encoding, bytes)
                .ok_or_else(|| format!("column {} is not {} text", index + 1, self.encoding.name()))
        };
        let optional = |index: Option<usize>| -> Result<Option<String>, String> {
            Ok(index
                .map(field)
                .transpose()?
                .map(|text| text.trim().to_owned())
                .filter(|s| !s.is_empty()))
        };
        let parsed = (|| -> Result<RawContact, String> {
            let other = if self.other.is_empty() {
                String::new()
            } else {
                let mut json = Vec::with_capacity(64);
                for (key, index) in &self.other {
                    json.push(if json.is_empty() { b'{' } else { b',' });
                    json.extend_from_slice(key.as_bytes());
                    serde_json::to_writer(&mut json, &*field(*index)?)
                        .expect("a string serializes into memory");
                }
                json.push(b'}');
                String::from_utf8(json).expect("JSON of strings is UTF-8")
            };
            Ok(RawContact {
                line,
                phone: field(self.phone)?.trim().to_owned(),
                country: optional(self.country)?,
                order_id: optional(self.order_id)?,
                timezone: optional(self.timezone)?,
                other,
            })
        })();
        match parsed {
            Ok(contact) => Row::Fields(contact),
            Err(reason) => Row::Unreadable { line, reason },
        }
    }
}

fn csv_reader(inner: Box<dyn Read + Send>, delimiter: u8) -> csv::Reader<Box<dyn Read + Send>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .flexible(true)
        // Only `\n` ends a record, so that line numbers count every line
        // (with CRLF, csv would otherwise start each record at the `\n`);
        // the `\r` that CRLF leaves on the last field is dropped below.
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(256 * 1024)
        .from_reader(inner)
}

/// Whether the file's data starts with a UTF-16 byte order mark.
fn is_utf16(path: &Path) -> Result<bool, ContactsError> {
    let mut bom = [0u8; 2];
    let read = open_data(path)?.read_exact(&mut bom);
    Ok(read.is_ok() && (bom == [0xff, 0xfe] || bom == [0xfe, 0xff]))
}

/// Whether the file is gzip data, by its first two bytes (its magic
/// number), whatever its name says.
fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

/// The field separator of the file's header line, when the job does not
/// say: the most frequent of `,` `;` tab `|` outside quotes (`,` when
/// none appears, or on a tie with it).
fn detect_delimiter(path: &Path) -> Result<u8, ContactsError> {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let mut data = BufReader::new(open_data(path)?.take(MAX_RECORD_BYTES));
    let mut line = Vec::new();
    data.read_until(b'\n', &mut line)
        .map_err(|source| open_error(path, source))?;
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for byte in line {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(at) = CANDIDATES.iter().position(|c| *c == byte) {
                counts[at] += 1;
            }
        }
    }
    let best = (0..CANDIDATES.len())
        .max_by_key(|at| (counts[*at], std::cmp::Reverse(*at)))
        .filter(|at| counts[*at] > 0)
        .unwrap_or(0);
    Ok(CANDIDATES[best])
}

/// The file's (decompressed) data from its start.
fn open_data(path: &Path) -> Result<Box<dyn Read + Send>, ContactsError> {
    let file = File::open(path).map_err(|source| ContactsError::Open {
        path: path.to_owned(),
        source,
    })?;
    Ok(if is_gzip(path) {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    } else {
        Box::new(file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn columns() -> Columns {
        Columns {
            delimiter: None,
            phone: "phone".into(),
            country: Some("country".into()),
            order_id: None,
            timezone: None,
            other: vec!["name".into()],
            encoding: encoding_rs::UTF_8,
        }
    }

    #[test]
    fn a_windows_1252_file_is_read_in_its_encoding_and_utf16_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        // "José Müller" as Windows-1252 (and Latin-1) write it.
        let path = write(
            dir.path(),
            "latin.csv",
            b"name,phone,country\nJos\xe9 M\xfcller,+852 3575 7581,HK\n",
        );
        let as_utf8 = ContactReader::open(&path, &columns(), None)
            .unwrap()
            .next_row()
            .unwrap();
        assert!(
            matches!(&as_utf8, Some(Row::Unreadable { reason, .. }) if reason.contains("not UTF-8 text")),
            "{as_utf8:?}"
        );
        let latin = Columns {
            encoding: encoding_rs::WINDOWS_1252,
            ..columns()
        };
        let mut reader = ContactReader::open(&path, &latin, None).unwrap();
        match reader.next_row().unwrap() {
            Some(Row::Fields(contact)) => {
                assert_eq!(contact.other, "{\"name\":\"José Müller\"}");
                assert_eq!(contact.phone, "+852 3575 7581");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.last_fields()[0], "José Müller");

        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("name,phone\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let path = write(dir.path(), "unicode.txt", &utf16);
        let refused = ContactReader::open(&path, &columns(), None).err().unwrap();
        assert!(refused.to_string().contains("UTF-16"), "{refused}");
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn read_all(path: &Path, resume: Option<&Resume>) -> Vec<Row> {
        let mut reader = ContactReader::open(path, &columns(), resume).unwrap();
        std::iter::from_fn(|| reader.next_row().unwrap()).collect()
    }

    /// Makes `path` look unchanged for longer than [`SETTLED_AFTER`].
    fn settle(path: &Path) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::SystemTime::now() - SETTLED_AFTER * 2)
            .unwrap();
    }

    fn contact(line: u64, phone: &str, country: Option<&str>, name: &str) -> Row {
        Row::Fields(RawContact {
            line,
            phone: phone.into(),
            country: country.map(Into::into),
            order_id: None,
            timezone: None,
            other: serde_json::json!({ "name": name }).to_string(),
        })
    }

    #[test]
    fn rows_carry_their_line_numbers_through_quoted_newlines_crlf_and_a_bom() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.csv",
            b"\xef\xbb\xbfname,phone,country\r\n\"Lee, Ann\",+852 3575 7581,HK\r\n\"two\nlines\",35757582,\r\n",
        );
        assert_eq!(
            read_all(&path, None),
            vec![
                contact(2, "+852 3575 7581", Some("HK"), "Lee, Ann"),
                contact(3, "35757582", None, "two\nlines"),
            ]
        );
    }

    #[test]
    fn ragged_and_non_utf8_rows_are_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.csv",
            b"name,phone,country\na,1,HK,extra\nb\xff,2,HK\nc,3,HK\n",
        );
        let rows = read_all(&path, None);
        assert_eq!(
            rows[0],
            Row::Unreadable {
                line: 2,
                reason: "has 4 fields, the header has 3".into()
            }
        );
        assert_eq!(
            rows[1],
            Row::Unreadable {
                line: 3,
                reason: "column 1 is not UTF-8 text".into()
            }
        );
        assert_eq!(rows[2], contact(4, "3", Some("HK"), "c"));
    }

    #[test]
    fn a_missing_column_is_named_with_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.csv", b"name,tel\na,1\n");
        let err = ContactReader::open(&path, &columns(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.ends_with("c.csv: line 1: missing column \"phone\" (the header has: name, tel)"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.csv", b"");
        let err = ContactReader::open(&path, &columns(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn resuming_at_a_checkpoint_reads_only_the_rest_with_true_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.csv",
            b"name,phone,country\na,1,HK\n\"b\nb\",2,HK\nc,3,HK\n",
        );
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        reader.next_row().unwrap();
        reader.next_row().unwrap();
        let checkpoint = reader.resume_point();
        assert_eq!(checkpoint.line, 5);
        assert_eq!(
            read_all(&path, Some(&checkpoint)),
            vec![contact(5, "3", Some("HK"), "c")]
        );
    }

    #[test]
    fn a_checkpoint_survives_appending_but_not_a_change_anywhere_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let head = "name,phone,country\n".to_owned() + &"a,1,HK\n".repeat(20_000);
        let path = write(dir.path(), "c.csv", head.as_bytes());
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        while reader.next_row().unwrap().is_some() {}
        let checkpoint = reader.resume_point();
        assert!(
            checkpoint.fingerprint.starts_with("crc32:"),
            "{checkpoint:?}"
        );

        write(dir.path(), "c.csv", (head.clone() + "b,2,HK\n").as_bytes());
        assert_eq!(read_all(&path, Some(&checkpoint)).len(), 1, "appended");
        // The same first 64 KiB, a changed row far after them.
        let changed = head.replacen("a,1,HK\n", "a,1,GB\n", 19_000) + "b,2,HK\n";
        write(dir.path(), "c.csv", changed.as_bytes());
        let err = ContactReader::open(&path, &columns(), Some(&checkpoint))
            .err()
            .unwrap();
        assert!(
            matches!(err, ContactsError::Changed { line: 20_002, .. }),
            "{err}"
        );
        write(dir.path(), "c.csv", b"name,phone,country\n");
        let err = ContactReader::open(&path, &columns(), Some(&checkpoint))
            .err()
            .unwrap();
        assert!(
            matches!(err, ContactsError::Changed { .. }),
            "shorter: {err}"
        );
    }

    #[test]
    fn a_checkpoint_of_an_older_ledger_is_still_understood() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.csv", b"name,phone,country\na,1,HK\nb,2,HK\n");
        let old = Resume {
            offset: 26,
            line: 3,
            fingerprint: legacy_fingerprint(b"name,phone,country\na,1,HK\n"),
        };
        assert_eq!(
            read_all(&path, Some(&old)),
            vec![contact(3, "2", Some("HK"), "b")]
        );
    }

    #[test]
    fn a_last_line_without_a_line_break_waits_until_the_file_settles() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.csv", b"name,phone,country\na,1,HK\nb,2");
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        assert_eq!(
            reader.next_row().unwrap(),
            Some(contact(2, "1", Some("HK"), "a"))
        );
        assert_eq!(reader.next_row().unwrap(), None);
        assert_eq!(reader.left_for_later().map(|(line, _)| line), Some(3));
        let checkpoint = reader.resume_point();
        assert_eq!((checkpoint.offset, checkpoint.line), (26, 3));

        // Completed: read whole, from the checkpoint.
        write(dir.path(), "c.csv", b"name,phone,country\na,1,HK\nb,2,HK\n");
        assert_eq!(
            read_all(&path, Some(&checkpoint)),
            vec![contact(3, "2", Some("HK"), "b")]
        );
        // Or left as it was for a minute: then it is the file's last line.
        write(dir.path(), "c.csv", b"name,phone,country\na,1,HK\nb,2,HK");
        settle(&path);
        assert_eq!(
            read_all(&path, Some(&checkpoint)),
            vec![contact(3, "2", Some("HK"), "b")]
        );
    }

    #[test]
    fn a_quote_never_closed_is_an_invalid_row_or_waits_while_the_file_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"name,phone,country\na,1,HK\n\"b,2,HK\nc,3,HK\n";
        let path = write(dir.path(), "c.csv", text);
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        assert!(reader.next_row().unwrap().is_some());
        assert_eq!(
            reader.next_row().unwrap(),
            None,
            "the quote may close later"
        );
        assert_eq!(reader.left_for_later().map(|(line, _)| line), Some(3));
        settle(&path);
        assert_eq!(
            read_all(&path, None)[1],
            Row::Unreadable {
                line: 3,
                reason: "quote opened on line 3 never closed".into()
            }
        );
    }

    #[test]
    fn the_quote_state_follows_csv() {
        let check = |bytes: &[u8], expected: QuoteState| {
            assert_eq!(
                quote_state(bytes.iter().copied()),
                expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            )
        };
        check(b"a,b", QuoteState::Outside);
        check(b"a,\"b", QuoteState::InQuotes);
        check(b"a,\"b\"", QuoteState::AfterQuote);
        check(b"a,\"b\"\"", QuoteState::InQuotes);
        check(b"a,\"b\"\"c\",d", QuoteState::Outside);
        check(b"ab\"c", QuoteState::Outside);
        check(b"\"two\nlines", QuoteState::InQuotes);
    }

    #[test]
    fn a_record_over_the_limit_ends_where_its_line_does_whatever_its_quotes() {
        // The limit falls inside a quoted field, right after a quote, and in
        // an unquoted field: each time the next row is read as it is.
        let limit = MAX_RECORD_BYTES as usize;
        for filler in [
            vec![b'x'; 2 * limit],
            [b"\"".as_slice(), &vec![b'x'; 2 * limit]].concat(),
            // Doubled quotes alternate "in quotes" and "after a quote": one
            // of these two meets the limit right after a quote, however
            // the reads fall.
            [b"\"".as_slice(), &b"\"\"".repeat(limit)].concat(),
            [b"\"x".as_slice(), &b"\"\"".repeat(limit)].concat(),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut text = b"name,phone,country\n".to_vec();
            text.extend_from_slice(&filler);
            text.extend_from_slice(b",2,HK\nc,3,HK\n");
            let path = write(dir.path(), "c.csv", &text);
            let rows = read_all(&path, None);
            assert_eq!(rows.len(), 2, "{:?}", rows.first());
            assert!(matches!(&rows[0], Row::Unreadable { line: 2, .. }));
            assert_eq!(rows[1], contact(3, "3", Some("HK"), "c"));
        }
    }

    #[test]
    fn a_record_over_the_limit_is_an_invalid_row_read_past_in_bounded_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = b"name,phone,country\na,1,HK\n\"".to_vec();
        text.extend(std::iter::repeat_n(b'x', 3 * MAX_RECORD_BYTES as usize));
        text.extend_from_slice(b"\",2,HK\nc,3,HK\n");
        let path = write(dir.path(), "c.csv", &text);
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        let rows: Vec<Row> = std::iter::from_fn(|| reader.next_row().unwrap()).collect();
        assert_eq!(rows.len(), 3, "{:?}", &rows[..1]);
        assert!(
            matches!(&rows[1], Row::Unreadable { line: 3, reason } if reason.contains("longer than")),
            "{:?}",
            rows[1]
        );
        assert_eq!(rows[2], contact(4, "3", Some("HK"), "c"));
        let checkpoint = reader.resume_point();
        assert_eq!(checkpoint.offset, text.len() as u64);
        // The checkpoint's digest covers the skipped bytes too.
        text.extend_from_slice(b"d,4,HK\n");
        write(dir.path(), "c.csv", &text);
        assert_eq!(
            read_all(&path, Some(&checkpoint)),
            vec![contact(5, "4", Some("HK"), "d")]
        );
    }

    #[test]
    fn resuming_after_a_crlf_record_keeps_true_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.csv",
            b"name,phone,country\r\na,1,HK\r\nb,2,HK\r\nc,3,HK\r\n",
        );
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        reader.next_row().unwrap();
        let checkpoint = reader.resume_point();
        assert_eq!(
            read_all(&path, Some(&checkpoint)),
            vec![
                contact(3, "2", Some("HK"), "b"),
                contact(4, "3", Some("HK"), "c")
            ]
        );
    }

    #[test]
    fn gzip_files_are_read_and_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(b"name,phone,country\na,1,HK\nb,2,HK\n")
            .unwrap();
        let path = write(dir.path(), "c.csv.gz", &encoder.finish().unwrap());
        assert_eq!(read_all(&path, None).len(), 2);
        let mut reader = ContactReader::open(&path, &columns(), None).unwrap();
        reader.next_row().unwrap();
        let checkpoint = reader.resume_point();
        assert_eq!(
            read_all(&path, Some(&checkpoint)),
            vec![contact(3, "2", Some("HK"), "b")]
        );
    }

    #[test]
    fn a_gzip_file_is_read_only_once_whole_and_a_corrupt_one_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(b"name,phone,country\na,1,HK\nb,2,HK\n")
            .unwrap();
        let whole = encoder.finish().unwrap();
        let path = write(dir.path(), "c.csv.gz", &whole[..whole.len() - 6]);
        let err = ContactReader::open(&path, &columns(), None).err().unwrap();
        assert!(matches!(err, ContactsError::NotReady { .. }), "{err}");
        let mut corrupt = whole.clone();
        let crc_at = corrupt.len() - 8;
        corrupt[crc_at] ^= 0xff;
        write(dir.path(), "c.csv.gz", &corrupt);
        let err = ContactReader::open(&path, &columns(), None).err().unwrap();
        assert!(matches!(err, ContactsError::Corrupt { .. }), "{err}");
        write(dir.path(), "c.csv.gz", &whole);
        assert_eq!(read_all(&path, None).len(), 2);
    }
}
