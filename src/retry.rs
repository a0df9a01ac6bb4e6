//! Pure retry policy: what an attempt's result means for its batch
//! (`classify`), and how long to wait before the next try (`delay`).
//!
//! The `backoff` crate (unmaintained, RUSTSEC-2025-0012) is used only here,
//! for the capped exponential schedule, so it can be swapped in this file.

use std::time::Duration;

use crate::job::{BreakerSettings, RetryPolicy};
use crate::nxlink::code;
use crate::nxlink::{Exchange, Reply, TransportError};
use crate::state::{BatchState, Verdict};

/// What to do with a batch after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Code 0: the task was created with every order of the batch.
    Accepted,
    /// The vendor refused the batch for good (41000, or a code we do not know).
    Rejected,
    /// It provably did not arrive (or was not processed): try again, not
    /// before `after` when the server said so.
    Retry { after: Option<Duration> },
    /// 1004: our clock is off; take the server's and try again at once.
    FixClock { server_offset_ms: Option<i64> },
    /// It may have arrived: hold the batch, never re-send it on our own.
    Uncertain,
    /// Nothing will work until a person fixes something: stop the run.
    Stop(StopCause),
}

/// Why a run must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// An authentication code (1000–1009 but 1004).
    Auth { code: i64 },
    /// An HTTP client error without a vendor code (a wrong URL, a proxy).
    Http { status: u16 },
    /// A redirect, never followed: the signed request is for the gateway
    /// alone.
    Redirect { status: u16, location: String },
    /// 1004 again right after a re-signed try: the clock cannot be put
    /// right from here. The offset is what the reply's `Date` said, if it
    /// said anything.
    Clock { server_offset_ms: Option<i64> },
    /// No connection could be made to a gateway that never answered this
    /// campaign (a name that does not resolve, a refused port): a
    /// configuration error, not the vendor's trouble.
    Unreachable { detail: String },
}

impl StopCause {
    /// The likely cause, for the person reading the message.
    pub fn explain(&self) -> String {
        match self {
            StopCause::Auth {
                code: code::MISSING_HEADER,
            } => "code 1001: a required header is missing (a proxy may strip headers)".into(),
            StopCause::Auth {
                code: code::WRONG_BIZ_TYPE_OR_ACTION,
            } => "code 1002: the gateway refused bizType/action or the body parameters (is api.base_url an NXLink gateway?)".into(),
            StopCause::Auth {
                code: code::INVALID_SIGNATURE,
            } => "code 1003: invalid signature: the access secret is probably wrong (or a proxy changed the body or Content-Type)".into(),
            StopCause::Auth {
                code: code::ACCESS_KEY_INVALID,
            } => "code 1005: the access key is invalid or lacks permission".into(),
            StopCause::Auth { code } => format!("code {code}: authentication failed"),
            StopCause::Http { status } => {
                format!("HTTP {status} without an NXLink reply: check api.base_url and any proxy in between")
            }
            StopCause::Redirect { status, location } => format!(
                "HTTP {status}: the gateway redirects to {location}; redirects are never followed \
                 (the signed request is for the gateway alone): check api.base_url"
            ),
            StopCause::Clock {
                server_offset_ms: Some(offset),
            } => format!(
                "code 1004 twice: the vendor refused the timestamp even after it was corrected by \
                 the {:.1} s its Date header showed between its clock and this machine's; check \
                 this machine's clock (NTP)",
                *offset as f64 / 1000.0
            ),
            StopCause::Unreachable { detail } => format!(
                "cannot connect to the gateway ({detail}), which has never answered this campaign: \
                 check api.base_url (or NXLINK_BASE_URL), and this machine's DNS and network"
            ),
            StopCause::Clock {
                server_offset_ms: None,
            } => "code 1004 twice: the vendor refused the timestamp and sent no Date header to \
                  correct it by; this machine's clock is probably more than 60 s away from the \
                  vendor's: set it right (NTP) and run again"
                .into(),
        }
    }
}

/// What came before an attempt, as far as what its result means depends
/// on it. The ledger and dispatch report the facts; only [`classify`]
/// draws conclusions from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct History {
    /// The vendor's code for the batch's previous attempt, if it got one.
    pub previous_code: Option<i64>,
    /// Whether the gateway ever answered this campaign (in this run, or by
    /// accepting or rejecting a batch of an earlier one).
    pub reached: bool,
}

impl History {
    /// The previous attempt got 1004 and was re-signed with the server's
    /// clock.
    fn after_clock_fix(&self) -> bool {
        self.previous_code == Some(code::TIMESTAMP_EXPIRED)
    }
}

