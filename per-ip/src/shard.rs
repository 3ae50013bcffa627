//! Per-worker accounting: one [`Shard`] per worker thread, handed every packet summary.

use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};
use surgewatch_pipeline::{proto, Fragment, PacketSummary, TrafficClass};

use crate::accounting::IpId;
use crate::analysis::SourceStats;
use crate::counters::{
    cell_add, AmpCounters, IpCounters, PacketsBytes, TickCells, TrafficStats, AMP_TABLE, NO_AMP,
    ZERO_CELLS,
};
use crate::key::{GroupId, IpKey};
use crate::prefix::PrefixTable;

/// What is monitored: the prefix table, or auto-monitoring, and the tracked-IP limit.
///
/// Built once from the configuration and shared (`Arc`) by every [`Shard`] and the
/// [`Accounting`](crate::Accounting) merger.
///
/// - **Prefix mode** ([`Monitor::prefixes`]): an address is monitored when it falls in a
///   configured prefix; the destination of a packet is counted inbound, the source outbound.
/// - **Auto-monitor mode** ([`Monitor::auto`], used when no prefix is configured): every
///   *destination* address is monitored for inbound traffic, up to the limit. Outbound traffic
///   is only ever counted for configured prefixes, so in auto-monitor mode nothing is counted
///   outbound.
///
/// The **tracked-IP limit** bounds the number of addresses with per-IP state (and so memory,
/// also under a random-destination flood). Auto-monitor mode always has one; prefix mode has
/// none unless [`Monitor::with_ip_limit`] sets one. See [`Shard`] for how it is enforced.
#[derive(Clone, Debug)]
pub struct Monitor {
    table: PrefixTable,
    auto_group: Option<GroupId>,
    ip_limit: usize,
}

impl Monitor {
    /// Prefix mode, no tracked-IP limit.
    pub fn prefixes(table: PrefixTable) -> Self {
        Monitor {
            table,
            auto_group: None,
            ip_limit: usize::MAX,
        }
    }

    /// Auto-monitor mode: every destination is monitored inbound, in `group`, for at most
    /// `limit` addresses.
    pub fn auto(limit: usize, group: GroupId) -> Self {
        Monitor {
            table: PrefixTable::default(),
            auto_group: Some(group),
            ip_limit: limit,
        }
    }

    /// Sets the tracked-IP limit.
    pub fn with_ip_limit(mut self, limit: usize) -> Self {
        self.ip_limit = limit;
        self
    }

    /// The prefix table (empty in auto-monitor mode).
    pub fn table(&self) -> &PrefixTable {
        &self.table
    }

    /// The group of auto-monitored addresses, `None` in prefix mode.
    pub fn auto_group(&self) -> Option<GroupId> {
        self.auto_group
    }

    /// The tracked-IP limit, `None` when unlimited.
    pub fn ip_limit(&self) -> Option<usize> {
        (self.ip_limit != usize::MAX).then_some(self.ip_limit)
    }

    pub(crate) fn raw_ip_limit(&self) -> usize {
        self.ip_limit
    }

    /// The group an address is accounted in: its longest configured prefix, else the
    /// auto-monitor group.
    pub fn group_of(&self, ip: IpKey) -> Option<GroupId> {
        self.table.lookup(ip.ip()).or(self.auto_group)
    }
}

/// The addresses the merger tracks, and how many more it can admit: published by
/// [`Accounting::admitted`](crate::Accounting::admitted) after each tick and installed into
/// every shard with [`Shard::install_admitted`]. Only used when a tracked-IP limit is set.
#[derive(Clone, Debug, Default)]
pub struct AdmittedSet {
    ips: HashSet<IpKey>,
    remaining: usize,
}

impl AdmittedSet {
    pub(crate) fn new(ips: HashSet<IpKey>, remaining: usize) -> Self {
        AdmittedSet { ips, remaining }
    }

    /// Whether `ip` is tracked.
    pub fn contains(&self, ip: IpKey) -> bool {
        self.ips.contains(&ip)
    }

