//! The one wall clock: everything else is handed the time.
//!
//! `NXCAMPAIGN_TEST_CLOCK_OFFSET_MS` shifts this process's clock, so tests
//! can show what a run with a wrong clock does; it is read once and is not
//! meant for real campaigns.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that shifts this process's clock (tests only).
pub const TEST_OFFSET_VAR: &str = "NXCAMPAIGN_TEST_CLOCK_OFFSET_MS";

/// Unix time in milliseconds from the local clock.
pub fn now_ms() -> i64 {
    system_time_ms(SystemTime::now()) + test_offset_ms()
}

/// The same clock as a `SystemTime`, for values compared with HTTP dates.
pub fn now() -> SystemTime {
    let ms = now_ms();
    match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH + std::time::Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH - std::time::Duration::from_millis(ms.unsigned_abs()),
    }
}

/// How long ago the file system says something happened (a file's
/// modification time): measured on the unshifted clock, as file systems
/// keep theirs. `None` for a time in the future.
pub fn age_of(file_time: SystemTime) -> Option<std::time::Duration> {
    SystemTime::now().duration_since(file_time).ok()
}

/// The wall clock of the sandbox, which plays the vendor and keeps a clock
/// of its own (its faults skew it; this process's test offset does not).
pub fn vendor_now_ms() -> i64 {
    system_time_ms(SystemTime::now())
}

/// A `SystemTime` as Unix milliseconds (negative before 1970).
pub fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Unix milliseconds as an ISO 8601 UTC time, to the second.
pub fn format_utc(ms: i64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    httpdate::fmt_http_date(time)
}

fn test_offset_ms() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var(TEST_OFFSET_VAR)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn rfc3339(ms: i64) -> String {
    let Ok(time) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    // Always three digits of fraction, so lines of a log line up. jiff
    // writes the shortest fraction (none for a whole second), three times
    // faster than a format string; it is padded here.
    let mut text = time.to_string();
    let fraction = match text.rfind('.') {
        Some(dot) => text.len() - 1 - dot - 1,
        None => {
            text.insert(text.len() - 1, '.');
            0
        }
    };
    for _ in fraction..3 {
        text.insert(text.len() - 1, '0');
    }
    text
}

/// `--until`: a date (the entry applies through that day, UTC) or an RFC
/// 3339 time; as Unix milliseconds when the entry stops applying.
pub fn parse_until_ms(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    // A bare date; jiff would also read the date out of a full time.
    let bare_date = raw.len() == "2026-12-31".len();
    if let Some(date) = bare_date
        .then(|| raw.parse::<jiff::civil::Date>().ok())
        .flatten()
    {
        return date
            .tomorrow()
            .and_then(|day| day.to_zoned(jiff::tz::TimeZone::UTC))
            .map(|end| end.timestamp().as_millisecond())
            .map_err(|e| format!("{raw:?}: {e}"));
    }
    raw.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("{raw:?} is not a date (2026-12-31) or a time (2026-12-31T18:00:00Z)"))
}

/// `--since`: a date (from its start, UTC) or an RFC 3339 time, as Unix
/// milliseconds.
pub fn parse_since_ms(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if raw.len() == "2026-12-31".len() {
        if let Ok(date) = raw.parse::<jiff::civil::Date>() {
            return date
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|start| start.timestamp().as_millisecond())
                .map_err(|e| format!("{raw:?}: {e}"));
        }
    }
    raw.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("{raw:?} is not a date (2026-12-31) or a time (2026-12-31T18:00:00Z)"))
}

/// `2h 05m`, `3m 20s`, `45s`, `< 1s`.
pub fn human_duration(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0 => "< 1s".to_owned(),
        1..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m", seconds / 3600, (seconds % 3600) / 60),
    }
}

/// Parses `500ms`, `90s`, `10m`, `2h`, `1d`, or several together (`1h30m`); a bare
/// number is seconds.
pub fn parse_duration(raw: &str) -> Result<std::time::Duration, String> {
    let text = raw.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let (number, unit) = (&rest[..digits], &rest[digits..digits + unit_len]);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("{raw:?} is not a duration (e.g. 90s, 10m, 1h30m)"))?;
        total += match unit {
            "ms" => std::time::Duration::from_millis(value),
            "s" => std::time::Duration::from_secs(value),
            "m" => std::time::Duration::from_secs(value * 60),
            "h" => std::time::Duration::from_secs(value * 3600),
            "d" => std::time::Duration::from_secs(value * 86_400),
            _ => {
                return Err(format!(
                    "{raw:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
                ))
            }
        };
        rest = &rest[digits + unit_len..];
    }
    if total.is_zero() {
        return Err(format!("{raw:?} must be a duration above zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<u64, ()>) {
        let got = parse_duration(raw)
            .map(|d| d.as_millis() as u64)
            .map_err(|_| ());
        assert_eq!(got, expected, "{raw:?}");
    }

    #[test]
    fn durations_take_units_and_combinations() {
        check("90", Ok(90_000));
        check("90s", Ok(90_000));
        check("10m", Ok(600_000));
        check("1h30m", Ok(5_400_000));
        check("250ms", Ok(250));
        check("1d", Ok(86_400_000));
        check("1d12h", Ok(129_600_000));
        check("0s", Err(()));
        check("10 minutes", Err(()));
        check("m", Err(()));
        check("", Err(()));
    }

    #[test]
    fn times_have_a_fixed_width() {
        assert_eq!(rfc3339(1_764_649_144_810), "2025-12-02T04:19:04.810Z");
        assert_eq!(rfc3339(1_764_649_144_000), "2025-12-02T04:19:04.000Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_649_144_800), "2025-12-02T04:19:04.800Z");
        assert_eq!(rfc3339(1_764_649_144_081), "2025-12-02T04:19:04.081Z");
    }

    #[test]
    fn until_takes_a_whole_day_or_an_exact_time() {
        assert_eq!(
            parse_until_ms("2026-12-31").unwrap(),
            "2027-01-01T00:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert_eq!(
            parse_until_ms("2026-12-31T18:00:00+02:00").unwrap(),
            "2026-12-31T16:00:00Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond()
        );
        assert!(parse_until_ms("next week").is_err());
        assert!(parse_until_ms("2026-02-30").is_err());
    }
}