/// Classifies one attempt's result. Every reply code and transport failure
/// is decided here and nowhere else, with the batch's and the campaign's
/// `history`: a second 1004 in a row stops the run, and a connection that
/// cannot be made to a gateway that never answered is a wrong address,
/// not an outage.
///
/// Only what provably was not processed is retried (a failed connect, 429
/// and 503, a 1004 once); everything that may follow a created task (88,
/// 99, any other 5xx, a reply that cannot be read) is held `Uncertain`,
/// because every `createandcall` creates a new task.
pub fn classify(exchange: &Exchange, history: &History) -> Decision {
    match exchange {
        Exchange::Transport(TransportError::NotSent { detail, .. }) if !history.reached => {
            Decision::Stop(StopCause::Unreachable {
                detail: detail.clone(),
            })
        }
        Exchange::Transport(TransportError::NotSent { .. }) => Decision::Retry { after: None },
        Exchange::Transport(TransportError::NoAnswer { .. })
        | Exchange::Transport(TransportError::TooLarge { .. }) => Decision::Uncertain,
        Exchange::Reply(reply) => classify_reply(reply, history.after_clock_fix()),
    }
}

fn classify_reply(reply: &Reply, after_clock_fix: bool) -> Decision {
    let success = (200..300).contains(&reply.http_status);
    let refused_unprocessed = matches!(reply.http_status, 429 | 503);
    // A body that carries an NXLink code is the vendor's word, whatever the
    // HTTP status around it: code 0 means the task exists (a retry would
    // create a second one), 88 and 99 that it may.
    match (reply.code, reply.http_status) {
        (Some(code::SUCCESS), _) => Decision::Accepted,
        (Some(code::REQUEST_FAILED | code::SYSTEM_ERROR), _) => Decision::Uncertain,
        (Some(code::TIMESTAMP_EXPIRED), _) if after_clock_fix => Decision::Stop(StopCause::Clock {
            server_offset_ms: reply.server_clock_offset_ms,
        }),
        (Some(code::TIMESTAMP_EXPIRED), _) => Decision::FixClock {
            server_offset_ms: reply.server_clock_offset_ms,
        },
        (Some(code), _) if code::AUTH_RANGE.contains(&code) => {
            Decision::Stop(StopCause::Auth { code })
        }
        (Some(code::PARAMETER_ERROR), _) => Decision::Rejected,
        // A code we do not know under a refusal that says nothing was
        // processed: as the refusal says.
        (Some(_), _) if refused_unprocessed => Decision::Retry {
            after: reply.retry_after,
        },
        (Some(_), 500..=599) => Decision::Uncertain,
        (Some(_), _) => Decision::Rejected,
        // No vendor body: the HTTP status alone. 429 and 503 are refused
        // before processing, as the HTTP standard has it.
        (None, _) if refused_unprocessed => Decision::Retry {
            after: reply.retry_after,
        },
        // Any other server error may come after the task was created.
        (None, 500..=599) => Decision::Uncertain,
        (None, 300..=399) => Decision::Stop(StopCause::Redirect {
            status: reply.http_status,
            location: reply.location.clone().unwrap_or_default(),
        }),
        // A success we cannot read: it may have been processed.
        (None, _) if success => Decision::Uncertain,
        (None, status) => Decision::Stop(StopCause::Http { status }),
    }
}

/// What happens to a batch after an attempt: the state to record and, for a
/// batch back to `pending`, how long it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub batch_state: BatchState,
    pub wait: Duration,
    /// The decision, as the ledger records it.
    pub verdict: Verdict,
    /// Whether the attempt counts against the batch's retry budget (a stop
    /// is not the batch's fault and does not).
    pub spends_budget: bool,
}

