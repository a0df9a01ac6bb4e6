//! The whole pipeline, measured with the real binary against the sandbox on
//! 127.0.0.1. Prints one markdown table.
//!
//! ```sh
//! cargo bench --bench pipeline                 # 1 million rows
//! cargo bench --bench pipeline -- --big        # and 10 million
//! cargo bench --bench pipeline -- --rows 200000 --runs 1 --rate-seconds 5
//! ```
//!
//! Each figure is the median of `--runs` runs on a fresh ledger, timed
//! around the `nxcampaign` process, whose peak RSS comes from `getrusage`.
//! The baseline is the `sqlite3` shell's `.import` of the same rows into a
//! table with a `TEXT PRIMARY KEY` order id and a `UNIQUE` phone.
//!
//! Two shapes of file: the easy one (every number international, an id
//! column) and a realistic one, as contact files are exported from CRMs
//! and spreadsheets (most numbers national, four countries and the job's
//! default, names in several scripts with quoted commas, doubled quotes and
//! line breaks, 2% invalid, 2% repeats written another way, no id column),
//! plain and gzip-compressed. The realistic file is also compared with a
//! straightforward Python runner (`scripts/python_runner.py`), and `run`
//! on it is timed to its first request at the sandbox.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod calls;

use md5::{Digest, Md5};
use nxcampaign::nxlink::Credentials;
use nxcampaign::realistic;
use nxcampaign::sandbox::{Faults, Sandbox, DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET};

const BINARY: &str = env!("CARGO_BIN_EXE_nxcampaign");

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Re-executed as `pipeline --measure <program> <args>`: run it and
    // report its peak RSS, which getrusage gives exactly for a sole child.
    if args.first().map(String::as_str) == Some("--measure") {
        measure_child(&args[1..]);
        return;
    }
    let options = Options::parse(&args);
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-pipeline");
    std::fs::create_dir_all(&work).expect("bench folder");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sandbox = runtime.block_on(async {
        Sandbox::start(
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            Credentials::new(DEFAULT_ACCESS_KEY, DEFAULT_ACCESS_SECRET),
            Faults::default(),
        )
        .await
        .expect("sandbox")
    });

    let mut table = String::new();
    writeln!(
        table,
        "| rows | what | time (median of {}) | rows/s | peak RSS | vs sqlite3 .import |",
        options.runs
    )
    .unwrap();
    writeln!(table, "|---:|---|---:|---:|---:|---|").unwrap();
    for &orders in &options.calls {
        calls::bench(&mut table, &runtime, &work, &sandbox, orders);
        eprint!("{table}");
    }
    if options.only_calls {
        println!("\n{table}");
        runtime.block_on(sandbox.stop());
        return;
    }
    for &rows in &options.sizes {
        if options.only_memory {
            memory(&mut table, &work, &sandbox, rows);
            eprint!("{table}");
            continue;
        }
        if let Some(server) = &options.postgres {
            postgres(&mut table, &work, &sandbox, server, rows, options.runs);
            eprint!("{table}");
        }
        if options.only_postgres {
            continue;
        }
        let data = work.join(format!("contacts-{rows}.csv"));
        if !data.exists() {
            eprintln!("generating {rows} rows into {}", data.display());
            generate(&data, rows);
        }
        let lines = rows as f64;
        // The highest rate a job may ask for: no limit in practice here.
        let job = write_job(&work, &EASY, &data, &sandbox.base_url(), "10000.0", 1000);

        let baseline = median(options.runs, || sqlite_import(&work, &data));
        row(
            &mut table,
            rows,
            "sqlite3 .import (baseline)",
            &baseline,
            lines,
            None,
        );

        let ingest = median(options.runs, || {
            let db = fresh_db(&work, "ingest");
            measure(&[BINARY, "--db", &db, "ingest", &job])
        });
        row(
            &mut table,
            rows,
            "ingest (file → ledger)",
            &ingest,
            lines,
            Some(&baseline),
        );

        zoned_ingest(&mut table, &work, &job, rows, options.runs, &ingest, "");

        let db = fresh_db(&work, "rerun");
        measure(&[BINARY, "--db", &db, "ingest", &job]);
        let rerun = median(options.runs, || {
            measure(&[BINARY, "--db", &db, "ingest", &job])
        });
        row(
            &mut table,
            rows,
            "re-run, nothing new",
            &rerun,
            lines,
            Some(&baseline),
        );

        let e2e_db = fresh_db(&work, "e2e");
        let end_to_end = median(options.runs, || {
            let db = fresh_db(&work, "e2e");
            measure_env(&[BINARY, "--db", &db, "run", &job], true)
        });
        row(
            &mut table,
            rows,
            "end to end (ingest + send + record)",
            &end_to_end,
            lines,
            Some(&baseline),
        );
        measure_env(&[BINARY, "--db", &e2e_db, "run", &job], true);

        let status = median(options.runs, || {
            measure(&[BINARY, "--db", &e2e_db, "status", "bench", "--json"])
        });
        row(&mut table, rows, "status", &status, lines, None);
        let orders = median(options.runs, || {
            measure(&[
                BINARY, "--db", &e2e_db, "orders", "bench", "--format", "csv",
            ])
        });
        row(
            &mut table,
            rows,
            "orders --format csv",
            &orders,
            lines,
            None,
        );
        do_not_call(&mut table, &work, &job, rows, options.runs);
        eprint!("{table}");

        realistic(&mut table, &work, &sandbox, rows, options.runs);
        eprint!("{table}");
    }
    if options.postgres.is_none() && !options.only_memory {
        eprintln!("note: no PostgreSQL figures: give --postgres URL or NXCAMPAIGN_BENCH_POSTGRES");
    }
    if !options.only_postgres && !options.only_memory {
        phone_speed(&mut table);
    }

    if options.rate_seconds > 0 && !options.only_postgres && !options.only_memory {
        writeln!(table).unwrap();
        writeln!(
            table,
            "| quota (req/s) | achieved (req/s) | error | largest count in a 1 s window |"
        )
        .unwrap();
        writeln!(table, "|---:|---:|---:|---:|").unwrap();
        for quota in [5u32, 50, 500] {
            let (achieved, peak) =
                rate_precision(&runtime, &sandbox, &work, quota, options.rate_seconds);
            writeln!(
                table,
                "| {quota} | {achieved:.2} | {:+.2}% | {peak} |",
                (achieved / f64::from(quota) - 1.0) * 100.0
            )
            .unwrap();
            eprintln!("rate {quota}: {achieved:.2} req/s, peak window {peak}");
        }
    }
    println!("\n{table}");
    runtime.block_on(sandbox.stop());
}

