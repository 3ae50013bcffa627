//! `Shard::account_batch` gives the same per-tick counts as per-packet `account` on real captures.

use std::sync::Arc;

use surgewatch_per_ip::{GroupId, Monitor, PrefixTable, Shard, TickDelta};
use surgewatch_pipeline::{parse, PacketSummary};
use surgewatch_sensor::capture::pcap::PcapFileSource;
use surgewatch_sensor::capture::{Capture, Poll};

fn summaries(path: &std::path::Path) -> Vec<(u64, PacketSummary)> {
    let mut src = PcapFileSource::open(path).expect("open");
    let mut v = Vec::new();
    while let Ok(Poll::Frames(_)) = src.poll(1024, |f| {
        v.push((
            f.ts_nanos / 1_000_000_000,
            parse(f.link, f.data, f.wire_len),
        ))
    }) {}
    v
}

fn sorted(d: &TickDelta) -> Vec<(String, Vec<(u64, u64)>)> {
    let mut v: Vec<_> = d
        .ips()
        .map(|(k, c)| {
            (
                k.ip().to_string(),
                c.by_dir
                    .iter()
                    .flatten()
                    .map(|p| (p.packets, p.bytes))
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn batched_accounting_equals_per_packet_on_every_labelled_capture() {
    let monitor: Vec<_> = surgewatch_pcaps::expected::MONITOR
        .iter()
        .map(|m| (m.parse().expect("cidr"), GroupId(0)))
        .collect();
    let monitor = Arc::new(Monitor::prefixes(PrefixTable::new(monitor).expect("table")));
    for spec in surgewatch_pcaps::catalogue() {
        let all = summaries(&surgewatch_pcaps::captures_dir().join(&spec.file_name));
        for batch in [1usize, 7, 32, 33, 100, 256] {
            let (mut a, mut b) = (Shard::new(monitor.clone()), Shard::new(monitor.clone()));
            let mut i = 0;
            while i < all.len() {
                let tick = all[i].0;
                let mut j = i;
                while j < all.len() && all[j].0 == tick {
                    j += 1;
                }
                let pkts: Vec<PacketSummary> = all[i..j].iter().map(|x| x.1).collect();
                for s in &pkts {
                    a.account(s);
                }
                for c in pkts.chunks(batch) {
                    b.account_batch(c);
                }
                let (da, db) = (a.take_tick(), b.take_tick());
                assert_eq!(
                    sorted(&da),
                    sorted(&db),
                    "{} tick {tick} batch {batch}",
                    spec.name
                );
                // As the replay engine does: hand the maps back for reuse.
                a.recycle(da);
                b.recycle(db);
                i = j;
            }
        }
    }
}

#[test]
fn batched_accounting_equals_per_packet_with_watch_sets_installed() {
    use surgewatch_per_ip::{Accounting, TickLength};
    let monitor: Vec<_> = surgewatch_pcaps::expected::MONITOR
        .iter()
        .map(|m| (m.parse().expect("cidr"), GroupId(0)))
        .collect();
    let monitor = Arc::new(Monitor::prefixes(PrefixTable::new(monitor).expect("table")));
    let tick = TickLength::from_nanos(1_000_000_000).expect("tick");
    for spec in surgewatch_pcaps::catalogue() {
        let all = summaries(&surgewatch_pcaps::captures_dir().join(&spec.file_name));
        for batch in [1usize, 32, 100, 256] {
            let (mut a, mut b) = (Shard::new(monitor.clone()), Shard::new(monitor.clone()));
            let (mut aa, mut ab) = (
                Accounting::new(monitor.clone(), tick),
                Accounting::new(monitor.clone(), tick),
            );
            let mut i = 0;
            while i < all.len() {
                let t = all[i].0;
                let mut j = i;
                while j < all.len() && all[j].0 == t {
                    j += 1;
                }
                let pkts: Vec<PacketSummary> = all[i..j].iter().map(|x| x.1).collect();
                for s in &pkts {
                    a.account(s);
                }
                for c in pkts.chunks(batch) {
                    b.account_batch(c);
                }
                let mut da = [a.take_tick()];
                let mut db = [b.take_tick()];
                let ca: Vec<_> = aa
                    .end_tick(t * 1_000_000_000, &mut da)
                    .iter()
                    .map(|(_, r, c)| (r.ip, *c))
                    .collect();
                let cb: Vec<_> = ab
                    .end_tick(t * 1_000_000_000, &mut db)
                    .iter()
                    .map(|(_, r, c)| (r.ip, *c))
                    .collect();
                assert_eq!(ca, cb, "{} tick {t} batch {batch}", spec.name);
                let watch: Vec<std::net::IpAddr> = ca.iter().map(|(k, _)| k.ip()).collect();
                aa.set_watch(watch.clone());
                ab.set_watch(watch);
                let [da] = da;
                let [db] = db;
                a.rearm(da, &aa.rearm());
                b.rearm(db, &ab.rearm());
                i = j;
            }
        }
    }
}
