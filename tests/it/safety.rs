//! No path to a second call: a holder paused or with its clock off, replies
//! that may follow a created task, redirects and huge replies, and a ledger
//! reached by a second path or lost under a run. Each test asserts from the
//! sandbox's own records that nobody was accepted twice.

use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use nxcampaign::sandbox::Faults;

use crate::support::{
    assert_exit_saying, assert_ledger_matches_sandbox, assert_peaks_under_mib, count, exit_code,
    finish, nxcampaign, serve, signal, start_sandbox, stderr, wait_until, Campaign, Mix,
};

/// Run A of a campaign of 300 contacts in three batches (sent one at a
/// time, lease stale after 1 s, vendor window 1 s) is paused with SIGSTOP
/// once its first request reached the sandbox, which holds that request
/// `stall_ms` before looking at it. Run B then watches A's heartbeat stand
/// still, takes over, and sends the other two batches: batch #1 is
/// uncertain. Returns the sandbox, the campaign and the paused run A.
async fn take_over_a_paused_holder(
    stall_ms: u64,
) -> (
    nxcampaign::sandbox::Sandbox,
    Campaign,
    tokio::process::Child,
) {
    let window = Faults {
        ts_window_ms: 1000,
        ..Faults::default()
    };
    let sandbox = start_sandbox(Faults {
        stall_ms,
        ..window.clone()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox)
        .with("api", "timeout_ms = 20000\nclock_window_ms = 1000")
        .with("limits", "max_in_flight = 1")
        .with("lease", "stale_after_ms = 1000");
    campaign.write_contacts(Mix::valid(300));
    let holder = campaign.spawn_run();
    wait_until(Duration::from_secs(20), "the first request arrived", || {
        sandbox.stats().requests >= 1
    })
    .await;
    signal(&holder, "STOP");
    sandbox.set_faults(window);
    // Long enough for A's heartbeat to look old by any clock: B then
    // watches it rather than calling it busy at once.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let taker = campaign.run().await;
    let message = stderr(&taker);
    assert_eq!(exit_code(&taker), 1, "batch #1 is uncertain: {message}");
    if campaign.on_sqlite() {
        assert!(message.contains("watching it"), "{message}");
        assert!(message.contains("took over"), "{message}");
    } else {
        // B worked beside A, then waited for A's batch until it presumed
        // A dead.
        assert!(
            message.contains("presumed another runner dead"),
            "{message}"
        );
    }
    assert!(message.contains("now uncertain"), "{message}");
    (sandbox, campaign, holder)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_holder_taken_over_sends_nothing_more_and_its_batch_cannot_be_resent_at_once() {
    // A's first request reaches the vendor after 300 ms and is accepted; A
    // is paused before it can record the reply.
    let (sandbox, campaign, holder) = take_over_a_paused_holder(300).await;

    // The operator re-sends at once: refused, saying until when.
    let resend = campaign.resend_uncertain(1).await;
    assert_exit_saying(&resend, 2, "refused: batch #1");
    assert_exit_saying(&resend, 2, "until");

    // A wakes up: it records nothing, sends nothing more, and says why.
    signal(&holder, "CONT");
    let (code, message) = finish(holder).await;
    assert_eq!(code, 75, "{message}");
    assert!(message.contains("taken over by another run"), "{message}");

    assert_eq!(sandbox.stats().requests, 3, "A sent one request, B two");
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "uncertain"), 1, "{status}");
    assert_eq!(count(&status, "batches", "accepted"), 2, "{status}");
    assert_eq!(sandbox.accepted_orders().len(), 300);
    assert_ledger_matches_sandbox(&campaign, &sandbox, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_held_up_past_the_vendors_window_is_refused_after_the_operator_resends() {
    // A's first request is held up on its way for 9 s: longer than the
    // vendor's window (1 s) and than the re-send fence (3 s after the
    // takeover, which comes about 2.5 s after the request).
    let (sandbox, campaign, holder) = take_over_a_paused_holder(9000).await;

    // After the fence the operator re-sends batch #1, and B sends it.
    let mut resend = campaign.resend_uncertain(1).await;
    for _ in 0..40 {
        if exit_code(&resend) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        resend = campaign.resend_uncertain(1).await;
    }
    assert_eq!(exit_code(&resend), 0, "{}", stderr(&resend));
    let rerun = campaign.run().await;
    assert_eq!(exit_code(&rerun), 0, "{}", stderr(&rerun));

    // A's held-up request finally reaches the vendor with its old ts.
    wait_until(Duration::from_secs(20), "A's request was answered", || {
        sandbox.stats().replies.get("1004").is_some_and(|n| *n >= 1)
    })
    .await;
    signal(&holder, "CONT");
    let (code, message) = finish(holder).await;
    assert_eq!(code, 75, "{message}");

    let accepted = sandbox.accepted_orders();
    assert_eq!(accepted.len(), 300);
    assert!(accepted.values().all(|n| *n == 1), "nobody twice");
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "accepted"), 3, "{status}");
    assert_ledger_matches_sandbox(&campaign, &sandbox, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_whose_clock_is_ten_minutes_behind_is_not_taken_over() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 400,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox)
        .with("limits", "max_in_flight = 1")
        .with("lease", "stale_after_ms = 1000");
    campaign.write_contacts(Mix::valid(1000));
    let holder = campaign.spawn_run_with_env(&[(nxcampaign::clock::TEST_OFFSET_VAR, "-600000")]);
    wait_until(Duration::from_secs(20), "A is sending", || {
        sandbox.stats().tasks_accepted >= 1
    })
    .await;

    // Its heartbeat reads ten minutes old to B, but keeps counting.
    let second = campaign.run().await;
    let message = stderr(&second);
    if campaign.on_sqlite() {
        assert_eq!(exit_code(&second), 75, "{message}");
        assert!(message.contains("is being run by pid"), "{message}");
    } else {
        // On PostgreSQL B works beside A, and never presumes it dead.
        assert_eq!(exit_code(&second), 0, "{message}");
        assert!(!message.contains("presumed"), "{message}");
    }

    let (code, message) = finish(holder).await;
    assert_eq!(code, 0, "{message}");
    let accepted = sandbox.accepted_orders();
    assert_eq!(accepted.len(), 1000);
    assert!(accepted.values().all(|n| *n == 1));
    assert_ledger_matches_sandbox(&campaign, &sandbox, 1000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_linked_ledger_is_refused_by_every_path() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new_on_sqlite(&sandbox);
    campaign.write_contacts(Mix::valid(200));
    assert_eq!(exit_code(&campaign.run().await), 0);
    campaign.append_contacts(Mix::valid(100));
    let link = campaign.dir.path().join("second-path.db");
    std::fs::hard_link(campaign.db(), &link).unwrap();

    for db in [link.clone(), campaign.db()] {
        let output = nxcampaign(&db)
            .env("NXLINK_ACCESS_KEY", "sandbox-key")
            .env("NXLINK_ACCESS_SECRET", "sandbox-secret")
            .arg("run")
            .arg(campaign.job_path())
            .output()
            .await
            .unwrap();
        assert_eq!(exit_code(&output), 3, "{}", stderr(&output));
        assert!(
            stderr(&output).contains("has 2 hard links"),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(
        sandbox.stats().requests,
        2,
        "nothing sent through either path"
    );
    std::fs::remove_file(&link).unwrap();
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_ledger_matches_sandbox(&campaign, &sandbox, 300).await;
}

/// Runs 1000 contacts against `faults`, where every fault creates the task
/// before answering badly: nobody is sent twice, and every batch the
/// sandbox took is accepted or uncertain.
async fn check_processed(faults: Faults, reply: &str) {
    let sandbox = start_sandbox(Faults { seed: 3, ..faults }).await;
    let mut campaign = Campaign::new(&sandbox).with("retry", "breaker_window = 100");
    campaign.write_contacts(Mix::valid(1000));
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    assert!(
        sandbox.stats().replies.get(reply).is_some_and(|n| *n >= 1),
        "{:?}",
        sandbox.stats()
    );
    // A second run sends nothing: uncertain batches wait for a person (and
    // are not news to this run: exit 0).
    let requests = sandbox.stats().requests;
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.stats().requests, requests);
    let status = campaign.status().await;
    assert!(count(&status, "batches", "uncertain") >= 1, "{status}");
    assert_eq!(count(&status, "batches", "failed"), 0, "{status}");
    assert_eq!(sandbox.accepted_orders().len(), 1000, "every batch arrived");
    assert_ledger_matches_sandbox(&campaign, &sandbox, 1000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn code_88_99_and_http_500_after_a_created_task_are_held_uncertain_never_resent() {
    let processed = [
        (
            Faults {
                code88_processed: 0.5,
                ..Faults::default()
            },
            "88_processed",
        ),
        (
            Faults {
                code99_processed: 0.5,
                ..Faults::default()
            },
            "99_processed",
        ),
        (
            Faults {
                http500_processed: 0.5,
                ..Faults::default()
            },
            "500_processed",
        ),
    ];
    for (faults, reply) in processed {
        check_processed(faults, reply).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_201_with_code_0_is_accepted_and_never_sent_again() {
    let sandbox = start_sandbox(Faults {
        reply_status: Some(201),
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.stats().requests, 3);
    assert_eq!(count(&campaign.status().await, "batches", "accepted"), 3);
    assert_ledger_matches_sandbox(&campaign, &sandbox, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_400_with_code_41000_is_rejected_with_its_code_and_never_sent_again() {
    let sandbox = start_sandbox(Faults {
        reply_status: Some(400),
        max_list: Some(50),
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    // The rejections are old news to a re-run.
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.stats().requests, 3, "each batch once");
    let rows = campaign.orders_csv().await;
    assert!(
        rows.iter()
            .skip(1)
            .all(|row| row[2] == "rejected" && row[4] == "41000"),
        "{:?}",
        &rows[..2]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_stops_the_run_naming_the_location_and_nothing_follows_it() {
    let sandbox = start_sandbox(Faults::default()).await;
    let target = format!("{}/saas/cc/openapi/ai/createandcall", sandbox.base_url());
    for status in [
        StatusCode::FOUND,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let location = target.clone();
        let redirecting = serve(axum::Router::new().fallback(move || {
            let location = location.clone();
            async move { (status, [(header::LOCATION, location)]).into_response() }
        }))
        .await;
        let mut campaign =
            Campaign::new(&sandbox).with("api", &format!("base_url = \"{redirecting}\""));
        campaign.write_contacts(Mix::valid(200));
        let output = campaign.run().await;
        let message = stderr(&output);
        assert_eq!(exit_code(&output), 3, "{message}");
        assert!(message.contains(&target), "names the Location: {message}");
        assert!(message.contains("api.base_url"), "{message}");
        let status_json = campaign.status().await;
        assert_eq!(
            count(&status_json, "batches", "pending"),
            2,
            "{status_json}"
        );
    }
    assert_eq!(sandbox.stats().requests, 0, "no redirect was followed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_gib_reply_is_uncertain_and_read_in_bounded_memory() {
    let huge = serve(axum::Router::new().fallback(|| async {
        let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
        let chunks = futures_util::stream::iter(
            (0..1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        );
        axum::body::Body::from_stream(chunks)
    }))
    .await;
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("api", &format!("base_url = \"{huge}\""));
    campaign.write_contacts(Mix::valid(100));
    let output = assert_peaks_under_mib(campaign.spawn_run_piped(), 100).await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    let rows = campaign.orders_csv().await;
    assert_eq!(rows[1][2], "uncertain");
    assert!(rows[1][5].contains("reply too large"), "{:?}", rows[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_another_machine_is_refused_before_anything_is_read() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign =
        Campaign::new(&sandbox).with("api", "base_url = \"http://gateway.example.com\"");
    campaign.write_contacts(Mix::valid(10));
    let output = campaign.run().await;
    assert_exit_saying(&output, 2, "api.allow_http");
    assert!(!campaign.db().exists(), "no ledger was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_deleted_under_a_running_process_stops_it() {
    for victim in ["ledger.db", "ledger.db-wal"] {
        let sandbox = start_sandbox(Faults {
            slow_ms: 200,
            ..Faults::default()
        })
        .await;
        let mut campaign = Campaign::new_on_sqlite(&sandbox).with("limits", "max_in_flight = 1");
        campaign.write_contacts(Mix::valid(2000));
        let run = campaign.spawn_run();
        wait_until(Duration::from_secs(20), "two requests arrived", || {
            sandbox.stats().requests >= 2
        })
        .await;
        std::fs::remove_file(campaign.dir.path().join(victim)).unwrap();
        let (code, message) = finish(run).await;
        assert_eq!(code, 3, "{victim}: {message}");
        assert!(
            message.contains("while this run had it open"),
            "{victim}: {message}"
        );
        assert!(
            sandbox.stats().requests <= 4,
            "{victim}: it stopped sending at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_authentication_stop_spends_no_retry_budget() {
    let sandbox = start_sandbox(Faults {
        reply_code: Some(1003),
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("retry", "max_attempts = 2");
    campaign.write_contacts(Mix::valid(100));
    for _ in 0..3 {
        assert_eq!(exit_code(&campaign.run().await), 3);
    }
    // With its budget whole, the batch gets both its tries against a 503.
    sandbox.set_faults(Faults {
        http503: 1.0,
        ..Faults::default()
    });
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    assert_eq!(sandbox.stats().requests, 3 + 2);
    assert_eq!(count(&campaign.status().await, "batches", "failed"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn code_1004_without_a_date_header_stops_after_one_resigned_try() {
    let sandbox = start_sandbox(Faults {
        skew_ms: 90_000,
        omit_date: true,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    let output = campaign.run().await;
    let message = stderr(&output);
    assert_eq!(exit_code(&output), 3, "{message}");
    assert!(message.contains("no Date header"), "{message}");
    assert_eq!(sandbox.stats().requests, 2, "one try, one re-signed try");
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "pending"), 1, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planned_batch_never_takes_rows_of_a_later_ingest() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(150));
    let ingest = campaign.ingest().await;
    assert_eq!(exit_code(&ingest), 0, "{}", stderr(&ingest));
    campaign.append_contacts(Mix::valid(30));
    assert_eq!(exit_code(&campaign.run().await), 0);
    let sizes: Vec<usize> = campaign
        .orders_csv()
        .await
        .iter()
        .skip(1)
        .fold(std::collections::BTreeMap::new(), |mut sizes, row| {
            *sizes.entry(row[3].parse::<u32>().unwrap()).or_insert(0) += 1;
            sizes
        })
        .into_values()
        .collect();
    assert_eq!(sizes, [100, 50, 30], "batch #2 stayed as it was planned");
    assert_ledger_matches_sandbox(&campaign, &sandbox, 180).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn derived_order_ids_differ_between_ledgers_and_stay_within_one() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut first = Campaign::new(&sandbox);
    first.write_contacts(Mix::valid(50));
    let mut second = Campaign::new(&sandbox);
    second.write_contacts(Mix::valid(50));
    for campaign in [&first, &second] {
        let ingest = campaign.ingest().await;
        assert_eq!(exit_code(&ingest), 0, "{}", stderr(&ingest));
    }
    let ids = |rows: Vec<Vec<String>>| -> Vec<String> {
        rows.into_iter().skip(1).map(|row| row[0].clone()).collect()
    };
    let first_ids = ids(first.orders_csv().await);
    let second_ids = ids(second.orders_csv().await);
    assert_eq!(first_ids.len(), 50);
    assert!(
        first_ids.iter().all(|id| !second_ids.contains(id)),
        "same campaign, same numbers, other ledger: other ids"
    );
    // Read on in the same ledger, the file keeps its ids.
    first.append_contacts(Mix::valid(5));
    let output = first.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert_eq!(ids(first.orders_csv().await)[..50], first_ids[..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quick_starts_manual_run_and_its_cron_line_use_one_ledger() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(200));
    let elsewhere = tempfile::tempdir().unwrap();
    let without_db = |cwd: &std::path::Path| {
        let mut command = nxcampaign(&campaign.db());
        command
            .env_remove("NXCAMPAIGN_DB")
            .env("NXLINK_ACCESS_KEY", "sandbox-key")
            .env("NXLINK_ACCESS_SECRET", "sandbox-secret")
            .current_dir(cwd);
        command
    };

    // Step 3: by hand, in the job's folder.
    let manual = without_db(campaign.dir.path())
        .args(["run", "job.toml"])
        .output()
        .await
        .unwrap();
    assert_exit_saying(&manual, 0, "created a NEW, empty ledger");
    let ledger = campaign.dir.path().join("nxcampaign.db");
    assert!(ledger.exists(), "the ledger is beside the job file");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&ledger).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only its owner reads the phone numbers");

    // Step 4: cron, from another folder, with the job's path.
    let cron = without_db(elsewhere.path())
        .arg("run")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&cron), 0, "{}", stderr(&cron));
    assert!(!stderr(&cron).contains("NEW"), "{}", stderr(&cron));
    assert!(
        stderr(&cron).contains(&ledger.display().to_string()),
        "{}",
        stderr(&cron)
    );
    assert_eq!(
        sandbox.stats().requests,
        2,
        "the cron run sent nobody again"
    );

    // Reports find the ledger through the job file; a wrong path is an
    // error naming it, and creates nothing.
    let status = without_db(elsewhere.path())
        .arg("status")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&status), 0, "{}", stderr(&status));
    assert!(String::from_utf8_lossy(&status.stdout).contains("spring"));
    let typo = elsewhere.path().join("ledgr.db");
    for args in [vec!["status"], vec!["orders", "spring"]] {
        let output = nxcampaign(&typo).args(&args).output().await.unwrap();
        assert_eq!(exit_code(&output), 2, "{}", stderr(&output));
        assert!(
            stderr(&output).contains("ledgr.db does not exist"),
            "{}",
            stderr(&output)
        );
    }
    assert!(!typo.exists(), "no ledger was created by a report");
}
