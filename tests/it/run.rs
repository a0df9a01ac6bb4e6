//! Whole campaigns through `nxcampaign run` against the sandbox.

use std::time::Duration;

use nxcampaign::sandbox::Faults;

use crate::support::{
    assert_ledger_matches_sandbox, assert_success, count, exit_code, finish, hk_number,
    orders_total, sigterm, start_sandbox, stderr, wait_until, Campaign, Mix,
};

const MIX: Mix = Mix {
    valid: 3000,
    invalid: 30,
    duplicates: 60,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_is_accepted_exactly_once_and_every_row_is_accounted_for() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(MIX);

    let output = campaign.run().await;
    // Invalid rows need attention: exit 1, not 0.
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));

    let accepted = sandbox.accepted_orders();
    assert_eq!(
        accepted.len(),
        MIX.valid,
        "every valid order reached the sandbox"
    );
    assert!(
        accepted.values().all(|n| *n == 1),
        "no order was accepted twice"
    );
    let stats = sandbox.stats();
    // Batches are cut before duplicates are found, and a duplicate leaves
    // its batch: 3060 numbers in batches of at most 100.
    assert_eq!(stats.requests, 31, "one request per batch");
    assert_eq!(stats.duplicate_task_names, 0, "every task name is unique");

    let status = campaign.status().await;
    let rows = (MIX.valid + MIX.invalid + MIX.duplicates) as u64;
    assert_eq!(status["campaign"], "spring");
    assert_eq!(status["rows_read"], rows);
    assert_eq!(
        orders_total(&status),
        rows,
        "counts add up to the rows read: {status}"
    );
    assert_eq!(count(&status, "orders", "accepted"), MIX.valid as u64);
    assert_eq!(count(&status, "orders", "invalid"), MIX.invalid as u64);
    assert_eq!(count(&status, "orders", "duplicate"), MIX.duplicates as u64);
    assert_eq!(count(&status, "batches", "accepted"), 31);
    for state in ["pending", "sending", "rejected", "failed", "uncertain"] {
        assert_eq!(count(&status, "batches", state), 0, "{state}");
    }

    // The ledger agrees with the sandbox order by order.
    let states = campaign.order_states().await;
    assert_eq!(states.len(), MIX.valid);
    for order_id in accepted.keys() {
        assert_eq!(
            states.get(order_id).map(String::as_str),
            Some("accepted"),
            "{order_id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_sends_nothing_and_an_appended_file_sends_only_the_new_rows() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 450,
        invalid: 5,
        duplicates: 5,
    });
    assert_eq!(exit_code(&campaign.run().await), 1);
    let requests = sandbox.stats().requests;
    assert_eq!(requests, 5);

    // The old invalid rows are not news: the re-run exits 0.
    let again = campaign.run().await;
    assert_eq!(exit_code(&again), 0, "{}", stderr(&again));
    assert_eq!(sandbox.stats().requests, requests, "a re-run sends nothing");
    assert_eq!(
        campaign.status().await["rows_read"],
        460,
        "a re-run reads nothing twice"
    );

    campaign.append_contacts(Mix {
        valid: 120,
        invalid: 1,
        duplicates: 2,
    });
    let appended = campaign.run().await;
    assert_eq!(exit_code(&appended), 1, "{}", stderr(&appended));
    let accepted = sandbox.accepted_orders();
    assert_eq!(accepted.len(), 570, "the new rows were sent");
    assert!(accepted.values().all(|n| *n == 1), "nothing was sent twice");
    // The half-full last batch of the first run was already sent, so the
    // 120 new orders fill two new batches.
    assert_eq!(sandbox.stats().requests, requests + 2);
    let status = campaign.status().await;
    assert_eq!(status["rows_read"], 460 + 123);
    assert_eq!(orders_total(&status), 460 + 123);
    assert_eq!(count(&status, "orders", "accepted"), 570);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_stops_after_one_request_with_every_batch_pending() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(1000));

    let output = campaign
        .run_with_key_secret(nxcampaign::sandbox::DEFAULT_ACCESS_KEY, "not-the-secret")
        .await;
    assert_eq!(exit_code(&output), 3);
    let message = stderr(&output);
    assert!(
        message.contains("1003") && message.contains("secret"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-secret"),
        "the secret is never printed: {message}"
    );
    assert_eq!(sandbox.stats().requests, 1, "one request, then stop");

    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "pending"), 10);
    assert_eq!(count(&status, "batches", "failed"), 0);
    assert_eq!(count(&status, "orders", "pending"), 1000);

    // With the right secret the same campaign completes.
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.accepted_orders().len(), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_reply_leaves_the_batch_uncertain_and_a_rerun_does_not_resend_it() {
    let sandbox = start_sandbox(Faults {
        drop_after: 1.0,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "max_in_flight = 1");
    campaign.write_contacts(Mix::valid(250));

    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    assert_eq!(sandbox.stats().requests, 3);
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "uncertain"), 3);
    assert_eq!(count(&status, "orders", "uncertain"), 250);

    // The vendor is healthy again; still nothing is re-sent on its own,
    // and the batches left uncertain before are not news (exit 0).
    sandbox.set_faults(Faults::default());
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(
        sandbox.stats().requests,
        3,
        "uncertain batches are never re-sent automatically"
    );
    assert!(sandbox.accepted_orders().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_batches_can_be_requeued_by_an_operator() {
    let sandbox = start_sandbox(Faults {
        http503: 1.0,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("retry", "max_attempts = 2");
    campaign.write_contacts(Mix::valid(150));
    assert_eq!(exit_code(&campaign.run().await), 1);
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "failed"), 2);
    assert_eq!(sandbox.stats().requests, 4, "two tries per batch");

    sandbox.set_faults(Faults::default());
    let resend = crate::support::nxcampaign(&campaign.db())
        .args(["resend", "spring", "--failed"])
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&resend), 0);
    assert!(
        String::from_utf8_lossy(&resend.stdout).contains("re-queued 2 failed batch(es): #1, #2")
    );
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.accepted_orders().len(), 150);
    assert_eq!(count(&campaign.status().await, "batches", "accepted"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_batch_keeps_the_vendor_code_on_every_order() {
    let sandbox = start_sandbox(Faults {
        max_list: Some(10),
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(120));
    assert_eq!(exit_code(&campaign.run().await), 1);
    let rows = campaign.orders_csv().await;
    assert_eq!(
        rows[0],
        [
            "order_id",
            "phone",
            "state",
            "batch",
            "code",
            "message",
            "line",
            "answered",
            "talk_seconds",
            "hangup_reason",
            "intent",
            "req_id",
            "attempt",
            "first_order_id"
        ]
    );
    assert_eq!(rows.len(), 121);
    for row in &rows[1..] {
        assert_eq!(row[2], "rejected");
        assert_eq!(row[4], "41000");
        assert!(row[5].contains("too many array elements"), "{row:?}");
        // The reply's id, for the vendor's support.
        assert!(row[11].starts_with("sandbox-"), "{row:?}");
    }
}

/// `run` sends while it is still reading: the first request reaches the
/// sandbox before the file's last rows are in the ledger. A stop at that
/// moment keeps what was sent and what was read (planned or not); the next
/// run reads the rest and everyone is called exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_sends_before_it_has_read_its_whole_file() {
    const ROWS: usize = 30_000;
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(ROWS));

    let run = campaign.spawn_run();
    wait_until(Duration::from_secs(30), "the first request arrived", || {
        sandbox.stats().requests >= 1
    })
    .await;
    sigterm(&run);
    let (code, said) = finish(run).await;
    assert_eq!(code, 75, "{said}");
    let status = campaign.status().await;
    let read = orders_total(&status);
    assert!(
        0 < read && read < ROWS as u64,
        "the first request left before the file was read ({read} of {ROWS} rows read): {said}"
    );
    assert!(count(&status, "orders", "accepted") > 0, "{status}");

    let rest = campaign.run().await;
    assert_success(&rest);
    let status = campaign.status().await;
    assert_eq!(
        count(&status, "orders", "accepted"),
        ROWS as u64,
        "{status}"
    );
    assert_ledger_matches_sandbox(&campaign, &sandbox, ROWS).await;
}

/// While `run` plans as it reads, a row repeating one that an earlier plan
/// already sent is still a duplicate of that first row, and is not called.
#[tokio::test(flavor = "multi_thread")]
async fn a_repeat_far_down_the_file_is_a_duplicate_of_a_row_planned_earlier() {
    const FIRST: usize = 12_000;
    const REPEATS: usize = 300;
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(FIRST));
    // The repeats come after several plans: the 40th, 80th, … row again,
    // written internationally this time.
    let mut text = std::fs::read_to_string(campaign.contacts_path()).unwrap();
    for i in 0..REPEATS {
        text.push_str(&format!("Again {i},+852 {}\n", hk_number(i * 40)));
    }
    std::fs::write(campaign.contacts_path(), text).unwrap();

    let output = campaign.run().await;
    assert_success(&output);
    let status = campaign.status().await;
    assert_eq!(
        count(&status, "orders", "accepted"),
        FIRST as u64,
        "{status}"
    );
    assert_eq!(
        count(&status, "orders", "duplicate"),
        REPEATS as u64,
        "{status}"
    );
    assert!(sandbox.accepted_orders().values().all(|n| *n == 1));
    assert_eq!(sandbox.accepted_orders().len(), FIRST);
    // Each repeat names its first row: data line i*40+1 is file line i*40+2.
    let rows = campaign.orders_csv().await;
    let duplicates: Vec<_> = rows.iter().filter(|row| row[2] == "duplicate").collect();
    assert_eq!(duplicates.len(), REPEATS);
    for (i, row) in duplicates.iter().enumerate() {
        let first = format!("same phone as line {}", i * 40 + 2);
        assert!(row[5].contains(&first), "{row:?} should say {first:?}");
    }
}