/// Peak memory of `ingest` and of `run` (ingest, send and record at
/// once) of `rows` rows, the easy file and the realistic one, once each.
fn memory(table: &mut String, work: &Path, sandbox: &Sandbox, rows: usize) {
    let easy = work.join(format!("contacts-{rows}.csv"));
    if !easy.exists() {
        eprintln!("generating {rows} rows into {}", easy.display());
        generate(&easy, rows);
    }
    let (realistic, _, _) = realistic_files(work, rows);
    for (shape, data, what) in [(&EASY, &easy, ""), (&REALISTIC, &realistic, "realistic: ")] {
        let job = write_job(work, shape, data, &sandbox.base_url(), "10000.0", 1000);
        let db = fresh_db(work, "memory");
        let ingest = measure(&[BINARY, "--db", &db, "ingest", &job]);
        row(
            table,
            rows,
            &format!("{what}ingest"),
            &ingest,
            rows as f64,
            None,
        );
        let db = fresh_db(work, "memory");
        let run = measure_env(&[BINARY, "--db", &db, "run", &job], true);
        row(
            table,
            rows,
            &format!("{what}`run` (ingest + send + record)"),
            &run,
            rows as f64,
            None,
        );
    }
}

/// Microseconds a number, on the realistic file's first 200 000 phone
/// cells (each with its row's country): `Phone::parse` (the fast path),
/// and the `phonenumber` crate answering the same question (parse with
/// the row's country, validate, format) in one thread.
fn phone_speed(table: &mut String) {
    use nxcampaign::phone::{Country, Phone};
    const CELLS: usize = 200_000;
    let default = Country::parse(realistic::DEFAULT_COUNTRY).expect("a country");
    let cells: Vec<(String, Country)> = realistic::rows(CELLS)
        .map(|row| {
            let country = match row.country {
                "" => default,
                code => Country::parse(code).expect("a country"),
            };
            (row.phone, country)
        })
        .collect();
    // Compile every pattern once before timing.
    let warm = cells
        .iter()
        .filter(|(raw, c)| Phone::parse(raw, *c).is_ok())
        .count();
    let started = Instant::now();
    let valid = cells
        .iter()
        .filter(|(raw, c)| Phone::parse(raw, *c).is_ok())
        .count();
    let fast = started.elapsed().as_secs_f64() * 1e6 / CELLS as f64;
    assert_eq!(warm, valid);
    let started = Instant::now();
    let library = cells
        .iter()
        .filter(|(raw, c)| {
            let id = c.as_str().parse().expect("an id");
            phonenumber::parse(Some(id), raw).is_ok_and(|n| {
                phonenumber::is_valid(&n)
                    && !n
                        .format()
                        .mode(phonenumber::Mode::E164)
                        .to_string()
                        .is_empty()
            })
        })
        .count();
    let slow = started.elapsed().as_secs_f64() * 1e6 / CELLS as f64;
    writeln!(
        table,
        "| {CELLS} | realistic: phone numbers, fast path | {fast:.2} µs a number | | | {valid} valid |"
    )
    .unwrap();
    writeln!(
        table,
        "| {CELLS} | realistic: phone numbers, `phonenumber` crate | {slow:.2} µs a number | | | {library} valid, {:.0}× the fast path's time |",
        slow / fast
    )
    .unwrap();
}

