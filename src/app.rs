//! The commands: each wires the library's parts together for one verb of the
//! command line and says how it ended (`Exit`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::batch::BatchSeq;
use crate::campaign::{
    credentials_from_env, finish_run, graceful_shutdown, hold_to_read, ingest_until, run_campaign,
    Bounds, CampaignRun, Error, Exit,
};
use crate::check::check;
use crate::cli::{Cli, Command, ListFormat, SuppressAction};
use crate::clock::{format_utc, now_ms, rfc3339};
#[cfg(feature = "sandbox")]
use crate::demo;
use crate::ingest::resume_point;
use crate::job::{Job, LedgerLocation};
use crate::lease;
use crate::ledger::{Forgotten, Ledger, LedgerError, OpenMode, Resend, Scope, SuppressionEntry};
use crate::outcome::{BatchState, OrderState};
use crate::outfile::{self, Protected};
use crate::overview;
use crate::phone::Country;
use crate::rejects::write_rejects;
use crate::report::{self, OrderWriter, OrdersFormat, Progress};
#[cfg(feature = "sandbox")]
use crate::sandbox::{Faults, Sandbox};
use crate::summary::RunSummary;
use crate::suppress;

/// Runs one parsed command line.
pub async fn execute(cli: Cli) -> Result<Exit, Error> {
    // An empty `--db ''` or `NXCAMPAIGN_DB=` is no ledger named.
    let db = cli.db.as_deref().filter(|db| !db.trim().is_empty());
    match cli.command {
        Command::Run {
            job,
            max_runtime,
            rejects,
            limit,
            confirm_above,
            yes,
            summary_json,
            metrics_file,
        } => {
            let guards = Guards {
                limit,
                confirm_above,
                yes,
            };
            let reports = Reports {
                summary_json,
                metrics_file,
            };
            run(db, &job, max_runtime, rejects.as_deref(), guards, reports).await
        }
        Command::Check { job, rejects } => dry_run(db, &job, rejects.as_deref()).await,
        Command::Ingest { job } => ingest_only(db, &job).await,
        Command::Status {
            campaign,
            json,
            format,
        } => {
            let format = if json { OrdersFormat::Json } else { format };
            status(db, campaign.as_deref(), format).await
        }
        Command::Orders {
            campaign,
            state,
            format,
            output,
            since,
            call,
        } => {
            let state = state
                .map(|s| s.trim().to_ascii_lowercase().parse::<OrderState>())
                .transpose()
                .map_err(|e| Error::argument("--state", e.to_string()))?;
            let (ledger, name) = open_for(db, &campaign, OpenMode::ReadOnly).await?;
            if let Some(path) = &output {
                protected_by(&ledger, db, &campaign)
                    .await?
                    .check("--output", path)?;
            }
            let campaign = name;
            let id = ledger.campaign(&campaign).await?;
            let export = |out: &mut dyn Write| -> Result<(), Error> {
                let mut writer = OrderWriter::new(format, out)?;
                tokio::task::block_in_place(|| {
                    ledger.for_each_order(
                        id,
                        state,
                        call.map(Into::into),
                        &mut |line| match since {
                            Some(since) if line.updated_at_ms.is_none_or(|at| at < since) => Ok(()),
                            _ => writer.write(line),
                        },
                    )
                })?;
                writer.finish()?;
                Ok(())
            };
            match output {
                None => export(&mut io::BufWriter::with_capacity(
                    1 << 16,
                    io::stdout().lock(),
                ))?,
                Some(path) => {
                    let mut out = outfile::Partial::create(&path)?;
                    export(&mut out)?;
                    out.commit()?;
                }
            }
            Ok(Exit::Done)
        }
        Command::Resend {
            campaign,
            uncertain,
            failed: _,
            rejected,
            batches,
        } => {
            let from = if uncertain {
                BatchState::Uncertain
            } else if rejected {
                BatchState::Rejected
            } else {
                BatchState::Failed
            };
            resend(db, &campaign, from, &batches).await
        }
        Command::Cancel { campaign, batches } => cancel(db, &campaign, &batches).await,
        Command::Report { campaign, html } => {
            let (ledger, name) = open_for(db, &campaign, OpenMode::ReadOnly).await?;
            if let Some(path) = &html {
                protected_by(&ledger, db, &campaign)
                    .await?
                    .check("--html", path)?;
            }
            let campaign = name;
            let id = ledger.campaign(&campaign).await?;
            let page = overview::gather(&ledger, id, &campaign).await?;
            let mut out = io::stdout().lock();
            page.write_text(&mut out)?;
            out.flush()?;
            if let Some(path) = html {
                outfile::write_whole(&path, page.html().as_bytes())?;
                eprintln!("report: {}", path.display());
            }
            Ok(Exit::Done)
        }
        Command::Campaigns { json } => campaigns(db, json).await,
        Command::Forget {
            campaign,
            sent_anyway,
        } => forget(db, &campaign, sent_anyway).await,
        Command::Suppress { job, action } => suppress_command(db, job.as_deref(), action).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "nxcampaign", &mut io::stdout());
            Ok(Exit::Done)
        }
        Command::Man => {
            use clap::CommandFactory as _;
            clap_mangen::Man::new(Cli::command()).render(&mut io::stdout())?;
            Ok(Exit::Done)
        }
        Command::Migrate { job } => {
            let job = job.map(|path| Job::load(&path, None)).transpose()?;
            let ledger = Ledger::open_with(
                &ledger_location(db, job.as_ref()),
                OpenMode::CreateIfMissing,
            )
            .await?;
            println!(
                "ledger {}: {} and up to date",
                ledger.shown(),
                if ledger.created() { "created" } else { "found" }
            );
            ledger.close().await;
            Ok(Exit::Done)
        }
        #[cfg(feature = "sandbox")]
        Command::Sandbox {
            listen,
            access_key,
            access_secret,
            faults,
        } => {
            serve_sandbox(
                listen,
                crate::nxlink::Credentials::new(access_key, access_secret),
                faults.into(),
            )
            .await
        }
        Command::Sync { job, since } => sync_calls(db, &job, since).await,
        Command::Reconcile {
            job,
            lost_after,
            resend_lost,
        } => reconcile(db, &job, lost_after, resend_lost).await,
        Command::Webhook {
            listen,
            token_env,
            no_token,
            job,
            request_timeout,
        } => {
            let token = if no_token {
                None
            } else {
                Some(token_env.as_deref().unwrap_or(WEBHOOK_TOKEN_VAR))
            };
            receive_calls(
                db,
                listen,
                token,
                job.as_deref(),
                request_timeout.unwrap_or(crate::webhook::REQUEST_TIMEOUT),
            )
            .await
        }
        #[cfg(feature = "sandbox")]
        Command::Demo => demo::run().await,
    }
}

