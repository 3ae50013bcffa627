//! Behaviour tests of the baseline sketch against exact percentiles, and of the policy,
//! warm-up, floors, learning pause, idle handling and memory.

use surgewatch_pipeline::TrafficClass;

use super::*;
use crate::baseline::store::alloc_estimate;

const SEC: u64 = 1_000_000_000;

/// splitmix64: a seeded, dependency-free RNG for synthetic traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (Irwin–Hall of 12).
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..12).map(|_| self.unit()).sum();
        mean + (s - 6.0) * sd
    }
}

/// Packets per one-second tick of a named synthetic series.
fn series(kind: &str, len: usize, seed: u64) -> Vec<u64> {
    let mut r = Rng(seed);
    let mut burst = 0u32;
    (0..len)
        .map(|t| {
            let v = match kind {
                "constant" => 1000.0,
                "poisson" => r.normal(1000.0, 1000f64.sqrt()),
                "bursty" => {
                    if burst == 0 && r.unit() < 0.02 {
                        burst = 1 + (r.next() % 5) as u32;
                    }
                    let base = r.normal(200.0, 15.0);
                    if burst > 0 {
                        burst -= 1;
                        base * 20.0
                    } else {
                        base
                    }
                }
                "diurnal" => {
                    let phase = t as f64 / 3600.0 * std::f64::consts::TAU;
                    r.normal(5000.0 * (1.0 + 0.8 * phase.sin()), 200.0)
                }
                "longtail" => 100.0 / (1.0 - r.unit()).powf(1.0 / 1.5),
                "sparse" => {
                    if r.unit() < 0.05 {
                        r.normal(50.0, 10.0)
                    } else {
                        0.0
                    }
                }
                _ => unreachable!(),
            };
            v.max(0.0) as u64
        })
        .collect()
}

/// The exact k-th largest of `xs` (0 if fewer than k).
fn kth_largest(xs: &[f64], k: usize) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    v.get(k - 1).copied().unwrap_or(0.0)
}

/// The quantization bound: 2⁻¹¹ relative plus 1/32 absolute.
fn within_quantization(est: f64, exact: f64) -> bool {
    (est - exact).abs() <= exact * (1.0 / 2048.0) + 1.0 / 32.0 + 1e-9
}

struct Measured {
    /// Worst |sketch − exact over the sketch's own window| / exact.
    worst_quant: f64,
    /// Worst (sketch − exact p over the last W) / exact, over all ticks.
    worst_slide_over: f64,
    /// Worst |sketch − exact p over the last W| / exact at sub-window boundaries.
    worst_aligned: f64,
    /// Share of (tick, series) comparisons where the sketch is > 1 % above the exact
    /// percentile of the last W samples.
    share_over_1pct: f64,
}

