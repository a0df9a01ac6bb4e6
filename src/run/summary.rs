//! What a run leaves for schedulers: a JSON summary (`run --summary-json`)
//! and Prometheus text-format metrics (`run --metrics-file`, for
//! node_exporter's textfile collector), each written beside its place and
//! renamed over it, so a reader never sees half a file.

use std::path::Path;

use serde_json::json;

use crate::clock::rfc3339;
use crate::dispatch::Ending;
use crate::error::Exit;
use crate::output::progress::RunTally;
use crate::run::CampaignRun;

/// One run as its summary tells it.
pub struct RunSummary<'a> {
    pub campaign: &'a str,
    pub job_file: &'a Path,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub exit: Exit,
    /// Why it stopped, when it did not get to its end.
    pub error: Option<String>,
    pub run: Option<&'a CampaignRun>,
    pub tally: &'a RunTally,
}

/// A word for how the run ended.
fn ending_word(ending: &Ending) -> &'static str {
    match ending {
        Ending::Finished => "finished",
        Ending::Interrupted => "interrupted",
        Ending::TimeUp { .. } => "time_up",
        Ending::VendorFailing { .. } => "vendor_failing",
        Ending::Stopped(_) => "stopped",
        Ending::OutsideWindows { .. } => "outside_windows",
        Ending::LimitReached { .. } => "limit_reached",
    }
}

impl RunSummary<'_> {
    fn elapsed_seconds(&self) -> f64 {
        (self.finished_at_ms - self.started_at_ms).max(0) as f64 / 1000.0
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        let states = |pairs: Vec<(String, u64)>| -> serde_json::Map<String, serde_json::Value> {
            pairs.into_iter().map(|(k, v)| (k, json!(v))).collect()
        };
        let run = self.run;
        json!({
            "campaign": self.campaign,
            "job_file": self.job_file.display().to_string(),
            "started_at": rfc3339(self.started_at_ms),
            "finished_at": rfc3339(self.finished_at_ms),
            "elapsed_seconds": self.elapsed_seconds(),
            "exit_code": self.exit.code(),
            "ending": run.map(|r| ending_word(&r.ending)).unwrap_or("error"),
            // Both at once when a run stopped early with news: exit 1 says
            // the first, `campaign_done` the second.
            "needs_attention": run.is_some_and(CampaignRun::has_news),
            "campaign_done": run.is_some_and(CampaignRun::is_done),
            "error": self.error,
            "read": run.map(|r| json!({
                "rows": r.ingest.rows,
                "orders": r.ingest.orders,
                "invalid": r.ingest.invalid,
                "duplicates": r.ingest.duplicates,
                "suppressed": r.ingest.suppressed,
            })),
            "attempts": self.tally.attempts,
            "attempts_by_outcome": self.tally.outcomes,
            "retries_by_reason": self.tally.retries,
            "orders": run.map(|r| states(r.status.orders.iter().map(|(s, n)| (s.as_str().to_owned(), *n)).collect())),
            "batches": run.map(|r| states(r.status.batches.iter().map(|(s, n)| (s.as_str().to_owned(), *n)).collect())),
        })
    }

    /// The metrics in Prometheus' text format. `previous` is the file this
    /// replaces: the time of the last successful run is carried over from
    /// it when this run was not one (exit 0 or 1).
    pub fn prometheus(&self, previous: Option<&str>) -> String {
        let label = format!("campaign=\"{}\"", escape(self.campaign));
        let succeeded = matches!(self.exit, Exit::Done | Exit::Attention);
        let last_success = if succeeded {
            Some(self.finished_at_ms as f64 / 1000.0)
        } else {
            previous.and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("nxcampaign_last_success_timestamp_seconds{"))
                    .and_then(|line| line.rsplit(' ').next())
                    .and_then(|value| value.parse().ok())
            })
        };
        let mut out = String::new();
        let mut metric = |name: &str, help: &str, samples: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{{{labels}}} {value}\n"));
            }
        };
        metric(
            "nxcampaign_last_run_timestamp_seconds",
            "When the campaign's last run ended.",
            vec![(label.clone(), self.finished_at_ms as f64 / 1000.0)],
        );
        if let Some(at) = last_success {
            metric(
                "nxcampaign_last_success_timestamp_seconds",
                "When a run of the campaign last ended with exit 0 or 1.",
                vec![(label.clone(), at)],
            );
        }
        metric(
            "nxcampaign_last_run_exit_code",
            "The exit code of the campaign's last run.",
            vec![(label.clone(), f64::from(self.exit.code()))],
        );
        metric(
            "nxcampaign_last_run_duration_seconds",
            "How long the campaign's last run took.",
            vec![(label.clone(), self.elapsed_seconds())],
        );
        metric(
            "nxcampaign_last_run_attempts",
            "Requests the campaign's last run sent.",
            vec![(label.clone(), self.tally.attempts as f64)],
        );
        metric(
            "nxcampaign_last_run_retries",
            "Requests of the last run to be tried again, by reason.",
            self.tally
                .retries
                .iter()
                .map(|(reason, n)| (format!("{label},reason=\"{}\"", escape(reason)), *n as f64))
                .collect(),
        );
        if let Some(run) = self.run {
            metric(
                "nxcampaign_orders",
                "The campaign's orders by state.",
                run.status
                    .orders
                    .iter()
                    .map(|(s, n)| (format!("{label},state=\"{}\"", s.as_str()), *n as f64))
                    .collect(),
            );
            metric(
                "nxcampaign_batches",
                "The campaign's batches by state.",
                run.status
                    .batches
                    .iter()
                    .map(|(s, n)| (format!("{label},state=\"{}\"", s.as_str()), *n as f64))
                    .collect(),
            );
        }
        out
    }
}

/// A label value with `\`, `"` and line breaks escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
