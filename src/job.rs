//! The job file: its exact TOML shape (`JobFile`) and the validated,
//! ready-to-use settings made from it (`Job`).
//!
//! Loading reads the file and, for `NXLINK_BASE_URL`, one environment
//! variable passed in by the caller; it never reads the access secret.

use std::num::{NonZeroU16, NonZeroU32};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::Weekday;

use serde::Deserialize;

use crate::nxlink::{self, TaskSettings};
use crate::phone::Country;
use crate::redial;
use crate::schedule::{self, Schedule};

/// A validated job: everything a run needs apart from the credentials.
#[derive(Debug, Clone)]
pub struct Job {
    /// The campaign id in the ledger.
    pub name: CampaignName,
    /// The contact file, resolved against the job file's folder.
    pub contacts: PathBuf,
    /// The job's own do-not-call lists (`[suppression] files`), resolved
    /// against the job file's folder: numbers in them are never called in
    /// this campaign.
    pub suppression_files: Vec<PathBuf>,
    /// The column of the list files that holds the numbers (by its
    /// header), when their header does not say it plainly.
    pub suppression_column: Option<String>,
    /// When calls may be made (`[schedule]`); `None`: at any time.
    pub schedule: Option<Schedule>,
    /// The ledger the job file names (`ledger`: a file, resolved against
    /// its folder, or a `postgres://` URL), else `nxcampaign.db` beside it.
    pub ledger: LedgerLocation,
    pub api: ApiSettings,
    /// The country of rows without a country column (`task.country`).
    pub default_country: Country,
    pub task: TaskSettings,
    pub columns: Columns,
    /// Contacts per `createandcall` request.
    pub batch_size: NonZeroU16,
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub breaker: BreakerSettings,
    /// A run's hold on its campaign counts as abandoned after this long
    /// without a heartbeat.
    pub lease_stale_after: Duration,
    /// When a contact that did not answer is called again (`[redial]`);
    /// `None`: never.
    pub redial: Option<redial::Policy>,
}

/// A campaign name: letters, digits, `-` and `_`, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CampaignName(String);

impl CampaignName {
    pub fn parse(raw: &str) -> Result<CampaignName, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(CampaignName(raw.to_owned()))
        } else {
            Err(format!(
                "campaign name {raw:?} must be 1 to 64 letters, digits, '-' or '_'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CampaignName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where and how to reach NXLink.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Gateway base URL without a trailing slash.
    pub base_url: String,
    /// Name of the environment variable holding the access key.
    pub access_key_env: String,
    /// Name of the environment variable holding the access secret.
    pub access_secret_env: String,
    /// A file holding the credentials as `NAME=value` lines, for when
    /// they are not in the environment (`api.credentials_file`; the
    /// environment's `NXLINK_CREDENTIALS_FILE` wins).
    pub credentials_file: Option<PathBuf>,
    /// Whole-request timeout of one attempt.
    pub timeout: Duration,
    /// How far from the vendor's clock a request's `ts` may be and still be
    /// accepted (the vendor documents 60 s): a request held up longer than
    /// this is refused, which is what fences a run that lost its lease.
    pub clock_window: Duration,
    /// The team id shown in the console (`api.tenant_id`): the call
    /// records of one order (`cdr/queryByOrderId`) need it.
    pub tenant_id: Option<u64>,
}

/// Which CSV columns hold what.
#[derive(Debug, Clone)]
pub struct Columns {
    pub phone: String,
    /// Per-row ISO country; `None` means every row uses the task country.
    pub country: Option<String>,
    /// Per-row `orderID`; `None` means it is derived from the phone.
    pub order_id: Option<String>,
    /// Per-row IANA time zone, winning over the number's own.
    pub timezone: Option<String>,
    /// Columns packed into `other` as compact JSON, in this order.
    pub other: Vec<String>,
    /// The field separator; `None`: found from the header line.
    pub delimiter: Option<u8>,
    /// The file's text encoding (`columns.encoding`, UTF-8 by default):
    /// fields are decoded from it one by one.
    pub encoding: &'static encoding_rs::Encoding,
}

/// How fast requests may go.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests per second; may be fractional, always above zero. On a
    /// PostgreSQL ledger it holds across every runner sharing `scope`.
    pub requests_per_second: f64,
    /// Requests waiting for a reply at once, per runner.
    pub max_in_flight: NonZeroU32,
    /// Who shares `requests_per_second` on a shared ledger.
    pub scope: RateScope,
    /// A run that would send more orders than this refuses (exit 2)
    /// unless told `--yes`.
    pub confirm_above: Option<u64>,
}

/// Who shares a rate limit (`limits.scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateScope {
    /// Every campaign sending with the same access key.
    #[default]
    Account,
    /// This campaign's runners only.
    Campaign,
}

/// Where a ledger is: a SQLite file, or a PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerLocation {
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl LedgerLocation {
    /// A `postgres://` or `postgresql://` URL names a server; anything
    /// else is a file, relative to `folder`.
    pub fn parse(raw: &str, folder: &Path) -> LedgerLocation {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            LedgerLocation::Postgres(raw.to_owned())
        } else {
            LedgerLocation::File(folder.join(raw))
        }
    }
}

