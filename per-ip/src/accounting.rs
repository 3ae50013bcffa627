//! The tick merger: sums shard deltas, admits new addresses, keeps per-IP long-lived state.

use std::cmp::Reverse;
use std::net::IpAddr;
use std::sync::Arc;

use surgewatch_pipeline::{PacketSummary, ParseStatus, TrafficClass};

use crate::bits::BitIter;
use crate::clock::PerSec;
use crate::clock::TickLength;
use crate::counters::{
    add_cells_packed, cell_unpack, AmpCounters, IpCounters, PacketsBytes, TickCells, TrafficStats,
};
use crate::heavy::merge_candidates;
use crate::key::{Direction, GroupId, IpId, IpKey};
use crate::shard::{Monitor, Rearm, TickDelta, WatchSet, NEW, NONE};
use crate::sources::SourceStats;
use crate::untracked::{merge as merge_untracked, NetKey, UntrackedAggregate};

/// Number of (direction, class) counters of an address.
const CELLS: usize = 2 * TrafficClass::COUNT;

/// Totals of one address since admission, per direction and class: 32-bit packet counts and
/// 64-bit byte counts (224 bytes instead of the 288 of an [`IpCounters`]); the high halves of
/// the packet counts are allocated the first time one passes `u32::MAX`. Exact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpTotals {
    packets: [u32; CELLS],
    bytes: [u64; CELLS],
    packets_hi: Option<Box<[u32; CELLS]>>,
}

impl IpTotals {
    #[inline]
    fn packets_at(&self, i: usize) -> u64 {
        let hi = self
            .packets_hi
            .as_ref()
            .and_then(|h| h.get(i))
            .copied()
            .unwrap_or(0);
        (u64::from(hi) << 32) | u64::from(self.packets.get(i).copied().unwrap_or(0))
    }

    /// Adds to cell `dir * 9 + class`.
    #[inline]
    fn add_cell(&mut self, i: usize, c: PacketsBytes) {
        let (Some(p), Some(b)) = (self.packets.get_mut(i), self.bytes.get_mut(i)) else {
            return;
        };
        *b += c.bytes;
        match u32::try_from(c.packets).ok().and_then(|n| p.checked_add(n)) {
            Some(n) if self.packets_hi.is_none() => *p = n,
            _ => {
                let full = self.packets_at(i) + c.packets;
                let hi = self.packets_hi.get_or_insert_with(Default::default);
                if let (Some(p), Some(h)) = (self.packets.get_mut(i), hi.get_mut(i)) {
                    *p = full as u32;
                    *h = (full >> 32) as u32;
                }
            }
        }
    }

    /// Counter of one direction and class.
    pub fn get(&self, dir: Direction, class: TrafficClass) -> PacketsBytes {
        let i = dir.index() * TrafficClass::COUNT + class.index();
        PacketsBytes {
            packets: self.packets_at(i),
            bytes: self.bytes.get(i).copied().unwrap_or(0),
        }
    }

    /// Sum over classes for one direction.
    pub fn total(&self, dir: Direction) -> PacketsBytes {
        let mut t = PacketsBytes::default();
        for c in TrafficClass::ALL {
            t.add(&self.get(dir, c));
        }
        t
    }

    /// Sum over both directions and all classes.
    pub fn grand_total(&self) -> PacketsBytes {
        let mut t = self.total(Direction::In);
        t.add(&self.total(Direction::Out));
        t
    }

    /// As full counters.
    pub fn to_counters(&self) -> IpCounters {
        let mut c = IpCounters::ZERO;
        for d in Direction::ALL {
            for k in TrafficClass::ALL {
                c.by_dir[d.index()][k.index()] = self.get(d, k);
            }
        }
        c
    }
}

/// Long-lived state of one tracked address (328 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRecord {
    /// The address.
    pub ip: IpKey,
    /// Its group.
    pub group: GroupId,
    /// Start of the first tick with traffic.
    pub first_seen_ns: u64,
    /// Start of the last tick with traffic.
    pub last_seen_ns: u64,
    /// Number of ticks with traffic.
    pub active_ticks: u64,
    /// Highest per-tick packet rate, both directions together.
    pub peak_pps: u64,
    /// Highest per-tick bit rate, both directions together.
    pub peak_bps: u64,
    /// Highest per-tick packet rate per direction (`[Direction::index]`).
    pub peak_dir_pps: [u64; 2],
    /// Highest per-tick bit rate per direction (`[Direction::index]`).
    pub peak_dir_bps: [u64; 2],
    /// Totals since admission per direction and class.
    pub totals: IpTotals,
}

/// What the consumer of a closed tick (the detector's driver) decides for the next tick,
/// returned to [`Accounting::close_tick`].
#[derive(Clone, Debug, Default)]
pub struct NextTick {
    /// The targets whose sources to analyse from the next tick on (`None`: keep the current
    /// set; see [`Accounting::set_watch`]).
    pub watch: Option<Vec<IpAddr>>,
    /// A new monitor, when what is monitored changed (see [`Accounting::set_monitor`]).
    pub monitor: Option<Arc<Monitor>>,
    /// Addresses that must stay tracked whatever the budget (typically the targets of open
    /// incidents and of pending ones): never evicted from the next boundary on (`None`: keep
    /// the current list).
    pub keep: Option<Vec<IpId>>,
}

/// A tick's per-cell spills, sorted by id: counts that did not fit a packed cell.
type Spills = [(u32, u8, PacketsBytes)];

/// View of the tick just closed by [`Accounting::end_tick`]: the hook for baselines and
/// detection. Addresses come by ascending [`IpId`], so iteration is deterministic.
///
/// It reads the counters where the shards left them (the first delta holds the sums of every
/// tracked address, addresses admitted in the tick stay in their delta's slot), so it borrows
/// the deltas as well as the merger.
#[derive(Clone, Copy, Debug)]
pub struct ClosedTick<'a> {
    /// Start of the closed tick (ns since the epoch).
    pub tick_start_ns: u64,
    /// Whole-traffic counters of the tick.
    pub stats: &'a TrafficStats,
    /// Addresses admitted at this tick's boundary (new ones with traffic in the tick, and
    /// untracked heavy destinations, which have none in it: their packets were overflow).
    pub admitted: usize,
    /// Addresses tracked after this tick's boundary (admissions and evictions included).
    pub tracked: usize,
    /// The tracked-address limit, `None` when unlimited.
    pub ip_limit: Option<usize>,
    /// Sums of tracked addresses by id (valid where `bits` is set).
    cells: &'a [TickCells],
    bits: &'a [u64],
    /// Addresses admitted in the tick (ids `first_new..`): (delta, slot) of their summed cells.
    deltas: &'a [TickDelta],
    new_at: &'a [(u32, u32)],
    first_new: u32,
    spill: &'a Spills,
    amp: &'a [(IpId, AmpCounters)],
    watch: &'a WatchSet,
    watched: &'a [SourceStats],
    records: &'a [IpRecord],
    vacant: &'a [bool],
    groups: &'a [GroupId],
    evicted: &'a [(IpId, IpKey, GroupId)],
    untracked: &'a [UntrackedAggregate],
}

/// One address's counters for a closed tick, unpacked from the shards' packed form; derefs
/// to [`IpCounters`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TickCounters(pub IpCounters);

impl std::ops::Deref for TickCounters {
    type Target = IpCounters;

    #[inline]
    fn deref(&self) -> &IpCounters {
        &self.0
    }
}

/// One tracked address in a [`ClosedTick`]: everything the tick measured about it.
#[derive(Clone, Copy, Debug)]
pub struct TickIp<'a> {
    /// The address's id.
    pub id: IpId,
    /// Its long-lived record (already updated with this tick).
    pub record: &'a IpRecord,
    /// Its counters for the tick.
    pub counters: TickCounters,
    /// Its inbound amplification counters for the tick ([`AmpCounters::ZERO`] when none).
    pub amp: &'a AmpCounters,
}

/// One address with traffic in a [`ClosedTick`], by reference to the merger's packed
/// counters (see [`ClosedTick::for_each_cells`]).
#[derive(Clone, Copy, Debug)]
pub struct TickIpCells<'a> {
    /// The address's id.
    pub id: IpId,
    /// Its group.
    pub group: GroupId,
    cells: &'a TickCells,
    spill: &'a Spills,
    amp: Option<&'a AmpCounters>,
}

impl<'a> TickIpCells<'a> {
    /// Writes the inbound packets and bytes of each class (by [`TrafficClass::index`]) into
    /// `out` (entries beyond the classes are left alone).
    #[inline]
    pub fn inbound_into(&self, out: &mut [PacketsBytes]) {
        for (c, &v) in out.iter_mut().zip(self.cells.iter()) {
            *c = cell_unpack(v);
        }
        for &(_, cell, pb) in self.spill {
            if usize::from(cell) < TrafficClass::COUNT {
                if let Some(c) = out.get_mut(usize::from(cell)) {
                    c.add(&pb);
                }
            }
        }
    }

    /// Its counters for the tick, both directions.
    #[inline]
    pub fn counters(&self) -> IpCounters {
        counters_of(self.cells, self.spill)
    }

    /// Its inbound amplification counters, `None` when nothing was counted (checked here, not
    /// for every address: the detector asks only for the few it opens or updates incidents of).
    #[inline]
    pub fn amp(&self) -> Option<&'a AmpCounters> {
        self.amp.filter(|a| !a.is_zero())
    }
}

/// Unpacked counters of one address's packed cells plus its spills.
#[inline]
pub(crate) fn counters_of(cells: &TickCells, spill: &Spills) -> IpCounters {
    let mut c = IpCounters::ZERO;
    for (i, &v) in cells.iter().enumerate() {
        let (d, k) = (i / TrafficClass::COUNT, i % TrafficClass::COUNT);
        if let Some(x) = c.by_dir.get_mut(d).and_then(|a| a.get_mut(k)) {
            *x = cell_unpack(v);
        }
    }
    for (_, cell, pb) in spill {
        c.add_cell(usize::from(*cell), *pb);
    }
    c
}

/// The part of `spill` (sorted by id) for `id`, advancing `from`.
#[inline]
fn spill_of<'s>(spill: &'s Spills, from: &mut usize, id: u32) -> &'s Spills {
    let rest = spill.get(*from..).unwrap_or(&[]);
    match rest.first() {
        Some(s) if s.0 <= id => {}
        _ => return &[],
    }
    let skip = rest.iter().take_while(|s| s.0 < id).count();
    let n = rest[skip..].iter().take_while(|s| s.0 == id).count();
    *from += skip + n;
    &rest[skip..skip + n]
}

static ZERO_CELLS_STATIC: TickCells = [0; CELLS];

