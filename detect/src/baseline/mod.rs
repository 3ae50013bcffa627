//! Learned per-IP baselines: bounded-memory sliding-window percentiles, the thresholds they
//! imply, and a persistence codec.
//!
//! For every monitored IP, every [`TrafficClass`] and the total over all classes, the inbound
//! rate in pps and in bps is sampled once per tick. The baseline of a series is a high
//! percentile (default p99) of its last `window_samples` samples (default 300); the threshold
//! in force is `max(floor, baseline × multiplier)`, or `max(floor, static)` while the IP is in
//! warm-up. An idle tick is a zero sample. Learning pauses while the caller says the IP is
//! under attack, so an attack never inflates its own threshold.
//!
//! # The sketch
//! The p-th percentile of `W` samples is taken as their **k-th largest** value with
//! `k = ⌈W·(1 − p/100)⌉` (`k = 3` for p99 of 300: the value that at most two samples
//! exceed).
//!
//! The window is split into `S` sub-windows of `L = ⌈W/S⌉` samples (default 5 × 60). Per
//! series the sketch keeps, for each of the last `S` complete sub-windows **and** the one being
//! filled, the k largest samples (sorted, as 16-bit log-quantized codes, see below). Any
//! sample among the k largest of the whole window is among the k largest of its own
//! sub-window, so the k-th largest of the union of the kept values **is exactly the k-th
//! largest of the window**, up to quantization. The codes of a slot are stored row by row
//! (the j-th largest of every series side by side), so an observation is `k` branchless
//! lane-wise max/min steps over all of the IP's series at once, and a recomputation (every
//! `recompute_ticks`) merges the `(S + 1)·k` rows the same way, then caches the resulting
//! thresholds as codes: the per-tick check is a couple of integer compares per class with
//! traffic.
//!
//! ## Error bound
//! * **Quantization**: a rate is rounded to 1/16 per second, then to 11 significant bits
//!   (a float-like code with a 10-bit mantissa): relative error ≤ 2⁻¹¹ ≈ 0.049 % at ≥ 128/s,
//!   absolute error ≤ 1/32 per second below. Codes are monotone, so rates are compared with
//!   thresholds as codes; a rate within 0.05 % of its threshold may fall either side.
//!   The tests measure the end-to-end error against an exact percentile at ≤ 0.049 %.
//! * **Sliding granularity**: the window slides by whole sub-windows. At a recomputation the
//!   estimate covers the last `n = S·L + f` learned samples, where `f ∈ [0, L)` is how many
//!   samples the current sub-window holds: at least `W`, at most `W + L − 1` (300..=359 by
//!   default). With a fixed `k` this is the exact `100·(1 − k/n)` percentile, i.e. between
//!   p99.0 and p99.16 for the defaults; right after a sub-window boundary (`f = 0`) it is the
//!   exact p99 of the last `W` samples. Against the exact p99 of the last `W` samples the
//!   estimate can only be *higher*, never lower (a sample leaves the sketch up to `L − 1` ticks
//!   later than it leaves an exact window), so an expired spike keeps a threshold up for at most
//!   one more sub-window (60 ticks by default). On the synthetic series of the tests the
//!   estimate is more than 1 % above the exact sliding p99 in 4–27 % of the ticks, by up to
//!   +8–16 % on smooth series and much more when a burst has just left the exact window.
//! * **Staleness**: thresholds in force are those of the last recomputation, at most
//!   `recompute_ticks − 1` learned samples old (a recomputation is also forced when warm-up
//!   ends). Recomputations of different IPs are spread over the interval by a per-IP phase
//!   ([`IpBaseline::with_phase`]; [`BaselineStore`] uses the IP id), so no single tick
//!   recomputes every IP. A changed multiplier or floor applies from the next recomputation.
//!
//! ## Quiet samples
//! A threshold is `max(floor, k-th largest × multiplier)`, so a sample whose code is under the
//! series' **cut**, the smallest code `c` with `c × multiplier > floor` (about `floor / 3` with
//! the defaults), can never raise it: if the k-th largest is under the cut the threshold is the
//! floor whatever the smaller samples are, and if it is at or above the cut it does not depend on
//! them. A sample whose total pps and bps are both under their cuts is therefore **quiet** and
//! learned exactly as an idle tick (nothing enters the sketch; see
//! [`BaselinePolicy::quiet_counts`]). The thresholds are identical to those of a sketch fed every
//! sample (tested); what changes is cost: an IP that has only ever been quiet has no sketch at
//! all, and the detector leaves a known IP's quiet ticks to the store's lazy idle handling, so
//! the per-tick work for the great majority of IPs (under a third of the floors) is a few compares.
//! [`IpBaseline::p99`] of a series whose percentile is under its cut reads as lower than the
//! exact one (quiet samples count as zero); at or above the cut it is exact.
//! Consequence for operators: lowering a group's floors takes effect at once, but samples learned
//! as quiet under the old floors count as zero until they leave the window, so for one window the
//! thresholds can sit between the new floor and the old one lower than an exact percentile would
//! put them.
//!
//! ## Cost of the percentile: `k` is capped at [`K_MAX`] = 8
//! Memory per series is `2·(S + 1)·k + 2` bytes, so it grows linearly with `k`, i.e. with
//! `W·(1 − p/100)`. A percentile whose `k` would exceed 8 is raised to the one with `k = 8`
//! (for `W = 300`: anything below p97.33 behaves as p97.33);
//! [`BaselinePolicy::effective_percentile`] reports the percentile in force. With 3 active
//! classes the 512-byte budget holds up to `k = 4` (p98.67 of 300). Lower percentiles would
//! need another sketch (e.g. a quantized histogram per series).
//!
//! ## Memory
//! Per IP: a 48-byte [`BaselineStore`] slot (40-byte [`IpBaseline`] + last-update tick) and,
//! once the IP has had a loud sample, one heap block holding only the series of classes that
//! had traffic (a presence bitmask tells which), plus the total. With one active class the
//! total *is* that class's series and is not stored. With the defaults (`S = 5`, `k = 3`):
//!
//! | active classes | series | heap (glibc-like chunk) | per IP |
//! |---|---|---|---|
//! | 0 | 0 | 0 | 48 B |
//! | 1 | 2 | 96 B | 144 B |
//! | 2 | 6 | 240 B | 288 B |
//! | 3 | 8 | 320 B | 368 B |
//! | 4 | 10 | 400 B | 448 B |
//! | 9 (worst) | 20 | 768 B | 816 B |
//!
//! [`BaselineStore::memory_bytes`] reports the same estimate for a live store. A class's
//! series is allocated the first time that class has traffic (at most 9 re-allocations per
//! IP over its life); otherwise observation never allocates.
//!
//! # Flow per tick
//! ```
//! use surgewatch_detect::baseline::*;
//! use surgewatch_pipeline::TrafficClass;
//!
//! let policy = BaselinePolicy::new(&BaselineParams { warmup_ticks: 0, ..Default::default() });
//! let mut store = BaselineStore::new();
//! let mut sample = TickSample::new(1_000_000_000);
//! sample.add(TrafficClass::Udp, 100, 100 * 512);
//! for _ in 0..50 {
//!     // Check against the thresholds in force, then learn unless over.
//!     let exceeded = store.check_and_observe(7, &policy, &sample, |ex| !ex.any());
//!     assert!(!exceeded.any());
//!     store.end_tick();
//! }
//! store.skip_idle_ticks(1_000_000); // every IP idle for a long time: O(1)
//! let th = store.thresholds(7, &policy); // the gap is applied lazily, O(sub-windows)
//! assert_eq!(th.total, policy.floor());
//! ```
//!
//! [`TrafficClass`]: surgewatch_pipeline::TrafficClass

