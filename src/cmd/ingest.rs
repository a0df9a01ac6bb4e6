//! `ingest`: read what is new in the job's contact file into the ledger,
//! sending nothing.

use std::io::Write as _;

use crate::cli::IngestArgs;
use crate::error::{Error, Exit};
use crate::output::progress::Progress;
use crate::output::tables;
use crate::output::Output;
use crate::run::{graceful_shutdown, hold_to_read, ingest_until};
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: IngestArgs, output: &Output) -> Result<Exit, Error> {
    let job = settings.job(&args.job)?;
    let ledger = super::open_job_ledger(settings, &job, output).await?;
    super::start_campaign(&ledger, &job, &args.job, output).await?;
    let (campaign, held) = hold_to_read(&ledger, &job, output).await?;
    let mut progress = Progress::new(output);
    let ingested = ingest_until(
        &ledger,
        &job,
        held.fence(),
        graceful_shutdown(output.clone()),
        output,
    )
    .await;
    progress.finish();
    held.release().await?;
    let (ingested, stopped) = ingested?;
    let status = ledger.status(campaign, job.name.as_str()).await?;
    let mut out = output.stdout();
    tables::write_status_table(&mut out, std::slice::from_ref(&status))?;
    out.flush()?;
    ledger.close().await;
    Ok(if ingested.invalid > 0 {
        Exit::Attention
    } else if stopped || ingested.waiting.is_some() {
        Exit::TryLater
    } else {
        Exit::Done
    })
}
