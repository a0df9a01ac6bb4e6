//! Helpers with intent names: start a sandbox, write a campaign (job file
//! and contacts) into a temp folder, run the real binary, read the ledger
//! back through the binary's own `status` and `orders` output.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use nxcampaign::nxlink::Credentials;
use nxcampaign::phone::{Country, Phone};
use nxcampaign::sandbox::{Faults, Sandbox, DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET};
use tempfile::TempDir;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// Starts a sandbox on 127.0.0.1 with a free port and the default credentials.
pub async fn start_sandbox(faults: Faults) -> Sandbox {
    Sandbox::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Credentials::new(DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET),
        faults,
    )
    .await
    .expect("the sandbox starts")
}

/// The rows a generated contact file holds, and what ingest should make of them.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Rows with a valid, new number.
    pub valid: usize,
    /// Rows whose number cannot be a phone number.
    pub invalid: usize,
    /// Rows repeating an earlier valid number in another format.
    pub duplicates: usize,
}

impl Mix {
    /// `valid` rows, all with a valid, new number.
    pub const fn valid(valid: usize) -> Mix {
        Mix {
            valid,
            invalid: 0,
            duplicates: 0,
        }
    }
}

/// The PostgreSQL server the tests may use (`NXCAMPAIGN_TEST_POSTGRES`,
/// e.g. `postgres://postgres@127.0.0.1:5432/test`), if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("NXCAMPAIGN_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether the suite's ledgers are on PostgreSQL: `NXCAMPAIGN_TEST_LEDGER=postgres`
/// (with `NXCAMPAIGN_TEST_POSTGRES` naming the server) runs the whole
/// suite there; otherwise every campaign has a SQLite file.
pub fn suite_on_postgres() -> bool {
    match std::env::var("NXCAMPAIGN_TEST_LEDGER").as_deref() {
        Ok("postgres") => {
            assert!(
                postgres_url().is_some(),
                "NXCAMPAIGN_TEST_LEDGER=postgres needs NXCAMPAIGN_TEST_POSTGRES=postgres://…"
            );
            true
        }
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("NXCAMPAIGN_TEST_LEDGER={other:?}: sqlite or postgres"),
    }
}

/// The PostgreSQL server for a test that needs one, or `None` after saying
/// on the terminal (past the test harness's capture) that the PostgreSQL
/// suite was not run.
pub fn postgres_or_skip() -> Option<String> {
    let url = postgres_url();
    if url.is_none() {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "note: the PostgreSQL suite was not run: set NXCAMPAIGN_TEST_POSTGRES=postgres://user@host:port/db (README, \"Tests\")"
            );
        });
    }
    url
}

/// A schema of its own on the test server, dropped with it: the ledger URL
/// points its connections there.
pub struct Schema {
    server: String,
    name: String,
}

impl Schema {
    pub fn new(server: &str) -> Schema {
        let name = format!("t_{:016x}", rand_u64());
        Schema::on_server(server, format!("CREATE SCHEMA {name}"));
        Schema {
            server: server.to_owned(),
            name,
        }
    }