impl<'a> ClosedTick<'a> {
    /// Every address with traffic in the tick, by ascending id, with its packed cells and
    /// spills.
    fn raw(&self) -> impl Iterator<Item = (u32, &'a TickCells, &'a Spills)> + 'a {
        let (cells, bits, deltas, new_at, first_new, spill) = (
            self.cells,
            self.bits,
            self.deltas,
            self.new_at,
            self.first_new,
            self.spill,
        );
        let known = BitIter::new(bits).map(move |id| {
            // Ids come in ascending order with gaps the hardware prefetcher does not follow:
            // fetch the counters a few ids ahead (both lines of a 72-byte cell block).
            let ahead = cells.as_ptr().wrapping_add(id + 24);
            crate::mem::prefetch(ahead);
            crate::mem::prefetch(ahead.cast::<u8>().wrapping_add(64));
            (id as u32, cells.get(id).unwrap_or(&ZERO_CELLS_STATIC))
        });
        let new = new_at.iter().enumerate().map(move |(i, &(d, s))| {
            let c = deltas
                .get(d as usize)
                .and_then(|d| d.new_cells.get(s as usize))
                .unwrap_or(&ZERO_CELLS_STATIC);
            (first_new + i as u32, c)
        });
        let mut at = 0;
        known
            .chain(new)
            .map(move |(id, c)| (id, c, spill_of(spill, &mut at, id)))
    }

    /// Per-address counters of the tick, with each address's (already updated) record.
    pub fn iter(&self) -> impl Iterator<Item = (IpId, &'a IpRecord, TickCounters)> + 'a {
        let records = self.records;
        self.raw().filter_map(move |(id, c, sp)| {
            records
                .get(id as usize)
                .map(|r| (IpId(id), r, TickCounters(counters_of(c, sp))))
        })
    }

    /// Every address with traffic in the tick, by ascending [`IpId`], with its counters and
    /// amplification counters.
    pub fn ips(&self) -> impl Iterator<Item = TickIp<'a>> + 'a {
        let records = self.records;
        let mut amp = self.amp.iter().peekable();
        self.raw().filter_map(move |(id, c, sp)| {
            let id = IpId(id);
            let record = records.get(id.index())?;
            while amp.next_if(|(a, _)| *a < id).is_some() {}
            let a = amp.next_if(|(a, _)| *a == id).map_or(&ZERO_AMP, |(_, a)| a);
            Some(TickIp {
                id,
                record,
                counters: TickCounters(counters_of(c, sp)),
                amp: a,
            })
        })
    }

    /// Calls `f` for every address with traffic in the tick, by ascending id, with a view of
    /// its counters as the merger holds them ([`TickIpCells`]): the detector's per-address
    /// loop, which reads the inbound sample of most addresses and the full counters of few,
    /// without unpacking or moving full counters for all.
    #[inline]
    pub fn for_each_cells(&self, mut f: impl FnMut(TickIpCells<'a>)) {
        let groups = self.groups;
        let amp = self.amp;
        let mut ai = 0;
        for (id, cells, spill) in self.raw() {
            let Some(&group) = groups.get(id as usize) else {
                continue;
            };
            let id = IpId(id);
            while amp.get(ai).is_some_and(|a| a.0 < id) {
                ai += 1;
            }
            let amp = match amp.get(ai) {
                Some((aid, a)) if *aid == id => Some(a),
                _ => None,
            };
            f(TickIpCells {
                id,
                group,
                cells,
                spill,
                amp,
            });
        }
    }

    /// Number of addresses with traffic in the tick.
    pub fn len(&self) -> usize {
        self.bits
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum::<usize>()
            + self.new_at.len()
    }

    /// Whether no address had traffic in the tick.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Amplification counters of the tick, only for addresses that received reflector-port
    /// UDP, by ascending [`IpId`].
    pub fn amp(&self) -> impl Iterator<Item = (IpId, &'a AmpCounters)> + 'a {
        self.amp.iter().map(|(id, a)| (*id, a))
    }

    /// Source analysis of every target watched during the tick (the set passed to
    /// [`Accounting::set_watch`] before it), by ascending [`IpId`], with its address; a
    /// target without packets in the tick has empty stats.
    pub fn watched(&self) -> impl Iterator<Item = (IpId, IpAddr, &'a SourceStats)> + 'a {
        self.watch
            .iter()
            .zip(self.watched)
            .map(|((id, k), s)| (id, k.ip(), s))
    }

    /// Every shard's onset sample of the tick: about one inbound packet in
    /// [`ONSET_SAMPLE_RATE`](crate::shard::ONSET_SAMPLE_RATE) to targets nobody watched,
    /// chosen by packet contents (`shard::onset_sampled`).
    pub fn onset_samples(&self) -> impl Iterator<Item = &'a PacketSummary> + 'a {
        self.deltas.iter().flat_map(|d| d.onset_samples().iter())
    }

    /// Record of a tracked address.
    pub fn record(&self, id: IpId) -> Option<&'a IpRecord> {
        if self.vacant.get(id.index()).copied().unwrap_or(true) {
            return None;
        }
        self.records.get(id.index())
    }

    /// Addresses evicted at this tick's boundary, with their group (quiet ones, to make room or after the idle
    /// time), by ascending id: their ids may hold other addresses from the next boundary on,
    /// so whatever is kept per id (a baseline) must be moved or dropped now. None had traffic
    /// in the tick.
    pub fn evicted(&self) -> &'a [(IpId, IpKey, GroupId)] {
        self.evicted
    }

    /// The inbound traffic the budget left untracked in the tick, per /24 or /64 of
    /// monitored space and per configured prefix (fine networks first, each sorted by
    /// address): where an attack on addresses without state shows.
    pub fn untracked(&self) -> &'a [UntrackedAggregate] {
        self.untracked
    }
}

pub(crate) static ZERO_AMP: AmpCounters = AmpCounters::ZERO;

/// Key → [`IpId`] of every tracked address: open addressing (linear probing, load ≤ 1/2) over
/// 4-byte ids, keys compared through the records (8 bytes per address instead of the ~64 of
/// a `HashMap<IpKey, IpId>`).
#[derive(Clone, Debug)]
struct IdTable {
    slots: Vec<u32>,
    len: usize,
    seed: u64,
}

impl Default for IdTable {
    fn default() -> Self {
        use std::hash::BuildHasher;
        let seed = hashbrown::DefaultHashBuilder::default().hash_one(0x5eed_u64) | 1;
        IdTable {
            slots: vec![NONE; 16],
            len: 0,
            seed,
        }
    }
}

impl IdTable {
    #[inline]
    fn hash(&self, k: &IpKey) -> usize {
        let m = |a: u64, b: u64| {
            let p = u128::from(a) * u128::from(b);
            (p as u64) ^ ((p >> 64) as u64)
        };
        let h = m(k.lo ^ self.seed, 0x9e37_79b9_7f4a_7c15);
        let h = if k.v6 { m(h ^ k.hi, self.seed) } else { h };
        h as usize
    }

