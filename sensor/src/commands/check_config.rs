//! `surgewatch check-config FILE`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use surgewatch_export::diag::{self, Diag};

/// Reports every error of the config at `file` (exit status 1), or that it is valid.
pub fn check_config(file: &Path) -> Result<ExitCode> {
    match surgewatch_tuning::load(file) {
        Ok(cfg) => {
            let groups = cfg.resolved_groups();
            let prefixes: usize = groups.iter().map(|g| g.prefixes.len()).sum();
            // A closed stdout is not worth a panic.
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}: ok ({} group(s), {} prefix(es))",
                file.display(),
                groups.len(),
                prefixes
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errs) => {
            diag::emit(Diag::ConfigInvalid {
                errors: errs.to_string(),
            });
            Ok(ExitCode::from(1))
        }
    }
}
