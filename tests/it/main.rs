//! Integration tests: the real binary and library against the sandbox on
//! 127.0.0.1, with real SQLite ledgers in temp folders.

mod architecture;
mod cli;
mod crash;
mod faults;
mod files;
mod input;
mod output;
mod run;
mod safety;
mod support;
