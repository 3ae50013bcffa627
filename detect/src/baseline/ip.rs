//! One IP's sketch ([`IpBaseline`]), its input ([`TickSample`]) and its outputs
//! ([`Thresholds`], [`Exceeded`]).

use surgewatch_pipeline::TrafficClass;

use super::quant::{decode_rate, decode_units, encode_f64_units, encode_units, MAX_CODE, SCALE};
use super::{BaselinePolicy, Shape, K_MAX};
use surgewatch_per_ip::Direction;
use surgewatch_per_ip::{IpCounters, PacketsBytes};

/// Bit of the total in masks ([`Exceeded`]); bits `0..9` are [`TrafficClass::index`].
const TOTAL_BIT: u16 = 1 << TrafficClass::COUNT;
/// Bits of the classes.
const CLASS_BITS: u16 = TOTAL_BIT - 1;
/// Index of the total in per-series arrays.
const TOTAL: usize = TrafficClass::COUNT;

/// One tick of inbound traffic of one IP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TickSample {
    /// Inbound packets and bytes per class, indexed by [`TrafficClass::index`].
    pub classes: [PacketsBytes; TrafficClass::COUNT],
    /// Length of the tick in nanoseconds (0 is treated as 1).
    pub tick_ns: u64,
}

impl TickSample {
    /// An empty (idle) sample.
    pub fn new(tick_ns: u64) -> Self {
        TickSample {
            classes: [PacketsBytes::default(); TrafficClass::COUNT],
            tick_ns,
        }
    }

    /// The inbound counters of one IP's tick.
    pub fn from_counters(counters: &IpCounters, tick_ns: u64) -> Self {
        TickSample {
            classes: counters.by_dir[Direction::In.index()],
            tick_ns,
        }
    }

    /// Adds packets and bytes to a class.
    pub fn add(&mut self, class: TrafficClass, packets: u64, bytes: u64) {
        let c = &mut self.classes[class.index()];
        c.packets = c.packets.saturating_add(packets);
        c.bytes = c.bytes.saturating_add(bytes);
    }

    /// Sum over classes.
    pub fn total(&self) -> PacketsBytes {
        let mut t = PacketsBytes::default();
        for c in &self.classes {
            t.packets = t.packets.saturating_add(c.packets);
            t.bytes = t.bytes.saturating_add(c.bytes);
        }
        t
    }

    /// The rates of one class: `packets × 1e9 / tick_ns` pps, `bytes × 8 × 1e9 / tick_ns` bps.
    pub fn rates(&self, class: TrafficClass) -> Rates {
        let per_sec = 1e9 / self.tick_ns.max(1) as f64;
        let c = self.classes[class.index()];
        Rates {
            pps: c.packets as f64 * per_sec,
            bps: c.bytes as f64 * 8.0 * per_sec,
        }
    }

    /// Bitmask of classes with traffic.
    #[inline]
    fn active_mask(&self) -> u16 {
        let mut m = 0u16;
        for (i, c) in self.classes.iter().enumerate() {
            m |= u16::from((c.packets | c.bytes) != 0) << i;
        }
        m
    }
}

/// A pair of rates: packets per second and bits per second.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// Packets per second.
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

impl Rates {
    fn from_codes((pps, bps): (u16, u16)) -> Self {
        Rates {
            pps: decode_rate(pps),
            bps: decode_rate(bps),
        }
    }
}

/// Which series of an IP: one class or the total over all classes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Series {
    /// One traffic class.
    Class(TrafficClass),
    /// All classes together.
    Total,
}

/// Thresholds in force for one IP: a rate at or above one of them (and above zero) is over.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Per class, indexed by [`TrafficClass::index`].
    pub classes: [Rates; TrafficClass::COUNT],
    /// For the total over all classes.
    pub total: Rates,
}

impl Thresholds {
    /// The same thresholds for every class and the total.
    pub fn uniform(r: Rates) -> Self {
        Thresholds {
            classes: [r; TrafficClass::COUNT],
            total: r,
        }
    }

    /// The thresholds of one series.
    pub fn get(&self, series: Series) -> Rates {
        match series {
            Series::Class(c) => self.classes[c.index()],
            Series::Total => self.total,
        }
    }
}