/// `job` again with a `[schedule]` (each number's time zones looked up,
/// batches cut by zone set too), its ingest timed beside `plain`'s.
fn zoned_ingest(
    table: &mut String,
    work: &Path,
    job: &str,
    rows: usize,
    runs: usize,
    plain: &Sample,
    what: &str,
) {
    let zoned = job.replace(".toml", "-zoned.toml");
    std::fs::write(
        &zoned,
        std::fs::read_to_string(job).expect("the job")
            + "[schedule]\ntimezone = \"UTC\"\nwindow = \"00:00-23:59:59\"\n",
    )
    .expect("the zoned job");
    let with_zones = median(runs, || {
        let db = fresh_db(work, "ingest-zoned");
        measure(&[BINARY, "--db", &db, "ingest", &zoned])
    });
    writeln!(
        table,
        "| {rows} | {what}ingest with a [schedule] (each number's zones looked up) | {:.3} s | {:.0} | {:.1} MiB | {:.2}× the ingest's time |",
        with_zones.seconds,
        rows as f64 / with_zones.seconds,
        with_zones.peak_rss_kib as f64 / 1024.0,
        with_zones.seconds / plain.seconds
    )
    .unwrap();
}

/// The realistic shape: generated once per size, then measured plain and
/// compressed, against `sqlite3 .import` of a copy with an id column and
/// against the Python runner, and `run` timed to its first request.
fn realistic(table: &mut String, work: &Path, sandbox: &Sandbox, rows: usize, runs: usize) {
    let (plain, with_ids, gz) = realistic_files(work, rows);
    let lines = rows as f64;
    let baseline = median(runs, || {
        let db = fresh_db(work, "baseline-realistic");
        let script = work.join("import-realistic.sql");
        std::fs::write(
            &script,
            format!(
                "CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT, phone TEXT UNIQUE, country TEXT);\n.mode csv\n.import --skip 1 {} contacts\n",
                with_ids.display()
            ),
        )
        .expect("script");
        measure(&[
            "sh",
            "-c",
            &format!("sqlite3 {db} < {} 2>/dev/null", script.display()),
        ])
    });
    row(
        table,
        rows,
        "realistic: sqlite3 .import (baseline)",
        &baseline,
        lines,
        None,
    );
    let mut plain_ingest = None;
    for (what, data) in [
        ("realistic: ingest", &plain),
        ("realistic: ingest, .csv.gz", &gz),
    ] {
        let job = write_job(work, &REALISTIC, data, &sandbox.base_url(), "10000.0", 1000);
        let ingest = median(runs, || {
            let db = fresh_db(work, "ingest-realistic");
            measure(&[BINARY, "--db", &db, "ingest", &job])
        });
        row(table, rows, what, &ingest, lines, Some(&baseline));
        if data == &plain {
            zoned_ingest(table, work, &job, rows, runs, &ingest, "realistic: ");
            plain_ingest = Some(ingest);
        }
    }
    let ingest_seconds = plain_ingest.expect("the plain file's ingest").seconds;

    // The Python runner, on the first 100 000 rows (it is slow).
    let python_rows = rows.min(100_000);
    let sample = work.join(format!("realistic-{python_rows}-head.csv"));
    if !sample.exists() {
        head_rows(&plain, &sample, python_rows);
    }
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python_runner.py");
    let python = median(runs, || {
        let db = fresh_db(work, "python-realistic");
        measure(&[
            "python3",
            &runner.display().to_string(),
            &sample.display().to_string(),
            &db,
            "HK",
        ])
    });
    let job = write_job(
        work,
        &REALISTIC,
        &sample,
        &sandbox.base_url(),
        "10000.0",
        1000,
    );
    let ours = median(runs, || {
        let db = fresh_db(work, "ingest-python-sized");
        measure(&[BINARY, "--db", &db, "ingest", &job])
    });
    row(
        table,
        python_rows,
        "realistic: Python runner (csv, phonenumbers, sqlite3)",
        &python,
        python_rows as f64,
        None,
    );
    row(
        table,
        python_rows,
        "realistic: ingest, same rows",
        &ours,
        python_rows as f64,
        Some(&python),
    );

    let job = write_job(
        work,
        &REALISTIC,
        &plain,
        &sandbox.base_url(),
        "10000.0",
        1000,
    );
    // Time from start to the first request, and to the end, on the whole
    // file (every batch sent and recorded).
    let times: Vec<(f64, f64)> = (0..runs)
        .map(|_| {
            let db = fresh_db(work, "first-request");
            let before = sandbox.stats().requests;
            let started = Instant::now();
            let mut child = Command::new(BINARY)
                .args(["--db", &db, "run", "--max-runtime", "60s", &job])
                .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
                .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run starts");
            while sandbox.stats().requests == before {
                std::thread::sleep(Duration::from_millis(5));
            }
            let first = started.elapsed().as_secs_f64();
            let _ = child.wait();
            (first, started.elapsed().as_secs_f64())
        })
        .collect();
    let median_of = |pick: fn(&(f64, f64)) -> f64| {
        let mut sorted: Vec<f64> = times.iter().map(pick).collect();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let (first, end) = (median_of(|t| t.0), median_of(|t| t.1));
    writeln!(
        table,
        "| {rows} | realistic: end to end (`run`: ingest + send + record) | {end:.3} s | {:.0} | | {:.2}× the ingest's time |",
        lines / end,
        end / ingest_seconds
    )
    .unwrap();
    writeln!(
        table,
        "| {rows} | realistic: `run`, time to the first request | {first:.3} s | | | {:.3} of the ingest's time |",
        first / ingest_seconds
    )
    .unwrap();
}

/// The PostgreSQL figures, each on schemas of their own:
/// ingest of the realistic file against `psql \copy` of the same rows
/// (with an id column) into a table with an order id primary key and a
/// unique phone (through a staging table: the file repeats phone texts); `status` on 10 million orders; and three runners, one
/// killed with SIGKILL, finishing the campaign unattended.
fn postgres(
    table: &mut String,
    work: &Path,
    sandbox: &Sandbox,
    server: &str,
    rows: usize,
    runs: usize,
) {
    let (plain, with_ids, _) = realistic_files(work, rows);
    let lines = rows as f64;
    let copy = median(runs, || {
        psql(
            server,
            "DROP SCHEMA IF EXISTS bench_copy CASCADE; CREATE SCHEMA bench_copy;
             CREATE TABLE bench_copy.contacts (id TEXT PRIMARY KEY, name TEXT, phone TEXT UNIQUE, country TEXT);",
        );
        // A straight `\copy` into that table stops at the file's first
        // repeated phone text; what a person does instead: copy into a
        // staging table, then insert, skipping the rows the constraints
        // refuse.
        measure(&[
            "psql",
            server,
            "-Xq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TEMP TABLE staging (id TEXT, name TEXT, phone TEXT, country TEXT)",
            "-c",
            &format!(
                "\\copy staging FROM '{}' WITH (FORMAT csv, HEADER true)",
                with_ids.display()
            ),
            "-c",
            "INSERT INTO bench_copy.contacts SELECT * FROM staging ON CONFLICT DO NOTHING",
        ])
    });
    row(
        table,
        rows,
        "PostgreSQL: psql \\copy to staging + INSERT … ON CONFLICT DO NOTHING (baseline)",
        &copy,
        lines,
        None,
    );
    let ledger = in_schema(server, "bench_ingest");
    let job = write_job(
        work,
        &REALISTIC,
        &plain,
        &sandbox.base_url(),
        "10000.0",
        1000,
    );
    let ingest = median(runs, || {
        psql(
            server,
            "DROP SCHEMA IF EXISTS bench_ingest CASCADE; CREATE SCHEMA bench_ingest;",
        );
        measure(&[BINARY, "--db", &ledger, "ingest", &job])
    });
    row(
        table,
        rows,
        "PostgreSQL: realistic ingest",
        &ingest,
        lines,
        Some(&copy),
    );

    // `status` on 10 million orders, made by SQL (100 000 batches of 100,
    // 1% set aside); kept between bench runs.
    let ledger = in_schema(server, "bench_status");
    let made = Command::new("psql")
        .args([server, "-XAtqc", "SELECT COUNT(*) FROM bench_status.orders"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "10000000")
        .unwrap_or(false);
    if !made {
        eprintln!("making 10 million orders in schema bench_status");
        psql(
            server,
            "DROP SCHEMA IF EXISTS bench_status CASCADE; CREATE SCHEMA bench_status;",
        );
        let migrated = Command::new(BINARY)
            .args(["--db", &ledger, "migrate"])
            .stdout(Stdio::null())
            .status()
            .expect("migrate runs");
        assert!(migrated.success());
        psql(
            server,
            "SET search_path = bench_status;
             INSERT INTO campaigns (name, created_at_ms, rows_read, planned_through, batches_planned_through,
                                    duplicate_orders)
                 VALUES ('big', 0, 10000000, 10000000, 100000, 100000);
             INSERT INTO batches (campaign_id, seq, country, size, state, updated_at_ms)
                 SELECT 1, s, 'HK', 100, CASE WHEN s % 50 = 0 THEN 'uncertain' ELSE 'accepted' END, 0
                 FROM generate_series(1, 100000) s;
             INSERT INTO orders (campaign_id, line, order_id, phone, country, batch_seq, set_aside, reason)
                 SELECT 1, i + 1, md5(i::text), (85251000000 + i)::text, 'HK',
                        CASE WHEN i % 100 = 0 THEN NULL ELSE (i - 1) / 100 + 1 END,
                        CASE WHEN i % 100 = 0 THEN 'duplicate' END,
                        CASE WHEN i % 100 = 0 THEN 'same phone as line 2' END
                 FROM generate_series(1, 10000000) i;
             ANALYZE;",
        );
    }
    let status = median(runs.max(5), || {
        measure(&[BINARY, "--db", &ledger, "status", "big", "--json"])
    });
    row(
        table,
        10_000_000,
        "PostgreSQL: `status` (the whole process)",
        &status,
        1e7,
        None,
    );

    kill_one_of_three(table, work, sandbox, server, &plain);
    three_runners_at_three_times_the_rate(table, work, sandbox, server, &plain, runs);
}

/// One runner, then three, on the same 40 000 realistic rows (batches of
/// 100) against a vendor that takes 50 ms to answer each request, each
/// runner with 2 requests in flight: one runner can send about 40
/// requests a second, and the job allows three times that (`scope =
/// "campaign"`, the one rate bucket in the database). The file is
/// ingested first; throughput is the batches over the time from starting
/// the runners to the last one's exit, so it counts their start, their
/// lease and their claims. Three runners should reach close to three
/// times one.
fn three_runners_at_three_times_the_rate(
    table: &mut String,
    work: &Path,
    sandbox: &Sandbox,
    server: &str,
    data: &Path,
    runs: usize,
) {
    const ROWS: usize = 40_000;
    let sample = work.join(format!("realistic-{ROWS}-head.csv"));
    if !sample.exists() {
        head_rows(data, &sample, ROWS);
    }
    let ledger = in_schema(server, "bench_three");
    let job = write_job(work, &REALISTIC, &sample, &sandbox.base_url(), "120.0", 100);
    let job_text = std::fs::read_to_string(&job).expect("job").replace(
        "max_in_flight = 8",
        "max_in_flight = 2\nscope = \"campaign\"",
    );
    std::fs::write(&job, job_text).expect("job");
    sandbox.set_faults(Faults {
        slow_ms: 50,
        slow_share: 1.0,
        ..Faults::default()
    });
    let throughput = |runners: usize| -> f64 {
        let mut rates: Vec<f64> = (0..runs)
            .map(|_| {
                psql(
                    server,
                    "DROP SCHEMA IF EXISTS bench_three CASCADE; CREATE SCHEMA bench_three;",
                );
                // Exit 1: the file's invalid rows and repeats need a look.
                let ingested = Command::new(BINARY)
                    .args(["-q", "--db", &ledger, "ingest", &job])
                    .stdout(Stdio::null())
                    .status()
                    .expect("ingest runs");
                assert!(
                    matches!(ingested.code(), Some(0 | 1)),
                    "ingest failed: {ingested}"
                );
                let before = sandbox.stats().requests;
                let started = Instant::now();
                let children: Vec<_> = (0..runners)
                    .map(|i| spawn_runner(&ledger, &job, &format!("bench-runner-{i}")))
                    .collect();
                for mut child in children {
                    child.wait().expect("run ends");
                }
                let seconds = started.elapsed().as_secs_f64();
                let requests = sandbox.stats().requests - before;
                assert!(
                    requests >= (ROWS / 100 * 9 / 10) as u64,
                    "only {requests} requests"
                );
                requests as f64 / seconds
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let one = throughput(1);
    let three = throughput(3);
    sandbox.set_faults(Faults::default());
    writeln!(
        table,
        "| {ROWS} | PostgreSQL: one runner, 2 in flight, the vendor answering in 50 ms (file ingested first) | {one:.1} requests/s | | | |"
    )
    .unwrap();
    writeln!(
        table,
        "| {ROWS} | PostgreSQL: three runners, the job allowing 120 requests/s | {three:.1} requests/s | | | {:.2}× one runner |",
        three / one
    )
    .unwrap();
}

/// Three runners on 20 000 realistic rows (batches of 100, 20 requests a
/// second, `stale_after` 5 s); once 40 requests arrived, one is killed with
/// SIGKILL. It runs as another host, so the others notice it only by its
/// silent heartbeat. Reports how long after the kill the others were done,
/// against `stale_after` plus what the batches left needed at the rate.
fn kill_one_of_three(
    table: &mut String,
    work: &Path,
    sandbox: &Sandbox,
    server: &str,
    data: &Path,
) {
    let sample = work.join("realistic-20000-head.csv");
    if !sample.exists() {
        head_rows(data, &sample, 20_000);
    }
    psql(
        server,
        "DROP SCHEMA IF EXISTS bench_kill CASCADE; CREATE SCHEMA bench_kill;",
    );
    let ledger = in_schema(server, "bench_kill");
    let job = write_job(work, &REALISTIC, &sample, &sandbox.base_url(), "20.0", 100);
    let job_text = std::fs::read_to_string(&job).expect("job") + "[lease]\nstale_after_ms = 5000\n";
    std::fs::write(&job, job_text).expect("job");
    let before = sandbox.stats().requests;
    let mut victim = spawn_runner(&ledger, &job, "bench-host-a");
    let others = [
        spawn_runner(&ledger, &job, "bench-host-b"),
        spawn_runner(&ledger, &job, "bench-host-c"),
    ];
    while sandbox.stats().requests < before + 40 {
        std::thread::sleep(Duration::from_millis(5));
    }
    victim.kill().expect("SIGKILL");
    let killed = Instant::now();
    let sent = sandbox.stats().requests - before;
    let _ = victim.wait();
    for mut other in others {
        let _ = other.wait();
    }
    let after = killed.elapsed().as_secs_f64();
    let batches: u64 = Command::new("psql")
        .args([server, "-XAtqc", "SELECT COUNT(*) FROM bench_kill.batches"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0);
    let bound = 5.0 + batches.saturating_sub(sent) as f64 / 20.0;
    writeln!(
        table,
        "| 20000 | PostgreSQL: three runners, one killed after {sent} requests: the others done {after:.1} s after the kill | bound {bound:.1} s (stale_after 5 s + {} batches at 20/s) | | | {} |",
        batches.saturating_sub(sent),
        if after <= bound { "within" } else { "MISSED" }
    )
    .unwrap();
}

/// Starts `run` of `job` on `ledger` as one runner, on host `host` (so
/// that the others know it only by its heartbeat), output discarded.
fn spawn_runner(ledger: &str, job: &str, host: &str) -> std::process::Child {
    Command::new(BINARY)
        .args(["-q", "--db", ledger, "run", job])
        .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
        .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
        .env("NXCAMPAIGN_HOSTNAME", host)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts")
}

/// The server URL with `schema` first on the search path.
fn in_schema(server: &str, schema: &str) -> String {
    let joiner = if server.contains('?') { '&' } else { '?' };
    format!("{server}{joiner}options=-csearch_path%3D{schema}")
}

/// Runs SQL through `psql`, which must succeed.
fn psql(server: &str, sql: &str) {
    let status = Command::new("psql")
        .args([server, "-Xq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql failed: {sql}");
}

/// The realistic file of `rows` rows, as a user's file, with an id column
/// and gzip-compressed, generated on first use and kept between runs.
fn realistic_files(work: &Path, rows: usize) -> (PathBuf, PathBuf, PathBuf) {
    let plain = work.join(format!("realistic-{rows}.csv"));
    let with_ids = work.join(format!("realistic-{rows}-ids.csv"));
    let gz = work.join(format!("realistic-{rows}.csv.gz"));
    if !gz.exists() {
        eprintln!("generating {rows} realistic rows into {}", plain.display());
        generate_realistic(&plain, &with_ids, &gz, rows);
    }
    (plain, with_ids, gz)
}

/// Writes the realistic rows three ways: as a user's file (no id column),
/// with an id column for the baseline, and gzip-compressed.
fn generate_realistic(plain: &Path, with_ids: &Path, gz: &Path, rows: usize) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(plain).expect("data file"));
    let mut ids = BufWriter::with_capacity(1 << 20, File::create(with_ids).expect("id copy"));
    writeln!(out, "name,phone,country").unwrap();
    writeln!(ids, "id,name,phone,country").unwrap();
    for (i, row) in realistic::rows(rows).enumerate() {
        let realistic::Row {
            name,
            phone,
            country,
        } = row;
        writeln!(out, "{name},{phone},{country}").unwrap();
        writeln!(ids, "R{i},{name},{phone},{country}").unwrap();
    }
    out.flush().unwrap();
    ids.flush().unwrap();
    drop(out);
    let mut encoder = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(gz).expect("gz file")),
        flate2::Compression::default(),
    );
    std::io::copy(&mut File::open(plain).expect("data file"), &mut encoder).expect("gzip");
    encoder.finish().expect("gzip").flush().unwrap();
}

/// Copies the header and the first `rows` records of `from` (records may
/// span lines) to `to`.
fn head_rows(from: &Path, to: &Path, rows: usize) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(from)
        .expect("data file");
    let mut writer = csv::Writer::from_path(to).expect("head file");
    for record in reader.byte_records().take(rows + 1) {
        writer
            .write_byte_record(&record.expect("record"))
            .expect("write");
    }
    writer.flush().expect("flush");
}

struct Options {
    sizes: Vec<usize>,
    runs: usize,
    rate_seconds: u64,
    /// A PostgreSQL server for the PostgreSQL figures (`--postgres URL`,
    /// or `NXCAMPAIGN_BENCH_POSTGRES`).
    postgres: Option<String>,
    /// Only the PostgreSQL figures.
    only_postgres: bool,
    /// Campaign sizes of the call-outcome figures (webhook, sync, export).
    calls: Vec<usize>,
    /// Only the call-outcome figures.
    only_calls: bool,
    /// Only the memory of `ingest` and `run` at each size (with `--big`:
    /// whether it stays flat from 1 to 10 million rows).
    only_memory: bool,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let mut options = Options {
            sizes: vec![1_000_000],
            runs: 3,
            rate_seconds: 20,
            postgres: std::env::var("NXCAMPAIGN_BENCH_POSTGRES")
                .ok()
                .filter(|url| !url.is_empty()),
            only_postgres: false,
            calls: vec![200_000, 1_000_000],
            only_calls: false,
            only_memory: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--postgres" {
                options.postgres = Some(args.next().expect("a URL after --postgres").clone());
                continue;
            }
            if arg == "--only-postgres" {
                options.only_postgres = true;
                continue;
            }
            if arg == "--only-calls" {
                options.only_calls = true;
                continue;
            }
            if arg == "--only-memory" {
                options.only_memory = true;
                options.calls.clear();
                continue;
            }
            let mut value = || {
                args.next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .expect("a number after the flag")
            };
            match arg.as_str() {
                "--big" => options.sizes.push(10_000_000),
                "--rows" => options.sizes = vec![value() as usize],
                "--runs" => options.runs = value().max(1) as usize,
                "--rate-seconds" => options.rate_seconds = value(),
                "--calls" => options.calls = vec![value() as usize],
                "--no-calls" => options.calls.clear(),
                "--bench" => {}
                other => panic!(
                    "unknown option {other:?} (use --big, --rows N, --runs N, --rate-seconds N, --postgres URL, --only-postgres, --calls N, --no-calls, --only-calls, --only-memory)"
                ),
            }
        }
        options
    }
}

