//! Streaming reader of contact files (CSV with a header row, optionally
//! gzip-compressed), yielding one `Row` at a time with its line number.
//!
//! It holds one record in memory, never the file. It does not validate phone
//! numbers (that is `phone`) nor decide duplicates (that is ingest).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use crate::job::Columns;

/// One data record of a contact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A record with the right number of fields, as text.
    Fields(RawContact),
    /// A record that could not be read as text fields (bad UTF-8, wrong
    /// number of fields); it is reported, not fatal.
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
    /// The job's `other` columns packed as compact JSON, or `""` when none.
    pub other: String,
}

/// Where a reader starts: the beginning of the data, or a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Byte offset (in the decompressed data) where the next record starts.
    pub offset: u64,
    /// The line number that record starts on.
    pub line: u64,
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
    #[error("{path}: line 1: the header row is not UTF-8")]
    HeaderNotUtf8 { path: PathBuf },
    #[error("{path}: line {line}: {source}")]
    Read {
        path: PathBuf,
        line: u64,
        source: csv::Error,
    },
    #[error("{path}: cannot resume at byte {offset}: {source}")]
    Resume {
        path: PathBuf,
        offset: u64,
        source: io::Error,
    },
}

/// Reads rows from a contact file, starting at the data or at a checkpoint.
pub struct ContactReader {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    layout: Layout,
    record: csv::ByteRecord,
    /// Added to the inner reader's positions when it started mid-file.
    base: Resume,
}

impl ContactReader {
    /// Opens `path`, reads its header and checks that `columns` exist; then
    /// positions the reader at `resume` (or right after the header).
    pub fn open(
        path: &Path,
        columns: &Columns,
        resume: Option<Resume>,
    ) -> Result<ContactReader, ContactsError> {
        let mut header_reader = csv_reader(open_data(path)?);
        let mut header = csv::ByteRecord::new();
        let has_header = header_reader
            .read_byte_record(&mut header)
            .map_err(|source| ContactsError::Read {
                path: path.to_owned(),
                line: 1,
                source,
            })?;
        if !has_header {
            return Err(ContactsError::Empty {
                path: path.to_owned(),
            });
        }
        let layout = Layout::new(path, &header, columns)?;
        let data_start = Resume {
            offset: header_reader.position().byte(),
            line: header_reader.position().line(),
        };

        drop(header_reader);
        let mut base = resume.unwrap_or(data_start);
        let mut data = BufReader::with_capacity(256 * 1024, open_at(path, base.offset)?);
        // A record ending in CRLF leaves the reader between `\r` and `\n`:
        // step over that `\n` so that line numbers stay true.
        let at_newline = data.fill_buf().map_err(|source| ContactsError::Resume {
            path: path.to_owned(),
            offset: base.offset,
            source,
        })?;
        if at_newline.first() == Some(&b'\n') {
            data.consume(1);
            base.offset += 1;
            base.line += 1;
        }
        let reader = csv_reader(Box::new(data));
        Ok(ContactReader {
            path: path.to_owned(),
            reader,
            layout,
            record: csv::ByteRecord::new(),
            base,
        })
    }

