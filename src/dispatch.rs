//! The run loop: take due batches from the ledger, send them under the
//! throttle, and record every attempt and outcome.
//!
//! It obeys a shutdown future, asks `retry` what every result means, and
//! reports through events; it never prints and never decides a retry itself.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::batch::BatchSeq;
use crate::clock::now_ms;
use crate::job::{BreakerSettings, RetryPolicy};
use crate::ledger::{AttemptResult, BatchToSend, Claim, Fence, Ledger, LedgerError, Runners};
use crate::nxlink::TaskSettings;
use crate::nxlink::{Client, Exchange};
use crate::retry::{self, Breaker, Decision, History, StopCause};
use crate::schedule::Schedule;
use crate::state::{BatchState, Verdict};
use crate::throttle::{InFlight, Throttle};

/// What a dispatch needs besides the ledger and the shutdown signal.
pub struct Dispatch {
    /// The campaign and the run's lease: every write checks it.
    pub fence: Fence,
    pub client: Arc<Client>,
    pub throttle: Throttle,
    pub task: TaskSettings,
    pub retry: RetryPolicy,
    pub breaker: BreakerSettings,
    /// Stop starting batches at this time (`run --max-runtime`).
    pub deadline: Option<Instant>,
    /// The rate limit every runner of a server ledger shares, on top of
    /// this run's own throttle.
    pub shared_rate: Option<SharedRate>,
    /// When each country's numbers may be called; `None`: at any time.
    pub schedule: Option<Schedule>,
    /// Orders this run may send at most (`run --limit`).
    pub most_orders: Option<u64>,
    /// The job's `[redial]`: redials are re-checked as they are claimed.
    pub redial: Option<crate::redial::Policy>,
}

/// A request rate shared through the ledger by every runner using `key`.
#[derive(Debug, Clone)]
pub struct SharedRate {
    /// Where the bucket is kept: the server ledger all runners share.
    pub runners: Runners,
    /// Who shares it: an account or a campaign.
    pub key: String,
    /// One request per period…
    pub period: Duration,
    /// …and this much burst.
    pub tolerance: Duration,
}

/// Something worth telling the person watching.
#[derive(Debug, Clone)]
pub enum Event {
    /// One attempt ended.
    Attempted(AttemptReport),
    /// The clock was corrected after a 1004.
    ClockCorrected { offset_ms: i64 },
}

/// One attempt, as reported.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub seq: BatchSeq,
    pub country: String,
    pub orders: usize,
    pub attempt: u32,
    /// The batch's state after the attempt.
    pub state: BatchState,
    pub code: Option<i64>,
    /// The HTTP status of the reply; `None` when none came.
    pub http_status: Option<u16>,
    pub message: Option<String>,
    /// The vendor's id of its reply.
    pub req_id: Option<String>,
    /// For a batch back to `pending`: how long until it is tried again.
    pub retry_in: Option<Duration>,
}

impl AttemptReport {
    /// Why the attempt did not simply succeed, in a few words: `code 99`,
    /// `HTTP 503`, `no connection`.
    pub fn reason(&self) -> String {
        match (self.code, self.http_status) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "no reply".to_owned(),
        }
    }
}

/// How a dispatch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// No batch is pending any more.
    Finished,
    /// The shutdown signal came: in-flight attempts were recorded, the rest
    /// is still pending.
    Interrupted,
    /// The deadline came, or every batch left waits for a retry past it
    /// (the first due then, Unix ms).
    TimeUp { next_due_ms: Option<i64> },
    /// Too many recent attempts failed with retryable errors: the vendor is
    /// failing, so the rest waits for a later run.
    VendorFailing { failures: usize, window: usize },
    /// A reply showed that nothing will work until someone fixes something.
    Stopped(StopCause),
    /// What is left waits for its countries' calling windows: the next one
    /// opens then (Unix ms), if any does.
    OutsideWindows { opens_at_ms: Option<i64> },
    /// The run sent as many orders as it may (`--limit`): the next due
    /// batch would pass the cap.
    LimitReached { sent_orders: u64 },
}

/// Batches marked `sending` in one durable write at most.
const MOST_TAKEN_AT_ONCE: usize = 32;

