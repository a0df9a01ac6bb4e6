//! `orders`: each order's outcome and last call, in input order, to
//! stdout or to a file that appears whole.

use std::io::{self, Write};

use crate::cli::OrdersArgs;
use crate::error::{Error, Exit};
use crate::ledger::OpenMode;
use crate::output::files;
use crate::output::tables::OrderWriter;
use crate::output::Output;
use crate::settings::Settings;
use crate::state::OrderState;

pub async fn run(settings: &Settings, args: OrdersArgs, output: &Output) -> Result<Exit, Error> {
    let state = args
        .state
        .map(|s| s.trim().to_ascii_lowercase().parse::<OrderState>())
        .transpose()
        .map_err(|e| Error::argument("--state", e.to_string()))?;
    let (ledger, name) = super::open_campaign(settings, &args.campaign, OpenMode::ReadOnly).await?;
    if let Some(path) = &args.output {
        super::protected_by(settings, &ledger, &args.campaign)
            .await?
            .check("--output", path)?;
    }
    let id = ledger.campaign(&name).await?;
    let (format, call, since) = (args.format, args.call, args.since);
    let export = |out: &mut dyn Write| -> Result<(), Error> {
        let mut writer = OrderWriter::new(format, out)?;
        tokio::task::block_in_place(|| {
            ledger.for_each_order(id, state, call.map(Into::into), &mut |line| match since {
                Some(since) if line.updated_at_ms.is_none_or(|at| at < since) => Ok(()),
                _ => writer.write(line),
            })
        })?;
        writer.finish()?;
        Ok(())
    };
    match &args.output {
        None => export(&mut io::BufWriter::with_capacity(1 << 16, output.stdout()))?,
        Some(path) => {
            let mut out = files::Partial::create(path)?;
            export(&mut out)?;
            out.commit()?;
        }
    }
    Ok(Exit::Done)
}