/// How much one `run` may send, as its flags say.
struct Guards {
    limit: Option<u64>,
    confirm_above: Option<u64>,
    yes: bool,
}

/// Where a run leaves its summary for schedulers.
struct Reports {
    summary_json: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
}

/// `run`, then its summary and metrics files, whatever the ending.
async fn run(
    db: Option<&str>,
    job_path: &Path,
    max_runtime: Option<Duration>,
    rejects: Option<&Path>,
    guards: Guards,
    reports: Reports,
) -> Result<Exit, Error> {
    let started_at_ms = now_ms();
    // Before anything else: no output may replace a file the campaign
    // depends on.
    if rejects.is_some() || reports.summary_json.is_some() || reports.metrics_file.is_some() {
        let job = Job::load(job_path, None)?;
        let protected = protected_files(db, job_path, &job);
        for (flag, path) in [
            ("--rejects", rejects),
            ("--summary-json", reports.summary_json.as_deref()),
            ("--metrics-file", reports.metrics_file.as_deref()),
        ] {
            if let Some(path) = path {
                protected.check(flag, path)?;
            }
        }
    }
    let mut progress = Progress::new();
    let result = run_job(db, job_path, max_runtime, rejects, guards, &mut progress).await;
    if reports.summary_json.is_none() && reports.metrics_file.is_none() {
        return result.map(|(exit, _, _)| exit);
    }
    let (exit, error, run, campaign) = match &result {
        Ok((exit, run, name)) => (*exit, None, Some(run), name.clone()),
        Err(e) if e.is_closed_pipe() => (Exit::Done, None, None, String::new()),
        Err(e) => (
            e.exit(),
            Some(e.to_string()),
            None,
            Job::load(job_path, None)
                .map(|job| job.name.to_string())
                .unwrap_or_default(),
        ),
    };
    let summary = RunSummary {
        campaign: &campaign,
        job_file: job_path,
        started_at_ms,
        finished_at_ms: now_ms(),
        exit,
        error,
        run,
        tally: progress.tally(),
    };
    if let Some(path) = &reports.summary_json {
        let mut text = serde_json::to_vec_pretty(&summary.json()).expect("JSON serializes");
        text.push(b'\n');
        outfile::write_whole(path, &text)?;
    }
    if let Some(path) = &reports.metrics_file {
        let previous = std::fs::read_to_string(path).ok();
        let text = summary.prometheus(previous.as_deref());
        outfile::write_whole(path, text.as_bytes())?;
    }
    result.map(|(exit, _, _)| exit)
}

