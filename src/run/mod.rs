//! One campaign run: reading and sending together, with one runner (a
//! lease, on SQLite) or several side by side (runners, on PostgreSQL), and
//! how it ended (`CampaignRun`). `run` and `ingest` and the demo run
//! campaigns through here.
//!
//! - `lease`: one run per campaign at a time, or runners side by side,
//!   each with a heartbeat.
//! - `shutdown`: SIGINT and SIGTERM.

pub mod lease;
mod shutdown;
pub mod summary;

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::Digest as _;

use crate::clock::{format_utc, human_duration, now_ms, rfc3339};
use crate::dispatch::{Dispatch, Ending, SharedRate};
use crate::error::{Error, Exit};
use crate::ingest::{self, IngestError, IngestReport};
use crate::job::{Job, RateScope};
use crate::ledger::{CampaignId, CampaignStatus, Fence, LeaseHolder, Ledger, LedgerError, Runners};
use crate::nxlink::{Client, Credentials};
use crate::output::progress::Progress;
use crate::output::{tables, Output};
use crate::state::{BatchState, OrderState};
use crate::throttle::{self, Throttle};
use lease::{Acquired, Lease, LeaseSettings, OnPresumedDead, Runner, TakenOver};
pub use shutdown::{graceful_shutdown, shutdown_signal};

/// What one run of a campaign did.
#[derive(Debug)]
pub struct CampaignRun {
    pub ingest: IngestReport,
    pub ending: Ending,
    pub status: CampaignStatus,
    /// Batches that came to need attention in this run: attempts that
    /// ended rejected, failed or uncertain, and batches an earlier run
    /// left `sending` (now uncertain). Old trouble is not news.
    pub new_trouble: u64,
}

impl CampaignRun {
    /// The exit code cron should see.
    /// News wins: a run that found something needing attention exits 1
    /// whether or not it finished, so cron shows it; the summary says both.
    pub fn exit(&self) -> Exit {
        match self.ending {
            Ending::Stopped(_) => Exit::Stopped,
            _ if self.has_news() => Exit::Attention,
            Ending::Interrupted
            | Ending::TimeUp { .. }
            | Ending::VendorFailing { .. }
            | Ending::OutsideWindows { .. }
            | Ending::LimitReached { .. } => Exit::TryLater,
            // Part of the file waits to be written: cron should come back.
            Ending::Finished if self.ingest.waiting.is_some() => Exit::TryLater,
            Ending::Finished => Exit::Done,
        }
    }

    /// Whether this run found something new that needs a person: batches
    /// that ended rejected, failed or uncertain, or new invalid rows.
    pub fn has_news(&self) -> bool {
        self.new_trouble > 0 || self.ingest.invalid > 0
    }

    /// Whether the campaign has nothing left for a later run: no file to
    /// read on, and no contact waiting for a redial or for its calls.
    pub fn is_done(&self) -> bool {
        let redials_left = self
            .status
            .redials
            .as_ref()
            .is_some_and(|f| f.due_now + f.waiting + f.awaiting_call > 0);
        self.ending == Ending::Finished && self.ingest.waiting.is_none() && !redials_left
    }
}

/// How far one run may go.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    /// Start no batch after this (`--max-runtime`).
    pub deadline: Option<Instant>,
    /// Send at most this many orders (`--limit`).
    pub most_orders: Option<u64>,
}

/// Takes the campaign's lease, ingests the job's contact file and sends
/// every due batch (until `deadline`, if any), reporting progress on stderr.
/// On a server ledger, the run is one of the campaign's runners: see
/// [`run_as_one_of_several`].
pub async fn run_campaign(
    ledger: &Ledger,
    job: &Job,
    credentials: Credentials,
    shutdown: impl std::future::Future<Output = ()>,
    bounds: Bounds,
    progress: &mut Progress,
) -> Result<CampaignRun, Error> {
    if let Some(runners) = ledger.runners() {
        return run_as_one_of_several(
            ledger,
            &runners,
            job,
            credentials,
            shutdown,
            bounds,
            progress,
        )
        .await;
    }
    let deadline = bounds.deadline;
    let output = progress.output().clone();
    let (campaign, lease, recovered) = hold_campaign(ledger, job, &output).await?;
    let dispatch = dispatch_for(job, lease.fence(), credentials, bounds, None)?;
    let stop_reading = Arc::new(AtomicBool::new(false));
    let (feed, planned) = tokio::sync::watch::channel(());
    let reading = ingest::ingest(
        ledger,
        job,
        lease.fence(),
        now_ms(),
        ingest::Hooks {
            stop: Arc::clone(&stop_reading),
            feed: Some(feed),
            meter: output.reading(),
            redials: true,
        },
    );
    let run = read_and_send(
        ledger,
        job,
        campaign,
        Sending {
            dispatch,
            planned,
            lost: lease.lost(),
        },
        Reading {
            reading,
            stop: stop_reading,
        },
        shutdown,
        deadline,
        progress,
    )
    .await;
    lease.release().await?;
    run.map(|run| CampaignRun {
        new_trouble: run.new_trouble + recovered,
        ..run
    })
}

