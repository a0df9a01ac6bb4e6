//! The states an order or a batch can be in (docs/running.md, "States").
//!
//! Orders in a batch follow their batch; the remaining order states are
//! decided at ingest and never change.

use std::fmt;
use std::str::FromStr;

/// Where a batch is. Orders in a batch share its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchState {
    /// Not sent yet, or due for another attempt.
    Pending,
    /// Durably marked before its request left; a run that finds it here crashed.
    Sending,
    /// The vendor created the task (code 0).
    Accepted,
    /// The vendor refused it for good (41000).
    Rejected,
    /// Retries used up on errors that prove it did not arrive.
    Failed,
    /// It may have arrived: held until reconciled or re-queued by an operator.
    Uncertain,
    /// Never to be sent: every order in it was suppressed before it left.
    Cancelled,
}

impl BatchState {
    pub const ALL: [BatchState; 7] = [
        BatchState::Pending,
        BatchState::Sending,
        BatchState::Accepted,
        BatchState::Rejected,
        BatchState::Failed,
        BatchState::Uncertain,
        BatchState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Pending => "pending",
            BatchState::Sending => "sending",
            BatchState::Accepted => "accepted",
            BatchState::Rejected => "rejected",
            BatchState::Failed => "failed",
            BatchState::Uncertain => "uncertain",
            BatchState::Cancelled => "cancelled",
        }
    }

    /// Final states need nothing more from a run.
    pub fn is_final(self) -> bool {
        !matches!(self, BatchState::Pending | BatchState::Sending)
    }

    /// States an operator should look at.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            BatchState::Rejected | BatchState::Failed | BatchState::Uncertain
        )
    }
}

/// Where an order is: its batch's state, or a decision made at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    InBatch(BatchState),
    /// The row had no usable number or order id, or could not be parsed.
    Invalid,
    /// An earlier row of the campaign has the same phone or order id.
    Duplicate,
    /// The number is on the suppression list.
    Suppressed,
    /// A redial whose contact was settled (answered, opted out, out of
    /// attempts) between its planning and its claim: never sent.
    Settled,
}

impl OrderState {
    pub const ALL: [OrderState; 11] = [
        OrderState::InBatch(BatchState::Pending),
        OrderState::InBatch(BatchState::Sending),
        OrderState::InBatch(BatchState::Accepted),
        OrderState::InBatch(BatchState::Rejected),
        OrderState::InBatch(BatchState::Failed),
        OrderState::InBatch(BatchState::Uncertain),
        OrderState::InBatch(BatchState::Cancelled),
        OrderState::Invalid,
        OrderState::Duplicate,
        OrderState::Suppressed,
        OrderState::Settled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::InBatch(state) => state.as_str(),
            OrderState::Invalid => "invalid",
            OrderState::Duplicate => "duplicate",
            OrderState::Suppressed => "suppressed",
            OrderState::Settled => "settled",
        }
    }
}

/// What was decided about one attempt, as the ledger's `attempts` table
/// records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accepted,
    Rejected,
    /// Back to `pending`, to be tried again.
    Retry,
    /// Retries ran out.
    Failed,
    Uncertain,
    /// The run stopped: the batch waits, untouched, for a later run.
    Stop,
    /// The run ended before the reply was recorded.
    Interrupted,
}

impl Verdict {
    pub const ALL: [Verdict; 7] = [
        Verdict::Accepted,
        Verdict::Rejected,
        Verdict::Retry,
        Verdict::Failed,
        Verdict::Uncertain,
        Verdict::Stop,
        Verdict::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Rejected => "rejected",
            Verdict::Retry => "retry",
            Verdict::Failed => "failed",
            Verdict::Uncertain => "uncertain",
            Verdict::Stop => "stop",
            Verdict::Interrupted => "interrupted",
        }
    }
}

/// A state name that is not one of ours.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown state {0:?} (want one of: {1})")]
pub struct UnknownState(String, &'static str);

impl FromStr for BatchState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BatchState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                UnknownState(
                    s.to_owned(),
                    "pending, sending, accepted, rejected, failed, uncertain, cancelled",
                )
            })
    }
}

impl FromStr for OrderState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                UnknownState(
                    s.to_owned(),
                    "pending, sending, accepted, rejected, failed, uncertain, cancelled, invalid, duplicate, suppressed",
                )
            })
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verdict_has_a_word_of_its_own() {
        let words: std::collections::HashSet<_> =
            Verdict::ALL.into_iter().map(Verdict::as_str).collect();
        assert_eq!(words.len(), Verdict::ALL.len());
    }

    #[test]
    fn every_state_round_trips_through_its_name() {
        for state in OrderState::ALL {
            assert_eq!(state.as_str().parse::<OrderState>().unwrap(), state);
        }
        for state in BatchState::ALL {
            assert_eq!(state.as_str().parse::<BatchState>().unwrap(), state);
        }
        assert!("done"
            .parse::<OrderState>()
            .unwrap_err()
            .to_string()
            .contains("\"done\""));
    }
}
