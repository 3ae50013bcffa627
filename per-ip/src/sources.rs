//! Per-incident source analysis of one target's inbound traffic: who sends, from and to
//! which ports, how large, with which TTLs, and whether the sources look spoofed.
//!
//! ## Determinism
//!
//! A [`SourceStats`] is a function of the *multiset* of packets it has seen: recording
//! packets in any order, spread over any number of instances merged in any order and tree
//! shape, gives identical query results. Everything is a sum, a min/max, or one of:
//!
//! - **Per-source table, deterministic hash sampling.** Sources are counted exactly while
//!   at most `cap` distinct sources have been seen. Beyond, only sources whose fixed-seed
//!   64-bit hash has its top `shift` bits zero are kept (hash < 2^(64-shift)); `shift` is
//!   the smallest value for which the kept sources fit in `cap`. Recording raises `shift`
//!   by one (evicting the keys above the new threshold) whenever a new admissible source
//!   finds the table full; a merge starts from the larger `shift` of the two and raises it
//!   the same way. So the kept set is "every source with hash < 2^(64-shift)", `shift`
//!   depends only on the set of sources, and a kept source was never evicted anywhere:
//!   its count is exact.
//! - **HyperLogLog** (p = 12, 4 KiB) of the same fixed-seed hash, allocated when sampling
//!   starts and seeded with the table, which then still holds every source. Registers are
//!   maxima, so they depend only on the set of sources.
//!
//! The hash is a SplitMix64 finalizer with a fixed seed (bijective on IPv4 addresses), so
//! results are also the same across runs and machines. The tables themselves use
//! hashbrown's randomly seeded hasher, which an attacker cannot aim collisions at; their
//! iteration order never reaches a result (every list is sorted).
//!
//! ## Memory bound
//!
//! With the default cap of 65,536 sources: the source table ≤ 131,072 buckets × 33 B
//! ≈ 4.1 MiB, the HLL 4 KiB, each port table ≤ 514 KiB (pages of 256 counters allocated
//! on first use), histograms 2.1 KiB: **≤ 5.2 MiB** per instance whatever the traffic. A
//! merge never holds more than `cap` sources either. [`SourceStats::clear`] keeps it all.
//!
//! ## Spoofing verdict
//!
//! See [`SourceStats::spoofed_verdict`].

use std::net::IpAddr;

use hashbrown::HashMap;
use surgewatch_pipeline::{proto, PacketSummary};

/// Default per-source table size: sources are counted exactly up to this many.
pub const DEFAULT_SOURCE_CAP: usize = 65_536;

/// Source-table cap of the per-target statistics of watched targets (shards, merger and
/// incidents use the same cap, so merges stay exact until it is reached): about 200 KiB per
/// target, exact counts up to 8,192 distinct sources, hash-sampled beyond (the distinct count
/// then comes from the HyperLogLog).
pub const WATCH_SOURCE_CAP: usize = 8_192;

const HLL_P: u32 = 12;
const HLL_M: usize = 1 << HLL_P;

/// Names of the wire-length buckets of [`LengthStats::buckets`].
pub const LENGTH_BUCKETS: [&str; 7] = [
    "0-63",
    "64-127",
    "128-255",
    "256-511",
    "512-1023",
    "1024-1499",
    "1500+",
];

/// Minimum distinct sources for a spoofing verdict.
pub const SPOOF_MIN_SOURCES: u64 = 200;

// ---------------------------------------------------------------------------------------
// Hashing
// ---------------------------------------------------------------------------------------

const SEED_V4: u64 = 0x5375_7267_6557_6174; // "SurgeWat"
const SEED_V6: u64 = 0x6368_2d76_362d_6970; // "ch-v6-ip"

/// SplitMix64 finalizer: a bijection on `u64` with full avalanche.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fixed-seed source hash used for sampling and the HLL.
#[inline]
fn src_hash(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => mix64(u64::from(u32::from(*a)).wrapping_add(SEED_V4)),
        IpAddr::V6(a) => {
            let v = u128::from(*a);
            let hi = (v >> 64) as u64;
            let lo = v as u64;
            mix64(mix64(hi.wrapping_add(SEED_V6)) ^ lo)
        }
    }
}

/// Whether a key of hash `h` is kept at sampling shift `shift` (0 keeps everything).
#[inline]
fn admits(shift: u8, h: u64) -> bool {
    shift == 0 || shift > 64 || (h >> (64 - u32::from(shift))) == 0
}

/// Natural logarithm from `+ - * /` only, so that it rounds the same on every platform.
fn ln_portable(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 0.0;
    }
    const LN2: f64 = std::f64::consts::LN_2;
    let bits = x.to_bits();
    // Normal numbers only (HLL arguments are ≥ 1).
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut f = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if f > std::f64::consts::SQRT_2 {
        f /= 2.0;
        e += 1;
    }
    // ln f = 2 atanh(s), s = (f-1)/(f+1), |s| < 0.172.
    let s = (f - 1.0) / (f + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 40.0 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    e as f64 * LN2 + 2.0 * sum
}

// ---------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------

/// Per-source value: packets in the low 56 bits, the minimum TTL seen in the top 8.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct SrcEntry(u64);

impl SrcEntry {
    const COUNT_MASK: u64 = (1 << 56) - 1;

    #[inline]
    fn new(packets: u64, ttl: u8) -> Self {
        SrcEntry((u64::from(ttl) << 56) | packets.min(Self::COUNT_MASK))
    }
    #[inline]
    fn packets(self) -> u64 {
        self.0 & Self::COUNT_MASK
    }
    #[inline]
    fn min_ttl(self) -> u8 {
        (self.0 >> 56) as u8
    }
    #[inline]
    fn add(&mut self, packets: u64, ttl: u8) {
        *self = SrcEntry::new(
            self.packets().saturating_add(packets),
            self.min_ttl().min(ttl),
        );
    }
}

