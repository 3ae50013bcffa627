//! The monitored prefix table: longest-prefix match from an address to its [`GroupId`].
//!
//! Built once from the configuration, read-only afterwards, shared by every shard through an
//! `Arc`. Layout, chosen so that the two lookups per packet cost a few nanoseconds:
//!
//! - **IPv4**: a 65,536-entry first-level array indexed by the top 16 bits (256 KiB). Each entry
//!   packs the group of the longest prefix of length ≤ 16 covering that /16 and a 16-bit mask of
//!   the lengths 17..=32 that occur inside it. A lookup is one array load; only when the mask is
//!   non-zero does it probe the per-length hash maps of masked network → group, longest first,
//!   and only for the lengths that actually occur in that /16. Unmonitored addresses (most
//!   sources of inbound traffic) therefore cost one load and no hashing.
//! - **IPv6**: a hash map keyed by the top 32 bits holding, for each /32 that contains longer
//!   prefixes, the mask of lengths 33..=128 present and the best match of length ≤ 32. Addresses
//!   outside those /32s probe only the (usually few) lengths ≤ 32 present.
//!
//! IPv4 and IPv6 are separate tables: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is looked
//! up as IPv6 and never matches an IPv4 prefix.

use std::net::IpAddr;

use hashbrown::{HashMap, HashSet};
use ipnet::IpNet;

use crate::key::GroupId;

/// Packed "no group" in first-level entries.
const NO_GROUP: u16 = u16::MAX;

/// Why a prefix table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The same prefix (after clearing host bits) appears twice.
    #[error("prefix {prefix} is configured twice (groups {first} and {second})")]
    Duplicate {
        /// The duplicated prefix, host bits cleared.
        prefix: IpNet,
        /// Group of the first occurrence.
        first: u16,
        /// Group of the second occurrence.
        second: u16,
    },
    /// The group id is `u16::MAX`, which is reserved.
    #[error("prefix {prefix} has group id {group}, above the maximum {}", GroupId::MAX.0)]
    GroupOutOfRange {
        /// The offending prefix.
        prefix: IpNet,
        /// The offending group id.
        group: u16,
    },
}

/// Longest-prefix-match table from monitored prefixes to their group.
#[derive(Clone, Debug, Default)]
pub struct PrefixTable {
    /// IPv4 first level (65,536 entries), `None` when no IPv4 prefix is configured.
    /// Entry: bits 16..32 = mask of lengths 17..=32 (bit `len - 17`) occurring in the /16;
    /// bits 0..16 = group of the longest covering prefix of length ≤ 16, or [`NO_GROUP`].
    v4_block: Option<Box<[u32; 1 << 16]>>,
    /// `v4_long[len - 17]`: network of length `len` → group.
    v4_long: Vec<V4Map>,
    /// IPv6 /32 blocks that contain prefixes longer than /32.
    v6_blocks: HashMap<u32, V6Block>,
    /// `v6_long[len - 33]`: network of length `len` → group.
    v6_long: Vec<HashMap<u128, GroupId>>,
    /// IPv6 prefixes of length ≤ 32, longest length first, keyed by the masked top 32 bits.
    v6_short: Vec<(u8, HashMap<u32, GroupId>)>,
    /// Number of IPv4 prefixes.
    n_v4: usize,
    /// Number of IPv6 prefixes.
    n_v6: usize,
    /// Every prefix as (IPv6?, length, networks), longest first: the cold path that names the
    /// prefix an address falls in ([`PrefixTable::longest_match`]).
    nets: Vec<(bool, u8, HashSet<u128>)>,
}

/// A read-only map from an IPv4 network to its group: open addressing with linear probing
/// (load ≤ 1/2) over 8-byte entries, multiplicative hash. Hand-written so that the batched
/// accounting path can prefetch the entry a lookup will probe (see
/// [`PrefixTable::prefetch_v4`]). Keys come from the configuration, not from packets.
#[derive(Clone, Debug)]
struct V4Map {
    /// `(network, group + 1)`, 0 in the second field for an empty entry.
    entries: Box<[(u32, u32)]>,
    shift: u32,
}

impl V4Map {
    fn new(map: &HashMap<u32, GroupId>) -> Self {
        let cap = (map.len() * 2).next_power_of_two().max(8);
        let mut m = V4Map {
            entries: vec![(0, 0); cap].into_boxed_slice(),
            shift: 64 - cap.trailing_zeros(),
        };
        let mask = cap - 1;
        for (&net, &g) in map {
            let mut i = m.home(net);
            while m.entries[i].1 != 0 {
                i = (i + 1) & mask;
            }
            m.entries[i] = (net, u32::from(g.0) + 1);
        }
        m
    }