/// The run itself: its exit code, what it did, and its campaign's name.
async fn run_job(
    db: Option<&str>,
    job_path: &Path,
    max_runtime: Option<Duration>,
    rejects: Option<&Path>,
    guards: Guards,
    progress: &mut Progress,
) -> Result<(Exit, CampaignRun, String), Error> {
    let deadline = max_runtime.map(|limit| Instant::now() + limit);
    let base_url = std::env::var("NXLINK_BASE_URL").ok();
    let job = Job::load(job_path, base_url.as_deref())?;
    let credentials = credentials_from_env(&job.api)?;
    let ledger = open_job_ledger(db, &job).await?;
    start_campaign(&ledger, &job, job_path).await?;
    // Where this run's read begins, for its rejects file.
    let read_before = match (rejects, ledger.campaign(job.name.as_str()).await) {
        (None, _) => None,
        (Some(_), Ok(id)) => {
            let checkpoint = ledger.checkpoint(id).await?;
            let status = ledger.status(id, job.name.as_str()).await?;
            Some((resume_point(&checkpoint, &job), status.rows_read))
        }
        (Some(_), Err(LedgerError::UnknownCampaign { .. })) => Some((None, 0)),
        (Some(_), Err(e)) => return Err(e.into()),
    };
    let confirm_above = guards.confirm_above.or(job.limits.confirm_above);
    if let Some(most) = confirm_above.filter(|_| !guards.yes) {
        let would = orders_a_run_would_send(&ledger, &job, guards.limit).await?;
        if would > most {
            ledger.close().await;
            return Err(Error::TooManyToSend {
                would,
                most,
                job: job_path.display().to_string(),
            });
        }
    }
    let bounds = Bounds {
        deadline,
        most_orders: guards.limit,
    };
    let run = run_campaign(
        &ledger,
        &job,
        credentials,
        graceful_shutdown(),
        bounds,
        progress,
    )
    .await?;
    let exit = finish_run(&run, job_path, &mut io::stdout().lock())?;
    if let (Some(path), Some((from, skip))) = (rejects, read_before) {
        let id = ledger.campaign(job.name.as_str()).await?;
        let written = tokio::task::block_in_place(|| {
            write_rejects(&ledger, id, &job, from.as_ref(), skip, path)
        })?;
        eprintln!("rejects: {written} row(s) written to {}", path.display());
    }
    ledger.close().await;
    Ok((exit, run, job.name.to_string()))
}

/// Reads what is new in the job's file (sending nothing) and counts the
/// orders a run would then send: every pending one, or `limit`.
async fn orders_a_run_would_send(
    ledger: &Ledger,
    job: &Job,
    limit: Option<u64>,
) -> Result<u64, Error> {
    let (campaign, held) = hold_to_read(ledger, job).await?;
    let ingested = ingest_until(ledger, job, held.fence(), graceful_shutdown()).await;
    held.release().await?;
    ingested?;
    let status = ledger.status(campaign, job.name.as_str()).await?;
    let pending = status.orders_in(OrderState::InBatch(BatchState::Pending));
    Ok(limit.map_or(pending, |limit| pending.min(limit)))
}

