//! The HTTP client: one signed POST per attempt, and what came back.
//!
//! The caller hands it each attempt's `ts` (taken before the attempt's
//! batch was taken under the campaign's lease), and it decides nothing about
//! retrying; it reports what happened precisely enough for `retry` to decide.
//! It follows no redirect and reads at most [`MAX_REPLY_BYTES`] of a reply.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, DATE, LOCATION, RETRY_AFTER};

use crate::clock::{now_ms, system_time_ms};

use super::calls::{
    Call, CallError, CDR_BY_ORDER_PATH, CDR_FILTER_AI_OUTBOUND, CDR_PAGE_PATH, CDR_PAGE_SIZE,
};
use super::sign::{sign, Credentials, SignedParts};
use super::task::TaskSettings;
use super::wire::{create_and_call_body, ApiReply};
use super::{ACTION_CC, BIZ_TYPE_CC, CREATE_AND_CALL_PATH};
use crate::batch::{BatchOrder, BatchSeq};

/// The most of a reply body that is read; a longer reply is not the
/// vendor's, and what it means is unknown.
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// The most of a reply's message that is kept (in the ledger, in logs).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// A client of one NXLink gateway with one account.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    create_and_call_url: String,
    credentials: Credentials,
    /// Added to the local clock for `ts`: the server's clock minus ours, as
    /// learned from a 1004 reply.
    clock_offset_ms: AtomicI64,
}

/// What one attempt got: a reply, or a transport failure.
#[derive(Debug, Clone)]
pub enum Exchange {
    Reply(Reply),
    Transport(TransportError),
}

/// An HTTP reply, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub http_status: u16,
    /// The vendor's `code`, when the body was the vendor's JSON.
    pub code: Option<i64>,
    pub msg: Option<String>,
    pub req_id: Option<String>,
    /// `Retry-After`, in either form, as a delay from now.
    pub retry_after: Option<Duration>,
    /// The server's clock minus ours, from the `Date` header.
    pub server_clock_offset_ms: Option<i64>,
    /// Where a redirect pointed (never followed).
    pub location: Option<String>,
    pub elapsed: Duration,
}

/// A span of call start times, in Unix seconds (`cdr/page` takes at most
/// a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordWindow {
    pub start_s: i64,
    pub end_s: i64,
}

/// The call records one query returned.
#[derive(Debug, Default)]
pub struct Records {
    pub calls: Vec<Call>,
    /// Records that are not calls as documented (no `callId`, a number out
    /// of range): counted, not kept.
    pub unreadable: Vec<CallError>,
    /// Whether this was the last page of its window.
    pub last: bool,
}

impl Records {
    fn read(items: &[serde_json::Value], last: bool) -> Records {
        let mut records = Records {
            last,
            ..Records::default()
        };
        for item in items {
            match Call::from_json(item) {
                Ok(call) => records.calls.push(call),
                Err(e) => records.unreadable.push(e),
            }
        }
        records
    }
}

/// Why a query of the API has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    #[error("no reply: {0}")]
    Transport(String),
    #[error("HTTP {status}, not the vendor's JSON: {body}")]
    Http { status: u16, body: String },
    #[error("the vendor refused it: code {code}: {msg}")]
    Refused { code: i64, msg: String },
}

impl QueryError {
    /// Whether asking again later may get an answer: a refusal for the
    /// credentials or the parameters will not pass by itself; no reply, or
    /// a busy gateway, may.
    pub fn may_pass(&self) -> bool {
        match self {
            QueryError::Refused { code, .. } => {
                !super::code::AUTH_RANGE.contains(code) && *code != super::code::PARAMETER_ERROR
            }
            QueryError::Transport(_) | QueryError::Http { .. } => true,
        }
    }
}

/// A request that got no HTTP reply.
#[derive(Debug, Clone)]
pub enum TransportError {
    /// The connection could not be made: nothing was sent.
    NotSent { detail: String, elapsed: Duration },
    /// The request went out (or may have) and no full reply came back: a
    /// timeout or a connection lost mid-way. It may have arrived.
    NoAnswer { detail: String, elapsed: Duration },
    /// The reply was longer than [`MAX_REPLY_BYTES`]: whatever answered, the
    /// request may have arrived.
    TooLarge { http_status: u16, elapsed: Duration },
}

impl Exchange {
    /// How long the attempt took.
    pub fn elapsed(&self) -> Duration {
        match self {
            Exchange::Reply(reply) => reply.elapsed,
            Exchange::Transport(TransportError::NotSent { elapsed, .. })
            | Exchange::Transport(TransportError::NoAnswer { elapsed, .. })
            | Exchange::Transport(TransportError::TooLarge { elapsed, .. }) => *elapsed,
        }
    }

