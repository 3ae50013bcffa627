//! The tracked-address budget: state stays within the limit whatever the traffic, traffic
//! decides who is tracked once the budget is full (a destination sweep cannot blind the
//! sensor to a flood that follows), quiet addresses leave, and an evicted id never carries
//! another address's counts.

use std::net::IpAddr;
use std::sync::Arc;

use surgewatch_per_ip::{
    Accounting, ClosedTick, GroupId, IpCounters, IpId, Monitor, NextTick, Rearm, Shard, TickDelta,
    TickLength,
};
use surgewatch_pipeline::{proto, PacketSummary};

const S: u64 = 1_000_000_000;

fn udp(dst: IpAddr) -> PacketSummary {
    let mut s = PacketSummary::empty(100);
    s.src = "198.51.100.7".parse().unwrap();
    s.dst = dst;
    s.ip_version = if dst.is_ipv6() { 6 } else { 4 };
    s.has_l4 = true;
    s.protocol = proto::UDP;
    s.src_port = 40_000;
    s.dst_port = 80;
    s
}

fn v4(i: u32) -> IpAddr {
    IpAddr::from(0x0a00_0000u32.wrapping_add(i).to_be_bytes())
}

/// What a test reads from one closed tick.
#[derive(Debug, Default)]
struct Seen {
    ips: Vec<(IpId, IpAddr, IpCounters)>,
    evicted: Vec<(IpId, IpAddr)>,
    overflow: u64,
    admitted: usize,
    /// Untracked packets in configured prefixes and in /24 or /64 networks.
    untracked_configured: Vec<(String, u64)>,
    untracked_fine: u64,
}

impl Seen {
    fn of(t: &ClosedTick<'_>) -> Self {
        Seen {
            ips: t.iter().map(|(id, r, c)| (id, r.ip.ip(), *c)).collect(),
            evicted: t.evicted().iter().map(|(id, k, _)| (*id, k.ip())).collect(),
            overflow: t.stats.overflow.packets,
            admitted: t.admitted,
            untracked_configured: t
                .untracked()
                .iter()
                .filter(|u| u.configured)
                .map(|u| (u.net.to_string(), u.total().packets))
                .collect(),
            untracked_fine: t
                .untracked()
                .iter()
                .filter(|u| !u.configured)
                .map(|u| u.total().packets)
                .sum(),
        }
    }

    fn packets_of(&self, ip: IpAddr) -> Option<u64> {
        self.ips
            .iter()
            .find(|e| e.1 == ip)
            .map(|e| e.2.grand_total().packets)
    }
}

struct Run {
    shards: Vec<Shard>,
    acct: Accounting,
    tick: u64,
    keep: Option<Vec<IpId>>,
}

impl Run {
    fn new(monitor: Monitor, shards: usize) -> Self {
        let m = Arc::new(monitor);
        Run {
            shards: (0..shards).map(|_| Shard::new(m.clone())).collect(),
            acct: Accounting::new(m, TickLength::from_nanos(S).unwrap()),
            tick: 0,
            keep: None,
        }
    }

    /// Deals `pkts` over the shards round-robin.
    fn feed(&mut self, pkts: &[PacketSummary]) {
        let n = self.shards.len();
        for (i, p) in pkts.iter().enumerate() {
            self.shards[i % n].account(p);
        }
    }

    /// Closes the tick; returns what it saw and the re-arm, not yet applied.
    fn close_only(&mut self) -> (Seen, Vec<TickDelta>, Rearm) {
        let mut deltas: Vec<TickDelta> = self.shards.iter_mut().map(Shard::take_tick).collect();
        let mut seen = Seen::default();
        let keep = self.keep.take();
        let rearm = self.acct.close_tick(self.tick * S, &mut deltas, |t| {
            seen = Seen::of(t);
            NextTick {
                keep,
                ..NextTick::default()
            }
        });
        self.tick += 1;
        assert!(self.acct.tracked() <= self.acct.report(0).totals.ip_limit.unwrap() as usize);
        (seen, deltas, rearm)
    }

    fn rearm(&mut self, deltas: Vec<TickDelta>, r: &Rearm) {
        for (s, d) in self.shards.iter_mut().zip(deltas) {
            s.rearm(d, r);
        }
    }

    /// A tick boundary with every shard re-armed before the next packet (replay).
    fn close(&mut self) -> Seen {
        let (seen, deltas, r) = self.close_only();
        self.rearm(deltas, &r);
        seen
    }
}

