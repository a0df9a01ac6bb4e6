//! What the ledger's backends take and give: the same types for SQLite
//! and PostgreSQL.

use std::borrow::Cow;

use super::CampaignId;
use crate::batch::{BatchOrder, BatchSeq};
use crate::phone::Country;
use crate::state::{BatchState, OrderState, Verdict};

/// A batch's window key in SQL, as `Schedule::open_until` reads it: its
/// country, then a space and its zones when it has any.
macro_rules! window_key_sql {
    () => {
        "(country || CASE WHEN zones = '' THEN '' ELSE ' ' || zones END)"
    };
}
pub(crate) use window_key_sql;

/// A batch that is due, just marked `sending`, with what its request needs.
#[derive(Debug, Clone)]
pub struct BatchToSend {
    pub seq: BatchSeq,
    pub country: String,
    /// This attempt's number among all tries of the batch (1-based).
    pub attempt: u32,
    /// Tries since the batch was last re-queued, this one included: what
    /// the retry budget counts.
    pub attempt_in_round: u32,
    /// The vendor's code for the batch's previous attempt, if any (what
    /// it means is `retry`'s to say).
    pub previous_code: Option<i64>,
    pub orders: Vec<BatchOrder>,
}

/// What one attempt ended with and what it did to its batch.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub finished_at_ms: i64,
    pub duration_ms: i64,
    pub http_status: Option<u16>,
    pub code: Option<i64>,
    pub message: Option<String>,
    pub req_id: Option<String>,
    /// What was decided.
    pub decision: Verdict,
    /// The batch's state after this attempt (never `sending`).
    pub batch_state: BatchState,
    /// For a batch back to `pending`: not before this time.
    pub not_before_ms: i64,
    /// Whether the attempt counts against the batch's retry budget.
    pub spends_budget: bool,
}

impl BatchToSend {
    /// A batch just claimed: its `attempts` counted this one already;
    /// `before_resend` attempts were spent before it was last re-queued.
    pub(super) fn claimed(
        seq: BatchSeq,
        country: String,
        attempts: i64,
        before_resend: i64,
        previous_code: Option<i64>,
        orders: Vec<BatchOrder>,
    ) -> BatchToSend {
        let attempt = attempts as u32;
        BatchToSend {
            seq,
            country,
            attempt,
            attempt_in_round: attempt - before_resend as u32,
            previous_code,
            orders,
        }
    }
}

/// The message of a batch whose every order left it between planning and
/// sending (a number put on the do-not-call list, a redial no longer due):
/// it is cancelled, never sent.
pub(super) const EMPTIED_BEFORE_SENDING: &str =
    "every order in it left before it was sent (its number went on the do-not-call list, or a redial was no longer due); not sent";

/// Why recording an attempt's end found its batch in another state than
/// `sending` (by this runner, on a server ledger).
pub(super) fn not_sending_when_it_ended(seq: i64, attempt: u32) -> String {
    format!("batch #{seq} was not being sent by this run when its attempt {attempt} ended")
}

/// What a re-send did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resent {
    /// Batches put back to `pending`.
    pub requeued: Vec<BatchSeq>,
    /// Batches refused because a run that may still live was sending them:
    /// each with the time (Unix ms) after which it may be re-sent.
    pub fenced: Vec<(BatchSeq, i64)>,
}

impl Resent {
    /// The batches chosen for a re-send, each with the time before which
    /// no re-send may happen: those past it are re-queued, the rest wait.
    pub(super) fn split(chosen: impl IntoIterator<Item = (BatchSeq, i64)>, now_ms: i64) -> Resent {
        let mut resent = Resent::default();
        for (seq, until) in chosen {
            if until <= now_ms {
                resent.requeued.push(seq);
            } else {
                resent.fenced.push((seq, until));
            }
        }
        resent
    }
}

/// Who asked for a re-send of which batches.
#[derive(Debug, Clone)]
pub struct Resend<'a> {
    pub from: BatchState,
    /// Only these batches; empty means every batch in `from`.
    pub only: &'a [BatchSeq],
    pub requested_by: &'a str,
    pub now_ms: i64,
}

/// Who holds (or wants) a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// A token unique to one run.
    pub owner: String,
    pub host: String,
    pub pid: u32,
    /// The holder's own wall clock when it took the lease and at its last
    /// heartbeat: shown to people, never compared with another clock to
    /// take a lease over.
    pub acquired_at_ms: i64,
    pub heartbeat_ms: i64,
    /// How many heartbeats it wrote: a watcher sees a live holder by this
    /// counter moving.
    pub beats: i64,
}

