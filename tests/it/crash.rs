//! A real process killed with SIGKILL mid-run, then resumed.

use std::time::{Duration, Instant};

use nxcampaign::sandbox::{Faults, Sandbox};

use crate::support::{count, exit_code, start_sandbox, stderr, Campaign, Mix};

/// Polls `condition` every few milliseconds; panics after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What every crash test checks once the campaign is over: nobody accepted
/// twice, the ledger has every accepted order as accepted or uncertain,
/// and nothing the sandbox never saw is called accepted.
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
            assert_ne!(state, "accepted", "{order_id} never reached the sandbox");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_request_resumes_without_sending_anyone_twice() {
    let sandbox = start_sandbox(Faults {
        slow_ms: 200,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 2");
    campaign.write_contacts(Mix {
        valid: 2000,
        invalid: 0,
        duplicates: 0,
    });

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