/// Feeds two classes (and their total) through a sketch, recomputing at every tick, and
/// compares every series with exact percentiles.
fn measure(params: &BaselineParams, a: &[u64], b: &[u64]) -> Measured {
    let policy = params.policy();
    let (w, k, l) = (
        policy.window_samples() as usize,
        policy.k(),
        policy.subwindow_len() as usize,
    );
    let mut base = IpBaseline::new();
    let mut hist: [Vec<f64>; 6] = Default::default();
    let mut m = Measured {
        worst_quant: 0.0,
        worst_slide_over: 0.0,
        worst_aligned: 0.0,
        share_over_1pct: 0.0,
    };
    let (mut compared, mut over_1pct) = (0usize, 0usize);
    for t in 0..a.len() {
        let mut s = TickSample::new(SEC);
        let (size_a, size_b) = (60 + (t as u64 * 7919) % 1440, 1200);
        s.add(TrafficClass::Udp, a[t], a[t] * size_a);
        s.add(TrafficClass::Syn, b[t], b[t] * size_b);
        base.observe(&policy, &s, true);
        base.recompute(&policy);
        let total = s.total();
        let vals = [
            a[t] as f64,
            (a[t] * size_a * 8) as f64,
            b[t] as f64,
            (b[t] * size_b * 8) as f64,
            total.packets as f64,
            (total.bytes * 8) as f64,
        ];
        for (h, v) in hist.iter_mut().zip(vals) {
            h.push(v);
        }
        let fill = usize::from(base.fill);
        let n_sketch = (w + fill).min(t + 1);
        let n_exact = w.min(t + 1);
        for (i, h) in hist.iter().enumerate() {
            let series = match i / 2 {
                0 => Series::Class(TrafficClass::Udp),
                1 => Series::Class(TrafficClass::Syn),
                _ => Series::Total,
            };
            let p = base.p99(series);
            let est = if i % 2 == 0 { p.pps } else { p.bps };
            let own = kth_largest(&h[h.len() - n_sketch..], k);
            assert!(
                within_quantization(est, own),
                "t={t} series {i}: sketch {est} vs exact {own}"
            );
            if own > 0.0 {
                m.worst_quant = m.worst_quant.max((est - own).abs() / own);
            }
            let exact = kth_largest(&h[h.len() - n_exact..], k);
            // The sketch's window contains the exact one: never lower beyond quantization.
            assert!(est >= exact * (1.0 - 1.0 / 2048.0) - 1.0 / 32.0 - 1e-9);
            if exact > 0.0 {
                m.worst_slide_over = m.worst_slide_over.max((est - exact) / exact);
                compared += 1;
                over_1pct += usize::from(est > exact * 1.01);
                if fill == 0 {
                    assert!(within_quantization(est, exact), "aligned t={t}");
                    m.worst_aligned = m.worst_aligned.max((est - exact).abs() / exact);
                }
            }
        }
    }
    let _ = l;
    m.share_over_1pct = over_1pct as f64 / compared.max(1) as f64;
    m
}

#[test]
fn sketch_matches_exact_percentile_on_synthetic_series() {
    let kinds = [
        "constant", "poisson", "bursty", "diurnal", "longtail", "sparse",
    ];
    // Floors of zero: every non-zero sample is loud and enters the sketch (quiet samples,
    // learned as idle ticks, have their own test).
    let no_floors = BaselineParams {
        floor_pps: 0,
        floor_bps: 0,
        ..Default::default()
    };
    let shapes = [
        no_floors,
        BaselineParams {
            window_samples: 60,
            subwindows: 4,
            percentile: 95.0,
            ..no_floors
        },
        BaselineParams {
            window_samples: 1000,
            subwindows: 8,
            percentile: 99.5,
            ..no_floors
        },
    ];
    let mut worst_quant = 0f64;
    for params in &shapes {
        for (i, kind) in kinds.iter().enumerate() {
            let a = series(kind, 2400, 1 + i as u64);
            let b = series(kinds[(i + 2) % kinds.len()], 2400, 100 + i as u64);
            let m = measure(params, &a, &b);
            println!(
                "W={} S={} k={} {kind:>8}+{:<8}: quantization {:.4}%, aligned {:.4}%, \
                 sliding: worst +{:.1}%, > 1 % above in {:.1}% of ticks",
                params.window_samples,
                params.subwindows,
                params.policy().k(),
                kinds[(i + 2) % kinds.len()],
                m.worst_quant * 100.0,
                m.worst_aligned * 100.0,
                m.worst_slide_over * 100.0,
                m.share_over_1pct * 100.0
            );
            worst_quant = worst_quant.max(m.worst_quant).max(m.worst_aligned);
        }
    }
    assert!(worst_quant <= 1.0 / 2048.0 + 1e-12, "{worst_quant}");
}

