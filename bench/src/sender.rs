//! Process plumbing shared by the traffic generators (`surgewatch-inject`, `surgewatch-xdp-tx`,
//! `surgewatch-xdp-gen`): a stop flag raised by SIGINT/SIGTERM, core pinning and interface
//! lookup.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM raise the flag [`stop_requested`] reads (instead of killing the
/// process), so that a generator can stop cleanly and print what it sent.
pub fn stop_on_signals() {
    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`stop_on_signals`].
#[inline]
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Pins the calling thread to `core`; on failure prints a warning naming `who`.
pub fn pin_to_core(core: usize, who: &str) {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit inside `set` (checked against its size by the libc crate).
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and its size is passed with it.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        eprintln!(
            "{who}: warning: cannot pin to core {core}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Index of the interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| anyhow::anyhow!("{name:?}: interface name contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        anyhow::bail!("{name}: no such network interface");
    }
    Ok(idx)
}