/// One runner among any number, on any hosts, working on one campaign of a
/// server ledger. It sends what is planned, claiming batches side by side
/// with the others, under the rate limit they share. Whichever runner
/// holds the campaign's ingest lease reads the contact file; the others
/// pass its plans on to their dispatch, and take the lease over when it
/// is free (its holder finished, or was presumed dead), reading on from
/// the checkpoint.
pub async fn run_as_one_of_several(
    ledger: &Ledger,
    runners: &Runners,
    job: &Job,
    credentials: Credentials,
    shutdown: impl std::future::Future<Output = ()>,
    bounds: Bounds,
    progress: &mut Progress,
) -> Result<CampaignRun, Error> {
    let deadline = bounds.deadline;
    let output = progress.output().clone();
    let campaign = ledger.ensure_campaign(&job.name, now_ms()).await?;
    let recovered = Arc::new(AtomicU64::new(0));
    let runner = Runner::join(
        ledger,
        runners,
        campaign,
        lease_settings(job),
        on_presumed_dead(job, Arc::clone(&recovered), &output),
    )
    .await?;
    let shared_rate = SharedRate {
        runners: runners.clone(),
        key: match job.limits.scope {
            RateScope::Account => format!(
                "account:{}",
                hex::encode(md5::Md5::digest(credentials.access_key().as_bytes()))
            ),
            RateScope::Campaign => format!("campaign:{}", job.name.as_str()),
        },
        period: Duration::from_secs_f64(1.0 / job.limits.requests_per_second),
        tolerance: throttle::burst_tolerance(job.limits.requests_per_second),
    };
    let dispatch = dispatch_for(job, runner.fence(), credentials, bounds, Some(shared_rate))?;
    let stop_reading = Arc::new(AtomicBool::new(false));
    let (feed, planned) = tokio::sync::watch::channel(());
    let reading = read_or_follow(
        ledger,
        runners,
        job,
        runner.fence(),
        Arc::clone(&stop_reading),
        feed,
        &output,
    );
    let run = read_and_send(
        ledger,
        job,
        campaign,
        Sending {
            dispatch,
            planned,
            lost: runner.lost(),
        },
        Reading {
            reading,
            stop: stop_reading,
        },
        shutdown,
        deadline,
        progress,
    )
    .await;
    let run = match run {
        Ok(run) if run.ending == Ending::Finished => {
            async {
                wait_for_other_runners(runners, job, runner.fence(), deadline, &output).await?;
                let status = CampaignStatus {
                    redials: run.status.redials.clone(),
                    ..ledger.status(campaign, job.name.as_str()).await?
                };
                Ok(CampaignRun { status, ..run })
            }
            .await
        }
        run => run,
    };
    // Batches of runners this one presumed dead are its news too.
    let run = run.map(|run| CampaignRun {
        new_trouble: run.new_trouble + recovered.load(Ordering::Relaxed),
        ..run
    });
    // Whatever happened, the runner leaves (its ingest lease with it).
    runner.release().await?;
    run
}