    /// Number of tracked addresses.
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// How many more addresses can be admitted.
    pub fn remaining(&self) -> usize {
        self.remaining
    }
}

/// Marker for "none" in `u32` slot fields.
const NONE: u32 = u32::MAX;

/// Packets per chunk of [`Shard::account_batch`]: enough independent lookups to keep the
/// memory system busy, few enough that the prefetched lines are still in L1 when used.
const CHUNK: usize = 32;

/// Hints the CPU to bring the cache line holding `p` into L1. Never faults, has no effect on
/// program semantics, a no-op on other architectures.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it never faults (not even on an invalid address) and
    // does not read or write memory as far as the program can observe. SSE is part of the
    // x86_64 baseline, so the instruction always exists.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One entry of the per-tick index: the full key (so a hit is resolved on the index line)
/// and where the address's data live. 32 bytes, two per cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct IndexEntry {
    lo: u64,
    hi: u64,
    /// Slot in the dense vectors, [`NONE`] for an empty entry.
    slot: u32,
    /// Slot of the address in the installed [`WatchSet`], or [`NONE`].
    watch: u32,
    /// Index of its [`AmpCounters`] in this tick, or [`NONE`].
    amp: u32,
    v6: u32,
}

const EMPTY_ENTRY: IndexEntry = IndexEntry {
    lo: 0,
    hi: 0,
    slot: NONE,
    watch: NONE,
    amp: NONE,
    v6: 0,
};

impl IndexEntry {
    #[inline(always)]
    fn is(&self, k: &IpKey) -> bool {
        self.lo == k.lo && self.hi == k.hi && (self.v6 != 0) == k.v6
    }

    fn key(&self) -> IpKey {
        IpKey {
            v6: self.v6 != 0,
            hi: self.hi,
            lo: self.lo,
        }
    }
}

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Open-addressing (linear probing, load ≤ 1/2) index from [`IpKey`] to slot, with a keyed
/// hash so that an attacker who picks destination addresses cannot aim at one probe chain.
/// Hand-written rather than a `HashMap` so that the batched path can compute a key's entry
/// address and prefetch it before probing.
#[derive(Clone, Debug)]
struct SlotIndex {
    entries: Vec<IndexEntry>,
    len: usize,
    seed: [u64; 4],
}

impl Default for SlotIndex {
    fn default() -> Self {
        use std::hash::BuildHasher;
        let rs = hashbrown::DefaultHashBuilder::default();
        let seed = [1u64, 2, 3, 4].map(|i| rs.hash_one(i) | 1);
        SlotIndex {
            entries: vec![EMPTY_ENTRY; 16],
            len: 0,
            seed,
        }
    }
}

