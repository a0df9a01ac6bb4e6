//! Campaigns against a sandbox that fails in every way it can: whatever
//! the mix, nobody is accepted twice and the ledger agrees with the sandbox.

use nxcampaign::sandbox::Faults;

use crate::support::{
    assert_exit_saying, assert_ledger_matches_sandbox, count, exit_code, run_until_settled,
    start_sandbox, stderr, Campaign, Mix,
};

const ORDERS: usize = 2000;

/// Runs a campaign of 2000 orders against `faults` (re-running while a
/// breaker pause says "try later") and checks the promises.
async fn check_fault_mix(faults: Faults) {
    let sandbox = start_sandbox(Faults { seed: 7, ..faults }).await;
    let mut campaign = Campaign::new(&sandbox)
        .with("api", "timeout_ms = 300")
        .with("retry", "max_attempts = 5");
    campaign.write_contacts(Mix::valid(ORDERS));
    let output = run_until_settled(&campaign, 10).await;
    assert!(
        matches!(exit_code(&output), 0 | 1),
        "the campaign settles: {}",
        stderr(&output)
    );
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "sending"), 0, "{status}");
    assert_eq!(count(&status, "batches", "pending"), 0, "{status}");
    assert_ledger_matches_sandbox(&campaign, &sandbox, ORDERS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_dropped_after_accepting_are_uncertain_never_resent() {
    check_fault_mix(Faults {
        drop_after: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_dropped_before_processing_are_never_called_accepted() {
    check_fault_mix(Faults {
        drop_before: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_503_is_retried() {
    check_fault_mix(Faults {
        http503: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_429_is_retried() {
    check_fault_mix(Faults {
        http429: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn code_99_is_held_uncertain_never_resent() {
    check_fault_mix(Faults {
        code99: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_slower_than_the_timeout_are_uncertain() {
    check_fault_mix(Faults {
        slow_ms: 800,
        slow_share: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_at_once_at_20_percent() {
    check_fault_mix(Faults {
        drop_after: 0.2,
        drop_before: 0.2,
        http503: 0.2,
        http429: 0.2,
        code99: 0.2,
        slow_ms: 800,
        slow_share: 0.2,
        ..Faults::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_skewed_server_clock_is_corrected_and_the_campaign_completes() {
    let sandbox = start_sandbox(Faults {
        skew_ms: 90_000,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(500));
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert!(stderr(&output).contains("clock"), "{}", stderr(&output));
    let stats = sandbox.stats();
    assert!(
        stats.replies.get("1004").is_some_and(|n| *n >= 1),
        "{stats:?}"
    );
    assert_eq!(sandbox.accepted_orders().len(), 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_authentication_failure_stops_after_the_first_reply_naming_its_cause() {
    for (code, cause) in [
        (1001, "header"),
        (1002, "bizType/action"),
        (1003, "secret"),
        (1005, "access key"),
    ] {
        let sandbox = start_sandbox(Faults {
            reply_code: Some(code),
            ..Faults::default()
        })
        .await;
        let mut campaign = Campaign::new(&sandbox);
        campaign.write_contacts(Mix::valid(500));
        let output = campaign.run().await;
        assert_eq!(exit_code(&output), 3, "code {code}: {}", stderr(&output));
        let message = stderr(&output);
        assert!(
            message.contains(&format!("code {code}")) && message.contains(cause),
            "{message}"
        );
        assert_eq!(
            sandbox.stats().requests,
            1,
            "code {code}: one request, then stop"
        );
        let status = campaign.status().await;
        assert_eq!(count(&status, "batches", "failed"), 0, "code {code}");
        assert_eq!(count(&status, "batches", "pending"), 5, "code {code}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_vendor_pauses_the_run_instead_of_burning_every_batch() {
    let sandbox = start_sandbox(Faults {
        http503: 1.0,
        ..Faults::default()
    })
    .await;
    let mut campaign =
        Campaign::new(&sandbox).with("retry", "max_attempts = 10\nbreaker_window = 5");
    campaign.write_contacts(Mix::valid(1000));
    let output = campaign.run().await;
    assert_exit_saying(&output, 75, "the vendor is failing");
    assert_eq!(
        sandbox.stats().requests,
        5,
        "it paused after a window of failures"
    );
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "pending"), 10);
    assert_eq!(count(&status, "batches", "failed"), 0);

    // The vendor recovers; the next run sends everything.
    sandbox.set_faults(Faults::default());
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.accepted_orders().len(), 1000);
}

/// A gateway that cannot be reached before it ever answered is a wrong
/// address (exit 3, "check api.base_url"), spending no retry budget; once
/// it has answered the campaign, the same failure is an outage (try later).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_gateway_that_never_answered_is_a_configuration_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let sandbox = start_sandbox(Faults::default()).await;
    for base_url in [
        format!("http://127.0.0.1:{closed}"),
        "https://gateway.nxlink.invalid".to_owned(),
    ] {
        let mut campaign =
            Campaign::new(&sandbox).with("api", &format!("base_url = \"{base_url}\""));
        campaign.write_contacts(Mix::valid(250));
        let run = campaign.run().await;
        assert_eq!(exit_code(&run), 3, "{base_url}: {}", stderr(&run));
        assert!(
            stderr(&run).contains("check api.base_url"),
            "{}",
            stderr(&run)
        );
        let status = campaign.status().await;
        assert_eq!(count(&status, "batches", "pending"), 3, "{base_url}");
    }

    // Answered once: the same refusal later is the vendor's outage.
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    crate::support::assert_success(&campaign.run().await);
    campaign.append_contacts(Mix::valid(100));
    let campaign = campaign.with("api", &format!("base_url = \"http://127.0.0.1:{closed}\""));
    campaign.write_job();
    let run = campaign.run().await;
    assert_ne!(exit_code(&run), 3, "{}", stderr(&run));
    assert!(
        !stderr(&run).contains("check api.base_url"),
        "{}",
        stderr(&run)
    );
}

/// A gateway whose every reply with an NXLink body carries `status`, the
/// task created or not as `faults` say: code 0 is the vendor's word.
async fn replies_under_status(
    status: u16,
    faults: Faults,
) -> (crate::support::Campaign, nxcampaign::sandbox::Sandbox) {
    let sandbox = start_sandbox(Faults {
        reply_status: Some(status),
        ..faults
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    (campaign, sandbox)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processed_503_or_429_whose_body_says_code_0_is_accepted_and_never_sent_again() {
    for status in [503, 429] {
        let (campaign, sandbox) = replies_under_status(status, Faults::default()).await;
        let output = campaign.run().await;
        assert_eq!(exit_code(&output), 0, "HTTP {status}: {}", stderr(&output));
        let states = count(&campaign.status().await, "orders", "accepted");
        assert_eq!(states, 300, "HTTP {status}");
        let stats = sandbox.stats();
        assert_eq!(stats.tasks_accepted, 3, "HTTP {status}: {stats:?}");
        assert_eq!(stats.orders_accepted_twice, 0, "HTTP {status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_whose_body_says_99_is_uncertain() {
    let (campaign, sandbox) = replies_under_status(
        503,
        Faults {
            code99_processed: 1.0,
            ..Faults::default()
        },
    )
    .await;
    assert_eq!(exit_code(&campaign.run().await), 1);
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "uncertain"), 3, "{status}");
    assert_eq!(sandbox.stats().orders_accepted_twice, 0);
    assert_eq!(sandbox.stats().tasks_accepted, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_retry_after_is_honoured_and_the_run_says_when_to_come_back() {
    // Ten minutes: longer than the job's largest backoff (20 ms here).
    let sandbox = start_sandbox(Faults {
        http503: 1.0,
        retry_after_s: 600,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    let output = campaign.run_with_flags(&["--max-runtime", "2s"]).await;
    assert_eq!(exit_code(&output), 75, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("before the next retry is due at"),
        "{}",
        stderr(&output)
    );
    // One request: the vendor said to wait, and nothing was tried before.
    assert_eq!(sandbox.stats().requests, 1);
}
