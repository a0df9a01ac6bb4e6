//! Several runners on one PostgreSQL campaign: claims that never overlap,
//! runners that die or pause, and the rate limit they share. These need a
//! server (`NXCAMPAIGN_TEST_POSTGRES`); without one they say so once and
//! pass.

use std::time::Duration;

use nxcampaign::sandbox::Faults;

use crate::support::{
    assert_ledger_matches_sandbox, count, exit_code, finish, postgres_or_skip, run_until_settled,
    signal, start_sandbox, stderr, wait_until, Campaign, Mix,
};

/// Three runners on 20,000 rows; one is killed with SIGKILL and one paused
/// past its lease, then resumed. The third finishes the campaign alone:
/// every order reached the sandbox exactly once or is held uncertain,
/// nothing is left sending, and the states add up to the rows read.
#[tokio::test(flavor = "multi_thread")]
async fn three_runners_one_killed_one_paused_send_everyone_once_or_hold_them_uncertain() {
    if postgres_or_skip().is_none() {
        return;
    }
    // The vendor refuses a request whose `ts` is a second old: one that a
    // paused runner had claimed and sends on waking is refused.
    let sandbox = start_sandbox(Faults {
        slow_ms: 20,
        ts_window_ms: 1000,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new_on_postgres(&sandbox)
        .with("api", "clock_window_ms = 1000")
        .with("limits", "requests_per_second = 40.0\nmax_in_flight = 2")
        .with("lease", "stale_after_ms = 1000");
    campaign.write_contacts(Mix {
        valid: 19_600,
        invalid: 200,
        duplicates: 200,
    });
    let killed = campaign.spawn_run_piped();
    let paused = campaign.spawn_run_piped();
    let survivor = campaign.spawn_run_piped();
    wait_until(Duration::from_secs(60), "30 requests arrived", || {
        sandbox.stats().requests >= 30
    })
    .await;
    signal(&killed, "KILL");
    signal(&paused, "STOP");
    let paused_at = sandbox.stats().requests;

    let (code, message) = finish(survivor).await;
    assert!(code == 0 || code == 1, "{code}: {message}");
    assert!(
        message.contains("presumed another runner dead"),
        "it noticed both: {message}"
    );
    assert!(
        sandbox.stats().requests > paused_at + 10,
        "it sent on alone"
    );

    // The paused runner wakes up: it claims nothing more; a request it
    // had claimed before the pause may still leave, too late to be
    // accepted, and its batch stays uncertain.
    let before = (sandbox.stats().requests, sandbox.accepted_orders().len());
    signal(&paused, "CONT");
    let (code, message) = finish(paused).await;
    assert_eq!(code, 75, "{message}");
    let after = (sandbox.stats().requests, sandbox.accepted_orders().len());
    assert!(
        after.0 <= before.0 + 2,
        "at most its requests in flight: {before:?} {after:?}"
    );
    assert_eq!(after.1, before.1, "nobody accepted after waking");
    let killed = killed.wait_with_output().await.expect("it ended");
    assert_eq!(killed.status.code(), None, "killed by a signal");

    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "sending"), 0, "{status}");
    assert_eq!(count(&status, "batches", "pending"), 0, "{status}");
    let states = ["accepted", "uncertain", "invalid", "duplicate"];
    let total: u64 = states.iter().map(|s| count(&status, "orders", s)).sum();
    assert_eq!(status["rows_read"], 20_000, "{status}");
    assert_eq!(
        total, 20_000,
        "the states add up to the rows read: {status}"
    );
    assert_eq!(count(&status, "orders", "invalid"), 200, "{status}");
    assert_eq!(count(&status, "orders", "duplicate"), 200, "{status}");
    assert_ledger_matches_sandbox(&campaign, &sandbox, 19_600).await;
    let uncertain = count(&status, "orders", "uncertain");
    assert_eq!(
        count(&status, "orders", "accepted") + uncertain,
        19_600,
        "{status}"
    );
}

/// Three runners at `requests_per_second = 20` for 20 s: together they
/// keep the rate, as the sandbox measures it.
#[tokio::test(flavor = "multi_thread")]
async fn three_runners_share_one_rate_limit() {
    if postgres_or_skip().is_none() {
        return;
    }
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new_on_postgres(&sandbox)
        .with("batching", "size = 1")
        .with("limits", "requests_per_second = 20.0\nmax_in_flight = 4");
    campaign.write_contacts(Mix::valid(1_000));
    let runners: Vec<_> = (0..3)
        .map(|_| campaign.spawn_run_with_flags(&["--max-runtime", "20s"]))
        .collect();
    for runner in runners {
        let (code, message) = finish(runner).await;
        assert_eq!(code, 75, "time is up: {message}");
    }
    let arrivals = sandbox.arrivals();
    assert!(arrivals.len() > 300, "{} requests", arrivals.len());
    // The burst at 20 requests per second is one request. The sandbox
    // sees a request when it arrives, not when its slot came: on a busy
    // machine (two cores, the whole suite at once) a request can spend a
    // while on its way while the next one is on time. Requests that
    // arrive within a second less `TRANSIT` were sent within one second,
    // as long as none spent longer than `TRANSIT` on its way.
    const TRANSIT: Duration = Duration::from_millis(200);
    let most = 20 + 1;
    for (i, start) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1) - TRANSIT)
            .count();
        assert!(
            within <= most,
            "{within} requests within {:?} from request {i}",
            Duration::from_secs(1) - TRANSIT
        );
    }
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    let mean = (arrivals.len() - 1) as f64 / span.as_secs_f64();
    assert!(
        (mean - 20.0).abs() <= 0.4,
        "mean {mean:.2} requests per second over {span:?}"
    );
    assert!(sandbox.accepted_orders().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_during_a_run_exits_75_and_loses_nothing() {
    let Some(_) = postgres_or_skip() else {
        return;
    };
    let sandbox = start_sandbox(Faults {
        slow_ms: 100,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new_on_postgres(&sandbox);
    campaign.write_contacts(Mix::valid(3_000));
    let run = campaign.spawn_run();
    wait_until(Duration::from_secs(30), "the run sends", || {
        sandbox.stats().requests >= 3
    })
    .await;
    // Every session of the ledger ends, again and again for a second, as
    // when the server restarts.
    let schema = campaign.schema().expect("a PostgreSQL ledger");
    for _ in 0..25 {
        schema.end_sessions();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let (code, said) = finish(run).await;
    assert_eq!(code, 75, "{said}");
    // The next runs finish the campaign; nobody is called twice, and
    // what the sandbox took is in the ledger.
    let output = run_until_settled(&campaign, 5).await;
    assert!(matches!(exit_code(&output), 0 | 1), "{}", stderr(&output));
    assert_ledger_matches_sandbox(&campaign, &sandbox, 3_000).await;
}