    /// The ledger URL: the server, with this schema first on the search
    /// path, and its name as the connections' `application_name` (so a
    /// test can find its runners' sessions).
    pub fn url(&self) -> String {
        let joiner = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{joiner}options=-csearch_path%3D{name}&application_name={name}",
            self.server,
            name = self.name
        )
    }

    /// Ends every session of this schema's ledger on the server, as a
    /// server restart would.
    pub fn end_sessions(&self) {
        Schema::on_server(
            &self.server,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
                self.name
            ),
        );
    }

    /// Runs one statement on the server, on a thread and runtime of its own
    /// (tests create and drop schemas from sync code).
    pub fn on_server(server: &str, sql: String) {
        let server = server.to_owned();
        std::thread::spawn(move || {
            use sqlx::Connection as _;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&server)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server {server}: {e}"));
                sqlx::raw_sql(&sql)
                    .execute(&mut connection)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let _ = connection.close().await;
            });
        })
        .join()
        .expect("the statement ran");
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        Schema::on_server(
            &self.server,
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

fn rand_u64() -> u64 {
    rand::random()
}

/// A campaign on disk: a temp folder with a job file, its contacts and a ledger.
pub struct Campaign {
    pub dir: TempDir,
    pub name: String,
    /// Extra lines for the job file's sections, e.g. `("retry", "max_attempts = 2")`.
    sections: Vec<(String, String)>,
    base_url: String,
    /// The ledger file; its own unless shared with another campaign.
    ledger: PathBuf,
    /// How many valid numbers were handed out so far (numbers never repeat
    /// unless asked).
    numbers_used: usize,
    /// The contact file's name in the folder.
    contacts_file: String,
    /// The ledger's schema when the suite runs on PostgreSQL.
    schema: Option<std::sync::Arc<Schema>>,
}

impl Campaign {
    /// A campaign against `sandbox` with tiny delays, batches of 100 and no
    /// real rate limit, on the suite's backend.
    pub fn new(sandbox: &Sandbox) -> Campaign {
        Campaign::new_on(sandbox, suite_on_postgres())
    }

    /// The same with a SQLite file whatever the suite's backend, for the
    /// tests of the file itself (links, permissions, deletion).
    pub fn new_on_sqlite(sandbox: &Sandbox) -> Campaign {
        Campaign::new_on(sandbox, false)
    }

    /// The same on PostgreSQL (`postgres_or_skip` says whether there is one).
    pub fn new_on_postgres(sandbox: &Sandbox) -> Campaign {
        Campaign::new_on(sandbox, true)
    }

    fn new_on(sandbox: &Sandbox, postgres: bool) -> Campaign {
        let dir = tempfile::tempdir().expect("a temp dir");
        let schema = postgres.then(|| {
            std::sync::Arc::new(Schema::new(
                &postgres_url().expect("a test on PostgreSQL needs NXCAMPAIGN_TEST_POSTGRES"),
            ))
        });
        Campaign {
            ledger: match &schema {
                Some(schema) => PathBuf::from(schema.url()),
                None => dir.path().join("ledger.db"),
            },
            schema,
            dir,
            name: "spring".to_owned(),
            sections: Vec::new(),
            base_url: sandbox.base_url(),
            numbers_used: 0,
            contacts_file: "contacts.csv".to_owned(),
        }
    }

    /// Another name for the contact file (`contacts.csv.gz` is read through
    /// gzip).
    pub fn with_contacts_file(mut self, name: &str) -> Campaign {
        self.contacts_file = name.to_owned();
        self
    }

    /// Another campaign name, recorded in `other`'s ledger, with numbers
    /// that do not repeat `other`'s.
    pub fn sharing_ledger_with(mut self, other: &Campaign, name: &str) -> Campaign {
        self.ledger = other.db();
        self.schema = other.schema.clone();
        self.name = name.to_owned();
        self.numbers_used = 50_000;
        self
    }

    /// Adds lines to a job file section (`api`, `batching`, `limits`, `retry`).
    pub fn with(mut self, section: &str, lines: &str) -> Campaign {
        self.sections.push((section.to_owned(), lines.to_owned()));
        self
    }

    pub fn job_path(&self) -> PathBuf {
        self.dir.path().join("job.toml")
    }

    pub fn contacts_path(&self) -> PathBuf {
        self.dir.path().join(&self.contacts_file)
    }

    /// The ledger: a file, or a PostgreSQL URL when the suite runs there.
    pub fn db(&self) -> PathBuf {
        self.ledger.clone()
    }

    /// The ledger's schema on PostgreSQL.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_deref()
    }

    /// Whether the ledger is a SQLite file (tests of the file itself are
    /// SQLite's own).
    pub fn on_sqlite(&self) -> bool {
        self.schema.is_none()
    }

    /// Writes the job file: the defaults above, then the `with` lines.
    pub fn write_job(&self) {
        let defaults = format!(
            r#"name = "{name}"
contacts = "{contacts}"

[api]
base_url = "{base_url}"
timeout_ms = 2000

[task]
country = "HK"
task_name = "Spring"
agent_group_no = "NX09445G000025"

[columns]
phone = "phone"
other = ["name"]

[batching]
size = 100

[limits]
requests_per_second = 1000.0
max_in_flight = 4

[retry]
max_attempts = 4
base_delay_ms = 1
max_delay_ms = 20
"#,
            name = self.name,
            contacts = self.contacts_file,
            base_url = self.base_url,
        );
        let mut job: toml::Table = defaults.parse().expect("the default job is TOML");
        for (section, lines) in &self.sections {
            let extra: toml::Table = lines.parse().expect("`with` lines are TOML");
            let table = job
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("a section");
            table.extend(extra);
        }
        std::fs::write(self.job_path(), toml::to_string(&job).expect("TOML"))
            .expect("job file written");
    }

    /// Writes a new contact file with `mix` rows (and the job file).
    pub fn write_contacts(&mut self, mix: Mix) {
        let mut text = String::from("name,phone\n");
        self.push_rows(&mut text, mix);
        std::fs::write(self.contacts_path(), text).expect("contacts written");
        self.write_job();
    }

    /// Appends `mix` rows to the contact file.
    pub fn append_contacts(&mut self, mix: Mix) {
        let mut text = std::fs::read_to_string(self.contacts_path()).expect("contacts exist");
        self.push_rows(&mut text, mix);
        std::fs::write(self.contacts_path(), text).expect("contacts written");
    }

    fn push_rows(&mut self, text: &mut String, mix: Mix) {
        // Invalid rows and duplicates are spread through the file.
        let invalid_every = (mix.valid / mix.invalid.max(1)).max(1);
        let duplicate_every = (mix.valid / mix.duplicates.max(1)).max(1);
        let (mut invalid, mut duplicates) = (0, 0);
        for i in 0..mix.valid {
            let number = hk_number(self.numbers_used);
            self.numbers_used += 1;
            writeln!(text, "Person {i},{number}").unwrap();
            if invalid < mix.invalid && i % invalid_every == 0 {
                writeln!(text, "Nobody {i},12-{i}").unwrap();
                invalid += 1;
            }
            if duplicates < mix.duplicates && i % duplicate_every == 0 {
                // The same number again, written the vendor's way.
                writeln!(text, "Again {i},852 {number}").unwrap();
                duplicates += 1;
            }
        }
        assert_eq!(
            (invalid, duplicates),
            (mix.invalid, mix.duplicates),
            "mix {mix:?} does not fit"
        );
    }

    /// Runs `nxcampaign run` on the job file to its end.
    pub async fn run(&self) -> Output {
        self.run_with_key_secret(DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET)
            .await
    }

    /// Runs `nxcampaign run <flags> <job>` with the sandbox's credentials.
    pub async fn run_with_flags(&self, flags: &[&str]) -> Output {
        nxcampaign(&self.db())
            .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
            .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
            .arg("run")
            .args(flags)
            .arg(self.job_path())
            .output()
            .await
            .expect("nxcampaign runs")
    }

    /// Runs `nxcampaign ingest <job>`, which needs no credentials.
    pub async fn ingest(&self) -> Output {
        nxcampaign(&self.db())
            .arg("ingest")
            .arg(self.job_path())
            .output()
            .await
            .expect("nxcampaign ingest runs")
    }

    pub async fn run_with_key_secret(&self, key: &str, secret: &str) -> Output {
        nxcampaign(&self.db())
            .env("NXLINK_ACCESS_KEY", key)
            .env("NXLINK_ACCESS_SECRET", secret)
            .arg("run")
            .arg(self.job_path())
            .output()
            .await
            .expect("nxcampaign runs")
    }

    /// Starts `nxcampaign run` without waiting for it.
    pub fn spawn_run(&self) -> Child {
        self.spawn_run_with_env(&[])
    }

    /// Starts `nxcampaign run <flags> <job>`, stderr piped.
    pub fn spawn_run_with_flags(&self, flags: &[&str]) -> Child {
        nxcampaign(&self.db())
            .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
            .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
            .arg("run")
            .args(flags)
            .arg(self.job_path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nxcampaign starts")
    }

    /// Starts `nxcampaign run` with stdout and stderr piped.
    pub fn spawn_run_piped(&self) -> Child {
        nxcampaign(&self.db())
            .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
            .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
            .arg("run")
            .arg(self.job_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nxcampaign starts")
    }

    /// Starts `nxcampaign run` with extra environment variables.
    pub fn spawn_run_with_env(&self, env: &[(&str, &str)]) -> Child {
        nxcampaign(&self.db())
            .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
            .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
            .envs(env.iter().copied())
            .arg("run")
            .arg(self.job_path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nxcampaign starts")
    }

    /// `resend <campaign> --uncertain --batch <seq>`.
    pub async fn resend_uncertain(&self, seq: u32) -> Output {
        nxcampaign(&self.db())
            .args(["resend", &self.name, "--uncertain", "--batch"])
            .arg(seq.to_string())
            .output()
            .await
            .expect("resend runs")
    }

    /// `nxcampaign <command> <job> <flags>` with the sandbox's credentials.
    pub async fn with_credentials(&self, command: &str, flags: &[&str]) -> Output {
        self.with_credentials_at(0, command, flags).await
    }

    /// The same in a world moved `ms` ahead (behind when negative): this
    /// process's clock is shifted; the sandbox's must be moved with it
    /// (see [`Campaign::at`]).
    pub async fn with_credentials_at(&self, ms: i64, command: &str, flags: &[&str]) -> Output {
        nxcampaign(&self.db())
            .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
            .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
            .env(nxcampaign::clock::TEST_OFFSET_VAR, ms.to_string())
            .arg(command)
            .arg(self.job_path())
            .args(flags)
            .output()
            .await
            .expect("nxcampaign runs")
    }

    /// `nxcampaign <command> <job> <flags>` with the credentials, as if `ms`
    /// had passed (or, negative, as if it were that long ago): the sandbox's
    /// clock moves with this command's, and back after it.
    pub async fn at(&self, sandbox: &Sandbox, ms: i64, command: &str, flags: &[&str]) -> Output {
        sandbox.set_clock_ahead(ms);
        let output = self.with_credentials_at(ms, command, flags).await;
        sandbox.set_clock_ahead(0);
        output
    }

    /// `status <campaign> --json`, parsed.
    pub async fn status(&self) -> serde_json::Value {
        let output = nxcampaign(&self.db())
            .args(["status", &self.name, "--json"])
            .output()
            .await
            .expect("status runs");
        assert_success(&output);
        serde_json::from_slice(&output.stdout).expect("status prints JSON")
    }

    /// `orders <campaign> --format csv`, as order id → (state, line).
    pub async fn order_states(&self) -> HashMap<String, String> {
        self.orders_csv()
            .await
            .into_iter()
            .skip(1)
            .filter(|row| !row[0].is_empty())
            .filter(|row| row[2] != "duplicate" && row[2] != "invalid")
            .map(|row| (row[0].clone(), row[2].clone()))
            .collect()
    }

    /// Every row of `orders <campaign> --format csv`, header first.
    pub async fn orders_csv(&self) -> Vec<Vec<String>> {
        let output = nxcampaign(&self.db())
            .args(["orders", &self.name, "--format", "csv"])
            .output()
            .await
            .expect("orders runs");
        assert_success(&output);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&output.stdout[..]);
        reader
            .records()
            .map(|r| r.expect("csv row").iter().map(str::to_owned).collect())
            .collect()
    }
}

/// The real binary with its ledger at `db` and no credentials in its
/// environment unless a test adds them.
pub fn nxcampaign(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nxcampaign"));
    command
        .env_remove("NXLINK_ACCESS_KEY")
        .env_remove("NXLINK_ACCESS_SECRET")
        .env_remove("NXLINK_BASE_URL")
        .env("NXCAMPAIGN_DB", db)
        .kill_on_drop(true);
    command
}

/// A valid Hong Kong mobile number, different for every `i` below 90 000.
pub fn hk_number(i: usize) -> String {
    // 51[0-46-9]xxxxx is a mobile range.
    const THIRD: [char; 9] = ['0', '1', '2', '3', '4', '6', '7', '8', '9'];
    assert!(i < 90_000, "only 90 000 distinct numbers");
    let number = format!("51{}{:05}", THIRD[i / 10_000], i % 10_000);
    debug_assert!(
        Phone::parse(&number, Country::parse("HK").unwrap()).is_ok(),
        "{number}"
    );
    number
}

pub fn exit_code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that `child` (spawned with piped output) stays under `mib` MiB
/// of memory until it exits, and returns its output. It samples the
/// child's own high-water mark since its exec (`VmHWM`), every few
/// milliseconds: unlike `getrusage`'s figure for children, which starts
/// from this test process's size at the fork, it counts the child alone.
pub async fn assert_peaks_under_mib(child: Child, mib: u64) -> Output {
    let pid = child.id().expect("the child is running");
    let done = tokio::spawn(child.wait_with_output());
    let mut peak_kib = 0;
    while !done.is_finished() {
        let high_water = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))
                    .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
            });
        peak_kib = peak_kib.max(high_water.unwrap_or(0));
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let output = done.await.expect("joined").expect("the child ends");
    assert!(peak_kib > 0, "the child's memory was never sampled");
    assert!(peak_kib < mib * 1024, "the child peaked at {peak_kib} KiB");
    output
}