#[test]
fn a_flood_after_a_sweep_that_filled_the_budget_is_tracked_from_the_next_tick() {
    let limit = 1_000;
    let mut run = Run::new(Monitor::auto(limit, GroupId(0)), 2);
    // A sweep over three times the budget, one packet each.
    let sweep: Vec<_> = (0..3_000).map(|i| udp(v4(i))).collect();
    run.feed(&sweep);
    let t0 = run.close();
    assert_eq!(t0.ips.len(), limit);
    assert_eq!(t0.overflow, 2_000);

    // The sweep goes on over new addresses while a flood starts: the flood is untracked in
    // its first tick, and admitted at its end in place of a quiet sweep address.
    let flood = v4(0x00ff_0000);
    let mut tick: Vec<_> = (3_000..6_000).map(|i| udp(v4(i))).collect();
    tick.extend(std::iter::repeat_n(udp(flood), 5_000));
    run.feed(&tick);
    let t1 = run.close();
    assert_eq!(t1.packets_of(flood), None);
    assert_eq!(t1.overflow, 8_000);
    assert_eq!(t1.admitted, 1);
    assert_eq!(t1.evicted.len(), 1);
    assert_eq!(run.acct.tracked(), limit);

    let mut tick: Vec<_> = (6_000..9_000).map(|i| udp(v4(i))).collect();
    tick.extend(std::iter::repeat_n(udp(flood), 5_000));
    run.feed(&tick);
    let t2 = run.close();
    assert_eq!(t2.packets_of(flood), Some(5_000));
    assert_eq!(t2.overflow, 3_000);

    let report = run.acct.report(3);
    assert_eq!(report.top[0].ip, flood);
    assert_eq!(report.totals.tracked_ips, limit as u64);
    assert_eq!(report.totals.evicted_ips, 1);
    assert_eq!(report.totals.admitted_heavy_ips, 1);
    assert_eq!(report.totals.monitored_ips_seen, limit as u64 + 1);
    assert_eq!(report.totals.overflow_packets, 2_000 + 8_000 + 3_000);
}

#[test]
fn kept_and_busy_addresses_are_not_evicted_and_the_quiet_one_goes_first() {
    let m = Monitor::auto(3, GroupId(0)).with_untracked_admission(10);
    let mut run = Run::new(m, 1);
    let (a, b, c, f) = (v4(1), v4(2), v4(3), v4(9));
    run.feed(&[udp(a), udp(b), udp(c)]);
    run.close();
    let id_a = run.acct.id_of(a).unwrap();
    // b has traffic later than a and c; a is kept (an open incident, say).
    run.feed(&[udp(b)]);
    run.keep = Some(vec![id_a]);
    run.close();
    run.feed(&vec![udp(f); 50]);
    // c is the quietest address that is neither kept nor busy.
    let t = run.close();
    assert_eq!(t.evicted.iter().map(|e| e.1).collect::<Vec<_>>(), [c]);
    assert!(run.acct.id_of(a).is_some() && run.acct.id_of(b).is_some());
    assert!(run.acct.id_of(f).is_some());
    // Below the admission rate nobody is admitted while the budget is full.
    run.feed(&vec![udp(v4(10)); 9]);
    let t = run.close();
    assert_eq!((t.admitted, t.evicted.len()), (0, 0));
}

#[test]
fn an_id_that_changes_hands_never_carries_the_old_addresses_counts() {
    // Live capture: workers re-armed one tick late keep counting an evicted address into
    // its old id until they hear of the eviction; those counts are overflow, and the id's
    // next address starts clean.
    let m = Monitor::auto(2, GroupId(0)).with_untracked_admission(10);
    let mut run = Run::new(m, 1);
    let (a, b, f, g) = (v4(1), v4(2), v4(3), v4(4));
    run.feed(&[udp(a), udp(b)]);
    run.close();
    let id_a = run.acct.id_of(a).unwrap();
    // Tick 1: b stays busy, f floods: a (quiet) is evicted for f.
    run.feed(&[udp(b)]);
    run.feed(&vec![udp(f); 100]);
    let (t1, deltas, r) = run.close_only();
    assert_eq!(t1.evicted, [(id_a, a)]);
    // Before the shard hears of it, seven packets to a are counted under a's old id.
    run.feed(&vec![udp(a); 7]);
    run.rearm(deltas, &r);
    // Tick 2: f is tracked; g floods and takes b's place (b is quiet now).
    run.feed(&vec![udp(f); 50]);
    run.feed(&vec![udp(g); 100]);
    let t2 = run.close();
    assert_eq!(t2.packets_of(f), Some(50));
    assert_eq!(t2.packets_of(a), None);
    assert!(t2.ips.iter().all(|e| e.0 != id_a), "{:?}", t2.ips);
    assert_eq!(t2.overflow, 7 + 100);
    // g got a's old id; it holds g's packets only.
    let id_g = run.acct.id_of(g).unwrap();
    assert_eq!(id_g, id_a);
    run.feed(&vec![udp(g); 30]);
    let t3 = run.close();
    assert_eq!(t3.ips, [(id_g, g, t3.ips[0].2)]);
    assert_eq!(t3.packets_of(g), Some(30));
    assert_eq!(run.acct.record(id_g).unwrap().ip.ip(), g);
    assert_eq!(
        run.acct.record(id_g).unwrap().totals.grand_total().packets,
        30
    );
}