impl SlotIndex {
    #[inline(always)]
    fn hash(&self, k: &IpKey) -> u64 {
        let h = folded_multiply(k.lo ^ self.seed[0], self.seed[1]);
        if k.v6 {
            folded_multiply(h ^ k.hi ^ self.seed[2], self.seed[3])
        } else {
            h
        }
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    #[inline(always)]
    fn prefetch(&self, h: u64) {
        prefetch(self.entries.as_ptr().wrapping_add(h as usize & self.mask()));
    }

    /// `Ok(position)` of `k`, or `Err(position)` of the empty entry where it would go.
    #[inline(always)]
    fn find(&self, k: &IpKey, h: u64) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = h as usize & mask;
        // Terminates: the load factor is at most 1/2, so there is an empty entry.
        loop {
            let e = &self.entries[i];
            if e.slot == NONE {
                return Err(i);
            }
            if e.is(k) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts an absent key; returns its position.
    fn insert(&mut self, e: IndexEntry, h: u64) -> usize {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let k = e.key();
        match self.find(&k, h) {
            Ok(i) | Err(i) => {
                self.entries[i] = e;
                self.len += 1;
                i
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        let n = self.entries.len() * 2;
        let old = std::mem::replace(&mut self.entries, vec![EMPTY_ENTRY; n]);
        for e in old.into_iter().filter(|e| e.slot != NONE) {
            if let Err(i) = self.find(&e.key(), self.hash(&e.key())) {
                self.entries[i] = e;
            }
        }
    }

    /// Removes the entry at `pos` (backward-shift deletion: no tombstones).
    fn remove_at(&mut self, pos: usize) {
        let mask = self.mask();
        let mut hole = pos;
        let mut j = (pos + 1) & mask;
        loop {
            let e = self.entries[j];
            if e.slot == NONE {
                break;
            }
            let home = self.hash(&e.key()) as usize & mask;
            // `e` may move back to `hole` if `hole` lies on its probe path [home, j).
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.entries[hole] = e;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.entries[hole] = EMPTY_ENTRY;
        self.len -= 1;
    }

    fn entry_mut(&mut self, k: &IpKey) -> Option<&mut IndexEntry> {
        let h = self.hash(k);
        let i = self.find(k, h).ok()?;
        self.entries.get_mut(i)
    }

    fn clear(&mut self) {
        if self.len > 0 {
            self.entries.fill(EMPTY_ENTRY);
            self.len = 0;
        }
    }

    fn capacity(&self) -> usize {
        self.entries.len() / 2
    }
}

/// The targets whose inbound packets get a per-tick source analysis ([`SourceStats`]):
/// chosen by the detection engine at each tick boundary through
/// [`Accounting::set_watch`](crate::Accounting::set_watch) and installed into every shard with
/// [`Shard::install_watch`]. Only tracked addresses can be watched. A target's *slot* is its
/// position in ascending [`IpId`] order.
#[derive(Clone, Debug, Default)]
pub struct WatchSet {
    ids: Vec<IpId>,
    keys: Vec<IpKey>,
    slots: HashMap<IpKey, u32>,
}

impl WatchSet {
    /// A set of (id, address) pairs; sorted by id, duplicates dropped.
    pub(crate) fn new(mut targets: Vec<(IpId, IpKey)>) -> Self {
        targets.sort_unstable();
        targets.dedup_by_key(|t| t.0);
        let slots = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.1, i as u32))
            .collect();
        WatchSet {
            ids: targets.iter().map(|t| t.0).collect(),
            keys: targets.iter().map(|t| t.1).collect(),
            slots,
        }
    }

    /// Number of watched targets.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `ip` is watched.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.slots.contains_key(&IpKey::from(ip))
    }

    /// The watched targets, by ascending id.
    pub fn iter(&self) -> impl Iterator<Item = (IpId, IpKey)> + '_ {
        self.ids.iter().copied().zip(self.keys.iter().copied())
    }

    /// Slot of a target, [`NONE`] when not watched.
    #[inline]
    fn slot(&self, k: &IpKey) -> u32 {
        if self.ids.is_empty() {
            return NONE;
        }
        self.slots.get(k).copied().unwrap_or(NONE)
    }

    pub(crate) fn ids(&self) -> &[IpId] {
        &self.ids
    }

    pub(crate) fn keys(&self) -> &[IpKey] {
        &self.keys
    }

    pub(crate) fn slot_of(&self, k: &IpKey) -> Option<usize> {
        self.slots.get(k).map(|&s| s as usize)
    }
}

/// One shard's counters for one tick, handed from [`Shard::take_tick`] to the merger and back
/// through [`Shard::recycle`] so that its allocations are reused.
///
/// Layout: an open-addressing index (`IpKey` → slot, 32-byte entries holding the whole key)
/// into dense vectors of keys and packed counters (one `u64` per direction and class, 144
/// bytes per address), so a packet touches one index line and one counter line, and merging
/// walks the vectors sequentially. Amplification counters live in a side vector, only for
/// addresses that received reflector traffic.
#[derive(Clone, Debug, Default)]
pub struct TickDelta {
    index: SlotIndex,
    keys: Vec<IpKey>,
    cells: Vec<TickCells>,
    /// Cell contents moved out before either packed field could overflow: (key, cell, count).
    spill: Vec<(IpKey, u8, PacketsBytes)>,
    amp_keys: Vec<IpKey>,
    amp: Vec<AmpCounters>,
    stats: TrafficStats,
    /// The watch set this delta was accounted under, and its targets' source analysis
    /// (`watched[slot]`).
    watch: Arc<WatchSet>,
    watched: Vec<SourceStats>,
}

impl TickDelta {
    /// Whole-traffic counters of the tick.
    pub fn stats(&self) -> &TrafficStats {
        &self.stats
    }

