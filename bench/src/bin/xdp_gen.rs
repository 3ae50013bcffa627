//! `surgewatch-xdp-gen`: an XDP live-frames traffic generator for capture benchmarks.
//!
//! ```text
//! surgewatch-xdp-gen --interface IF [--ips N] [--core C] [--rate PPS]
//!                    [--duration SECS | --count N] [--chunk N] [--batch B] [--json]
//! ```
//!
//! Frames are sent from inside the kernel with `BPF_PROG_TEST_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18+; the technique of xdp-tools' `xdp-trafficgen`):
//! a hand-assembled XDP program (below) rewrites each frame's IPv4 addresses from
//! `bpf_get_prandom_u32` and returns `bpf_redirect(IF)`, so the frame goes out through the
//! interface's `ndo_xdp_xmit` with no socket buffer, no UMEM copy and no system call per batch
//! of frames. On a veth pair that hands XDP frames straight to the peer's receive ring: the
//! generator's core pays only for building and pushing them, and every receiver's kernel work
//! runs where the peer's NAPI runs. The peer must have NAPI enabled (an XDP program attached,
//! or GRO on) or the frames are dropped; `bench/live-bench.sh` sets this up.
//!
//! Four templates (TCP SYN to port 80, TCP ACK to 443, UDP from port 53 with 64 bytes of
//! payload, ICMP echo) are sent in turns of `--chunk` frames (default 4,000,000: each turn
//! costs a page-pool setup of ~20 ms, during which the core idles; with 1,000,000-frame turns
//! that was 5-9 % of the core and the generator alone made 7.1 Mpps instead of 8.0). With
//! `--duration`, the first turn is at most 1,000,000 frames and later turns hold only what
//! the rate so far sends in the time left, so a slow receiver does not stretch the run.
//! `--rate` paces in bursts; for smooth pacing use `surgewatch-xdp-tx`. Each frame's
//! destination is `10.0.0.0 + rand % N` (`--ips`, default 100,000, monitor `10.0.0.0/8`), its
//! source random in 198.18.0.0/15. IPv4 checksums are not updated (capture benchmarks do not
//! check them).
//!
//! Counts are frames the program redirected; frames the peer's full ring refused are dropped
//! by the veth (its `tx_dropped` / the peer's XDP counters), so compare with what receivers
//! got. It only ever sends on the interface given; run it inside a test namespace.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use surgewatch_bench::sender::{ifindex, pin_to_core, stop_on_signals, stop_requested};
use surgewatch_bench::synthetic_frames;
use surgewatch_sensor::capture::xdp_load::{load_xdp_insns, test_run_live_frames};
use surgewatch_sensor::capture::xdp_prog::BpfInsn;

