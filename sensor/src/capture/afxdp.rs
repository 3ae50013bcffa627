//! AF_XDP capture source, built on the pure-Rust `xdpilone` crate and the hand-assembled
//! steering program of [`super::xdp_prog`].
//!
//! One UMEM and one AF_XDP socket per (interface, queue): the socket owns its fill ring and its
//! RX ring; no TX. Frames are lent straight out of the UMEM (no copy) and their chunks go back
//! to the fill ring as soon as the closure returns.
//!
//! ```no_run
//! use std::time::Duration;
//! use surgewatch_sensor::capture::afxdp::{AfXdpConfig, AfXdpSource};
//! use surgewatch_sensor::capture::{Capture, Poll};
//!
//! let mut src = AfXdpSource::open("eth1", &AfXdpConfig::default())?;
//! eprintln!("{:?} mode, program in {} mode", src.mode(), src.attach_mode().as_str());
//! let mut bytes = 0u64;
//! loop {
//!     if let Poll::Idle = src.poll(256, |f| bytes += u64::from(f.wire_len))? {
//!         src.wait(Duration::from_millis(100))?; // a worker checks its stop flag here
//!     }
//! }
//! # #[allow(unreachable_code)] Ok::<(), surgewatch_sensor::capture::CaptureError>(())
//! ```
//!
//! Notes on the kernel's behaviour, measured on this project's machines (CAPTURE-NOTES.md):
//! - Zero-copy bind is tried first; on `EOPNOTSUPP` (veth, most virtual devices) the socket is
//!   rebuilt in copy mode. [`AfXdpSource::mode`] says which.
//! - In copy mode the kernel puts 256 bytes of headroom in front of each frame: with the
//!   default 2048-byte chunks at most [`AfXdpSource::max_frame_len`] (1792) bytes of packet
//!   fit. Longer frames are dropped by the kernel and show up as `kernel_drops` in
//!   [`CaptureStats`]; use 4096-byte chunks (3840 bytes) for larger MTUs, and
//!   [`AfXdpConfig::multi_buffer`] beyond (Linux 6.6+). Every lent frame is whole (`wire_len`
//!   equals `data.len()`) except multi-buffer frames longer than a chunk: those lend their first
//!   chunk's bytes, which hold every header, with the whole length as `wire_len`.
//! - Rebinding a queue right after a socket was closed can fail with `EBUSY` for a moment: the
//!   bind is retried for about a second before [`CaptureError::QueueBusy`].
//! - Registering a UMEM locks its memory: without `CAP_IPC_LOCK`, `RLIMIT_MEMLOCK` must cover
//!   it. The soft limit is raised (up to the hard limit, or beyond with `CAP_SYS_RESOURCE`) when
//!   too low, else [`CaptureError::MemlockTooLow`].

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use surgewatch_pipeline::LinkType;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig};

use super::xdp_prog::{ifindex, XdpAttachMode, XdpFallback, XdpProgram};
use super::{ifreq_for, ioctl_ifreq, Capture, CaptureError, CaptureStats, Frame, Poll};

/// How the socket moves frames between driver and UMEM.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// The driver DMAs straight into the UMEM (`XDP_ZEROCOPY`).
    ZeroCopy,
    /// The kernel copies each frame into the UMEM (`XDP_COPY`).
    Copy,
}

/// Settings of an [`AfXdpSource`] (per queue).
#[derive(Clone, Debug)]
pub struct AfXdpConfig {
    /// Size of one UMEM chunk: a power of two from 2048 to the page size (4096).
    pub frame_size: u32,
    /// UMEM chunks per queue (frames in flight between kernel and user space).
    pub frames_per_queue: u32,
    /// Entries of the RX ring and of the fill ring (a power of two).
    pub ring_size: u32,
    /// What the XDP program does with frames of queues without a socket.
    pub fallback: XdpFallback,
    /// Skip the zero-copy attempt.
    pub force_copy: bool,
    /// Busy-poll each queue's NAPI context for up to this many microseconds per poll
    /// (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET` on the socket); 0: off.
    /// With busy polling the source never sleeps: [`AfXdpSource::wait`] drives the kernel's
    /// receive processing from the calling thread and returns at once. When the kernel gives
    /// the socket no NAPI context (`SO_INCOMING_NAPI_ID` still 0 once frames arrived: copy
    /// mode on Linux 6.13+), it spins on the rings without the system call instead
    /// ([`CaptureStats::busy_poll_without_napi`](super::CaptureStats::busy_poll_without_napi)).
    pub busy_poll_us: u32,
    /// Multi-buffer sockets (`XDP_USE_SG`, Linux 6.6+) and a program that accepts them: frames
    /// longer than a chunk arrive in several chunks and are lent with the first chunk's bytes
    /// (which hold every header) and their whole length. For jumbo MTUs.
    pub multi_buffer: bool,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        // 16k frames (32 MiB of UMEM) per queue: the fill ring holds tens of milliseconds of
        // traffic at a few Mpps, enough to ride out a worker that waits for its core (with
        // 2k frames, drops appeared at 0.3 Mpps on a loaded 2-core machine).
        AfXdpConfig {
            frame_size: 2048,
            frames_per_queue: 16384,
            ring_size: 8192,
            fallback: XdpFallback::Pass,
            force_copy: false,
            busy_poll_us: 0,
            multi_buffer: false,
        }
    }
}

