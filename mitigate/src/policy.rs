//! The state machine: incidents and rules, actions out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use surgewatch_detect::{EventKind, IncidentEvent};
use surgewatch_per_ip::GroupId;

use crate::config::{Mode, PolicyConfig};
use crate::rule::{host, rules_for, Rule, RuleKey};

/// Number of an action, from 1, in order of emission; [`Policy::handle_outcome`] refers to
/// it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u64);

/// Why a rule is withdrawn.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WithdrawReason {
    /// Its incident ended (and the hold-down passed).
    Ended,
    /// The incident went down the ladder.
    Deescalated,
    /// The incident went up the ladder to a level with other rules.
    Escalated,
    /// The fingerprint changed: another rule covers the attack now.
    Replaced,
    /// Its incident had no event for a whole TTL (stuck open).
    Expired,
    /// [`Policy::shutdown`].
    Shutdown,
}

/// Why a rule is refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// A network incident: many addresses, no host to protect.
    NetworkIncident,
    /// The target is outside the monitored prefixes.
    OutsideMonitored,
    /// The target is on the `never` list.
    NeverList,
    /// The target has [`PolicyConfig::max_rules_per_target`] rules already.
    PerTargetCap,
    /// [`PolicyConfig::max_rules`] rules are in force already.
    GlobalCap,
}

/// What to do with a rule.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Put it in force (new, or a changed action of the same rule).
    Announce,
    /// Announce it again with a later expiry.
    Refresh,
    /// Take it out of force.
    Withdraw(WithdrawReason),
    /// Not done (nothing to execute).
    Refused(RefuseReason),
}

/// One action for the caller to execute (or record, in dry-run).
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// Its number.
    pub id: ActionId,
    /// When it was decided (the `now_ns` of the call that queued it).
    pub ts_ns: u64,
    /// What to do.
    pub op: Op,
    /// With which rule.
    pub rule: Rule,
    /// Dry-run or enforce.
    pub mode: Mode,
}

/// The result of an executed action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Not executed: dry-run.
    DryRun,
    /// Failed (the speaker is down, refused the command...).
    Error(String),
}

/// Counters, for metrics.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Announce actions.
    pub announced: u64,
    /// Refresh actions.
    pub refreshed: u64,
    /// Withdraw actions.
    pub withdrawn: u64,
    /// Refused: network incidents.
    pub refused_network: u64,
    /// Refused: outside the monitored prefixes.
    pub refused_outside: u64,
    /// Refused: on the never list.
    pub refused_never: u64,
    /// Refused: per-target cap.
    pub refused_per_target_cap: u64,
    /// Refused: global cap.
    pub refused_global_cap: u64,
    /// Outcomes that were errors.
    pub errors: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Actions given up after the last attempt (or failed during shutdown).
    pub failed: u64,
    /// Incidents dropped after a TTL without events.
    pub expired_incidents: u64,
}

type IncidentKey = (IpAddr, Option<u8>);

/// Per-target-cap refusals remembered per incident (so each is reported once).
const MAX_REMEMBERED_REFUSALS: usize = 64;

#[derive(Clone, Debug)]
struct Incident {
    id: u64,
    group: GroupId,
    level: u8,
    /// The level whose rules were last set (for the withdraw reason).
    applied_level: u8,
    /// Since when the rate is below the current level, and the highest level crossed since.
    below: Option<(u64, u8)>,
    last_event_ns: u64,
    ended_ns: Option<u64>,
    /// The last event, without its timeline: the fingerprint rules are built from.
    ev: IncidentEvent,
    refused: Option<RefuseReason>,
    refusal_sent: bool,
    cap_refused: BTreeSet<RuleKey>,
}

#[derive(Clone, Debug)]
struct InFlight {
    id: ActionId,
    sent_ns: u64,
    prev_installed: Option<Rule>,
    prev_sent_ns: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    incident: IncidentKey,
    desired: Option<Rule>,
    installed: Option<Rule>,
    last_change_ns: Option<u64>,
    last_sent_ns: u64,
    withdraw_reason: WithdrawReason,
    retry_at: Option<u64>,
    attempts: u32,
    gave_up: bool,
    refused_global: bool,
    in_flight: Option<InFlight>,
}

impl Slot {
    fn needs_change(&self) -> bool {
        match (&self.desired, &self.installed) {
            (Some(d), Some(i)) => !d.same_effect(i),
            (Some(_), None) | (None, Some(_)) => true,
            (None, None) => false,
        }
    }
}

