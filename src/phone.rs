//! Phone number normalization: whatever a contact file holds becomes the
//! digits NXLink wants (country calling code + national number, no `+`).
//!
//! It knows nothing about files or the vendor's wire format; it only parses.

use std::fmt;

use phonenumber::country::Id;
use phonenumber::Mode;

mod fast;
#[rustfmt::skip]
mod zone_data;
pub mod zones;

use fast::{Accepted, Answer};

/// A two-letter ISO 3166 country code as NXLink's `country` field wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Country {
    id: Id,
    /// The same code as ASCII bytes, so `as_str` can borrow it.
    code: [u8; 2],
}

impl Country {
    /// Parses `"HK"`, `"hk"` or `" hk "`; anything that is not a known
    /// two-letter region is an error.
    pub fn parse(raw: &str) -> Result<Country, PhoneError> {
        let upper = raw.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(PhoneError::UnknownCountry(raw.to_owned()));
        }
        let id = upper
            .parse::<Id>()
            .map_err(|_| PhoneError::UnknownCountry(raw.to_owned()))?;
        Ok(Country::from_id(id))
    }

    /// The code as NXLink spells it, e.g. `HK`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("ZZ")
    }

    fn from_id(id: Id) -> Country {
        let name = id.as_ref().as_bytes();
        let code = match name {
            [a, b] => [*a, *b],
            _ => *b"ZZ",
        };
        Country { id, code }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid phone number in NXLink's `userPhone` form, with the country it
/// belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Phone {
    digits: String,
    country: Country,
}

impl Phone {
    /// Normalizes `raw`, reading national numbers as numbers of
    /// `default_country`.
    ///
    /// Accepts `+852 3575 7581`, `00852 3575 7581`, national formats with a
    /// trunk prefix (`020 7946 0958` in GB), spaces, dashes, dots and
    /// parentheses, and the vendor's own form (`85235757581`) when the digits
    /// are not a valid national number.
    pub fn parse(raw: &str, default_country: Country) -> Result<Phone, PhoneError> {
        let cleaned = clean(raw)?;
        resolve(
            &cleaned,
            default_country,
            |number, home| match fast::parse(number, home) {
                Answer::Unsure => library(number, home),
                answer => answer,
            },
        )
        .ok_or_else(|| PhoneError::Invalid(raw.trim().to_owned()))
    }

    /// Digits only: country calling code followed by the national number.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The country the number belongs to (not necessarily the row's).
    pub fn country(&self) -> Country {
        self.country
    }

    /// That country's ISO code, borrowed from the phone.
    pub fn country_iso(&self) -> &str {
        self.country.as_str()
    }
}

/// Why a number was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("empty phone number")]
    Empty,
    #[error("phone number {0:?} has characters other than digits, spaces, dashes, dots, parentheses and a leading '+'")]
    Characters(String),
    #[error("{0:?} is not a valid phone number")]
    Invalid(String),
    #[error("unknown country {0:?} (want a two-letter ISO code such as HK)")]
    UnknownCountry(String),
}

/// Strips formatting and turns a leading `00` into `+`; rejects letters.
fn clean(raw: &str) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut out = String::with_capacity(trimmed.len());
    for (i, c) in trimmed.char_indices() {
        match c {
            '0'..='9' => out.push(c),
            '+' if i == 0 => out.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return Err(PhoneError::Characters(trimmed.to_owned())),
        }
    }
    if let Some(rest) = out.strip_prefix("00") {
        out = format!("+{rest}");
    }
    if out.trim_start_matches('+').is_empty() {
        return Err(PhoneError::Invalid(trimmed.to_owned()));
    }
    Ok(out)
}

/// The reading of a cleaned number, whoever answers the questions (the
/// fast path or the library).
fn resolve(
    cleaned: &str,
    default_country: Country,
    ask: impl Fn(&str, Option<Country>) -> Answer,
) -> Option<Phone> {
    let answer = if cleaned.starts_with('+') {
        // An international number is read on its own. Given the row's
        // country, the library would apply that country's national prefix
        // to it: a US row's "+44 1614 960000" would lose the "1" after 44.
        ask(cleaned, None)
    } else {
        match ask(cleaned, Some(default_country)) {
            Answer::Valid(accepted) => Answer::Valid(accepted),
            // The vendor's own form: country code and number without a `+`.
            _ => ask(&format!("+{cleaned}"), None),
        }
    };
    match answer {
        Answer::Valid(accepted) => Some(Phone {
            digits: accepted.digits,
            // As the library: a region it cannot name is the row's country.
            country: accepted.region.unwrap_or(default_country),
        }),
        Answer::Invalid | Answer::Unsure => None,
    }
}

