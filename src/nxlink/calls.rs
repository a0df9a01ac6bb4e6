//! Call records, as NXLink reports them: one JSON object per call, from the
//! call-log webhook or from the call-record queries (`cdr/page`,
//! `cdr/queryByOrderId`). Both carry the same fields; this module reads
//! them leniently (a number may come as a string, a field may be missing)
//! and keeps the whole object, so nothing the vendor said is lost.

use serde_json::Value;

/// Path of the paged call-record query.
pub const CDR_PAGE_PATH: &str = "/saas/cc/openapi/cdr/page";
/// Path of the call records of one order.
pub const CDR_BY_ORDER_PATH: &str = "/saas/cc/openapi/cdr/queryByOrderId";
/// Most records `cdr/page` returns per page.
pub const CDR_PAGE_SIZE: u32 = 100;
/// The `direction` filter of `cdr/page` for AI outbound calls (a record's
/// own `direction` field counts differently: 2 is AI outbound there).
pub const CDR_FILTER_AI_OUTBOUND: u8 = 3;

/// One call. An order may have several (the dial strategy redials).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Call {
    /// The vendor's id of the call: what makes two deliveries one call.
    pub call_id: String,
    /// The order the call was made for (`orderId`), as the vendor says it.
    pub order_id: Option<String>,
    pub task_id: Option<String>,
    /// In AI outbound calls, the customer's number.
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub answered: bool,
    /// Unix ms.
    pub start_ms: Option<i64>,
    pub answer_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// How long it rang, in ms (`ringTime`).
    pub ring_ms: Option<i64>,
    /// Seconds talked (`callDuration`).
    pub call_seconds: Option<i64>,
    pub ring_seconds: Option<i64>,
    /// 0 the agent, 1 the user, 2 unknown.
    pub hangup_by: Option<i64>,
    pub hangup_code: Option<String>,
    pub hangup_reason: Option<String>,
    pub call_status: Option<String>,
    /// The AI's reading of what the person wanted.
    pub intent: Option<String>,
    pub record_url: Option<String>,
    pub price: Option<f64>,
    /// The object as received.
    pub raw: String,
}

/// Why a body is not a call record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("expected a JSON object (or an array of them) for a call")]
    NotAnObject,
    #[error("no `callId`: a call record needs one")]
    NoCallId,
    #[error("field `{field}`: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

impl Call {
    /// The calls in a webhook body: one object, or an array of them.
    pub fn parse_body(body: &[u8]) -> Result<Vec<Call>, CallError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| CallError::NotJson(e.to_string()))?;
        match value {
            Value::Array(items) => items.iter().map(Call::from_json).collect(),
            value => Ok(vec![Call::from_json(&value)?]),
        }
    }

    /// A call from one record object.
    pub fn from_json(value: &Value) -> Result<Call, CallError> {
        let object = value.as_object().ok_or(CallError::NotAnObject)?;
        let text = |field: &'static str| -> Result<Option<String>, CallError> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                // PostgreSQL's text holds no NUL: one would refuse the call
                // for ever (and the vendor would deliver it for an hour).
                Some(Value::String(s)) => Ok(Some(s.trim().replace('\0', "\u{fffd}"))),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => Err(CallError::Field {
                    field,
                    problem: format!("expected text, got {other}"),
                }),
            }
        };
        let number = |field: &'static str| -> Result<Option<f64>, CallError> {
            match object.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(Value::String(s)) => {
                    s.trim().parse().map(Some).map_err(|_| CallError::Field {
                        field,
                        problem: format!("expected a number, got {s:?}"),
                    })
                }
                Some(other) => Err(CallError::Field {
                    field,
                    problem: format!("expected a number, got {other}"),
                }),
            }
        };
        let whole = |field: &'static str| number(field).map(|n| n.map(|n| n.round() as i64));
        let time = |field: &'static str| -> Result<Option<i64>, CallError> {
            if let Some(Value::String(s)) = object.get(field) {
                if let Ok(at) = s.trim().parse::<jiff::Timestamp>() {
                    return Ok(Some(at.as_millisecond()));
                }
            }
            Ok(whole(field)?.filter(|n| *n > 0).map(unix_ms))
        };
        let answered = match object.get("answered") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(Value::String(s)) => matches!(s.trim(), "true" | "1" | "yes"),
            Some(other) => {
                return Err(CallError::Field {
                    field: "answered",
                    problem: format!("expected true or false, got {other}"),
                })
            }
        };
        let call_id = text("callId")?.ok_or(CallError::NoCallId)?;
        Ok(Call {
            call_id,
            // The records spell it `orderId`; accept the request's spelling.
            order_id: match text("orderId")? {
                Some(id) => Some(id),
                None => text("orderID")?,
            },
            task_id: text("taskId")?,
            caller: text("caller")?,
            callee: text("callee")?,
            answered,
            start_ms: time("startTime")?,
            answer_ms: time("answerTime")?,
            end_ms: time("endTime")?,
            ring_ms: whole("ringTime")?,
            call_seconds: whole("callDuration")?,
            ring_seconds: whole("ringDuration")?,
            hangup_by: whole("hangupBy")?,
            hangup_code: text("hangupCode")?,
            hangup_reason: text("hangupReason")?,
            call_status: text("callStatus")?,
            intent: text("intent")?,
            record_url: text("recordUrl")?,
            price: number("totalCustomerPrice")?,
            raw: value.to_string(),
        })
    }
}

