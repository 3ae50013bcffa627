//! `surgewatch-inject`: a fast Ethernet frame generator for capture benchmarks.
//!
//! ```text
//! surgewatch-inject --interface IF [--pcap FILE | --synthetic N] [--count N] [--loop]
//!                   [--rate PPS] [--threads T] [--batch B]
//! ```
//!
//! Frames come from a pcap/pcapng capture (Ethernet frames only; others are skipped with a
//! note) or are synthesised for `N` destination addresses (SYN, ACK, UDP and ICMP to each, from
//! varying sources). Each thread sends through its own AF_PACKET socket bound to the interface,
//! with `PACKET_QDISC_BYPASS`, in `sendmmsg` batches; threads start at different offsets of the
//! frame set. `--rate` paces the total over all threads. Ctrl-C stops and prints the summary.
//!
//! It only ever sends on the interface given (the sockets are bound to it and send without a
//! destination address). Meant to run inside a test namespace:
//! `ip netns exec NS surgewatch-inject --interface veth0 --synthetic 1000 --loop --count 10000000`.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use surgewatch_bench::sender::{ifindex, stop_on_signals, stop_requested};

#[derive(Parser, Debug)]
#[command(
    name = "surgewatch-inject",
    about = "Send Ethernet frames fast (AF_PACKET, sendmmsg)"
)]
struct Args {
    /// Interface to send on (the only one ever used).
    #[arg(long, short)]
    interface: String,
    /// Send the Ethernet frames of this pcap/pcapng capture.
    #[arg(long, conflicts_with = "synthetic")]
    pcap: Option<PathBuf>,
    /// Synthesise traffic to this many destination addresses (default 256 without --pcap).
    #[arg(long, value_name = "N_IPS")]
    synthetic: Option<u32>,
    /// Total frames to send (default: the frame set once, or forever with --loop).
    #[arg(long)]
    count: Option<u64>,
    /// Repeat the frame set until --count frames were sent (or Ctrl-C).
    #[arg(long = "loop")]
    repeat: bool,
    /// Total send rate in packets per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Sending threads, one socket each.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

/// Per-thread result.
#[derive(Default)]
struct Sent {
    packets: u64,
    bytes: u64,
    retries: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.threads == 0 || args.batch == 0 {
        bail!("--threads and --batch must be at least 1");
    }
    if args.rate == Some(0) {
        bail!("--rate must be at least 1");
    }
    let frames = match &args.pcap {
        Some(p) => {
            let loaded = surgewatch_bench::load_ethernet_frames(p, usize::MAX)?;
            if let Some(e) = &loaded.error {
                eprintln!("surgewatch-inject: note: {e} (sending the frames before it)");
            }
            if loaded.skipped > 0 {
                eprintln!(
                    "surgewatch-inject: note: skipped {} non-Ethernet frames",
                    loaded.skipped
                );
            }
            loaded.frames
        }
        // 203.0.113.0/24 for up to 256 destinations, else from 198.18.0.0 (RFC 2544
        // benchmarking range).
        None => {
            let n = args.synthetic.unwrap_or(256);
            let first = if n <= 256 {
                Ipv4Addr::new(203, 0, 113, 0)
            } else {
                Ipv4Addr::new(198, 18, 0, 0)
            };
            surgewatch_bench::synthetic_frames(n, first, 512)
        }
    };
    if frames.is_empty() {
        bail!("no Ethernet frames to send");
    }
    let total = match (args.count, args.repeat) {
        (Some(n), _) => Some(n),
        (None, true) => None,
        (None, false) => Some(frames.len() as u64),
    };
    let total = total.map(|n| {
        if args.repeat {
            n
        } else {
            n.min(frames.len() as u64)
        }
    });
    let ifindex = libc::c_int::try_from(ifindex(&args.interface)?)?;
    // Open every socket before starting, so that errors come before any frame is sent.
    let sockets = (0..args.threads)
        .map(|_| open_socket(ifindex).with_context(|| format!("{}: open socket", args.interface)))
        .collect::<Result<Vec<_>>>()?;
    stop_on_signals();
    let t = args.threads as u64;
    let start = Instant::now();
    let results: Vec<Result<Sent>> = std::thread::scope(|s| {
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, sock)| {
                let frames = &frames;
                let iu = i as u64;
                let count = total.map(|n| n / t + u64::from(iu < n % t));
                let rate = args.rate.map(|r| (r / t + u64::from(iu < r % t)).max(1));
                let offset = frames.len() * i / args.threads;
                let batch = args.batch;
                s.spawn(move || send_loop(&sock, frames, offset, count, rate, batch))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("sender thread panicked")))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let mut sum = Sent::default();
    let mut first_err = None;
    for r in results {
        match r {
            Ok(s) => {
                sum.packets += s.packets;
                sum.bytes += s.bytes;
                sum.retries += s.retries;
            }
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    println!(
        "surgewatch-inject: {}: sent {} packets ({} bytes) in {:.3} s: {:.3} Mpps, {:.1} Mbit/s ({} threads, {} full-queue retries)",
        args.interface,
        sum.packets,
        sum.bytes,
        secs,
        sum.packets as f64 / secs / 1e6,
        sum.bytes as f64 * 8.0 / secs / 1e6,
        args.threads,
        sum.retries
    );
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn open_socket(ifindex: libc::c_int) -> Result<OwnedFd> {
    // Protocol 0: this socket never receives anything.
    // SAFETY: plain system call with constant arguments; checked below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        let e = io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
            bail!("needs CAP_NET_RAW (run as root)");
        }
        return Err(e).context("socket(AF_PACKET)");
    }
    // SAFETY: `raw` is a new descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("setsockopt(PACKET_QDISC_BYPASS)");
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { MaybeUninit::zeroed().assume_init() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("bind");
    }
    Ok(fd)
}

/// Sends `count` frames (forever if `None`) from `frames`, starting at `offset` and wrapping,
/// at most `rate` per second.
fn send_loop(
    fd: &OwnedFd,
    frames: &[Vec<u8>],
    offset: usize,
    count: Option<u64>,
    rate: Option<u64>,
    batch: usize,
) -> Result<Sent> {
    // Small batches at low rates so pacing stays smooth (about 1 ms of traffic per call).
    let batch = match rate {
        Some(r) => batch.min(usize::try_from(r / 1000).unwrap_or(usize::MAX).max(1)),
        None => batch,
    };
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(batch);
    // SAFETY: mmsghdr is plain old data (integers and pointers); all-zero is valid.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch)
        .map(|_| unsafe { MaybeUninit::zeroed().assume_init() })
        .collect();
    let mut sent = Sent::default();
    let mut next = offset % frames.len();
    let start = Instant::now();
    while !stop_requested() {
        let want = match count {
            Some(c) if sent.packets >= c => break,
            Some(c) => usize::try_from(c - sent.packets)
                .unwrap_or(usize::MAX)
                .min(batch),
            None => batch,
        };
        if let Some(r) = rate {
            // Time at which the next frame is due.
            let due = Duration::from_secs_f64(sent.packets as f64 / r as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        iov.clear();
        let mut bytes = 0u64;
        for k in 0..want {
            let f = &frames[(next + k) % frames.len()];
            bytes += f.len() as u64;
            iov.push(libc::iovec {
                // The kernel only reads through this pointer.
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            });
        }
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m.msg_len = 0;
        }
        let mut done = 0usize;
        while done < want {
            // SAFETY: msgs[done..want] are initialised headers whose iovecs point into
            // `frames`, alive for the call; no message has a name or control data.
            let rc = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    msgs.as_mut_ptr().add(done),
                    (want - done) as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS | libc::EAGAIN) => {
                        sent.retries += 1;
                        std::thread::yield_now();
                        continue;
                    }
                    Some(libc::EINTR) if stop_requested() => break,
                    Some(libc::EINTR) => continue,
                    _ => return Err(e).context("sendmmsg"),
                }
            }
            done += rc as usize;
        }
        let done_bytes: u64 = if done == want {
            bytes
        } else {
            iov.iter().take(done).map(|v| v.iov_len as u64).sum()
        };
        sent.packets += done as u64;
        sent.bytes += done_bytes;
        next = (next + done) % frames.len();
    }
    Ok(sent)
}