/// Turns a decision into the batch's next step, spending the retry budget.
/// `attempts_made` counts the tries of this round, the last one included.
pub fn next_step(
    decision: &Decision,
    policy: &RetryPolicy,
    attempts_made: u32,
    jitter: f64,
) -> Step {
    let step = |batch_state, wait, verdict| Step {
        batch_state,
        wait,
        verdict,
        spends_budget: !matches!(decision, Decision::Stop(_)),
    };
    match decision {
        Decision::Accepted => step(BatchState::Accepted, Duration::ZERO, Verdict::Accepted),
        Decision::Rejected => step(BatchState::Rejected, Duration::ZERO, Verdict::Rejected),
        Decision::Uncertain => step(BatchState::Uncertain, Duration::ZERO, Verdict::Uncertain),
        // It did not arrive: it waits, untouched, for the next run.
        Decision::Stop(_) => step(BatchState::Pending, Duration::ZERO, Verdict::Stop),
        Decision::Retry { .. } | Decision::FixClock { .. } if !may_retry(policy, attempts_made) => {
            step(BatchState::Failed, Duration::ZERO, Verdict::Failed)
        }
        Decision::Retry { after } => step(
            BatchState::Pending,
            delay(policy, attempts_made, *after, jitter),
            Verdict::Retry,
        ),
        // The clock is corrected before the next try, which can go at once.
        Decision::FixClock { .. } => step(BatchState::Pending, Duration::ZERO, Verdict::Retry),
    }
}

/// A failure-rate breaker: it opens when more than `failure_share` of the
/// last `window` attempts failed with errors worth retrying, so a failing
/// vendor pauses the run instead of burning every batch's attempts.
#[derive(Debug, Clone)]
pub struct Breaker {
    window: usize,
    failure_share: f64,
    /// The last attempts, newest last: true for a retryable failure.
    recent: std::collections::VecDeque<bool>,
    failures: usize,
}

impl Breaker {
    pub fn new(settings: &BreakerSettings) -> Breaker {
        let window = settings.window.get() as usize;
        Breaker {
            window,
            failure_share: settings.failure_share,
            recent: std::collections::VecDeque::with_capacity(window),
            failures: 0,
        }
    }

    /// Counts one attempt. Answers that say nothing about the vendor's
    /// health (a clock fix, a stop) are not counted. An uncertain outcome
    /// counts as a failure: a vendor answering 500 to everything must pause
    /// the run rather than leave every batch uncertain.
    pub fn record(&mut self, decision: &Decision) {
        let failed = match decision {
            Decision::Retry { .. } | Decision::Uncertain => true,
            Decision::Accepted | Decision::Rejected => false,
            Decision::FixClock { .. } | Decision::Stop(_) => return,
        };
        if self.recent.len() == self.window && self.recent.pop_front() == Some(true) {
            self.failures -= 1;
        }
        self.recent.push_back(failed);
        self.failures += usize::from(failed);
    }

    /// True once the window is full and too many of it failed.
    pub fn is_open(&self) -> bool {
        self.recent.len() == self.window
            && self.failures as f64 > self.failure_share * self.window as f64
    }

    /// Failures in the window, and the window's size.
    pub fn failures(&self) -> (usize, usize) {
        (self.failures, self.window)
    }
}

/// Whether a batch may be tried again after `attempts_made` tries in this
/// round.
pub fn may_retry(policy: &RetryPolicy, attempts_made: u32) -> bool {
    attempts_made < policy.max_attempts.get()
}

/// How long to wait after try number `attempts_made` (1-based) failed.
///
/// Full jitter: a uniform share (`jitter` in `[0, 1)`) of the capped
/// exponential ceiling `base * 2^(n-1)`, at most `max_delay`. A server's
/// `Retry-After` is a floor that nothing caps: the vendor said when.
pub fn delay(
    policy: &RetryPolicy,
    attempts_made: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let ceiling = exponential_ceiling(policy, attempts_made);
    let jittered = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
    jittered
        .min(policy.max_delay)
        .max(retry_after.unwrap_or(Duration::ZERO))
}