/// Headroom the kernel reserves in front of each frame in copy mode (`XDP_PACKET_HEADROOM`).
const XDP_PACKET_HEADROOM: u32 = 256;
/// Entries of the (unused) completion ring; the kernel insists on one.
const COMPLETION_RING: u32 = 64;
/// How long a bind that fails with `EBUSY` is retried.
const BUSY_RETRY: Duration = Duration::from_millis(1000);

/// The receive queues of `ifname` (in the calling thread's network namespace), sorted
/// numerically: from `/sys/class/net/IF/queues/rx-*` when sysfs shows this namespace, else
/// from the driver's channel count (`ETHTOOL_GCHANNELS`), else just queue 0.
pub fn rx_queues(ifname: &str) -> Result<Vec<u32>, CaptureError> {
    let idx = ifindex(ifname)?;
    if let Some(q) = sysfs_rx_queues(ifname, idx) {
        return Ok(q);
    }
    if let Some(n) = ethtool_rx_channels(ifname).filter(|&n| n > 0) {
        return Ok((0..n).collect());
    }
    Ok(vec![0])
}

/// Queues from sysfs, only when sysfs belongs to this thread's namespace (a thread that
/// `setns`'d still sees the sysfs of the namespace it was mounted in).
fn sysfs_rx_queues(ifname: &str, idx: u32) -> Option<Vec<u32>> {
    let dir = format!("/sys/class/net/{ifname}");
    let sys_idx: u32 = fs::read_to_string(format!("{dir}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if sys_idx != idx {
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

/// A datagram socket for interface ioctls (works in any network namespace).
fn ioctl_socket() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// RX channels (rx-only + combined) the driver reports, if it implements `get_channels`.
fn ethtool_rx_channels(ifname: &str) -> Option<u32> {
    use std::os::fd::AsRawFd;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    // struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx_count,
    // tx_count, other_count, combined_count.
    let mut ch = [0u32; 9];
    ch[0] = ETHTOOL_GCHANNELS;
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(ifname)?;
    req.ifr_ifru.ifru_data = ch.as_mut_ptr().cast();
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data pointer refers to a live
    // `struct ethtool_channels` (9 × u32) that the kernel fills.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
    (r == 0).then(|| ch[5].saturating_add(ch[8]))
}

/// Whether the interface is administratively up (`IFF_UP`).
fn interface_up(ifname: &str) -> Result<bool, CaptureError> {
    use std::os::fd::AsRawFd;
    let err = |source| CaptureError::Socket {
        interface: ifname.to_owned(),
        op: "ioctl(SIOCGIFFLAGS)",
        source,
    };
    let sock = ioctl_socket().ok_or_else(|| err(io::Error::last_os_error()))?;
    let mut req = ifreq_for(ifname).ok_or_else(|| CaptureError::NoSuchInterface {
        interface: ifname.to_owned(),
    })?;
    if let Err(e) = ioctl_ifreq(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) {
        return Err(if e.raw_os_error() == Some(libc::ENODEV) {
            CaptureError::NoSuchInterface {
                interface: ifname.to_owned(),
            }
        } else {
            err(e)
        });
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds `ifru_flags`.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(flags & libc::IFF_UP as libc::c_short != 0)
}

/// The interface's MTU (`SIOCGIFMTU`), if it can be read.
pub fn interface_mtu(ifname: &str) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let sock = ioctl_socket()?;
    let mut req = ifreq_for(ifname)?;
    ioctl_ifreq(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req).ok()?;
    // SAFETY: SIOCGIFMTU succeeded, so the union holds `ifru_mtu`.
    u32::try_from(unsafe { req.ifr_ifru.ifru_mtu }).ok()
}

/// The UMEM chunk size for an interface whose longest frame is `longest` bytes: 2048, or
/// 4096 when the frame does not fit a 2048-byte chunk in copy mode.
pub fn chunk_size_for(longest: u32) -> u32 {
    if longest > max_copy_frame_len(2048) {
        4096
    } else {
        2048
    }
}

/// Longest frame a chunk of `chunk_size` bytes holds in copy mode (after the kernel's headroom).
pub fn max_copy_frame_len(chunk_size: u32) -> u32 {
    chunk_size.saturating_sub(XDP_PACKET_HEADROOM)
}

/// Longest Ethernet frame (without FCS) an interface of this MTU carries: the header and two
/// VLAN tags (QinQ) on top of the MTU.
pub fn longest_frame(mtu: u32) -> u32 {
    mtu.saturating_add(14 + 8)
}

/// Raises the soft `RLIMIT_MEMLOCK` so that `needed` more bytes can be locked, when it is not
/// unlimited. Failure is not an error here: `CAP_IPC_LOCK` makes the limit irrelevant, and
/// UMEM registration reports the real problem. Returns the soft limit now in force.
pub fn raise_memlock(needed: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    let want = lim.rlim_cur.saturating_add(needed);
    let new = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: setrlimit reads the valid `new`.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &new) } == 0 {
        return want;
    }
    // Without CAP_SYS_RESOURCE: up to the hard limit.
    let capped = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &capped) } == 0 {
        capped.rlim_cur
    } else {
        lim.rlim_cur
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// An anonymous, page-aligned, pre-faulted mapping holding one UMEM (also used by the
/// AF_XDP TX generator of the benches); unmapped on drop.
pub struct UmemArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value alone; the pointer is never shared
// with another thread except through `&self`/`&mut self` borrows of its owner.
unsafe impl Send for UmemArea {}

impl UmemArea {
    /// Maps `len` bytes.
    pub fn new(len: usize) -> io::Result<Self> {
        // SAFETY: anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(UmemArea { ptr, len })
    }

    /// The whole mapping, as `xdpilone::Umem::new` takes it.
    pub fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// Copies `data` to offset `at` before the area is registered as a UMEM; false (and
    /// nothing written) when it does not fit.
    pub fn write(&mut self, at: usize, data: &[u8]) -> bool {
        match at.checked_add(data.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: `at..end` lies inside the live mapping, which `&mut self` borrows
                // exclusively; `data` cannot overlap it (it is borrowed separately).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        data.as_ptr(),
                        self.ptr.as_ptr().add(at),
                        data.len(),
                    );
                }
                true
            }
            _ => false,
        }
    }

    /// Hints the CPU to fetch the first two cache lines at `addr` (no effect outside the
    /// mapping).
    #[inline]
    fn prefetch(&self, addr: u64) {
        let Ok(start) = usize::try_from(addr) else {
            return;
        };
        if start >= self.len {
            return;
        }
        let p = self.ptr.as_ptr().wrapping_add(start);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `prefetcht0` is a hint: it never faults and has no effect the program can
        // observe; SSE is part of the x86_64 baseline.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// The `len` bytes at `addr`, when inside the area.
    #[inline]
    fn get(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len as usize)?;
        if end > self.len {
            return None;
        }
        // SAFETY: `start..end` lies inside the live mapping. The chunk holding it was handed
        // to us on the RX ring, so the kernel will not write it until we put it back on the
        // fill ring, which happens only after this borrow (tied to `&self`) has ended.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len as usize) })
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping created in `new`, unmapped once here.
        // The kernel keeps its own pin on the pages while a socket still references the UMEM.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One AF_XDP socket bound to one queue, with its own UMEM.
struct XskQueue {
    queue: u32,
    fd: RawFd,
    mode: XdpMode,
    frame_size: u32,
    // Field order is drop order: rings (and their mmaps, and the socket fd) before the UMEM.
    rx: RingRx,
    fq: DeviceQueue,
    /// Chunk addresses owned by user space, waiting for room in the fill ring.
    free: Vec<u64>,
    received: u64,
    bytes: u64,
    /// Descriptors pointing outside the UMEM (never seen from a sane kernel).
    bad_descs: u64,
    /// Busy polling is on: an empty ring is refilled by `recvfrom`, not by waiting.
    busy: bool,
    /// Whether the socket has a NAPI context that a busy poll can run.
    napi: Napi,
    /// Multi-buffer: the first buffer (address, length) of a frame whose other buffers are
    /// still to come, and the length so far.
    head: Option<(u64, u32, u32)>,
    area: UmemArea,
}

/// What a busy poll of a socket can drive.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Napi {
    /// Not known yet: kernels before 6.13 give the socket its NAPI id with the first frame.
    Unknown,
    /// The socket has a NAPI id: `recvfrom` runs the queue's receive processing here.
    Polled,
    /// Frames arrived and the socket still has no NAPI id (Linux 6.13+ gives one to
    /// zero-copy sockets only, at bind time): a busy-poll system call would do nothing but
    /// contend for the socket with the kernel's receive path, so the worker spins on the
    /// rings in user space instead.
    Absent,
}