/// How often and how patiently a batch is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// HTTP tries of one batch in all, the first included.
    pub max_attempts: NonZeroU32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// When a run pauses because the vendor keeps failing.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// How many of the latest attempts are looked at.
    pub window: NonZeroU32,
    /// Pause when more than this share of them failed with retryable errors.
    pub failure_share: f64,
}

/// Why a job file was refused. Each names the file and, where there is one,
/// the key.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{path}: cannot read the job file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Job {
    /// Reads and validates a job file. `base_url_override` is the value of
    /// `NXLINK_BASE_URL`, which wins over the file's `region` and `base_url`.
    ///
    /// The paths of the job (its own, the contact file's, the ledger's)
    /// are made absolute, so that every message names the file for sure;
    /// symbolic links are left as they are.
    pub fn load(path: &Path, base_url_override: Option<&str>) -> Result<Job, JobError> {
        let absolute = std::path::absolute(path);
        let path = absolute.as_deref().unwrap_or(path);
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_owned(),
            source,
        })?;
        Job::parse(&text, path, base_url_override)
    }

    /// Validates the text of a job file that lives at `path`.
    pub fn parse(
        text: &str,
        path: &Path,
        base_url_override: Option<&str>,
    ) -> Result<Job, JobError> {
        let file: JobFile = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let key = e.path().to_string();
                let message = toml_message(e.inner());
                JobError::Toml {
                    path: path.to_owned(),
                    message: if key == "." || message.contains(&format!("`{key}`")) {
                        message
                    } else {
                        format!("key `{key}`: {message}")
                    },
                }
            })?;
        let invalid = |key: &'static str, message: String| JobError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };

        let name = CampaignName::parse(&file.name).map_err(|m| invalid("name", m))?;
        if file.contacts.trim().is_empty() {
            return Err(invalid("contacts", "must name a contact file".into()));
        }
        let folder = path.parent().unwrap_or(Path::new("."));
        let contacts = folder.join(&file.contacts);
        let ledger = match &file.ledger {
            Some(ledger) if ledger.trim().is_empty() => {
                return Err(invalid("ledger", "must name a file".into()))
            }
            Some(ledger) => LedgerLocation::parse(ledger.trim(), folder),
            None => LedgerLocation::File(folder.join(DEFAULT_LEDGER)),
        };

        let api = file.api;
        let base_url = match (base_url_override, &api.base_url, &api.region) {
            (Some(url), _, _) if !url.trim().is_empty() => url.trim().to_owned(),
            (_, Some(url), _) => url.trim().to_owned(),
            (_, None, Some(region)) => nxlink::region_base_url(region)
                .ok_or_else(|| {
                    invalid(
                        "api.region",
                        format!("unknown region {region:?} (want hk, amer or idn)"),
                    )
                })?
                .to_owned(),
            (_, None, None) => {
                return Err(invalid(
                    "api.region",
                    "missing: set api.region (hk, amer, idn) or api.base_url".into(),
                ))
            }
        };
        check_base_url(&base_url, api.allow_http).map_err(|m| invalid("api.base_url", m))?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(1000..=600_000).contains(&api.clock_window_ms) {
            return Err(invalid(
                "api.clock_window_ms",
                format!("{} must be between 1000 and 600000", api.clock_window_ms),
            ));
        }
        if api.timeout_ms == 0 {
            return Err(invalid("api.timeout_ms", "must be above 0".into()));
        }
        for (key, var) in [
            ("api.access_key_env", &api.access_key_env),
            ("api.access_secret_env", &api.access_secret_env),
        ] {
            if var.is_empty() || var.contains('=') {
                return Err(invalid(
                    key,
                    format!("{var:?} is not an environment variable name"),
                ));
            }
        }

        let task = file.task;
        let country =
            Country::parse(&task.country).map_err(|e| invalid("task.country", e.to_string()))?;
        for (key, value) in [
            ("task.task_name", &task.task_name),
            ("task.strategy_name", &task.strategy_name),
            ("task.agent_group_no", &task.agent_group_no),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if task.dispatch_type > 2 {
            return Err(invalid("task.dispatch_type", "must be 0, 1 or 2".into()));
        }
        match task.startup_type {
            0 | 1 | 3 => {}
            2 => {
                return Err(invalid(
                    "task.startup_type",
                    "2 (scheduled start) is not supported: NXLink documents no field for the start time; use 3 (start immediately), 1 (manual) or 0".into(),
                ))
            }
            _ => return Err(invalid("task.startup_type", "must be 0, 1 or 3".into())),
        }
        // The vendor takes two decimals and one: check what will be sent.
        let predict_call_rate = (task.predict_call_rate * 100.0).round() / 100.0;
        let ratio_call_rate = (task.ratio_call_rate * 10.0).round() / 10.0;
        for (key, value, sent) in [
            (
                "task.predict_call_rate",
                task.predict_call_rate,
                predict_call_rate,
            ),
            (
                "task.ratio_call_rate",
                task.ratio_call_rate,
                ratio_call_rate,
            ),
        ] {
            if !(sent.is_finite() && sent > 0.0 && sent <= 1000.0) {
                return Err(invalid(
                    key,
                    format!("{value} is sent as {sent}: it must be above 0 (after rounding) and at most 1000"),
                ));
            }
        }

        let columns = file.columns;
        if columns.phone.trim().is_empty() {
            return Err(invalid("columns.phone", "must name a column".into()));
        }

        let batch_size = u16::try_from(file.batching.size)
            .ok()
            .filter(|size| (1..=1000).contains(size))
            .and_then(NonZeroU16::new)
            .ok_or_else(|| {
                invalid(
                    "batching.size",
                    format!("{} must be between 1 and 1000", file.batching.size),
                )
            })?;

        let limits = file.limits;
        if !(0.001..=10_000.0).contains(&limits.requests_per_second) {
            return Err(invalid(
                "limits.requests_per_second",
                format!(
                    "{} must be a number above 0, from 0.001 (one request every 1000 s) to 10000",
                    limits.requests_per_second
                ),
            ));
        }
        let max_in_flight = NonZeroU32::new(limits.max_in_flight)
            .ok_or_else(|| invalid("limits.max_in_flight", "must be at least 1".into()))?;

        let retry = file.retry;
        let max_attempts = NonZeroU32::new(retry.max_attempts)
            .ok_or_else(|| invalid("retry.max_attempts", "must be at least 1".into()))?;
        let breaker_window = NonZeroU32::new(retry.breaker_window)
            .ok_or_else(|| invalid("retry.breaker_window", "must be at least 1".into()))?;
        if !(0.0..=1.0).contains(&retry.breaker_failure_share) {
            return Err(invalid(
                "retry.breaker_failure_share",
                format!("{} must be between 0 and 1", retry.breaker_failure_share),
            ));
        }
        if file.lease.stale_after_ms < 1000 {
            return Err(invalid(
                "lease.stale_after_ms",
                "must be at least 1000".into(),
            ));
        }
        if retry.max_delay_ms < retry.base_delay_ms {
            return Err(invalid(
                "retry.max_delay_ms",
                format!(
                    "{} must not be below retry.base_delay_ms ({})",
                    retry.max_delay_ms, retry.base_delay_ms
                ),
            ));
        }

        let delimiter = match columns.delimiter.as_deref() {
            None => None,
            Some("\t" | "tab") => Some(b'\t'),
            Some(one) if one.len() == 1 && one != "\"" && one != "\n" => Some(one.as_bytes()[0]),
            Some(other) => {
                return Err(invalid(
                    "columns.delimiter",
                    format!("{other:?} is not one character (use \",\", \";\", \"|\" or \"tab\")"),
                ))
            }
        };
        let encoding = match columns.encoding.as_deref() {
            None => encoding_rs::UTF_8,
            Some(label) => match encoding_rs::Encoding::for_label(label.trim().as_bytes()) {
                // Fields are found by their ASCII separators, quotes and
                // line ends, which only an ASCII-compatible encoding keeps.
                Some(encoding) if encoding.is_ascii_compatible() => encoding,
                Some(encoding) => {
                    return Err(invalid(
                        "columns.encoding",
                        format!(
                            "{} is not read (its bytes are not ASCII where commas and line breaks are): save the file as UTF-8",
                            encoding.name()
                        ),
                    ))
                }
                None => {
                    return Err(invalid(
                        "columns.encoding",
                        format!(
                            "{label:?} is not an encoding this knows (e.g. \"utf-8\", \"windows-1252\", \"iso-8859-15\", \"shift_jis\", \"gbk\")"
                        ),
                    ))
                }
            },
        };
        let schedule = file
            .schedule
            .map(|s| read_schedule(s).map_err(|(key, message)| invalid(key, message)))
            .transpose()?;
        let redial = file
            .redial
            .map(|r| {
                read_redial(r, schedule.as_ref()).map_err(|(key, message)| invalid(key, message))
            })
            .transpose()?;
        let suppression_files = file
            .suppression
            .files
            .iter()
            .map(|list| folder.join(list))
            .collect();
        Ok(Job {
            name,
            contacts,
            ledger,
            suppression_files,
            suppression_column: file.suppression.column.filter(|c| !c.trim().is_empty()),
            schedule,
            api: ApiSettings {
                base_url,
                access_key_env: api.access_key_env,
                access_secret_env: api.access_secret_env,
                credentials_file: api.credentials_file.map(|file| folder.join(file)),
                timeout: Duration::from_millis(api.timeout_ms),
                clock_window: Duration::from_millis(api.clock_window_ms),
                tenant_id: api.tenant_id,
            },
            default_country: country,
            task: TaskSettings {
                task_name: task.task_name,
                task_desc: task.task_desc,
                strategy_name: task.strategy_name,
                dispatch_type: task.dispatch_type,
                agent_group_no: task.agent_group_no,
                predict_call_rate,
                ratio_call_rate,
                start_count: task.start_count,
                startup_type: task.startup_type,
            },
            columns: Columns {
                phone: columns.phone,
                country: columns.country,
                order_id: columns.order_id,
                timezone: columns.timezone,
                other: columns.other,
                delimiter,
                encoding,
            },
            batch_size,
            limits: Limits {
                requests_per_second: limits.requests_per_second,
                max_in_flight,
                scope: limits.scope,
                confirm_above: limits.confirm_above,
            },
            retry: RetryPolicy {
                max_attempts,
                base_delay: Duration::from_millis(retry.base_delay_ms),
                max_delay: Duration::from_millis(retry.max_delay_ms),
            },
            breaker: BreakerSettings {
                window: breaker_window,
                failure_share: retry.breaker_failure_share,
            },
            lease_stale_after: Duration::from_millis(file.lease.stale_after_ms),
            redial,
        })
    }
}