    /// The next row, `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<Row>, ContactsError> {
        let read = self.reader.read_byte_record(&mut self.record);
        let line = self.record_line();
        match read {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(source) => {
                return Err(ContactsError::Read {
                    path: self.path.clone(),
                    line,
                    source,
                })
            }
        }
        Ok(Some(self.layout.row(line, &self.record)))
    }

    /// Where the record after the last one read starts: the checkpoint to
    /// resume from.
    pub fn resume_point(&self) -> Resume {
        let position = self.reader.position();
        Resume {
            offset: self.base.offset + position.byte(),
            line: self.base.line + position.line() - 1,
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

/// A short digest of the first `covering` bytes (at most 64 KiB) of a
/// contact file's data, stored with the ingest checkpoint so that a file
/// that was replaced, not appended to, is not resumed mid-way.
///
/// It names how many bytes it covers, so a file shorter than the
/// checkpoint never matches.
pub fn fingerprint(path: &Path, covering: u64) -> Result<String, ContactsError> {
    let mut head = Vec::new();
    open_data(path)?
        .take(covering.min(FINGERPRINT_BYTES))
        .read_to_end(&mut head)
        .map_err(|source| ContactsError::Open {
            path: path.to_owned(),
            source,
        })?;
    Ok(format!(
        "{}:{}",
        head.len(),
        hex::encode(Md5::digest(&head))
    ))
}

const FINGERPRINT_BYTES: u64 = 64 * 1024;

/// Column positions of one file's header.
#[derive(Debug, Clone)]
struct Layout {
    width: usize,
    phone: usize,
    country: Option<usize>,
    order_id: Option<usize>,
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
        let names: Vec<String> = header
            .iter()
            .map(|field| std::str::from_utf8(field).map(|s| s.trim().to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|_| ContactsError::HeaderNotUtf8 {
                path: path.to_owned(),
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
            width: names.len(),
            phone: find(&columns.phone)?,
            country: columns.country.as_deref().map(find).transpose()?,
            order_id: columns.order_id.as_deref().map(find).transpose()?,
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
        let field = |index: usize| -> Result<&str, String> {
            let bytes = &record[index];
            let bytes = match bytes.strip_suffix(b"\r") {
                Some(stripped) if index + 1 == record.len() => stripped,
                _ => bytes,
            };
            std::str::from_utf8(bytes)
                .map_err(|_| format!("column {} is not UTF-8 text", index + 1))
        };
        let optional = |index: Option<usize>| -> Result<Option<String>, String> {
            Ok(index
                .map(field)
                .transpose()?
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned))
        };
        let parsed = (|| -> Result<RawContact, String> {
            let other = if self.other.is_empty() {
                String::new()
            } else {
                let mut json = Vec::with_capacity(64);
                for (key, index) in &self.other {
                    json.push(if json.is_empty() { b'{' } else { b',' });
                    json.extend_from_slice(key.as_bytes());
                    serde_json::to_writer(&mut json, field(*index)?)
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
                other,
            })
        })();
        match parsed {
            Ok(contact) => Row::Fields(contact),
            Err(reason) => Row::Unreadable { line, reason },
        }
    }
}

fn csv_reader(inner: Box<dyn Read + Send>) -> csv::Reader<Box<dyn Read + Send>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // Only `\n` ends a record, so that line numbers count every line
        // (with CRLF, csv would otherwise start each record at the `\n`);
        // the `\r` that CRLF leaves on the last field is dropped below.
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(256 * 1024)
        .from_reader(inner)
}

fn is_gzip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("gz"))
}

fn open_data(path: &Path) -> Result<Box<dyn Read + Send>, ContactsError> {
    open_at(path, 0)
}

/// Opens the (decompressed) data positioned at `offset`.
fn open_at(path: &Path, offset: u64) -> Result<Box<dyn Read + Send>, ContactsError> {
    let mut file = File::open(path).map_err(|source| ContactsError::Open {
        path: path.to_owned(),
        source,
    })?;
    let resume_error = |source| ContactsError::Resume {
        path: path.to_owned(),
        offset,
        source,
    };
    if is_gzip(path) {
        let mut data: Box<dyn Read + Send> = Box::new(flate2::read::MultiGzDecoder::new(
            BufReader::with_capacity(256 * 1024, file),
        ));
        // A compressed stream cannot seek: read past what was ingested.
        let skipped =
            io::copy(&mut data.by_ref().take(offset), &mut io::sink()).map_err(resume_error)?;
        if skipped < offset {
            return Err(resume_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than what was already ingested",
            )));
        }
        Ok(data)
    } else {
        let len = file.metadata().map_err(resume_error)?.len();
        if len < offset {
            return Err(resume_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than what was already ingested",
            )));
        }
        file.seek(SeekFrom::Start(offset)).map_err(resume_error)?;
        Ok(Box::new(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn columns() -> Columns {
        Columns {
            phone: "phone".into(),
            country: Some("country".into()),
            order_id: None,
            other: vec!["name".into()],
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn read_all(path: &Path, resume: Option<Resume>) -> Vec<Row> {
        let mut reader = ContactReader::open(path, &columns(), resume).unwrap();
        std::iter::from_fn(|| reader.next_row().unwrap()).collect()
    }

    fn contact(line: u64, phone: &str, country: Option<&str>, name: &str) -> Row {
        Row::Fields(RawContact {
            line,
            phone: phone.into(),
            country: country.map(Into::into),
            order_id: None,
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
            read_all(&path, Some(checkpoint)),
            vec![contact(5, "3", Some("HK"), "c")]
        );
    }

    #[test]
    fn fingerprints_survive_appending_but_not_rewriting() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "c.csv", b"name,phone,country\na,1,HK\n");
        let before = fingerprint(&path, 26).unwrap();
        assert!(before.starts_with("26:"), "{before}");
        write(dir.path(), "c.csv", b"name,phone,country\na,1,HK\nb,2,HK\n");
        assert_eq!(fingerprint(&path, 26).unwrap(), before);
        write(dir.path(), "c.csv", b"name,phone,country\nz,9,HK\n");
        assert_ne!(fingerprint(&path, 26).unwrap(), before);
        write(dir.path(), "c.csv", b"name,phone\n");
        assert_ne!(fingerprint(&path, 26).unwrap(), before);
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
            read_all(&path, Some(checkpoint)),
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
            read_all(&path, Some(checkpoint)),
            vec![contact(3, "2", Some("HK"), "b")]
        );
    }
}
