//! Capture sources: everything that produces frames. Each source lends its frames, one at a
//! time, to a closure; nothing downstream ever owns a copy of a frame.
//!
//! All of this is safe Rust. The system calls of the live sources (sockets, ioctls, ring and
//! UMEM mappings, `bpf(2)`) are made through [`crate::sys`]; what stays here is the ring
//! protocols (who owns which block or chunk, when it goes back to the kernel), the policy
//! (fallbacks, retries, what an errno means to an operator) and the pure parts, such as the
//! XDP program's instructions ([`xdp_prog`], assembled and tested without a kernel; loaded by
//! [`xdp_load`]).

pub mod afpacket;
pub mod afxdp;
pub mod pcap;
pub mod xdp_load;
pub mod xdp_prog;

use std::path::PathBuf;

use surgewatch_pipeline::LinkType;

/// One frame lent by a capture source for the duration of a callback.
#[derive(Copy, Clone, Debug)]
pub struct Frame<'a> {
    /// The captured bytes (possibly shorter than `wire_len` when the snaplen cut the frame).
    pub data: &'a [u8],
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_nanos: u64,
    /// Length of the frame on the wire (pcap `orig_len`).
    pub wire_len: u32,
    /// Link-layer framing of `data`.
    pub link: LinkType,
}

/// What a call to [`Capture::poll`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// This many frames were lent to the closure (at least one).
    Frames(usize),
    /// Nothing available right now (live sources); call again.
    Idle,
    /// The source is exhausted (end of file); further calls keep returning `End`.
    End,
}

/// Errors a capture source reports. Frames lent before an error stay valid and counted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Not a pcap or pcapng file (bad magic), or an empty file.
    #[error("{path}: not a pcap or pcapng file: {reason}")]
    NotACapture {
        /// File concerned.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The file ends in the middle of a record or block: frames before `offset` were read.
    #[error("{path}: truncated at byte offset {offset}: {reason}")]
    Truncated {
        /// File concerned.
        path: PathBuf,
        /// Byte offset of the first record that could not be read whole.
        offset: u64,
        /// What was cut.
        reason: String,
    },
    /// A record or block is malformed: frames before `offset` were read.
    #[error("{path}: corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// File concerned.
        path: PathBuf,
        /// Byte offset of the bad record or block.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The capture uses a link type surgewatch cannot parse.
    #[error("{path}: unsupported link type {linktype}")]
    UnsupportedLinkType {
        /// File concerned.
        path: PathBuf,
        /// The LINKTYPE_* number.
        linktype: u32,
    },
    /// A live source was asked for an interface that does not exist (in this network namespace).
    #[error("{interface}: no such network interface")]
    NoSuchInterface {
        /// Interface name as given.
        interface: String,
    },
    /// Opening a live source was refused (EPERM / EACCES).
    #[error("{interface}: permission denied: capture needs CAP_NET_RAW (run as root)")]
    PermissionDenied {
        /// Interface name as given.
        interface: String,
    },
    /// The interface is administratively down (or went down while capturing).
    #[error("{interface}: interface is down (bring it up: ip link set {interface} up)")]
    InterfaceDown {
        /// Interface name as given.
        interface: String,
    },
    /// The interface is not of a hardware type surgewatch can capture (not Ethernet).
    #[error("{interface}: unsupported hardware type {hw_type} (ARPHRD_*): only Ethernet interfaces can be captured")]
    UnsupportedHardware {
        /// Interface name as given.
        interface: String,
        /// The ARPHRD_* number the kernel reports.
        hw_type: u16,
    },
    /// A live source's settings are unusable (ring geometry, names).
    #[error("{interface}: invalid capture settings: {reason}")]
    InvalidConfig {
        /// Interface name as given.
        interface: String,
        /// What is wrong.
        reason: String,
    },
    /// A socket operation of a live source failed.
    #[error("{interface}: {op}: {source}")]
    Socket {
        /// Interface name as given.
        interface: String,
        /// The operation, e.g. "setsockopt(PACKET_RX_RING)".
        op: &'static str,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// AF_XDP / eBPF setup was refused for lack of privileges.
    #[error("{interface}: needs {caps} (run as root)")]
    NeedsCapabilities {
        /// Interface name as given.
        interface: String,
        /// The capabilities needed, e.g. "CAP_NET_ADMIN and CAP_BPF".
        caps: &'static str,
    },
    /// The interface has no such receive queue.
    #[error("{interface}: no rx queue {queue}")]
    NoSuchQueue {
        /// Interface name as given.
        interface: String,
        /// Queue index asked for.
        queue: u32,
    },
    /// Another AF_XDP socket holds the queue (binding kept failing with EBUSY).
    #[error("queue {queue} of {interface} busy (another AF_XDP socket is bound)")]
    QueueBusy {
        /// Interface name as given.
        interface: String,
        /// Queue index.
        queue: u32,
    },
    /// The UMEM could not be locked in memory.
    #[error("{interface}: RLIMIT_MEMLOCK too low: {needed} bytes needed, limit {limit} (raise it with ulimit -l, or run as root)")]
    MemlockTooLow {
        /// Interface name as given.
        interface: String,
        /// Bytes of UMEM to lock.
        needed: u64,
        /// The soft limit in force.
        limit: u64,
    },
    /// Another XDP program is attached to the interface.
    #[error("{interface}: another XDP program is attached (see ip -d link show dev {interface})")]
    XdpProgramPresent {
        /// Interface name as given.
        interface: String,
    },
    /// The kernel refused the XDP program.
    #[error("{interface}: XDP program rejected: {reason}")]
    XdpProgramRejected {
        /// Interface name as given.
        interface: String,
        /// The verifier's last log line, or the errno.
        reason: String,
    },
}

/// Index of interface `ifname` in the calling thread's network namespace; an unknown name,
/// or one the kernel could not hold, is [`CaptureError::NoSuchInterface`].
pub(crate) fn ifindex(ifname: &str) -> Result<u32, CaptureError> {
    crate::sys::netdev::ifindex(ifname).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV | libc::ENXIO) => CaptureError::NoSuchInterface {
            interface: ifname.to_owned(),
        },
        _ => CaptureError::Socket {
            interface: ifname.to_owned(),
            op: "if_nametoindex",
            source: e,
        },
    })
}