    /// A one-line account for the ledger, at most [`MAX_MESSAGE_BYTES`]:
    /// the vendor's `msg`, or what went wrong on the way.
    pub fn message(&self) -> Option<String> {
        let message = match self {
            Exchange::Reply(reply) => {
                let mut text = String::new();
                if reply.code.is_none() || !(200..300).contains(&reply.http_status) {
                    text = format!("HTTP {}", reply.http_status);
                }
                if let Some(location) = &reply.location {
                    text.push_str(&format!(" to {location}"));
                }
                match (&reply.msg, text.is_empty()) {
                    (Some(msg), true) => msg.clone(),
                    (Some(msg), false) => format!("{text}: {msg}"),
                    (None, true) => return None,
                    (None, false) => text,
                }
            }
            Exchange::Transport(e) => e.to_string(),
        };
        Some(cut(message, MAX_MESSAGE_BYTES))
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::NotSent { detail, .. } => write!(f, "not sent: {detail}"),
            TransportError::NoAnswer { detail, .. } => {
                write!(f, "no answer (it may have arrived): {detail}")
            }
            TransportError::TooLarge { http_status, .. } => write!(
                f,
                "reply too large: HTTP {http_status} with a body over {} KiB (it may have arrived)",
                MAX_REPLY_BYTES / 1024
            ),
        }
    }
}

impl Client {
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Client, reqwest::Error> {
        let http = reqwest::Client::builder()
            // The signed headers and body are for the gateway alone.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("nxcampaign/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            create_and_call_url: format!(
                "{}{CREATE_AND_CALL_PATH}",
                base_url.trim_end_matches('/')
            ),
            credentials,
            clock_offset_ms: AtomicI64::new(0),
        })
    }

    /// The `ts` of an attempt about to be made: the local clock, corrected
    /// by what a 1004 taught. Take it before the attempt's batch is taken
    /// under the lease, so that a request held up after that check carries
    /// an old `ts`, which the vendor refuses once it is a minute old.
    pub fn ts_now(&self) -> i64 {
        now_ms() + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Sends batch `seq` of `orders` (all of `country`) as one
    /// `createandcall` task, signed with `ts`: once, whatever comes back.
    pub async fn create_and_call(
        &self,
        task: &TaskSettings,
        country: &str,
        seq: BatchSeq,
        orders: &[BatchOrder],
        ts: i64,
    ) -> Exchange {
        // Serialized once, signed and sent as they are.
        let body = create_and_call_body(task, country, seq, orders);
        let started = Instant::now();
        let (http_status, headers, bytes) =
            match self.post_signed(&self.create_and_call_url, body, ts).await {
                Ok(answer) => answer,
                Err(e) => return Exchange::Transport(e),
            };
        let now = crate::clock::now();
        let parsed: Option<ApiReply> = serde_json::from_slice(&bytes).ok();
        let msg = match &parsed {
            Some(reply) => reply.msg.clone(),
            None => (!bytes.is_empty()).then(|| {
                String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_MESSAGE_BYTES)]).into_owned()
            }),
        };
        Exchange::Reply(Reply {
            http_status,
            code: parsed.as_ref().map(|r| r.code),
            msg: msg.map(|m| cut(m, MAX_MESSAGE_BYTES)),
            req_id: parsed
                .and_then(|r| r.req_id)
                .map(|id| cut(id, MAX_MESSAGE_BYTES)),
            retry_after: header_str(&headers, RETRY_AFTER.as_str())
                .and_then(|v| parse_retry_after(v, now)),
            server_clock_offset_ms: header_str(&headers, DATE.as_str())
                .and_then(|v| clock_offset_ms(v, now_ms())),
            location: (300..400).contains(&http_status).then(|| {
                cut(
                    header_str(&headers, LOCATION.as_str())
                        .unwrap_or("(no Location header)")
                        .to_owned(),
                    MAX_MESSAGE_BYTES / 2,
                )
            }),
            elapsed: started.elapsed(),
        })
    }

    /// POSTs `body` to `url`, signed with `ts`; the reply's status,
    /// headers and body (at most [`MAX_REPLY_BYTES`]).
    async fn post_signed(
        &self,
        url: &str,
        body: Vec<u8>,
        ts: i64,
    ) -> Result<(u16, HeaderMap, Vec<u8>), TransportError> {
        let signature = sign(
            &self.credentials,
            &SignedParts {
                biz_type: BIZ_TYPE_CC,
                action: ACTION_CC,
                ts,
                body: &body,
            },
        );
        let started = Instant::now();
        let request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("accessKey", self.credentials.access_key())
            .header("ts", ts.to_string())
            .header("bizType", BIZ_TYPE_CC)
            .header("action", ACTION_CC)
            .header("sign", signature)
            .body(body);
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&e, started.elapsed()))?;
        let http_status = response.status().as_u16();
        let headers = response.headers().clone();
        match read_bounded(response).await {
            Ok(Some(bytes)) => Ok((http_status, headers, bytes)),
            Ok(None) => Err(TransportError::TooLarge {
                http_status,
                elapsed: started.elapsed(),
            }),
            Err(e) => Err(transport_error(&e, started.elapsed())),
        }
    }

    /// One page of the account's AI outbound call records that started in
    /// `window` (`cdr/page`, at most [`CDR_PAGE_SIZE`] a page, pages from
    /// 1). The records are the whole account's: every campaign's, every
    /// tool's. A page shorter than the size is the window's last.
    pub async fn call_records(
        &self,
        window: &RecordWindow,
        page: u32,
    ) -> Result<Records, QueryError> {
        let query = serde_json::json!({
            "startTime": window.start_s,
            "endTime": window.end_s,
            "page": page,
            "size": CDR_PAGE_SIZE,
            "direction": CDR_FILTER_AI_OUTBOUND,
        });
        let items = self.query(CDR_PAGE_PATH, &query).await?;
        let last = items.len() < CDR_PAGE_SIZE as usize;
        Ok(Records::read(&items, last))
    }

    /// The call records of one order (`cdr/queryByOrderId`), for the team
    /// (`tenantId`) the console shows.
    pub async fn calls_of_order(&self, tenant: u64, order_id: &str) -> Result<Records, QueryError> {
        let query = serde_json::json!({ "tenantId": tenant, "orderId": order_id });
        let items = self.query(CDR_BY_ORDER_PATH, &query).await?;
        let mut records = Records::read(&items, true);
        // Only what the vendor says is this order's.
        records
            .calls
            .retain(|call| call.order_id.as_deref() == Some(order_id));
        Ok(records)
    }

    /// One read-only query of the API (the call records): its `data`, an
    /// array (`null` is an empty one), or why there is none. A query
    /// changes nothing at the vendor, so any failure may simply be tried
    /// again later.
    async fn query(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<serde_json::Value>, QueryError> {
        let url = format!("{}{path}", self.base_url);
        let (status, _, bytes) = self
            .post_signed(&url, body.to_string().into_bytes(), self.ts_now())
            .await
            .map_err(|e| QueryError::Transport(e.to_string()))?;
        let reply: ApiReply = serde_json::from_slice(&bytes).map_err(|_| QueryError::Http {
            status,
            body: cut(String::from_utf8_lossy(&bytes).into_owned(), 200),
        })?;
        if reply.code != 0 {
            return Err(QueryError::Refused {
                code: reply.code,
                msg: cut(reply.msg.unwrap_or_default(), MAX_MESSAGE_BYTES),
            });
        }
        match reply.data {
            serde_json::Value::Null => Ok(Vec::new()),
            serde_json::Value::Array(items) => Ok(items),
            other => Err(QueryError::Http {
                status,
                body: cut(format!("`data` is not an array: {other}"), 200),
            }),
        }
    }

    /// Makes later `ts` values follow the server's clock.
    pub fn correct_clock(&self, offset_ms: i64) {
        self.clock_offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }
}

