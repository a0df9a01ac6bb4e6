//! Redials: contacts who did not answer are called again as the job's
//! `[redial]` says, each time as a new order, from the calls the ledger
//! holds; never after an answer or an opt-out, never more often than the
//! policy allows (the vendor's own redials counted), never before the
//! spacing. Against the sandbox, on either ledger.

use std::collections::{BTreeMap, HashMap};

use nxcampaign::sandbox::{CallSim, Faults, Sandbox};
use serde_json::Value;

use crate::support::{assert_success, exit_code, nxcampaign, start_sandbox, stderr, Campaign, Mix};

const MINUTE: i64 = 60_000;

/// The real clock now (the tests move the runs' and the sandbox's clocks
/// relative to it).
fn real_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The sandbox's calls by number, in the order they began.
fn calls_by_number(sandbox: &Sandbox) -> BTreeMap<String, Vec<Value>> {
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for call in sandbox.calls() {
        let number = call["caller"].as_str().unwrap().to_owned();
        by.entry(number).or_default().push(call);
    }
    for calls in by.values_mut() {
        calls.sort_by_key(|call| call["startTime"].as_i64());
    }
    by
}

/// Calls made so far with every outcome but an answer on one dial.
fn sim(answered_share: f64, rejected_share: f64) -> CallSim {
    CallSim {
        answered_share,
        redial_share: 0.0,
        busy_share: 0.0,
        rejected_share,
        failed_share: 0.0,
        seed: 11,
        ..CallSim::default()
    }
}

/// `sync` then `run` as if `at` ms had passed.
async fn sync_and_run(campaign: &Campaign, sandbox: &Sandbox, at: i64) -> std::process::Output {
    let synced = campaign.at(sandbox, at, "sync", &[]).await;
    assert_success(&synced);
    campaign.at(sandbox, at, "run", &[]).await
}

