//! Per-prefix aggregates of the inbound traffic the tracked-address budget left untracked:
//! what keeps an attack on thousands of addresses visible (a scan or a carpet-bombing attack
//! over a monitored /48 or /16) when the addresses themselves have no state.
//!
//! Each untracked inbound packet is counted, per traffic class, in the /24 (IPv4) or /64
//! (IPv6) that holds its destination, and in the longest configured prefix that holds it
//! (prefix mode; unless that prefix is the same /24 or /64: each network is counted once):
//! by the shard that left it untracked, or by the merger for the new addresses it could not
//! admit, so that the sums do not depend on how packets were spread over shards. Of them
//! the tick reports the [`MAX_NETS_PER_TICK`] busiest /24-/64 networks (by a fixed order, so
//! which does not depend on the spread either) and every configured prefix. Each shard keeps
//! at most [`MAX_NETS_PER_SHARD`] of each a tick (beyond that, which packets are aggregated
//! can depend on the spread); what does not fit is still in the tick's overflow total.

use hashbrown::HashMap;
use ipnet::IpNet;
use surgewatch_pipeline::TrafficClass;

use crate::counters::PacketsBytes;
use crate::key::{GroupId, IpKey};
use crate::prefix::{net_of, PrefixTable};

/// Most /24-/64 networks reported per tick ([`ClosedTick::untracked`](crate::ClosedTick::untracked)):
/// the busiest (ties: by address), so which are reported does not depend on the spread.
pub const MAX_NETS_PER_TICK: usize = 4096;
/// Most networks (and as many configured prefixes) one shard, or the merger, aggregates in a
/// tick: beyond this, which packets are aggregated can depend on how they were spread over
/// shards (about 3 MiB of counters at the bound).
pub const MAX_NETS_PER_SHARD: usize = 16_384;

/// Inbound packets and bytes per traffic class (by [`TrafficClass::index`]).
pub type ClassCounts = [PacketsBytes; TrafficClass::COUNT];

/// The key of an aggregate: its network and whether it is a configured prefix (else the /24
/// or /64 of monitored space).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NetKey {
    v6: bool,
    net: u128,
    len: u8,
    configured: bool,
}

impl NetKey {
    /// The /24 or /64 of `ip`.
    fn fine(ip: IpKey) -> Self {
        let (v6, addr) = ip.parts();
        let len = if v6 { 64 } else { 24 };
        let host = if v6 { 64 } else { 8 };
        NetKey {
            v6,
            net: (addr >> host) << host,
            len,
            configured: false,
        }
    }

    fn net(&self) -> Option<IpNet> {
        net_of(self.v6, self.net, self.len)
    }
}

/// One shard's (or the merger's) aggregates of a tick: the /24 and /64 networks and the
/// configured prefixes apart, each at most [`MAX_NETS_PER_SHARD`].
#[derive(Clone, Debug, Default)]
pub struct UntrackedNets {
    fine: HashMap<NetKey, (GroupId, ClassCounts)>,
    configured: HashMap<NetKey, (GroupId, ClassCounts)>,
    unaggregated: PacketsBytes,
}

impl UntrackedNets {
    /// Counts one untracked inbound packet of `bytes` and traffic class `class` to `ip`,
    /// monitored in `group`.
    #[cold]
    pub(crate) fn add(
        &mut self,
        table: &PrefixTable,
        ip: IpKey,
        group: GroupId,
        class: usize,
        bytes: u32,
    ) {
        let mut c = [PacketsBytes::default(); TrafficClass::COUNT];
        add_class(&mut c, class, bytes);
        self.add_counts(table, ip, group, &c);
    }

