//! The committed captures match the generator byte for byte, and every `expected.json` is
//! internally consistent with itself and with its capture file.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use surgewatch_pcaps::expected::{in_prefix, parse_prefix};
use surgewatch_pcaps::{captures_dir, catalogue, load_expected, write_catalogue, Expected, Format};

const REASONS: [&str; 9] = [
    "truncated_link",
    "truncated_vlan",
    "truncated_ipv4",
    "bad_ipv4_header",
    "bad_ipv4_length",
    "truncated_ipv6",
    "truncated_ipv6_ext",
    "truncated_l4",
    "bad_tcp_header",
];

const CLASSES: [&str; 9] = [
    "syn",
    "synack",
    "ack",
    "rst",
    "tcp_other",
    "udp",
    "icmp",
    "fragment",
    "other",
];

const REGENERATE: &str =
    "regenerate with `cargo run -p surgewatch-pcaps -- write` and commit pcaps/captures/";

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "surgewatch-pcaps-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn committed_captures_are_what_the_generator_writes() {
    let tmp = TempDir::new("regen");
    write_catalogue(&tmp.0).unwrap();
    let committed = captures_dir();
    let mut expected_names = BTreeSet::new();
    for spec in catalogue() {
        for name in [&spec.file_name, &spec.expected_file_name] {
            expected_names.insert(name.clone());
            let fresh = fs::read(tmp.0.join(name)).unwrap();
            let old = fs::read(committed.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}; {REGENERATE}"));
            assert!(
                fresh == old,
                "{name} differs from the generator; {REGENERATE}"
            );
        }
    }
    // No stale captures left behind by a renamed or removed catalogue entry.
    for entry in fs::read_dir(&committed).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let is_capture = name.ends_with(".pcap")
            || name.ends_with(".pcapng")
            || name.ends_with(".expected.json");
        assert!(
            !is_capture || expected_names.contains(&name),
            "{name} is not in the catalogue"
        );
    }
}

/// Container-level facts of a capture: (timestamp ns, orig_len) of each record.
fn read_container(path: &Path) -> Vec<(u64, u32)> {
    let b = fs::read(path).unwrap();
    let u32le = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let mut out = Vec::new();
    if b[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut off = 0;
        let mut nanos = false;
        while off < b.len() {
            let (ty, len) = (u32le(off), u32le(off + 4) as usize);
            assert_eq!(u32le(off + len - 4) as usize, len, "pcapng block trailer");
            if ty == 1 {
                // if_tsresol = 9 is the only option the generator writes on an IDB.
                nanos = len > 20 && u32le(off + 16) == 0x0001_0009 && b[off + 20] == 9;
            }
            if ty == 6 {
                let ts = (u64::from(u32le(off + 12)) << 32) | u64::from(u32le(off + 16));
                let cap = u32le(off + 20);
                let orig = u32le(off + 24);
                assert!(cap <= orig);
                assert_eq!(len, 32 + (cap as usize).div_ceil(4) * 4);
                out.push((if nanos { ts } else { ts * 1000 }, orig));
            }
            off += len;
        }
        return out;
    }
    let le = u32::from_le_bytes(b[..4].try_into().unwrap());
    let be = u32::from_be_bytes(b[..4].try_into().unwrap());
    let (big, magic) = if matches!(le, 0xa1b2_c3d4 | 0xa1b2_3c4d) {
        (false, le)
    } else {
        (true, be)
    };
    let rd = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let snaplen = rd(16);
    let mut off = 24;
    while off < b.len() {
        let (s, f, cap, orig) = (rd(off), rd(off + 4), rd(off + 8), rd(off + 12));
        assert!(cap <= orig && cap <= snaplen);
        let frac = if magic == 0xa1b2_3c4d {
            u64::from(f)
        } else {
            u64::from(f) * 1000
        };
        out.push((u64::from(s) * 1_000_000_000 + frac, orig));
        off += 16 + cap as usize;
    }
    assert_eq!(off, b.len(), "last record runs past the end of the file");
    out
}

