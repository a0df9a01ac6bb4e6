//! `check` (the dry run) and rejects files, on the suite's backend.

use std::io::Write as _;
use std::path::Path;

use nxcampaign::sandbox::{Faults, DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET};

use crate::support::*;

/// `nxcampaign check [flags] <job>` with the sandbox's credentials.
async fn check(campaign: &Campaign, flags: &[&str]) -> std::process::Output {
    nxcampaign(&campaign.db())
        .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
        .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
        .arg("check")
        .args(flags)
        .arg(campaign.job_path())
        .output()
        .await
        .expect("check runs")
}

/// The number on the report line that starts with `label`.
fn figure(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|line| line.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no line {label:?} in:\n{report}"));
    line.split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure on {line:?}"))
}

/// A rejects file's rows after its header: (name, phone, line, reason).
fn rejects(path: &Path) -> Vec<(String, String, u64, String)> {
    let mut reader = csv::Reader::from_path(path).expect("a rejects file");
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, ["name", "phone", "line", "reason"]);
    reader
        .records()
        .map(|r| {
            let r = r.expect("a record");
            (
                r[0].to_owned(),
                r[1].to_owned(),
                r[2].parse().expect("a line number"),
                r[3].to_owned(),
            )
        })
        .collect()
}

/// Every rejected row is the contact file's row on its line, as written.
fn assert_rows_are_the_files(rows: &[(String, String, u64, String)], contacts: &Path) {
    let text = std::fs::read_to_string(contacts).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (name, phone, line, _) in rows {
        assert_eq!(
            lines[*line as usize - 1],
            format!("{name},{phone}"),
            "line {line}"
        );
    }
}

fn append_raw(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_says_what_a_run_would_send_and_writes_and_sends_nothing() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 120,
        invalid: 4,
        duplicates: 3,
    });
    campaign.run().await;
    // New rows, and five that repeat numbers the first run sent.
    campaign.append_contacts(Mix {
        valid: 50,
        invalid: 2,
        duplicates: 1,
    });
    let repeats: String = (0..5)
        .map(|i| format!("Old {i},{}\n", hk_number(i)))
        .collect();
    append_raw(&campaign.contacts_path(), &repeats);
    let ledger_bytes = campaign
        .on_sqlite()
        .then(|| std::fs::read(campaign.db()).unwrap());
    let status = campaign.status().await;
    let requests = sandbox.stats().requests;

    let rejects_path = campaign.dir.path().join("rejects.csv");
    let output = check(&campaign, &["--rejects", rejects_path.to_str().unwrap()]).await;
    assert_success(&output);
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(figure(&report, "invalid"), 6, "{report}");
    assert_eq!(figure(&report, "already in the ledger"), 120, "{report}");
    // 3 + 1 written another way, and the 5 old numbers again.
    assert_eq!(figure(&report, "duplicates in the file"), 9, "{report}");
    assert_eq!(figure(&report, "new orders"), 50, "{report}");
    assert!(report.contains("is not a valid phone number"), "{report}");
    assert!(report.contains("\"callList\""), "{report}");
    assert!(report.contains("sign: ****"), "{report}");
    assert!(!report.contains(DEFAULT_ACCESS_SECRET), "{report}");
    assert!(!report.contains(DEFAULT_ACCESS_KEY), "{report}");
    assert!(report.contains("the job can run"), "{report}");

    // Nothing written, nothing sent.
    if let Some(bytes) = ledger_bytes {
        assert!(
            std::fs::read(campaign.db()).unwrap() == bytes,
            "the ledger file changed"
        );
    }
    assert_eq!(campaign.status().await, status);
    assert_eq!(sandbox.stats().requests, requests);

    // The rejects: every invalid row, every repeat, and every row already
    // sent, as the file has them.
    let rows = rejects(&rejects_path);
    assert_eq!(rows.len(), 6 + 9 + 120);
    assert_rows_are_the_files(&rows, &campaign.contacts_path());
    for (name, _, line, reason) in &rows {
        let wanted = if name.starts_with("Nobody") {
            "invalid: "
        } else {
            "duplicate: "
        };
        assert!(reason.starts_with(wanted), "line {line}: {reason}");
    }
    assert!(rows.windows(2).all(|w| w[0].2 < w[1].2), "in file order");
    assert!(rows
        .iter()
        .any(|(_, _, _, reason)| reason.ends_with("already in the ledger")));

    // What check promised is what the run does.
    campaign.run().await;
    let after = campaign.status().await;
    assert_eq!(orders_total(&after) - orders_total(&status), 58);
    assert_eq!(
        count(&after, "orders", "accepted") - count(&status, "orders", "accepted"),
        50
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_without_credentials_says_the_job_cannot_run_and_creates_no_ledger() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(30));
    let output = nxcampaign(&campaign.db())
        .arg("check")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&output), 2, "{}", stderr(&output));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("the job cannot run"), "{report}");
    assert!(report.contains("NXLINK_ACCESS_KEY"), "{report}");
    assert_eq!(figure(&report, "new orders"), 30, "{report}");
    if campaign.on_sqlite() {
        assert!(!campaign.db().exists(), "check created a ledger");
    }
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_writes_the_rows_it_set_aside_and_only_those_to_its_rejects_file() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 60,
        invalid: 3,
        duplicates: 2,
    });
    let first = campaign.dir.path().join("first.csv");
    let output = campaign
        .run_with_flags(&["--rejects", first.to_str().unwrap()])
        .await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    let rows = rejects(&first);
    assert_eq!(rows.len(), 5);
    assert_rows_are_the_files(&rows, &campaign.contacts_path());
    assert_eq!(
        rows.iter().filter(|r| r.3.starts_with("invalid: ")).count(),
        3
    );

    // The next run reads only what was appended: its rejects are its own.
    campaign.append_contacts(Mix {
        valid: 20,
        invalid: 1,
        duplicates: 0,
    });
    let second = campaign.dir.path().join("second.csv");
    campaign
        .run_with_flags(&["--rejects", second.to_str().unwrap()])
        .await;
    let rows = rejects(&second);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].0.starts_with("Nobody"));
    assert_rows_are_the_files(&rows, &campaign.contacts_path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejects_file_from_a_crlf_contact_file_has_no_stray_carriage_return() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    // What Excel writes: CRLF line ends.
    std::fs::write(
        campaign.contacts_path(),
        format!("name,phone\r\nAnn,{}\r\nBen,12-3\r\n", hk_number(1)),
    )
    .unwrap();
    campaign.write_job();
    let path = campaign.dir.path().join("rejects.csv");
    let output = check(&campaign, &["--rejects", path.to_str().unwrap()]).await;
    assert_success(&output);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains('\r'), "{text:?}");
    let rows = rejects(&path);
    assert_eq!(rows[0].1, "12-3");
}

