//! `suppress add|import|remove|list`, on the ledger `--db` names, else the
//! job's; never a ledger guessed from the current folder. Adding may
//! create the ledger: a do-not-call list loaded before the first campaign
//! is a list kept.

use std::io::{self, Write as _};

use crate::cli::{ListFormat, SuppressAction, SuppressArgs};
use crate::clock::{now_ms, rfc3339};
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, OpenMode, Scope, SuppressionEntry};
use crate::output::Output;
use crate::phone::Country;
use crate::settings::Settings;
use crate::suppress;

pub async fn run(settings: &Settings, args: SuppressArgs, output: &Output) -> Result<Exit, Error> {
    let job = args
        .job
        .as_deref()
        .map(|path| settings.job(path))
        .transpose()?;
    let Some(location) = settings.named_ledger(job.as_ref()) else {
        return Err(Error::argument(
            "suppress",
            "which ledger? pass --job JOB (the job's ledger), or --db FILE|URL (or set NXCAMPAIGN_DB): the list must be in the ledger the campaigns read",
        ));
    };
    let country = |raw: Option<String>| {
        raw.map(|cc| Country::parse(&cc).map_err(|e| Error::argument("--country", e.to_string())))
            .transpose()
    };
    let (inputs, entry) = match args.action {
        SuppressAction::List { format } => {
            let ledger = Ledger::open_with(&location, OpenMode::ReadOnly).await?;
            let mut out = io::BufWriter::new(output.stdout());
            suppress::write_list(&ledger, format == ListFormat::Json, &mut out).await?;
            out.flush()?;
            return Ok(Exit::Done);
        }
        SuppressAction::Remove {
            numbers,
            country: cc,
        } => {
            let ledger = Ledger::open_with(&location, OpenMode::MustExist).await?;
            let reading = suppress::Reading {
                country: country(cc)?,
                column: None,
            };
            let tally = suppress::for_each_chunk(&numbers, &reading, output, |phones| {
                ledger.unsuppress(phones, Scope::Every)
            })
            .await?;
            output.result(format_args!(
                "removed {} number(s) from the do-not-call list",
                tally.done
            ))?;
            ledger.close().await;
            return Ok(if tally.skipped > 0 {
                Exit::Attention
            } else {
                Exit::Done
            });
        }
        SuppressAction::Add { numbers, entry } => (numbers, entry),
        SuppressAction::Import { file, entry } => {
            if !file.is_file() {
                return Err(Error::argument(
                    "suppress import",
                    format!("{}: no such file", file.display()),
                ));
            }
            (vec![file.to_string_lossy().into_owned()], entry)
        }
    };
    if let Some(until) = entry.until.filter(|until| *until <= now_ms()) {
        return Err(Error::argument(
            "--until",
            format!(
                "{} is in the past; an entry that has already ended protects no one (leave --until out for good)",
                rfc3339(until)
            ),
        ));
    }
    let reading = suppress::Reading {
        country: country(entry.country)?,
        column: entry.column,
    };
    let ledger = Ledger::open_with(&location, OpenMode::CreateIfMissing).await?;
    output.note(format_args!("ledger: {}", ledger.shown()));
    let listed = SuppressionEntry {
        scope: Scope::Every,
        reason: entry.reason,
        until_ms: entry.until,
        added_at_ms: now_ms(),
        source: settings.requested_by(),
    };
    let tally = suppress::add(&ledger, &inputs, &reading, &listed, output).await?;
    output.result(format_args!(
        "{} number(s) on the do-not-call list for every campaign of ledger {}{}{}",
        tally.done,
        ledger.shown(),
        listed
            .until_ms
            .map(|until| format!(" until {}", rfc3339(until)))
            .unwrap_or_default(),
        match (tally.lines, tally.skipped) {
            (0, 0) => String::new(),
            (lines, 0) => format!(" ({lines} line(s) read, every one taken)"),
            (lines, skipped) => format!(
                " ({lines} line(s) read); {skipped} not taken (each named above): fix them and add them again"
            ),
        }
    ))?;
    ledger.close().await;
    Ok(if tally.skipped > 0 {
        Exit::Attention
    } else {
        Exit::Done
    })
}
