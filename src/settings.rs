//! What a command works with, resolved once from its flags, the
//! environment and the job file: the ledger, the gateway, the credentials,
//! the webhook's token, who asks. Every variable nxcampaign reads (but the
//! log filters, read where logging starts) is read here, from one snapshot
//! of the environment, so the rules are tested as a table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::job::{ApiSettings, Job, LedgerLocation, DEFAULT_LEDGER};
use crate::nxlink::Credentials;

/// The gateway's URL, winning over the job's `api.base_url` and `region`.
pub const BASE_URL_VAR: &str = "NXLINK_BASE_URL";
/// A credentials file, winning over the job's `api.credentials_file`.
pub const CREDENTIALS_FILE_VAR: &str = "NXLINK_CREDENTIALS_FILE";
/// The webhook's token unless `--token-env` names another variable.
pub const WEBHOOK_TOKEN_VAR: &str = "NXCAMPAIGN_WEBHOOK_TOKEN";

/// The environment as nxcampaign sees it: a variable set but empty is not
/// set.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// This process's environment.
    pub fn of_process() -> Env {
        Env::from_pairs(std::env::vars())
    }

    /// An environment of these variables (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A variable's value, unless it is unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Whether the variable is set, even to nothing.
    fn is_set(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
}

/// The settings of one command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--db` (or `NXCAMPAIGN_DB`, which clap reads); empty is none.
    db: Option<String>,
    env: Env,
}

impl Settings {
    pub fn new(db: Option<&str>, env: Env) -> Settings {
        Settings {
            db: db.filter(|db| !db.trim().is_empty()).map(str::to_owned),
            env,
        }
    }

    /// The job file at `path`, its gateway overridden by
    /// `NXLINK_BASE_URL`.
    pub fn job(&self, path: &Path) -> Result<Job, Error> {
        Ok(Job::load(path, self.env.get(BASE_URL_VAR))?)
    }

    /// The ledger a command uses: `--db` (or `NXCAMPAIGN_DB`) first, then
    /// the job's, then `nxcampaign.db` in the current folder.
    pub fn ledger(&self, job: Option<&Job>) -> LedgerLocation {
        match (&self.db, job) {
            (Some(db), _) => LedgerLocation::parse(db, Path::new("")),
            (None, Some(job)) => job.ledger.clone(),
            (None, None) => LedgerLocation::File(DEFAULT_LEDGER.into()),
        }
    }

    /// The ledger named by `--db` or `job`, never one guessed from the
    /// current folder; `None` when neither names one.
    pub fn named_ledger(&self, job: Option<&Job>) -> Option<LedgerLocation> {
        (self.db.is_some() || job.is_some()).then(|| self.ledger(job))
    }

    /// The campaign `campaign` names (a campaign name, or a job file that
    /// names it), with its ledger and, for a job file, the job.
    pub fn campaign(&self, campaign: &str) -> Result<(LedgerLocation, String, Option<Job>), Error> {
        if campaign.ends_with(".toml") {
            let job = self.job(Path::new(campaign))?;
            Ok((self.ledger(Some(&job)), job.name.to_string(), Some(job)))
        } else {
            Ok((self.ledger(None), campaign.to_owned(), None))
        }
    }

    /// The credentials of `api`: from the environment variables it names,
    /// else from the credentials file.
    pub fn credentials(&self, api: &ApiSettings) -> Result<Credentials, Error> {
        credentials(&self.env, api)
    }

    /// The webhook's token, from `token_var` (default
    /// `NXCAMPAIGN_WEBHOOK_TOKEN`); `None` only with `--no-token`. A
    /// variable unset or empty is refused: a receiver never starts open by
    /// mistake.
    pub fn webhook_token(
        &self,
        token_var: Option<&str>,
        no_token: bool,
    ) -> Result<Option<String>, Error> {
        if no_token {
            return Ok(None);
        }
        let var = token_var.unwrap_or(WEBHOOK_TOKEN_VAR);
        match self.env.get(var) {
            Some(token) => Ok(Some(token.to_owned())),
            None => Err(Error::argument(
                "webhook",
                format!(
                    "the environment variable {var} is {}: it must hold the token the vendor sends (name another with --token-env, or pass --no-token behind a proxy that authenticates the vendor)",
                    if self.env.is_set(var) { "empty" } else { "not set" }
                ),
            )),
        }
    }

    /// Who asks, as the ledger records it: `user@host`.
    pub fn requested_by(&self) -> String {
        format!(
            "{}@{}",
            self.env.get("USER").unwrap_or("unknown"),
            crate::run::lease::hostname()
        )
    }
}

