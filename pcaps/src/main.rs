//! `surgewatch-pcaps`: writes the catalogue of labelled captures, or a big benchmark capture.
//!
//! ```text
//! surgewatch-pcaps write [DIR]
//! surgewatch-pcaps big --packets N --ips M [--pps R] [--seed S] OUT.pcap
//! surgewatch-pcaps scenario [--seed S] OUT.pcap
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use surgewatch_pcaps::big::{write_big, BigOptions, BIG_MONITOR};
use surgewatch_pcaps::scenario::{expected_path, write_scenario, ScenarioOptions};
use surgewatch_pcaps::{captures_dir, write_catalogue, Class};

const USAGE: &str = "usage:
  surgewatch-pcaps write [DIR]
      write the catalogue of labelled captures and their NAME.expected.json
      (default DIR: the crate's captures/ directory)
  surgewatch-pcaps big --packets N --ips M [--pps R] [--seed S] OUT.pcap
      stream a large benchmark capture (default N 10000000, M 100000, R 1000000, S 1)
  surgewatch-pcaps scenario [--seed S] OUT.pcap
      write the long detection scenario and OUT.expected.json beside it";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("write") => cmd_write(&args[1..]),
        Some("big") => cmd_big(&args[1..]),
        Some("scenario") => cmd_scenario(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("surgewatch-pcaps: {e}");
            ExitCode::from(2)
        }
    }
}

fn cmd_write(args: &[String]) -> Result<(), String> {
    if args.len() > 1 {
        return Err(USAGE.to_string());
    }
    let dir = args.first().map_or_else(captures_dir, PathBuf::from);
    let generated = write_catalogue(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut total = 0u64;
    for g in &generated {
        let size = std::fs::metadata(dir.join(&g.spec.file_name))
            .map(|m| m.len())
            .unwrap_or(0);
        total += size;
        println!(
            "{:<32} {:>6} packets {:>8} bytes on file  label {}",
            g.spec.file_name, g.expected.packets, size, g.spec.label
        );
    }
    println!(
        "{} captures, {} bytes, in {}",
        generated.len(),
        total,
        dir.display()
    );
    Ok(())
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: not a number: {v}"))
}

fn cmd_big(args: &[String]) -> Result<(), String> {
    let mut opts = BigOptions::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--packets" => opts.packets = parse_num(a, it.next())?,
            "--ips" => opts.ips = parse_num(a, it.next())?,
            "--pps" => opts.pps = parse_num(a, it.next())?,
            "--seed" => opts.seed = parse_num(a, it.next())?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s if out.is_none() => out = Some(PathBuf::from(s)),
            _ => return Err(USAGE.to_string()),
        }
    }
    let out = out.ok_or_else(|| format!("missing OUT.pcap\n{USAGE}"))?;
    let file = File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let started = Instant::now();
    let sum = write_big(BufWriter::with_capacity(1 << 20, file), &opts)
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    println!("monitor {BIG_MONITOR}");
    println!(
        "wrote {} packets, {} bytes, {} monitored IPs (10.0.0.1..), to {} in {:.2} s ({:.2} Mpps)",
        sum.packets,
        sum.bytes,
        opts.ips,
        out.display(),
        secs,
        sum.packets as f64 / secs.max(1e-9) / 1e6
    );
    println!("inbound {} outbound {}", sum.inbound, sum.outbound);
    let classes: Vec<String> = Class::ALL
        .iter()
        .zip(sum.classes)
        .map(|(c, n)| format!("{}={n}", c.as_str()))
        .collect();
    println!("classes {}", classes.join(" "));
    Ok(())
}

fn cmd_scenario(args: &[String]) -> Result<(), String> {
    let mut opts = ScenarioOptions::default();
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => opts.seed = parse_num(a, it.next())?,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s if out.is_none() => out = Some(PathBuf::from(s)),
            _ => return Err(USAGE.to_string()),
        }
    }
    let out = out.ok_or_else(|| format!("missing OUT.pcap\n{USAGE}"))?;
    let exp = write_scenario(&out, &opts).map_err(|e| format!("{}: {e}", out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!("monitor {}", exp.monitor.join(" "));
    println!(
        "wrote {} frames, {} bytes, to {} (expectations in {})",
        exp.packets,
        size,
        out.display(),
        expected_path(&out).display()
    );
    for a in &exp.attacks {
        println!("{:<24} {:<18} onset_ns {}", a.family, a.target, a.onset_ns);
    }
    Ok(())
}
