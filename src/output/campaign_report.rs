//! `report`: one campaign on one page — counts by state, requests over
//! time, attempts by outcome and reason, the slowest attempts, the batches
//! that need a look, and why rows were set aside — as text, and as a
//! self-contained HTML page (inline CSS and SVG, nothing fetched).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::clock::rfc3339;
use crate::ledger::{CallStats, CampaignId, CampaignStatus, Ledger, LedgerError, ReportData};
use crate::output::tables::terminal_safe;
use crate::state::OrderState;

/// Distinct set-aside reasons kept; rarer ones count as "other reasons".
const REASONS: usize = 200;

/// What the page shows.
pub struct Overview {
    pub status: CampaignStatus,
    pub data: ReportData,
    /// Rows set aside: (state, reason with values left out, rows), most first.
    pub set_aside: Vec<(OrderState, String, u64)>,
}

/// Reads what `report` shows of `campaign` (blocking for the set-aside
/// rows: call it where the runtime allows, as `orders` does).
pub async fn gather(
    ledger: &Ledger,
    campaign: CampaignId,
    name: &str,
) -> Result<Overview, LedgerError> {
    let mut status = ledger.status(campaign, name).await?;
    status.calls = Some(ledger.call_stats(campaign).await?);
    status.redials = ledger
        .funnel(campaign, crate::clock::now_ms(), None)
        .await?;
    status.windows = super::tables::pending_windows(ledger, campaign, None).await?;
    let data = ledger.report_data(campaign).await?;
    let mut reasons: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    for state in [
        OrderState::Invalid,
        OrderState::Duplicate,
        OrderState::Suppressed,
    ] {
        if status.orders_in(state) == 0 {
            continue;
        }
        tokio::task::block_in_place(|| {
            ledger.for_each_order(campaign, Some(state), None, &mut |order| {
                let mut general = generalize(order.message.as_deref().unwrap_or("(no reason)"));
                if reasons.len() >= REASONS
                    && !reasons.contains_key(&(state.as_str(), general.clone()))
                {
                    general = "other reasons".to_owned();
                }
                *reasons.entry((state.as_str(), general)).or_default() += 1;
                Ok(())
            })
        })?;
    }
    let mut set_aside: Vec<(OrderState, String, u64)> = reasons
        .into_iter()
        .map(|((state, reason), n)| (state.parse().expect("a state we wrote"), reason, n))
        .collect();
    set_aside.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
    Ok(Overview {
        status,
        data,
        set_aside,
    })
}

/// A reason with its values left out: quoted text becomes `"…"` and
/// numbers `N`, so rows set aside for the same reason count together.
fn generalize(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for (i, part) in reason.split('"').enumerate() {
        if i % 2 == 1 {
            out.push_str("\"…\"");
            continue;
        }
        let mut in_number = false;
        for c in part.chars() {
            if c.is_ascii_digit() {
                if !in_number {
                    out.push('N');
                }
                in_number = true;
            } else {
                in_number = false;
                out.push(c);
            }
        }
    }
    out
}

/// An attempt's outcome as people say it: `retry: HTTP 503`.
fn outcome_words(decision: &str, http_status: Option<i64>, code: Option<i64>) -> String {
    let mut words = decision.to_owned();
    if let Some(status) = http_status {
        let _ = write!(words, ", HTTP {status}");
    }
    if let Some(code) = code {
        let _ = write!(words, ", code {code}");
    }
    words
}