/// The ledger's file name beside the job file when the job names none.
pub const DEFAULT_LEDGER: &str = "nxcampaign.db";

/// A gateway URL must be `https://` with a host; `http://` only to this
/// machine (a sandbox, a local proxy) unless `allow_http` says otherwise.
fn check_base_url(raw: &str, allow_http: bool) -> Result<(), String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    let host = url.host().ok_or_else(|| format!("{raw:?} has no host"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{raw:?} must be a plain gateway URL, without user, query or fragment"
        ));
    }
    let loopback = match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback || allow_http => Ok(()),
        "http" => Err(format!(
            "{raw:?} is plain HTTP to another machine: the signed requests and the \
             contacts' numbers would cross the network unencrypted; use https://, or set \
             api.allow_http = true if that is really meant"
        )),
        scheme => Err(format!(
            "{raw:?} must start with https:// (or http:// to this machine), not {scheme}://"
        )),
    }
}

/// toml's messages carry a multi-line source excerpt; keep its first line and
/// the offending key, which is what a person needs.
fn toml_message(error: &toml::de::Error) -> String {
    let message = in_words(error.message().trim());
    match error.span() {
        Some(_) => {
            let location = error.to_string();
            let first = location
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            if first.is_empty() || first == message {
                message
            } else {
                format!("{first}: {message}")
            }
        }
        None => message,
    }
}