mod codec;
mod ip;
mod quant;
mod store;

pub use codec::{
    decode_baselines, decode_baselines_for, encode_baselines, encode_baselines_for, BaselineFile,
    BaselineFileError,
};
pub use ip::{exceeded, Exceeded, IpBaseline, Rates, Series, Thresholds, TickSample};
pub use store::BaselineStore;

/// Largest `k` (number of top samples kept per sub-window); see the module docs.
pub const K_MAX: usize = 8;
/// Largest number of sub-windows.
pub const MAX_SUBWINDOWS: u32 = 16;
/// Largest sub-window length in samples.
pub const MAX_SUBWINDOW_LEN: u32 = u16::MAX as u32;

/// Baseline settings of one monitored group, as plain numbers (what the configuration
/// provides). Validation lives in the config crate; [`BaselinePolicy::new`] clamps whatever
/// it is given and never panics.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct BaselineParams {
    /// Samples (ticks) in the window the percentile is taken over. Default 300.
    pub window_samples: u32,
    /// Sub-windows the window is split into; the window slides by one sub-window.
    /// Default 5. Clamped to `1..=min(16, window_samples)`.
    pub subwindows: u32,
    /// Percentile of the window taken as the baseline, in `(0, 100]`. Default 99.0.
    pub percentile: f64,
    /// Threshold = baseline × multiplier. Default 3.0.
    pub multiplier: f64,
    /// Learned samples between two recomputations of the percentile. Default 10.
    pub recompute_ticks: u32,
    /// Thresholds never go below this, in packets per second. Default 1000.
    pub floor_pps: u64,
    /// Thresholds never go below this, in bits per second. Default 10 Mbit/s.
    pub floor_bps: u64,
    /// Threshold during warm-up, in packets per second. Default 10 000.
    pub static_pps: u64,
    /// Threshold during warm-up, in bits per second. Default 100 Mbit/s.
    pub static_bps: u64,
    /// Learned samples before the learned baseline replaces the static thresholds.
    /// Default 300.
    pub warmup_ticks: u32,
}

