//! One IP's sketch ([`IpBaseline`]), its input ([`TickSample`]) and its outputs
//! ([`Thresholds`], [`Exceeded`]).

use surgewatch_pipeline::TrafficClass;

use super::quant::{decode_rate, encode_f64_units, SCALE};
use super::{BaselinePolicy, Shape, K_MAX};
use crate::counters::{IpCounters, PacketsBytes};
use crate::key::Direction;

/// Bit of the total in masks ([`Exceeded`]); bits `0..9` are [`TrafficClass::index`].
const TOTAL_BIT: u16 = 1 << TrafficClass::COUNT;
/// Bits of the classes.
const CLASS_BITS: u16 = TOTAL_BIT - 1;

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

    /// The rates of one class.
    pub fn rates(&self, class: TrafficClass) -> Rates {
        let (sp, sb) = self.scales(1.0);
        let c = self.classes[class.index()];
        Rates {
            pps: c.packets as f64 * sp,
            bps: c.bytes as f64 * sb,
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

    /// Multipliers turning packets into pps and bytes into bps, times `unit`.
    #[inline]
    fn scales(&self, unit: f64) -> (f64, f64) {
        let per_sec = 1e9 / self.tick_ns.max(1) as f64 * unit;
        (per_sec, per_sec * 8.0)
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
        (self.pps | self.bps) & series_bit(series) != 0
    }

    /// Classes over in pps or bps, in index order.
    pub fn classes(self) -> impl Iterator<Item = TrafficClass> {
        let m = (self.pps | self.bps) & CLASS_BITS;
        TrafficClass::ALL
            .into_iter()
            .filter(move |c| m & (1 << c.index()) != 0)
    }
}

fn series_bit(series: Series) -> u16 {
    match series {
        Series::Class(c) => 1 << c.index(),
        Series::Total => TOTAL_BIT,
    }
}

/// Which classes and total of `sample` are at or above `th` (and above zero), in pps or bps.
/// About twenty multiplications and comparisons.
#[inline]
pub fn exceeded(th: &Thresholds, sample: &TickSample) -> Exceeded {
    let (sp, sb) = sample.scales(1.0);
    let mut ex = Exceeded::default();
    for (i, (c, t)) in sample.classes.iter().zip(&th.classes).enumerate() {
        ex.pps |= u16::from(over(c.packets as f64 * sp, t.pps)) << i;
        ex.bps |= u16::from(over(c.bytes as f64 * sb, t.bps)) << i;
    }
    let total = sample.total();
    ex.pps |= u16::from(over(total.packets as f64 * sp, th.total.pps)) * TOTAL_BIT;
    ex.bps |= u16::from(over(total.bytes as f64 * sb, th.total.bps)) * TOTAL_BIT;
    ex
}

#[inline]
fn over(rate: f64, threshold: f64) -> bool {
    rate > 0.0 && rate >= threshold
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

/// Length in `u16` of a sketch buffer: the cached percentiles, then the ring of slots, each
/// holding `k` codes per series (`[cache; ns][slot][series][k]`).
pub(crate) fn buffer_len(shape: Shape, series: usize) -> usize {
    series * (1 + usize::from(shape.slots) * usize::from(shape.k))
}

#[inline]
fn rank(mask: u16, class: u32) -> usize {
    (mask & ((1u16 << class) - 1)).count_ones() as usize
}

/// Inserts `v` into the descending array `top`, dropping its smallest element. Branchless:
/// the value bubbles down as the smaller of each pair.
#[inline(always)]
fn insert_top(top: &mut [u16], mut v: u16) {
    for t in top {
        let hi = (*t).max(v);
        v = (*t).min(v);
        *t = hi;
    }
}

/// The k-th largest code of one series over all ring slots, for a compile-time `k`.
#[inline(always)]
fn kth_largest<const K: usize>(ring: &[u16], ns: usize, s: usize, slots: usize) -> u16 {
    let mut top = [0u16; K];
    for slot in 0..slots {
        let at = (slot * ns + s) * K;
        if let Some(vals) = ring.get(at..at + K) {
            for &v in vals {
                insert_top(&mut top, v);
            }
        }
    }
    top[K - 1]
}

/// Recomputes every series' cached k-th largest code.
fn recompute_cache<const K: usize>(cache: &mut [u16], ring: &[u16], slots: usize) {
    let ns = cache.len();
    for (s, out) in cache.iter_mut().enumerate() {
        *out = kth_largest::<K>(ring, ns, s, slots);
    }
}

/// The learned baseline of one IP: a sliding-window top-k sketch per series (see the
/// [module docs](super)), the cached percentiles and the IP's age.
///
/// 40 bytes inline plus one heap block for the classes that ever had traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpBaseline {
    /// `[cache; ns][slot; slots][series; ns][k]`, `None` until a class has traffic.
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
}

impl IpBaseline {
    /// An IP never observed: static thresholds, no heap.
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

    /// Classes that ever had traffic (and so have a series), in index order.
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

    #[inline]
    fn series_count(&self) -> usize {
        series_for_classes((self.mask & CLASS_BITS).count_ones())
    }

    /// Index of a series' pps code; its bps code follows. `None` if not stored.
    #[inline]
    fn series_index(&self, series: Series) -> Option<usize> {
        let classes = self.mask.count_ones();
        match series {
            Series::Class(c) => {
                let c = c.index() as u32;
                (self.mask & (1 << c) != 0).then(|| 2 * rank(self.mask, c))
            }
            Series::Total => match classes {
                0 => None,
                1 => Some(0),
                n => Some(2 * n as usize),
            },
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
        self.conform(policy);
        self.age = self.age.saturating_add(1);
        if !learning {
            return;
        }
        let active = sample.active_mask();
        if active & !self.mask != 0 {
            self.grow(self.mask | active);
        }
        if active != 0 {
            self.insert_sample(sample, active);
        }
        self.advance_one(policy);
    }

    fn insert_sample(&mut self, sample: &TickSample, active: u16) {
        let k = usize::from(self.shape.k);
        let ns = self.series_count();
        let mask = self.mask;
        let Some(buf) = self.buf.as_deref_mut() else {
            return;
        };
        let start = ns + usize::from(self.cur) * ns * k;
        let Some(slot) = buf.get_mut(start..start + ns * k) else {
            return;
        };
        let (sp, sb) = sample.scales(SCALE);
        let (mut tp, mut tb) = (0u64, 0u64);
        // Walk the stored classes in order; the series index is their running rank.
        let mut at = 0;
        let mut m = mask;
        while m != 0 {
            let c = m.trailing_zeros() as usize;
            m &= m - 1;
            if active & (1 << c) != 0 {
                let pb = sample.classes[c];
                tp = tp.saturating_add(pb.packets);
                tb = tb.saturating_add(pb.bytes);
                insert_top(
                    &mut slot[at..at + k],
                    encode_f64_units(pb.packets as f64 * sp),
                );
                insert_top(
                    &mut slot[at + k..at + 2 * k],
                    encode_f64_units(pb.bytes as f64 * sb),
                );
            }
            at += 2 * k;
        }
        if ns > 2 {
            let at = (ns - 2) * k;
            insert_top(&mut slot[at..at + k], encode_f64_units(tp as f64 * sp));
            insert_top(
                &mut slot[at + k..at + 2 * k],
                encode_f64_units(tb as f64 * sb),
            );
        }
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
            self.recompute();
        } else if self.learned == policy.warmup_ticks {
            self.recompute();
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

        let slots = u64::from(self.shape.slots);
        let total = u64::from(self.fill) + n_ticks.min(u64::MAX / 2);
        let sub_len = u64::from(self.shape.sub_len);
        let rotations = total / sub_len;
        self.fill = (total % sub_len) as u16;
        if rotations >= slots {
            let ns = self.series_count();
            if let Some(buf) = self.buf.as_deref_mut() {
                buf[ns..].fill(0);
            }
        } else {
            for i in 1..=rotations {
                self.clear_slot(((u64::from(self.cur) + i) % slots) as usize);
            }
        }
        self.cur = ((u64::from(self.cur) + rotations) % slots) as u8;

        let since = u64::from(self.since) + n_ticks.min(u64::MAX / 2);
        let r = u64::from(policy.recompute_ticks);
        let crossed_warmup = before < policy.warmup_ticks && self.learned >= policy.warmup_ticks;
        self.since = (since % r) as u16;
        if since >= r || crossed_warmup {
            self.recompute();
        }
    }

    /// Recomputes the cached percentile of every series now (normally done every
    /// `recompute_ticks` learned samples).
    pub fn recompute(&mut self) {
        let ns = self.series_count();
        let k = usize::from(self.shape.k);
        let slots = usize::from(self.shape.slots);
        let Some(buf) = self.buf.as_deref_mut() else {
            return;
        };
        if k == 0 || k > K_MAX || buf.len() != buffer_len(self.shape, ns) {
            return;
        }
        let (cache, ring) = buf.split_at_mut(ns);
        match k {
            1 => recompute_cache::<1>(cache, ring, slots),
            2 => recompute_cache::<2>(cache, ring, slots),
            3 => recompute_cache::<3>(cache, ring, slots),
            4 => recompute_cache::<4>(cache, ring, slots),
            5 => recompute_cache::<5>(cache, ring, slots),
            6 => recompute_cache::<6>(cache, ring, slots),
            7 => recompute_cache::<7>(cache, ring, slots),
            _ => recompute_cache::<8>(cache, ring, slots),
        }
    }

    /// Re-lays the buffer out for a larger class mask, keeping every existing series.
    #[cold]
    fn grow(&mut self, new_mask: u16) {
        let k = usize::from(self.shape.k);
        let slots = usize::from(self.shape.slots);
        let old_mask = self.mask;
        let old_ns = self.series_count();
        let new_classes = (new_mask & CLASS_BITS).count_ones();
        let new_ns = series_for_classes(new_classes);
        // For each new series, the old series it continues (pps index; bps is + 1).
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
        if let Some(ob) = self.buf.as_deref() {
            for ns_i in (0..new_ns).step_by(2) {
                let os = src[ns_i];
                if os == usize::MAX || os + 1 >= old_ns {
                    continue;
                }
                for d in 0..2 {
                    let (o, n) = (os + d, ns_i + d);
                    nb[n] = ob[o];
                    for slot in 0..slots {
                        let oa = old_ns + (slot * old_ns + o) * k;
                        let na = new_ns + (slot * new_ns + n) * k;
                        nb[na..na + k].copy_from_slice(&ob[oa..oa + k]);
                    }
                }
            }
        }
        self.buf = Some(nb);
        self.mask = new_mask & CLASS_BITS;
    }

    /// The percentile (pps, bps) of a series as of the last recomputation; zero for a
    /// class that never had traffic.
    pub fn p99(&self, series: Series) -> Rates {
        match (self.series_index(series), self.buf.as_deref()) {
            (Some(i), Some(buf)) if i + 1 < buf.len() => Rates {
                pps: decode_rate(buf[i]),
                bps: decode_rate(buf[i + 1]),
            },
            _ => Rates::default(),
        }
    }

    #[inline]
    fn learned_threshold(&self, policy: &BaselinePolicy, series: Series) -> Rates {
        let p = self.p99(series);
        Rates {
            pps: policy.floor.pps.max(p.pps * policy.multiplier),
            bps: policy.floor.bps.max(p.bps * policy.multiplier),
        }
    }

    /// Thresholds in force: `max(floor, static)` during warm-up, else
    /// `max(floor, percentile × multiplier)` per class and for the total (a class that never
    /// had traffic has percentile 0, so its floor).
    pub fn thresholds(&self, policy: &BaselinePolicy) -> Thresholds {
        if !self.is_warm(policy) {
            return Thresholds::uniform(policy.warmup_threshold);
        }
        let mut th = Thresholds::uniform(policy.floor);
        for c in self.active_classes() {
            th.classes[c.index()] = self.learned_threshold(policy, Series::Class(c));
        }
        th.total = self.learned_threshold(policy, Series::Total);
        th
    }

    /// `exceeded(&self.thresholds(policy), sample)`, computed only for the classes with
    /// traffic: the per-tick detection check.
    #[inline]
    pub fn check(&self, policy: &BaselinePolicy, sample: &TickSample) -> Exceeded {
        let warm = self.is_warm(policy);
        let (sp, sb) = sample.scales(1.0);
        let mut ex = Exceeded::default();
        let mut m = sample.active_mask();
        let (mut tp, mut tb) = (0u64, 0u64);
        while m != 0 {
            let c = m.trailing_zeros();
            m &= m - 1;
            let pb = sample.classes[c as usize];
            tp = tp.saturating_add(pb.packets);
            tb = tb.saturating_add(pb.bytes);
            let th = if !warm {
                policy.warmup_threshold
            } else if self.mask & (1 << c) != 0 {
                self.learned_threshold(policy, Series::Class(TrafficClass::ALL[c as usize]))
            } else {
                policy.floor
            };
            ex.pps |= u16::from(over(pb.packets as f64 * sp, th.pps)) << c;
            ex.bps |= u16::from(over(pb.bytes as f64 * sb, th.bps)) << c;
        }
        let th = if warm {
            self.learned_threshold(policy, Series::Total)
        } else {
            policy.warmup_threshold
        };
        ex.pps |= u16::from(over(tp as f64 * sp, th.pps)) * TOTAL_BIT;
        ex.bps |= u16::from(over(tb as f64 * sb, th.bps)) * TOTAL_BIT;
        ex
    }
}