/// A run's proof that it still holds its campaign: every write of the run
/// checks it in the write's own transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub campaign: CampaignId,
    pub owner: String,
}

/// What asking for the lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseGrant {
    /// It is ours; `took_over` names the holder we replaced, and
    /// `recovered` counts its `sending` batches, now `uncertain`.
    Acquired {
        took_over: Option<LeaseHolder>,
        recovered: u64,
    },
    /// The lease is not what the taker expected (another run took it, or
    /// the holder beat again): look again.
    Changed,
}

/// What `status` shows of one campaign.
#[derive(Debug, Clone)]
pub struct CampaignStatus {
    pub campaign: String,
    pub rows_read: u64,
    /// Every order state with its count, zeros included, in `OrderState::ALL` order.
    pub orders: Vec<(OrderState, u64)>,
    /// Every batch state with its count, zeros included, in `BatchState::ALL` order.
    pub batches: Vec<(BatchState, u64)>,
    /// Call outcomes, where the caller asked for them.
    pub calls: Option<CallStats>,
    /// Where the contacts stand with redials, where the caller asked and
    /// the campaign has a `[redial]`.
    pub redials: Option<crate::redial::Funnel>,
    /// Pending orders by window key (a country, and the zones of its
    /// numbers), where the caller asked; with the window's state where the
    /// job's schedule is known.
    pub windows: Vec<PendingWindow>,
}

/// The pending orders of one window key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWindow {
    pub key: String,
    pub orders: u64,
    pub state: Option<crate::schedule::WindowState>,
}

impl CampaignStatus {
    /// A status from the ledger's counts: for each batch state, its
    /// batches and their orders; for each state of orders set aside, how
    /// many. Every state is present, zeros included.
    pub(super) fn from_counts(
        campaign: &str,
        rows_read: u64,
        batch_counts: impl IntoIterator<Item = (BatchState, u64, u64)>,
        set_aside_counts: impl IntoIterator<Item = (OrderState, u64)>,
    ) -> CampaignStatus {
        let mut orders: Vec<(OrderState, u64)> = OrderState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut batches: Vec<(BatchState, u64)> = BatchState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut add_order = |state: OrderState, n: u64| {
            if let Some(slot) = orders.iter_mut().find(|(s, _)| *s == state) {
                slot.1 += n;
            }
        };
        for (state, in_state, their_orders) in batch_counts {
            if let Some(slot) = batches.iter_mut().find(|(s, _)| *s == state) {
                slot.1 += in_state;
            }
            add_order(OrderState::InBatch(state), their_orders);
        }
        for (state, n) in set_aside_counts {
            add_order(state, n);
        }
        CampaignStatus {
            campaign: campaign.to_owned(),
            rows_read,
            orders,
            batches,
            calls: None,
            redials: None,
            windows: Vec::new(),
        }
    }

    pub fn orders_in(&self, state: OrderState) -> u64 {
        self.orders
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    pub fn batches_in(&self, state: BatchState) -> u64 {
        self.batches
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

/// A batch as the orders export sees it: the state its orders take, the
/// last answer, when it changed, and the reply's `reqId` where a person
/// may need it.
#[derive(Debug, Clone)]
pub(super) struct BatchOutcome {
    pub state: BatchState,
    pub code: Option<i64>,
    pub message: Option<String>,
    pub updated_at_ms: i64,
    pub req_id: Option<String>,
}

impl BatchOutcome {
    /// The `reqId` to show: only for a batch that needs attention.
    pub fn shown_req_id(&self) -> Option<Cow<'_, str>> {
        matches!(
            self.state,
            BatchState::Rejected | BatchState::Failed | BatchState::Uncertain
        )
        .then(|| self.req_id.as_deref().map(Cow::Borrowed))
        .flatten()
    }
}

/// One order's outcome, as `orders` lists it (borrowed from a page).
#[derive(Debug, Clone)]
pub struct OrderLine<'a> {
    pub order_id: Option<Cow<'a, str>>,
    pub phone: Cow<'a, str>,
    pub state: OrderState,
    pub batch: Option<u32>,
    pub code: Option<i64>,
    pub message: Option<Cow<'a, str>>,
    pub line: u64,
    /// When its batch last changed (Unix ms); `None` for an order set
    /// aside.
    pub updated_at_ms: Option<i64>,
    /// Its last call, if it had any.
    pub last_call: Option<LastCall<'a>>,
    /// The vendor's `reqId` of the reply that left its batch rejected,
    /// failed or uncertain (what the vendor's support asks for).
    pub req_id: Option<Cow<'a, str>>,
    /// 1 for a contact's first order; 2, 3, … for its redials.
    pub attempt: u32,
    /// A redial's contact, by its first order's id (`None` for a first
    /// order).
    pub first_order_id: Option<Cow<'a, str>>,
}

impl CallStats {
    /// Orders answered of those called, in percent, as people read it
    /// (`-` before any call).
    pub fn answer_rate(&self) -> String {
        if self.orders_called == 0 {
            return "-".to_owned();
        }
        format!(
            "{:.1}%",
            100.0 * self.answered as f64 / self.orders_called as f64
        )
    }

