//! Each number's time zones, from the longest prefix of its digits that
//! libphonenumber's map knows (`zone_data.rs`, made by
//! `scripts/gen-zones.py`), and each country's zones, for numbers whose
//! prefix the map does not place.

use super::zone_data::{COUNTRIES, LONGEST_PREFIX, PREFIXES};

/// The zones a number may be in, joined by `&` in name order: by the
/// longest known prefix of `digits` (country calling code first). `None`
/// when no prefix is known.
pub fn of_number(digits: &str) -> Option<&'static str> {
    (1..=LONGEST_PREFIX.min(digits.len()))
        .rev()
        .find_map(|len| find(PREFIXES, &digits[..len]))
}

/// The zones of `country` (ISO code), joined by `&` in name order.
pub fn of_country(country: &str) -> Option<&'static str> {
    find(COUNTRIES, country)
}

fn find(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(known, _)| (*known).cmp(key))
        .ok()
        .map(|at| table[at].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_takes_the_zones_of_its_longest_known_prefix() {
        assert_eq!(of_number("12122001234"), Some("America/New_York"));
        assert_eq!(of_number("13122221234"), Some("America/Chicago"));
        assert_eq!(of_number("13032221234"), Some("America/Denver"));
        assert_eq!(of_number("14152221234"), Some("America/Los_Angeles"));
        assert_eq!(of_number("19072221234"), Some("America/Juneau"));
        assert_eq!(of_number("18082221234"), Some("Pacific/Honolulu"));
        // Idaho's area code spans two zones.
        assert_eq!(
            of_number("12082221234"),
            Some("America/Boise&America/Los_Angeles")
        );
        // Indonesia: Jakarta, Makassar, Jayapura, and a mobile prefix of two.
        assert_eq!(of_number("622150001234"), Some("Asia/Jakarta"));
        assert_eq!(of_number("62411500123"), Some("Asia/Makassar"));
        assert_eq!(of_number("62967500123"), Some("Asia/Jayapura"));
        assert_eq!(
            of_number("6281123456789"),
            Some("Asia/Jakarta&Asia/Makassar")
        );
        assert_eq!(of_number("85251234567"), Some("Asia/Hong_Kong"));
        assert_eq!(of_number(""), None);
    }

    #[test]
    fn a_country_has_the_zones_of_the_time_zone_database() {
        assert_eq!(of_country("HK"), Some("Asia/Hong_Kong"));
        assert!(of_country("ID").unwrap().contains("Asia/Jayapura"));
        assert_eq!(of_country("XX"), None);
    }

    #[test]
    fn the_tables_are_sorted_and_every_zone_is_known() {
        for table in [PREFIXES, COUNTRIES] {
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
            for (_, zones) in table {
                for zone in zones.split('&') {
                    assert!(jiff::tz::TimeZone::get(zone).is_ok(), "{zone}");
                }
            }
        }
    }
}