/// The mitigation policy; see the crate docs for the call order.
#[derive(Debug)]
pub struct Policy {
    cfg: PolicyConfig,
    incidents: BTreeMap<IncidentKey, Incident>,
    slots: BTreeMap<RuleKey, Slot>,
    pending: BTreeMap<ActionId, RuleKey>,
    queue: VecDeque<Action>,
    next_id: u64,
    stats: Stats,
    shutting_down: bool,
}

impl Policy {
    /// A policy with no incidents and no rules.
    pub fn new(cfg: PolicyConfig) -> Self {
        Policy {
            cfg,
            incidents: BTreeMap::new(),
            slots: BTreeMap::new(),
            pending: BTreeMap::new(),
            queue: VecDeque::new(),
            next_id: 1,
            stats: Stats::default(),
            shutting_down: false,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The rules in force (announced, not withdrawn), by destination and match.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.slots.values().filter_map(|s| s.installed.as_ref())
    }

    /// Incidents the policy follows.
    pub fn incidents(&self) -> usize {
        self.incidents.len()
    }

    /// No rule in force, none wanted, no action queued: after [`Policy::shutdown`], the
    /// caller may stop.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.slots.is_empty()
    }

    /// An incident event, as the detector emitted it, at `now_ns`.
    pub fn handle_event(&mut self, now_ns: u64, ev: &IncidentEvent) {
        if self.shutting_down {
            return;
        }
        let key = (ev.target, ev.prefix_len);
        let fresh = self
            .incidents
            .get(&key)
            .is_none_or(|i| i.id != ev.incident_id);
        if fresh {
            if ev.kind == EventKind::End {
                // The end of an incident we never saw (or already dropped): nothing to do.
                return;
            }
            let refused = self.refusal(ev);
            let incident = Incident {
                id: ev.incident_id,
                group: ev.group,
                level: 0,
                applied_level: 0,
                below: None,
                last_event_ns: now_ns,
                ended_ns: None,
                ev: stripped(ev),
                refused,
                refusal_sent: false,
                cap_refused: BTreeSet::new(),
            };
            self.incidents.insert(key, incident);
        }
        let ladder = self.cfg.ladder(ev.group);
        if let Some(inc) = self.incidents.get_mut(&key) {
            inc.last_event_ns = now_ns;
            match ev.kind {
                EventKind::End => inc.ended_ns = Some(now_ns),
                EventKind::Start | EventKind::Update => {
                    inc.ev = stripped(ev);
                    let mut crossed = 0u8;
                    for (i, level) in ladder.levels.iter().enumerate() {
                        if level.crossed(ev.bps, ev.pps) {
                            crossed = u8::try_from(i + 1).unwrap_or(u8::MAX);
                        }
                    }
                    if crossed >= inc.level {
                        inc.level = crossed;
                        inc.below = None;
                    } else {
                        inc.below = Some(match inc.below {
                            None => (now_ns, crossed),
                            Some((since, most)) => (since, most.max(crossed)),
                        });
                    }
                }
            }
        }
        self.advance(now_ns, Some(key));
    }

    /// The outcome of action `id`. Outcomes of unknown or superseded actions are ignored.
    pub fn handle_outcome(&mut self, now_ns: u64, id: ActionId, outcome: Outcome) {
        let Some(key) = self.pending.remove(&id) else {
            return;
        };
        let retry = self.cfg.retry;
        let shutting_down = self.shutting_down;
        let Some(slot) = self.slots.get_mut(&key) else {
            return;
        };
        let Some(flight) = slot.in_flight.take_if(|f| f.id == id) else {
            return;
        };
        match outcome {
            Outcome::Ok | Outcome::DryRun => slot.attempts = 0,
            Outcome::Error(_) => {
                self.stats.errors += 1;
                // What we sent did not happen.
                slot.installed = flight.prev_installed;
                slot.last_sent_ns = flight.prev_sent_ns;
                slot.attempts = slot.attempts.saturating_add(1);
                if shutting_down || slot.attempts >= retry.max_attempts {
                    self.stats.failed += 1;
                    slot.gave_up = !shutting_down;
                    if shutting_down {
                        // Nothing more will be tried: forget it.
                        slot.installed = None;
                    }
                } else {
                    let shift = (slot.attempts - 1).min(63);
                    let delay = retry
                        .initial_ns
                        .checked_shl(shift)
                        .unwrap_or(u64::MAX)
                        .min(retry.max_ns);
                    slot.retry_at = Some(now_ns.saturating_add(delay));
                    self.stats.retries += 1;
                }
            }
        }
        self.sync(now_ns);
    }