impl Default for BaselineParams {
    fn default() -> Self {
        BaselineParams {
            window_samples: 300,
            subwindows: 5,
            percentile: 99.0,
            multiplier: 3.0,
            recompute_ticks: 10,
            floor_pps: 1000,
            floor_bps: 10_000_000,
            static_pps: 10_000,
            static_bps: 100_000_000,
            warmup_ticks: 300,
        }
    }
}

impl BaselineParams {
    /// The clamped, precomputed form used on the hot path.
    pub fn policy(&self) -> BaselinePolicy {
        BaselinePolicy::new(self)
    }
}

/// The shape of a sketch: what makes two sketches compatible.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    /// Ring slots: complete sub-windows + the one being filled (`S + 1`).
    pub(crate) slots: u8,
    /// Top values kept per sub-window.
    pub(crate) k: u8,
    /// Samples per sub-window (`L`).
    pub(crate) sub_len: u16,
}

impl Shape {
    /// Whether the shape is one [`BaselinePolicy::new`] can produce.
    pub(crate) fn is_valid(self) -> bool {
        (2..=MAX_SUBWINDOWS + 1).contains(&u32::from(self.slots))
            && (1..=K_MAX).contains(&usize::from(self.k))
            && self.sub_len >= 1
    }
}

/// [`BaselineParams`] clamped to workable values, with everything the hot path needs
/// precomputed (thresholds as rate codes). Cheap to copy; one per monitored group.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct BaselinePolicy {
    pub(crate) shape: Shape,
    pub(crate) recompute_ticks: u32,
    pub(crate) warmup_ticks: u32,
    pub(crate) multiplier: f64,
    /// The multiplier in 16.16 fixed point, as applied.
    pub(crate) multiplier_q16: u64,
    /// Floors as (pps, bps) codes.
    pub(crate) floor_code: (u16, u16),
    /// Warm-up thresholds `max(floor, static)` as (pps, bps) codes.
    pub(crate) warmup_code: (u16, u16),
    /// The smallest (pps, bps) code whose threshold `code × multiplier` exceeds the floor:
    /// a sample under it cannot raise any threshold (see "Quiet samples" in the module docs).
    pub(crate) cut_code: (u32, u32),
}

impl Default for BaselinePolicy {
    fn default() -> Self {
        BaselinePolicy::new(&BaselineParams::default())
    }
}