    #[inline(always)]
    fn home(&self, net: u32) -> usize {
        (u64::from(net).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, net: u32) -> Option<GroupId> {
        let mask = self.entries.len() - 1;
        let mut i = self.home(net);
        // Terminates: at most half the entries are occupied.
        loop {
            let (k, g) = *self.entries.get(i)?;
            if g == 0 {
                return None;
            }
            if k == net {
                return Some(GroupId((g - 1) as u16));
            }
            i = (i + 1) & mask;
        }
    }

    #[inline(always)]
    fn prefetch(&self, net: u32) {
        crate::mem::prefetch(self.entries.as_ptr().wrapping_add(self.home(net)));
    }
}

#[derive(Clone, Copy, Debug)]
struct V6Block {
    /// Mask of lengths 33..=128 (bit `len - 33`) occurring in this /32.
    lens: u128,
    /// Longest prefix of length ≤ 32 covering this /32, or [`NO_GROUP`].
    short: u16,
}

/// The network `net`/`len` of the family.
pub(crate) fn net_of(v6: bool, net: u128, len: u8) -> Option<IpNet> {
    if v6 {
        ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(net), len)
            .ok()
            .map(IpNet::V6)
    } else {
        let a = std::net::Ipv4Addr::from(u32::try_from(net).ok()?);
        ipnet::Ipv4Net::new(a, len).ok().map(IpNet::V4)
    }
}

#[inline]
fn group(raw: u16) -> Option<GroupId> {
    (raw != NO_GROUP).then_some(GroupId(raw))
}

