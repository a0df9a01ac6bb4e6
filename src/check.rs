//! `check`: a dry run. The job's whole contact file goes through the same
//! reader, validation and planner as `run`, into a scratch ledger; the
//! orders the real ledger already holds are set aside as a run would set
//! them aside; and what a run would send is printed. Nothing is written to
//! the real ledger and nothing is sent.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{human_duration, now_ms, rfc3339};
use crate::error::{Error, Exit};
use crate::ingest::{self, IngestReport};
use crate::job::Job;
use crate::ledger::{CampaignStatus, Ledger, LedgerError, Preview, Scratch};
use crate::nxlink;
use crate::output::rejects::write_rejects;
use crate::output::tables::terminal_safe;
use crate::output::Output;
use crate::redial::Funnel;
use crate::run::hold_to_read;
use crate::schedule::WindowState;
use crate::settings::Settings;
use crate::state::OrderState;
use crate::suppress::load_job_lists;

/// Contacts of the example request shown in full; the rest are counted.
const EXAMPLE_CONTACTS: usize = 3;

/// What a run of the job would do now.
#[derive(Debug)]
pub struct CheckReport {
    pub ingest: IngestReport,
    pub status: CampaignStatus,
    /// Valid rows whose phone or order id the real ledger's campaign holds.
    pub already_known: u64,
    /// Orders whose id (from the file) another campaign of the ledger holds.
    pub used_elsewhere: u64,
    pub preview: Preview,
    /// Rows written to the rejects file, when one was asked for.
    pub rejects: Option<u64>,
    /// Where the campaign's contacts stand by the job's `[redial]`, when
    /// it has one and the ledger holds the campaign.
    pub redials: Option<Funnel>,
    /// Why the job could not run; empty when it could.
    pub problems: Vec<String>,
}