/// One measured process: wall time and peak RSS.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: f64,
    peak_rss_kib: u64,
}

/// A do-not-call list as big as the contact file: every other number of
/// the contacts (written as people keep them: international, with spaces)
/// and as many that are in no contact row. Times `suppress import` into a
/// fresh ledger, then an ingest of the contacts against that list (half
/// of them set aside at planning).
fn do_not_call(table: &mut String, work: &Path, job: &str, rows: usize, runs: usize) {
    let list = work.join(format!("dnc-{rows}.txt"));
    if !list.exists() {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&list).expect("list file"));
        writeln!(out, "phone").unwrap();
        for i in 0..rows {
            // Even rows: a contact's number; odd: a number of no contact
            // (the same ranges, beyond the rows' numbering).
            let n = if i % 2 == 0 { i } else { rows + i };
            writeln!(out, "{}", number(n)).unwrap();
        }
        out.flush().unwrap();
    }
    let list = list.to_string_lossy().into_owned();
    let lines = rows as f64;
    let import = median(runs, || {
        let db = fresh_db(work, "dnc");
        measure(&[BINARY, "--db", &db, "suppress", "import", &list])
    });
    row(
        table,
        rows,
        "suppress import (do-not-call list)",
        &import,
        lines,
        None,
    );
    let against = median(runs, || {
        let db = fresh_db(work, "dnc");
        measure(&[BINARY, "--db", &db, "suppress", "import", &list]);
        measure(&[BINARY, "--db", &db, "ingest", job])
    });
    row(
        table,
        rows,
        "ingest against that list (half the rows suppressed)",
        &against,
        lines,
        None,
    );
}