impl Napi {
    /// `Polled` if socket `fd` has a NAPI id now, else `without`.
    fn of(fd: RawFd, without: Napi) -> Napi {
        if napi_id(fd) == 0 {
            without
        } else {
            Napi::Polled
        }
    }
}

/// Why one attempt at opening a queue failed.
struct OpenError {
    errno: i32,
    stage: &'static str,
}

fn errno(stage: &'static str) -> impl Fn(xdpilone::Errno) -> OpenError {
    move |e| OpenError {
        errno: e.get_raw().abs(),
        stage,
    }
}

impl XskQueue {
    fn open(
        ifname: &str,
        queue: u32,
        cfg: &AfXdpConfig,
        zero_copy: bool,
    ) -> Result<Self, OpenError> {
        let os = |stage| {
            move |e: io::Error| OpenError {
                errno: e.raw_os_error().unwrap_or(libc::EIO),
                stage,
            }
        };
        let cname = CString::new(ifname).map_err(|_| OpenError {
            errno: libc::ENODEV,
            stage: "interface name",
        })?;
        let mut info = IfInfo::invalid();
        info.from_name(&cname).map_err(errno("interface"))?;
        info.set_queue(queue);

        let len = cfg.frames_per_queue as usize * cfg.frame_size as usize;
        let area = UmemArea::new(len).map_err(os("mmap UMEM"))?;
        let ucfg = UmemConfig {
            fill_size: cfg.ring_size,
            complete_size: COMPLETION_RING,
            frame_size: cfg.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a page-aligned mapping of `len` bytes that outlives every ring and
        // socket made from this UMEM (it is dropped last in `XskQueue`).
        let umem =
            unsafe { Umem::new(ucfg, area.as_slice_ptr()) }.map_err(errno("register UMEM"))?;
        let sock = Socket::with_shared(&info, &umem).map_err(errno("socket"))?;
        let mut fq = umem.fq_cq(&sock).map_err(errno("fill/completion rings"))?;
        let mut bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP;
        if cfg.multi_buffer {
            bind_flags |= XDP_USE_SG;
        }
        bind_flags |= if zero_copy {
            SocketConfig::XDP_BIND_ZEROCOPY
        } else {
            SocketConfig::XDP_BIND_COPY
        };
        let scfg = SocketConfig {
            rx_size: std::num::NonZeroU32::new(cfg.ring_size),
            tx_size: None,
            bind_flags,
        };
        let user = umem.rx_tx(&sock, &scfg).map_err(errno("rx ring"))?;
        let rx = user.map_rx().map_err(errno("map rx ring"))?;

        // Every chunk starts in user space; as many as fit go to the fill ring now.
        let frames = umem.len_frames();
        let mut free: Vec<u64> = (0..frames)
            .rev()
            .map(|i| u64::from(i) * u64::from(cfg.frame_size))
            .collect();
        refill(&mut fq, &mut free);

        umem.bind(&user).map_err(errno("bind"))?;
        let fd = user.as_raw_fd();
        if cfg.busy_poll_us > 0 {
            set_busy_poll(fd, cfg.busy_poll_us, BUSY_POLL_BUDGET).map_err(|(stage, e)| {
                OpenError {
                    errno: e.raw_os_error().unwrap_or(libc::EINVAL),
                    stage,
                }
            })?;
        }
        Ok(XskQueue {
            queue,
            fd,
            mode: if zero_copy {
                XdpMode::ZeroCopy
            } else {
                XdpMode::Copy
            },
            frame_size: cfg.frame_size,
            rx,
            fq,
            free,
            received: 0,
            bytes: 0,
            bad_descs: 0,
            busy: cfg.busy_poll_us > 0,
            napi: Napi::of(fd, Napi::Unknown),
            head: None,
            area,
        })
    }

    /// Lends up to `budget` frames; `ts` is read once, at the first frame.
    #[inline]
    fn poll<F: FnMut(&Frame<'_>)>(
        &mut self,
        budget: u32,
        ts: &mut Option<u64>,
        f: &mut F,
    ) -> usize {
        let mut n = 0usize;
        let chunk_mask = !(u64::from(self.frame_size) - 1);
        let mut rx = self.rx.receive(budget);
        if rx.capacity() > 0 {
            let ts_nanos = *ts.get_or_insert_with(now_nanos);
            // Descriptors a group at a time: the frames were written by the core that ran the
            // kernel's receive path, so their first lines are fetched for the whole group
            // before the first is parsed (the misses overlap instead of queueing).
            let mut group = [(0u64, 0u32, 0u32); PREFETCH_GROUP];
            loop {
                let mut k = 0;
                while k < PREFETCH_GROUP {
                    let Some(XdpDesc { addr, len, options }) = rx.read() else {
                        break;
                    };
                    self.area.prefetch(addr);
                    group[k] = (addr, len, options);
                    k += 1;
                }
                let mut out = Lender {
                    area: &self.area,
                    free: &mut self.free,
                    bytes: &mut self.bytes,
                    bad_descs: &mut self.bad_descs,
                    chunk_mask,
                    ts_nanos,
                };
                for &(addr, len, options) in &group[..k] {
                    n += if options & XDP_PKT_CONTD != 0 || self.head.is_some() {
                        // A frame in several buffers (multi-buffer sockets only).
                        out.fragment(&mut self.head, addr, len, options, f)
                    } else {
                        out.lend(addr, len, len, f)
                    };
                }
                if k < PREFETCH_GROUP {
                    break;
                }
            }
            rx.release();
        }
        drop(rx);
        if n > 0 && self.busy && self.napi == Napi::Unknown {
            self.napi = Napi::of(self.fd, Napi::Absent);
        }
        self.received += n as u64;
        refill(&mut self.fq, &mut self.free);
        if n == 0 && (self.busy || self.fq.needs_wakeup()) {
            self.kick();
        }
        n
    }

    /// Has the kernel process this queue: with busy polling, one run of its NAPI context in
    /// this thread; otherwise a wake-up for a fill ring that ran dry.
    #[inline]
    fn kick(&mut self) {
        if self.busy && self.napi == Napi::Absent {
            std::hint::spin_loop();
        } else if self.busy {
            // SAFETY: a zero-length non-blocking receive on our own socket: no buffer is
            // written (the pointer is null with length 0). Its only effect is the busy poll;
            // errors (EAGAIN) carry no information here.
            unsafe {
                libc::recvfrom(
                    self.fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        } else {
            self.fq.wake();
        }
    }

    fn kernel_stats(&self) -> Option<xdpilone::xdp::XdpStatisticsV2> {
        self.fq.statistics_v2().ok()
    }
}

impl AsFd for XskQueue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is the socket held open by `rx` and `fq` for as long as `self` lives.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }
}

/// Where a poll's frames go: lent to the caller, counted, and their chunks given back.
struct Lender<'a> {
    area: &'a UmemArea,
    free: &'a mut Vec<u64>,
    bytes: &'a mut u64,
    bad_descs: &'a mut u64,
    chunk_mask: u64,
    ts_nanos: u64,
}