/// `check`: what a run of the job would do, against its ledger as it is
/// (which is only read, and not created when missing).
async fn dry_run(db: Option<&str>, job_path: &Path, rejects: Option<&Path>) -> Result<Exit, Error> {
    let base_url = std::env::var("NXLINK_BASE_URL").ok();
    let job = Job::load(job_path, base_url.as_deref())?;
    if let Some(path) = rejects {
        protected_files(db, job_path, &job).check("--rejects", path)?;
    }
    let location = ledger_location(db, Some(&job));
    let real = match Ledger::open_with(&location, OpenMode::ReadOnly).await {
        Ok(ledger) => {
            eprintln!("ledger: {} (read only)", ledger.shown());
            Some(ledger)
        }
        Err(LedgerError::Missing { .. }) => {
            eprintln!("ledger: none yet (the first run creates it): every valid row is new");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let report = check(real.as_ref(), &job, rejects).await?;
    let mut out = io::stdout().lock();
    report.write(&job, job_path, &mut out)?;
    out.flush()?;
    if let Some(real) = real {
        real.close().await;
    }
    Ok(report.exit())
}

async fn ingest_only(db: Option<&str>, job_path: &Path) -> Result<Exit, Error> {
    let job = Job::load(job_path, None)?;
    let ledger = open_job_ledger(db, &job).await?;
    start_campaign(&ledger, &job, job_path).await?;
    let (campaign, held) = hold_to_read(&ledger, &job).await?;
    let mut progress = Progress::new();
    let ingested = ingest_until(&ledger, &job, held.fence(), graceful_shutdown()).await;
    progress.finish();
    held.release().await?;
    let (ingested, stopped) = ingested?;
    let status = ledger.status(campaign, job.name.as_str()).await?;
    let mut out = io::stdout().lock();
    report::write_status_table(&mut out, std::slice::from_ref(&status))?;
    out.flush()?;
    ledger.close().await;
    Ok(if stopped || ingested.waiting.is_some() {
        Exit::TryLater
    } else if ingested.invalid > 0 {
        Exit::Attention
    } else {
        Exit::Done
    })
}

async fn status(
    db: Option<&str>,
    campaign: Option<&str>,
    format: OrdersFormat,
) -> Result<Exit, Error> {
    let (ledger, names) = match campaign {
        Some(campaign) => {
            let (ledger, name) = open_for(db, campaign, OpenMode::ReadOnly).await?;
            (ledger, vec![name])
        }
        None => {
            let ledger = Ledger::open_with(&ledger_location(db, None), OpenMode::ReadOnly).await?;
            let names = ledger.campaign_names().await?;
            (ledger, names)
        }
    };
    let mut statuses = Vec::with_capacity(names.len());
    for name in names {
        let id = ledger.campaign(&name).await?;
        let mut status = ledger.status(id, &name).await?;
        status.calls = Some(ledger.call_stats(id).await?);
        statuses.push(status);
    }
    let mut out = io::stdout().lock();
    match format {
        OrdersFormat::Json => report::write_status_json(&mut out, &statuses)?,
        OrdersFormat::Csv => report::write_status_csv(&mut out, &statuses)?,
        OrdersFormat::Table => report::write_status_table(&mut out, &statuses)?,
    }
    out.flush()?;
    Ok(Exit::Done)
}

async fn resend(
    db: Option<&str>,
    campaign: &str,
    from: BatchState,
    only: &[BatchSeq],
) -> Result<Exit, Error> {
    let (ledger, campaign) = open_for(db, campaign, OpenMode::MustExist).await?;
    let id = ledger.campaign(&campaign).await?;
    refuse_unknown_batches(&ledger, id, &campaign, only, "re-queued").await?;
    let requested_by = requested_by();
    let now = now_ms();
    let resent = ledger
        .resend(
            id,
            &Resend {
                from,
                only,
                requested_by: &requested_by,
                now_ms: now,
            },
        )
        .await?;
    let seqs = resent.requeued;
    println!(
        "re-queued {} {from} batch(es){}; the next `nxcampaign run` sends them",
        seqs.len(),
        listed(&seqs)
    );
    for (seq, until) in &resent.fenced {
        eprintln!(
            "refused: batch #{seq} was being sent by a run that lost the campaign but may still live; a request of it could still be accepted until {} (in {} s): re-send it after that",
            format_utc(*until),
            ((until - now).max(0) as u64).div_ceil(1000)
        );
    }
    let skipped: Vec<String> = only
        .iter()
        .filter(|seq| !seqs.contains(seq) && !resent.fenced.iter().any(|(s, _)| s == *seq))
        .map(|seq| format!("#{seq}"))
        .collect();
    if !skipped.is_empty() {
        eprintln!("left alone (not {from}): {}", skipped.join(", "));
    }
    Ok(if !resent.fenced.is_empty() {
        Exit::BadInput
    } else if !skipped.is_empty() {
        Exit::Attention
    } else {
        Exit::Done
    })
}

/// `cancel`: pending batches (all, or the ones named) become `cancelled`.
async fn cancel(db: Option<&str>, campaign: &str, only: &[BatchSeq]) -> Result<Exit, Error> {
    let (ledger, campaign) = open_for(db, campaign, OpenMode::MustExist).await?;
    let id = ledger.campaign(&campaign).await?;
    refuse_unknown_batches(&ledger, id, &campaign, only, "cancelled").await?;
    let cancelled = ledger.cancel(id, only, now_ms(), &requested_by()).await?;
    println!(
        "cancelled {} pending batch(es) of campaign {campaign:?}{}; they will never be sent",
        cancelled.len(),
        listed(&cancelled)
    );
    let skipped: Vec<BatchSeq> = only
        .iter()
        .filter(|seq| !cancelled.contains(seq))
        .copied()
        .collect();
    if !skipped.is_empty() {
        eprintln!("left alone (not pending){}", listed(&skipped));
    }
    ledger.close().await;
    Ok(if skipped.is_empty() {
        Exit::Done
    } else {
        Exit::Attention
    })
}

/// Refuses a command naming batches the campaign does not have, before
/// it changes anything.
async fn refuse_unknown_batches(
    ledger: &Ledger,
    campaign: crate::ledger::CampaignId,
    name: &str,
    named: &[BatchSeq],
    done: &'static str,
) -> Result<(), Error> {
    if named.is_empty() {
        return Ok(());
    }
    let existing = ledger.existing_batches(campaign, named).await?;
    let unknown: Vec<BatchSeq> = named
        .iter()
        .filter(|seq| !existing.contains(seq))
        .copied()
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::NoSuchBatches {
        campaign: name.to_owned(),
        batches: crate::error::batch_list(&unknown),
        done,
    })
}

/// `: #1, #2, …` for up to 20 batches; nothing for none.
fn listed(seqs: &[BatchSeq]) -> String {
    if seqs.is_empty() {
        return String::new();
    }
    format!(": {}", crate::error::batch_list(seqs))
}

/// `campaigns`: every campaign of the ledger.
async fn campaigns(db: Option<&str>, json: bool) -> Result<Exit, Error> {
    let ledger = Ledger::open_with(&ledger_location(db, None), OpenMode::ReadOnly).await?;
    let summaries = ledger.campaigns().await?;
    let mut out = io::stdout().lock();
    report::write_campaigns(&mut out, &summaries, json)?;
    out.flush()?;
    Ok(Exit::Done)
}

/// `forget`: deletes a campaign that sent nothing (or, when told, one that
/// did).
async fn forget(db: Option<&str>, campaign: &str, sent_anyway: bool) -> Result<Exit, Error> {
    let (ledger, campaign) = open_for(db, campaign, OpenMode::MustExist).await?;
    let id = ledger.campaign(&campaign).await?;
    let outcome = ledger.forget(id, sent_anyway).await?;
    ledger.close().await;
    match outcome {
        Forgotten::Deleted { orders } => {
            println!("forgot campaign {campaign:?} and its {orders} order(s)");
            Ok(Exit::Done)
        }
        Forgotten::Sent { attempts } => Err(Error::KeptSent { campaign, attempts }),
        Forgotten::Busy => Err(Error::CampaignBusy {
            campaign,
            holder: "a run (its lease is held)".to_owned(),
        }),
    }
}

/// `suppress add|import|remove|list`, on the ledger `--db` names, else the
/// job's; never a ledger guessed from the current folder. Adding may
/// create the ledger: a do-not-call list loaded before the first campaign
/// is a list kept.
async fn suppress_command(
    db: Option<&str>,
    job: Option<&Path>,
    action: SuppressAction,
) -> Result<Exit, Error> {
    let job = job.map(|path| Job::load(path, None)).transpose()?;
    if db.is_none() && job.is_none() {
        return Err(Error::argument(
            "suppress",
            "which ledger? pass --job JOB (the job's ledger), or --db FILE|URL (or set NXCAMPAIGN_DB): the list must be in the ledger the campaigns read",
        ));
    }
    let location = ledger_location(db, job.as_ref());
    let country = |raw: Option<String>| {
        raw.map(|cc| Country::parse(&cc).map_err(|e| Error::argument("--country", e.to_string())))
            .transpose()
    };
    let (inputs, args) = match action {
        SuppressAction::List { format } => {
            let ledger = Ledger::open_with(&location, OpenMode::ReadOnly).await?;
            let mut out = io::BufWriter::new(io::stdout().lock());
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
            let tally = suppress::for_each_chunk(&numbers, &reading, |phones| {
                ledger.unsuppress(phones, Scope::Every)
            })
            .await?;
            println!("removed {} number(s) from the do-not-call list", tally.done);
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
    let ledger = Ledger::open_with(&location, OpenMode::CreateIfMissing).await?;
    eprintln!("ledger: {}", ledger.shown());
    if let Some(until) = args.until.filter(|until| *until <= now_ms()) {
        return Err(Error::argument(
            "--until",
            format!(
                "{} is in the past; an entry that has already ended protects no one (leave --until out for good)",
                rfc3339(until)
            ),
        ));
    }
    let reading = suppress::Reading {
        country: country(args.country)?,
        column: args.column,
    };
    let entry = SuppressionEntry {
        scope: Scope::Every,
        reason: args.reason,
        until_ms: args.until,
        added_at_ms: now_ms(),
        source: requested_by(),
    };
    let tally = suppress::add(&ledger, &inputs, &reading, &entry).await?;
    println!(
        "{} number(s) on the do-not-call list for every campaign of ledger {}{}{}",
        tally.done,
        ledger.shown(),
        entry
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
    );
    ledger.close().await;
    Ok(if tally.skipped > 0 {
        Exit::Attention
    } else {
        Exit::Done
    })
}

/// Notes the run of `job_path` in the campaign (creating it) and brings
/// the campaign's part of the do-not-call list in line with the job's own
/// list files, before anything is planned or sent.
async fn start_campaign(ledger: &Ledger, job: &Job, job_path: &Path) -> Result<(), Error> {
    let campaign = ledger.ensure_campaign(&job.name, now_ms()).await?;
    let shown = std::path::absolute(job_path).unwrap_or_else(|_| job_path.to_owned());
    ledger
        .note_run(campaign, &shown.to_string_lossy(), now_ms())
        .await?;
    let listed = suppress::load_job_lists(ledger, campaign, job).await?;
    if listed > 0 {
        eprintln!("do-not-call: {listed} number(s) in the job's list files");
    }
    Ok(())
}

/// The files no output of a command on `job` may replace: its ledger (and
/// what SQLite keeps beside it), its contact file, the job file and its
/// list files.
fn protected_files(db: Option<&str>, job_path: &Path, job: &Job) -> Protected {
    let mut protected = Protected::default();
    if let LedgerLocation::File(path) = ledger_location(db, Some(job)) {
        protected.add_ledger_file(&path);
    }
    protected.add(&job.contacts, "the campaign's contact file");
    protected.add(job_path, "the job file");
    for list in &job.suppression_files {
        protected.add(list, "one of the job's do-not-call lists");
    }
    if let Some(credentials) = &job.api.credentials_file {
        protected.add(credentials, "the credentials file");
    }
    protected
}

/// The files no output of a reading command on `campaign` (a name, or a
/// job file) may replace: the ledger's, every campaign's job and contact
/// files the ledger knows of, and those of the job file given.
async fn protected_by(
    ledger: &Ledger,
    db: Option<&str>,
    campaign: &str,
) -> Result<Protected, Error> {
    let mut protected = if campaign.ends_with(".toml") {
        let job_path = Path::new(campaign);
        protected_files(db, job_path, &Job::load(job_path, None)?)
    } else {
        let mut protected = Protected::default();
        if let LedgerLocation::File(path) = ledger_location(db, None) {
            protected.add_ledger_file(&path);
        }
        protected
    };
    for campaign in ledger.campaigns().await? {
        let name = &campaign.status.campaign;
        if let Some(job_file) = &campaign.job_file {
            protected.add(Path::new(job_file), format!("campaign {name:?}'s job file"));
        }
        if let Some(contacts) = &campaign.contacts {
            protected.add(
                Path::new(contacts),
                format!("campaign {name:?}'s contact file"),
            );
        }
    }
    Ok(protected)
}

/// Who asked, as the ledger records it: `user@host`.
fn requested_by() -> String {
    format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        lease::hostname()
    )
}

/// The ledger a command uses: `--db` (or `NXCAMPAIGN_DB`) first, then the
/// job's, then `nxcampaign.db` in the current folder.
fn ledger_location(db: Option<&str>, job: Option<&Job>) -> LedgerLocation {
    match (db, job) {
        (Some(db), _) => LedgerLocation::parse(db, Path::new("")),
        (None, Some(job)) => job.ledger.clone(),
        (None, None) => LedgerLocation::File(crate::job::DEFAULT_LEDGER.into()),
    }
}

/// Opens (creating if needed) the ledger of a job's run, and says which
/// file it is: a run on a new ledger by mistake would call everyone again.
async fn open_job_ledger(db: Option<&str>, job: &Job) -> Result<Ledger, Error> {
    let ledger =
        Ledger::open_with(&ledger_location(db, Some(job)), OpenMode::CreateIfMissing).await?;
    let shown = ledger.shown();
    tracing::info!(ledger = %shown, created = ledger.created(), "ledger open");
    if ledger.created() {
        eprintln!(
            "NOTE: created a NEW, empty ledger at {shown}: if campaign {:?} ran before with another ledger, stop now, or everyone in it is called again (name the ledger with --db, NXCAMPAIGN_DB or the job's `ledger` key)",
            job.name.as_str()
        );
    } else {
        eprintln!("ledger: {shown}");
    }
    Ok(ledger)
}

/// The existing ledger and campaign name a read or re-queue command is
/// about: `campaign` is a campaign name, or a job file (`*.toml`) that
/// names both.
async fn open_for(
    db: Option<&str>,
    campaign: &str,
    mode: OpenMode,
) -> Result<(Ledger, String), Error> {
    let (location, name) = if campaign.ends_with(".toml") {
        let job = Job::load(Path::new(campaign), None)?;
        (ledger_location(db, Some(&job)), job.name.to_string())
    } else {
        (ledger_location(db, None), campaign.to_owned())
    };
    Ok((Ledger::open_with(&location, mode).await?, name))
}

/// What `sync` and `reconcile` work with: the job, its campaign in its
/// existing ledger, and a client of its gateway under its rate limit
/// (`None` when the credentials are missing and `need` is false: then it
/// says so).
struct Vendor {
    job: Job,
    ledger: Ledger,
    campaign: crate::ledger::CampaignId,
    client: Option<(crate::nxlink::Client, crate::throttle::Throttle)>,
}

async fn job_and_vendor(db: Option<&str>, job_path: &Path, need: bool) -> Result<Vendor, Error> {
    let base_url = std::env::var("NXLINK_BASE_URL").ok();
    let job = Job::load(job_path, base_url.as_deref())?;
    let client = match credentials_from_env(&job.api) {
        Ok(credentials) => Some((
            crate::nxlink::Client::new(&job.api.base_url, credentials, job.api.timeout)
                .map_err(Error::Client)?,
            crate::throttle::Throttle::new(&job.limits),
        )),
        Err(e) if need => return Err(e),
        Err(e) => {
            eprintln!("warning: {e}; only the calls already in the ledger are looked at");
            None
        }
    };
    let ledger = Ledger::open_with(&ledger_location(db, Some(&job)), OpenMode::MustExist).await?;
    let campaign = ledger.campaign(job.name.as_str()).await?;
    Ok(Vendor {
        job,
        ledger,
        campaign,
        client,
    })
}

/// `sync`: the vendor's call records into the ledger.
async fn sync_calls(db: Option<&str>, job_path: &Path, since: Option<i64>) -> Result<Exit, Error> {
    let Vendor {
        ledger,
        campaign,
        client,
        ..
    } = job_and_vendor(db, job_path, true).await?;
    let (client, throttle) = client.expect("credentials are needed, so there is a client");
    let synced =
        crate::outcomes::sync(&ledger, campaign, &client, &throttle, since, now_ms()).await;
    ledger.close().await;
    let synced = synced?;
    if let Some(from) = synced.clamped_from {
        eprintln!(
            "sync: --since is earlier than any call of this campaign can be: reading from {} (an hour before the campaign's first request)",
            crate::clock::rfc3339(from)
        );
    }
    println!(
        "sync: {} record(s) from {} to {} ({} window(s), {} page(s)): {} new, {} again, {} of orders this ledger does not know{}",
        synced.records,
        crate::clock::rfc3339(synced.from_ms),
        crate::clock::rfc3339(synced.to_ms),
        synced.windows,
        synced.pages,
        synced.stored.new,
        synced.stored.replaced,
        synced.stored.unknown,
        if synced.unreadable > 0 {
            format!(", {} not readable as calls (not kept)", synced.unreadable)
        } else {
            String::new()
        }
    );
    Ok(Exit::Done)
}

/// `reconcile`: settles uncertain batches from call records.
async fn reconcile(
    db: Option<&str>,
    job_path: &Path,
    lost_after: Duration,
    resend_lost: bool,
) -> Result<Exit, Error> {
    use crate::outcomes::{Decision, Reconciling};
    let Vendor {
        job,
        ledger,
        campaign,
        client,
    } = job_and_vendor(db, job_path, resend_lost).await?;
    let requested_by = requested_by();
    let mut out = io::stdout().lock();
    let decided = crate::outcomes::reconcile(
        &Reconciling {
            ledger: &ledger,
            job: &job,
            campaign,
            vendor: client.as_ref().map(|(client, throttle)| (client, throttle)),
            lost_after,
            resend_lost,
            requested_by: &requested_by,
            now_ms: now_ms(),
        },
        &mut out,
    )
    .await;
    ledger.close().await;
    let decided = decided?;
    let any = |wanted: fn(&Decision) -> bool| decided.iter().any(|(_, d)| wanted(d));
    Ok(if any(|d| matches!(d, Decision::NotAsked { .. })) {
        Exit::TryLater
    } else if any(|d| {
        matches!(
            d,
            Decision::ProbablyLost {
                requeued: false,
                ..
            } | Decision::CannotTell { .. }
        )
    }) {
        Exit::Attention
    } else {
        Exit::Done
    })
}

/// The variable `webhook` reads its token from unless told another.
const WEBHOOK_TOKEN_VAR: &str = "NXCAMPAIGN_WEBHOOK_TOKEN";

/// `webhook`: receives calls until SIGINT or SIGTERM, then lets the
/// deliveries in progress be stored.
async fn receive_calls(
    db: Option<&str>,
    listen: std::net::SocketAddr,
    token_var: Option<&str>,
    job: Option<&Path>,
    request_timeout: Duration,
) -> Result<Exit, Error> {
    // Fails closed: a token variable unset or empty is a receiver that
    // would take calls from anyone; only --no-token says that is meant.
    let token = match token_var {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => Some(token),
            Ok(_) => {
                return Err(Error::argument(
                    "webhook",
                    format!("the environment variable {var} is empty: it must hold the token the vendor sends (or pass --no-token, behind a proxy that authenticates the vendor)"),
                ))
            }
            Err(_) => {
                return Err(Error::argument(
                    "webhook",
                    format!("the environment variable {var} is not set: it must hold the token the vendor sends (name another with --token-env, or pass --no-token behind a proxy that authenticates the vendor)"),
                ))
            }
        },
    };
    let job = job.map(|path| Job::load(path, None)).transpose()?;
    let ledger = Ledger::open_with(&ledger_location(db, job.as_ref()), OpenMode::MustExist).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::argument(format!("--listen {listen}"), e.to_string()))?;
    let receiver = crate::webhook::Receiver::start(
        listener,
        ledger.clone(),
        crate::webhook::Settings {
            token: token.clone(),
            request_timeout,
        },
    )?;
    if token.is_none() {
        eprintln!(
            "webhook: --no-token: calls are taken from anyone who can reach this address; keep it behind a proxy that authenticates the vendor"
        );
    }
    eprintln!(
        "webhook: receiving calls at http://{}{} into {}; Ctrl-C stops it",
        receiver.addr(),
        crate::webhook::CALLS_PATH,
        ledger.shown()
    );
    crate::campaign::shutdown_signal().await;
    eprintln!("webhook: stopping; deliveries in progress are stored first");
    receiver.stop().await;
    ledger.close().await;
    Ok(Exit::Done)
}

#[cfg(feature = "sandbox")]
async fn serve_sandbox(
    listen: std::net::SocketAddr,
    credentials: crate::nxlink::Credentials,
    faults: Faults,
) -> Result<Exit, Error> {
    let key = credentials.access_key().to_owned();
    let sandbox = Sandbox::start(listen, credentials, faults)
        .await
        .map_err(Error::Listen)?;
    eprintln!(
        "sandbox: NXLink stand-in on {} (access key {key:?}); stats at {}/_sandbox/stats; Ctrl-C stops it",
        sandbox.base_url(),
        sandbox.base_url()
    );
    crate::campaign::shutdown_signal().await;
    let stats = sandbox.stats();
    sandbox.stop().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    );
    Ok(Exit::Done)
}
