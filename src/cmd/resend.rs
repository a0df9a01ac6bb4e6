//! `resend`: put uncertain, failed or rejected batches back to `pending`,
//! recording who asked.

use crate::cli::ResendArgs;
use crate::clock::{format_utc, now_ms};
use crate::error::{Error, Exit};
use crate::ledger::{OpenMode, Resend};
use crate::output::Output;
use crate::settings::Settings;
use crate::state::BatchState;

pub async fn run(settings: &Settings, args: ResendArgs, output: &Output) -> Result<Exit, Error> {
    let from = if args.uncertain {
        BatchState::Uncertain
    } else if args.rejected {
        BatchState::Rejected
    } else {
        BatchState::Failed
    };
    let only = &args.batches;
    let (ledger, campaign) =
        super::open_campaign(settings, &args.campaign, OpenMode::MustExist).await?;
    let id = ledger.campaign(&campaign).await?;
    super::refuse_unknown_batches(&ledger, id, &campaign, only, "re-queued").await?;
    let requested_by = settings.requested_by();
    let now = now_ms();
    let resent = ledger
        .resend(
            id,
            &Resend {
                from,
                only,
                requested_by: &requested_by,
                now_ms: now,
            },
        )
        .await?;
    let seqs = resent.requeued;
    output.result(format_args!(
        "re-queued {} {from} batch(es){}; the next `nxcampaign run` sends them",
        seqs.len(),
        super::listed(&seqs)
    ))?;
    let skipped: Vec<String> = only
        .iter()
        .filter(|seq| !seqs.contains(seq) && !resent.fenced.iter().any(|(s, _)| s == *seq))
        .map(|seq| format!("#{seq}"))
        .collect();
    if !skipped.is_empty() {
        output.notice(format_args!(
            "left alone (not {from}): {}",
            skipped.join(", ")
        ));
    }
    if let Some((seq, until)) = resent.fenced.first() {
        return Err(Error::Fenced {
            batches: resent
                .fenced
                .iter()
                .map(|(seq, _)| format!("#{seq}"))
                .collect::<Vec<_>>()
                .join(", "),
            first: *seq,
            until: format_utc(*until),
            seconds: ((until - now).max(0) as u64).div_ceil(1000),
        });
    }
    Ok(if skipped.is_empty() {
        Exit::Done
    } else {
        Exit::Attention
    })
}