/// Every contact who never answered is called exactly `max_attempts`
/// times, each with a new order id; an answered contact is never called
/// again; a rejected call ends a contact (not in the default `on`).
#[tokio::test(flavor = "multi_thread")]
async fn contacts_who_do_not_answer_are_called_again_up_to_max_attempts() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.3, 0.15));
    let mut campaign = Campaign::new(&sandbox)
        .with("batching", "size = 10")
        .with("redial", "max_attempts = 3\nafter = [\"10m\", \"20m\"]");
    campaign.write_contacts(Mix::valid(40));
    let first = campaign.run().await;
    assert!([0, 1].contains(&exit_code(&first)), "{}", stderr(&first));

    // Before the spacing: nothing is due.
    let early = sync_and_run(&campaign, &sandbox, 5 * MINUTE).await;
    assert!(
        stderr(&early).contains("redials: 0 planned"),
        "{}",
        stderr(&early)
    );
    // `check` foretells what the next run plans: every contact whose one
    // call ended neither answered nor rejected, once the spacing is up.
    let unanswered = calls_by_number(&sandbox)
        .values()
        .filter(|calls| calls[0]["answered"] != true && calls[0]["callStatus"] != "REJECTED")
        .count();
    assert!(unanswered > 0);
    let check_early = campaign.at(&sandbox, 5 * MINUTE, "check", &[]).await;
    assert!(
        String::from_utf8_lossy(&check_early.stdout).contains(&format!(
            "redials: 0 due now (a run plans and sends them), {unanswered} later (the next at "
        )),
        "{}",
        String::from_utf8_lossy(&check_early.stdout)
    );
    let check_due = campaign.at(&sandbox, 12 * MINUTE, "check", &[]).await;
    let said = String::from_utf8_lossy(&check_due.stdout);
    assert!(
        said.contains(&format!("redials: {unanswered} due now"))
            && said.contains(&format!("and plan and send {unanswered} redial(s)")),
        "{said}"
    );
    for at in [12, 35, 60, 90] {
        let run = sync_and_run(&campaign, &sandbox, at * MINUTE).await;
        assert!([0, 1].contains(&exit_code(&run)), "{}", stderr(&run));
    }
    assert_success(&campaign.at(&sandbox, 91 * MINUTE, "sync", &[]).await);

    let accepted = sandbox.accepted_orders();
    assert!(accepted.values().all(|n| *n == 1), "an order id sent twice");
    let by_number = calls_by_number(&sandbox);
    assert_eq!(by_number.len(), 40);
    let (mut exhausted, mut reached, mut rejected) = (0, 0, 0);
    for (number, calls) in &by_number {
        let ids: std::collections::HashSet<&str> = calls
            .iter()
            .map(|c| c["orderId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), calls.len(), "{number}: one call per order here");
        let rejected_at = calls.iter().position(|c| c["callStatus"] == "REJECTED");
        if let Some(at) = calls.iter().position(|c| c["answered"] == true) {
            assert_eq!(at + 1, calls.len(), "{number} was called after an answer");
            reached += 1;
        } else if calls.len() == 3 {
            // Out of attempts, whatever the last one's outcome.
            assert!(rejected_at.is_none_or(|at| at == 2), "{number}: {calls:?}");
            exhausted += 1;
        } else {
            assert_eq!(rejected_at, Some(calls.len() - 1), "{number}: {calls:?}");
            rejected += 1;
        }
        assert!(calls.len() <= 3, "{number}");
    }
    assert!(
        exhausted > 0 && reached > 0 && rejected > 0,
        "{exhausted} {reached} {rejected}"
    );

    // The ledger says the same: attempts and their contacts.
    let rows = campaign.orders_csv().await;
    let header = &rows[0];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (attempt, first_id, order_id) = (
        column("attempt"),
        column("first_order_id"),
        column("order_id"),
    );
    let mut per_contact: HashMap<String, Vec<u32>> = HashMap::new();
    for row in &rows[1..] {
        let contact = if row[first_id].is_empty() {
            row[order_id].clone()
        } else {
            row[first_id].clone()
        };
        per_contact
            .entry(contact)
            .or_default()
            .push(row[attempt].parse().unwrap());
    }
    assert_eq!(per_contact.len(), 40);
    for attempts in per_contact.values_mut() {
        attempts.sort_unstable();
        assert_eq!(*attempts, (1..=attempts.len() as u32).collect::<Vec<_>>());
    }
    let status = campaign.status().await;
    let funnel = &status["redials"];
    assert_eq!(funnel["exhausted"], exhausted);
    assert_eq!(funnel["reached"], reached);
    assert_eq!(funnel["ended"]["rejected"], rejected);
    assert_eq!(funnel["due_now"], 0);
    // Every row is accounted for: its first order, and its redials.
    let calls_made: usize = by_number.values().map(Vec::len).sum();
    assert_eq!(funnel["redial_orders"], calls_made - 40);
    let orders: u64 = status["orders"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(orders, 40 + (calls_made as u64 - 40), "{status}");
    assert_eq!(status["rows_read"], 40);

    // The report shows the funnel, as text and as a page.
    let html = campaign.dir.path().join("report.html");
    let report = nxcampaign(&campaign.db())
        .args(["report", &campaign.name, "--html", html.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_success(&report);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains(&format!(
            "redials of {}: {} redial order(s); {reached} contact(s) reached",
            campaign.name,
            calls_made - 40
        )) && text.contains(&format!(
            "  done: {exhausted} exhausted, 0 opted out, {rejected} ended rejected"
        )),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("id=\"redials\"") && page.contains("<td>exhausted</td><td>"),
        "{page}"
    );
}

/// A redial is planned when its contact's last call ended the spacing
/// ago, not a second before.
#[tokio::test(flavor = "multi_thread")]
async fn the_spacing_is_honoured_to_the_second() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.0, 0.0));
    let mut campaign =
        Campaign::new(&sandbox).with("redial", "max_attempts = 2\nafter = [\"10m\"]");
    campaign.write_contacts(Mix::valid(1));
    assert_success(&campaign.run().await);
    assert_success(&campaign.at(&sandbox, 2 * MINUTE, "sync", &[]).await);
    let calls = sandbox.calls();
    assert_eq!(calls.len(), 1);
    let due = calls[0]["endTime"].as_i64().unwrap() + 10 * MINUTE;

    let early = campaign
        .at(&sandbox, due - 1_000 - real_now_ms(), "run", &[])
        .await;
    assert!(
        stderr(&early).contains("redials: 0 planned"),
        "{}",
        stderr(&early)
    );
    assert_eq!(sandbox.calls().len(), 1);
    let on_time = campaign.at(&sandbox, due - real_now_ms(), "run", &[]).await;
    assert!(
        stderr(&on_time).contains("redials: 1 planned"),
        "{}",
        stderr(&on_time)
    );
    assert_eq!(sandbox.accepted_orders().len(), 2);
}

