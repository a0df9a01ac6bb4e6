//! The do-not-call list's commands: numbers (or files of numbers) in,
//! normalized as contacts are, a chunk per transaction; and the list out,
//! a page at a time. The list itself is applied by the ledger, when
//! orders are planned and again just before each batch is sent.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use crate::clock::{now_ms, rfc3339};
use crate::error::Error;
use crate::job::Job;
use crate::ledger::{CampaignId, Ledger, Scope, SuppressionEntry};
use crate::output::tables::{spreadsheet_safe, terminal_safe};
use crate::output::Output;
use crate::phone::{Country, Phone};

/// Numbers per transaction: big, since a chunk's numbers land all over the
/// list's index (sorted, each page is written once per chunk).
const CHUNK: usize = 200_000;

/// Entries per page of `list`.
const PAGE: usize = 5_000;

/// How numbers given to `suppress` are read.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// The country of national numbers; without one, only international
    /// numbers (`+…`, `00…`) are accepted.
    pub country: Option<Country>,
    /// The column of a list file that holds the numbers (by its header);
    /// without one, a header naming a phone column, else the first field
    /// that holds a number.
    pub column: Option<String>,
}

impl Reading {
    /// `raw` as the ledger stores numbers (the vendor's digits), or why not.
    /// A note after the number (`+852 5123 4505 (mobile)`) is left out.
    pub fn normalize(&self, raw: &str) -> Result<String, String> {
        let raw = raw.trim().trim_matches('"').trim();
        let number = without_note(raw);
        let home = match self.country {
            Some(country) => country,
            None if number.starts_with('+') || number.starts_with("00") => {
                Country::parse("US").expect("US is a country")
            }
            None if has_number(raw) => {
                return Err(format!(
                    "{raw:?} is a national number: say its country with --country"
                ))
            }
            None => return Err(format!("{raw:?} is not a phone number")),
        };
        Phone::parse(number, home)
            .map(|phone| phone.digits().to_owned())
            .map_err(|e| format!("{raw:?}: {e}"))
    }
}

/// The number at the start of `raw`, without a note after it: the longest
/// prefix of what numbers are written with, up to its last digit.
fn without_note(raw: &str) -> &str {
    let end = raw
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_digit() || " +-().".contains(*c))
        .filter(|(_, c)| c.is_ascii_digit())
        .last()
        .map_or(0, |(i, _)| i + 1);
    &raw[..end]
}

/// Whether `raw` has a number in it (six digits or more): a line without
/// one may be a header; a line with one is never taken for a header.
fn has_number(raw: &str) -> bool {
    raw.chars().filter(char::is_ascii_digit).count() >= 6
}

/// What adding or removing did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Numbers written (added, renewed or removed).
    pub done: u64,
    /// Arguments and lines that are not a number (each said on stderr).
    pub skipped: u64,
    /// Lines read from files: numbers, headers, blank lines and comments,
    /// and those skipped.
    pub lines: u64,
}

/// One line of a list file that is not a number, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub file: String,
    pub line: u64,
    pub why: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}: {}", self.file, self.line, self.why)
    }
}

