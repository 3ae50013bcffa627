//! Process plumbing shared by the traffic generators (`surgewatch-inject`, `surgewatch-xdp-tx`,
//! `surgewatch-xdp-gen`): a stop flag raised by SIGINT/SIGTERM, core pinning and interface
//! lookup.

use std::sync::atomic::Ordering;

use surgewatch_sensor::sys;

/// Makes SIGINT and SIGTERM raise the flag [`stop_requested`] reads (instead of killing the
/// process), so that a generator can stop cleanly and print what it sent.
pub fn stop_on_signals() {
    if let Err(e) = sys::signals::install_stop_handlers() {
        eprintln!("warning: cannot catch SIGINT/SIGTERM: {e}");
    }
}

/// Whether SIGINT or SIGTERM arrived since [`stop_on_signals`].
#[inline]
pub fn stop_requested() -> bool {
    sys::signals::stop_flag().load(Ordering::Relaxed)
}

/// Pins the calling thread to `core`; on failure prints a warning naming `who`.
pub fn pin_to_core(core: usize, who: &str) {
    if let Err(e) = sys::sched::pin_to_core(core) {
        eprintln!("{who}: warning: cannot pin to core {core}: {e}");
    }
}

/// Index of the interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    sys::netdev::ifindex(name).map_err(|_| anyhow::anyhow!("{name}: no such network interface"))
}
