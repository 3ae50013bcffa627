//! Opening live capture on an interface: AF_XDP (one socket per RX queue, sharing one XDP
//! program), AF_PACKET (one TPACKET_V3 socket per worker in a flow-hash fanout group), or AF_XDP
//! with a fallback to AF_PACKET, and pinning each worker to a core.

use std::os::fd::AsFd;
use std::time::Duration;

use crate::capture::afpacket::{AfPacketConfig, AfPacketSource, Fanout};
use crate::capture::afxdp::{self, rx_queues, AfXdpConfig, AfXdpSource, XdpMode};
use crate::capture::xdp_prog::XdpFallback;
use crate::capture::{Capture, CaptureError, CaptureStats, Frame, Poll};
use crate::live::WorkerSpec;
use crate::sys::socket;

/// Which capture method to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// AF_XDP, else AF_PACKET (saying why).
    Auto,
    /// AF_XDP only.
    AfXdp,
    /// AF_PACKET only.
    AfPacket,
}

/// One worker's source.
#[derive(Debug)]
pub enum LiveSource {
    /// An AF_XDP socket on one queue.
    Xdp(Box<AfXdpSource>),
    /// An AF_PACKET socket in a fanout group.
    Packet(Box<AfPacketSource>),
}

impl Capture for LiveSource {
    fn poll<F: FnMut(&Frame<'_>)>(&mut self, budget: usize, f: F) -> Result<Poll, CaptureError> {
        match self {
            LiveSource::Xdp(s) => s.poll(budget, f),
            LiveSource::Packet(s) => s.poll(budget, f),
        }
    }

    fn stats(&mut self) -> CaptureStats {
        match self {
            LiveSource::Xdp(s) => s.stats(),
            LiveSource::Packet(s) => s.stats(),
        }
    }

    fn wait(&mut self, timeout: Duration) {
        match self {
            LiveSource::Xdp(s) => Capture::wait(s.as_mut(), timeout),
            LiveSource::Packet(s) => Capture::wait(s.as_mut(), timeout),
        }
    }
}

/// Settings for [`open`].
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Interface to capture.
    pub interface: String,
    /// Capture method.
    pub method: Method,
    /// Queues to capture (empty: all).
    pub queues: Vec<u32>,
    /// Cores to pin workers to, in order, cycled (empty: worker `i` on core `i mod ncores`).
    pub cores: Vec<usize>,
    /// Promiscuous mode while capturing.
    pub promiscuous: bool,
    /// XDP action for queues without a socket.
    pub xdp_fallback: XdpFallback,
    /// AF_PACKET ring size per socket as (block bytes, block count); `None`: the default
    /// (16 × 4 MiB, for a busy mirror port). The host agent uses a small ring.
    pub packet_ring: Option<(u32, u32)>,
    /// AF_XDP busy polling: how long one poll may spin in the queue's NAPI context
    /// (`None`: off; the workers sleep when idle).
    pub busy_poll: Option<Duration>,
    /// AF_XDP UMEM frames per queue (`None`: the default); the rings get half as many.
    pub xdp_frames: Option<u32>,
}

/// Promiscuous mode held through a `PACKET_MR_PROMISC` membership on an otherwise idle packet
/// socket (protocol 0: it receives nothing). The kernel counts memberships and drops this one
/// when the socket closes, so the interface's previous mode comes back on exit, even after
/// `kill -9`.
#[derive(Debug)]
pub struct PromiscGuard {
    _fd: std::os::fd::OwnedFd,
}

impl PromiscGuard {
    /// Puts `interface` in promiscuous mode for the guard's lifetime.
    pub fn new(interface: &str) -> Result<Self, CaptureError> {
        let sock_err = |op: &'static str, source| CaptureError::Socket {
            interface: interface.to_owned(),
            op,
            source,
        };
        let ifindex =
            crate::sys::netdev::ifindex(interface).map_err(|_| CaptureError::NoSuchInterface {
                interface: interface.to_owned(),
            })?;
        let fd = socket::packet_socket().map_err(|e| sock_err("socket(AF_PACKET)", e))?;
        socket::add_promisc_membership(fd.as_fd(), ifindex)
            .map_err(|e| sock_err("PACKET_ADD_MEMBERSHIP (promiscuous)", e))?;
        Ok(PromiscGuard { _fd: fd })
    }
}

