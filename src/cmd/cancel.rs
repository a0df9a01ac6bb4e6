//! `cancel`: pending batches (all, or the ones named) become `cancelled`;
//! cancelling them all also stops the campaign's redials.

use crate::cli::CancelArgs;
use crate::clock::now_ms;
use crate::error::{Error, Exit};
use crate::ledger::OpenMode;
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: CancelArgs, output: &Output) -> Result<Exit, Error> {
    let only = &args.batches;
    let (ledger, campaign) =
        super::open_campaign(settings, &args.campaign, OpenMode::MustExist).await?;
    let id = ledger.campaign(&campaign).await?;
    super::refuse_unknown_batches(&ledger, id, &campaign, only, "cancelled").await?;
    let cancelled = ledger
        .cancel(id, only, now_ms(), &settings.requested_by())
        .await?;
    output.result(format_args!(
        "cancelled {} pending batch(es) of campaign {campaign:?}{}; they will never be sent{}",
        cancelled.len(),
        super::listed(&cancelled),
        if only.is_empty() {
            ", and no redial is planned from now on"
        } else {
            ""
        }
    ))?;
    let skipped: Vec<_> = only
        .iter()
        .filter(|seq| !cancelled.contains(seq))
        .copied()
        .collect();
    if !skipped.is_empty() {
        output.notice(format_args!(
            "left alone (not pending){}",
            super::listed(&skipped)
        ));
    }
    ledger.close().await;
    Ok(if skipped.is_empty() {
        Exit::Done
    } else {
        Exit::Attention
    })
}