    /// Per-address counters of the tick, in no particular order.
    pub fn ips(&self) -> impl Iterator<Item = (IpKey, IpCounters)> + '_ {
        self.keys.iter().zip(&self.cells).map(|(&k, cells)| {
            let mut c = IpCounters::ZERO;
            c.add_cells(cells);
            for (_, cell, pb) in self.spill.iter().filter(|s| s.0 == k) {
                c.add_cell(usize::from(*cell), *pb);
            }
            (k, c)
        })
    }

    /// Per-address amplification counters of the tick (only addresses that received
    /// reflector-port UDP), in no particular order.
    pub fn amp(&self) -> impl Iterator<Item = (IpKey, &AmpCounters)> + '_ {
        self.amp_keys.iter().copied().zip(&self.amp)
    }

    /// The watch set the delta was accounted under.
    pub fn watch(&self) -> &Arc<WatchSet> {
        &self.watch
    }

    /// Source analysis of each watched target's inbound packets in this shard's tick, by
    /// ascending [`IpId`].
    pub fn watched(&self) -> impl Iterator<Item = (IpId, &SourceStats)> + '_ {
        self.watch.ids().iter().copied().zip(&self.watched)
    }

    pub(crate) fn watched_raw(&self) -> &[SourceStats] {
        &self.watched
    }

    /// Switches to watch set `w`, clearing the watched stats (allocations kept).
    fn set_watch(&mut self, w: Arc<WatchSet>) {
        for s in &mut self.watched {
            s.clear();
        }
        self.watched.resize_with(w.len(), SourceStats::new);
        self.watched.truncate(w.len());
        if self.index.len > 0 {
            for e in self.index.entries.iter_mut().filter(|e| e.slot != NONE) {
                e.watch = w.slot(&e.key());
            }
        }
        self.watch = w;
    }

    /// Merges the per-address counters into `into` (the merger's fast path).
    pub(crate) fn merge_into(
        &self,
        into: &mut HashMap<IpKey, IpCounters>,
        amp_into: &mut HashMap<IpKey, AmpCounters>,
    ) {
        for (k, cells) in self.keys.iter().zip(&self.cells) {
            into.entry(*k).or_insert(IpCounters::ZERO).add_cells(cells);
        }
        for (k, cell, pb) in &self.spill {
            into.entry(*k)
                .or_insert(IpCounters::ZERO)
                .add_cell(usize::from(*cell), *pb);
        }
        for (k, a) in self.amp_keys.iter().zip(&self.amp) {
            amp_into.entry(*k).or_default().add(a);
        }
    }

    /// Number of addresses with counters.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no address has counters.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Addresses the delta can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.index.capacity().min(self.cells.capacity())
    }

    /// Zeroes everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.index.clear();
        self.keys.clear();
        self.cells.clear();
        self.spill.clear();
        self.amp_keys.clear();
        self.amp.clear();
        self.stats = TrafficStats::default();
        for s in &mut self.watched {
            s.clear();
        }
    }

    /// Removes an address (its counts, spills included, become overflow).
    fn evict(&mut self, key: IpKey) {
        let h = self.index.hash(&key);
        let Ok(pos) = self.index.find(&key, h) else {
            return;
        };
        let e = self.index.entries[pos];
        self.index.remove_at(pos);
        let slot = e.slot as usize;
        if slot >= self.keys.len() {
            return;
        }
        self.keys.swap_remove(slot);
        let cells = self.cells.swap_remove(slot);
        let mut total = IpCounters::ZERO;
        total.add_cells(&cells);
        let mut gone = total.grand_total();
        self.spill.retain(|(k, _, pb)| {
            let keep = *k != key;
            if !keep {
                gone.add(pb);
            }
            keep
        });
        self.stats.overflow.add(&gone);
        if let Some(&moved) = self.keys.get(slot) {
            if let Some(m) = self.index.entry_mut(&moved) {
                m.slot = slot as u32;
            }
        }
        let a = e.amp as usize;
        if e.amp != NONE && a < self.amp.len() {
            self.amp.swap_remove(a);
            self.amp_keys.swap_remove(a);
            if let Some(&moved) = self.amp_keys.get(a) {
                if let Some(m) = self.index.entry_mut(&moved) {
                    m.amp = a as u32;
                }
            }
        }
    }
}

