//! A fast path for numbers written internationally (`+…` or `00…`): the
//! same validity rule as `phonenumber::is_valid`, with the library's own
//! metadata, but with each region's patterns compiled once into plain
//! regexes instead of going through the library's shared, locked regex
//! cache (which made validation cost about 9 µs a number).
//!
//! It answers only when it is sure: a number it does not accept, or one
//! the library might rewrite (a national prefix written after the country
//! code), goes to the library's full parser. A test compares both paths on
//! every country's example numbers and on random ones.

use std::collections::HashMap;
use std::sync::OnceLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};

/// A number the fast path accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Country calling code and national number, digits only.
    pub digits: String,
    /// The region the number belongs to, or `None` for non-geographic codes.
    pub region: Option<&'static str>,
}

/// Validates `digits` (what follows the `+`): `None` means "ask the library".
pub fn accept(digits: &str) -> Option<Accepted> {
    let table = table();
    // Country calling codes are prefix-free: the first that exists is it.
    let (code, regions, national) = (1..=3).filter(|&len| digits.len() > len).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        table
            .get(&code)
            .map(|regions| (code, regions, &digits[len..]))
    })?;
    let regions = regions.get_or_init(|| compile(code));
    // The library strips a national prefix written after the country code
    // ("+44 0 20…"); leave every such number to it.
    if regions.iter().any(|r| {
        r.prefix_for_parsing
            .as_ref()
            .is_some_and(|p| p.is_match(national))
    }) {
        return None;
    }
    let region = source_for(regions, national)?;
    if !region.is_known_type(national) {
        return None;
    }
    // The library names the region from the number without leading zeros.
    let named = match national.trim_start_matches('0') {
        stripped if stripped.len() == national.len() => Some(region),
        stripped => source_for(regions, stripped),
    };
    Some(Accepted {
        digits: digits.to_owned(),
        region: named.and_then(|r| r.id),
    })
}

/// One region's compiled patterns.
struct Region {
    /// `None` for the non-geographic entity "001".
    id: Option<&'static str>,
    leading_digits: Option<Regex>,
    prefix_for_parsing: Option<Regex>,
    general: Pattern,
    /// Every number type the library tries; valid means one of them matches.
    kinds: Vec<Pattern>,
}

struct Pattern {
    regex: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    /// As `Descriptor::is_match`: a possible length, and a match that starts
    /// at the first digit.
    fn matches(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.regex.is_match(national)
    }
}

impl Region {
    /// As `validator::number_type(..) != Type::Unknown`.
    fn is_known_type(&self, national: &str) -> bool {
        self.general.matches(national) && self.kinds.iter().any(|kind| kind.matches(national))
    }
}

/// As `validator::source_for`: the region a national number belongs to.
fn source_for<'r>(regions: &'r [Region], national: &str) -> Option<&'r Region> {
    if regions.len() == 1 {
        return regions.first();
    }
    regions.iter().find(|region| match &region.leading_digits {
        Some(leading) => leading.is_match(national),
        None => region.is_known_type(national),
    })
}

type Table = HashMap<u16, OnceLock<Vec<Region>>>;

/// Every country calling code, its regions compiled on first use (so a
/// file of one country compiles one country's patterns).
fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        DATABASE
            .iter()
            .map(|m| (m.country_code(), OnceLock::new()))
            .collect()
    })
}

/// A code's regions, in the library's order, with their patterns compiled.
fn compile(code: u16) -> Vec<Region> {
    let database: &'static phonenumber::metadata::Database = &DATABASE;
    database
        .region(&code)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| database.by_id(id))
        .map(|meta: &'static Metadata| {
            let descriptors = meta.descriptors();
            // Valid means any of them matches, so the commonest go first.
            let kinds = [
                descriptors.mobile(),
                descriptors.fixed_line(),
                descriptors.premium_rate(),
                descriptors.toll_free(),
                descriptors.shared_cost(),
                descriptors.voip(),
                descriptors.personal_number(),
                descriptors.pager(),
                descriptors.uan(),
                descriptors.voicemail(),
            ];
            Region {
                id: Some(meta.id()).filter(|id| *id != "001"),
                leading_digits: meta.leading_digits().map(|r| anchored(r.as_str())),
                prefix_for_parsing: meta
                    .national_prefix_for_parsing()
                    .map(|r| anchored(r.as_str())),
                general: pattern(descriptors.general()),
                kinds: kinds.into_iter().flatten().map(pattern).collect(),
            }
        })
        .collect()
}

fn pattern(descriptor: &Descriptor) -> Pattern {
    Pattern {
        regex: anchored(descriptor.national_number().as_str()),
        lengths: descriptor.possible_length().to_vec(),
    }
}

/// A pattern that must match from the first character, as the library's
/// `find(..).start() == 0` checks; like the library, it ignores the
/// metadata's layout whitespace. Numbers here are ASCII digits, so `\d` need
/// not be Unicode's (whose classes made every region's patterns megabytes).
fn anchored(pattern: &str) -> Regex {
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .expect("the library's own patterns compile")
}