fn median(runs: usize, mut once: impl FnMut() -> Sample) -> Sample {
    let mut samples: Vec<Sample> = (0..runs).map(|_| once()).collect();
    samples.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mid = samples[samples.len() / 2];
    Sample {
        seconds: mid.seconds,
        peak_rss_kib: samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0),
    }
}

fn row(
    table: &mut String,
    rows: usize,
    what: &str,
    sample: &Sample,
    lines: f64,
    baseline: Option<&Sample>,
) {
    let ratio = baseline
        .map(|b| {
            let speed = b.seconds / sample.seconds;
            format!("{speed:.2}× its rows/s")
        })
        .unwrap_or_default();
    writeln!(
        table,
        "| {rows} | {what} | {:.3} s | {:.0} | {:.1} MiB | {ratio} |",
        sample.seconds,
        lines / sample.seconds,
        sample.peak_rss_kib as f64 / 1024.0
    )
    .unwrap();
}

fn measure(command: &[&str]) -> Sample {
    measure_env(command, false)
}

/// Runs `command` through `pipeline --measure` (with the sandbox's
/// credentials when asked) and reads its report.
fn measure_env(command: &[&str], credentials: bool) -> Sample {
    let env = if credentials {
        vec![
            (
                "NXLINK_ACCESS_KEY".to_owned(),
                DEFAULT_ACCESS_KEY.to_owned(),
            ),
            (
                "NXLINK_ACCESS_SECRET".to_owned(),
                DEFAULT_ACCESS_SECRET.to_owned(),
            ),
        ]
    } else {
        Vec::new()
    };
    measure_with(command, &env)
}

