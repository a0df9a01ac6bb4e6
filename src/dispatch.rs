//! The run loop: take due batches from the ledger, send them under the
//! throttle, and record every attempt and outcome.
//!
//! It obeys a shutdown future, asks `retry` what every result means, and
//! reports through events; it never prints and never decides a retry itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;

use crate::job::{RetryPolicy, TaskSettings};
use crate::ledger::{AttemptResult, BatchToSend, CampaignId, Ledger, LedgerError};
use crate::nxlink::client::now_ms;
use crate::nxlink::{wire, Client, Exchange};
use crate::outcome::BatchState;
use crate::retry::{self, Decision, StopCause};
use crate::throttle::{InFlight, Throttle};

/// What a dispatch needs besides the ledger and the shutdown signal.
pub struct Dispatch {
    pub campaign: CampaignId,
    pub client: Arc<Client>,
    pub throttle: Throttle,
    pub task: TaskSettings,
    pub retry: RetryPolicy,
}

/// Something worth telling the person watching.
#[derive(Debug, Clone)]
pub enum Event {
    /// Batches found in `sending` at start were marked `uncertain`.
    RecoveredUncertain { batches: u64 },
    /// One attempt ended.
    Attempted(AttemptReport),
    /// The clock was corrected after a 1004.
    ClockCorrected { offset_ms: i64 },
}

/// One attempt, as reported.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub seq: u32,
    pub country: String,
    pub orders: usize,
    pub attempt: u32,
    /// The batch's state after the attempt.
    pub state: BatchState,
    pub code: Option<i64>,
    pub message: Option<String>,
    /// For a batch back to `pending`: how long until it is tried again.
    pub retry_in: Option<Duration>,
}

/// How a dispatch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// No batch is pending any more.
    Finished,
    /// The shutdown signal came: in-flight attempts were recorded, the rest
    /// is still pending.
    Interrupted,
    /// A reply showed that nothing will work until someone fixes something.
    Stopped(StopCause),
}

impl Dispatch {
    /// Sends every due batch of the campaign, then returns how it ended.
    ///
    /// Batches found in `sending` (a run died mid-request) become
    /// `uncertain` first: they are never re-sent on their own.
    pub async fn run(
        &self,
        ledger: &Ledger,
        shutdown: impl Future<Output = ()>,
        events: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Ending, LedgerError> {
        let recovered = ledger
            .mark_interrupted_uncertain(self.campaign, now_ms())
            .await?;
        if recovered > 0 {
            events(Event::RecoveredUncertain { batches: recovered });
        }

        tokio::pin!(shutdown);
        let mut in_flight: JoinSet<Result<Finished, LedgerError>> = JoinSet::new();
        let mut ending: Option<Ending> = None;
        // Until the vendor has answered once, send one batch at a time, so a
        // wrong secret or URL costs a single request.
        let mut vendor_confirmed = false;

        loop {
            // Record what ended while we were waiting.
            while let Some(done) = in_flight.try_join_next() {
                self.handle(done, &mut ending, &mut vendor_confirmed, events)?;
            }
            if ending.is_some() {
                break;
            }
            if !vendor_confirmed && !in_flight.is_empty() {
                tokio::select! {
                    Some(done) = in_flight.join_next() => self.handle(done, &mut ending, &mut vendor_confirmed, events)?,
                    () = &mut shutdown => ending = Some(Ending::Interrupted),
                }
                continue;
            }

            let permit = tokio::select! {
                permit = self.throttle.admit() => permit,
                Some(done) = in_flight.join_next() => {
                    self.handle(done, &mut ending, &mut vendor_confirmed, events)?;
                    continue;
                }
                () = &mut shutdown => {
                    ending = Some(Ending::Interrupted);
                    continue;
                }
            };
            if let Some(batch) = ledger.take_due_batch(self.campaign, now_ms()).await? {
                in_flight.spawn(attempt(self.context(ledger), batch, permit));
                continue;
            }
            drop(permit);

            // Nothing is due now: wait for an attempt to end, for the next
            // retry to come due, or finish.
            if in_flight.is_empty() {
                match ledger.next_due_at(self.campaign).await? {
                    None => {
                        ending = Some(Ending::Finished);
                        continue;
                    }
                    Some(due_ms) => {
                        let wait = Duration::from_millis((due_ms - now_ms()).max(1) as u64);
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = &mut shutdown => ending = Some(Ending::Interrupted),
                        }
                    }
                }
            } else {
                tokio::select! {
                    Some(done) = in_flight.join_next() => self.handle(done, &mut ending, &mut vendor_confirmed, events)?,
                    () = &mut shutdown => ending = Some(Ending::Interrupted),
                }
            }
        }

        // Let in-flight attempts finish and be recorded, whatever the ending.
        while let Some(done) = in_flight.join_next().await {
            self.handle(done, &mut ending, &mut vendor_confirmed, events)?;
        }
        Ok(ending.unwrap_or(Ending::Finished))
    }

