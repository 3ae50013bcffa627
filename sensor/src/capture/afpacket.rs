//! AF_PACKET (`TPACKET_V3`) live capture source.
//!
//! [`AfPacketSource`] maps a `TPACKET_V3` receive ring shared with the kernel: the kernel fills
//! fixed-size *blocks* with variable-length frames and hands a block over (sets
//! `TP_STATUS_USER`) when it is full or when the block timeout expires. [`Capture::poll`] walks
//! the handed-over blocks in ring order, lends each frame straight out of the ring (zero copy),
//! and gives a block back to the kernel (`TP_STATUS_KERNEL`) once every one of its frames has
//! been lent. A block may be lent across several polls when the budget ends inside it.
//!
//! ## VLAN tags
//! On receive the kernel strips the outermost 802.1Q / 802.1ad tag into the frame's metadata
//! (`tp_vlan_tci`, `tp_vlan_tpid`, flagged by `TP_STATUS_VLAN_VALID` /
//! `TP_STATUS_VLAN_TPID_VALID`) before the frame reaches the ring, and `tp_len` no longer counts
//! it. So that downstream VLAN-aware parsing sees the frame as it was on the wire, such a frame
//! is copied into a small scratch buffer with the tag re-inserted after the MAC addresses, and
//! its wire length grows by the 4 tag bytes. Untagged frames (the usual case) are never copied.
//! Inner tags of QinQ frames stay in the frame data and need nothing.
//!
//! ## Fanout
//! Several sockets (one per worker) join one fanout group ([`Fanout`]) and the kernel spreads
//! frames over them: by flow hash ([`FanoutMode::Hash`], the default) or by the CPU that
//! received the frame ([`FanoutMode::Cpu`], natural with RSS + IRQ affinity). Per-IP
//! accounting does not depend on how frames are spread, so any mode gives the same results.
//!
//! `PACKET_FANOUT_FLAG_DEFRAG` is **off** by default, on purpose: with it the kernel reassembles
//! IPv4 fragments *before* fanout and delivers one reassembled datagram (with the reassembled
//! length) instead of the fragments, and fragments that never complete (the bulk of a fragment
//! flood) are never delivered at all. A DDoS sensor must count fragments as they arrived.
//! Without the flag, the flow hash of a fragment covers addresses and protocol (not ports), so
//! every fragment of a datagram still reaches the same socket. Set [`Fanout::defrag`] only for a
//! consumer that needs whole datagrams.
//!
//! ## Promiscuous mode
//! With [`AfPacketConfig::promiscuous`] the socket adds a `PACKET_MR_PROMISC` membership rather
//! than setting `IFF_PROMISC`: the kernel counts memberships and drops this one when the socket
//! closes, so the interface leaves promiscuous mode when surgewatch exits, even after a crash
//! or `kill -9`.
//!
//! ## Waiting and stopping
//! `poll` never blocks: it returns [`Poll::Idle`] when no block is ready. A live worker sleeps
//! in [`AfPacketSource::wait_ready`] or [`Capture::wait`] (`poll(2)` with a timeout) between idle polls and checks its stop
//! flag each time it returns, so it stops within one wait timeout of being asked:
//!
//! ```no_run
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::time::Duration;
//! use surgewatch_sensor::capture::afpacket::{AfPacketConfig, AfPacketSource};
//! use surgewatch_sensor::capture::{Capture, Poll};
//!
//! let stop = AtomicBool::new(false);
//! let mut src = AfPacketSource::open(&AfPacketConfig::new("eth0"))?;
//! let mut bytes = 0u64;
//! while !stop.load(Ordering::Relaxed) {
//!     if src.poll(256, |f| bytes += u64::from(f.wire_len))? == Poll::Idle {
//!         src.wait_ready(Duration::from_millis(50))?;
//!     }
//! }
//! # Ok::<(), surgewatch_sensor::capture::CaptureError>(())
//! ```
//!
//! A partly filled block is handed over after [`AfPacketConfig::block_timeout`] (10 ms by
//! default), which bounds the latency of a quiet link. A handed-over block is not filled
//! further, so at low rates the ring holds fewer frames than its size suggests (about
//! `block_count` × rate × timeout): size the ring for bursts by its block count, not only its
//! bytes.
//!
//! ## Errors
//! [`AfPacketSource::open`] checks, in order: the settings, that the interface exists
//! ([`CaptureError::NoSuchInterface`]), the capability to open a packet socket
//! ([`CaptureError::PermissionDenied`]), that the interface is Ethernet (or loopback)
//! ([`CaptureError::UnsupportedHardware`]) and administratively up
//! ([`CaptureError::InterfaceDown`]). An interface with the link up but no carrier is accepted:
//! frames flow once the carrier comes. When the interface goes down while capturing, the next
//! [`wait_ready`](AfPacketSource::wait_ready) reports [`CaptureError::InterfaceDown`] once; the socket stays
//! bound and capture resumes by itself when the interface comes back up.
//!
//! Every value read from the ring is checked against the block bounds; a block whose frame
//! headers point outside it is given back to the kernel and counted in
//! [`CaptureStats::invalid_descs`] (never seen in practice; it would mean a kernel bug).
//!
//! ## System calls
//! This module is safe Rust: the socket, its options, the ioctls and `poll(2)` go through
//! [`crate::sys::socket`] and [`crate::sys::netdev`], and the ring is a
//! [`crate::sys::mem::Mapping`], read through bounds-checked accessors (block status words as
//! atomics). What stays here is the ring protocol: a block is read only between the kernel's
//! `TP_STATUS_USER` and our `TP_STATUS_KERNEL`.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use surgewatch_pipeline::LinkType;