/// Inbound amplification info of an op: the bucket, plus this bit for a first fragment.
const AMP_FIRST_FRAG: u8 = 0x80;

/// One (address, direction) accounting of a packet, as the batched path carries it between
/// its passes.
#[derive(Clone, Copy, Debug)]
struct Op {
    key: IpKey,
    hash: u64,
    bytes: u32,
    /// Resolved slot (pass 2), [`NONE`] when counted as overflow.
    slot: u32,
    watch: u32,
    amp_idx: u32,
    /// Index of the packet in its chunk.
    pkt: u16,
    /// `dir * 9 + class`.
    cell: u8,
    /// Amplification bucket (| [`AMP_FIRST_FRAG`]) or [`NO_AMP`].
    amp: u8,
}

const EMPTY_OP: Op = Op {
    key: IpKey::v4(0),
    hash: 0,
    bytes: 0,
    slot: NONE,
    watch: NONE,
    amp_idx: NONE,
    pkt: 0,
    cell: 0,
    amp: NO_AMP,
};

/// Per-worker accounting state: owned by one worker thread, no locks, no atomics.
///
/// # Hot path
/// [`Shard::account`] (one packet) and [`Shard::account_batch`] (a slice, same results) are
/// the per-packet calls. Per packet: three counter adds (frames, bytes, parse status); for IP
/// packets the inlined [`TrafficClass::of`]; two prefix lookups (destination, source — see
/// [`PrefixTable::lookup_v4`]; an unmonitored IPv4 address is one array load); for inbound UDP
/// one byte load for the source port's amplification bucket; and for each monitored side one
/// probe of a 32-byte-entry open-addressing index (a keyed multiply hash of the [`IpKey`]) and
/// one add into a packed 8-byte counter cell. No allocation, except when an address first
/// appears in a tick and the vectors must grow; allocations are recycled across ticks.
///
/// [`Shard::account_batch`] runs the same steps in passes over chunks of packets — lookups and
/// hashes, prefetch of the index lines; probes, prefetch of the counter lines; adds — so that
/// the cache misses of many packets overlap instead of following each other (IPv4 prefix
/// lookups are prefetched too). Measured on the 2-core dev VM (release, 300k prefixes,
/// `examples/hotpath.rs`, batches of 256, VM shared with compilations so ±30 %): uniformly
/// random over 100k monitored addresses ~50–80 ns/packet batched (~200–320 ns per packet
/// before batching); 90 % on 1k addresses and 10 % over 100k ~35–55 ns; 64 hot addresses
/// ~25 ns batched, ~18 ns with [`Shard::account`] (prefer it when everything fits in cache).
/// With an empty watch set, watching costs one predictable branch per packet.
///
/// # Tracked-IP limit
/// With a limit, an address missing from this tick's map is inserted only if it is in the
/// installed [`AdmittedSet`] or if fewer than `remaining` *new* addresses are held; otherwise
/// the largest held new address is evicted in favour of a smaller one (its counts become
/// overflow), else the packet is counted as overflow. Each shard therefore holds the
/// `remaining` smallest new addresses it saw, with complete counts, and the merger, which
/// admits new addresses in ascending order, admits the same ones whatever the sharding.
/// This is exact when every shard has the merger's latest [`AdmittedSet`] installed before it
/// accounts the next tick (the replay engine's tick barrier); with a set one tick stale, only
/// addresses admitted in the ticks in flight can lose counts, and only while the limit is hit.
/// The map holds at most `limit` addresses.
#[derive(Debug)]
pub struct Shard {
    monitor: Arc<Monitor>,
    limited: bool,
    cur: TickDelta,
    spares: Vec<TickDelta>,
    admitted: Arc<AdmittedSet>,
    /// New (not admitted) addresses held in `cur`, largest on top. Only used with a limit.
    new_keys: BinaryHeap<IpKey>,
    /// Scratch of the batched path (capacity `2 * CHUNK`).
    ops: Vec<Op>,
    watch: Arc<WatchSet>,
}

