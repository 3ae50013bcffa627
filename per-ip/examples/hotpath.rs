//! Rough, criterion-free timing of the per-packet path (`cargo run --release --example hotpath`).
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
    if only != "hot" {
        let mut shard = Shard::new(monitor.clone());
        for s in &pkts {
            shard.account(s); // warm the map's capacity
        }
        let d = shard.take_tick();
        shard.recycle(d);
        shard.take_tick();
        let t = Instant::now();
        for _ in 0..4 {
            for s in &pkts {
                shard.account(black_box(s));
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / (4 * N) as f64;
        println!(
            "account (100k monitored dsts, random): {ns:.1} ns/packet = {:.1} Mpps",
            1e3 / ns
        );
        println!("{} IPs in tick", shard.current().len());

        // Skewed: 90% of packets to 1,000 hot addresses, 10% spread over all 100k.
        let skewed: Vec<PacketSummary> = pkts
            .iter()
            .map(|s| {
                let mut s = *s;
                let r = xorshift(&mut rng);
                let i = if r % 10 == 0 { r >> 8 } else { (r >> 8) % 1000 } as usize % hosts.len();
                s.dst = std::net::Ipv4Addr::from(hosts[i]).into();
                s
            })
            .collect();
        let t = Instant::now();
        for _ in 0..4 {
            for s in &skewed {
                shard.account(black_box(s));
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / (4 * N) as f64;
        println!(
            "account (90% to 1k hot, 10% over 100k): {ns:.1} ns/packet = {:.1} Mpps",
            1e3 / ns
        );
    }
    let mut shard = Shard::new(monitor);
    let few: Vec<PacketSummary> = pkts.iter().take(64).copied().collect();
    let t = Instant::now();
    for _ in 0..(32 * N / 64) {
        for s in &few {
            shard.account(black_box(s));
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (32 * N) as f64;
    println!(
        "account (64 hot dsts): {ns:.1} ns/packet = {:.1} Mpps",
        1e3 / ns
    );

    if only == "hot" {
        return;
    }
    let auto = Arc::new(Monitor::auto(100_000, GroupId(0)));
    let mut shard = Shard::new(auto);
    let t = Instant::now();
    for _ in 0..4 {
        for s in &pkts {
            let mut s = *s;
            s.dst = std::net::Ipv4Addr::from(xorshift(&mut rng) as u32).into();
            shard.account(black_box(&s));
        }
    }
    let ns = t.elapsed().as_nanos() as f64 / (4 * N) as f64;
    println!("account (auto, random-destination flood, limit 100k): {ns:.1} ns/packet, {} IPs held, overflow {}", shard.current().len(), shard.current().stats().overflow.packets);
}