impl Lender<'_> {
    /// Lends the `len` bytes at `addr` as a frame of `wire_len` bytes (a descriptor outside
    /// the UMEM is counted, not lent), then gives its chunk back. Returns the frames lent.
    #[inline(always)]
    fn lend<F: FnMut(&Frame<'_>)>(
        &mut self,
        addr: u64,
        len: u32,
        wire_len: u32,
        f: &mut F,
    ) -> usize {
        let lent = match self.area.get(addr, len) {
            Some(data) => {
                f(&Frame {
                    data,
                    ts_nanos: self.ts_nanos,
                    wire_len,
                    link: LinkType::Ethernet,
                });
                *self.bytes += u64::from(wire_len);
                1
            }
            None => {
                *self.bad_descs += 1;
                0
            }
        };
        self.give_back(addr);
        lent
    }

    /// Puts the chunk holding `addr` back on the free list (when it is one of ours).
    #[inline(always)]
    fn give_back(&mut self, addr: u64) {
        let chunk = addr & self.chunk_mask;
        if chunk < self.area.len as u64 {
            self.free.push(chunk);
        }
    }

    /// One buffer of a frame that spans several (`XDP_PKT_CONTD` on all but the last): the
    /// first buffer, which holds the headers, is kept in `head` (address, length, length so
    /// far) until the last arrives, also across polls; then the frame is lent with the first
    /// buffer's bytes and the whole length as its wire length (like a capture with a snap
    /// length). The other buffers go straight back. Returns the frames lent (0 or 1).
    #[cold]
    fn fragment<F: FnMut(&Frame<'_>)>(
        &mut self,
        head: &mut Option<(u64, u32, u32)>,
        addr: u64,
        len: u32,
        options: u32,
        f: &mut F,
    ) -> usize {
        match head {
            None => *head = Some((addr, len, len)),
            Some((_, _, total)) => {
                *total = total.saturating_add(len);
                self.give_back(addr);
            }
        }
        if options & XDP_PKT_CONTD != 0 {
            return 0;
        }
        match head.take() {
            Some((first, first_len, total)) => self.lend(first, first_len, total, f),
            None => 0,
        }
    }
}

