//! The `phonenumber` crate's parse-and-validate, step for step, for the only
//! input this crate gives it: ASCII digits with an optional leading `+`.
//!
//! The library answers the same question in 20 to 30 µs a number: it runs
//! a general-purpose `nom` parser, looks every pattern up in a shared,
//! locked regex cache, and allocates at every step. Here each region's
//! patterns are compiled once into plain regexes (without Unicode classes,
//! which made them megabytes) and the steps work on borrowed digits, which
//! brings a number to about a microsecond.
//!
//! The steps are the library's, quirks included (see `parse`): the answer
//! must be the library's answer, valid or invalid, for every input. A test
//! holds both to that on every region's example numbers in every common
//! format, on random digits, and on the realistic benchmark file. Where a
//! step is rare enough not to be worth copying, the answer is `Unsure` and
//! the caller asks the library.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use regex::{Regex, RegexBuilder};

use super::Country;

/// A number the library would accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Country calling code and national number, digits only.
    pub digits: String,
    /// The region the library names for the number; `None` for
    /// non-geographic codes (the caller picks the row's country).
    pub region: Option<Country>,
}

/// The library's answer, or `Unsure` when the fast path does not know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Valid(Accepted),
    Invalid,
    Unsure,
}

/// As `phonenumber::parse(home, number)` followed by `is_valid`, for
/// `number` made of ASCII digits with an optional leading `+`.
pub fn parse(number: &str, home: Option<Country>) -> Answer {
    debug_assert!(number
        .strip_prefix('+')
        .unwrap_or(number)
        .bytes()
        .all(|b| b.is_ascii_digit()));
    let home = match home {
        Some(country) => match region_of(country) {
            Some(region) => Some(region),
            None => return Answer::Unsure,
        },
        None => None,
    };
    let (plus, mut national) = match number.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    // `is_viable`: two digits, or three after a `+`.
    if national.len() < if plus { 3 } else { 2 } {
        return Answer::Invalid;
    }

    // `international_prefix`: the home region's IDD ("011" in the US) is
    // stripped, even after a `+`, unless a 0 follows it.
    let mut idd = false;
    if let Some(end) = home
        .and_then(|h| h.idd.as_ref())
        .and_then(|idd| idd.find(national))
        .map(|m| m.end())
    {
        if !national[end..].starts_with('0') {
            idd = true;
            national = &national[end..];
        }
    }

    // `country_code`.
    let code = if plus || idd {
        if national.len() <= 2 || national.starts_with('0') {
            return Answer::Invalid;
        }
        let Some((code, len)) = (1..=3).find_map(|len| {
            let code: u16 = national[..len].parse().ok()?;
            table().contains_key(&code).then_some((code, len))
        }) else {
            return Answer::Invalid;
        };
        national = &national[len..];
        code
    } else {
        let Some(home) = home else {
            return Answer::Invalid;
        };
        // Digits that start with the home code are read as carrying it when
        // they are not a possible national number as they stand.
        if national.starts_with(home.code_digits.as_str())
            && (!home.general.matches(national) || !home.length(national).is_possible())
        {
            national = &national[home.code_digits.len()..];
        }
        home.code
    };
    let Some(regions) = regions(code) else {
        return Answer::Invalid;
    };

    // The national prefix is stripped with the home region's rules when
    // there is one (even from a foreign number after a `+`), else with the
    // rules of the region the number seems to belong to.
    let meta = match home {
        Some(home) => Some(home),
        None => source_for(regions, national.trim_start_matches('0')),
    };
    let national: Cow<'_, str> = match meta {
        Some(meta) => match meta.strip_national_prefix(national) {
            Some(stripped) => stripped,
            None => return Answer::Unsure,
        },
        None => Cow::Borrowed(national),
    };

    if !(2..=17).contains(&national.len()) {
        return Answer::Invalid;
    }
    // `NationalNumber::from_str`: leading zeros are kept apart, the rest
    // must be a number below 2^56.
    let significant = national.trim_start_matches('0');
    match significant.parse::<u64>() {
        Ok(value) if value < 1 << 56 => {}
        _ => return Answer::Invalid,
    }

    // `is_valid`, then `country().id()` (which looks at the number without
    // its leading zeros).
    let valid = source_for(regions, &national).is_some_and(|r| r.is_known_type(&national));
    if !valid {
        return Answer::Invalid;
    }
    let region = source_for(regions, significant).and_then(|r| r.country);
    let mut digits = String::with_capacity(5 + national.len());
    digits.push_str(itoa::Buffer::new().format(code));
    digits.push_str(&national);
    Answer::Valid(Accepted { digits, region })
}

/// One region's compiled metadata.
struct Region {
    /// `None` for the non-geographic entity "001", and for a region the
    /// library cannot name.
    country: Option<Country>,
    /// A single-region code whose region the library cannot name has no
    /// metadata source (`validator::source_for` returns `None`).
    nameable: bool,
    code: u16,
    code_digits: String,
    idd: Option<Regex>,
    national_prefix: Option<&'static str>,
    prefix_for_parsing: Option<Regex>,
    transform: Option<&'static str>,
    leading_digits: Option<Regex>,
    general: Pattern,
    local_lengths: Vec<u16>,
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

/// As `validator::Validation`, the part that matters here.
#[derive(Debug, PartialEq, Eq)]
enum Length {
    Possible,
    TooShort,
    Other,
}

impl Length {
    fn is_possible(&self) -> bool {
        *self == Length::Possible
    }
}

impl Region {
    /// As `validator::number_type(..) != Type::Unknown`.
    fn is_known_type(&self, national: &str) -> bool {
        self.general.matches(national) && self.kinds.iter().any(|kind| kind.matches(national))
    }