    /// Seconds talked per answered order, as people read it.
    pub fn average_talk(&self) -> String {
        if self.answered == 0 {
            return "-".to_owned();
        }
        format!("{:.0}s", self.talk_seconds as f64 / self.answered as f64)
    }
}

/// An order's last call, as `orders` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LastCall<'a> {
    pub answered: bool,
    pub talk_seconds: Option<i64>,
    pub hangup_reason: Option<Cow<'a, str>>,
    pub intent: Option<Cow<'a, str>>,
}

/// Which orders `orders --call` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFilter {
    /// At least one call answered.
    Answered,
    /// Called, never answered.
    Unanswered,
    /// Never called (no record yet).
    None,
}

impl CallFilter {
    /// Whether an order with these calls is kept: `called` when it has
    /// any, `answered` when one of them was answered.
    pub fn keeps(self, called: bool, answered: bool) -> bool {
        match self {
            CallFilter::Answered => answered,
            CallFilter::Unanswered => called && !answered,
            CallFilter::None => !called,
        }
    }
}

/// How a stored call was tied to an order of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The call names the order (`orderId`), whose batch was sent before
    /// the call began: proof that the vendor received the batch.
    OrderId,
    /// The call names no order, and its number is the order's: counted
    /// in the campaign's outcomes, never proof of anything.
    Phone,
}

impl MatchedBy {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            MatchedBy::OrderId => "order_id",
            MatchedBy::Phone => "phone",
        }
    }
}

/// The order a call belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CallOwner {
    pub campaign: i64,
    /// The order's row.
    pub order_row: i64,
    pub order_id: String,
    pub by: MatchedBy,
}

/// How far a call's own times may come before the request that made its
/// task, by this machine's clock: the vendor refuses a request whose `ts`
/// is more than this from its own clock, so a task it created was sent
/// within this much of its clock, by which its calls are timed.
pub(super) const CLOCKS_APART_MS: i64 = 60_000;

/// The latest start of a batch's first request for a call to be one of its
/// orders' calls: a call that ended before its order was ever sent is
/// another's (another ledger's orders with the same ids). A call with no
/// time at all can only be checked for having been sent.
pub(super) fn sent_by_for(call: &crate::nxlink::calls::Call) -> i64 {
    call.earliest_ms()
        .map_or(i64::MAX, |at| at.saturating_add(CLOCKS_APART_MS))
}

/// `sql` with its parameters `<mark>1`, `<mark>2`, … replaced by `values`
/// (SQL literals), for `EXPLAIN`.
pub(super) fn with_values(sql: &str, mark: char, values: &[&str]) -> String {
    let mut sql = sql.to_owned();
    // The highest first: `$1` is a prefix of `$10`.
    for (index, value) in values.iter().enumerate().rev() {
        sql = sql.replace(&format!("{mark}{}", index + 1), value);
    }
    sql
}