    fn get(&self, k: &IpKey, records: &[IpRecord]) -> Option<IpId> {
        let mask = self.slots.len() - 1;
        let mut i = self.hash(k) & mask;
        loop {
            let id = *self.slots.get(i)?;
            if id == NONE {
                return None;
            }
            if records.get(id as usize).is_some_and(|r| r.ip == *k) {
                return Some(IpId(id));
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts the id of an absent key (`records[id]` holds the key).
    fn insert(&mut self, id: IpId, records: &[IpRecord]) {
        if (self.len + 1) * 2 > self.slots.len() {
            let n = self.slots.len() * 2;
            let old = std::mem::replace(&mut self.slots, vec![NONE; n]);
            self.len = 0;
            for o in old.into_iter().filter(|&o| o != NONE) {
                self.insert(IpId(o), records);
            }
        }
        let Some(k) = records.get(id.index()).map(|r| r.ip) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut i = self.hash(&k) & mask;
        while self.slots[i] != NONE {
            i = (i + 1) & mask;
        }
        self.slots[i] = id.0;
        self.len += 1;
    }

    /// Removes `k` (backward-shift deletion: probe chains stay intact without tombstones);
    /// `records` must still hold `k` at its id.
    fn remove(&mut self, k: &IpKey, records: &[IpRecord]) {
        let mask = self.slots.len() - 1;
        let mut i = self.hash(k) & mask;
        loop {
            let Some(&id) = self.slots.get(i) else {
                return;
            };
            if id == NONE {
                return;
            }
            if records.get(id as usize).is_some_and(|r| r.ip == *k) {
                break;
            }
            i = (i + 1) & mask;
        }
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let id = self.slots[j];
            if id == NONE {
                break;
            }
            if let Some(r) = records.get(id as usize) {
                let home = self.hash(&r.ip) & mask;
                if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                    self.slots[hole] = id;
                    hole = j;
                }
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = NONE;
        self.len -= 1;
    }
}

/// The merger: one instance, owned by the tick thread.
///
/// Per tick: [`end_tick`](Self::end_tick) with every shard's [`TickDelta`] (in any order: sums
/// commute).
#[derive(Debug)]
pub struct Accounting {
    monitor: Arc<Monitor>,
    tick_ns: u64,
    ids: IdTable,
    records: Vec<IpRecord>,
    /// `records[id].group`, densely: what the detector reads per address.
    groups: Vec<GroupId>,
    pending_stats: TrafficStats,
    stats: TrafficStats,
    ticks_closed: u64,
    closed_amp: Vec<(IpId, AmpCounters)>,
    closed_stats: TrafficStats,
    /// New addresses of the tick: (address, delta, slot).
    newcomers: Vec<(IpKey, u32, u32)>,
    /// Addresses admitted in the tick, by id from `first_new`: (delta, slot) of their cells.
    new_at: Vec<(u32, u32)>,
    spill: Vec<(u32, u8, PacketsBytes)>,
    /// Per id: whether it holds no address (evicted: waiting one boundary, or free).
    vacant: Vec<bool>,
    /// Per id: start of its last tick with traffic (dense copy of the records' field, for
    /// the scans that pick addresses to evict).
    last_seen: Vec<u64>,
    /// Addresses tracked now.
    live: usize,
    /// Vacant ids that can take an address.
    free: Vec<u32>,
    /// Ids evicted at the last boundary: shards may have counted into them since (until they
    /// were re-armed), so they become free only after this boundary drops such counts.
    draining: Vec<u32>,
    /// This boundary's admissions and evictions, for the shards ([`Rearm`]) and the closed
    /// tick.
    learn: Vec<(IpKey, IpId)>,
    forget: Vec<IpKey>,
    evicted: Vec<(IpId, IpKey, GroupId)>,
    rearm_learn: Arc<[(IpKey, IpId)]>,
    rearm_forget: Arc<[IpKey]>,
    admitted_now: usize,
    /// Ids never evicted (sorted; see [`NextTick::keep`]).
    keep: Vec<IpId>,
    /// Next id the idle scan looks at.
    idle_cursor: usize,
    ever_admitted: u64,
    evicted_total: u64,
    heavy_admitted: u64,
    /// The busiest evicted addresses' reports (the report's top list keeps them).
    retired: Vec<IpReport>,
    /// Aggregates of the new addresses the merger could not admit in the tick.
    rejected: crate::untracked::UntrackedNets,
    /// Their inbound packets: candidates for admission by rate like the shards' overflow.
    rejected_heavy: Vec<(IpKey, u64)>,
    /// The tick's untracked aggregates, and the merge's scratch map.
    closed_untracked: Vec<UntrackedAggregate>,
    untracked_scratch: hashbrown::HashMap<NetKey, (GroupId, crate::untracked::ClassCounts)>,
    /// Watch set of the tick being merged, and its targets' merged stats (`[slot]`).
    watch: Arc<WatchSet>,
    pending_watched: Vec<SourceStats>,
    closed_watch: Arc<WatchSet>,
    closed_watched: Vec<SourceStats>,
}

impl Accounting {
    /// A merger for `monitor` with ticks of `tick`.
    pub fn new(monitor: Arc<Monitor>, tick: TickLength) -> Self {
        Accounting {
            monitor,
            tick_ns: tick.as_nanos(),
            ids: IdTable::default(),
            records: Vec::new(),
            groups: Vec::new(),
            pending_stats: TrafficStats::default(),
            stats: TrafficStats::default(),
            ticks_closed: 0,
            closed_amp: Vec::new(),
            closed_stats: TrafficStats::default(),
            newcomers: Vec::new(),
            new_at: Vec::new(),
            spill: Vec::new(),
            vacant: Vec::new(),
            last_seen: Vec::new(),
            live: 0,
            free: Vec::new(),
            draining: Vec::new(),
            learn: Vec::new(),
            forget: Vec::new(),
            evicted: Vec::new(),
            rearm_learn: Arc::from(Vec::new()),
            rearm_forget: Arc::from(Vec::new()),
            admitted_now: 0,
            keep: Vec::new(),
            idle_cursor: 0,
            ever_admitted: 0,
            evicted_total: 0,
            heavy_admitted: 0,
            retired: Vec::new(),
            rejected: Default::default(),
            rejected_heavy: Vec::new(),
            closed_untracked: Vec::new(),
            untracked_scratch: Default::default(),
            watch: Arc::default(),
            pending_watched: Vec::new(),
            closed_watch: Arc::default(),
            closed_watched: Vec::new(),
        }
    }

    /// Replaces what is monitored (see [`crate::Shard::set_monitor`]); addresses already
    /// tracked keep their ids and records. Call between ticks, with the same monitor given to
    /// every shard.
    pub fn set_monitor(&mut self, monitor: Arc<Monitor>) {
        self.monitor = monitor;
    }

    /// Adds the watched targets' source analysis of one delta.
    fn merge_watched(&mut self, delta: &TickDelta) {
        let same = Arc::ptr_eq(delta.watch(), &self.watch);
        for ((slot, key), stats) in delta
            .watch()
            .keys()
            .iter()
            .enumerate()
            .zip(delta.watched_raw())
        {
            // A delta accounted under an older set (should not happen at a tick barrier):
            // match its targets by address.
            let to = if same {
                Some(slot)
            } else {
                self.watch.slot_of(key)
            };
            if let Some(p) = to.and_then(|i| self.pending_watched.get_mut(i)) {
                p.merge(stats);
            }
        }
    }

    /// The tick boundary in one call: merges every shard's delta and closes the tick
    /// ([`end_tick`](Self::end_tick)), lets `decide` read the closed tick and choose what the
    /// next tick needs ([`NextTick`]: the targets to watch, a new monitor), applies that, and
    /// returns the [`Rearm`] to give every shard back with its delta ([`Shard::rearm`]).
    ///
    /// Call order at each tick boundary, the same for replay and live capture:
    /// 1. every shard: [`Shard::take_tick`] (no packet of the next tick counted before);
    /// 2. `close_tick` with the deltas in shard order (any fixed order gives the same result);
    /// 3. every shard: [`Shard::rearm`] with its own delta and the returned [`Rearm`], before
    ///    it counts a packet of the new tick.
    ///
    /// [`Shard::take_tick`]: crate::Shard::take_tick
    /// [`Shard::rearm`]: crate::Shard::rearm
    pub fn close_tick(
        &mut self,
        tick_start_ns: u64,
        deltas: &mut [TickDelta],
        decide: impl FnOnce(&ClosedTick<'_>) -> NextTick,
    ) -> Rearm {
        let next = decide(&self.end_tick(tick_start_ns, deltas));
        if let Some(watch) = next.watch {
            self.set_watch(watch);
        }
        if let Some(m) = &next.monitor {
            self.set_monitor(m.clone());
        }
        if let Some(mut keep) = next.keep {
            keep.sort_unstable();
            keep.dedup();
            self.keep = keep;
        }
        Rearm {
            monitor: next.monitor,
            ..self.rearm()
        }
    }

    /// What to re-arm every shard with after the last [`end_tick`](Self::end_tick) (see
    /// [`Shard::rearm`](crate::Shard::rearm)): the room left, the addresses admitted and
    /// evicted at the boundary, the watch set. [`close_tick`](Self::close_tick) returns it.
    pub fn rearm(&self) -> Rearm {
        Rearm {
            remaining: self.remaining(),
            learn: Arc::clone(&self.rearm_learn),
            forget: Arc::clone(&self.rearm_forget),
            watch: self.watch(),
            monitor: None,
            epoch: self.ticks_closed,
            reset: false,
        }
    }

    /// A [`Rearm`] for a shard that missed one (see [`Shard::apply_rearm`](crate::Shard::apply_rearm)):
    /// every tracked address with its id, and the order to forget every id it knew. O(tracked
    /// addresses); only for that case.
    pub fn resync(&self) -> Rearm {
        Rearm {
            learn: self.records().map(|(id, r)| (r.ip, id)).collect(),
            forget: Arc::from(Vec::new()),
            reset: true,
            ..self.rearm()
        }
    }

    fn remaining(&self) -> usize {
        let limit = self.monitor.raw_ip_limit();
        if limit == usize::MAX {
            usize::MAX
        } else {
            limit.saturating_sub(self.live)
        }
    }

    /// Merges every shard's delta of the tick that started at `tick_start_ns` and closes the
    /// tick: admits new addresses in ascending order while fewer than the limit are tracked
    /// (the rest become overflow), updates every touched record (totals, peaks, last seen)
    /// and the global totals.
    ///
    /// The sums are made in place in the deltas (the first one receives the tracked
    /// addresses' sums), which the returned view reads: hand the deltas back to their shards
    /// with [`Shard::recycle`](crate::Shard::recycle) once it is dropped (that clears them, and
    /// teaches each shard the ids of its new addresses). A delta already merged counts as
    /// empty.
    ///
    /// Cost: per tracked address with traffic, one add of its packed counters per extra
    /// delta and one record update, all in id order over dense vectors; hashing and sorting
    /// only for new addresses.
    pub fn end_tick<'a>(
        &'a mut self,
        tick_start_ns: u64,
        deltas: &'a mut [TickDelta],
    ) -> ClosedTick<'a> {
        for d in deltas.iter_mut().filter(|d| d.merged) {
            d.clear();
        }
        self.pending_stats = TrafficStats::default();
        // A shard that missed a re-arm may count addresses under ids they lost: such counts
        // are overflow.
        for d in deltas.iter_mut().filter(|d| d.epoch < self.ticks_closed) {
            let stale: Vec<u32> = d
                .touched
                .iter()
                .filter(|(key, id)| !self.holds(*id, key))
                .map(|&(_, id)| id)
                .collect();
            for id in stale {
                if let Some(c) = d.take_known(id) {
                    self.pending_stats.overflow.add(&c.grand_total());
                }
            }
        }
        for d in deltas.iter() {
            self.pending_stats.add(d.stats());
            self.merge_watched(d);
        }
        self.spill.clear();
        self.newcomers.clear();
        self.new_at.clear();
        self.closed_amp.clear();
        self.learn.clear();
        self.forget.clear();
        self.evicted.clear();
        self.admitted_now = 0;
        self.rejected.clear();
        self.rejected_heavy.clear();
        let old_len = self.records.len();

        // Tracked addresses of the other deltas into the first one, in id order.
        if let Some((first, rest)) = deltas.split_first_mut() {
            for d in rest.iter() {
                crate::bits::for_each_bit(&d.bits, |id| {
                    if let Some(c) = d.cells.get(id) {
                        first.add_known(id as u32, c, &mut self.spill);
                    }
                });
            }
            // Ids evicted at the last boundary: what shards counted into them before they
            // forgot the address is overflow. They take new addresses from now on.
            for &id in &self.draining {
                if let Some(c) = first.take_known(id) {
                    self.pending_stats.overflow.add(&c.grand_total());
                }
            }
        }
        self.free.append(&mut self.draining);
        // New addresses: already tracked (learned by the shard next time), or newcomers.
        for di in 0..deltas.len() {
            for si in 0..deltas[di].new_keys.len() {
                let key = deltas[di].new_keys[si];
                match self.ids.get(&key, &self.records) {
                    Some(id) => {
                        let c = deltas[di].new_cells[si];
                        deltas[0].add_known(id.0, &c, &mut self.spill);
                        deltas[di].learned.push((key, id));
                    }
                    None => self.newcomers.push((key, di as u32, si as u32)),
                }
            }
        }
        self.admit(tick_start_ns, deltas);

        // Spills and amplification counters, resolved to ids.
        for d in deltas.iter() {
            for &(key, id, cell, pb) in &d.spill {
                let id = if id == NONE || !self.holds(id, &key) {
                    // A new address, or one counted under an id it lost since.
                    self.ids.get(&key, &self.records).map(|i| i.0)
                } else {
                    Some(id)
                };
                match id {
                    Some(id) => self.spill.push((id, cell, pb)),
                    None => self.pending_stats.overflow.add(&pb),
                }
            }
            for (&(key, target), a) in d.amp_refs.iter().zip(&d.amp) {
                let id = if target & NEW == 0 && self.holds(target, &key) {
                    Some(IpId(target))
                } else {
                    self.ids.get(&key, &self.records)
                };
                if let Some(id) = id {
                    self.closed_amp.push((id, *a));
                }
            }
        }
        self.spill.sort_unstable_by_key(|s| (s.0, s.1));
        self.closed_amp.sort_unstable_by_key(|e| e.0);
        self.closed_amp.dedup_by(|b, a| {
            let same = a.0 == b.0;
            if same {
                a.1.add(&b.1);
            }
            same
        });

        self.update_records(tick_start_ns, deltas, old_len);
        self.evict_idle(tick_start_ns);
        self.admit_heavy(tick_start_ns, deltas);
        merge_untracked(
            deltas
                .iter()
                .map(|d| &d.untracked)
                .chain(std::iter::once(&self.rejected)),
            &mut self.untracked_scratch,
            &mut self.closed_untracked,
        );
        self.evicted.sort_unstable_by_key(|e| e.0);
        self.rearm_learn = Arc::from(self.learn.as_slice());
        self.rearm_forget = Arc::from(self.forget.as_slice());
        let admitted = self.admitted_now;
        std::mem::swap(&mut self.pending_watched, &mut self.closed_watched);
        self.closed_watch = Arc::clone(&self.watch);
        reset_watched(&mut self.pending_watched, self.watch.len());

        self.stats.add(&self.pending_stats);
        self.closed_stats = std::mem::take(&mut self.pending_stats);
        self.ticks_closed += 1;
        // Room for every id in each delta, and for its next tick's per-tick vectors, made
        // here on the merger's thread: a worker that met an id learned this tick would
        // otherwise grow its per-id vectors on its packet path (a copy of megabytes at 100k
        // ids: 2-7 ms stalls measured, long enough to overflow an AF_XDP fill ring).
        let ids = self.records.len();
        for d in deltas.iter_mut() {
            d.make_room(ids);
            d.merged = true;
        }
        let deltas: &'a [TickDelta] = deltas;
        let (cells, bits): (&[TickCells], &[u64]) = match deltas.first() {
            Some(d) => (&d.cells, &d.bits),
            None => (&[], &[]),
        };
        ClosedTick {
            tick_start_ns,
            stats: &self.closed_stats,
            admitted,
            tracked: self.live,
            ip_limit: self.monitor.ip_limit(),
            cells,
            bits,
            deltas,
            new_at: &self.new_at,
            first_new: old_len as u32,
            spill: &self.spill,
            amp: &self.closed_amp,
            watch: &self.closed_watch,
            watched: &self.closed_watched,
            records: &self.records,
            vacant: &self.vacant,
            groups: &self.groups,
            evicted: &self.evicted,
            untracked: &self.closed_untracked,
        }
    }

    /// Whether id `id` holds `key` now.
    fn holds(&self, id: u32, key: &IpKey) -> bool {
        !self.vacant.get(id as usize).copied().unwrap_or(true)
            && self.records.get(id as usize).is_some_and(|r| r.ip == *key)
    }

    /// Gives `key` an id (a free one, else a new one) with a fresh record; `None` when the
    /// id space is exhausted.
    fn take_id(&mut self, key: IpKey, group: GroupId, tick_start_ns: u64) -> Option<IpId> {
        let record = IpRecord {
            ip: key,
            group,
            first_seen_ns: tick_start_ns,
            last_seen_ns: tick_start_ns,
            active_ticks: 0,
            peak_pps: 0,
            peak_bps: 0,
            peak_dir_pps: [0; 2],
            peak_dir_bps: [0; 2],
            totals: IpTotals::default(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                let i = id as usize;
                if let (Some(r), Some(g), Some(v), Some(l)) = (
                    self.records.get_mut(i),
                    self.groups.get_mut(i),
                    self.vacant.get_mut(i),
                    self.last_seen.get_mut(i),
                ) {
                    *r = record;
                    *g = group;
                    *v = false;
                    *l = tick_start_ns;
                }
                IpId(id)
            }
            None => {
                let id = u32::try_from(self.records.len())
                    .ok()
                    .filter(|&id| id < NEW)?;
                self.records.push(record);
                self.groups.push(group);
                self.vacant.push(false);
                self.last_seen.push(tick_start_ns);
                IpId(id)
            }
        };
        self.ids.insert(id, &self.records);
        self.live += 1;
        self.ever_admitted += 1;
        self.admitted_now += 1;
        self.learn.push((key, id));
        Some(id)
    }

    /// Whether id `i` may be evicted at the boundary of the tick that started at
    /// `tick_start_ns`: tracked, without traffic in the tick, not kept. (A watched address
    /// may go: the shards match watched targets by address, and the next watch set is made
    /// of tracked addresses only.)
    fn evictable(&self, i: usize, tick_start_ns: u64) -> bool {
        !self.kept_or_vacant(i) && self.last_seen.get(i).is_some_and(|&t| t < tick_start_ns)
    }

    /// Whether id `i` holds no address, or one that must stay tracked.
    fn kept_or_vacant(&self, i: usize) -> bool {
        self.vacant.get(i).copied().unwrap_or(true)
            || self.keep.binary_search(&IpId(i as u32)).is_ok()
    }

    /// Evicts tracked id `i`: the address leaves the id table, the shards forget it when
    /// re-armed, and the id is reusable after the next boundary.
    fn evict(&mut self, i: usize) {
        let Some(r) = self.records.get(i) else {
            return;
        };
        let (key, group) = (r.ip, r.group);
        if r.peak_pps > 0 {
            self.retired.push(IpReport::from_record(r));
            if self.retired.len() >= 2 * RETIRED_TOP {
                sort_reports(&mut self.retired);
                self.retired.truncate(RETIRED_TOP);
            }
        }
        self.ids.remove(&key, &self.records);
        if let Some(v) = self.vacant.get_mut(i) {
            *v = true;
        }
        self.live -= 1;
        self.evicted_total += 1;
        self.draining.push(i as u32);
        self.forget.push(key);
        self.evicted.push((IpId(i as u32), key, group));
    }

    /// Past seven eighths of the limit, evicts the addresses quiet for the idle time among a
    /// slice of the ids (all of them every 64 ticks).
    fn evict_idle(&mut self, tick_start_ns: u64) {
        let (limit, idle) = (self.monitor.raw_ip_limit(), self.monitor.idle_eviction_ns());
        if limit == usize::MAX || idle == 0 || self.live <= limit - limit / 8 {
            return;
        }
        let n = self.records.len();
        let Some(before) = tick_start_ns.checked_sub(idle) else {
            return;
        };
        if n == 0 {
            return;
        }
        let span = (n / 64 + IDLE_SCAN_MIN).min(n);
        for k in 0..span {
            let i = (self.idle_cursor + k) % n;
            if self.last_seen.get(i).is_some_and(|&t| t <= before)
                && self.evictable(i, tick_start_ns)
            {
                self.evict(i);
            }
        }
        self.idle_cursor = (self.idle_cursor + span) % n;
    }

    /// Admits the untracked destinations whose packets in the tick (summed over the shards'
    /// heavy-hitter caches, guaranteed counts) reach the admission rate, at most
    /// [`MAX_HEAVY_ADMISSIONS`] a tick, heaviest first: into the room left, else in place of
    /// the tracked addresses quiet for longest. Their packets of this tick stay overflow; they
    /// are counted from the next tick on.
    fn admit_heavy(&mut self, tick_start_ns: u64, deltas: &mut [TickDelta]) {
        let (limit, pps) = (
            self.monitor.raw_ip_limit(),
            self.monitor.untracked_admission_pps(),
        );
        if limit == usize::MAX || pps == 0 || self.pending_stats.overflow.packets == 0 {
            return;
        }
        let min = u64::try_from(u128::from(pps) * u128::from(self.tick_ns) / 1_000_000_000)
            .unwrap_or(u64::MAX)
            .max(1);
        // Heaviest first.
        let mut cands: Vec<(IpKey, GroupId, u64)> = merge_candidates(
            deltas.iter().map(|d| &d.heavy),
            &self.rejected_heavy,
            min,
            MAX_HEAVY_ADMISSIONS,
        )
        .into_iter()
        .filter(|(k, _)| self.ids.get(k, &self.records).is_none())
        .filter_map(|(k, n)| self.monitor.group_of(k).map(|g| (k, g, n)))
        .collect();
        let room = limit.saturating_sub(self.live);
        if cands.len() > room {
            let mut victims = self.quietest(cands.len() - room, tick_start_ns);
            // Not enough quiet addresses (every tracked one has traffic, e.g. a whole prefix
            // swept every tick): the lightest of this tick make room, each for a candidate
            // with more than twice its packets.
            if room + victims.len() < cands.len() {
                let light =
                    self.lightest(cands.len() - room - victims.len(), tick_start_ns, deltas);
                let lightest_cands = cands.iter().skip(room + victims.len()).rev();
                // Lightest victims for the lightest candidates: each pair must qualify.
                let mut pairs: Vec<usize> = Vec::new();
                for (&(packets, i), c) in light.iter().rev().zip(lightest_cands) {
                    if packets.saturating_mul(2) < c.2 {
                        pairs.push(i);
                    }
                }
                // They had traffic in this tick: it becomes untracked traffic of the tick,
                // so that the closed tick never shows an evicted id with counters (whatever
                // is kept per id would otherwise be learned into an id that changes hands).
                for &i in &pairs {
                    self.untrack_tick(i, deltas);
                }
                victims.extend(pairs);
            }
            for &i in &victims {
                self.evict(i);
            }
            cands.truncate(room + victims.len());
        }
        for (key, group, _) in cands {
            if self.take_id(key, group, tick_start_ns).is_some() {
                self.heavy_admitted += 1;
            }
        }
    }

    /// Moves tracked id `i`'s counts of the tick (its first-delta cells) to the untracked
    /// totals and aggregates.
    fn untrack_tick(&mut self, i: usize, deltas: &mut [TickDelta]) {
        let Some(c) = deltas.first_mut().and_then(|d| d.take_known(i as u32)) else {
            return;
        };
        self.pending_stats.overflow.add(&c.grand_total());
        if let Some(r) = self.records.get(i) {
            let inbound = &c.by_dir[Direction::In.index()];
            let table = self.monitor.table();
            self.rejected.add_counts(table, r.ip, r.group, inbound);
        }
    }

    /// The `n` tracked ids with the fewest packets in the tick that started at
    /// `tick_start_ns` (ties: lowest id), among those with traffic in it and tracked before
    /// it, not kept: (packets, id), fewest first.
    fn lightest(&self, n: usize, tick_start_ns: u64, deltas: &[TickDelta]) -> Vec<(u64, usize)> {
        let Some(first) = deltas.first() else {
            return Vec::new();
        };
        let mut light = Smallest::new(n);
        crate::bits::for_each_bit(&first.bits, |i| {
            let Some(cells) = first.cells.get(i) else {
                return;
            };
            let packets: u64 = cells.iter().map(|&v| cell_unpack(v).packets).sum();
            light.offer((packets, i), || {
                let tracked_before = self
                    .records
                    .get(i)
                    .is_some_and(|r| r.first_seen_ns < tick_start_ns);
                tracked_before && !self.kept_or_vacant(i)
            });
        });
        light.into_sorted()
    }

    /// The `n` evictable ids quiet for longest (oldest last traffic, then lowest id).
    fn quietest(&self, n: usize, tick_start_ns: u64) -> Vec<usize> {
        let mut quiet = Smallest::new(n);
        for (i, &t) in self.last_seen.iter().enumerate() {
            quiet.offer((t, i), || self.evictable(i, tick_start_ns));
        }
        let mut v: Vec<usize> = quiet.into_sorted().into_iter().map(|(_, i)| i).collect();
        v.sort_unstable();
        v
    }

    /// Admits the tick's newcomers in ascending address order while the limit allows, summing
    /// each one's cells across deltas into its first slot.
    fn admit(&mut self, tick_start_ns: u64, deltas: &mut [TickDelta]) {
        self.newcomers.sort_unstable();
        let mut i = 0;
        while i < self.newcomers.len() {
            let (key, d0, s0) = self.newcomers[i];
            let mut j = i + 1;
            while j < self.newcomers.len() && self.newcomers[j].0 == key {
                let (_, d, s) = self.newcomers[j];
                let c = deltas[d as usize].new_cells[s as usize];
                let mut spill = Vec::new();
                if let Some(into) = deltas[d0 as usize].new_cells.get_mut(s0 as usize) {
                    add_cells_packed(into, &c, NONE, &mut spill);
                }
                for (_, cell, pb) in spill {
                    // Resolved with the key's other spills below.
                    deltas[d0 as usize].spill.push((key, NONE, cell, pb));
                }
                j += 1;
            }
            let group = self.monitor.group_of(key);
            let room = self.live < self.monitor.raw_ip_limit();
            let fresh = self.free.is_empty();
            let id = group
                .filter(|_| room)
                .and_then(|g| self.take_id(key, g, tick_start_ns));
            if let Some(id) = id {
                // The shards that counted it learn its id with their delta (the others with
                // the re-arm's list).
                for &(_, d, _) in &self.newcomers[i..j] {
                    if let Some(d) = deltas.get_mut(d as usize) {
                        d.learned.push((key, id));
                    }
                }
            }
            match id {
                Some(_) if fresh => {
                    // A new id (`first_new..`): its cells stay in their delta's slot.
                    self.new_at.push((d0, s0));
                }
                Some(id) => {
                    // A reused id: its cells join the tracked sums in the first delta.
                    let c = deltas[d0 as usize].new_cells[s0 as usize];
                    deltas[0].add_known(id.0, &c, &mut self.spill);
                }
                _ => {
                    let mut c = IpCounters::ZERO;
                    if let Some(cells) = deltas[d0 as usize].new_cells.get(s0 as usize) {
                        c.add_cells(cells);
                    }
                    self.pending_stats.overflow.add(&c.grand_total());
                    // Untracked: in the aggregates (its spills are overflow below, not there:
                    // only counts beyond a packed cell's range spill).
                    if let Some(g) = group {
                        let inbound = &c.by_dir[Direction::In.index()];
                        let table = self.monitor.table();
                        self.rejected.add_counts(table, key, g, inbound);
                        let packets = inbound.iter().map(|c| c.packets).sum();
                        self.rejected_heavy.push((key, packets));
                    }
                    // Not admitted: the shards forget the address (`NEW`: no id).
                    for &(_, d, _) in &self.newcomers[i..j] {
                        if let Some(d) = deltas.get_mut(d as usize) {
                            d.learned.push((key, IpId(NEW)));
                        }
                    }
                }
            }
            i = j;
        }
    }

    /// Adds the tick to the record of every address with traffic, by ascending id.
    fn update_records(&mut self, tick_start_ns: u64, deltas: &[TickDelta], old_len: usize) {
        let per_sec = PerSec::new(self.tick_ns);
        let records = &mut self.records;
        let last_seen = &mut self.last_seen;
        let spill = &self.spill[..];
        let mut at = 0;
        let mut update = |id: u32, cells: &TickCells| {
            let sp = spill_of(spill, &mut at, id);
            let Some(r) = records.get_mut(id as usize) else {
                return;
            };
            let mut dir = [PacketsBytes::default(); 2];
            for (i, &v) in cells.iter().enumerate() {
                if v != 0 {
                    let c = cell_unpack(v);
                    r.totals.add_cell(i, c);
                    dir[i / TrafficClass::COUNT].add(&c);
                }
            }
            for &(_, cell, pb) in sp {
                r.totals.add_cell(usize::from(cell), pb);
                if let Some(d) = dir.get_mut(usize::from(cell) / TrafficClass::COUNT) {
                    d.add(&pb);
                }
            }
            r.last_seen_ns = tick_start_ns;
            if let Some(l) = last_seen.get_mut(id as usize) {
                *l = tick_start_ns;
            }
            r.active_ticks += 1;
            let mut all = dir[0];
            all.add(&dir[1]);
            let (pps, bps) = per_sec.rates(all);
            r.peak_pps = r.peak_pps.max(pps);
            r.peak_bps = r.peak_bps.max(bps);
            for (i, d) in dir.iter().enumerate() {
                let (pps, bps) = per_sec.rates(*d);
                r.peak_dir_pps[i] = r.peak_dir_pps[i].max(pps);
                r.peak_dir_bps[i] = r.peak_dir_bps[i].max(bps);
            }
        };
        if let Some(first) = deltas.first() {
            let cells = &first.cells;
            crate::bits::for_each_bit(&first.bits, |id| {
                if let Some(c) = cells.get(id) {
                    update(id as u32, c);
                }
            });
        }
        for (i, &(d, s)) in self.new_at.iter().enumerate() {
            if let Some(c) = deltas
                .get(d as usize)
                .and_then(|d| d.new_cells.get(s as usize))
            {
                update((old_len + i) as u32, c);
            }
        }
    }

    /// Chooses the targets to watch from the next tick on (typically the detection engine's
    /// open incidents and near-threshold addresses): returns the [`WatchSet`] to install into
    /// every shard with [`Shard::install_watch`](crate::Shard::install_watch) before it
    /// accounts the next tick, with the rest of [`Accounting::rearm`]. Untracked addresses are
    /// ignored (they have no [`IpId`]); an empty iterator stops all source analysis.
    ///
    /// Call between ticks; the next [`ClosedTick::watched`] reports these targets.
    pub fn set_watch(&mut self, ips: impl IntoIterator<Item = IpAddr>) -> Arc<WatchSet> {
        let targets: Vec<(IpId, IpKey)> = ips
            .into_iter()
            .filter_map(|ip| {
                let k = IpKey::from(ip);
                self.ids.get(&k, &self.records).map(|id| (id, k))
            })
            .collect();
        if targets.is_empty() && self.watch.is_empty() {
            return self.watch();
        }
        self.watch = Arc::new(WatchSet::new(targets));
        reset_watched(&mut self.pending_watched, self.watch.len());
        self.watch()
    }

    /// The current watch set (see [`Accounting::set_watch`]).
    pub fn watch(&self) -> Arc<WatchSet> {
        Arc::clone(&self.watch)
    }

    /// Id of a tracked address.
    pub fn id_of(&self, ip: IpAddr) -> Option<IpId> {
        self.ids.get(&IpKey::from(ip), &self.records)
    }

    /// Record of a tracked address.
    pub fn record(&self, id: IpId) -> Option<&IpRecord> {
        if self.vacant.get(id.index()).copied().unwrap_or(true) {
            return None;
        }
        self.records.get(id.index())
    }

    /// Every tracked address's record, by ascending [`IpId`].
    pub fn records(&self) -> impl Iterator<Item = (IpId, &IpRecord)> + '_ {
        self.records
            .iter()
            .zip(&self.vacant)
            .enumerate()
            .filter(|(_, (_, &v))| !v)
            .map(|(i, (r, _))| (IpId(i as u32), r))
    }

    /// Number of addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.live
    }

