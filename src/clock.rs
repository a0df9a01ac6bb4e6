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
