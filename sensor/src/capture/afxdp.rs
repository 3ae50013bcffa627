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
//!
//! This module is safe Rust. Sockets and rings are `xdpilone`'s safe API; the two places where
//! `xdpilone` asks for `unsafe` (registering the UMEM over memory it cannot check, and a
//! ring's raw descriptor) and the UMEM memory itself ([`UmemArea`]: its frames are read
//! through bounds-checked borrows) live in [`crate::sys::xsk`]; socket options, `poll(2)` and
//! the interface ioctls in [`crate::sys::socket`] and [`crate::sys::netdev`]. What stays here
//! is the ring protocol: a chunk is lent only between its RX descriptor and its return to the
//! fill ring.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use surgewatch_pipeline::LinkType;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, UmemConfig};

use crate::sys::xsk::rx_fd;
use crate::sys::{netdev, socket};

use super::xdp_prog::{XdpAttachMode, XdpFallback, XdpProgram};
use super::{ifindex, Capture, CaptureError, CaptureStats, Frame, Poll};

pub use crate::sys::mem::raise_memlock;
pub use crate::sys::xsk::UmemArea;

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
    if let Some(q) = netdev::sysfs_rx_queues(ifname, idx) {
        return Ok(q);
    }
    if let Some(n) = ethtool_rx_channels(ifname).filter(|&n| n > 0) {
        return Ok((0..n).collect());
    }
    Ok(vec![0])
}

/// RX channels (rx-only + combined) the driver reports, if it implements `get_channels`.
fn ethtool_rx_channels(ifname: &str) -> Option<u32> {
    let sock = netdev::ioctl_socket().ok()?;
    netdev::rx_channels(sock.as_fd(), ifname).ok()
}

/// Whether the interface is administratively up (`IFF_UP`).
fn interface_up(ifname: &str) -> Result<bool, CaptureError> {
    let err = |source| CaptureError::Socket {
        interface: ifname.to_owned(),
        op: "ioctl(SIOCGIFFLAGS)",
        source,
    };
    let sock = netdev::ioctl_socket().map_err(err)?;
    netdev::is_up(sock.as_fd(), ifname).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENODEV) {
            CaptureError::NoSuchInterface {
                interface: ifname.to_owned(),
            }
        } else {
            err(e)
        }
    })
}

/// The interface's MTU (`SIOCGIFMTU`), if it can be read.
pub fn interface_mtu(ifname: &str) -> Option<u32> {
    let sock = netdev::ioctl_socket().ok()?;
    netdev::mtu(sock.as_fd(), ifname).ok()
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

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One AF_XDP socket bound to one queue, with its own UMEM.
struct XskQueue {
    queue: u32,
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
    /// `Polled` if socket `fd` has a NAPI id now, else `without` (also when the kernel does
    /// not know `SO_INCOMING_NAPI_ID`).
    fn of(fd: BorrowedFd<'_>, without: Napi) -> Napi {
        if socket::napi_id(fd).unwrap_or(0) == 0 {
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
        // The UMEM borrows `area` until it is dropped below; the rings and socket made from it
        // do not (the kernel holds the pages), and `area` is dropped last in `XskQueue`.
        let umem = area.register(ucfg).map_err(os("register UMEM"))?;
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
        drop(umem);
        if cfg.busy_poll_us > 0 {
            socket::set_busy_poll(rx_fd(&rx), cfg.busy_poll_us, BUSY_POLL_BUDGET).map_err(
                |(stage, e)| OpenError {
                    errno: e.raw_os_error().unwrap_or(libc::EINVAL),
                    stage,
                },
            )?;
        }
        let napi = Napi::of(rx_fd(&rx), Napi::Unknown);
        Ok(XskQueue {
            queue,
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
            napi,
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
            self.napi = Napi::of(rx_fd(&self.rx), Napi::Absent);
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
            // Its only effect is the busy poll; errors (EAGAIN) carry no information here.
            let _ = socket::busy_poll_once(rx_fd(&self.rx));
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
        rx_fd(&self.rx)
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
        if chunk < self.area.len() as u64 {
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

    /// Adds `other`'s queues to this source (for fewer workers than queues), when both share
    /// one program; otherwise gives `other` back.
    pub fn join(&mut self, other: AfXdpSource) -> Result<(), AfXdpSource> {
        if !Arc::ptr_eq(&self.program, &other.program) {
            return Err(other);
        }
        self.queues.extend(other.queues);
        Ok(())
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
        let mut fds: Vec<socket::PollFd<'_>> = self
            .queues
            .iter()
            .map(|q| socket::PollFd::new(q.as_fd(), libc::POLLIN))
            .collect();
        // Whole milliseconds, rounded down.
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        match socket::poll(&mut fds, Duration::from_millis(ms)) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(CaptureError::Socket {
                interface: self.program.interface().to_owned(),
                op: "poll",
                source: e,
            }),
        }
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
