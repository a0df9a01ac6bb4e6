//! The do-not-call list: applied when orders are planned and again just
//! before each batch is sent; expiry; the job's own list files; the
//! commands that keep it.

use std::path::Path;

use nxcampaign::sandbox::Faults;

use crate::support::*;

/// `nxcampaign suppress <args>` on `db`.
async fn suppress(db: &Path, args: &[&str]) -> std::process::Output {
    nxcampaign(db)
        .arg("suppress")
        .args(args)
        .output()
        .await
        .expect("suppress runs")
}

/// The state and message of the order for `number` (national HK form).
async fn order_of(campaign: &Campaign, number: &str) -> (String, String) {
    let phone = format!("852{number}");
    campaign
        .orders_csv()
        .await
        .into_iter()
        .find(|row| row[1] == phone)
        .map(|row| (row[2].clone(), row[5].clone()))
        .unwrap_or_else(|| panic!("no order for {phone}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_suppressed_between_ingest_and_sending_is_not_sent() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    // Batches of 100: #1 and #2 full, #3 with 50.
    campaign.write_contacts(Mix::valid(250));
    assert_success(&campaign.ingest().await);

    // One number of #1, and every number of #3.
    let mut numbers = vec![hk_number(5)];
    numbers.extend((200..250).map(hk_number));
    let list = campaign.dir.path().join("dnc.txt");
    std::fs::write(&list, format!("phone\n{}\n", numbers[1..].join("\n"))).unwrap();
    let added = suppress(
        &campaign.db(),
        &[
            "add",
            &numbers[0],
            list.to_str().unwrap(),
            "--country",
            "HK",
            "--reason",
            "asked not to be called",
        ],
    )
    .await;
    assert_success(&added);
    assert!(String::from_utf8_lossy(&added.stdout).contains("51 number(s)"));

    let run = campaign.run().await;
    assert_success(&run);
    let stats = sandbox.stats();
    assert_eq!(stats.requests, 2, "the emptied batch is not sent");
    assert_eq!(stats.orders_accepted, 199);
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "suppressed"), 51);
    assert_eq!(count(&status, "batches", "cancelled"), 1);
    assert_eq!(count(&status, "orders", "accepted"), 199);
    let (state, message) = order_of(&campaign, &hk_number(5)).await;
    assert_eq!(state, "suppressed");
    assert!(message.contains("asked not to be called"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_list_applies_at_ingest_and_an_expired_entry_no_longer_does() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(30));
    let db = campaign.db();
    // Added before the campaign's first run (this creates the ledger).
    assert_success(&suppress(&db, &["add", &format!("+852 {}", hk_number(0))]).await);
    // Through tomorrow (UTC).
    let tomorrow = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .unwrap();
    assert_success(
        &suppress(
            &db,
            &[
                "add",
                &hk_number(1),
                "--country",
                "HK",
                "--until",
                &tomorrow.to_string(),
            ],
        )
        .await,
    );
    let listed = suppress(&db, &["list", "--format", "json"]).await;
    assert_success(&listed);
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1]["until"],
        format!("{}T00:00:00.000Z", tomorrow.tomorrow().unwrap())
    );

    // Three days later: the dated entry has ended.
    campaign
        .at(&sandbox, 3 * 24 * 3600 * 1000, "run", &[])
        .await;
    assert_eq!(order_of(&campaign, &hk_number(0)).await.0, "suppressed");
    assert_eq!(
        order_of(&campaign, &hk_number(1)).await.0,
        "accepted",
        "expired"
    );
    assert_eq!(sandbox.stats().orders_accepted, 29);

    // Taken off the list: gone from it (the order set aside stays so).
    let removed = suppress(&db, &["remove", &hk_number(0), "--country", "HK"]).await;
    assert_success(&removed);
    assert!(String::from_utf8_lossy(&removed.stdout).contains("removed 1 "));
    let listed = suppress(&db, &["list"]).await;
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(!text.contains(&format!("852{}", hk_number(0))), "{text}");
    assert!(text.contains(&format!("852{}", hk_number(1))), "{text}");

    // What is not a number is named and not taken (exit 1), the rest kept.
    let mixed = suppress(&db, &["add", "not-a-number", "+852 5123 0000"]).await;
    assert_eq!(exit_code(&mixed), 1);
    assert!(
        stderr(&mixed).contains("not-a-number"),
        "{}",
        stderr(&mixed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_own_list_file_keeps_its_numbers_from_being_called() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("suppression", "files = [\"dnc.csv\"]");
    std::fs::write(
        campaign.dir.path().join("dnc.csv"),
        format!("phone,note\n{},moved away\n", hk_number(2)),
    )
    .unwrap();
    campaign.write_contacts(Mix::valid(20));

    // check sees it before anything is written.
    let checked = nxcampaign(&campaign.db())
        .arg("check")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.contains("on do-not-call lists") && l.trim_end().ends_with(" 1")),
        "{report}"
    );

    campaign.run().await;
    let (state, message) = order_of(&campaign, &hk_number(2)).await;
    assert_eq!(state, "suppressed");
    assert!(message.contains("dnc.csv"), "{message}");
    assert_eq!(sandbox.stats().orders_accepted, 19);

    // A list file that cannot be read stops the run before anything.
    std::fs::remove_file(campaign.dir.path().join("dnc.csv")).unwrap();
    campaign.append_contacts(Mix::valid(5));
    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 2, "{}", stderr(&run));
    assert!(stderr(&run).contains("dnc.csv"), "{}", stderr(&run));
    assert_eq!(sandbox.stats().orders_accepted, 19);
}

