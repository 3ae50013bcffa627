//! `sigaction` for the signals the sensor handles: those that ask it to stop (SIGINT, SIGTERM,
//! SIGQUIT), SIGHUP (no reload yet: noted, nothing lost) and SIGUSR1 (a status line now).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static HANGUP: AtomicBool = AtomicBool::new(false);
static STATUS: AtomicBool = AtomicBool::new(false);

/// The handlers: each only stores to an atomic, which is async-signal-safe.
extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_hangup(_sig: libc::c_int) {
    HANGUP.store(true, Ordering::SeqCst);
}

extern "C" fn on_status_request(_sig: libc::c_int) {
    STATUS.store(true, Ordering::SeqCst);
}

/// The flag SIGINT, SIGTERM and SIGQUIT set once [`install_handlers`] ran.
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

/// The flag SIGHUP sets.
pub fn hangup_flag() -> &'static AtomicBool {
    &HANGUP
}

/// The flag SIGUSR1 sets.
pub fn status_flag() -> &'static AtomicBool {
    &STATUS
}

/// Makes SIGINT, SIGTERM and SIGQUIT set [`stop_flag`], SIGHUP [`hangup_flag`] and SIGUSR1
/// [`status_flag`] instead of ending the process (`SA_RESTART`: interrupted system calls are
/// restarted). Installing twice is harmless.
pub fn install_handlers() -> io::Result<()> {
    install_stop_handlers()?;
    install(libc::SIGHUP, on_hangup)?;
    install(libc::SIGUSR1, on_status_request)
}

/// Makes only SIGINT, SIGTERM and SIGQUIT set [`stop_flag`] (the traffic generators' stop);
/// other signals keep their default action.
pub fn install_stop_handlers() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        install(sig, on_stop_signal)?;
    }
    Ok(())
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: `sigaction` is plain old data (a handler address, a signal set of integers,
    // flags); all-zero is a valid value, filled in below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    // SAFETY: `sa.sa_mask` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: `sa` is a valid sigaction whose handler is an `extern "C"` function that is
    // async-signal-safe (one atomic store); no old action is asked for.
    if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
