//! Redials as both backends plan, count and re-check them: one query that
//! lists a campaign's contacts with their calls, read in contact order, and
//! one walk over its rows that asks `redial` what comes next for each
//! contact. The backends only run the statements and store what comes out.

use crate::batch::BatchSeq;
use crate::phone::Country;
use crate::plan::{Batcher, OrderId, Zoning};
use crate::redial::{self, CallSeen, Contact, Funnel, Next, Policy};

/// Every order of campaign `$1` with its contact (kind 0: its row,
/// attempt and order id, its batch's country and zones and whether the
/// batch was accepted; a redial set aside at its claim is listed too,
/// without a batch), and every call of the campaign with its order's
/// contact (kind 1), in contact order. The walk finds each contact's
/// latest order itself, and takes a contact's rows in any order.
///
/// No sort: each of the four parts comes in contact order from a B-tree,
/// and the database merges them. First orders are their own contacts
/// (read by row id); redials come by `orders_redials` (contact, attempt);
/// calls of first orders by `calls_by_order` (campaign, order), which
/// holds every column the walk reads; calls of redials by their orders,
/// in contact order. `$join` makes the database keep the order of the
/// joins as written (`CROSS JOIN` on SQLite, whose planner takes it so;
/// a plain `JOIN` on PostgreSQL). A call the vendor reported without an
/// end time ended, for the spacing, when the ledger stored it.
macro_rules! contact_rows {
    ($join:literal) => {
        concat!(
            "SELECT o.id AS contact, 0 AS kind, o.id AS a_row, 1 AS attempt, b.country AS country,
                o.order_id AS order_id, b.state = 'accepted' AS accepted,
                NULL AS start_ms, NULL AS end_ms, NULL AS answered, NULL AS hangup_code,
                NULL AS call_status, NULL AS intent, b.zones AS zones
             FROM orders o ", $join, " batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq
             WHERE +o.campaign_id = $1 AND +o.batch_seq IS NOT NULL AND o.contact_row IS NULL
             UNION ALL
             SELECT c.order_row, 1, c.order_row, 1, NULL, NULL, NULL,
                c.start_ms, COALESCE(c.end_ms, c.received_at_ms), c.answered, c.hangup_code,
                c.call_status, c.intent, NULL
             FROM calls c ", $join, " orders o ON o.id = c.order_row
             WHERE c.campaign_id = $1 AND o.contact_row IS NULL
             UNION ALL
             SELECT o.contact_row, 0, o.id, o.attempt, b.country, o.order_id,
                COALESCE(b.state = 'accepted', FALSE), NULL, NULL, NULL, NULL, NULL, NULL, b.zones
             FROM orders o LEFT JOIN batches b ON b.campaign_id = o.campaign_id AND b.seq = o.batch_seq
             WHERE o.contact_row IS NOT NULL AND o.campaign_id = $1
             UNION ALL
             SELECT o.contact_row, 1, c.order_row, o.attempt, NULL, NULL, NULL,
                c.start_ms, COALESCE(c.end_ms, c.received_at_ms), c.answered, c.hangup_code,
                c.call_status, c.intent, NULL
             FROM orders o ", $join, " calls c ON c.campaign_id = o.campaign_id AND c.order_row = o.id
             WHERE o.contact_row IS NOT NULL AND o.campaign_id = $1
             ORDER BY 1"
        )
    };
}

/// [`contact_rows!`] as SQLite runs it (`$1` is read as the first
/// parameter).
pub(super) const CONTACT_ROWS_SQLITE: &str = contact_rows!("CROSS JOIN");

/// [`contact_rows!`] as PostgreSQL runs it.
pub(super) const CONTACT_ROWS_POSTGRES: &str = contact_rows!("JOIN");

/// One row of [`contact_rows!`], as a backend decodes it.
#[derive(Debug, Clone)]
pub(super) enum ContactRow {
    /// One of the contact's orders.
    Order {
        contact: i64,
        row: i64,
        attempt: u32,
        /// Its batch's country; `None` for a redial set aside.
        country: Option<String>,
        order_id: Option<String>,
        /// Whether its batch was accepted.
        accepted: bool,
        /// Its batch's time zones (joined by `&`; `None` for a redial set
        /// aside).
        zones: Option<String>,
    },
    /// A call of one of the contact's orders.
    Call {
        contact: i64,
        order_row: i64,
        call: CallSeen,
    },
}

impl ContactRow {
    fn contact(&self) -> i64 {
        match self {
            ContactRow::Order { contact, .. } | ContactRow::Call { contact, .. } => *contact,
        }
    }
}

