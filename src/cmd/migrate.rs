//! `migrate`: create the ledger or bring its schema up to date, and
//! nothing else.

use crate::cli::MigrateArgs;
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, OpenMode};
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: MigrateArgs) -> Result<Exit, Error> {
    let job = args.job.map(|path| settings.job(&path)).transpose()?;
    let ledger =
        Ledger::open_with(&settings.ledger(job.as_ref()), OpenMode::CreateIfMissing).await?;
    println!(
        "ledger {}: {} and up to date",
        ledger.shown(),
        if ledger.created() { "created" } else { "found" }
    );
    ledger.close().await;
    Ok(Exit::Done)
}