    /// Global counters over all closed ticks.
    pub fn stats(&self) -> &TrafficStats {
        &self.stats
    }

    /// Number of closed ticks.
    pub fn ticks_closed(&self) -> u64 {
        self.ticks_closed
    }

    /// The tick length in nanoseconds.
    pub fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    /// Summary with global totals and the `top_n` addresses by peak pps (ties: ascending IP).
    pub fn report(&self, top_n: usize) -> Report {
        // Tracked addresses and the busiest evicted ones (an address evicted and tracked
        // again appears once, with its busier record).
        let mut order: Vec<(Reverse<u64>, IpKey, usize)> = self
            .records()
            .map(|(id, r)| (Reverse(r.peak_pps), r.ip, id.index()))
            .collect();
        if top_n < order.len() {
            order.select_nth_unstable(top_n);
            order.truncate(top_n);
        }
        let mut top: Vec<IpReport> = order
            .iter()
            .filter_map(|&(_, _, i)| self.records.get(i))
            .map(IpReport::from_record)
            .chain(self.retired.iter().cloned())
            .collect();
        sort_reports(&mut top);
        let mut seen = std::collections::HashSet::new();
        top.retain(|r| seen.insert(r.ip));
        top.truncate(top_n);
        Report {
            totals: ReportTotals {
                packets: self.stats.total.packets,
                bytes: self.stats.total.bytes,
                parse_status: self.stats.parse_status,
                ticks_closed: self.ticks_closed,
                monitored_ips_seen: self.ever_admitted,
                tracked_ips: self.live as u64,
                evicted_ips: self.evicted_total,
                admitted_heavy_ips: self.heavy_admitted,
                overflow_packets: self.stats.overflow.packets,
                overflow_bytes: self.stats.overflow.bytes,
                ip_limit: self.monitor.ip_limit().map(|l| l as u64),
            },
            top,
        }
    }
}