#[test]
fn policy_derivation_and_clamping() {
    let p = BaselinePolicy::default();
    assert_eq!(
        (p.subwindows(), p.subwindow_len(), p.k(), p.window_samples()),
        (5, 60, 3, 300)
    );
    assert!((p.effective_percentile() - 99.0).abs() < 1e-9);
    // Below the k cap's reach the percentile is raised.
    let p50 = BaselineParams {
        percentile: 50.0,
        ..Default::default()
    }
    .policy();
    assert_eq!(p50.k(), K_MAX);
    assert!((p50.effective_percentile() - (100.0 - 800.0 / 300.0)).abs() < 1e-9);
    // Odd values never panic and land somewhere workable.
    for params in [
        BaselineParams {
            window_samples: 0,
            subwindows: 0,
            percentile: f64::NAN,
            multiplier: f64::NAN,
            recompute_ticks: 0,
            ..Default::default()
        },
        BaselineParams {
            window_samples: u32::MAX,
            subwindows: u32::MAX,
            percentile: -5.0,
            multiplier: f64::INFINITY,
            recompute_ticks: u32::MAX,
            floor_pps: u64::MAX,
            floor_bps: u64::MAX,
            static_pps: 0,
            static_bps: 0,
            warmup_ticks: u32::MAX,
        },
        BaselineParams {
            window_samples: 3,
            percentile: 1000.0,
            ..Default::default()
        },
    ] {
        let p = params.policy();
        assert!(p.shape.is_valid(), "{params:?} -> {p:?}");
        assert!(p.window_samples() >= 1 && p.recompute_ticks() >= 1);
        assert!(!p.multiplier().is_nan());
        let mut b = IpBaseline::with_phase(&p, 7);
        let mut s = TickSample::new(0);
        s.add(TrafficClass::Other, u64::MAX, u64::MAX);
        for _ in 0..20 {
            b.observe(&p, &s, true);
        }
        b.observe_idle(&p, u64::MAX);
        let _ = b.check(&p, &s);
        let _ = exceeded(&b.thresholds(&p), &s);
    }
}

fn udp(pps: u64) -> TickSample {
    let mut s = TickSample::new(SEC);
    s.add(TrafficClass::Udp, pps, pps * 1000);
    s
}

fn quiet_policy() -> BaselinePolicy {
    BaselineParams {
        floor_pps: 10,
        floor_bps: 10_000,
        static_pps: 50_000,
        static_bps: 500_000_000,
        warmup_ticks: 300,
        ..Default::default()
    }
    .policy()
}

#[test]
fn warmup_uses_static_thresholds_then_switches() {
    let p = quiet_policy();
    let mut b = IpBaseline::new();
    for t in 1..=300u32 {
        assert_eq!(
            b.thresholds(&p),
            Thresholds::uniform(p.warmup_thresholds()),
            "tick {t}"
        );
        // 20 000 pps is under the static 50 000 during warm-up...
        assert!(!b.check(&p, &udp(20_000)).any());
        b.observe(&p, &udp(1000), true);
    }
    assert!(b.is_warm(&p));
    assert_eq!(b.learned_ticks(), 300);
    // ...and far over the learned 3 × 1000 afterwards, without waiting for a recompute tick.
    let th = b.thresholds(&p);
    assert!((th.classes[TrafficClass::Udp.index()].pps - 3000.0).abs() < 1e-6);
    assert!((th.total.pps - 3000.0).abs() < 1e-6);
    assert!((th.total.bps - 3.0 * 8_000_000.0).abs() < 8_000_000.0 * 3.0 / 2048.0);
    let ex = b.check(&p, &udp(20_000));
    assert!(ex.is_over(Series::Class(TrafficClass::Udp)) && ex.is_over(Series::Total));
    assert_eq!(ex.classes().collect::<Vec<_>>(), [TrafficClass::Udp]);
    assert!(!b.check(&p, &udp(2990)).any(), "0.3 % under");
    assert!(b.check(&p, &udp(3000)).any(), "at the threshold is over");
    // A class that never had traffic is held to the floor.
    assert_eq!(th.classes[TrafficClass::Syn.index()], p.floor());
    // Warm-up 0 trusts the baseline from the first sample.
    let p0 = BaselineParams {
        warmup_ticks: 0,
        ..Default::default()
    }
    .policy();
    let mut b0 = IpBaseline::new();
    b0.observe(&p0, &udp(1), true);
    assert!(b0.is_warm(&p0));
}