/// Asserts that a command exited with `code` and said `needle` on stderr.
pub fn assert_exit_saying(output: &Output, code: i32, needle: &str) {
    let said = stderr(output);
    assert_eq!(exit_code(output), code, "{said}");
    assert!(said.contains(needle), "{needle:?} not in: {said}");
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        stderr(output)
    );
}

/// Counts in `status --json`: `orders.<state>` or `batches.<state>`.
pub fn count(status: &serde_json::Value, kind: &str, state: &str) -> u64 {
    status[kind][state]
        .as_u64()
        .unwrap_or_else(|| panic!("{kind}.{state} missing in {status}"))
}

/// The sum of every order state's count.
pub fn orders_total(status: &serde_json::Value) -> u64 {
    status["orders"]
        .as_object()
        .expect("orders is an object")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum()
}

/// Sends SIGTERM to a running child.
pub fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Sends a signal (`TERM`, `STOP`, `CONT`, …) to a running child.
pub fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("the child is running");
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits for a child started with piped stderr; returns its exit code and
/// what it printed there.
pub async fn finish(child: Child) -> (i32, String) {
    let output = child.wait_with_output().await.expect("the child ends");
    (exit_code(&output), stderr(&output))
}

/// Serves `router` on 127.0.0.1 with a free port (a stand-in for a gateway
/// that misbehaves); returns its base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Runs the campaign again while it is not done (a breaker pause exits
/// 75, or 1 when the run also left news), as cron would, at most `times`
/// times; returns the last output.
pub async fn run_until_settled(campaign: &Campaign, times: usize) -> Output {
    let mut output = campaign.run().await;
    for _ in 1..times {
        let pending = count(&campaign.status().await, "orders", "pending");
        if !matches!(exit_code(&output), 1 | 75) || pending == 0 {
            break;
        }
        output = campaign.run().await;
    }
    output
}