/// Which series of a sample are at or above their thresholds: two bitmasks (pps, bps) with
/// bit [`TrafficClass::index`] per class and bit 9 for the total.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Exceeded {
    /// Series whose pps is over.
    pub pps: u16,
    /// Series whose bps is over.
    pub bps: u16,
}

impl Exceeded {
    /// Whether anything is over.
    #[inline]
    pub fn any(self) -> bool {
        (self.pps | self.bps) != 0
    }

    /// Whether a series is over in pps or bps.
    #[inline]
    pub fn is_over(self, series: Series) -> bool {
        let bit = match series {
            Series::Class(c) => 1 << c.index(),
            Series::Total => TOTAL_BIT,
        };
        (self.pps | self.bps) & bit != 0
    }

    /// Classes over in pps or bps, in index order.
    pub fn classes(self) -> impl Iterator<Item = TrafficClass> {
        let m = (self.pps | self.bps) & CLASS_BITS;
        TrafficClass::ALL
            .into_iter()
            .filter(move |c| m & (1 << c.index()) != 0)
    }
}

/// Which classes and total of `sample` are at or above `th` (and above zero), in pps or bps.
///
/// Rates and thresholds are compared as quantized codes (see the [module docs](super)),
/// exactly as [`IpBaseline::check`] does, so `exceeded(&b.thresholds(p), s) == b.check(p, s)`.
pub fn exceeded(th: &Thresholds, sample: &TickSample) -> Exceeded {
    let sc = SampleCodes::new(sample, sample.active_mask());
    let code = |r: f64| encode_f64_units(r * SCALE);
    let mut ex = Exceeded::default();
    for (i, t) in th.classes.iter().chain([&th.total]).enumerate() {
        ex.pps |= u16::from(over(sc.pps[i], code(t.pps))) << i;
        ex.bps |= u16::from(over(sc.bps[i], code(t.bps))) << i;
    }
    ex
}

/// Over: a non-zero rate at or above the threshold.
#[inline(always)]
fn over(rate: u16, threshold: u16) -> bool {
    rate != 0 && rate >= threshold
}

/// How a sample's counts become rate units (1/16 per second).
#[derive(Copy, Clone)]
enum UnitScale {
    /// The tick divides 16 s: exact integer multipliers (1 s ticks: 16 and 128).
    Int { pps: u64, bps: u64 },
    /// Any other tick length.
    Float { pps: f64, bps: f64 },
}

impl UnitScale {
    #[inline(always)]
    fn of(tick_ns: u64) -> Self {
        const UNIT_NS: u64 = SCALE as u64 * 1_000_000_000;
        if tick_ns == 1_000_000_000 {
            // The common case, without a division.
            return UnitScale::Int {
                pps: SCALE as u64,
                bps: SCALE as u64 * 8,
            };
        }
        let ns = tick_ns.max(1);
        if UNIT_NS.is_multiple_of(ns) {
            let m = UNIT_NS / ns;
            UnitScale::Int { pps: m, bps: m * 8 }
        } else {
            let f = UNIT_NS as f64 / ns as f64;
            UnitScale::Float {
                pps: f,
                bps: f * 8.0,
            }
        }
    }

    #[inline(always)]
    fn codes(self, packets: u64, bytes: u64) -> (u16, u16) {
        match self {
            UnitScale::Int { pps, bps } => (
                encode_units(packets.saturating_mul(pps)),
                encode_units(bytes.saturating_mul(bps)),
            ),
            UnitScale::Float { pps, bps } => (
                encode_f64_units(packets as f64 * pps),
                encode_f64_units(bytes as f64 * bps),
            ),
        }
    }
}

/// A sample's rates as codes, indexed by [`TrafficClass::index`] and [`TOTAL`]. Only the
/// classes in `active` (and the total) are filled in.
struct SampleCodes {
    active: u16,
    pps: [u16; TOTAL + 1],
    bps: [u16; TOTAL + 1],
}

