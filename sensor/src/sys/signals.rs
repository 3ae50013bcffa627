//! `sigaction` for the signals that ask the process to stop.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// The handler: only stores to an atomic, which is async-signal-safe.
extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The flag the handlers of [`install_stop_handlers`] set.
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

/// Makes SIGINT and SIGTERM set [`stop_flag`] instead of ending the process (`SA_RESTART`:
/// interrupted system calls are restarted). Installing twice is harmless.
pub fn install_stop_handlers() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is plain old data (a handler address, a signal set of integers,
        // flags); all-zero is a valid value, filled in below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa.sa_mask` is a valid, exclusively borrowed sigset_t.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is a valid sigaction whose handler is an `extern "C"` function that is
        // async-signal-safe (one atomic store); no old action is asked for.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
