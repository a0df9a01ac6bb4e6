//! `status`: rows read, orders and batches by state, call outcomes.

use std::io::Write as _;

use crate::cli::StatusArgs;
use crate::clock::now_ms;
use crate::error::{Error, Exit};
use crate::ledger::{Ledger, OpenMode};
use crate::output::tables::{self, OrdersFormat};
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: StatusArgs, output: &Output) -> Result<Exit, Error> {
    let format = if args.json {
        OrdersFormat::Json
    } else {
        args.format
    };
    let (ledger, names) = match &args.campaign {
        Some(campaign) => {
            let (ledger, name) =
                super::open_campaign(settings, campaign, OpenMode::ReadOnly).await?;
            (ledger, vec![name])
        }
        None => {
            let ledger = Ledger::open_with(&settings.ledger(None), OpenMode::ReadOnly).await?;
            let names = ledger.campaign_names().await?;
            (ledger, names)
        }
    };
    let mut statuses = Vec::with_capacity(names.len());
    for name in names {
        let id = ledger.campaign(&name).await?;
        let mut status = ledger.status(id, &name).await?;
        status.calls = Some(ledger.call_stats(id).await?);
        status.redials = ledger.funnel(id, now_ms(), None).await?;
        statuses.push(status);
    }
    let mut out = output.stdout();
    match format {
        OrdersFormat::Json => tables::write_status_json(&mut out, &statuses)?,
        OrdersFormat::Csv => tables::write_status_csv(&mut out, &statuses)?,
        OrdersFormat::Table => tables::write_status_table(&mut out, &statuses)?,
    }
    out.flush()?;
    Ok(Exit::Done)
}
