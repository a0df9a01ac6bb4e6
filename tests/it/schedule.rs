//! Calling windows (`[schedule]`): nothing is sent outside them, a run
//! outside every window says when the next opens and exits 75, and a
//! window that closes mid-run stops the sending. Times are set relative to
//! now through `not_before`/`not_after`, so no test waits for a clock.

use std::time::{Duration, SystemTime};

use nxcampaign::sandbox::Faults;

use crate::support::*;

/// Now plus `offset` as an RFC 3339 UTC time, to the millisecond.
fn in_(offset: Duration) -> String {
    let ms = (SystemTime::now() + offset)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    jiff::Timestamp::from_millisecond(ms).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_outside_every_window_sends_nothing_and_says_when_the_next_opens() {
    let sandbox = start_sandbox(Faults::default()).await;
    let opens = in_(Duration::from_secs(3 * 3600));
    let mut campaign = Campaign::new(&sandbox).with(
        "schedule",
        &format!(
            "timezone = \"Asia/Hong_Kong\"\nwindow = [\"00:00-12:00\", \"12:00-23:59:59\"]\nstop_before_close = \"0s\"\nnot_before = \"{opens}\""
        ),
    );
    campaign.write_contacts(Mix::valid(150));
    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert!(
        stderr(&run).contains("outside the calling windows"),
        "{}",
        stderr(&run)
    );
    // The opening, to the second (jiff prints no trailing zeros).
    let said = &opens[..19];
    assert!(stderr(&run).contains(said), "{said} in {}", stderr(&run));
    assert_eq!(sandbox.stats().requests, 0);
    // The file was read: the orders wait, pending.
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "pending"), 150);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_that_closes_mid_run_stops_sending() {
    let sandbox = start_sandbox(Faults::default()).await;
    // Time enough to read the file and send some, even on a busy machine.
    let closes = in_(Duration::from_secs(4));
    let mut campaign = Campaign::new(&sandbox)
        .with("limits", "requests_per_second = 4.0\nmax_in_flight = 1")
        .with(
            "schedule",
            &format!(
                "timezone = \"UTC\"\nwindow = \"00:00-23:59:59.999\"\nstop_before_close = \"0s\"\nnot_after = \"{closes}\""
            ),
        );
    // 40 batches: ten seconds at 4 a second.
    campaign.write_contacts(Mix::valid(4000));
    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert!(
        stderr(&run).contains("none opens again"),
        "{}",
        stderr(&run)
    );
    let sent = sandbox.stats().requests;
    assert!((1..40).contains(&sent), "{sent} requests");
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "accepted"), sent);
    assert_eq!(count(&status, "batches", "pending"), 40 - sent);
    assert_eq!(count(&status, "batches", "sending"), 0);
    // Later runs send nothing more: the campaign's window is over.
    let again = campaign.run().await;
    assert_eq!(exit_code(&again), 75);
    assert_eq!(sandbox.stats().requests, sent);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_with_a_wrong_zone_or_window_is_refused_naming_the_key() {
    let sandbox = start_sandbox(Faults::default()).await;
    for (lines, key) in [
        (
            "timezone = \"Mars/Olympus\"\nwindow = \"09:00-20:00\"",
            "schedule.timezone",
        ),
        (
            "timezone = \"UTC\"\nwindow = \"20:00-09:00\"",
            "schedule.window",
        ),
        (
            "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\ndays = [\"funday\"]",
            "schedule.days",
        ),
        (
            "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\nstop_before_close = \"ten minutes\"",
            "schedule.stop_before_close",
        ),
        (
            "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\nstop_before_close = \"13h\"",
            "schedule.stop_before_close",
        ),
        (
            "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\nwindows = { \"Mars/Olympus\" = \"09:00-10:00\" }",
            "schedule.windows",
        ),
        (
            "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\nwindows = { US = \"21:00-08:00\" }",
            "schedule.windows",
        ),
    ] {
        let mut campaign = Campaign::new(&sandbox).with("schedule", lines);
        campaign.write_contacts(Mix::valid(5));
        let run = campaign.run().await;
        assert_eq!(exit_code(&run), 2, "{}", stderr(&run));
        assert!(stderr(&run).contains(key), "{key}: {}", stderr(&run));
    }
    assert_eq!(sandbox.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_folds_the_sending_time_into_the_calling_windows() {
    let sandbox = start_sandbox(Faults::default()).await;
    let check = |campaign: &Campaign| {
        nxcampaign(&campaign.db())
            .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
            .env(
                "NXLINK_ACCESS_SECRET",
                nxcampaign::sandbox::DEFAULT_ACCESS_SECRET,
            )
            .arg("check")
            .arg(campaign.job_path())
            .output()
    };
    // Three requests at one every 100 s, from a window three hours away.
    let opens = in_(Duration::from_secs(3 * 3600));
    let window = "timezone = \"Asia/Hong_Kong\"\nwindow = [\"00:00-12:00\", \"12:00-23:59:59\"]\nstop_before_close = \"0s\"";
    let mut open_ended = Campaign::new(&sandbox)
        .with("schedule", &format!("{window}\nnot_before = \"{opens}\""))
        .with("limits", "requests_per_second = 0.01");
    open_ended.write_contacts(Mix::valid(300));
    let report = check(&open_ended).await.unwrap();
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    assert_eq!(exit_code(&report), 0, "{text}{}", stderr(&report));
    let last = opens.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_secs(300);
    // To the second: the estimate rounds up to the millisecond.
    let said = &last.to_string()[..19];
    assert!(
        text.contains(&format!("the last request would go at about {said}")),
        "{said} in {text}"
    );

    // The same with the campaign ending 200 s after it opens: not all fit.
    let ends = in_(Duration::from_secs(3 * 3600 + 200));
    let mut cut_short = Campaign::new(&sandbox)
        .with(
            "schedule",
            &format!("{window}\nnot_before = \"{opens}\"\nnot_after = \"{ends}\""),
        )
        .with("limits", "requests_per_second = 0.01");
    cut_short.write_contacts(Mix::valid(300));
    let report = check(&cut_short).await.unwrap();
    let text = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(
        text.contains("not every request could go: a window never opens again"),
        "{text}"
    );
    assert_eq!(sandbox.stats().requests, 0);
}

/// No batch is claimed when its window closes sooner than
/// `stop_before_close` (ten minutes unless the job says otherwise): the
/// vendor dials a batch over the minutes after it takes it.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_is_claimed_when_the_window_closes_sooner_than_stop_before_close() {
    let sandbox = start_sandbox(Faults::default()).await;
    // The runs' clocks read 19:55 UTC today: the window closes in five
    // minutes.
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let at = today
        .at(19, 55, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    let offset = at.as_millisecond() - now.as_millisecond();
    let tomorrow_nine = format!("{}T09:00:00", today.tomorrow().unwrap());
    // The contacts are Hong Kong numbers, pinned to UTC for the test.
    let window = "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\ncountries = { HK = \"UTC\" }";

    let mut by_default = Campaign::new(&sandbox).with("schedule", window);
    by_default.write_contacts(Mix::valid(50));
    let check = by_default.at(&sandbox, offset, "check", &[]).await;
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains(&format!("the next opens at {tomorrow_nine}")),
        "{said}"
    );
    let run = by_default.at(&sandbox, offset, "run", &[]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!("the next window opens at {tomorrow_nine}")),
        "{}",
        stderr(&run)
    );
    assert_eq!(sandbox.stats().requests, 0);

    // Three minutes are enough for this job: it sends.
    let mut short =
        Campaign::new(&sandbox).with("schedule", &format!("{window}\nstop_before_close = \"3m\""));
    short.write_contacts(Mix::valid(50));
    assert_success(&short.at(&sandbox, offset, "run", &[]).await);
    assert_eq!(sandbox.stats().requests, 1);
}