#[test]
fn floors_hold_thresholds_up() {
    let p = BaselineParams {
        floor_pps: 5000,
        floor_bps: 80_000_000,
        warmup_ticks: 10,
        ..Default::default()
    }
    .policy();
    let mut b = IpBaseline::new();
    for _ in 0..400 {
        b.observe(&p, &udp(100), true); // 3 × 100 pps, 3 × 0.8 Mbit/s: under the floors
    }
    let th = b.thresholds(&p);
    assert_eq!(th.total, p.floor());
    assert_eq!(th.classes[TrafficClass::Udp.index()], p.floor());
    assert!(!b.check(&p, &udp(4990)).any());
    let ex = b.check(&p, &udp(5000));
    assert_eq!(ex.pps, (1 << TrafficClass::Udp.index()) | (1 << 9));
    assert_eq!(ex.bps, 0); // 40 Mbit/s is under the 80 Mbit/s floor
                           // Zero traffic is never over, even with zero thresholds.
    let z = BaselineParams {
        floor_pps: 0,
        floor_bps: 0,
        static_pps: 0,
        static_bps: 0,
        ..Default::default()
    }
    .policy();
    assert!(!IpBaseline::new().check(&z, &TickSample::new(SEC)).any());
    assert!(!exceeded(
        &Thresholds::uniform(Rates::default()),
        &TickSample::new(SEC)
    )
    .any());
}

#[test]
fn learning_pause_keeps_attacks_out_of_the_baseline() {
    let p = quiet_policy();
    let mut b = IpBaseline::with_phase(&p, 3);
    for _ in 0..600 {
        b.observe(&p, &udp(1000), true);
    }
    let before = b.thresholds(&p);
    let state = b.clone();
    let mut attack = udp(5_000_000);
    attack.add(TrafficClass::Syn, 2_000_000, 120_000_000);
    for _ in 0..3600 {
        assert!(b.check(&p, &attack).any());
        b.observe(&p, &attack, false);
    }
    assert_eq!(b.thresholds(&p), before);
    assert_eq!(b.age_ticks(), state.age_ticks() + 3600);
    assert_eq!(b.learned_ticks(), state.learned_ticks());
    assert_eq!(
        (b.buf.as_deref(), b.mask),
        (state.buf.as_deref(), state.mask)
    );
    // The same attack learned would have raised the thresholds.
    let mut poisoned = state.clone();
    for _ in 0..20 {
        poisoned.observe(&p, &attack, true);
    }
    assert!(poisoned.thresholds(&p).total.pps > 1e6);
}

/// Reference: idle ticks as explicit zero samples.
fn zero_ticks(b: &mut IpBaseline, p: &BaselinePolicy, n: u64) {
    for _ in 0..n {
        b.observe(p, &TickSample::new(SEC), true);
    }
}

#[test]
fn idle_gaps_equal_zero_samples() {
    let p = BaselineParams {
        warmup_ticks: 100,
        ..Default::default()
    }
    .policy();
    let mut rng = Rng(42);
    for &gap in &[
        0u64, 1, 2, 9, 10, 11, 59, 60, 61, 119, 299, 300, 301, 359, 360, 361, 1000,
    ] {
        for start in [5u64, 57, 150, 400] {
            let mut a = IpBaseline::with_phase(&p, (start % 10) as u32);
            for t in 0..start {
                let mut s = udp(500 + rng.next() % 100);
                if t % 3 == 0 {
                    s.add(TrafficClass::Ack, 100, 6400);
                }
                a.observe(&p, &s, t % 11 != 5);
            }
            let mut b = a.clone();
            a.observe_idle(&p, gap);
            zero_ticks(&mut b, &p, gap);
            // Same sketch; recomputations due inside the gap collapse into one at its end.
            let (mut ra, mut rb) = (a.clone(), b.clone());
            ra.recompute(&p);
            rb.recompute(&p);
            assert_eq!(ra, rb, "gap {gap} after {start}");
            assert_eq!(a.since, b.since);
            if gap >= u64::from(p.recompute_ticks()) {
                // A recomputation was due inside the gap: done at its end.
                assert_eq!(a, ra, "gap {gap} after {start}");
            }
        }
    }
    // A long idle period empties the window: thresholds fall to the floors.
    let mut b = IpBaseline::new();
    for _ in 0..420 {
        b.observe(&p, &udp(100_000), true); // ends on a sub-window boundary
    }
    assert!(b.thresholds(&p).total.pps > 250_000.0);
    b.observe_idle(&p, 299);
    assert!(
        b.thresholds(&p).total.pps > 250_000.0,
        "window still holds the traffic"
    );
    b.observe_idle(&p, 1);
    assert_eq!(b.thresholds(&p).total, p.floor());
    b.observe_idle(&p, u64::MAX);
    assert_eq!(b.age_ticks(), u32::MAX);
}

