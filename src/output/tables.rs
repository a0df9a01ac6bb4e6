//! What people and scripts read on stdout: status tables, order lists,
//! campaigns, as aligned text, CSV or JSON, and the two guards on text that
//! came from outside (a spreadsheet's formulas, a terminal's escapes).
//!
//! It only formats, to the writer it is given; the numbers come from the
//! ledger.

use std::borrow::Cow;
use std::io::{self, Write};

use serde_json::json;

use crate::clock::rfc3339;
use crate::ledger::{CallStats, CampaignStatus, CampaignSummary, OrderLine};
use crate::state::{BatchState, OrderState};

/// How `orders` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrdersFormat {
    /// Aligned columns for people.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line (`json` works too).
    #[value(name = "jsonl", alias = "json")]
    Json,
}

/// Prints status as aligned tables: orders by state, then batches by state.
pub fn write_status_table(out: &mut dyn Write, statuses: &[CampaignStatus]) -> io::Result<()> {
    let width = name_width(statuses);
    write!(out, "{:<width$} {:>10}", "orders", "rows")?;
    for state in OrderState::ALL {
        write!(out, " {:>10}", state.as_str())?;
    }
    writeln!(out)?;
    for status in statuses {
        write!(out, "{:<width$} {:>10}", status.campaign, status.rows_read)?;
        for (_, n) in &status.orders {
            write!(out, " {n:>10}")?;
        }
        writeln!(out)?;
    }
    writeln!(out)?;
    write!(out, "{:<width$} {:>10}", "batches", "total")?;
    for state in BatchState::ALL {
        write!(out, " {:>10}", state.as_str())?;
    }
    writeln!(out)?;
    for status in statuses {
        let total: u64 = status.batches.iter().map(|(_, n)| n).sum();
        write!(out, "{:<width$} {total:>10}", status.campaign)?;
        for (_, n) in &status.batches {
            write!(out, " {n:>10}")?;
        }
        writeln!(out)?;
    }
    write_call_outcomes(out, statuses)?;
    write_redials(out, statuses)?;
    write_windows(out, statuses)
}

/// The pending orders of `campaign` by window key, with each window's
/// state under `schedule` when it is known.
pub async fn pending_windows(
    ledger: &crate::ledger::Ledger,
    campaign: crate::ledger::CampaignId,
    schedule: Option<&crate::schedule::Schedule>,
) -> Result<Vec<crate::ledger::PendingWindow>, crate::ledger::LedgerError> {
    let now = crate::clock::now_ms();
    Ok(ledger
        .pending_windows(campaign)
        .await?
        .into_iter()
        .map(|(key, orders)| crate::ledger::PendingWindow {
            state: schedule.map(|schedule| schedule.state(&key, now)),
            key,
            orders,
        })
        .collect())
}

/// The pending orders of each campaign by calling window (after a blank
/// line), where they are cut by time zone or a schedule is known.
pub fn write_windows(out: &mut dyn Write, statuses: &[CampaignStatus]) -> io::Result<()> {
    use crate::schedule::{describe_key, WindowState};
    for status in statuses {
        let shown = status
            .windows
            .iter()
            .any(|window| window.key.contains(' ') || window.state.is_some());
        if !shown {
            continue;
        }
        writeln!(
            out,
            "\npending orders of {} by calling window:",
            status.campaign
        )?;
        for window in &status.windows {
            let state = match window.state {
                None => String::new(),
                Some(WindowState::OpenUntil(until)) => {
                    format!(": inside a window, claimed until {}", rfc3339(until))
                }
                Some(WindowState::OpensAt(at)) => {
                    format!(": outside the windows, the next opens at {}", rfc3339(at))
                }
                Some(WindowState::Never) => ": no window opens within a year".to_owned(),
            };
            writeln!(
                out,
                "  {:>10} order(s)  {}{state}",
                window.orders,
                describe_key(&window.key)
            )?;
        }
    }
    Ok(())
}

