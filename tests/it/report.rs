//! `report`: the text page, and the HTML page rendered in headless
//! Chromium (from the distribution's packages; `.ci/run` installs it, and
//! without it this test says in one line that it was skipped).

use std::path::{Path, PathBuf};

use nxcampaign::sandbox::Faults;

use crate::support::*;

/// Chromium's binary, if the machine has one.
fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
}

/// Runs headless Chromium on `page` with `args` (a fresh profile, nothing
/// fetched from the network), and returns its stdout.
async fn headless(chromium: &Path, page: &Path, profile: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .kill_on_drop(true)
        .output()
        .await
        .expect("chromium starts");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_has_its_sections_as_text_and_as_a_page_chromium_renders() {
    let sandbox = start_sandbox(Faults {
        http503: 0.2,
        code99: 0.1,
        seed: 11,
        ..Faults::default()
    })
    .await;
    let mut campaign = Campaign::new(&sandbox);
    campaign.write_contacts(Mix {
        valid: 600,
        invalid: 4,
        duplicates: 3,
    });
    campaign.run().await;
    let html = campaign.dir.path().join("report.html");
    let output = nxcampaign(&campaign.db())
        .args(["report", &campaign.name, "--html", html.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(exit_code(&output), 0, "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for heading in [
        "orders by state",
        "requests over time",
        "attempts by outcome",
        "slowest attempts",
        "batches that need a look",
        "rows set aside, by reason",
    ] {
        assert!(text.contains(heading), "{heading} in {text}");
    }
    assert!(text.contains("\"…\" is not a valid phone number"), "{text}");
    assert!(text.contains("same phone as line N"), "{text}");

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg"), "inline charts");
    for external in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(
            !page.contains(external),
            "{external}: the page must stand alone"
        );
    }

    let Some(chromium) = chromium() else {
        eprintln!("note: the HTML report was not rendered: no Chromium (install Debian's chromium; .ci/run does)");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(&chromium, &html, profile.path(), &["--dump-dom"]).await;
    for id in [
        "states",
        "timeline",
        "attempts",
        "slowest",
        "troubled",
        "calls",
        "set-aside",
    ] {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "{id} rendered"
        );
    }
    let shot = campaign.dir.path().join("report.png");
    headless(
        &chromium,
        &html,
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1400",
            "--hide-scrollbars",
        ],
    )
    .await;
    // Not blank: the picture holds many pixels that are not the page's
    // white background.
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("a screenshot"));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let inked = pixels[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| px.iter().take(3).any(|v| *v < 200))
        .count();
    let total = (info.width * info.height) as usize;
    assert!(
        inked > total / 100,
        "{inked} of {total} pixels are not white"
    );
}