/// A TOML or serde message as a person reads it: the key nearest to an
/// unknown one suggested, and types named in words.
fn in_words(message: &str) -> String {
    let mut message = message.to_owned();
    if let Some((unknown, tail)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        let nearest = tail
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|known| (edit_distance(unknown, known), known))
            .min();
        if let Some((distance, known)) = nearest.filter(|(d, _)| *d <= 2.max(unknown.len() / 3)) {
            debug_assert!(distance > 0);
            message = format!("{message}; did you mean `{known}`?");
        }
    }
    for (code, words) in [
        ("f64", "a number (like 2.5)"),
        ("u64", "a whole number (like 3)"),
        ("u32", "a whole number (like 3)"),
        ("u16", "a whole number (like 3)"),
        ("u8", "a whole number (like 3)"),
        ("i64", "a whole number (like 3)"),
        ("a sequence", "a list (like [\"a\", \"b\"])"),
        ("a boolean", "true or false"),
    ] {
        message = message.replace(&format!("expected {code}"), &format!("expected {words}"));
    }
    message
}

/// How many single-character edits turn `a` into `b` (Levenshtein).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Checks `[schedule]` into a [`Schedule`], or says which key is wrong.
fn read_schedule(file: ScheduleFile) -> Result<Schedule, (&'static str, String)> {
    let timezone = schedule::parse_zone(&file.timezone).map_err(|m| ("schedule.timezone", m))?;
    let windows = read_windows(file.window).map_err(|m| ("schedule.window", m))?;
    let mut windows_of = std::collections::HashMap::new();
    for (key, listed) in file.windows {
        let at = |m: String| ("schedule.windows", format!("{key:?}: {m}"));
        let name = match Country::parse(&key) {
            Ok(country) if key.trim().len() == 2 => country.as_str().to_owned(),
            _ => schedule::parse_zone(&key)
                .map_err(|_| {
                    at("neither a country code (US) nor a time zone (America/New_York)".into())
                })?
                .iana_name()
                .unwrap_or(key.trim())
                .to_owned(),
        };
        windows_of.insert(name, read_windows(listed).map_err(at)?);
    }
    let days = match file.days {
        None => vec![
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ],
        Some(days) if days.is_empty() => {
            return Err(("schedule.days", "must name at least one day".into()))
        }
        Some(days) => days
            .iter()
            .map(|d| schedule::parse_day(d))
            .collect::<Result<_, _>>()
            .map_err(|m| ("schedule.days", m))?,
    };
    let holidays = file
        .holidays
        .iter()
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|_| format!("{d:?} is not a date like 2026-12-25"))
        })
        .collect::<Result<_, _>>()
        .map_err(|m| ("schedule.holidays", m))?;
    let instant = |key: &'static str, raw: Option<String>| {
        raw.map(|raw| {
            raw.trim().parse::<jiff::Timestamp>().map_err(|_| {
                (
                    key,
                    format!(
                        "{raw:?} is not a time with its offset, like 2026-12-01T09:00:00+08:00"
                    ),
                )
            })
        })
        .transpose()
    };
    let not_before = instant("schedule.not_before", file.not_before)?;
    let not_after = instant("schedule.not_after", file.not_after)?;
    let mut countries = std::collections::HashMap::new();
    for (country, zone) in file.countries {
        let code = Country::parse(&country).map_err(|e| ("schedule.countries", e.to_string()))?;
        let zone = schedule::parse_zone(&zone).map_err(|m| ("schedule.countries", m))?;
        countries.insert(code.as_str().to_owned(), zone);
    }
    let stop_before_close = match file.stop_before_close.as_deref().map(str::trim) {
        None => schedule::DEFAULT_STOP_BEFORE_CLOSE,
        Some("0") | Some("0s") | Some("0m") => std::time::Duration::ZERO,
        Some(raw) => {
            crate::clock::parse_duration(raw).map_err(|m| ("schedule.stop_before_close", m))?
        }
    };
    if stop_before_close > std::time::Duration::from_secs(12 * 3600) {
        return Err(("schedule.stop_before_close", "must be at most 12h".into()));
    }
    Ok(Schedule {
        timezone,
        countries,
        windows,
        days,
        holidays,
        not_before,
        not_after,
        stop_before_close_ms: stop_before_close.as_millis() as i64,
        windows_of,
    })
}