/// Most evicted addresses whose reports are kept for the report's top list.
const RETIRED_TOP: usize = 256;
/// Fewest ids the idle scan looks at per tick.
const IDLE_SCAN_MIN: usize = 1024;
/// Most untracked heavy destinations admitted per tick.
pub const MAX_HEAVY_ADMISSIONS: usize = 256;

/// The `n` smallest `(value, id)` pairs offered (ties: lowest id), in one pass with a bounded
/// heap; the eligibility check runs only for pairs that would enter.
struct Smallest {
    n: usize,
    heap: std::collections::BinaryHeap<(u64, usize)>,
}

impl Smallest {
    fn new(n: usize) -> Self {
        Smallest {
            n,
            heap: Default::default(),
        }
    }

    fn offer(&mut self, item: (u64, usize), eligible: impl FnOnce() -> bool) {
        if self.n == 0 || self.heap.len() == self.n && self.heap.peek().is_some_and(|&t| item >= t)
        {
            return;
        }
        if !eligible() {
            return;
        }
        self.heap.push(item);
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    /// Smallest first.
    fn into_sorted(self) -> Vec<(u64, usize)> {
        self.heap.into_sorted_vec()
    }
}

/// Sorts reports by descending peak packet rate, ties by ascending address.
fn sort_reports(v: &mut [IpReport]) {
    v.sort_unstable_by(|a, b| b.peak_pps.cmp(&a.peak_pps).then(a.ip.cmp(&b.ip)));
}

/// Empties `v` and sizes it for `n` targets, keeping allocations.
fn reset_watched(v: &mut Vec<SourceStats>, n: usize) {
    for s in v.iter_mut() {
        s.clear();
    }
    v.resize_with(n, || {
        SourceStats::with_cap(crate::sources::WATCH_SOURCE_CAP)
    });
}

/// What [`Accounting::report`] returns: plain data, mapped to JSON/metrics by `export`. The
/// default is the report of a run that saw nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Global totals.
    pub totals: ReportTotals,
    /// Top addresses by peak pps, descending, ties by ascending IP.
    pub top: Vec<IpReport>,
}

/// Global totals of a [`Report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportTotals {
    /// Frames accounted.
    pub packets: u64,
    /// Wire bytes accounted.
    pub bytes: u64,
    /// Frames per parse outcome, indexed by [`ParseStatus::index`]; see [`Self::parse_status`].
    pub parse_status: [u64; ParseStatus::COUNT],
    /// Ticks closed.
    pub ticks_closed: u64,
    /// Addresses ever tracked (an address tracked again after its eviction counts again).
    pub monitored_ips_seen: u64,
    /// Addresses tracked at the end.
    pub tracked_ips: u64,
    /// Evictions of quiet addresses (to make room, or idle past the eviction time).
    pub evicted_ips: u64,
    /// Untracked destinations admitted for their packet rate while the tracked set was full.
    pub admitted_heavy_ips: u64,
    /// Per-direction packet accountings of untracked addresses (beyond the tracked-IP limit).
    pub overflow_packets: u64,
    /// Their bytes.
    pub overflow_bytes: u64,
    /// The tracked-IP limit, if any.
    pub ip_limit: Option<u64>,
}

impl ReportTotals {
    /// Frames with parse outcome `s`.
    pub fn parse_status(&self, s: ParseStatus) -> u64 {
        self.parse_status[s.index()]
    }

    /// Frames with a parse error ([`ParseStatus::is_error`]).
    pub fn parse_errors(&self) -> u64 {
        ParseStatus::ALL
            .iter()
            .filter(|s| s.is_error())
            .map(|&s| self.parse_status(s))
            .sum()
    }
}

