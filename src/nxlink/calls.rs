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
                Some(Value::String(s)) => match s.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Some(n)),
                    _ => Err(CallError::Field {
                        field,
                        problem: format!("expected a number, got {s:?}"),
                    }),
                },
                Some(other) => Err(CallError::Field {
                    field,
                    problem: format!("expected a number, got {other}"),
                }),
            }
        };
        // A float beyond i64 saturates, and is then refused by its range.
        let whole = |field: &'static str| number(field).map(|n| n.map(|n| n.round() as i64));
        let time = |field: &'static str| -> Result<Option<i64>, CallError> {
            if let Some(Value::String(s)) = object.get(field) {
                if let Ok(at) = s.trim().parse::<jiff::Timestamp>() {
                    return Ok(Some(at.as_millisecond()));
                }
            }
            // 0 stands for no time; anything else is checked by its range.
            Ok(whole(field)?.filter(|n| *n != 0).map(unix_ms))
        };
        // The vendor's own push example leaves `answered` out of an answered
        // call: without the key, a call with an answer time or a duration
        // was answered. A key that is there says it.
        let answered = match object.get("answered") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Number(n)) => Some(n.as_f64().is_some_and(|n| n != 0.0)),
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "true" | "1" | "yes"
            )),
            Some(other) => {
                return Err(CallError::Field {
                    field: "answered",
                    problem: format!("expected true or false, got {other}"),
                })
            }
        };
        let call_id = text("callId")?.ok_or(CallError::NoCallId)?;
        if call_id.chars().count() > MOST_CALL_ID_CHARS {
            return Err(CallError::Field {
                field: "callId",
                problem: format!(
                    "{} characters, more than a call id has ({MOST_CALL_ID_CHARS} at most)",
                    call_id.chars().count()
                ),
            });
        }
        let answer_ms = within(time("answerTime")?, "answerTime", TIMES_MS)?;
        let call_seconds = within(whole("callDuration")?, "callDuration", DURATION_S)?;
        let call = Call {
            call_id,
            // The records spell it `orderId`; accept the request's spelling.
            order_id: match text("orderId")? {
                Some(id) => Some(id),
                None => text("orderID")?,
            },
            task_id: text("taskId")?,
            caller: text("caller")?,
            callee: text("callee")?,
            answered: answered.unwrap_or_else(|| {
                answer_ms.is_some_and(|at| at > 0) || call_seconds.is_some_and(|s| s > 0)
            }),
            start_ms: within(time("startTime")?, "startTime", TIMES_MS)?,
            answer_ms,
            end_ms: within(time("endTime")?, "endTime", TIMES_MS)?,
            ring_ms: within(whole("ringTime")?, "ringTime", DURATION_MS)?,
            call_seconds,
            ring_seconds: within(whole("ringDuration")?, "ringDuration", DURATION_S)?,
            hangup_by: within(whole("hangupBy")?, "hangupBy", 0..=1_000)?,
            hangup_code: text("hangupCode")?,
            hangup_reason: text("hangupReason")?,
            call_status: text("callStatus")?,
            intent: text("intent")?,
            record_url: text("recordUrl")?,
            price: match number("totalCustomerPrice")? {
                Some(price) if !price.is_finite() || price.abs() > MOST_PRICE => {
                    return Err(CallError::Field {
                        field: "totalCustomerPrice",
                        problem: format!("{price} is not a price"),
                    })
                }
                price => price,
            },
            raw: value.to_string(),
        };
        Ok(call)
    }

    /// The earliest time the call says it happened (its start, else its
    /// answer, else its end).
    pub fn earliest_ms(&self) -> Option<i64> {
        [self.start_ms, self.answer_ms, self.end_ms]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The longest `callId` taken: the vendor's are UUIDs (36 characters).
pub const MOST_CALL_ID_CHARS: usize = 128;
/// Times a call can have: from 2000 to 2100, in Unix ms.
const TIMES_MS: std::ops::RangeInclusive<i64> = 946_684_800_000..=4_102_444_800_000;
/// Durations of one call: up to a day.
const DURATION_S: std::ops::RangeInclusive<i64> = 0..=86_400;
const DURATION_MS: std::ops::RangeInclusive<i64> = 0..=86_400_000;
/// A call's price, in any currency, is far below this.
const MOST_PRICE: f64 = 1e9;

/// `value`, refused when outside `range`: one absurd number would break
/// every sum the reports make.
fn within(
    value: Option<i64>,
    field: &'static str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, CallError> {
    match value {
        Some(n) if !range.contains(&n) => Err(CallError::Field {
            field,
            problem: format!("{n} is out of range ({}..={})", range.start(), range.end()),
        }),
        value => Ok(value),
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

/// What the webhook answers a delivery it stored: a reply in the vendor's
/// own shape (`code` 0), with how many calls it held.
pub fn stored_reply(calls: usize) -> Value {
    serde_json::json!({ "code": 0, "msg": "ok", "calls": calls })
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