/// Polls `condition` every few milliseconds; panics after `limit`.
pub async fn wait_until(
    limit: std::time::Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// What every fault and crash test checks once the campaign is over: nobody
/// accepted twice, every order the sandbox accepted is `accepted` or
/// `uncertain` in the ledger, and nothing it never saw is `accepted`.
pub async fn assert_ledger_matches_sandbox(campaign: &Campaign, sandbox: &Sandbox, orders: usize) {
    let accepted = sandbox.accepted_orders();
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "orders accepted more than once: {twice:?}"
    );
    let states = campaign.order_states().await;
    assert_eq!(states.len(), orders);
    for (order_id, state) in &states {
        if accepted.contains_key(order_id) {
            assert!(
                state == "accepted" || state == "uncertain",
                "{order_id} reached the sandbox but is {state}"
            );
        } else {
            assert!(
                ["pending", "failed", "uncertain"].contains(&state.as_str()),
                "{order_id} never reached the sandbox but is {state}"
            );
        }
    }
}

/// A running `nxcampaign webhook` and the URL it receives calls at.
pub struct Webhook {
    pub child: Child,
    pub url: String,
    pub base: String,
}

/// Starts `nxcampaign webhook` on the campaign's ledger (made first if
/// need be), with `token` in its environment when given.
pub async fn start_webhook(campaign: &Campaign, token: Option<&str>) -> Webhook {
    start_webhook_with(campaign, token, &["--listen", "127.0.0.1:0"]).await
}

