//! The commands, one file per verb (as xsv's `src/cmd/`): each asks the
//! settings, does its work through the library, hands what it has to say
//! to the output, and returns how it ended. None parses a flag or turns
//! anything into an exit code.

use std::path::Path;

use crate::cli::{Cli, Command};
use crate::clock::now_ms;
use crate::error::{Error, Exit};
use crate::job::{Job, LedgerLocation};
use crate::ledger::{Ledger, OpenMode};
use crate::output::files::Protected;
use crate::output::Output;
use crate::settings::{Env, Settings};

mod campaigns;
mod cancel;
mod check;
mod completions;
#[cfg(feature = "sandbox")]
mod demo;
mod forget;
mod ingest;
mod man;
mod migrate;
mod orders;
mod reconcile;
mod report;
mod resend;
mod run;
#[cfg(feature = "sandbox")]
mod sandbox;
mod status;
mod suppress;
mod sync;
mod webhook;

/// Runs one parsed command line.
pub async fn execute(cli: Cli, output: &Output) -> Result<Exit, Error> {
    let settings = Settings::new(cli.db.as_deref(), Env::of_process());
    match cli.command {
        Command::Run(args) => run::run(&settings, args, output).await,
        Command::Check(args) => check::run(&settings, args, output).await,
        Command::Ingest(args) => ingest::run(&settings, args, output).await,
        Command::Status(args) => status::run(&settings, args, output).await,
        Command::Orders(args) => orders::run(&settings, args, output).await,
        Command::Resend(args) => resend::run(&settings, args, output).await,
        Command::Cancel(args) => cancel::run(&settings, args, output).await,
        Command::Report(args) => report::run(&settings, args, output).await,
        Command::Campaigns(args) => campaigns::run(&settings, args, output).await,
        Command::Forget(args) => forget::run(&settings, args, output).await,
        Command::Suppress(args) => suppress::run(&settings, args, output).await,
        Command::Migrate(args) => migrate::run(&settings, args, output).await,
        Command::Completions(args) => completions::run(args, output),
        Command::Man(args) => man::run(args, output),
        Command::Sync(args) => sync::run(&settings, args, output).await,
        Command::Reconcile(args) => reconcile::run(&settings, args, output).await,
        Command::Webhook(args) => webhook::run(&settings, args, output).await,
        #[cfg(feature = "sandbox")]
        Command::Sandbox(args) => sandbox::run(args, output).await,
        #[cfg(feature = "sandbox")]
        Command::Demo => demo::run(output).await,
    }
}

/// Opens (creating if needed) the ledger of a job's run, and says which
/// file it is: a run on a new ledger by mistake would call everyone again.
async fn open_job_ledger(settings: &Settings, job: &Job, output: &Output) -> Result<Ledger, Error> {
    let ledger = Ledger::open_with(&settings.ledger(Some(job)), OpenMode::CreateIfMissing).await?;
    let shown = ledger.shown();
    tracing::info!(ledger = %shown, created = ledger.created(), "ledger open");
    if ledger.created() {
        output.warn(format_args!(
            "created a NEW, empty ledger at {shown}: if campaign {:?} ran before with another ledger, stop now, or everyone in it is called again (name the ledger with --db, NXCAMPAIGN_DB or the job's `ledger` key)",
            job.name.as_str()
        ));
    } else {
        output.note(format_args!("ledger: {shown}"));
    }
    Ok(ledger)
}

/// The existing ledger and the campaign's name a command on `campaign`
/// (a campaign name, or a job file that names both) works with.
async fn open_campaign(
    settings: &Settings,
    campaign: &str,
    mode: OpenMode,
) -> Result<(Ledger, String), Error> {
    let (location, name, _) = settings.campaign(campaign)?;
    Ok((Ledger::open_with(&location, mode).await?, name))
}

/// Notes the run of `job_path` in the campaign (creating it) and brings
/// the campaign's part of the do-not-call list in line with the job's own
/// list files, before anything is planned or sent.
async fn start_campaign(
    ledger: &Ledger,
    job: &Job,
    job_path: &Path,
    output: &Output,
) -> Result<(), Error> {
    let campaign = ledger.ensure_campaign(&job.name, now_ms()).await?;
    let shown = std::path::absolute(job_path).unwrap_or_else(|_| job_path.to_owned());
    ledger
        .note_run(
            campaign,
            &shown.to_string_lossy(),
            job.redial
                .as_ref()
                .map(|policy| policy.to_json())
                .as_deref(),
            now_ms(),
        )
        .await?;
    let listed = crate::suppress::load_job_lists(ledger, campaign, job).await?;
    if listed > 0 {
        output.note(format_args!(
            "do-not-call: {listed} number(s) in the job's list files"
        ));
    }
    Ok(())
}

/// The files no output of a command on `job` may replace: its ledger (and
/// what SQLite keeps beside it), its contact file, the job file, its list
/// files and its credentials file.
fn protected_files(settings: &Settings, job_path: &Path, job: &Job) -> Protected {
    let mut protected = Protected::default();
    if let LedgerLocation::File(path) = settings.ledger(Some(job)) {
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
    settings: &Settings,
    ledger: &Ledger,
    campaign: &str,
) -> Result<Protected, Error> {
    let mut protected = match settings.campaign(campaign)? {
        (_, _, Some(job)) => protected_files(settings, Path::new(campaign), &job),
        (location, _, None) => {
            let mut protected = Protected::default();
            if let LedgerLocation::File(path) = location {
                protected.add_ledger_file(&path);
            }
            protected
        }
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

/// Refuses a command naming batches the campaign does not have, before
/// it changes anything.
async fn refuse_unknown_batches(
    ledger: &Ledger,
    campaign: crate::ledger::CampaignId,
    name: &str,
    named: &[crate::batch::BatchSeq],
    done: &'static str,
) -> Result<(), Error> {
    if named.is_empty() {
        return Ok(());
    }
    let existing = ledger.existing_batches(campaign, named).await?;
    let unknown: Vec<_> = named
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
fn listed(seqs: &[crate::batch::BatchSeq]) -> String {
    if seqs.is_empty() {
        return String::new();
    }
    format!(": {}", crate::error::batch_list(seqs))
}