/// A vendor time as Unix ms: values below 10^11 are taken as seconds
/// (10^11 seconds is the year 5138; 10^11 ms is March 1973).
fn unix_ms(n: i64) -> i64 {
    if n < 100_000_000_000 {
        n * 1000
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_record_is_read_leniently_and_kept_whole() {
        let body = br#"{"callId":"c-1","orderId":"o-9","taskId":123,"caller":"85291234567",
            "callee":"sip:NX09445G000025@ai","answered":true,"startTime":1764500000000,
            "answerTime":"1764500004","endTime":1764500064000,"ringTime":4000,
            "callDuration":"60","ringDuration":4,"hangupBy":1,"hangupCode":"16",
            "hangupReason":"user hung up","callStatus":"ANSWERED","intent":"interested",
            "recordUrl":"https://rec.example/c-1.mp3","totalCustomerPrice":"0.012"}"#;
        let calls = Call::parse_body(body).unwrap();
        let call = &calls[0];
        assert_eq!(call.call_id, "c-1");
        assert_eq!(call.order_id.as_deref(), Some("o-9"));
        assert_eq!(call.task_id.as_deref(), Some("123"));
        assert!(call.answered);
        assert_eq!(call.start_ms, Some(1_764_500_000_000));
        // Seconds are read as seconds.
        assert_eq!(call.answer_ms, Some(1_764_500_004_000));
        assert_eq!(call.call_seconds, Some(60));
        assert_eq!(call.hangup_by, Some(1));
        assert_eq!(call.price, Some(0.012));
        assert_eq!(call.intent.as_deref(), Some("interested"));
        let raw: Value = serde_json::from_str(&call.raw).unwrap();
        assert_eq!(raw["recordUrl"], "https://rec.example/c-1.mp3");
    }

    #[test]
    fn bodies_that_are_not_calls_say_why() {
        assert!(matches!(
            Call::parse_body(b"{\"callId\":"),
            Err(CallError::NotJson(_))
        ));
        assert_eq!(Call::parse_body(b"[1]"), Err(CallError::NotAnObject));
        assert_eq!(
            Call::parse_body(b"{\"orderId\":\"o\"}"),
            Err(CallError::NoCallId)
        );
        assert!(matches!(
            Call::parse_body(b"{\"callId\":\"c\",\"callDuration\":\"long\"}"),
            Err(CallError::Field {
                field: "callDuration",
                ..
            })
        ));
        // A NUL in a text is replaced, so that every ledger can keep it.
        let nul = Call::parse_body(b"{\"callId\":\"c\\u0000d\",\"intent\":\"x\\u0000\"}").unwrap();
        assert_eq!(nul[0].call_id, "c\u{fffd}d");
        assert_eq!(nul[0].intent.as_deref(), Some("x\u{fffd}"));
        // An array of calls is several calls; an unanswered one is fine.
        let two = Call::parse_body(br#"[{"callId":"a"},{"callId":"b","answered":false}]"#).unwrap();
        assert_eq!(two.len(), 2);
        assert!(!two[1].answered);
    }
}