/// Stores one call (parameters `$1` to `$26` in the order of the columns;
/// SQLite reads `$N` as the Nth). A later report never makes a call less
/// complete: answered stays answered, the later end and the longer
/// durations win, and a filled field is not erased by an empty one. A
/// match by order id is never replaced by a weaker one.
pub(super) const UPSERT_CALL: &str =
    "INSERT INTO calls (call_id, order_id, campaign_id, order_row, matched_order_id, matched_by,
        task_id, caller, callee, answered, start_ms, answer_ms, end_ms, ring_ms, ring_seconds,
        call_seconds, hangup_by, hangup_code, hangup_reason, call_status, intent,
        record_url, price, raw, source, received_at_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)
    ON CONFLICT (call_id) DO UPDATE SET
        order_id = CASE WHEN excluded.matched_by = 'order_id' OR calls.matched_by IS NULL OR calls.matched_by = excluded.matched_by
            THEN excluded.order_id ELSE calls.order_id END,
        campaign_id = CASE WHEN excluded.matched_by = 'order_id' OR calls.matched_by IS NULL OR calls.matched_by = excluded.matched_by
            THEN excluded.campaign_id ELSE calls.campaign_id END,
        order_row = CASE WHEN excluded.matched_by = 'order_id' OR calls.matched_by IS NULL OR calls.matched_by = excluded.matched_by
            THEN excluded.order_row ELSE calls.order_row END,
        matched_order_id = CASE WHEN excluded.matched_by = 'order_id' OR calls.matched_by IS NULL OR calls.matched_by = excluded.matched_by
            THEN excluded.matched_order_id ELSE calls.matched_order_id END,
        matched_by = CASE WHEN excluded.matched_by = 'order_id' OR calls.matched_by IS NULL OR calls.matched_by = excluded.matched_by
            THEN excluded.matched_by ELSE calls.matched_by END,
        task_id = COALESCE(excluded.task_id, calls.task_id),
        caller = COALESCE(excluded.caller, calls.caller),
        callee = COALESCE(excluded.callee, calls.callee),
        answered = (calls.answered OR excluded.answered),
        start_ms = COALESCE(excluded.start_ms, calls.start_ms),
        answer_ms = COALESCE(excluded.answer_ms, calls.answer_ms),
        end_ms = CASE WHEN calls.end_ms IS NULL OR excluded.end_ms > calls.end_ms THEN excluded.end_ms ELSE calls.end_ms END,
        ring_ms = CASE WHEN calls.ring_ms IS NULL OR excluded.ring_ms > calls.ring_ms THEN excluded.ring_ms ELSE calls.ring_ms END,
        ring_seconds = CASE WHEN calls.ring_seconds IS NULL OR excluded.ring_seconds > calls.ring_seconds
            THEN excluded.ring_seconds ELSE calls.ring_seconds END,
        call_seconds = CASE WHEN calls.call_seconds IS NULL OR excluded.call_seconds > calls.call_seconds
            THEN excluded.call_seconds ELSE calls.call_seconds END,
        hangup_by = COALESCE(excluded.hangup_by, calls.hangup_by),
        hangup_code = COALESCE(excluded.hangup_code, calls.hangup_code),
        hangup_reason = COALESCE(excluded.hangup_reason, calls.hangup_reason),
        call_status = COALESCE(excluded.call_status, calls.call_status),
        intent = COALESCE(excluded.intent, calls.intent),
        record_url = COALESCE(excluded.record_url, calls.record_url),
        price = COALESCE(excluded.price, calls.price),
        raw = CASE WHEN calls.raw IS NULL OR calls.end_ms IS NULL OR excluded.end_ms >= calls.end_ms
            THEN COALESCE(excluded.raw, calls.raw) ELSE calls.raw END,
        source = excluded.source, received_at_ms = excluded.received_at_ms";

/// The call as the ledger keeps it: whole for a call of one of its orders;
/// for any other, its callId alone (a repeat is not counted twice), with
/// none of its numbers or texts.
pub(super) struct CallRow<'a> {
    pub owner: Option<&'a CallOwner>,
}

impl CallRow<'_> {
    /// `value` when the call is the ledger's, else nothing.
    pub fn kept<T>(&self, value: Option<T>) -> Option<T> {
        self.owner.and(value)
    }
}

/// Something that takes order lines one at a time (a writer to stdout).
pub type OrderStream<'a> = &'a mut dyn FnMut(&OrderLine<'_>) -> std::io::Result<()>;

/// Where ingest of a campaign's contact file stopped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// The contact file, as the job named it (`None` in older ledgers).
    pub source: Option<String>,
    /// Digest of everything before `offset`; `None` before any ingest.
    pub fingerprint: Option<String>,
    /// Byte offset of the next record to read.
    pub offset: u64,
    /// Line number of that record.
    pub line: u64,
}

