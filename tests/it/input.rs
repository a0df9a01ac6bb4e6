//! Bad input everywhere gets a clear error naming the input, and loses
//! nothing already recorded.

use nxcampaign::sandbox::Faults;

use crate::support::{
    assert_exit_saying, assert_success, count, exit_code, nxcampaign, start_sandbox, stderr,
    Campaign, Mix,
};

/// A campaign whose contact file is exactly `contacts`.
async fn campaign_with_contacts(contacts: &[u8]) -> (nxcampaign::sandbox::Sandbox, Campaign) {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    campaign.write_job();
    std::fs::write(campaign.contacts_path(), contacts).unwrap();
    (sandbox, campaign)
}

/// Replaces the job file's text and runs it: it must exit 2 naming `needles`.
async fn check_job_refused(job: &str, needles: &[&str]) {
    let (sandbox, campaign) = campaign_with_contacts(b"name,phone\nAnn,51000001\n").await;
    std::fs::write(campaign.job_path(), job).unwrap();
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 2, "{job:?}");
    let message = stderr(&output);
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test]
async fn a_job_file_that_is_not_toml_names_the_line() {
    check_job_refused(
        "name = \"x\"\ncontacts = [unclosed\n",
        &["job.toml", "line 2"],
    )
    .await;
}

#[tokio::test]
async fn a_job_file_with_a_wrong_type_names_the_key() {
    let (_sandbox, campaign) = campaign_with_contacts(b"name,phone\n").await;
    let job = std::fs::read_to_string(campaign.job_path())
        .unwrap()
        .replace("max_in_flight = 4", "max_in_flight = \"four\"");
    check_job_refused(&job, &["job.toml", "invalid type", "max_in_flight"]).await;
}

#[tokio::test]
async fn a_negative_rate_names_the_key() {
    let (_sandbox, campaign) = campaign_with_contacts(b"name,phone\n").await;
    let job = std::fs::read_to_string(campaign.job_path())
        .unwrap()
        .replace("requests_per_second = 1000.0", "requests_per_second = -2.0");
    check_job_refused(&job, &["key `limits.requests_per_second`", "above 0"]).await;
}