#[test]
fn idle_addresses_leave_when_the_budget_is_nearly_full() {
    let m = Monitor::auto(8, GroupId(0))
        .with_untracked_admission(0)
        .with_idle_eviction(3 * S);
    let mut run = Run::new(m, 2);
    run.feed(&(0..8).map(|i| udp(v4(i))).collect::<Vec<_>>());
    run.close();
    let mut evicted = Vec::new();
    for _ in 1..=4 {
        run.feed(&[udp(v4(0))]);
        evicted.extend(run.close().evicted);
    }
    // Quiet since tick 0: gone at the boundary of tick 3 (3 s later); v4(0) stays.
    assert_eq!(
        evicted.iter().map(|e| e.1).collect::<Vec<_>>(),
        (1..8).map(v4).collect::<Vec<_>>()
    );
    assert_eq!(run.acct.tracked(), 1);
    // Room again: new addresses are admitted as usual.
    run.feed(&(100..110).map(|i| udp(v4(i))).collect::<Vec<_>>());
    let t = run.close();
    assert_eq!(t.admitted, 7);
    let totals = run.acct.report(0).totals;
    assert_eq!(
        (
            totals.tracked_ips,
            totals.evicted_ips,
            totals.monitored_ips_seen
        ),
        (8, 7, 15)
    );
}

#[test]
fn tracked_state_stays_within_the_budget_under_random_destinations() {
    // A random v6 scan of a monitored /48 with a flood inside it, over many ticks and three
    // shards: never more tracked than the budget, and the flood is found.
    let table =
        surgewatch_per_ip::PrefixTable::new([("2001:db8:7::/48".parse().unwrap(), GroupId(0))])
            .unwrap();
    let limit = 500;
    let m = Monitor::prefixes(table).with_ip_limit(limit);
    let mut run = Run::new(m, 3);
    let mut x: u64 = 0x1234_5678;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base: u128 = 0x2001_0db8_0007 << 80;
    let flood = IpAddr::from((base | 0xdead).to_be_bytes());
    let mut found = None;
    for t in 0..12 {
        let mut pkts: Vec<_> = (0..2_000)
            .map(|_| {
                let low = u128::from(next()) | (u128::from(next() & 0xffff) << 64);
                udp(IpAddr::from((base | low).to_be_bytes()))
            })
            .collect();
        if t >= 4 {
            pkts.extend(std::iter::repeat_n(udp(flood), 3_000));
        }
        run.feed(&pkts);
        let seen = run.close();
        assert!(run.acct.tracked() <= limit);
        if t > 0 {
            // Everything left untracked is still counted, in the /48 and in its /64s.
            assert!(seen.overflow > 0);
            assert_eq!(
                seen.untracked_configured,
                [("2001:db8:7::/48".to_string(), seen.overflow)]
            );
            assert_eq!(seen.untracked_fine, seen.overflow);
        }
        if found.is_none() && seen.packets_of(flood) == Some(3_000) {
            found = Some(t);
        }
    }
    assert_eq!(
        found,
        Some(5),
        "the flood is counted from its second tick on"
    );
}