/// `bind` flag: frames may span several chunks (multi-buffer AF_XDP, Linux 6.6+).
const XDP_USE_SG: u16 = 1 << 4;
/// RX descriptor option: the frame continues in the next descriptor.
const XDP_PKT_CONTD: u32 = 1 << 0;

/// Frames whose data is prefetched together before the first of them is handed out.
const PREFETCH_GROUP: usize = 16;

/// `SO_BUSY_POLL_BUDGET`: frames one busy poll may process (the kernel's NAPI weight).
const BUSY_POLL_BUDGET: u32 = 64;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// `SO_INCOMING_NAPI_ID` of a socket: the NAPI context a busy poll runs (0: none, or the
/// option is unknown to the kernel).
fn napi_id(fd: RawFd) -> u32 {
    const SO_INCOMING_NAPI_ID: libc::c_int = 56;
    let mut id: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `id` and `len` are valid for writes of the sizes given; the kernel writes at
    // most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_INCOMING_NAPI_ID,
            (&mut id as *mut u32).cast(),
            &mut len,
        )
    };
    if r == 0 {
        id
    } else {
        0
    }
}

/// Turns on preferred busy polling on an AF_XDP socket.
fn set_busy_poll(fd: RawFd, usecs: u32, budget: u32) -> Result<(), (&'static str, io::Error)> {
    let set = |opt: libc::c_int, v: u32, stage: &'static str| {
        let v = libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
        // SAFETY: `v` is a valid c_int for the duration of the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err((stage, io::Error::last_os_error()))
        }
    };
    set(SO_PREFER_BUSY_POLL, 1, "setsockopt(SO_PREFER_BUSY_POLL)")?;
    set(libc::SO_BUSY_POLL, usecs, "setsockopt(SO_BUSY_POLL)")?;
    set(
        SO_BUSY_POLL_BUDGET,
        budget,
        "setsockopt(SO_BUSY_POLL_BUDGET)",
    )
}

