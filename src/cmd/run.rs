//! `run`: read what is new in the job's contact file and send every due
//! batch, then leave the run's summary and metrics, whatever the ending.

use std::time::Instant;

use crate::cli::RunArgs;
use crate::clock::now_ms;
use crate::error::{Error, Exit};
use crate::ingest::resume_point;
use crate::job::Job;
use crate::ledger::{Ledger, LedgerError};
use crate::output::files;
use crate::output::progress::Progress;
use crate::output::rejects::write_rejects;
use crate::output::Output;
use crate::run::summary::RunSummary;
use crate::run::{
    finish_run, graceful_shutdown, hold_to_read, ingest_until, run_campaign, Bounds, CampaignRun,
};
use crate::settings::Settings;
use crate::state::{BatchState, OrderState};

pub async fn run(settings: &Settings, args: RunArgs, output: &Output) -> Result<Exit, Error> {
    let started_at_ms = now_ms();
    let job_path = args.job.as_path();
    // Before anything else: no output may replace a file the campaign
    // depends on.
    if args.rejects.is_some() || args.summary_json.is_some() || args.metrics_file.is_some() {
        let job = settings.job(job_path)?;
        let protected = super::protected_files(settings, job_path, &job);
        for (flag, path) in [
            ("--rejects", args.rejects.as_deref()),
            ("--summary-json", args.summary_json.as_deref()),
            ("--metrics-file", args.metrics_file.as_deref()),
        ] {
            if let Some(path) = path {
                protected.check(flag, path)?;
            }
        }
    }
    let mut progress = Progress::new(output);
    let result = run_job(settings, &args, &mut progress, output).await;
    if args.summary_json.is_none() && args.metrics_file.is_none() {
        return result.map(|(exit, _, _)| exit);
    }
    let (exit, error, run, campaign) = match &result {
        Ok((exit, run, name)) => (*exit, None, Some(run), name.clone()),
        Err(e) if e.is_closed_pipe() => (Exit::Done, None, None, String::new()),
        Err(e) => (
            e.exit(),
            Some(e.to_string()),
            None,
            settings
                .job(job_path)
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
    if let Some(path) = &args.summary_json {
        let mut text = serde_json::to_vec_pretty(&summary.json()).expect("JSON serializes");
        text.push(b'\n');
        files::write_whole(path, &text)?;
    }
    if let Some(path) = &args.metrics_file {
        let previous = std::fs::read_to_string(path).ok();
        let text = summary.prometheus(previous.as_deref());
        files::write_whole(path, text.as_bytes())?;
    }
    result.map(|(exit, _, _)| exit)
}

/// The run itself: how it ended, what it did, and its campaign's name.
async fn run_job(
    settings: &Settings,
    args: &RunArgs,
    progress: &mut Progress,
    output: &Output,
) -> Result<(Exit, CampaignRun, String), Error> {
    let job_path = args.job.as_path();
    let deadline = args.max_runtime.map(|limit| Instant::now() + limit);
    let job = settings.job(job_path)?;
    let credentials = settings.credentials(&job.api)?;
    let ledger = super::open_job_ledger(settings, &job, output).await?;
    super::start_campaign(&ledger, &job, job_path, output).await?;
    // Where this run's read begins, for its rejects file.
    let read_before = match (&args.rejects, ledger.campaign(job.name.as_str()).await) {
        (None, _) => None,
        (Some(_), Ok(id)) => {
            let checkpoint = ledger.checkpoint(id).await?;
            let status = ledger.status(id, job.name.as_str()).await?;
            Some((resume_point(&checkpoint, &job), status.rows_read))
        }
        (Some(_), Err(LedgerError::UnknownCampaign { .. })) => Some((None, 0)),
        (Some(_), Err(e)) => return Err(e.into()),
    };
    let confirm_above = args.confirm_above.or(job.limits.confirm_above);
    if let Some(most) = confirm_above.filter(|_| !args.yes) {
        let would = orders_a_run_would_send(&ledger, &job, args.limit, output).await?;
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
        most_orders: args.limit,
    };
    let run = run_campaign(
        &ledger,
        &job,
        credentials,
        graceful_shutdown(output.clone()),
        bounds,
        progress,
    )
    .await?;
    let exit = finish_run(&run, job_path, &mut output.stdout(), output)?;
    if let (Some(path), Some((from, skip))) = (&args.rejects, read_before) {
        let id = ledger.campaign(job.name.as_str()).await?;
        let written = tokio::task::block_in_place(|| {
            write_rejects(&ledger, id, &job, from.as_ref(), skip, path)
        })?;
        output.note(format_args!(
            "rejects: {written} row(s) written to {}",
            path.display()
        ));
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
    output: &Output,
) -> Result<u64, Error> {
    let (campaign, held) = hold_to_read(ledger, job, output).await?;
    let ingested = ingest_until(
        ledger,
        job,
        held.fence(),
        graceful_shutdown(output.clone()),
        output,
    )
    .await;
    held.release().await?;
    ingested?;
    let status = ledger.status(campaign, job.name.as_str()).await?;
    let pending = status.orders_in(OrderState::InBatch(BatchState::Pending));
    Ok(limit.map_or(pending, |limit| pending.min(limit)))
}