/// Runs `command` through `pipeline --measure` with `env` added, and reads
/// its report.
fn measure_with(command: &[&str], env: &[(String, String)]) -> Sample {
    let me = std::env::current_exe().expect("own path");
    let mut wrapper = Command::new(me);
    wrapper
        .arg("--measure")
        .args(command)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = wrapper.output().expect("measure wrapper runs");
    let report = String::from_utf8_lossy(&output.stdout);
    let mut fields = report.split_whitespace();
    let seconds: f64 = fields.next().and_then(|s| s.parse().ok()).expect("seconds");
    let peak_rss_kib: u64 = fields.next().and_then(|s| s.parse().ok()).expect("rss");
    Sample {
        seconds,
        peak_rss_kib,
    }
}

/// The wrapper: runs the command with its output discarded, then prints
/// "<seconds> <peak RSS KiB>".
fn measure_child(command: &[String]) {
    let started = Instant::now();
    let status = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("command runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 1),
        "{command:?} failed with {status}"
    );
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!("{seconds} {}", usage.max_rss());
}

fn fresh_db(work: &Path, name: &str) -> String {
    let db = work.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    db.display().to_string()
}

fn sqlite_import(work: &Path, data: &Path) -> Sample {
    let db = fresh_db(work, "baseline");
    let script = work.join("import.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT, phone TEXT UNIQUE, ref TEXT);\n.mode csv\n.import --skip 1 {} contacts\n",
            data.display()
        ),
    )
    .expect("script");
    let shell = format!("sqlite3 {db} < {}", script.display());
    measure(&["sh", "-c", &shell])
}