/// Moves chunks from `free` to the fill ring: exactly as many as the ring reserved.
#[inline]
fn refill(fq: &mut DeviceQueue, free: &mut Vec<u64>) {
    if free.is_empty() {
        return;
    }
    let mut w = fq.fill(u32::try_from(free.len()).unwrap_or(u32::MAX));
    let cap = w.capacity() as usize;
    if cap == 0 {
        return;
    }
    let from = free.len() - cap;
    let put = w.insert(free[from..].iter().copied()) as usize;
    w.commit();
    drop(w);
    free.truncate(free.len() - put);
}

/// Maps a failed attempt to a typed error.
fn open_error(ifname: &str, queue: u32, needed: u64, limit: u64, e: OpenError) -> CaptureError {
    let interface = ifname.to_owned();
    match (e.errno, e.stage) {
        (libc::EPERM | libc::EACCES, _) => CaptureError::NeedsCapabilities {
            interface,
            caps: "CAP_NET_RAW and CAP_IPC_LOCK",
        },
        (libc::ENOBUFS | libc::ENOMEM, "register UMEM") => CaptureError::MemlockTooLow {
            interface,
            needed,
            limit,
        },
        (libc::ENODEV, _) => CaptureError::NoSuchInterface { interface },
        (libc::EBUSY, _) => CaptureError::QueueBusy { interface, queue },
        (libc::EAFNOSUPPORT, _) => CaptureError::Socket {
            interface,
            op: "socket(AF_XDP)",
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "AF_XDP not supported by this kernel",
            ),
        },
        (errno, stage) => CaptureError::Socket {
            interface,
            op: stage,
            source: io::Error::from_raw_os_error(errno),
        },
    }
}

/// An AF_XDP capture of some or all receive queues of one interface.
///
/// Holds an `Arc` of the interface's [`XdpProgram`]: the program stays attached while any
/// source (see [`AfXdpSource::split`]) of the interface lives, and is detached by the kernel
/// when the last one is dropped or the process dies.
pub struct AfXdpSource {
    // Sockets before the program: frames stop being steered to closed sockets anyway, but
    // closing the sockets first leaves no window with the program pointing at nothing.
    queues: Vec<XskQueue>,
    program: Arc<XdpProgram>,
    next: usize,
}