/// Reads a list file line by line: a UTF-8 BOM and the whitespace around
/// fields are ignored; the first line is a header only when it holds no
/// number at all; the numbers are in the column `reading` names, or the
/// header's phone column, or the first field holding a number. Gives each
/// number to `number` and each line that is neither a number, a header, a
/// blank line nor a `#` comment to `refused`. Returns the lines read.
pub fn read_list_file(
    path: &Path,
    reading: &Reading,
    mut number: impl FnMut(String),
    mut refused: impl FnMut(Refused),
) -> io::Result<u64> {
    let file = path.display().to_string();
    let mut data = BufReader::new(File::open(path)?);
    // A UTF-8 BOM (what Excel and Notepad write) is no part of the text.
    if data.fill_buf()?.starts_with(b"\xef\xbb\xbf") {
        data.consume(3);
    }
    let delimiter = {
        let head = data.fill_buf()?;
        let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
        [b',', b';', b'\t']
            .into_iter()
            .max_by_key(|d| first.iter().filter(|b| *b == d).count())
            .filter(|d| first.contains(d))
            .unwrap_or(b',')
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(data);
    let mut record = csv::ByteRecord::new();
    let mut column: Option<usize> = None;
    let mut first = true;
    let mut last = 0;
    loop {
        let line = reader.position().line();
        if !reader
            .read_byte_record(&mut record)
            .map_err(io::Error::other)?
        {
            break;
        }
        last = line;
        let fields: Vec<String> = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect();
        let all = fields.join(",");
        if all.trim_matches(',').is_empty() || fields[0].starts_with('#') {
            continue;
        }
        if std::mem::take(&mut first) && !fields.iter().any(|f| has_number(f)) {
            // A header: find the numbers' column in it.
            column = match &reading.column {
                Some(name) => Some(
                    fields
                        .iter()
                        .position(|f| f.eq_ignore_ascii_case(name))
                        .ok_or_else(|| {
                            io::Error::other(format!(
                                "{file}: no column {name:?} in its header ({})",
                                fields.join(", ")
                            ))
                        })?,
                ),
                None => fields.iter().position(|f| is_phone_heading(f)),
            };
            continue;
        }
        let taken = match column {
            Some(index) => match fields.get(index) {
                Some(field) => reading.normalize(field),
                None => Err(format!("no field {} on this line", index + 1)),
            },
            None => match fields.iter().find(|f| has_number(f)) {
                Some(field) => reading.normalize(field),
                None => Err(format!("{:?} holds no phone number", all)),
            },
        };
        match taken {
            Ok(phone) => number(phone),
            Err(why) => refused(Refused {
                file: file.clone(),
                line,
                why,
            }),
        }
    }
    // Blank lines are never records: the last line read counts them too.
    Ok(last.max(reader.position().line().saturating_sub(1)))
}

/// Whether a header names a phone column.
fn is_phone_heading(heading: &str) -> bool {
    let heading = heading.to_lowercase();
    [
        "phone", "mobile", "number", "tel", "msisdn", "cell", "电话", "手机",
    ]
    .iter()
    .any(|word| heading.contains(word))
}

/// Feeds every number of `inputs` (a number, or a list file, read as
/// [`read_list_file`] says) to `apply`, a chunk at a time. Each argument
/// or line that is not a number is named to `output` and counted.
pub async fn for_each_chunk<F, Fut>(
    inputs: &[String],
    reading: &Reading,
    output: &Output,
    mut apply: F,
) -> Result<Tally, Error>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<u64, crate::ledger::LedgerError>>,
{
    let mut tally = Tally::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    for input in inputs {
        let path = Path::new(input);
        if !path.is_file() {
            match reading.normalize(input) {
                Ok(phone) => chunk.push(phone),
                Err(why) => {
                    tally.skipped += 1;
                    output.notice(format_args!("not taken: {}", terminal_safe(&why)));
                }
            }
            continue;
        }
        // A file is read on a blocking thread, a chunk at a time.
        let (sender, mut chunks) = tokio::sync::mpsc::channel::<Result<Vec<String>, String>>(2);
        let (path, reading) = (path.to_owned(), reading.clone());
        let reader = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut refused = Vec::new();
            let lines = read_list_file(
                &path,
                &reading,
                |phone| {
                    chunk.push(phone);
                    if chunk.len() == CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                        let _ = sender.blocking_send(Ok(full));
                    }
                },
                |line| refused.push(line),
            );
            if !chunk.is_empty() {
                let _ = sender.blocking_send(Ok(chunk));
            }
            if let Err(e) = &lines {
                let _ = sender.blocking_send(Err(format!("{}: {e}", path.display())));
            }
            (lines.unwrap_or(0), refused)
        });
        while let Some(read) = chunks.recv().await {
            let phones = read.map_err(|why| Error::ListFile { why })?;
            tally.done += apply(phones).await?;
        }
        let (lines, refused) = reader.await.expect("the list reader does not panic");
        tally.lines += lines;
        tally.skipped += refused.len() as u64;
        for line in &refused {
            output.notice(format_args!(
                "not taken: {}",
                terminal_safe(&line.to_string())
            ));
        }
    }
    if !chunk.is_empty() {
        tally.done += apply(chunk).await?;
    }
    Ok(tally)
}

/// Adds the numbers of `inputs` to the list with `entry`.
pub async fn add(
    ledger: &Ledger,
    inputs: &[String],
    reading: &Reading,
    entry: &SuppressionEntry,
    output: &Output,
) -> Result<Tally, Error> {
    for_each_chunk(inputs, reading, output, |phones| {
        ledger.suppress(phones, entry)
    })
    .await
}

/// Loads the job's own list files (`[suppression] files`) into the
/// campaign's part of the list, as they are now, in one transaction that
/// replaces the campaign's entries: no one ever sees a list emptier than
/// either version, whichever runner's clock says what. A file that cannot
/// be read, or with a line that is neither a number, a header, a blank
/// line nor a comment, stops the run: a do-not-call list is no place to
/// guess. Returns how many numbers the files hold.
pub async fn load_job_lists(
    ledger: &Ledger,
    campaign: CampaignId,
    job: &Job,
) -> Result<u64, Error> {
    let mut listed: Vec<(String, String)> = Vec::new();
    // The files as the job names them, relative to its folder.
    for file in &job.suppression_files {
        if !file.is_file() {
            return Err(Error::ListFile {
                why: format!(
                    "{}: the job's [suppression] files names it, but it is not a readable file",
                    file.display()
                ),
            });
        }
        let reading = Reading {
            country: Some(job.default_country),
            column: job.suppression_column.clone(),
        };
        let shown = file.display().to_string();
        let mut refused = None;
        read_list_file(
            file,
            &reading,
            |phone| listed.push((phone, shown.clone())),
            |line| {
                refused.get_or_insert(line);
            },
        )
        .map_err(|e| Error::ListFile {
            why: format!("{}: {e}", file.display()),
        })?;
        if let Some(line) = refused {
            return Err(Error::ListFile {
                why: format!("{line}: a line of the job's do-not-call list that is not a number (nor a header, a blank line or a # comment): fix it; nothing was sent"),
            });
        }
    }
    let numbers = listed.len() as u64;
    ledger
        .replace_suppressions(Scope::Campaign(campaign), listed, now_ms())
        .await?;
    Ok(numbers)
}