#[tokio::test]
async fn every_job_value_the_vendor_cannot_take_is_refused_before_anything_is_read() {
    let (_sandbox, campaign) = campaign_with_contacts(b"name,phone\n").await;
    let job = std::fs::read_to_string(campaign.job_path()).unwrap();
    let with = |section: &str, line: &str| {
        job.replace(&format!("[{section}]\n"), &format!("[{section}]\n{line}\n"))
    };
    for (bad, needles) in [
        (
            job.replace(
                "requests_per_second = 1000.0",
                "requests_per_second = 1e-300",
            ),
            vec!["key `limits.requests_per_second`", "0.001"],
        ),
        (
            job.replace("requests_per_second = 1000.0", "requests_per_second = 1e9"),
            vec!["key `limits.requests_per_second`", "10000"],
        ),
        (
            with("task", "ratio_call_rate = 0.04"),
            vec!["key `task.ratio_call_rate`", "is sent as 0"],
        ),
        (
            with("task", "predict_call_rate = 1e308"),
            vec!["key `task.predict_call_rate`", "at most 1000"],
        ),
        (
            with("task", "startup_type = 2"),
            vec!["key `task.startup_type`", "no field for the start time"],
        ),
        (
            job.replace(
                "base_url = \"http://127.0.0.1",
                "base_url = \"http://127.0.0 .1",
            ),
            vec!["key `api.base_url`", "is not a URL"],
        ),
        (
            job.replace("base_url = \"http://127.0.0.1", "base_url = \"http://:1"),
            vec!["key `api.base_url`"],
        ),
    ] {
        check_job_refused(&bad, &needles).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_without_other_columns_sends_an_empty_json_object_not_an_empty_string() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("columns", "other = []");
    campaign.write_contacts(Mix::valid(10));
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert_eq!(sandbox.accepted_orders().len(), 10);
}

#[tokio::test]
async fn an_empty_contact_file_is_an_input_error() {
    let (sandbox, campaign) = campaign_with_contacts(b"").await;
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 2);
    assert!(
        stderr(&output).contains("contacts.csv: the contact file is empty"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_are_reported_with_their_line_and_the_rest_is_sent() {
    let contacts = [
        &b"name,phone\n"[..],
        b"Ann,51000001\n",
        b"B\xffb,51000002\n",    // not UTF-8
        b"Cat,51000003,extra\n", // ragged
        b"Dan,12\n",             // not a phone number
        b"Eve,51000005\n",
    ]
    .concat();
    let (sandbox, campaign) = campaign_with_contacts(&contacts).await;
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    assert_eq!(sandbox.accepted_orders().len(), 2);

    let rows = campaign.orders_csv().await;
    let invalid: Vec<(&str, &str)> = rows
        .iter()
        .filter(|row| row[2] == "invalid")
        .map(|row| (row[6].as_str(), row[5].as_str()))
        .collect();
    assert_eq!(
        invalid,
        [
            ("3", "column 1 is not UTF-8 text"),
            ("4", "has 3 fields, the header has 2"),
            ("5", "\"12\" is not a valid phone number"),
        ]
    );
    let status = campaign.status().await;
    assert_eq!(status["rows_read"], 5);
    assert_eq!(count(&status, "orders", "accepted"), 2);
    assert_eq!(count(&status, "orders", "invalid"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bom_crlf_quoted_fields_and_long_fields_are_read_as_meant() {
    let long_name = "x".repeat(10_000);
    let contacts = format!(
        "\u{feff}name,phone\r\n\"Lee, Ann\",51000001\r\n\"two\r\nlines\",51000002\r\n{long_name},51000003\r\nLast,51000004\r\n"
    );
    let (sandbox, campaign) = campaign_with_contacts(contacts.as_bytes()).await;
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert_eq!(sandbox.accepted_orders().len(), 4);
    let rows = campaign.orders_csv().await;
    let lines: Vec<&str> = rows[1..].iter().map(|row| row[6].as_str()).collect();
    assert_eq!(
        lines,
        ["2", "3", "5", "6"],
        "a quoted newline spans two lines"
    );
    assert!(rows[1..].iter().all(|row| row[2] == "accepted"));
}

#[tokio::test]
async fn migrate_makes_the_ledger_and_a_ledger_from_a_newer_version_is_refused() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    let db = campaign.db();
    let status = nxcampaign(&db).arg("status").output().await.unwrap();
    assert_eq!(exit_code(&status), 2, "no ledger yet: {}", stderr(&status));
    assert!(
        stderr(&status).contains("does not exist"),
        "{}",
        stderr(&status)
    );
    for said in ["created", "found"] {
        let migrate = nxcampaign(&db).arg("migrate").output().await.unwrap();
        assert_eq!(exit_code(&migrate), 0, "{}", stderr(&migrate));
        let out = String::from_utf8_lossy(&migrate.stdout);
        assert!(out.contains(&format!("{said} and up to date")), "{out}");
    }
    assert_eq!(
        exit_code(&nxcampaign(&db).arg("status").output().await.unwrap()),
        0
    );
    // A later nxcampaign would have applied a migration this one lacks.
    mark_newer(&db.to_string_lossy()).await;
    for command in ["status", "migrate"] {
        let output = nxcampaign(&db).arg(command).output().await.unwrap();
        assert_eq!(exit_code(&output), 3, "{command}");
        let message = stderr(&output);
        assert!(message.contains("newer nxcampaign"), "{command}: {message}");
    }
}

/// Records a migration from the future in the ledger's migration table.
async fn mark_newer(db: &str) {
    let record = "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, '\\x00', 0)";
    if db.starts_with("postgres") {
        use sqlx::Connection as _;
        let mut connection = sqlx::PgConnection::connect(db).await.unwrap();
        sqlx::query(record).execute(&mut connection).await.unwrap();
        connection.close().await.unwrap();
    } else {
        let connection = rusqlite::Connection::open(db).unwrap();
        connection
            .execute(&record.replace("TRUE, '\\x00'", "1, x'00'"), [])
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_ledger_stops_the_run_and_keeps_what_it_holds() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new_on_sqlite(&sandbox);
    campaign.write_contacts(Mix::valid(150));
    assert_eq!(exit_code(&campaign.run().await), 0);
    campaign.append_contacts(Mix::valid(50));
    let before = std::fs::read(campaign.db()).unwrap();
    let requests = sandbox.stats().requests;

    let _read_only = ReadOnly::make(&campaign.db());
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 3, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("ledger.db cannot be written (the file:"),
        "says so, naming the file: {}",
        stderr(&output)
    );
    assert_eq!(
        sandbox.stats().requests,
        requests,
        "nothing is sent without a ledger to record it"
    );
    drop(_read_only);
    assert_eq!(
        std::fs::read(campaign.db()).unwrap(),
        before,
        "the ledger is untouched"
    );
}

/// Makes a file read-only for as long as it lives: `chmod 444`, and for
/// root (whom modes do not stop) the immutable attribute too.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn make(path: &std::path::Path) -> ReadOnly {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
        if std::fs::OpenOptions::new().append(true).open(path).is_ok() {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "cannot make {} read-only",
                path.display()
            );
        }
        assert!(
            std::fs::OpenOptions::new().append(true).open(path).is_err(),
            "{} is still writable",
            path.display()
        );
        ReadOnly(path.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o644));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_phone_or_order_id_is_a_duplicate_naming_the_first_line() {
    let (sandbox, campaign) = campaign_with_contacts(
        b"id,name,phone\nA1,Ann,51000001\nA2,Ben,+852 5100 0001\nA1,Cat,51000003\nA4,Dan,51000004\n",
    )
    .await;
    let job = std::fs::read_to_string(campaign.job_path())
        .unwrap()
        .replace("phone = \"phone\"", "phone = \"phone\"\norder_id = \"id\"");
    std::fs::write(campaign.job_path(), job).unwrap();
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    let rows = campaign.orders_csv().await;
    let outcome: Vec<(&str, &str, &str)> = rows[1..]
        .iter()
        .map(|row| (row[0].as_str(), row[2].as_str(), row[5].as_str()))
        .collect();
    // A row set aside is no order: it shows no id (its line says which).
    assert_eq!(
        outcome,
        [
            ("A1", "accepted", "success"),
            ("", "duplicate", "same phone as line 2"),
            ("", "duplicate", "same order id as line 2"),
            ("A4", "accepted", "success"),
        ]
    );
    assert_eq!(sandbox.accepted_orders().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windows_1252_export_loses_no_accented_row_and_utf16_is_refused_by_name() {
    // What a spreadsheet exports in Western Europe: Windows-1252.
    let contacts = b"name,phone\nJos\xe9,51000001\nM\xfcller,51000002\nFran\xe7oise,51000003\n";
    let (sandbox, campaign) = campaign_with_contacts(contacts).await;
    // Read as UTF-8, every accented row is unreadable.
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    assert_eq!(sandbox.stats().orders_accepted, 0);
    let (sandbox, campaign) = campaign_with_contacts(contacts).await;
    let job = std::fs::read_to_string(campaign.job_path()).unwrap();
    std::fs::write(
        campaign.job_path(),
        job.replace(
            "phone = \"phone\"",
            "phone = \"phone\"\nencoding = \"windows-1252\"",
        ),
    )
    .unwrap();
    let output = campaign.run().await;
    assert_success(&output);
    assert_eq!(sandbox.stats().orders_accepted, 3, "{}", stderr(&output));

    // UTF-16 ("Unicode text"): refused, naming it.
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain("name,phone\n".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let (sandbox, campaign) = campaign_with_contacts(&utf16).await;
    let output = campaign.run().await;
    assert_exit_saying(&output, 2, "UTF-16");
    assert_eq!(sandbox.stats().requests, 0);
    check_job_refused(
        &job.replace(
            "phone = \"phone\"",
            "phone = \"phone\"\nencoding = \"klingon\"",
        ),
        &["columns.encoding", "klingon"],
    )
    .await;
}