/// Reads the credentials: from the environment variables the job names,
/// else from the credentials file (`NXLINK_CREDENTIALS_FILE`, else the
/// job's `api.credentials_file`), a file of `NAME=value` lines with the
/// same names, which only its owner may read (a shell can source it too).
fn credentials(env: &Env, api: &ApiSettings) -> Result<Credentials, Error> {
    let file = env
        .get(CREDENTIALS_FILE_VAR)
        .map(PathBuf::from)
        .or_else(|| api.credentials_file.clone());
    let from_file = match &file {
        Some(path) => read_credentials_file(path)?,
        None => Vec::new(),
    };
    let read = |var: &str, what: &'static str, key: &'static str| {
        env.get(var)
            .map(str::to_owned)
            .or_else(|| {
                from_file
                    .iter()
                    .find(|(name, _)| name == var)
                    .map(|(_, value)| value.clone())
            })
            .ok_or_else(|| Error::MissingCredential {
                var: var.to_owned(),
                what,
                key,
            })
    };
    Ok(Credentials::new(
        read(&api.access_key_env, "access key", "access_key_env")?,
        read(&api.access_secret_env, "access secret", "access_secret_env")?,
    ))
}

/// The `NAME=value` lines of a credentials file (`export ` prefixes,
/// quotes, blank lines and `#` comments allowed), refused when others
/// than its owner may read it. Values are never shown in errors.
fn read_credentials_file(path: &Path) -> Result<Vec<(String, String)>, Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let unusable = |why: String| Error::CredentialsFile {
        path: path.to_owned(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| unusable(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(unusable(format!(
            "others than its owner may read or write it (mode {:o}): chmod 600 it",
            meta.permissions().mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| unusable(e.to_string()))?;
    parse_credentials(&text).map_err(|(line, why)| unusable(format!("line {line}: {why}")))
}

/// The `NAME=value` pairs of a credentials file, read as a shell or
/// systemd's `EnvironmentFile` would: `export ` before the name, blank
/// lines and `#` comments, a `# comment` after an unquoted value (after a
/// space), values in single or double quotes (`\"` and `\\` inside double
/// quotes). A line it cannot read is refused with its number and why, the
/// value never shown.
fn parse_credentials(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, rest)) = line.split_once('=') else {
            return Err((number, "not a NAME=value line".into()));
        };
        let name = name.trim_end();
        let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err((number, format!("{name:?} is not a variable name")));
        }
        let rest = rest.trim_start();
        let (value, after) = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let mut value = String::new();
                let mut chars = rest[1..].char_indices();
                let mut closed = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' if quote == '"' => match chars.next() {
                            Some((_, next)) => value.push(next),
                            None => break,
                        },
                        c if c == quote => {
                            closed = Some(i + 2);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let Some(end) = closed else {
                    return Err((
                        number,
                        format!("the value of {name} opens a quote ({quote}) that is never closed"),
                    ));
                };
                (value, &rest[end..])
            }
            _ => {
                // Unquoted: a `#` after whitespace starts a comment.
                let end = rest
                    .char_indices()
                    .find(|(i, c)| *c == '#' && rest[..*i].ends_with(char::is_whitespace))
                    .map_or(rest.len(), |(i, _)| i);
                (rest[..end].trim_end().to_owned(), "")
            }
        };
        let after = after.trim_start();
        if !(after.is_empty() || after.starts_with('#')) {
            return Err((number, format!("text after the quoted value of {name}")));
        }
        pairs.push((name.to_owned(), value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job file in a temp folder with these extra lines in `[api]`.
    fn job(dir: &Path, ledger: Option<&str>, api: &str) -> PathBuf {
        let path = dir.join("job.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"spring\"\ncontacts = \"c.csv\"\n{}[api]\n{api}\n[task]\ncountry = \"HK\"\ntask_name = \"S\"\nagent_group_no = \"AG\"\n",
                ledger.map(|l| format!("ledger = \"{l}\"\n")).unwrap_or_default()
            ),
        )
        .unwrap();
        path
    }

    #[test]
    fn the_ledger_gateway_and_credentials_come_from_flags_environment_and_job_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| LedgerLocation::File(dir.path().join(name));
        let creds = dir.path().join("nxlink.env");
        std::fs::write(
            &creds,
            "NXLINK_ACCESS_KEY=from-file\nNXLINK_ACCESS_SECRET=file-secret\n",
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        struct Row<'a> {
            db: Option<&'a str>,
            env: &'a [(&'a str, &'a str)],
            job_ledger: Option<&'a str>,
            api: &'a str,
            ledger: LedgerLocation,
            base_url: &'a str,
            key: Option<&'a str>,
        }
        let creds_line = format!("credentials_file = \"{}\"", creds.display());
        let rows = [
            // The job's ledger beside it; its region's gateway.
            Row {
                db: None,
                env: &[],
                job_ledger: None,
                api: "region = \"hk\"",
                ledger: file("nxcampaign.db"),
                base_url: "https://api-hk.nxlink.ai",
                key: None,
            },
            // The job names its ledger; NXLINK_BASE_URL wins over the job.
            Row {
                db: None,
                env: &[("NXLINK_BASE_URL", "http://127.0.0.1:9")],
                job_ledger: Some("mine.db"),
                api: "region = \"hk\"",
                ledger: file("mine.db"),
                base_url: "http://127.0.0.1:9",
                key: None,
            },
            // --db wins over the job's ledger; an empty variable is none.
            Row {
                db: Some("/srv/l.db"),
                env: &[("NXLINK_BASE_URL", "")],
                job_ledger: Some("mine.db"),
                api: "base_url = \"https://gw.example\"",
                ledger: LedgerLocation::File("/srv/l.db".into()),
                base_url: "https://gw.example",
                key: None,
            },
            Row {
                db: Some(""),
                env: &[],
                job_ledger: None,
                api: "region = \"amer\"",
                ledger: file("nxcampaign.db"),
                base_url: "https://chl-api.nxlink.ai",
                key: None,
            },
            Row {
                db: Some("postgres://u@h/db"),
                env: &[],
                job_ledger: None,
                api: "region = \"idn\"",
                ledger: LedgerLocation::Postgres("postgres://u@h/db".into()),
                base_url: "https://api-idn.nxlink.ai",
                key: None,
            },
            // Credentials: the environment wins over the file.
            Row {
                db: None,
                env: &[
                    ("NXLINK_ACCESS_KEY", "from-env"),
                    ("NXLINK_ACCESS_SECRET", "s"),
                ],
                job_ledger: None,
                api: &creds_line,
                ledger: file("nxcampaign.db"),
                base_url: "",
                key: Some("from-env"),
            },
            Row {
                db: None,
                env: &[("NXLINK_ACCESS_KEY", " ")],
                job_ledger: None,
                api: &creds_line,
                ledger: file("nxcampaign.db"),
                base_url: "",
                key: Some("from-file"),
            },
        ];
        for (i, row) in rows.iter().enumerate() {
            let api = if row.base_url.is_empty() {
                format!("region = \"hk\"\n{}", row.api)
            } else {
                row.api.to_owned()
            };
            let path = job(dir.path(), row.job_ledger, &api);
            let settings = Settings::new(row.db, Env::from_pairs(row.env.iter().copied()));
            let job = settings.job(&path).unwrap();
            assert_eq!(settings.ledger(Some(&job)), row.ledger, "row {i}");
            if !row.base_url.is_empty() {
                assert_eq!(job.api.base_url, row.base_url, "row {i}");
            }
            let key = settings
                .credentials(&job.api)
                .ok()
                .map(|c| c.access_key().to_owned());
            assert_eq!(key.as_deref(), row.key, "row {i}");
        }
        // No job and no --db: the current folder's, but never for what
        // must name its ledger.
        let bare = Settings::new(None, Env::default());
        assert_eq!(
            bare.ledger(None),
            LedgerLocation::File("nxcampaign.db".into())
        );
        assert!(bare.named_ledger(None).is_none());
    }

    #[test]
    fn the_webhook_never_starts_open_by_mistake() {
        let token = |env: &[(&str, &str)], var: Option<&str>, no_token: bool| {
            Settings::new(None, Env::from_pairs(env.iter().copied()))
                .webhook_token(var, no_token)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            token(&[("NXCAMPAIGN_WEBHOOK_TOKEN", "t")], None, false),
            Ok(Some("t".into()))
        );
        assert_eq!(
            token(&[("HOOK", "h")], Some("HOOK"), false),
            Ok(Some("h".into()))
        );
        assert!(token(&[("HOOK", "")], Some("HOOK"), false)
            .unwrap_err()
            .contains("HOOK is empty"));
        assert!(token(&[], None, false).unwrap_err().contains("not set"));
        assert_eq!(token(&[], None, true), Ok(None));
    }

    #[test]
    fn credentials_files_are_read_as_a_shell_or_systemd_reads_them() {
        let check = |text: &str, expected: &[(&str, &str)]| {
            let pairs = parse_credentials(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(pairs, expected, "{text:?}");
        };
        check("KEY=value", &[("KEY", "value")]);
        check("KEY=value # the team's", &[("KEY", "value")]);
        check("export KEY=val#ue", &[("KEY", "val#ue")]);
        check("KEY=\"a b # c\" # comment", &[("KEY", "a b # c")]);
        check("KEY='a \"b\" c'", &[("KEY", "a \"b\" c")]);
        check(r#"KEY="a\"b\\c""#, &[("KEY", "a\"b\\c")]);
        check("# a comment\n\nA=1\nB = 2 ", &[("A", "1"), ("B", "2")]);
    }

    #[test]
    fn a_line_it_cannot_read_is_named_and_its_value_never_shown() {
        let refused = |text: &str| parse_credentials(text).unwrap_err();
        let (line, why) = refused("\nKEY=\"s3cret");
        assert_eq!(line, 2);
        assert!(
            why.contains("never closed") && !why.contains("s3cret"),
            "{why}"
        );
        assert!(refused("KEY='s3cret' extra")
            .1
            .contains("after the quoted value"));
        assert!(refused("just words").1.contains("NAME=value"));
        assert!(refused("1KEY=x").1.contains("not a variable name"));
    }
}