/// A redial to store: order number `attempt` of the contact whose first
/// order is row `contact`, with its id and batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DueRedial {
    pub contact: i64,
    pub attempt: u32,
    pub order_id: String,
    pub batch_seq: BatchSeq,
    pub country: String,
    /// The zones of the contact's latest batch: a redial is called in the
    /// same windows.
    pub zones: String,
}

/// What planning redials did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedialsPlanned {
    /// Redial orders planned now.
    pub orders: u64,
    /// Contacts waiting for a later attempt, and the earliest due.
    pub waiting: u64,
    pub next_due_ms: Option<i64>,
    /// Contacts whose latest order has no call yet.
    pub awaiting_call: u64,
}

/// The walk over [`contact_rows!`]: groups a contact's rows, asks
/// `redial::next`, and places the due ones into new batches.
pub(super) struct Walk<'a> {
    policy: &'a Policy,
    now_ms: i64,
    /// Where due redials go; `None` only counts (the funnel).
    planning: Option<Planning<'a>>,
    current: Option<Gathered>,
    pub funnel: Funnel,
}

struct Planning<'a> {
    salt: &'a str,
    campaign: &'a str,
    batcher: Batcher,
    /// Keys of the zone sets of the contacts' batches.
    zoning: Zoning,
    /// Each new batch and how many redials it took, in batch order.
    batches: Vec<NewBatch>,
}

/// A batch the walk opened for due redials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewBatch {
    pub seq: BatchSeq,
    pub country: String,
    pub zones: String,
    pub size: u32,
}

/// A contact's latest order, as far as its rows have come.
struct LatestOrder {
    row: i64,
    attempt: u32,
    country: Option<String>,
    accepted: bool,
    zones: Option<String>,
}

/// The rows of one contact so far.
struct Gathered {
    contact: i64,
    /// Its latest order so far.
    latest: Option<LatestOrder>,
    /// The order id of its first order.
    first_id: Option<String>,
    calls: Vec<(i64, CallSeen)>,
}

impl<'a> Walk<'a> {
    /// A walk that plans: new batches start at `next_seq`, `size` orders
    /// at most; ids are derived with the ledger's `salt`.
    pub fn planning(
        policy: &'a Policy,
        now_ms: i64,
        salt: &'a str,
        campaign: &'a str,
        size: u32,
        next_seq: BatchSeq,
    ) -> Walk<'a> {
        Walk {
            policy,
            now_ms,
            planning: Some(Planning {
                salt,
                campaign,
                batcher: Batcher::new(size, next_seq),
                zoning: Zoning::default(),
                batches: Vec::new(),
            }),
            current: None,
            funnel: Funnel::default(),
        }
    }

    /// A walk that only counts.
    pub fn counting(policy: &'a Policy, now_ms: i64) -> Walk<'a> {
        Walk {
            policy,
            now_ms,
            planning: None,
            current: None,
            funnel: Funnel::default(),
        }
    }

    /// Takes the next row (in contact order); a contact's redial comes out
    /// once its last row has been taken.
    pub fn take(&mut self, row: ContactRow) -> Option<DueRedial> {
        let done = match &self.current {
            Some(current) if current.contact != row.contact() => self.current.take(),
            _ => None,
        };
        let current = self.current.get_or_insert_with(|| Gathered {
            contact: row.contact(),
            latest: None,
            first_id: None,
            calls: Vec::new(),
        });
        match row {
            ContactRow::Order {
                row,
                attempt,
                country,
                order_id,
                accepted,
                zones,
                ..
            } => {
                if attempt == 1 {
                    current.first_id = order_id;
                }
                if current.latest.as_ref().is_none_or(|l| l.attempt < attempt) {
                    current.latest = Some(LatestOrder {
                        row,
                        attempt,
                        country,
                        accepted,
                        zones,
                    });
                }
            }
            ContactRow::Call {
                order_row, call, ..
            } => current.calls.push((order_row, call)),
        }
        done.and_then(|gathered| self.decide(gathered))
    }

    /// The batches opened for the due redials so far, in order.
    pub fn new_batches(&self) -> &[NewBatch] {
        self.planning
            .as_ref()
            .map_or(&[], |planning| planning.batches.as_slice())
    }

    /// The last contact's redial, if due.
    pub fn finish(&mut self) -> Option<DueRedial> {
        self.current
            .take()
            .and_then(|gathered| self.decide(gathered))
    }

    fn decide(&mut self, gathered: Gathered) -> Option<DueRedial> {
        // A contact whose latest order is not accepted: not ours to decide
        // (it is being sent, or was set aside).
        let LatestOrder {
            row: latest_row,
            attempt: latest_attempt,
            country,
            accepted,
            zones,
        } = gathered.latest?;
        let zones = zones.unwrap_or_default();
        let country = country.filter(|_| accepted)?;
        let first_id = gathered.first_id;
        let contact = Contact {
            country: country.clone(),
            zones: zones.clone(),
            latest_attempt,
            calls: gathered
                .calls
                .into_iter()
                .map(|(order_row, call)| CallSeen {
                    of_latest: order_row == latest_row,
                    ..call
                })
                .collect(),
        };
        let next = redial::next(self.policy, &contact, self.now_ms);
        self.funnel.add(next);
        let Next::Due { attempt } = next else {
            return None;
        };
        let planning = self.planning.as_mut()?;
        let first = first_id?;
        let placed = planning.batcher.place(
            Country::parse(&country).ok()?,
            planning.zoning.key_of(&zones),
        );
        // The batcher numbers the batches it opens one after another.
        if placed.opens {
            planning.batches.push(NewBatch {
                seq: placed.seq,
                country: country.clone(),
                zones: zones.clone(),
                size: 0,
            });
        }
        let first_seq = planning.batches.first()?.seq.get();
        planning.batches[(placed.seq.get() - first_seq) as usize].size += 1;
        Some(DueRedial {
            contact: gathered.contact,
            attempt,
            order_id: OrderId::for_redial(planning.salt, planning.campaign, &first, attempt)
                .to_string(),
            batch_seq: placed.seq,
            country,
            zones,
        })
    }
}

