//! `campaigns`: every campaign of the ledger.

use std::io::Write as _;

use crate::cli::CampaignsArgs;
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, OpenMode};
use crate::output::tables;
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: CampaignsArgs, output: &Output) -> Result<Exit, Error> {
    let ledger = Ledger::open_with(&settings.ledger(None), OpenMode::ReadOnly).await?;
    let summaries = ledger.campaigns().await?;
    let mut out = output.stdout();
    tables::write_campaigns(&mut out, &summaries, args.json)?;
    out.flush()?;
    Ok(Exit::Done)
}
