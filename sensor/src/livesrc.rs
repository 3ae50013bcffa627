//! Opening live capture on an interface: AF_XDP (one socket per RX queue, sharing one XDP
//! program), AF_PACKET (one TPACKET_V3 socket per worker in a flow-hash fanout group), or AF_XDP
//! with a fallback to AF_PACKET, and pinning each worker to a core; and following the interface
//! while it is captured ([`LinkFollower`]): deleted, recreated, its MTU raised, another XDP
//! program attached.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use surgewatch_export::diag::{self, Diag};

use crate::capture::afpacket::{AfPacketConfig, AfPacketSource, Fanout};
use crate::capture::afxdp::{self, rx_queues, AfXdpConfig, AfXdpSource, XdpMode};
use crate::capture::xdp_prog::XdpFallback;
use crate::capture::{Capture, CaptureError, CaptureStats, Frame, Poll};
use crate::live::{Follow, Follower, LinkStats, WorkerSpec};
use crate::sys::netlink::{self, LinkEvent, LinkEvents, LinkInfo, Received};
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
    /// AF_XDP without multi-buffer: the longest frame its chunks hold (longer ones are dropped
    /// by the kernel). `None` for AF_PACKET and multi-buffer sockets.
    pub max_frame_len: Option<u32>,
}

impl LiveSource {
    /// Adds `other`'s queues to this source (AF_XDP sources of one program); otherwise gives
    /// `other` back.
    fn join(&mut self, other: LiveSource) -> Result<(), LiveSource> {
        match (self, other) {
            (LiveSource::Xdp(a), LiveSource::Xdp(b)) => {
                a.join(*b).map_err(|b| LiveSource::Xdp(Box::new(b)))
            }
            (_, other) => Err(other),
        }
    }
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
    let opened = match opts.method {
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
    }?;
    if opened.method == "af_packet" {
        if let Some(m) = netlink::link_by_name(&opts.interface)
            .ok()
            .flatten()
            .as_ref()
            .and_then(other_xdp_program)
        {
            warn(m);
        }
    }
    Ok(opened)
}

/// The warning for an AF_PACKET capture of an interface whose XDP hook holds a program (not
/// ours: AF_PACKET runs without one), if it does.
fn other_xdp_program(link: &LinkInfo) -> Option<String> {
    if !link.xdp_attached() {
        return None;
    }
    let mode = link.xdp.map_or("unknown", |h| h.as_str());
    let id = link
        .xdp_prog_id
        .map_or(String::new(), |id| format!(" (id {id})"));
    Some(format!(
        "another XDP program{id} is attached in {mode} mode and is redirecting traffic: \
         frames it redirects or drops never reach AF_PACKET, so this capture sees only part \
         of the traffic (see ip -d link show dev {})",
        link.name.as_deref().unwrap_or("IF")
    ))
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
    let max_frame_len = (!cfg.multi_buffer).then(|| src.max_frame_len());
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
        max_frame_len,
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
        max_frame_len: None,
    })
}

/// Opens capture again on an interface that came back (or whose sockets must be set up
/// again) for `n` workers, with the method that ran: AF_PACKET with `n` sockets, or AF_XDP
/// (with `auto`, falling back to AF_PACKET as at start), its queues shared out among the
/// workers.
fn reopen(
    opts: &LiveOptions,
    xdp: bool,
    n: usize,
    warn: &mut dyn FnMut(String),
) -> Result<Opened, CaptureError> {
    let n = n.max(1);
    if !xdp {
        return open_packet(opts, n);
    }
    let queues = if opts.queues.is_empty() {
        rx_queues(&opts.interface)?
    } else {
        opts.queues.clone()
    };
    let mut opened = match opts.method {
        Method::Auto => match open_xdp(opts, &queues, warn, false) {
            Ok(o) => o,
            Err(e) if is_final(&e) => return Err(e),
            Err(e) => {
                warn(format!(
                    "AF_XDP unavailable ({e}); falling back to AF_PACKET"
                ));
                return open_packet(opts, n);
            }
        },
        _ => open_xdp(opts, &queues, warn, true)?,
    };
    // More queues than workers: some workers read several.
    let mut workers = std::mem::take(&mut opened.workers);
    let extra = workers.split_off(n.min(workers.len()));
    for (i, w) in extra.into_iter().enumerate() {
        if let Some(to) = workers.get_mut(i % n) {
            // One open's sources share their program: joining cannot fail.
            let _ = to.source.join(w.source);
        }
    }
    opened.workers = workers;
    Ok(opened)
}