#[test]
fn store_lazy_idle_matches_eager() {
    let p = BaselineParams {
        warmup_ticks: 50,
        ..Default::default()
    }
    .policy();
    let mut lazy = BaselineStore::new();
    let mut eager: Vec<Option<IpBaseline>> = vec![None; 64];
    let mut rng = Rng(7);
    for tick in 0..1500u64 {
        if tick % 400 == 399 {
            // Everyone idle for a long stretch.
            let n = 100 + rng.next() % 300;
            lazy.skip_idle_ticks(n);
            for b in eager.iter_mut().flatten() {
                b.observe_idle(&p, n);
            }
            continue;
        }
        for id in 0..64u32 {
            // Sparse IPs: most ticks idle.
            if !rng.next().is_multiple_of(1 + u64::from(id % 8) * 4) {
                if let Some(b) = eager[id as usize].as_mut() {
                    b.observe_idle(&p, 1);
                }
                continue;
            }
            let s = udp(100 + rng.next() % (50 * (u64::from(id) + 1)));
            let learning = !rng.next().is_multiple_of(10);
            let ex_lazy = lazy.check(id, &p, &s);
            let e = eager[id as usize].get_or_insert_with(|| IpBaseline::with_phase(&p, id));
            // Same sketch as explicit zero samples; the lazy side may have recomputed once
            // at the end of a gap where the eager side did not.
            let mut settled = lazy
                .get(id)
                .cloned()
                .unwrap_or_else(|| IpBaseline::with_phase(&p, id));
            let mut reference = e.clone();
            if settled.shape != reference.shape {
                settled.shape = reference.shape; // both unobserved
            }
            settled.recompute(&p);
            reference.recompute(&p);
            assert_eq!(settled, reference, "id {id} tick {tick}");
            assert_eq!(
                ex_lazy,
                lazy.get(id)
                    .map_or(IpBaseline::new().check(&p, &s), |b| b.check(&p, &s))
            );
            e.observe(&p, &s, learning);
            lazy.observe(id, &p, &s, learning);
        }
        lazy.end_tick();
    }
    lazy.settle_all(|_| &p);
    assert_eq!(lazy.len(), eager.iter().flatten().count());
    for (id, b) in lazy.iter() {
        let mut a = b.clone();
        let mut e = eager[id as usize].clone().unwrap();
        a.recompute(&p);
        e.recompute(&p);
        assert_eq!(a, e, "id {id}");
    }
    let removed = lazy.remove(3);
    assert!(removed.is_some() && lazy.get(3).is_none() && lazy.remove(3).is_none());
    lazy.insert(3, removed.unwrap_or_default());
    assert!(lazy.get(3).is_some());
}

