//! A run's progress: every attempt that did not simply succeed, a running
//! count of accepted batches, and bars for reading and sending at a
//! terminal.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tables::terminal_safe;
use super::Output;
use crate::dispatch::{AttemptReport, Event};
use crate::meter::Reading;
use crate::state::BatchState;

/// Shows a run's progress on stderr: every attempt that did not simply
/// succeed, and a running count of accepted batches at most once a second.
pub struct Progress {
    output: Output,
    /// Bars for reading and sending, when stderr is a terminal.
    bars: Option<Bars>,
    started: Instant,
    last_shown: Instant,
    accepted_batches: u64,
    accepted_orders: u64,
    /// Accepted batches when the count was last shown.
    shown_batches: u64,
    /// Batches whose attempt in this run left them in a state that needs
    /// attention (rejected, failed, uncertain).
    attention: u64,
    tally: RunTally,
}

/// What this run's attempts did, for its summary and metrics.
#[derive(Debug, Clone, Default)]
pub struct RunTally {
    pub attempts: u64,
    /// Attempts by the batch state they left (retries leave `pending`).
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Attempts to be tried again, by why (`HTTP 503`, `no reply`).
    pub retries: std::collections::BTreeMap<String, u64>,
}

impl Progress {
    pub fn new(output: &Output) -> Progress {
        let now = Instant::now();
        Progress {
            output: output.clone(),
            bars: Bars::start(output),
            started: now,
            last_shown: now,
            accepted_batches: 0,
            accepted_orders: 0,
            shown_batches: 0,
            attention: 0,
            tally: RunTally::default(),
        }
    }

    /// The voice progress speaks with, for the rest of the run.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Sending will take `orders` already planned, besides those that
    /// reading plans: the total the sending bar counts to.
    /// Whether [`Progress::expect`] is worth a query: bars are shown.
    pub fn shows_totals(&self) -> bool {
        self.bars.is_some()
    }

    pub fn expect(&mut self, orders: u64) {
        if let Some(bars) = &mut self.bars {
            bars.expect(orders);
        }
    }

    pub fn on_event(&mut self, event: Event) {
        if let Event::Attempted(report) = &event {
            if let (Some(bars), false) = (&self.bars, report.state == BatchState::Pending) {
                bars.sent(report.orders as u64);
            }
            self.tally.attempts += 1;
            *self
                .tally
                .outcomes
                .entry(report.state.as_str())
                .or_default() += 1;
            if report.retry_in.is_some() {
                *self.tally.retries.entry(report.reason()).or_default() += 1;
            }
        }
        match event {
            Event::ClockCorrected { offset_ms } => self.output.note(format_args!(
                "clock: the server's clock is {offset_ms} ms from ours; correcting ts and retrying"
            )),
            Event::Attempted(report) if report.state == BatchState::Accepted => {
                self.accepted_batches += 1;
                self.accepted_orders += report.orders as u64;
                if self.last_shown.elapsed() >= progress_every(&self.output) {
                    self.show_count();
                }
            }
            Event::Attempted(report) if report.state.needs_attention() => {
                self.attention += 1;
                self.output.notice(describe_attempt(&report))
            }
            Event::Attempted(report) => self.output.note(describe_attempt(&report)),
        }
    }

    /// What this run's attempts did.
    pub fn tally(&self) -> &RunTally {
        &self.tally
    }

    /// Batches this run left needing attention (rejected, failed,
    /// uncertain), as its attempts ended.
    pub fn attention(&self) -> u64 {
        self.attention
    }

    /// The final count, once the run is over.
    pub fn finish(&mut self) {
        if let Some(bars) = self.bars.take() {
            bars.finish();
        }
        if self.accepted_batches != self.shown_batches {
            self.show_count();
        }
    }

    fn show_count(&mut self) {
        self.last_shown = Instant::now();
        if self.bars.is_some() {
            // The bar shows the count already.
            self.shown_batches = self.accepted_batches;
            return;
        }
        self.shown_batches = self.accepted_batches;
        self.output.note(format_args!(
            "progress: {} batch(es), {} order(s) accepted in {:.1}s",
            self.accepted_batches,
            self.accepted_orders,
            self.started.elapsed().as_secs_f64()
        ));
    }
}

