//! The raw socket calls of the AF_PACKET and AF_XDP sources: creating and binding a packet
//! socket, socket options, `poll(2)`, and the zero-length `recvfrom` that drives a busy poll.
//! (AF_XDP sockets themselves are made by `xdpilone`; see [`super::xsk`].)

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::{cvt, owned_fd, socklen, zeroed, Plain};

/// An `AF_PACKET` raw socket with protocol 0: it receives nothing until it is bound with a
/// protocol ([`bind_packet`]), so no frame is queued before its ring exists.
pub fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked by `owned_fd`.
    owned_fd(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })
}

/// `ifindex` as the `c_int` the packet-socket structures hold (`EINVAL` beyond).
fn ifindex_c(ifindex: u32) -> io::Result<libc::c_int> {
    libc::c_int::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Binds a packet socket to interface `ifindex`, receiving every protocol (`ETH_P_ALL`).
pub fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data (integers and a byte array); all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex_c(ifindex)?;
    let len = socklen::<libc::sockaddr_ll>()?;
    // SAFETY: `sll` is a valid sockaddr_ll and `len` is its size; the kernel only reads it.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            len,
        )
    })
    .map(drop)
}

/// `setsockopt(fd, level, name, value)`.
pub fn set_option<T: Plain>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = socklen::<T>()?;
    // SAFETY: `value` points to a live, initialised `T` of `len` bytes without padding
    // (`Plain`); the kernel only reads it.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) })
        .map(drop)
}

/// `getsockopt(fd, level, name)`: the value, zero beyond what the kernel wrote.
pub fn get_option<T: Plain>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value: T = zeroed();
    let mut len = socklen::<T>()?;
    // SAFETY: `value` and `len` are valid for writes and `len` holds the size of `value`; the
    // kernel writes at most `len` bytes, and every bit pattern is a valid `T` (`Plain`).
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Puts interface `ifindex` in promiscuous mode for as long as socket `fd` is open
/// (`PACKET_ADD_MEMBERSHIP` with `PACKET_MR_PROMISC`: the kernel drops the membership when the
/// socket closes, even when the process is killed).
pub fn add_promisc_membership(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex_c(ifindex)?,
        mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
        mr_alen: 0,
        mr_address: [0; 8],
    };
    set_option(fd, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
}

/// Reads and clears the socket's pending error (`SO_ERROR`): `Ok(None)` when there is none.
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let err: libc::c_int = get_option(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// `SO_INCOMING_NAPI_ID`.
const SO_INCOMING_NAPI_ID: libc::c_int = 56;
/// `SO_PREFER_BUSY_POLL`.
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// `SO_BUSY_POLL_BUDGET`.
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// The NAPI context a busy poll of the socket runs (`SO_INCOMING_NAPI_ID`; 0: none yet).
pub fn napi_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    get_option(fd, libc::SOL_SOCKET, SO_INCOMING_NAPI_ID)
}

/// Turns on preferred busy polling: `SO_PREFER_BUSY_POLL`, then `SO_BUSY_POLL` (`usecs`),
/// then `SO_BUSY_POLL_BUDGET` (`budget`). On failure, says which option the kernel refused.
pub fn set_busy_poll(
    fd: BorrowedFd<'_>,
    usecs: u32,
    budget: u32,
) -> Result<(), (&'static str, io::Error)> {
    let set = |opt: libc::c_int, v: u32, stage: &'static str| {
        let v = libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
        set_option(fd, libc::SOL_SOCKET, opt, &v).map_err(|e| (stage, e))
    };
    set(SO_PREFER_BUSY_POLL, 1, "setsockopt(SO_PREFER_BUSY_POLL)")?;
    set(libc::SO_BUSY_POLL, usecs, "setsockopt(SO_BUSY_POLL)")?;
    set(
        SO_BUSY_POLL_BUDGET,
        budget,
        "setsockopt(SO_BUSY_POLL_BUDGET)",
    )
}

/// A zero-length, non-blocking receive: on a busy-polled AF_XDP socket, one run of the
/// queue's NAPI context in the calling thread. Nothing is received; `EAGAIN` is the usual
/// answer.
pub fn busy_poll_once(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no buffer is written (null with length 0) and no address is asked for (null
    // pointers).
    let r = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One descriptor to wait on with [`poll`] (a `struct pollfd` that borrows its descriptor).
#[repr(transparent)]
pub struct PollFd<'fd> {
    raw: libc::pollfd,
    _fd: PhantomData<BorrowedFd<'fd>>,
}

impl<'fd> PollFd<'fd> {
    /// Waits for `events` (`POLLIN`, …) on `fd`.
    pub fn new(fd: BorrowedFd<'fd>, events: libc::c_short) -> Self {
        PollFd {
            raw: libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            },
            _fd: PhantomData,
        }
    }

    /// The events that happened (`POLLIN`, `POLLERR`, …), after [`poll`].
    pub fn revents(&self) -> libc::c_short {
        self.raw.revents
    }
}

/// `poll(2)`: waits until one of `fds` is ready or `timeout` passes (rounded up to whole
/// milliseconds); returns how many are ready. A signal ends the wait with `EINTR`
/// ([`io::ErrorKind::Interrupted`]).
pub fn poll(fds: &mut [PollFd<'_>], timeout: Duration) -> io::Result<usize> {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    let n = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `PollFd` is a `repr(transparent)` `pollfd`, so `fds` is a valid array of `n`
    // pollfd structures, exclusively borrowed for the call; every descriptor is borrowed for
    // the lifetime of its `PollFd`.
    let r = cvt(unsafe { libc::poll(fds.as_mut_ptr().cast::<libc::pollfd>(), n, ms) })?;
    Ok(usize::try_from(r).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn options_round_trip_on_a_datagram_socket() {
        // Needs no privilege: a UDP socket.
        let sock = crate::sys::netdev::ioctl_socket().expect("socket");
        let fd = sock.as_fd();
        set_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &65536i32).expect("set");
        let v: i32 = get_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).expect("get");
        assert!(v >= 65536, "{v}");
        assert!(take_error(fd).expect("SO_ERROR").is_none());
        // Nothing to read on an unbound socket: the wait times out.
        let mut fds = [PollFd::new(fd, libc::POLLIN)];
        assert_eq!(poll(&mut fds, Duration::from_millis(1)).expect("poll"), 0);
        assert_eq!(fds[0].revents(), 0);
        let e = busy_poll_once(fd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
