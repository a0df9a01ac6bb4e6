//! Phone number normalization: whatever a contact file holds becomes the
//! digits NXLink wants (country calling code + national number, no `+`).
//!
//! It knows nothing about files or the vendor's wire format; it only parses.

use std::fmt;

use phonenumber::country::Id;
use phonenumber::Mode;

mod fast;

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
        if let Some(international) = cleaned.strip_prefix('+') {
            if let Some(accepted) = fast::accept(international) {
                // As the library: a region it cannot name is the row's country.
                let country = accepted
                    .region
                    .and_then(|region| Country::parse(region).ok())
                    .unwrap_or(default_country);
                return Ok(Phone {
                    digits: accepted.digits,
                    country,
                });
            }
        }
        if let Some(phone) = parse_valid(&cleaned, Some(default_country)) {
            return Ok(phone);
        }
        // The vendor's own form: country code and number without a `+`.
        if !cleaned.starts_with('+') {
            if let Some(phone) = parse_valid(&format!("+{cleaned}"), None) {
                return Ok(phone);
            }
        }
        Err(PhoneError::Invalid(raw.trim().to_owned()))
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

fn parse_valid(cleaned: &str, country: Option<Country>) -> Option<Phone> {
    let number = phonenumber::parse(country.map(|c| c.id), cleaned).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    let e164 = number.format().mode(Mode::E164).to_string();
    let digits = e164.trim_start_matches('+').to_owned();
    let country = number.country().id().map(Country::from_id).or(country)?;
    Some(Phone { digits, country })
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

    /// Every example number of every region, with its last digits varied,
    /// and random digits after every country code: wherever the fast path
    /// answers, the library agrees on validity, digits and country.
    #[test]
    fn the_fast_path_agrees_with_the_library_everywhere_it_answers() {
        use phonenumber::metadata::DATABASE;
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let mut inputs = Vec::new();
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let d = meta.descriptors();
            let kinds = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.voip(),
                d.uan(),
            ];
            for example in kinds.into_iter().flatten().filter_map(|k| k.example()) {
                inputs.push((format!("{code}{example}"), true));
                for _ in 0..20 {
                    let keep = example.len().saturating_sub(3);
                    let tail: String = (0..example.len() - keep)
                        .map(|_| char::from(b'0' + (next() % 10) as u8))
                        .collect();
                    inputs.push((format!("{code}{}{tail}", &example[..keep]), false));
                }
            }
            for _ in 0..20 {
                let len = 4 + next() % 10;
                let digits: String = (0..len)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect();
                inputs.push((format!("{code}{digits}"), false));
            }
        }
        let default = Country::parse("HK").unwrap();
        let (mut examples, mut examples_fast, mut answered) = (0, 0, 0);
        for (digits, is_example) in &inputs {
            let library = parse_valid(&format!("+{digits}"), Some(default));
            let fast = fast::accept(digits);
            if let Some(accepted) = &fast {
                answered += 1;
                let library = library
                    .as_ref()
                    .unwrap_or_else(|| panic!("+{digits}: only the fast path accepts it"));
                assert_eq!(library.digits(), accepted.digits, "+{digits}");
                let country = accepted
                    .region
                    .and_then(|r| Country::parse(r).ok())
                    .unwrap_or(default);
                assert_eq!(library.country(), country, "+{digits}");
            }
            if *is_example && library.is_some() {
                examples += 1;
                examples_fast += usize::from(fast.is_some());
            }
        }
        assert!(
            answered > 10_000,
            "the fast path answered only {answered} of {}",
            inputs.len()
        );
        assert!(
            examples_fast * 10 >= examples * 9,
            "the fast path took {examples_fast} of {examples} valid examples"
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