/// Progress bars on a terminal: one for reading the contact file (bytes,
/// rows), one for sending (orders that ended, of those planned), each with
/// its percentage, rate and time left. Each appears once it has something
/// to count (never as "100% 0/0"). Reading's numbers come from the
/// output's [`Reading`], which a thread copies into the bars.
struct Bars {
    output: Output,
    shown: Shown,
    /// Orders planned before this run: the sending total is these and
    /// those reading plans.
    expected: Arc<AtomicU64>,
    stop: std::sync::mpsc::Sender<()>,
    copier: std::thread::JoinHandle<()>,
}

/// The bars, shown or not yet.
#[derive(Clone)]
struct Shown {
    multi: indicatif::MultiProgress,
    reading: indicatif::ProgressBar,
    sending: indicatif::ProgressBar,
}

impl Bars {
    /// Bars, when the output draws them.
    fn start(output: &Output) -> Option<Bars> {
        use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
        if !output.draws_bars() {
            return None;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let reading = ProgressBar::hidden().with_prefix("reading").with_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {msg} {bytes_per_sec} ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let sending = ProgressBar::hidden().with_prefix("sending").with_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {percent:>3}% {pos}/{len} orders {rate} ETA {eta}",
            )
            .expect("a valid template")
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.0}/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
        );
        let shown = Shown {
            multi: multi.clone(),
            reading,
            sending,
        };
        let expected = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = std::sync::mpsc::channel();
        let copier = {
            let shown = shown.clone();
            let expected = Arc::clone(&expected);
            let reading = output.reading();
            std::thread::spawn(move || loop {
                shown.copy(&reading, &expected);
                if stopped.recv_timeout(Duration::from_millis(100)).is_ok() {
                    return;
                }
            })
        };
        output.show_bars(Some(multi));
        Some(Bars {
            output: output.clone(),
            shown,
            expected,
            stop,
            copier,
        })
    }

    /// Sending counts to `orders` and what reading plans.
    fn expect(&mut self, orders: u64) {
        self.expected.store(orders, Relaxed);
        self.shown.sending.reset_elapsed();
    }

    /// `orders` were sent and ended (in any state but pending).
    fn sent(&self, orders: u64) {
        self.shown.sending.inc(orders);
    }

    /// Leaves the bars on screen as they ended.
    fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.copier.join();
        self.shown.copy(&self.output.reading(), &self.expected);
        if !self.shown.reading.is_hidden() {
            self.shown.reading.finish();
        }
        if !self.shown.sending.is_hidden() {
            self.shown.sending.abandon();
        }
        self.output.show_bars(None);
    }
}

impl Shown {
    /// Copies where reading has got to into the bars, and puts each on
    /// screen once it has something to count. Called by one thread at a
    /// time: the copier, then (once it has stopped) `finish`.
    fn copy(&self, reading: &Reading, expected: &AtomicU64) {
        let now = reading.snapshot();
        if now.bytes_total > 0 {
            if self.reading.is_hidden() {
                self.multi.insert(0, self.reading.clone());
            }
            self.reading.set_length(now.bytes_total);
            self.reading.set_position(now.bytes);
            self.reading.set_message(format!("{} rows", now.rows));
            if now.done && !self.reading.is_finished() {
                self.reading.finish();
            }
        }
        let total = expected.load(Relaxed) + now.planned;
        if total > 0 {
            if self.sending.is_hidden() {
                self.multi.add(self.sending.clone());
            }
            self.sending.set_length(total.max(self.sending.position()));
        }
    }
}

/// How often the running count is shown: every second to a person at a
/// terminal, every ten seconds to a log.
fn progress_every(output: &Output) -> Duration {
    if output.inner.terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    }
}

fn describe_attempt(report: &AttemptReport) -> String {
    let what = match (report.state, report.retry_in) {
        (BatchState::Pending, Some(wait)) => format!("retry in {:.2}s", wait.as_secs_f64()),
        (BatchState::Pending, None) => "left pending".to_owned(),
        (state, _) => state.as_str().to_owned(),
    };
    let code = report
        .code
        .map(|c| format!(" code {c}"))
        .unwrap_or_default();
    let message = report
        .message
        .as_deref()
        .map(|m| format!(": {}", terminal_safe(m)))
        .unwrap_or_default();
    // What the vendor's support asks for, where a person may ask them.
    let req_id = report
        .req_id
        .as_deref()
        .filter(|_| report.state.needs_attention())
        .map(|id| format!(" (reqId {})", terminal_safe(id)))
        .unwrap_or_default();
    format!(
        "batch #{} {} ({} orders) attempt {}: {what}{code}{message}{req_id}",
        report.seq, report.country, report.orders, report.attempt
    )
}
