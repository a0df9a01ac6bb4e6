//! Output that cannot hurt: exports a spreadsheet opens safely, vendor text
//! that cannot drive the terminal, and a reader that goes away early.

use std::process::Stdio;

use nxcampaign::sandbox::Faults;
use tokio::io::AsyncBufReadExt as _;

use crate::support::{exit_code, nxcampaign, serve, start_sandbox, stderr, Campaign, Mix};

#[tokio::test(flavor = "multi_thread")]
async fn formulas_and_control_characters_from_the_file_or_the_vendor_are_made_harmless() {
    // A gateway that refuses every batch with a hostile message.
    let hostile = serve(axum::Router::new().fallback(|| async {
        axum::Json(serde_json::json!({
            "code": 41000,
            "msg": "=cmd|' /C calc'!A0 \u{1b}[2J\u{1b}[31mred",
            "reqId": "r1",
        }))
    }))
    .await;
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("api", &format!("base_url = \"{hostile}\""));
    campaign.write_contacts(Mix::valid(3));
    let mut contacts = std::fs::read_to_string(campaign.contacts_path()).unwrap();
    contacts.push_str("Mallory,\"=HYPERLINK(\"\"http://evil\"\")\"\n");
    std::fs::write(campaign.contacts_path(), contacts).unwrap();

    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 1, "{}", stderr(&run));
    assert!(!stderr(&run).contains('\u{1b}'), "{}", stderr(&run));
    assert!(stderr(&run).contains("\\u{1b}[2J"), "{}", stderr(&run));

    let rows = campaign.orders_csv().await;
    let rejected = rows.iter().find(|row| row[2] == "rejected").unwrap();
    assert!(rejected[5].starts_with("'=cmd"), "{rejected:?}");
    let invalid = rows.iter().find(|row| row[2] == "invalid").unwrap();
    assert!(invalid[1].starts_with("'=HYPERLINK"), "{invalid:?}");
    assert_eq!(rejected[4], "41000", "numbers stay numbers");

    let table = nxcampaign(&campaign.db())
        .args(["orders", "spring"])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&table.stdout);
    assert!(!shown.contains('\u{1b}'), "{shown}");
    assert!(shown.contains("\\u{1b}[31mred"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_stops_early_ends_the_output_quietly_with_exit_0() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    // More orders than `orders` reads ahead of its output (a few chunks
    // of 1 024): its reader is waiting for room when the pipe closes.
    campaign.write_contacts(Mix::valid(8000));
    assert_eq!(exit_code(&campaign.run().await), 0);

    for args in [
        vec!["orders", "spring", "--format", "csv"],
        vec!["orders", "spring"],
        vec!["status"],
    ] {
        let mut child = nxcampaign(&campaign.db())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -1`: read one line, then close the pipe.
        let stdout = child.stdout.take().unwrap();
        let mut first = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut first)
            .await
            .unwrap();
        assert!(!first.is_empty(), "{args:?}");
        let output = child.wait_with_output().await.unwrap();
        assert_eq!(exit_code(&output), 0, "{args:?}: {}", stderr(&output));
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

/// Cron runs the same job again and again: old trouble (invalid rows read,
/// a batch rejected, by earlier runs) is not news, so a re-run with nothing
/// new exits 0; new trouble exits 1 again. Off a terminal, nothing writes
/// colour codes, even with logs on.
#[tokio::test(flavor = "multi_thread")]
async fn a_cron_rerun_with_nothing_new_exits_0_without_colour_codes() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 40,
        invalid: 2,
        duplicates: 1,
    });
    let first = campaign.run().await;
    assert_eq!(exit_code(&first), 1, "{}", stderr(&first));

    let again = nxcampaign(&campaign.db())
        .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
        .env(
            "NXLINK_ACCESS_SECRET",
            nxcampaign::sandbox::DEFAULT_ACCESS_SECRET,
        )
        .env("NXCAMPAIGN_LOG", "debug")
        .env_remove("NO_COLOR")
        .arg("run")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&again), 0, "{}", stderr(&again));
    for (what, bytes) in [("stdout", &again.stdout), ("stderr", &again.stderr)] {
        assert!(!bytes.contains(&0x1b), "an escape code in {what}");
    }
    assert!(
        stderr(&again).contains("DEBUG"),
        "logs were on: {}",
        stderr(&again)
    );

    // A new invalid row is news.
    campaign.append_contacts(Mix {
        valid: 5,
        invalid: 1,
        duplicates: 0,
    });
    let news = campaign.run().await;
    assert_eq!(exit_code(&news), 1, "{}", stderr(&news));
    assert_eq!(exit_code(&campaign.run().await), 0);
}

/// Schedulers read a run's summary and metrics files: written whole at
/// every ending, the time of the last successful run carried over a
/// failed one.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_leaves_a_json_summary_and_prometheus_metrics_whatever_its_ending() {
    let sandbox = start_sandbox(Faults {
        http503: 0.3,
        seed: 7,
        ..Faults::default()
    })
    .await;
    // One request at a time: the seeded faults fall the same way on every
    // run and backend; enough tries that no batch runs out of them.
    let mut campaign = Campaign::new(&sandbox)
        .with("limits", "max_in_flight = 1")
        .with("retry", "max_attempts = 10");
    campaign.write_contacts(Mix::valid(500));
    let summary = campaign.dir.path().join("summary.json");
    let metrics = campaign.dir.path().join("nxcampaign.prom");
    let flags = [
        "--summary-json",
        summary.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ];
    let run = campaign.run_with_flags(&flags).await;
    assert_eq!(exit_code(&run), 0, "{}", stderr(&run));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["ending"], "finished");
    assert_eq!(json["campaign"], "spring");
    assert_eq!(json["orders"]["accepted"], 500);
    assert_eq!(json["read"]["rows"], 500);
    let attempts = json["attempts"].as_u64().unwrap();
    let retried = json["retries_by_reason"]["HTTP 503"].as_u64().unwrap_or(0);
    assert_eq!(attempts, 5 + retried, "{json}");
    assert!(retried > 0, "the sandbox answered 503 to some: {json}");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("nxcampaign_last_run_exit_code{campaign=\"spring\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("nxcampaign_orders{campaign=\"spring\",state=\"accepted\"} 500"),
        "{text}"
    );
    let success_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("nxcampaign_last_success_timestamp_seconds"))
            .map(str::to_owned)
    };
    let succeeded = success_line(&text).expect("a last success");

    // A failed run: its exit and error are told, the last success kept.
    campaign.append_contacts(Mix::valid(10));
    let failed = nxcampaign(&campaign.db())
        .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
        .env("NXLINK_ACCESS_SECRET", "wrong")
        .arg("run")
        .args(flags)
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&failed), 3);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["ending"], "stopped");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("nxcampaign_last_run_exit_code{campaign=\"spring\"} 3"),
        "{text}"
    );
    assert_eq!(success_line(&text), Some(succeeded));

    // A run that cannot start (no credentials) still says so.
    let unset = nxcampaign(&campaign.db())
        .arg("run")
        .args(flags)
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&unset), 2);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(json["exit_code"], 2);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("NXLINK_ACCESS_KEY"),
        "{json}"
    );
}

/// -q, -v, --color and --log-format do what they say; off a terminal,
/// every progress line starts with its time.
#[tokio::test(flavor = "multi_thread")]
async fn quiet_verbose_colour_and_json_logs_and_timestamped_progress_off_a_terminal() {
    let sandbox = start_sandbox(Faults {
        http503: 0.2,
        seed: 3,
        ..Faults::default()
    })
    .await;
    let run = |campaign: &Campaign, flags: &[&str]| {
        nxcampaign(&campaign.db())
            .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
            .env(
                "NXLINK_ACCESS_SECRET",
                nxcampaign::sandbox::DEFAULT_ACCESS_SECRET,
            )
            .env_remove("NXCAMPAIGN_LOG")
            .env_remove("NO_COLOR")
            .args(flags)
            .arg("run")
            .arg(campaign.job_path())
            .output()
    };
    let fresh = |n| {
        let mut campaign = Campaign::new(&sandbox);
        campaign.write_contacts(Mix::valid(n));
        campaign
    };

    // Default, off a terminal: timestamped progress lines, no colour.
    let plain = run(&fresh(300), &[]).await.unwrap();
    assert!([0, 1].contains(&exit_code(&plain)), "{}", stderr(&plain));
    let progress: Vec<String> = stderr(&plain)
        .lines()
        .filter(|l| l.contains("progress:") || l.contains("retry in"))
        .map(str::to_owned)
        .collect();
    assert!(!progress.is_empty(), "{}", stderr(&plain));
    for line in &progress {
        let time = line.split(' ').next().unwrap();
        assert!(time.parse::<jiff::Timestamp>().is_ok(), "{line}");
    }
    assert!(!plain.stderr.contains(&0x1b));

    // -q: no progress; the status table only when not all is well.
    let quiet = run(&fresh(300), &["-q"]).await.unwrap();
    assert!(!stderr(&quiet).contains("progress:"), "{}", stderr(&quiet));
    match exit_code(&quiet) {
        // A new ledger is worth its warning even then.
        0 => {
            assert!(quiet.stdout.is_empty());
            assert_eq!(stderr(&quiet).lines().count(), 1, "{}", stderr(&quiet));
            assert!(stderr(&quiet).contains("created a NEW"));
        }
        1 => assert!(String::from_utf8_lossy(&quiet.stdout).contains("accepted")),
        code => panic!("exit {code}: {}", stderr(&quiet)),
    }

    // -v: what the run does, batch by batch, and no SQL.
    let verbose = run(&fresh(300), &["-v"]).await.unwrap();
    let text = stderr(&verbose);
    assert!(text.contains("attempt recorded"), "{text}");
    assert!(text.contains("sending"), "{text}");
    assert!(!text.to_ascii_uppercase().contains("SELECT "), "{text}");

    // JSON lines, and colour when asked for.
    let json = run(&fresh(100), &["-v", "--log-format", "json"])
        .await
        .unwrap();
    let logs: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["fields"]["message"] == "attempt recorded"),
        "{}",
        stderr(&json)
    );
    let coloured = run(&fresh(100), &["-v", "--color", "always"])
        .await
        .unwrap();
    assert!(coloured.stderr.contains(&0x1b));
}

/// `orders` writes to a file whole, in JSON lines (`json` still works),
/// filters by state in any case and by when the batch last changed;
/// `status --format jsonl` is `status --json`.
#[tokio::test(flavor = "multi_thread")]
async fn orders_export_to_a_file_by_state_and_since_and_formats_share_their_words() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 120,
        invalid: 3,
        duplicates: 0,
    });
    campaign.run().await;
    let out = campaign.dir.path().join("accepted.jsonl");
    let export = |extra: Vec<String>| {
        let mut args = vec!["orders".to_owned(), campaign.name.clone()];
        args.extend(extra);
        nxcampaign(&campaign.db()).args(args).output()
    };
    let written = export(vec![
        "--state".into(),
        "Accepted".into(),
        "--format".into(),
        "jsonl".into(),
        "--output".into(),
        out.display().to_string(),
    ])
    .await
    .unwrap();
    assert_eq!(exit_code(&written), 0, "{}", stderr(&written));
    assert!(written.stdout.is_empty());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 120);
    assert!(lines.iter().all(|l| l["state"] == "accepted"));
    assert!(!campaign.dir.path().join("accepted.jsonl.partial").exists());

    let count_lines = |output: std::process::Output| {
        assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).lines().count()
    };
    let all = ["--format".to_owned(), "json".to_owned()];
    let since = |time: &str| {
        let mut args = all.to_vec();
        args.extend(["--since".to_owned(), time.to_owned()]);
        args
    };
    assert_eq!(count_lines(export(since("2000-01-01")).await.unwrap()), 120);
    assert_eq!(
        count_lines(export(since("2999-01-01T00:00:00Z")).await.unwrap()),
        0
    );
    assert_eq!(count_lines(export(all.to_vec()).await.unwrap()), 123);

    let status = |flags: &[&str]| {
        nxcampaign(&campaign.db())
            .args(["status", &campaign.name])
            .args(flags)
            .output()
    };
    let by_flag = status(&["--json"]).await.unwrap();
    let by_format = status(&["--format", "jsonl"]).await.unwrap();
    assert_eq!(by_flag.stdout, by_format.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_reading_and_sending_show_bars_with_totals_rate_and_eta() {
    // `script` gives the run a terminal of its own (util-linux).
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no `script` (util-linux) to give the run a terminal");
        return;
    }
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    let on_terminal = |subcommand: &str| {
        let line = format!(
            "{} {subcommand} {}",
            env!("CARGO_BIN_EXE_nxcampaign"),
            campaign.job_path().display()
        );
        let mut command = tokio::process::Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .env("NXCAMPAIGN_DB", campaign.db())
            .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
            .env(
                "NXLINK_ACCESS_SECRET",
                nxcampaign::sandbox::DEFAULT_ACCESS_SECRET,
            )
            .env_remove("NO_COLOR")
            .kill_on_drop(true);
        command
    };

    let run = on_terminal("run").output().await.unwrap();
    let screen = String::from_utf8_lossy(&run.stdout).into_owned();
    assert_eq!(exit_code(&run), 0, "{screen}");
    // The bars' last drawing: all the file read, every order sent.
    assert!(screen.contains("reading ["), "{screen}");
    assert!(screen.contains("100%"), "{screen}");
    assert!(screen.contains("300 rows"), "{screen}");
    assert!(screen.contains("sending ["), "{screen}");
    assert!(screen.contains("300/300 orders"), "{screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(screen.contains("/s"), "{screen}");
    // No bar was drawn before it had something to count.
    assert!(!screen.contains(" 0/0 "), "{screen}");
    // Notes go above the bars, whole (indicatif pads them to the
    // terminal's width rather than ending them with a line break).
    assert!(
        screen.contains(
            "ingest: 300 new row(s): 300 order(s), 0 invalid, 0 duplicate(s), 0 suppressed"
        ),
        "{screen}"
    );

    // A run with nothing new draws no bar at all.
    let rerun = on_terminal("run").output().await.unwrap();
    let screen = String::from_utf8_lossy(&rerun.stdout).into_owned();
    assert_eq!(exit_code(&rerun), 0, "{screen}");
    assert!(!screen.contains("reading ["), "{screen}");
    assert!(!screen.contains("sending ["), "{screen}");

    // Off a terminal the same run draws no bar.
    let mut again = Campaign::new(&sandbox);
    again.write_contacts(Mix::valid(30));
    let plain = again.run().await;
    assert!(!stderr(&plain).contains("sending ["), "{}", stderr(&plain));
}

/// Cron mails whatever a job prints: under -q, a run with nothing new (or
/// one that sent everything well) prints nothing at all and exits 0; one
/// that needs a look still shows its table and why.
#[tokio::test(flavor = "multi_thread")]
async fn quiet_is_silent_when_all_is_well() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(30));
    let first = campaign.run_with_flags(&["-q"]).await;
    assert_eq!(exit_code(&first), 0, "{}", stderr(&first));
    assert!(
        first.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    // The new ledger is worth a warning even under -q: a run on a new
    // ledger by mistake calls everyone again.
    assert!(
        stderr(&first).contains("created a NEW, empty ledger"),
        "{}",
        stderr(&first)
    );

    let again = campaign.run_with_flags(&["-q"]).await;
    assert_eq!(exit_code(&again), 0, "{}", stderr(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "");
    assert_eq!(stderr(&again), "");

    campaign.append_contacts(Mix {
        valid: 2,
        invalid: 1,
        duplicates: 0,
    });
    let news = campaign.run_with_flags(&["-q"]).await;
    assert_eq!(exit_code(&news), 1, "{}", stderr(&news));
    assert!(String::from_utf8_lossy(&news.stdout).contains("invalid"));
    assert!(
        stderr(&news).contains("need attention"),
        "{}",
        stderr(&news)
    );
}

/// With --log-format json, every line on stderr is a JSON object, the
/// run's notes, retries, warnings and its final error included, each with
/// a time of one fixed width.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_make_every_stderr_line_an_object() {
    let sandbox = start_sandbox(Faults {
        http503: 0.3,
        code99: 0.2,
        seed: 5,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox)
        .with("limits", "max_in_flight = 1")
        .with("batching", "size = 10");
    campaign.write_contacts(Mix {
        valid: 200,
        invalid: 2,
        duplicates: 1,
    });
    let check_lines = |output: &std::process::Output| -> Vec<serde_json::Value> {
        let text = stderr(output);
        assert!(!text.is_empty());
        text.lines()
            .map(|line| {
                let value: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(value.is_object(), "{line}");
                let time = value["timestamp"].as_str().expect("a time");
                assert_eq!(time.len(), "2026-12-02T04:19:04.810Z".len(), "{line}");
                value
            })
            .collect()
    };
    let run = campaign.run_with_flags(&["--log-format", "json"]).await;
    assert_eq!(exit_code(&run), 1, "{}", stderr(&run));
    let lines = check_lines(&run);
    let said = |needle: &str| {
        lines.iter().any(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle))
        })
    };
    assert!(said("retry in"), "{}", stderr(&run));
    assert!(said("uncertain"), "{}", stderr(&run));
    assert!(said("need attention"), "{}", stderr(&run));

    // -v adds tracing's lines, in the same shape; a failure is a line too.
    let verbose = campaign
        .run_with_flags(&["-v", "--log-format", "json"])
        .await;
    check_lines(&verbose);
    let failed = nxcampaign(&campaign.db())
        .args(["--log-format", "json", "status", "no-such-campaign"])
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&failed), 2);
    let lines = check_lines(&failed);
    assert_eq!(lines.last().unwrap()["level"], "ERROR");
}
