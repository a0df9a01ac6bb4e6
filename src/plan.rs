//! Pure planning: raw rows become contacts with order ids, and contacts are
//! placed into batches (one country per batch, in file order, stable
//! sequence numbers).
//!
//! No I/O, no clock: the ledger feeds it state and stores what it decides.

use std::collections::HashMap;
use std::fmt;

use md5::{Digest, Md5};

use crate::batch::BatchSeq;
use crate::contacts::RawContact;
use crate::job::CampaignName;
use crate::phone::{Country, Phone};

/// An NXLink `orderID`: at most 32 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(raw: &str) -> Result<OrderId, String> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 32 {
            return Err(format!("order id {raw:?} must be 1 to 32 characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "order id {raw:?} may only hold letters, digits, '_' and '-'"
            ));
        }
        Ok(OrderId(raw.to_owned()))
    }

    /// The id of a contact whose file gives none: 32 upper-case hex digits of
    /// MD5 over the ledger's salt, the campaign name and the normalized
    /// phone, so reading the same file again into the same ledger yields the
    /// same ids, and any other ledger (made with another salt) other ids.
    /// An empty salt (ledgers older than salts) leaves it out.
    pub fn derive(salt: &str, campaign: &CampaignName, phone: &Phone) -> OrderId {
        let mut hasher = Md5::new();
        if !salt.is_empty() {
            hasher.update(salt.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(campaign.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(phone.digits().as_bytes());
        OrderId(hex::encode_upper(hasher.finalize()))
    }

    /// The id of attempt `attempt` (2, 3, …) of the contact whose first
    /// order is `first`: MD5 over the ledger's salt, the campaign, the first
    /// order's id and the attempt, so planning the same redial twice gives
    /// the same id, and every attempt of a contact its own.
    pub fn for_redial(salt: &str, campaign: &str, first: &str, attempt: u32) -> OrderId {
        let mut hasher = Md5::new();
        hasher.update(salt.as_bytes());
        hasher.update(b"\n");
        hasher.update(campaign.as_bytes());
        hasher.update(b"\n");
        hasher.update(first.as_bytes());
        hasher.update(format!("\nattempt {attempt}").as_bytes());
        OrderId(hex::encode_upper(hasher.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid contact: a row with a usable number and order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub line: u64,
    pub order_id: OrderId,
    pub phone: Phone,
    pub other: String,
    /// The row's own time zone (an IANA name as the database spells it).
    pub timezone: Option<String>,
}

/// A row that cannot become an order, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRow {
    pub line: u64,
    pub order_id: Option<String>,
    /// The phone text as found, or empty when the row was unreadable.
    pub phone: String,
    pub reason: String,
}

/// Validates one raw row: its country, number and order id (derived with
/// the ledger's `salt` when the row has none).
pub fn contact_from_row(
    row: RawContact,
    salt: &str,
    campaign: &CampaignName,
    default_country: Country,
) -> Result<Contact, InvalidRow> {
    let invalid = |row: &RawContact, reason: String| InvalidRow {
        line: row.line,
        order_id: row.order_id.clone(),
        phone: row.phone.clone(),
        reason,
    };
    let country = match &row.country {
        Some(raw) => Country::parse(raw).map_err(|e| invalid(&row, e.to_string()))?,
        None => default_country,
    };
    let phone = Phone::parse(&row.phone, country).map_err(|e| invalid(&row, e.to_string()))?;
    let order_id = match &row.order_id {
        Some(raw) => OrderId::parse(raw).map_err(|e| invalid(&row, e))?,
        None => OrderId::derive(salt, campaign, &phone),
    };
    let timezone = match &row.timezone {
        Some(raw) => Some(
            crate::schedule::parse_zone(raw)
                .ok()
                .and_then(|zone| zone.iana_name().map(str::to_owned))
                .ok_or_else(|| {
                    invalid(
                        &row,
                        format!("time zone {raw:?} is not an IANA name such as America/New_York"),
                    )
                })?,
        ),
        None => None,
    };
    Ok(Contact {
        line: row.line,
        order_id,
        phone,
        other: row.other,
        timezone,
    })
}

/// The time zones each number is called in, under the job's `[schedule]`:
/// the row's own zone, else its country's pin in `countries`, else the
/// zones of its number's prefix (libphonenumber's map), else its country's
/// zones. Without a schedule, none. A set of zones is known by a key, the
/// same for the same zones however they were found.
#[derive(Debug, Clone, Default)]
pub struct Zoning {
    scheduled: bool,
    /// ISO country → the key of the zone `[schedule] countries` pins it to.
    pins: HashMap<String, u32>,
    /// Zones that no built-in set names (pins, rows' own), by key less
    /// the built-in sets' count.
    extra: Vec<String>,
}

/// The key of "no zones": a job without a schedule.
pub const NO_ZONES: u32 = u32::MAX;

/// The key of a number nothing places, under a schedule: never called
/// until the job pins its country or its row names a zone (a batch keeps
/// it as `?`).
pub const UNPLACED: u32 = u32::MAX - 1;

impl Zoning {
    pub fn new(schedule: Option<&crate::schedule::Schedule>) -> Zoning {
        let mut zoning = Zoning {
            scheduled: schedule.is_some(),
            ..Zoning::default()
        };
        for (country, zone) in schedule.map(|s| &s.countries).into_iter().flatten() {
            if let Some(name) = zone.iana_name() {
                let key = zoning.intern(name);
                zoning.pins.insert(country.clone(), key);
            }
        }
        zoning
    }

    /// The key of the zones `phone` may be in; `own`, the row's zone,
    /// wins. [`NO_ZONES`] without a schedule, or when nothing places it.
    pub fn key(&mut self, phone: &Phone, own: Option<&str>) -> u32 {
        use crate::phone::zones;
        if !self.scheduled {
            return NO_ZONES;
        }
        if let Some(own) = own {
            return self.intern(own);
        }
        if let Some(pin) = self.pins.get(phone.country_iso()) {
            return *pin;
        }
        let set = match zones::of_number(phone.digits()) {
            Some(prefix) if prefix.zones() == 1 => Some(prefix),
            // A prefix that only names the calling code, shared by several
            // countries (`1`, `44`), spans more than the number's country.
            Some(prefix) => Some(
                zones::of_country(phone.country_iso())
                    .filter(|country| country.zones() < prefix.zones())
                    .unwrap_or(prefix),
            ),
            None => zones::of_country(phone.country_iso()),
        };
        set.map_or(UNPLACED, zones::ZoneSet::index)
    }

    /// The zones of `key`, joined by `&` (empty for [`NO_ZONES`]).
    pub fn names(&self, key: u32) -> &str {
        use crate::phone::zones::ZoneSet;
        if key == NO_ZONES {
            ""
        } else if key == UNPLACED {
            crate::schedule::UNPLACED
        } else if key < ZoneSet::count() {
            crate::phone::zones::set(key).names()
        } else {
            &self.extra[(key - ZoneSet::count()) as usize]
        }
    }

    /// The key of `zones` as a batch keeps them (joined by `&`; empty for
    /// none).
    pub fn key_of(&mut self, zones: &str) -> u32 {
        if zones.is_empty() {
            NO_ZONES
        } else if zones == crate::schedule::UNPLACED {
            UNPLACED
        } else {
            self.intern(zones)
        }
    }

    /// The key of `zones` (one name, or several joined by `&`).
    fn intern(&mut self, zones: &str) -> u32 {
        use crate::phone::zones::ZoneSet;
        if let Some(set) = crate::phone::zones::named(zones) {
            return set.index();
        }
        let at = match self.extra.iter().position(|known| known == zones) {
            Some(at) => at,
            None => {
                self.extra.push(zones.to_owned());
                self.extra.len() - 1
            }
        };
        ZoneSet::count() + at as u32
    }
}

/// A batch that is still being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OpenBatch {
    seq: BatchSeq,
    len: u32,
}

/// Where a contact goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub seq: BatchSeq,
    /// True when this contact opens a new batch.
    pub opens: bool,
}

/// Cuts contacts into batches of at most `size`, one country and one set
/// of time zones per batch (so one calling window holds for all of its
/// numbers), in the order contacts arrive. Each ingest opens batches of its
/// own: a batch planned by an earlier ingest never takes more orders, so
/// what a batch holds is fixed once it is planned.
#[derive(Debug, Clone)]
pub struct Batcher {
    size: u32,
    next_seq: BatchSeq,
    open: HashMap<(Country, u32), OpenBatch>,
}

impl Batcher {
    /// `next_seq` is the first unused sequence number.
    pub fn new(size: u32, next_seq: BatchSeq) -> Batcher {
        Batcher {
            size: size.max(1),
            next_seq,
            open: HashMap::new(),
        }
    }

    /// Places a contact of `country` whose number may be in the zones of
    /// `zones` (a [`Zoning`] key).
    pub fn place(&mut self, country: Country, zones: u32) -> Placement {
        if let Some(batch) = self.open.get_mut(&(country, zones)) {
            if batch.len < self.size {
                batch.len += 1;
                return Placement {
                    seq: batch.seq,
                    opens: false,
                };
            }
        }
        let seq = self.next_seq;
        self.next_seq = seq.next();
        self.open
            .insert((country, zones), OpenBatch { seq, len: 1 });
        Placement { seq, opens: true }
    }

    /// Closes every open batch: the next contact of any country opens a
    /// new one. Batches are closed before they are planned, so a batch that
    /// may be sent never grows.
    pub fn close_all(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> CampaignName {
        CampaignName::parse("spring").unwrap()
    }

    fn country(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    fn raw(line: u64, phone: &str, country: Option<&str>, order_id: Option<&str>) -> RawContact {
        RawContact {
            line,
            phone: phone.into(),
            country: country.map(Into::into),
            order_id: order_id.map(Into::into),
            timezone: None,
            other: String::new(),
        }
    }

    #[test]
    fn derived_order_ids_are_stable_32_upper_hex_digits() {
        let phone = Phone::parse("+852 3575 7581", country("HK")).unwrap();
        let same = Phone::parse("3575-7581", country("HK")).unwrap();
        let id = OrderId::derive("", &campaign(), &phone);
        assert_eq!(id, OrderId::derive("", &campaign(), &same));
        assert_eq!(id.as_str().len(), 32);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        // Pinned so that a change of the rule is noticed: ids must never
        // change between versions, or a re-read file would look new.
        assert_eq!(
            id.as_str(),
            hex::encode_upper(Md5::digest(b"spring\n85235757581"))
        );
        let other = CampaignName::parse("autumn").unwrap();
        assert_ne!(id, OrderId::derive("", &other, &phone));
    }

    #[test]
    fn a_salt_makes_derived_ids_differ_between_ledgers() {
        let phone = Phone::parse("+852 3575 7581", country("HK")).unwrap();
        let salted = OrderId::derive("0a1b", &campaign(), &phone);
        assert_eq!(salted, OrderId::derive("0a1b", &campaign(), &phone));
        assert_ne!(salted, OrderId::derive("ffff", &campaign(), &phone));
        assert_ne!(salted, OrderId::derive("", &campaign(), &phone));
        assert_eq!(
            salted.as_str(),
            hex::encode_upper(Md5::digest(b"0a1b\nspring\n85235757581"))
        );
    }

    #[test]
    fn given_order_ids_are_checked() {
        assert!(OrderId::parse("A-1_b").is_ok());
        assert!(OrderId::parse(&"x".repeat(32)).is_ok());
        assert!(OrderId::parse(&"x".repeat(33)).is_err());
        assert!(OrderId::parse("a b").is_err());
        assert!(OrderId::parse("").is_err());
    }

    #[test]
    fn rows_become_contacts_or_invalid_rows_with_reasons() {
        let c = contact_from_row(
            raw(2, "3575 7581", None, None),
            "",
            &campaign(),
            country("HK"),
        )
        .unwrap();
        assert_eq!(c.phone.digits(), "85235757581");
        let c = contact_from_row(
            raw(3, "020 7946 0958", Some("gb"), Some("X1")),
            "",
            &campaign(),
            country("HK"),
        )
        .unwrap();
        assert_eq!(
            (c.phone.digits(), c.order_id.as_str()),
            ("442079460958", "X1")
        );

        let bad =
            contact_from_row(raw(4, "12", None, None), "", &campaign(), country("HK")).unwrap_err();
        assert_eq!(
            (bad.line, bad.reason.as_str()),
            (4, "\"12\" is not a valid phone number")
        );
        let bad = contact_from_row(
            raw(5, "35757581", Some("Narnia"), None),
            "",
            &campaign(),
            country("HK"),
        )
        .unwrap_err();
        assert!(
            bad.reason.contains("unknown country \"Narnia\""),
            "{}",
            bad.reason
        );
        let bad = contact_from_row(
            raw(6, "35757581", None, Some("no spaces!")),
            "",
            &campaign(),
            country("HK"),
        )
        .unwrap_err();
        assert!(bad.reason.contains("order id"), "{}", bad.reason);
        assert_eq!(bad.order_id.as_deref(), Some("no spaces!"));
    }

    fn check_batches(size: u32, countries: &[&str], expected: &[(u32, bool)]) {
        let mut batcher = Batcher::new(size, BatchSeq::FIRST);
        let got: Vec<_> = countries
            .iter()
            .map(|c| {
                let p = batcher.place(country(c), NO_ZONES);
                (p.seq.get(), p.opens)
            })
            .collect();
        assert_eq!(got, expected, "size {size}, countries {countries:?}");
    }

    #[test]
    fn batches_are_cut_per_country_in_arrival_order() {
        check_batches(2, &["HK", "HK", "HK"], &[(1, true), (1, false), (2, true)]);
        check_batches(
            2,
            &["HK", "GB", "HK", "GB", "GB", "HK"],
            &[
                (1, true),
                (2, true),
                (1, false),
                (2, false),
                (3, true),
                (4, true),
            ],
        );
        check_batches(1, &["HK", "HK"], &[(1, true), (2, true)]);
    }

    #[test]
    fn numbers_of_other_zones_go_to_other_batches() {
        let us = country("US");
        let mut batcher = Batcher::new(10, BatchSeq::FIRST);
        let ny = batcher.place(us, 1);
        let la = batcher.place(us, 2);
        let ny_again = batcher.place(us, 1);
        assert_ne!(ny.seq, la.seq);
        assert_eq!(ny.seq, ny_again.seq);
        assert!(!ny_again.opens);
    }

    #[test]
    fn a_new_batcher_never_fills_an_earlier_batch() {
        let eight = BatchSeq::new(8).unwrap();
        let mut batcher = Batcher::new(3, eight);
        assert_eq!(
            batcher.place(country("HK"), NO_ZONES),
            Placement {
                seq: eight,
                opens: true
            }
        );
        assert_eq!(
            batcher.place(country("GB"), NO_ZONES),
            Placement {
                seq: eight.next(),
                opens: true
            }
        );
    }
}