/// Between a redial's planning and its claim, its contact may answer (a
/// late delivery, the vendor's own redial) or go on the do-not-call list:
/// the claim sets it aside, and it is never sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_redial_whose_contact_answered_or_went_on_the_list_meanwhile_is_not_sent() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.0, 0.0));
    let mut campaign = Campaign::new(&sandbox).with("redial", "max_attempts = 2\nafter = [\"1m\"]");
    campaign.write_contacts(Mix::valid(3));
    assert_success(&campaign.run().await);
    assert_success(&campaign.at(&sandbox, 3 * MINUTE, "sync", &[]).await);
    // `ingest` plans the due redials and sends nothing.
    let planned = campaign.at(&sandbox, 3 * MINUTE, "ingest", &[]).await;
    assert!(
        stderr(&planned).contains("redials: 3 planned"),
        "{}",
        stderr(&planned)
    );
    assert_eq!(sandbox.accepted_orders().len(), 3);

    let first_calls = sandbox.calls();
    let numbers: Vec<String> = first_calls
        .iter()
        .map(|c| c["caller"].as_str().unwrap().to_owned())
        .collect();
    // The first contact answers after all (a late report of its call).
    let mut answered = first_calls[0].clone();
    answered["callId"] = Value::from("late-answer");
    answered["answered"] = Value::from(true);
    answered["callDuration"] = Value::from(30);
    answered["answerTime"] = answered["startTime"].clone();
    let webhook = crate::support::start_webhook(&campaign, Some("t")).await;
    let (code, body) = crate::support::post(
        &webhook.url,
        Some("t"),
        serde_json::to_vec(&answered).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    // The second goes on the do-not-call list.
    let listed = nxcampaign(&campaign.db())
        .args(["suppress", "add", &format!("+{}", numbers[1])])
        .output()
        .await
        .unwrap();
    assert_success(&listed);

    let run = campaign.at(&sandbox, 4 * MINUTE, "run", &[]).await;
    assert!([0, 1].contains(&exit_code(&run)), "{}", stderr(&run));
    let accepted = sandbox.accepted_orders();
    assert_eq!(
        accepted.len(),
        4,
        "only the third contact's redial: {accepted:?}"
    );
    let called_again: Vec<String> = calls_by_number(&sandbox)
        .into_iter()
        .filter(|(_, calls)| calls.len() > 1)
        .map(|(number, _)| number)
        .collect();
    assert_eq!(called_again, [numbers[2].clone()]);
    let status = campaign.status().await;
    assert_eq!(status["orders"]["settled"], 1);
    assert_eq!(status["orders"]["suppressed"], 1);
}