#[test]
fn class_activation_keeps_history_and_materializes_the_total() {
    let p = BaselineParams {
        warmup_ticks: 0,
        ..Default::default()
    }
    .policy();
    let mut b = IpBaseline::new();
    // One class only: the total is that class's series, not stored twice.
    for _ in 0..100 {
        b.observe(&p, &udp(700), true);
    }
    assert_eq!(b.heap_bytes(), p.heap_bytes_for(1));
    assert_eq!(
        b.p99(Series::Total),
        b.p99(Series::Class(TrafficClass::Udp))
    );
    // New classes arrive one by one; earlier history stays.
    for (i, c) in [TrafficClass::Syn, TrafficClass::Other, TrafficClass::Ack]
        .into_iter()
        .enumerate()
    {
        let mut s = udp(700);
        s.add(c, 10, 600);
        b.observe(&p, &s, true);
        b.recompute(&p);
        assert_eq!(b.heap_bytes(), p.heap_bytes_for(2 + i as u32));
        assert!((b.p99(Series::Class(TrafficClass::Udp)).pps - 700.0).abs() < 0.5);
        // Third largest of 100 × 700 and one 710 (+ one 720, + one 730).
        let want = [700.0, 700.0, 710.0][i];
        assert!((b.p99(Series::Total).pps - want).abs() < 0.5, "{i}");
        assert!(
            (b.p99(Series::Class(c)).pps).abs() < 1e-9,
            "one sample of 300"
        );
    }
    assert_eq!(
        b.active_classes().collect::<Vec<_>>(),
        [
            TrafficClass::Syn,
            TrafficClass::Ack,
            TrafficClass::Udp,
            TrafficClass::Other
        ]
    );
    // A policy with another sketch shape resets the sketch (new warm-up), keeping the age.
    let other = BaselineParams {
        window_samples: 120,
        warmup_ticks: 5,
        ..Default::default()
    }
    .policy();
    assert!(!b.is_warm(&other));
    let age = b.age_ticks();
    b.observe(&other, &udp(700), true);
    assert_eq!(
        (b.age_ticks(), b.learned_ticks(), b.heap_bytes()),
        (age + 1, 1, other.heap_bytes_for(1))
    );
}

#[test]
fn check_matches_full_thresholds() {
    let p = BaselineParams {
        warmup_ticks: 200,
        ..Default::default()
    }
    .policy();
    let mut rng = Rng(99);
    let mut b = IpBaseline::new();
    for t in 0..1200u32 {
        let mut s = TickSample::new(if t % 7 == 0 { SEC / 10 } else { SEC });
        for c in TrafficClass::ALL {
            if rng.next().is_multiple_of(2 + c.index() as u64) {
                let pk = rng.next() % 4000;
                s.add(c, pk, pk * (40 + rng.next() % 1460));
            }
        }
        let ex = b.check(&p, &s);
        assert_eq!(ex, exceeded(&b.thresholds(&p), &s), "tick {t}");
        let mut fused = b.clone();
        let learning = !ex.any() || t % 2 == 0;
        b.observe(&p, &s, learning);
        let ex2 = fused.check_and_observe(&p, &s, |e| {
            assert_eq!(e, ex);
            learning
        });
        assert_eq!((ex2, &fused), (ex, &b));
    }
}

#[test]
fn recompute_phases_spread_over_the_interval() {
    let p = BaselinePolicy::default();
    let mut counts = [0usize; 10];
    let mut bases: Vec<IpBaseline> = (0..1000).map(|id| IpBaseline::with_phase(&p, id)).collect();
    for b in &mut bases {
        b.observe(&p, &udp(1), true);
    }
    for (tick, count) in counts.iter_mut().enumerate() {
        let _ = tick;
        for b in &mut bases {
            let before = b.since;
            b.observe(&p, &udp(1), true);
            *count += usize::from(b.since == 0 && before != 0);
        }
    }
    assert!(counts.iter().all(|&c| c == 100), "{counts:?}");
}

