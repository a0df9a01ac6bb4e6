//! Integration tests: the real binary and library against the sandbox on
//! 127.0.0.1, with real SQLite ledgers in temp folders, or, with
//! `NXCAMPAIGN_TEST_LEDGER=postgres`, ledgers in schemas of their own on
//! the PostgreSQL server `NXCAMPAIGN_TEST_POSTGRES` names (README, "Tests").

mod architecture;
mod calls;
mod check;
mod cli;
mod crash;
mod faults;
mod files;
mod guards;
mod input;
mod output;
mod reconcile;
mod redials;
mod report;
mod run;
mod runners;
mod safety;
mod schedule;
mod support;
mod suppress;
mod zones;
