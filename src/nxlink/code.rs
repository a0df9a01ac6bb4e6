//! The reply codes the vendor documents (the `code` of every reply).

pub const SUCCESS: i64 = 0;
pub const PARAMETER_ERROR: i64 = 41000;
pub const REQUEST_FAILED: i64 = 88;
pub const SYSTEM_ERROR: i64 = 99;
pub const MISSING_HEADER: i64 = 1001;
pub const WRONG_BIZ_TYPE_OR_ACTION: i64 = 1002;
pub const INVALID_SIGNATURE: i64 = 1003;
pub const TIMESTAMP_EXPIRED: i64 = 1004;
pub const ACCESS_KEY_INVALID: i64 = 1005;
/// Every code in here is an authentication failure (1004 aside).
pub const AUTH_RANGE: std::ops::RangeInclusive<i64> = 1000..=1009;

/// Whether `code` says the request was refused for its credentials, its
/// headers or its signature (1004, the timestamp, is not among them: a
/// clock can be corrected).
pub fn is_auth_failure(code: i64) -> bool {
    AUTH_RANGE.contains(&code) && code != TIMESTAMP_EXPIRED
}
