//! `surgewatch replay FILE...`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use surgewatch_export::diag::{self, Diag};
use surgewatch_export::sink::Delivery;
use surgewatch_export::summary::{InputAnomaliesJson, RunInfo};
use surgewatch_sensor::replay::{self, ReplayConfig};

use super::observer::Observer;
use crate::cli::ReplayArgs;
use crate::settings::Settings;

/// Replays the captures; exit status 1 when one could not be read to its end.
pub fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let effective = super::effective(args.detect.config.as_deref(), &args.overrides())?;
    for f in &args.files {
        if f.is_dir() {
            bail!("{}: is a directory, not a capture file", f.display());
        }
    }
    let sources = replay::open_all(&args.files)?;
    let settings = Settings::new(effective, args.detect.format, &[])?;
    super::announce(&settings);
    let bar = (!args.no_progress && std::io::stderr().is_terminal())
        .then(|| progress_bar(replay::total_size(&sources)));
    // Backpressure: the output must not depend on how fast stdout is read.
    let mut observer = Observer::start(&settings, Delivery::Block, bar)?;
    let rcfg = ReplayConfig {
        files: args.files.clone(),
        monitor: settings.monitor.monitor.clone(),
        tick: settings.tick,
        workers: settings.workers,
        parse: settings.parse,
        // SIGINT, SIGTERM, SIGQUIT: stop reading, end the incidents, save, summarise.
        stop: Some(surgewatch_sensor::signals::install()),
    };
    let outcome = replay::replay(&rcfg, sources, &mut observer);
    let errors: Vec<String> = outcome.errors.iter().map(|e| e.to_string()).collect();
    let mut input_anomalies = InputAnomaliesJson::default();
    for (_, a) in &outcome.anomalies {
        input_anomalies.wire_len_below_captured += a.wire_len_below_captured;
        input_anomalies.wire_len_implausible += a.wire_len_implausible;
        input_anomalies.subsecond_out_of_range += a.subsecond_out_of_range;
    }
    let info = RunInfo {
        inputs: args.files.iter().map(|p| p.display().to_string()).collect(),
        groups: settings.monitor.groups.clone(),
        monitor_mode: settings.monitor.mode,
        tick_secs: settings.tick.as_duration().as_secs_f64(),
        workers: settings.workers,
        time_span_ns: outcome.time_span_ns,
        late_frames: outcome.late_frames,
        errors: errors.clone(),
        input_anomalies,
        incidents: Vec::new(),
        capture: None,
        queues: Vec::new(),
        link: None,
        mitigations: None,
    };
    observer.finish(&outcome.accounting, info, settings.top_n);
    for (path, a) in &outcome.anomalies {
        diag::emit(Diag::InputAnomalies {
            input: path.display().to_string(),
            wire_len_below_captured: a.wire_len_below_captured,
            wire_len_implausible: a.wire_len_implausible,
            subsecond_out_of_range: a.subsecond_out_of_range,
        });
    }
    for error in &errors {
        diag::emit(Diag::InputFailed {
            error: error.clone(),
        });
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The progress bar on stderr: bytes of the captures read.
fn progress_bar(total: u64) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}