/// Checks `job` against `real` (its ledger, if it exists yet), writing the
/// rejected rows to `rejects` when asked.
pub async fn check(
    settings: &Settings,
    real: Option<&Ledger>,
    job: &Job,
    rejects: Option<&Path>,
    output: &Output,
) -> Result<CheckReport, Error> {
    let mut problems = Vec::new();
    if let Err(e) = settings.credentials(&job.api) {
        problems.push(e.to_string());
    }
    let known_campaign = match real {
        Some(real) => match real.campaign(job.name.as_str()).await {
            Ok(id) => Some((real, id)),
            Err(LedgerError::UnknownCampaign { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let scratch = Scratch::create(real.map(Ledger::order_id_salt)).await?;
    // The job's own lists apply in the scratch as in the real ledger.
    let in_scratch = scratch
        .ledger()
        .ensure_campaign(&job.name, now_ms())
        .await?;
    load_job_lists(scratch.ledger(), in_scratch, job).await?;
    let (campaign, held) = hold_to_read(scratch.ledger(), job, output).await?;
    let mut progress = crate::output::progress::Progress::new(output);
    let ingested = ingest::ingest(
        scratch.ledger(),
        job,
        held.fence(),
        now_ms(),
        ingest::Hooks {
            stop: Arc::new(AtomicBool::new(false)),
            feed: None,
            meter: output.reading(),
            redials: false,
        },
    )
    .await;
    progress.finish();
    held.release().await?;
    let ingest = ingested?;
    let redials = match (&job.redial, known_campaign) {
        (Some(policy), Some((real, id))) => real.funnel(id, now_ms(), Some(policy)).await?,
        _ => None,
    };
    let already_known = match known_campaign {
        Some((real, id)) => scratch.set_aside_known(campaign, real, id).await?,
        None => 0,
    };
    let mut used_elsewhere = 0;
    if let Some(real) = real {
        let id = known_campaign.map(|(_, id)| id);
        if job.columns.order_id.is_some() {
            used_elsewhere = scratch.set_aside_used_elsewhere(campaign, real, id).await?;
        }
        scratch
            .set_aside_listed(campaign, real, id, now_ms())
            .await?;
    }
    let status = scratch.ledger().status(campaign, job.name.as_str()).await?;
    let preview = scratch.preview(campaign).await?;
    if let Some(schedule) = &job.schedule {
        for (key, _, _) in &preview.countries {
            if schedule.next_open(key, now_ms()).is_none() {
                problems.push(format!(
                    "no calling window of the job's [schedule] opens within a year for {}",
                    crate::schedule::describe_key(key)
                ));
            }
        }
    }
    let rejects = match rejects {
        Some(path) => {
            let ledger = scratch.ledger().clone();
            Some(tokio::task::block_in_place(|| {
                write_rejects(&ledger, campaign, job, None, 0, path)
            })?)
        }
        None => None,
    };
    scratch.close().await;
    Ok(CheckReport {
        ingest,
        status,
        already_known,
        used_elsewhere,
        preview,
        rejects,
        redials,
        problems,
    })
}

impl CheckReport {
    /// Orders a run would send.
    pub fn new_orders(&self) -> u64 {
        self.preview
            .countries
            .iter()
            .map(|(_, orders, _)| orders)
            .sum()
    }

    fn batches(&self) -> u64 {
        self.preview
            .countries
            .iter()
            .map(|(_, _, batches)| batches)
            .sum()
    }

    /// 0 when the job could run, 2 when it could not.
    pub fn exit(&self) -> Exit {
        if self.problems.is_empty() {
            Exit::Done
        } else {
            Exit::BadInput
        }
    }

    /// The report as people read it.
    pub fn write(&self, job: &Job, job_file: &Path, out: &mut dyn Write) -> io::Result<()> {
        let status = &self.status;
        let invalid = status.orders_in(OrderState::Invalid);
        let duplicates = status.orders_in(OrderState::Duplicate);
        writeln!(
            out,
            "{}: {} row(s) read (the whole file; nothing written, nothing sent)",
            job.contacts.display(),
            status.rows_read
        )?;
        writeln!(
            out,
            "  valid                  {:>10}",
            status.rows_read - invalid
        )?;
        writeln!(out, "  invalid                {invalid:>10}")?;
        for (reason, n) in self.preview.top_invalid_reasons(5) {
            writeln!(out, "      {n:>8}  {}", terminal_safe(&reason))?;
        }
        writeln!(
            out,
            "  duplicates in the file {:>10}",
            duplicates - self.already_known - self.used_elsewhere
        )?;
        writeln!(out, "  already in the ledger  {:>10}", self.already_known)?;
        if self.used_elsewhere > 0 {
            writeln!(
                out,
                "  order id of another campaign {:>4} (order ids are the vendor's, one call each in the whole ledger)",
                self.used_elsewhere
            )?;
        }
        writeln!(
            out,
            "  on do-not-call lists   {:>10}",
            status.orders_in(OrderState::Suppressed)
        )?;
        writeln!(out, "  new orders             {:>10}", self.new_orders())?;
        if let Some(waiting) = &self.ingest.waiting {
            writeln!(out, "  left for a later run: {}", terminal_safe(waiting))?;
        }
        if job.redial.is_some() {
            self.write_redials(out)?;
        }
        writeln!(out, "batches (at most {} contacts each):", job.batch_size)?;
        for (key, orders, batches) in &self.preview.countries {
            writeln!(
                out,
                "  {}  {orders:>10} order(s) in {batches} batch(es)",
                crate::schedule::describe_key(key)
            )?;
        }
        let rate = job.limits.requests_per_second;
        writeln!(
            out,
            "sending: {} request(s) at {rate} a second take at least {}",
            self.batches(),
            human_duration(Duration::from_secs_f64(self.batches() as f64 / rate))
        )?;
        if let Some(schedule) = &job.schedule {
            let now = now_ms();
            let batches: Vec<(String, u64)> = self
                .preview
                .countries
                .iter()
                .map(|(country, _, batches)| (country.clone(), *batches))
                .collect();
            match schedule.last_send(&batches, rate, now) {
                Some(last) => writeln!(
                    out,
                    "  within the calling windows, the last request would go at about {} (in {})",
                    rfc3339(last),
                    human_duration(Duration::from_millis((last - now).max(0) as u64))
                )?,
                None => writeln!(
                    out,
                    "  within the calling windows, not every request could go: a window never opens again"
                )?,
            }
            for (key, _, _) in &self.preview.countries {
                let country = crate::schedule::describe_key(key);
                match schedule.state(key, now) {
                    WindowState::OpenUntil(until) => writeln!(
                        out,
                        "  {country}: inside a calling window now; batches are claimed until {} ({} before it closes)",
                        rfc3339(until),
                        human_duration(Duration::from_millis(schedule.stop_before_close_ms as u64))
                    )?,
                    WindowState::OpensAt(opens) => writeln!(
                        out,
                        "  {country}: outside the calling windows now; the next opens at {} (in {})",
                        rfc3339(opens),
                        human_duration(Duration::from_millis((opens - now).max(0) as u64))
                    )?,
                    WindowState::Never => writeln!(
                        out,
                        "  {country}: no calling window opens within a year"
                    )?,
                }
            }
        }
        if let Some((seq, country, orders)) = &self.preview.first_batch {
            writeln!(out, "first request, as it would be sent:")?;
            write_example(out, job, *seq, country, orders)?;
        }
        if let Some(rows) = self.rejects {
            writeln!(out, "rejects file: {rows} row(s)")?;
        }
        if self.problems.is_empty() {
            let redials = match self.redials.as_ref() {
                Some(funnel) if funnel.due_now > 0 && funnel.stopped_at_ms.is_none() => {
                    format!(", and plan and send {} redial(s)", funnel.due_now)
                }
                _ => String::new(),
            };
            writeln!(
                out,
                "the job can run: `nxcampaign run {}` would send {} order(s) in {} request(s){redials}",
                job_file.display(),
                self.new_orders(),
                self.batches()
            )?;
        } else {
            writeln!(out, "the job cannot run:")?;
            for problem in &self.problems {
                writeln!(out, "  - {problem}")?;
            }
        }
        Ok(())
    }
}

impl CheckReport {
    /// What the job's `[redial]` would plan now, and when the next are due.
    fn write_redials(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(funnel) = &self.redials else {
            return writeln!(
                out,
                "redials: none yet (they follow the calls of the orders this campaign sends)"
            );
        };
        if let Some(stopped) = funnel.stopped_at_ms {
            return writeln!(
                out,
                "redials: stopped by cancel at {}; none is planned",
                rfc3339(stopped)
            );
        }
        let mut line = format!(
            "redials: {} due now (a run plans and sends them), {} later",
            funnel.due_now, funnel.waiting
        );
        if let Some(next) = funnel.next_due_ms {
            let now = now_ms();
            line.push_str(&format!(
                " (the next at {}, in {})",
                rfc3339(next),
                human_duration(Duration::from_millis((next - now).max(0) as u64))
            ));
        }
        if funnel.awaiting_call > 0 {
            line.push_str(&format!(
                "; {} accepted without a call in the ledger yet (sync or the webhook brings them)",
                funnel.awaiting_call
            ));
        }
        writeln!(out, "{line}")
    }
}

/// One request as it would leave: URL, headers (the access key and the
/// signature masked) and the body, its contact list cut to a few.
fn write_example(
    out: &mut dyn Write,
    job: &Job,
    seq: crate::batch::BatchSeq,
    country: &str,
    orders: &[crate::batch::BatchOrder],
) -> io::Result<()> {
    let shown = &orders[..orders.len().min(EXAMPLE_CONTACTS)];
    let request =
        nxlink::preview_request(&job.api.base_url, &job.task, country, seq, shown, now_ms());
    writeln!(out, "  POST {}", request.url)?;
    for (name, value) in &request.headers {
        writeln!(out, "  {name}: {value}")?;
    }
    let pretty = serde_json::to_string_pretty(&request.body).map_err(io::Error::other)?;
    for line in pretty.lines() {
        writeln!(out, "  {}", terminal_safe(line))?;
    }
    if orders.len() > shown.len() {
        writeln!(
            out,
            "  (callList cut to its first {} of {} contacts)",
            shown.len(),
            orders.len()
        )?;
    }
    Ok(())
}