use crate::sys::mem::{page_size, Mapping};
use crate::sys::{netdev, socket};

use super::{Capture, CaptureError, CaptureStats, Frame, Poll};

/// Default ring block size: 4 MiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 4 << 20;
/// Default number of ring blocks: 16 (64 MiB of ring per socket).
pub const DEFAULT_BLOCK_COUNT: u32 = 16;
/// Default nominal frame size (`tp_frame_size`). With `TPACKET_V3` frames are packed back to
/// back in a block whatever their size; this only has to divide the block size.
pub const DEFAULT_FRAME_SIZE: u32 = 2048;
/// Default block retire timeout.
pub const DEFAULT_BLOCK_TIMEOUT: Duration = Duration::from_millis(10);
/// Largest ring accepted for one socket (guards against typos in sizes): 1 GiB.
pub const MAX_RING_BYTES: u64 = 1 << 30;

/// TPID used when the kernel does not say which one a stripped tag had.
const TPID_8021Q: u16 = 0x8100;
/// `ARPHRD_ETHER`.
const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK` (frames carry an all-zero Ethernet header).
const ARPHRD_LOOPBACK: u16 = 772;

/// How the kernel spreads frames over the sockets of a fanout group.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FanoutMode {
    /// `PACKET_FANOUT_HASH`: by flow hash (addresses, protocol, ports when not a fragment).
    Hash,
    /// `PACKET_FANOUT_CPU`: by the CPU that received the frame.
    Cpu,
    /// `PACKET_FANOUT_LB`: round robin.
    LoadBalance,
    /// `PACKET_FANOUT_QM`: by the NIC receive queue the frame arrived on.
    QueueMapping,
}

impl FanoutMode {
    fn raw(self) -> u32 {
        match self {
            FanoutMode::Hash => libc::PACKET_FANOUT_HASH,
            FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
            FanoutMode::LoadBalance => libc::PACKET_FANOUT_LB,
            FanoutMode::QueueMapping => libc::PACKET_FANOUT_QM,
        }
    }
}

/// Membership of a fanout group.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// Group id, shared by every socket of the group (per network namespace).
    pub group: u16,
    /// How frames are spread.
    pub mode: FanoutMode,
    /// `PACKET_FANOUT_FLAG_DEFRAG`: reassemble IPv4 fragments before fanout. Off by default:
    /// it hides fragments, see the [module documentation](self).
    pub defrag: bool,
}

impl Fanout {
    /// Flow-hash fanout in `group`, without defragmentation.
    pub fn hash(group: u16) -> Self {
        Fanout {
            group,
            mode: FanoutMode::Hash,
            defrag: false,
        }
    }

    /// Per-CPU fanout in `group`.
    pub fn cpu(group: u16) -> Self {
        Fanout {
            group,
            mode: FanoutMode::Cpu,
            defrag: false,
        }
    }

    fn raw(self) -> u32 {
        let flags = if self.defrag {
            libc::PACKET_FANOUT_FLAG_DEFRAG
        } else {
            0
        };
        u32::from(self.group) | ((self.mode.raw() | flags) << 16)
    }
}

/// Settings of an [`AfPacketSource`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface to capture on (in the caller's network namespace).
    pub interface: String,
    /// Fanout group to join (none: this socket receives every frame of the interface).
    pub fanout: Option<Fanout>,
    /// Ring block size in bytes: a multiple of the page size, at least one frame size. The
    /// largest frame that fits whole is a little smaller than a block.
    pub block_size: u32,
    /// Number of ring blocks.
    pub block_count: u32,
    /// Nominal frame size (`tp_frame_size`): a multiple of 16 dividing `block_size`.
    pub frame_size: u32,
    /// A block that is not full is handed over after this long (whole milliseconds, at least 1).
    pub block_timeout: Duration,
    /// Put the interface in promiscuous mode for as long as the socket is open (membership
    /// based: undone by the kernel when the socket closes, even on a crash).
    pub promiscuous: bool,
    /// Do not capture frames this host sends on the interface (`PACKET_IGNORE_OUTGOING`).
    pub ignore_outgoing: bool,
}

impl AfPacketConfig {
    /// Defaults for `interface`: 16 blocks of 4 MiB, 10 ms block timeout, promiscuous, no fanout,
    /// outgoing frames captured too.
    pub fn new(interface: impl Into<String>) -> Self {
        AfPacketConfig {
            interface: interface.into(),
            fanout: None,
            block_size: DEFAULT_BLOCK_SIZE,
            block_count: DEFAULT_BLOCK_COUNT,
            frame_size: DEFAULT_FRAME_SIZE,
            block_timeout: DEFAULT_BLOCK_TIMEOUT,
            promiscuous: true,
            ignore_outgoing: false,
        }
    }

    /// Memory the ring takes (block size × block count).
    pub fn ring_bytes(&self) -> u64 {
        u64::from(self.block_size) * u64::from(self.block_count)
    }

    /// Checks the settings; returns the reason of the first problem.
    fn validate(&self) -> Result<(), String> {
        let name = self.interface.as_bytes();
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(format!(
                "interface name must be 1 to {} bytes long",
                libc::IFNAMSIZ - 1
            ));
        }
        if name
            .iter()
            .any(|&b| b == 0 || b == b'/' || b.is_ascii_whitespace())
        {
            return Err("interface name contains a NUL, '/' or whitespace".into());
        }
        let page = page_size();
        if self.block_size == 0 || u64::from(self.block_size).checked_rem(page) != Some(0) {
            return Err(format!(
                "block size {} is not a positive multiple of the page size {page}",
                self.block_size
            ));
        }
        if self.frame_size < 64 || self.frame_size & 15 != 0 {
            return Err(format!(
                "frame size {} is not a multiple of 16 of at least 64",
                self.frame_size
            ));
        }
        if self.frame_size > self.block_size
            || self.block_size.checked_rem(self.frame_size) != Some(0)
        {
            return Err(format!(
                "frame size {} does not divide block size {}",
                self.frame_size, self.block_size
            ));
        }
        if self.block_count == 0 {
            return Err("block count must be at least 1".into());
        }
        if self.ring_bytes() > MAX_RING_BYTES {
            return Err(format!(
                "ring of {} bytes exceeds the maximum {MAX_RING_BYTES}",
                self.ring_bytes()
            ));
        }
        let frames = u64::from(self.block_size / self.frame_size) * u64::from(self.block_count);
        if u32::try_from(frames).is_err() {
            return Err("too many frames in the ring".into());
        }
        let ms = self.block_timeout.as_millis();
        if ms == 0 || ms > u128::from(u32::MAX) {
            return Err("block timeout must be a whole number of milliseconds, at least 1".into());
        }
        Ok(())
    }
}

/// The kernel's counters for one socket, accumulated since it was opened
/// (`PACKET_STATISTICS` resets the kernel's copy at every read).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AfPacketKernelStats {
    /// Frames that reached the socket (`tp_packets`; includes the dropped ones).
    pub packets: u64,
    /// Frames dropped because the ring was full (`tp_drops`).
    pub drops: u64,
    /// Times the ring was frozen because every block was owned by user space
    /// (`tp_freeze_q_cnt`).
    pub freeze_q_count: u64,
}

/// A live capture on one interface through a `TPACKET_V3` ring, optionally one member of a
/// fanout group. See the [module documentation](self).
pub struct AfPacketSource {
    // Field order is drop order: the ring is unmapped before the socket closes (which also
    // drops the promiscuous and fanout memberships).
    ring: Mapping,
    fd: OwnedFd,
    block_size: usize,
    block_count: usize,
    interface: String,
    ifindex: u32,
    /// Block the cursor is in.
    block: usize,
    /// The current block is handed over and partly lent.
    in_block: bool,
    /// Frames of the current block not yet lent.
    left: u32,
    /// Offset of the next frame header within the current block.
    offset: usize,
    /// Holds a frame whose VLAN tag is re-inserted.
    scratch: Vec<u8>,
    stats: CaptureStats,
    kernel: AfPacketKernelStats,
    /// An error met by [`Capture::wait`], returned by the next poll.
    pending: Option<CaptureError>,
}

/// `setsockopt(SOL_PACKET, opt, val)`.
fn set_packet_option<T: crate::sys::Plain>(
    fd: &OwnedFd,
    opt: libc::c_int,
    val: &T,
) -> io::Result<()> {
    socket::set_option(fd.as_fd(), libc::SOL_PACKET, opt, val)
}

impl AfPacketSource {
    /// Opens a capture on `cfg.interface` in the calling thread's network namespace (the
    /// socket stays in that namespace whatever thread uses it later).
    pub fn open(cfg: &AfPacketConfig) -> Result<Self, CaptureError> {
        let interface = cfg.interface.clone();
        cfg.validate()
            .map_err(|reason| CaptureError::InvalidConfig {
                interface: interface.clone(),
                reason,
            })?;
        let sock_err = |op: &'static str, source: io::Error| {
            if matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                CaptureError::PermissionDenied {
                    interface: cfg.interface.clone(),
                }
            } else {
                CaptureError::Socket {
                    interface: cfg.interface.clone(),
                    op,
                    source,
                }
            }
        };
        let ifindex = netdev::ifindex(&cfg.interface).map_err(|e| match e.raw_os_error() {
            Some(libc::ENODEV | libc::ENXIO) | None => CaptureError::NoSuchInterface {
                interface: interface.clone(),
            },
            _ => sock_err("if_nametoindex", e),
        })?;

        // Protocol 0: no frame is queued before the ring exists and the socket is bound.
        let fd = socket::packet_socket().map_err(|e| sock_err("socket(AF_PACKET)", e))?;

        let hw_type = netdev::hw_type(fd.as_fd(), &cfg.interface)
            .map_err(|e| sock_err("ioctl(SIOCGIFHWADDR)", e))?;
        if hw_type != ARPHRD_ETHER && hw_type != ARPHRD_LOOPBACK {
            return Err(CaptureError::UnsupportedHardware { interface, hw_type });
        }
        if !netdev::is_up(fd.as_fd(), &cfg.interface)
            .map_err(|e| sock_err("ioctl(SIOCGIFFLAGS)", e))?
        {
            return Err(CaptureError::InterfaceDown { interface });
        }

        let version = libc::tpacket_versions::TPACKET_V3 as libc::c_int;
        set_packet_option(&fd, libc::PACKET_VERSION, &version)
            .map_err(|e| sock_err("setsockopt(PACKET_VERSION)", e))?;
        if cfg.ignore_outgoing {
            let one: libc::c_int = 1;
            set_packet_option(&fd, libc::PACKET_IGNORE_OUTGOING, &one)
                .map_err(|e| sock_err("setsockopt(PACKET_IGNORE_OUTGOING)", e))?;
        }
        let timeout_ms = u32::try_from(cfg.block_timeout.as_millis()).unwrap_or(u32::MAX);
        let req = libc::tpacket_req3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.block_count,
            tp_frame_size: cfg.frame_size,
            tp_frame_nr: (cfg.block_size / cfg.frame_size) * cfg.block_count,
            tp_retire_blk_tov: timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_packet_option(&fd, libc::PACKET_RX_RING, &req)
            .map_err(|e| sock_err("setsockopt(PACKET_RX_RING)", e))?;

        let block_size = cfg.block_size as usize;
        let block_count = cfg.block_count as usize;
        let ring = Mapping::shared(fd.as_fd(), block_size * block_count)
            .map_err(|e| sock_err("mmap(ring)", e))?;
        // From here on Drop unmaps the ring and closes the socket on any error.
        let src = AfPacketSource {
            ring,
            fd,
            block_size,
            block_count,
            interface,
            ifindex,
            block: 0,
            in_block: false,
            left: 0,
            offset: 0,
            scratch: Vec::with_capacity(2048),
            stats: CaptureStats::default(),
            kernel: AfPacketKernelStats::default(),
            pending: None,
        };

        if let Err(e) = socket::bind_packet(src.fd.as_fd(), ifindex) {
            return Err(match e.raw_os_error() {
                Some(libc::ENETDOWN) => CaptureError::InterfaceDown {
                    interface: src.interface.clone(),
                },
                Some(libc::ENODEV) => CaptureError::NoSuchInterface {
                    interface: src.interface.clone(),
                },
                _ => sock_err("bind", e),
            });
        }
        if cfg.promiscuous {
            socket::add_promisc_membership(src.fd.as_fd(), ifindex)
                .map_err(|e| sock_err("setsockopt(PACKET_ADD_MEMBERSHIP promisc)", e))?;
        }
        if let Some(fanout) = cfg.fanout {
            let arg: u32 = fanout.raw();
            set_packet_option(&src.fd, libc::PACKET_FANOUT, &arg)
                .map_err(|e| sock_err("setsockopt(PACKET_FANOUT)", e))?;
        }
        Ok(src)
    }

    /// The interface captured.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface's index (in the namespace the source was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Link-layer framing of the frames lent: always Ethernet.
    pub fn link_type(&self) -> LinkType {
        LinkType::Ethernet
    }

    /// Whether a block is ready, i.e. the next [`poll`](Capture::poll) lends frames.
    pub fn ready(&self) -> bool {
        self.in_block || self.block_status(self.block) & libc::TP_STATUS_USER != 0
    }

    /// Sleeps until a block is ready or `timeout` passes (`poll(2)`); returns whether a block
    /// is ready. Returns at once when one already is. A signal ends the wait early (`Ok`).
    ///
    /// Reports [`CaptureError::InterfaceDown`] once when the interface went down since the last
    /// call; the socket stays usable and capture resumes when the interface comes back up.
    /// ([`Capture::wait`] does the same and keeps such an error for the next `poll`.)
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<bool, CaptureError> {
        if self.ready() {
            return Ok(true);
        }
        let mut pfd = [socket::PollFd::new(
            self.fd.as_fd(),
            libc::POLLIN | libc::POLLRDNORM,
        )];
        // Rounded up to whole milliseconds.
        match socket::poll(&mut pfd, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(self.ready()),
            Err(e) => return Err(self.socket_error("poll", e)),
        }
        if pfd[0].revents() & libc::POLLERR != 0 {
            if let Some(e) = self.take_socket_error() {
                return Err(self.socket_error("capture socket", e));
            }
        }
        Ok(self.ready())
    }

    /// The kernel's counters for this socket, accumulated since open.
    pub fn kernel_stats(&mut self) -> AfPacketKernelStats {
        self.refresh_kernel_stats();
        self.kernel
    }

    fn socket_error(&self, op: &'static str, source: io::Error) -> CaptureError {
        match source.raw_os_error() {
            Some(libc::ENETDOWN) => CaptureError::InterfaceDown {
                interface: self.interface.clone(),
            },
            Some(libc::ENODEV) => CaptureError::NoSuchInterface {
                interface: self.interface.clone(),
            },
            _ => CaptureError::Socket {
                interface: self.interface.clone(),
                op,
                source,
            },
        }
    }

    /// Reads and clears the socket's pending error (SO_ERROR).
    fn take_socket_error(&self) -> Option<io::Error> {
        socket::take_error(self.fd.as_fd()).unwrap_or_else(Some)
    }

    fn refresh_kernel_stats(&mut self) {
        let st = socket::get_option::<libc::tpacket_stats_v3>(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
        );
        if let Ok(st) = st {
            // The read reset the kernel's counters: accumulate.
            self.kernel.packets += u64::from(st.tp_packets);
            self.kernel.drops += u64::from(st.tp_drops);
            self.kernel.freeze_q_count += u64::from(st.tp_freeze_q_cnt);
        }
    }

    /// Offset of block `i` (< block_count) in the ring.
    fn block_offset(&self, i: usize) -> usize {
        i * self.block_size
    }

    /// The kernel-shared status word of block `i`, read with acquire ordering so that the
    /// frames the kernel wrote before handing the block over are visible. A word outside the
    /// ring (never: `i` < block_count) reads as owned by the kernel.
    fn block_status(&self, i: usize) -> u32 {
        self.status_word(i)
            .map_or(libc::TP_STATUS_KERNEL, |w| w.load(Ordering::Acquire))
    }

    /// The status word of block `i`: it sits in the block descriptor at the start of every
    /// block (page aligned, so the u32 is aligned) and is shared with the kernel, which is why
    /// it is only accessed atomically.
    fn status_word(&self, i: usize) -> Option<&AtomicU32> {
        let off = std::mem::offset_of!(libc::tpacket_block_desc, hdr)
            + std::mem::offset_of!(libc::tpacket_hdr_v1, block_status);
        self.ring.atomic_u32(self.block_offset(i) + off)
    }

    /// Reads a `u32` field of the block descriptor of block `i` at `off` (0 if outside the
    /// ring). The block is owned by user space (checked by the caller), so the kernel does not
    /// write it concurrently.
    fn block_u32(&self, i: usize, off: usize) -> u32 {
        self.ring
            .read_volatile_u32(self.block_offset(i) + off)
            .unwrap_or(0)
    }

    /// Gives the current block back to the kernel and moves to the next one.
    fn release_block(&mut self) {
        if let Some(w) = self.status_word(self.block) {
            w.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.block = (self.block + 1) % self.block_count;
        self.in_block = false;
        self.left = 0;
        self.offset = 0;
    }
}

impl Capture for AfPacketSource {
    /// Lends up to `budget` frames from the blocks the kernel handed over; [`Poll::Idle`] when
    /// none is ready (never blocks; see [`AfPacketSource::wait_ready`]). Never returns [`Poll::End`].
    fn poll<F: FnMut(&Frame<'_>)>(
        &mut self,
        budget: usize,
        mut f: F,
    ) -> Result<Poll, CaptureError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let hdr_len = size_of::<libc::tpacket3_hdr>();
        let bsz = self.block_size;
        let mut n = 0usize;
        while n < budget {
            if !self.in_block {
                if self.block_status(self.block) & libc::TP_STATUS_USER == 0 {
                    break;
                }
                let bh1 = std::mem::offset_of!(libc::tpacket_block_desc, hdr);
                let num = self.block_u32(
                    self.block,
                    bh1 + std::mem::offset_of!(libc::tpacket_hdr_v1, num_pkts),
                );
                let first = self.block_u32(
                    self.block,
                    bh1 + std::mem::offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt),
                ) as usize;
                self.in_block = true;
                self.left = num;
                self.offset = first;
            }
            let base = self.block_offset(self.block);
            while n < budget && self.left > 0 {
                let at = self.offset;
                // The header and then the frame must lie inside this block, which user space
                // owns until it is released (after every frame has been lent and `f` has
                // returned; no slice outlives this iteration).
                let h = match at.checked_add(hdr_len) {
                    Some(end) if end <= bsz => self.ring.read::<libc::tpacket3_hdr>(base + at),
                    _ => None,
                };
                let Some(h) = h else {
                    self.stats.invalid_descs += 1;
                    self.left = 0;
                    break;
                };
                let mac = at + usize::from(h.tp_mac);
                let snap = h.tp_snaplen as usize;
                let data = match mac.checked_add(snap) {
                    Some(end) if end <= bsz => self.ring.bytes(base + mac, snap),
                    _ => None,
                };
                let Some(data) = data else {
                    self.stats.invalid_descs += 1;
                    self.left = 0;
                    break;
                };
                let ts_nanos = u64::from(h.tp_sec) * 1_000_000_000 + u64::from(h.tp_nsec);
                let mut wire_len = h.tp_len;
                let data: &[u8] = if h.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && snap >= 12 {
                    let tpid = if h.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0
                        && h.hv1.tp_vlan_tpid != 0
                    {
                        h.hv1.tp_vlan_tpid
                    } else {
                        TPID_8021Q
                    };
                    let tci = (h.hv1.tp_vlan_tci & 0xffff) as u16;
                    self.scratch.clear();
                    self.scratch
                        .extend_from_slice(data.get(..12).unwrap_or_default());
                    self.scratch.extend_from_slice(&tpid.to_be_bytes());
                    self.scratch.extend_from_slice(&tci.to_be_bytes());
                    self.scratch
                        .extend_from_slice(data.get(12..).unwrap_or_default());
                    wire_len = wire_len.saturating_add(4);
                    &self.scratch
                } else {
                    data
                };
                f(&Frame {
                    data,
                    ts_nanos,
                    wire_len,
                    link: LinkType::Ethernet,
                });
                n += 1;
                self.stats.received += 1;
                self.stats.bytes += u64::from(wire_len);
                self.left -= 1;
                if self.left > 0 {
                    let next = h.tp_next_offset as usize;
                    if next == 0 {
                        self.stats.invalid_descs += 1;
                        self.left = 0;
                        break;
                    }
                    self.offset = at.saturating_add(next);
                }
            }
            if self.left == 0 {
                self.release_block();
            }
        }
        Ok(if n == 0 { Poll::Idle } else { Poll::Frames(n) })
    }

    /// Frames and bytes lent, with the kernel's drop count (`PACKET_STATISTICS`, one system
    /// call: call it once per tick, not per frame).
    fn stats(&mut self) -> CaptureStats {
        self.refresh_kernel_stats();
        self.stats.kernel_drops = self.kernel.drops;
        self.stats
    }

    /// Sleeps in `poll(2)` until a block is ready or `timeout` passes. An error (the interface
    /// went down) is returned by the next [`poll`](Capture::poll).
    fn wait(&mut self, timeout: Duration) {
        if let Err(e) = self.wait_ready(timeout) {
            self.pending = Some(e);
        }
    }
}

impl fmt::Debug for AfPacketSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfPacketSource")
            .field("interface", &self.interface)
            .field("ifindex", &self.ifindex)
            .field("block_size", &self.block_size)
            .field("block_count", &self.block_count)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_modest() {
        let c = AfPacketConfig::new("eth0");
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.ring_bytes(), 64 << 20);
    }

    #[test]
    fn bad_configs_are_rejected_with_reasons() {
        let base = AfPacketConfig::new("eth0");
        let cases = [
            AfPacketConfig {
                interface: String::new(),
                ..base.clone()
            },
            AfPacketConfig {
                interface: "a-very-long-interface-name".into(),
                ..base.clone()
            },
            AfPacketConfig {
                interface: "eth/0".into(),
                ..base.clone()
            },
            AfPacketConfig {
                block_size: 4097,
                ..base.clone()
            },
            AfPacketConfig {
                frame_size: 1000,
                ..base.clone()
            },
            AfPacketConfig {
                frame_size: 3 * 1024,
                ..base.clone()
            },
            AfPacketConfig {
                block_count: 0,
                ..base.clone()
            },
            AfPacketConfig {
                block_count: 1024,
                ..base.clone()
            },
            AfPacketConfig {
                block_timeout: Duration::from_micros(500),
                ..base.clone()
            },
        ];
        for c in cases {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn fanout_argument_layout() {
        assert_eq!(Fanout::hash(7).raw(), 7);
        assert_eq!(Fanout::cpu(1).raw(), 1 | (2 << 16));
        let d = Fanout {
            defrag: true,
            ..Fanout::hash(0x1234)
        };
        assert_eq!(d.raw(), 0x1234 | (0x8000 << 16));
    }

    #[test]
    fn unknown_interface_is_reported_by_name() {
        let e = AfPacketSource::open(&AfPacketConfig::new("sw-nonexist0")).unwrap_err();
        assert!(
            matches!(e, CaptureError::NoSuchInterface { .. }),
            "{e:?}: {e}"
        );
        assert_eq!(e.to_string(), "sw-nonexist0: no such network interface");
    }
}
