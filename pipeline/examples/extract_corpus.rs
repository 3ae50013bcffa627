//! Builds the seed corpus of the `frame_parser` fuzz target (see `fuzz/README.md`).
//!
//! ```text
//! cargo run --example extract_corpus -p surgewatch-pipeline -- --out DIR [--seeds] [--max N] [PATH...]
//! ```
//!
//! - `--seeds` writes the hand-built frames below as `seed-<name>`.
//! - Each PATH is a classic pcap file or a directory searched for `*.pcap` / `*.cap`; frames
//!   are written as `pcap-<file stem>-<hash>`. pcapng files are skipped (with a note).
//!   Per capture, the first 16 frames are kept, then only frames whose parsed shape (status,
//!   class, IP version, VLAN depth, fragment) is new, up to `--max` (default 64).
//!
//! Every corpus file is one selector byte (index into [`LINKS`], the same table as the fuzz
//! target) followed by the frame bytes. Selectors below 8 leave the option bits clear, which the
//! fuzz target reads as "decapsulate every tunnel".

use std::collections::HashSet;
use std::error::Error;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use surgewatch_pipeline::{parse_with, LinkType, ParseOptions};

/// Selector byte → link type. Must match `fuzz/fuzz_targets/frame_parser.rs`.
const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::RawIp,
    LinkType::RawIpv4,
    LinkType::RawIpv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
];

/// Frames longer than this are cut: the parser never looks far into a frame.
const MAX_FRAME: usize = 512;

fn selector(link: LinkType) -> u8 {
    LINKS.iter().position(|l| *l == link).unwrap_or(0) as u8
}

type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let mut out = None;
    let mut seeds = false;
    let mut max = 64usize;
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--seeds" => seeds = true,
            "--max" => max = args.next().ok_or("--max needs a number")?.parse()?,
            "-h" | "--help" => {
                eprintln!("usage: extract_corpus --out DIR [--seeds] [--max N] [PCAP|DIR...]");
                return Ok(());
            }
            _ => inputs.push(PathBuf::from(a)),
        }
    }
    let out = out.ok_or("--out DIR is required")?;
    std::fs::create_dir_all(&out)?;

    if seeds {
        for (name, link, frame) in hand_built() {
            write_entry(&out, &format!("seed-{name}"), link, &frame)?;
        }
        println!("wrote {} hand-built seeds", hand_built().len());
    }

    let mut files = Vec::new();
    for input in &inputs {
        collect(input, &mut files, 0)?;
    }
    files.sort();
    for file in files {
        match extract(&file, &out, max) {
            Ok(n) => println!("{}: {n} frames", file.display()),
            Err(e) => println!("{}: skipped ({e})", file.display()),
        }
    }
    Ok(())
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, depth: usize) -> Res<()> {
    if path.is_dir() {
        if depth > 4 || path.file_name().is_some_and(|n| n == "target") {
            return Ok(());
        }
        for entry in std::fs::read_dir(path)? {
            collect(&entry?.path(), files, depth + 1)?;
        }
    } else if path
        .extension()
        .is_some_and(|e| e == "pcap" || e == "cap" || e == "pcapng")
    {
        files.push(path.to_path_buf());
    }
    Ok(())
}

fn write_entry(out: &Path, name: &str, link: LinkType, frame: &[u8]) -> Res<()> {
    let mut data = Vec::with_capacity(frame.len() + 1);
    data.push(selector(link));
    data.extend_from_slice(&frame[..frame.len().min(MAX_FRAME)]);
    std::fs::write(out.join(name), data)?;
    Ok(())
}

/// Reads a classic pcap file by hand (both byte orders, micro- and nanosecond magic).
fn extract(file: &Path, out: &Path, max: usize) -> Res<usize> {
    let bytes = std::fs::read(file)?;
    let magic: [u8; 4] = bytes.get(..4).ok_or("too short")?.try_into()?;
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        [0x0a, 0x0d, 0x0d, 0x0a] => return Err("pcapng is not supported".into()),
        _ => return Err("not a pcap file".into()),
    };
    let u32_at = |at: usize| -> Res<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4).ok_or("truncated")?.try_into()?;
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    // The low 16 bits are the link type; the upper bits may carry FCS information.
    let code = u32_at(20)? & 0xffff;
    let link = LinkType::from_linktype(code).ok_or_else(|| format!("link type {code}"))?;
    let stem = file
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        })
        .unwrap_or_default();

    let mut at = 24;
    let (mut seen, mut shapes, mut written) = (HashSet::new(), HashSet::new(), 0);
    let mut index = 0usize;
    while written < max {
        let Ok(caplen) = u32_at(at + 8) else { break };
        let orig = u32_at(at + 12)?;
        let start = at + 16;
        let Some(frame) = bytes.get(start..start + caplen as usize) else {
            break;
        };
        at = start + caplen as usize;
        index += 1;
        let frame = &frame[..frame.len().min(MAX_FRAME)];
        // Selectors below 8 fuzz with every tunnel decapsulated (see the fuzz target).
        let s = parse_with(link, frame, orig, &ParseOptions::MIRROR);
        let shape = (
            s.encap,
            s.status,
            s.class(),
            s.ip_version,
            s.vlan_depth,
            s.frag,
            s.has_l4,
        );
        let new_shape = shapes.insert(shape);
        if index > 16 && !new_shape {
            continue;
        }
        let mut h = DefaultHasher::new();
        frame.hash(&mut h);
        let hash = h.finish();
        if seen.insert(hash) {
            write_entry(out, &format!("pcap-{stem}-{hash:016x}"), link, frame)?;
            written += 1;
        }
    }
    Ok(written)
}