/// How often a lost interface is looked for besides its link events, and how often the state
/// is read again when link events cannot be had.
const LINK_RETRY: Duration = Duration::from_secs(1);
/// How long an interface must stay down before it is said: a deleted interface goes down
/// first, and then only its disappearance is worth a line.
const DOWN_GRACE: Duration = Duration::from_millis(500);

/// Where a [`LinkFollower`]'s capture stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum LinkState {
    /// Capturing interface `ifindex`.
    Attached,
    /// The interface disappeared: waiting for one of that name.
    Lost,
    /// The sockets were given back to be set up again (the MTU grew past the chunks).
    Resetup,
}

/// Follows the captured interface through its link events (`RTM_NEWLINK`/`RTM_DELLINK`) and
/// tells the live coordinator when the workers' sources must change ([`Follower`]):
///
/// - the interface is **deleted**: one warning ([`Diag::InterfaceLost`]), the sources are given
///   back and dropped, and the loss is counted; when an interface of that name exists again
///   and is up (a new index), capture is opened on it with the method that ran (AF_XDP or
///   AF_PACKET), the workers take the new sources ([`Diag::InterfaceBack`]) and the re-attach
///   is counted. Attempts that fail for another reason than the interface being absent or down
///   are warned about once per reason and retried every second.
/// - its **MTU grows** past what AF_XDP chunks hold (without multi-buffer): a warning with the
///   reason, and the sockets are set up again for the new MTU (larger chunks or multi-buffer).
/// - **another XDP program** is attached while AF_PACKET captures: a warning (once per program)
///   that it redirects traffic AF_PACKET then never sees.
/// - set **down** and up again: the sockets stay; each is said once (down only after half a
///   second: a deleted interface goes down first, and is then said only to have disappeared).
///
/// When link events cannot be had (no netlink), the interface is looked up every second.
pub struct LinkFollower {
    opts: LiveOptions,
    xdp: bool,
    /// The interface's workers: `first..first + workers` of the run.
    first: usize,
    workers: usize,
    events: Option<LinkEvents>,
    pending: std::collections::VecDeque<LinkEvent>,
    state: LinkState,
    ifindex: u32,
    mtu: Option<u32>,
    max_frame_len: Option<u32>,
    promisc: Option<PromiscGuard>,
    stats: LinkStats,
    next_check: Instant,
    last_error: Option<String>,
    warned_prog: Option<u32>,
    /// The interface went administratively down at this time (and is not up again).
    down_since: Option<Instant>,
    /// Its being down was said.
    said_down: bool,
}

