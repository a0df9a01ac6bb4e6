//! Everything that knows NXLink: gateway URLs, wire field names, reply
//! codes, the signing rule, and the HTTP client that speaks to it.
//!
//! Nothing outside this module spells a vendor URL, header or field name:
//! the client takes the campaign's own types (a task's settings, a batch's
//! orders, a window of time) and hands back what a reply means (a
//! [`Reply`], [`calls::Call`]s); the JSON shapes (`wire`) are private.

pub mod calls;
pub mod client;
pub mod code;
pub mod sign;
mod task;
mod wire;

pub use client::{Client, Exchange, Reply, TransportError};
pub use sign::Credentials;
pub use task::{TaskSettings, STARTUP_IMMEDIATE};

use crate::batch::{BatchOrder, BatchSeq};

/// One `createandcall` request as it would leave, for a person to read:
/// its URL, its headers with the access key and the signature masked, and
/// its body.
#[derive(Debug)]
pub struct RequestPreview {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: serde_json::Value,
}

/// The request a batch of `orders` would be sent as, signed at `ts`.
pub fn preview_request(
    base_url: &str,
    task: &TaskSettings,
    country: &str,
    seq: BatchSeq,
    orders: &[BatchOrder],
    ts: i64,
) -> RequestPreview {
    let body = wire::create_and_call_body(task, country, seq, orders);
    RequestPreview {
        url: format!("{}{CREATE_AND_CALL_PATH}", base_url.trim_end_matches('/')),
        headers: vec![
            ("Content-Type", "application/json".to_owned()),
            ("accessKey", "****".to_owned()),
            ("ts", ts.to_string()),
            ("bizType", BIZ_TYPE_CC.to_owned()),
            ("action", ACTION_CC.to_owned()),
            ("sign", "****".to_owned()),
        ],
        body: serde_json::from_slice(&body).expect("the body is JSON"),
    }
}

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