#[test]
fn memory_100k_ips_three_classes_under_512_bytes() {
    let p = BaselinePolicy::default();
    let n = 100_000u32;
    let mut store = BaselineStore::with_capacity(n as usize);
    let classes = [TrafficClass::Syn, TrafficClass::Ack, TrafficClass::Udp];
    for tick in 0..3u64 {
        for id in 0..n {
            let mut s = TickSample::new(SEC);
            for (i, c) in classes.iter().enumerate() {
                s.add(*c, 10 + u64::from(id % 100) + tick + i as u64, 6000);
            }
            store.observe(id, &p, &s, true);
        }
        store.end_tick();
    }
    let per_ip = store.memory_bytes() as f64 / f64::from(n);
    println!("3 classes: {per_ip:.1} B/IP");
    assert!(per_ip <= 512.0, "{per_ip} B per IP");
    assert_eq!(std::mem::size_of::<IpBaseline>(), 40);
    // The documented table.
    let expect = [48, 144, 288, 368, 448];
    for (classes, want) in expect.into_iter().enumerate() {
        assert_eq!(alloc_estimate(p.heap_bytes_for(classes as u32)) + 48, want);
    }
    assert_eq!(alloc_estimate(p.heap_bytes_for(9)) + 48, 816);
}

/// Per-tick cost of check + observe for many IPs. Run in release:
/// `cargo test --release -p surgewatch-per-ip baseline::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_one_million_ips() {
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let p = BaselineParams {
        recompute_ticks: env("BENCH_RECOMPUTE", 10),
        ..Default::default()
    }
    .policy();
    let n = env("BENCH_IPS", 1_000_000);
    let mut store = BaselineStore::with_capacity(n as usize);
    let mut samples = Vec::with_capacity(4096);
    let mut rng = Rng(1);
    for _ in 0..4096 {
        let mut s = TickSample::new(SEC);
        for c in [TrafficClass::Syn, TrafficClass::Ack, TrafficClass::Udp] {
            let pk = 100 + rng.next() % 1000;
            s.add(c, pk, pk * 700);
        }
        samples.push(s);
    }
    let mut worst = std::time::Duration::ZERO;
    let mut total = std::time::Duration::ZERO;
    let ticks = env("BENCH_TICKS", 30) as usize;
    for tick in 0..ticks {
        let t0 = std::time::Instant::now();
        let mut over = 0usize;
        let mode = std::env::var("BENCH_MODE").unwrap_or_default();
        for id in 0..n {
            let s = &samples[(id as usize + tick) % samples.len()];
            match mode.as_str() {
                "check" if tick > 0 => over += usize::from(store.check(id, &p, s).any()),
                "observe" => store.observe(id, &p, s, true),
                "fused" => {
                    over += usize::from(store.check_and_observe(id, &p, s, |ex| !ex.any()).any())
                }
                _ => {
                    let ex = store.check(id, &p, s);
                    over += usize::from(ex.any());
                    store.observe(id, &p, s, !ex.any());
                }
            }
        }
        store.end_tick();
        let dt = t0.elapsed();
        if tick > 0 {
            worst = worst.max(dt);
            total += dt;
        }
        std::hint::black_box(over);
    }
    println!(
        "{n} IPs x 3 classes: mean {:?}/tick ({:.1} ns/IP), worst {:?}/tick, {:.1} B/IP",
        total / (ticks as u32 - 1),
        total.as_nanos() as f64 / (ticks as f64 - 1.0) / f64::from(n),
        worst,
        store.memory_bytes() as f64 / f64::from(n)
    );
}