/// A file's mode bits.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn every_file_with_numbers_or_outcomes_is_its_owners_alone() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 50,
        invalid: 2,
        duplicates: 0,
    });
    let dir = campaign.dir.path().to_owned();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let run = campaign
        .run_with_flags(&[
            "--rejects",
            &file("rejects.csv"),
            "--summary-json",
            &file("summary.json"),
            "--metrics-file",
            &file("metrics.prom"),
        ])
        .await;
    assert_eq!(exit_code(&run), 1, "{}", stderr(&run));
    let export = nxcampaign(&campaign.db())
        .args(["orders", &campaign.name, "--output", &file("orders.csv")])
        .output()
        .await
        .unwrap();
    assert_success(&export);
    let report = nxcampaign(&campaign.db())
        .args(["report", &campaign.name, "--html", &file("report.html")])
        .output()
        .await
        .unwrap();
    assert_success(&report);
    for name in [
        "rejects.csv",
        "summary.json",
        "metrics.prom",
        "orders.csv",
        "report.html",
    ] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_output_flag_writes_over_the_campaigns_own_files() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign =
        Campaign::new_on_sqlite(&sandbox).with("suppression", "files = [\"dnc.txt\"]");
    std::fs::write(
        campaign.dir.path().join("dnc.txt"),
        format!("+852{}\n", hk_number(80_000)),
    )
    .unwrap();
    campaign.write_contacts(Mix::valid(120));
    assert_success(&campaign.run().await);
    let ledger = campaign.db();
    let wal = std::path::PathBuf::from(format!("{}-wal", ledger.display()));
    let protected = [
        (ledger.clone(), "the ledger"),
        (campaign.contacts_path(), "contact file"),
        (campaign.job_path(), "the job file"),
        (campaign.dir.path().join("dnc.txt"), "do-not-call"),
    ];
    let before: Vec<Vec<u8>> = protected
        .iter()
        .map(|(path, _)| std::fs::read(path).unwrap())
        .collect();
    let job = campaign.job_path().to_string_lossy().into_owned();
    for (path, what) in protected.iter().chain([&(wal.clone(), "-wal")]) {
        let path = path.to_string_lossy().into_owned();
        let attempts: Vec<Vec<&str>> = vec![
            vec!["check", "--rejects", &path, &job],
            vec!["run", "--rejects", &path, &job],
            vec!["run", "--summary-json", &path, &job],
            vec!["run", "--metrics-file", &path, &job],
            vec!["orders", &job, "--output", &path],
            vec!["report", &job, "--html", &path],
        ];
        for args in attempts {
            let output = nxcampaign(&ledger)
                .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
                .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
                .args(&args)
                .output()
                .await
                .unwrap();
            assert_eq!(exit_code(&output), 2, "{args:?}: {}", stderr(&output));
            assert!(
                stderr(&output).contains(what),
                "{args:?}: {}",
                stderr(&output)
            );
        }
    }
    for ((path, _), bytes) in protected.iter().zip(&before) {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{}", path.display());
    }
    // Nor over any other SQLite database.
    let other = campaign.dir.path().join("archive.db");
    std::fs::copy(&ledger, &other).unwrap();
    let output = nxcampaign(&ledger)
        .args(["orders", &job, "--output", other.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_exit_saying(&output, 2, "SQLite database");
    assert_eq!(sandbox.stats().orders_accepted_twice, 0);
}
