//! `migrate`: create the ledger or bring its schema up to date, and
//! nothing else.

use crate::cli::MigrateArgs;
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, OpenMode};
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: MigrateArgs, output: &Output) -> Result<Exit, Error> {
    let job = args.job.map(|path| settings.job(&path)).transpose()?;
    let ledger =
        Ledger::open_with(&settings.ledger(job.as_ref()), OpenMode::CreateIfMissing).await?;
    output.result(format_args!(
        "ledger {}: {} and up to date",
        ledger.shown(),
        if ledger.created() { "created" } else { "found" }
    ))?;
    ledger.close().await;
    Ok(Exit::Done)
}
