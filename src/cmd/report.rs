//! `report`: one campaign on one page, as text and as self-contained HTML.

use std::io::Write as _;

use crate::cli::ReportArgs;
use crate::error::{Error, Exit};
use crate::ledger::OpenMode;
use crate::output::campaign_report;
use crate::output::files;
use crate::output::Output;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: ReportArgs, output: &Output) -> Result<Exit, Error> {
    let (ledger, campaign) =
        super::open_campaign(settings, &args.campaign, OpenMode::ReadOnly).await?;
    if let Some(path) = &args.html {
        super::protected_by(settings, &ledger, &args.campaign)
            .await?
            .check("--html", path)?;
    }
    let id = ledger.campaign(&campaign).await?;
    let page = campaign_report::gather(&ledger, id, &campaign).await?;
    let mut out = output.stdout();
    page.write_text(&mut out)?;
    out.flush()?;
    if let Some(path) = &args.html {
        files::write_whole(path, page.html().as_bytes())?;
        output.note(format_args!("report: {}", path.display()));
    }
    Ok(Exit::Done)
}