#[inline]
fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl PrefixTable {
    /// Builds the table. Host bits of each prefix are ignored (`10.0.0.1/8` means `10.0.0.0/8`).
    ///
    /// Errors: [`PrefixError::Duplicate`] when a prefix occurs twice (even with the same group),
    /// [`PrefixError::GroupOutOfRange`] for group `u16::MAX`.
    pub fn new(prefixes: impl IntoIterator<Item = (IpNet, GroupId)>) -> Result<Self, PrefixError> {
        // Stage every prefix per length, detecting duplicates.
        let mut v4: Vec<HashMap<u32, GroupId>> = (0..=32).map(|_| HashMap::new()).collect();
        let mut v6: Vec<HashMap<u128, GroupId>> = (0..=128).map(|_| HashMap::new()).collect();
        for (net, g) in prefixes {
            let net = net.trunc();
            if g.0 == NO_GROUP {
                return Err(PrefixError::GroupOutOfRange {
                    prefix: net,
                    group: g.0,
                });
            }
            let len = usize::from(net.prefix_len());
            let previous = match net.network() {
                IpAddr::V4(a) => v4[len].insert(u32::from(a), g),
                IpAddr::V6(a) => v6[len].insert(u128::from(a), g),
            };
            if let Some(first) = previous {
                return Err(PrefixError::Duplicate {
                    prefix: net,
                    first: first.0,
                    second: g.0,
                });
            }
        }
        let mut nets: Vec<(bool, u8, HashSet<u128>)> = v4
            .iter()
            .enumerate()
            .map(|(len, m)| (false, len as u8, m.keys().map(|&n| u128::from(n)).collect()))
            .chain(
                v6.iter()
                    .enumerate()
                    .map(|(len, m)| (true, len as u8, m.keys().copied().collect())),
            )
            .filter(|(_, _, m): &(bool, u8, HashSet<u128>)| !m.is_empty())
            .collect();
        nets.sort_by_key(|n| std::cmp::Reverse(n.1));
        let mut t = PrefixTable {
            n_v4: v4.iter().map(HashMap::len).sum(),
            n_v6: v6.iter().map(HashMap::len).sum(),
            nets,
            ..PrefixTable::default()
        };

        // IPv4: lengths ≤ 16 are expanded into the first level, shortest first so that longer
        // prefixes overwrite the ones covering them.
        if t.n_v4 > 0 {
            let mut block: Box<[u32; 1 << 16]> = Box::new([u32::from(NO_GROUP); 1 << 16]);
            for (len, map) in v4.iter().enumerate().take(17) {
                let span = 1usize << (16 - len);
                for (&net, &g) in map {
                    let first = (net >> 16) as usize;
                    for e in &mut block[first..first + span] {
                        *e = u32::from(g.0);
                    }
                }
            }
            for (len, map) in v4.iter().enumerate().skip(17) {
                for &net in map.keys() {
                    block[(net >> 16) as usize] |= 1 << (len - 17 + 16);
                }
            }
            t.v4_block = Some(block);
            t.v4_long = v4.iter().skip(17).map(V4Map::new).collect();
        }

        // IPv6.
        if t.n_v6 > 0 {
            t.v6_short = v6
                .iter_mut()
                .enumerate()
                .take(33)
                .rev()
                .filter(|(_, m)| !m.is_empty())
                .map(|(len, m)| {
                    let shift = 96;
                    let short: HashMap<u32, GroupId> = m
                        .drain()
                        .map(|(net, g)| ((net >> shift) as u32, g))
                        .collect();
                    (len as u8, short)
                })
                .collect();
            for (len, map) in v6.iter().enumerate().skip(33) {
                for &net in map.keys() {
                    let b = t.v6_blocks.entry((net >> 96) as u32).or_insert(V6Block {
                        lens: 0,
                        short: NO_GROUP,
                    });
                    b.lens |= 1 << (len - 33);
                }
            }
            let shorts: Vec<(u32, u16)> = t
                .v6_blocks
                .keys()
                .map(|&top| (top, t.lookup_v6_short(top).map_or(NO_GROUP, |g| g.0)))
                .collect();
            for (top, short) in shorts {
                if let Some(b) = t.v6_blocks.get_mut(&top) {
                    b.short = short;
                }
            }
            t.v6_long = v6.drain(33..).collect();
        }
        Ok(t)
    }

    /// The longest configured prefix that contains `ip`. Not for the per-packet path: one
    /// probe per configured prefix length of the address's family.
    pub fn longest_match(&self, ip: IpAddr) -> Option<IpNet> {
        let (v6, addr, bits) = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32u32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        self.nets
            .iter()
            .filter(|n| n.0 == v6)
            .find_map(|(_, len, m)| {
                let host = bits - u32::from(*len);
                let net = addr
                    .checked_shr(host)
                    .unwrap_or(0)
                    .checked_shl(host)
                    .unwrap_or(0);
                m.contains(&net).then(|| net_of(v6, net, *len))?
            })
    }

    /// Number of prefixes (IPv4 + IPv6).
    pub fn len(&self) -> usize {
        self.n_v4 + self.n_v6
    }

    /// Whether no prefix is configured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Group of the longest prefix containing `ip`, if any.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<GroupId> {
        match ip {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.lookup_v6(u128::from(a)),
        }
    }

    /// Longest-prefix match of an IPv4 address given as a host-order `u32`.
    ///
    /// Hot path: one load from the first-level array, plus one hash probe per prefix length
    /// > 16 that occurs in the address's /16, longest first, stopping at the first hit.
    #[inline]
    pub fn lookup_v4(&self, ip: u32) -> Option<GroupId> {
        let block = self.v4_block.as_deref()?;
        let e = block[(ip >> 16) as usize];
        let mut lens = e >> 16;
        while lens != 0 {
            let bit = 31 - lens.leading_zeros(); // 0..=15, i.e. length 17..=32
            let mask = u32::MAX << (15 - bit);
            if let Some(g) = self
                .v4_long
                .get(bit as usize)
                .and_then(|m| m.get(ip & mask))
            {
                return Some(g);
            }
            lens &= !(1 << bit);
        }
        group(e as u16)
    }

    /// Prefetches the first-level entry of an IPv4 address (first step of a batched lookup).
    #[inline(always)]
    pub(crate) fn prefetch_v4_block(&self, ip: u32) {
        if let Some(b) = self.v4_block.as_deref() {
            crate::mem::prefetch(b.as_ptr().wrapping_add((ip >> 16) as usize));
        }
    }

    /// Prefetches the entry [`Self::lookup_v4`] probes first for an IPv4 address (second step
    /// of a batched lookup, after [`Self::prefetch_v4_block`]): the home entry of the longest
    /// prefix length (> 16) present in its /16, if any. Further probes (a miss at that length)
    /// are not prefetched: prefetching every length costs more than it saves.
    #[inline(always)]
    pub(crate) fn prefetch_v4(&self, ip: u32) {
        let Some(block) = self.v4_block.as_deref() else {
            return;
        };
        let lens = block[(ip >> 16) as usize] >> 16;
        if lens != 0 {
            let bit = 31 - lens.leading_zeros();
            if let Some(m) = self.v4_long.get(bit as usize) {
                m.prefetch(ip & (u32::MAX << (15 - bit)));
            }
        }
    }

    /// Longest-prefix match of an IPv6 address given as a host-order `u128`.
    ///
    /// Hot path: returns at once when no IPv6 prefix is configured; otherwise one hash probe on
    /// the /32 block, then one probe per length present in that block (longest first), or one
    /// probe per length ≤ 32 present when the block holds no longer prefix.
    #[inline]
    pub fn lookup_v6(&self, ip: u128) -> Option<GroupId> {
        if self.n_v6 == 0 {
            return None;
        }
        let top = (ip >> 96) as u32;
        if let Some(b) = self.v6_blocks.get(&top) {
            let mut lens = b.lens;
            while lens != 0 {
                let bit = 127 - lens.leading_zeros(); // 0..=95, i.e. length 33..=128
                let mask = u128::MAX << (95 - bit);
                if let Some(&g) = self
                    .v6_long
                    .get(bit as usize)
                    .and_then(|m| m.get(&(ip & mask)))
                {
                    return Some(g);
                }
                lens &= !(1 << bit);
            }
            return group(b.short);
        }
        self.lookup_v6_short(top)
    }

    /// Longest match among IPv6 prefixes of length ≤ 32, given the top 32 address bits.
    #[inline]
    fn lookup_v6_short(&self, top: u32) -> Option<GroupId> {
        self.v6_short
            .iter()
            .find_map(|(len, m)| m.get(&(top & mask_v4(*len))).copied())
    }
}