impl std::fmt::Debug for LinkFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkFollower")
            .field("interface", &self.opts.interface)
            .field("state", &self.state)
            .field("ifindex", &self.ifindex)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl LinkFollower {
    /// Follows `opts.interface`, captured as `opened` says by its `workers` workers; takes the
    /// promiscuous-mode guard (renewed with each re-attach). Subscribe before opening
    /// capture, so that no event in between is missed.
    pub fn new(opts: &LiveOptions, opened: &mut Opened, events: Option<LinkEvents>) -> Self {
        let ifindex = crate::capture::ifindex(&opts.interface).unwrap_or(0);
        let link = netlink::link_by_name(&opts.interface).ok().flatten();
        LinkFollower {
            opts: opts.clone(),
            xdp: opened.method == "af_xdp",
            first: 0,
            workers: opened.workers.len(),
            events,
            pending: Default::default(),
            state: LinkState::Attached,
            ifindex,
            mtu: link
                .as_ref()
                .and_then(|l| l.mtu)
                .or_else(|| afxdp::interface_mtu(&opts.interface)),
            max_frame_len: opened.max_frame_len,
            promisc: opened.promisc.take(),
            stats: LinkStats::default(),
            next_check: Instant::now() + LINK_RETRY,
            last_error: None,
            warned_prog: link
                .as_ref()
                .filter(|l| l.xdp_attached())
                .map(|l| l.xdp_prog_id.unwrap_or(0)),
            down_since: None,
            said_down: false,
        }
    }

    /// The interface's workers start at worker `first` of the run (several interfaces in one
    /// run: the host agent); 0 by default.
    pub fn first_worker(mut self, first: usize) -> Self {
        self.first = first;
        self
    }

    /// The interface's workers.
    fn own_workers(&self) -> std::ops::Range<usize> {
        self.first..self.first + self.workers
    }

    /// Subscribes to link events; `None` (after a warning) when the kernel refuses.
    pub fn subscribe(interface: &str) -> Option<LinkEvents> {
        match LinkEvents::subscribe() {
            Ok(e) => Some(e),
            Err(e) => {
                warn(
                    interface,
                    format!(
                        "cannot follow link events ({e}): the interface is looked up every \
                         second instead"
                    ),
                );
                None
            }
        }
    }

    fn warn(&self, message: String) {
        warn(&self.opts.interface, message);
    }

    /// Reads the queued link events; when some were lost (or there is no event socket, once a
    /// second), the interface's state is read instead, as one event.
    fn read_events(&mut self) {
        let now = Instant::now();
        let resync = match self.events.as_mut() {
            Some(ev) => {
                let mut got = Vec::new();
                let r = ev.read(&mut got);
                self.pending.extend(got);
                !matches!(r, Ok(Received::Complete))
            }
            None => now >= self.next_check,
        };
        if resync {
            self.next_check = now + LINK_RETRY;
            match current_link(&self.opts.interface) {
                Some(link) => {
                    if self.state == LinkState::Attached && link.ifindex != self.ifindex {
                        self.pending
                            .push_back(LinkEvent::Del(LinkInfo::gone(self.ifindex)));
                    }
                    self.pending.push_back(LinkEvent::New(link));
                }
                None if self.state == LinkState::Attached => {
                    self.pending
                        .push_back(LinkEvent::Del(LinkInfo::gone(self.ifindex)));
                }
                None => {}
            }
        }
    }

    /// Opens capture again; on success the workers' new sources.
    fn attach(&mut self) -> Option<Follow<LiveSource>> {
        let name = self.opts.interface.clone();
        let ifindex = crate::capture::ifindex(&name).ok()?;
        let mut warned = Vec::new();
        let opened = reopen(&self.opts, self.xdp, self.workers, &mut |m| warned.push(m));
        for m in warned {
            self.warn(m);
        }
        let mut opened = match opened {
            Ok(o) => o,
            Err(e) => {
                self.next_check = Instant::now() + LINK_RETRY;
                let quiet = matches!(
                    e,
                    CaptureError::NoSuchInterface { .. } | CaptureError::InterfaceDown { .. }
                );
                let text = e.to_string();
                if !quiet && self.last_error.as_deref() != Some(text.as_str()) {
                    self.warn(format!("capture not re-attached yet ({text}); retrying"));
                    self.last_error = Some(text);
                }
                return None;
            }
        };
        self.last_error = None;
        let was = self.state;
        self.state = LinkState::Attached;
        self.ifindex = ifindex;
        self.xdp = opened.method == "af_xdp";
        self.mtu = afxdp::interface_mtu(&name);
        self.max_frame_len = opened.max_frame_len;
        self.promisc = opened.promisc.take();
        self.warned_prog = None;
        self.down_since = None;
        self.said_down = false;
        if was == LinkState::Lost {
            self.stats.reattaches += 1;
            diag::emit(Diag::InterfaceBack {
                interface: name,
                ifindex,
                description: opened.description.clone(),
            });
        } else {
            self.warn(format!("capture set up again: {}", opened.description));
        }
        let mut sources: Vec<Option<LiveSource>> =
            opened.workers.into_iter().map(|w| Some(w.source)).collect();
        sources.resize_with(self.workers, || None);
        Some(Follow::Attach {
            first: self.first,
            sources,
        })
    }

    /// The interface `ifindex` is gone: say so and count it.
    fn lose(&mut self, ifindex: u32) {
        self.state = LinkState::Lost;
        self.down_since = None;
        self.said_down = false;
        self.stats.losses += 1;
        self.promisc = None;
        diag::emit(Diag::InterfaceLost {
            interface: self.opts.interface.clone(),
            ifindex,
        });
    }

    /// What one event means while capture is attached.
    fn on_event(&mut self, ev: LinkEvent) -> Option<Follow<LiveSource>> {
        match ev {
            LinkEvent::Del(l) if l.ifindex == self.ifindex => {
                self.lose(l.ifindex);
                Some(Follow::Detach(self.own_workers()))
            }
            LinkEvent::New(l) if l.ifindex == self.ifindex => {
                if !l.up && self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                } else if l.up && self.down_since.is_some() {
                    self.down_since = None;
                    if std::mem::take(&mut self.said_down) {
                        self.warn("interface is up again: capture resumes".to_owned());
                    }
                }
                if !self.xdp {
                    let prog = l.xdp_prog_id.unwrap_or(0);
                    if l.xdp_attached() && self.warned_prog != Some(prog) {
                        self.warned_prog = Some(prog);
                        if let Some(m) = other_xdp_program(&l) {
                            self.warn(m);
                        }
                    } else if l.xdp == Some(netlink::XdpHook::None) {
                        self.warned_prog = None;
                    }
                }
                let (Some(new), Some(old)) = (l.mtu, self.mtu) else {
                    self.mtu = l.mtu.or(self.mtu);
                    return None;
                };
                self.mtu = Some(new);
                match mtu_outgrows_chunks(old, new, self.max_frame_len) {
                    Some((longest, max)) => {
                        self.warn(format!(
                            "MTU raised from {old} to {new}: frames of up to {longest} bytes no \
                             longer fit the AF_XDP chunks (at most {max} bytes) and would be \
                             dropped: setting capture up again for the new MTU"
                        ));
                        self.state = LinkState::Resetup;
                        self.promisc = None;
                        // Set up again as soon as the old sockets are gone.
                        self.next_check = Instant::now();
                        Some(Follow::Detach(self.own_workers()))
                    }
                    None => None,
                }
            }
            _ => None,
        }
    }
}

