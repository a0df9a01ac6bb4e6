//! `nxcampaign demo`: the example campaign against an in-process sandbox,
//! with a fresh ledger, so a new user sees the whole flow with no setup.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::error::{Error, Exit};
use crate::job::Job;
use crate::ledger::Ledger;
use crate::output::progress::Progress;
use crate::output::Output;
use crate::run;
use crate::sandbox::{CallSim, Faults, Sandbox};

/// The token the demo's sandbox sends and its webhook expects.
const DEMO_TOKEN: &str = "demo-webhook-token";

/// The example job and contacts, compiled in so the demo runs from anywhere.
const EXAMPLE_JOB: &str = include_str!("../../jobs/example.toml");
const EXAMPLE_CONTACTS: &str = include_str!("../../jobs/example.csv");

pub async fn run(output: &Output) -> Result<Exit, Error> {
    let dir = std::env::temp_dir().join("nxcampaign-demo");
    // A fresh ledger every time: the demo never resumes an old one.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| demo_dir_error(&dir, e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| demo_dir_error(&dir, e))?;
    let job_path = example_job(&dir)?;

    // A few faults, so the demo shows retries (which cost no calls) and a
    // batch held uncertain (code 99 may follow a created task).
    let faults = Faults {
        http503: 0.1,
        code99: 0.05,
        seed: 7,
        ..Faults::default()
    };
    let sandbox = Sandbox::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        sandbox_credentials(),
        faults,
    )
    .await
    .map_err(Error::Listen)?;
    let job = Job::load(&job_path, Some(&sandbox.base_url()))?;
    let db = dir.join("ledger.db");
    let ledger = Ledger::open(&crate::job::LedgerLocation::File(db.clone())).await?;
    // The call-log webhook, as a campaign owner runs it beside the runner:
    // the sandbox posts each call it makes up for an accepted order.
    let receiver = crate::webhook::Receiver::start(
        tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Listen)?,
        ledger.clone(),
        crate::webhook::Settings {
            token: Some(DEMO_TOKEN.to_owned()),
            request_timeout: crate::webhook::REQUEST_TIMEOUT,
        },
    )
    .map_err(Error::Listen)?;
    sandbox.set_calls(CallSim {
        webhook_url: Some(format!(
            "http://{}{}",
            receiver.addr(),
            crate::webhook::CALLS_PATH
        )),
        webhook_token: Some(DEMO_TOKEN.to_owned()),
        webhook_retry_ms: 200,
        seed: 7,
        ..CallSim::default()
    });

    output.note(format_args!(
        "demo: campaign {:?} from {} against a local NXLink sandbox on {} (10% of requests get 503 and are retried; 5% get code 99, which may follow a created task, so their batches are held uncertain, never re-sent on their own)",
        job.name.as_str(),
        job.contacts.display(),
        sandbox.base_url()
    ));
    let mut progress = Progress::new(output);
    let run = run::run_campaign(
        &ledger,
        &job,
        sandbox_credentials(),
        run::graceful_shutdown(output.clone()),
        run::Bounds::default(),
        &mut progress,
    )
    .await?;
    let mut out = output.stdout();
    writeln!(out)?;
    let exit = match run::finish_run(&run, &job_path, &mut out, output)? {
        // The example file has invalid rows on purpose: that is the demo
        // working, not needing attention.
        Exit::Attention => Exit::Done,
        exit => exit,
    };
    let stats = sandbox.stats();
    writeln!(
        out,
        "\nsandbox: {} request(s), {} task(s) created, {} order(s) accepted, {} accepted more than once",
        stats.requests, stats.tasks_accepted, stats.orders_accepted, stats.orders_accepted_twice
    )?;
    out.flush()?;

    // The calls, as the webhook received them.
    let made = sandbox.calls().len() as u64;
    output.note(format_args!("demo: the sandbox made up {made} call(s) for the accepted orders and posts them to the webhook at http://{}{}", receiver.addr(), crate::webhook::CALLS_PATH));
    let waited = std::time::Instant::now();
    while sandbox.stats().webhook_delivered + sandbox.stats().webhook_given_up < made
        && waited.elapsed() < std::time::Duration::from_secs(60)
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let campaign = ledger.campaign(job.name.as_str()).await?;
    let mut status = ledger.status(campaign, job.name.as_str()).await?;
    status.calls = Some(ledger.call_stats(campaign).await?);
    let stats = sandbox.stats();
    writeln!(
        out,
        "\nwebhook: {} of {made} call(s) received; call outcomes in the ledger:",
        stats.webhook_delivered
    )?;
    crate::output::tables::write_call_outcomes(&mut out, std::slice::from_ref(&status))?;
    writeln!(
        out,
        "sandbox: {} order(s) answered (the ledger counts {})",
        sandbox.orders_answered(),
        status.calls.as_ref().map_or(0, |calls| calls.answered)
    )?;
    // Uncertain batches are settled from calls; the demo's had a code 99
    // before any task was created, so it has none.
    let lost_after = std::time::Duration::from_secs(3600);
    let requested_by = "demo".to_owned();
    writeln!(out, "\nreconcile (from the calls in the ledger):")?;
    crate::call_records::reconcile(
        &crate::call_records::Reconciling {
            ledger: &ledger,
            job: &job,
            campaign,
            vendor: None,
            lost_after,
            resend_lost: false,
            requested_by: &requested_by,
            now_ms: crate::clock::now_ms(),
        },
        &mut out,
    )
    .await?;
    writeln!(
        out,
        "\nthe ledger is {db}; look inside with\n  nxcampaign --db {db} status\n  nxcampaign --db {db} orders {name} --call answered\n  nxcampaign --db {db} orders {name} --state invalid\n  nxcampaign --db {db} orders {name} --state uncertain\n  nxcampaign --db {db} orders {name} --state duplicate --format csv",
        db = db.display(),
        name = job.name
    )?;
    out.flush()?;
    receiver.stop().await;
    ledger.close().await;
    sandbox.stop().await;
    Ok(exit)
}

/// Uses `jobs/example.toml` when run from the repository, else writes the
/// compiled-in copy next to the demo ledger.
fn example_job(dir: &Path) -> Result<PathBuf, Error> {
    let in_repo = Path::new("jobs/example.toml");
    if in_repo.exists() && Path::new("jobs/example.csv").exists() {
        return Ok(in_repo.to_owned());
    }
    let job = dir.join("example.toml");
    std::fs::write(&job, EXAMPLE_JOB).map_err(|e| demo_dir_error(dir, e))?;
    std::fs::write(dir.join("example.csv"), EXAMPLE_CONTACTS)
        .map_err(|e| demo_dir_error(dir, e))?;
    Ok(job)
}

fn demo_dir_error(dir: &Path, e: io::Error) -> Error {
    Error::Output(io::Error::new(
        e.kind(),
        format!("{}: cannot prepare the demo folder: {e}", dir.display()),
    ))
}

/// The sandbox's own credentials.
fn sandbox_credentials() -> crate::nxlink::Credentials {
    crate::nxlink::Credentials::new(
        crate::sandbox::DEFAULT_ACCESS_KEY,
        crate::sandbox::DEFAULT_ACCESS_SECRET,
    )
}
