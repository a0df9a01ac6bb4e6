//! Redials: which contacts are called again, and when, from the calls the
//! ledger holds (pure: the calls and the time are given).
//!
//! A *contact* is a row of the contact file: its first order, and the
//! redial orders planned after it (each an order of its own, with a new
//! order id). Every call of any of its orders counts, the vendor's own
//! redials included.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::tz::TimeZone;

/// How an unanswered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    NoAnswer,
    Busy,
    Rejected,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::NoAnswer,
        Outcome::Busy,
        Outcome::Rejected,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == raw.trim().to_ascii_lowercase())
    }
}

/// What an unanswered call's `hangupCode` or `callStatus` says, when no
/// `[redial.codes]` entry says otherwise. The vendor documents neither:
/// the numbers are Q.850 causes (what SIP gateways report), the words
/// what dialers commonly write. Anything else is a no-answer.
const DEFAULT_CODES: &[(&str, Outcome)] = &[
    // Q.850 cause values.
    ("1", Outcome::Failed),     // unallocated number
    ("3", Outcome::Failed),     // no route to destination
    ("16", Outcome::NoAnswer),  // normal clearing, without an answer
    ("17", Outcome::Busy),      // user busy
    ("18", Outcome::NoAnswer),  // no user responding
    ("19", Outcome::NoAnswer),  // no answer from user (alerted)
    ("20", Outcome::NoAnswer),  // subscriber absent
    ("21", Outcome::Rejected),  // call rejected
    ("22", Outcome::Failed),    // number changed
    ("27", Outcome::Failed),    // destination out of order
    ("28", Outcome::Failed),    // invalid number format
    ("31", Outcome::NoAnswer),  // normal, unspecified
    ("34", Outcome::Failed),    // no circuit available
    ("38", Outcome::Failed),    // network out of order
    ("41", Outcome::Failed),    // temporary failure
    ("42", Outcome::Failed),    // switching equipment congestion
    ("47", Outcome::Failed),    // resource unavailable
    ("102", Outcome::NoAnswer), // recovery on timer expiry
    ("127", Outcome::Failed),   // interworking, unspecified
    // SIP final responses some gateways pass on.
    ("480", Outcome::NoAnswer),
    ("486", Outcome::Busy),
    ("600", Outcome::Busy),
    ("603", Outcome::Rejected),
    ("404", Outcome::Failed),
    ("484", Outcome::Failed),
    ("503", Outcome::Failed),
    // Words.
    ("NO_ANSWER", Outcome::NoAnswer),
    ("NOANSWER", Outcome::NoAnswer),
    ("NO ANSWER", Outcome::NoAnswer),
    ("TIMEOUT", Outcome::NoAnswer),
    ("BUSY", Outcome::Busy),
    ("USER_BUSY", Outcome::Busy),
    ("REJECTED", Outcome::Rejected),
    ("DECLINED", Outcome::Rejected),
    ("CALL_REJECTED", Outcome::Rejected),
    ("FAILED", Outcome::Failed),
    ("FAIL", Outcome::Failed),
    ("ERROR", Outcome::Failed),
    ("INVALID_NUMBER", Outcome::Failed),
    ("UNALLOCATED_NUMBER", Outcome::Failed),
];

/// Each country's time zone, for "a day" of a contact: the job's
/// `[schedule]` zones, else UTC.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    pub default: Option<TimeZone>,
    pub countries: HashMap<String, TimeZone>,
}

impl Zones {
    pub fn of(&self, country: &str) -> TimeZone {
        self.countries
            .get(country)
            .or(self.default.as_ref())
            .cloned()
            .unwrap_or(TimeZone::UTC)
    }
}