impl Follower<LiveSource> for LinkFollower {
    fn poll(&mut self) -> Option<Follow<LiveSource>> {
        self.read_events();
        while let Some(ev) = self.pending.pop_front() {
            match self.state {
                LinkState::Attached => {
                    if let Some(f) = self.on_event(ev) {
                        return Some(f);
                    }
                }
                LinkState::Resetup => {
                    // Deleted before its sockets were set up again: lost (nothing to give back).
                    if let LinkEvent::Del(l) = &ev {
                        if l.ifindex == self.ifindex {
                            self.lose(l.ifindex);
                        }
                    }
                }
                LinkState::Lost => {
                    let ours = matches!(
                        &ev,
                        LinkEvent::New(l) if l.up && l.name.as_deref() == Some(&self.opts.interface)
                    );
                    if ours {
                        if let Some(f) = self.attach() {
                            return Some(f);
                        }
                    }
                }
            }
        }
        if self.state != LinkState::Attached && Instant::now() >= self.next_check {
            self.next_check = Instant::now() + LINK_RETRY;
            return self.attach();
        }
        if !self.said_down && self.down_since.is_some_and(|t| t.elapsed() >= DOWN_GRACE) {
            self.said_down = true;
            let name = self.opts.interface.clone();
            self.warn(format!(
                "interface is down: no frames until it is up again (ip link set {name} up)"
            ));
        }
        None
    }

