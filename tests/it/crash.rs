//! A real process killed with SIGKILL mid-run, then resumed.

use std::collections::BTreeSet;
use std::time::Duration;

use nxcampaign::sandbox::Faults;
use rand::{Rng, SeedableRng};

use crate::support::{
    assert_exit_saying, assert_ledger_matches_sandbox, count, exit_code, nxcampaign, sigterm,
    start_sandbox, stderr, wait_until, Campaign, Mix,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_request_resumes_without_sending_anyone_twice() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 200,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 2");
    campaign.write_contacts(Mix::valid(2000));

    let mut run = campaign.spawn_run();
    // The fifth request has just arrived and sleeps 200 ms before its reply:
    // the kill lands while it is in flight.
    wait_until(Duration::from_secs(20), "five requests arrived", || {
        sandbox.stats().requests >= 5
    })
    .await;
    run.start_kill().expect("SIGKILL sent");
    let killed = run.wait().await.expect("the run ends");
    assert!(!killed.success(), "the run was killed, not finished");
    let sent_before = sandbox.stats().requests;
    assert!(sent_before < 20, "the kill came before the end");

    sandbox.set_faults(Faults::default());
    let resumed = campaign.run().await;
    let message = stderr(&resumed);
    assert_eq!(
        exit_code(&resumed),
        1,
        "uncertain batches need attention: {message}"
    );
    assert!(
        message.contains("now uncertain"),
        "the resume says what it found: {message}"
    );

    let status = campaign.status().await;
    assert!(
        count(&status, "batches", "uncertain") >= 1,
        "the batch in flight is uncertain: {status}"
    );
    assert_eq!(count(&status, "batches", "pending"), 0);
    assert_eq!(count(&status, "batches", "sending"), 0);
    assert_ledger_matches_sandbox(&campaign, &sandbox, 2000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_of_kill_9_never_sends_anyone_twice_and_loses_nothing() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 100,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 2");
    campaign.write_contacts(Mix {
        valid: 4000,
        invalid: 20,
        duplicates: 20,
    });

    // Kill the real process at seeded random moments, resume each time.
    let mut dice = rand::rngs::StdRng::seed_from_u64(20261125);
    let mut kills = 0;
    while kills < 12 {
        let mut run = campaign.spawn_run();
        let moment = Duration::from_millis(dice.gen_range(20..300));
        tokio::select! {
            _ = run.wait() => break,
            () = tokio::time::sleep(moment) => {
                run.start_kill().expect("SIGKILL sent");
                run.wait().await.expect("the run ends");
                kills += 1;
            }
        }
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed before the campaign ended"
    );

    // Finish, then re-send only what provably never arrived.
    sandbox.set_faults(Faults::default());
    let finished = campaign.run().await;
    // 1 when the last kill left a batch `sending` (news to this run), else
    // 0: the uncertain batches of earlier runs are not news.
    assert!(
        [0, 1].contains(&exit_code(&finished)),
        "{}",
        stderr(&finished)
    );
    let accepted = sandbox.accepted_orders();
    let rows = campaign.orders_csv().await;
    let uncertain: Vec<&Vec<String>> = rows.iter().filter(|row| row[2] == "uncertain").collect();
    let never_arrived: BTreeSet<&str> = uncertain
        .iter()
        .filter(|row| !accepted.contains_key(&row[0]))
        .map(|row| row[3].as_str())
        .collect();
    let arrived: BTreeSet<&str> = uncertain
        .iter()
        .filter(|row| accepted.contains_key(&row[0]))
        .map(|row| row[3].as_str())
        .collect();
    assert!(
        never_arrived.is_disjoint(&arrived),
        "a batch arrives whole or not at all"
    );
    if !never_arrived.is_empty() {
        let mut resend = nxcampaign(&campaign.db());
        resend.args(["resend", "spring", "--uncertain"]);
        for batch in &never_arrived {
            resend.args(["--batch", batch]);
        }
        let output = resend.output().await.unwrap();
        assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
        // The re-queued batches go out; the uncertain ones that did arrive
        // are old news.
        let rerun = campaign.run().await;
        assert_eq!(exit_code(&rerun), 0, "{}", stderr(&rerun));
    }

    let accepted = sandbox.accepted_orders();
    assert_eq!(
        accepted.len(),
        4000,
        "every valid order reached the sandbox"
    );
    assert!(accepted.values().all(|n| *n == 1), "and exactly once");
    assert_ledger_matches_sandbox(&campaign, &sandbox, 4000).await;
    let status = campaign.status().await;
    assert_eq!(
        count(&status, "orders", "pending") + count(&status, "orders", "failed"),
        0
    );
    assert_eq!(
        count(&status, "batches", "uncertain") as usize,
        arrived.len(),
        "only batches that did arrive stay uncertain"
    );
    assert_eq!(
        status["rows_read"], 4040,
        "every row was read exactly once across the crashes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_of_one_campaign_started_together_dispatch_once() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 100,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 1");
    campaign.write_contacts(Mix::valid(1000));

    let (first, second) = tokio::join!(campaign.run(), campaign.run());
    let mut outcomes = [
        (exit_code(&first), stderr(&first)),
        (exit_code(&second), stderr(&second)),
    ];
    outcomes.sort();
    assert_eq!(outcomes[0].0, 0, "one run dispatched: {}", outcomes[0].1);
    if campaign.on_sqlite() {
        // One run per campaign on a SQLite ledger.
        assert_eq!(
            outcomes[1].0, 75,
            "the other was told to try later: {}",
            outcomes[1].1
        );
        assert!(
            outcomes[1]
                .1
                .contains("campaign \"spring\" is being run by pid"),
            "it names the holder: {}",
            outcomes[1].1
        );
    } else {
        // Runners share a campaign on PostgreSQL: both claim batches.
        assert_eq!(outcomes[1].0, 0, "both runs worked: {}", outcomes[1].1);
    }
    assert_eq!(sandbox.stats().requests, 10, "each batch was sent once");
    assert!(sandbox.accepted_orders().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_exits_75_with_in_flight_attempts_recorded() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 200,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 2");
    campaign.write_contacts(Mix::valid(2000));

    let mut run = campaign.spawn_run();
    wait_until(Duration::from_secs(20), "three requests arrived", || {
        sandbox.stats().requests >= 3
    })
    .await;
    sigterm(&run);
    let status = run.wait().await.expect("the run ends");
    assert_eq!(status.code(), Some(75));

    let status = campaign.status().await;
    assert_eq!(
        count(&status, "batches", "sending"),
        0,
        "nothing left mid-send: {status}"
    );
    assert_eq!(
        count(&status, "batches", "uncertain"),
        0,
        "in-flight replies were awaited: {status}"
    );
    assert!(
        count(&status, "batches", "pending") > 0,
        "it stopped early: {status}"
    );
    assert_eq!(
        count(&status, "orders", "accepted"),
        sandbox.accepted_orders().len() as u64,
        "every accepted order is recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_runtime_stops_gracefully_and_the_next_run_finishes() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 100,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 1");
    campaign.write_contacts(Mix::valid(3000));

    let output = campaign.run_with_flags(&["--max-runtime", "600ms"]).await;
    assert_exit_saying(&output, 75, "time is up");
    let status = campaign.status().await;
    assert_eq!(
        count(&status, "batches", "sending") + count(&status, "batches", "uncertain"),
        0
    );
    assert!(count(&status, "batches", "pending") > 0);

    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.accepted_orders().len(), 3000);
    assert!(sandbox.accepted_orders().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_quits_at_once_and_the_next_run_holds_the_batch() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 4000,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("api", "timeout_ms = 8000");
    campaign.write_contacts(Mix::valid(300));

    let mut run = campaign.spawn_run();
    wait_until(Duration::from_secs(20), "the first request arrived", || {
        sandbox.stats().requests >= 1
    })
    .await;
    let started = std::time::Instant::now();
    sigterm(&run);
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&run);
    let status = run.wait().await.expect("the run ends");
    assert_eq!(status.code(), Some(75));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "it did not wait for the slow reply"
    );

    sandbox.set_faults(Faults::default());
    let next = campaign.run().await;
    assert!(stderr(&next).contains("now uncertain"), "{}", stderr(&next));
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "uncertain"), 1, "{status}");
    assert_eq!(count(&status, "batches", "accepted"), 2, "{status}");
    assert!(sandbox.accepted_orders().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_campaigns_run_at_once_on_one_ledger() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 20,
        ..Faults::default()
    })
    .await;
    let mut spring = Campaign::new(&sandbox);
    spring.write_contacts(Mix::valid(3000));
    let mut autumn = Campaign::new(&sandbox).sharing_ledger_with(&spring, "autumn");
    autumn.write_contacts(Mix::valid(3000));

    let (first, second) = tokio::join!(spring.run(), autumn.run());
    assert_eq!(exit_code(&first), 0, "{}", stderr(&first));
    assert_eq!(exit_code(&second), 0, "{}", stderr(&second));
    assert_eq!(sandbox.accepted_orders().len(), 6000);
    assert_eq!(count(&spring.status().await, "orders", "accepted"), 3000);
    assert_eq!(count(&autumn.status().await, "orders", "accepted"), 3000);
}
