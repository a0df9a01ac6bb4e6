//! Contact files as they really change: written in two steps, compressed
//! and cut short or corrupt, replaced, with a quote never closed or a
//! record without end, and a run stopped while it reads. Each test ends
//! with every valid row of the final file accepted exactly once by the
//! sandbox, and `status` adding up to the rows of the file.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use nxcampaign::sandbox::{Faults, Sandbox};

use crate::support::{
    assert_exit_saying, assert_peaks_under_mib, count, exit_code, finish, hk_number, nxcampaign,
    orders_total, sigterm, start_sandbox, stderr, Campaign,
};

/// `n` rows of valid, distinct Hong Kong numbers, from number `from` on.
fn rows(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("Person {i},{}\n", hk_number(i)))
        .collect()
}

/// Makes a file look unchanged for ten minutes: finished.
fn settle(path: &std::path::Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// The campaign is over: every one of the `valid` numbers was accepted
/// once, and `status` accounts for `rows` rows.
async fn assert_all_sent_once(campaign: &Campaign, sandbox: &Sandbox, valid: usize, rows: u64) {
    let accepted = sandbox.accepted_orders();
    assert_eq!(accepted.len(), valid, "every valid row reached the sandbox");
    assert!(accepted.values().all(|n| *n == 1), "and only once");
    let status = campaign.status().await;
    assert_eq!(status["rows_read"], rows, "{status}");
    assert_eq!(orders_total(&status), rows, "{status}");
    assert_eq!(
        count(&status, "orders", "accepted"),
        valid as u64,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_in_two_steps_is_read_whole() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    campaign.write_job();
    let mut text = "name,phone\n".to_owned() + &rows(0, 100);
    let last = format!("Person 100,{}\n", hk_number(100));
    // The writer stopped in the middle of the last line ("Person 100,510"):
    // that must not become a row of its own.
    std::fs::write(campaign.contacts_path(), format!("{text}{}", &last[..14])).unwrap();
    let first = campaign.run().await;
    assert_exit_saying(&first, 75, "line 102");
    assert_exit_saying(&first, 75, "left for a later run");
    assert_eq!(sandbox.accepted_orders().len(), 100);

    text.push_str(&last);
    text.push_str(&rows(101, 20));
    std::fs::write(campaign.contacts_path(), &text).unwrap();
    let second = campaign.run().await;
    assert_eq!(exit_code(&second), 0, "{}", stderr(&second));
    assert_all_sent_once(&campaign, &sandbox, 121, 121).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_file_still_being_written_is_read_once_it_is_whole() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox).with_contacts_file("contacts.csv.gz");
    campaign.write_job();
    let whole = gzip(&("name,phone\n".to_owned() + &rows(0, 300)));
    std::fs::write(campaign.contacts_path(), &whole[..whole.len() / 2]).unwrap();
    let first = campaign.run().await;
    assert_eq!(exit_code(&first), 75, "{}", stderr(&first));
    assert!(stderr(&first).contains("ends early"), "{}", stderr(&first));
    assert_eq!(sandbox.stats().requests, 0);
    assert_eq!(
        campaign.status().await["rows_read"],
        0,
        "nothing was staged"
    );

    std::fs::write(campaign.contacts_path(), &whole).unwrap();
    let second = campaign.run().await;
    assert_eq!(exit_code(&second), 0, "{}", stderr(&second));
    assert_all_sent_once(&campaign, &sandbox, 300, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_gzip_file_stages_nothing_and_the_good_one_is_read_whole() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox).with_contacts_file("contacts.csv.gz");
    campaign.write_job();
    let whole = gzip(&("name,phone\n".to_owned() + &rows(0, 300)));
    let mut corrupt = whole.clone();
    let crc = corrupt.len() - 8;
    corrupt[crc] ^= 0x5a;
    std::fs::write(campaign.contacts_path(), &corrupt).unwrap();
    let first = campaign.run().await;
    assert_eq!(exit_code(&first), 2, "{}", stderr(&first));
    assert!(stderr(&first).contains("corrupt"), "{}", stderr(&first));
    assert_eq!(
        sandbox.stats().requests,
        0,
        "numbers not in the file are never sent"
    );

    std::fs::write(campaign.contacts_path(), &whole).unwrap();
    let second = campaign.run().await;
    assert_eq!(exit_code(&second), 0, "{}", stderr(&second));
    assert_all_sent_once(&campaign, &sandbox, 300, 300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_file_is_refused_and_its_new_rows_come_in_through_a_new_file() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox).with("task", "country = \"SG\"");
    campaign.write_job();
    // Numbers written internationally, so that a resume point inside a row
    // would make another person's number of the rest ("+65 9123 4567").
    let row = |i: usize| format!("Person {i:04},+65 9{:03} {:04}\n", i / 10, 1000 + i);
    let text: String = "name,phone\n".to_owned() + &(0..3000).map(row).collect::<String>();
    assert!(text.len() > 64 * 1024);
    std::fs::write(campaign.contacts_path(), &text).unwrap();
    assert_eq!(exit_code(&campaign.run().await), 0);
    assert_eq!(sandbox.accepted_orders().len(), 3000);

    // The same first 64 KiB, a changed row after them, and more rows; and
    // then a file whose rows are shifted so the old resume point falls
    // inside a row.
    let more: String = (3000..3300).map(row).collect();
    let changed = text.replace("Person 2990", "Person 299X") + &more;
    let shifted = text.replacen("Person 0000,", "Person 00000,", 1) + &more;
    for replaced in [changed, shifted] {
        std::fs::write(campaign.contacts_path(), &replaced).unwrap();
        let output = campaign.run().await;
        assert_eq!(exit_code(&output), 2, "{}", stderr(&output));
        assert!(
            stderr(&output).contains("changed in the part already read"),
            "{}",
            stderr(&output)
        );
        assert_eq!(sandbox.accepted_orders().len(), 3000, "nothing sent");
    }

    // What the message advises: the new export as a new file.
    let export = campaign.dir.path().join("export.csv");
    std::fs::write(
        &export,
        "name,phone\n".to_owned() + &(0..3300).map(row).collect::<String>(),
    )
    .unwrap();
    let job = std::fs::read_to_string(campaign.job_path())
        .unwrap()
        .replace("contacts.csv", "export.csv");
    std::fs::write(campaign.job_path(), job).unwrap();
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    let accepted = sandbox.accepted_orders();
    assert_eq!(accepted.len(), 3300, "every row of the new file, once");
    assert!(accepted.values().all(|n| *n == 1));
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "duplicate"), 3000, "{status}");
    assert_eq!(status["rows_read"], 6300);
    assert_eq!(orders_total(&status), 6300);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quote_never_closed_makes_one_invalid_row_naming_its_line() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    campaign.write_job();
    let text = "name,phone\n".to_owned() + &rows(0, 50) + "\"Unclosed,51234567\n" + &rows(50, 10);
    std::fs::write(campaign.contacts_path(), &text).unwrap();
    settle(&campaign.contacts_path());
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    let hint = format!(
        "see `nxcampaign orders {} --state",
        campaign.job_path().display()
    );
    assert!(
        stderr(&output).contains(&hint),
        "a hint that works from any folder: {}",
        stderr(&output)
    );
    let rows = campaign.orders_csv().await;
    let invalid: Vec<_> = rows.iter().filter(|row| row[2] == "invalid").collect();
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!(invalid[0][6], "52");
    let orders = nxcampaign(&campaign.db())
        .args(["orders", "spring", "--state", "invalid", "--format", "json"])
        .output()
        .await
        .unwrap();
    let shown = String::from_utf8_lossy(&orders.stdout);
    assert!(
        shown.contains("quote opened on line 52 never closed"),
        "{shown}"
    );
    assert_all_sent_once(&campaign, &sandbox, 50, 51).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_record_is_one_invalid_row_read_in_bounded_memory() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    campaign.write_job();
    // Written a piece at a time, so the test holds little itself.
    let mut file = std::fs::File::create(campaign.contacts_path()).unwrap();
    file.write_all(("name,phone\n".to_owned() + &rows(0, 10)).as_bytes())
        .unwrap();
    let piece = vec![b'z'; 1 << 20];
    for _ in 0..64 {
        file.write_all(&piece).unwrap();
    }
    file.write_all(format!(",51234567\n{}", rows(10, 10)).as_bytes())
        .unwrap();
    drop(file);
    let output = assert_peaks_under_mib(campaign.spawn_run_piped(), 100).await;
    assert_eq!(exit_code(&output), 1, "{}", stderr(&output));
    let rows = campaign.orders_csv().await;
    let invalid: Vec<_> = rows.iter().filter(|row| row[2] == "invalid").collect();
    assert_eq!(invalid.len(), 1);
    assert!(
        invalid[0][1].len() < 2 << 20,
        "the field is not stored whole"
    );
    assert_all_sent_once(&campaign, &sandbox, 20, 21).await;

    // A device that never ends is no contact file.
    let job = std::fs::read_to_string(campaign.job_path())
        .unwrap()
        .replace("contacts.csv", "/dev/zero");
    std::fs::write(campaign.job_path(), job).unwrap();
    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 2, "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_or_the_time_limit_during_ingest_stops_at_a_record_boundary_and_keeps_what_was_read(
) {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox).with("batching", "size = 1000");
    campaign.write_job();
    let text = "name,phone\n".to_owned() + &rows(0, 89_000);
    std::fs::write(campaign.contacts_path(), &text).unwrap();

    let run = campaign.spawn_run();
    // Once the first chunk is in the ledger, most of the file is still
    // to be read.
    let started = std::time::Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "ingest began");
        let staged = nxcampaign(&campaign.db())
            .args(["status", "spring", "--json"])
            .output()
            .await
            .unwrap();
        let read = serde_json::from_slice::<serde_json::Value>(&staged.stdout)
            .ok()
            .and_then(|status| status["rows_read"].as_u64())
            .unwrap_or(0);
        if read > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sigterm(&run);
    let (code, message) = finish(run).await;
    assert_eq!(code, 75, "{message}");
    assert!(
        message.contains("stopped at a record boundary"),
        "{message}"
    );
    // Sending began with the first plan: whatever left is recorded.
    let status = campaign.status().await;
    assert_eq!(count(&status, "batches", "sending"), 0, "{status}");
    assert_eq!(
        count(&status, "orders", "accepted"),
        sandbox.accepted_orders().len() as u64,
        "{status}"
    );
    let sent = sandbox.stats().requests;

    let limited = campaign.run_with_flags(&["--max-runtime", "1ms"]).await;
    assert_exit_saying(&limited, 75, "stopped at a record boundary");
    assert_eq!(
        sandbox.stats().requests,
        sent,
        "nothing starts after the limit"
    );

    let output = campaign.run().await;
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    assert_all_sent_once(&campaign, &sandbox, 89_000, 89_000).await;
}

