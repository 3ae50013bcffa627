//! [`BaselineStore`]: the baselines of all monitored IPs, indexed by dense id, with lazy
//! idle handling.

use super::ip::{Exceeded, IpBaseline, Thresholds, TickSample};
use super::BaselinePolicy;

/// `next_tick` of an id never observed.
const UNSEEN: u64 = u64::MAX;

#[derive(Clone, Debug, Default)]
struct Entry {
    base: IpBaseline,
    /// First tick not yet applied to `base`; [`UNSEEN`] for an unused id.
    next_tick: u64,
}

impl Entry {
    const fn unseen() -> Self {
        Entry {
            base: IpBaseline {
                buf: None,
                age: 0,
                learned: 0,
                since: 0,
                fill: 0,
                mask: 0,
                shape: super::Shape {
                    slots: 0,
                    k: 0,
                    sub_len: 0,
                },
                cur: 0,
                ns: 0,
            },
            next_tick: UNSEEN,
        }
    }
}

/// Baselines of every monitored IP, indexed by a dense `u32` id (e.g.
/// [`IpId`](surgewatch_per_ip::IpId)), and a global tick counter.
///
/// Idle ticks cost nothing up front: an IP's missing ticks are applied as one
/// [`IpBaseline::observe_idle`] (O(sub-windows)) when it is next observed, checked or
/// settled, and [`skip_idle_ticks`](Self::skip_idle_ticks) only moves the counter.
///
/// Per tick: [`check`](Self::check) then [`observe`](Self::observe) each IP with traffic,
/// then [`end_tick`](Self::end_tick). Call `observe` at most once per IP per tick; a second
/// call is learned as another sample.
#[derive(Clone, Debug, Default)]
pub struct BaselineStore {
    entries: Vec<Entry>,
    now: u64,
    seen: usize,
}

impl BaselineStore {
    /// An empty store at tick 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with room for ids `0..ids` without reallocating.
    pub fn with_capacity(ids: usize) -> Self {
        BaselineStore {
            entries: Vec::with_capacity(ids),
            ..Self::default()
        }
    }

    /// The current tick (the one being observed).
    pub fn now_tick(&self) -> u64 {
        self.now
    }

    /// Sets the current tick, e.g. after restoring baselines. Ignored if it would go back.
    pub fn set_now_tick(&mut self, tick: u64) {
        self.now = self.now.max(tick).min(UNSEEN - 1);
    }

    /// Closes the current tick: IPs not observed in it had a zero sample.
    pub fn end_tick(&mut self) {
        self.skip_idle_ticks(1);
    }

    /// `n` ticks pass with no traffic for any IP. O(1).
    pub fn skip_idle_ticks(&mut self, n: u64) {
        self.now = self.now.saturating_add(n).min(UNSEEN - 1);
    }

    /// IPs with a baseline.
    pub fn len(&self) -> usize {
        self.seen
    }

    /// Whether no IP has a baseline.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    #[inline]
    fn slot(&mut self, id: u32) -> &mut Entry {
        let i = id as usize;
        if i >= self.entries.len() {
            self.entries.resize_with(i + 1, Entry::unseen);
        }
        &mut self.entries[i]
    }

    /// Applies an IP's pending idle ticks. Returns its baseline, `None` if never observed.
    pub fn settle(&mut self, id: u32, policy: &BaselinePolicy) -> Option<&IpBaseline> {
        let now = self.now;
        let e = self.entries.get_mut(id as usize)?;
        if e.next_tick == UNSEEN {
            return None;
        }
        if now > e.next_tick {
            e.base.observe_idle(policy, now - e.next_tick);
            e.next_tick = now;
        }
        Some(&e.base)
    }

