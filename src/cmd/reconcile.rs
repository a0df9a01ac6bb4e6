//! `reconcile`: settles uncertain batches from call records.

use std::path::Path;

use crate::call_records::{Decision, Reconciling};
use crate::cli::ReconcileArgs;
use crate::clock::now_ms;
use crate::error::{Error, Exit};
use crate::job::Job;
use crate::ledger::{CampaignId, Ledger, OpenMode};
use crate::nxlink::Client;
use crate::output::Output;
use crate::settings::Settings;
use crate::throttle::Throttle;

pub async fn run(settings: &Settings, args: ReconcileArgs, output: &Output) -> Result<Exit, Error> {
    let vendor = Vendor::open(settings, &args.job, args.resend_lost, output).await?;
    let requested_by = settings.requested_by();
    let mut out = output.stdout();
    let decided = crate::call_records::reconcile(
        &Reconciling {
            ledger: &vendor.ledger,
            job: &vendor.job,
            campaign: vendor.campaign,
            vendor: vendor
                .client
                .as_ref()
                .map(|(client, throttle)| (client, throttle)),
            lost_after: args.lost_after,
            resend_lost: args.resend_lost,
            requested_by: &requested_by,
            now_ms: now_ms(),
        },
        &mut out,
    )
    .await;
    vendor.ledger.close().await;
    let decided = decided?;
    let any = |wanted: fn(&Decision) -> bool| decided.iter().any(|(_, d)| wanted(d));
    Ok(if any(|d| matches!(d, Decision::NotAsked { .. })) {
        Exit::TryLater
    } else if any(|d| {
        matches!(
            d,
            Decision::ProbablyLost {
                requeued: false,
                ..
            } | Decision::CannotTell { .. }
        )
    }) {
        Exit::Attention
    } else {
        Exit::Done
    })
}

/// What `sync` and `reconcile` work with: the job, its campaign in its
/// existing ledger, and a client of its gateway under its rate limit
/// (`None` when the credentials are missing and not `needed`: then it
/// says so).
pub(super) struct Vendor {
    pub job: Job,
    pub ledger: Ledger,
    pub campaign: CampaignId,
    pub client: Option<(Client, Throttle)>,
}

impl Vendor {
    pub async fn open(
        settings: &Settings,
        job_path: &Path,
        needed: bool,
        output: &Output,
    ) -> Result<Vendor, Error> {
        let job = settings.job(job_path)?;
        let client = match settings.credentials(&job.api) {
            Ok(credentials) => Some((
                Client::new(&job.api.base_url, credentials, job.api.timeout)
                    .map_err(Error::Client)?,
                Throttle::new(&job.limits),
            )),
            Err(e) if needed => return Err(e),
            Err(e) => {
                output.warn(format_args!(
                    "{e}; only the calls already in the ledger are looked at"
                ));
                None
            }
        };
        let ledger = Ledger::open_with(&settings.ledger(Some(&job)), OpenMode::MustExist).await?;
        let campaign = ledger.campaign(job.name.as_str()).await?;
        Ok(Vendor {
            job,
            ledger,
            campaign,
            client,
        })
    }
}