#[test]
fn a_shard_that_missed_a_boundary_never_counts_into_ids_that_changed_hands() {
    // Live capture with a worker late for a tick: the merger closes the tick without its
    // delta, so the shard misses that boundary's evictions. Its counts under lost ids are
    // overflow; a full resync makes it count right again.
    let m = Arc::new(Monitor::auto(2, GroupId(0)).with_untracked_admission(10));
    let mut s0 = Shard::new(m.clone());
    let mut s1 = Shard::new(m.clone());
    let mut acct = Accounting::new(m, TickLength::from_nanos(S).unwrap());
    let (a, b, f, g) = (v4(1), v4(2), v4(3), v4(4));
    let close = |acct: &mut Accounting, deltas: &mut Vec<TickDelta>, t: u64| {
        let mut seen = Seen::default();
        let r = acct.close_tick(t * S, deltas, |c| {
            seen = Seen::of(c);
            NextTick::default()
        });
        (seen, r)
    };
    for s in [&mut s0, &mut s1] {
        s.account(&udp(a));
        s.account(&udp(b));
    }
    let mut d = vec![s0.take_tick(), s1.take_tick()];
    let (_, r) = close(&mut acct, &mut d, 0);
    let mut d = d.into_iter();
    s0.rearm(d.next().unwrap(), &r);
    s1.rearm(d.next().unwrap(), &r);
    let id_a = acct.id_of(a).unwrap();

    // Tick 1: s1 is late; a (quiet) is evicted for f, and only s0 hears of it.
    s0.account(&udp(b));
    for _ in 0..100 {
        s0.account(&udp(f));
    }
    let late = s1.take_tick();
    let mut d = vec![s0.take_tick()];
    let (t1, r) = close(&mut acct, &mut d, 1);
    assert_eq!(t1.evicted, [(id_a, a)]);
    s0.rearm(d.pop().unwrap(), &r);

    // Tick 2: s1 still counts a under its old id; g floods and takes that id (b, quiet,
    // leaves for it).
    for _ in 0..7 {
        s1.account(&udp(a));
    }
    for _ in 0..100 {
        s0.account(&udp(g));
    }
    let mut d = vec![s0.take_tick(), late, s1.take_tick()];
    let (t2, r) = close(&mut acct, &mut d, 2);
    assert_eq!(t2.packets_of(a), None);
    assert!(t2.ips.iter().all(|e| e.0 != id_a), "{:?}", t2.ips);
    assert_eq!(t2.overflow, 7 + 100);
    assert_eq!(acct.id_of(g), Some(id_a));
    let mut d = d.into_iter();
    s0.rearm(d.next().unwrap(), &r);
    s1.recycle(d.next().unwrap());
    // s1 gets this boundary's re-arm, but not the one it missed: it still has a under the
    // id that is g's now.
    s1.rearm(d.next().unwrap(), &r);

    // Tick 3: s1's packets to a are not g's.
    for _ in 0..5 {
        s1.account(&udp(a));
    }
    for _ in 0..20 {
        s0.account(&udp(g));
    }
    let mut d = vec![s0.take_tick(), s1.take_tick()];
    let (t3, r) = close(&mut acct, &mut d, 3);
    assert_eq!(t3.packets_of(g), Some(20));
    assert_eq!(t3.overflow, 5);
    let mut d = d.into_iter();
    s0.rearm(d.next().unwrap(), &r);
    s1.rearm(d.next().unwrap(), &acct.resync());

    // Tick 4: resynchronised, s1 counts g under its id and a as untracked.
    for _ in 0..30 {
        s1.account(&udp(g));
    }
    for _ in 0..5 {
        s1.account(&udp(a));
    }
    let mut d = vec![s0.take_tick(), s1.take_tick()];
    let (t4, _) = close(&mut acct, &mut d, 4);
    assert_eq!(t4.packets_of(g), Some(30));
    assert_eq!(t4.packets_of(a), None);
    assert_eq!(t4.overflow, 5);
}

#[test]
fn a_budget_kept_busy_still_makes_room_for_a_flood() {
    // Every tracked address gets a packet every tick (a whole prefix swept each tick): none
    // is quiet, so the lightest of the tick make room for a much heavier one.
    let mut run = Run::new(Monitor::auto(100, GroupId(0)), 2);
    let busy: Vec<_> = (0..100).map(|i| udp(v4(i))).collect();
    run.feed(&busy);
    run.close();
    let flood = v4(0x00ff_0000);
    let mut tick = busy.clone();
    tick.extend(std::iter::repeat_n(udp(flood), 5_000));
    run.feed(&tick);
    let t1 = run.close();
    assert_eq!((t1.admitted, t1.evicted.len()), (1, 1));
    // The address that gave way had a packet in the tick: it is untracked traffic of the
    // tick, not counters of an id that changes hands.
    let gone = t1.evicted[0];
    assert!(t1.ips.iter().all(|e| e.0 != gone.0), "{:?}", gone);
    assert_eq!((t1.ips.len(), t1.overflow), (99, 5_001));
    run.feed(&tick);
    let t2 = run.close();
    assert_eq!(t2.packets_of(flood), Some(5_000));
    assert_eq!(run.acct.tracked(), 100);
    // A destination under the admission rate takes nobody's place.
    let mut tick = busy.clone();
    tick.extend(std::iter::repeat_n(udp(flood), 5_000));
    tick.extend(std::iter::repeat_n(udp(v4(0x00ff_0001)), 1));
    run.feed(&tick);
    let t3 = run.close();
    assert_eq!((t3.admitted, t3.evicted.len()), (0, 0));
}