/// One window or several, checked.
fn read_windows(listed: Windows) -> Result<Vec<(jiff::civil::Time, jiff::civil::Time)>, String> {
    let windows = match listed {
        Windows::One(one) => vec![one],
        Windows::Several(several) => several,
    };
    if windows.is_empty() {
        return Err("must name at least one window".into());
    }
    windows.iter().map(|w| schedule::parse_window(w)).collect()
}

// ----- the exact file shape -------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    name: String,
    contacts: String,
    ledger: Option<String>,
    api: ApiFile,
    task: TaskFile,
    #[serde(default)]
    columns: ColumnsFile,
    #[serde(default)]
    batching: BatchingFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    retry: RetryFile,
    #[serde(default)]
    lease: LeaseFile,
    #[serde(default)]
    suppression: SuppressionFile,
    schedule: Option<ScheduleFile>,
    redial: Option<RedialFile>,
}

/// `[redial]`: calling again those who did not answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedialFile {
    max_attempts: u32,
    #[serde(default = "default_redial_after")]
    after: Vec<String>,
    #[serde(default = "default_redial_on")]
    on: Vec<String>,
    max_per_day: Option<u32>,
    #[serde(default)]
    suppress_intents: Vec<String>,
    /// `hangupCode` or `callStatus` → outcome.
    #[serde(default)]
    codes: std::collections::BTreeMap<String, String>,
}

fn default_redial_after() -> Vec<String> {
    ["30m", "2h", "1d"].map(String::from).to_vec()
}

fn default_redial_on() -> Vec<String> {
    ["no_answer", "busy", "failed"].map(String::from).to_vec()
}

/// Checks `[redial]`; the zones of "a day" are the schedule's.
fn read_redial(
    file: RedialFile,
    schedule: Option<&Schedule>,
) -> Result<redial::Policy, (&'static str, String)> {
    if !(1..=20).contains(&file.max_attempts) {
        return Err((
            "redial.max_attempts",
            format!(
                "{} must be between 1 and 20 (calls of one contact in all, the first included)",
                file.max_attempts
            ),
        ));
    }
    if file.after.is_empty() {
        return Err((
            "redial.after",
            "must name at least one wait (e.g. [\"30m\"])".into(),
        ));
    }
    let after = file
        .after
        .iter()
        .map(|raw| {
            let wait = crate::clock::parse_duration(raw)?;
            if wait < Duration::from_secs(1) {
                return Err(format!("{raw:?} is under a second"));
            }
            Ok(wait)
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|m| ("redial.after", m))?;
    let outcome = |raw: &str| {
        redial::Outcome::parse(raw).ok_or_else(|| {
            format!("{raw:?} is not an outcome (no_answer, busy, rejected or failed)")
        })
    };
    let on = file
        .on
        .iter()
        .map(|raw| outcome(raw))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| ("redial.on", m))?;
    if file.max_per_day == Some(0) {
        return Err(("redial.max_per_day", "must be at least 1".into()));
    }
    let codes = file
        .codes
        .iter()
        .map(|(code, raw)| Ok((code.trim().to_ascii_uppercase(), outcome(raw)?)))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|m| ("redial.codes", m))?;
    let suppress_intents = file
        .suppress_intents
        .iter()
        .map(|intent| intent.trim().to_owned())
        .filter(|intent| !intent.is_empty())
        .collect();
    Ok(redial::Policy {
        max_attempts: file.max_attempts,
        after,
        on,
        max_per_day: file.max_per_day,
        suppress_intents,
        codes,
        zones: redial::Zones {
            default: schedule.map(|s| s.timezone.clone()),
            countries: schedule.map(|s| s.countries.clone()).unwrap_or_default(),
        },
    })
}

