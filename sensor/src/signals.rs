//! Signals → flags the coordinator polls (the handlers, in [`crate::sys::signals`], only
//! store to atomics, which is async-signal-safe). No signal but SIGKILL loses state:
//! SIGINT, SIGTERM and SIGQUIT stop the run (drained, incidents ended, baselines saved, a
//! summary); SIGHUP is noted and the run goes on (there is no reload yet); SIGUSR1 asks for
//! a status line now.

use std::sync::atomic::{AtomicBool, Ordering};

/// Installs the handlers and returns the stop flag (SIGINT, SIGTERM, SIGQUIT).
pub fn install() -> &'static AtomicBool {
    // `sigaction` fails only for an invalid signal number or action, which these are not; if
    // it did, the signals would keep their default action (ending the process).
    let _ = crate::sys::signals::install_handlers();
    crate::sys::signals::stop_flag()
}

/// Whether SIGHUP came since the last call.
pub fn take_hangup() -> bool {
    crate::sys::signals::hangup_flag().swap(false, Ordering::SeqCst)
}

/// Whether SIGUSR1 (a status line, please) came since the last call.
pub fn take_status_request() -> bool {
    crate::sys::signals::status_flag().swap(false, Ordering::SeqCst)
}
