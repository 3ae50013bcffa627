//! Per-worker accounting: one [`Shard`] per worker thread, handed every packet summary.

use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::HashMap;
use surgewatch_pipeline::{proto, Fragment, PacketSummary, TrafficClass};

use crate::counters::{
    add_cells_packed, cell_add, AmpCounters, IpCounters, PacketsBytes, TickCells, TrafficStats,
    AMP_TABLE, NO_AMP, ZERO_CELLS,
};
use crate::heavy::HeavyCache;
use crate::key::{GroupId, IpId, IpKey};
use crate::mem::{prefetch, zeroed_vec};
use crate::prefix::PrefixTable;
use crate::sources::SourceStats;
use crate::untracked::UntrackedNets;

/// What is monitored: the prefix table, or auto-monitoring, and the tracked-address budget.
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
/// also under a random-destination flood or a scan of a monitored /48). Auto-monitor mode
/// always has one; prefix mode has none unless [`Monitor::with_ip_limit`] sets one. When the
/// tracked set is full, traffic still decides who is tracked: an untracked destination that
/// receives at least [`Monitor::with_untracked_admission`] packets per second takes the place
/// of the tracked address quiet for longest, and past seven eighths of the limit addresses
/// quiet for [`Monitor::with_idle_eviction`] leave (see [`Accounting`](crate::Accounting)).
#[derive(Clone, Debug)]
pub struct Monitor {
    table: PrefixTable,
    auto_group: Option<GroupId>,
    ip_limit: usize,
    admit_pps: u64,
    idle_ns: u64,
}

/// Default of [`Monitor::with_untracked_admission`]: packets per second.
pub const DEFAULT_ADMIT_UNTRACKED_PPS: u64 = 1_000;
/// Default of [`Monitor::with_idle_eviction`]: five minutes.
pub const DEFAULT_IDLE_EVICT_NS: u64 = 300_000_000_000;

impl Monitor {
    /// Prefix mode, no tracked-IP limit.
    pub fn prefixes(table: PrefixTable) -> Self {
        Monitor {
            table,
            auto_group: None,
            ip_limit: usize::MAX,
            admit_pps: DEFAULT_ADMIT_UNTRACKED_PPS,
            idle_ns: DEFAULT_IDLE_EVICT_NS,
        }
    }

    /// Auto-monitor mode: every destination is monitored inbound, in `group`, for at most
    /// `limit` addresses.
    pub fn auto(limit: usize, group: GroupId) -> Self {
        Monitor {
            table: PrefixTable::default(),
            auto_group: Some(group),
            ..Monitor::prefixes(PrefixTable::default()).with_ip_limit(limit)
        }
    }

    /// Sets the tracked-IP limit.
    pub fn with_ip_limit(mut self, limit: usize) -> Self {
        self.ip_limit = limit;
        self
    }

    /// Sets the packet rate (per second, inbound) at which an untracked destination is
    /// admitted when the tracked set is full, in place of a quiet tracked address; 0 turns
    /// this admission off.
    pub fn with_untracked_admission(mut self, pps: u64) -> Self {
        self.admit_pps = pps;
        self
    }

    /// Sets how long (ns) a tracked address must have been quiet before it may leave when
    /// the tracked set is more than seven eighths full; 0 turns idle eviction off.
    pub fn with_idle_eviction(mut self, ns: u64) -> Self {
        self.idle_ns = ns;
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

    /// Packets per second of the admission of untracked destinations (0: off).
    pub fn untracked_admission_pps(&self) -> u64 {
        self.admit_pps
    }

    /// Quiet time (ns) after which a tracked address may be evicted (0: never).
    pub fn idle_eviction_ns(&self) -> u64 {
        self.idle_ns
    }

    /// The group an address is accounted in: its longest configured prefix, else the
    /// auto-monitor group.
    pub fn group_of(&self, ip: IpKey) -> Option<GroupId> {
        self.table.lookup(ip.ip()).or(self.auto_group)
    }
}

/// Marker for "none" in `u32` fields.
pub(crate) const NONE: u32 = u32::MAX;

/// Bit of an index entry's `target` (and of a delta's amplification references) marking a
/// *new* address, held in this tick's `new_*` vectors at slot `target & !NEW`; without it
/// `target` is the address's [`IpId`].
pub(crate) const NEW: u32 = 1 << 31;

/// Packets per chunk of [`Shard::account_batch`]: enough independent lookups to keep the
/// memory system busy, few enough that the prefetched lines are still in L1 when used.
const CHUNK: usize = 32;

/// One entry of the shard's index: the full key (so a hit is resolved on the index line),
/// where the address's counters live and its per-tick state. 32 bytes, two per cache line.
/// All zero is the empty entry, so that a new table can come from zeroed memory.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct IndexEntry {
    lo: u64,
    hi: u64,
    /// The address's [`IpId`] (tracked addresses, kept across ticks), or [`NEW`] | slot (new
    /// addresses, this tick only).
    target: u32,
    /// Shard tick in which the address was last counted: `amp` is valid only in that tick.
    stamp: u32,
    /// Index of its [`AmpCounters`] in the tick `stamp`, or [`NONE`].
    amp: u32,
    /// 0: empty entry; [`V4`] or [`V6`]: the key's family.
    family: u32,
}

const V4: u32 = 1;
const V6: u32 = 2;

const EMPTY_ENTRY: IndexEntry = IndexEntry {
    lo: 0,
    hi: 0,
    target: 0,
    stamp: 0,
    amp: 0,
    family: 0,
};

impl IndexEntry {
    /// The entry of `key`, counted into `target`, last counted in tick `stamp`.
    fn new(key: IpKey, target: u32, stamp: u32) -> Self {
        IndexEntry {
            lo: key.lo,
            hi: key.hi,
            target,
            stamp,
            amp: NONE,
            family: if key.v6 { V6 } else { V4 },
        }
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.family == 0
    }

    #[inline(always)]
    fn is(&self, k: &IpKey) -> bool {
        self.lo == k.lo && self.hi == k.hi && self.family == if k.v6 { V6 } else { V4 }
    }

    fn key(&self) -> IpKey {
        IpKey {
            v6: self.family == V6,
            hi: self.hi,
            lo: self.lo,
        }
    }
}

/// A table of `n` empty entries from zeroed memory: the kernel's zero pages, faulted in as
/// entries are written, instead of a pass over the whole table on the worker (34 ms for 2M
/// entries here, at the index's doubling past a million addresses).
fn empty_table(n: usize) -> Vec<IndexEntry> {
    zeroed_vec(n)
}

// SAFETY: two `u64` and four `u32` (`repr(C)`, 32 bytes, no padding); all-zero is `EMPTY_ENTRY`.
#[allow(unsafe_code)]
unsafe impl crate::mem::Zeroed for IndexEntry {}