/// One row as it is staged.
#[derive(Debug, Clone)]
pub struct StagedRow<'a> {
    pub line: u64,
    pub order_id: Option<&'a str>,
    /// The normalized number, or the text found for an invalid row.
    pub phone: &'a str,
    /// The number's country; `None` for an invalid row.
    pub country: Option<&'a str>,
    pub other: &'a str,
    /// The batch a contact is placed in; `None` for an invalid row.
    pub batch_seq: Option<BatchSeq>,
    /// Why the row is invalid; `None` for a contact.
    pub invalid: Option<&'a str>,
    /// Whether the contact may repeat the phone or order id of an earlier
    /// row of this ingest.
    pub suspect: bool,
}

/// What one staging transaction writes.
#[derive(Debug, Clone)]
pub struct StagedChunk<'a> {
    pub rows: &'a [StagedRow<'a>],
    /// Batches opened by these rows, with their country.
    /// New batches: number, country, and the zones of its numbers.
    pub new_batches: &'a [(BatchSeq, Country, String)],
    /// Rows of the file this chunk accounts for.
    pub rows_read: u64,
    /// Where to resume after it.
    pub checkpoint: &'a Checkpoint,
    /// Whether every contact of the chunk that repeats a key of an earlier
    /// row of this ingest is marked `suspect` (if one chunk says no,
    /// planning compares every staged row).
    pub repeats_marked: bool,
}

/// What planning decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Planned {
    /// Orders planned into batches, to be sent.
    pub orders: u64,
    pub duplicates: u64,
    /// Orders whose number was on the do-not-call list.
    pub suppressed: u64,
}

/// Which key of an order: every live order claims both in its campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Phone = 0,
    OrderId = 1,
}

/// What a run would make of a file, read back from a scratch ledger.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// Why rows are invalid, with quoted values left out so that rows
    /// invalid for the same reason count together, and how many rows.
    pub invalid_reasons: Vec<(String, u64)>,
    /// Per window key (a country, and the zones of its numbers: see
    /// `Schedule::open_until`): orders to send and batches they fill.
    pub countries: Vec<(String, u64, u64)>,
    /// The first batch a run would send: its number, country and orders.
    pub first_batch: Option<(BatchSeq, String, Vec<BatchOrder>)>,
}

impl Preview {
    /// Distinct reasons kept; rarer ones beyond count as "other reasons".
    const REASONS: usize = 200;

    /// Counts one invalid row's reason.
    pub(super) fn count_invalid(&mut self, reason: &str) {
        let mut general = String::with_capacity(reason.len());
        for (i, part) in reason.split('"').enumerate() {
            general.push_str(if i % 2 == 1 { "\"…\"" } else { part });
        }
        if self.invalid_reasons.len() >= Self::REASONS
            && !self.invalid_reasons.iter().any(|(r, _)| *r == general)
        {
            general = "other reasons".to_owned();
        }
        match self.invalid_reasons.iter_mut().find(|(r, _)| *r == general) {
            Some((_, n)) => *n += 1,
            None => self.invalid_reasons.push((general, 1)),
        }
    }

    /// The reasons, commonest first.
    pub fn top_invalid_reasons(&self, most: usize) -> Vec<(String, u64)> {
        let mut reasons = self.invalid_reasons.clone();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons.truncate(most);
        reasons
    }
}

/// Which campaigns a do-not-call entry applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every campaign in the ledger (`suppress add`).
    Every,
    /// One campaign (the numbers of its job's own list files).
    Campaign(CampaignId),
}

impl Scope {
    /// As the ledger stores it: 0 for every campaign, else the id.
    pub(super) fn stored(self) -> i64 {
        match self {
            Scope::Every => 0,
            Scope::Campaign(id) => id.0,
        }
    }
}

/// What is recorded with numbers added to the do-not-call list.
#[derive(Debug, Clone)]
pub struct SuppressionEntry {
    pub scope: Scope,
    pub reason: Option<String>,
    /// The entry stops applying at this time; `None`: never.
    pub until_ms: Option<i64>,
    pub added_at_ms: i64,
    /// Who or what added it (`user@host`, or a job's list file).
    pub source: String,
}

/// One entry of the do-not-call list, as `suppress list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub phone: String,
    /// 0 for every campaign, else the campaign's id (for paging).
    pub scope: i64,
    /// The campaign it is for; `None` for every campaign.
    pub campaign: Option<String>,
    pub reason: Option<String>,
    pub until_ms: Option<i64>,
    pub added_at_ms: i64,
    pub source: String,
}