/// The workers of an interface and a one-line description of how it is captured.
pub struct Opened {
    /// One per worker.
    pub workers: Vec<WorkerSpec<LiveSource>>,
    /// E.g. `eth0: af_xdp, copy mode, XDP in driver mode, queues 0-3`.
    pub description: String,
    /// `"af_xdp"` or `"af_packet"`.
    pub method: &'static str,
    /// For AF_XDP: `"zero_copy"` or `"copy"`.
    pub xdp_mode: Option<&'static str>,
    /// Holds promiscuous mode for AF_XDP (AF_PACKET sockets hold their own membership).
    pub promisc: Option<PromiscGuard>,
}

/// The core worker `i` is pinned to: from the configured list, else from the cores this
/// process may run on (never outside a `taskset` or cpuset the operator gave it).
fn core_for(cores: &[usize], allowed: Option<&[usize]>, i: usize) -> Option<usize> {
    let from = if cores.is_empty() {
        allowed.unwrap_or(&[])
    } else {
        cores
    };
    if from.is_empty() {
        return None;
    }
    from.get(i % from.len()).copied()
}

/// Errors that the other method would meet just the same: no fallback for these.
fn is_final(e: &CaptureError) -> bool {
    matches!(
        e,
        CaptureError::NoSuchInterface { .. }
            | CaptureError::InterfaceDown { .. }
            | CaptureError::NoSuchQueue { .. }
    )
}

/// Opens live capture on an interface. With [`Method::Auto`], AF_XDP failures other than a
/// missing or down interface fall back to AF_PACKET; `warn` receives the reason.
pub fn open(opts: &LiveOptions, warn: &mut dyn FnMut(String)) -> Result<Opened, CaptureError> {
    let queues = if opts.queues.is_empty() {
        rx_queues(&opts.interface)?
    } else {
        opts.queues.clone()
    };
    let busy_ignored = |warn: &mut dyn FnMut(String)| {
        if opts.busy_poll.is_some() {
            warn("busy polling applies to AF_XDP only: not used with AF_PACKET".to_owned());
        }
    };
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    if opts.busy_poll.is_some() && opts.method != Method::AfPacket && queues.len() >= online {
        warn(format!(
            "busy polling keeps each of the {} workers' cores 100 % busy, and this machine has \
             {online}: nothing is left for the kernel's receive work and the tick merge",
            queues.len()
        ));
    }
    match opts.method {
        Method::AfXdp => open_xdp(opts, &queues, warn, true),
        Method::AfPacket => {
            busy_ignored(warn);
            open_packet(opts, queues.len().max(1))
        }
        Method::Auto => match open_xdp(opts, &queues, warn, false) {
            Ok(o) => Ok(o),
            Err(e) if is_final(&e) => Err(e),
            Err(e) => {
                warn(format!(
                    "AF_XDP unavailable ({e}); falling back to AF_PACKET"
                ));
                busy_ignored(warn);
                open_packet(opts, queues.len().max(1))
            }
        },
    }
}