impl Shard {
    /// A shard with nothing counted yet.
    pub fn new(monitor: Arc<Monitor>) -> Self {
        let limit = monitor.raw_ip_limit();
        Shard {
            limited: limit != usize::MAX,
            admitted: Arc::new(AdmittedSet::new(HashSet::new(), limit)),
            monitor,
            cur: TickDelta::default(),
            spares: Vec::new(),
            new_keys: BinaryHeap::new(),
            ops: Vec::with_capacity(2 * CHUNK),
            watch: Arc::default(),
        }
    }

    /// The monitor this shard accounts for.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Accounts one packet summary into the current tick. See the type-level "Hot path".
    #[inline]
    pub fn account(&mut self, s: &PacketSummary) {
        let mut ops = [EMPTY_OP; 2];
        let n = self.prepare(s, 0, &mut ops);
        for op in ops.iter_mut().take(n) {
            if self.resolve(op) {
                self.apply(op, s);
            }
        }
    }

    /// Accounts a slice of packet summaries, in order; the result is exactly that of calling
    /// [`Shard::account`] on each. Faster when the addresses' counters are not in cache (many
    /// active addresses): see the type-level "Hot path".
    pub fn account_batch(&mut self, batch: &[PacketSummary]) {
        let mut ops = std::mem::take(&mut self.ops);
        for chunk in batch.chunks(CHUNK) {
            self.account_chunk(chunk, &mut ops);
        }
        self.ops = ops;
    }

    fn account_chunk(&mut self, chunk: &[PacketSummary], ops: &mut Vec<Op>) {
        // Passes 0 and 1: prefetch the prefix-table entries the IPv4 lookups will read.
        let table = &self.monitor.table;
        if !table.is_empty() {
            for s in chunk {
                if let (IpAddr::V4(d), IpAddr::V4(sr)) = (s.dst, s.src) {
                    table.prefetch_v4_block(u32::from(d));
                    table.prefetch_v4_block(u32::from(sr));
                }
            }
            for s in chunk {
                if let (IpAddr::V4(d), IpAddr::V4(sr)) = (s.dst, s.src) {
                    table.prefetch_v4(u32::from(d));
                    table.prefetch_v4(u32::from(sr));
                }
            }
        }
        // Pass 2: counters, lookups, hashes; prefetch the index entries.
        ops.clear();
        for (i, s) in chunk.iter().enumerate() {
            let mut two = [EMPTY_OP; 2];
            let k = self.prepare(s, i as u16, &mut two);
            for op in two.into_iter().take(k) {
                self.cur.index.prefetch(op.hash);
                ops.push(op);
            }
        }
        // Pass 3: probe, insert new addresses; prefetch the counter cells.
        let mut done = 0;
        for i in 0..ops.len() {
            let op = &mut ops[i];
            match self.cur.index.find(&op.key, op.hash) {
                Ok(pos) => self.resolve_at(op, pos),
                Err(_) => {
                    if self.limited {
                        // Admission may evict an address and move another one's slot: apply
                        // what is pending first, exactly as the per-packet order would.
                        for p in &ops[done..i] {
                            self.apply_in(p, chunk);
                        }
                        done = i;
                    }
                    if !self.resolve_vacant(&mut ops[i]) {
                        ops[i].slot = NONE;
                    }
                }
            }
            let op = &ops[i];
            if let Some(c) = self.cur.cells.get(op.slot as usize) {
                prefetch(c.as_ptr().wrapping_add(usize::from(op.cell)));
            }
        }
        // Pass 4: add.
        for p in &ops[done..] {
            self.apply_in(p, chunk);
        }
    }