impl SampleCodes {
    #[inline(always)]
    fn new(sample: &TickSample, active: u16) -> Self {
        let scale = UnitScale::of(sample.tick_ns);
        let mut sc = SampleCodes {
            active,
            pps: [0; TOTAL + 1],
            bps: [0; TOTAL + 1],
        };
        let (mut tp, mut tb) = (0u64, 0u64);
        let mut m = active;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            let pb = sample.classes[c];
            tp = tp.saturating_add(pb.packets);
            tb = tb.saturating_add(pb.bytes);
            (sc.pps[c], sc.bps[c]) = scale.codes(pb.packets, pb.bytes);
        }
        (sc.pps[TOTAL], sc.bps[TOTAL]) = scale.codes(tp, tb);
        sc
    }
}

/// Number of stored series for `classes` active classes: pps and bps per class, plus the
/// total unless there is a single class (then the total *is* that class).
pub(crate) fn series_for_classes(classes: u32) -> usize {
    match classes {
        0 => 0,
        1 => 2,
        n => 2 * (n as usize + 1),
    }
}

/// Length in `u16` of a sketch buffer: the threshold cache, then the ring of slots, each
/// holding for `j` in `0..k` the j-th largest code of every series
/// (`[cache; ns][slot][j; k][series; ns]`, so one row covers all series and inserting or
/// merging works on all series at once, as `u16` vectors).
pub(crate) fn buffer_len(shape: Shape, series: usize) -> usize {
    series * (1 + usize::from(shape.slots) * usize::from(shape.k))
}

#[inline]
fn rank(mask: u16, class: u32) -> usize {
    (mask & ((1u16 << class) - 1)).count_ones() as usize
}

/// Most series an IP can have: pps and bps of 9 classes and of the total.
const MAX_SERIES: usize = 2 * (TrafficClass::COUNT + 1);

/// Inserts one code per series (`v`, zero for "no traffic", a no-op) into a slot of `k`
/// rows of `N` series: for each row, keep the larger and carry the smaller down. Branchless,
/// and with `N` known the lanes vectorize.
#[inline(always)]
fn insert_row_n<const N: usize>(slot: &mut [u16], v: &mut [u16; MAX_SERIES], k: usize) {
    let Some(v) = v.first_chunk_mut::<N>() else {
        return;
    };
    for row in slot.chunks_exact_mut(N).take(k) {
        if let Some(r) = row.first_chunk_mut::<N>() {
            for i in 0..N {
                let hi = r[i].max(v[i]);
                v[i] = r[i].min(v[i]);
                r[i] = hi;
            }
        }
    }
}

/// [`insert_row_n`] for the runtime series count (always one of 2, 6, 8, ..., 20).
#[inline]
fn insert_row(slot: &mut [u16], v: &mut [u16; MAX_SERIES], ns: usize, k: usize) {
    match ns {
        2 => insert_row_n::<2>(slot, v, k),
        6 => insert_row_n::<6>(slot, v, k),
        8 => insert_row_n::<8>(slot, v, k),
        10 => insert_row_n::<10>(slot, v, k),
        12 => insert_row_n::<12>(slot, v, k),
        14 => insert_row_n::<14>(slot, v, k),
        16 => insert_row_n::<16>(slot, v, k),
        18 => insert_row_n::<18>(slot, v, k),
        20 => insert_row_n::<20>(slot, v, k),
        _ => {}
    }
}

/// The k-th largest code of series `s` over all ring slots: exact, since each slot keeps its
/// own k largest.
fn kth_largest<const K: usize>(ring: &[u16], ns: usize, s: usize) -> u16 {
    let mut top = [0u16; K];
    for slot in ring.chunks_exact(ns * K) {
        for row in slot.chunks_exact(ns) {
            let mut v = row.get(s).copied().unwrap_or(0);
            for t in &mut top {
                let hi = (*t).max(v);
                v = (*t).min(v);
                *t = hi;
            }
        }
    }
    top[K - 1]
}