/// The library's answer: `phonenumber::parse` and `is_valid`.
fn library(number: &str, home: Option<Country>) -> Answer {
    let Ok(parsed) = phonenumber::parse(home.map(|c| c.id), number) else {
        return Answer::Invalid;
    };
    if !phonenumber::is_valid(&parsed) {
        return Answer::Invalid;
    }
    let e164 = parsed.format().mode(Mode::E164).to_string();
    Answer::Valid(Accepted {
        digits: e164.trim_start_matches('+').to_owned(),
        region: parsed.country().id().map(Country::from_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hk() -> Country {
        Country::parse("HK").unwrap()
    }

    fn check(raw: &str, country: &str, expected: Result<(&str, &str), ()>) {
        let got = Phone::parse(raw, Country::parse(country).unwrap());
        match (got, expected) {
            (Ok(phone), Ok((digits, region))) => {
                assert_eq!(phone.digits(), digits, "{raw:?} in {country}");
                assert_eq!(phone.country().as_str(), region, "{raw:?} in {country}");
            }
            (Err(_), Err(())) => {}
            (got, expected) => panic!("{raw:?} in {country}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn every_accepted_format_normalizes_to_the_same_digits() {
        for raw in [
            "+852 3575 7581",
            "+85235757581",
            "00852 3575 7581",
            "0085235757581",
            "3575 7581",
            "3575-7581",
            "(3575) 7581",
            "85235757581",
            " +852-3575-7581 ",
        ] {
            check(raw, "HK", Ok(("85235757581", "HK")));
        }
    }

    #[test]
    fn national_numbers_with_a_trunk_prefix_drop_it() {
        check("020 7946 0958", "GB", Ok(("442079460958", "GB")));
        check("(020) 7946-0958", "GB", Ok(("442079460958", "GB")));
        check("0812-3456-7890", "ID", Ok(("6281234567890", "ID")));
        check("(415) 555-2671", "US", Ok(("14155552671", "US")));
    }

    #[test]
    fn an_international_number_keeps_its_own_country() {
        check("+44 20 7946 0958", "HK", Ok(("442079460958", "GB")));
    }

    #[test]
    fn invalid_numbers_are_rejected() {
        for raw in [
            "",
            "   ",
            "12",
            "+852 1234",
            "phone",
            "3575 7581 ext",
            "+",
            "00",
            "+999 123456789",
        ] {
            check(raw, "HK", Err(()));
        }
    }

    #[test]
    fn errors_name_the_input() {
        let err = Phone::parse("call me", hk()).unwrap_err();
        assert!(err.to_string().contains("\"call me\""), "{err}");
        let err = Phone::parse("12", hk()).unwrap_err();
        assert_eq!(err.to_string(), "\"12\" is not a valid phone number");
        assert_eq!(Phone::parse(" ", hk()).unwrap_err(), PhoneError::Empty);
    }

    #[test]
    fn an_international_number_is_read_without_the_rows_trunk_prefix() {
        // US numbers' trunk prefix is 1; the library, given the row's
        // country, would strip it after +44 and reject the number.
        check("+44 161 496 0000", "US", Ok(("441614960000", "GB")));
        check("00 44 161 496 0000", "US", Ok(("441614960000", "GB")));
    }

    /// A small, seeded generator, so a failure names an input that stays.
    struct Digits(u64);

    impl Digits {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) as usize % n
        }

        fn string(&mut self, len: usize) -> String {
            (0..len)
                .map(|_| char::from(b'0' + self.below(10) as u8))
                .collect()
        }
    }

    /// Holds the fast path to the library on one question; counts the
    /// questions it left to the library.
    fn same_answer(number: &str, home: Option<Country>, unsure: &mut usize) {
        match fast::parse(number, home) {
            Answer::Unsure => *unsure += 1,
            fast => assert_eq!(
                fast,
                library(number, home),
                "{number:?} at home in {home:?}"
            ),
        }
    }

    /// Every region's example numbers (and near misses) in every way people
    /// write them, and random digits with and without prefixes, at home in
    /// their own region, in no region and in a few others: the fast path
    /// gives the library's answer, valid or invalid, every time.
    #[test]
    fn the_fast_path_gives_the_librarys_answer_for_every_region_and_format() {
        use phonenumber::metadata::DATABASE;
        let mut random = Digits(0x5eed);
        let others: Vec<Country> = ["US", "GB", "HK", "DE", "IT", "BR", "AR", "JP"]
            .iter()
            .map(|c| Country::parse(c).unwrap())
            .collect();
        let (mut questions, mut unsure, mut valid) = (0usize, 0usize, 0usize);
        // Every region of every code (`DATABASE.iter()` holds one of the
        // non-geographic codes only).
        let metas = (1..1000)
            .filter_map(|code| DATABASE.by_code(&code))
            .flatten();
        for meta in metas {
            let own = Country::parse(meta.id()).ok();
            let code = meta.country_code().to_string();
            let trunk = meta.national_prefix().unwrap_or("");
            let idd = meta
                .preferred_international_prefix()
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                .unwrap_or("00");
            let d = meta.descriptors();
            let kinds = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ];
            let mut nationals = Vec::new();
            for example in kinds.into_iter().flatten().filter_map(|k| k.example()) {
                let keep = example.len().saturating_sub(3);
                nationals.push(example.to_owned());
                nationals.push(format!("{}{}", &example[..keep], random.string(3)));
                nationals.push(example[..example.len() - 1].to_owned());
                nationals.push(format!("{example}{}", random.string(1)));
            }
            for _ in 0..12 {
                let len = 1 + random.below(17);
                nationals.push(random.string(len));
            }
            let other = others[random.below(others.len())];
            for national in &nationals {
                let written = [
                    national.clone(),
                    format!("{trunk}{national}"),
                    format!("{code}{national}"),
                    format!("{code}{trunk}{national}"),
                    format!("{idd}{code}{national}"),
                ];
                for number in &written {
                    for home in [own, Some(other)] {
                        questions += 1;
                        same_answer(number, home, &mut unsure);
                    }
                    let plus = format!("+{number}");
                    for home in [None, own] {
                        questions += 1;
                        same_answer(&plus, home, &mut unsure);
                    }
                }
                valid += usize::from(matches!(
                    fast::parse(&format!("+{code}{national}"), None),
                    Answer::Valid(_)
                ));
            }
        }
        assert!(valid > 2_000, "only {valid} valid numbers were asked about");
        // Every one of them has an answer here; `Unsure` stays for what the
        // library itself would fail on.
        assert_eq!(unsure, 0, "questions left to the library, of {questions}");
    }

    /// Every row of the realistic benchmark file, as written: the same
    /// phone (or the same rejection) either way, without asking the library.
    #[test]
    fn the_fast_path_reads_the_realistic_benchmark_file_as_the_library_does() {
        let default = Country::parse(crate::realistic::DEFAULT_COUNTRY).unwrap();
        let (mut valid, mut invalid) = (0, 0);
        for row in crate::realistic::rows(20_000) {
            let country = match row.country {
                "" => default,
                code => Country::parse(code).unwrap(),
            };
            let cleaned = clean(&row.phone).ok();
            let read = |ask: &dyn Fn(&str, Option<Country>) -> Answer| {
                cleaned.as_deref().and_then(|c| resolve(c, country, ask))
            };
            let fast = read(&|number, home| match fast::parse(number, home) {
                Answer::Unsure => panic!("{number:?}: left to the library"),
                answer => answer,
            });
            assert_eq!(fast, read(&library), "{:?} in {country}", row.phone);
            if fast.is_some() {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(
            valid > 19_000 && invalid > 300,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn countries_parse_case_insensitively_and_reject_unknown_codes() {
        assert_eq!(Country::parse(" hk ").unwrap().as_str(), "HK");
        assert_eq!(Country::parse("ID").unwrap().to_string(), "ID");
        assert!(Country::parse("XX").is_err());
        assert!(Country::parse("HKG").is_err());
        assert!(Country::parse("").is_err());
    }
}