/// Where the contacts of campaigns with redials stand (after a blank
/// line): reached on which call, waiting, exhausted, ended.
pub fn write_redials(out: &mut dyn Write, statuses: &[CampaignStatus]) -> io::Result<()> {
    for status in statuses {
        let Some(funnel) = &status.redials else {
            continue;
        };
        writeln!(out)?;
        let on_calls: Vec<String> = funnel
            .reached_on_call
            .iter()
            .map(|(call, n)| format!("{n} on call {call}"))
            .collect();
        writeln!(
            out,
            "redials of {}: {} redial order(s); {} contact(s) reached{}",
            status.campaign,
            funnel.orders,
            funnel.reached(),
            if on_calls.is_empty() {
                String::new()
            } else {
                format!(" ({})", on_calls.join(", "))
            }
        )?;
        let mut waiting = format!(
            "  waiting: {} due now, {} later",
            funnel.due_now, funnel.waiting
        );
        if let Some(due) = funnel.next_due_ms {
            waiting.push_str(&format!(" (the next at {})", rfc3339(due)));
        }
        waiting.push_str(&format!(
            ", {} accepted without a call yet (the vendor may still be dialling)",
            funnel.awaiting_call
        ));
        writeln!(out, "{waiting}")?;
        if let Some(stopped) = funnel.stopped_at_ms {
            writeln!(
                out,
                "  stopped by cancel at {}: no redial is planned any more",
                rfc3339(stopped)
            )?;
        }
        let mut done = vec![
            format!("{} exhausted", funnel.exhausted),
            format!("{} opted out", funnel.opted_out),
        ];
        done.extend(
            funnel
                .ended
                .iter()
                .map(|(outcome, n)| format!("{n} ended {outcome}")),
        );
        writeln!(out, "  done: {}", done.join(", "))?;
    }
    Ok(())
}