impl std::fmt::Debug for AfXdpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpSource")
            .field("interface", &self.program.interface())
            .field("queues", &self.queues())
            .field("mode", &self.mode())
            .field("attach_mode", &self.attach_mode())
            .finish()
    }
}

impl AfXdpSource {
    /// Captures every receive queue of `ifname` (see [`rx_queues`]): attaches the program,
    /// then opens and registers one socket per queue.
    pub fn open(ifname: &str, cfg: &AfXdpConfig) -> Result<Self, CaptureError> {
        let queues = rx_queues(ifname)?;
        Self::open_queues(ifname, &queues, cfg)
    }

    /// Captures the given queues of `ifname`.
    pub fn open_queues(
        ifname: &str,
        queues: &[u32],
        cfg: &AfXdpConfig,
    ) -> Result<Self, CaptureError> {
        check_config(ifname, cfg)?;
        check_interface(ifname)?;
        let existing = rx_queues(ifname)?;
        let n_queues = existing.iter().chain(queues).max().map_or(1, |&m| m + 1);
        let program = Arc::new(XdpProgram::attach_with(
            ifname,
            n_queues,
            cfg.fallback,
            cfg.multi_buffer,
        )?);
        Self::with_program(program, queues, cfg)
    }

    /// Opens sockets on `queues` and registers them with an already attached `program` (for
    /// one source per worker, each with its own queues, sharing one program).
    pub fn with_program(
        program: Arc<XdpProgram>,
        queues: &[u32],
        cfg: &AfXdpConfig,
    ) -> Result<Self, CaptureError> {
        let ifname = program.interface().to_owned();
        check_config(&ifname, cfg)?;
        check_interface(&ifname)?;
        let existing = rx_queues(&ifname)?;
        if let Some(&q) = queues
            .iter()
            .find(|q| !existing.contains(q) || **q >= program.n_queues())
        {
            return Err(CaptureError::NoSuchQueue {
                interface: ifname,
                queue: q,
            });
        }
        let mut qs = queues.to_vec();
        qs.sort_unstable();
        qs.dedup();
        if qs.is_empty() {
            return Err(CaptureError::InvalidConfig {
                interface: ifname,
                reason: "no queue to capture".into(),
            });
        }
        let per_queue = u64::from(cfg.frames_per_queue) * u64::from(cfg.frame_size);
        let needed = per_queue * qs.len() as u64;
        let limit = raise_memlock(needed);
        // Zero-copy needs the program in the driver.
        let try_zc = !cfg.force_copy && program.mode() == XdpAttachMode::Driver;
        let mut sockets = Vec::with_capacity(qs.len());
        for &q in &qs {
            let sock = open_with_retries(&ifname, q, cfg, try_zc)
                .map_err(|e| open_error(&ifname, q, needed, limit, e))?;
            program.register(q, &sock)?;
            sockets.push(sock);
        }
        Ok(AfXdpSource {
            queues: sockets,
            program,
            next: 0,
        })
    }

    /// One source per queue, all sharing the program (for one worker per queue).
    pub fn split(self) -> Vec<AfXdpSource> {
        let program = self.program;
        self.queues
            .into_iter()
            .map(|q| AfXdpSource {
                queues: vec![q],
                program: Arc::clone(&program),
                next: 0,
            })
            .collect()
    }

    /// Zero-copy when every socket got it, else copy.
    pub fn mode(&self) -> XdpMode {
        if self.queues.iter().all(|q| q.mode == XdpMode::ZeroCopy) {
            XdpMode::ZeroCopy
        } else {
            XdpMode::Copy
        }
    }

    /// Whether the program runs in the driver or in generic (skb) mode.
    pub fn attach_mode(&self) -> XdpAttachMode {
        self.program.mode()
    }

    /// The shared program.
    pub fn program(&self) -> &Arc<XdpProgram> {
        &self.program
    }

    /// Whether the queues are busy-polled ([`AfXdpConfig::busy_poll_us`]).
    pub fn busy_poll(&self) -> bool {
        self.queues.iter().any(|q| q.busy)
    }

    /// The queues this source reads.
    pub fn queues(&self) -> Vec<u32> {
        self.queues.iter().map(|q| q.queue).collect()
    }

    /// Longest frame that fits in a chunk: frames longer than this are dropped by the kernel
    /// (counted in `kernel_drops`).
    pub fn max_frame_len(&self) -> u32 {
        let fs = self.queues.first().map_or(2048, |q| q.frame_size);
        match self.mode() {
            XdpMode::Copy => max_copy_frame_len(fs),
            XdpMode::ZeroCopy => fs,
        }
    }