/// What one claim may take: due batches at `now_ms`, in sequence order.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub now_ms: i64,
    /// Batches at most.
    pub batches: usize,
    /// Orders at most, all batches together (`run --limit`); `None`: no cap.
    pub orders: Option<u64>,
    /// Only batches of these window keys (a country, and the zones of its
    /// numbers, see `Schedule::open_until`: those inside a calling
    /// window); `None`: every batch.
    pub countries: Option<&'a [String]>,
    /// The job's `[redial]`: the redial orders of the batches taken are
    /// re-checked against their contacts' calls (see `redial::recheck`).
    pub redial: Option<&'a crate::redial::Policy>,
}

/// One campaign as `campaigns` lists it.
#[derive(Debug, Clone)]
pub struct CampaignSummary {
    pub status: CampaignStatus,
    pub created_at_ms: i64,
    /// When its last run or ingest started.
    pub last_run_at_ms: Option<i64>,
    /// The job file of that run.
    pub job_file: Option<String>,
    /// The contact file its checkpoint is for.
    pub contacts: Option<String>,
}

/// A campaign's row, as the ledger keeps it.
#[derive(Debug, Clone)]
pub(super) struct CampaignRecord {
    pub id: CampaignId,
    pub name: String,
    pub created_at_ms: i64,
    pub last_run_at_ms: Option<i64>,
    pub job_file: Option<String>,
    pub contacts: Option<String>,
}

/// What `forget` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// Deleted, with this many orders.
    Deleted { orders: u64 },
    /// Refused: requests of it were sent (this many attempts).
    Sent { attempts: u64 },
    /// Refused: a run holds it now.
    Busy,
}

/// The numbers behind `report`, besides the status.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Attempts started per interval of `bucket_ms`, from `first_ms`.
    pub first_ms: i64,
    pub bucket_ms: i64,
    pub timeline: Vec<u64>,
    /// Attempts by what was decided, HTTP status and code, most first.
    pub attempts: Vec<AttemptGroup>,
    /// The slowest attempts.
    pub slowest: Vec<SlowAttempt>,
    /// Batches that need attention, in order.
    pub troubled: Vec<TroubledBatch>,
}

/// One attempt, by how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowAttempt {
    pub batch: u32,
    pub attempt: u32,
    pub duration_ms: i64,
    pub decision: String,
}

/// A batch rejected, failed or uncertain, with the answer that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TroubledBatch {
    pub batch: u32,
    pub country: String,
    pub state: String,
    pub code: Option<i64>,
    pub message: Option<String>,
    /// The vendor's id of the reply, for its support.
    pub req_id: Option<String>,
}

/// Attempts that ended alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptGroup {
    pub decision: String,
    pub http_status: Option<i64>,
    pub code: Option<i64>,
    pub count: u64,
}

/// Buckets of the attempts' timeline.
pub(super) const TIMELINE_BUCKETS: i64 = 48;

/// How many slowest attempts and troubled batches a report lists.
pub(super) const REPORT_ROWS: i64 = 10;

/// What storing a delivery of calls did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredCalls {
    /// Calls not stored before.
    pub new: u64,
    /// Calls stored before, replaced by this later report.
    pub replaced: u64,
    /// Calls matched to no order of the ledger (kept all the same).
    pub unknown: u64,
    /// Answered calls whose intent put their number on the do-not-call
    /// list (the campaign's `[redial] suppress_intents`).
    pub opted_out: u64,
}

/// A campaign's call outcomes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallStats {
    /// Call records of the campaign's orders.
    pub records: u64,
    /// Call records of orders the ledger does not know (any campaign's).
    pub unknown_records: u64,
    /// Orders with at least one call.
    pub orders_called: u64,
    /// Orders with at least one answered call.
    pub answered: u64,
    /// Seconds talked, over every answered call.
    pub talk_seconds: u64,
    /// The most frequent intents of answered calls, with their counts.
    pub intents: Vec<(String, u64)>,
}

/// A batch held `uncertain`, as reconciliation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncertainBatch {
    pub seq: BatchSeq,
    /// When its first and its last attempt started (Unix ms): the real
    /// send times, whatever happened to the batch since (a takeover, a
    /// re-queue).
    pub first_attempt_ms: i64,
    pub last_attempt_ms: i64,
    /// Its orders' ids.
    pub order_ids: Vec<String>,
    /// How many of its orders have a call in the ledger that names them
    /// (a call matched by number alone proves nothing).
    pub orders_with_calls: u64,
}