/// The job's `[redial]`: when a contact that did not answer is called
/// again.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Calls of one contact in all, the first and the vendor's own
    /// redials included.
    pub max_attempts: u32,
    /// The wait after the last call ended before attempt 2, 3, …; the
    /// last value repeats.
    pub after: Vec<Duration>,
    /// The unanswered outcomes that earn another attempt.
    pub on: Vec<Outcome>,
    /// Attempts (calls) of one contact per local day.
    pub max_per_day: Option<u32>,
    /// Intents of an answered call that put the number on the do-not-call
    /// list (compared trimmed and without case).
    pub suppress_intents: Vec<String>,
    /// `hangupCode` or `callStatus` values (upper case) and their outcome,
    /// before the defaults.
    pub codes: Vec<(String, Outcome)>,
    pub zones: Zones,
}

impl Policy {
    /// The outcome of an unanswered call: its `hangupCode`, else its
    /// `callStatus`, by the job's codes and then the defaults; a no-answer
    /// when neither says.
    pub fn classify(&self, hangup_code: Option<&str>, call_status: Option<&str>) -> Outcome {
        let find = |raw: &str| {
            let key = raw.trim().to_ascii_uppercase();
            self.codes
                .iter()
                .map(|(code, outcome)| (code.as_str(), *outcome))
                .chain(DEFAULT_CODES.iter().copied())
                .find(|(code, _)| *code == key)
                .map(|(_, outcome)| outcome)
        };
        hangup_code
            .and_then(find)
            .or_else(|| call_status.and_then(find))
            .unwrap_or(Outcome::NoAnswer)
    }

    /// Whether an answered call with `intent` is an opt-out.
    pub fn opts_out(&self, intent: Option<&str>) -> bool {
        is_opt_out(&self.suppress_intents, intent)
    }

    /// The wait after the last call before the contact's call number
    /// `calls + 1`.
    fn spacing(&self, calls: u32) -> Duration {
        let index = (calls.max(1) - 1) as usize;
        self.after
            .get(index)
            .or(self.after.last())
            .copied()
            .unwrap_or_default()
    }

    /// The policy as the ledger keeps it beside its campaign (for the
    /// webhook's opt-outs and `status`'s funnel, which have no job file).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "max_attempts": self.max_attempts,
            "after_ms": self.after.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
            "on": self.on.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
            "max_per_day": self.max_per_day,
            "suppress_intents": self.suppress_intents,
            "codes": self.codes.iter().map(|(c, o)| (c.clone(), o.as_str())).collect::<BTreeMap<_, _>>(),
            "zones": self.zones.countries.iter().map(|(c, z)| (c.clone(), z.iana_name().unwrap_or("UTC").to_owned())).collect::<BTreeMap<_, _>>(),
            "zone": self.zones.default.as_ref().and_then(|z| z.iana_name()).unwrap_or("UTC"),
        })
        .to_string()
    }

    /// A policy the ledger kept; `None` when it cannot be read.
    pub fn from_json(text: &str) -> Option<Policy> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let zone = |name: &str| TimeZone::get(name).ok();
        Some(Policy {
            max_attempts: value["max_attempts"].as_u64()? as u32,
            after: value["after_ms"]
                .as_array()?
                .iter()
                .filter_map(|ms| ms.as_u64().map(Duration::from_millis))
                .collect(),
            on: value["on"]
                .as_array()?
                .iter()
                .filter_map(|o| o.as_str().and_then(Outcome::parse))
                .collect(),
            max_per_day: value["max_per_day"].as_u64().map(|n| n as u32),
            suppress_intents: value["suppress_intents"]
                .as_array()?
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            codes: value["codes"]
                .as_object()?
                .iter()
                .filter_map(|(c, o)| Some((c.clone(), Outcome::parse(o.as_str()?)?)))
                .collect(),
            zones: Zones {
                default: value["zone"].as_str().and_then(zone),
                countries: value["zones"]
                    .as_object()?
                    .iter()
                    .filter_map(|(c, z)| Some((c.clone(), zone(z.as_str()?)?)))
                    .collect(),
            },
        })
    }
}

/// Whether `intent` is one of `intents` (trimmed, without case).
pub fn is_opt_out(intents: &[String], intent: Option<&str>) -> bool {
    intent.is_some_and(|intent| {
        let intent = intent.trim().to_lowercase();
        intents
            .iter()
            .any(|listed| listed.trim().to_lowercase() == intent)
    })
}