/// Brute-force reference used by tests: linear scan for the longest containing prefix.
#[cfg(test)]
pub(crate) fn reference_lookup(prefixes: &[(IpNet, GroupId)], ip: IpAddr) -> Option<GroupId> {
    prefixes
        .iter()
        .filter(|(n, _)| n.trunc().contains(&ip))
        .max_by_key(|(n, _)| n.prefix_len())
        .map(|&(_, g)| g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn table(p: &[(&str, u16)]) -> PrefixTable {
        PrefixTable::new(p.iter().map(|&(n, g)| (net(n), GroupId(g)))).unwrap()
    }

    #[test]
    fn empty_table_matches_nothing() {
        let t = PrefixTable::new([]).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(ip("1.2.3.4")), None);
        assert_eq!(t.lookup(ip("::1")), None);
    }

    #[test]
    fn default_routes_match_everything_of_their_family_only() {
        let t = table(&[("0.0.0.0/0", 1)]);
        assert_eq!(t.lookup(ip("0.0.0.0")), Some(GroupId(1)));
        assert_eq!(t.lookup(ip("255.255.255.255")), Some(GroupId(1)));
        assert_eq!(t.lookup(ip("::")), None);
        let t = table(&[("::/0", 2)]);
        assert_eq!(t.lookup(ip("ffff::1")), Some(GroupId(2)));
        assert_eq!(t.lookup(ip("1.2.3.4")), None);
    }

    #[test]
    fn host_routes() {
        let t = table(&[("192.0.2.7/32", 3), ("2001:db8::7/128", 4)]);
        assert_eq!(t.lookup(ip("192.0.2.7")), Some(GroupId(3)));
        assert_eq!(t.lookup(ip("192.0.2.6")), None);
        assert_eq!(t.lookup(ip("192.0.2.8")), None);
        assert_eq!(t.lookup(ip("2001:db8::7")), Some(GroupId(4)));
        assert_eq!(t.lookup(ip("2001:db8::6")), None);
        assert_eq!(t.lookup(ip("2001:db8::")), None);
    }

    #[test]
    fn nested_prefixes_longest_wins() {
        let t = table(&[
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.0/24", 3),
            ("10.1.2.128/25", 4),
            ("10.1.2.200/32", 5),
            ("2001:db8::/32", 6),
            ("2001:db8:1::/48", 7),
            ("2001:db8:1:2::/64", 8),
            ("2001::/16", 9),
        ]);
        for (a, g) in [
            ("10.200.0.1", Some(1)),
            ("10.1.9.9", Some(2)),
            ("10.1.2.3", Some(3)),
            ("10.1.2.129", Some(4)),
            ("10.1.2.200", Some(5)),
            ("10.1.2.201", Some(4)),
            ("11.0.0.0", None),
            ("2001:db8:ffff::1", Some(6)),
            ("2001:db8:1:ffff::1", Some(7)),
            ("2001:db8:1:2::1", Some(8)),
            ("2001:1::1", Some(9)),
            ("2002::1", None),
        ] {
            assert_eq!(t.lookup(ip(a)), g.map(GroupId), "{a}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_ipv6() {
        let t = table(&[("1.2.3.0/24", 1)]);
        assert_eq!(t.lookup(ip("1.2.3.4")), Some(GroupId(1)));
        assert_eq!(t.lookup(ip("::ffff:1.2.3.4")), None);
        let t = table(&[("::ffff:1.2.3.0/120", 2)]);
        assert_eq!(t.lookup(ip("::ffff:1.2.3.4")), Some(GroupId(2)));
        assert_eq!(t.lookup(ip("1.2.3.4")), None);
    }

    #[test]
    fn host_bits_are_ignored() {
        let t = table(&[("10.0.0.1/8", 1)]);
        assert_eq!(t.lookup(ip("10.9.9.9")), Some(GroupId(1)));
    }

    #[test]
    fn duplicates_are_errors() {
        let e = PrefixTable::new([
            (net("10.0.0.0/8"), GroupId(1)),
            (net("10.1.0.0/8"), GroupId(2)),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            PrefixError::Duplicate {
                prefix: net("10.0.0.0/8"),
                first: 1,
                second: 2
            }
        );
        let e = PrefixTable::new([(net("::/0"), GroupId(1)), (net("::/0"), GroupId(1))]);
        assert!(matches!(e, Err(PrefixError::Duplicate { .. })));
        // Same bits, different family or length: not duplicates.
        assert!(PrefixTable::new([
            (net("0.0.0.0/0"), GroupId(1)),
            (net("::/0"), GroupId(1)),
            (net("0.0.0.0/1"), GroupId(1)),
        ])
        .is_ok());
    }

    #[test]
    fn reserved_group_is_rejected() {
        let e = PrefixTable::new([(net("10.0.0.0/8"), GroupId(u16::MAX))]);
        assert!(matches!(e, Err(PrefixError::GroupOutOfRange { .. })));
        assert!(PrefixTable::new([(net("10.0.0.0/8"), GroupId::MAX)]).is_ok());
    }

    #[test]
    fn masks() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v4(8), 0xff00_0000);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
    }

    /// Prefixes clustered under a few top bits so that nesting is frequent.
    fn prefix_strategy() -> impl Strategy<Value = (IpNet, GroupId)> {
        (any::<bool>(), 0u8..3, any::<u128>(), 0u8..=128, 0u16..50).prop_map(
            |(v6, cluster, bits, len, g)| {
                let n = if v6 {
                    let a = (u128::from(cluster) << 120) | (bits >> 8);
                    IpNet::new(IpAddr::V6(a.into()), len).unwrap()
                } else {
                    let a = (u32::from(cluster) << 24) | ((bits as u32) >> 8);
                    IpNet::new(IpAddr::V4(a.into()), len % 33).unwrap()
                };
                (n.trunc(), GroupId(g))
            },
        )
    }

    /// Addresses near the generated prefixes (same cluster) plus fully random ones.
    fn probe_addrs(prefixes: &[(IpNet, GroupId)], seeds: &[u128]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for (i, &s) in seeds.iter().enumerate() {
            match prefixes.get(i % prefixes.len().max(1)) {
                Some((IpNet::V4(n), _)) if i % 3 != 2 => {
                    let host = !mask_v4(n.prefix_len());
                    out.push(IpAddr::V4(
                        (u32::from(n.network()) | (s as u32 & host)).into(),
                    ));
                }
                Some((IpNet::V6(n), _)) if i % 3 != 2 => {
                    let host = !mask_v6(n.prefix_len());
                    out.push(IpAddr::V6((u128::from(n.network()) | (s & host)).into()));
                }
                _ if s & 1 == 0 => out.push(IpAddr::V4(((s >> 64) as u32).into())),
                _ => out.push(IpAddr::V6(s.into())),
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_brute_force(
            raw in prop::collection::vec(prefix_strategy(), 0..150),
            seeds in prop::collection::vec(any::<u128>(), 1..300),
        ) {
            // Deduplicate (last wins) so the builder accepts it.
            let mut seen = HashMap::new();
            for (n, g) in &raw {
                seen.insert(*n, *g);
            }
            let prefixes: Vec<(IpNet, GroupId)> = seen.into_iter().collect();
            let t = PrefixTable::new(prefixes.clone()).unwrap();
            prop_assert_eq!(t.len(), prefixes.len());
            for a in probe_addrs(&prefixes, &seeds) {
                prop_assert_eq!(t.lookup(a), reference_lookup(&prefixes, a), "addr {}", a);
                let longest = prefixes
                    .iter()
                    .map(|(n, _)| n.trunc())
                    .filter(|n| n.contains(&a))
                    .max_by_key(|n| n.prefix_len());
                prop_assert_eq!(t.longest_match(a), longest, "addr {}", a);
            }
            // Raw input with duplicates is rejected exactly when a duplicate exists.
            prop_assert_eq!(PrefixTable::new(raw.clone()).is_err(), raw.len() != prefixes.len());
        }
    }
}