#[tokio::test(flavor = "multi_thread")]
async fn suppress_without_a_ledger_named_creates_none_and_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let output = nxcampaign(&dir.path().join("unused.db"))
        .env_remove("NXCAMPAIGN_DB")
        .current_dir(dir.path())
        .args(["suppress", "add", "+85251234567"])
        .output()
        .await
        .unwrap();
    assert_exit_saying(&output, 2, "--job");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // An empty NXCAMPAIGN_DB is none named either.
    let output = nxcampaign(&dir.path().join("unused.db"))
        .env("NXCAMPAIGN_DB", "")
        .current_dir(dir.path())
        .args(["suppress", "add", "+85251234567"])
        .output()
        .await
        .unwrap();
    assert_exit_saying(&output, 2, "--job");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn suppress_with_a_job_puts_the_number_in_that_jobs_ledger() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new_on_sqlite(&sandbox);
    campaign.write_contacts(Mix::valid(10));
    // The job's own ledger, beside it: no --db.
    let job = std::fs::read_to_string(campaign.job_path()).unwrap();
    std::fs::write(campaign.job_path(), format!("ledger = \"mine.db\"\n{job}")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = nxcampaign(&campaign.db())
        .env_remove("NXCAMPAIGN_DB")
        .current_dir(elsewhere.path())
        .args(["suppress", "--job"])
        .arg(campaign.job_path())
        .args(["add", &format!("+852{}", hk_number(3))])
        .output()
        .await
        .unwrap();
    assert_success(&output);
    assert!(campaign.dir.path().join("mine.db").exists());
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    let run = nxcampaign(&campaign.db())
        .env_remove("NXCAMPAIGN_DB")
        .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
        .env(
            "NXLINK_ACCESS_SECRET",
            nxcampaign::sandbox::DEFAULT_ACCESS_SECRET,
        )
        .arg("run")
        .arg(campaign.job_path())
        .output()
        .await
        .unwrap();
    assert_success(&run);
    assert_eq!(sandbox.stats().orders_accepted, 9);
}

/// The entries of the list, as `suppress list --format json` gives them.
async fn entries(db: &Path) -> Vec<serde_json::Value> {
    let listed = suppress(db, &["list", "--format", "json"]).await;
    assert_success(&listed);
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_do_not_call_entry_never_weakens_by_a_renewal() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix::valid(10));
    let db = campaign.db();
    let number = format!("+852{}", hk_number(0));
    assert_success(&suppress(&db, &["add", &number, "--reason", "asked on the phone"]).await);
    // Added again until a date, with another reason: still for good, and
    // both reasons kept.
    assert_success(
        &suppress(
            &db,
            &[
                "add",
                &number,
                "--until",
                "2099-01-01",
                "--reason",
                "complaint",
            ],
        )
        .await,
    );
    let entry = &entries(&db).await[0];
    assert!(entry["until"].is_null(), "{entry}");
    assert_eq!(entry["reason"], "asked on the phone; complaint", "{entry}");
    // A later date beats an earlier one, and an earlier one changes nothing.
    let other = format!("+852{}", hk_number(1));
    assert_success(&suppress(&db, &["add", &other, "--until", "2098-06-30"]).await);
    assert_success(&suppress(&db, &["add", &other, "--until", "2097-01-01"]).await);
    assert_eq!(entries(&db).await[1]["until"], "2098-07-01T00:00:00.000Z");
    assert_success(&suppress(&db, &["add", &other, "--until", "2099-12-31"]).await);
    assert_eq!(entries(&db).await[1]["until"], "2100-01-01T00:00:00.000Z");
    // An end in the past protects no one: refused.
    let past = suppress(&db, &["add", &other, "--until", "2020-01-01"]).await;
    assert_exit_saying(&past, 2, "in the past");
    assert_eq!(entries(&db).await[1]["until"], "2100-01-01T00:00:00.000Z");
    // `remove` is the one way to weaken an entry.
    assert_success(&suppress(&db, &["remove", &number]).await);
    assert_eq!(entries(&db).await.len(), 1);
}