#[test]
fn quiet_samples_are_idle_ticks_and_never_change_a_threshold() {
    // Rates around the cut (floor / multiplier): with the policy's floors, samples under the
    // cut are learned as idle ticks; the thresholds must equal max(floor, threshold of the
    // same sketch fed every sample), at every tick.
    let base = BaselineParams {
        warmup_ticks: 30,
        window_samples: 120,
        subwindows: 4,
        recompute_ticks: 7,
        ..Default::default()
    };
    let p = base.policy();
    let all = BaselineParams {
        floor_pps: 0,
        floor_bps: 0,
        ..base
    }
    .policy();
    let (quiet_packets, quiet_bytes) = p.quiet_counts(SEC);
    // Default floors 1,000 pps and 10 Mbit/s, multiplier 3: quiet under ~333 pps, ~416 kB/s.
    assert!((330..=335).contains(&quiet_packets), "{quiet_packets}");
    assert!((416_000..=417_000).contains(&quiet_bytes), "{quiet_bytes}");
    assert_eq!(
        BaselineParams {
            multiplier: 0.0,
            ..Default::default()
        }
        .policy()
        .quiet_counts(SEC),
        (u64::MAX, u64::MAX)
    );
    let mut rng = Rng(7);
    let (mut b, mut r) = (IpBaseline::new(), IpBaseline::new());
    let mut loud_ticks = 0;
    for t in 0..2000u32 {
        let mut s = TickSample::new(SEC);
        // Mostly quiet, with loud stretches of UDP, one class (SYN) that is always quiet,
        // and a byte-heavy class that is loud by bps alone.
        let level = if (t / 150) % 3 == 1 { 900.0 } else { 150.0 };
        let udp = (rng.unit() * level) as u64;
        s.add(TrafficClass::Udp, udp, udp * 200);
        s.add(TrafficClass::Syn, (rng.unit() * 40.0) as u64, 2400);
        if t % 97 < 5 {
            s.add(TrafficClass::Other, 30, 30 * 1400 * 12);
        }
        let total = s.total();
        let quiet = total.packets < quiet_packets && total.bytes < quiet_bytes;
        loud_ticks += usize::from(!quiet);
        let before = b.heap_bytes();
        b.observe(&p, &s, true);
        r.observe(&all, &s, true);
        if quiet {
            assert_eq!(b.heap_bytes(), before, "t={t}: a quiet sample allocated");
        }
        let (got, reference) = (b.thresholds(&p), r.thresholds(&all));
        let floor = p.floor();
        let want = |x: Rates| Rates {
            pps: x.pps.max(floor.pps),
            bps: x.bps.max(floor.bps),
        };
        if b.is_warm(&p) {
            assert_eq!(got.total, want(reference.total), "t={t} total");
            for c in TrafficClass::ALL {
                assert_eq!(
                    got.classes[c.index()],
                    want(reference.classes[c.index()]),
                    "t={t} {c:?}"
                );
            }
        }
    }
    assert!(loud_ticks > 300 && loud_ticks < 1700, "{loud_ticks}");
    // Only ever quiet: no sketch at all.
    let mut q = IpBaseline::new();
    for _ in 0..500 {
        q.observe(&p, &udp(100), true);
    }
    assert_eq!((q.heap_bytes(), q.learned_ticks()), (0, 500));
    assert_eq!(q.thresholds(&p).total, p.floor());
}

#[test]
fn quiet_counts_are_the_exact_cut_boundary_for_any_tick() {
    for params in [
        BaselineParams::default(),
        BaselineParams {
            floor_pps: 5,
            floor_bps: 4_000,
            multiplier: 1.5,
            ..Default::default()
        },
        BaselineParams {
            floor_pps: 0,
            floor_bps: 0,
            ..Default::default()
        },
    ] {
        let p = params.policy();
        for tick_ns in [SEC, SEC / 10, SEC / 3, 2 * SEC] {
            let (qp, qb) = p.quiet_counts(tick_ns);
            // The first count at the cut is loud, the one before it quiet: observe both as
            // the only class and see whether the sketch is touched.
            for (packets, bytes, loud) in [
                (qp, 0, true),
                (qp.saturating_sub(1), 0, false),
                (0, qb, true),
                (0, qb.saturating_sub(1), false),
            ] {
                if packets == 0 && bytes == 0 {
                    continue; // floors of 0: nothing but an empty sample is quiet
                }
                let mut s = TickSample::new(tick_ns);
                s.add(TrafficClass::Udp, packets, bytes);
                let mut b = IpBaseline::new();
                b.observe(&p, &s, true);
                assert_eq!(
                    b.heap_bytes() > 0,
                    loud,
                    "tick {tick_ns} ns, {packets} packets, {bytes} bytes, quiet under {qp}/{qb}"
                );
            }
        }
    }
}