fn check_expected(e: &Expected, label: &str) {
    let name = &e.capture;
    // Totals agree with the capture file itself.
    let recs = read_container(&captures_dir().join(&e.capture));
    assert_eq!(e.packets, recs.len() as u64, "{name}: packets");
    assert_eq!(
        e.bytes,
        recs.iter().map(|r| u64::from(r.1)).sum::<u64>(),
        "{name}: bytes"
    );
    assert_eq!(e.first_ts_ns, recs[0].0, "{name}: first_ts_ns");
    assert_eq!(e.last_ts_ns, recs[recs.len() - 1].0, "{name}: last_ts_ns");
    assert!(
        recs.windows(2).all(|w| w[0].0 <= w[1].0),
        "{name}: timestamps go backwards"
    );

    assert_eq!(e.label, label, "{name}: label");
    let prefixes: Vec<_> = e.monitor.iter().map(|p| parse_prefix(p).unwrap()).collect();
    let monitored = |ip: IpAddr| prefixes.iter().any(|p| in_prefix(ip, *p));

    for (k, v) in &e.parse_errors {
        assert!(REASONS.contains(&k.as_str()), "{name}: unknown reason {k}");
        assert!(*v > 0, "{name}: zero count for {k}");
    }
    assert_eq!(e.monitored_ips_seen, e.ips.len() as u64, "{name}");
    assert!(
        e.ips.windows(2).all(|w| w[0].ip < w[1].ip),
        "{name}: ips not sorted/unique"
    );
    let ticks = e.last_ts_ns / 1_000_000_000 - e.first_ts_ns / 1_000_000_000 + 1;
    let (mut sum_in, mut sum_out) = (0, 0);
    for ip in &e.ips {
        assert!(monitored(ip.ip), "{name}: {} is not monitored", ip.ip);
        assert!(
            ip.packets_in + ip.packets_out > 0,
            "{name}: {} unseen",
            ip.ip
        );
        for (dir, classes, packets, bytes) in [
            ("in", &ip.classes_in, ip.packets_in, ip.bytes_in),
            ("out", &ip.classes_out, ip.packets_out, ip.bytes_out),
        ] {
            for (k, c) in classes {
                assert!(CLASSES.contains(&k.as_str()), "{name}: unknown class {k}");
                assert!(c.packets > 0 && c.bytes >= 20 * c.packets, "{name}: {k}");
            }
            let p: u64 = classes.values().map(|c| c.packets).sum();
            let b: u64 = classes.values().map(|c| c.bytes).sum();
            assert_eq!(
                (p, b),
                (packets, bytes),
                "{name}: {} classes_{dir} vs totals",
                ip.ip
            );
        }
        assert!(ip.peak_pps <= ip.packets_in, "{name}: {}", ip.ip);
        assert!(
            ip.peak_pps * ticks >= ip.packets_in,
            "{name}: {} peak too low",
            ip.ip
        );
        assert_eq!(ip.packets_in == 0, ip.peak_pps == 0, "{name}: {}", ip.ip);
        sum_in += ip.packets_in;
        sum_out += ip.packets_out;
    }
    let errors: u64 = e.parse_errors.values().sum();
    assert!(sum_in <= e.packets && sum_out <= e.packets, "{name}");
    assert!(errors + e.non_ip <= e.packets, "{name}");

    match label {
        "benign" => {
            assert!(e.attacks.is_empty() && e.parse_errors.is_empty() && e.non_ip == 0);
        }
        "malformed" => {
            assert!(e.attacks.is_empty());
            for r in REASONS {
                assert!(e.parse_errors.contains_key(r), "{name}: no {r}");
            }
            assert!(e.non_ip > 0, "{name}: no non-IP frames");
        }
        family => {
            assert!(e.parse_errors.is_empty() && e.non_ip == 0, "{name}");
            assert_eq!(e.attacks.len(), 1, "{name}");
            let a = &e.attacks[0];
            assert_eq!(a.family, family, "{name}");
            assert!(!a.vectors.is_empty());
            let t = e.ips.iter().find(|i| i.ip == a.target).unwrap();
            assert!(t.peak_pps >= 1500, "{name}: target peak {}", t.peak_pps);
            // 1-3 s of quiet before the onset; the attack lasts 1-3 s.
            let quiet = a.onset_ns - e.first_ts_ns;
            assert!((1_000_000_000..=3_000_000_000).contains(&quiet), "{name}");
            let dur = a.end_ns - a.onset_ns;
            assert!((1_000_000_000..=3_000_000_000).contains(&dur), "{name}");
            assert!((a.onset_ts - a.onset_ns as f64 / 1e9).abs() < 1e-6);
            assert!(a.packets <= t.packets_in && a.packets * 10 >= e.packets * 8);
            if family == "multi_vector" {
                assert_eq!(a.vectors.len(), 3);
                for class in ["syn", "udp", "icmp"] {
                    let n = t.classes_in.get(class).map_or(0, |c| c.packets);
                    assert!(
                        n * 4 >= e.packets,
                        "{name}: {class} is {n} of {}",
                        e.packets
                    );
                }
            }
        }
    }
}

#[test]
fn expected_files_are_consistent() {
    let specs = catalogue();
    let mut total = 0;
    for spec in &specs {
        let e = load_expected(spec).unwrap_or_else(|err| panic!("{}: {err}", spec.name));
        assert_eq!(e.capture, spec.file_name);
        assert_eq!(e.format, spec.format.name());
        assert_eq!(e.snaplen, spec.snaplen);
        // (`deny_unknown_fields` on the serde types: loading proves they cover the whole file.)
        check_expected(&e, spec.label);
        total += fs::metadata(captures_dir().join(&spec.file_name))
            .unwrap()
            .len();
    }
    assert!(total <= 4_500_000, "captures total {total} bytes");
    // Format coverage.
    assert!(specs
        .iter()
        .any(|s| matches!(s.format, Format::Pcapng { .. })));
    assert!(specs.iter().any(|s| s.format.resolution_ns() == 1));
    assert!(specs.iter().any(|s| s.snaplen < 65535));
}