#[derive(Parser, Debug)]
#[command(
    name = "surgewatch-xdp-gen",
    about = "Send frames at XDP speed (BPF_PROG_TEST_RUN live frames, redirected out of IF)"
)]
struct Args {
    /// Interface to send on (the only one ever used), in the current network namespace.
    #[arg(long, short)]
    interface: String,
    /// Destinations: 10.0.0.0 + a random number below this.
    #[arg(long, default_value_t = 100_000)]
    ips: u32,
    /// Core to pin the generator to (default: not pinned).
    #[arg(long)]
    core: Option<usize>,
    /// Send rate in packets per second (default: as fast as possible).
    #[arg(long)]
    rate: Option<u64>,
    /// Send for this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Send this many frames in total (default: until --duration, else until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// Frames per template turn (one `BPF_PROG_TEST_RUN`; each run sets up and tears down a
    /// page pool, ~20 ms here, so small turns are slow).
    #[arg(long, default_value_t = 4_000_000)]
    chunk: u32,
    /// Frames the kernel builds and flushes at a time (at most 256).
    #[arg(long, default_value_t = 64)]
    batch: u32,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

// eBPF opcodes used below (class | operation | source).
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_ADD_K: u8 = 0x07;
const ALU64_MOD_K: u8 = 0x97;
const ALU64_AND_K: u8 = 0x57;
const ALU32_OR_K: u8 = 0x44;
const ALU_END_TO_BE: u8 = 0xdc;
const LDX_MEM_W: u8 = 0x61;
const STX_MEM_W: u8 = 0x63;
const JMP_JGT_X: u8 = 0x2d;
const JMP_CALL: u8 = 0x85;
const JMP_EXIT: u8 = 0x95;
const FUNC_GET_PRANDOM_U32: i32 = 7;
const FUNC_REDIRECT: i32 = 23;
const XDP_PASS: i32 = 2;
/// Offsets in an untagged Ethernet + 20-byte IPv4 header.
const IP_SRC: i16 = 14 + 12;
const IP_DST: i16 = 14 + 16;

/// The generator program: new addresses, then `bpf_redirect(ifindex, 0)`.
fn program(ifindex: u32, ips: u32) -> Vec<BpfInsn> {
    let i = BpfInsn::new;
    vec![
        i(ALU64_MOV_X, 6, 1, 0, 0),                    // r6 = ctx
        i(LDX_MEM_W, 7, 6, 0, 0),                      // r7 = ctx->data
        i(LDX_MEM_W, 8, 6, 4, 0),                      // r8 = ctx->data_end
        i(ALU64_MOV_X, 2, 7, 0, 0),                    // r2 = data
        i(ALU64_ADD_K, 2, 0, 0, 34),                   // r2 += 34 (Ethernet + IPv4)
        i(JMP_JGT_X, 2, 8, 14, 0),                     // if r2 > data_end goto pass
        i(JMP_CALL, 0, 0, 0, FUNC_GET_PRANDOM_U32),    // r0 = random
        i(ALU64_MOD_K, 0, 0, 0, ips.max(1) as i32),    // r0 %= ips
        i(ALU64_ADD_K, 0, 0, 0, 0x0a00_0000),          // r0 += 10.0.0.0
        i(ALU_END_TO_BE, 0, 0, 0, 32),                 // r0 = htonl(r0)
        i(STX_MEM_W, 7, 0, IP_DST, 0),                 // ip->daddr = r0
        i(JMP_CALL, 0, 0, 0, FUNC_GET_PRANDOM_U32),    // r0 = random
        i(ALU64_AND_K, 0, 0, 0, 0x1_ffff),             // r0 &= 0x1ffff
        i(ALU32_OR_K, 0, 0, 0, 0xc612_0000u32 as i32), // w0 |= 198.18.0.0
        i(ALU_END_TO_BE, 0, 0, 0, 32),                 // r0 = htonl(r0)
        i(STX_MEM_W, 7, 0, IP_SRC, 0),                 // ip->saddr = r0
        i(ALU64_MOV_K, 1, 0, 0, ifindex as i32),       // r1 = ifindex
        i(ALU64_MOV_K, 2, 0, 0, 0),                    // r2 = 0
        i(JMP_CALL, 0, 0, 0, FUNC_REDIRECT),           // r0 = bpf_redirect(r1, r2)
        i(JMP_EXIT, 0, 0, 0, 0),                       // return r0
        i(ALU64_MOV_K, 0, 0, 0, XDP_PASS),             // pass: r0 = XDP_PASS
        i(JMP_EXIT, 0, 0, 0, 0),
    ]
}

fn run(args: &Args, prog: &OwnedFd, templates: &[Vec<u8>]) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let deadline = args.duration.map(Duration::from_secs_f64);
    let mut sent = 0u64;
    let mut turn = 0usize;
    let chunk = u64::from(args.chunk.max(1));
    loop {
        if stop_requested()
            || deadline.is_some_and(|d| start.elapsed() >= d)
            || args.count.is_some_and(|c| sent >= c)
        {
            break;
        }
        let mut n = chunk;
        if let Some(c) = args.count {
            n = n.min(c - sent);
        }
        if let Some(d) = deadline {
            // Never far past the deadline: the first turn is short (it measures the rate),
            // later ones hold no more than the time left at the rate so far.
            n = n.min(turn_frames(sent, start.elapsed(), d, chunk));
        }
        if let Some(rate) = args.rate.filter(|&r| r > 0) {
            // Pace: never ahead of `rate`, in turns of 100 ms of traffic (frames leave in
            // bursts: for smooth pacing use surgewatch-xdp-tx).
            n = n.min((rate / 10).max(1));
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let frame = &templates[turn % templates.len()];
        turn += 1;
        match test_run_live_frames(prog, frame, n as u32, args.batch) {
            Ok(()) => sent += n,
            // A signal interrupted the run part-way: how far it got is not reported.
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => break,
            Err(e) => {
                return Err(e).context(
                    "BPF_PROG_TEST_RUN (live frames) failed: needs Linux 5.18+, root, and an \
                     interface whose driver implements ndo_xdp_xmit",
                )
            }
        }
    }
    Ok((sent, start.elapsed()))
}

/// Frames for the next turn when sending until `deadline`: at most `chunk`; the first turn
/// at most 1,000,000; later ones what the rate so far sends in the time left (at least 1).
fn turn_frames(sent: u64, elapsed: Duration, deadline: Duration, chunk: u64) -> u64 {
    if sent == 0 {
        return chunk.min(1_000_000);
    }
    let rate = sent as f64 / elapsed.as_secs_f64().max(1e-6);
    let left = deadline.saturating_sub(elapsed).as_secs_f64();
    ((rate * left).ceil() as u64).clamp(1, chunk)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.duration.is_none() && args.count.is_none() {
        eprintln!("surgewatch-xdp-gen: no --duration or --count: sending until Ctrl-C");
    }
    if !(1..=256).contains(&args.batch) {
        bail!("--batch must be 1..=256");
    }
    let ifindex = ifindex(&args.interface)?;
    let insns = program(ifindex, args.ips);
    let prog = load_xdp_insns(&args.interface, b"sw_xdp_gen", &insns)
        .with_context(|| format!("{}: loading the generator program", args.interface))?;
    let templates = synthetic_frames(1, Ipv4Addr::new(10, 0, 0, 1), 64);
    stop_on_signals();
    if let Some(c) = args.core {
        pin_to_core(c, "surgewatch-xdp-gen");
    }
    let (packets, took) = run(&args, &prog, &templates)?;
    let secs = took.as_secs_f64().max(1e-9);
    let mpps = packets as f64 / secs / 1e6;
    if args.json {
        println!(
            "{{\"generator\":\"surgewatch-xdp-gen\",\"interface\":\"{}\",\"packets\":{packets},\"secs\":{secs:.4},\"mpps\":{mpps:.4},\"ips\":{}}}",
            args.interface, args.ips
        );
    } else {
        println!(
            "surgewatch-xdp-gen: {}: redirected {packets} frames in {secs:.3} s: {mpps:.3} Mpps \
             (4 templates, destinations 10.0.0.0 + random below {})",
            args.interface, args.ips
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::turn_frames;
    use std::time::Duration;

    #[test]
    fn turns_end_near_the_deadline() {
        let s = Duration::from_secs;
        // First turn: short, to measure the rate.
        assert_eq!(turn_frames(0, s(0), s(5), 4_000_000), 1_000_000);
        assert_eq!(turn_frames(0, s(0), s(5), 100), 100);
        // 1 Mpps so far, 2 s left: 2 M frames, not a full chunk.
        assert_eq!(turn_frames(3_000_000, s(3), s(5), 4_000_000), 2_000_000);
        // Fast: capped at the chunk.
        assert_eq!(turn_frames(8_000_000, s(1), s(5), 4_000_000), 4_000_000);
        // Past the deadline: at least one frame (the loop stops on its own).
        assert_eq!(turn_frames(5_000_000, s(6), s(5), 4_000_000), 1);
    }
}
