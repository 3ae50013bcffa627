//! The system-call layer: every `unsafe` block of this crate lives here, under this module.
//!
//! Each submodule wraps one family of calls in safe functions, and everything above it
//! (`capture/`, `livesrc`, `live`, `hostaddr`, `signals`) is safe Rust; the crate root denies
//! `unsafe_code` and only this module allows it. The model is aya's `aya/src/sys/`: thin,
//! typed wrappers with no policy of their own.
//!
//! - [`netdev`]: interface lookups: `if_nametoindex`, the `SIOCGIF*` and `SIOCETHTOOL`
//!   ioctls (flags, MTU, hardware type, channel counts), sysfs queues, `getifaddrs`.
//! - [`socket`]: the raw parts of AF_PACKET and AF_XDP sockets: `socket`, `bind`,
//!   `setsockopt`/`getsockopt`, `poll`, the busy-poll `recvfrom`.
//! - [`mem`]: mappings shared with the kernel (an AF_PACKET ring, a UMEM), with bounds-checked
//!   accessors; `RLIMIT_MEMLOCK`; the page size.
//! - [`xsk`]: the two places where `xdpilone` asks for `unsafe` at its API (registering a UMEM,
//!   borrowing a ring's socket descriptor), made safe by tying lifetimes together; and the UMEM
//!   area itself.
//! - [`bpf`]: the raw `bpf(2)` commands used: map create/update/delete, program load, link
//!   create, test run. Instructions come from the pure [`crate::capture::xdp_prog`].
//! - [`netlink`]: rtnetlink link events (`RTM_NEWLINK`/`RTM_DELLINK`) and link queries by
//!   name (index, MTU, the XDP hook), over `netlink-sys`'s synchronous socket.
//! - [`sched`]: CPU affinity and thread priority.
//! - [`signals`]: `sigaction` for the stop signals.
//!
//! Rules of this layer:
//! - every `unsafe` block has a `// SAFETY:` comment saying why the call is sound;
//! - functions return [`std::io::Result`] (the errno) or `Option` for bounds-checked accessors,
//!   and never panic: values that could not be passed to the kernel (names too long, sizes
//!   that do not fit) become errors (`ENODEV`, `EINVAL`), not assertions;
//! - no policy: which errno means what to an operator is decided by the callers (e.g.
//!   [`crate::capture::CaptureError`] mapping);
//! - descriptors are taken as [`BorrowedFd`](std::os::fd::BorrowedFd) and returned as
//!   [`OwnedFd`].
#![allow(unsafe_code)]

pub mod bpf;
pub mod mem;
pub mod netdev;
pub mod netlink;
pub mod sched;
pub mod signals;
pub mod socket;
pub mod xsk;

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Types made only of integers (and arrays and unions of them), without padding, for which
/// every bit pattern is a valid value: the kernel may write them (`getsockopt`), they may be
/// read out of memory the kernel shares ([`mem::Mapping::read`]), and they may be zeroed.
///
/// Sealed: implemented only here, for the kernel structures this crate exchanges.
pub trait Plain: Copy + private::Sealed {}

mod private {
    pub trait Sealed {}
}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(
            impl private::Sealed for $t {}
            impl Plain for $t {}
        )*
    };
}

// Each is an integer or a `repr(C)` struct of integers laid out without padding (checked by
// `plain_types_have_no_padding` below).
plain!(
    u16,
    u32,
    i32,
    u64,
    libc::tpacket3_hdr,
    libc::tpacket_req3,
    libc::tpacket_stats_v3,
    libc::packet_mreq,
);

/// An all-zero `T`.
pub(crate) fn zeroed<T: Plain>() -> T {
    // SAFETY: `T: Plain` is made of integers only, for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// A return value of a libc call that signals failure with a negative value and `errno`.
fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Takes ownership of a descriptor a system call just returned (negative: the errno).
fn owned_fd(fd: RawFd) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` is non-negative and was just returned by the kernel to this call, so it is
    // open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `size_of::<T>()` as a `socklen_t` (`EINVAL` if it does not fit, which no type here does).
fn socklen<T>() -> io::Result<libc::socklen_t> {
    libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn plain_types_have_no_padding() {
        // The sum of the fields' sizes equals the struct's size: no padding bytes, so no
        // uninitialised bytes handed to the kernel and no invalid values read back.
        assert_eq!(size_of::<libc::tpacket3_hdr>(), 6 * 4 + 2 * 2 + 12 + 8);
        assert_eq!(size_of::<libc::tpacket_req3>(), 7 * 4);
        assert_eq!(size_of::<libc::tpacket_stats_v3>(), 3 * 4);
        assert_eq!(size_of::<libc::packet_mreq>(), 4 + 2 + 2 + 8);
        let z: libc::tpacket3_hdr = zeroed();
        assert_eq!((z.tp_len, z.hv1.tp_vlan_tci), (0, 0));
    }

    #[test]
    fn negative_returns_are_errors() {
        assert_eq!(cvt(3).ok(), Some(3));
        assert!(cvt(-1).is_err());
        assert!(owned_fd(-1).is_err());
    }
}