/// Opens AF_XDP. Chunks are sized to the interface's frames where 4096 bytes suffice; beyond
/// that (jumbo MTUs) the sockets are multi-buffer. When the kernel or driver cannot do
/// multi-buffer, `lossy_ok` decides: go on without it (frames longer than a chunk are then
/// dropped by the kernel, as a warning says) or return the error (`auto` then uses AF_PACKET).
fn open_xdp(
    opts: &LiveOptions,
    queues: &[u32],
    warn: &mut dyn FnMut(String),
    lossy_ok: bool,
) -> Result<Opened, CaptureError> {
    let defaults = AfXdpConfig::default();
    let mtu = afxdp::interface_mtu(&opts.interface);
    let longest = mtu.map(afxdp::longest_frame);
    let frame_size = longest.map_or(defaults.frame_size, afxdp::chunk_size_for);
    let multi_buffer = longest.is_some_and(|l| l > afxdp::max_copy_frame_len(frame_size));
    let mut cfg = AfXdpConfig {
        frame_size,
        multi_buffer,
        fallback: opts.xdp_fallback,
        busy_poll_us: opts.busy_poll.map_or(0, |d| {
            u32::try_from(d.as_micros()).unwrap_or(u32::MAX).max(1)
        }),
        frames_per_queue: opts.xdp_frames.unwrap_or(defaults.frames_per_queue),
        ring_size: opts
            .xdp_frames
            .map_or(defaults.ring_size, |n| (n / 2).max(1)),
        ..defaults
    };
    let src = match AfXdpSource::open_queues(&opts.interface, queues, &cfg) {
        Ok(src) => src,
        Err(e) if cfg.multi_buffer && lossy_ok => {
            cfg.multi_buffer = false;
            let src = AfXdpSource::open_queues(&opts.interface, queues, &cfg)?;
            warn(format!(
                "MTU {}: multi-buffer AF_XDP unavailable ({e}): frames over {} bytes are \
                 dropped by the kernel (counted in kernel_drops); --capture af_packet captures them",
                mtu.unwrap_or_default(),
                src.max_frame_len()
            ));
            src
        }
        Err(e) => return Err(e),
    };
    let mode = match src.mode() {
        XdpMode::ZeroCopy => "zero_copy",
        XdpMode::Copy => "copy",
    };
    let attach = src.attach_mode().as_str();
    let qs = src.queues();
    let description = format!(
        "{}: af_xdp, {} mode, XDP program in {} mode, queues {:?}, {} UMEM frames per queue{}{}{}",
        opts.interface,
        mode.replace('_', "-"),
        attach,
        qs,
        cfg.frames_per_queue,
        if cfg.frame_size == defaults.frame_size {
            String::new()
        } else {
            format!(" of {} bytes", cfg.frame_size)
        },
        if cfg.multi_buffer {
            ", multi-buffer"
        } else {
            ""
        },
        match opts.busy_poll {
            Some(d) => format!(", busy polling ({} us)", d.as_micros()),
            None => String::new(),
        }
    );
    let allowed = crate::live::allowed_cores();
    let workers = src
        .split()
        .into_iter()
        .zip(qs)
        .enumerate()
        .map(|(i, (s, q))| WorkerSpec {
            source: LiveSource::Xdp(Box::new(s)),
            name: format!("{}/q{q}", opts.interface),
            core: core_for(&opts.cores, allowed.as_deref(), i),
        })
        .collect();
    let promisc = if opts.promiscuous {
        Some(PromiscGuard::new(&opts.interface)?)
    } else {
        None
    };
    Ok(Opened {
        workers,
        description,
        method: "af_xdp",
        xdp_mode: Some(mode),
        promisc,
    })
}

fn open_packet(opts: &LiveOptions, n: usize) -> Result<Opened, CaptureError> {
    let group = (std::process::id() & 0xffff) as u16;
    let mut workers = Vec::with_capacity(n);
    let allowed = crate::live::allowed_cores();
    for i in 0..n {
        let mut cfg = AfPacketConfig::new(opts.interface.clone());
        cfg.promiscuous = opts.promiscuous;
        if let Some((block_size, block_count)) = opts.packet_ring {
            cfg.block_size = block_size;
            cfg.block_count = block_count;
        }
        if n > 1 {
            cfg.fanout = Some(Fanout::hash(group));
        }
        let src = AfPacketSource::open(&cfg)?;
        workers.push(WorkerSpec {
            source: LiveSource::Packet(Box::new(src)),
            name: format!("{}/w{i}", opts.interface),
            core: core_for(&opts.cores, allowed.as_deref(), i),
        });
    }
    let description = format!(
        "{}: af_packet TPACKET_V3, {n} worker(s){}",
        opts.interface,
        if n > 1 { ", flow-hash fanout" } else { "" }
    );
    Ok(Opened {
        workers,
        description,
        method: "af_packet",
        xdp_mode: None,
        promisc: None,
    })
}

#[cfg(test)]
mod tests {
    use super::core_for;

    #[test]
    fn workers_are_pinned_inside_the_allowed_cores() {
        // Configured cores win, cycled.
        assert_eq!(core_for(&[4, 6], Some(&[0, 1, 2]), 3), Some(6));
        // Otherwise the process's own cores: under `taskset -c 2,3` never 0 or 1.
        let allowed: &[usize] = &[2, 3];
        let got: Vec<_> = (0..3).map(|i| core_for(&[], Some(allowed), i)).collect();
        assert_eq!(got, vec![Some(2), Some(3), Some(2)]);
        // Unknown affinity and nothing configured: not pinned.
        assert_eq!(core_for(&[], None, 0), None);
    }
}