/// Per-class totals of one address in a [`Report`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ClassReport {
    /// The class.
    pub class: TrafficClass,
    /// Inbound packets.
    pub packets_in: u64,
    /// Inbound bytes.
    pub bytes_in: u64,
    /// Outbound packets.
    pub packets_out: u64,
    /// Outbound bytes.
    pub bytes_out: u64,
}

/// One address in a [`Report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpReport {
    /// The address.
    pub ip: IpAddr,
    /// Its group.
    pub group: GroupId,
    /// Inbound packets.
    pub packets_in: u64,
    /// Inbound bytes.
    pub bytes_in: u64,
    /// Outbound packets.
    pub packets_out: u64,
    /// Outbound bytes.
    pub bytes_out: u64,
    /// Peak per-tick packet rate, both directions.
    pub peak_pps: u64,
    /// Peak per-tick bit rate, both directions.
    pub peak_bps: u64,
    /// Peak inbound packet rate.
    pub peak_pps_in: u64,
    /// Peak inbound bit rate.
    pub peak_bps_in: u64,
    /// Peak outbound packet rate.
    pub peak_pps_out: u64,
    /// Peak outbound bit rate.
    pub peak_bps_out: u64,
    /// Start of the first tick with traffic (ns since the epoch).
    pub first_seen_ns: u64,
    /// Start of the last tick with traffic (ns since the epoch).
    pub last_seen_ns: u64,
    /// Ticks with traffic.
    pub active_ticks: u64,
    /// Per-class totals in [`TrafficClass::ALL`] order.
    pub classes: [ClassReport; TrafficClass::COUNT],
}