/// One call of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSeen {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub answered: bool,
    pub hangup_code: Option<String>,
    pub call_status: Option<String>,
    pub intent: Option<String>,
    /// Whether the call is of the contact's latest order.
    pub of_latest: bool,
}

impl CallSeen {
    /// When it ended, as best known.
    fn ended_ms(&self) -> Option<i64> {
        self.end_ms.or(self.start_ms)
    }
}

/// A contact whose latest order was accepted, with every call of any of
/// its orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub country: String,
    /// The zones its number is called in (its batch's, joined by `&`;
    /// empty for a batch planned before numbers had zones): the first is
    /// its local day's.
    pub zones: String,
    /// The latest order's attempt number (1 for the first).
    pub latest_attempt: u32,
    pub calls: Vec<CallSeen>,
}

/// Why a contact gets no more calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Done {
    /// An answered call: on the contact's call number `call`.
    Answered { call: u32 },
    /// An answered call said no more calls (an opt-out intent).
    OptedOut,
    /// `max_attempts` calls, none answered.
    Exhausted,
    /// The last call ended in an outcome not in `on`.
    Ended(Outcome),
}

/// What comes next for a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Plan order number `attempt` now.
    Due {
        attempt: u32,
    },
    /// Call again, not before `at_ms`.
    Later {
        at_ms: i64,
    },
    /// Its latest order has no call yet: the vendor may still be dialling.
    AwaitingCall,
    Done(Done),
}

/// What comes next for `contact` at `now_ms` under `policy`.
pub fn next(policy: &Policy, contact: &Contact, now_ms: i64) -> Next {
    let mut calls: Vec<&CallSeen> = contact.calls.iter().collect();
    calls.sort_by_key(|call| (call.start_ms, call.end_ms));
    if let Some(at) = calls.iter().position(|call| call.answered) {
        if calls
            .iter()
            .any(|call| call.answered && policy.opts_out(call.intent.as_deref()))
        {
            return Next::Done(Done::OptedOut);
        }
        return Next::Done(Done::Answered {
            call: at as u32 + 1,
        });
    }
    let made = calls.len() as u32;
    if made >= policy.max_attempts {
        return Next::Done(Done::Exhausted);
    }
    if !calls.iter().any(|call| call.of_latest) {
        return Next::AwaitingCall;
    }
    let last = calls
        .iter()
        .max_by_key(|call| call.ended_ms())
        .expect("a call of the latest order");
    let outcome = policy.classify(last.hangup_code.as_deref(), last.call_status.as_deref());
    if !policy.on.contains(&outcome) {
        return Next::Done(Done::Ended(outcome));
    }
    let spaced = last.ended_ms().unwrap_or(now_ms) + policy.spacing(made).as_millis() as i64;
    let mut at = spaced.max(now_ms);
    if let Some(most) = policy.max_per_day {
        let zone = contact
            .zones
            .split('&')
            .next()
            .and_then(|name| TimeZone::get(name).ok())
            .unwrap_or_else(|| policy.zones.of(&contact.country));
        at = at.max(day_allows(&zone, &calls, most, at));
    }
    if at > now_ms {
        Next::Later { at_ms: at }
    } else {
        Next::Due {
            attempt: contact.latest_attempt + 1,
        }
    }
}

/// The first moment from `at_ms` when fewer than `most` of `calls` began
/// in that local day: `at_ms` itself, or the start of a later day.
fn day_allows(zone: &TimeZone, calls: &[&CallSeen], most: u32, at_ms: i64) -> i64 {
    let day_of = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_zoned(zone.clone()).date())
    };
    let mut at = at_ms;
    // Each step moves to the next local midnight; a handful at most.
    for _ in 0..=calls.len() {
        let Some(today) = day_of(at) else {
            return at;
        };
        let made_today = calls
            .iter()
            .filter(|call| call.start_ms.and_then(day_of) == Some(today))
            .count() as u32;
        if made_today < most {
            return at;
        }
        let Ok(tomorrow) = today.tomorrow().and_then(|day| day.to_zoned(zone.clone())) else {
            return at;
        };
        at = tomorrow.timestamp().as_millisecond();
    }
    at
}