// ---- hand-built seeds ----------------------------------------------------------------------

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

fn ipv4(protocol: u8, payload: &[u8], flags_off: u16, options: &[u8]) -> Vec<u8> {
    let hl = 20 + options.len();
    let total = (hl + payload.len()) as u16;
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&flags_off.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2]);
    h.extend_from_slice(options);
    h.extend_from_slice(payload);
    h
}

fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    h.extend_from_slice(payload);
    h
}

fn tcp(flags: u8) -> Vec<u8> {
    vec![
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
    ]
}

fn udp(dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = vec![0xd4, 0x31];
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

fn eth(ethertype: u16, tags: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut f = MACS.to_vec();
    let mut next = ethertype;
    if let Some(&(outer, _)) = tags.first() {
        next = outer;
    }
    f.extend_from_slice(&next.to_be_bytes());
    for (i, &(_, vid)) in tags.iter().enumerate() {
        f.extend_from_slice(&vid.to_be_bytes());
        let inner = tags.get(i + 1).map_or(ethertype, |t| t.0);
        f.extend_from_slice(&inner.to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

fn hand_built() -> Vec<(&'static str, LinkType, Vec<u8>)> {
    use LinkType::*;
    let v4_syn = ipv4(6, &tcp(0x02), 0, &[]);
    let v6_syn = ipv6(6, &tcp(0x02));
    let dns = udp(53, &[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    let nine_tags: Vec<(u16, u16)> = (1..=9).map(|i| (0x8100, i)).collect();
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&v4_syn);
    let mut sll2 = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0,
    ];
    sll2.extend_from_slice(&v6_syn);
    let ext_chain = [
        &[60u8, 0, 0, 0, 0, 0, 0, 0][..],       // hop-by-hop -> dest opts
        &[43, 0, 0, 0, 0, 0, 0, 0],             // dest opts -> routing
        &[44, 0, 0, 0, 0, 0, 0, 0],             // routing -> fragment
        &[51, 0, 0, 1, 0, 0, 0, 7],             // fragment (first) -> AH
        &[17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // AH (12 bytes) -> UDP
        &dns,
    ]
    .concat();
    let inner_eth = eth(0x0800, &[], &v4_syn);
    let gre = |flags: u16, ptype: u16, rest: &[u8]| {
        [&flags.to_be_bytes()[..], &ptype.to_be_bytes(), rest].concat()
    };
    let erspan2 = [
        &[0, 0, 0, 1][..],                     // GRE sequence number
        &[0x10, 0x64, 0x10, 0x05, 0, 0, 0, 9], // ver 1, VLAN 100, En 802.1Q, session 5
        &inner_eth,
    ]
    .concat();
    let erspan3 = [
        &[0x20, 0x00, 0x00, 0x05, 0, 0, 0x10, 0][..], // ver 2, session 5, timestamp
        &[0, 0, 0x80, 0x01],                          // SGT, P, FT Ethernet, O
        &[0x0c, 0, 0, 1, 0, 0, 0, 2],                 // platform-specific subheader
        &inner_eth,
    ]
    .concat();
    let vxlan = udp(
        4789,
        &[&[0x08, 0, 0, 0, 0, 0x10, 0, 0][..], &inner_eth].concat(),
    );
    let tunnels = vec![
        (
            "tun-gre-teb",
            Ethernet,
            eth(
                0x0800,
                &[],
                &ipv4(
                    47,
                    &gre(0x2000, 0x6558, &[&[0, 0, 0, 7][..], &inner_eth].concat()),
                    0,
                    &[],
                ),
            ),
        ),
        (
            "tun-gre-ipv6-in-ipv6",
            Ethernet,
            eth(0x86dd, &[], &ipv6(47, &gre(0, 0x86dd, &v6_syn))),
        ),
        (
            "tun-erspan2",
            Ethernet,
            eth(
                0x0800,
                &[],
                &ipv4(47, &gre(0x1000, 0x88be, &erspan2), 0, &[]),
            ),
        ),
        (
            "tun-erspan3",
            Ethernet,
            eth(0x0800, &[], &ipv4(47, &gre(0, 0x22eb, &erspan3), 0, &[])),
        ),
        (
            "tun-vxlan",
            Ethernet,
            eth(0x0800, &[], &ipv4(17, &vxlan, 0, &[])),
        ),
        (
            "tun-vxlan-ipv6-erspan2",
            Ethernet,
            eth(
                0x86dd,
                &[],
                &ipv6(
                    17,
                    &udp(
                        4789,
                        &[
                            &[0x08, 0, 0, 0, 0, 0x10, 0, 0][..],
                            &eth(
                                0x0800,
                                &[],
                                &ipv4(47, &gre(0x1000, 0x88be, &erspan2), 0, &[]),
                            ),
                        ]
                        .concat(),
                    ),
                ),
            ),
        ),
    ];
    let mut seeds = vec![
        ("eth-ipv4-tcp-syn", Ethernet, eth(0x0800, &[], &v4_syn)),
        (
            "eth-ipv4-tcp-synack",
            Ethernet,
            eth(0x0800, &[], &ipv4(6, &tcp(0x12), 0, &[])),
        ),
        (
            "eth-ipv4-tcp-rst",
            Ethernet,
            eth(0x0800, &[], &ipv4(6, &tcp(0x14), 0, &[])),
        ),
        (
            "eth-ipv4-udp-dns",
            Ethernet,
            eth(0x0800, &[], &ipv4(17, &dns, 0, &[])),
        ),
        (
            "eth-ipv4-icmp-echo",
            Ethernet,
            eth(0x0800, &[], &ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1], 0, &[])),
        ),
        (
            "eth-ipv4-options",
            Ethernet,
            eth(
                0x0800,
                &[],
                &ipv4(6, &tcp(0x10), 0, &[0x94, 4, 0, 0, 1, 1, 1, 0]),
            ),
        ),
        (
            "eth-ipv4-frag-first",
            Ethernet,
            eth(0x0800, &[], &ipv4(17, &dns, 0x2000, &[])),
        ),
        (
            "eth-ipv4-frag-later",
            Ethernet,
            eth(0x0800, &[], &ipv4(17, &[0; 32], 0x00b9, &[])),
        ),
        (
            "eth-ipv4-gre",
            Ethernet,
            eth(0x0800, &[], &ipv4(47, &[0, 0, 0x65, 0x58], 0, &[])),
        ),
        (
            "eth-vlan-ipv4",
            Ethernet,
            eth(0x0800, &[(0x8100, 100)], &v4_syn),
        ),
        (
            "eth-qinq-ipv6",
            Ethernet,
            eth(0x86dd, &[(0x88a8, 10), (0x8100, 20)], &v6_syn),
        ),
        (
            "eth-9100-9200-ipv4",
            Ethernet,
            eth(0x0800, &[(0x9100, 1), (0x9200, 2)], &v4_syn),
        ),
        ("eth-nine-vlans", Ethernet, eth(0x0800, &nine_tags, &v4_syn)),
        (
            "eth-arp",
            Ethernet,
            eth(
                0x0806,
                &[],
                &[
                    0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 2, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0,
                    0, 2,
                ],
            ),
        ),
        (
            "eth-ipv6-ext-chain-frag",
            Ethernet,
            eth(0x86dd, &[], &ipv6(0, &ext_chain)),
        ),
        (
            "eth-ipv6-frag-later",
            Ethernet,
            eth(
                0x86dd,
                &[],
                &ipv6(44, &[17, 0, 0x05, 0xa8, 0, 0, 0, 9, 0, 0, 0, 0]),
            ),
        ),
        (
            "eth-ipv6-icmpv6",
            Ethernet,
            eth(0x86dd, &[], &ipv6(58, &[128, 0, 0, 0, 0, 1, 0, 1])),
        ),
        (
            "eth-ipv6-truncated-ext",
            Ethernet,
            eth(0x86dd, &[], &ipv6(60, &[6, 3, 0, 0, 0, 0, 0, 0])),
        ),
        ("sll-ipv4-tcp", LinuxSll, sll),
        ("sll2-ipv6-tcp", LinuxSll2, sll2),
        (
            "null-le-ipv4",
            Null,
            [&[2u8, 0, 0, 0][..], &v4_syn].concat(),
        ),
        (
            "null-be-ipv6",
            Null,
            [&[0u8, 0, 0, 30][..], &v6_syn].concat(),
        ),
        ("loop-ipv6", Loop, [&[0u8, 0, 0, 24][..], &v6_syn].concat()),
        ("raw-ipv4-udp", RawIp, ipv4(17, &dns, 0, &[])),
        ("raw-ipv6-tcp", RawIpv6, v6_syn.clone()),
        ("raw-ipv4-only", RawIpv4, v4_syn.clone()),
    ];
    seeds.extend(tunnels);
    seeds
}