/// An answered call whose intent is one of `suppress_intents` puts the
/// number on the ledger's do-not-call list as it is stored: no campaign of
/// the ledger calls it again.
#[tokio::test(flavor = "multi_thread")]
async fn an_opt_out_intent_keeps_every_campaign_of_the_ledger_from_the_number() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(1.0, 0.0));
    let mut campaign = Campaign::new(&sandbox).with(
        "redial",
        "max_attempts = 2\nafter = [\"1m\"]\nsuppress_intents = [\"Do Not Call\"]",
    );
    campaign.write_contacts(Mix::valid(120));
    assert_success(&campaign.run().await);
    // Every call has ended ten minutes on (talks last up to four).
    assert_success(&campaign.at(&sandbox, 10 * MINUTE, "sync", &[]).await);
    let opted: std::collections::BTreeSet<String> = sandbox
        .calls()
        .iter()
        .filter(|c| c["answered"] == true && c["intent"] == "do not call")
        .map(|c| c["caller"].as_str().unwrap().to_owned())
        .collect();
    assert!(!opted.is_empty(), "the sandbox's intents include opt-outs");

    let listed = nxcampaign(&campaign.db())
        .args(["suppress", "list", "--format", "json"])
        .output()
        .await
        .unwrap();
    assert_success(&listed);
    let entries: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let on_list: std::collections::BTreeSet<String> = entries
        .iter()
        .map(|e| e["phone"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(on_list, opted);
    for entry in &entries {
        assert!(entry["campaign"].is_null(), "for every campaign: {entry}");
        assert!(entry["until"].is_null(), "for good: {entry}");
        assert!(
            entry["reason"].as_str().unwrap().contains("do not call"),
            "{entry}"
        );
    }

    // Another campaign of the ledger, with the same people.
    let mut other = Campaign::new(&sandbox).sharing_ledger_with(&campaign, "autumn");
    other.write_contacts(Mix::valid(1));
    std::fs::copy(campaign.contacts_path(), other.contacts_path()).unwrap();
    let run = other.run().await;
    assert!([0, 1].contains(&exit_code(&run)), "{}", stderr(&run));
    let status = other.status().await;
    assert_eq!(status["orders"]["suppressed"], opted.len());
    for (number, calls) in calls_by_number(&sandbox) {
        if opted.contains(&number) {
            assert_eq!(calls.len(), 1, "{number} was called after opting out");
        }
    }
}

/// The vendor's own redials count: a contact its dial strategy called
/// twice has had two of its `max_attempts`.
#[tokio::test(flavor = "multi_thread")]
async fn the_vendors_own_redials_count_toward_max_attempts() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(CallSim {
        redial_share: 1.0,
        ..sim(0.0, 0.0)
    });
    let mut campaign = Campaign::new(&sandbox).with("redial", "max_attempts = 2\nafter = [\"1m\"]");
    campaign.write_contacts(Mix::valid(10));
    assert_success(&campaign.run().await);
    let run = sync_and_run(&campaign, &sandbox, 5 * MINUTE).await;
    assert!(
        stderr(&run).contains("redials: 0 planned"),
        "{}",
        stderr(&run)
    );
    assert_eq!(sandbox.accepted_orders().len(), 10);
    for (number, calls) in calls_by_number(&sandbox) {
        assert_eq!(calls.len(), 2, "{number}");
    }
    assert_eq!(campaign.status().await["redials"]["exhausted"], 10);
}

/// `max_per_day` counts calls in the contact's own day: its country's
/// zone in `[schedule]`.
#[tokio::test(flavor = "multi_thread")]
async fn max_per_day_counts_calls_in_the_contacts_local_day() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.0, 0.0));
    let mut campaign = Campaign::new(&sandbox)
        .with(
            "schedule",
            "timezone = \"Asia/Hong_Kong\"\nwindow = \"00:00-23:59:59\"\nstop_before_close = \"0s\"",
        )
        .with(
            "redial",
            "max_attempts = 3\nafter = [\"1m\"]\nmax_per_day = 1",
        );
    campaign.write_contacts(Mix::valid(2));
    let hk = jiff::tz::TimeZone::get("Asia/Hong_Kong").unwrap();
    let today = jiff::Timestamp::now().to_zoned(hk.clone()).date();
    let at = |days: i32, hour: i8| {
        today
            .checked_add(jiff::Span::new().days(days))
            .unwrap()
            .at(hour, 0, 0, 0)
            .to_zoned(hk.clone())
            .unwrap()
            .timestamp()
            .as_millisecond()
            - real_now_ms()
    };
    // Tomorrow 10:00 in Hong Kong: the first calls.
    assert_success(&campaign.at(&sandbox, at(1, 10), "run", &[]).await);
    // 11:00, same day: spaced, but the day has had its call.
    let later = sync_and_run(&campaign, &sandbox, at(1, 11)).await;
    assert!(
        stderr(&later).contains("redials: 0 planned"),
        "{}",
        stderr(&later)
    );
    let midnight = today
        .checked_add(jiff::Span::new().days(2))
        .unwrap()
        .to_zoned(hk.clone())
        .unwrap()
        .timestamp()
        .to_string()
        .replace('Z', ".000Z");
    assert!(
        stderr(&later).contains(&format!("the next due at {midnight}")),
        "{}",
        stderr(&later)
    );
    let status = campaign.status().await;
    assert_eq!(status["redials"]["waiting"], 2);
    // Shortly after midnight in Hong Kong: a new day.
    let next_day = sync_and_run(&campaign, &sandbox, at(2, 0) + MINUTE).await;
    assert!(
        stderr(&next_day).contains("redials: 2 planned"),
        "{}",
        stderr(&next_day)
    );
    assert_eq!(sandbox.accepted_orders().len(), 4);
}