impl IpReport {
    fn from_record(r: &IpRecord) -> Self {
        let (i, o) = (
            r.totals.total(Direction::In),
            r.totals.total(Direction::Out),
        );
        IpReport {
            ip: r.ip.ip(),
            group: r.group,
            packets_in: i.packets,
            bytes_in: i.bytes,
            packets_out: o.packets,
            bytes_out: o.bytes,
            peak_pps: r.peak_pps,
            peak_bps: r.peak_bps,
            peak_pps_in: r.peak_dir_pps[0],
            peak_bps_in: r.peak_dir_bps[0],
            peak_pps_out: r.peak_dir_pps[1],
            peak_bps_out: r.peak_dir_bps[1],
            first_seen_ns: r.first_seen_ns,
            last_seen_ns: r.last_seen_ns,
            active_ticks: r.active_ticks,
            classes: TrafficClass::ALL.map(|class| {
                let (i, o) = (
                    r.totals.get(Direction::In, class),
                    r.totals.get(Direction::Out, class),
                );
                ClassReport {
                    class,
                    packets_in: i.packets,
                    bytes_in: i.bytes,
                    packets_out: o.packets,
                    bytes_out: o.bytes,
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::MIN_ROOM;
    use crate::{PrefixTable, Shard};
    use surgewatch_pipeline::{proto, tcp_flags, Fragment, PacketSummary};

    const S: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pkt(src: &str, dst: &str, class: TrafficClass, len: u32) -> PacketSummary {
        let mut s = PacketSummary::empty(len);
        s.src = ip(src);
        s.dst = ip(dst);
        let v6 = s.dst.is_ipv6();
        s.ip_version = if v6 { 6 } else { 4 };
        s.has_l4 = true;
        s.protocol = proto::TCP;
        match class {
            TrafficClass::Syn => s.tcp_flags = tcp_flags::SYN,
            TrafficClass::SynAck => s.tcp_flags = tcp_flags::SYN | tcp_flags::ACK,
            TrafficClass::Ack => s.tcp_flags = tcp_flags::ACK | tcp_flags::PSH,
            TrafficClass::Rst => s.tcp_flags = tcp_flags::RST,
            TrafficClass::TcpOther => s.tcp_flags = tcp_flags::FIN,
            TrafficClass::Udp => s.protocol = proto::UDP,
            TrafficClass::Icmp => s.protocol = if v6 { proto::ICMPV6 } else { proto::ICMP },
            TrafficClass::Fragment => {
                s.protocol = proto::UDP;
                s.frag = Fragment::Later;
                s.has_l4 = false;
            }
            TrafficClass::Other => s.protocol = proto::GRE,
        }
        assert_eq!(s.class(), class);
        s
    }

    fn prefixes(p: &[(&str, u16)]) -> Arc<Monitor> {
        let t = PrefixTable::new(p.iter().map(|&(n, g)| (n.parse().unwrap(), GroupId(g)))).unwrap();
        Arc::new(Monitor::prefixes(t))
    }

    fn tick_len(ns: u64) -> TickLength {
        TickLength::from_nanos(ns).unwrap()
    }

    /// Closes a tick over `shards`, recycling deltas and installing the tracked set.
    fn close(acct: &mut Accounting, shards: &mut [Shard], start: u64) -> Vec<(IpId, IpCounters)> {
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        let out = acct
            .end_tick(start, &mut deltas)
            .iter()
            .map(|(id, _, c)| (id, *c))
            .collect();
        let r = acct.rearm();
        for (s, d) in shards.iter_mut().zip(deltas) {
            s.rearm(d, &r);
        }
        out
    }

    fn record<'a>(acct: &'a Accounting, a: &str) -> &'a IpRecord {
        acct.record(acct.id_of(ip(a)).unwrap()).unwrap()
    }

    #[test]
    fn every_class_in_both_directions() {
        let m = prefixes(&[("10.0.0.0/24", 1), ("2001:db8::/64", 2)]);
        let mut shard = Shard::new(m.clone());
        let mut acct = Accounting::new(m, tick_len(S));
        for (i, c) in TrafficClass::ALL.into_iter().enumerate() {
            let len = 100 + i as u32;
            shard.account(&pkt("198.51.100.1", "10.0.0.1", c, len));
            shard.account(&pkt("10.0.0.2", "198.51.100.1", c, len));
            shard.account(&pkt("10.0.0.2", "198.51.100.1", c, len));
            shard.account(&pkt("2001:db8::1", "2001:db9::1", c, len));
        }
        close(&mut acct, std::slice::from_mut(&mut shard), 0);
        let (a, b, v6) = (
            record(&acct, "10.0.0.1"),
            record(&acct, "10.0.0.2"),
            record(&acct, "2001:db8::1"),
        );
        assert_eq!(
            (a.group, b.group, v6.group),
            (GroupId(1), GroupId(1), GroupId(2))
        );
        for (i, c) in TrafficClass::ALL.into_iter().enumerate() {
            let len = 100 + i as u64;
            assert_eq!(
                a.totals.get(Direction::In, c),
                PacketsBytes {
                    packets: 1,
                    bytes: len
                }
            );
            assert_eq!(a.totals.get(Direction::Out, c), PacketsBytes::default());
            assert_eq!(
                b.totals.get(Direction::Out, c),
                PacketsBytes {
                    packets: 2,
                    bytes: 2 * len
                }
            );
            assert_eq!(b.totals.get(Direction::In, c), PacketsBytes::default());
            assert_eq!(
                v6.totals.get(Direction::Out, c),
                PacketsBytes {
                    packets: 1,
                    bytes: len
                }
            );
        }
        assert_eq!(acct.tracked(), 3);
        assert_eq!(acct.stats().total.packets, 36);
        assert_eq!(acct.stats().status(ParseStatus::Ok), 36);
    }

    #[test]
    fn deltas_come_back_with_room_for_every_id() {
        // Shard 0 brings 300 new addresses, shard 1 one: after the merge both deltas hold
        // every id, so that neither worker grows its per-id vectors on its packet path when
        // it meets an address the other one brought.
        let m = prefixes(&[("10.0.0.0/16", 1)]);
        let mut shards = [Shard::new(m.clone()), Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(S));
        for i in 0..300u32 {
            let dst = format!("10.0.{}.{}", i / 256, i % 256);
            shards[0].account(&pkt("198.51.100.1", &dst, TrafficClass::Udp, 100));
        }
        shards[1].account(&pkt("198.51.100.1", "10.0.9.9", TrafficClass::Udp, 100));
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        acct.end_tick(0, &mut deltas);
        assert_eq!(acct.tracked(), 301);
        for d in &deltas {
            assert!(d.capacity() >= 301, "{}", d.capacity());
        }
    }

    #[test]
    fn deltas_come_back_sized_for_the_next_tick() {
        // The per-tick vectors are sized by the merger (room for every tracked id, twice the
        // tick's new addresses, amplification entries for every address counted), and shrunk
        // once addresses stop being new, so that a worker neither grows nor keeps them
        // needlessly.
        let m = prefixes(&[("10.0.0.0/16", 1)]);
        let mut shard = Shard::new(m.clone());
        let mut acct = Accounting::new(m, tick_len(S));
        for i in 0..3000u32 {
            let dst = format!("10.0.{}.{}", i / 250, i % 250);
            let mut p = pkt("198.51.100.1", &dst, TrafficClass::Udp, 100);
            p.src_port = 123;
            shard.account(&p);
        }
        let mut d = [shard.take_tick()];
        acct.end_tick(0, &mut d);
        let [d] = d;
        assert_eq!(d.new_keys.len(), 3000);
        assert_eq!(d.amp.len(), 3000);
        assert!(d.new_keys.capacity() >= 6000 && d.new_cells.capacity() >= 6000);
        assert!(d.amp.capacity() >= 6000 && d.amp_refs.capacity() >= 6000);
        assert!(d.touched.capacity() >= 3000);
        // The cells of every id were written here, not left for the worker to fault in.
        assert!(d.faulted >= 3000 && d.cells.len() >= 3000, "{}", d.faulted);
        shard.rearm(d, &acct.rearm());
        // Next tick: the same addresses, tracked now; nothing new.
        for i in 0..3000u32 {
            let dst = format!("10.0.{}.{}", i / 250, i % 250);
            shard.account(&pkt("198.51.100.1", &dst, TrafficClass::Syn, 100));
        }
        let mut d = [shard.take_tick()];
        acct.end_tick(S, &mut d);
        let [d] = d;
        assert_eq!((d.new_keys.len(), d.touched.len()), (0, 3000));
        assert!(
            d.new_keys.capacity() <= 4 * MIN_ROOM,
            "{}",
            d.new_keys.capacity()
        );
        assert!(d.new_cells.capacity() <= 4 * MIN_ROOM);
        // Amplification counters: room for every address counted (a reflection attack on
        // all of them at once), no more than four times that.
        assert!(
            (3000..=12_000).contains(&d.amp.capacity()),
            "{}",
            d.amp.capacity()
        );
    }

    #[test]
    fn both_directions_monitored() {
        let m = prefixes(&[("10.0.0.0/24", 1)]);
        let mut shard = Shard::new(m.clone());
        let mut acct = Accounting::new(m, tick_len(S));
        shard.account(&pkt("10.0.0.1", "10.0.0.2", TrafficClass::Udp, 50));
        shard.account(&pkt("10.0.0.3", "10.0.0.3", TrafficClass::Syn, 60));
        close(&mut acct, std::slice::from_mut(&mut shard), 0);
        let r = |a| record(&acct, a).totals.clone();
        assert_eq!(r("10.0.0.1").total(Direction::Out).packets, 1);
        assert_eq!(r("10.0.0.1").total(Direction::In).packets, 0);
        assert_eq!(r("10.0.0.2").total(Direction::In).packets, 1);
        assert_eq!(
            r("10.0.0.3").get(Direction::In, TrafficClass::Syn).bytes,
            60
        );
        assert_eq!(
            r("10.0.0.3").get(Direction::Out, TrafficClass::Syn).bytes,
            60
        );
    }

    #[test]
    fn parse_status_and_non_ip() {
        let m = prefixes(&[("10.0.0.0/24", 1)]);
        let mut shard = Shard::new(m.clone());
        let mut acct = Accounting::new(m, tick_len(S));
        let mut non_ip = PacketSummary::empty(42);
        non_ip.status = ParseStatus::NonIp;
        shard.account(&non_ip);
        let mut bad = PacketSummary::empty(10);
        bad.status = ParseStatus::TruncatedLink;
        shard.account(&bad);
        // An L4 problem keeps valid addresses: still accounted per IP.
        let mut l4 = pkt("1.1.1.1", "10.0.0.9", TrafficClass::TcpOther, 70);
        l4.status = ParseStatus::TruncatedL4;
        l4.has_l4 = false;
        shard.account(&l4);
        close(&mut acct, std::slice::from_mut(&mut shard), 0);
        let rep = acct.report(10);
        assert_eq!(rep.totals.packets, 3);
        assert_eq!(rep.totals.bytes, 122);
        assert_eq!(rep.totals.parse_status(ParseStatus::NonIp), 1);
        assert_eq!(rep.totals.parse_status(ParseStatus::TruncatedLink), 1);
        assert_eq!(rep.totals.parse_status(ParseStatus::TruncatedL4), 1);
        assert_eq!(rep.totals.parse_errors(), 2);
        assert_eq!(rep.totals.monitored_ips_seen, 1);
        assert_eq!(
            rep.top[0].classes[TrafficClass::TcpOther.index()].packets_in,
            1
        );
    }

    #[test]
    fn peaks_first_last_seen() {
        let m = prefixes(&[("10.0.0.1/32", 0)]);
        let tick = S / 10; // 100 ms
        let mut shards = [Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(tick));
        for (t, n) in [(3, 3u64), (4, 5), (9, 1)] {
            for _ in 0..n {
                shards[0].account(&pkt("1.1.1.1", "10.0.0.1", TrafficClass::Udp, 100));
            }
            shards[0].account(&pkt("10.0.0.1", "1.1.1.1", TrafficClass::Udp, 1000));
            close(&mut acct, &mut shards, t * tick);
        }
        let r = record(&acct, "10.0.0.1");
        assert_eq!(
            (r.first_seen_ns, r.last_seen_ns, r.active_ticks),
            (3 * tick, 9 * tick, 3)
        );
        assert_eq!(r.peak_pps, 60);
        assert_eq!(r.peak_bps, (500 + 1000) * 8 * 10);
        assert_eq!(r.peak_dir_pps, [50, 10]);
        assert_eq!(r.peak_dir_bps, [500 * 8 * 10, 1000 * 8 * 10]);
        assert_eq!(acct.ticks_closed(), 3);
    }

    #[test]
    fn auto_monitor_cap_admits_smallest_and_counts_overflow() {
        let m = Arc::new(Monitor::auto(3, GroupId(7)));
        let mut shards = [Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(S));
        for d in [
            "10.0.0.5", "10.0.0.4", "10.0.0.3", "10.0.0.2", "10.0.0.1", "10.0.0.5",
        ] {
            shards[0].account(&pkt("1.1.1.1", d, TrafficClass::Syn, 64));
        }
        assert!(shards[0].current().len() <= 3);
        let closed = close(&mut acct, &mut shards, 0);
        assert_eq!(closed.len(), 3);
        let kept: Vec<String> = acct.records().map(|(_, r)| r.ip.to_string()).collect();
        assert_eq!(kept, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert!(acct.records().all(|(_, r)| r.group == GroupId(7)));
        // Outbound is never counted in auto mode: 1.1.1.1 is not tracked.
        assert_eq!(acct.id_of(ip("1.1.1.1")), None);
        assert_eq!(
            acct.stats().overflow,
            PacketsBytes {
                packets: 3,
                bytes: 192
            }
        );
        assert_eq!(acct.rearm().remaining, 0);

        // Next tick: tracked addresses are counted in full under a flood of new ones.
        for i in 0..50u32 {
            shards[0].account(&pkt(
                "1.1.1.1",
                &format!("9.0.0.{i}"),
                TrafficClass::Udp,
                10,
            ));
            shards[0].account(&pkt("1.1.1.1", "10.0.0.3", TrafficClass::Udp, 10));
        }
        assert!(shards[0].current().len() <= 3);
        close(&mut acct, &mut shards, S);
        assert_eq!(
            record(&acct, "10.0.0.3")
                .totals
                .total(Direction::In)
                .packets,
            51
        );
        assert_eq!(acct.tracked(), 3);
        let rep = acct.report(1);
        assert_eq!(rep.totals.overflow_packets, 53);
        assert_eq!(rep.totals.ip_limit, Some(3));
        assert_eq!(rep.totals.monitored_ips_seen, 3);
    }

    #[test]
    fn admission_is_independent_of_sharding() {
        let dsts: Vec<String> = (0..40)
            .map(|i| format!("10.0.{}.{}", i % 7, (i * 37) % 251))
            .collect();
        let run = |n_shards: usize, rotate: usize| {
            let m = Arc::new(Monitor::auto(10, GroupId(0)));
            let mut shards: Vec<Shard> = (0..n_shards).map(|_| Shard::new(m.clone())).collect();
            let mut acct = Accounting::new(m, tick_len(S));
            let mut ticks = Vec::new();
            for t in 0..3u64 {
                for i in 0..dsts.len() {
                    let j = (i + rotate) % dsts.len();
                    let d = &dsts[(j + t as usize * 13) % dsts.len()];
                    shards[(i * 7 + rotate) % n_shards].account(&pkt(
                        "1.1.1.1",
                        d,
                        TrafficClass::Ack,
                        99,
                    ));
                }
                ticks.push(close(&mut acct, &mut shards, t * S));
            }
            (ticks, acct.report(usize::MAX))
        };
        let reference = run(1, 0);
        assert_eq!(reference.1.top.len(), 10);
        for (n, rot) in [(1, 5), (2, 0), (3, 11), (4, 17)] {
            assert_eq!(run(n, rot), reference, "{n} shards, rotation {rot}");
        }
    }

    #[test]
    fn prefix_mode_with_limit() {
        let m = prefixes(&[("10.0.0.0/8", 0)]);
        let m = Arc::new(Monitor::clone(&m).with_ip_limit(2));
        let mut shards = [Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(S));
        shards[0].account(&pkt("10.0.0.9", "10.0.0.8", TrafficClass::Udp, 1));
        shards[0].account(&pkt("10.0.0.1", "10.0.0.7", TrafficClass::Udp, 1));
        close(&mut acct, &mut shards, 0);
        let kept: Vec<String> = acct.records().map(|(_, r)| r.ip.to_string()).collect();
        assert_eq!(kept, ["10.0.0.1", "10.0.0.7"]);
        assert_eq!(acct.stats().overflow.packets, 2);
    }

    #[test]
    fn report_orders_by_peak_then_ip() {
        let m = prefixes(&[("10.0.0.0/24", 0)]);
        let mut shards = [Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(S));
        for (d, n) in [
            ("10.0.0.9", 2),
            ("10.0.0.3", 5),
            ("10.0.0.4", 2),
            ("10.0.0.1", 1),
        ] {
            for _ in 0..n {
                shards[0].account(&pkt("1.1.1.1", d, TrafficClass::Udp, 1));
            }
        }
        close(&mut acct, &mut shards, 0);
        let order = |n| -> Vec<String> {
            acct.report(n)
                .top
                .iter()
                .map(|r| r.ip.to_string())
                .collect()
        };
        assert_eq!(order(10), ["10.0.0.3", "10.0.0.4", "10.0.0.9", "10.0.0.1"]);
        assert_eq!(order(2), ["10.0.0.3", "10.0.0.4"]);
        assert_eq!(order(0), Vec::<String>::new());
    }

    #[test]
    fn recycled_maps_keep_capacity() {
        let m = prefixes(&[("10.0.0.0/16", 0)]);
        let mut shard = Shard::new(m);
        for i in 0..1000u32 {
            let d = std::net::Ipv4Addr::from(0x0a00_0000 | i).to_string();
            shard.account(&pkt("1.1.1.1", &d, TrafficClass::Udp, 1));
        }
        let d = shard.take_tick();
        assert_eq!(d.len(), 1000);
        let cap = d.capacity();
        assert!(cap >= 1000);
        shard.recycle(d);
        shard.take_tick(); // from now on the shard accounts into the recycled map
        assert!(shard.current().capacity() >= cap);
        assert!(shard.current().is_empty());
    }

    fn udp_from(src: &str, sport: u16, dst: &str, len: u32, frag: Fragment) -> PacketSummary {
        let mut s = pkt(src, dst, TrafficClass::Udp, len);
        s.src_port = sport;
        s.frag = frag;
        s
    }

    #[test]
    fn amp_counters_inbound_udp_only() {
        let m = prefixes(&[("10.0.0.0/24", 1)]);
        let mut shards = [Shard::new(m.clone()), Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(S));
        let dns = crate::amp_bucket(53).unwrap();
        let ntp = crate::amp_bucket(123).unwrap();
        let other = crate::amp_bucket(17).unwrap();
        shards[0].account(&udp_from("1.1.1.1", 53, "10.0.0.1", 1000, Fragment::None));
        shards[1].account(&udp_from("1.1.1.2", 53, "10.0.0.1", 1400, Fragment::First));
        shards[1].account(&udp_from("1.1.1.3", 123, "10.0.0.1", 468, Fragment::None));
        shards[0].account(&udp_from("1.1.1.3", 17, "10.0.0.1", 100, Fragment::None));
        // Not counted: later fragment (no header), TCP from port 53, non-reflector port,
        // outbound reflector traffic, header not read.
        let mut later = udp_from("1.1.1.2", 0, "10.0.0.1", 900, Fragment::Later);
        later.has_l4 = false;
        shards[0].account(&later);
        let mut tcp = pkt("1.1.1.1", "10.0.0.1", TrafficClass::Ack, 60);
        tcp.src_port = 53;
        shards[0].account(&tcp);
        shards[0].account(&udp_from("1.1.1.1", 4444, "10.0.0.1", 60, Fragment::None));
        shards[1].account(&udp_from("10.0.0.2", 53, "9.9.9.9", 500, Fragment::None));
        let mut trunc = udp_from("1.1.1.1", 53, "10.0.0.3", 60, Fragment::None);
        trunc.has_l4 = false;
        shards[1].account(&trunc);

        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        let closed = acct.end_tick(0, &mut deltas);
        let ips: Vec<TickIp<'_>> = closed.ips().collect();
        assert_eq!(ips.len(), 3);
        let a = ips[0].amp;
        assert_eq!(ips[0].record.ip.to_string(), "10.0.0.1");
        assert_eq!(a.packets[dns], 2);
        assert_eq!(a.bytes[dns], 2400);
        assert_eq!(a.first_frags[dns], 1);
        assert_eq!(
            (a.packets[ntp], a.bytes[ntp], a.first_frags[ntp]),
            (1, 468, 0)
        );
        assert_eq!(a.packets[other], 1);
        assert_eq!(a.total_packets(), 4);
        assert!(ips[1].amp.is_zero() && ips[2].amp.is_zero());
        assert_eq!(closed.amp().count(), 1);
        // Per tick only.
        close(&mut acct, &mut shards, S);
        assert_eq!(acct.tracked(), 3);
    }

    #[test]
    fn watched_targets_get_source_stats() {
        let m = prefixes(&[("10.0.0.0/24", 1)]);
        let mut shards = [Shard::new(m.clone()), Shard::new(m.clone())];
        let mut acct = Accounting::new(m, tick_len(S));
        shards[0].account(&pkt("1.1.1.1", "10.0.0.1", TrafficClass::Syn, 60));
        shards[0].account(&pkt("1.1.1.1", "10.0.0.2", TrafficClass::Syn, 60));
        close(&mut acct, &mut shards, 0);

        // Watch 10.0.0.2 and an untracked address (ignored).
        let w = acct.set_watch([ip("10.0.0.2"), ip("10.0.0.9"), ip("10.0.0.2")]);
        assert_eq!(w.len(), 1);
        assert!(w.contains(ip("10.0.0.2")));
        for sh in &mut shards {
            sh.install_watch(w.clone());
        }
        for i in 0..10u32 {
            let src = format!("2.2.2.{}", i % 4);
            let mut p = pkt(&src, "10.0.0.2", TrafficClass::Udp, 100 + i);
            p.src_port = 1000;
            p.dst_port = 53;
            shards[(i % 2) as usize].account(&p);
            shards[0].account(&pkt(&src, "10.0.0.1", TrafficClass::Udp, 100));
        }
        // Outbound traffic of the watched target is not analysed.
        shards[1].account(&pkt("10.0.0.2", "3.3.3.3", TrafficClass::Udp, 100));
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        let closed = acct.end_tick(S, &mut deltas);
        let w: Vec<_> = closed.watched().collect();
        assert_eq!(w.len(), 1);
        let (id, addr, st) = w[0];
        assert_eq!(addr, ip("10.0.0.2"));
        assert_eq!(closed.record(id).unwrap().ip.ip(), addr);
        assert_eq!(st.packets(), 10);
        assert_eq!(st.unique_sources(), 4);
        assert_eq!(st.top_dst_ports(1), vec![(53, 10)]);
        for (s, d) in shards.iter_mut().zip(deltas) {
            s.recycle(d);
        }

        // Still watched: stats restart every tick. Then unwatched.
        shards[0].account(&pkt("1.1.1.1", "10.0.0.2", TrafficClass::Syn, 60));
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        let closed = acct.end_tick(2 * S, &mut deltas);
        assert_eq!(closed.watched().next().unwrap().2.packets(), 1);
        let empty = acct.set_watch([]);
        assert!(empty.is_empty());
        for (s, d) in shards.iter_mut().zip(deltas) {
            s.recycle(d);
            s.install_watch(empty.clone());
        }
        shards[0].account(&pkt("1.1.1.1", "10.0.0.2", TrafficClass::Syn, 60));
        assert_eq!(shards[0].current().watched().count(), 0);
        let mut deltas: Vec<TickDelta> = shards.iter_mut().map(Shard::take_tick).collect();
        assert_eq!(acct.end_tick(3 * S, &mut deltas).watched().count(), 0);
    }

    #[test]
    fn batch_equals_per_packet() {
        // Every class, both directions, IPv4 and IPv6, amplification, watched targets, a
        // tracked-IP limit with evictions, and spilled cells.
        let addrs = [
            "10.0.0.1",
            "10.0.0.2",
            "10.0.0.3",
            "10.0.1.9",
            "1.1.1.1",
            "2001:db8::1",
            "2001:db8::2",
            "2001:db9::1",
        ];
        let mut pkts = Vec::new();
        let mut r = 0x1234_5678_9abc_def1u64;
        for i in 0..3000u32 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let (a, b) = (addrs[(r % 5) as usize], addrs[(r >> 8) as usize % 5]);
            let (a, b) = if i % 7 == 0 {
                (
                    addrs[5 + (r >> 16) as usize % 3],
                    addrs[5 + (r >> 20) as usize % 3],
                )
            } else {
                (a, b)
            };
            let class = TrafficClass::ALL[(r >> 24) as usize % TrafficClass::COUNT];
            let mut s = pkt(a, b, class, 40 + (r >> 32) as u32 % 1500);
            s.src_port = [53, 123, 80, 17, 19][(r >> 40) as usize % 5];
            if class == TrafficClass::Fragment && r.is_multiple_of(3) {
                s.frag = Fragment::First;
                s.has_l4 = true;
            }
            if (1000..1300).contains(&i) {
                // 300 × 4 GiB to one cell: spills (2^39 bytes per packed cell).
                s = pkt("1.1.1.1", "10.0.0.1", TrafficClass::Udp, u32::MAX);
                s.src_port = 53;
            }
            if i % 97 == 0 {
                s.ip_version = 0;
            }
            pkts.push(s);
        }
        for limit in [None, Some(2), Some(4)] {
            let mut m = Monitor::prefixes(
                PrefixTable::new(
                    [("10.0.0.0/16", 0), ("2001:db8::/32", 1)]
                        .map(|(n, g)| (n.parse().unwrap(), GroupId(g))),
                )
                .unwrap(),
            );
            if let Some(l) = limit {
                m = m.with_ip_limit(l);
            }
            let m = Arc::new(m);
            let run = |batch: Option<usize>| {
                let mut shard = Shard::new(m.clone());
                let mut acct = Accounting::new(m.clone(), tick_len(S));
                let mut out = Vec::new();
                for (t, tick) in pkts.chunks(1000).enumerate() {
                    match batch {
                        None => tick.iter().for_each(|s| shard.account(s)),
                        Some(n) => tick.chunks(n).for_each(|b| shard.account_batch(b)),
                    }
                    let mut d = [shard.take_tick()];
                    let closed = acct.end_tick(t as u64 * S, &mut d);
                    let ips: Vec<_> = closed.ips().map(|t| (t.id, *t.counters, *t.amp)).collect();
                    let watched: Vec<_> = closed
                        .watched()
                        .map(|(id, _, s)| (id, s.packets(), s.unique_sources()))
                        .collect();
                    out.push((ips, watched, *closed.stats));
                    acct.set_watch(addrs.iter().map(|a| ip(a)));
                    let [d] = d;
                    shard.rearm(d, &acct.rearm());
                }
                (out, acct.report(usize::MAX))
            };
            let reference = run(None);
            assert!(reference.0[0].2.overflow.packets > 0 || limit.is_none());
            let big = reference.1.top.iter().map(|r| r.bytes_in).max().unwrap();
            assert!(big > 290 * u64::from(u32::MAX), "{big}");
            assert!(reference.0[1].1.iter().any(|w| w.1 > 0));
            for n in [1, 3, 32, 33, 256, 1000] {
                assert_eq!(run(Some(n)), reference, "limit {limit:?}, batch {n}");
            }
        }
    }

    #[test]
    fn packets_before_ids_come_back_count_the_same() {
        // A live worker keeps accounting while the merger closes its last tick, so a tick's
        // new addresses meet packets of the next tick before their ids come back (in replay a
        // barrier sits between the two). Each tick's counters and amplification counters must
        // come out the same either way, while hundreds of addresses are learnt.
        let m = prefixes(&[("10.0.0.0/16", 1)]);
        let mut ticks: Vec<Vec<PacketSummary>> = Vec::new();
        let mut r = 0x9e37_79b9_7f4a_7c15u64;
        for t in 0..6u32 {
            let mut tick = Vec::new();
            for i in 0..2000u32 {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                // Addresses come in waves: each tick reaches further into the prefix.
                let n = 100 + 150 * t;
                let dst = format!(
                    "10.0.{}.{}",
                    (r % u64::from(n)) / 250,
                    (r % u64::from(n)) % 250
                );
                let src = if i % 5 == 0 {
                    format!("10.0.9.{}", (r >> 20) % 200)
                } else {
                    "198.51.100.1".to_string()
                };
                let class = [TrafficClass::Udp, TrafficClass::Syn, TrafficClass::Icmp]
                    [(r >> 40) as usize % 3];
                let mut p = pkt(&src, &dst, class, 60 + (r >> 50) as u32 % 1400);
                if class == TrafficClass::Udp && i % 3 == 0 {
                    p.src_port = 53;
                }
                tick.push(p);
            }
            ticks.push(tick);
        }
        type Tick = Vec<(IpId, IpCounters, AmpCounters)>;
        let run = |live: bool| -> Vec<Tick> {
            let mut shard = Shard::new(m.clone());
            let mut acct = Accounting::new(m.clone(), tick_len(S));
            let mut back: Option<TickDelta> = None;
            let mut out = Vec::new();
            for (t, tick) in ticks.iter().enumerate() {
                let (early, late) = tick.split_at(tick.len() / 2);
                shard.account_batch(early);
                if let Some(d) = back.take() {
                    shard.recycle(d);
                }
                shard.account_batch(late);
                let mut d = [shard.take_tick()];
                let closed = acct.end_tick(t as u64 * S, &mut d);
                out.push(closed.ips().map(|x| (x.id, *x.counters, *x.amp)).collect());
                let [d] = d;
                if live {
                    back = Some(d);
                } else {
                    shard.recycle(d);
                }
            }
            out
        };
        let barrier = run(false);
        assert!(barrier.last().unwrap().len() > 500);
        assert_eq!(run(true), barrier);
    }

    #[test]
    fn shards_forget_addresses_the_merger_does_not_admit() {
        // After a reload the shards may still run an older, wider monitor for a tick: the
        // merger turns their new addresses outside its own prefixes away, and the shards must
        // not keep them in their index (it would grow with every such address).
        let wide = prefixes(&[("10.0.0.0/8", 1)]);
        let narrow = prefixes(&[("10.0.0.0/16", 1)]);
        let mut shard = Shard::new(wide);
        let mut acct = Accounting::new(narrow, tick_len(S));
        shard.account(&pkt("198.51.100.1", "10.0.0.2", TrafficClass::Udp, 100));
        close(&mut acct, std::slice::from_mut(&mut shard), 0);
        for i in 0..200u32 {
            let dst = format!("10.{}.0.{}", 1 + i / 100, i % 100);
            shard.account(&pkt("198.51.100.1", &dst, TrafficClass::Udp, 100));
        }
        shard.account(&pkt("198.51.100.1", "10.0.0.1", TrafficClass::Udp, 100));
        close(&mut acct, std::slice::from_mut(&mut shard), S);
        assert_eq!(acct.tracked(), 2);
        assert_eq!(shard.indexed(), 2);
    }

    #[test]
    fn handles_are_send() {
        fn is_send<T: Send>() {}
        is_send::<Shard>();
        is_send::<TickDelta>();
        is_send::<Accounting>();
        is_send::<Rearm>();
        is_send::<Arc<WatchSet>>();
    }
}
