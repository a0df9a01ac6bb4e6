//! Guards on how much a run sends (`--limit`, `--confirm-above`), and the
//! operators' commands on whole campaigns: `cancel`, `campaigns`,
//! `forget`, `resend --rejected`.

use nxcampaign::sandbox::Faults;

use crate::support::*;

/// `nxcampaign <args>` on the campaign's ledger.
async fn command(campaign: &Campaign, args: &[&str]) -> std::process::Output {
    nxcampaign(&campaign.db())
        .args(args)
        .output()
        .await
        .expect("nxcampaign runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_sends_whole_batches_up_to_n_orders_and_the_next_run_goes_on() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(1000));
    let run = campaign.run_with_flags(&["--limit", "350"]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert!(stderr(&run).contains("limit reached"), "{}", stderr(&run));
    assert_eq!(
        sandbox.stats().orders_accepted,
        300,
        "the 4th batch would pass 350"
    );
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "pending"), 700);
    assert_success(&campaign.run_with_flags(&["--limit", "1000"]).await);
    assert_eq!(sandbox.stats().orders_accepted, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_above_its_confirmation_threshold_sends_nothing_without_yes() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("limits", "confirm_above = 500");
    campaign.write_contacts(Mix::valid(800));
    let refused = campaign.run().await;
    assert_eq!(exit_code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("would send 800 order(s), more than 500"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(sandbox.stats().requests, 0);
    // The flag wins over the job's key; a limit under it needs no --yes.
    let refused = campaign
        .run_with_flags(&["--confirm-above", "100", "--limit", "400"])
        .await;
    assert_eq!(exit_code(&refused), 2);
    assert_eq!(sandbox.stats().requests, 0);
    let limited = campaign.run_with_flags(&["--limit", "400"]).await;
    assert_eq!(exit_code(&limited), 75, "{}", stderr(&limited));
    assert_eq!(sandbox.stats().orders_accepted, 400);
    assert_success(&campaign.run_with_flags(&["--yes"]).await);
    assert_eq!(sandbox.stats().orders_accepted, 800);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_batches_are_never_sent_and_forget_refuses_a_campaign_that_sent() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    assert_success(&campaign.ingest().await);
    let cancelled = command(&campaign, &["cancel", &campaign.name, "--batch", "2"]).await;
    assert_success(&cancelled);
    assert!(String::from_utf8_lossy(&cancelled.stdout).contains("cancelled 1 pending batch(es)"));
    // Again: it is cancelled already, so it is left alone.
    let again = command(&campaign, &["cancel", &campaign.name, "--batch", "2"]).await;
    assert_exit_saying(&again, 1, "left alone (not pending)");
    assert_success(&campaign.run().await);
    assert_eq!(sandbox.stats().orders_accepted, 200);
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "cancelled"), 1);
    assert_eq!(count(&status, "orders", "cancelled"), 100);

    // `campaigns` lists it with its job file.
    let listed = command(&campaign, &["campaigns", "--json"]).await;
    assert_success(&listed);
    let line: serde_json::Value =
        serde_json::from_slice(listed.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["campaign"], campaign.name.as_str());
    assert!(
        line["job_file"].as_str().unwrap().ends_with("job.toml"),
        "{line}"
    );
    assert!(line["last_run_at"].is_string(), "{line}");
    assert_eq!(line["orders"]["accepted"], 200);
    assert_eq!(line["calls"]["records"], 0, "{line}");

    // It sent requests: forget refuses, and keeps everything.
    let refused = command(&campaign, &["forget", &campaign.name]).await;
    assert_eq!(exit_code(&refused), 2, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--i-know-it-was-sent"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(campaign.status().await, status);
    let forced = command(
        &campaign,
        &["forget", &campaign.name, "--i-know-it-was-sent"],
    )
    .await;
    assert_success(&forced);
    let gone = command(&campaign, &["status", &campaign.name]).await;
    assert_eq!(exit_code(&gone), 2, "{}", stderr(&gone));
}

#[tokio::test(flavor = "multi_thread")]
async fn forget_deletes_a_campaign_that_sent_nothing_and_a_new_run_starts_over() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(50));
    assert_success(&campaign.ingest().await);
    let forgotten = command(&campaign, &["forget", &campaign.name]).await;
    assert_success(&forgotten);
    assert!(String::from_utf8_lossy(&forgotten.stdout).contains("50 order(s)"));
    assert_success(&campaign.run().await);
    assert_eq!(sandbox.stats().orders_accepted, 50);
    assert_eq!(count(&campaign.status().await, "orders", "accepted"), 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_batches_can_be_requeued_after_the_job_is_fixed() {
    let sandbox = start_sandbox(Faults {
        reply_code: Some(41000),
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(200));
    assert_eq!(exit_code(&campaign.run().await), 1);
    assert_eq!(count(&campaign.status().await, "batches", "rejected"), 2);
    sandbox.set_faults(Faults::default());
    let resent = command(&campaign, &["resend", &campaign.name, "--rejected"]).await;
    assert_success(&resent);
    assert!(String::from_utf8_lossy(&resent.stdout).contains("re-queued 2 rejected batch(es)"));
    assert_success(&campaign.run().await);
    assert_eq!(sandbox.stats().orders_accepted, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_stopped_by_its_limit_after_a_batch_went_uncertain_exits_1() {
    // The first request may have created its task: uncertain.
    let sandbox = start_sandbox(Faults {
        code99_processed: 1.0,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(300));
    let summary = campaign.dir.path().join("summary.json");
    let run = campaign
        .run_with_flags(&[
            "--limit",
            "100",
            "--summary-json",
            summary.to_str().unwrap(),
        ])
        .await;
    assert_eq!(exit_code(&run), 1, "{}", stderr(&run));
    assert!(stderr(&run).contains("limit reached"), "{}", stderr(&run));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["needs_attention"], true, "{summary}");
    assert_eq!(summary["campaign_done"], false, "{summary}");
    assert_eq!(summary["ending"], "limit_reached", "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn naming_a_batch_the_campaign_does_not_have_changes_nothing() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(250));
    assert_success(&campaign.ingest().await);
    for verb in [&["cancel"][..], &["resend", "--failed"][..]] {
        let mut args = verb.to_vec();
        args.extend([campaign.name.as_str(), "--batch", "1", "--batch", "99"]);
        let output = command(&campaign, &args).await;
        assert_exit_saying(&output, 2, "has no batch #99");
    }
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "pending"), 3, "{status}");
}