/// A funnel as `status --json` shows it.
fn funnel_object(funnel: &crate::redial::Funnel) -> serde_json::Value {
    json!({
        "redial_orders": funnel.orders,
        "stopped_at": funnel.stopped_at_ms.map(rfc3339),
        "reached": funnel.reached(),
        "reached_on_call": funnel.reached_on_call.iter().map(|(call, n)| (call.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "opted_out": funnel.opted_out,
        "due_now": funnel.due_now,
        "waiting": funnel.waiting,
        "next_due_at": funnel.next_due_ms.map(rfc3339),
        "accepted_without_call": funnel.awaiting_call,
        "exhausted": funnel.exhausted,
        "ended": funnel.ended.iter().map(|(outcome, n)| (outcome.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The width of the campaign column of a status table.
fn name_width(statuses: &[CampaignStatus]) -> usize {
    statuses
        .iter()
        .map(|s| s.campaign.len())
        .chain(["campaign".len()])
        .max()
        .unwrap_or(8)
}

/// The call outcomes of the campaigns that have any (after a blank line).
pub fn write_call_outcomes(out: &mut dyn Write, statuses: &[CampaignStatus]) -> io::Result<()> {
    let width = name_width(statuses);
    let called: Vec<(&str, &CallStats)> = statuses
        .iter()
        .filter_map(|s| s.calls.as_ref().map(|calls| (s.campaign.as_str(), calls)))
        .filter(|(_, calls)| calls.records + calls.unknown_records > 0)
        .collect();
    if called.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<width$} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "calls", "records", "called", "answered", "rate", "avg talk"
    )?;
    for (campaign, calls) in &called {
        let (rate, talk) = (calls.answer_rate(), calls.average_talk());
        writeln!(
            out,
            "{campaign:<width$} {:>10} {:>10} {:>10} {rate:>10} {talk:>10}",
            calls.records, calls.orders_called, calls.answered
        )?;
    }
    for (campaign, calls) in &called {
        if !calls.intents.is_empty() {
            let intents: Vec<String> = calls
                .intents
                .iter()
                .map(|(intent, n)| format!("{} {n}", terminal_safe(intent)))
                .collect();
            writeln!(
                out,
                "intents of {campaign}'s answered calls: {}",
                intents.join(", ")
            )?;
        }
    }
    if let Some((_, calls)) = called.iter().find(|(_, calls)| calls.unknown_records > 0) {
        writeln!(
            out,
            "{} call record(s) are of orders this ledger does not know (kept; see the webhook's senders)",
            calls.unknown_records
        )?;
    }
    Ok(())
}

/// `campaigns`: one line per campaign, oldest first.
pub fn write_campaigns(
    out: &mut dyn Write,
    campaigns: &[CampaignSummary],
    json: bool,
) -> io::Result<()> {
    let when = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_else(|| "-".to_owned());
    if json {
        for c in campaigns {
            let mut object = status_object(&c.status);
            object["created_at"] = json!(rfc3339(c.created_at_ms));
            object["last_run_at"] = json!(c.last_run_at_ms.map(rfc3339));
            object["job_file"] = json!(c.job_file);
            object["contacts"] = json!(c.contacts);
            writeln!(out, "{object}")?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<24} {:<24} {:>10} {:>10} {:>10} {:>10}  job file / contact file",
        "campaign", "created", "last run", "rows", "pending", "accepted", "attention"
    )?;
    for c in campaigns {
        let status = &c.status;
        let attention: u64 = BatchState::ALL
            .into_iter()
            .filter(|s| s.needs_attention())
            .map(|s| status.orders_in(OrderState::InBatch(s)))
            .sum();
        writeln!(
            out,
            "{:<24} {:<24} {:<24} {:>10} {:>10} {:>10} {:>10}  {} / {}",
            status.campaign,
            when(Some(c.created_at_ms)),
            when(c.last_run_at_ms),
            status.rows_read,
            status.orders_in(OrderState::InBatch(BatchState::Pending)),
            status.orders_in(OrderState::InBatch(BatchState::Accepted)),
            attention,
            terminal_safe(c.job_file.as_deref().unwrap_or("-")),
            terminal_safe(c.contacts.as_deref().unwrap_or("-")),
        )?;
    }
    Ok(())
}

/// One campaign's status as `status --json` prints it.
fn status_object(status: &CampaignStatus) -> serde_json::Value {
    let orders: serde_json::Map<String, serde_json::Value> = status
        .orders
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    let batches: serde_json::Map<String, serde_json::Value> = status
        .batches
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    let mut object = json!({
        "campaign": status.campaign,
        "rows_read": status.rows_read,
        "orders": orders,
        "batches": batches,
    });
    if let Some(calls) = &status.calls {
        object["calls"] = json!({
            // Records of this campaign's orders, and those of orders the
            // ledger does not know.
            "records": calls.records + calls.unknown_records,
            "unknown_order_records": calls.unknown_records,
            "orders_called": calls.orders_called,
            "answered": calls.answered,
            "talk_seconds": calls.talk_seconds,
            "intents": calls.intents.iter().map(|(intent, n)| json!({"intent": intent, "calls": n})).collect::<Vec<_>>(),
        });
    }
    if let Some(funnel) = &status.redials {
        object["redials"] = funnel_object(funnel);
    }
    object["pending_windows"] = status
        .windows
        .iter()
        .map(|window| {
            use crate::schedule::WindowState;
            let (country, zones) = crate::schedule::key_parts(&window.key);
            json!({
                "country": country,
                "zones": zones.split('&').filter(|z| !z.is_empty()).collect::<Vec<_>>(),
                "orders": window.orders,
                "open_until": match window.state { Some(WindowState::OpenUntil(t)) => Some(rfc3339(t)), _ => None },
                "next_open": match window.state { Some(WindowState::OpensAt(t)) => Some(rfc3339(t)), _ => None },
            })
        })
        .collect::<Vec<_>>()
        .into();
    object
}

/// Prints one CSV row per campaign: its counts of orders and batches by
/// state, and of calls.
pub fn write_status_csv(out: &mut dyn Write, statuses: &[CampaignStatus]) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut header = vec!["campaign".to_owned(), "rows_read".to_owned()];
    header.extend(
        OrderState::ALL
            .iter()
            .map(|s| format!("orders_{}", s.as_str())),
    );
    header.extend(
        BatchState::ALL
            .iter()
            .map(|s| format!("batches_{}", s.as_str())),
    );
    header.extend(
        [
            "call_records",
            "call_records_of_unknown_orders",
            "orders_called",
            "orders_answered",
            "talk_seconds",
        ]
        .map(str::to_owned),
    );
    csv.write_record(&header)?;
    for status in statuses {
        let calls = status.calls.clone().unwrap_or_default();
        let mut row = vec![status.campaign.clone(), status.rows_read.to_string()];
        row.extend(status.orders.iter().map(|(_, n)| n.to_string()));
        row.extend(status.batches.iter().map(|(_, n)| n.to_string()));
        row.extend(
            [
                calls.records,
                calls.unknown_records,
                calls.orders_called,
                calls.answered,
                calls.talk_seconds,
            ]
            .map(|n| n.to_string()),
        );
        csv.write_record(&row)?;
    }
    csv.flush()
}

/// Prints one JSON object per campaign, one per line.
pub fn write_status_json(out: &mut dyn Write, statuses: &[CampaignStatus]) -> io::Result<()> {
    for status in statuses {
        writeln!(out, "{}", status_object(status))?;
    }
    Ok(())
}

/// The CSV header of `orders --format csv`.
pub const ORDERS_CSV_HEADER: [&str; 14] = [
    "order_id",
    "phone",
    "state",
    "batch",
    "code",
    "message",
    "line",
    "answered",
    "talk_seconds",
    "hangup_reason",
    "intent",
    "req_id",
    "attempt",
    "first_order_id",
];

/// Writes order lines one at a time in the chosen format.
pub enum OrderWriter<'w> {
    Table(&'w mut dyn Write),
    Csv(Box<csv::Writer<&'w mut dyn Write>>),
    Json(&'w mut dyn Write),
}

impl<'w> OrderWriter<'w> {
    /// Starts the output (a header row where the format has one).
    pub fn new(format: OrdersFormat, out: &'w mut dyn Write) -> io::Result<OrderWriter<'w>> {
        Ok(match format {
            OrdersFormat::Table => {
                writeln!(
                    out,
                    "{:<32}  {:<16}  {:<10}  {:>6}  {:>6}  {:>8}  {:>7}  {:<8}  {:>6}  message",
                    "order_id",
                    "phone",
                    "state",
                    "batch",
                    "code",
                    "line",
                    "attempt",
                    "answered",
                    "talk"
                )?;
                OrderWriter::Table(out)
            }
            OrdersFormat::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                csv.write_record(ORDERS_CSV_HEADER)?;
                OrderWriter::Csv(Box::new(csv))
            }
            OrdersFormat::Json => OrderWriter::Json(out),
        })
    }

    pub fn write(&mut self, order: &OrderLine<'_>) -> io::Result<()> {
        match self {
            OrderWriter::Table(out) => writeln!(
                out,
                "{:<32}  {:<16}  {:<10}  {:>6}  {:>6}  {:>8}  {:>7}  {:<8}  {:>6}  {}",
                terminal_safe(order.order_id.as_deref().unwrap_or("-")),
                terminal_safe(&order.phone),
                order.state.as_str(),
                order.batch.map(|b| b.to_string()).unwrap_or_default(),
                order.code.map(|c| c.to_string()).unwrap_or_default(),
                order.line,
                order.attempt,
                order
                    .last_call
                    .as_ref()
                    .map_or("", |c| if c.answered { "yes" } else { "no" }),
                order
                    .last_call
                    .as_ref()
                    .and_then(|c| c.talk_seconds)
                    .map(|t| format!("{t}s"))
                    .unwrap_or_default(),
                terminal_safe(&match (&order.message, &order.req_id) {
                    (Some(message), Some(req_id)) => format!("{message} (reqId {req_id})"),
                    (None, Some(req_id)) => format!("(reqId {req_id})"),
                    (message, None) => message.as_deref().unwrap_or("").to_owned(),
                })
            ),
            OrderWriter::Csv(csv) => {
                // Numbers are formatted on the stack: this runs per order.
                let (mut batch, mut code, mut line, mut talk, mut attempt) = (
                    itoa::Buffer::new(),
                    itoa::Buffer::new(),
                    itoa::Buffer::new(),
                    itoa::Buffer::new(),
                    itoa::Buffer::new(),
                );
                let call = order.last_call.as_ref();
                csv.write_record([
                    spreadsheet_safe(order.order_id.as_deref().unwrap_or("")).as_bytes(),
                    spreadsheet_safe(&order.phone).as_bytes(),
                    order.state.as_str().as_bytes(),
                    order.batch.map_or("", |b| batch.format(b)).as_bytes(),
                    order.code.map_or("", |c| code.format(c)).as_bytes(),
                    spreadsheet_safe(order.message.as_deref().unwrap_or("")).as_bytes(),
                    line.format(order.line).as_bytes(),
                    call.map_or("", |c| if c.answered { "true" } else { "false" })
                        .as_bytes(),
                    call.and_then(|c| c.talk_seconds)
                        .map_or("", |t| talk.format(t))
                        .as_bytes(),
                    spreadsheet_safe(call.and_then(|c| c.hangup_reason.as_deref()).unwrap_or(""))
                        .as_bytes(),
                    spreadsheet_safe(call.and_then(|c| c.intent.as_deref()).unwrap_or(""))
                        .as_bytes(),
                    spreadsheet_safe(order.req_id.as_deref().unwrap_or("")).as_bytes(),
                    attempt.format(order.attempt).as_bytes(),
                    spreadsheet_safe(order.first_order_id.as_deref().unwrap_or("")).as_bytes(),
                ])
                // Keep the I/O error's kind: a closed pipe is not a failure.
                .map_err(|e| match e.into_kind() {
                    csv::ErrorKind::Io(e) => e,
                    kind => io::Error::other(format!("{kind:?}")),
                })
            }
            OrderWriter::Json(out) => {
                let object = json!({
                    "order_id": order.order_id,
                    "phone": order.phone,
                    "state": order.state.as_str(),
                    "batch": order.batch,
                    "code": order.code,
                    "message": order.message,
                    "line": order.line,
                    "answered": order.last_call.as_ref().map(|c| c.answered),
                    "talk_seconds": order.last_call.as_ref().and_then(|c| c.talk_seconds),
                    "hangup_reason": order.last_call.as_ref().and_then(|c| c.hangup_reason.as_deref()),
                    "intent": order.last_call.as_ref().and_then(|c| c.intent.as_deref()),
                    "req_id": order.req_id,
                    "attempt": order.attempt,
                    "first_order_id": order.first_order_id,
                });
                writeln!(out, "{object}")
            }
        }
    }

    pub fn finish(self) -> io::Result<()> {
        match self {
            OrderWriter::Table(out) | OrderWriter::Json(out) => out.flush(),
            OrderWriter::Csv(mut csv) => csv.flush(),
        }
    }
}

/// A text field as a spreadsheet can open it safely: one that starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return would be read as a
/// formula, so it gets a leading `'` (which spreadsheets hide), unless the
/// whole field is a number (`-5`, `+85235757581`), which stays a number.
pub fn spreadsheet_safe(text: &str) -> Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && text.parse::<f64>().is_err() {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Text from the vendor or a contact file as a terminal can show it: every
/// control character (escape sequences, carriage returns, line breaks) is
/// written as an escape (`\u{1b}`), so it cannot move the cursor, recolour
/// or rewrite what the person reads.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_stay_numbers() {
        let check = |input: &str, expected: &str| assert_eq!(spreadsheet_safe(input), expected);
        check("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")");
        check("+1+1", "'+1+1");
        check("-2+3", "'-2+3");
        check("@SUM(A1)", "'@SUM(A1)");
        check("\tX", "'\tX");
        check("\rX", "'\rX");
        check("-5", "-5");
        check("+85235757581", "+85235757581");
        check("85235757581", "85235757581");
        check("a=b", "a=b");
        check("", "");
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(terminal_safe("plain text"), "plain text");
        assert_eq!(terminal_safe("red\u{1b}[31m"), "red\\u{1b}[31m");
        assert_eq!(terminal_safe("a\rb\nc"), "a\\rb\\nc");
        assert_eq!(terminal_safe("牛小信"), "牛小信");
    }
}
