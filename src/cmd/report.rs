//! `report`: one campaign on one page, as text and as self-contained HTML.

use std::io::{self, Write as _};

use crate::cli::ReportArgs;
use crate::error::{Error, Exit};
use crate::ledger::OpenMode;
use crate::outfile;
use crate::overview;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: ReportArgs) -> Result<Exit, Error> {
    let (ledger, campaign) =
        super::open_campaign(settings, &args.campaign, OpenMode::ReadOnly).await?;
    if let Some(path) = &args.html {
        super::protected_by(settings, &ledger, &args.campaign)
            .await?
            .check("--html", path)?;
    }
    let id = ledger.campaign(&campaign).await?;
    let page = overview::gather(&ledger, id, &campaign).await?;
    let mut out = io::stdout().lock();
    page.write_text(&mut out)?;
    out.flush()?;
    if let Some(path) = &args.html {
        outfile::write_whole(path, page.html().as_bytes())?;
        eprintln!("report: {}", path.display());
    }
    Ok(Exit::Done)
}