    /// Counts an untracked address's inbound packets and bytes of a tick, per class.
    pub(crate) fn add_counts(
        &mut self,
        table: &PrefixTable,
        ip: IpKey,
        group: GroupId,
        counts: &ClassCounts,
    ) {
        if counts.iter().all(|c| c.packets == 0) {
            return;
        }
        let fine = NetKey::fine(ip);
        let configured = (!table.is_empty())
            .then(|| table.longest_match(ip.ip()))
            .flatten()
            .map(|n| NetKey {
                v6: n.addr().is_ipv6(),
                net: match n.network() {
                    std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
                    std::net::IpAddr::V6(a) => u128::from(a),
                },
                len: n.prefix_len(),
                configured: true,
            })
            // A configured /24 or /64 is its own fine network: counted once.
            .filter(|k| (k.net, k.len) != (fine.net, fine.len));
        let total = counts.iter().fold(PacketsBytes::default(), |mut t, c| {
            t.add(c);
            t
        });
        for (key, map) in std::iter::once((fine, &mut self.fine))
            .chain(configured.map(|k| (k, &mut self.configured)))
        {
            let room = map.len() < MAX_NETS_PER_SHARD;
            match map.get_mut(&key) {
                Some((g, c)) => {
                    // A /24 or /64 may hold addresses of several groups: the lowest one
                    // names it, whatever the order packets came in.
                    *g = (*g).min(group);
                    add_all(c, counts);
                }
                None if room => {
                    map.insert(key, (group, *counts));
                }
                None => self.unaggregated.add(&total),
            }
        }
    }

    /// Empties the aggregates, keeping their memory.
    pub(crate) fn clear(&mut self) {
        self.fine.clear();
        self.configured.clear();
        self.unaggregated = PacketsBytes::default();
    }
}

fn add_all(into: &mut ClassCounts, from: &ClassCounts) {
    for (i, f) in into.iter_mut().zip(from) {
        i.add(f);
    }
}

fn add_class(c: &mut ClassCounts, class: usize, bytes: u32) {
    if let Some(pb) = c.get_mut(class) {
        pb.add_packet(u64::from(bytes));
    }
}

/// One aggregate of a closed tick (see [`ClosedTick::untracked`](crate::ClosedTick::untracked)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UntrackedAggregate {
    /// The network.
    pub net: IpNet,
    /// Whether it is a configured prefix (else the /24 or /64 of a monitored address).
    pub configured: bool,
    /// The group its traffic was monitored in (a /24 or /64 with addresses of several groups:
    /// the lowest of them).
    pub group: GroupId,
    /// Its untracked inbound packets and bytes per class in the tick.
    pub classes: ClassCounts,
}

impl UntrackedAggregate {
    /// Packets and bytes of every class together.
    pub fn total(&self) -> PacketsBytes {
        let mut t = PacketsBytes::default();
        for c in &self.classes {
            t.add(c);
        }
        t
    }
}

