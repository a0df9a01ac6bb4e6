//! `man`: the manual page, from the command line's own definition.

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Exit};
use crate::output::Output;

pub fn run(_args: ManArgs, output: &Output) -> Result<Exit, Error> {
    use clap::CommandFactory as _;
    clap_mangen::Man::new(Cli::command()).render(&mut output.stdout())?;
    Ok(Exit::Done)
}