    /// As `validator::length(meta, number, Type::Unknown)`.
    fn length(&self, national: &str) -> Length {
        let length = national.len() as u16;
        let possible = &self.general.lengths;
        let Some(&minimum) = possible.first() else {
            return Length::Other;
        };
        if self.local_lengths.contains(&length) || length == minimum {
            Length::Possible
        } else if length < minimum {
            Length::TooShort
        } else if possible.contains(&length) && length <= possible[possible.len() - 1] {
            Length::Possible
        } else {
            Length::Other
        }
    }

    /// As `helper::national_number` followed by the parser's second look at
    /// the plain national prefix, kept only if the result is not too short.
    /// `None` (ask the library) where the library would fail.
    fn strip_national_prefix<'n>(&self, national: &'n str) -> Option<Cow<'n, str>> {
        let mut potential = Cow::Borrowed(national);
        match &self.prefix_for_parsing {
            None => {
                if let Some(prefix) = self.national_prefix {
                    if let Some(rest) = national.strip_prefix(prefix) {
                        potential = Cow::Borrowed(rest);
                    }
                }
            }
            Some(parsing) => {
                if let Some(found) = parsing.captures(national) {
                    let end = found.get(0).map_or(0, |m| m.end());
                    // The last group, or the whole match when there is none.
                    let last = found.get(found.len() - 1);
                    match (self.transform, last) {
                        // The library's viability check compares the number
                        // with itself here, so the prefix always goes.
                        (None, _) | (Some(_), None) => {
                            potential = Cow::Borrowed(&national[end..]);
                        }
                        // The library takes group 1 as the carrier code and
                        // fails when it did not match: leave that to it.
                        (Some(_), Some(_)) if found.get(1).is_none() => return None,
                        (Some(transform), Some(_)) => {
                            let transformed = parsing.replace(national, transform);
                            if !self.general.matches(national) || self.general.matches(&transformed)
                            {
                                potential = Cow::Owned(transformed.into_owned());
                            }
                        }
                    }
                }
            }
        }
        if let Some(prefix) = self.national_prefix {
            if let Some(rest) = potential.strip_prefix(prefix) {
                potential = Cow::Owned(rest.to_owned());
            }
        }
        Some(if self.length(&potential) == Length::TooShort {
            Cow::Borrowed(national)
        } else {
            potential
        })
    }
}

/// As `validator::source_for`: the region a national number belongs to.
fn source_for<'r>(regions: &'r [Region], national: &str) -> Option<&'r Region> {
    if let [only] = regions {
        return only.nameable.then_some(only);
    }
    regions.iter().find(|region| match &region.leading_digits {
        Some(leading) => leading.is_match(national),
        None => region.is_known_type(national),
    })
}

/// Every country calling code, its regions compiled on first use (so a
/// file of one country compiles one country's patterns).
type Table = HashMap<u16, OnceLock<Vec<Region>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    // Not `DATABASE.iter()`: it holds one of the non-geographic codes.
    TABLE.get_or_init(|| {
        (1..1000)
            .filter(|code| DATABASE.by_code(code).is_some())
            .map(|code| (code, OnceLock::new()))
            .collect()
    })
}

fn regions(code: u16) -> Option<&'static [Region]> {
    table()
        .get(&code)
        .map(|cell| cell.get_or_init(|| compile(code)).as_slice())
}

/// A country's own compiled region, found by its two letters.
fn region_of(country: Country) -> Option<&'static Region> {
    static CODES: OnceLock<HashMap<[u8; 2], u16>> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        DATABASE
            .iter()
            .filter_map(|m| match m.id().as_bytes() {
                [a, b] => Some(([*a, *b], m.country_code())),
                _ => None,
            })
            .collect()
    });
    let code = *codes.get(&country.code)?;
    regions(code)?
        .iter()
        .find(|region| region.country == Some(country))
}

/// A code's regions, in the library's order, with their patterns compiled.
fn compile(code: u16) -> Vec<Region> {
    let database: &'static phonenumber::metadata::Database = &DATABASE;
    let ids = database.region(&code).unwrap_or_default();
    let single = ids.len() == 1;
    // Non-geographic codes all share the id "001": the library finds their
    // metadata by code.
    let metas: Vec<&'static Metadata> = if ids == ["001"] {
        database
            .by_code(&code)
            .unwrap_or_default()
            .into_iter()
            .take(1)
            .collect()
    } else {
        ids.into_iter()
            .filter_map(|id| database.by_id(id))
            .collect()
    };
    metas
        .into_iter()
        .map(|meta| {
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
            let country = meta
                .id()
                .parse::<phonenumber::country::Id>()
                .ok()
                .map(Country::from_id);
            Region {
                country,
                nameable: !single || country.is_some() || meta.id() == "001",
                code,
                code_digits: code.to_string(),
                idd: meta.international_prefix().map(|r| anchored(r.as_str())),
                national_prefix: meta.national_prefix(),
                prefix_for_parsing: meta
                    .national_prefix_for_parsing()
                    .map(|r| anchored(r.as_str())),
                transform: meta.national_prefix_transform_rule(),
                leading_digits: meta.leading_digits().map(|r| anchored(r.as_str())),
                general: pattern(descriptors.general()),
                local_lengths: descriptors.general().possible_local_length().to_vec(),
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
/// `find(..).start() == 0` checks (the leftmost match starts at 0 exactly
/// when an anchored one exists, and it is the same match); like the
/// library, it ignores the metadata's layout whitespace. Numbers here are
/// ASCII digits, so `\d` need not be Unicode's.
fn anchored(pattern: &str) -> Regex {
    RegexBuilder::new(&format!("^(?:{pattern})"))
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .expect("the library's own patterns compile")
}