/// A list file as people write them: a BOM, CRLF, an indented line, a
/// `Name,Phone` header, a number with a note, a quoted name with a comma.
fn messy_list(numbers: &[String]) -> Vec<u8> {
    let mut text = b"\xef\xbb\xbfName,Phone\r\n".to_vec();
    for (i, number) in numbers.iter().enumerate() {
        let line = match i % 4 {
            0 => format!("Ann,+852 {number} (mobile)\r\n"),
            1 => format!("\t Ben , {number}\r\n"),
            2 => format!("\"Lee, Cat\",852{number}\r\n"),
            _ => format!("Dan,{number}\r\n\r\n"),
        };
        text.extend(line.into_bytes());
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn every_number_of_a_messy_list_file_is_kept_from_being_called() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("suppression", "files = [\"dnc.csv\"]");
    let listed: Vec<String> = (0..8).map(hk_number).collect();
    std::fs::write(campaign.dir.path().join("dnc.csv"), messy_list(&listed)).unwrap();
    campaign.write_contacts(Mix::valid(20));
    assert_success(&campaign.run().await);
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "suppressed"), 8, "{status}");
    assert_eq!(sandbox.stats().orders_accepted, 12);

    // The same file with `suppress import`: every line taken.
    let other = Campaign::new(&sandbox);
    std::fs::write(other.dir.path().join("dnc.csv"), messy_list(&listed)).unwrap();
    let imported = suppress(
        &other.db(),
        &[
            "import",
            other.dir.path().join("dnc.csv").to_str().unwrap(),
            "--country",
            "HK",
        ],
    )
    .await;
    assert_success(&imported);
    assert!(String::from_utf8_lossy(&imported.stdout).contains("8 number(s)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_file_line_that_is_not_a_number_stops_the_run_naming_it() {
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign = Campaign::new(&sandbox).with("suppression", "files = [\"dnc.csv\"]");
    std::fs::write(
        campaign.dir.path().join("dnc.csv"),
        format!("phone\n{}\ncall Ann back\n{}\n", hk_number(0), hk_number(1)),
    )
    .unwrap();
    campaign.write_contacts(Mix::valid(20));
    let run = campaign.run().await;
    assert_exit_saying(&run, 2, "dnc.csv: line 3");
    assert_eq!(sandbox.stats().requests, 0);

    // `suppress import` takes what it can and names every line it did not.
    let imported = suppress(
        &campaign.db(),
        &[
            "import",
            campaign.dir.path().join("dnc.csv").to_str().unwrap(),
            "--country",
            "HK",
        ],
    )
    .await;
    assert_exit_saying(&imported, 1, "dnc.csv: line 3");
    assert!(String::from_utf8_lossy(&imported.stdout).contains("2 number(s)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn runners_whose_clocks_differ_never_empty_the_jobs_list() {
    let Some(_) = postgres_or_skip() else {
        return;
    };
    let sandbox = start_sandbox(Faults::default()).await;
    let mut campaign =
        Campaign::new_on_postgres(&sandbox).with("suppression", "files = [\"dnc.txt\"]");
    let listed: Vec<String> = (0..200).map(hk_number).collect();
    std::fs::write(campaign.dir.path().join("dnc.txt"), listed.join("\n")).unwrap();
    campaign.write_contacts(Mix::valid(400));
    assert_success(&campaign.ingest().await);
    // Two runners, an hour apart by their clocks, reload the list at the
    // same time, again and again, while a third checks the list never
    // loses a number.
    let reload = |offset: &str| {
        let mut command = nxcampaign(&campaign.db());
        command
            .env(nxcampaign::clock::TEST_OFFSET_VAR, offset)
            .arg("ingest")
            .arg(campaign.job_path());
        command
    };
    let reloading = async {
        for _ in 0..10 {
            let (a, b) = tokio::join!(reload("-3600000").output(), reload("3600000").output());
            // Both reload the list; one may find the other reading the
            // file (75).
            for output in [a.unwrap(), b.unwrap()] {
                assert!(matches!(exit_code(&output), 0 | 75), "{}", stderr(&output));
                assert!(
                    stderr(&output).contains("do-not-call: 200 number(s)"),
                    "{}",
                    stderr(&output)
                );
            }
        }
    };
    let watching = async {
        let mut seen = Vec::new();
        for _ in 0..30 {
            seen.push(entries(&campaign.db()).await.len());
        }
        seen
    };
    let ((), seen) = tokio::join!(reloading, watching);
    assert!(seen.iter().all(|n| *n == 200), "{seen:?}");
    assert_eq!(entries(&campaign.db()).await.len(), 200);
    assert_success(&campaign.run().await);
    assert_eq!(sandbox.stats().orders_accepted, 200);
}