/// Files as people export them: semicolons (a spreadsheet in a comma-decimal
/// locale), tabs, gzip data whatever the name says, and a file with only
/// its header row (a warning, not silence).
#[tokio::test(flavor = "multi_thread")]
async fn semicolons_tabs_and_gzip_named_csv_are_read_and_a_header_only_file_warns() {
    let sandbox = start_sandbox(Faults::default()).await;
    let rows = |separator: &str| -> String {
        let mut text = format!("name{separator}phone{separator}note\n");
        for i in 0..40 {
            text.push_str(&format!(
                "\"Doe{separator} Jane\"{separator}+852 {}{separator}x\n",
                hk_number(i)
            ));
        }
        text
    };
    for (name, text) in [("semicolons", rows(";")), ("tabs", rows("\t"))] {
        let campaign = Campaign::new(&sandbox);
        std::fs::write(campaign.contacts_path(), &text).unwrap();
        campaign.write_job();
        let run = campaign.run().await;
        assert_eq!(exit_code(&run), 0, "{name}: {}", stderr(&run));
        let status = campaign.status().await;
        assert_eq!(count(&status, "orders", "accepted"), 40, "{name}");
    }

    // gzip data in a file named .csv.
    let campaign = Campaign::new(&sandbox);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(rows(",").as_bytes()).unwrap();
    std::fs::write(campaign.contacts_path(), encoder.finish().unwrap()).unwrap();
    campaign.write_job();
    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 0, "{}", stderr(&run));
    assert_eq!(count(&campaign.status().await, "orders", "accepted"), 40);

    // Only a header row.
    let campaign = Campaign::new(&sandbox);
    std::fs::write(campaign.contacts_path(), "name,phone\n").unwrap();
    campaign.write_job();
    let run = campaign.run().await;
    assert_eq!(exit_code(&run), 0, "{}", stderr(&run));
    assert!(
        stderr(&run).contains("a header row and no contacts"),
        "{}",
        stderr(&run)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_file_named_from_another_folder_or_relatively_reads_on_from_its_checkpoint() {
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new(&sandbox);
    std::fs::write(
        campaign.contacts_path(),
        format!("name,phone\n{}", rows(0, 100)),
    )
    .unwrap();
    campaign.write_job();
    let folder = campaign.job_path().parent().unwrap().to_owned();
    let run_in = |cwd: &std::path::Path, job: &std::path::Path| {
        nxcampaign(&campaign.db())
            .current_dir(cwd)
            .env("NXLINK_ACCESS_KEY", nxcampaign::sandbox::DEFAULT_ACCESS_KEY)
            .env(
                "NXLINK_ACCESS_SECRET",
                nxcampaign::sandbox::DEFAULT_ACCESS_SECRET,
            )
            .arg("run")
            .arg(job)
            .output()
    };
    // From the job's folder, named relatively.
    let first = run_in(&folder, std::path::Path::new("job.toml"))
        .await
        .unwrap();
    assert_eq!(exit_code(&first), 0, "{}", stderr(&first));
    if campaign.on_sqlite() {
        // As versions before this one recorded it: the path as given.
        let ledger = rusqlite::Connection::open(campaign.db()).unwrap();
        ledger
            .execute("UPDATE campaigns SET source_path = './contacts.csv'", [])
            .unwrap();
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(campaign.contacts_path())
        .unwrap();
    file.write_all(rows(100, 50).as_bytes()).unwrap();
    drop(file);
    // From elsewhere, named absolutely: only the new rows are read.
    let second = run_in(&std::env::temp_dir(), &campaign.job_path())
        .await
        .unwrap();
    assert_eq!(exit_code(&second), 0, "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("another contact file"),
        "{}",
        stderr(&second)
    );
    assert!(
        stderr(&second).contains("50 new row(s)"),
        "{}",
        stderr(&second)
    );
    let status = campaign.status().await;
    assert_eq!(count(&status, "orders", "accepted"), 150);
    assert_eq!(sandbox.stats().orders_accepted, 150);
    assert_eq!(sandbox.stats().orders_accepted_twice, 0);
}

/// Runs `nxcampaign <args>` as a user who may not write `db`'s folder:
/// `nobody` when the tests run as root (whom no permission stops).
async fn as_reader(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    let binary = env!("CARGO_BIN_EXE_nxcampaign");
    let mut command = if nix::unistd::Uid::effective().is_root() {
        let mut command = tokio::process::Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        command
    } else {
        tokio::process::Command::new(binary)
    };
    command
        .env("NXCAMPAIGN_DB", db)
        .env("HOME", "/")
        .args(args)
        .output()
        .await
        .expect("nxcampaign runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_commands_read_an_archived_ledger_on_a_folder_they_cannot_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let sandbox = start_sandbox(Faults::default()).await;
    let campaign = Campaign::new_on_sqlite(&sandbox);
    std::fs::write(
        campaign.contacts_path(),
        format!("name,phone\n{}", rows(0, 150)),
    )
    .unwrap();
    campaign.write_job();
    assert_eq!(exit_code(&campaign.run().await), 0);
    // An archived copy, in a folder no one may write.
    let archive = campaign.dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let copy = archive.join("ledger.db");
    std::fs::copy(campaign.db(), &copy).unwrap();
    let mode = |path: &std::path::Path, bits| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).unwrap()
    };
    mode(campaign.dir.path(), 0o755);
    mode(&copy, 0o444);
    mode(&archive, 0o555);
    for args in [
        &["status", "spring"][..],
        &["status"][..],
        &["orders", "spring", "--format", "csv"][..],
        &["report", "spring"][..],
        &["campaigns"][..],
        &["suppress", "list"][..],
    ] {
        let output = as_reader(&copy, args).await;
        assert_eq!(exit_code(&output), 0, "{args:?}: {}", stderr(&output));
    }
    let orders = as_reader(&copy, &["orders", "spring", "--format", "csv"]).await;
    assert_eq!(String::from_utf8_lossy(&orders.stdout).lines().count(), 151);
    // Nothing was written beside it.
    let beside: Vec<_> = std::fs::read_dir(&archive).unwrap().collect();
    assert_eq!(beside.len(), 1);
    mode(&archive, 0o755);
}
