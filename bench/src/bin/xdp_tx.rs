//! `surgewatch-xdp-tx`: an AF_XDP transmit generator for capture benchmarks.
//!
//! ```text
//! surgewatch-xdp-tx --interface IF [--pcap FILE | --synthetic N] [--frames MAX]
//!                   [--queues Q,...] [--cores C,...] [--rate PPS] [--duration SECS | --count N]
//!                   [--batch B] [--ring R] [--json]
//! ```
//!
//! One thread per TX queue, each with its own AF_XDP socket (copy mode: veth and most virtual
//! devices have no zero-copy TX) and its own UMEM, pre-filled once with up to `--frames`
//! template frames (from a pcap/pcapng capture, or synthesised SYN/ACK/UDP/ICMP to `N`
//! destinations). The TX ring is then fed descriptors that cycle over those templates: nothing
//! is written per packet, and many descriptors may point at the same chunk (the kernel only
//! reads them). The per-socket TX budget of one `sendto` is raised to the ring size where the
//! kernel allows it (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17+), else it is the kernel's 32.
//!
//! On veth, the queue a frame is sent on is the receive queue it arrives on at the peer, so
//! `--queues 0,1` feeds both RX queues of a 2-queue pair. `--rate` paces the total over all
//! threads. Sent counts are completions (frames the kernel has taken and freed).
//!
//! It only ever sends on the interface given. Meant to run inside a test namespace:
//! `ip netns exec NS surgewatch-xdp-tx --interface veth0 --pcap /tmp/big.pcap --duration 10`.

use std::ffi::CString;
use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use surgewatch_bench::sender::{pin_to_core, stop_on_signals, stop_requested};
use surgewatch_sensor::capture::afxdp::{raise_memlock, UmemArea};
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingTx, Socket, SocketConfig, UmemConfig};