impl BaselinePolicy {
    /// Clamps and precomputes. Never panics:
    /// * `window_samples` to `1..=16·65535`, `subwindows` to `1..=min(16, window_samples)`;
    /// * `percentile` to `[0, 100]` (NaN: 99), then `k` to `1..=`[`K_MAX`];
    /// * `multiplier` to `[0, 1e9]` (NaN: 3), applied in 1/65536 steps;
    /// * `recompute_ticks` to `1..=65535`.
    pub fn new(p: &BaselineParams) -> Self {
        let window = p
            .window_samples
            .clamp(1, MAX_SUBWINDOWS * MAX_SUBWINDOW_LEN);
        let subwindows = p.subwindows.clamp(1, MAX_SUBWINDOWS.min(window));
        let sub_len = window.div_ceil(subwindows).min(MAX_SUBWINDOW_LEN);
        let eff_window = f64::from(sub_len * subwindows);
        let percentile = if p.percentile.is_nan() {
            99.0
        } else {
            p.percentile.clamp(0.0, 100.0)
        };
        // The epsilon keeps 300 × 1 / 100 from becoming 3.0000000000000004 → 4.
        let k = ((100.0 - percentile) * eff_window / 100.0 - 1e-9).ceil();
        let k = (k.max(1.0) as usize).min(K_MAX);
        let multiplier = if p.multiplier.is_nan() {
            3.0
        } else {
            p.multiplier.clamp(0.0, 1e9)
        };
        let code = |r: u64| quant::encode_f64_units(r as f64 * quant::SCALE);
        let floor_code = (code(p.floor_pps), code(p.floor_bps));
        let mut policy = BaselinePolicy {
            shape: Shape {
                slots: (subwindows + 1) as u8,
                k: k as u8,
                sub_len: sub_len as u16,
            },
            recompute_ticks: p.recompute_ticks.clamp(1, u32::from(u16::MAX)),
            warmup_ticks: p.warmup_ticks,
            multiplier,
            multiplier_q16: (multiplier * 65536.0).round() as u64,
            floor_code,
            warmup_code: (
                floor_code.0.max(code(p.static_pps)),
                floor_code.1.max(code(p.static_bps)),
            ),
            cut_code: (0, 0),
        };
        policy.cut_code = (
            ip::cut_code(&policy, floor_code.0),
            ip::cut_code(&policy, floor_code.1),
        );
        policy
    }

    /// Per-tick counts under which a sample of `tick_ns` is **quiet** for this policy:
    /// with `packets < .0` and `bytes < .1` (all classes together) no series of the sample
    /// reaches its cut, so the sample cannot raise a threshold and may be learned as an idle
    /// tick (see "Quiet samples" in the module docs). `(0, 0)` when nothing is quiet.
    pub fn quiet_counts(&self, tick_ns: u64) -> (u64, u64) {
        ip::quiet_counts(self, tick_ns)
    }

    /// Samples per sub-window (`L`).
    pub fn subwindow_len(&self) -> u32 {
        u32::from(self.shape.sub_len)
    }

    /// Number of complete sub-windows in the window (`S`).
    pub fn subwindows(&self) -> u32 {
        u32::from(self.shape.slots) - 1
    }

    /// Window length after rounding up to whole sub-windows (`S·L`, ≥ `window_samples`
    /// unless clamped).
    pub fn window_samples(&self) -> u32 {
        self.subwindows() * self.subwindow_len()
    }

    /// Rank of the baseline from the top: the baseline is the k-th largest sample.
    pub fn k(&self) -> usize {
        usize::from(self.shape.k)
    }

    /// The percentile actually in force, `100·(1 − k/window)` (for aligned windows).
    pub fn effective_percentile(&self) -> f64 {
        100.0 * (1.0 - self.k() as f64 / f64::from(self.window_samples()))
    }

    /// Learned samples between recomputations.
    pub fn recompute_ticks(&self) -> u32 {
        self.recompute_ticks
    }

    /// Learned samples before the baseline replaces the static thresholds.
    pub fn warmup_ticks(&self) -> u32 {
        self.warmup_ticks
    }

    /// Threshold multiplier.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The floors (pps, bps), as applied: quantized like every rate (within 0.05 %).
    pub fn floor(&self) -> Rates {
        Rates {
            pps: quant::decode_rate(self.floor_code.0),
            bps: quant::decode_rate(self.floor_code.1),
        }
    }

    /// Thresholds during warm-up, `max(floor, static)`, as applied (quantized).
    pub fn warmup_thresholds(&self) -> Rates {
        Rates {
            pps: quant::decode_rate(self.warmup_code.0),
            bps: quant::decode_rate(self.warmup_code.1),
        }
    }

    /// A stable 64-bit fingerprint of everything that shapes a sketch (sub-window count and
    /// length, `k`, quantization). Baselines persisted under one fingerprint cannot be
    /// loaded under another.
    pub fn fingerprint(&self) -> u64 {
        codec::shape_fingerprint(self.shape)
    }

    /// Bytes of heap one IP's sketch takes with `classes` active classes (0..=9), before
    /// allocator overhead.
    pub fn heap_bytes_for(&self, classes: u32) -> usize {
        ip::buffer_len(self.shape, ip::series_for_classes(classes.min(9))) * 2
    }
}

#[cfg(test)]
mod tests;
