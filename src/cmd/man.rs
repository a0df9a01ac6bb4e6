//! `man`: the manual page, from the command line's own definition.

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Exit};

pub fn run(_args: ManArgs) -> Result<Exit, Error> {
    use clap::CommandFactory as _;
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Exit::Done)
}