/// Runs planning and sending redials are killed with SIGKILL at seeded
/// moments and resumed: no order id is sent twice, and no contact gets
/// more calls than the policy allows.
#[tokio::test(flavor = "multi_thread")]
async fn redials_killed_while_planned_or_sent_resume_without_extra_calls() {
    use rand::{Rng, SeedableRng};
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.0, 0.0));
    let mut campaign = Campaign::new(&sandbox)
        .with("batching", "size = 20")
        .with("limits", "max_in_flight = 2")
        .with("redial", "max_attempts = 3\nafter = [\"1m\"]");
    campaign.write_contacts(Mix::valid(600));
    assert_success(&campaign.run().await);
    sandbox.set_faults(Faults {
        slow_ms: 60,
        ..Faults::default()
    });

    let mut dice = rand::rngs::StdRng::seed_from_u64(20261202);
    let mut kills = 0;
    for round in 1..=2 {
        let at = round * 10 * MINUTE;
        assert_success(&campaign.at(&sandbox, at, "sync", &[]).await);
        // Killed while it plans, or while it sends, then resumed.
        for _ in 0..3 {
            sandbox.set_clock_ahead(at);
            let mut run = campaign
                .spawn_run_with_env(&[(nxcampaign::clock::TEST_OFFSET_VAR, &at.to_string())]);
            let moment = std::time::Duration::from_millis(dice.gen_range(30..400));
            tokio::select! {
                _ = run.wait() => {}
                () = tokio::time::sleep(moment) => {
                    run.start_kill().expect("SIGKILL sent");
                    let _ = run.wait().await;
                    kills += 1;
                }
            }
            sandbox.set_clock_ahead(0);
        }
        let resumed = campaign.at(&sandbox, at + MINUTE, "run", &[]).await;
        assert!(
            [0, 1].contains(&exit_code(&resumed)),
            "{}",
            stderr(&resumed)
        );
    }
    assert!(kills >= 3, "runs were cut short: {kills}");
    assert!(
        sandbox.accepted_orders().len() > 600,
        "redials were sent after the kills"
    );
    assert!(
        sandbox.accepted_orders().values().all(|n| *n == 1),
        "an order id was sent twice"
    );
    for (number, calls) in calls_by_number(&sandbox) {
        assert!(calls.len() <= 3, "{number}: {} calls", calls.len());
    }
    // Each contact has at most one order per attempt, and they follow on.
    let rows = campaign.orders_csv().await;
    let header = &rows[0];
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut seen = std::collections::HashSet::new();
    for row in &rows[1..] {
        let contact = match row[column("first_order_id")].as_str() {
            "" => row[column("order_id")].clone(),
            first => first.to_owned(),
        };
        assert!(
            seen.insert((contact, row[column("attempt")].clone())),
            "two orders for one attempt: {row:?}"
        );
    }
}

