//! The binary's command line: help, bad input, exit codes.

use nxcampaign::sandbox::Faults;

use crate::support::{exit_code, nxcampaign, start_sandbox, stderr, Campaign, Mix};

#[tokio::test]
async fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        "run",
        "check",
        "ingest",
        "status",
        "orders",
        "resend",
        "cancel",
        "campaigns",
        "forget",
        "suppress",
        "migrate",
        "completions",
        "man",
        "sandbox",
        "demo",
        "sync",
        "reconcile",
        "webhook",
    ] {
        let output = nxcampaign(&dir.path().join("l.db"))
            .args([command, "--help"])
            .output()
            .await
            .unwrap();
        assert_eq!(exit_code(&output), 0, "{command}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage: nxcampaign"),
            "{command}"
        );
    }
}

/// Shell completions and the manual page come from the same command line,
/// so every command is in them.
#[tokio::test]
async fn completions_and_the_manual_page_know_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    for shell in ["bash", "zsh", "fish"] {
        let output = nxcampaign(&db)
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert_eq!(exit_code(&output), 0, "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for command in ["check", "suppress", "forget", "--confirm-above"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
    let man = nxcampaign(&db).arg("man").output().await.unwrap();
    assert_eq!(exit_code(&man), 0);
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH nxcampaign 1"), "{page}");
    assert!(page.contains("suppress"), "{page}");
    // The overview sends readers to pages that exist.
    assert!(page.contains("nxcampaign man run"), "{page}");
    assert!(!page.contains("nxcampaign\\-run(1)"), "{page}");
    assert!(!db.exists(), "no ledger is made for them");
}

/// Each command's page says what its exit codes mean and which variables
/// it reads; `--help` says the same, wrapped to the terminal.
#[tokio::test]
async fn every_command_has_a_manual_page_with_exit_status_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    let page = |command: &'static str| {
        let mut man = nxcampaign(&db);
        man.args(["man", command]);
        async move {
            let output = man.output().await.unwrap();
            assert_eq!(exit_code(&output), 0, "{command}: {}", stderr(&output));
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
    };
    let run = page("run").await;
    assert!(run.contains(".TH nxcampaign-run 1"), "{run}");
    assert!(run.contains(".SH \"EXIT STATUS\""), "{run}");
    assert!(run.contains(".SH ENVIRONMENT"), "{run}");
    assert!(run.contains("NXLINK_ACCESS_SECRET"), "{run}");
    assert!(run.contains("\\-\\-max\\-runtime"), "{run}");
    // The global options are the command's too.
    assert!(run.contains("\\-\\-log\\-format"), "{run}");
    for command in ["status", "webhook", "reconcile", "suppress"] {
        let text = page(command).await;
        assert!(text.contains(".SH \"EXIT STATUS\""), "{command}");
        assert!(text.contains(".SH ENVIRONMENT"), "{command}");
    }
    assert!(page("webhook").await.contains("NXCAMPAIGN_WEBHOOK_TOKEN"));
    let unknown = nxcampaign(&db)
        .args(["man", "nope"])
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&unknown), 2);

    let help = nxcampaign(&db)
        .env("COLUMNS", "100")
        .args(["run", "--help"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Global options:"), "{text}");
    assert!(text.contains("Exit status:"), "{text}");
    assert!(text.contains("NXLINK_BASE_URL"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "over 100 columns: {line:?}");
    }
}

#[tokio::test]
async fn a_job_file_with_an_unknown_key_exits_2_naming_the_key() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "requests_per_minute = 5");
    campaign.write_contacts(Mix::valid(10));
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 2);
    let message = stderr(&output);
    assert!(
        message.contains("job.toml") && message.contains("requests_per_minute"),
        "{message}"
    );
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test]
async fn a_missing_credential_exits_2_naming_the_variable() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(10));
    let output = nxcampaign(&campaign.db())
        .env("NXLINK_ACCESS_KEY", "sandbox-key")
        .arg("run")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&output), 2);
    assert!(
        stderr(&output).contains("NXLINK_ACCESS_SECRET is not set"),
        "{}",
        stderr(&output)
    );
    assert_eq!(sandbox.stats().requests, 0);
    assert!(
        !campaign.db().exists(),
        "nothing was recorded before the check"
    );
}