#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Open-addressing (linear probing, load ≤ 1/2) index from [`IpKey`] to its entry, with a
/// keyed hash so that an attacker who picks destination addresses cannot aim at one probe
/// chain. Hand-written rather than a `HashMap` so that the batched path can compute a key's
/// entry address and prefetch it before probing.
///
/// Grows without a pause: a doubling allocates the new table and leaves the entries in the
/// old one, which move a few at a time ([`SlotIndex::migrate`], at each insertion and each
/// batch) or when a lookup meets them. (Rehashing everything at once stopped the worker for
/// 7 ms at 65k addresses and grows linearly: tens of milliseconds at a million, far more than
/// an AF_XDP fill ring holds.)
#[derive(Clone, Debug)]
struct SlotIndex {
    entries: Vec<IndexEntry>,
    /// The table before the last doubling while its entries move to `entries`; empty after.
    /// A moved entry keeps its place marked [`MOVED`], so that probe chains stay intact.
    old: Vec<IndexEntry>,
    /// Positions of `old` below this are moved.
    moved: usize,
    /// Addresses in both tables.
    len: usize,
    seed: [u64; 4],
}

/// `target` of an entry of the old table that has moved to the new one. Never a target: new
/// addresses' slots stay far below 2^31 - 2.
const MOVED: u32 = NONE - 1;
/// Positions of the old table moved at each insertion: at least two, so that a migration
/// ends before the next doubling (which comes after as many insertions as the old table had
/// entries, half its positions).
const MIGRATE_PER_INSERT: usize = 4;
/// Positions of the old table moved at each batch chunk, so that a migration also ends
/// without new addresses (a few hundred nanoseconds per chunk while one runs).
const MIGRATE_PER_CHUNK: usize = 16;