    /// Withdraw everything and ignore later events. Keep serving actions and timeouts
    /// until [`Policy::is_idle`].
    pub fn shutdown(&mut self, now_ns: u64) {
        self.shutting_down = true;
        self.incidents.clear();
        for slot in self.slots.values_mut() {
            if slot.desired.take().is_some() || slot.installed.is_some() {
                slot.withdraw_reason = WithdrawReason::Shutdown;
            }
            slot.retry_at = None;
            slot.gave_up = false;
        }
        self.sync(now_ns);
    }

    /// The next action, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.queue.pop_front()
    }

    /// When [`Policy::handle_timeout`] is next due, ns; `None`: not before the next event.
    /// A deadline at or before the clock (an event came in after it passed) is due at once.
    /// After `handle_timeout(now)` the next deadline is always later than `now`.
    pub fn poll_timeout(&self) -> Option<u64> {
        let ttl = self.cfg.ttl_ns;
        let mut next: Option<u64> = None;
        let mut at = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        for inc in self.incidents.values() {
            let hold = self.cfg.ladder(inc.group).hold_down_ns;
            at(inc.last_event_ns.saturating_add(ttl));
            match inc.ended_ns {
                Some(end) => at(end.saturating_add(hold)),
                None => {
                    if let Some((since, _)) = inc.below {
                        at(since.saturating_add(hold));
                    }
                }
            }
        }
        let wait = self.outcome_wait();
        for slot in self.slots.values() {
            if slot.desired.is_none() && slot.installed.is_none() {
                // Only waiting for a withdraw's outcome.
                if let (Some(f), Some(wait), None) = (&slot.in_flight, wait, slot.retry_at) {
                    at(f.sent_ns.saturating_add(wait));
                }
            }
            if let Some(r) = slot.retry_at {
                at(r);
                continue;
            }
            // Given up, or waiting for room under the global cap: no timer brings either.
            if slot.gave_up || slot.refused_global {
                continue;
            }
            if slot.needs_change() {
                if let Some(last) = slot.last_change_ns {
                    at(last.saturating_add(self.cfg.coalesce_ns));
                }
            } else if slot.installed.is_some() && self.event_since_sent(slot) {
                at(slot.last_sent_ns.saturating_add(ttl / 2));
            }
        }
        next
    }

    /// The clock reached (or passed) [`Policy::poll_timeout`].
    pub fn handle_timeout(&mut self, now_ns: u64) {
        self.advance(now_ns, None);
    }

    /// How long a withdrawn rule waits for its outcome: in enforce mode, the longest retry
    /// delay; in dry-run, not at all.
    fn outcome_wait(&self) -> Option<u64> {
        (self.cfg.mode == Mode::Enforce).then_some(self.cfg.retry.max_ns)
    }

    fn event_since_sent(&self, slot: &Slot) -> bool {
        self.incidents
            .get(&slot.incident)
            .is_some_and(|i| i.last_event_ns > slot.last_sent_ns)
    }

    fn refusal(&self, ev: &IncidentEvent) -> Option<RefuseReason> {
        if ev.prefix_len.is_some() {
            Some(RefuseReason::NetworkIncident)
        } else if !self.cfg.monitored.iter().any(|n| n.contains(&ev.target)) {
            Some(RefuseReason::OutsideMonitored)
        } else if self.cfg.never.iter().any(|n| n.contains(&ev.target)) {
            Some(RefuseReason::NeverList)
        } else {
            None
        }
    }

    fn emit(&mut self, now_ns: u64, op: Op, rule: Rule) -> ActionId {
        let id = ActionId(self.next_id);
        self.next_id += 1;
        match op {
            Op::Announce => self.stats.announced += 1,
            Op::Refresh => self.stats.refreshed += 1,
            Op::Withdraw(_) => self.stats.withdrawn += 1,
            Op::Refused(r) => match r {
                RefuseReason::NetworkIncident => self.stats.refused_network += 1,
                RefuseReason::OutsideMonitored => self.stats.refused_outside += 1,
                RefuseReason::NeverList => self.stats.refused_never += 1,
                RefuseReason::PerTargetCap => self.stats.refused_per_target_cap += 1,
                RefuseReason::GlobalCap => self.stats.refused_global_cap += 1,
            },
        }
        self.queue.push_back(Action {
            id,
            ts_ns: now_ns,
            op,
            rule,
            mode: self.cfg.mode,
        });
        id
    }

    /// Timers of the incidents, then what each wants, then the rules.
    fn advance(&mut self, now_ns: u64, only: Option<IncidentKey>) {
        let keys: Vec<IncidentKey> = match only {
            Some(key) => vec![key],
            None => self.incidents.keys().copied().collect(),
        };
        for key in keys {
            self.update_incident(now_ns, key);
        }
        self.sync(now_ns);
    }

    /// Applies the incident's deadlines and sets what its slots want.
    fn update_incident(&mut self, now_ns: u64, key: IncidentKey) {
        let ttl = self.cfg.ttl_ns;
        let Some(inc) = self.incidents.get_mut(&key) else {
            return;
        };
        let ladder = self.cfg.ladder(inc.group).clone();
        let hold = ladder.hold_down_ns;
        let old_level = inc.applied_level;
        if inc.ended_ns.is_none() {
            if let Some((since, most)) = inc.below {
                if now_ns >= since.saturating_add(hold) {
                    inc.level = most;
                    inc.below = None;
                }
            }
        }
        let gone = if inc
            .ended_ns
            .is_some_and(|end| now_ns >= end.saturating_add(hold))
        {
            Some(WithdrawReason::Ended)
        } else if now_ns >= inc.last_event_ns.saturating_add(ttl) {
            self.stats.expired_incidents += 1;
            Some(WithdrawReason::Expired)
        } else {
            None
        };
        let level = inc.level;
        inc.applied_level = level;
        let mut wanted: Vec<Rule> = Vec::new();
        let mut refusals: Vec<(RefuseReason, Rule)> = Vec::new();
        if gone.is_none() && level > 0 {
            let action = ladder.levels.get(usize::from(level) - 1).map(|l| l.action);
            if let Some(action) = action {
                let rules = rules_for(&inc.ev, level, action, &ladder);
                match inc.refused {
                    Some(reason) => {
                        if !inc.refusal_sent {
                            inc.refusal_sent = true;
                            if let Some(mut rule) = rules.into_iter().next() {
                                if let Some(len) = key.1 {
                                    rule.destination =
                                        IpNet::new(key.0, len).unwrap_or(host(key.0));
                                }
                                refusals.push((reason, rule));
                            }
                        }
                    }
                    None => {
                        let cap = self.cfg.max_rules_per_target;
                        for (i, rule) in rules.into_iter().enumerate() {
                            if i < cap {
                                wanted.push(rule);
                            } else {
                                // Bounded: a fingerprint that keeps changing may refuse a
                                // key a second time rather than grow the set.
                                if inc.cap_refused.len() >= MAX_REMEMBERED_REFUSALS {
                                    inc.cap_refused.clear();
                                }
                                if !inc.cap_refused.insert(rule.key()) {
                                    continue;
                                }
                                refusals.push((RefuseReason::PerTargetCap, rule));
                            }
                        }
                    }
                }
            }
        }
        let reason = match gone {
            Some(r) => r,
            None if level < old_level => WithdrawReason::Deescalated,
            None if level > old_level => WithdrawReason::Escalated,
            None => WithdrawReason::Replaced,
        };
        if gone.is_some() {
            self.incidents.remove(&key);
        }
        for (r, rule) in refusals {
            self.emit(now_ns, Op::Refused(r), rule);
        }
        // What this incident wants; its other slots want nothing.
        let wanted_keys: BTreeSet<RuleKey> = wanted.iter().map(Rule::key).collect();
        for slot in self.slots.values_mut().filter(|s| s.incident == key) {
            let still = slot
                .desired
                .as_ref()
                .is_some_and(|d| wanted_keys.contains(&d.key()));
            if !still && slot.desired.take().is_some() {
                slot.withdraw_reason = reason;
                slot.refused_global = false;
            }
        }
        for rule in wanted {
            let slot = self.slots.entry(rule.key()).or_insert_with(|| Slot {
                incident: key,
                desired: None,
                installed: None,
                last_change_ns: None,
                last_sent_ns: 0,
                withdraw_reason: WithdrawReason::Replaced,
                retry_at: None,
                attempts: 0,
                gave_up: false,
                refused_global: false,
                in_flight: None,
            });
            slot.incident = key;
            if !slot.desired.as_ref().is_some_and(|d| *d == rule) {
                slot.gave_up = false;
                slot.attempts = 0;
                slot.desired = Some(rule);
            }
        }
    }

    /// Brings the rules in force to what is wanted: announces first (a new level is in
    /// force before the old one leaves), then withdrawals, then refreshes.
    fn sync(&mut self, now_ns: u64) {
        let ttl = self.cfg.ttl_ns;
        let coalesce = self.cfg.coalesce_ns;
        // Rules in force, those about to be withdrawn included (a rule whose withdraw
        // failed is still in force on the routers).
        let mut in_force = self
            .slots
            .values()
            .filter(|s| s.installed.is_some())
            .count();
        let keys: Vec<RuleKey> = self.slots.keys().cloned().collect();
        let mut actions: Vec<(RuleKey, Op, Rule)> = Vec::new();
        // 0: announces that fit; 1: withdrawals; 2: announces that fit now, the rest
        // refused; 3: refreshes.
        for phase in 0..4 {
            for key in &keys {
                let events_since = self
                    .slots
                    .get(key)
                    .is_some_and(|s| self.event_since_sent(s));
                let Some(slot) = self.slots.get_mut(key) else {
                    continue;
                };
                if slot.gave_up || slot.retry_at.is_some_and(|r| now_ns < r) {
                    continue;
                }
                slot.retry_at = None;
                let blocked = slot
                    .last_change_ns
                    .is_some_and(|last| now_ns < last.saturating_add(coalesce));
                match (phase, &slot.desired, &slot.installed) {
                    (0 | 2, Some(want), installed) if slot.needs_change() && !blocked => {
                        if installed.is_none() {
                            if in_force >= self.cfg.max_rules {
                                if phase == 2 && !slot.refused_global {
                                    slot.refused_global = true;
                                    actions.push((
                                        key.clone(),
                                        Op::Refused(crate::RefuseReason::GlobalCap),
                                        want.clone(),
                                    ));
                                }
                                continue;
                            }
                            in_force += 1;
                        }
                        let rule = Rule {
                            expires_ns: now_ns.saturating_add(ttl),
                            ..want.clone()
                        };
                        slot.refused_global = false;
                        actions.push((key.clone(), Op::Announce, rule));
                    }
                    (1, None, Some(installed)) if !blocked => {
                        in_force = in_force.saturating_sub(1);
                        actions.push((
                            key.clone(),
                            Op::Withdraw(slot.withdraw_reason),
                            installed.clone(),
                        ));
                    }
                    (3, Some(_), Some(installed))
                        if !slot.needs_change()
                            && events_since
                            && now_ns >= slot.last_sent_ns.saturating_add(ttl / 2) =>
                    {
                        let rule = Rule {
                            expires_ns: now_ns.saturating_add(ttl),
                            ..installed.clone()
                        };
                        actions.push((key.clone(), Op::Refresh, rule));
                    }
                    _ => {}
                }
            }
            for (key, op, rule) in actions.drain(..) {
                let id = self.emit(now_ns, op, rule.clone());
                let Some(slot) = self.slots.get_mut(&key) else {
                    continue;
                };
                let prev_installed = slot.installed.clone();
                let prev_sent_ns = slot.last_sent_ns;
                match op {
                    Op::Refused(_) => continue,
                    Op::Announce => {
                        slot.installed = Some(rule);
                        slot.last_change_ns = Some(now_ns);
                        slot.last_sent_ns = now_ns;
                    }
                    Op::Refresh => {
                        slot.installed = Some(rule);
                        slot.last_sent_ns = now_ns;
                    }
                    Op::Withdraw(_) => {
                        slot.installed = None;
                        slot.last_change_ns = Some(now_ns);
                    }
                }
                if let Some(old) = slot.in_flight.replace(InFlight {
                    id,
                    sent_ns: now_ns,
                    prev_installed,
                    prev_sent_ns,
                }) {
                    self.pending.remove(&old.id);
                }
                self.pending.insert(id, key);
            }
        }
        // Forget slots with nothing in force, nothing wanted, nothing to retry.
        let wait = self.outcome_wait();
        let pending = &mut self.pending;
        // In enforce mode a withdrawn rule is kept until its outcome is known (a failed
        // withdraw is retried), or for `retry.max_ns`; in dry-run an unreported action
        // counts as done at once.
        self.slots.retain(|_, s| {
            let keep = s.desired.is_some()
                || s.installed.is_some()
                || s.retry_at.is_some()
                || s.in_flight
                    .as_ref()
                    .zip(wait)
                    .is_some_and(|(f, wait)| now_ns < f.sent_ns.saturating_add(wait));
            if !keep {
                if let Some(f) = &s.in_flight {
                    pending.remove(&f.id);
                }
            }
            keep
        });
    }
}

/// The event without its timeline (only end events carry one; rules never use it).
fn stripped(ev: &IncidentEvent) -> IncidentEvent {
    IncidentEvent {
        timeline: Vec::new(),
        ..ev.clone()
    }
}
