//! The do-not-call list's commands: numbers (or files of numbers) in,
//! normalized as contacts are, a chunk per transaction; and the list out,
//! a page at a time. The list itself is applied by the ledger, when
//! orders are planned and again just before each batch is sent.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use crate::campaign::Error;
use crate::clock::{now_ms, rfc3339};
use crate::job::Job;
use crate::ledger::{CampaignId, Ledger, Scope, SuppressionEntry};
use crate::phone::{Country, Phone};
use crate::report::{spreadsheet_safe, terminal_safe};

/// Numbers per transaction: big, since a chunk's numbers land all over the
/// list's index (sorted, each page is written once per chunk).
const CHUNK: usize = 200_000;

/// Entries per page of `list`.
const PAGE: usize = 5_000;

/// Skipped lines named one by one; beyond, only counted.
const SHOWN_SKIPPED: u64 = 10;

/// How numbers given to `suppress` are read.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The country of national numbers; without one, only international
    /// numbers (`+…`, `00…`) are accepted.
    pub country: Option<Country>,
}

impl Reading {
    /// `raw` as the ledger stores numbers (the vendor's digits), or why not.
    pub fn normalize(&self, raw: &str) -> Result<String, String> {
        let raw = raw.trim().trim_matches('"').trim();
        let home = match self.country {
            Some(country) => country,
            None if raw.starts_with('+') || raw.starts_with("00") => {
                Country::parse("US").expect("US is a country")
            }
            None => {
                return Err(format!(
                    "{raw:?} is a national number: say its country with --country"
                ))
            }
        };
        Phone::parse(raw, home)
            .map(|phone| phone.digits().to_owned())
            .map_err(|e| e.to_string())
    }
}

/// What adding or removing did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Numbers written (added, renewed or removed).
    pub done: u64,
    /// Lines or arguments that were not a number.
    pub skipped: u64,
}

/// Feeds every number of `inputs` (a number, or a file with one number per
/// line, its first field when the line has several) to `apply`, a chunk at
/// a time; what is not a number is named on stderr and skipped. A file's
/// first line is a header when it is not a number and has letters.
pub async fn for_each_chunk<F, Fut>(
    inputs: &[String],
    reading: Reading,
    mut apply: F,
) -> Result<Tally, Error>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<u64, crate::ledger::LedgerError>>,
{
    let mut tally = Tally::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    let skip = |tally: &mut Tally, what: String| {
        tally.skipped += 1;
        if tally.skipped <= SHOWN_SKIPPED {
            eprintln!("skipped: {}", terminal_safe(&what));
        }
    };
    for input in inputs {
        let path = Path::new(input);
        if !path.is_file() {
            match reading.normalize(input) {
                Ok(phone) => chunk.push(phone),
                Err(why) => skip(&mut tally, why),
            }
            continue;
        }
        let file = File::open(path).map_err(|e| Error::Usage(format!("{input}: {e}")))?;
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line =
                line.map_err(|e| Error::Usage(format!("{input}: line {}: {e}", index + 1)))?;
            let field = line.split([',', ';', '\t']).next().unwrap_or("").trim();
            if field.is_empty() || field.starts_with('#') {
                continue;
            }
            match reading.normalize(field) {
                Ok(phone) => chunk.push(phone),
                Err(_) if index == 0 && field.chars().any(char::is_alphabetic) => {}
                Err(why) => skip(&mut tally, format!("{input}: line {}: {why}", index + 1)),
            }
            if chunk.len() == CHUNK {
                tally.done += apply(std::mem::take(&mut chunk)).await?;
            }
        }
    }
    if !chunk.is_empty() {
        tally.done += apply(chunk).await?;
    }
    if tally.skipped > SHOWN_SKIPPED {
        eprintln!(
            "skipped: {} more line(s) that are not numbers",
            tally.skipped - SHOWN_SKIPPED
        );
    }
    Ok(tally)
}

/// Adds the numbers of `inputs` to the list with `entry`.
pub async fn add(
    ledger: &Ledger,
    inputs: &[String],
    reading: Reading,
    entry: &SuppressionEntry,
) -> Result<Tally, Error> {
    for_each_chunk(inputs, reading, |phones| ledger.suppress(phones, entry)).await
}

/// Loads the job's own list files (`[suppression] files`) into the
/// campaign's part of the list, as they are now: their numbers are added or
/// renewed, and the campaign's entries they no longer hold (a number taken
/// out of a file, a file taken out of the job) are dropped. A file that
/// cannot be read stops the run: a list skipped would call its numbers.
/// Returns how many numbers the files hold.
pub async fn load_job_lists(
    ledger: &Ledger,
    campaign: CampaignId,
    job: &Job,
) -> Result<u64, Error> {
    let started = now_ms();
    let scope = Scope::Campaign(campaign);
    let mut listed = 0;
    for file in &job.suppression_files {
        if !file.is_file() {
            return Err(Error::Usage(format!(
                "{}: the job's [suppression] files names it, but it is not a readable file",
                file.display()
            )));
        }
        let entry = SuppressionEntry {
            scope,
            reason: Some(format!("listed in {}", file.display())),
            until_ms: None,
            added_at_ms: started,
            source: format!("list file {}", file.display()),
        };
        let inputs = [file.to_string_lossy().into_owned()];
        let reading = Reading {
            country: Some(job.default_country),
        };
        listed += add(ledger, &inputs, reading, &entry).await?.done;
    }
    ledger.forget_suppressions_before(scope, started).await?;
    Ok(listed)
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
        let international = Reading { country: None };
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
        };
        assert_eq!(hk.normalize("5123 4567").unwrap(), "85251234567");
        assert!(hk.normalize("12-3").is_err());
    }
}