    fn context(&self, ledger: &Ledger) -> AttemptContext {
        AttemptContext {
            ledger: ledger.clone(),
            campaign: self.campaign,
            client: Arc::clone(&self.client),
            task: self.task.clone(),
            retry: self.retry,
        }
    }

    fn handle(
        &self,
        done: Result<Result<Finished, LedgerError>, tokio::task::JoinError>,
        ending: &mut Option<Ending>,
        vendor_confirmed: &mut bool,
        events: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), LedgerError> {
        let finished = match done {
            Ok(finished) => finished?,
            // An attempt task panicked: its batch stays `sending` and the
            // next run marks it uncertain. Nothing else can be trusted now.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match &finished.decision {
            Decision::Accepted | Decision::Rejected => *vendor_confirmed = true,
            Decision::FixClock {
                server_offset_ms: Some(offset_ms),
            } => events(Event::ClockCorrected {
                offset_ms: *offset_ms,
            }),
            // A stop outranks an interruption: it needs a person, not a retry.
            Decision::Stop(cause) if !matches!(ending, Some(Ending::Stopped(_))) => {
                *ending = Some(Ending::Stopped(*cause));
            }
            _ => {}
        }
        events(Event::Attempted(finished.report));
        Ok(())
    }
}

/// What an attempt task owns.
struct AttemptContext {
    ledger: Ledger,
    campaign: CampaignId,
    client: Arc<Client>,
    task: TaskSettings,
    retry: RetryPolicy,
}

/// What an attempt task hands back to the loop.
struct Finished {
    decision: Decision,
    report: AttemptReport,
}

/// One attempt of one batch, already durably `sending`: send, classify,
/// record. The place in flight is held until the outcome is recorded.
#[tracing::instrument(skip_all, fields(batch = batch.seq, attempt = batch.attempt, orders = batch.orders.len()))]
async fn attempt(
    ctx: AttemptContext,
    batch: BatchToSend,
    in_flight: InFlight,
) -> Result<Finished, LedgerError> {
    let body = wire::create_and_call_body(&ctx.task, &batch.country, batch.seq, &batch.orders);
    let exchange = ctx.client.create_and_call(body).await;
    let decision = retry::classify(&exchange);
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
        req_id,
        decision: step.word,
        batch_state: step.batch_state,
        not_before_ms: finished_at_ms + step.wait.as_millis() as i64,
    };
    ctx.ledger
        .finish_attempt(ctx.campaign, batch.seq, batch.attempt, &result)
        .await?;
    drop(in_flight);
    Ok(Finished {
        decision,
        report: AttemptReport {
            seq: batch.seq,
            country: batch.country,
            orders: batch.orders.len(),
            attempt: batch.attempt,
            state: step.batch_state,
            code,
            message,
            retry_in: (step.batch_state == BatchState::Pending && step.word == "retry")
                .then_some(step.wait),
        },
    })
}
