//! What `--help` and `man` say besides the flags: each command's exit
//! status and the environment it reads, written once here and shown in
//! both.

use std::io::{self, Write};

use clap_mangen::roff::{bold, roman, Roff};

use super::Cli;
use crate::error::Exit;

/// The variables every command reads.
const EVERYWHERE: &[(&str, &str)] = &[
    (
        "NXCAMPAIGN_DB",
        "the ledger, as --db: a SQLite file or a postgres:// URL",
    ),
    (
        "NXCAMPAIGN_LOG",
        "a tracing filter for the logs on stderr (wins over -q and -v), e.g. nxcampaign=debug",
    ),
    (
        "NO_COLOR",
        "when set and not empty, no colour in logs (--color auto)",
    ),
];

/// The variables of the commands that speak to the vendor.
const VENDOR: &[(&str, &str)] = &[
    (
        "NXLINK_ACCESS_KEY",
        "the account's access key (the job's api.access_key_env names another variable)",
    ),
    (
        "NXLINK_ACCESS_SECRET",
        "the account's access secret (the job's api.access_secret_env names another variable); never printed or stored",
    ),
    (
        "NXLINK_CREDENTIALS_FILE",
        "a file of NAME=value lines holding those two, readable by its owner only (wins over the job's api.credentials_file)",
    ),
    (
        "NXLINK_BASE_URL",
        "the gateway, instead of the job's api.base_url or api.region",
    ),
];

/// The variable of the commands that hold a campaign.
const HOST: (&str, &str) = (
    "NXCAMPAIGN_HOSTNAME",
    "the host name a run records in the campaign's lease (default: the system's), for runners in containers",
);

/// What the environment of `command` holds for it, beyond
/// [`EVERYWHERE`].
fn own_environment(command: &str) -> Vec<(&'static str, &'static str)> {
    match command {
        "run" => VENDOR.iter().copied().chain([HOST]).collect(),
        "sync" | "reconcile" => VENDOR.to_vec(),
        "ingest" => vec![HOST, VENDOR[3]],
        "check" | "migrate" => vec![VENDOR[3]],
        "webhook" => vec![(
            "NXCAMPAIGN_WEBHOOK_TOKEN",
            "the token the vendor sends with each delivery (--token-env names another variable); required unless --no-token",
        )],
        _ => Vec::new(),
    }
}

/// The variables `command` reads, each with what it is for.
pub fn environment(command: &str) -> Vec<(&'static str, &'static str)> {
    own_environment(command)
        .into_iter()
        .chain(EVERYWHERE.iter().copied())
        .collect()
}

/// What each exit code of `command` means.
pub fn exit_status(command: &str) -> Vec<(Exit, &'static str)> {
    let mut codes = match command {
        "run" => vec![
            (Exit::Done, "done: everything due was sent, and nothing new needs attention"),
            (
                Exit::Attention,
                "this run found something new that needs attention: invalid rows, or batches rejected, failed or uncertain (it wins over every ending but a stop)",
            ),
            (Exit::BadInput, "bad command line, job file, credentials or input: nothing was sent"),
            (
                Exit::Stopped,
                "stopped by what retrying will not fix (authentication, the ledger): the rest stays pending",
            ),
            (
                Exit::TryLater,
                "try again later: interrupted, time up, outside the calling windows, the vendor failing, the campaign busy, or the file still being written",
            ),
        ],
        "ingest" => vec![
            (Exit::Done, "done"),
            (Exit::Attention, "new invalid rows"),
            (Exit::TryLater, "interrupted, the campaign busy, or the file still being written"),
        ],
        "check" => vec![
            (Exit::Done, "the job can run"),
            (Exit::BadInput, "it cannot: the reasons are printed"),
        ],
        "resend" | "cancel" => vec![
            (Exit::Done, "done"),
            (Exit::Attention, "some batches named were left alone (not in the state asked for)"),
            (
                Exit::BadInput,
                "a batch named does not exist, or one a run may still be sending is refused until its time",
            ),
        ],
        "suppress" => vec![
            (Exit::Done, "done"),
            (Exit::Attention, "some numbers or lines were not taken (each is named)"),
            (Exit::BadInput, "a list file cannot be read: nothing of it was taken"),
        ],
        "sync" => vec![
            (Exit::Done, "done"),
            (Exit::Stopped, "the vendor refused the credentials or the query"),
            (Exit::TryLater, "no reply from the vendor: what was read is kept"),
        ],
        "reconcile" => vec![
            (Exit::Done, "done: every uncertain batch that can be settled was"),
            (Exit::Attention, "some batch is probably lost and was not re-queued"),
            (Exit::TryLater, "the vendor could not be asked about some batch"),
        ],
        "forget" => vec![
            (Exit::Done, "the campaign is gone"),
            (Exit::BadInput, "refused: the campaign sent something (see --i-know-it-was-sent)"),
            (Exit::TryLater, "a run holds the campaign"),
        ],
        _ => vec![(Exit::Done, "done")],
    };
    // What holds for every command.
    for (exit, meaning) in [
        (
            Exit::BadInput,
            "bad command line, job file or input, or no such ledger or campaign",
        ),
        (Exit::Stopped, "the ledger failed"),
        (
            Exit::TryLater,
            "the ledger's server is restarting or unreachable: it passes",
        ),
    ] {
        if !codes.iter().any(|(have, _)| *have == exit) {
            codes.push((exit, meaning));
        }
    }
    codes.sort_by_key(|(exit, _)| exit.code());
    codes
}

