//! What `surgewatch check-config FILE` does: print every problem, one per line, and exit
//! non-zero; or print a summary of the resolved groups.
//!
//! `cargo run -p surgewatch-tuning --example check_config -- surgewatch.example.toml`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check_config FILE");
        return ExitCode::from(2);
    };
    match surgewatch_tuning::load(&path) {
        Ok(config) => {
            for group in config.resolved_groups() {
                println!("{}: {} prefix(es)", group.name, group.prefixes.len());
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