#[derive(Parser, Debug)]
#[command(
    name = "surgewatch-xdp-tx",
    about = "Send Ethernet frames fast (AF_XDP TX, copy mode, template frames reused)"
)]
struct Args {
    /// Interface to send on (the only one ever used).
    #[arg(long, short)]
    interface: String,
    /// Template frames from this pcap/pcapng capture (Ethernet frames only).
    #[arg(long, conflicts_with = "synthetic")]
    pcap: Option<PathBuf>,
    /// Synthesise frames to this many destination addresses (default 4096 without --pcap).
    #[arg(long, value_name = "N_IPS")]
    synthetic: Option<u32>,
    /// At most this many template frames are loaded (each takes one 2 KiB UMEM chunk per queue).
    #[arg(long, default_value_t = 65536)]
    frames: usize,
    /// TX queues to send on, one thread and socket each.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    queues: Vec<u32>,
    /// Cores to pin the threads to, in order (default: not pinned).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Total send rate in packets per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Send for this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Send this many frames in total (default: until --duration, else until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// Descriptors queued per wake-up (`sendto`).
    #[arg(long, default_value_t = 256)]
    batch: u32,
    /// TX and completion ring entries (power of two).
    #[arg(long, default_value_t = 2048)]
    ring: u32,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// UMEM chunk size; copy-mode TX needs no headroom.
const CHUNK: u32 = 2048;
/// `SOL_XDP`.
const SOL_XDP: libc::c_int = 283;
/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+): descriptors one `sendto` may transmit in copy mode.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Per-thread result.
#[derive(Default, Clone, Copy)]
struct Sent {
    queue: u32,
    packets: u64,
    bytes: u64,
    wakeups: u64,
    budget_raised: bool,
    tx_invalid: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.queues.is_empty() || args.batch == 0 || args.frames == 0 {
        bail!("--queues, --batch and --frames must not be empty or zero");
    }
    if !args.ring.is_power_of_two() || args.ring < 64 {
        bail!("--ring must be a power of two >= 64");
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    let mut frames = match &args.pcap {
        Some(p) => {
            let loaded = surgewatch_bench::load_ethernet_frames(p, args.frames)?;
            if let Some(e) = &loaded.error {
                eprintln!("surgewatch-xdp-tx: note: {e} (using the frames before it)");
            }
            loaded.frames
        }
        // Inside the benchmark's monitored 10.0.0.0/8.
        None => surgewatch_bench::synthetic_frames(
            args.synthetic.unwrap_or(4096),
            Ipv4Addr::new(10, 0, 0, 1),
            0,
        ),
    };
    frames.retain(|f| f.len() <= CHUNK as usize);
    frames.truncate(args.frames);
    if frames.is_empty() {
        bail!("no Ethernet frames to send");
    }
    let ifname = CString::new(args.interface.as_str()).context("interface name")?;
    // Open every socket before starting, so that errors come before any frame is sent.
    let mut txs = Vec::with_capacity(args.queues.len());
    for &q in &args.queues {
        // A queue just released by another socket can be busy for a moment: retry briefly.
        let t0 = Instant::now();
        let tx = loop {
            match TxQueue::open(&ifname, q, &frames, args.ring) {
                Err(e) if is_busy(&e) && t0.elapsed() < Duration::from_secs(2) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r.with_context(|| format!("{}: queue {q}", args.interface))?,
            }
        };
        txs.push(tx);
    }
    stop_on_signals();
    let t = txs.len() as u64;
    let deadline = args.duration.map(Duration::from_secs_f64);
    let start = Instant::now();
    let results: Vec<Sent> = std::thread::scope(|s| {
        let handles: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(i, tx)| {
                let iu = i as u64;
                let count = args.count.map(|n| n / t + u64::from(iu < n % t));
                let rate = args.rate.map(|r| (r / t + u64::from(iu < r % t)).max(1));
                let core = args.cores.get(i).copied();
                let batch = args.batch;
                let offset = tx.n_frames * i / t as usize;
                s.spawn(move || {
                    if let Some(c) = core {
                        pin_to_core(c, "surgewatch-xdp-tx");
                    }
                    tx.run(offset, count, rate, deadline, batch)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let packets: u64 = results.iter().map(|r| r.packets).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    let wakeups: u64 = results.iter().map(|r| r.wakeups).sum();
    let invalid: u64 = results.iter().map(|r| r.tx_invalid).sum();
    let raised = results.iter().all(|r| r.budget_raised);
    if args.json {
        let per_queue: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "{{\"queue\":{},\"packets\":{},\"mpps\":{:.4}}}",
                    r.queue,
                    r.packets,
                    r.packets as f64 / secs / 1e6
                )
            })
            .collect();
        println!(
            "{{\"generator\":\"surgewatch-xdp-tx\",\"interface\":\"{}\",\"packets\":{packets},\"bytes\":{bytes},\"secs\":{secs:.4},\"mpps\":{:.4},\"templates\":{},\"wakeups\":{wakeups},\"tx_invalid_descs\":{invalid},\"budget_raised\":{raised},\"queues\":[{}]}}",
            args.interface,
            packets as f64 / secs / 1e6,
            frames.len(),
            per_queue.join(",")
        );
    } else {
        println!(
            "surgewatch-xdp-tx: {}: sent {packets} packets ({bytes} bytes) in {secs:.3} s: {:.3} Mpps, {:.1} Mbit/s ({} queue(s), {} templates, {:.1} frames/wake-up, tx budget {})",
            args.interface,
            packets as f64 / secs / 1e6,
            bytes as f64 * 8.0 / secs / 1e6,
            results.len(),
            frames.len(),
            packets as f64 / wakeups.max(1) as f64,
            if raised { "raised" } else { "32 (kernel default)" }
        );
        for r in &results {
            println!(
                "  queue {}: {} packets, {:.3} Mpps",
                r.queue,
                r.packets,
                r.packets as f64 / secs / 1e6
            );
        }
    }
    Ok(())
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.raw_os_error() == Some(libc::EBUSY))
}

/// One AF_XDP socket bound to one TX queue, with its UMEM of template frames.
struct TxQueue {
    queue: u32,
    // Field order is drop order: rings and socket before the UMEM memory.
    tx: RingTx,
    cq: DeviceQueue,
    fd: libc::c_int,
    /// Descriptor of each template (address and length in the UMEM).
    descs: Vec<XdpDesc>,
    n_frames: usize,
    ring: u32,
    budget_raised: bool,
    _area: UmemArea,
}

fn xerr(stage: &'static str) -> impl Fn(xdpilone::Errno) -> anyhow::Error {
    move |e| {
        anyhow::Error::from(std::io::Error::from_raw_os_error(e.get_raw().abs())).context(stage)
    }
}

impl TxQueue {
    fn open(ifname: &CString, queue: u32, frames: &[Vec<u8>], ring: u32) -> Result<Self> {
        let mut info = IfInfo::invalid();
        info.from_name(ifname).map_err(xerr("interface"))?;
        info.set_queue(queue);
        let len = frames.len().max(64) * CHUNK as usize;
        raise_memlock(len as u64);
        let mut area = UmemArea::new(len).context("mmap UMEM")?;
        let mut descs = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let addr = i * CHUNK as usize;
            // Chunk `i` holds frame `i` (each at most CHUNK bytes, filtered by the caller).
            if f.len() > CHUNK as usize || !area.write(addr, f) {
                bail!(
                    "template frame {i} of {} bytes does not fit its UMEM chunk",
                    f.len()
                );
            }
            descs.push(XdpDesc {
                addr: addr as u64,
                len: u32::try_from(f.len())?,
                options: 0,
            });
        }
        let ucfg = UmemConfig {
            fill_size: 64,
            complete_size: ring,
            frame_size: CHUNK,
            headroom: 0,
            flags: 0,
        };
        // The UMEM borrows `area` until it is dropped below; `area` outlives the rings and
        // socket (it is the last field of `TxQueue`).
        let umem = area
            .register(ucfg)
            .context("register UMEM (needs root / CAP_IPC_LOCK)")?;
        let sock = Socket::with_shared(&info, &umem).map_err(xerr("socket(AF_XDP)"))?;
        let cq = umem.fq_cq(&sock).map_err(xerr("fill/completion rings"))?;
        let scfg = SocketConfig {
            rx_size: None,
            tx_size: NonZeroU32::new(ring),
            bind_flags: SocketConfig::XDP_BIND_COPY | SocketConfig::XDP_BIND_NEED_WAKEUP,
        };
        let user = umem.rx_tx(&sock, &scfg).map_err(xerr("tx ring"))?;
        let tx = user.map_tx().map_err(xerr("map tx ring"))?;
        let fd = user.as_raw_fd();
        let budget = libc::c_int::try_from(ring)?;
        // SAFETY: setsockopt with a valid int and its size; failure only means an older kernel.
        let budget_raised = unsafe {
            libc::setsockopt(
                fd,
                SOL_XDP,
                XDP_MAX_TX_SKB_BUDGET,
                (&budget as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        } == 0;
        umem.bind(&user).map_err(xerr("bind"))?;
        drop(umem);
        Ok(TxQueue {
            queue,
            tx,
            cq,
            fd,
            n_frames: descs.len(),
            descs,
            ring,
            budget_raised,
            _area: area,
        })
    }

    /// Sends until `count` frames completed, `deadline` passed or a signal, at most `rate`
    /// frames per second.
    fn run(
        mut self,
        offset: usize,
        count: Option<u64>,
        rate: Option<u64>,
        deadline: Option<Duration>,
        batch: u32,
    ) -> Sent {
        let mut sent = Sent {
            queue: self.queue,
            budget_raised: self.budget_raised,
            ..Sent::default()
        };
        let n = self.descs.len();
        let mut next = offset % n;
        let mut queued = 0u64; // descriptors handed to the TX ring
        let mut outstanding = 0u32; // queued, not yet completed
                                    // Paced runs send small bursts (about 50 µs of traffic) so that pacing stays smooth.
        let batch = match rate {
            Some(r) => batch.min(u32::try_from(r / 20_000).unwrap_or(u32::MAX).max(8)),
            None => batch,
        };
        let start = Instant::now();
        let mut last_progress = Instant::now();
        let mut stopping = false;
        loop {
            // Completions: frames the kernel is done with.
            let mut c = self.cq.complete(outstanding);
            let mut done = 0u32;
            while c.read().is_some() {
                done += 1;
            }
            c.release();
            drop(c);
            if done > 0 {
                last_progress = Instant::now();
            }
            outstanding -= done;
            sent.packets += u64::from(done);
            if !stopping {
                let elapsed = start.elapsed();
                stopping = stop_requested()
                    || deadline.is_some_and(|d| elapsed >= d)
                    || count.is_some_and(|c| queued >= c);
            }
            if stopping {
                // Drain what is in flight (bounded wait), then stop.
                if outstanding == 0 || last_progress.elapsed() > Duration::from_millis(200) {
                    break;
                }
                if self.tx.pending() > 0 {
                    self.tx.wake();
                    sent.wakeups += 1;
                }
                continue;
            }
            let mut want = batch.min(self.ring - outstanding);
            if let Some(c) = count {
                want = want.min(u32::try_from(c - queued).unwrap_or(u32::MAX));
            }
            if let Some(r) = rate {
                let due = (start.elapsed().as_secs_f64() * r as f64) as u64;
                if due <= queued {
                    let ahead = (queued + 1 - due) as f64 / r as f64;
                    if ahead > 100e-6 {
                        std::thread::sleep(Duration::from_secs_f64(ahead.min(0.001)));
                    } else {
                        std::hint::spin_loop();
                    }
                    if self.tx.pending() > 0 {
                        self.tx.wake();
                        sent.wakeups += 1;
                    }
                    continue;
                }
                want = want.min(u32::try_from(due - queued).unwrap_or(u32::MAX));
            }
            if want > 0 {
                let mut w = self.tx.transmit(want);
                let cap = w.capacity();
                let descs = &self.descs;
                let mut bytes = 0u64;
                let put = w.insert((0..cap).map(|k| {
                    let d = descs[(next + k as usize) % n];
                    bytes += u64::from(d.len);
                    d
                }));
                w.commit();
                drop(w);
                next = (next + put as usize) % n;
                queued += u64::from(put);
                outstanding += put;
                sent.bytes += bytes;
            }
            // Copy mode transmits only from sendto().
            self.tx.wake();
            sent.wakeups += 1;
        }
        // XDP_STATISTICS: struct xdp_statistics { rx_dropped, rx_invalid_descs, tx_invalid_descs, ... }.
        let mut st = [0u64; 8];
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `st`.
        let rc = unsafe { libc::getsockopt(self.fd, SOL_XDP, 7, st.as_mut_ptr().cast(), &mut len) };
        if rc == 0 {
            sent.tx_invalid = st[2];
        }
        sent
    }
}