impl Default for SlotIndex {
    fn default() -> Self {
        use std::hash::BuildHasher;
        let rs = hashbrown::DefaultHashBuilder::default();
        let seed = [1u64, 2, 3, 4].map(|i| rs.hash_one(i) | 1);
        SlotIndex {
            entries: empty_table(16),
            old: Vec::new(),
            moved: 0,
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

    /// `Ok(position)` of `k`, or `Err(position)` of the empty entry where it would go (in
    /// the new table: an entry still in the old one moves there first).
    #[inline(always)]
    fn find(&mut self, k: &IpKey, h: u64) -> Result<usize, usize> {
        match self.find_new(k, h) {
            Err(vacant) if !self.old.is_empty() => self.find_old(k, h, vacant),
            r => r,
        }
    }

    /// `k` in the old table: moved to `vacant` in the new one if there.
    #[cold]
    #[inline(never)]
    fn find_old(&mut self, k: &IpKey, h: u64, vacant: usize) -> Result<usize, usize> {
        let mask = self.old.len() - 1;
        let mut i = h as usize & mask;
        // Terminates: the old table's load was at most 1/2 and entries never fill its empty
        // positions (moved ones stay marked).
        loop {
            let Some(e) = self.old.get_mut(i) else {
                return Err(vacant);
            };
            if e.is_empty() {
                return Err(vacant);
            }
            if e.target != MOVED && e.is(k) {
                let moving = *e;
                e.target = MOVED;
                if let Some(slot) = self.entries.get_mut(vacant) {
                    *slot = moving;
                }
                return Ok(vacant);
            }
            i = (i + 1) & mask;
        }
    }

    /// `Ok(position)` of `k` in the new table, or `Err(position)` of the empty entry where
    /// it would go.
    #[inline(always)]
    fn find_new(&self, k: &IpKey, h: u64) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = h as usize & mask;
        // Terminates: the load factor is at most 1/2, so there is an empty entry.
        loop {
            let e = &self.entries[i];
            if e.is_empty() {
                return Err(i);
            }
            if e.is(k) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts an absent key (absent from both tables: [`SlotIndex::find`] said so);
    /// returns its position.
    fn insert(&mut self, e: IndexEntry, h: u64) -> usize {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        self.migrate(MIGRATE_PER_INSERT);
        let k = e.key();
        match self.find_new(&k, h) {
            Ok(i) | Err(i) => {
                self.entries[i] = e;
                self.len += 1;
                i
            }
        }
    }

    /// Doubles the table; its entries move over later ([`SlotIndex::migrate`]).
    #[cold]
    fn grow(&mut self) {
        // Only if the last migration has not ended (not with the per-insert pace above).
        self.migrate(usize::MAX);
        let n = self.entries.len() * 2;
        self.old = std::mem::replace(&mut self.entries, empty_table(n));
        self.moved = 0;
    }

    /// Moves the entries of up to `n` positions of the old table to the new one; drops the
    /// old table after its last position.
    #[inline]
    fn migrate(&mut self, n: usize) {
        if self.old.is_empty() {
            return;
        }
        let end = self.moved.saturating_add(n).min(self.old.len());
        for i in self.moved..end {
            let Some(&e) = self.old.get(i) else {
                break;
            };
            if !e.is_empty() && e.target != MOVED {
                let k = e.key();
                if let Err(j) = self.find_new(&k, self.hash(&k)) {
                    if let Some(slot) = self.entries.get_mut(j) {
                        *slot = e;
                    }
                }
                if let Some(o) = self.old.get_mut(i) {
                    o.target = MOVED;
                }
            }
        }
        self.moved = end;
        if self.moved == self.old.len() {
            self.old = Vec::new();
            self.moved = 0;
        }
    }

    /// Removes the entry at `pos` (backward-shift deletion: no tombstones).
    fn remove_at(&mut self, pos: usize) {
        let mask = self.mask();
        let mut hole = pos;
        let mut j = (pos + 1) & mask;
        loop {
            let e = self.entries[j];
            if e.is_empty() {
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

    fn remove(&mut self, k: &IpKey) {
        let h = self.hash(k);
        if let Ok(i) = self.find(k, h) {
            self.remove_at(i);
        }
    }

    fn clear(&mut self) {
        self.old = Vec::new();
        self.moved = 0;
        if self.len > 0 {
            self.entries = empty_table(self.entries.len());
            self.len = 0;
        }
    }
}

/// Per-tick vectors of a delta hold at least this many entries after a merge.
pub(crate) const MIN_ROOM: usize = 1024;

/// Gives `v` room for `want` entries, or gives back capacity beyond four times that (never
/// below its length: the merger still reads the tick).
fn fit<T>(v: &mut Vec<T>, want: usize) {
    if v.capacity() < want {
        v.reserve(want - v.len());
    } else if v.capacity() > 4 * want {
        v.shrink_to(want.max(v.len()));
    }
}

/// Learned keys whose index entries [`Shard::recycle`] prefetches together.
const RECYCLE_GROUP: usize = 16;

/// One inbound packet in about this many goes into a tick's onset sample.
pub const ONSET_SAMPLE_RATE: u64 = 64;
/// Most packets one shard keeps in a tick's onset sample (16 MiB); reached only above
/// ~16 M inbound packets per shard and tick, where which packets are kept would start to
/// depend on how packets were spread over shards.
pub const MAX_ONSET_SAMPLES: usize = 1 << 18;

/// Whether a packet belongs to the onset sample: a function of its contents only (source
/// address, ports, TTL, length), so the sample is the same however packets are spread over
/// shards. Identical packets are all in or all out.
#[inline(always)]
pub fn onset_sampled(s: &PacketSummary) -> bool {
    let src = match s.src {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a) as u64,
    };
    let l4 = (u64::from(s.src_port) << 16 | u64::from(s.dst_port))
        ^ (u64::from(s.wire_len) << 32)
        ^ (u64::from(s.ttl) << 48);
    let h = (src ^ l4.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h >> (64 - ONSET_SAMPLE_RATE.trailing_zeros()) == 0
}

/// Bits of the shard-local filter in front of the watch set: with a few dozen targets, an
/// unwatched address passes it about 1 % of the time.
const WATCH_FILTER_BITS: usize = 4096;

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
/// Layout: the counters of *tracked* addresses (those the shard knows the [`IpId`] of) live in
/// a dense vector indexed by `IpId` (packed, one `u64` per direction and class, 144 bytes per
/// address) with a bitmap of the ids counted in the tick, so the merger adds and reads them in
/// `IpId` order without hashing or sorting. Addresses without a known id yet (*new*: not
/// admitted yet, or admitted through another shard) are kept by slot in vectors of keys and
/// counters, which the merger resolves by address; the ids it finds or assigns come back to the
/// shard with the recycled delta. Amplification counters live in a side vector, only for
/// addresses that received reflector traffic.
///
/// What every shard gets back with its delta after a tick ([`Shard::rearm`]): the tracked
/// set, the watch set, and a new monitor when it changed. Cheap to clone (shared `Arc`s).
///
#[derive(Clone, Debug, Default)]
pub struct Rearm {
    /// How many addresses the merger can still admit (`usize::MAX` without a limit): the
    /// most new addresses a shard holds in a tick (see "Tracked-IP limit" on [`Shard`]).
    pub remaining: usize,
    /// Addresses admitted at the tick boundary, with their ids: every shard learns them, so
    /// that each one knows every tracked address (and needs no tracked set besides its index).
    pub learn: Arc<[(IpKey, IpId)]>,
    /// Addresses evicted at the tick boundary: every shard forgets their ids (which the
    /// merger reuses from the next boundary on).
    pub forget: Arc<[IpKey]>,
    /// The targets to watch.
    pub watch: Arc<WatchSet>,
    /// What is monitored from the next tick on, when it changed.
    pub monitor: Option<Arc<Monitor>>,
    /// The merger's number of closed ticks: a shard that was not re-armed at every boundary
    /// (a live worker that missed a tick) has deltas the merger checks address by address.
    pub epoch: u64,
    /// A full re-synchronisation ([`Accounting::resync`](crate::Accounting::resync)): the shard
    /// forgets every id it knows and `learn` lists every tracked address.
    pub reset: bool,
}

/// After [`Accounting::end_tick`](crate::Accounting::end_tick) a delta is *merged*: its
/// contents are the merger's working state until [`Shard::recycle`] clears it (a merged delta
/// handed to `end_tick` again counts as empty).
#[derive(Clone, Debug, Default)]
pub struct TickDelta {
    /// Counters of tracked addresses by `IpId`; valid where `bits` is set.
    pub(crate) cells: Vec<TickCells>,
    pub(crate) bits: Vec<u64>,
    /// Cells below this have been written since `cells` was allocated (resident memory);
    /// above, they may still be the kernel's zero pages.
    pub(crate) faulted: usize,
    /// Tracked addresses counted in the tick (address, id), in first-packet order.
    pub(crate) touched: Vec<(IpKey, u32)>,
    /// New addresses and their counters, by slot.
    pub(crate) new_keys: Vec<IpKey>,
    pub(crate) new_cells: Vec<TickCells>,
    /// Cell contents moved out before either packed field could overflow:
    /// (address, id or [`NONE`] for a new address, cell, count).
    pub(crate) spill: Vec<(IpKey, u32, u8, PacketsBytes)>,
    /// (address, id or [`NEW`] | slot) of each amplification entry.
    pub(crate) amp_refs: Vec<(IpKey, u32)>,
    pub(crate) amp: Vec<AmpCounters>,
    stats: TrafficStats,
    /// The watch set this delta was accounted under, and its targets' source analysis
    /// (`watched[slot]`).
    watch: Arc<WatchSet>,
    watched: Vec<SourceStats>,
    /// Inbound packets to unwatched targets picked by [`onset_sampled`] (about 1 in
    /// [`ONSET_SAMPLE_RATE`]), at most [`MAX_ONSET_SAMPLES`]: what the detector describes the
    /// sources of an attack with when it starts on a target nobody was watching.
    samples: Vec<PacketSummary>,
    /// Inbound packets to addresses the tracked-IP limit left untracked: the heaviest of
    /// them are admitted at the tick boundary (see [`crate::heavy`]).
    pub(crate) heavy: HeavyCache,
    /// The same packets per /24 or /64 and per configured prefix (see [`crate::untracked`]).
    pub(crate) untracked: UntrackedNets,
    /// Set by the merger: new addresses of this delta that have an id, learned by the shard in
    /// [`Shard::recycle`].
    pub(crate) learned: Vec<(IpKey, IpId)>,
    /// Set by the merger, cleared by [`TickDelta::clear`].
    pub(crate) merged: bool,
    /// The epoch ([`Rearm::epoch`]) of the shard when it handed the delta over.
    pub(crate) epoch: u64,
}

impl TickDelta {
    /// Whole-traffic counters of the tick.
    pub fn stats(&self) -> &TrafficStats {
        &self.stats
    }

    /// Per-address counters of the tick, in no particular order.
    pub fn ips(&self) -> impl Iterator<Item = (IpKey, IpCounters)> + '_ {
        let spills = move |k: IpKey, c: &mut IpCounters| {
            for (_, _, cell, pb) in self.spill.iter().filter(|s| s.0 == k) {
                c.add_cell(usize::from(*cell), *pb);
            }
        };
        let known = self.touched.iter().map(move |&(k, id)| {
            let mut c = IpCounters::ZERO;
            if let Some(cells) = self.cells.get(id as usize) {
                c.add_cells(cells);
            }
            spills(k, &mut c);
            (k, c)
        });
        let new = self
            .new_keys
            .iter()
            .zip(&self.new_cells)
            .map(move |(&k, cells)| {
                let mut c = IpCounters::ZERO;
                c.add_cells(cells);
                spills(k, &mut c);
                (k, c)
            });
        known.chain(new)
    }

    /// Per-address amplification counters of the tick (only addresses that received
    /// reflector-port UDP), in no particular order.
    pub fn amp(&self) -> impl Iterator<Item = (IpKey, &AmpCounters)> + '_ {
        self.amp_refs.iter().map(|r| r.0).zip(&self.amp)
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

    /// The onset sample of this shard's tick (see `onset_sampled`).
    pub fn onset_samples(&self) -> &[PacketSummary] {
        &self.samples
    }

    /// Switches to watch set `w`, clearing the watched stats (allocations kept).
    fn set_watch(&mut self, w: Arc<WatchSet>) {
        for s in &mut self.watched {
            s.clear();
        }
        self.watched.resize_with(w.len(), || {
            SourceStats::with_cap(crate::sources::WATCH_SOURCE_CAP)
        });
        self.watched.truncate(w.len());
        self.watch = w;
    }

    /// Counts `key` as a new address of this tick: its target (`NEW` | slot).
    #[inline]
    fn new_slot(&mut self, key: IpKey) -> u32 {
        // Slots stay below the limit, and a tick cannot hold 2^31 new addresses anyway.
        let slot = self.new_keys.len() as u32 & !NEW;
        self.new_keys.push(key);
        self.new_cells.push(ZERO_CELLS);
        NEW | slot
    }

    /// Number of addresses with counters.
    pub fn len(&self) -> usize {
        self.touched.len() + self.new_keys.len()
    }

    /// Whether no address has counters.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.new_keys.is_empty()
    }

    /// Addresses the delta can hold without reallocating: every tracked id it has room for
    /// plus the new addresses its vectors hold.
    pub fn capacity(&self) -> usize {
        self.cells.len() + self.new_keys.capacity().min(self.new_cells.capacity())
    }

    /// Whether nothing was accounted into the delta since it was cleared.
    fn is_pristine(&self) -> bool {
        self.stats.total.packets == 0 && self.is_empty() && !self.merged
    }

    /// Zeroes everything, keeping the allocations (the merger sizes them: see
    /// `TickDelta::make_room`).
    pub fn clear(&mut self) {
        // The per-id cells are not zeroed here: `touch` zeroes an id's cells when it first
        // marks the id in a tick, and every reader goes through `bits`. (Zeroing them here
        // was a pass over 128 bytes per id on the worker's thread at each tick boundary:
        // ~2 ms at 100k active addresses, ~20 ms at a million.)
        self.bits.fill(0);
        self.touched.clear();
        self.new_keys.clear();
        self.new_cells.clear();
        self.spill.clear();
        self.amp_refs.clear();
        self.amp.clear();
        self.stats = TrafficStats::default();
        for s in &mut self.watched {
            s.clear();
        }
        self.samples.clear();
        self.heavy.clear();
        self.untracked.clear();
        self.learned.clear();
        self.merged = false;
    }

    /// Sizes the delta for its next tick, on the merger's thread: cells for a quarter more
    /// ids than `ids` (those of `ids` written), room for `ids` tracked addresses, for twice
    /// this tick's new addresses, and for amplification counters of every address counted
    /// (at least [`MIN_ROOM`] each); capacity beyond four times that is given back (the
    /// vectors of new addresses are large only while addresses are learnt). A worker that
    /// grew these on its packet path stalled for 1-14 ms at each doubling while 100k
    /// addresses were learnt (measured: copies of megabytes, page faults), long enough to
    /// overflow an AF_XDP fill ring.
    pub(crate) fn make_room(&mut self, ids: usize) {
        // A quarter more than today's ids: the worker meets the ids admitted in the tick it
        // counts into this delta's predecessor before the merger sees this delta again.
        self.reserve_ids(ids + ids / 4 + MIN_ROOM);
        self.prefault(ids);
        fit(&mut self.touched, ids);
        let new = (2 * self.new_keys.len()).max(MIN_ROOM);
        fit(&mut self.new_keys, new);
        fit(&mut self.new_cells, new);
        // Room for every address counted in the tick to get amplification counters: a
        // reflection attack spread over many targets ("carpet bombing") starts with that.
        let amp = (2 * self.amp.len())
            .max(self.touched.len() + self.new_keys.len())
            .max(MIN_ROOM);
        fit(&mut self.amp, amp);
        fit(&mut self.amp_refs, amp);
    }

    /// Makes room for ids below `n` (all zero, unset).
    ///
    /// Grows to at least twice the current room, into fresh zeroed memory: only the current
    /// cells are copied, the others stay the kernel's zero pages until an id is first counted.
    /// (Writing them here cost a worker 18 ms at 100k ids when it met the first learnt ids
    /// in a delta made before they were known; proportionally more at a million.)
    pub(crate) fn reserve_ids(&mut self, n: usize) {
        if n > self.cells.len() {
            let room = n.max(2 * self.cells.len());
            let mut grown: Vec<TickCells> = zeroed_vec(room);
            if let Some(head) = grown.get_mut(..self.cells.len()) {
                head.copy_from_slice(&self.cells);
            }
            self.faulted = self.cells.len();
            self.cells = grown;
            self.bits.resize(room.div_ceil(64), 0);
        }
    }

    /// Writes the never-written cells of ids below `n` (the merger's thread: their page faults
    /// would otherwise be taken by the worker when it first counts them). Cells counted in the
    /// tick are left alone; the others hold nothing (zeroed at an id's first packet).
    fn prefault(&mut self, n: usize) {
        let end = n.min(self.cells.len());
        for i in self.faulted..end {
            let counted = self
                .bits
                .get(i / 64)
                .is_some_and(|w| w & (1 << (i % 64)) != 0);
            if let (false, Some(c)) = (counted, self.cells.get_mut(i)) {
                *c = ZERO_CELLS;
            }
        }
        self.faulted = self.faulted.max(end);
    }

    /// Marks tracked address `id` as counted in the tick (first packet of the tick).
    #[inline]
    fn touch(&mut self, key: IpKey, id: u32, hint: usize) {
        let i = id as usize;
        if i >= self.cells.len() {
            self.reserve_ids(hint.max(i + 1));
        }
        if let Some(w) = self.bits.get_mut(i / 64) {
            let b = 1u64 << (i % 64);
            if *w & b == 0 {
                *w |= b;
                // Cells are zeroed lazily, here, at an id's first packet of the tick.
                if let Some(c) = self.cells.get_mut(i) {
                    *c = ZERO_CELLS;
                }
                self.touched.push((key, id));
            }
        }
    }

    /// Takes the counters of tracked id `id` out of the delta (clearing its bit), if counted.
    pub(crate) fn take_known(&mut self, id: u32) -> Option<IpCounters> {
        let i = id as usize;
        let w = self.bits.get_mut(i / 64)?;
        let b = 1u64 << (i % 64);
        if *w & b == 0 {
            return None;
        }
        *w &= !b;
        let mut c = IpCounters::ZERO;
        c.add_cells(self.cells.get(i)?);
        Some(c)
    }

    /// Adds packed cells to tracked address `id` (the merger's path), setting its bit.
    #[inline]
    pub(crate) fn add_known(
        &mut self,
        id: u32,
        from: &TickCells,
        spill: &mut Vec<(u32, u8, PacketsBytes)>,
    ) {
        let i = id as usize;
        self.reserve_ids(i + 1);
        let (Some(w), Some(c)) = (self.bits.get_mut(i / 64), self.cells.get_mut(i)) else {
            return;
        };
        let b = 1u64 << (i % 64);
        if *w & b == 0 {
            *w |= b;
            *c = *from;
        } else {
            add_cells_packed(c, from, id, spill);
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
    /// Resolved target (pass 3: an id, or [`NEW`] | slot), [`NONE`] when counted as overflow.
    target: u32,
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
    target: NONE,
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
/// one add into a packed 8-byte counter cell. The index is kept across ticks and maps every
/// tracked address the shard has seen to its [`IpId`] (learned from the merger through
/// [`Shard::recycle`]), so a tracked address is counted straight into the delta's by-id
/// vector; the first packet of an address in a tick also sets its bit in the delta's bitmap.
/// No allocation, except when the vectors must grow; allocations are recycled across ticks.
///
/// [`Shard::account_batch`] runs the same steps in passes over chunks of packets — lookups and
/// hashes, prefetch of the index lines; probes, prefetch of the counter lines; adds — so that
/// the cache misses of many packets overlap instead of following each other (IPv4 prefix
/// lookups are prefetched too). Measured on the 2-core dev VM (release, 300k prefixes,
/// `examples/hotpath.rs`, batches of 256, VM shared with compilations so ±30 %): uniformly
/// random over 100k monitored addresses ~50–80 ns/packet batched (~200–320 ns per packet
/// before batching); 90 % on 1k addresses and 10 % over 100k ~35–55 ns; 64 hot addresses
/// ~25 ns batched, ~18 ns with [`Shard::account`] (prefer it when everything fits in cache).
/// With an empty watch set, watching costs one predictable branch per packet; with targets,
/// one bit test of a 512-byte filter per inbound packet (and a lookup of the few that pass).
///
/// # Tracked-IP limit
/// Every shard learns every tracked address from the merger at each tick boundary
/// ([`Rearm::learn`], [`Rearm::forget`]), so its index knows them all. With a limit, an address
/// the index does not know is held as *new* only while fewer than [`Rearm::remaining`] new
/// addresses are held; otherwise the largest held new address is evicted in favour of a
/// smaller one (its counts become overflow), else the packet is counted as overflow and, when
/// inbound, offered to the tick's heavy-hitter cache (the merger admits the heaviest of those
/// at the boundary). Each shard therefore holds the `remaining` smallest new addresses it saw,
/// with complete counts, and the merger, which admits new addresses in ascending order, admits
/// the same ones whatever the sharding. This is exact when every shard is re-armed before it
/// accounts the next tick (the replay engine's tick barrier); re-armed one tick late (live
/// capture), only addresses admitted or evicted in the ticks in flight can lose counts (to
/// overflow), and only while the limit is hit. The index holds at most `limit` tracked
/// addresses plus `remaining` new ones.
#[derive(Debug)]
pub struct Shard {
    monitor: Arc<Monitor>,
    limited: bool,
    /// Tracked addresses seen by this shard (with their id) and this tick's new ones.
    index: SlotIndex,
    /// Stamp of the current tick (never 0, the stamp of learned entries).
    tick: u32,
    /// One more than the largest id in `index`: the size the by-id vectors grow to.
    id_hint: usize,
    cur: TickDelta,
    spares: Vec<TickDelta>,
    /// How many new addresses the shard may hold in a tick (see "Tracked-IP limit").
    remaining: usize,
    /// The epoch of the last re-arm applied.
    epoch: u64,
    /// New (not admitted) addresses held in `cur`, largest on top. Only used with a limit.
    new_keys: BinaryHeap<IpKey>,
    /// Scratch of the batched path (capacity `2 * CHUNK`).
    ops: Vec<Op>,
    watch: Arc<WatchSet>,
    /// Bits `hash >> 52` of the watched targets' index hashes: most unwatched packets stop at
    /// one bit test.
    watch_filter: Box<[u64; WATCH_FILTER_BITS / 64]>,
    watching: bool,
}

impl Shard {
    /// A shard with nothing counted yet.
    pub fn new(monitor: Arc<Monitor>) -> Self {
        let limit = monitor.raw_ip_limit();
        Shard {
            limited: limit != usize::MAX,
            remaining: limit,
            epoch: 0,
            monitor,
            index: SlotIndex::default(),
            tick: 1,
            id_hint: 0,
            cur: TickDelta::default(),
            spares: Vec::new(),
            new_keys: BinaryHeap::new(),
            ops: Vec::with_capacity(2 * CHUNK),
            watch: Arc::default(),
            watch_filter: Box::new([0; WATCH_FILTER_BITS / 64]),
            watching: false,
        }
    }

    /// The monitor this shard accounts for.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Replaces what is monitored (e.g. the host agent's addresses changed), between ticks,
    /// with the same tracked-IP limit. Addresses no longer monitored stop being counted from
    /// the next packet; new ones are counted and admitted by the merger as usual (the merger
    /// must get the same monitor through [`crate::Accounting::set_monitor`]).
    pub fn set_monitor(&mut self, monitor: Arc<Monitor>) {
        self.monitor = monitor;
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
        self.index.migrate(MIGRATE_PER_CHUNK);
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
                self.index.prefetch(op.hash);
                ops.push(op);
            }
        }
        // Pass 3: probe, insert new addresses; prefetch the counter cells.
        let mut done = 0;
        for i in 0..ops.len() {
            let op = &mut ops[i];
            match self.index.find(&op.key, op.hash) {
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
                        ops[i].target = NONE;
                    }
                }
            }
            let op = &ops[i];
            if let Some(c) = self.cur.cells_of(op.target) {
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
        if op.target != NONE {
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
            let hash = self.index.hash(&dst);
            // Only inbound packets are analysed.
            let watch = if self.watching && self.watch_filter_hit(hash) {
                self.watch.slot(&dst)
            } else {
                NONE
            };
            if watch == NONE && onset_sampled(s) && self.cur.samples.len() < MAX_ONSET_SAMPLES {
                self.cur.samples.push(*s);
            }
            out[0] = Op {
                key: dst,
                hash,
                bytes: s.wire_len,
                pkt,
                cell: class,
                amp,
                watch,
                ..EMPTY_OP
            };
            n = 1;
        }
        if src_hit {
            out[n] = Op {
                key: src,
                hash: self.index.hash(&src),
                bytes: s.wire_len,
                pkt,
                cell: TrafficClass::COUNT as u8 + class,
                ..EMPTY_OP
            };
            n += 1;
        }
        n
    }

    #[inline(always)]
    fn watch_filter_hit(&self, hash: u64) -> bool {
        let b = (hash >> 52) as usize;
        self.watch_filter
            .get(b / 64)
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }

    /// Finds or admits the op's address; false when the packet went to overflow.
    #[inline(always)]
    fn resolve(&mut self, op: &mut Op) -> bool {
        match self.index.find(&op.key, op.hash) {
            Ok(pos) => {
                self.resolve_at(op, pos);
                true
            }
            Err(_) => self.resolve_vacant(op),
        }
    }

    /// Fills the op from the index entry at `pos` (marking a tracked address as counted in the
    /// tick on its first packet), giving the address amplification counters if the op needs
    /// them.
    #[inline(always)]
    fn resolve_at(&mut self, op: &mut Op, pos: usize) {
        let cur = &mut self.cur;
        let Some(e) = self.index.entries.get_mut(pos) else {
            return;
        };
        if e.stamp != self.tick {
            // First packet of a tracked address in this tick (new entries carry the stamp),
            // or of a new address of an earlier tick whose id has not come back yet: new
            // again in this one.
            e.stamp = self.tick;
            e.amp = NONE;
            if e.target & NEW == 0 {
                cur.touch(op.key, e.target, self.id_hint);
            } else {
                e.target = cur.new_slot(op.key);
            }
        }
        op.target = e.target;
        if op.amp != NO_AMP {
            if e.amp == NONE {
                e.amp = cur.amp.len() as u32;
                cur.amp.push(AmpCounters::ZERO);
                cur.amp_refs.push((op.key, e.target));
            }
            op.amp_idx = e.amp;
            if let Some(a) = cur.amp.get(e.amp as usize) {
                prefetch(a);
            }
        }
    }

    /// An address not in the index: admits it for this tick as a new address (see
    /// "Tracked-IP limit") or counts the packet as overflow (returns false).
    #[inline(never)]
    fn resolve_vacant(&mut self, op: &mut Op) -> bool {
        if self.limited {
            if self.new_keys.len() >= self.remaining {
                let evicted = match self.new_keys.peek_mut() {
                    Some(mut largest) if op.key < *largest => {
                        Some(std::mem::replace(&mut *largest, op.key))
                    }
                    _ => None,
                };
                match evicted {
                    Some(e) => self.evict(e),
                    None => {
                        self.cur.stats.overflow.add_packet(u64::from(op.bytes));
                        let class = usize::from(op.cell);
                        if class < TrafficClass::COUNT {
                            self.cur.heavy.record(op.key, op.hash);
                            let m = &*self.monitor;
                            if let Some(g) = m.group_of(op.key) {
                                self.cur.untracked.add(&m.table, op.key, g, class, op.bytes);
                            }
                        }
                        return false;
                    }
                }
            } else {
                self.new_keys.push(op.key);
            }
        }
        let e = IndexEntry::new(op.key, self.cur.new_slot(op.key), self.tick);
        let pos = self.index.insert(e, op.hash);
        self.resolve_at(op, pos);
        true
    }

    /// Removes a new address (its counts, spills included, become overflow).
    fn evict(&mut self, key: IpKey) {
        let h = self.index.hash(&key);
        let Ok(pos) = self.index.find(&key, h) else {
            return;
        };
        let e = self.index.entries[pos];
        if e.target & NEW == 0 {
            return;
        }
        self.index.remove_at(pos);
        let cur = &mut self.cur;
        let slot = (e.target & !NEW) as usize;
        if slot >= cur.new_keys.len() {
            return;
        }
        cur.new_keys.swap_remove(slot);
        let cells = cur.new_cells.swap_remove(slot);
        let mut total = IpCounters::ZERO;
        total.add_cells(&cells);
        cur.spill.retain(|(k, _, cell, pb)| {
            let keep = *k != key;
            if !keep {
                total.add_cell(usize::from(*cell), *pb);
            }
            keep
        });
        cur.stats.overflow.add(&total.grand_total());
        // Untracked now: in the aggregates and the heavy-hitter cache like any untracked
        // packet (else whether a flood is admitted would depend on how its packets were
        // spread over shards).
        if let Some(g) = self.monitor.group_of(key) {
            let inbound = &total.by_dir[crate::key::Direction::In.index()];
            cur.untracked
                .add_counts(&self.monitor.table, key, g, inbound);
            let packets: u64 = inbound.iter().map(|c| c.packets).sum();
            cur.heavy
                .record_n(key, h, u32::try_from(packets).unwrap_or(u32::MAX));
        }
        if let Some(&moved) = cur.new_keys.get(slot) {
            if let Some(m) = self.index.entry_mut(&moved) {
                m.target = NEW | slot as u32;
            }
            for r in cur.amp_refs.iter_mut().filter(|r| r.0 == moved) {
                r.1 = NEW | slot as u32;
            }
        }
        let a = e.amp as usize;
        if e.amp != NONE && e.stamp == self.tick && a < cur.amp.len() {
            cur.amp.swap_remove(a);
            cur.amp_refs.swap_remove(a);
            if let Some(&(moved, _)) = cur.amp_refs.get(a) {
                if let Some(m) = self.index.entry_mut(&moved) {
                    m.amp = a as u32;
                }
            }
        }
    }

    /// Adds a resolved op.
    #[inline(always)]
    fn apply(&mut self, op: &Op, s: &PacketSummary) {
        let cur = &mut self.cur;
        if let Some(cell) = cur
            .cells_of_mut(op.target)
            .and_then(|c| c.get_mut(usize::from(op.cell)))
        {
            if let Some(spilled) = cell_add(cell, op.bytes) {
                let id = if op.target & NEW == 0 {
                    op.target
                } else {
                    NONE
                };
                cur.spill.push((op.key, id, op.cell, spilled));
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
    /// delta when one is available). The merger resolves this tick's new addresses; their
    /// ids (or that they were not admitted) come back through [`Shard::recycle`], and until
    /// then an address met again is new again in the next tick. Constant time without a
    /// tracked-IP limit (with one, this tick's new addresses leave the index).
    pub fn take_tick(&mut self) -> TickDelta {
        let n_new = self.cur.new_keys.len();
        if n_new > 0 && n_new == self.index.len {
            self.index.clear();
        } else if n_new > 0 && self.limited {
            // Admission under a limit evicts by slot: only this tick's new addresses may
            // point into the delta.
            for k in &self.cur.new_keys {
                self.index.remove(k);
            }
        }
        // Otherwise the new addresses stay in the index, pointing into the delta that leaves
        // now: their stamp is older than the next tick, so `resolve_at` makes one a new
        // address of that tick again at its first packet, until `recycle` sets its id (or
        // removes it if the merger gave it none). Removing them here was a pass over the index
        // on the worker's packet path at each tick boundary: 1.7-3.6 ms per tick live at
        // 3.5 Mpps over 100k destinations, where tens of thousands of addresses a tick are
        // met again before their ids come back and so stay new for a few ticks.
        self.tick = self.tick.wrapping_add(1);
        if self.tick == 0 {
            // Stamps wrapped (after 2^32 ticks): make every stamp stale again.
            for e in self
                .index
                .entries
                .iter_mut()
                .chain(self.index.old.iter_mut())
            {
                e.stamp = 0;
            }
            self.tick = 1;
        }
        self.cur.epoch = self.epoch;
        let mut next = self.spares.pop().unwrap_or_default();
        next.set_watch(Arc::clone(&self.watch));
        self.new_keys.clear();
        std::mem::replace(&mut self.cur, next)
    }

    /// Gives a merged delta back for reuse, learning the ids the merger found or assigned for
    /// its new addresses (not those of addresses admitted through other shards, or evicted:
    /// [`Shard::rearm`] teaches those; under a tracked-IP limit, re-arm every shard). If
    /// nothing was accounted since [`Shard::take_tick`] (a tick barrier, as in replay), the
    /// shard continues in the recycled delta, so one set of by-id vectors serves every tick;
    /// otherwise it is kept as the next spare.
    pub fn recycle(&mut self, mut delta: TickDelta) {
        self.learn_all(&delta.learned);
        delta.clear();
        if self.cur.is_pristine() && delta.cells.len() > self.cur.cells.len() {
            delta.set_watch(Arc::clone(&self.watch));
            std::mem::swap(&mut self.cur, &mut delta);
        }
        if self.spares.is_empty() {
            self.spares.push(delta);
        }
    }

    /// Learns every (address, id) of `list` (see [`Shard::learn`]), a group of keys at a time:
    /// hashes first and their index entries prefetched, so the misses of a group overlap
    /// (thousands of keys a tick while addresses are learnt).
    fn learn_all(&mut self, list: &[(IpKey, IpId)]) {
        for group in list.chunks(RECYCLE_GROUP) {
            let mut hashes = [0u64; RECYCLE_GROUP];
            for (h, (key, _)) in hashes.iter_mut().zip(group) {
                *h = self.index.hash(key);
                self.index.prefetch(*h);
            }
            for (&h, &(key, id)) in hashes.iter().zip(group) {
                self.learn(key, id, h);
            }
        }
    }

    /// Learns the merger's answer for a new address of an earlier tick: its id, or `NEW`
    /// when it was not admitted. An address counted again as new in this tick (since
    /// `take_tick`) stays new for this tick; the merger teaches it again.
    #[inline]
    fn learn(&mut self, key: IpKey, id: IpId, h: u64) {
        match self.index.find(&key, h) {
            Ok(pos) => {
                let Some(e) = self.index.entries.get_mut(pos) else {
                    return;
                };
                if e.target & NEW == 0 {
                    // Tracked already (the same id, unless the id changed hands).
                    if id.0 & NEW == 0 {
                        e.target = id.0;
                        self.id_hint = self.id_hint.max(id.index() + 1);
                    }
                    return;
                }
                if e.stamp == self.tick {
                    return;
                }
                if id.0 & NEW != 0 {
                    self.index.remove_at(pos);
                } else {
                    e.target = id.0;
                    self.id_hint = self.id_hint.max(id.index() + 1);
                }
            }
            Err(_) if id.0 & NEW == 0 => {
                self.index.insert(IndexEntry::new(key, id.0, 0), h);
                self.id_hint = self.id_hint.max(id.index() + 1);
            }
            Err(_) => {}
        }
    }

    /// Addresses in the shard's index (tracked ones and new ones not yet resolved).
    #[cfg(test)]
    pub(crate) fn indexed(&self) -> usize {
        self.index.len
    }

    /// Re-arms the shard after a tick boundary (see [`Accounting::close_tick`] for the call
    /// order): takes its delta back ([`recycle`](Self::recycle)), learns the addresses the
    /// merger admitted and forgets those it evicted, then takes the room left, the watch set
    /// and, when it changed, the monitor.
    ///
    /// [`Accounting::close_tick`]: crate::Accounting::close_tick
    pub fn rearm(&mut self, delta: TickDelta, r: &Rearm) {
        self.recycle(delta);
        self.apply_rearm(r);
    }

    /// The part of [`Shard::rearm`] after taking the delta back: learns and forgets
    /// addresses, takes the room left, the watch set and the monitor. Also for a shard whose
    /// delta the merger did not get in time (a live worker that missed a tick): it needs
    /// the merger's [`Accounting::resync`](crate::Accounting::resync) then, since it missed
    /// a boundary's lists.
    pub fn apply_rearm(&mut self, r: &Rearm) {
        if r.reset {
            // Ids it learned may have changed hands: every address is new again until the
            // list below (or the merger, address by address) teaches it.
            self.index.clear();
            self.id_hint = 0;
        }
        // The epoch follows the merger's only without a gap: a shard that missed a boundary's
        // lists stays behind (its deltas checked address by address) until a resync.
        if r.reset || r.epoch == self.epoch + 1 {
            self.epoch = r.epoch;
        }
        for k in r.forget.iter() {
            let h = self.index.hash(k);
            if let Ok(pos) = self.index.find(k, h) {
                // A new address of this tick with the same key stays new (its counts are in
                // the current delta's slot); only the id mapping goes.
                if self
                    .index
                    .entries
                    .get(pos)
                    .is_some_and(|e| e.target & NEW == 0)
                {
                    self.index.remove_at(pos);
                }
            }
        }
        self.learn_all(&r.learn);
        self.remaining = r.remaining;
        self.install_watch(r.watch.clone());
        if let Some(m) = &r.monitor {
            self.set_monitor(m.clone());
        }
    }

    /// Installs the merger's watch set ([`Accounting::watch`](crate::Accounting::watch)):
    /// from now on every inbound packet to a watched target is also recorded into that
    /// target's [`SourceStats`] for the tick. Call between ticks (as
    /// [`Shard::rearm`] does); installed mid-tick, it restarts the current tick's source
    /// analysis. With an empty set the per-packet cost is one predictable branch.
    pub fn install_watch(&mut self, watch: Arc<WatchSet>) {
        if !Arc::ptr_eq(&watch, &self.watch) {
            self.cur.set_watch(Arc::clone(&watch));
            self.watch_filter.fill(0);
            for k in watch.keys() {
                let b = (self.index.hash(k) >> 52) as usize;
                if let Some(w) = self.watch_filter.get_mut(b / 64) {
                    *w |= 1 << (b % 64);
                }
            }
            self.watching = !watch.is_empty();
            self.watch = watch;
        }
    }
}

impl TickDelta {
    #[inline(always)]
    fn cells_of(&self, target: u32) -> Option<&TickCells> {
        if target & NEW == 0 {
            self.cells.get(target as usize)
        } else {
            self.new_cells.get((target & !NEW) as usize)
        }
    }

    #[inline(always)]
    fn cells_of_mut(&mut self, target: u32) -> Option<&mut TickCells> {
        if target & NEW == 0 {
            self.cells.get_mut(target as usize)
        } else {
            self.new_cells.get_mut((target & !NEW) as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{cell_pack, cell_unpack};

    #[test]
    fn the_onset_sample_takes_about_one_packet_in_64_by_contents() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let n = 200_000u64;
        let mut picked = 0u64;
        for i in 0..n {
            let r = next();
            let mut s = PacketSummary::empty(60 + (r % 1400) as u32);
            s.src = if i % 4 == 0 {
                IpAddr::from(std::net::Ipv6Addr::from(
                    (u128::from(r) << 64) | u128::from(next()),
                ))
            } else {
                IpAddr::from(std::net::Ipv4Addr::from((r >> 32) as u32))
            };
            s.dst = IpAddr::from([203, 0, 113, 10]);
            s.src_port = r as u16;
            s.dst_port = (r >> 16) as u16;
            s.ttl = (r >> 40) as u8;
            let a = onset_sampled(&s);
            // A function of the packet only: the same answer every time, whatever the
            // destination.
            let mut t = s;
            t.dst = IpAddr::from([198, 51, 100, 1]);
            assert_eq!(a, onset_sampled(&s));
            assert_eq!(a, onset_sampled(&t));
            picked += u64::from(a);
        }
        let want = n / ONSET_SAMPLE_RATE;
        assert!(
            picked.abs_diff(want) < want / 10,
            "{picked} of {n}, want ~{want}"
        );
    }

    #[test]
    fn the_index_grows_without_losing_entries_while_they_move() {
        // Insertions, lookups and removals against a model across many doublings, with the
        // old table's entries moving a few at a time (by insertions, by `migrate` steps and
        // by lookups that meet them): every key keeps its entry, and each migration ends
        // before the next doubling.
        let mut idx = SlotIndex::default();
        let mut model: std::collections::HashMap<IpKey, u32> = std::collections::HashMap::new();
        let mut r = 0x2545_f491_4f6c_dd1du64;
        let mut doublings = 0;
        for step in 0..200_000u32 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            // Keys from a range that grows with the step: mostly new early, mostly known later.
            let k = if r.is_multiple_of(3) {
                IpKey::v6((u128::from(r % u64::from(step / 2 + 10)) << 64) | 7)
            } else {
                IpKey::v4((r % u64::from(step / 2 + 10)) as u32)
            };
            let h = idx.hash(&k);
            match (r >> 40) % 8 {
                0 => {
                    idx.remove(&k);
                    model.remove(&k);
                }
                1 => idx.migrate(3),
                _ => match idx.find(&k, h) {
                    Ok(pos) => assert_eq!(Some(&idx.entries[pos].target), model.get(&k)),
                    Err(_) => {
                        assert!(!model.contains_key(&k), "{k:?} lost at step {step}");
                        if (idx.len + 1) * 2 > idx.entries.len() {
                            // About to double: the last migration has ended.
                            assert!(idx.old.is_empty(), "step {step}");
                            doublings += 1;
                        }
                        let e = IndexEntry::new(k, step, 0);
                        idx.insert(e, h);
                        model.insert(k, step);
                    }
                },
            }
            assert_eq!(idx.len, model.len());
        }
        assert!(doublings >= 10, "{doublings}");
        // Insertions only (no lookups or steps that move entries): the per-insert pace alone
        // ends each migration in time.
        for i in 0..300_000u32 {
            let k = IpKey::v4(0x8000_0000 | i);
            let h = idx.hash(&k);
            if (idx.len + 1) * 2 > idx.entries.len() {
                assert!(idx.old.is_empty(), "insert {i}");
            }
            let e = IndexEntry::new(k, i, 0);
            idx.insert(e, h);
            model.insert(k, i);
        }
        for (k, &t) in &model {
            let h = idx.hash(k);
            let pos = idx.find(k, h).expect("every key still there");
            assert_eq!(idx.entries[pos].target, t);
        }
        idx.migrate(usize::MAX);
        assert!(idx.old.is_empty());
        let live = idx.entries.iter().filter(|e| !e.is_empty()).count();
        assert_eq!(live, model.len());
    }

    #[test]
    fn prefaulting_leaves_counted_cells_alone() {
        // The merger writes the never-written cells of a delta that still holds its tick:
        // an id counted beyond the written ones (grown on the worker) keeps its counts.
        let mut d = TickDelta::default();
        d.reserve_ids(4);
        d.prefault(4);
        assert_eq!(d.faulted, 4);
        d.touch(IpKey::v4(9), 9, 16);
        d.cells[9][3] = 42;
        d.cells[10][3] = 7; // not counted this tick: holds nothing
        d.prefault(16);
        assert_eq!(d.faulted, 16);
        assert_eq!(d.cells[9][3], 42);
        assert_eq!(d.cells[10], ZERO_CELLS);
    }

    #[test]
    fn pack_round_trips_below_the_spill_bounds() {
        for (p, b) in [(0u64, 0u64), (1, 60), ((1 << 23) - 1, (1 << 39) - 1)] {
            let c = PacketsBytes {
                packets: p,
                bytes: b,
            };
            assert_eq!(cell_pack(c).map(cell_unpack), Some(c));
        }
        for (p, b) in [(1u64 << 23, 0u64), (0, 1 << 39)] {
            let c = PacketsBytes {
                packets: p,
                bytes: b,
            };
            assert_eq!(cell_pack(c), None);
        }
        let mut into = [0u64; 18];
        let mut spill = Vec::new();
        into[3] = cell_pack(PacketsBytes {
            packets: (1 << 23) - 1,
            bytes: 5,
        })
        .unwrap();
        let mut from = [0u64; 18];
        from[3] = cell_pack(PacketsBytes {
            packets: 2,
            bytes: 7,
        })
        .unwrap();
        from[4] = cell_pack(PacketsBytes {
            packets: 1,
            bytes: 1,
        })
        .unwrap();
        add_cells_packed(&mut into, &from, 9, &mut spill);
        assert_eq!(into[3], 0);
        assert_eq!(cell_unpack(into[4]).packets, 1);
        assert_eq!(
            spill,
            [(
                9,
                3,
                PacketsBytes {
                    packets: (1 << 23) + 1,
                    bytes: 12
                }
            )]
        );
    }
}
