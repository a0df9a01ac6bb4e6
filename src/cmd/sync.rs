//! `sync`: the vendor's call records into the ledger.

use crate::cli::SyncArgs;
use crate::clock::{now_ms, rfc3339};
use crate::error::{Error, Exit};
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: SyncArgs, output: &Output) -> Result<Exit, Error> {
    let vendor = super::reconcile::Vendor::open(settings, &args.job, true, output).await?;
    let (client, throttle) = vendor
        .client
        .as_ref()
        .expect("credentials are needed, so there is a client");
    let synced = crate::call_records::sync(
        &vendor.ledger,
        vendor.campaign,
        client,
        throttle,
        args.since,
        now_ms(),
    )
    .await;
    vendor.ledger.close().await;
    let synced = synced?;
    if let Some(from) = synced.clamped_from {
        output.note(format_args!(
            "sync: --since is earlier than any call of this campaign can be: reading from {} (an hour before the campaign's first request)",
            rfc3339(from)
        ));
    }
    output.result(format_args!(
        "sync: {} record(s) from {} to {} ({} window(s), {} page(s)): {} new, {} again, {} of orders this ledger does not know{}",
        synced.records,
        rfc3339(synced.from_ms),
        rfc3339(synced.to_ms),
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
    ))?;
    Ok(Exit::Done)
}