/// `[schedule]`: calling windows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleFile {
    timezone: String,
    window: Windows,
    days: Option<Vec<String>>,
    #[serde(default)]
    holidays: Vec<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    /// Country (ISO code) → its time zone.
    #[serde(default)]
    countries: std::collections::BTreeMap<String, String>,
    /// No batch is claimed this close to its window's end.
    stop_before_close: Option<String>,
    /// Country (ISO code) or zone (IANA name) → its own windows.
    #[serde(default)]
    windows: std::collections::BTreeMap<String, Windows>,
}

/// One window, or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Windows {
    One(String),
    Several(Vec<String>),
}

/// `[suppression]`: the job's own do-not-call list files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionFile {
    #[serde(default)]
    files: Vec<String>,
    column: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    region: Option<String>,
    base_url: Option<String>,
    #[serde(default = "default_access_key_env")]
    access_key_env: String,
    #[serde(default = "default_access_secret_env")]
    access_secret_env: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    allow_http: bool,
    #[serde(default = "default_clock_window_ms")]
    clock_window_ms: u64,
    credentials_file: Option<String>,
    tenant_id: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    country: String,
    task_name: String,
    #[serde(default)]
    task_desc: String,
    #[serde(default = "default_strategy_name")]
    strategy_name: String,
    #[serde(default)]
    dispatch_type: u8,
    agent_group_no: String,
    #[serde(default = "one")]
    predict_call_rate: f64,
    #[serde(default = "one")]
    ratio_call_rate: f64,
    #[serde(default = "one_u32")]
    start_count: u32,
    #[serde(default = "default_startup_type")]
    startup_type: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsFile {
    #[serde(default = "default_phone_column")]
    phone: String,
    country: Option<String>,
    order_id: Option<String>,
    timezone: Option<String>,
    #[serde(default)]
    other: Vec<String>,
    delimiter: Option<String>,
    encoding: Option<String>,
}

