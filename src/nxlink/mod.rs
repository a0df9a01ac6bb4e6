//! Everything that knows NXLink: gateway URLs, wire field names, reply
//! codes, the signing rule, and the HTTP client that speaks to it.
//!
//! Nothing outside this module spells a vendor URL, header or field name.

pub mod calls;
pub mod client;
pub mod sign;
pub mod wire;

pub use client::{Client, Exchange, Reply, TransportError};
pub use sign::Credentials;

/// Path of the endpoint that creates an AI outbound task with its numbers.
pub const CREATE_AND_CALL_PATH: &str = "/saas/cc/openapi/ai/createandcall";
/// `bizType` of the call-center endpoints.
pub const BIZ_TYPE_CC: &str = "8";
/// `action` of the call-center endpoints.
pub const ACTION_CC: &str = "cc";

/// The gateway of a region code (ARCHITECTURE.md, "Endpoint").
pub fn region_base_url(region: &str) -> Option<&'static str> {
    match region.trim().to_ascii_lowercase().as_str() {
        "hk" => Some("https://api-hk.nxlink.ai"),
        "amer" => Some("https://chl-api.nxlink.ai"),
        "idn" => Some("https://api-idn.nxlink.ai"),
        _ => None,
    }
}
