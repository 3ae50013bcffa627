//! The policy's configuration: domain values (bits per second, nanoseconds), already
//! validated by `tuning` and mapped by the sensor.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use surgewatch_per_ip::GroupId;

use crate::rule::Community;

/// Whether actions are to be executed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Mode {
    /// Compute and report actions, execute none (the default).
    #[default]
    DryRun,
    /// Execute the actions.
    Enforce,
}

/// What a level of the ladder does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LevelAction {
    /// FlowSpec rules from the fingerprint, rate-limited.
    FlowspecRateLimit,
    /// FlowSpec rules from the fingerprint, discarding.
    FlowspecDiscard,
    /// Remotely triggered black hole of the target's /32 or /128.
    Rtbh,
    /// Hand the target to the scrubbing provider.
    Scrubbing,
}

/// One rung of a ladder: crossed when the incident's current rate is above `at_bps` or
/// above `at_pps` (a `None` never crosses).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// Bits per second above which the level applies.
    pub at_bps: Option<u64>,
    /// Packets per second above which the level applies.
    pub at_pps: Option<u64>,
    /// What it does.
    pub action: LevelAction,
}

impl Level {
    /// Whether a rate crosses this level.
    pub fn crossed(&self, bps: u64, pps: u64) -> bool {
        self.at_bps.is_some_and(|at| bps > at) || self.at_pps.is_some_and(|at| pps > at)
    }
}

/// The ladder of one group, with the values its rules are built from.
#[derive(Clone, Debug, PartialEq)]
pub struct Ladder {
    /// The levels, lowest first; level `n` is `levels[n - 1]`. Escalation picks the highest
    /// level crossed, so the order is the operator's, not re-sorted here.
    pub levels: Vec<Level>,
    /// How long the rate must stay below the current level before de-escalating, and how
    /// long rules stay after the incident ended.
    pub hold_down_ns: u64,
    /// Communities of RTBH routes besides [`crate::BLACKHOLE`] (65535:666).
    pub communities: Vec<Community>,
    /// Next hop of IPv4 RTBH routes; `None`: the speaker's own (e.g. its discard route).
    pub next_hop_v4: Option<IpAddr>,
    /// Next hop of IPv6 RTBH routes.
    pub next_hop_v6: Option<IpAddr>,
    /// Rate limit = this × the target's normal rate (the incident's threshold).
    pub rate_limit_multiple: f64,
    /// The least rate limit, bits per second.
    pub rate_limit_floor_bps: u64,
}

const MBPS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

impl Default for Ladder {
    fn default() -> Self {
        let at = |mbps: u64, action| Level {
            at_bps: Some(mbps * MBPS),
            at_pps: None,
            action,
        };
        Ladder {
            levels: vec![
                at(100, LevelAction::FlowspecRateLimit),
                at(500, LevelAction::FlowspecDiscard),
                at(2_000, LevelAction::Rtbh),
                at(5_000, LevelAction::Scrubbing),
            ],
            hold_down_ns: 60 * SEC,
            communities: Vec::new(),
            next_hop_v4: None,
            next_hop_v6: None,
            rate_limit_multiple: 1.0,
            rate_limit_floor_bps: 10 * MBPS,
        }
    }
}

/// Retries of actions whose outcome was an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Delay before the first retry; doubled for each further one.
    pub initial_ns: u64,
    /// Longest delay.
    pub max_ns: u64,
    /// Attempts in all (the first one included) before giving up; at least 1.
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_ns: SEC,
            max_ns: 60 * SEC,
            max_attempts: 5,
        }
    }
}

/// Everything the policy is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyConfig {
    /// Dry-run (default) or enforce; carried in every action.
    pub mode: Mode,
    /// Lifetime of a rule after its announce or refresh.
    pub ttl_ns: u64,
    /// Most rules in force at once.
    pub max_rules: usize,
    /// Most rules in force per target.
    pub max_rules_per_target: usize,
    /// The monitored prefixes: a rule's destination must be inside one.
    pub monitored: Vec<IpNet>,
    /// Prefixes never to act on (routers, resolvers, the sensor itself).
    pub never: Vec<IpNet>,
    /// The ladder of groups without one of their own.
    pub defaults: Ladder,
    /// Per-group ladders.
    pub groups: BTreeMap<GroupId, Ladder>,
    /// Least time between two changes of one rule.
    pub coalesce_ns: u64,
    /// Retries of failed actions.
    pub retry: RetryConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mode: Mode::DryRun,
            ttl_ns: 300 * SEC,
            max_rules: 100,
            max_rules_per_target: 8,
            monitored: Vec::new(),
            never: Vec::new(),
            defaults: Ladder::default(),
            groups: BTreeMap::new(),
            coalesce_ns: 100_000_000,
            retry: RetryConfig::default(),
        }
    }
}

impl PolicyConfig {
    /// The ladder of `group`.
    pub fn ladder(&self, group: GroupId) -> &Ladder {
        self.groups.get(&group).unwrap_or(&self.defaults)
    }
}