/// The same, with these flags.
pub async fn start_webhook_with(
    campaign: &Campaign,
    token: Option<&str>,
    flags: &[&str],
) -> Webhook {
    let migrate = nxcampaign(&campaign.db())
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert_success(&migrate);
    let mut command = nxcampaign(&campaign.db());
    command
        .arg("webhook")
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match token {
        Some(token) => {
            command
                .env("HOOK_TOKEN", token)
                .args(["--token-env", "HOOK_TOKEN"]);
        }
        None => {
            command.arg("--no-token");
        }
    }
    let mut child = command.spawn().expect("webhook starts");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let said = read_until(&mut lines, "receiving calls at ").await;
    let url = said
        .split("receiving calls at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    // Keep reading its stderr, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = url.trim_end_matches("/nxlink/calls").to_owned();
    Webhook { child, url, base }
}

/// Reads a child's stderr `lines` up to the first that contains `marker`
/// (within 20 s); returns every line read, that one included.
pub async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    marker: &str,
) -> String {
    let mut said = String::new();
    while !said.contains(marker) {
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {marker:?} within 20 s: {said}"))
            .unwrap()
            .unwrap_or_else(|| panic!("it ended before {marker:?}: {said}"));
        said.push_str(&line);
        said.push('\n');
    }
    said
}