/// Sums every shard's aggregates of a tick into `out`, sorted by configured-ness (fine
/// networks first), family, network and length; returns the packet accountings no shard
/// could aggregate.
pub(crate) fn merge<'a>(
    shards: impl IntoIterator<Item = &'a UntrackedNets>,
    scratch: &mut HashMap<NetKey, (GroupId, ClassCounts)>,
    out: &mut Vec<UntrackedAggregate>,
) -> PacketsBytes {
    scratch.clear();
    out.clear();
    let mut unaggregated = PacketsBytes::default();
    for s in shards {
        unaggregated.add(&s.unaggregated);
        for (k, (g, c)) in s.fine.iter().chain(&s.configured) {
            let e = scratch
                .entry(*k)
                .or_insert((*g, [PacketsBytes::default(); TrafficClass::COUNT]));
            e.0 = e.0.min(*g);
            add_all(&mut e.1, c);
        }
    }
    let mut keys: Vec<NetKey> = scratch.keys().copied().collect();
    let fine = keys.iter().filter(|k| !k.configured).count();
    if fine > MAX_NETS_PER_TICK {
        // The busiest fine networks, ties by address; every configured prefix.
        let packets = |k: &NetKey| -> u64 {
            scratch
                .get(k)
                .map_or(0, |(_, c)| c.iter().map(|p| p.packets).sum())
        };
        let mut by_load: Vec<(std::cmp::Reverse<u64>, NetKey)> = keys
            .iter()
            .filter(|k| !k.configured)
            .map(|k| (std::cmp::Reverse(packets(k)), *k))
            .collect();
        by_load.select_nth_unstable(MAX_NETS_PER_TICK - 1);
        for (p, k) in by_load.drain(MAX_NETS_PER_TICK..) {
            unaggregated.add(&PacketsBytes {
                packets: p.0,
                bytes: scratch
                    .get(&k)
                    .map_or(0, |(_, c)| c.iter().map(|x| x.bytes).sum()),
            });
            scratch.remove(&k);
        }
        keys = scratch.keys().copied().collect();
    }
    keys.sort_unstable_by_key(|k| (k.configured, k.v6, k.net, k.len));
    for k in keys {
        if let (Some(net), Some(&(group, classes))) = (k.net(), scratch.get(&k)) {
            out.push(UntrackedAggregate {
                net,
                configured: k.configured,
                group,
                classes,
            });
        }
    }
    unaggregated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_go_to_their_fine_network_and_their_configured_prefix() {
        let table = PrefixTable::new([
            ("10.20.0.0/16".parse().unwrap(), GroupId(1)),
            ("2001:db8:7::/48".parse().unwrap(), GroupId(2)),
        ])
        .unwrap();
        let mut a = UntrackedNets::default();
        let mut b = UntrackedNets::default();
        let v4 = |s: &str| IpKey::from(s.parse::<std::net::IpAddr>().unwrap());
        a.add(&table, v4("10.20.3.4"), GroupId(1), 5, 100);
        b.add(&table, v4("10.20.3.200"), GroupId(1), 5, 50);
        b.add(&table, v4("10.20.9.1"), GroupId(1), 0, 60);
        b.add(&table, v4("2001:db8:7:1::9"), GroupId(2), 0, 80);
        let mut out = Vec::new();
        let lost = merge([&a, &b], &mut HashMap::new(), &mut out);
        assert_eq!(lost.packets, 0);
        let got: Vec<(String, bool, u64, u64)> = out
            .iter()
            .map(|u| {
                (
                    u.net.to_string(),
                    u.configured,
                    u.total().packets,
                    u.total().bytes,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("10.20.3.0/24".into(), false, 2, 150),
                ("10.20.9.0/24".into(), false, 1, 60),
                ("2001:db8:7:1::/64".into(), false, 1, 80),
                ("10.20.0.0/16".into(), true, 3, 210),
                ("2001:db8:7::/48".into(), true, 1, 80),
            ]
        );
        assert_eq!(out[0].classes[5].packets, 2);
    }

    #[test]
    fn a_tick_reports_the_busiest_networks_whatever_the_spread() {
        let table = PrefixTable::default();
        let n = MAX_NETS_PER_TICK as u32 + 100;
        let report = |shards: usize| {
            let mut s: Vec<UntrackedNets> = (0..shards).map(|_| UntrackedNets::default()).collect();
            for i in 0..n {
                let k = IpKey::v4(i << 8);
                let packets = if i == n - 1 { 10 } else { 1 };
                for p in 0..packets {
                    s[(i as usize + p) % shards].add(&table, k, GroupId(0), 0, 100);
                }
            }
            let mut out = Vec::new();
            let lost = merge(s.iter(), &mut HashMap::new(), &mut out);
            (out, lost)
        };
        let (one, lost) = report(1);
        assert_eq!(one.len(), MAX_NETS_PER_TICK);
        assert_eq!(lost.packets, 100);
        assert!(
            one.iter().any(|u| u.total().packets == 10),
            "the busiest is kept"
        );
        assert_eq!(report(3), (one, lost));
    }

    #[test]
    fn a_shard_keeps_a_bounded_number_of_networks() {
        let mut a = UntrackedNets::default();
        let table = PrefixTable::default();
        for i in 0..(MAX_NETS_PER_SHARD as u32 + 10) {
            a.add(&table, IpKey::v4(i << 8), GroupId(0), 0, 1);
        }
        assert_eq!(a.fine.len(), MAX_NETS_PER_SHARD);
        assert_eq!(a.unaggregated.packets, 10);
        a.clear();
        assert!(a.fine.is_empty());
    }
}
