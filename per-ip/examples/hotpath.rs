//! Rough, criterion-free timing of the per-packet path, per packet and batched
//! (`cargo run --release --example hotpath [case-substring]`).
//! Not a benchmark: the lead's criterion benches in `bench/` are the reference.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use surgewatch_per_ip::*;
use surgewatch_pipeline::{proto, tcp_flags, PacketSummary};

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn main() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    // 300k prefixes: 100k /32 hosts, 150k /24s, 50k /20..=/29, all under 10/8..100/8.
    let mut prefixes = std::collections::HashMap::new();
    let mut hosts = Vec::new();
    while hosts.len() < 100_000 {
        let a =
            (10 + (xorshift(&mut rng) % 90) as u32) << 24 | (xorshift(&mut rng) as u32 & 0xff_ffff);
        if prefixes
            .insert(format!("{}/32", std::net::Ipv4Addr::from(a)), GroupId(1))
            .is_none()
        {
            hosts.push(a);
        }
    }
    for i in 0..200_000u64 {
        let len = if i < 150_000 {
            24
        } else {
            20 + (xorshift(&mut rng) % 10) as u8
        };
        let a =
            (10 + (xorshift(&mut rng) % 90) as u32) << 24 | (xorshift(&mut rng) as u32 & 0xff_ffff);
        let n = ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc();
        prefixes.insert(n.to_string(), GroupId(2));
    }
    let table = PrefixTable::new(prefixes.iter().map(|(n, g)| (n.parse().unwrap(), *g))).unwrap();
    println!("{} prefixes", table.len());

    const N: usize = 1 << 20;
    let pkts: Vec<PacketSummary> = (0..N)
        .map(|_| {
            let mut s = PacketSummary::empty(64);
            s.ip_version = 4;
            s.dst =
                std::net::Ipv4Addr::from(hosts[(xorshift(&mut rng) % hosts.len() as u64) as usize])
                    .into();
            // Internet sources outside 10/8..100/8.
            s.src = std::net::Ipv4Addr::from(0xc000_0000 | (xorshift(&mut rng) as u32 >> 2)).into();
            s.protocol = proto::TCP;
            s.has_l4 = true;
            s.tcp_flags = tcp_flags::SYN;
            s
        })
        .collect();

    let only = std::env::args().nth(1).unwrap_or_default();
    let t = Instant::now();
    let mut hits = 0u64;
    for _ in 0..4 {
        for s in &pkts {
            hits += u64::from(table.lookup(black_box(s.dst)).is_some());
            hits += u64::from(table.lookup(black_box(s.src)).is_some());
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (8 * N) as f64;
    println!("lookup: {ns:.1} ns/lookup ({hits} hits)");

    let monitor = Arc::new(Monitor::prefixes(table));
    // Skewed: 90% of packets to 1,000 hot addresses, 10% spread over all 100k.
    let skewed: Vec<PacketSummary> = pkts
        .iter()
        .map(|s| {
            let mut s = *s;
            let r = xorshift(&mut rng);
            let i = if r.is_multiple_of(10) {
                r >> 8
            } else {
                (r >> 8) % 1000
            } as usize
                % hosts.len();
            s.dst = std::net::Ipv4Addr::from(hosts[i]).into();
            s
        })
        .collect();
    let hot: Vec<PacketSummary> = pkts.iter().take(64).copied().cycle().take(N).collect();
    let mut flood = pkts.clone();
    for s in &mut flood {
        s.dst = std::net::Ipv4Addr::from(xorshift(&mut rng) as u32).into();
    }
    let auto = Arc::new(Monitor::auto(100_000, GroupId(0)));

    let cases: [(&str, &[PacketSummary], &Arc<Monitor>); 4] = [
        ("100k monitored dsts, random", &pkts, &monitor),
        ("90% to 1k hot, 10% over 100k", &skewed, &monitor),
        ("64 hot dsts", &hot, &monitor),
        ("auto, random-dst flood, limit 100k", &flood, &auto),
    ];
    for (name, pkts, m) in cases {
        if !only.is_empty() && !name.contains(only.as_str()) {
            continue;
        }
        for batched in [false, true] {
            let mut shard = Shard::new(Arc::clone(m));
            // Warm the maps' capacity and the caches, as in a steady state.
            run(&mut shard, pkts, batched);
            let d = shard.take_tick();
            shard.recycle(d);
            shard.take_tick();
            let t = Instant::now();
            for _ in 0..4 {
                run(&mut shard, pkts, batched);
            }
            let ns = t.elapsed().as_nanos() as f64 / (4 * pkts.len()) as f64;
            println!(
                "{:<13} ({name}): {ns:.1} ns/packet = {:.1} Mpps ({} IPs, overflow {})",
                if batched { "account_batch" } else { "account" },
                1e3 / ns,
                shard.current().len(),
                shard.current().stats().overflow.packets,
            );
        }
    }
}

/// Accounts `pkts`, one by one or in batches of 256 (the replay engine's batch size).
fn run(shard: &mut Shard, pkts: &[PacketSummary], batched: bool) {
    if batched {
        for b in pkts.chunks(256) {
            shard.account_batch(black_box(b));
        }
    } else {
        for s in pkts {
            shard.account(black_box(s));
        }
    }
}
