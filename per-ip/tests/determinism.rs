//! Determinism: the same packets give the same closed ticks (counters, amplification counters,
//! watched targets' source analysis) and report whatever the sharding, the order in which
//! shards see packets within a tick, and whether they are accounted one by one or in batches.

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use surgewatch_per_ip::*;
use surgewatch_pipeline::{proto, tcp_flags, Fragment, PacketSummary, ParseStatus};

const TICK: u64 = 1_000_000_000;

const ADDRS: [&str; 14] = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "10.0.1.200",
    "10.9.9.9",
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.5",
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:1::5",
    "2001:db9::9",
    "::ffff:10.0.0.1",
    "fe80::1",
];

#[derive(Clone, Debug)]
struct Pkt {
    tick: u64,
    summary: PacketSummary,
}

fn summary(src: usize, dst: usize, kind: u8, len: u32, status: u8) -> PacketSummary {
    let mut s = PacketSummary::empty(len);
    if status.is_multiple_of(11) {
        s.status = ParseStatus::ALL[1 + usize::from(status) % 11];
        return s; // no IP parsed
    }
    let (mut a, mut b): (IpAddr, IpAddr) =
        (ADDRS[src].parse().unwrap(), ADDRS[dst].parse().unwrap());
    if a.is_ipv4() != b.is_ipv4() {
        b = a;
        a = ADDRS[dst].parse().unwrap();
        if a.is_ipv4() != b.is_ipv4() {
            a = b;
        }
    }
    s.src = a;
    s.dst = b;
    s.ip_version = if b.is_ipv4() { 4 } else { 6 };
    s.has_l4 = !kind.is_multiple_of(13);
    s.protocol = match kind % 5 {
        0 | 1 => proto::TCP,
        2 => proto::UDP,
        3 => proto::ICMP,
        _ => proto::GRE,
    };
    s.tcp_flags = kind & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST | tcp_flags::FIN);
    s.src_port = [53, 123, 11211, 17, 19, 80, 443, 1900][usize::from(kind >> 5)];
    s.dst_port = u16::from(kind) * 7;
    s.ttl = kind.wrapping_mul(31);
    if kind.is_multiple_of(17) {
        s.frag = Fragment::First;
    } else if kind.is_multiple_of(19) {
        s.frag = Fragment::Later;
        s.has_l4 = false;
    }
    if status.is_multiple_of(7) {
        s.status = ParseStatus::TruncatedL4;
    }
    s
}

fn pkt_strategy() -> impl Strategy<Value = Pkt> {
    (
        0u64..5,
        0..ADDRS.len(),
        0..ADDRS.len(),
        any::<u8>(),
        40u32..1500,
        any::<u8>(),
    )
        .prop_map(|(tick, src, dst, kind, len, status)| Pkt {
            tick,
            summary: summary(src, dst, kind, len, status),
        })
}

fn monitor(mode: u8) -> Monitor {
    let table = || {
        PrefixTable::new(
            [
                ("10.0.0.0/24", 0),
                ("10.0.0.2/32", 1),
                ("2001:db8::/32", 2),
                ("2001:db8:1::/48", 3),
                ("::ffff:0:0/96", 4),
            ]
            .map(|(n, g)| (n.parse().unwrap(), GroupId(g))),
        )
        .unwrap()
    };
    match mode {
        0 => Monitor::prefixes(table()),
        1 => Monitor::prefixes(table()).with_ip_limit(3),
        _ => Monitor::auto(4, GroupId(9)),
    }
}

/// What a watched target's source analysis says, in comparable form.
type WatchOut = (IpId, IpAddr, u64, u64, Vec<(IpAddr, u64)>, Vec<(u16, u64)>);

type TickOut = (
    u64,
    Vec<(IpId, IpKey, IpCounters, AmpCounters)>,
    TrafficStats,
    usize,
    Vec<WatchOut>,
    Vec<UntrackedAggregate>,
);

/// Runs packets tick by tick: `shard_of[i]` picks packet i's shard; `order` is the order in
/// which packets are fed (only the order within a tick matters); `batch` > 0 feeds each shard
/// through `account_batch` in batches of that size; `watch[t]` is a bit mask over [`ADDRS`]
/// of the targets watched in tick t + 1.
fn run(
    mode: u8,
    pkts: &[Pkt],
    n_shards: usize,
    shard_of: &[usize],
    order: &[usize],
    batch: usize,
    watch: &[u16],
) -> (Vec<TickOut>, Report) {
    let m = Arc::new(monitor(mode));
    let mut shards: Vec<Shard> = (0..n_shards).map(|_| Shard::new(m.clone())).collect();
    let mut acct = Accounting::new(m, TickLength::from_nanos(TICK).unwrap());
    let mut out = Vec::new();
    for tick in 0..5u64 {
        let mut queues: Vec<Vec<PacketSummary>> = vec![Vec::new(); n_shards];
        for &i in order {
            if pkts[i].tick == tick {
                let sh = shard_of[i] % n_shards;
                if batch == 0 {
                    shards[sh].account(&pkts[i].summary);
                } else {
                    queues[sh].push(pkts[i].summary);
                }
            }
        }
        for (shard, q) in shards.iter_mut().zip(&queues) {
            for b in q.chunks(batch.max(1)) {
                shard.account_batch(b);
            }
        }
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        let closed = acct.end_tick(tick * TICK, &mut deltas);
        out.push((
            tick,
            closed
                .ips()
                .map(|t| (t.id, t.record.ip, *t.counters, *t.amp))
                .collect(),
            *closed.stats,
            closed.admitted,
            closed
                .watched()
                .map(|(id, ip, s)| {
                    (
                        id,
                        ip,
                        s.packets(),
                        s.unique_sources(),
                        s.top_sources(3),
                        s.top_dst_ports(3),
                    )
                })
                .collect(),
            closed.untracked().to_vec(),
        ));
        let mask = watch.get(tick as usize).copied().unwrap_or(0);
        let targets = ADDRS
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, a)| a.parse::<IpAddr>().unwrap());
        acct.set_watch(targets);
        let rearm = acct.rearm();
        for (s, d) in shards.iter_mut().zip(deltas) {
            s.rearm(d, &rearm);
        }
    }
    (out, acct.report(usize::MAX))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn sharding_does_not_change_results(
        pkts in prop::collection::vec(pkt_strategy(), 0..300),
        n_shards in 1usize..=4,
        shard_seed in prop::collection::vec(any::<usize>(), 300),
        order_seed in prop::collection::vec(any::<u32>(), 300),
        mode in 0u8..3,
        batch in prop::sample::select(vec![0usize, 1, 7, 32, 256]),
        watch in prop::collection::vec(any::<u16>(), 5),
    ) {
        let identity: Vec<usize> = (0..pkts.len()).collect();
        let reference = run(mode, &pkts, 1, &vec![0; pkts.len()], &identity, 0, &watch);
        let mut order = identity.clone();
        order.sort_by_key(|&i| order_seed[i]);
        let got = run(mode, &pkts, n_shards, &shard_seed, &order, batch, &watch);
        prop_assert_eq!(&got, &reference);

        // Sanity: totals match the input.
        let total: u64 = pkts.iter().map(|p| u64::from(p.summary.wire_len)).sum();
        prop_assert_eq!(reference.1.totals.packets, pkts.len() as u64);
        prop_assert_eq!(reference.1.totals.bytes, total);
        if let Some(limit) = reference.1.totals.ip_limit {
            prop_assert!(reference.1.totals.monitored_ips_seen <= limit);
        }
    }
}