/// What a bench job says about its contact file's shape.
struct Shape {
    campaign: &'static str,
    /// The `[columns]` section's lines.
    columns: &'static str,
}

/// International numbers with an id column.
const EASY: Shape = Shape {
    campaign: "bench",
    columns: "phone = \"phone\"\norder_id = \"id\"\nother = [\"name\", \"ref\"]",
};

/// A country column (the job's default for rows without one), names in
/// `other`, no id column.
const REALISTIC: Shape = Shape {
    campaign: "realistic",
    columns: "phone = \"phone\"\ncountry = \"country\"\nother = [\"name\"]",
};

/// Writes a bench job for `data` of `shape`, sent at `rate` requests a
/// second in batches of `batch`; returns its path.
fn write_job(
    work: &Path,
    shape: &Shape,
    data: &Path,
    base_url: &str,
    rate: &str,
    batch: usize,
) -> String {
    let file = data.file_name().expect("a file name").to_string_lossy();
    let job = work.join(format!("job-{file}-{rate}.toml"));
    std::fs::write(
        &job,
        format!(
            r#"name = "{campaign}"
contacts = "{data}"
[api]
base_url = "{base_url}"
timeout_ms = 30000
[task]
country = "HK"
task_name = "Bench"
agent_group_no = "NX09445G000025"
[columns]
{columns}
[batching]
size = {batch}
[limits]
requests_per_second = {rate}
max_in_flight = 8
[retry]
max_attempts = 3
base_delay_ms = 10
max_delay_ms = 100
"#,
            campaign = shape.campaign,
            columns = shape.columns,
            data = data.display()
        ),
    )
    .expect("job");
    job.display().to_string()
}

