//! The JSON shapes the stand-in reads and writes, as the vendor documents
//! them. Written apart from the client's own on purpose: a mistake in the
//! client's shapes then shows as a refusal here instead of being mirrored.

use serde::{Deserialize, Serialize};

/// Reply codes the stand-in gives, as the vendor documents them.
pub mod code {
    pub const SUCCESS: i64 = 0;
    pub const PARAMETER_ERROR: i64 = 41000;
    pub const REQUEST_FAILED: i64 = 88;
    pub const SYSTEM_ERROR: i64 = 99;
    pub const MISSING_HEADER: i64 = 1001;
    pub const WRONG_BIZ_TYPE_OR_ACTION: i64 = 1002;
    pub const INVALID_SIGNATURE: i64 = 1003;
    pub const TIMESTAMP_EXPIRED: i64 = 1004;
    pub const ACCESS_KEY_INVALID: i64 = 1005;
}

/// The body of `createandcall`, with the fields the vendor requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAndCall {
    pub country: String,
    pub task_name: String,
    pub strategy_name: String,
    pub agent_group_no: String,
    pub dispatch_type: u8,
    pub predict_call_rate: f64,
    pub ratio_call_rate: f64,
    /// Required, with no documented bounds.
    #[serde(rename = "startCount")]
    pub _start_count: u32,
    #[serde(default)]
    pub startup_type: Option<u8>,
    pub call_list: Vec<CallItem>,
}

/// One contact of a `callList`.
#[derive(Debug, Clone, Deserialize)]
pub struct CallItem {
    #[serde(rename = "orderID")]
    pub order_id: String,
    #[serde(rename = "userPhone")]
    pub user_phone: String,
    pub other: String,
}

/// Every reply: a `code`, success or not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiReply {
    pub req_id: Option<String>,
    pub code: i64,
    pub msg: Option<String>,
    pub data: serde_json::Value,
}
