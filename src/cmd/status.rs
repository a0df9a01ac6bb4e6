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
    // Given a job file, its schedule says where each window stands.
    let (ledger, names, job) = match &args.campaign {
        Some(campaign) => {
            let (location, name, job) = settings.campaign(campaign)?;
            (
                Ledger::open_with(&location, OpenMode::ReadOnly).await?,
                vec![name],
                job,
            )
        }
        None => {
            let ledger = Ledger::open_with(&settings.ledger(None), OpenMode::ReadOnly).await?;
            let names = ledger.campaign_names().await?;
            (ledger, names, None)
        }
    };
    let schedule = job.as_ref().and_then(|job| job.schedule.as_ref());
    let mut statuses = Vec::with_capacity(names.len());
    for name in names {
        let id = ledger.campaign(&name).await?;
        let mut status = ledger.status(id, &name).await?;
        status.calls = Some(ledger.call_stats(id).await?);
        status.redials = ledger.funnel(id, now_ms(), None).await?;
        status.windows = crate::output::tables::pending_windows(&ledger, id, schedule).await?;
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
