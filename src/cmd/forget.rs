//! `forget`: deletes a campaign that sent nothing (or, when told, one that
//! did).

use crate::cli::ForgetArgs;
use crate::error::{Error, Exit};
use crate::ledger::{Forgotten, OpenMode};
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: ForgetArgs, output: &Output) -> Result<Exit, Error> {
    let (ledger, campaign) =
        super::open_campaign(settings, &args.campaign, OpenMode::MustExist).await?;
    let id = ledger.campaign(&campaign).await?;
    let outcome = ledger.forget(id, args.sent_anyway).await?;
    ledger.close().await;
    match outcome {
        Forgotten::Deleted { orders } => {
            output.result(format_args!(
                "forgot campaign {campaign:?} and its {orders} order(s)"
            ))?;
            Ok(Exit::Done)
        }
        Forgotten::Sent { attempts } => Err(Error::KeptSent { campaign, attempts }),
        Forgotten::Busy => Err(Error::CampaignBusy {
            campaign,
            holder: "a run (its lease is held)".to_owned(),
        }),
    }
}