/// Two runners of one campaign on PostgreSQL, started together when
/// redials are due: each redial is planned once and sent once.
#[tokio::test(flavor = "multi_thread")]
async fn two_runners_on_postgres_plan_each_redial_once() {
    if crate::support::postgres_or_skip().is_none() {
        return;
    }
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.0, 0.0));
    let mut campaign = Campaign::new_on_postgres(&sandbox)
        .with("batching", "size = 20")
        .with("redial", "max_attempts = 2\nafter = [\"1m\"]");
    campaign.write_contacts(Mix::valid(400));
    assert_success(&campaign.run().await);
    let at = 5 * MINUTE;
    assert_success(&campaign.at(&sandbox, at, "sync", &[]).await);
    sandbox.set_clock_ahead(at);
    let offset = at.to_string();
    let env = [(nxcampaign::clock::TEST_OFFSET_VAR, offset.as_str())];
    let (one, two) = (
        campaign.spawn_run_with_env(&env),
        campaign.spawn_run_with_env(&env),
    );
    let (one, two) = (
        one.wait_with_output().await.unwrap(),
        two.wait_with_output().await.unwrap(),
    );
    sandbox.set_clock_ahead(0);
    for run in [&one, &two] {
        assert!([0, 1].contains(&exit_code(run)), "{}", stderr(run));
    }
    let accepted = sandbox.accepted_orders();
    assert_eq!(accepted.len(), 800, "every contact's redial, once");
    assert!(accepted.values().all(|n| *n == 1));
    for (number, calls) in calls_by_number(&sandbox) {
        assert_eq!(calls.len(), 2, "{number}");
    }
}

/// `cancel` of a whole campaign stops its redials: none is planned after
/// it, `status` and `check` say so, and nobody is called again.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_campaigns_redials() {
    let sandbox = start_sandbox(Faults::default()).await;
    sandbox.set_calls(sim(0.0, 0.0));
    let mut campaign = Campaign::new(&sandbox)
        .with("batching", "size = 10")
        .with("redial", "max_attempts = 3\nafter = [\"10m\"]");
    campaign.write_contacts(Mix::valid(20));
    assert_success(&campaign.run().await);
    let cancelled = nxcampaign(&campaign.db())
        .args(["cancel", &campaign.name])
        .output()
        .await
        .unwrap();
    assert_success(&cancelled);

    let later = sync_and_run(&campaign, &sandbox, 30 * MINUTE).await;
    assert_success(&later);
    assert!(
        stderr(&later).contains("redials: 0 planned"),
        "{}",
        stderr(&later)
    );
    assert_eq!(sandbox.calls().len(), 20, "nobody was called again");
    let status = campaign.status().await;
    assert!(status["redials"]["stopped_at"].is_string(), "{status}");
    assert_eq!(status["redials"]["redial_orders"], 0);
    let check = campaign.at(&sandbox, 30 * MINUTE, "check", &[]).await;
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(said.contains("redials: stopped by cancel at "), "{said}");
    assert!(!said.contains("redial(s)"), "{said}");
}

/// A call reported without a start or an end time ended, for the spacing,
/// when the ledger stored it: its contact is due once the spacing has
/// passed since then, not always "later".
#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_times_is_spaced_from_when_it_was_stored() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign =
        Campaign::new(&sandbox).with("redial", "max_attempts = 2\nafter = [\"10m\"]");
    campaign.write_contacts(Mix::valid(1));
    assert_success(&campaign.run().await);
    let order_id = campaign.order_states().await.into_keys().next().unwrap();
    let hook = crate::support::start_webhook(&campaign, None).await;
    let call = serde_json::json!({
        "callId": "no-times-1",
        "orderId": order_id,
        "answered": false,
        "hangupCode": "19",
    });
    assert_eq!(
        crate::support::post(&hook.url, None, call.to_string())
            .await
            .0,
        200
    );
    drop(hook);

    let early = campaign.at(&sandbox, 9 * MINUTE, "run", &[]).await;
    assert_success(&early);
    assert!(
        stderr(&early).contains("redials: 0 planned; 1 contact(s) wait"),
        "{}",
        stderr(&early)
    );
    let due = campaign.at(&sandbox, 11 * MINUTE, "run", &[]).await;
    assert_success(&due);
    assert!(
        stderr(&due).contains("redials: 1 planned"),
        "{}",
        stderr(&due)
    );
    assert_eq!(sandbox.accepted_orders().len(), 2);
}