/// How many redial orders campaign `$1` holds (by the index of redials:
/// only the ledger's redial orders are read).
pub(crate) const REDIAL_ORDERS: &str =
    "SELECT COUNT(*) FROM orders WHERE contact_row IS NOT NULL AND campaign_id = $1";

/// The calls of contact `$1`'s orders before attempt `$2`: what the claim
/// re-checks a redial by (the same text on both backends; an end time as
/// in [`contact_rows!`]).
pub(super) const CALLS_BEFORE_REDIAL: &str =
    "SELECT o.attempt, c.start_ms, COALESCE(c.end_ms, c.received_at_ms), c.answered, c.hangup_code,
        c.call_status, c.intent
     FROM orders o JOIN calls c ON c.campaign_id = o.campaign_id AND c.order_row = o.id
     WHERE (o.id = $1 OR o.contact_row = $1) AND o.attempt < $2";

/// A redial order of a batch being claimed.
#[derive(Debug, Clone)]
pub(super) struct ClaimedRedial {
    pub row: i64,
    pub contact: i64,
    pub attempt: u32,
    pub country: String,
    /// Its batch's zones (see `redial::Contact`).
    pub zones: String,
    pub order_id: Option<String>,
    pub batch_seq: i64,
}

/// What the claim does with `redial`, given the calls of its contact's
/// orders before it (`(attempt of the order, call)`).
pub(super) fn recheck(
    policy: &Policy,
    redial: &ClaimedRedial,
    calls: Vec<(u32, CallSeen)>,
    now_ms: i64,
) -> redial::Recheck {
    let follows = redial.attempt.saturating_sub(1);
    let contact = Contact {
        country: redial.country.clone(),
        zones: redial.zones.clone(),
        latest_attempt: follows,
        calls: calls
            .into_iter()
            .map(|(attempt, call)| CallSeen {
                of_latest: attempt == follows,
                ..call
            })
            .collect(),
    };
    redial::recheck(policy, &contact, redial.attempt, now_ms)
}

/// Each campaign's opt-out intents, read once per batch of calls stored.
#[derive(Debug, Default)]
pub(super) struct OptOuts {
    intents: std::collections::HashMap<i64, Vec<String>>,
}

impl OptOuts {
    /// Whether the campaign's intents are known yet.
    pub fn knows(&self, campaign: i64) -> bool {
        self.intents.contains_key(&campaign)
    }

    /// Learns the campaign's intents from its kept `[redial]` (JSON).
    pub fn learn(&mut self, campaign: i64, policy: Option<&str>) {
        let intents = policy
            .and_then(Policy::from_json)
            .map(|policy| policy.suppress_intents)
            .unwrap_or_default();
        self.intents.insert(campaign, intents);
    }

