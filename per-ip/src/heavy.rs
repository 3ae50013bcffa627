//! Heavy untracked destinations: a small per-tick cache that finds the addresses receiving
//! the most packets among those the tracked-address budget left untracked.
//!
//! When every tracked slot is taken, a packet to an address without state is counted as
//! overflow and offered here. The cache is set-associative space-saving (Metwally et al.,
//! "Efficient computation of frequent and top-k elements in data streams", 2005, applied per
//! set): [`SETS`] sets of [`WAYS`] entries; a key is counted in its entry, or takes an empty
//! entry, or replaces the set's smallest entry, inheriting its count as its error. A key's
//! `count - err` never exceeds its true count in the tick, so an address is admitted on a
//! guaranteed count; a destination with a flood's rate holds its entry whatever a random
//! sweep does to the other ways of its set. Fixed size (128 KiB, allocated at the first
//! overflow packet), O(1) per packet, no allocation after that.
//!
//! The merger sums the caches of every shard ([`merge_candidates`]): per key the guaranteed
//! counts add up. A key that left a shard's cache during the tick loses that shard's part,
//! so under heavy churn which borderline keys pass the admission threshold can depend on how
//! packets were spread over shards; keys well above it are found whatever the spread.

use hashbrown::HashMap;

use crate::key::IpKey;

/// Sets of the cache.
pub const SETS: usize = 1024;
/// Entries per set.
pub const WAYS: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    key: IpKey,
    /// Packets counted (0: empty entry), error included.
    count: u32,
    /// Packets inherited from the entry's previous key: an upper bound of the overcount.
    err: u32,
}

/// Per-tick heavy-hitter cache of one shard (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct HeavyCache {
    entries: Vec<Entry>,
    used: bool,
}

impl HeavyCache {
    /// Counts one packet to `key`; `hash` is any well-mixed hash of it (the shard index's).
    #[inline]
    pub fn record(&mut self, key: IpKey, hash: u64) {
        self.record_n(key, hash, 1);
    }

    /// Counts `n` packets to `key` (an address that leaves a shard's new addresses with `n`
    /// packets of the tick).
    pub fn record_n(&mut self, key: IpKey, hash: u64, n: u32) {
        if n == 0 {
            return;
        }
        if self.entries.is_empty() {
            self.entries = vec![Entry::default(); SETS * WAYS];
        }
        self.used = true;
        // High bits: the index uses the low ones for its position.
        let set = ((hash >> 40) as usize % SETS) * WAYS;
        let Some(ways) = self.entries.get_mut(set..set + WAYS) else {
            return;
        };
        let mut min = 0;
        for i in 0..WAYS {
            let e = ways[i];
            if e.count == 0 {
                ways[i] = Entry {
                    key,
                    count: n,
                    err: 0,
                };
                return;
            }
            if e.key == key {
                ways[i].count = e.count.saturating_add(n);
                return;
            }
            if e.count < ways[min].count {
                min = i;
            }
        }
        let floor = ways[min].count;
        ways[min] = Entry {
            key,
            count: floor.saturating_add(n),
            err: floor,
        };
    }

    /// Entries with a key: (address, guaranteed packets, counted packets).
    pub fn iter(&self) -> impl Iterator<Item = (IpKey, u32, u32)> + '_ {
        self.entries
            .iter()
            .filter(|e| e.count > 0)
            .map(|e| (e.key, e.count - e.err, e.count))
    }

    /// Empties the cache, keeping its memory.
    pub fn clear(&mut self) {
        if self.used {
            self.entries.fill(Entry::default());
            self.used = false;
        }
    }
}

/// The keys whose guaranteed packets, summed over `caches` and the exact counts `exact`
/// (new addresses the merger did not admit), reach `min_packets`, by descending guaranteed
/// count then ascending address, at most `max`.
pub fn merge_candidates<'a>(
    caches: impl IntoIterator<Item = &'a HeavyCache>,
    exact: &[(IpKey, u64)],
    min_packets: u64,
    max: usize,
) -> Vec<(IpKey, u64)> {
    let mut sum: HashMap<IpKey, u64> = HashMap::new();
    for &(k, n) in exact {
        *sum.entry(k).or_default() += n;
    }
    for c in caches {
        for (k, lower, _) in c.iter() {
            *sum.entry(k).or_default() += u64::from(lower);
        }
    }
    let mut v: Vec<(IpKey, u64)> = sum
        .into_iter()
        .filter(|&(_, n)| n >= min_packets.max(1))
        .collect();
    v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(max);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(k: u64) -> u64 {
        (k ^ 0x5555).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[test]
    fn a_flood_survives_a_sweep_and_counts_are_lower_bounds() {
        let mut c = HeavyCache::default();
        let flood = IpKey::v4(0x0a00_0001);
        let mut truth = 0u32;
        for i in 0..200_000u64 {
            // One sweep packet to a fresh address, every 4th packet to the flood target.
            let k = IpKey::v4(0x0b00_0000 + i as u32);
            c.record(k, mix(i + 7));
            if i % 4 == 0 {
                c.record(flood, mix(1));
                truth += 1;
            }
        }
        let (_, lower, count) = c.iter().find(|e| e.0 == flood).unwrap();
        assert!(lower <= truth && count >= truth, "{lower} {count} {truth}");
        assert!(
            lower > truth / 2,
            "the flood's guaranteed count is {lower} of {truth}"
        );
        let top = merge_candidates([&c], &[], 1_000, 10);
        assert_eq!(top.first().map(|t| t.0), Some(flood));
        assert_eq!(top.len(), 1, "no sweep address has a guaranteed 1,000");
        c.clear();
        assert_eq!(c.iter().count(), 0);
    }

    #[test]
    fn shards_add_up() {
        let (mut a, mut b) = (HeavyCache::default(), HeavyCache::default());
        let k = IpKey::v4(9);
        for _ in 0..600 {
            a.record(k, mix(9));
            b.record(k, mix(9));
        }
        assert_eq!(merge_candidates([&a, &b], &[], 1_000, 4), vec![(k, 1_200)]);
        assert!(merge_candidates([&a], &[], 1_000, 4).is_empty());
        // A shard's share seen exactly by the merger adds up the same.
        assert_eq!(
            merge_candidates([&a], &[(k, 600)], 1_000, 4),
            vec![(k, 1_200)]
        );
    }
}
