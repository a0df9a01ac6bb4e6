//! What people and scripts read, and the one voice that says it.
//!
//! Commands, the run and its parts never print: they hand their results
//! (tables, order lists, reports) to a writer they are given, and what
//! they have to say on the way (notes, warnings, progress) to an
//! [`Output`], which alone owns stderr. So `-q` and `--log-format json`
//! hold for every line, and a note never tears through the progress bars.
//!
//! - [`tables`]: status tables, order lists, campaigns, as text, CSV, JSON.
//! - [`progress`]: a run's progress: attempts worth a line, a running
//!   count, bars on a terminal.
//! - [`campaign_report`]: the `report` command's page.
//! - [`files`]: the files commands write: never over what a campaign
//!   depends on, owner-only, whole.
//! - [`rejects`]: the rejects file, rows as the contact file had them.

use std::fmt::Display;
use std::io::{self, IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};

use crate::clock::{now_ms, rfc3339};
use crate::meter::Reading;

pub mod campaign_report;
pub mod files;
pub mod progress;
pub mod rejects;
pub mod tables;

/// How much a line matters, which decides whether `-q` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// What happens when all is well: left out under `-q`.
    Note,
    /// Something a person should know of, though nothing failed: shown
    /// under `-q`, without a prefix.
    Notice,
    /// Shown always, as `warning: …`.
    Warning,
    /// Shown always, as `error: …`.
    Error,
}

impl Level {
    fn json(self) -> &'static str {
        match self {
            Level::Note => "INFO",
            Level::Notice | Level::Warning => "WARN",
            Level::Error => "ERROR",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Level::Note | Level::Notice => "",
            Level::Warning => "warning: ",
            Level::Error => "error: ",
        }
    }
}

/// How stderr's lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Voice {
    /// Plain lines at a terminal; off one (cron's mail, a log file) each
    /// starts with its time, so one run's lines can be told from the next.
    Text,
    /// One JSON object per line, in the shape of the `-v` log lines
    /// (`timestamp`, `level`, `fields.message`, `target`).
    Json,
}

/// The one voice of the process: every line on stderr but clap's own and
/// the `-v` log lines goes through it. Cheap to clone; clones speak as
/// one.
#[derive(Clone)]
pub struct Output {
    inner: Arc<Inner>,
}

struct Inner {
    quiet: bool,
    voice: Voice,
    /// Whether stderr is a terminal, where bars are drawn.
    terminal: bool,
    /// The bars on screen, if any: lines go above them.
    bars: Mutex<Option<indicatif::MultiProgress>>,
    /// How far reading the contact file has got, for the bars.
    reading: Arc<Reading>,
    /// Where lines go instead of stderr (tests).
    captured: Option<Mutex<Vec<String>>>,
}

impl Output {
    /// The process's voice on stderr.
    pub fn new(quiet: bool, voice: Voice) -> Output {
        Output::with(quiet, voice, io::stderr().is_terminal(), None)
    }

    /// A voice that keeps its lines, for tests to read with
    /// [`Output::captured`].
    pub fn capturing(quiet: bool, voice: Voice) -> Output {
        Output::with(quiet, voice, false, Some(Mutex::default()))
    }

    fn with(
        quiet: bool,
        voice: Voice,
        terminal: bool,
        captured: Option<Mutex<Vec<String>>>,
    ) -> Output {
        Output {
            inner: Arc::new(Inner {
                quiet,
                voice,
                terminal: terminal && voice == Voice::Text,
                bars: Mutex::new(None),
                reading: Arc::default(),
                captured,
            }),
        }
    }

    /// `-q`: only what is not well is said.
    pub fn is_quiet(&self) -> bool {
        self.inner.quiet
    }

    /// What happens when all is well (left out under `-q`).
    pub fn note(&self, line: impl Display) {
        self.say(Level::Note, &line.to_string());
    }

    /// What a person should know even under `-q`, though nothing failed
    /// (a run that stopped early and why).
    pub fn notice(&self, line: impl Display) {
        self.say(Level::Notice, &line.to_string());
    }

    pub fn warn(&self, line: impl Display) {
        self.say(Level::Warning, &line.to_string());
    }

    pub fn error(&self, line: impl Display) {
        self.say(Level::Error, &line.to_string());
    }

    /// A command's result, as one line on stdout. A reader that went away
    /// (`| head`) is an error, which the command ends on as done.
    pub fn result(&self, line: impl Display) -> io::Result<()> {
        writeln!(io::stdout().lock(), "{line}")
    }

    /// Stdout, for results written in parts (tables, order lists, pages).
    pub fn stdout(&self) -> io::StdoutLock<'static> {
        io::stdout().lock()
    }

    /// How far reading the contact file has got: ingest advances it, the
    /// bars show it.
    pub fn reading(&self) -> Arc<Reading> {
        Arc::clone(&self.inner.reading)
    }

    /// The lines said so far, when capturing.
    pub fn captured(&self) -> Vec<String> {
        self.inner
            .captured
            .as_ref()
            .map(|lines| lines.lock().expect("not poisoned").clone())
            .unwrap_or_default()
    }

    /// Bars go on screen only at a terminal, for text, without `-q`.
    fn draws_bars(&self) -> bool {
        self.inner.terminal && !self.inner.quiet
    }

    /// Lines go above `bars` while they are on screen.
    fn show_bars(&self, bars: Option<indicatif::MultiProgress>) {
        if let Ok(mut shown) = self.inner.bars.lock() {
            *shown = bars;
        }
    }

    fn say(&self, level: Level, line: &str) {
        if level == Level::Note && self.inner.quiet {
            return;
        }
        let text = match self.inner.voice {
            Voice::Json => serde_json::json!({
                "timestamp": rfc3339(now_ms()),
                "level": level.json(),
                "fields": { "message": line },
                "target": "nxcampaign",
            })
            .to_string(),
            Voice::Text if self.inner.terminal => format!("{}{line}", level.prefix()),
            Voice::Text => format!("{} {}{line}", rfc3339(now_ms()), level.prefix()),
        };
        if let Some(lines) = &self.inner.captured {
            lines.lock().expect("not poisoned").push(text);
            return;
        }
        let bars = self.inner.bars.lock().ok().and_then(|bars| bars.clone());
        match bars {
            // Above the bars, which are drawn again below it.
            Some(bars) => drop(bars.println(&text)),
            None => {
                // A reader that went away (`| head`) loses the line, not
                // the run.
                let _ = writeln!(io::stderr().lock(), "{text}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_leaves_out_only_what_is_well() {
        let output = Output::capturing(true, Voice::Text);
        output.note("ledger: x.db");
        output.notice("time is up");
        output.warn("took over");
        output.error("stopped");
        let lines = output.captured();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].ends_with("Z time is up"), "{lines:?}");
        assert!(lines[1].ends_with("Z warning: took over"), "{lines:?}");
        assert!(lines[2].ends_with("Z error: stopped"), "{lines:?}");
    }

    #[test]
    fn every_json_line_is_an_object_with_a_fixed_width_time() {
        let output = Output::capturing(false, Voice::Json);
        output.note("a \"quoted\"\nline");
        output.error("it failed");
        for line in output.captured() {
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            let time = value["timestamp"].as_str().expect("a time");
            assert_eq!(time.len(), "2026-12-02T04:19:04.810Z".len(), "{time}");
            assert!(value["fields"]["message"].is_string());
        }
        let first: serde_json::Value = serde_json::from_str(&output.captured()[0]).expect("JSON");
        assert_eq!(first["fields"]["message"], "a \"quoted\"\nline");
        assert_eq!(first["level"], "INFO");
    }
}