/// Generates `rows` contact rows: numbers of five countries in random-looking
/// order, 0.3% invalid, 1% repeating an earlier number, a UTF-8 name and a
/// 36-character reference; the order id column is 32 hex digits.
fn generate(path: &Path, rows: usize) {
    const NAMES: [&str; 8] = [
        "陳大文",
        "José Álvarez",
        "Siti Nurhaliza",
        "Zoë Smith",
        "Łukasz Kowalski",
        "Nguyễn Văn An",
        "Ann Lee",
        "Budi Santoso",
    ];
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("data file"));
    writeln!(out, "id,name,phone,ref").unwrap();
    for i in 0..rows {
        let digest = Md5::digest((i as u64).to_le_bytes());
        let id = hex::encode_upper(digest);
        let reference = format!(
            "{}-{}-{}-{}-{}",
            &hex::encode(&digest[..4]),
            &hex::encode(&digest[4..6]),
            &hex::encode(&digest[6..8]),
            &hex::encode(&digest[8..10]),
            &hex::encode(&digest[10..16])
        );
        let phone = if i % 1000 < 3 {
            "12345".to_owned()
        } else if i % 100 == 50 {
            number(i - 37)
        } else {
            number(i)
        };
        writeln!(out, "{id},{},{phone},{reference}", NAMES[i % NAMES.len()]).unwrap();
    }
    out.flush().unwrap();
}

/// A valid number for row `i`, different for every `i`: each country's
/// rows are numbered, and the number scrambled by a bijection on the
/// country's range, so keys arrive in random order.
fn number(i: usize) -> String {
    let (group, slot) = ((i / 10) as u64, (i % 10) as u64);
    let scramble = |index: u64, range: u64| index.wrapping_mul(48_271) % range;
    match slot {
        0..=2 => format!("+4471{:08}", scramble(group * 3 + slot, 100_000_000)),
        3..=5 => format!("+62812{:08}", scramble(group * 3 + slot - 3, 100_000_000)),
        6 | 7 => {
            let v = scramble(group * 2 + slot - 6, 4_500_000);
            let prefix = ["51", "52", "53", "54", "59"][(v % 5) as usize];
            let third = ['0', '1', '2', '3', '4', '6', '7', '8', '9'][((v / 5) % 9) as usize];
            format!("+852 {prefix}{third}{:05}", v / 45)
        }
        8 => format!("+65 9{:07}", scramble(group, 9_000_000)),
        _ => format!("+1 212 {:07}", 2_000_000 + scramble(group, 8_000_000)),
    }
}

/// Runs a campaign at `quota` requests per second (one contact per request)
/// for `seconds`, and returns the achieved rate and the largest number of
/// requests in any one-second window.
fn rate_precision(
    runtime: &tokio::runtime::Runtime,
    sandbox: &Sandbox,
    work: &Path,
    quota: u32,
    seconds: u64,
) -> (f64, usize) {
    let rows = (u64::from(quota) * seconds * 2 + 100) as usize;
    let data = work.join(format!("rate-{rows}.csv"));
    if !data.exists() {
        generate(&data, rows);
    }
    let job = write_job(
        work,
        &EASY,
        &data,
        &sandbox.base_url(),
        &format!("{quota}.0"),
        1,
    );
    let db = fresh_db(work, "rate");
    let before = sandbox.arrivals().len();
    measure_env(&[BINARY, "--db", &db, "ingest", &job], false);
    let runtime_flag = format!("{seconds}s");
    let status = Command::new(BINARY)
        .args(["--db", &db, "run", "--max-runtime", &runtime_flag, &job])
        .env("NXLINK_ACCESS_KEY", DEFAULT_ACCESS_KEY)
        .env("NXLINK_ACCESS_SECRET", DEFAULT_ACCESS_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("rate run");
    assert_eq!(
        status.code(),
        Some(75),
        "the run is stopped by --max-runtime"
    );
    let _ = runtime;
    let arrivals: Vec<Instant> = sandbox.arrivals()[before..].to_vec();
    let (Some(first), Some(last)) = (arrivals.first(), arrivals.last()) else {
        return (0.0, 0);
    };
    let span = last.duration_since(*first).as_secs_f64();
    let achieved = (arrivals.len() - 1) as f64 / span;
    let mut peak = 0;
    let mut start = 0;
    for end in 0..arrivals.len() {
        while arrivals[end].duration_since(arrivals[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    (achieved, peak)
}