    #[inline(always)]
    fn apply_in(&mut self, op: &Op, chunk: &[PacketSummary]) {
        if op.slot != NONE {
            if let Some(s) = chunk.get(usize::from(op.pkt)) {
                self.apply(op, s);
            }
        }
    }

    /// Counts the whole-traffic stats of a packet and describes its per-address accountings
    /// in `out`; returns how many (0, 1 or 2: destination inbound first, then source outbound).
    #[inline(always)]
    fn prepare(&mut self, s: &PacketSummary, pkt: u16, out: &mut [Op; 2]) -> usize {
        let st = &mut self.cur.stats;
        st.total.add_packet(u64::from(s.wire_len));
        if let Some(c) = st.parse_status.get_mut(s.status.index()) {
            *c += 1;
        }
        if !s.has_ip() {
            return 0;
        }
        let class = TrafficClass::of(s).index() as u8;
        let m = &*self.monitor;
        let (dst, dst_hit, src, src_hit) = match (s.dst, s.src) {
            (IpAddr::V4(d), IpAddr::V4(sr)) => {
                let (d, sr) = (u32::from(d), u32::from(sr));
                let t = &m.table;
                (
                    IpKey::v4(d),
                    t.lookup_v4(d).is_some(),
                    IpKey::v4(sr),
                    t.lookup_v4(sr).is_some(),
                )
            }
            (IpAddr::V6(d), IpAddr::V6(sr)) => {
                let (d, sr) = (u128::from(d), u128::from(sr));
                let t = &m.table;
                (
                    IpKey::v6(d),
                    t.lookup_v6(d).is_some(),
                    IpKey::v6(sr),
                    t.lookup_v6(sr).is_some(),
                )
            }
            (d, sr) => (
                IpKey::from(d),
                m.table.lookup(d).is_some(),
                IpKey::from(sr),
                m.table.lookup(sr).is_some(),
            ),
        };
        let mut n = 0;
        if dst_hit || m.auto_group.is_some() {
            let amp = if s.protocol == proto::UDP && s.has_l4 {
                let b = AMP_TABLE[usize::from(s.src_port)];
                if b != NO_AMP && s.frag == Fragment::First {
                    b | AMP_FIRST_FRAG
                } else {
                    b
                }
            } else {
                NO_AMP
            };
            out[0] = Op {
                key: dst,
                hash: self.cur.index.hash(&dst),
                bytes: s.wire_len,
                pkt,
                cell: class,
                amp,
                ..EMPTY_OP
            };
            n = 1;
        }
        if src_hit {
            out[n] = Op {
                key: src,
                hash: self.cur.index.hash(&src),
                bytes: s.wire_len,
                pkt,
                cell: TrafficClass::COUNT as u8 + class,
                ..EMPTY_OP
            };
            n += 1;
        }
        n
    }

    /// Finds or admits the op's address; false when the packet went to overflow.
    #[inline(always)]
    fn resolve(&mut self, op: &mut Op) -> bool {
        match self.cur.index.find(&op.key, op.hash) {
            Ok(pos) => {
                self.resolve_at(op, pos);
                true
            }
            Err(_) => self.resolve_vacant(op),
        }
    }

    /// Fills the op from the index entry at `pos`, giving the address amplification counters
    /// if the op needs them.
    #[inline(always)]
    fn resolve_at(&mut self, op: &mut Op, pos: usize) {
        let cur = &mut self.cur;
        let Some(e) = cur.index.entries.get_mut(pos) else {
            return;
        };
        op.slot = e.slot;
        // Only inbound packets are analysed.
        op.watch = if usize::from(op.cell) < TrafficClass::COUNT {
            e.watch
        } else {
            NONE
        };
        if op.amp != NO_AMP {
            if e.amp == NONE {
                e.amp = cur.amp.len() as u32;
                cur.amp.push(AmpCounters::ZERO);
                cur.amp_keys.push(op.key);
            }
            op.amp_idx = e.amp;
            if let Some(a) = cur.amp.get(e.amp as usize) {
                prefetch(a);
            }
        }
    }

