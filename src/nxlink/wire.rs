//! The JSON shapes of `createandcall` and of every reply: private to the
//! vendor module, which hands out only what they mean.

use serde::{Deserialize, Serialize};

use super::task::{TaskSettings, EMPTY_OTHER};
use crate::batch::{BatchOrder, BatchSeq};

/// The body of `createandcall`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateAndCall {
    country: String,
    task_name: String,
    task_desc: String,
    strategy_name: String,
    dispatch_type: u8,
    agent_group_no: String,
    predict_call_rate: f64,
    ratio_call_rate: f64,
    start_count: u32,
    call_list: Vec<CallItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    startup_type: Option<u8>,
}

/// One contact of a `callList`.
#[derive(Debug, Serialize)]
pub(super) struct CallItem {
    #[serde(rename = "orderID")]
    order_id: String,
    #[serde(rename = "userPhone")]
    user_phone: String,
    other: String,
}

/// Every reply: HTTP 200 with a `code`, success or not.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiReply {
    #[serde(default)]
    pub(super) req_id: Option<String>,
    pub(super) code: i64,
    #[serde(default)]
    pub(super) msg: Option<String>,
    #[serde(default)]
    pub(super) data: serde_json::Value,
}

/// The exact body bytes of one batch's request: serialized once, signed and
/// sent as they are.
pub(super) fn create_and_call_body(
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