/// What the ledger should do with a redial order about to be sent, given
/// its contact's calls now (they may have changed since it was planned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    Send,
    /// Set aside for good (`settled`): the contact was answered, opted out,
    /// ran out of attempts or ended meanwhile; the reason says which.
    Settle(String),
    /// Not yet: a call ended too recently (the vendor redialled, or a call
    /// arrived late). The order is withdrawn, to be planned again when due.
    Withdraw,
}

/// The re-check at the claim of redial order number `attempt` of
/// `contact`, given as it was planned: its orders before this one, the
/// latest being the one the redial follows.
pub fn recheck(policy: &Policy, contact: &Contact, attempt: u32, now_ms: i64) -> Recheck {
    match next(policy, contact, now_ms) {
        Next::Done(Done::Answered { call }) => Recheck::Settle(format!(
            "answered on call {call} before this redial was sent"
        )),
        Next::Done(Done::OptedOut) => {
            Recheck::Settle("answered, and opted out, before this redial was sent".into())
        }
        Next::Done(Done::Exhausted) => Recheck::Settle(format!(
            "{} call(s) were made before this redial was sent (the vendor redialled)",
            contact.calls.len()
        )),
        Next::Done(Done::Ended(outcome)) => Recheck::Settle(format!(
            "a later call ended {} before this redial was sent",
            outcome.as_str()
        )),
        Next::Later { .. } => Recheck::Withdraw,
        Next::Due { attempt: due } if due == attempt => Recheck::Send,
        // Planned as another attempt than the contact is at: only a ledger
        // changed by hand does that. Not sent.
        Next::Due { .. } => Recheck::Settle(format!(
            "planned as attempt {attempt}, but the contact is at attempt {}",
            contact.latest_attempt
        )),
        // Calls never disappear: the order it follows had one when this
        // was planned.
        Next::AwaitingCall => Recheck::Send,
    }
}

/// Where a campaign's contacts stand, for `status` and `report`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Funnel {
    /// Redial orders the campaign holds (orders of rows already read: a
    /// campaign's order counts are its rows read plus these).
    pub orders: u64,
    /// When `cancel` stopped the campaign's redials: none is planned since.
    pub stopped_at_ms: Option<i64>,
    /// Contacts answered, by the number of the call that was answered.
    pub reached_on_call: BTreeMap<u32, u64>,
    pub opted_out: u64,
    /// Contacts waiting for their next call, and the earliest due.
    pub waiting: u64,
    pub next_due_ms: Option<i64>,
    /// Contacts due now (planned by the next `run`).
    pub due_now: u64,
    /// Contacts whose latest order was accepted and has no call yet.
    pub awaiting_call: u64,
    pub exhausted: u64,
    /// Contacts ended by an outcome not in `on`.
    pub ended: BTreeMap<&'static str, u64>,
}

impl Funnel {
    pub fn add(&mut self, next: Next) {
        match next {
            Next::Due { .. } => self.due_now += 1,
            Next::Later { at_ms } => {
                self.waiting += 1;
                self.next_due_ms = Some(self.next_due_ms.map_or(at_ms, |due| due.min(at_ms)));
            }
            Next::AwaitingCall => self.awaiting_call += 1,
            Next::Done(Done::Answered { call }) => {
                *self.reached_on_call.entry(call).or_default() += 1
            }
            Next::Done(Done::OptedOut) => self.opted_out += 1,
            Next::Done(Done::Exhausted) => self.exhausted += 1,
            Next::Done(Done::Ended(outcome)) => {
                *self.ended.entry(outcome.as_str()).or_default() += 1
            }
        }
    }