/// The body, or `None` when it is longer than [`MAX_REPLY_BYTES`] (read no
/// further than that).
async fn read_bounded(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// `text` cut to at most `most` bytes, on a character boundary, with an
/// ellipsis when something was cut.
pub fn cut(mut text: String, most: usize) -> String {
    if text.len() > most {
        let mut end = most.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The server's clock minus ours, from a `Date` header read when our clock
/// (the one `ts` is taken from) said `now_ms`.
fn clock_offset_ms(date: &str, now_ms: i64) -> Option<i64> {
    let server = httpdate::parse_http_date(date.trim()).ok()?;
    // `Date` has whole seconds: aim at the middle of the second.
    Some(system_time_ms(server) + 500 - now_ms)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

/// Sorts a reqwest failure into "never sent" and "may have arrived".
fn transport_error(error: &reqwest::Error, elapsed: Duration) -> TransportError {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_connect() {
        TransportError::NotSent { detail, elapsed }
    } else {
        TransportError::NoAnswer { detail, elapsed }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(cut("short".into(), 1024), "short");
        let long = "é".repeat(1000);
        let kept = cut(long, 1024);
        assert!(kept.len() <= 1024, "{}", kept.len());
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn the_clock_offset_comes_from_the_date_header() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let server = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(clock_offset_ms(&server, system_time_ms(now)), Some(90_500));
        assert_eq!(clock_offset_ms("yesterday", system_time_ms(now)), None);
    }
}