/// Distinct ports a [`PortCounts`] keeps in its small hash table before it switches to one
/// dense counter per port.
const SPARSE_PORTS_MAX: usize = 2048;
/// Initial slots of the small table (a power of two).
const SPARSE_MIN_SLOTS: usize = 16;

/// Exact packets per port (saturating `u32` counters), in one of two layouts:
/// - **sparse** while at most [`SPARSE_PORTS_MAX`] distinct ports were seen: an
///   open-addressing table of `(port + 1, count)` slots, at most half full, so the usual attack
///   (one destination port, one reflector source port, a handful of services) costs an add in
///   a few cache-resident bytes;
/// - **dense** beyond: 65,536 counters (256 KiB), one add per packet without hashing, for a
///   target hit on random ports.
///
/// Either way the counts are exact and [`entries`](Self::entries) is the same, so results do
/// not depend on the layout (or on which shard saw which packet).
#[derive(Clone, Debug)]
enum PortCounts {
    Sparse { slots: Vec<(u32, u32)>, len: usize },
    Dense(Box<[u32]>),
}

impl Default for PortCounts {
    fn default() -> Self {
        PortCounts::Sparse {
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// Slot of `port` in a table of `mask + 1` slots (Fibonacci hashing of the port).
#[inline]
fn port_slot(port: u16, mask: usize) -> usize {
    (u32::from(port).wrapping_mul(0x9e37_79b1) >> 16) as usize & mask
}

impl PortCounts {
    #[inline]
    fn add(&mut self, port: u16, n: u64) {
        if n == 0 {
            return;
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match self {
            PortCounts::Dense(c) => {
                if let Some(c) = c.get_mut(usize::from(port)) {
                    *c = c.saturating_add(n);
                }
            }
            PortCounts::Sparse { slots, len } => {
                let key = u32::from(port) + 1;
                if !slots.is_empty() {
                    let mask = slots.len() - 1;
                    let mut i = port_slot(port, mask);
                    loop {
                        match slots.get_mut(i) {
                            Some((k, c)) if *k == key => {
                                *c = c.saturating_add(n);
                                return;
                            }
                            Some((0, _)) | None => break,
                            Some(_) => i = (i + 1) & mask,
                        }
                    }
                }
                if *len >= SPARSE_PORTS_MAX {
                    self.densify();
                    self.add(port, u64::from(n));
                    return;
                }
                if (*len + 1) * 2 > slots.len() {
                    self.grow();
                }
                if let PortCounts::Sparse { slots, len } = self {
                    let mask = slots.len() - 1;
                    let mut i = port_slot(port, mask);
                    while slots.get(i).is_some_and(|&(k, _)| k != 0) {
                        i = (i + 1) & mask;
                    }
                    if let Some(s) = slots.get_mut(i) {
                        *s = (key, n);
                        *len += 1;
                    }
                }
            }
        }
    }

    /// Doubles the sparse table (rehashing every entry).
    #[cold]
    fn grow(&mut self) {
        if let PortCounts::Sparse { slots, .. } = self {
            let new_len = (slots.len() * 2).max(SPARSE_MIN_SLOTS);
            let old = std::mem::replace(slots, vec![(0, 0); new_len]);
            let mask = new_len - 1;
            for (k, c) in old.into_iter().filter(|&(k, _)| k != 0) {
                let mut i = port_slot((k - 1) as u16, mask);
                while slots.get(i).is_some_and(|&(k, _)| k != 0) {
                    i = (i + 1) & mask;
                }
                if let Some(s) = slots.get_mut(i) {
                    *s = (k, c);
                }
            }
        }
    }

    /// Switches to one counter per port.
    #[cold]
    fn densify(&mut self) {
        let mut dense = vec![0u32; 65536].into_boxed_slice();
        for (p, c) in self.entries() {
            if let Some(d) = dense.get_mut(usize::from(p)) {
                *d = u32::try_from(c).unwrap_or(u32::MAX);
            }
        }
        *self = PortCounts::Dense(dense);
    }

    /// Every `(port, packets)` with packets > 0, by port.
    fn entries(&self) -> Vec<(u16, u64)> {
        match self {
            PortCounts::Dense(c) => (0..=u16::MAX)
                .zip(c.iter())
                .filter(|&(_, &c)| c > 0)
                .map(|(p, &c)| (p, u64::from(c)))
                .collect(),
            PortCounts::Sparse { slots, .. } => {
                let mut v: Vec<(u16, u64)> = slots
                    .iter()
                    .filter(|&&(k, c)| k != 0 && c > 0)
                    .map(|&(k, c)| ((k - 1) as u16, u64::from(c)))
                    .collect();
                v.sort_unstable_by_key(|&(p, _)| p);
                v
            }
        }
    }

    fn merge(&mut self, o: &PortCounts) {
        for (p, c) in o.entries() {
            self.add(p, c);
        }
    }

    /// Forgets every count, keeping the allocation (and the layout: a target hit on random
    /// ports stays dense for its next tick).
    fn clear(&mut self) {
        match self {
            PortCounts::Dense(c) => c.fill(0),
            PortCounts::Sparse { slots, len } => {
                if *len > 0 {
                    slots.fill((0, 0));
                    *len = 0;
                }
            }
        }
    }

    fn distinct(&self) -> usize {
        match self {
            PortCounts::Dense(c) => c.iter().filter(|&&c| c > 0).count(),
            PortCounts::Sparse { len, .. } => *len,
        }
    }
}

/// The `n` largest `(key, count)` pairs, by count descending then key ascending.
fn top_n<K: Ord + Copy>(mut v: Vec<(K, u64)>, n: usize) -> Vec<(K, u64)> {
    let order = |a: &(K, u64), b: &(K, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if n == 0 {
        return Vec::new();
    }
    if v.len() > n {
        v.select_nth_unstable_by(n - 1, order);
        v.truncate(n);
    }
    v.sort_unstable_by(order);
    v
}

/// Wire-length bucket of [`LENGTH_BUCKETS`].
#[inline]
fn length_bucket(len: u32) -> usize {
    if len >= 1500 {
        6
    } else if len >= 1024 {
        5
    } else {
        // floor(log2(len | 32)) - 5: 0 below 64, then one bucket per power of two.
        (26 - (len | 32).leading_zeros()) as usize
    }
}

/// Wire-length distribution of the recorded packets.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LengthStats {
    /// Packets per bucket, named by [`LENGTH_BUCKETS`].
    pub buckets: [u64; 7],
    /// Smallest frame (0 without packets).
    pub min: u32,
    /// Largest frame.
    pub max: u32,
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

impl LengthStats {
    /// Mean frame length in bytes (0 without packets).
    pub fn mean(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.bytes as f64 / self.packets as f64
        }
    }
}

/// Which spoofing signature [`SourceStats::spoofed_verdict`] found, if any.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum SpoofPattern {
    /// Fewer than [`SPOOF_MIN_SOURCES`] distinct sources: no verdict (not spoofed).
    TooFewSources,
    /// Many sources whose TTLs take very few values: one or a few machines forging source
    /// addresses.
    ConstantTtl,
    /// TTLs spread over a wide range, many outside any real initial-TTL band: a tool
    /// randomising the TTL.
    RandomisedTtl,
    /// TTLs consistent with real distributed sources.
    Consistent,
}

/// The spoofing verdict and the measurements behind it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SpoofVerdict {
    /// Whether the sources look spoofed.
    pub spoofed: bool,
    /// The signature found.
    pub pattern: SpoofPattern,
    /// Distinct sources ([`SourceStats::unique_sources`]).
    pub unique_sources: u64,
    /// Sources in the per-source table the per-source measures were taken on.
    pub table_sources: u64,
    /// Fewest TTL values holding 90 % of the table's sources (each source counted once,
    /// at its minimum TTL).
    pub ttl_values_90: u32,
    /// Largest share of the table's sources within a ±2 TTL window, per mille.
    pub narrow_band_permille: u16,
    /// Distinct TTL values over all packets.
    pub distinct_ttls: u32,
    /// Share of packets whose TTL lies outside every plausible band, per mille.
    pub implausible_permille: u16,
}

/// Whether a received TTL is plausible for a real host: initial TTL 64, 128 or 255 minus at
/// most 40 hops (64 − 40 = 24 also covers the rare initial 32).
#[inline]
fn plausible_ttl(ttl: u8) -> bool {
    matches!(ttl, 24..=64 | 88..=128 | 215..=255)
}

// ---------------------------------------------------------------------------------------
// SourceStats
// ---------------------------------------------------------------------------------------

/// Source analysis of one target's inbound packets (see the module doc).
#[derive(Clone, Debug)]
pub struct SourceStats {
    cap: usize,
    /// Sampling shift: keys with hash < 2^(64-shift) are kept; 0 = exact.
    shift: u8,
    sources: HashMap<IpAddr, SrcEntry>,
    /// Registers, meaningful when `shift > 0`; all zero (or absent) when `shift == 0`.
    hll: Option<Box<[u8; HLL_M]>>,
    src_ports: PortCounts,
    dst_ports: PortCounts,
    packets: u64,
    bytes: u64,
    min_len: u32,
    max_len: u32,
    len_hist: [u64; 7],
    ttl_hist: [u64; 256],
}

impl Default for SourceStats {
    fn default() -> Self {
        Self::new()
    }
}

impl SourceStats {
    /// Empty, with the [`DEFAULT_SOURCE_CAP`].
    pub fn new() -> Self {
        Self::with_cap(DEFAULT_SOURCE_CAP)
    }

    /// Empty, counting at most `cap` (at least 1) sources exactly. Instances that are merged
    /// should share a cap (a merge keeps the smaller).
    pub fn with_cap(cap: usize) -> Self {
        SourceStats {
            cap: cap.max(1),
            shift: 0,
            sources: HashMap::new(),
            hll: None,
            src_ports: PortCounts::default(),
            dst_ports: PortCounts::default(),
            packets: 0,
            bytes: 0,
            min_len: u32::MAX,
            max_len: 0,
            len_hist: [0; 7],
            ttl_hist: [0; 256],
        }
    }

    /// The per-source table cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Records one inbound packet. Packets without an IP layer are ignored. Allocation-free
    /// except when a new source or port grows a table.
    #[inline]
    pub fn record(&mut self, s: &PacketSummary) {
        if !s.has_ip() {
            return;
        }
        self.packets += 1;
        self.bytes += u64::from(s.wire_len);
        self.min_len = self.min_len.min(s.wire_len);
        self.max_len = self.max_len.max(s.wire_len);
        if let Some(b) = self.len_hist.get_mut(length_bucket(s.wire_len)) {
            *b += 1;
        }
        self.ttl_hist[usize::from(s.ttl)] += 1;
        if s.has_l4 && (s.protocol == proto::TCP || s.protocol == proto::UDP) {
            self.src_ports.add(s.src_port, 1);
            self.dst_ports.add(s.dst_port, 1);
        }
        self.record_source(s.src, s.ttl);
    }

    #[inline]
    fn record_source(&mut self, ip: IpAddr, ttl: u8) {
        let mut hash = None;
        if self.shift > 0 {
            let h = src_hash(&ip);
            self.hll_insert(h);
            if !admits(self.shift, h) {
                return;
            }
            hash = Some(h);
        }
        if let Some(e) = self.sources.get_mut(&ip) {
            e.add(1, ttl);
            return;
        }
        self.insert_new(ip, hash, SrcEntry::new(1, ttl));
    }

    /// Inserts a source absent from the table (and admissible at the current shift),
    /// raising the shift while the table is full and the source still admissible.
    fn insert_new(&mut self, ip: IpAddr, hash: Option<u64>, e: SrcEntry) {
        if self.sources.len() >= self.cap {
            let h = hash.unwrap_or_else(|| src_hash(&ip));
            let was_exact = self.shift == 0;
            while self.sources.len() >= self.cap && self.shift < 64 && admits(self.shift, h) {
                self.raise_shift(self.shift + 1);
            }
            if was_exact && self.shift > 0 {
                // The HLL was seeded from the table, which did not hold `ip` yet.
                self.hll_insert(h);
            }
            if !admits(self.shift, h) || self.sources.len() >= self.cap {
                return;
            }
        }
        self.sources.insert(ip, e);
    }

    /// Raises the sampling shift to `to` (> current), evicting what it no longer admits.
    fn raise_shift(&mut self, to: u8) {
        if self.shift == 0 {
            // Last moment the table holds every source: seed the HLL from it.
            let mut regs = self.hll.take().unwrap_or_else(|| Box::new([0u8; HLL_M]));
            for ip in self.sources.keys() {
                hll_insert(&mut regs, src_hash(ip));
            }
            self.hll = Some(regs);
        }
        self.shift = to;
        self.sources.retain(|ip, _| admits(to, src_hash(ip)));
    }

    #[inline]
    fn hll_insert(&mut self, h: u64) {
        if let Some(regs) = self.hll.as_mut() {
            hll_insert(regs, h);
        }
    }

    /// Adds everything `o` recorded. The result depends only on the union of the packets,
    /// not on which instance recorded which packet or on the merge order.
    pub fn merge(&mut self, o: &SourceStats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.min_len = self.min_len.min(o.min_len);
        self.max_len = self.max_len.max(o.max_len);
        for (a, b) in self.len_hist.iter_mut().zip(&o.len_hist) {
            *a += b;
        }
        for (a, b) in self.ttl_hist.iter_mut().zip(o.ttl_hist.iter()) {
            *a += b;
        }
        self.src_ports.merge(&o.src_ports);
        self.dst_ports.merge(&o.dst_ports);

        self.cap = self.cap.min(o.cap);
        if o.shift > self.shift {
            self.raise_shift(o.shift);
        }
        if o.shift > 0 {
            if let (Some(mine), Some(theirs)) = (self.hll.as_mut(), o.hll.as_ref()) {
                for (a, b) in mine.iter_mut().zip(theirs.iter()) {
                    *a = (*a).max(*b);
                }
            }
        }
        for (ip, e) in &o.sources {
            let mut hash = None;
            if self.shift > 0 {
                let h = src_hash(ip);
                // Idempotent; needed when `o` was exact and its sources are not in our HLL.
                self.hll_insert(h);
                if !admits(self.shift, h) {
                    continue;
                }
                hash = Some(h);
            }
            if let Some(mine) = self.sources.get_mut(ip) {
                mine.add(e.packets(), e.min_ttl());
            } else {
                self.insert_new(*ip, hash, *e);
            }
        }
        // A smaller cap taken from `o` may still need room.
        while self.sources.len() > self.cap && self.shift < 64 {
            self.raise_shift(self.shift + 1);
        }
    }

    /// Forgets everything, keeping every allocation (the cap is kept too).
    pub fn clear(&mut self) {
        self.shift = 0;
        self.sources.clear();
        if let Some(regs) = self.hll.as_mut() {
            regs.fill(0);
        }
        self.src_ports.clear();
        self.dst_ports.clear();
        self.packets = 0;
        self.bytes = 0;
        self.min_len = u32::MAX;
        self.max_len = 0;
        self.len_hist = [0; 7];
        self.ttl_hist = [0; 256];
    }

    /// Packets recorded.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Distinct source addresses: exact while the table is not sampled (always below
    /// 1,000 sources with the default cap), else a HyperLogLog estimate (≈1.6 % standard
    /// error).
    pub fn unique_sources(&self) -> u64 {
        match (&self.hll, self.shift) {
            (Some(regs), 1..) => hll_estimate(regs),
            _ => self.sources.len() as u64,
        }
    }

    /// Whether [`Self::unique_sources`] and [`Self::top_sources`] are exact.
    pub fn sources_exact(&self) -> bool {
        self.shift == 0
    }

    /// The sampling shift: sources are kept when their hash is below 2^(64-shift), about one
    /// in 2^shift; 0 when exact.
    pub fn source_sample_shift(&self) -> u8 {
        self.shift
    }

    /// The `n` sources with the most packets, by packets descending then address ascending.
    /// When sampled ([`Self::sources_exact`] is false) this is the top of the kept sources
    /// only, with exact counts for each.
    pub fn top_sources(&self, n: usize) -> Vec<(IpAddr, u64)> {
        top_n(
            self.sources
                .iter()
                .map(|(&ip, e)| (ip, e.packets()))
                .collect(),
            n,
        )
    }

    /// The `n` TCP/UDP source ports with the most packets (exact), by packets descending
    /// then port ascending. Packets without a TCP/UDP header are not counted.
    pub fn top_src_ports(&self, n: usize) -> Vec<(u16, u64)> {
        top_n(self.src_ports.entries(), n)
    }

    /// The `n` TCP/UDP destination ports with the most packets (exact).
    pub fn top_dst_ports(&self, n: usize) -> Vec<(u16, u64)> {
        top_n(self.dst_ports.entries(), n)
    }

    /// Distinct TCP/UDP source ports.
    pub fn distinct_src_ports(&self) -> usize {
        self.src_ports.distinct()
    }

    /// Distinct TCP/UDP destination ports.
    pub fn distinct_dst_ports(&self) -> usize {
        self.dst_ports.distinct()
    }

    /// Wire-length distribution.
    pub fn lengths(&self) -> LengthStats {
        LengthStats {
            buckets: self.len_hist,
            min: if self.packets == 0 { 0 } else { self.min_len },
            max: self.max_len,
            packets: self.packets,
            bytes: self.bytes,
        }
    }

    /// Packets per TTL (IPv6 hop limit) value.
    pub fn ttl_histogram(&self) -> &[u64; 256] {
        &self.ttl_hist
    }

    /// Distinct TTL values seen.
    pub fn distinct_ttls(&self) -> u32 {
        self.ttl_hist.iter().filter(|&&c| c > 0).count() as u32
    }

    /// Whether the sources look spoofed, from how their TTLs relate to their number.
    ///
    /// A real host's packets reach us with TTL = initial TTL (64 Linux/BSD, 128 Windows,
    /// 255 network gear) minus its hop count (typically 5-30). Many real sources (a botnet,
    /// or the reflectors of an amplification attack) have different hop counts, so their
    /// TTLs cluster in a few bands below 64/128/255, each band several values wide. Two
    /// patterns contradict that:
    ///
    /// - **(a) [`SpoofPattern::ConstantTtl`]**: many sources but very few TTL values. A
    ///   random-source flood from one box carries the box's single TTL (one or two more
    ///   values with ECMP), from a handful of boxes a handful. Measured per *source* (each
    ///   source counted once, at its minimum TTL, over the per-source table, a uniform
    ///   hash sample when sampled) so that one heavy real sender cannot fake it: spoofed
    ///   when the table holds ≥ 64 sources and either 90 % of them share at most 6 TTL
    ///   values (up to three boxes with one hop of ECMP jitter each), or ≥ 80 % fall
    ///   within one ±2 window. Real sources, even from one region, spread 90 % of their
    ///   hop counts over ≥ 7 values; from the whole internet over 20 or more.
    /// - **(b) [`SpoofPattern::RandomisedTtl`]**: tools that randomise the TTL spread it
    ///   over a wide range, much of it outside any plausible band (initial 64/128/255 minus
    ///   ≤ 40 hops: 24-64, 88-128, 215-255; a uniform TTL puts 52 % outside). Spoofed when
    ///   ≥ 32 distinct TTLs are seen and ≥ 25 % of *packets* are outside every band.
    ///
    /// Both need at least [`SPOOF_MIN_SOURCES`] distinct sources. Real reflection or botnet
    /// traffic has ≥ 10 TTL values per band and < 5 % implausible TTLs: not spoofed.
    /// Known blind spots: spoofers that mimic a realistic TTL spread, and real sources that
    /// all sit behind the same path (one hosting site), which look like (a).
    pub fn spoofed_verdict(&self) -> SpoofVerdict {
        let unique_sources = self.unique_sources();
        let distinct_ttls = self.distinct_ttls();

        // Per-source TTL histogram.
        let mut per_source = [0u64; 256];
        for e in self.sources.values() {
            per_source[usize::from(e.min_ttl())] += 1;
        }
        let table_sources = self.sources.len() as u64;
        let mut sorted = per_source;
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut covered = 0u64;
        let mut ttl_values_90 = 0u32;
        for &c in sorted.iter().take_while(|&&c| c > 0) {
            if covered * 10 >= table_sources * 9 {
                break;
            }
            covered += c;
            ttl_values_90 += 1;
        }
        let best_window = per_source
            .windows(5)
            .map(|w| w.iter().sum::<u64>())
            .max()
            .unwrap_or(0);
        let narrow_band_permille = permille(best_window, table_sources);

        let implausible: u64 = (0..=u8::MAX)
            .zip(self.ttl_hist.iter())
            .filter(|&(t, _)| !plausible_ttl(t))
            .map(|(_, &c)| c)
            .sum();
        let implausible_permille = permille(implausible, self.packets);

        let pattern = if unique_sources < SPOOF_MIN_SOURCES {
            SpoofPattern::TooFewSources
        } else if table_sources >= 64 && (ttl_values_90 <= 6 || narrow_band_permille >= 800) {
            SpoofPattern::ConstantTtl
        } else if distinct_ttls >= 32 && implausible_permille >= 250 {
            SpoofPattern::RandomisedTtl
        } else {
            SpoofPattern::Consistent
        };
        SpoofVerdict {
            spoofed: matches!(
                pattern,
                SpoofPattern::ConstantTtl | SpoofPattern::RandomisedTtl
            ),
            pattern,
            unique_sources,
            table_sources,
            ttl_values_90,
            narrow_band_permille,
            distinct_ttls,
            implausible_permille,
        }
    }
}

fn permille(part: u64, whole: u64) -> u16 {
    if whole == 0 {
        return 0;
    }
    u16::try_from(u128::from(part) * 1000 / u128::from(whole)).unwrap_or(1000)
}

#[inline]
fn hll_insert(regs: &mut [u8; HLL_M], h: u64) {
    let idx = (h >> (64 - HLL_P)) as usize;
    let w = h << HLL_P;
    // Rank of the first 1 bit in the remaining 52 bits, 53 when they are all zero.
    let rank = (w.leading_zeros() + 1).min(64 - HLL_P + 1) as u8;
    if let Some(r) = regs.get_mut(idx) {
        *r = (*r).max(rank);
    }
}

/// HyperLogLog estimate with linear counting for small cardinalities. The register sum is
/// exact (integer) and only `+ - * /` are used, so every platform rounds the same.
fn hll_estimate(regs: &[u8; HLL_M]) -> u64 {
    let mut sum: u128 = 0;
    let mut zeros = 0u32;
    for &r in regs.iter() {
        sum += 1u128 << (64 - u32::from(r.min(64)));
        zeros += u32::from(r == 0);
    }
    let m = HLL_M as f64;
    let harmonic = sum as f64 / 18_446_744_073_709_551_616.0; // Σ 2^-r
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let raw = alpha * m * m / harmonic;
    let est = if raw <= 2.5 * m && zeros > 0 {
        m * ln_portable(m / f64::from(zeros))
    } else {
        raw
    };
    est.round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// SplitMix64 generator for test data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn pkt(src: IpAddr, ttl: u8, sport: u16, dport: u16, len: u32) -> PacketSummary {
        let mut s = PacketSummary::empty(len);
        s.ip_version = if src.is_ipv4() { 4 } else { 6 };
        s.src = src;
        s.dst = IpAddr::from([192, 0, 2, 1]);
        s.protocol = proto::UDP;
        s.src_port = sport;
        s.dst_port = dport;
        s.ttl = ttl;
        s.has_l4 = true;
        s
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i)))
    }

    #[derive(Debug, PartialEq)]
    struct Snapshot {
        packets: u64,
        unique: u64,
        exact: bool,
        shift: u8,
        top: Vec<(IpAddr, u64)>,
        sports: Vec<(u16, u64)>,
        dports: Vec<(u16, u64)>,
        lengths: LengthStats,
        ttl: Vec<u64>,
        verdict: SpoofVerdict,
    }

    fn snapshot(s: &SourceStats) -> Snapshot {
        Snapshot {
            packets: s.packets(),
            unique: s.unique_sources(),
            exact: s.sources_exact(),
            shift: s.source_sample_shift(),
            top: s.top_sources(usize::MAX),
            sports: s.top_src_ports(usize::MAX),
            dports: s.top_dst_ports(usize::MAX),
            lengths: s.lengths(),
            ttl: s.ttl_histogram().to_vec(),
            verdict: s.spoofed_verdict(),
        }
    }

    #[test]
    fn hash_is_fixed() {
        // Golden values: a change of hash changes sampled results across versions.
        assert_eq!(src_hash(&v4(0)), src_hash(&v4(0)));
        assert_ne!(src_hash(&v4(0)), src_hash(&v4(1)));
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    }

    #[test]
    fn ln_matches_std() {
        for x in [1.0, 1.5, 2.0, 3.0, 10.0, 4096.0, 12345.678] {
            let d = (ln_portable(x) - f64::ln(x)).abs();
            assert!(d < 1e-12, "{x}: {d}");
        }
    }

    #[test]
    fn exact_below_a_thousand() {
        let mut s = SourceStats::new();
        for round in 0..3 {
            for i in 0..900 {
                s.record(&pkt(v4(i * 7919), 50, 53, 80, 100 + round));
            }
        }
        for i in 0..99u16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i));
            s.record(&pkt(ip, 50, 53, 80, 100));
        }
        assert!(s.sources_exact());
        assert_eq!(s.unique_sources(), 999);
        assert_eq!(s.packets(), 2799);
        assert!(s.hll.is_none(), "no HLL while exact");
    }

    fn hll_error(n: u32) -> f64 {
        let mut parts = [SourceStats::new(), SourceStats::new()];
        for i in 0..n {
            parts[(i % 2) as usize].record(&pkt(v4(i), 50, 53, 80, 100));
        }
        let [mut a, b] = parts;
        a.merge(&b);
        assert!(!a.sources_exact());
        assert!(a.sources.len() <= a.cap());
        let est = a.unique_sources() as f64;
        (est - f64::from(n)).abs() / f64::from(n)
    }

    #[test]
    fn hll_error_100k() {
        let e = hll_error(100_000);
        assert!(e < 0.03, "{e}");
    }

    #[test]
    fn hll_error_1m() {
        let e = hll_error(1_000_000);
        assert!(e < 0.03, "{e}");
    }

    #[test]
    fn hll_small_range_uses_linear_counting() {
        // A tiny cap forces the HLL at low cardinality.
        let mut s = SourceStats::with_cap(8);
        for i in 0..2000 {
            s.record(&pkt(v4(i * 3), 50, 53, 80, 100));
        }
        assert!(!s.sources_exact());
        let e = (s.unique_sources() as f64 - 2000.0).abs() / 2000.0;
        assert!(e < 0.03, "{e}");
        assert!(s.sources.len() <= 8);
    }

    #[test]
    fn top_n_orders_ties_by_key() {
        let mut s = SourceStats::new();
        let b = v4(2);
        let a = v4(1);
        let six = IpAddr::V6(Ipv6Addr::LOCALHOST);
        for (ip, n) in [(b, 3), (six, 3), (a, 3), (v4(9), 5), (v4(7), 1)] {
            for _ in 0..n {
                s.record(&pkt(ip, 50, 1000 + n as u16, 80, 60));
            }
        }
        assert_eq!(s.top_sources(4), vec![(v4(9), 5), (a, 3), (b, 3), (six, 3)]);
        assert_eq!(s.top_sources(1), vec![(v4(9), 5)]);
        assert!(s.top_sources(0).is_empty());
        assert_eq!(s.top_src_ports(2), vec![(1003, 9), (1005, 5)]);
        assert_eq!(s.top_dst_ports(5), vec![(80, 15)]);
    }

    #[test]
    fn ports_are_counted_exactly() {
        let mut s = SourceStats::new();
        let mut reference: std::collections::BTreeMap<u16, u64> = Default::default();
        let mut rng = Rng(7);
        for _ in 0..20_000 {
            let port =
                [rng.below(3000) as u16, 65535 - rng.below(300) as u16][rng.below(2) as usize];
            s.record(&pkt(v4(1), 50, 53, port, 100));
            *reference.entry(port).or_default() += 1;
        }
        assert_eq!(s.distinct_dst_ports(), reference.len());
        let mut want: Vec<(u16, u64)> = reference.into_iter().collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        want.truncate(10);
        assert_eq!(s.top_dst_ports(10), want);
        // Non-TCP/UDP packets are not counted by port.
        let mut icmp = pkt(v4(1), 50, 0, 0, 100);
        icmp.protocol = proto::ICMP;
        let mut s = SourceStats::new();
        s.record(&icmp);
        assert!(s.top_dst_ports(1).is_empty());
        assert_eq!(s.packets(), 1);
    }

    #[test]
    fn port_counts_are_exact_in_both_layouts_and_across_the_switch() {
        // Few ports (sparse), then past the switch (dense), cleared, and merged both ways.
        let mut rng = Rng(11);
        for distinct in [1u64, 5, 300, SPARSE_PORTS_MAX as u64, 5000, 65536] {
            let mut a = PortCounts::default();
            let mut b = PortCounts::default();
            let mut reference: std::collections::BTreeMap<u16, u64> = Default::default();
            for i in 0..30_000u64 {
                // Port 0 and 65535 included: the table stores port + 1.
                let port = (rng.below(distinct) as u16).wrapping_sub(u16::from(i % 7 == 0));
                let n = 1 + rng.below(3);
                if i % 2 == 0 { &mut a } else { &mut b }.add(port, n);
                *reference.entry(port).or_default() += n;
            }
            let want: Vec<(u16, u64)> = reference.into_iter().collect();
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b.clone();
            ba.merge(&a);
            assert_eq!(ab.entries(), want, "{distinct}");
            assert_eq!(ba.entries(), want, "{distinct}");
            assert_eq!(ab.distinct(), want.len());
            let dense = matches!(ab, PortCounts::Dense(_));
            assert_eq!(dense, want.len() > SPARSE_PORTS_MAX, "{distinct}");
            ab.clear();
            assert!(ab.entries().is_empty() && ab.distinct() == 0);
            ab.add(80, 2);
            assert_eq!(ab.entries(), vec![(80, 2)]);
        }
        // Saturating counts, and adding nothing counts nothing.
        let mut c = PortCounts::default();
        c.add(7, u64::MAX);
        c.add(7, 5);
        c.add(9, 0);
        assert_eq!(c.entries(), vec![(7, u64::from(u32::MAX))]);
    }

    #[test]
    fn length_histogram() {
        let mut s = SourceStats::new();
        assert_eq!(s.lengths().min, 0);
        assert_eq!(s.lengths().mean(), 0.0);
        for len in [
            0, 63, 64, 127, 128, 255, 256, 511, 512, 1023, 1024, 1499, 1500, 9000,
        ] {
            s.record(&pkt(v4(1), 50, 53, 80, len));
        }
        let l = s.lengths();
        assert_eq!(l.buckets, [2, 2, 2, 2, 2, 2, 2]);
        assert_eq!((l.min, l.max), (0, 9000));
        assert_eq!(l.bytes, 15_962);
        assert!((l.mean() - 15_962.0 / 14.0).abs() < 1e-9);
        assert_eq!(LENGTH_BUCKETS[1], "64-127");
        s.record(&PacketSummary::empty(100)); // no IP: ignored
        assert_eq!(s.packets(), 14);
    }

    #[test]
    fn clear_resets_and_keeps_working() {
        let mut s = SourceStats::with_cap(16);
        for i in 0..500 {
            s.record(&pkt(v4(i), 50, 53, i as u16, 100));
        }
        assert!(!s.sources_exact());
        s.clear();
        assert_eq!(snapshot(&s), snapshot(&SourceStats::with_cap(16)));
        for i in 0..10 {
            s.record(&pkt(v4(i), 50, 53, 80, 100));
        }
        assert!(s.sources_exact());
        assert_eq!(s.unique_sources(), 10);
        // The zeroed HLL is re-seeded correctly when sampling starts again.
        let mut fresh = SourceStats::with_cap(16);
        for i in 0..300 {
            s.record(&pkt(v4(i), 50, 53, 80, 100));
            fresh.record(&pkt(v4(i), 50, 53, 80, 100));
        }
        for i in 0..10 {
            fresh.record(&pkt(v4(i), 50, 53, 80, 100));
        }
        assert_eq!(snapshot(&s), snapshot(&fresh));
    }

    // ---- spoofing verdict ----

    #[test]
    fn random_sources_one_ttl_is_spoofed() {
        // hping3 --rand-source from one box: every packet TTL 64 - 12 hops.
        let mut s = SourceStats::new();
        let mut rng = Rng(1);
        for _ in 0..50_000 {
            let ip = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            s.record(&pkt(ip, 52, rng.next() as u16, 80, 60));
        }
        let v = s.spoofed_verdict();
        assert_eq!(v.pattern, SpoofPattern::ConstantTtl, "{v:?}");
        assert!(v.spoofed);
        assert_eq!(v.ttl_values_90, 1);

        // Three boxes, ECMP jitter of one hop.
        let mut s = SourceStats::new();
        for _ in 0..30_000 {
            let ip = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            let ttl = [52u8, 117, 240][rng.below(3) as usize] - rng.below(2) as u8;
            s.record(&pkt(ip, ttl, 1234, 80, 60));
        }
        let v = s.spoofed_verdict();
        assert_eq!(v.pattern, SpoofPattern::ConstantTtl, "{v:?}");
    }

    #[test]
    fn randomised_ttl_is_spoofed() {
        let mut s = SourceStats::new();
        let mut rng = Rng(2);
        for _ in 0..50_000 {
            let ip = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            let ttl = 1 + rng.below(255) as u8;
            s.record(&pkt(ip, ttl, 1234, 80, 60));
        }
        let v = s.spoofed_verdict();
        assert_eq!(v.pattern, SpoofPattern::RandomisedTtl, "{v:?}");
        assert!(v.spoofed);
        assert!(v.implausible_permille > 450);
        assert!(v.distinct_ttls > 200);
    }

    /// Real distributed sources: initial TTL by OS mix, hop count 5-30 per source.
    fn real_sources(n: u32, seed: u64, heavy: bool) -> SourceStats {
        let mut s = SourceStats::new();
        let mut rng = Rng(seed);
        for i in 0..n {
            let initial = match rng.below(10) {
                0..=6 => 64u8,
                7..=8 => 128,
                _ => 255,
            };
            let hops = 5 + rng.below(11) as u8 + rng.below(11) as u8 + rng.below(5) as u8;
            let ttl = initial - hops;
            let ip = v4(i.wrapping_mul(2_654_435_761));
            let packets = if heavy && i == 0 {
                200_000
            } else {
                1 + rng.below(40)
            };
            for _ in 0..packets {
                // Rare path changes: ±1 hop.
                let jitter = u8::from(rng.below(20) == 0);
                s.record(&pkt(ip, ttl - jitter, 53, 4444, 1200));
            }
        }
        s
    }

    #[test]
    fn reflection_attack_is_not_spoofed() {
        for (n, seed, heavy) in [(3000, 3, false), (300, 4, false), (1000, 5, true)] {
            let s = real_sources(n, seed, heavy);
            let v = s.spoofed_verdict();
            assert_eq!(v.pattern, SpoofPattern::Consistent, "{n} {heavy}: {v:?}");
            assert!(!v.spoofed);
            assert!(v.implausible_permille < 50);
        }
    }

    #[test]
    fn few_sources_give_no_verdict() {
        let mut s = SourceStats::new();
        for i in 0..150 {
            for _ in 0..100 {
                s.record(&pkt(v4(i), 52, 1234, 80, 60));
            }
        }
        let v = s.spoofed_verdict();
        assert_eq!(v.pattern, SpoofPattern::TooFewSources);
        assert!(!v.spoofed);
    }

    // ---- determinism ----

    fn check_partition(packets: &[PacketSummary], cap: usize, shards: usize, seed: u64) {
        let mut whole = SourceStats::with_cap(cap);
        for p in packets {
            whole.record(p);
        }
        let mut rng = Rng(seed);
        let mut parts: Vec<SourceStats> = (0..shards).map(|_| SourceStats::with_cap(cap)).collect();
        for p in packets {
            let i = rng.below(shards as u64) as usize;
            parts[i].record(p);
        }
        // Merge random pairs until one is left.
        while parts.len() > 1 {
            let a = rng.below(parts.len() as u64) as usize;
            let other = parts.swap_remove(a);
            let b = rng.below(parts.len() as u64) as usize;
            parts[b].merge(&other);
        }
        let merged = parts.pop().expect("one part");
        assert!(merged.sources.len() <= cap);
        assert_eq!(snapshot(&merged), snapshot(&whole));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn any_partition_and_merge_order_gives_the_same_result(
            raw in prop::collection::vec(
                (0u32..400, any::<bool>(), any::<u8>(), 0u16..40, 0u16..40, 0u32..2000),
                0..1500,
            ),
            cap in prop::sample::select(vec![1usize, 4, 16, 64, 1000]),
            shards in 1usize..=4,
            seed in any::<u64>(),
        ) {
            let packets: Vec<PacketSummary> = raw
                .iter()
                .map(|&(src, six, ttl, sp, dp, len)| {
                    let ip = if six {
                        IpAddr::V6(Ipv6Addr::from(0x2001_0db8u128 << 96 | u128::from(src)))
                    } else {
                        v4(src)
                    };
                    pkt(ip, ttl, sp, dp, len)
                })
                .collect();
            check_partition(&packets, cap, shards, seed);
        }
    }

    #[test]
    fn determinism_in_the_sampled_regime_at_scale() {
        let mut rng = Rng(11);
        let packets: Vec<PacketSummary> = (0..60_000)
            .map(|_| {
                let src = rng.below(20_000) as u32;
                pkt(
                    v4(src),
                    rng.next() as u8,
                    rng.next() as u16,
                    80,
                    60 + rng.below(1400) as u32,
                )
            })
            .collect();
        for (shards, seed) in [(1, 1), (2, 2), (3, 3), (4, 4)] {
            check_partition(&packets, 512, shards, seed);
        }
    }
}