    pub fn reached(&self) -> u64 {
        self.reached_on_call.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            after: vec![Duration::from_secs(1800), Duration::from_secs(7200)],
            on: vec![Outcome::NoAnswer, Outcome::Busy, Outcome::Failed],
            max_per_day: None,
            suppress_intents: vec!["Do Not Call".into()],
            codes: vec![("X-VOICEMAIL".into(), Outcome::Rejected)],
            zones: Zones::default(),
        }
    }

    fn call(start_s: i64, end_s: i64, answered: bool, code: &str) -> CallSeen {
        CallSeen {
            start_ms: Some(start_s * 1000),
            end_ms: Some(end_s * 1000),
            answered,
            hangup_code: Some(code.into()),
            call_status: None,
            intent: None,
            of_latest: true,
        }
    }

    fn contact(calls: Vec<CallSeen>) -> Contact {
        Contact {
            country: "HK".into(),
            zones: String::new(),
            latest_attempt: 1,
            calls,
        }
    }

    #[test]
    fn outcomes_come_from_the_code_then_the_status_then_default_to_no_answer() {
        let p = policy();
        assert_eq!(p.classify(Some("17"), None), Outcome::Busy);
        assert_eq!(p.classify(Some("21"), Some("BUSY")), Outcome::Rejected);
        assert_eq!(p.classify(Some("999"), Some("busy")), Outcome::Busy);
        assert_eq!(p.classify(Some("x-voicemail"), None), Outcome::Rejected);
        assert_eq!(p.classify(None, None), Outcome::NoAnswer);
        assert_eq!(p.classify(Some("whatever"), Some("odd")), Outcome::NoAnswer);
    }

    #[test]
    fn a_contact_is_due_after_the_spacing_and_the_last_value_repeats() {
        let p = policy();
        let first = contact(vec![call(0, 30, false, "19")]);
        assert_eq!(
            next(&p, &first, 1_000_000),
            Next::Later { at_ms: 1_830_000 }
        );
        assert_eq!(next(&p, &first, 1_830_000), Next::Due { attempt: 2 });
        let mut second = contact(vec![
            call(0, 30, false, "19"),
            call(2000, 2030, false, "17"),
        ]);
        second.latest_attempt = 2;
        assert_eq!(
            next(&p, &second, 2_030_000),
            Next::Later {
                at_ms: 2_030_000 + 7_200_000
            }
        );
        assert_eq!(next(&p, &second, 9_230_000), Next::Due { attempt: 3 });
        let mut third = second.clone();
        third.calls.push(call(10_000, 10_030, false, "19"));
        assert_eq!(next(&p, &third, 99_000_000), Next::Done(Done::Exhausted));
    }

    #[test]
    fn an_answer_an_opt_out_or_an_outcome_not_in_on_ends_a_contact() {
        let p = policy();
        let answered = contact(vec![call(0, 30, false, "19"), call(40, 90, true, "16")]);
        assert_eq!(
            next(&p, &answered, 99_000_000),
            Next::Done(Done::Answered { call: 2 })
        );
        let mut opted = answered.clone();
        opted.calls[1].intent = Some(" do not call ".into());
        assert_eq!(next(&p, &opted, 99_000_000), Next::Done(Done::OptedOut));
        let rejected = contact(vec![call(0, 30, false, "21")]);
        assert_eq!(
            next(&p, &rejected, 99_000_000),
            Next::Done(Done::Ended(Outcome::Rejected))
        );
    }

    #[test]
    fn the_vendors_redials_count_and_a_latest_order_without_calls_waits() {
        let p = policy();
        // Two calls of the first order (the vendor redialled): one left.
        let mut vendor = contact(vec![call(0, 30, false, "19"), call(100, 130, false, "19")]);
        assert_eq!(next(&p, &vendor, 99_000_000), Next::Due { attempt: 2 });
        vendor.latest_attempt = 2;
        for c in &mut vendor.calls {
            c.of_latest = false;
        }
        assert_eq!(next(&p, &vendor, 99_000_000), Next::AwaitingCall);
        vendor.calls.push(call(200, 230, false, "19"));
        assert_eq!(next(&p, &vendor, 99_000_000), Next::Done(Done::Exhausted));
    }

    #[test]
    fn the_local_day_is_the_numbers_own_zone_when_its_batch_has_one() {
        let mut p = policy();
        p.max_per_day = Some(1);
        p.after = vec![Duration::from_secs(60)];
        // The country's zone says Hong Kong; the number is in Los Angeles
        // (its batch's first zone).
        p.zones
            .countries
            .insert("US".into(), TimeZone::get("Asia/Hong_Kong").unwrap());
        let at = |raw: &str| raw.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        // 10:00 in Los Angeles on 2 December is 18:00 UTC.
        let ten_am = at("2026-12-02T18:00:00Z");
        let mut c = contact(vec![CallSeen {
            start_ms: Some(ten_am),
            end_ms: Some(ten_am + 30_000),
            ..call(0, 0, false, "19")
        }]);
        c.country = "US".into();
        c.zones = "America/Los_Angeles&America/Boise".into();
        // The next call waits for midnight in Los Angeles (08:00 UTC).
        assert_eq!(
            next(&p, &c, ten_am + 3_600_000),
            Next::Later {
                at_ms: at("2026-12-03T08:00:00Z")
            }
        );
    }

    #[test]
    fn max_per_day_waits_for_the_contacts_next_local_midnight() {
        let mut p = policy();
        p.max_per_day = Some(1);
        p.after = vec![Duration::from_secs(60)];
        p.zones
            .countries
            .insert("HK".into(), TimeZone::get("Asia/Hong_Kong").unwrap());
        // 2026-12-02 10:00 in Hong Kong is 02:00 UTC.
        let ten_am = "2026-12-02T02:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let c = contact(vec![CallSeen {
            start_ms: Some(ten_am),
            end_ms: Some(ten_am + 30_000),
            ..call(0, 0, false, "19")
        }]);
        let midnight_hk = "2026-12-02T16:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        assert_eq!(
            next(&p, &c, ten_am + 3_600_000),
            Next::Later { at_ms: midnight_hk }
        );
        assert_eq!(next(&p, &c, midnight_hk), Next::Due { attempt: 2 });
    }

    #[test]
    fn the_claim_sends_withdraws_or_settles() {
        let p = policy();
        // As planned: attempt 2 follows the first order's one call.
        let mut c = contact(vec![call(0, 30, false, "19")]);
        assert_eq!(recheck(&p, &c, 2, 1_830_000), Recheck::Send);
        // The vendor redialled the first order meanwhile: too soon now.
        c.calls.push(call(1_000, 1_030, false, "19"));
        assert_eq!(recheck(&p, &c, 2, 1_830_000), Recheck::Withdraw);
        c.calls.push(call(1_100, 1_130, true, "16"));
        assert!(matches!(recheck(&p, &c, 2, 9_000_000), Recheck::Settle(_)));
        let rejected = contact(vec![call(0, 30, false, "19"), call(40, 50, false, "21")]);
        assert!(matches!(
            recheck(&p, &rejected, 2, 99_000_000),
            Recheck::Settle(reason) if reason.contains("rejected")
        ));
    }

    #[test]
    fn the_policy_survives_the_ledger() {
        let mut p = policy();
        p.max_per_day = Some(2);
        p.zones.default = Some(TimeZone::get("Europe/London").unwrap());
        let back = Policy::from_json(&p.to_json()).unwrap();
        assert_eq!(back.max_attempts, 3);
        assert_eq!(back.after, p.after);
        assert_eq!(back.on, p.on);
        assert_eq!(back.max_per_day, Some(2));
        assert_eq!(back.suppress_intents, p.suppress_intents);
        assert_eq!(back.codes, p.codes);
        assert_eq!(back.zones.of("GB").iana_name(), Some("Europe/London"));
    }
}
