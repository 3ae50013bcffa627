//! CPU affinity and priority of the calling thread.

use std::io;

/// Cores a `cpu_set_t` can name (`CPU_SETSIZE`).
const SET_SIZE: usize = 8 * std::mem::size_of::<libc::cpu_set_t>();

/// The cores the calling thread may run on (its affinity mask, e.g. narrowed by `taskset` or
/// a cgroup's cpuset), in ascending order (`sched_getaffinity`).
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain old data (an array of integers); all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid cpu_set_t of `size` bytes, exclusively borrowed; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..SET_SIZE)
        // SAFETY: CPU_ISSET reads one bit inside `set` (`c` is below its size in bits).
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Confines the calling thread to `cores` (`sched_setaffinity`). `EINVAL` for an empty list
/// or a core beyond what a `cpu_set_t` can name.
pub fn set_affinity(cores: &[usize]) -> io::Result<()> {
    if cores.is_empty() || cores.iter().any(|&c| c >= SET_SIZE) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain old data (an array of integers); all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cores {
        // SAFETY: CPU_SET writes one bit inside `set` (`c` < SET_SIZE, checked above).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `core`.
pub fn pin_to_core(core: usize) -> io::Result<()> {
    set_affinity(&[core])
}

/// Sets the calling thread's nice value (Linux: `setpriority(PRIO_PROCESS, gettid())` is
/// per thread). Raising it needs no privilege; lowering it below the current value does.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: the gettid system call has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let tid = libc::id_t::try_from(tid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: setpriority takes plain integers; `tid` is this thread's id.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_round_trips_inside_the_allowed_cores() {
        let allowed = allowed_cores().expect("sched_getaffinity");
        assert!(!allowed.is_empty());
        assert!(allowed.windows(2).all(|w| w[0] < w[1]));
        // Setting the mask it already has changes nothing (and keeps other tests' threads
        // where they were: each test runs on its own thread).
        set_affinity(&allowed).expect("sched_setaffinity");
        assert_eq!(allowed_cores().expect("again"), allowed);
        assert!(set_affinity(&[]).is_err());
        assert!(set_affinity(&[SET_SIZE]).is_err());
    }
}