    fn stats(&self) -> LinkStats {
        self.stats
    }
}

/// When an MTU raised from `old` to `new` makes the interface's longest frame outgrow what the
/// AF_XDP chunks hold (`max`; `None`: AF_PACKET or multi-buffer, which take any length): that
/// longest frame and `max`.
fn mtu_outgrows_chunks(old: u32, new: u32, max: Option<u32>) -> Option<(u32, u32)> {
    let max = max?;
    let longest = afxdp::longest_frame(new);
    (new > old && longest > max).then_some((longest, max))
}

/// Several [`LinkFollower`]s, one per interface of a run (the host agent), each over its own
/// workers; their counters are added up.
#[derive(Debug, Default)]
pub struct LinkFollowers(pub Vec<LinkFollower>);

impl Follower<LiveSource> for LinkFollowers {
    fn poll(&mut self) -> Option<Follow<LiveSource>> {
        self.0.iter_mut().find_map(|f| f.poll())
    }

    fn stats(&self) -> LinkStats {
        self.0.iter().fold(LinkStats::default(), |a, f| {
            let s = f.stats();
            LinkStats {
                losses: a.losses + s.losses,
                reattaches: a.reattaches + s.reattaches,
            }
        })
    }
}

/// The interface named `name` now, from netlink or else the ioctls.
fn current_link(name: &str) -> Option<LinkInfo> {
    match netlink::link_by_name(name) {
        Ok(l) => l,
        Err(_) => {
            let ifindex = crate::capture::ifindex(name).ok()?;
            Some(LinkInfo {
                ifindex,
                name: Some(name.to_owned()),
                up: true,
                mtu: afxdp::interface_mtu(name),
                xdp: None,
                xdp_prog_id: None,
            })
        }
    }
}

fn warn(interface: &str, message: String) {
    diag::emit(Diag::CaptureWarning {
        interface: interface.to_owned(),
        message,
    });
}

#[cfg(test)]
mod tests {
    use super::{core_for, mtu_outgrows_chunks, other_xdp_program};
    use crate::sys::netlink::{LinkInfo, XdpHook};

    #[test]
    fn only_an_mtu_raised_past_the_chunks_sets_af_xdp_up_again() {
        // 2 KiB chunks in copy mode hold 1792 bytes: MTU 1500 (1522 with header and two
        // tags) fits, 3000 does not.
        assert_eq!(
            mtu_outgrows_chunks(1500, 3000, Some(1792)),
            Some((3022, 1792))
        );
        assert_eq!(mtu_outgrows_chunks(1500, 1700, Some(1792)), None);
        // Lowered, unchanged, AF_PACKET or multi-buffer: nothing to do.
        assert_eq!(mtu_outgrows_chunks(9000, 8000, Some(3840)), None);
        assert_eq!(mtu_outgrows_chunks(3000, 3000, Some(1792)), None);
        assert_eq!(mtu_outgrows_chunks(1500, 9000, None), None);
    }

    #[test]
    fn another_xdp_program_is_named_with_its_mode_and_id() {
        let mut link = LinkInfo {
            ifindex: 3,
            name: Some("eth1".into()),
            up: true,
            mtu: Some(1500),
            xdp: Some(XdpHook::None),
            xdp_prog_id: None,
        };
        assert_eq!(other_xdp_program(&link), None);
        link.xdp = None;
        assert_eq!(other_xdp_program(&link), None, "not said: not known");
        link.xdp = Some(XdpHook::Skb);
        link.xdp_prog_id = Some(77);
        assert_eq!(
            other_xdp_program(&link).as_deref(),
            Some(
                "another XDP program (id 77) is attached in generic (skb) mode and is \
                 redirecting traffic: frames it redirects or drops never reach AF_PACKET, so \
                 this capture sees only part of the traffic (see ip -d link show dev eth1)"
            )
        );
    }

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
