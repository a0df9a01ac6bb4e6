//! `man`: the manual page of one command, or the overview, from the
//! command line's own definition.

use crate::cli::{manual, ManArgs};
use crate::error::{Error, Exit};
use crate::output::Output;

pub fn run(args: ManArgs, output: &Output) -> Result<Exit, Error> {
    let mut out = output.stdout();
    if manual::write_man_page(args.command.as_deref(), &mut out)? {
        Ok(Exit::Done)
    } else {
        Err(Error::argument(
            "man",
            format!(
                "no command {:?}: `nxcampaign --help` lists them",
                args.command.unwrap_or_default()
            ),
        ))
    }
}