    /// Blocks until a frame is ready on any queue or `timeout` passes (`poll(2)` on the
    /// sockets). Returns whether frames are ready. Interrupted waits return `false`.
    ///
    /// With busy polling on, runs each queue's receive processing once in this thread instead
    /// and returns at once (the caller spins).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, CaptureError> {
        if self.queues.iter().any(|q| q.rx.available() > 0) {
            return Ok(true);
        }
        if self.busy_poll() {
            for q in &mut self.queues {
                q.kick();
            }
            return Ok(self.queues.iter().any(|q| q.rx.available() > 0));
        }
        let mut fds: Vec<libc::pollfd> = self
            .queues
            .iter()
            .map(|q| libc::pollfd {
                fd: q.fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(CaptureError::Socket {
                interface: self.program.interface().to_owned(),
                op: "poll",
                source: e,
            });
        }
        Ok(r > 0)
    }
}

fn check_config(ifname: &str, cfg: &AfXdpConfig) -> Result<(), CaptureError> {
    let bad = |reason: String| {
        Err(CaptureError::InvalidConfig {
            interface: ifname.to_owned(),
            reason,
        })
    };
    if !cfg.frame_size.is_power_of_two() || !(2048..=4096).contains(&cfg.frame_size) {
        return bad(format!("frame size {} is not 2048 or 4096", cfg.frame_size));
    }
    if !cfg.ring_size.is_power_of_two() || cfg.ring_size < 64 {
        return bad(format!(
            "ring size {} is not a power of two >= 64",
            cfg.ring_size
        ));
    }
    if cfg.frames_per_queue < cfg.ring_size || cfg.frames_per_queue > 1 << 20 {
        return bad(format!(
            "{} frames per queue: need at least the ring size ({}) and at most 2^20",
            cfg.frames_per_queue, cfg.ring_size
        ));
    }
    Ok(())
}

fn check_interface(ifname: &str) -> Result<(), CaptureError> {
    ifindex(ifname)?;
    if !interface_up(ifname)? {
        return Err(CaptureError::InterfaceDown {
            interface: ifname.to_owned(),
        });
    }
    Ok(())
}

/// Opens a queue, zero-copy first when asked, retrying `EBUSY` for about a second.
fn open_with_retries(
    ifname: &str,
    queue: u32,
    cfg: &AfXdpConfig,
    mut zero_copy: bool,
) -> Result<XskQueue, OpenError> {
    let start = Instant::now();
    loop {
        match XskQueue::open(ifname, queue, cfg, zero_copy) {
            Ok(q) => return Ok(q),
            Err(e)
                if zero_copy
                    && e.stage == "bind"
                    && matches!(e.errno, libc::EOPNOTSUPP | libc::EINVAL) =>
            {
                zero_copy = false;
            }
            Err(e) if e.errno == libc::EBUSY && start.elapsed() < BUSY_RETRY => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

impl Capture for AfXdpSource {
    fn poll<F: FnMut(&Frame<'_>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Poll, CaptureError> {
        let n_q = self.queues.len();
        let mut left = budget;
        let mut ts = None;
        for i in 0..n_q {
            if left == 0 {
                break;
            }
            let qi = (self.next + i) % n_q;
            if let Some(q) = self.queues.get_mut(qi) {
                let b = u32::try_from(left).unwrap_or(u32::MAX);
                left -= q.poll(b, &mut ts, &mut f);
            }
        }
        self.next = (self.next + 1) % n_q.max(1);
        let n = budget - left;
        Ok(if n == 0 { Poll::Idle } else { Poll::Frames(n) })
    }

    /// With busy polling, one run of every queue's receive processing (no sleep); otherwise
    /// a short sleep (at most 1 ms: the rings hold far more than that at any rate).
    fn wait(&mut self, timeout: Duration) {
        if self.busy_poll() {
            for q in &mut self.queues {
                q.kick();
            }
        } else {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
        }
    }

    fn stats(&mut self) -> CaptureStats {
        let mut s = CaptureStats::default();
        for q in &self.queues {
            s.received += q.received;
            s.bytes += q.bytes;
            s.invalid_descs += q.bad_descs;
            s.busy_poll_without_napi |= q.busy && q.napi == Napi::Absent;
            if let Some(k) = q.kernel_stats() {
                s.kernel_drops += k.rx_dropped;
                s.rx_ring_full += k.rx_ring_full;
                s.fill_ring_empty += k.rx_fill_ring_empty_descs;
                s.invalid_descs += k.rx_invalid_descs;
            }
        }
        s
    }
}