    /// An address not yet in this tick's map: admits it (see "Tracked-IP limit") or counts
    /// the packet as overflow (returns false).
    #[inline(never)]
    fn resolve_vacant(&mut self, op: &mut Op) -> bool {
        if self.limited && !self.admitted.ips.contains(&op.key) {
            if self.new_keys.len() >= self.admitted.remaining {
                match self.new_keys.peek_mut() {
                    Some(mut largest) if op.key < *largest => {
                        let evicted = std::mem::replace(&mut *largest, op.key);
                        drop(largest);
                        self.cur.evict(evicted);
                    }
                    _ => {
                        self.cur.stats.overflow.add_packet(u64::from(op.bytes));
                        return false;
                    }
                }
            } else {
                self.new_keys.push(op.key);
            }
        }
        let cur = &mut self.cur;
        // Slots stay below the limit, and a map cannot hold 2^32 addresses anyway.
        let slot = cur.keys.len() as u32;
        cur.keys.push(op.key);
        cur.cells.push(ZERO_CELLS);
        let e = IndexEntry {
            lo: op.key.lo,
            hi: op.key.hi,
            slot,
            watch: cur.watch.slot(&op.key),
            amp: NONE,
            v6: u32::from(op.key.v6),
        };
        let pos = cur.index.insert(e, op.hash);
        self.resolve_at(op, pos);
        true
    }

    /// Adds a resolved op.
    #[inline(always)]
    fn apply(&mut self, op: &Op, s: &PacketSummary) {
        let cur = &mut self.cur;
        if let Some(cell) = cur
            .cells
            .get_mut(op.slot as usize)
            .and_then(|c| c.get_mut(usize::from(op.cell)))
        {
            if let Some(spilled) = cell_add(cell, op.bytes) {
                cur.spill.push((op.key, op.cell, spilled));
            }
        }
        if op.amp != NO_AMP {
            if let Some(a) = cur.amp.get_mut(op.amp_idx as usize) {
                a.add_packet(
                    usize::from(op.amp & !AMP_FIRST_FRAG),
                    u64::from(op.bytes),
                    op.amp & AMP_FIRST_FRAG != 0,
                );
            }
        }
        if op.watch != NONE {
            if let Some(w) = cur.watched.get_mut(op.watch as usize) {
                w.record(s);
            }
        }
    }

    /// The counters of the tick in progress.
    pub fn current(&self) -> &TickDelta {
        &self.cur
    }

    /// Ends the shard's tick: returns its counters and starts an empty tick (reusing a recycled
    /// delta when one is available).
    pub fn take_tick(&mut self) -> TickDelta {
        let mut next = self.spares.pop().unwrap_or_default();
        next.set_watch(Arc::clone(&self.watch));
        self.new_keys.clear();
        std::mem::replace(&mut self.cur, next)
    }

    /// Gives a merged delta back for reuse (at most two are kept).
    pub fn recycle(&mut self, mut delta: TickDelta) {
        if self.spares.len() < 2 {
            delta.clear();
            self.spares.push(delta);
        }
    }

    /// Installs the merger's tracked set (see "Tracked-IP limit"). Call before accounting the
    /// next tick; a no-op in effect without a limit.
    pub fn install_admitted(&mut self, admitted: Arc<AdmittedSet>) {
        self.admitted = admitted;
    }

    /// Installs the merger's watch set ([`Accounting::watch`](crate::Accounting::watch)):
    /// from now on every inbound packet to a watched target is also recorded into that
    /// target's [`SourceStats`] for the tick. Call between ticks, like
    /// [`Shard::install_admitted`]; installed mid-tick, it restarts the current tick's source
    /// analysis. With an empty set the per-packet cost is one predictable branch.
    pub fn install_watch(&mut self, watch: Arc<WatchSet>) {
        if !Arc::ptr_eq(&watch, &self.watch) {
            self.cur.set_watch(Arc::clone(&watch));
            self.watch = watch;
        }
    }
}