/// `suppress list` as CSV or JSON lines, a page at a time.
pub async fn write_list(ledger: &Ledger, json: bool, out: &mut dyn Write) -> Result<u64, Error> {
    if !json {
        writeln!(out, "phone,campaign,reason,until,added_at,source")?;
    }
    let mut after = None;
    let mut written = 0;
    loop {
        let page = ledger.suppressions_after(after.take(), PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.phone.clone(), last.scope));
        for entry in &page {
            let until = entry.until_ms.map(rfc3339);
            if json {
                let line = serde_json::json!({
                    "phone": entry.phone,
                    "campaign": entry.campaign,
                    "reason": entry.reason,
                    "until": until,
                    "added_at": rfc3339(entry.added_at_ms),
                    "source": entry.source,
                });
                writeln!(out, "{line}")?;
            } else {
                let mut record = csv::Writer::from_writer(Vec::new());
                record
                    .write_record([
                        entry.phone.as_str(),
                        entry.campaign.as_deref().unwrap_or(""),
                        &spreadsheet_safe(entry.reason.as_deref().unwrap_or("")),
                        until.as_deref().unwrap_or(""),
                        &rfc3339(entry.added_at_ms),
                        &spreadsheet_safe(&entry.source),
                    ])
                    .map_err(io::Error::from)?;
                out.write_all(&record.into_inner().map_err(|e| e.into_error())?)?;
            }
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalized_as_contacts_are() {
        let international = Reading::default();
        assert_eq!(
            international.normalize("+852 5123 4567").unwrap(),
            "85251234567"
        );
        assert_eq!(
            international.normalize("00852-5123-4567").unwrap(),
            "85251234567"
        );
        let err = international.normalize("5123 4567").unwrap_err();
        assert!(err.contains("--country"), "{err}");
        let hk = Reading {
            country: Some(Country::parse("HK").unwrap()),
            column: None,
        };
        assert_eq!(hk.normalize("5123 4567").unwrap(), "85251234567");
        assert!(hk.normalize("12-3").is_err());
        // A note after the number is no part of it.
        assert_eq!(
            international.normalize("+852 5123 4505 (mobile)").unwrap(),
            "85251234505"
        );
    }

    /// The numbers and refused lines of a list file with `text`.
    fn read(text: &[u8], column: Option<&str>) -> (Vec<String>, Vec<(u64, String)>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.csv");
        std::fs::write(&path, text).unwrap();
        let reading = Reading {
            country: Some(Country::parse("HK").unwrap()),
            column: column.map(str::to_owned),
        };
        let (mut numbers, mut refused) = (Vec::new(), Vec::new());
        let lines = read_list_file(
            &path,
            &reading,
            |n| numbers.push(n),
            |r| refused.push((r.line, r.why)),
        )
        .unwrap();
        (numbers, refused, lines)
    }

    #[test]
    fn list_files_as_people_write_them_lose_no_line() {
        // A BOM, CRLF, an indented line, a number with a note first.
        let (numbers, refused, lines) = read(
            b"\xef\xbb\xbf+852 5123 4505 (mobile)\r\n\t5123 4506\r\n   +85251234507\r\n\r\n# a comment\r\n",
            None,
        );
        assert_eq!(numbers, ["85251234505", "85251234506", "85251234507"]);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(lines, 5);
        // Name,Phone: the number is in the second column.
        let (numbers, refused, _) =
            read(b"Name,Phone\nAnn,5123 4508\n\"Lee, Ben\",5123 4509\n", None);
        assert_eq!(numbers, ["85251234508", "85251234509"]);
        assert!(refused.is_empty(), "{refused:?}");
        // A line that is not a number is refused with its line.
        let (numbers, refused, _) = read(b"phone\n51234510\nask Ann\n51234511\n", None);
        assert_eq!(numbers.len(), 2);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, 3);
        // A column named by its header.
        let (numbers, _, _) = read(b"home;work\n51234512;51234513\n", Some("work"));
        assert_eq!(numbers, ["85251234513"]);
    }
}
