//! Each callee's own clock: a number is called in the calling windows of
//! the time zones its prefix places it in (all of them, when it may be in
//! several), or of its row's own zone; batches hold one country and one
//! set of zones, so a batch goes out whole when its window is open.

use std::collections::BTreeSet;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use nxcampaign::sandbox::Faults;

use crate::support::*;

/// The clock offset (ms) that makes a run's clock read `hour:minute` on
/// today's date in `zone`.
fn offset_to(zone: &str, hour: i8, minute: i8) -> (i64, Date) {
    let now = jiff::Timestamp::now();
    let zone = TimeZone::get(zone).unwrap();
    let today = now.to_zoned(zone.clone()).date();
    let at = today
        .at(hour, minute, 0, 0)
        .to_zoned(zone)
        .unwrap()
        .timestamp();
    (at.as_millisecond() - now.as_millisecond(), today)
}

/// A campaign of `rows` (`phone` or `phone,tz` lines after the header),
/// called 09:00-20:00 wherever each number is.
fn campaign_of(sandbox: &nxcampaign::sandbox::Sandbox, header: &str, rows: &[&str]) -> Campaign {
    let mut campaign = Campaign::new(sandbox).with(
        "schedule",
        "timezone = \"UTC\"\nwindow = \"09:00-20:00\"\nstop_before_close = \"0s\"",
    );
    if header.contains("tz") {
        campaign = campaign.with("columns", "timezone = \"tz\"");
    }
    campaign.write_contacts(Mix::valid(0));
    let mut text = format!("name,{header}\n");
    for row in rows {
        text.push_str("Ann,");
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(campaign.contacts_path(), text).unwrap();
    campaign
}

/// The numbers of the campaign's accepted orders.
async fn accepted(campaign: &Campaign) -> BTreeSet<String> {
    let rows = campaign.orders_csv().await;
    let column = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    let (phone, state) = (column("phone"), column("state"));
    rows[1..]
        .iter()
        .filter(|row| row[state] == "accepted")
        .map(|row| row[phone].clone())
        .collect()
}

fn set(numbers: &[&str]) -> BTreeSet<String> {
    numbers.iter().map(|n| n.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_number_is_called_in_its_own_zones_window() {
    let sandbox = start_sandbox(Faults::default()).await;
    // New York, Chicago, Denver, Los Angeles, Juneau, Honolulu.
    let numbers = [
        "+1 212 200 1234",
        "+1 312 222 1234",
        "+1 303 222 1234",
        "+1 415 222 1234",
        "+1 907 222 1234",
        "+1 808 222 1234",
    ];
    let campaign = campaign_of(&sandbox, "phone", &numbers);
    // 09:30 in New York: 08:30 in Chicago, earlier further west.
    let (ny, today) = offset_to("America/New_York", 9, 30);
    // `check` names each zone, its orders and its window.
    let check = campaign.at(&sandbox, ny, "check", &[]).await;
    let said = String::from_utf8_lossy(&check.stdout);
    for line in [
        "US (America/New_York)           1 order(s) in 1 batch(es)",
        "US (America/New_York): inside a calling window now",
        "US (Pacific/Honolulu): outside the calling windows now",
    ] {
        assert!(said.contains(line), "{line:?} in {said}");
    }
    let run = campaign.at(&sandbox, ny, "run", &[]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert_eq!(accepted(&campaign).await, set(&["12122001234"]));
    // The next window is Chicago's 09:00.
    let chicago_nine = today
        .at(9, 0, 0, 0)
        .to_zoned(TimeZone::get("America/Chicago").unwrap())
        .unwrap()
        .timestamp();
    let said = &chicago_nine.to_string()[..16];
    assert!(
        stderr(&run).contains(&format!("the next window opens at {said}")),
        "{said} in {}",
        stderr(&run)
    );
    assert_eq!(sandbox.stats().requests, 1);
    // `status` of the job file says where each zone's orders stand.
    let status = campaign.at(&sandbox, ny, "status", &[]).await;
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(
        said.contains(&format!(
            "1 order(s)  US (America/Chicago): outside the windows, the next opens at {}",
            &chicago_nine.to_string()[..16]
        )),
        "{said}"
    );
    let json = campaign.at(&sandbox, ny, "status", &["--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let windows = json["pending_windows"].as_array().unwrap();
    assert_eq!(windows.len(), 5, "{json}");
    assert!(windows
        .iter()
        .all(|w| w["orders"] == 1 && w["next_open"].is_string()));

    // An hour later, Chicago too.
    let run = campaign.at(&sandbox, ny + 3_600_000, "run", &[]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert_eq!(
        accepted(&campaign).await,
        set(&["12122001234", "13122221234"])
    );
    // Late in Honolulu's day every window has opened and closed but
    // Honolulu's.
    let (honolulu, _) = offset_to("Pacific/Honolulu", 19, 0);
    campaign.at(&sandbox, honolulu, "run", &[]).await;
    assert!(accepted(&campaign).await.contains("18082221234"));
    assert_eq!(accepted(&campaign).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_that_may_be_in_two_zones_waits_for_both_and_a_rows_zone_wins() {
    let sandbox = start_sandbox(Faults::default()).await;
    // Idaho's 208 is Boise (Mountain) or Los Angeles (Pacific); the second
    // row says it is in New York.
    let campaign = campaign_of(
        &sandbox,
        "phone,tz",
        &["+1 208 222 1234,", "+1 208 222 5678,America/New_York"],
    );
    // 09:30 in Boise is 08:30 in Los Angeles: only the row in New York
    // (11:30 there) goes.
    let (boise, _) = offset_to("America/Boise", 9, 30);
    let run = campaign.at(&sandbox, boise, "run", &[]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert_eq!(accepted(&campaign).await, set(&["12082225678"]));
    // 09:30 in Los Angeles: both zones are open.
    let (la, _) = offset_to("America/Los_Angeles", 9, 30);
    assert_success(&campaign.at(&sandbox, la, "run", &[]).await);
    assert_eq!(
        accepted(&campaign).await,
        set(&["12082221234", "12082225678"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn indonesian_numbers_follow_jakarta_makassar_and_jayapura() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = campaign_of(
        &sandbox,
        "phone",
        &[
            "+62 21 5000 1234",  // Jakarta (UTC+7)
            "+62 411 500 123",   // Makassar (UTC+8)
            "+62 967 500 123",   // Jayapura (UTC+9)
            "+62 811 2345 6789", // a mobile prefix: Jakarta or Makassar
        ],
    );
    // 09:30 in Makassar is 08:30 in Jakarta and 10:30 in Jayapura.
    let (makassar, _) = offset_to("Asia/Makassar", 9, 30);
    let run = campaign.at(&sandbox, makassar, "run", &[]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert_eq!(
        accepted(&campaign).await,
        set(&["62411500123", "62967500123"])
    );
    // 19:30 in Jakarta is 20:30 in Makassar: Jakarta's number goes, the
    // mobile (Makassar closed) does not.
    let (jakarta, _) = offset_to("Asia/Jakarta", 19, 30);
    let run = campaign.at(&sandbox, jakarta, "run", &[]).await;
    assert_eq!(exit_code(&run), 75, "{}", stderr(&run));
    assert_eq!(accepted(&campaign).await.len(), 3);
    assert!(accepted(&campaign).await.contains("622150001234"));
    // 10:00 in Jakarta: all of it.
    let (morning, _) = offset_to("Asia/Jakarta", 10, 0);
    assert_success(&campaign.at(&sandbox, morning, "run", &[]).await);
    assert_eq!(accepted(&campaign).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_that_does_not_exist_makes_its_row_invalid_with_its_line() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = campaign_of(
        &sandbox,
        "phone,tz",
        &[
            "+1 212 200 1234,America/New_York",
            "+1 212 200 5678,Mars/Olympus",
        ],
    );
    let (ny, _) = offset_to("America/New_York", 10, 0);
    let run = campaign.at(&sandbox, ny, "run", &[]).await;
    assert_eq!(exit_code(&run), 1, "{}", stderr(&run));
    let rows = campaign.orders_csv().await;
    let column = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    let invalid: Vec<&Vec<String>> = rows[1..]
        .iter()
        .filter(|row| row[column("state")] == "invalid")
        .collect();
    assert_eq!(invalid.len(), 1, "{rows:?}");
    assert_eq!(invalid[0][column("line")], "3");
    assert!(
        invalid[0][column("message")].contains("Mars/Olympus"),
        "{rows:?}"
    );
    assert_eq!(accepted(&campaign).await, set(&["12122001234"]));
}