#[tokio::test]
async fn a_contact_file_without_the_phone_column_exits_2_before_anything_is_sent() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    campaign.write_job();
    std::fs::write(campaign.contacts_path(), "name,tel\nAnn,51000001\n").unwrap();
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 2);
    let message = stderr(&output);
    assert!(
        message.contains("contacts.csv: line 1: missing column \"phone\""),
        "{message}"
    );
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test]
async fn a_missing_contact_file_exits_2_naming_it() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    campaign.write_job();
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 2);
    assert!(
        stderr(&output).contains("contacts.csv: cannot open"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn an_unknown_campaign_or_state_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    nxcampaign::ledger::Ledger::open(&nxcampaign::ledger::LedgerLocation::File(db.clone()))
        .await
        .unwrap()
        .close()
        .await;
    let output = nxcampaign(&db)
        .args(["status", "nope"])
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&output), 2);
    assert!(stderr(&output).contains("unknown campaign \"nope\""));
    let output = nxcampaign(&db)
        .args(["orders", "nope", "--state", "done"])
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&output), 2);
    assert!(stderr(&output).contains("unknown state \"done\""));
    let output = nxcampaign(&db)
        .args(["resend", "nope"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        exit_code(&output),
        2,
        "resend needs --uncertain or --failed"
    );
}

#[tokio::test]
async fn a_ledger_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("l.db");
    std::fs::write(&db, "this is not a database, and it is precious").unwrap();
    let output = nxcampaign(&db).arg("status").output().await.unwrap();
    assert_eq!(exit_code(&output), 3);
    assert!(stderr(&output).contains("l.db"), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&db).unwrap(),
        "this is not a database, and it is precious"
    );
}

#[tokio::test]
async fn status_json_has_every_state_even_at_zero() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(5));
    assert_eq!(exit_code(&campaign.run().await), 0);
    let status = campaign.status().await;
    let orders = status["orders"].as_object().unwrap();
    let batches = status["batches"].as_object().unwrap();
    let names = |o: &serde_json::Map<String, serde_json::Value>| -> Vec<String> {
        o.keys().cloned().collect()
    };
    let mut expected_orders = vec![
        "accepted",
        "cancelled",
        "duplicate",
        "failed",
        "invalid",
        "pending",
        "rejected",
        "sending",
        "settled",
        "suppressed",
        "uncertain",
    ];
    expected_orders.sort();
    assert_eq!(names(orders), expected_orders);
    let mut expected_batches = vec![
        "accepted",
        "cancelled",
        "failed",
        "pending",
        "rejected",
        "sending",
        "uncertain",
    ];
    expected_batches.sort();
    assert_eq!(names(batches), expected_batches);
    assert_eq!(status["orders"]["accepted"], 5);
    assert_eq!(status["orders"]["failed"], 0);
}

/// Cron has no credentials in its environment: a credentials file (the
/// job's `api.credentials_file`, or `NXLINK_CREDENTIALS_FILE`) holds them,
/// refused while others may read it; the secret is never shown.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_a_file_only_its_owner_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("api", "credentials_file = \"nxlink.env\"");
    campaign.write_contacts(Mix::valid(120));
    let file = campaign.dir.path().join("nxlink.env");
    std::fs::write(
        &file,
        format!(
            "# for cron\nexport NXLINK_ACCESS_KEY={} # the team's key\nNXLINK_ACCESS_SECRET=\"{}\"  # rotated monthly\n",
            nxcampaign::sandbox::DEFAULT_ACCESS_KEY,
            nxcampaign::sandbox::DEFAULT_ACCESS_SECRET
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (db, job) = (campaign.db(), campaign.job_path());
    let run = |env_file: Option<&std::path::Path>| {
        let mut command = nxcampaign(&db);
        if let Some(path) = env_file {
            command.env("NXLINK_CREDENTIALS_FILE", path);
        }
        command.arg("run").arg(&job).output()
    };
    let refused = run(None).await.unwrap();
    assert_eq!(exit_code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("chmod 600"),
        "{}",
        stderr(&refused)
    );
    assert!(!stderr(&refused).contains(nxcampaign::sandbox::DEFAULT_ACCESS_SECRET));
    assert_eq!(sandbox.stats().requests, 0);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ran = run(None).await.unwrap();
    assert_eq!(exit_code(&ran), 0, "{}", stderr(&ran));
    assert_eq!(sandbox.stats().orders_accepted, 120);

    // The variable names another file, which wins.
    let other = campaign.dir.path().join("other.env");
    std::fs::write(
        &other,
        "NXLINK_ACCESS_KEY=wrong\nNXLINK_ACCESS_SECRET=wrong\n",
    )
    .unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    campaign.append_contacts(Mix::valid(10));
    let wrong = run(Some(&other)).await.unwrap();
    assert_eq!(exit_code(&wrong), 3, "{}", stderr(&wrong));

    // A quote never closed is refused, naming the line, not the secret.
    std::fs::write(
        &other,
        "NXLINK_ACCESS_KEY=k\nNXLINK_ACCESS_SECRET=\"s3cret\n",
    )
    .unwrap();
    let unclosed = run(Some(&other)).await.unwrap();
    assert_eq!(exit_code(&unclosed), 2, "{}", stderr(&unclosed));
    assert!(
        stderr(&unclosed).contains("line 2"),
        "{}",
        stderr(&unclosed)
    );
    assert!(
        !stderr(&unclosed).contains("s3cret"),
        "{}",
        stderr(&unclosed)
    );
}
