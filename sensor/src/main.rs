//! The `surgewatch` binary: parses the command line and runs the command.
//!
//! The binary's own modules sit beside the library's in `src/` but belong to this crate root:
//! `cli` (the clap definitions), `settings` (config and command line → what a run is built
//! of), `commands/` (one module per command, and the per-tick observer), `baseline_file` and
//! `agent_addrs`. The library (`lib.rs`: capture, replay, live, livesrc, ...) knows nothing
//! of them.

// The binary makes no system call of its own: those live in the library's `sys`.
#![forbid(unsafe_code)]

mod agent_addrs;
mod baseline_file;
mod cli;
mod commands;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use surgewatch_export::diag::{self, Diag};

use crate::cli::{Cli, Cmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Replay(args) => commands::replay(args),
        Cmd::Run(args) => commands::run(args),
        Cmd::Agent(args) => commands::agent(args),
        Cmd::CheckConfig { file } => commands::check_config(&file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            diag::emit(Diag::CommandFailed {
                message: one_line(&e),
            });
            // The README's exit statuses: 1 for a config with errors, 2 for unusable input
            // or a bad option.
            if e.downcast_ref::<commands::InvalidConfig>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// An error chain on one line: "outer: inner: root".
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', "; ")
}
