//! `check`: what a run of the job would do, against its ledger as it is
//! (which is only read, and not created when missing).

use std::io::Write as _;

use crate::cli::CheckArgs;
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, LedgerError, OpenMode};
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: CheckArgs, output: &Output) -> Result<Exit, Error> {
    let job = settings.job(&args.job)?;
    if let Some(path) = &args.rejects {
        super::protected_files(settings, &args.job, &job).check("--rejects", path)?;
    }
    let real = match Ledger::open_with(&settings.ledger(Some(&job)), OpenMode::ReadOnly).await {
        Ok(ledger) => {
            output.note(format_args!("ledger: {} (read only)", ledger.shown()));
            Some(ledger)
        }
        Err(LedgerError::Missing { .. }) => {
            output.note("ledger: none yet (the first run creates it): every valid row is new");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let report = crate::check::check(
        settings,
        real.as_ref(),
        &job,
        args.rejects.as_deref(),
        output,
    )
    .await?;
    let mut out = output.stdout();
    report.write(&job, &args.job, &mut out)?;
    out.flush()?;
    if let Some(real) = real {
        real.close().await;
    }
    Ok(report.exit())
}
