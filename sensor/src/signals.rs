//! SIGINT/SIGTERM → a flag the coordinator polls (the handler, in
//! [`crate::sys::signals`], only stores to an atomic, which is async-signal-safe).

use std::sync::atomic::AtomicBool;

/// Installs the handlers for SIGINT and SIGTERM and returns the flag they set.
pub fn install() -> &'static AtomicBool {
    // `sigaction` fails only for an invalid signal number or action, which these are not; if
    // it did, the signals would keep their default action (ending the process).
    let _ = crate::sys::signals::install_stop_handlers();
    crate::sys::signals::stop_flag()
}
