//! Network interfaces: index by name, the `SIOCGIF*` / `SIOCETHTOOL` ioctls, receive queues in
//! sysfs, and the addresses of every interface (`getifaddrs`).
//!
//! Everything answers for the calling thread's network namespace (a socket belongs to the
//! namespace it was created in). A name that the kernel could not hold (empty, `IFNAMSIZ`
//! bytes or more, or with a NUL byte) gets `ENODEV`, the kernel's answer for an unknown name.

use std::ffi::CString;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{cvt, owned_fd};

fn no_such_device() -> io::Error {
    io::Error::from_raw_os_error(libc::ENODEV)
}

/// `name` as the kernel takes it, or `ENODEV`.
fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(no_such_device());
    }
    CString::new(name).map_err(|_| no_such_device())
}

/// Index of interface `name` (`if_nametoindex(3)`).
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx != 0 {
        return Ok(idx);
    }
    let e = io::Error::last_os_error();
    Err(match e.raw_os_error() {
        None | Some(0) => no_such_device(),
        Some(_) => e,
    })
}

/// A datagram socket to issue interface ioctls on (any socket of the namespace would do).
pub fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the result is checked by `owned_fd`.
    owned_fd(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
}

/// An `ifreq` naming `name`, the rest zero.
fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let c = c_name(name)?;
    // SAFETY: `ifreq` is a name and a union of integers, structs of integers and pointers;
    // all zeroes is a valid value of each (null for the pointers).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &s) in req.ifr_name.iter_mut().zip(c.as_bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

/// A `SIOCGIF*` request: the kernel reads the name and fills one member of the union.
fn ioctl_get(fd: BorrowedFd<'_>, req: libc::c_ulong, name: &str) -> io::Result<libc::ifreq> {
    let mut ifr = ifreq_for(name)?;
    // SAFETY: SIOCGIF* requests read the name and write at most one `ifreq` into `ifr`, which
    // is valid and exclusively borrowed for the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut ifr as *mut libc::ifreq) })?;
    Ok(ifr)
}

/// The interface flags (`SIOCGIFFLAGS`: `IFF_UP`, `IFF_RUNNING`, …).
pub fn flags(fd: BorrowedFd<'_>, name: &str) -> io::Result<u16> {
    let ifr = ioctl_get(fd, libc::SIOCGIFFLAGS, name)?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds `ifru_flags` (an integer).
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    Ok(flags as u16)
}

/// Whether the interface is administratively up (`IFF_UP`).
pub fn is_up(fd: BorrowedFd<'_>, name: &str) -> io::Result<bool> {
    Ok(flags(fd, name)? & libc::IFF_UP as u16 != 0)
}

/// The interface's MTU (`SIOCGIFMTU`).
pub fn mtu(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let ifr = ioctl_get(fd, libc::SIOCGIFMTU, name)?;
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu` (an integer).
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The interface's hardware type, an `ARPHRD_*` number (`SIOCGIFHWADDR`).
pub fn hw_type(fd: BorrowedFd<'_>, name: &str) -> io::Result<u16> {
    let ifr = ioctl_get(fd, libc::SIOCGIFHWADDR, name)?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds `ifru_hwaddr` (a sockaddr of
    // integers).
    Ok(unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family })
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// RX channels (rx-only + combined) the driver reports (`ETHTOOL_GCHANNELS`); `EOPNOTSUPP`
/// when the driver does not implement `get_channels`.
pub fn rx_channels(fd: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    // struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx_count,
    // tx_count, other_count, combined_count.
    let mut ch = [0u32; 9];
    ch[0] = ETHTOOL_GCHANNELS;
    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_data = ch.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data pointer refers to `ch`, a live
    // `struct ethtool_channels` (9 × u32) that the kernel fills and that outlives the call.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL as _, &mut req) })?;
    let [_, _, _, _, _, rx, _, _, combined] = ch;
    Ok(rx.saturating_add(combined))
}

/// The receive queues of interface `name` whose index is `ifindex`, from
/// `/sys/class/net/NAME/queues/rx-*`, sorted; `None` when sysfs does not show them or shows
/// another namespace's interface of that name (a thread that `setns`'d still sees the sysfs of
/// the namespace it was mounted in, so the index is compared).
pub fn sysfs_rx_queues(name: &str, ifindex: u32) -> Option<Vec<u32>> {
    c_name(name).ok()?;
    let dir = format!("/sys/class/net/{name}");
    let sys_idx: u32 = fs::read_to_string(format!("{dir}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if sys_idx != ifindex {
        return None;
    }
    let mut q: Vec<u32> = fs::read_dir(format!("{dir}/queues"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("rx-")?.parse().ok())
        .collect();
    q.sort_unstable();
    (!q.is_empty()).then_some(q)
}

/// Every IPv4 and IPv6 address configured on an interface, with the interface's name, in the
/// order `getifaddrs(3)` lists them.
pub fn interface_addresses() -> io::Result<Vec<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` receives a list allocated by libc, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points to a sockaddr whose family says its type.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
            }
            libc::AF_INET6 => {
                // SAFETY: family AF_INET6 means the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
            }
            _ => continue,
        };
        // SAFETY: `ifa_name` is a non-null, NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        out.push((name.into_owned(), ip));
    }
    // SAFETY: `head` came from getifaddrs and is freed exactly once; nothing borrowed from the
    // list outlives this (names were copied).
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn names_the_kernel_cannot_hold_are_no_such_device() {
        for name in ["", "a-name-of-sixteen", "nul\0inside"] {
            let e = ifindex(name).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{name:?}");
        }
        let e = ifindex("sw-nonexist0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    }

    #[test]
    fn loopback_answers_every_request() {
        // Every network namespace has `lo` (up or not), of hardware type ARPHRD_LOOPBACK.
        let sock = ioctl_socket().expect("socket");
        assert!(ifindex("lo").expect("lo") > 0);
        is_up(sock.as_fd(), "lo").expect("flags");
        assert_eq!(hw_type(sock.as_fd(), "lo").expect("hwaddr"), 772);
        mtu(sock.as_fd(), "lo").expect("mtu");
        let e = mtu(sock.as_fd(), "sw-nonexist0").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    }
}