/// Before a runner that found nothing more to send leaves, it waits for
/// the batches other runners are sending: each is recorded, or its runner
/// is presumed dead (after `stale_after` of silence) and it becomes
/// `uncertain`. The campaign's last runner thus leaves no batch `sending`.
async fn wait_for_other_runners(
    runners: &Runners,
    job: &Job,
    fence: &Fence,
    deadline: Option<Instant>,
    output: &Output,
) -> Result<(), Error> {
    let mut said = false;
    loop {
        let elsewhere = runners.sent_by_others(fence).await?;
        if elsewhere == 0 || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(());
        }
        if !said {
            output.note(format_args!(
                "campaign {:?}: nothing more to send; waiting for {elsewhere} batch(es) that other runners are sending (one that stays silent for {} s is presumed dead)",
                job.name.as_str(),
                job.lease_stale_after.as_secs_f64()
            ));
            said = true;
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// What a runner says when it presumes another one dead; `tally` counts
/// the batches that became uncertain.
fn on_presumed_dead(job: &Job, tally: Arc<AtomicU64>, output: &Output) -> OnPresumedDead {
    let name = job.name.to_string();
    let output = output.clone();
    Box::new(move |gone: &TakenOver, recovered: u64| {
        tally.fetch_add(recovered, Ordering::Relaxed);
        output.warn(format_args!(
            "campaign {name:?}: presumed another runner dead ({}: {}); {recovered} batch(es) it was sending are now uncertain and will not be re-sent on their own{}",
            if gone.dead { "its process is gone" } else { "its heartbeat stopped" },
            describe_holder(&gone.holder),
            if gone.resend_after_ms > 0 {
                format!("; `resend` refuses them until {}", format_utc(gone.resend_after_ms))
            } else {
                String::new()
            }
        ));
    })
}

/// A campaign held for reading its contact file: the campaign's lease on
/// SQLite; on a server ledger, a runner holding the ingest lease (other
/// runners may go on sending meanwhile).
pub(crate) enum Held {
    Lease(Lease),
    Runner(Runner),
}

impl Held {
    pub(crate) fn fence(&self) -> &Fence {
        match self {
            Held::Lease(lease) => lease.fence(),
            Held::Runner(runner) => runner.fence(),
        }
    }

    /// Gives the campaign back (a runner's ingest lease goes with it).
    pub(crate) async fn release(self) -> Result<(), LedgerError> {
        match self {
            Held::Lease(lease) => lease.release().await,
            Held::Runner(runner) => runner.release().await,
        }
    }
}

/// Holds the job's campaign for reading its file (`ingest`).
pub(crate) async fn hold_to_read(
    ledger: &Ledger,
    job: &Job,
    output: &Output,
) -> Result<(CampaignId, Held), Error> {
    let Some(runners) = ledger.runners() else {
        let (campaign, lease, _) = hold_campaign(ledger, job, output).await?;
        return Ok((campaign, Held::Lease(lease)));
    };
    let campaign = ledger.ensure_campaign(&job.name, now_ms()).await?;
    let runner = Runner::join(
        ledger,
        &runners,
        campaign,
        lease_settings(job),
        on_presumed_dead(job, Arc::default(), output),
    )
    .await?;
    if runners.take_ingest_lease(runner.fence()).await? {
        return Ok((campaign, Held::Runner(runner)));
    }
    let holder = ledger.lease_holder(campaign).await?;
    runner.release().await?;
    Err(Error::CampaignBusy {
        campaign: job.name.to_string(),
        holder: holder.map_or_else(|| "another runner".to_owned(), |h| describe_holder(&h)),
    })
}

/// A runner's part in reading: while another runner holds the ingest
/// lease, it announces that runner's plans on `feed`; once the lease is
/// free, it takes it and ingests what is left of the file.
async fn read_or_follow(
    ledger: &Ledger,
    runners: &Runners,
    job: &Job,
    fence: &Fence,
    stop: Arc<AtomicBool>,
    feed: ingest::PlanFeed,
    output: &Output,
) -> Result<IngestReport, IngestError> {
    let mut planned_through = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            // Stopped before reading: the file waits for the next run.
            return Ok(IngestReport {
                interrupted: true,
                ..IngestReport::default()
            });
        }
        if runners.take_ingest_lease(fence).await? {
            let report = ingest::ingest(
                ledger,
                job,
                fence,
                now_ms(),
                ingest::Hooks {
                    stop,
                    feed: Some(feed),
                    meter: output.reading(),
                    redials: true,
                },
            )
            .await;
            runners.release_ingest_lease(fence).await?;
            return report;
        }
        let now = runners.batches_planned_through(fence.campaign).await?;
        if planned_through != Some(now) {
            planned_through = Some(now);
            feed.send_replace(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// How often a runner that is not reading looks for new plans.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

fn lease_settings(job: &Job) -> LeaseSettings {
    LeaseSettings {
        stale_after: job.lease_stale_after,
        clock_window: job.api.clock_window,
    }
}

/// The dispatch of a run that holds `fence`.
fn dispatch_for(
    job: &Job,
    fence: &Fence,
    credentials: Credentials,
    bounds: Bounds,
    shared_rate: Option<SharedRate>,
) -> Result<Dispatch, Error> {
    let client =
        Client::new(&job.api.base_url, credentials, job.api.timeout).map_err(Error::Client)?;
    tracing::info!(
        gateway = %job.api.base_url,
        requests_per_second = job.limits.requests_per_second,
        max_in_flight = job.limits.max_in_flight.get(),
        "sending"
    );
    Ok(Dispatch {
        fence: fence.clone(),
        client: Arc::new(client),
        throttle: Throttle::new(&job.limits),
        task: job.task.clone(),
        retry: job.retry,
        breaker: job.breaker,
        deadline: bounds.deadline,
        shared_rate,
        schedule: job.schedule.clone(),
        most_orders: bounds.most_orders,
        redial: job.redial.clone(),
    })
}

/// The job's campaign, created on first use, with its lease held: no other
/// run ingests or sends for it until the lease is released, and a run that
/// loses it writes nothing more. Also says how many batches an earlier run
/// had left `sending` (now `uncertain`).
pub(crate) async fn hold_campaign(
    ledger: &Ledger,
    job: &Job,
    output: &Output,
) -> Result<(CampaignId, Lease, u64), Error> {
    let campaign = ledger.ensure_campaign(&job.name, now_ms()).await?;
    let settings = lease_settings(job);
    let mut watching = |holder: &LeaseHolder| {
        output.notice(format_args!(
            "campaign {:?} is held by {}, whose heartbeat does not look recent; watching it for {} s before taking over",
            job.name.as_str(),
            describe_holder(holder),
            settings.stale_after.as_secs_f64()
        ))
    };
    match Lease::acquire(ledger, campaign, settings, &mut watching).await? {
        Acquired::Busy(holder) => Err(Error::CampaignBusy {
            campaign: job.name.to_string(),
            holder: describe_holder(&holder),
        }),
        Acquired::Lease {
            lease,
            took_over,
            recovered,
        } => {
            if let Some(gone) = &took_over {
                output.warn(format_args!(
                    "took over campaign {:?} from a run that is {} ({})",
                    job.name.as_str(),
                    if gone.dead {
                        "gone"
                    } else {
                        "silent: its heartbeat stopped"
                    },
                    describe_holder(&gone.holder)
                ));
            }
            if recovered > 0 {
                let fence = match &took_over {
                    Some(gone) if gone.resend_after_ms > 0 => format!(
                        "; `resend` refuses them until {}, when no request of that run can still be accepted",
                        format_utc(gone.resend_after_ms)
                    ),
                    _ => String::new(),
                };
                output.warn(format_args!(
                    "{recovered} batch(es) were being sent when an earlier run ended or lost the campaign; they are now uncertain and will not be re-sent on their own (see `nxcampaign resend --help`){fence}"
                ));
            }
            Ok((campaign, lease, recovered))
        }
    }
}

/// What sends: a dispatch, the plans it waits for, and what says that
/// the run lost its lease.
struct Sending<L> {
    dispatch: Dispatch,
    planned: tokio::sync::watch::Receiver<()>,
    lost: L,
}

/// What reads: an ingest (or a runner following another's), and its stop.
struct Reading<R> {
    reading: R,
    stop: Arc<AtomicBool>,
}

/// Reads and sends together: ingest plans as it goes and announces each
/// plan; dispatch sends what is planned and waits for more until reading
/// is done.
#[allow(clippy::too_many_arguments)]
async fn read_and_send(
    ledger: &Ledger,
    job: &Job,
    campaign: CampaignId,
    sending: Sending<impl std::future::Future<Output = ()>>,
    reading: Reading<impl std::future::Future<Output = Result<IngestReport, IngestError>>>,
    shutdown: impl std::future::Future<Output = ()>,
    deadline: Option<Instant>,
    progress: &mut Progress,
) -> Result<CampaignRun, Error> {
    let Sending {
        dispatch,
        planned,
        lost,
    } = sending;
    let Reading {
        reading,
        stop: stop_reading,
    } = reading;
    if progress.shows_totals() {
        // Before reading plans anything: the orders left from before.
        let status = ledger.status(campaign, job.name.as_str()).await?;
        progress.expect(status.orders_in(OrderState::InBatch(BatchState::Pending)));
    }
    let stop_sending = tokio::sync::Notify::new();
    let output = progress.output().clone();
    let mut on_event = |event| progress.on_event(event);
    // Stop sending on a shutdown, or if another run took the campaign over
    // (this one was presumed dead): it must never send beside it.
    let sending = dispatch.run(
        ledger,
        async {
            tokio::select! {
                () = stop_sending.notified() => {}
                () = lost => output.warn("another run took over this campaign; stopping"),
            }
        },
        Some(planned),
        &mut on_event,
    );
    let mut reading = std::pin::pin!(reading);
    // Boxed, so it can be dropped (with its hold on `progress`) below.
    let mut sending = Box::pin(sending);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut time_up = std::pin::pin!(sleep_until(deadline));

    let mut ingested: Option<Result<IngestReport, IngestError>> = None;
    let mut ending: Option<Result<Ending, LedgerError>> = None;
    let mut stopped = false;
    while ingested.is_none() || ending.is_none() {
        tokio::select! {
            report = &mut reading, if ingested.is_none() => {
                match &report {
                    Ok(report) => report_ingest(report, &output),
                    // Nothing more will be planned: what is in flight is
                    // recorded, the rest waits for the next run.
                    Err(_) => stop_sending.notify_one(),
                }
                ingested = Some(report);
            }
            sent = &mut sending, if ending.is_none() => {
                // Sending ended early (a stop, the breaker, a lost lease):
                // reading stops at a record boundary; what it read is kept.
                stop_reading.store(true, Ordering::Relaxed);
                ending = Some(sent);
            }
            () = &mut shutdown, if !stopped => {
                stopped = true;
                stop_reading.store(true, Ordering::Relaxed);
                stop_sending.notify_one();
            }
            () = &mut time_up, if !stopped => {
                // Dispatch keeps its own deadline; reading stops here.
                stopped = true;
                stop_reading.store(true, Ordering::Relaxed);
            }
        }
    }
    let (Some(ingested), Some(ending)) = (ingested, ending) else {
        unreachable!("the loop ends once both have ended");
    };
    drop(sending);
    let ingest = ingested?;
    let ending = ending?;
    progress.finish();
    let mut status = ledger.status(campaign, job.name.as_str()).await?;
    if job.redial.is_some() {
        status.redials = ledger.funnel(campaign, now_ms(), None).await?;
    }
    Ok(CampaignRun {
        ingest,
        ending,
        status,
        new_trouble: progress.attention(),
    })
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Ingests the job's contact file; a shutdown stops reading at a record
/// boundary (what was read is kept and planned). Says whether it stopped.
pub(crate) async fn ingest_until(
    ledger: &Ledger,
    job: &Job,
    fence: &Fence,
    shutdown: impl std::future::Future<Output = ()>,
    output: &Output,
) -> Result<(IngestReport, bool), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let reading = ingest::ingest(
        ledger,
        job,
        fence,
        now_ms(),
        ingest::Hooks {
            stop: Arc::clone(&stop),
            feed: None,
            meter: output.reading(),
            redials: true,
        },
    );
    let mut reading = std::pin::pin!(reading);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut stopped = false;
    let report = loop {
        tokio::select! {
            report = &mut reading => break report?,
            () = &mut shutdown, if !stopped => {
                stop.store(true, Ordering::Relaxed);
                stopped = true;
            }
        }
    };
    report_ingest(&report, output);
    Ok((report, stopped))
}

/// Prints a run's status table on `out` and says how it ended; returns
/// the exit code. Under `-q` a run that ended well says nothing at all.
/// Hints name the campaign by `job_file`, which finds its ledger from any
/// folder.
pub fn finish_run(
    run: &CampaignRun,
    job_file: &Path,
    out: &mut dyn Write,
    output: &Output,
) -> Result<Exit, Error> {
    let exit = run.exit();
    if !output.is_quiet() || exit != Exit::Done {
        let printed = tables::write_status_table(out, std::slice::from_ref(&run.status))
            .and_then(|()| out.flush());
        // A reader that went away does not change how the run ended.
        match printed {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
            _ => {}
        }
    }
    let ending = match &run.ending {
        Ending::Stopped(cause) => {
            output.error(format_args!(
                "stopped: {}; no batch was marked failed, the rest stay pending: fix this and run again",
                cause.explain()
            ));
            None
        }
        Ending::Interrupted => Some(
            "interrupted: in-flight attempts were recorded; run again to send the rest".to_owned(),
        ),
        Ending::TimeUp { next_due_ms: None } => Some(
            "time is up (--max-runtime): in-flight attempts were recorded, the rest stays pending for the next run".to_owned(),
        ),
        Ending::TimeUp {
            next_due_ms: Some(due),
        } => Some(format!(
            "time is up (--max-runtime) before the next retry is due at {} (in {}; the vendor may have asked to wait that long): the rest stays pending: run again then",
            rfc3339(*due),
            human_duration(Duration::from_millis((*due - now_ms()).max(0) as u64))
        )),
        Ending::VendorFailing { failures, window } => Some(format!(
            "the vendor is failing ({failures} of the last {window} attempts failed), try later: the rest stays pending"
        )),
        Ending::OutsideWindows {
            opens_at_ms: Some(opens),
        } => Some(format!(
            "outside the calling windows: what is left waits; the next window opens at {} (in {}): run again then",
            rfc3339(*opens),
            human_duration(Duration::from_millis((*opens - now_ms()).max(0) as u64))
        )),
        Ending::LimitReached { sent_orders } => Some(format!(
            "limit reached: this run sent {sent_orders} order(s) (--limit); the rest stays pending for the next run"
        )),
        Ending::OutsideWindows { opens_at_ms: None } => Some(
            "outside the calling windows, and none opens again within a year (see the job's [schedule]): what is left stays pending".to_owned(),
        ),
        Ending::Finished if exit == Exit::Attention => Some(format!(
            "finished; some orders need attention: see `nxcampaign orders {} --state <state>`",
            job_file.display()
        )),
        Ending::Finished => None,
    };
    if let Some(ending) = ending {
        output.notice(ending);
    }
    if run.has_news() && run.ending != Ending::Finished {
        output.notice(format_args!(
            "this run also left orders that need attention (exit 1): see `nxcampaign orders {} --state <state>`",
            job_file.display()
        ));
    }
    Ok(exit)
}

/// What reading took in, as one line (when there is something to say).
fn report_ingest(ingest: &IngestReport, output: &Output) {
    if ingest.rows > 0 {
        output.note(format_args!(
            "ingest: {} new row(s): {} order(s), {} invalid, {} duplicate(s), {} suppressed",
            ingest.rows, ingest.orders, ingest.invalid, ingest.duplicates, ingest.suppressed,
        ));
    }
    if ingest.interrupted {
        output.notice("ingest: stopped at a record boundary; what was read is kept, and the next run reads on from there");
    }
    if let Some(waiting) = &ingest.waiting {
        output.notice(format_args!(
            "ingest: waiting: {}",
            tables::terminal_safe(waiting)
        ));
    }
    if let Some(redials) = &ingest.redials {
        let mut line = format!(
            "redials: {} planned; {} contact(s) wait for a later attempt",
            redials.orders, redials.waiting
        );
        if let Some(due) = redials.next_due_ms {
            line.push_str(&format!(" (the next due at {})", rfc3339(due)));
        }
        if redials.awaiting_call > 0 {
            line.push_str(&format!(
                ", {} accepted without a call yet",
                redials.awaiting_call
            ));
        }
        output.note(line);
    }
}

fn describe_holder(holder: &LeaseHolder) -> String {
    let now = now_ms();
    format!(
        "pid {} on {} (for {}s, last heartbeat {}s ago)",
        holder.pid,
        holder.host,
        (now - holder.acquired_at_ms).max(0) / 1000,
        (now - holder.heartbeat_ms).max(0) / 1000
    )
}
