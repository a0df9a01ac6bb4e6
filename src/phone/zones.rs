//! Each number's time zones, from the longest prefix of its digits that
//! libphonenumber's map knows (`zone_data.rs`, made by
//! `scripts/gen-zones.py`), and each country's zones, for numbers whose
//! prefix the map does not place. A set of zones is known by its index in
//! the table of distinct sets, so that comparing two is comparing numbers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::zone_data::{COUNTRIES, LONGEST_PREFIX, PREFIXES, ZONE_SETS};

/// A set of time zones of the built-in table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ZoneSet(u16);

impl ZoneSet {
    /// Its zones, joined by `&` in name order.
    pub fn names(self) -> &'static str {
        ZONE_SETS[usize::from(self.0)].0
    }

    /// How many zones it holds (at least one).
    pub fn zones(self) -> usize {
        usize::from(ZONE_SETS[usize::from(self.0)].1)
    }

    /// Its index in the table (for keys of other sets to start after).
    pub fn index(self) -> u32 {
        u32::from(self.0)
    }

    /// How many sets the table holds.
    pub fn count() -> u32 {
        ZONE_SETS.len() as u32
    }
}

/// The zones a number may be in, by the longest known prefix of `digits`
/// (country calling code first); `None` when no prefix is known.
pub fn of_number(digits: &str) -> Option<ZoneSet> {
    let table = prefixes();
    let mut value: u64 = 0;
    let mut keys = [0_u64; LONGEST_PREFIX];
    let mut lengths = 0;
    for byte in digits.bytes().take(LONGEST_PREFIX) {
        if !byte.is_ascii_digit() {
            break;
        }
        value = value * 10 + u64::from(byte - b'0');
        keys[lengths] = key(value, lengths + 1);
        lengths += 1;
    }
    keys[..lengths]
        .iter()
        .rev()
        .find_map(|key| table.get(key).copied())
}

/// The built-in set of index `index` (an index [`ZoneSet::index`] gave).
pub fn set(index: u32) -> ZoneSet {
    ZoneSet(index as u16)
}

/// The built-in set of exactly these zones (joined by `&` in name order).
pub fn named(zones: &str) -> Option<ZoneSet> {
    ZONE_SETS
        .binary_search_by(|(known, _)| (*known).cmp(zones))
        .ok()
        .map(|at| ZoneSet(at as u16))
}

/// The zones of `country` (ISO code).
pub fn of_country(country: &str) -> Option<ZoneSet> {
    COUNTRIES
        .binary_search_by(|(known, _)| (*known).cmp(country))
        .ok()
        .map(|at| ZoneSet(COUNTRIES[at].1))
}

/// A prefix as a number, with its length (a prefix may start with a 0
/// only after its first digit, and `1` and `10` differ by length).
fn key(value: u64, len: usize) -> u64 {
    value << 4 | len as u64
}

/// The prefixes by [`key`], built once.
fn prefixes() -> &'static HashMap<u64, ZoneSet, BuildHasherDefault<Mix>> {
    static TABLE: OnceLock<HashMap<u64, ZoneSet, BuildHasherDefault<Mix>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        PREFIXES
            .iter()
            .map(|(prefix, set)| {
                let value = prefix
                    .bytes()
                    .fold(0_u64, |v, b| v * 10 + u64::from(b - b'0'));
                (key(value, prefix.len()), ZoneSet(*set))
            })
            .collect()
    })
}

/// A multiply-shift hash of one `u64`: the keys are a few thousand
/// numbers, not chosen by anyone.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (value ^ (value >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(digits: &str) -> Option<&'static str> {
        of_number(digits).map(ZoneSet::names)
    }

    #[test]
    fn a_number_takes_the_zones_of_its_longest_known_prefix() {
        assert_eq!(names("12122001234"), Some("America/New_York"));
        assert_eq!(names("13122221234"), Some("America/Chicago"));
        assert_eq!(names("13032221234"), Some("America/Denver"));
        assert_eq!(names("14152221234"), Some("America/Los_Angeles"));
        assert_eq!(names("19072221234"), Some("America/Juneau"));
        assert_eq!(names("18082221234"), Some("Pacific/Honolulu"));
        // Idaho's area code spans two zones.
        assert_eq!(
            names("12082221234"),
            Some("America/Boise&America/Los_Angeles")
        );
        assert_eq!(of_number("12082221234").unwrap().zones(), 2);
        // Indonesia: Jakarta, Makassar, Jayapura, and a mobile prefix of two.
        assert_eq!(names("622150001234"), Some("Asia/Jakarta"));
        assert_eq!(names("62411500123"), Some("Asia/Makassar"));
        assert_eq!(names("62967500123"), Some("Asia/Jayapura"));
        assert_eq!(names("6281123456789"), Some("Asia/Jakarta&Asia/Makassar"));
        assert_eq!(names("85251234567"), Some("Asia/Hong_Kong"));
        // A prefix is a number and a length: 1 is not 10.
        assert_eq!(of_number(""), None);
        // The same zones are the same set, whatever prefix found them.
        assert_eq!(of_number("12012001234"), of_number("12122001234"));
    }

    #[test]
    fn a_country_has_the_zones_of_the_time_zone_database() {
        assert_eq!(of_country("HK").map(ZoneSet::names), Some("Asia/Hong_Kong"));
        assert!(of_country("ID").unwrap().names().contains("Asia/Jayapura"));
        assert_eq!(of_country("XX"), None);
    }

    #[test]
    fn the_tables_are_sorted_and_every_zone_is_known() {
        assert!(PREFIXES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(ZONE_SETS.windows(2).all(|w| w[0].0 < w[1].0));
        for (zones, count) in ZONE_SETS {
            assert_eq!(zones.split('&').count(), usize::from(*count));
            for zone in zones.split('&') {
                assert!(jiff::tz::TimeZone::get(zone).is_ok(), "{zone}");
            }
        }
    }
}