    /// Applies every IP's pending idle ticks (before persisting). O(IPs).
    pub fn settle_all<'p>(&mut self, mut policy_of: impl FnMut(u32) -> &'p BaselinePolicy) {
        let now = self.now;
        for (id, e) in self.entries.iter_mut().enumerate() {
            if e.next_tick != UNSEEN && now > e.next_tick {
                e.base.observe_idle(policy_of(id as u32), now - e.next_tick);
                e.next_tick = now;
            }
        }
    }

    /// Which series of `sample` are over the IP's thresholds in force (static for an IP never
    /// observed). Call before [`observe`](Self::observe) for the same tick.
    #[inline]
    pub fn check(&mut self, id: u32, policy: &BaselinePolicy, sample: &TickSample) -> Exceeded {
        match self.settle(id, policy) {
            Some(b) => b.check(policy, sample),
            None => IpBaseline::new().check(policy, sample),
        }
    }

    /// The IP's thresholds in force.
    pub fn thresholds(&mut self, id: u32, policy: &BaselinePolicy) -> Thresholds {
        match self.settle(id, policy) {
            Some(b) => b.thresholds(policy),
            None => IpBaseline::new().thresholds(policy),
        }
    }

    /// Learns the IP's sample for the current tick (see [`IpBaseline::observe`]), after
    /// applying its idle gap. A new id starts its baseline here, with the id as
    /// recomputation phase.
    #[inline]
    pub fn observe(
        &mut self,
        id: u32,
        policy: &BaselinePolicy,
        sample: &TickSample,
        learning: bool,
    ) {
        self.learn_now(id, policy, |b| b.observe(policy, sample, learning));
    }

    /// [`check`](Self::check) then [`observe`](Self::observe) in one lookup: learns the
    /// sample unless `learn(exceeded)` returns false. Returns what was exceeded.
    #[inline]
    pub fn check_and_observe(
        &mut self,
        id: u32,
        policy: &BaselinePolicy,
        sample: &TickSample,
        learn: impl FnOnce(Exceeded) -> bool,
    ) -> Exceeded {
        self.check_and_observe_with(id, policy, sample, |_, ex| learn(ex))
    }

    /// [`check_and_observe`](Self::check_and_observe) where `learn` also sees the baseline as
    /// it was checked (idle ticks applied, this sample not yet learned), e.g. to read the
    /// thresholds in force only when something is over.
    #[inline]
    pub fn check_and_observe_with(
        &mut self,
        id: u32,
        policy: &BaselinePolicy,
        sample: &TickSample,
        learn: impl FnOnce(&IpBaseline, Exceeded) -> bool,
    ) -> Exceeded {
        self.learn_now(id, policy, |b| {
            b.check_and_observe_with(policy, sample, learn)
        })
    }

    /// Brings `id`'s baseline up to the current tick (a new id starts with the id as
    /// recomputation phase; a known one gets its idle gap), runs `f` on it for this tick's
    /// sample, and marks the tick as applied.
    #[inline]
    fn learn_now<R>(
        &mut self,
        id: u32,
        policy: &BaselinePolicy,
        f: impl FnOnce(&mut IpBaseline) -> R,
    ) -> R {
        let now = self.now;
        let mut new = false;
        let e = self.slot(id);
        if e.next_tick == UNSEEN {
            e.base = IpBaseline::with_phase(policy, id);
            new = true;
        } else if now > e.next_tick {
            e.base.observe_idle(policy, now - e.next_tick);
        }
        let r = f(&mut e.base);
        e.next_tick = now + 1;
        self.seen += usize::from(new);
        r
    }

    /// Whether `id` has a baseline (was observed, restored or inserted since its last
    /// removal).
    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        self.entries
            .get(id as usize)
            .is_some_and(|e| e.next_tick != UNSEEN)
    }

    /// Hints the CPU to fetch the parts of `id`'s sketch the next observation touches (for a
    /// caller walking ids in order, a few ids ahead).
    #[inline]
    pub fn prefetch(&self, id: u32) {
        if let Some(e) = self.entries.get(id as usize) {
            e.base.prefetch();
        }
    }

    /// The IP's baseline as last updated, without its pending idle ticks
    /// (see [`settle`](Self::settle)).
    pub fn get(&self, id: u32) -> Option<&IpBaseline> {
        self.entries
            .get(id as usize)
            .filter(|e| e.next_tick != UNSEEN)
            .map(|e| &e.base)
    }

    /// Installs a baseline (e.g. restored from a file) as up to date at the current tick.
    pub fn insert(&mut self, id: u32, base: IpBaseline) {
        let now = self.now;
        let e = self.slot(id);
        let new = e.next_tick == UNSEEN;
        *e = Entry {
            base,
            next_tick: now,
        };
        self.seen += usize::from(new);
    }

    /// Forgets an IP's baseline (it stops being monitored). Returns it.
    pub fn remove(&mut self, id: u32) -> Option<IpBaseline> {
        let e = self.entries.get_mut(id as usize)?;
        if e.next_tick == UNSEEN {
            return None;
        }
        self.seen -= 1;
        Some(std::mem::replace(e, Entry::unseen()).base)
    }

    /// Every IP with a baseline, by ascending id, as last updated (settle first to include
    /// idle ticks).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &IpBaseline)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.next_tick != UNSEEN)
            .map(|(i, e)| (i as u32, &e.base))
    }

    /// Estimated bytes of memory held: the id-indexed vector (by capacity) plus each heap
    /// block rounded as a glibc-style allocator does (16-byte granules, 8-byte header,
    /// 32-byte minimum). O(ids).
    pub fn memory_bytes(&self) -> usize {
        let inline = self.entries.capacity() * std::mem::size_of::<Entry>();
        let heap: usize = self
            .entries
            .iter()
            .map(|e| alloc_estimate(e.base.heap_bytes()))
            .sum();
        inline + heap
    }
}

/// Bytes a `malloc(n)` takes, glibc-style; 0 for no allocation.
pub(crate) fn alloc_estimate(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

impl BaselineStore {
    /// Installs a baseline loaded from a file for `id` (an id not observed yet), as of the
    /// current tick. Ignored when `id` already has a baseline.
    pub fn restore(&mut self, id: u32, base: IpBaseline) {
        let now = self.now;
        let e = self.slot(id);
        if e.next_tick != UNSEEN {
            return;
        }
        e.base = base;
        e.next_tick = now;
        self.seen += 1;
    }
}