pub async fn post(url: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.header("token", token);
    }
    let reply = request.send().await.expect("the webhook answers");
    (
        reply.status().as_u16(),
        reply.text().await.unwrap_or_default(),
    )
}

/// Posts every `(url, body)` at once; the HTTP status of each.
pub async fn post_at_once(posts: Vec<(String, String)>) -> Vec<u16> {
    let client = reqwest::Client::new();
    let posting = posts.into_iter().map(|(url, body)| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|reply| reply.status().as_u16())
        })
    });
    futures_util::future::join_all(posting)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().expect("answered"))
        .collect()
}

pub fn calls_of(status: &serde_json::Value) -> &serde_json::Value {
    &status["calls"]
}

/// Starting a command with a limit on its open file descriptors.
pub trait WithDescriptors {
    /// Spawns the command under `ulimit -n most` (through `sh`).
    fn spawn_with_descriptors(&mut self, most: u32) -> Child;
}

impl WithDescriptors for Command {
    fn spawn_with_descriptors(&mut self, most: u32) -> Child {
        let std = self.as_std();
        let program = std.get_program().to_owned();
        let args: Vec<std::ffi::OsString> = std.get_args().map(ToOwned::to_owned).collect();
        let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = std
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
            .collect();
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("ulimit -n {most} && exec \"$0\" \"$@\""))
            .arg(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in envs {
            match value {
                Some(value) => shell.env(key, value),
                None => shell.env_remove(key),
            };
        }
        shell.spawn().expect("sh starts")
    }
}