impl Overview {
    /// The page as text.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let status = &self.status;
        writeln!(
            out,
            "campaign {} — {} row(s) read",
            status.campaign, status.rows_read
        )?;
        writeln!(out, "\norders by state")?;
        for (state, n) in status.orders.iter().filter(|(_, n)| *n > 0) {
            writeln!(out, "  {:<12} {n:>10}", state.as_str())?;
        }
        writeln!(out, "\nbatches by state")?;
        for (state, n) in status.batches.iter().filter(|(_, n)| *n > 0) {
            writeln!(out, "  {:<12} {n:>10}", state.as_str())?;
        }
        writeln!(out, "\nrequests over time")?;
        let data = &self.data;
        if data.timeline.is_empty() {
            writeln!(out, "  none sent yet")?;
        } else {
            let most = data.timeline.iter().copied().max().unwrap_or(1).max(1);
            for (i, n) in data.timeline.iter().enumerate().filter(|(_, n)| **n > 0) {
                let from = data.first_ms + i as i64 * data.bucket_ms;
                let bar = "#".repeat(((n * 40).div_ceil(most)) as usize);
                writeln!(out, "  {}  {n:>8}  {bar}", rfc3339(from))?;
            }
        }
        writeln!(out, "\nattempts by outcome")?;
        for group in &data.attempts {
            writeln!(
                out,
                "  {:<40} {:>10}",
                outcome_words(&group.decision, group.http_status, group.code),
                group.count
            )?;
        }
        writeln!(out, "\nslowest attempts")?;
        for slow in &data.slowest {
            writeln!(
                out,
                "  batch #{} attempt {}: {:.3} s, {}",
                slow.batch,
                slow.attempt,
                slow.duration_ms as f64 / 1000.0,
                slow.decision
            )?;
        }
        writeln!(out, "\nbatches that need a look")?;
        if data.troubled.is_empty() {
            writeln!(out, "  none")?;
        }
        for batch in &data.troubled {
            writeln!(
                out,
                "  #{} {} {}{}: {}{}",
                batch.batch,
                batch.country,
                batch.state,
                batch
                    .code
                    .map(|c| format!(" (code {c})"))
                    .unwrap_or_default(),
                terminal_safe(batch.message.as_deref().unwrap_or("")),
                batch
                    .req_id
                    .as_deref()
                    .map(|id| format!(" (reqId {})", terminal_safe(id)))
                    .unwrap_or_default()
            )?;
        }
        writeln!(out, "\ncall outcomes")?;
        match status.calls.as_ref().filter(|c| c.records > 0) {
            None => writeln!(out, "  no call recorded yet (webhook or sync)")?,
            Some(calls) => {
                for (what, value) in call_figures(calls) {
                    writeln!(out, "  {what:<24} {value:>10}")?;
                }
                for (intent, n) in &calls.intents {
                    writeln!(out, "    {n:>8}  {}", terminal_safe(intent))?;
                }
            }
        }
        if status.redials.is_some() {
            super::tables::write_redials(out, std::slice::from_ref(status))?;
        }
        super::tables::write_windows(out, std::slice::from_ref(status))?;
        writeln!(out, "\nrows set aside, by reason")?;
        if self.set_aside.is_empty() {
            writeln!(out, "  none")?;
        }
        for (state, reason, n) in &self.set_aside {
            writeln!(
                out,
                "  {n:>8}  {:<10} {}",
                state.as_str(),
                terminal_safe(reason)
            )?;
        }
        Ok(())
    }

    /// The page as one self-contained HTML document.
    pub fn html(&self) -> String {
        let status = &self.status;
        let data = &self.data;
        let mut page = String::new();
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>nxcampaign report: {name}</title><style>{STYLE}</style></head><body>\
             <h1>Campaign {name}</h1><p class=\"lead\">{rows} row(s) read; report made {now}</p>",
            name = escape(&status.campaign),
            rows = status.rows_read,
            now = rfc3339(crate::clock::now_ms()),
        );
        section(&mut page, "states", "Orders and batches by state", |page| {
            let orders: Vec<(String, u64)> = status
                .orders
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (s.as_str().to_owned(), *n))
                .collect();
            let batches: Vec<(String, u64)> = status
                .batches
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (s.as_str().to_owned(), *n))
                .collect();
            page.push_str("<h3>Orders</h3>");
            bars(page, &orders);
            page.push_str("<h3>Batches</h3>");
            bars(page, &batches);
        });
        section(&mut page, "timeline", "Requests over time", |page| {
            if data.timeline.is_empty() {
                page.push_str("<p>None sent yet.</p>");
                return;
            }
            timeline(page, data);
        });
        section(&mut page, "attempts", "Attempts by outcome", |page| {
            let groups: Vec<(String, u64)> = data
                .attempts
                .iter()
                .map(|g| (outcome_words(&g.decision, g.http_status, g.code), g.count))
                .collect();
            bars(page, &groups);
        });
        section(&mut page, "slowest", "Slowest attempts", |page| {
            table(
                page,
                &["batch", "attempt", "seconds", "outcome"],
                data.slowest
                    .iter()
                    .map(|s| {
                        vec![
                            format!("#{}", s.batch),
                            s.attempt.to_string(),
                            format!("{:.3}", s.duration_ms as f64 / 1000.0),
                            s.decision.clone(),
                        ]
                    })
                    .collect(),
            );
        });
        section(&mut page, "troubled", "Batches that need a look", |page| {
            table(
                page,
                &["batch", "country", "state", "code", "message", "request id"],
                data.troubled
                    .iter()
                    .map(|b| {
                        vec![
                            format!("#{}", b.batch),
                            b.country.clone(),
                            b.state.clone(),
                            b.code.map(|c| c.to_string()).unwrap_or_default(),
                            b.message.clone().unwrap_or_default(),
                            b.req_id.clone().unwrap_or_default(),
                        ]
                    })
                    .collect(),
            );
        });
        section(&mut page, "calls", "Call outcomes", |page| {
            match status.calls.as_ref().filter(|c| c.records > 0) {
                None => page.push_str("<p>No call recorded yet (webhook or sync).</p>"),
                Some(calls) => {
                    table(
                        page,
                        &["outcome", "value"],
                        call_figures(calls)
                            .into_iter()
                            .map(|(what, value)| vec![what.to_owned(), value])
                            .collect(),
                    );
                    if !calls.intents.is_empty() {
                        page.push_str("<h3>Intents of answered calls</h3>");
                        bars(page, &calls.intents);
                    }
                }
            }
        });
        if let Some(funnel) = &status.redials {
            section(&mut page, "redials", "Redials", |page| {
                let reached: Vec<(String, u64)> = funnel
                    .reached_on_call
                    .iter()
                    .map(|(call, n)| (format!("reached on call {call}"), *n))
                    .collect();
                if !reached.is_empty() {
                    page.push_str("<h3>Contacts reached, by call</h3>");
                    bars(page, &reached);
                }
                table(page, &["contacts", "value"], funnel_figures(funnel));
            });
        }
        section(
            &mut page,
            "set-aside",
            "Rows set aside, by reason",
            |page| {
                table(
                    page,
                    &["rows", "state", "reason"],
                    self.set_aside
                        .iter()
                        .map(|(state, reason, n)| {
                            vec![n.to_string(), state.as_str().to_owned(), reason.clone()]
                        })
                        .collect(),
                );
            },
        );
        page.push_str("</body></html>\n");
        page
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#1d2430;background:#fff}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:2px solid #d7dde8;padding-bottom:.2em;margin-top:1.6em}\
h3{font-size:1em;color:#4a5568}.lead{color:#4a5568}table{border-collapse:collapse;width:100%}\
td,th{text-align:left;padding:.25em .6em;border-bottom:1px solid #e6e9f0}th{background:#f3f5f9}\
svg text{font:12px system-ui,sans-serif;fill:#1d2430}.none{color:#718096}";

/// Where a campaign's contacts stand with redials, as label and value.
fn funnel_figures(funnel: &crate::redial::Funnel) -> Vec<Vec<String>> {
    let mut rows = vec![
        ("redial orders".to_owned(), funnel.orders.to_string()),
        ("due now".to_owned(), funnel.due_now.to_string()),
        (
            "waiting for a later attempt".to_owned(),
            funnel.waiting.to_string(),
        ),
        (
            "the next due".to_owned(),
            funnel
                .next_due_ms
                .map(rfc3339)
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "accepted without a call yet".to_owned(),
            funnel.awaiting_call.to_string(),
        ),
        ("exhausted".to_owned(), funnel.exhausted.to_string()),
        ("opted out".to_owned(), funnel.opted_out.to_string()),
    ];
    rows.extend(
        funnel
            .ended
            .iter()
            .map(|(outcome, n)| (format!("ended {outcome}"), n.to_string())),
    );
    if let Some(stopped) = funnel.stopped_at_ms {
        rows.push(("stopped by cancel at".to_owned(), rfc3339(stopped)));
    }
    rows.into_iter()
        .map(|(what, value)| vec![what, value])
        .collect()
}

/// The call outcomes, as label and value.
fn call_figures(calls: &CallStats) -> Vec<(&'static str, String)> {
    vec![
        ("call records", calls.records.to_string()),
        ("orders called", calls.orders_called.to_string()),
        ("orders answered", calls.answered.to_string()),
        ("answer rate", calls.answer_rate()),
        ("average talk", calls.average_talk()),
    ]
}

/// A section with its heading.
fn section(page: &mut String, id: &str, title: &str, body: impl FnOnce(&mut String)) {
    let _ = write!(page, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
    body(page);
    page.push_str("</section>");
}

/// Horizontal bars, one per label, scaled to the largest.
fn bars(page: &mut String, rows: &[(String, u64)]) {
    if rows.is_empty() {
        page.push_str("<p class=\"none\">None.</p>");
        return;
    }
    let most = rows.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let height = rows.len() * 26 + 8;
    let _ = write!(
        page,
        "<svg width=\"900\" height=\"{height}\" viewBox=\"0 0 900 {height}\" role=\"img\">"
    );
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = i * 26 + 4;
        let width = (*n as f64 / most * 560.0).max(1.0);
        let _ = write!(
            page,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"250\" y=\"{y}\" width=\"{width:.1}\" height=\"18\" fill=\"#3b82c4\"/>\
             <text x=\"{:.1}\" y=\"{}\">{n}</text>",
            y + 14,
            escape(label),
            256.0 + width,
            y + 14
        );
    }
    page.push_str("</svg>");
}

/// Vertical bars of requests per interval, with the first and last times.
fn timeline(page: &mut String, data: &ReportData) {
    let most = data.timeline.iter().copied().max().unwrap_or(1).max(1) as f64;
    let step = 880.0 / data.timeline.len() as f64;
    page.push_str("<svg width=\"900\" height=\"230\" viewBox=\"0 0 900 230\" role=\"img\">");
    for (i, n) in data.timeline.iter().enumerate() {
        let height = *n as f64 / most * 180.0;
        let _ = write!(
            page,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#2f855a\"><title>{n}</title></rect>",
            10.0 + i as f64 * step,
            190.0 - height,
            (step - 2.0).max(1.0)
        );
    }
    let last = data.first_ms + data.bucket_ms * data.timeline.len() as i64;
    let _ = write!(
        page,
        "<line x1=\"10\" y1=\"190\" x2=\"890\" y2=\"190\" stroke=\"#4a5568\"/>\
         <text x=\"10\" y=\"210\">{}</text><text x=\"890\" y=\"210\" text-anchor=\"end\">{}</text>\
         <text x=\"10\" y=\"226\">most in one interval of {}: {}</text></svg>",
        rfc3339(data.first_ms),
        rfc3339(last),
        interval(data.bucket_ms),
        most as u64
    );
}

/// An interval as people say it: `250 ms`, `4.5 s`, `3m 20s`.
fn interval(ms: i64) -> String {
    match ms {
        ..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => crate::clock::human_duration(std::time::Duration::from_millis(ms as u64)),
    }
}

/// A table, or a note that there is nothing to list.
fn table(page: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        page.push_str("<p class=\"none\">None.</p>");
        return;
    }
    page.push_str("<table><tr>");
    for name in header {
        let _ = write!(page, "<th>{}</th>", escape(name));
    }
    page.push_str("</tr>");
    for row in rows {
        page.push_str("<tr>");
        for cell in row {
            let _ = write!(page, "<td>{}</td>", escape(&cell));
        }
        page.push_str("</tr>");
    }
    page.push_str("</table>");
}

/// Text as HTML shows it, whatever it holds.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_lose_their_values_and_html_its_markup() {
        assert_eq!(
            generalize("\"12-3\" is not a valid phone number"),
            "\"…\" is not a valid phone number"
        );
        assert_eq!(
            generalize("same phone as line 1234"),
            "same phone as line N"
        );
        assert_eq!(escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(interval(2), "2 ms");
        assert_eq!(interval(4_500), "4.5 s");
        assert_eq!(interval(200_000), "3m 20s");
    }
}