/// The loop's mutable state.
struct Flight {
    in_flight: JoinSet<Result<Finished, LedgerError>>,
    ending: Option<Ending>,
    /// Until the vendor has answered once, batches go one at a time, so a
    /// wrong secret or URL costs a single request.
    vendor_confirmed: bool,
    breaker: Breaker,
    /// Orders in the batches this run took.
    taken_orders: u64,
    /// Whether the gateway ever answered this campaign (in this run, or a
    /// batch of an earlier one was accepted or rejected).
    reached: bool,
}

impl Dispatch {
    /// Sends every due batch of the campaign, then returns how it ended.
    /// While ingest is still planning (`planned` is its feed's other end),
    /// running out of due batches means waiting for the next plan; the
    /// dispatch finishes once ingest is done and nothing is pending.
    ///
    /// Whatever the ending, attempts in flight finish and are recorded
    /// before it returns, unless the run lost its lease: then nothing more
    /// is written and the error says who took the campaign.
    pub async fn run(
        &self,
        ledger: &Ledger,
        shutdown: impl Future<Output = ()>,
        mut planned: Option<watch::Receiver<()>>,
        events: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Ending, LedgerError> {
        let deadline = self.deadline;
        let stop = async move {
            tokio::select! {
                () = shutdown => Ending::Interrupted,
                () = sleep_until_deadline(deadline) => Ending::TimeUp { next_due_ms: None },
            }
        }
        .fuse();
        tokio::pin!(stop);
        let mut flight = Flight {
            in_flight: JoinSet::new(),
            ending: None,
            vendor_confirmed: false,
            breaker: Breaker::new(&self.breaker),
            taken_orders: 0,
            reached: {
                let status = ledger.status(self.fence.campaign, "").await?;
                status.batches_in(BatchState::Accepted) + status.batches_in(BatchState::Rejected)
                    > 0
            },
        };

        while flight.ending.is_none() {
            // Record what ended while we were waiting.
            while let Some(done) = flight.in_flight.try_join_next() {
                self.handle(done, &mut flight, events)?;
            }
            if flight.ending.is_some() {
                break;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                // No batch starts after the deadline, whatever else is ready.
                flight.ending = Some(Ending::TimeUp { next_due_ms: None });
                break;
            }
            let probing = !flight.vendor_confirmed && !flight.in_flight.is_empty();
            if probing {
                self.wait_for_attempt(&mut flight, &mut stop, events)
                    .await?;
                continue;
            }

            // Until the vendor answered once, one batch at a time.
            let most = if flight.vendor_confirmed {
                MOST_TAKEN_AT_ONCE
            } else {
                1
            };
            let mut permits = tokio::select! {
                permits = self.throttle.admit(most) => permits,
                Some(done) = flight.in_flight.join_next() => {
                    self.handle(done, &mut flight, events)?;
                    continue;
                }
                ending = &mut stop => {
                    flight.ending = Some(ending);
                    continue;
                }
            };
            if self.shared_rate.is_some() {
                // One batch per reservation of the shared bucket.
                permits.truncate(1);
            }
            // With calling windows, the shared slot is waited for before
            // the claim, so that no batch waits for the rate limit after
            // its window was checked (a wasted slot is the price).
            let reserve_first = self.schedule.is_some();
            if let Some(shared) = self.shared_rate.as_ref().filter(|_| reserve_first) {
                let wait = shared
                    .runners
                    .reserve_request(&shared.key, shared.period, shared.tolerance)
                    .await?;
                tokio::time::sleep(wait).await;
            }
            // Only countries inside a calling window now, checked just
            // before the claim that makes the batches `sending`.
            let open = self.open_countries(ledger).await?;
            // The requests' `ts` is taken before the lease is checked (in
            // the take), so a request held up after the check carries a
            // `ts` the vendor refuses once its window has passed.
            let ts = self.client.ts_now();
            let left = self
                .most_orders
                .map(|most| most.saturating_sub(flight.taken_orders));
            let claim = Claim {
                now_ms: now_ms(),
                batches: permits.len(),
                orders: left,
                countries: open.as_deref(),
                redial: self.redial.as_ref(),
            };
            let batches = ledger.take_due_batches(&self.fence, &claim).await?;
            flight.taken_orders += batches.iter().map(|b| b.orders.len() as u64).sum::<u64>();
            if !batches.is_empty() {
                if let Some(shared) = self.shared_rate.as_ref().filter(|_| !reserve_first) {
                    // The slot is reserved as late as can be, so that the
                    // request reaches the vendor when the bucket says, not
                    // a claim's latency later; the wait is short (a slot
                    // per runner ahead at most), and the batch is already
                    // `sending`, so it is not cut short by a stop.
                    let wait = shared
                        .runners
                        .reserve_request(&shared.key, shared.period, shared.tolerance)
                        .await?;
                    tokio::time::sleep(wait).await;
                }
                for (batch, permit) in batches.into_iter().zip(permits.drain(..)) {
                    flight.in_flight.spawn(attempt(
                        self.context(ledger, flight.reached),
                        batch,
                        ts,
                        permit,
                    ));
                }
                continue;
            }
            drop(permits);

            // Nothing is due now: wait for an attempt to end, or for the
            // next retry to come due, or finish.
            if !flight.in_flight.is_empty() {
                self.wait_for_attempt(&mut flight, &mut stop, events)
                    .await?;
                continue;
            }
            let due_ms = ledger
                .next_due_at(self.fence.campaign, open.as_deref())
                .await?;
            if left.is_some() && due_ms.is_some_and(|due| due <= claim.now_ms) {
                // Due, yet not taken: it would pass the cap.
                flight.ending = Some(Ending::LimitReached {
                    sent_orders: flight.taken_orders,
                });
                continue;
            }
            let Some(feed) = planned.as_mut() else {
                let Some(due_ms) = due_ms else {
                    flight.ending = Some(self.nothing_due(ledger).await?);
                    continue;
                };
                let wait = Duration::from_millis((due_ms - now_ms()).max(1) as u64);
                if deadline.is_some_and(|deadline| Instant::now() + wait > deadline) {
                    // The next retry falls after the deadline: leave it
                    // pending, and say when it is due.
                    flight.ending = Some(Ending::TimeUp {
                        next_due_ms: Some(due_ms),
                    });
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    ending = &mut stop => flight.ending = Some(ending),
                }
                continue;
            };
            // Ingest is still reading: wait for its next plan (or its end),
            // or for a retry to come due.
            let retry_due = async {
                match due_ms {
                    Some(due_ms) => {
                        let wait = (due_ms - now_ms()).max(1) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                more = feed.changed() => {
                    if more.is_err() {
                        planned = None;
                    }
                }
                () = retry_due => {}
                ending = &mut stop => flight.ending = Some(ending),
            }
        }

        while let Some(done) = flight.in_flight.join_next().await {
            self.handle(done, &mut flight, events)?;
        }
        Ok(flight.ending.unwrap_or(Ending::Finished))
    }

    /// The countries whose calling window is open now, among those with
    /// pending batches; `None` without a schedule (every country).
    async fn open_countries(&self, ledger: &Ledger) -> Result<Option<Vec<String>>, LedgerError> {
        let Some(schedule) = &self.schedule else {
            return Ok(None);
        };
        let windows = ledger.pending_windows(self.fence.campaign).await?;
        let now = now_ms();
        Ok(Some(
            windows
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| schedule.open_until(key, now).is_some())
                .collect(),
        ))
    }

    /// How the dispatch ends when nothing it may send is due and nothing
    /// more will be planned: finished, or waiting for calling windows
    /// (when the next one opens).
    async fn nothing_due(&self, ledger: &Ledger) -> Result<Ending, LedgerError> {
        let Some(schedule) = &self.schedule else {
            return Ok(Ending::Finished);
        };
        let waiting = ledger.pending_windows(self.fence.campaign).await?;
        if waiting.is_empty() {
            return Ok(Ending::Finished);
        }
        let now = now_ms();
        let opens_at_ms = waiting
            .iter()
            .filter_map(|(key, _)| schedule.next_open(key, now))
            .min();
        Ok(Ending::OutsideWindows { opens_at_ms })
    }

    /// Waits for one attempt to end (and records it), or for the stop.
    async fn wait_for_attempt(
        &self,
        flight: &mut Flight,
        stop: &mut (impl Future<Output = Ending> + Unpin),
        events: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), LedgerError> {
        tokio::select! {
            Some(done) = flight.in_flight.join_next() => self.handle(done, flight, events)?,
            ending = stop => flight.ending = Some(ending),
        }
        Ok(())
    }

    fn context(&self, ledger: &Ledger, reached: bool) -> AttemptContext {
        AttemptContext {
            reached,
            ledger: ledger.clone(),
            fence: self.fence.clone(),
            client: Arc::clone(&self.client),
            task: self.task.clone(),
            retry: self.retry,
        }
    }

    fn handle(
        &self,
        done: Result<Result<Finished, LedgerError>, tokio::task::JoinError>,
        flight: &mut Flight,
        events: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), LedgerError> {
        let finished = match done {
            Ok(finished) => finished?,
            // An attempt task panicked: its batch stays `sending` and the
            // next run marks it uncertain. Nothing else can be trusted now.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        flight.breaker.record(&finished.decision);
        flight.reached |= finished.reached;
        match &finished.decision {
            Decision::Accepted | Decision::Rejected => flight.vendor_confirmed = true,
            Decision::FixClock {
                server_offset_ms: Some(offset_ms),
            } => events(Event::ClockCorrected {
                offset_ms: *offset_ms,
            }),
            _ => {}
        }
        match (&finished.decision, &flight.ending) {
            // A stop outranks every other ending: it needs a person.
            (Decision::Stop(cause), ending) if !matches!(ending, Some(Ending::Stopped(_))) => {
                flight.ending = Some(Ending::Stopped(cause.clone()));
            }
            (_, None) if flight.breaker.is_open() => {
                let (failures, window) = flight.breaker.failures();
                flight.ending = Some(Ending::VendorFailing { failures, window });
            }
            _ => {}
        }
        events(Event::Attempted(finished.report));
        Ok(())
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// What an attempt task owns.
struct AttemptContext {
    ledger: Ledger,
    fence: Fence,
    client: Arc<Client>,
    task: TaskSettings,
    retry: RetryPolicy,
    /// Whether the gateway ever answered this campaign: until it has, a
    /// connection that cannot be made is a wrong address, not an outage.
    reached: bool,
}

/// What an attempt task hands back to the loop.
struct Finished {
    decision: Decision,
    /// The gateway answered (any HTTP reply).
    reached: bool,
    report: AttemptReport,
}

/// One attempt of one batch, already durably `sending`: send (signed with
/// `ts`), classify, record. The place in flight is held until the outcome
/// is recorded.
#[tracing::instrument(skip_all, fields(batch = batch.seq.get(), attempt = batch.attempt, orders = batch.orders.len()))]
async fn attempt(
    ctx: AttemptContext,
    batch: BatchToSend,
    ts: i64,
    in_flight: InFlight,
) -> Result<Finished, LedgerError> {
    let exchange = ctx
        .client
        .create_and_call(&ctx.task, &batch.country, batch.seq, &batch.orders, ts)
        .await;
    let history = History {
        previous_code: batch.previous_code,
        reached: ctx.reached,
    };
    let decision = retry::classify(&exchange, &history);
    let reached = matches!(exchange, Exchange::Reply(_));
    if let Decision::FixClock {
        server_offset_ms: Some(offset_ms),
    } = decision
    {
        ctx.client.correct_clock(offset_ms);
    }
    let jitter: f64 = rand::thread_rng().gen();
    let step = retry::next_step(&decision, &ctx.retry, batch.attempt_in_round, jitter);

    let (http_status, code, req_id) = match &exchange {
        Exchange::Reply(reply) => (Some(reply.http_status), reply.code, reply.req_id.clone()),
        Exchange::Transport(_) => (None, None, None),
    };
    let message = exchange.message();
    let finished_at_ms = now_ms();
    let result = AttemptResult {
        finished_at_ms,
        duration_ms: exchange.elapsed().as_millis() as i64,
        http_status,
        code,
        message: message.clone(),
        req_id: req_id.clone(),
        decision: step.verdict,
        batch_state: step.batch_state,
        not_before_ms: finished_at_ms + step.wait.as_millis() as i64,
        spends_budget: step.spends_budget,
    };
    ctx.ledger
        .finish_attempt(&ctx.fence, batch.seq, batch.attempt, &result)
        .await?;
    tracing::info!(
        batch = batch.seq.get(),
        country = %batch.country,
        orders = batch.orders.len(),
        attempt = batch.attempt,
        state = step.batch_state.as_str(),
        code = ?code,
        req_id = req_id.as_deref().unwrap_or(""),
        "attempt recorded"
    );
    drop(in_flight);
    Ok(Finished {
        decision,
        reached,
        report: AttemptReport {
            seq: batch.seq,
            country: batch.country,
            orders: batch.orders.len(),
            attempt: batch.attempt,
            state: step.batch_state,
            code,
            http_status,
            message,
            req_id,
            retry_in: (step.batch_state == BatchState::Pending && step.verdict == Verdict::Retry)
                .then_some(step.wait),
        },
    })
}
