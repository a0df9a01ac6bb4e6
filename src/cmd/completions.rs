//! `completions`: a completion script for a shell, from the command line's
//! own definition.

use crate::cli::{manual, CompletionsArgs};
use crate::error::{Error, Exit};
use crate::output::Output;

pub fn run(args: CompletionsArgs, output: &Output) -> Result<Exit, Error> {
    let mut command = manual::command();
    clap_complete::generate(args.shell, &mut command, "nxcampaign", &mut output.stdout());
    Ok(Exit::Done)
}