/// Recomputes the threshold cache from the ring, merging every row into a running top-`k`
/// per series, all `N` series at once (series `s` is pps when even, bps when odd).
#[inline(always)]
fn recompute_n<const N: usize>(cache: &mut [u16], ring: &[u16], k: usize, policy: &BaselinePolicy) {
    let mut top = [[0u16; N]; K_MAX];
    let top = &mut top[..k.min(K_MAX)];
    for row in ring.chunks_exact(N) {
        let Some(row) = row.first_chunk::<N>() else {
            continue;
        };
        let mut v = *row;
        for t in top.iter_mut() {
            for i in 0..N {
                let hi = t[i].max(v[i]);
                v[i] = t[i].min(v[i]);
                t[i] = hi;
            }
        }
    }
    let Some(kth) = top.last() else {
        return;
    };
    for (s, (out, &kth)) in cache.iter_mut().zip(kth).enumerate() {
        let floor = if s % 2 == 0 {
            policy.floor_code.0
        } else {
            policy.floor_code.1
        };
        *out = threshold_code(policy, kth, floor);
    }
}

/// [`recompute_n`] for the runtime series count.
fn recompute_cache(cache: &mut [u16], ring: &[u16], k: usize, policy: &BaselinePolicy) {
    match cache.len() {
        2 => recompute_n::<2>(cache, ring, k, policy),
        6 => recompute_n::<6>(cache, ring, k, policy),
        8 => recompute_n::<8>(cache, ring, k, policy),
        10 => recompute_n::<10>(cache, ring, k, policy),
        12 => recompute_n::<12>(cache, ring, k, policy),
        14 => recompute_n::<14>(cache, ring, k, policy),
        16 => recompute_n::<16>(cache, ring, k, policy),
        18 => recompute_n::<18>(cache, ring, k, policy),
        20 => recompute_n::<20>(cache, ring, k, policy),
        _ => {}
    }
}

/// The threshold code of a series from its percentile code: `max(floor, p × multiplier)`,
/// with the multiplier in 16.16 fixed point.
#[inline]
fn threshold_code(policy: &BaselinePolicy, kth: u16, floor: u16) -> u16 {
    let units = (u128::from(decode_units(kth)) * u128::from(policy.multiplier_q16)) >> 16;
    encode_units(u64::try_from(units).unwrap_or(u64::MAX)).max(floor)
}

