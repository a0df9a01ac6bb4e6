//! The JSON shapes of `createandcall` and of every reply, and the reply
//! codes (ARCHITECTURE.md, "The vendor's rules the code relies on").

use serde::{Deserialize, Serialize};

use crate::batch::{BatchOrder, BatchSeq};

/// Reply codes the vendor documents.
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
    /// Every code in here is an authentication failure (1004 aside).
    pub const AUTH_RANGE: std::ops::RangeInclusive<i64> = 1000..=1009;
}

/// The body of `createandcall`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAndCall {
    pub country: String,
    pub task_name: String,
    #[serde(default)]
    pub task_desc: String,
    pub strategy_name: String,
    pub dispatch_type: u8,
    pub agent_group_no: String,
    pub predict_call_rate: f64,
    pub ratio_call_rate: f64,
    pub start_count: u32,
    pub call_list: Vec<CallItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_type: Option<u8>,
}

/// One contact of a `callList`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallItem {
    #[serde(rename = "orderID")]
    pub order_id: String,
    #[serde(rename = "userPhone")]
    pub user_phone: String,
    pub other: String,
}

/// Every reply: HTTP 200 with a `code`, success or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiReply {
    #[serde(default)]
    pub req_id: Option<String>,
    pub code: i64,
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The `createandcall` fields that are the same for every batch (the job
/// file's `[task]` section, checked and rounded by `job`).
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// Each batch's task is named `"<task_name> #<seq>"`.
    pub task_name: String,
    pub task_desc: String,
    pub strategy_name: String,
    pub dispatch_type: u8,
    pub agent_group_no: String,
    /// Rounded to two decimals, as the vendor documents.
    pub predict_call_rate: f64,
    /// Rounded to one decimal, as the vendor documents.
    pub ratio_call_rate: f64,
    pub start_count: u32,
    pub startup_type: u8,
}

impl TaskSettings {
    /// Whether the vendor starts dialling a task as soon as it is created
    /// (`startupType` 3); a manual or scheduled start may come at any time.
    pub fn starts_at_once(&self) -> bool {
        self.startup_type == STARTUP_IMMEDIATE
    }

    /// The start, as people read it.
    pub fn startup_words(&self) -> &'static str {
        match self.startup_type {
            STARTUP_IMMEDIATE => "starts at once",
            1 => "started by hand in the console",
            2 => "scheduled",
            _ => "no start set",
        }
    }
}

/// `startupType` of a task the vendor starts as soon as it is created.
pub const STARTUP_IMMEDIATE: u8 = 3;

/// What `other` carries for an order whose job packs no column into it.
pub const EMPTY_OTHER: &str = "{}";

/// The exact body bytes of one batch's request: serialized once, signed and
/// sent as they are.
pub fn create_and_call_body(
    task: &TaskSettings,
    country: &str,
    seq: BatchSeq,
    orders: &[BatchOrder],
) -> Vec<u8> {
    let body = CreateAndCall {
        country: country.to_owned(),
        task_name: format!("{} #{seq}", task.task_name),
        task_desc: task.task_desc.clone(),
        strategy_name: task.strategy_name.clone(),
        dispatch_type: task.dispatch_type,
        agent_group_no: task.agent_group_no.clone(),
        predict_call_rate: task.predict_call_rate,
        ratio_call_rate: task.ratio_call_rate,
        start_count: task.start_count,
        call_list: orders
            .iter()
            .map(|o| CallItem {
                order_id: o.order_id.clone(),
                user_phone: o.phone.clone(),
                // `other` is required: an order without columns for it
                // sends an empty JSON object, never an empty string.
                other: if o.other.is_empty() {
                    EMPTY_OTHER.to_owned()
                } else {
                    o.other.clone()
                },
            })
            .collect(),
        startup_type: Some(task.startup_type),
    };
    serde_json::to_vec(&body).expect("a createandcall body always serializes")
}
