//! The commands: `replay`, `run`, `agent` and `check-config`. Each takes its parsed
//! arguments, sets the run up from the config and the command line ([`crate::settings`]),
//! runs it and returns the exit status; errors that stop a command before it runs
//! (unusable input, a bad option, an [`InvalidConfig`]) are returned for `main` to report.

mod check_config;
mod live;
mod observer;
mod replay;

use std::path::Path;

use anyhow::Result;
use surgewatch_export::diag;
use surgewatch_tuning::{Config, Effective, Overrides};

pub use check_config::check_config;
pub use live::{agent, run};
pub use replay::replay;

use crate::settings::Settings;

/// A config file with errors, as one line listing every problem. `main` reports it like
/// any other error but exits 1, as `check-config` does for the same file (2 is for
/// unusable input and bad options).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration ({count} error(s)): {errors}")]
pub struct InvalidConfig {
    /// How many errors.
    count: usize,
    /// The errors, `; `-separated.
    errors: String,
}

/// The config at `path` (the defaults without one) with the command line's `overrides`
/// applied; an invalid config is an [`InvalidConfig`].
fn effective(path: Option<&Path>, overrides: &Overrides) -> Result<Effective> {
    let config = match path {
        Some(path) => surgewatch_tuning::load(path).map_err(|e| {
            let text = e.to_string();
            let lines: Vec<&str> = text.lines().collect();
            InvalidConfig {
                count: lines.len(),
                errors: lines.join("; "),
            }
        })?,
        None => Config::default(),
    };
    Ok(overrides.apply(config)?)
}

/// Says what the operator should hear about the settings, once the run starts.
fn announce(settings: &Settings) {
    for note in &settings.notes {
        diag::emit(note.clone());
    }
}