fn exponential_ceiling(policy: &RetryPolicy, attempts_made: u32) -> Duration {
    use backoff::backoff::Backoff as _;
    let mut schedule = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(policy.base_delay)
        .with_multiplier(2.0)
        .with_randomization_factor(0.0)
        .with_max_interval(policy.max_delay)
        .with_max_elapsed_time(None)
        .build();
    let mut ceiling = policy.base_delay;
    for _ in 0..attempts_made.clamp(1, 64) {
        ceiling = schedule.next_backoff().unwrap_or(policy.max_delay);
        if ceiling >= policy.max_delay {
            break;
        }
    }
    ceiling.min(policy.max_delay)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn reply(http_status: u16, code: Option<i64>) -> Exchange {
        Exchange::Reply(Reply {
            http_status,
            code,
            msg: None,
            req_id: None,
            retry_after: Some(Duration::from_secs(3)),
            server_clock_offset_ms: Some(90_000),
            location: None,
            elapsed: Duration::ZERO,
        })
    }

    /// A batch's first attempt, on a campaign whose gateway has answered.
    const FIRST: History = History {
        previous_code: None,
        reached: true,
    };

    fn check(exchange: Exchange, expected: Decision) {
        assert_eq!(classify(&exchange, &FIRST), expected, "{exchange:?}");
    }

    #[test]
    fn every_reply_and_failure_has_one_decision() {
        let after = Some(Duration::from_secs(3));
        check(reply(200, Some(0)), Decision::Accepted);
        check(reply(201, Some(0)), Decision::Accepted);
        check(reply(204, Some(0)), Decision::Accepted);
        check(reply(200, Some(41000)), Decision::Rejected);
        check(reply(400, Some(41000)), Decision::Rejected);
        // Code 0 is the vendor's word under any status: the task exists.
        check(reply(400, Some(0)), Decision::Accepted);
        check(reply(429, Some(0)), Decision::Accepted);
        check(reply(503, Some(0)), Decision::Accepted);
        check(reply(503, Some(99)), Decision::Uncertain);
        check(reply(429, Some(88)), Decision::Uncertain);
        check(reply(503, Some(41000)), Decision::Rejected);
        check(reply(503, Some(12345)), Decision::Retry { after });
        check(reply(500, Some(12345)), Decision::Uncertain);
        // 88, 99 and 5xx other than 503 may follow a created task.
        check(reply(200, Some(88)), Decision::Uncertain);
        check(reply(200, Some(99)), Decision::Uncertain);
        check(reply(429, None), Decision::Retry { after });
        check(reply(503, None), Decision::Retry { after });
        for status in [500, 501, 502, 504, 505, 599] {
            check(reply(status, None), Decision::Uncertain);
            check(reply(status, Some(0)), Decision::Accepted);
            check(reply(status, Some(99)), Decision::Uncertain);
        }
        check(reply(200, None), Decision::Uncertain);
        check(reply(299, None), Decision::Uncertain);
        for status in [301, 302, 307, 308] {
            check(
                reply(status, None),
                Decision::Stop(StopCause::Redirect {
                    status,
                    location: String::new(),
                }),
            );
        }
        check(
            Exchange::Transport(TransportError::TooLarge {
                http_status: 200,
                elapsed: Duration::ZERO,
            }),
            Decision::Uncertain,
        );
        check(
            reply(200, Some(1004)),
            Decision::FixClock {
                server_offset_ms: Some(90_000),
            },
        );
        for code in [1000, 1001, 1002, 1003, 1005, 1009] {
            check(
                reply(200, Some(code)),
                Decision::Stop(StopCause::Auth { code }),
            );
            check(
                reply(401, Some(code)),
                Decision::Stop(StopCause::Auth { code }),
            );
        }
        check(
            reply(404, None),
            Decision::Stop(StopCause::Http { status: 404 }),
        );
        check(reply(200, Some(12345)), Decision::Rejected);
        check(
            Exchange::Transport(TransportError::NotSent {
                detail: "refused".into(),
                elapsed: Duration::ZERO,
            }),
            Decision::Retry { after: None },
        );
        check(
            Exchange::Transport(TransportError::NoAnswer {
                detail: "timed out".into(),
                elapsed: Duration::ZERO,
            }),
            Decision::Uncertain,
        );
    }

    #[test]
    fn a_second_1004_in_a_row_stops_with_the_clock_explained() {
        assert_eq!(
            classify(
                &reply(200, Some(1004)),
                &History {
                    previous_code: Some(1004),
                    ..FIRST
                }
            ),
            Decision::Stop(StopCause::Clock {
                server_offset_ms: Some(90_000)
            })
        );
        let explained = StopCause::Clock {
            server_offset_ms: None,
        }
        .explain();
        assert!(explained.contains("no Date header"), "{explained}");
        assert!(StopCause::Clock {
            server_offset_ms: Some(90_000)
        }
        .explain()
        .contains("90.0 s"));
    }

    #[test]
    fn a_gateway_that_never_answered_is_a_wrong_address_not_an_outage() {
        let refused = Exchange::Transport(TransportError::NotSent {
            detail: "connection refused".into(),
            elapsed: Duration::ZERO,
        });
        assert_eq!(
            classify(&refused, &History::default()),
            Decision::Stop(StopCause::Unreachable {
                detail: "connection refused".into()
            })
        );
        assert_eq!(classify(&refused, &FIRST), Decision::Retry { after: None });
        // Another code before does not make a 1004 the second one.
        assert_eq!(
            classify(
                &reply(200, Some(1004)),
                &History {
                    previous_code: Some(99),
                    ..FIRST
                }
            ),
            Decision::FixClock {
                server_offset_ms: Some(90_000)
            }
        );
    }

    #[test]
    fn stop_causes_name_the_likely_fix() {
        let explain = |code| StopCause::Auth { code }.explain();
        assert!(explain(1001).contains("header"));
        assert!(explain(1002).contains("bizType/action"));
        assert!(explain(1003).contains("secret"));
        assert!(explain(1005).contains("access key"));
    }

    fn policy(max_attempts: u32, base_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: NonZeroU32::new(max_attempts).unwrap(),
            base_delay: Duration::from_millis(base_ms),
            max_delay: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let p = policy(10, 100, 1000);
        let ceilings: Vec<u64> = (1..=6)
            .map(|n| delay(&p, n, None, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn full_jitter_scales_the_ceiling() {
        let p = policy(10, 100, 1000);
        assert_eq!(delay(&p, 3, None, 0.0), Duration::ZERO);
        assert_eq!(delay(&p, 3, None, 0.5), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_is_a_floor_the_cap_does_not_cut() {
        let p = policy(10, 100, 1000);
        assert_eq!(
            delay(&p, 1, Some(Duration::from_millis(700)), 0.1),
            Duration::from_millis(700)
        );
        assert_eq!(
            delay(&p, 1, Some(Duration::from_secs(3600)), 0.1),
            Duration::from_secs(3600)
        );
        assert_eq!(delay(&p, 8, None, 1.0), Duration::from_millis(1000));
    }

    #[test]
    fn steps_spend_the_budget_and_never_resend_what_may_have_arrived() {
        let p = policy(2, 100, 1000);
        let retry = Decision::Retry { after: None };
        let check_step = |decision: &Decision, made: u32, state: BatchState, wait_ms: u64| {
            let step = next_step(decision, &p, made, 1.0);
            assert_eq!(
                (step.batch_state, step.wait),
                (state, Duration::from_millis(wait_ms)),
                "{decision:?} after {made}"
            );
        };
        check_step(&retry, 1, BatchState::Pending, 100);
        check_step(&retry, 2, BatchState::Failed, 0);
        check_step(
            &Decision::FixClock {
                server_offset_ms: None,
            },
            1,
            BatchState::Pending,
            0,
        );
        check_step(
            &Decision::FixClock {
                server_offset_ms: None,
            },
            2,
            BatchState::Failed,
            0,
        );
        check_step(&Decision::Uncertain, 1, BatchState::Uncertain, 0);
        check_step(&Decision::Accepted, 2, BatchState::Accepted, 0);
        check_step(&Decision::Rejected, 1, BatchState::Rejected, 0);
        check_step(
            &Decision::Stop(StopCause::Auth { code: 1003 }),
            2,
            BatchState::Pending,
            0,
        );
        let stop = next_step(&Decision::Stop(StopCause::Auth { code: 1003 }), &p, 1, 1.0);
        assert!(!stop.spends_budget, "a stop is not the batch's fault");
        assert!(next_step(&retry, &p, 1, 1.0).spends_budget);
    }

    #[test]
    fn the_breaker_opens_only_on_a_full_window_with_too_many_failures() {
        let settings = BreakerSettings {
            window: std::num::NonZeroU32::new(4).unwrap(),
            failure_share: 0.5,
        };
        let mut breaker = Breaker::new(&settings);
        let retry = Decision::Retry { after: None };
        for _ in 0..3 {
            breaker.record(&retry);
        }
        assert!(!breaker.is_open(), "three attempts are not a full window");
        breaker.record(&Decision::FixClock {
            server_offset_ms: None,
        });
        assert!(!breaker.is_open(), "a clock fix is not counted");
        breaker.record(&Decision::Accepted);
        assert!(breaker.is_open(), "3 of the last 4 failed: more than half");
        assert_eq!(breaker.failures(), (3, 4));
        breaker.record(&Decision::Accepted);
        assert!(!breaker.is_open(), "2 of the last 4 is not more than half");
        breaker.record(&Decision::Rejected);
        breaker.record(&Decision::Rejected);
        assert_eq!(breaker.failures(), (0, 4));
        breaker.record(&Decision::Uncertain);
        assert_eq!(
            breaker.failures(),
            (1, 4),
            "an uncertain outcome is a failure"
        );
    }

    #[test]
    fn the_budget_counts_every_try() {
        let p = policy(3, 1, 1);
        assert!(may_retry(&p, 1));
        assert!(may_retry(&p, 2));
        assert!(!may_retry(&p, 3));
    }
}
