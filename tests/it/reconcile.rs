//! Reconciliation: uncertain batches settled from the vendor's call
//! records read whole (every page of the account's records, which are
//! every campaign's), never from a partial look, never "lost" for a task
//! that does not start at once, anchored on the real send time; and calls
//! that belong only to the orders that made them.

use std::time::Duration;

use nxcampaign::sandbox::{CallSim, Faults};

use crate::support::*;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

fn now_ms() -> i64 {
    nxcampaign::clock::now_ms()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_accepts_batches_with_calls_and_resends_lost_ones_only_when_asked() {
    reconcile_case(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_asks_for_each_orders_calls_when_the_job_has_the_team_id() {
    reconcile_case(Some(4242)).await;
}

/// Reconciliation from start to end; with a team id the vendor is asked
/// order by order (`cdr/queryByOrderId`), without one through `cdr/page`.
async fn reconcile_case(tenant_id: Option<u64>) {
    // A third of the requests create their task and still answer 88; a
    // third are refused with 88 before anything is created. Both leave
    // their batches uncertain.
    let sandbox = start_sandbox(Faults {
        code88_processed: 0.35,
        code88: 0.35,
        seed: 7,
        ..Faults::default()
    })
    .await;
    let api = match tenant_id {
        Some(id) => format!("clock_window_ms = 1000\ntenant_id = {id}"),
        None => "clock_window_ms = 1000".to_owned(),
    };
    let mut campaign = Campaign::new(&sandbox).with("api", &api);
    campaign.write_contacts(Mix::valid(1000));
    // The account's other campaigns made 3 000 calls just before this one
    // started: a scan lists them first.
    let now = now_ms();
    sandbox.add_foreign_calls(3_000, now - 4 * MINUTE_MS, now, &[]);
    assert_eq!(exit_code(&campaign.run().await), 1);
    let status = campaign.status().await;
    let uncertain = count(&status, "batches", "uncertain");
    let received = sandbox.stats().tasks_accepted - count(&status, "batches", "accepted");
    assert!(received > 0 && uncertain > received, "{status}");
    sandbox.set_faults(Faults::default());

    // Ten minutes later, every call of an accepted task has been made:
    // batches whose orders have calls are accepted; the others wait.
    let later = 10 * MINUTE_MS;
    let first = campaign.at(&sandbox, later, "reconcile", &[]).await;
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    assert_eq!(exit_code(&first), 0, "{said}{}", stderr(&first));
    assert_eq!(
        said.matches(": accepted: the vendor has calls").count() as u64,
        received,
        "{said}"
    );
    assert_eq!(
        said.matches("still uncertain: no call yet").count() as u64,
        uncertain - received,
        "{said}"
    );
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "uncertain"), uncertain - received);
    assert_eq!(
        count(&status, "orders", "accepted"),
        sandbox.stats().orders_accepted
    );

    // Past --lost-after they are probably lost, and stay uncertain unless
    // --resend-lost is given.
    let lost = campaign
        .at(&sandbox, later, "reconcile", &["--lost-after", "5m"])
        .await;
    let said = String::from_utf8_lossy(&lost.stdout).into_owned();
    assert_eq!(exit_code(&lost), 1, "{said}");
    assert_eq!(
        said.matches("probably lost: no call").count() as u64,
        uncertain - received,
        "{said}"
    );
    assert_eq!(
        count(&campaign.status().await, "batches", "uncertain"),
        uncertain - received
    );

    // Without credentials it may look at the ledger's calls, but never
    // re-send: the vendor's records were not asked.
    let blind = nxcampaign(&campaign.db())
        .args(["reconcile", "--lost-after", "1s", "--resend-lost"])
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&blind), 2, "{}", stderr(&blind));
    assert!(
        stderr(&blind).contains("NXLINK_ACCESS_KEY"),
        "{}",
        stderr(&blind)
    );
    assert_eq!(
        count(&campaign.status().await, "batches", "uncertain"),
        uncertain - received
    );

    let resent = campaign
        .at(
            &sandbox,
            later,
            "reconcile",
            &["--lost-after", "5m", "--resend-lost"],
        )
        .await;
    let said = String::from_utf8_lossy(&resent.stdout).into_owned();
    assert_eq!(exit_code(&resent), 0, "{said}");
    assert_eq!(
        said.matches("re-queued; the next run sends it").count() as u64,
        uncertain - received,
        "{said}"
    );
    // Each says what it bets on before it is re-queued.
    assert_eq!(
        said.matches("betting it was lost").count() as u64,
        uncertain - received,
        "{said}"
    );
    assert!(
        said.find("betting it was lost") < said.find("re-queued; the next run"),
        "{said}"
    );

    // No team id: the vendor was asked page by page, never order by order.
    if tenant_id.is_none() {
        assert_eq!(sandbox.stats().cdr_order_queries, 0);
    }

    // The next run sends them: everyone was received exactly once.
    assert_success(&campaign.run().await);
    let stats = sandbox.stats();
    assert_eq!(stats.orders_accepted, 1000);
    assert_eq!(stats.orders_accepted_twice, 0);
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "accepted"), 1000, "{status}");
    assert_eq!(count(&status, "batches", "uncertain"), 0, "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_batch_is_not_resent_while_its_request_may_still_arrive() {
    // Every request is refused with 88 before any task is created: no
    // call will ever come, but the vendor's clock window (ten minutes
    // here) is not over.
    let sandbox = start_sandbox(Faults {
        code88: 1.0,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("api", "clock_window_ms = 600000");
    campaign.write_contacts(Mix::valid(200));
    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 1, "{}", stderr(&run));
    assert_eq!(count(&campaign.status().await, "batches", "uncertain"), 2);
    let early = campaign
        .with_credentials("reconcile", &["--lost-after", "1ms", "--resend-lost"])
        .await;
    let said = String::from_utf8_lossy(&early.stdout).into_owned();
    assert_eq!(exit_code(&early), 1, "{said}{}", stderr(&early));
    assert_eq!(said.matches("may still arrive until").count(), 2, "{said}");
    assert_eq!(count(&campaign.status().await, "batches", "uncertain"), 2);
    assert_eq!(sandbox.stats().orders_accepted, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_cut_short_settles_nothing_and_requeues_nothing() {
    // Every request creates its task, then answers 88: every batch is
    // uncertain, and has calls.
    let sandbox = start_sandbox(Faults {
        code88_processed: 1.0,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("api", "clock_window_ms = 1000");
    campaign.write_contacts(Mix::valid(300));
    let now = now_ms();
    sandbox.add_foreign_calls(3_000, now - 4 * MINUTE_MS, now, &[]);
    assert_eq!(exit_code(&campaign.run().await), 1);
    assert_eq!(count(&campaign.status().await, "batches", "uncertain"), 3);

    // The gateway answers ten pages, then stops answering mid-way.
    sandbox.set_faults(Faults {
        queries_answered: Some(10),
        ..Faults::default()
    });
    let cut = campaign
        .at(
            &sandbox,
            3 * HOUR_MS,
            "reconcile",
            &["--lost-after", "1m", "--resend-lost"],
        )
        .await;
    let said = stdout(&cut);
    assert_eq!(exit_code(&cut), 75, "{said}{}", stderr(&cut));
    assert_eq!(said.matches("could not be read whole").count(), 3, "{said}");
    assert!(
        !said.contains("re-queued") && !said.contains("accepted:"),
        "{said}"
    );
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "uncertain"), 3, "{status}");
    assert_eq!(sandbox.stats().cdr_page_queries, 10);

    // Answered whole, the same look accepts all three.
    sandbox.set_faults(Faults::default());
    let whole = campaign
        .at(
            &sandbox,
            3 * HOUR_MS,
            "reconcile",
            &["--lost-after", "1m", "--resend-lost"],
        )
        .await;
    assert_eq!(exit_code(&whole), 0, "{}", stdout(&whole));
    assert_eq!(stdout(&whole).matches(": accepted:").count(), 3);
    assert_success(&campaign.run().await);
    assert_eq!(sandbox.stats().orders_accepted_twice, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_after_a_takeover_hours_later_looks_from_the_real_send() {
    // The task is created, and its reply never comes back in time: the run
    // is killed while the batch is `sending`.
    let sandbox = start_sandbox(Faults {
        slow_ms: 60_000,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox).with("api", "timeout_ms = 120000");
    campaign.write_contacts(Mix::valid(100));
    let mut run = campaign.spawn_run();
    wait_until(Duration::from_secs(20), "the task is created", || {
        sandbox.stats().tasks_accepted == 1
    })
    .await;
    run.start_kill().unwrap();
    let _ = run.wait().await;
    sandbox.set_faults(Faults::default());

    // Three hours later a run takes over: the batch becomes uncertain then.
    let taken = campaign.at(&sandbox, 3 * HOUR_MS, "run", &[]).await;
    assert_eq!(exit_code(&taken), 1, "{}", stderr(&taken));
    assert_eq!(count(&campaign.status().await, "batches", "uncertain"), 1);

    // Its calls were made at the real send, hours before the takeover.
    let settled = campaign
        .at(
            &sandbox,
            3 * HOUR_MS + 10 * MINUTE_MS,
            "reconcile",
            &["--lost-after", "1h", "--resend-lost"],
        )
        .await;
    let said = stdout(&settled);
    assert_eq!(exit_code(&settled), 0, "{said}{}", stderr(&settled));
    assert!(said.contains("batch 1: accepted"), "{said}");
    // The message shows when it was really sent, not the takeover.
    let sent = said
        .split("last sent ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|at| at.parse::<jiff::Timestamp>().ok())
        .expect("a send time")
        .as_millisecond();
    assert!((sent - now_ms()).abs() < 10 * MINUTE_MS, "{said}");
    assert_success(&campaign.run().await);
    assert_eq!(sandbox.stats().orders_accepted_twice, 0);
    assert_eq!(sandbox.stats().tasks_accepted, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_started_by_hand_is_never_called_lost() {
    // Manual start: the vendor creates the task, and dials only when
    // someone starts it, three hours later.
    let sandbox = start_sandbox(Faults {
        code88_processed: 1.0,
        ..Faults::default()
    })
    .await;
    sandbox.set_calls(CallSim {
        delay_ms: 3 * HOUR_MS as u64,
        ..CallSim::default()
    });
    let mut campaign = Campaign::new(&sandbox)
        .with("task", "startup_type = 1")
        .with("api", "clock_window_ms = 1000");
    campaign.write_contacts(Mix::valid(200));
    assert_eq!(exit_code(&campaign.run().await), 1);

    let early = campaign
        .at(
            &sandbox,
            HOUR_MS,
            "reconcile",
            &["--lost-after", "30m", "--resend-lost"],
        )
        .await;
    let said = stdout(&early);
    assert_eq!(exit_code(&early), 1, "{said}{}", stderr(&early));
    assert_eq!(said.matches("proves nothing").count(), 2, "{said}");
    assert!(
        !said.contains("re-queued") && !said.contains("betting"),
        "{said}"
    );
    // A run sends nothing again.
    let requests = sandbox.stats().requests;
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.stats().requests, requests);

    // Once the calls come, they settle it.
    let late = campaign
        .at(&sandbox, 4 * HOUR_MS, "reconcile", &["--resend-lost"])
        .await;
    assert_eq!(
        stdout(&late).matches(": accepted:").count(),
        2,
        "{}",
        stdout(&late)
    );
    assert_eq!(sandbox.stats().orders_accepted_twice, 0);
}

/// A contact file whose rows carry their CRM ids: `id,name,phone`.
fn with_crm_ids(campaign: &Campaign, rows: &[(String, String)]) {
    let mut text = String::from("id,name,phone\n");
    for (id, phone) in rows {
        text.push_str(&format!("{id},Someone,{phone}\n"));
    }
    std::fs::write(campaign.contacts_path(), text).unwrap();
    campaign.write_job();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_campaigns_with_the_same_crm_ids_keep_their_own_calls() {
    let sandbox = start_sandbox(Faults::default()).await;
    let first = Campaign::new(&sandbox).with("columns", "order_id = \"id\"");
    let rows: Vec<(String, String)> = (0..100)
        .map(|i| (format!("CRM{i:04}"), hk_number(i)))
        .collect();
    with_crm_ids(&first, &rows);
    assert_success(&first.run().await);

    // The second campaign repeats half of the first one's ids (other
    // people), and its requests are refused before any task is created.
    let second = Campaign::new(&sandbox)
        .sharing_ledger_with(&first, "autumn")
        .with("columns", "order_id = \"id\"")
        .with("api", "clock_window_ms = 1000");
    let rows: Vec<(String, String)> = (0..100)
        .map(|i| {
            let id = if i < 50 {
                format!("CRM{i:04}")
            } else {
                format!("NEW{i:04}")
            };
            (id, hk_number(1_000 + i))
        })
        .collect();
    with_crm_ids(&second, &rows);
    let check = nxcampaign(&second.db())
        .env("NXLINK_ACCESS_KEY", "k")
        .env("NXLINK_ACCESS_SECRET", "s")
        .arg("check")
        .arg(second.job_path())
        .output()
        .await
        .unwrap();
    assert!(
        stdout(&check).contains("order id of another campaign   50"),
        "{}",
        stdout(&check)
    );
    sandbox.set_faults(Faults {
        code88: 1.0,
        ..Faults::default()
    });
    assert_eq!(exit_code(&second.run().await), 1);
    let status = second.status().await;
    assert_eq!(count(&status, "orders", "duplicate"), 50, "{status}");
    assert_eq!(count(&status, "orders", "uncertain"), 50, "{status}");
    let duplicates = second.orders_csv().await;
    assert!(
        duplicates
            .iter()
            .any(|row| row[5] == "order id already used by campaign \"spring\""),
        "{duplicates:?}"
    );

    // The first campaign's calls, every one of them, reach the ledger.
    sandbox.set_faults(Faults::default());
    let hook = start_webhook(&first, None).await;
    for call in sandbox.calls() {
        assert_eq!(post(&hook.url, None, call.to_string()).await.0, 200);
    }
    let made = sandbox.calls().len() as u64;
    assert_eq!(calls_of(&first.status().await)["records"], made);
    let theirs = second.status().await;
    assert_eq!(calls_of(&theirs)["orders_called"], 0, "{theirs}");
    // The second campaign's batch was never created: its calls are none.
    let settled = second
        .at(
            &sandbox,
            10 * MINUTE_MS,
            "reconcile",
            &["--lost-after", "1h"],
        )
        .await;
    assert!(
        !stdout(&settled).contains("accepted"),
        "{}",
        stdout(&settled)
    );
    assert_eq!(count(&second.status().await, "batches", "uncertain"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_ledger_on_the_same_account_takes_none_of_the_firsts_calls() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut first = Campaign::new(&sandbox);
    first.write_contacts(Mix::valid(200));
    assert_success(&first.run().await);
    // The same people in another ledger (a move to PostgreSQL, a second
    // team): its requests were refused before anything was created.
    sandbox.set_faults(Faults {
        code88: 1.0,
        ..Faults::default()
    });
    let mut second = Campaign::new(&sandbox).with("api", "clock_window_ms = 1000");
    second.write_contacts(Mix::valid(200));
    assert_eq!(exit_code(&second.run().await), 1);
    sandbox.set_faults(Faults::default());

    let hook = start_webhook(&second, None).await;
    let made = sandbox.calls();
    for call in &made {
        assert_eq!(post(&hook.url, None, call.to_string()).await.0, 200);
    }
    let synced = second.at(&sandbox, 10 * MINUTE_MS, "sync", &[]).await;
    assert_success(&synced);
    let status = second.status().await;
    assert_eq!(calls_of(&status)["records"], made.len() as u64, "{status}");
    assert_eq!(
        calls_of(&status)["unknown_order_records"],
        made.len() as u64,
        "{status}"
    );
    assert_eq!(calls_of(&status)["orders_called"], 0, "{status}");
    let settled = second
        .at(
            &sandbox,
            10 * MINUTE_MS,
            "reconcile",
            &["--lost-after", "1h"],
        )
        .await;
    assert!(
        !stdout(&settled).contains("accepted"),
        "{}",
        stdout(&settled)
    );
    assert_eq!(count(&second.status().await, "batches", "uncertain"), 2);
    assert_eq!(count(&second.status().await, "orders", "accepted"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_campaigns_calls_are_counted_but_their_numbers_are_not_kept() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new_on_sqlite(&sandbox);
    campaign.write_contacts(Mix::valid(100));
    assert_success(&campaign.run().await);
    // Another team's calls, to people this ledger never heard of.
    let strangers: Vec<String> = (0..40)
        .map(|i| format!("8526{:07}", 1_234_000 + i))
        .collect();
    let now = now_ms();
    sandbox.add_foreign_calls(400, now - 2 * MINUTE_MS, now, &strangers);
    let theirs: Vec<serde_json::Value> = sandbox.calls().into_iter().collect();
    let hook = start_webhook(&campaign, None).await;
    for call in &theirs {
        assert_eq!(post(&hook.url, None, call.to_string()).await.0, 200);
    }
    let synced = campaign.at(&sandbox, 10 * MINUTE_MS, "sync", &[]).await;
    assert_success(&synced);
    assert!(
        stdout(&synced).contains("400 of orders this ledger does not know"),
        "{}",
        stdout(&synced)
    );
    let status = campaign.status().await;
    assert_eq!(calls_of(&status)["unknown_order_records"], 400, "{status}");
    let mut hook = hook;
    sigterm(&hook.child);
    let _ = hook.child.wait().await;
    let mut bytes = std::fs::read(campaign.db()).unwrap();
    let wal = std::path::PathBuf::from(format!("{}-wal", campaign.db().display()));
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    for number in &strangers {
        assert!(
            !bytes.windows(number.len()).any(|w| w == number.as_bytes()),
            "{number} is in the ledger"
        );
    }
    assert!(
        !bytes.windows(7).any(|w| w == b"someone"),
        "their texts are in the ledger"
    );
}