/// The smallest code whose threshold `max(floor, code × multiplier)` is above `floor`
/// (`MAX_CODE + 1` if none is): codes under it leave every threshold at the floor.
pub(crate) fn cut_code(policy: &BaselinePolicy, floor: u16) -> u32 {
    // `threshold_code` is monotone in the code: binary search for the first one above.
    let (mut lo, mut hi) = (0u32, u32::from(MAX_CODE) + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if threshold_code(policy, mid as u16, floor) > floor {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// See [`BaselinePolicy::quiet_counts`].
pub(crate) fn quiet_counts(policy: &BaselinePolicy, tick_ns: u64) -> (u64, u64) {
    let scale = UnitScale::of(tick_ns);
    // The first count whose code reaches `cut` (codes are monotone in the count).
    let first = |cut: u32, code: &dyn Fn(u64) -> u16| {
        let (mut lo, mut hi) = (0u64, u64::MAX);
        if u32::from(code(hi)) < cut {
            return u64::MAX;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u32::from(code(mid)) >= cut {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    };
    (
        first(policy.cut_code.0, &|p| scale.codes(p, 0).0),
        first(policy.cut_code.1, &|b| scale.codes(0, b).1),
    )
}

/// Runs `$f::<K>(args)` for the runtime `k` (1..=8; the shape guarantees the range).
macro_rules! with_k {
    ($k:expr, $f:ident($($arg:expr),*)) => {
        match $k {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            7 => $f::<7>($($arg),*),
            _ => $f::<8>($($arg),*),
        }
    };
}

/// The learned baseline of one IP: a sliding-window top-k sketch per series (see the
/// [module docs](super)), the cached thresholds and the IP's age.
///
/// 40 bytes inline plus one heap block for the classes that ever had traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpBaseline {
    /// `[threshold cache; ns][slot; slots][j; k][series; ns]`, `None` until a class has
    /// traffic (see [`buffer_len`]).
    /// Series `2r`/`2r + 1` are pps/bps of the stored class of rank `r`, then the total.
    pub(crate) buf: Option<Box<[u16]>>,
    /// Ticks observed (learned or not, idle included), saturating.
    pub(crate) age: u32,
    /// Samples that entered the sketch (idle included), saturating; resets with the shape.
    pub(crate) learned: u32,
    /// Samples learned since the last periodic recomputation (starts at the phase).
    pub(crate) since: u16,
    /// Samples in the current sub-window.
    pub(crate) fill: u16,
    /// Classes with a series (bits `0..9`).
    pub(crate) mask: u16,
    /// Shape of `buf`; all zero before the first observation.
    pub(crate) shape: Shape,
    /// Ring slot of the current sub-window.
    pub(crate) cur: u8,
    /// Series stored (`series_for_classes(mask.count_ones())`); the total is at `ns - 2`.
    pub(crate) ns: u8,
}

impl IpBaseline {
    /// An IP never observed: warm-up thresholds, no heap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Like [`new`](Self::new), with the periodic recomputation offset by `phase` ticks, so
    /// that IPs created together do not all recompute in the same tick (use e.g. the IP id).
    pub fn with_phase(policy: &BaselinePolicy, phase: u32) -> Self {
        IpBaseline {
            since: (phase % policy.recompute_ticks) as u16,
            ..Self::default()
        }
    }

    /// Hints the CPU to fetch the threshold cache and the current sub-window's rows.
    #[inline]
    pub(crate) fn prefetch(&self) {
        if let Some(b) = self.buf.as_deref() {
            let ns = self.series_count();
            let row = ns + usize::from(self.cur) * ns * usize::from(self.shape.k);
            let k = usize::from(self.shape.k);
            surgewatch_per_ip::mem::prefetch(b.as_ptr());
            surgewatch_per_ip::mem::prefetch(b.as_ptr().wrapping_add(row));
            surgewatch_per_ip::mem::prefetch(b.as_ptr().wrapping_add(row + ns * k - 1));
        }
    }

    /// Ticks this IP has been observed for (learned, paused or idle), saturating at `u32::MAX`.
    pub fn age_ticks(&self) -> u32 {
        self.age
    }

    /// Samples learned so far (idle ticks included, paused ticks not). Warm-up counts these.
    pub fn learned_ticks(&self) -> u32 {
        self.learned
    }

    /// Whether the learned baseline is in force: at least `warmup_ticks` samples learned with
    /// this policy's sketch shape.
    #[inline]
    pub fn is_warm(&self, policy: &BaselinePolicy) -> bool {
        self.learned >= policy.warmup_ticks && self.shape == policy.shape
    }

    /// Classes with a series (every class active in a loud sample so far), in index order.
    pub fn active_classes(&self) -> impl Iterator<Item = TrafficClass> {
        let m = self.mask;
        TrafficClass::ALL
            .into_iter()
            .filter(move |c| m & (1 << c.index()) != 0)
    }

    /// Heap bytes held (before allocator overhead).
    pub fn heap_bytes(&self) -> usize {
        self.buf.as_ref().map_or(0, |b| b.len() * 2)
    }

    #[inline(always)]
    fn series_count(&self) -> usize {
        usize::from(self.ns)
    }

    /// Index of a series' pps code; its bps code follows. `None` if not stored.
    #[inline]
    fn series_index(&self, series: Series) -> Option<usize> {
        match series {
            Series::Class(c) => {
                let c = c.index() as u32;
                (self.mask & (1 << c) != 0).then(|| 2 * rank(self.mask, c))
            }
            // With one class the total is that class's series, at 0 = ns - 2 as well.
            Series::Total => self.series_count().checked_sub(2),
        }
    }

    /// Resets the sketch if it was built for another shape (a new IP, or a configuration
    /// change of its group). Age and phase survive.
    #[inline]
    fn conform(&mut self, policy: &BaselinePolicy) {
        if self.shape != policy.shape {
            *self = IpBaseline {
                age: self.age,
                since: self.since,
                shape: policy.shape,
                ..Self::default()
            };
        }
    }

    /// Accounts one tick of traffic. With `learning == false` (the IP is under attack) the
    /// sample is not learned and the sketch does not advance: the window stays the last
    /// `window_samples` *learned* samples, so an attack never enters it. Only the age grows.
    ///
    /// Allocates only when a class has traffic for the first time on this IP. A policy with
    /// another sketch shape than the previous call's resets the sketch (new warm-up).
    pub fn observe(&mut self, policy: &BaselinePolicy, sample: &TickSample, learning: bool) {
        let sc = SampleCodes::new(sample, sample.active_mask());
        self.observe_codes(policy, &sc, learning);
    }

    /// Which series of `sample` are over the thresholds in force
    /// (`exceeded(&self.thresholds(policy), sample)`, computed for the classes with traffic
    /// only): the per-tick detection check, a few integer compares per class.
    #[inline]
    pub fn check(&self, policy: &BaselinePolicy, sample: &TickSample) -> Exceeded {
        self.check_codes(policy, &SampleCodes::new(sample, sample.active_mask()))
    }

    /// [`check`](Self::check), then [`observe`](Self::observe) with
    /// `learning = learn(exceeded)`: the per-tick work for an IP with traffic, converting the
    /// sample's rates once. Returns what was exceeded.
    #[inline]
    pub fn check_and_observe(
        &mut self,
        policy: &BaselinePolicy,
        sample: &TickSample,
        learn: impl FnOnce(Exceeded) -> bool,
    ) -> Exceeded {
        let sc = SampleCodes::new(sample, sample.active_mask());
        let ex = self.check_codes(policy, &sc);
        self.observe_codes(policy, &sc, learn(ex));
        ex
    }

    /// [`check_and_observe`](Self::check_and_observe) where `learn` also sees the baseline
    /// as checked (before this sample is learned).
    #[inline]
    pub fn check_and_observe_with(
        &mut self,
        policy: &BaselinePolicy,
        sample: &TickSample,
        learn: impl FnOnce(&Self, Exceeded) -> bool,
    ) -> Exceeded {
        let sc = SampleCodes::new(sample, sample.active_mask());
        let ex = self.check_codes(policy, &sc);
        let learning = learn(self, ex);
        self.observe_codes(policy, &sc, learning);
        ex
    }

    #[inline]
    fn observe_codes(&mut self, policy: &BaselinePolicy, sc: &SampleCodes, learning: bool) {
        self.conform(policy);
        self.age = self.age.saturating_add(1);
        if !learning {
            return;
        }
        // A quiet sample (no series at its cut) is learned as an idle tick: it cannot raise a
        // threshold, and an IP that is only ever quiet never allocates a sketch.
        let loud = u32::from(sc.pps[TOTAL]) >= policy.cut_code.0
            || u32::from(sc.bps[TOTAL]) >= policy.cut_code.1;
        if loud && sc.active & !self.mask != 0 {
            self.grow(policy, self.mask | sc.active);
        }
        if loud && sc.active != 0 {
            let k = usize::from(self.shape.k);
            let ns = self.series_count();
            let start = ns + usize::from(self.cur) * ns * k;
            // One code per stored series, in series order; zero (a no-op) for no traffic.
            let mut v = [0u16; MAX_SERIES];
            let mut at = 0;
            let mut m = self.mask;
            while m != 0 {
                let c = m.trailing_zeros() as usize;
                m &= m - 1;
                v[at] = sc.pps[c];
                v[at + 1] = sc.bps[c];
                at += 2;
            }
            if at < ns {
                v[at] = sc.pps[TOTAL];
                v[at + 1] = sc.bps[TOTAL];
            }
            if let Some(slot) = self
                .buf
                .as_deref_mut()
                .and_then(|b| b.get_mut(start..start + ns * k))
            {
                insert_row(slot, &mut v, ns, k);
            }
        }
        self.advance_one(policy);
    }

    #[inline]
    fn check_codes(&self, policy: &BaselinePolicy, sc: &SampleCodes) -> Exceeded {
        let warm = self.is_warm(policy);
        let (fp, fb) = if warm {
            policy.floor_code
        } else {
            policy.warmup_code
        };
        // Threshold codes per class and the total; stored series override the fallback.
        let mut tp = [fp; TOTAL + 1];
        let mut tb = [fb; TOTAL + 1];
        let ns = self.series_count();
        if let (true, Some(cache)) = (warm, self.buf.as_deref().and_then(|b| b.get(..ns))) {
            let mut i = 0;
            let mut m = self.mask;
            while m != 0 {
                let c = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(&[p, b]) = cache.get(i..i + 2) {
                    (tp[c], tb[c]) = (p, b);
                }
                i += 2;
            }
            if let Some(&[p, b]) = cache.get(ns.wrapping_sub(2)..ns) {
                (tp[TOTAL], tb[TOTAL]) = (p, b);
            }
        }
        let mut ex = Exceeded::default();
        let mut m = sc.active | TOTAL_BIT;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            ex.pps |= u16::from(over(sc.pps[i], tp[i])) << i;
            ex.bps |= u16::from(over(sc.bps[i], tb[i])) << i;
        }
        ex
    }

    /// Moves the sketch one learned sample forward (the sample, if any, is already in).
    #[inline]
    fn advance_one(&mut self, policy: &BaselinePolicy) {
        self.learned = self.learned.saturating_add(1);
        self.fill += 1;
        if self.fill >= self.shape.sub_len {
            self.fill = 0;
            self.cur += 1;
            if self.cur >= self.shape.slots {
                self.cur = 0;
            }
            self.clear_slot(usize::from(self.cur));
        }
        self.since = self.since.saturating_add(1);
        if u32::from(self.since) >= policy.recompute_ticks {
            self.since = 0;
            self.recompute(policy);
        } else if self.learned == policy.warmup_ticks {
            self.recompute(policy);
        }
    }

    fn clear_slot(&mut self, slot: usize) {
        let ns = self.series_count();
        let k = usize::from(self.shape.k);
        if let Some(buf) = self.buf.as_deref_mut() {
            let start = ns + slot * ns * k;
            if let Some(s) = buf.get_mut(start..start + ns * k) {
                s.fill(0);
            }
        }
    }

    /// Accounts `n_ticks` ticks without traffic (zero samples, learned) in O(sub-windows),
    /// whatever `n_ticks` is. Same result as `n_ticks` calls of [`observe`](Self::observe)
    /// with an empty sample and `learning == true`, with the same recomputations except
    /// that several due within the gap collapse into one at its end.
    pub fn observe_idle(&mut self, policy: &BaselinePolicy, n_ticks: u64) {
        if n_ticks == 0 {
            return;
        }
        self.conform(policy);
        let n32 = u32::try_from(n_ticks).unwrap_or(u32::MAX);
        self.age = self.age.saturating_add(n32);
        let before = self.learned;
        self.learned = self.learned.saturating_add(n32);

        let n = n_ticks.min(u64::MAX / 2);
        let slots = u64::from(self.shape.slots);
        let sub_len = u64::from(self.shape.sub_len);
        let total = u64::from(self.fill) + n;
        let rotations = total / sub_len;
        self.fill = (total % sub_len) as u16;
        if rotations >= slots {
            let ns = self.series_count();
            if let Some(ring) = self.buf.as_deref_mut().and_then(|b| b.get_mut(ns..)) {
                ring.fill(0);
            }
        } else {
            for i in 1..=rotations {
                self.clear_slot(((u64::from(self.cur) + i) % slots) as usize);
            }
        }
        self.cur = ((u64::from(self.cur) + rotations) % slots) as u8;

        let since = u64::from(self.since) + n;
        let r = u64::from(policy.recompute_ticks);
        let crossed_warmup = before < policy.warmup_ticks && self.learned >= policy.warmup_ticks;
        self.since = (since % r) as u16;
        if since >= r || crossed_warmup {
            self.recompute(policy);
        }
    }

    /// Recomputes the cached thresholds of every series now, from the sketch and `policy`'s
    /// multiplier and floors (normally done every `recompute_ticks` learned samples).
    pub fn recompute(&mut self, policy: &BaselinePolicy) {
        let ns = self.series_count();
        let k = usize::from(self.shape.k);
        let Some(buf) = self.buf.as_deref_mut() else {
            return;
        };
        if buf.len() != buffer_len(self.shape, ns) || !self.shape.is_valid() {
            return;
        }
        let (cache, ring) = buf.split_at_mut(ns);
        recompute_cache(cache, ring, k, policy);
    }

    /// Re-lays the buffer out for a larger class mask, keeping every existing series. New
    /// series start empty with their floors as thresholds.
    #[cold]
    fn grow(&mut self, policy: &BaselinePolicy, new_mask: u16) {
        let k = usize::from(self.shape.k);
        let slots = usize::from(self.shape.slots);
        let new_mask = new_mask & CLASS_BITS;
        let old_mask = self.mask;
        let old_ns = self.series_count();
        let new_classes = new_mask.count_ones();
        let new_ns = series_for_classes(new_classes);
        // For each new series pair, the old pair it continues.
        let mut src = [usize::MAX; 2 * (TrafficClass::COUNT + 1)];
        for c in 0..TrafficClass::COUNT as u32 {
            if new_mask & (1 << c) != 0 && old_mask & (1 << c) != 0 {
                src[2 * rank(new_mask, c)] = 2 * rank(old_mask, c);
            }
        }
        if new_classes >= 2 {
            src[new_ns - 2] = match old_mask.count_ones() {
                0 => usize::MAX,
                1 => 0, // the total was the single class's series
                n => 2 * n as usize,
            };
        }
        let mut nb = vec![0u16; buffer_len(self.shape, new_ns)].into_boxed_slice();
        for (s, th) in nb[..new_ns].iter_mut().enumerate() {
            *th = if s % 2 == 0 {
                policy.floor_code.0
            } else {
                policy.floor_code.1
            };
        }
        if let Some(ob) = self.buf.as_deref() {
            for n in 0..new_ns {
                let o = match src[n & !1] {
                    usize::MAX => continue,
                    o => o + (n & 1),
                };
                if o >= old_ns {
                    continue;
                }
                nb[n] = ob[o];
                for row in 0..slots * k {
                    nb[new_ns + row * new_ns + n] = ob[old_ns + row * old_ns + o];
                }
            }
        }
        self.buf = Some(nb);
        self.mask = new_mask;
        self.ns = new_ns as u8;
    }

    /// The percentile (pps, bps) of a series over the sketch's current window, computed now
    /// (O(sub-windows · k)); zero for a class that never had traffic.
    pub fn p99(&self, series: Series) -> Rates {
        let ns = self.series_count();
        let k = usize::from(self.shape.k);
        match (self.series_index(series), self.buf.as_deref()) {
            (Some(i), Some(buf)) if self.shape.is_valid() => {
                let ring = buf.get(ns..).unwrap_or(&[]);
                Rates::from_codes((
                    with_k!(k, kth_largest(ring, ns, i)),
                    with_k!(k, kth_largest(ring, ns, i + 1)),
                ))
            }
            _ => Rates::default(),
        }
    }

    /// Thresholds in force: `max(floor, static)` during warm-up, else
    /// `max(floor, percentile × multiplier)` as of the last recomputation, per class and for
    /// the total (a class that never had traffic is held to the floor). Values are quantized
    /// (within 0.05 %) exactly as [`check`](Self::check) compares them.
    pub fn thresholds(&self, policy: &BaselinePolicy) -> Thresholds {
        if !self.is_warm(policy) {
            return Thresholds::uniform(Rates::from_codes(policy.warmup_code));
        }
        let mut th = Thresholds::uniform(Rates::from_codes(policy.floor_code));
        let Some(buf) = self.buf.as_deref() else {
            return th;
        };
        let get = |i: usize| match buf.get(i..i + 2) {
            Some(&[p, b]) => Rates::from_codes((p, b)),
            _ => Rates::from_codes(policy.floor_code),
        };
        for c in self.active_classes() {
            if let Some(i) = self.series_index(Series::Class(c)) {
                th.classes[c.index()] = get(i);
            }
        }
        if let Some(i) = self.series_index(Series::Total) {
            th.total = get(i);
        }
        th
    }
}