    /// The do-not-call entry's reason and source when `call`, stored as
    /// the campaign's, is an answered call with an opt-out intent.
    pub fn entry(
        &self,
        campaign: i64,
        call: &crate::nxlink::calls::Call,
    ) -> Option<(String, String)> {
        let intents = self.intents.get(&campaign)?;
        let intent = call.intent.as_deref()?;
        (call.answered && redial::is_opt_out(intents, Some(intent))).then(|| {
            (
                format!("opted out on a call: intent {:?}", intent.trim()),
                format!("call {}", call.call_id),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::redial::{Outcome, Zones};

    fn policy() -> Policy {
        Policy {
            max_attempts: 3,
            after: vec![Duration::from_secs(60)],
            on: vec![Outcome::NoAnswer],
            max_per_day: None,
            suppress_intents: Vec::new(),
            codes: Vec::new(),
            zones: Zones::default(),
        }
    }

    /// A walk that plans into batches of 2, the first numbered `first`.
    fn planning(policy: &Policy, first: u32) -> Walk<'_> {
        Walk::planning(
            policy,
            1_000_000,
            "salt",
            "spring",
            2,
            BatchSeq::new(i64::from(first)).unwrap(),
        )
    }

    fn order(contact: i64, row: i64, attempt: u32, accepted: bool) -> ContactRow {
        order_in("HK", contact, row, attempt, accepted)
    }

    fn order_in(country: &str, contact: i64, row: i64, attempt: u32, accepted: bool) -> ContactRow {
        ContactRow::Order {
            contact,
            row,
            attempt,
            country: Some(country.into()),
            order_id: Some(format!("ID{row}")),
            accepted,
            zones: Some(String::new()),
        }
    }

    fn latest(contact: i64, row: i64, attempt: u32) -> ContactRow {
        order(contact, row, attempt, true)
    }

    fn call(contact: i64, order_row: i64, end_s: i64, answered: bool) -> ContactRow {
        ContactRow::Call {
            contact,
            order_row,
            call: CallSeen {
                start_ms: Some(end_s * 1000 - 10_000),
                end_ms: Some(end_s * 1000),
                answered,
                hangup_code: Some(if answered { "16" } else { "19" }.into()),
                call_status: None,
                intent: None,
                of_latest: false,
            },
        }
    }

    #[test]
    fn each_contact_is_decided_once_from_all_its_rows() {
        let p = policy();
        let mut walk = planning(&p, 7);
        let rows = vec![
            // Answered: done.
            latest(1, 1, 1),
            call(1, 1, 100, true),
            // Unanswered long ago: due, attempt 2.
            latest(2, 2, 1),
            call(2, 2, 100, false),
            // A redial (row 9) of contact 3, no call of it yet: waits.
            latest(3, 3, 1),
            latest(3, 9, 2),
            call(3, 3, 100, false),
            // A contact whose latest order (a redial) is not accepted.
            order(4, 4, 1, true),
            order(4, 11, 2, false),
            call(4, 4, 100, false),
            // Unanswered just now: later.
            latest(5, 5, 1),
            call(5, 5, 990, false),
        ];
        let mut due: Vec<DueRedial> = rows.into_iter().filter_map(|row| walk.take(row)).collect();
        due.extend(walk.finish());
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].contact, 2);
        assert_eq!(due[0].attempt, 2);
        assert_eq!(due[0].batch_seq.get(), 7);
        assert_eq!(
            due[0].order_id,
            OrderId::for_redial("salt", "spring", "ID2", 2).to_string()
        );
        assert_eq!(walk.funnel.reached(), 1);
        assert_eq!(walk.funnel.awaiting_call, 1);
        assert_eq!(walk.funnel.due_now, 1);
        assert_eq!(walk.funnel.waiting, 1);
        assert_eq!(walk.funnel.next_due_ms, Some(1_050_000));
        assert_eq!(
            walk.new_batches(),
            [NewBatch {
                seq: BatchSeq::new(7).unwrap(),
                country: "HK".into(),
                zones: String::new(),
                size: 1,
            }]
        );
    }

    #[test]
    fn the_walk_counts_the_redials_of_each_batch_it_opens() {
        let p = policy();
        let mut walk = planning(&p, 3);
        let in_country = |contact: i64, country: &str| order_in(country, contact, contact, 1, true);
        let rows = vec![
            in_country(1, "HK"),
            call(1, 1, 100, false),
            in_country(2, "SG"),
            call(2, 2, 100, false),
            in_country(3, "HK"),
            call(3, 3, 100, false),
            in_country(4, "HK"),
            call(4, 4, 100, false),
        ];
        let mut due: Vec<DueRedial> = rows.into_iter().filter_map(|row| walk.take(row)).collect();
        due.extend(walk.finish());
        assert_eq!(
            due.iter().map(|d| d.batch_seq.get()).collect::<Vec<_>>(),
            [3, 4, 3, 5]
        );
        let batches: Vec<(u32, &str, u32)> = walk
            .new_batches()
            .iter()
            .map(|b| (b.seq.get(), b.country.as_str(), b.size))
            .collect();
        assert_eq!(batches, [(3, "HK", 2), (4, "SG", 1), (5, "HK", 1)]);
    }
}
