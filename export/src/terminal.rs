//! The terminal that stdout and stderr may share with a progress bar.

/// Something else drawing on the terminal, e.g. a progress bar on stderr: whoever writes a
/// line there clears it first and lets it redraw after, or the line and the bar garble each
/// other.
///
/// `export` does not draw the bar (the sensor does, from its progress); it only writes
/// around it. The sensor implements this for its progress bar and hands it to the sinks
/// that write to the same terminal (the text output) and to the diagnostics.
pub trait Terminal: Send + Sync {
    /// Runs `write` with the bar cleared, then redraws the bar.
    fn suspend(&self, write: &mut dyn FnMut());
}