impl Default for ColumnsFile {
    fn default() -> Self {
        ColumnsFile {
            phone: default_phone_column(),
            country: None,
            order_id: None,
            timezone: None,
            other: Vec::new(),
            delimiter: None,
            encoding: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchingFile {
    #[serde(default = "default_batch_size")]
    size: i64,
}

impl Default for BatchingFile {
    fn default() -> Self {
        BatchingFile {
            size: default_batch_size(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default = "one")]
    requests_per_second: f64,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: u32,
    #[serde(default)]
    scope: RateScope,
    confirm_above: Option<u64>,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            requests_per_second: one(),
            max_in_flight: default_max_in_flight(),
            scope: RateScope::default(),
            confirm_above: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFile {
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_base_delay_ms")]
    base_delay_ms: u64,
    #[serde(default = "default_max_delay_ms")]
    max_delay_ms: u64,
    #[serde(default = "default_breaker_window")]
    breaker_window: u32,
    #[serde(default = "default_breaker_failure_share")]
    breaker_failure_share: f64,
}

impl Default for RetryFile {
    fn default() -> Self {
        RetryFile {
            max_attempts: default_max_attempts(),
            base_delay_ms: default_base_delay_ms(),
            max_delay_ms: default_max_delay_ms(),
            breaker_window: default_breaker_window(),
            breaker_failure_share: default_breaker_failure_share(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseFile {
    #[serde(default = "default_lease_stale_after_ms")]
    stale_after_ms: u64,
}

impl Default for LeaseFile {
    fn default() -> Self {
        LeaseFile {
            stale_after_ms: default_lease_stale_after_ms(),
        }
    }
}

fn default_access_key_env() -> String {
    "NXLINK_ACCESS_KEY".into()
}
fn default_access_secret_env() -> String {
    "NXLINK_ACCESS_SECRET".into()
}
fn default_timeout_ms() -> u64 {
    30_000
}
fn default_clock_window_ms() -> u64 {
    60_000
}
fn default_strategy_name() -> String {
    "Default Strategy".into()
}
fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn default_startup_type() -> u8 {
    3
}
fn default_phone_column() -> String {
    "phone".into()
}
fn default_batch_size() -> i64 {
    200
}
fn default_max_in_flight() -> u32 {
    2
}
fn default_max_attempts() -> u32 {
    6
}
fn default_base_delay_ms() -> u64 {
    1000
}
fn default_max_delay_ms() -> u64 {
    60_000
}
fn default_breaker_window() -> u32 {
    20
}
fn default_breaker_failure_share() -> f64 {
    0.5
}
fn default_lease_stale_after_ms() -> u64 {
    60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "spring-promo"
contacts = "spring.csv"
[api]
region = "hk"
[task]
country = "HK"
task_name = "Spring promo"
agent_group_no = "NX09445G000025"
"#;

    fn parse(text: &str) -> Result<Job, JobError> {
        Job::parse(text, Path::new("jobs/spring.toml"), None)
    }

    /// Checks that `text` is refused with a message containing each of `needles`.
    fn check_refused(text: &str, needles: &[&str]) {
        let message = parse(text).expect_err("should be refused").to_string();
        for needle in needles {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        assert!(message.starts_with("jobs/spring.toml: "), "{message:?}");
    }

    fn with(extra: &str) -> String {
        format!("{MINIMAL}\n{extra}")
    }

    #[test]
    fn a_minimal_job_gets_the_documented_defaults() {
        let job = parse(MINIMAL).unwrap();
        assert_eq!(job.name.as_str(), "spring-promo");
        assert_eq!(job.contacts, Path::new("jobs/spring.csv"));
        assert_eq!(job.api.base_url, "https://api-hk.nxlink.ai");
        assert_eq!(job.api.access_key_env, "NXLINK_ACCESS_KEY");
        assert_eq!(job.api.access_secret_env, "NXLINK_ACCESS_SECRET");
        assert_eq!(job.api.timeout, Duration::from_secs(30));
        assert_eq!(job.task.strategy_name, "Default Strategy");
        assert_eq!(job.task.startup_type, 3);
        assert_eq!(job.columns.phone, "phone");
        assert_eq!(job.batch_size.get(), 200);
        assert_eq!(job.limits.requests_per_second, 1.0);
        assert_eq!(job.limits.max_in_flight.get(), 2);
        assert_eq!(job.retry.max_attempts.get(), 6);
        assert_eq!(job.retry.base_delay, Duration::from_secs(1));
        assert_eq!(job.retry.max_delay, Duration::from_secs(60));
        assert_eq!(job.breaker.window.get(), 20);
        assert_eq!(job.breaker.failure_share, 0.5);
        assert_eq!(job.lease_stale_after, Duration::from_secs(60));
        assert_eq!(
            job.ledger,
            LedgerLocation::File("jobs/nxcampaign.db".into())
        );
        assert_eq!(job.api.clock_window, Duration::from_secs(60));
    }

    #[test]
    fn the_ledger_is_beside_the_job_file_unless_the_job_names_one() {
        let job = parse(&MINIMAL.replace(
            "contacts = \"spring.csv\"",
            "contacts = \"spring.csv\"\nledger = \"../ledgers/spring.db\"",
        ))
        .unwrap();
        assert_eq!(
            job.ledger,
            LedgerLocation::File("jobs/../ledgers/spring.db".into())
        );
        check_refused(
            &MINIMAL.replace(
                "contacts = \"spring.csv\"",
                "contacts = \"a.csv\"\nledger = \" \"",
            ),
            &["key `ledger`", "must name a file"],
        );
        let job = parse(&MINIMAL.replace(
            "contacts = \"spring.csv\"",
            "contacts = \"spring.csv\"\nledger = \"postgresql://app@db.internal/campaigns\"",
        ))
        .unwrap();
        assert_eq!(
            job.ledger,
            LedgerLocation::Postgres("postgresql://app@db.internal/campaigns".into()),
            "a server URL is not a file beside the job"
        );
    }

    #[test]
    fn the_rate_is_shared_by_the_account_unless_the_job_says_campaign() {
        assert_eq!(parse(MINIMAL).unwrap().limits.scope, RateScope::Account);
        let job = parse(&with("[limits]\nscope = \"campaign\"")).unwrap();
        assert_eq!(job.limits.scope, RateScope::Campaign);
        check_refused(
            &with("[limits]\nscope = \"everyone\""),
            &["key `limits.scope`", "account", "campaign"],
        );
    }

    #[test]
    fn a_gateway_must_be_https_or_this_machine_unless_http_is_allowed() {
        let url = |url: &str, extra: &str| {
            MINIMAL.replace("region = \"hk\"", &format!("base_url = \"{url}\"\n{extra}"))
        };
        for ok in [
            "https://gw.example.com",
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:9",
        ] {
            assert!(parse(&url(ok, "")).is_ok(), "{ok}");
        }
        check_refused(
            &url("http://gw.example.com", ""),
            &["key `api.base_url`", "plain HTTP", "api.allow_http"],
        );
        assert!(parse(&url("http://gw.example.com", "allow_http = true")).is_ok());
        check_refused(&url("https://gw example.com", ""), &["is not a URL"]);
        check_refused(&url("https://", ""), &["api.base_url"]);
        check_refused(
            &url("ftp://gw.example.com", ""),
            &["must start with https://"],
        );
        check_refused(
            &url("https://gw.example.com/?a=1", ""),
            &["without user, query"],
        );
        check_refused(
            &url("https://gw.example.com", "clock_window_ms = 10"),
            &["key `api.clock_window_ms`"],
        );
    }

    #[test]
    fn the_base_url_comes_from_env_then_file_then_region() {
        let text = with("").replace(
            "region = \"hk\"",
            "region = \"amer\"\nbase_url = \"http://127.0.0.1:9/\"",
        );
        assert_eq!(parse(&text).unwrap().api.base_url, "http://127.0.0.1:9");
        let job = Job::parse(&text, Path::new("j.toml"), Some("http://127.0.0.1:7")).unwrap();
        assert_eq!(job.api.base_url, "http://127.0.0.1:7");
        let idn = MINIMAL.replace("\"hk\"", "\"idn\"");
        assert_eq!(
            parse(&idn).unwrap().api.base_url,
            "https://api-idn.nxlink.ai"
        );
    }

    #[test]
    fn rates_are_rounded_as_the_vendor_documents() {
        let job = parse(&MINIMAL.replace(
            "agent_group_no",
            "predict_call_rate = 1.256\nratio_call_rate = 2.34\nagent_group_no",
        ))
        .unwrap();
        assert_eq!(job.task.predict_call_rate, 1.26);
        assert_eq!(job.task.ratio_call_rate, 2.3);
    }

    #[test]
    fn unknown_keys_suggest_the_nearest_and_types_are_named_in_words() {
        check_refused(
            &with("[limits]\nrequests_per_secnd = 3"),
            &[
                "unknown field `requests_per_secnd`",
                "did you mean `requests_per_second`?",
            ],
        );
        check_refused(
            &with("[batching]\nsize = \"big\""),
            &["expected a whole number"],
        );
        check_refused(
            &with("[limits]\nrequests_per_second = \"fast\""),
            &["expected a number"],
        );
        check_refused(&with("[columns]\nother = \"name\""), &["expected a list"]);
        // Nothing near: no suggestion.
        let far = parse(&with("[limits]\nzzz = 3")).unwrap_err().to_string();
        assert!(!far.contains("did you mean"), "{far}");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn a_delimiter_is_one_character_or_tab() {
        assert_eq!(
            parse(&with("[columns]\ndelimiter = \";\""))
                .unwrap()
                .columns
                .delimiter,
            Some(b';')
        );
        assert_eq!(
            parse(&with("[columns]\ndelimiter = \"tab\""))
                .unwrap()
                .columns
                .delimiter,
            Some(b'\t')
        );
        assert_eq!(parse(MINIMAL).unwrap().columns.delimiter, None);
        check_refused(
            &with("[columns]\ndelimiter = \";;\""),
            &["columns.delimiter"],
        );
    }

    #[test]
    fn validation_messages_name_the_key() {
        check_refused(&with("[limits]\nspeed = 3"), &["unknown field `speed`"]);
        check_refused(&with("colour = 1"), &["unknown field `colour`"]);
        check_refused(
            &MINIMAL.replace("name = \"spring-promo\"", ""),
            &["missing field `name`"],
        );
        check_refused(
            &MINIMAL.replace("agent_group_no = \"NX09445G000025\"", ""),
            &["missing field `agent_group_no`"],
        );
        check_refused(
            &MINIMAL.replace("spring-promo", "spring promo!"),
            &["key `name`", "spring promo!"],
        );
        check_refused(
            &MINIMAL.replace("\"hk\"", "\"mars\""),
            &["key `api.region`", "mars"],
        );
        check_refused(
            &MINIMAL.replace("region = \"hk\"", ""),
            &["key `api.region`", "missing"],
        );
        check_refused(
            &MINIMAL.replace("\"HK\"", "\"XX\""),
            &["key `task.country`"],
        );
        check_refused(
            &with("[batching]\nsize = 0"),
            &["key `batching.size`", "between 1 and 1000"],
        );
        check_refused(&with("[batching]\nsize = 1001"), &["key `batching.size`"]);
        check_refused(
            &with("[limits]\nrequests_per_second = -1.0"),
            &["key `limits.requests_per_second`", "above 0"],
        );
        check_refused(
            &with("[limits]\nrequests_per_second = 0.0"),
            &["key `limits.requests_per_second`"],
        );
        check_refused(
            &with("[limits]\nmax_in_flight = 0"),
            &["key `limits.max_in_flight`"],
        );
        check_refused(
            &with("[retry]\nmax_attempts = 0"),
            &["key `retry.max_attempts`"],
        );
        check_refused(
            &with("[retry]\nbase_delay_ms = 10\nmax_delay_ms = 5"),
            &["key `retry.max_delay_ms`"],
        );
        check_refused(
            &MINIMAL.replace("task_name = \"Spring promo\"", "task_name = \" \""),
            &["key `task.task_name`"],
        );
        check_refused(
            &with("[limits]\nmax_in_flight = \"two\""),
            &["key `limits.max_in_flight`", "invalid type", "line 12"],
        );
        check_refused(
            &with("[retry]\nbreaker_failure_share = 1.5"),
            &["key `retry.breaker_failure_share`"],
        );
        check_refused(
            &with("[retry]\nbreaker_window = 0"),
            &["key `retry.breaker_window`"],
        );
        check_refused(
            &with("[lease]\nstale_after_ms = 10"),
            &["key `lease.stale_after_ms`"],
        );
    }

    #[test]
    fn text_that_is_not_toml_is_refused_with_its_location() {
        check_refused("name = \n", &["line 1"]);
    }
}
