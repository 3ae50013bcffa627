//! `surgewatch-hostile-pcap`: writes a hostile capture (`surgewatch_pcaps::hostile`) for the
//! issue-12 probes (`bench/probes.sh`): random-destination sweeps and floods from random
//! spoofed sources, merged in time order into a nanosecond pcap.
//!
//! ```text
//! surgewatch-hostile-pcap --out PATH [--seed S]
//!                         [--sweep CIDR,START_S,END_S,PPS]... [--flood IP,START_S,END_S,PPS]...
//!                         [--cycle IP+COUNT,START_S,END_S,PPS]...
//! ```
//!
//! Times are seconds (decimals allowed) from the capture's start. `--sweep` sends a TCP SYN to
//! a random address of CIDR for each packet; `--flood` sends UDP to IP; `--cycle` sends a TCP SYN
//! to COUNT consecutive addresses from IP in turn (each kept busy at PPS / COUNT). Prints what was
//! written as `packets=N bytes=B per_stream=[..]`.

use std::io::BufWriter;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use surgewatch_pcaps::hostile::{write_hostile, Dst, Stream};

const USAGE: &str = "usage: surgewatch-hostile-pcap --out PATH [--seed S] \
[--sweep CIDR,START_S,END_S,PPS]... [--flood IP,START_S,END_S,PPS]... \
[--cycle IP+COUNT,START_S,END_S,PPS]...";

/// Seconds (decimals allowed) to nanoseconds.
fn secs(flag: &str, v: &str) -> Result<u64, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("{flag}: bad time {v:?} (seconds)"))?;
    if !(0.0..=1e9).contains(&s) {
        return Err(format!("{flag}: time {v:?} out of range"));
    }
    Ok((s * 1e9).round() as u64)
}

/// `WHAT,START_S,END_S,PPS` → (WHAT, start ns, end ns, pps).
fn spec<'a>(flag: &str, v: &'a str) -> Result<(&'a str, u64, u64, u64), String> {
    let parts: Vec<&str> = v.split(',').collect();
    let [what, start, end, pps] = parts[..] else {
        return Err(format!("{flag} wants WHAT,START_S,END_S,PPS, got {v:?}"));
    };
    let pps: u64 = surgewatch_bench::ticks::num_arg(flag, Some(pps.to_string()))?;
    if pps == 0 {
        return Err(format!("{flag}: PPS must be positive"));
    }
    Ok((what, secs(flag, start)?, secs(flag, end)?, pps))
}

fn run() -> Result<(), String> {
    let mut out: Option<PathBuf> = None;
    let mut seed = 12u64;
    let mut streams = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--seed" => seed = surgewatch_bench::ticks::num_arg("--seed", Some(value()?))?,
            "--sweep" => {
                let v = value()?;
                let (cidr, start, end, pps) = spec("--sweep", &v)?;
                let dst = Dst::random_in(cidr).ok_or(format!("--sweep: bad CIDR {cidr:?}"))?;
                streams.push(Stream::sweep(dst, start, end, pps));
            }
            "--flood" => {
                let v = value()?;
                let (ip, start, end, pps) = spec("--flood", &v)?;
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| format!("--flood: bad address {ip:?}"))?;
                streams.push(Stream::flood(ip, start, end, pps));
            }
            "--cycle" => {
                let v = value()?;
                let (what, start, end, pps) = spec("--cycle", &v)?;
                let (ip, count) = what
                    .split_once('+')
                    .ok_or(format!("--cycle wants IP+COUNT, got {what:?}"))?;
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| format!("--cycle: bad address {ip:?}"))?;
                let count: u64 = surgewatch_bench::ticks::num_arg("--cycle", Some(count.into()))?;
                streams.push(Stream::cycle(ip, count, start, end, pps));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let out = out.ok_or("--out is required")?;
    if streams.is_empty() {
        return Err("no --sweep or --flood given".into());
    }
    let file = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let sum = write_hostile(BufWriter::with_capacity(1 << 20, file), &streams, seed)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "packets={} bytes={} per_stream={:?}",
        sum.packets, sum.bytes, sum.per_stream
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("surgewatch-hostile-pcap: {e}");
            }
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