/// The command line with each command's exit status and environment
/// after its long help (`--help`; `-h` stays short).
pub fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let cli = Cli::command();
    let names: Vec<String> = cli
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    names.iter().fold(cli, |cli, name| {
        cli.mut_subcommand(name, |sub| sub.after_long_help(after_help(name)))
    })
}

/// Exit status and environment of `command`, as `--help` shows them.
fn after_help(command: &str) -> String {
    // Laid out as clap lays out options, so its wrapping keeps the
    // indent of each meaning.
    let mut text = String::from("Exit status:\n");
    for (exit, meaning) in exit_status(command) {
        text.push_str(&format!("  {}\n          {meaning}\n", exit.code()));
    }
    text.push_str("\nEnvironment:\n");
    for (name, meaning) in environment(command) {
        text.push_str(&format!("  {name}\n          {meaning}\n"));
    }
    text
}

/// The manual page of `command`, or the overview without one: NAME,
/// SYNOPSIS, DESCRIPTION, OPTIONS, then EXIT STATUS and ENVIRONMENT (and
/// for the overview, the commands). None when there is no such command.
pub fn write_man_page(command: Option<&str>, out: &mut dyn Write) -> io::Result<bool> {
    let mut cli = self::command();
    // Global options reach every command's page.
    cli.build();
    let (page, name) = match command {
        None => (cli, None),
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => {
                let title = format!("nxcampaign-{name}");
                let sub = sub
                    .clone()
                    .name(title.clone())
                    .bin_name(format!("nxcampaign {name}"))
                    .display_name(title)
                    // The sections below say it, in roff.
                    .after_long_help(None::<&str>);
                (sub, Some(name))
            }
            None => return Ok(false),
        },
    };
    let page = page.after_long_help(None::<&str>);
    let mut rendered = Vec::new();
    clap_mangen::Man::new(page.clone())
        .manual("nxcampaign manual")
        .source(format!("nxcampaign {}", env!("CARGO_PKG_VERSION")))
        .render(&mut rendered)?;
    let mut text = String::from_utf8_lossy(&rendered).into_owned();
    if name.is_none() {
        // clap_mangen names pages (`nxcampaign-run(1)`) that `man` cannot
        // find; say how to read each.
        let mut commands = Roff::default();
        commands.control("SH", ["COMMANDS"]);
        for sub in page.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            commands.control("TP", []);
            commands.text([
                bold(format!("nxcampaign {}", sub.get_name())),
                roman(format!("  (its page: nxcampaign man {})", sub.get_name())),
            ]);
            let about = sub.get_about().map(|about| about.to_string());
            commands.text([roman(about.unwrap_or_default())]);
        }
        replace_section(
            &mut text,
            "SUBCOMMANDS",
            &without_preamble(&commands.render()),
        );
    }
    let mut ours = Roff::default();
    sections(&mut ours, name.unwrap_or(""));
    let ours = without_preamble(&ours.render());
    match text.find(".SH VERSION") {
        Some(at) => text.insert_str(at, &ours),
        None => text.push_str(&ours),
    }
    out.write_all(text.as_bytes())?;
    Ok(true)
}

/// Roff text from its first section on, without the lines roff puts
/// before every render.
fn without_preamble(roff: &str) -> String {
    roff.find(".SH").map_or(roff, |at| &roff[at..]).to_owned()
}

/// Puts `with` where section `name` of `page` was.
fn replace_section(page: &mut String, name: &str, with: &str) {
    let heading = format!(".SH {name}\n");
    if let Some(start) = page.find(&heading) {
        let end = page[start + heading.len()..]
            .find(".SH ")
            .map_or(page.len(), |at| start + heading.len() + at);
        page.replace_range(start..end, with);
    }
}

/// EXIT STATUS and ENVIRONMENT of `command` ("" for what every command
/// shares).
fn sections(roff: &mut Roff, command: &str) {
    roff.control("SH", ["EXIT STATUS"]);
    for (exit, meaning) in exit_status(command) {
        roff.control("TP", []);
        roff.text([bold(exit.code().to_string())]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (name, meaning) in environment(command) {
        roff.control("TP", []);
        roff.text([bold(name)]);
        roff.text([roman(meaning)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_exit_codes_once_in_order() {
        for sub in command().get_subcommands() {
            let codes: Vec<u8> = exit_status(sub.get_name())
                .iter()
                .map(|(exit, _)| exit.code())
                .collect();
            let mut sorted = codes.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(codes, sorted, "{}", sub.get_name());
            assert_eq!(codes[0], 0, "{}", sub.get_name());
        }
    }
}