/// Counters of a capture source, as the kernel and the source see them. Monotonic since the
/// source was opened.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames lent to the caller.
    pub received: u64,
    /// Bytes (wire length) of those frames.
    pub bytes: u64,
    /// Frames the kernel dropped for this socket (AF_XDP `rx_dropped`, AF_PACKET `tp_drops`).
    pub kernel_drops: u64,
    /// AF_XDP: frames dropped because the RX ring was full (`rx_ring_full`).
    pub rx_ring_full: u64,
    /// AF_XDP: times the fill ring was empty (`rx_fill_ring_empty_descs`).
    pub fill_ring_empty: u64,
    /// AF_XDP: invalid descriptors (`rx_invalid_descs`).
    pub invalid_descs: u64,
    /// AF_XDP: busy polling was asked for, but the kernel gave the socket no NAPI context to
    /// poll (copy mode on Linux 6.13 and later, or a driver that does not map its queues to
    /// NAPI contexts), so the worker spins on its rings instead. Known once frames arrived.
    pub busy_poll_without_napi: bool,
}

impl CaptureStats {
    /// The counters of two sources one after the other (a worker whose source was replaced).
    pub fn plus(&self, o: &CaptureStats) -> CaptureStats {
        CaptureStats {
            received: self.received.saturating_add(o.received),
            bytes: self.bytes.saturating_add(o.bytes),
            kernel_drops: self.kernel_drops.saturating_add(o.kernel_drops),
            rx_ring_full: self.rx_ring_full.saturating_add(o.rx_ring_full),
            fill_ring_empty: self.fill_ring_empty.saturating_add(o.fill_ring_empty),
            invalid_descs: self.invalid_descs.saturating_add(o.invalid_descs),
            busy_poll_without_napi: self.busy_poll_without_napi || o.busy_poll_without_napi,
        }
    }
}

/// A source of frames: pcap/pcapng files, AF_XDP and AF_PACKET rings.
pub trait Capture {
    /// Lends up to `budget` frames to `f`, in capture order, and says what happened.
    fn poll<F: FnMut(&Frame<'_>)>(&mut self, budget: usize, f: F) -> Result<Poll, CaptureError>;

    /// Bytes consumed so far and the total size, when known (for progress display).
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }

    /// Counters so far (live sources read the kernel's statistics here; cheap enough to call
    /// once per tick, not per frame).
    fn stats(&mut self) -> CaptureStats {
        CaptureStats::default()
    }

    /// Blocks until frames may be ready or `timeout` passes (live sources wait on their
    /// socket; the default just sleeps a little). Called after [`Poll::Idle`].
    fn wait(&mut self, timeout: std::time::Duration) {
        std::thread::sleep(timeout.min(std::time::Duration::from_millis(1)));
    }
}
