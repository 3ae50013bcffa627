//! `[mitigation]`, `[group.mitigation]` and `[[mitigation.speaker]]`: the schema of the
//! mitigation policy and of the BGP speakers it drives.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::units::serde_with;

/// Whether mitigation actions are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MitigationMode {
    /// Compute and report actions, execute none (the default).
    #[default]
    DryRun,
    /// Execute them; must be set explicitly.
    Enforce,
}

/// What a level of the ladder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MitigationAction {
    /// `"flowspec-rate-limit"`: FlowSpec rules from the fingerprint, rate-limited.
    FlowspecRateLimit,
    /// `"flowspec-discard"`: FlowSpec rules from the fingerprint, discarding.
    FlowspecDiscard,
    /// `"rtbh"`: black-hole the target's /32 or /128.
    Rtbh,
    /// `"scrubbing"`: hand the target to the scrubbing provider.
    Scrubbing,
}

/// One level of the ladder: `{ at_mbps = 100, at_pps = 200000, action = "..." }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LevelConfig {
    /// The level applies above this rate, Mbit/s (> 0).
    #[serde(default)]
    pub at_mbps: Option<f64>,
    /// The level applies above this rate, packets/s (≥ 1). With both, either crosses.
    #[serde(default, deserialize_with = "serde_with::opt_positive_u64")]
    pub at_pps: Option<std::num::NonZeroU64>,
    /// What it does.
    pub action: MitigationAction,
}

impl LevelConfig {
    /// A level at `at_mbps` doing `action`.
    pub fn new(at_mbps: f64, action: MitigationAction) -> Self {
        LevelConfig {
            at_mbps: Some(at_mbps),
            at_pps: None,
            action,
        }
    }
}

/// A BGP community: `"65000:100"` (RFC 1997) or `"65000:1:2"` (large, RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Community {
    /// `ASN:VALUE`, each 0..=65535.
    Standard(u16, u16),
    /// `GLOBAL:LOCAL1:LOCAL2`, each 0..=4294967295.
    Large(u32, u32, u32),
}

impl std::str::FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || {
            format!(
                "invalid community {s:?}: expected \"ASN:VALUE\" (0..=65535 each) or a large \
                 community \"GLOBAL:LOCAL1:LOCAL2\""
            )
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !parts.iter().all(|p| digits(p)) {
            return Err(bad());
        }
        match parts.as_slice() {
            [a, b] => Ok(Community::Standard(
                a.parse().map_err(|_| bad())?,
                b.parse().map_err(|_| bad())?,
            )),
            [a, b, c] => Ok(Community::Large(
                a.parse().map_err(|_| bad())?,
                b.parse().map_err(|_| bad())?,
                c.parse().map_err(|_| bad())?,
            )),
            _ => Err(bad()),
        }
    }
}

impl<'de> Deserialize<'de> for Community {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[mitigation]`: the mitigation policy. Absent: no mitigation at all.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MitigationConfig {
    /// `"dry-run"` (default: actions are reported, not executed) or `"enforce"`.
    #[serde(default)]
    pub mode: MitigationMode,
    /// Lifetime of a rule unless refreshed (it is, while its incident goes on);
    /// `10s..=24h`. Default `"5m"`.
    #[serde(default = "default_ttl", deserialize_with = "serde_with::duration")]
    pub ttl: Duration,
    /// Most rules in force at once, at most 10000. Default `100`.
    #[serde(
        default = "default_max_rules",
        deserialize_with = "serde_with::positive_u32"
    )]
    pub max_rules: NonZeroU32,
    /// Most rules in force per target, at most `max_rules`. Default `8`.
    #[serde(
        default = "default_max_rules_per_target",
        deserialize_with = "serde_with::positive_u32"
    )]
    pub max_rules_per_target: NonZeroU32,
    /// Prefixes never acted on (routers, resolvers, the sensor itself), strict CIDR.
    #[serde(default, deserialize_with = "serde_with::cidrs")]
    pub never: Vec<IpNet>,
    /// Time the rate must stay below a level before de-escalating, and rules stay after
    /// the incident ended; at most `1h`. Default `"60s"`.
    #[serde(
        default = "default_hold_down",
        deserialize_with = "serde_with::duration"
    )]
    pub hold_down: Duration,
    /// The ladder, lowest first, 0 to 8 levels with ascending thresholds (empty: no
    /// rules). Default: flowspec-rate-limit > 100, flowspec-discard > 500, rtbh > 2000,
    /// scrubbing > 5000 Mbit/s.
    #[serde(default = "default_levels")]
    pub levels: Vec<LevelConfig>,
    /// Communities of RTBH routes besides 65535:666 (BLACKHOLE, always there).
    #[serde(default)]
    pub communities: Vec<Community>,
    /// IPv4 next hop of RTBH routes (an IPv4 address); absent: the speaker's own.
    #[serde(default)]
    pub next_hop: Option<IpAddr>,
    /// IPv6 next hop of RTBH routes (an IPv6 address); absent: the speaker's own.
    #[serde(default)]
    pub next_hop_v6: Option<IpAddr>,
    /// FlowSpec rate limit = this × the target's normal rate (> 0). Default `1.0`.
    #[serde(default = "default_rate_limit_multiple")]
    pub rate_limit_multiple: f64,
    /// The least FlowSpec rate limit, Mbit/s (> 0). Default `10.0`.
    #[serde(default = "default_rate_limit_floor_mbps")]
    pub rate_limit_floor_mbps: f64,
    /// `[[mitigation.speaker]]`: the BGP speakers the actions go to (decoded one by one,
    /// by `kind`).
    #[serde(skip)]
    pub speakers: Vec<SpeakerConfig>,
}

impl Default for MitigationConfig {
    fn default() -> Self {
        MitigationConfig {
            mode: MitigationMode::DryRun,
            ttl: default_ttl(),
            max_rules: default_max_rules(),
            max_rules_per_target: default_max_rules_per_target(),
            never: Vec::new(),
            hold_down: default_hold_down(),
            levels: default_levels(),
            communities: Vec::new(),
            next_hop: None,
            next_hop_v6: None,
            rate_limit_multiple: default_rate_limit_multiple(),
            rate_limit_floor_mbps: default_rate_limit_floor_mbps(),
            speakers: Vec::new(),
        }
    }
}

/// `[group.mitigation]`: a group's own ladder; every key optional, the rest from
/// `[mitigation]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MitigationOverrides {
    /// Overrides [`MitigationConfig::hold_down`].
    #[serde(default, deserialize_with = "serde_with::opt_duration")]
    pub hold_down: Option<Duration>,
    /// Overrides [`MitigationConfig::levels`] (`[]`: never mitigate this group).
    #[serde(default)]
    pub levels: Option<Vec<LevelConfig>>,
    /// Overrides [`MitigationConfig::communities`].
    #[serde(default)]
    pub communities: Option<Vec<Community>>,
    /// Overrides [`MitigationConfig::next_hop`].
    #[serde(default)]
    pub next_hop: Option<IpAddr>,
    /// Overrides [`MitigationConfig::next_hop_v6`].
    #[serde(default)]
    pub next_hop_v6: Option<IpAddr>,
    /// Overrides [`MitigationConfig::rate_limit_multiple`].
    #[serde(default)]
    pub rate_limit_multiple: Option<f64>,
    /// Overrides [`MitigationConfig::rate_limit_floor_mbps`].
    #[serde(default)]
    pub rate_limit_floor_mbps: Option<f64>,
}

impl MitigationOverrides {
    /// Whether the group sets anything.
    pub fn is_empty(&self) -> bool {
        *self == MitigationOverrides::default()
    }

    /// `base` with every key set here replaced (the global-only keys stay `base`'s).
    pub fn apply(&self, base: &MitigationConfig) -> MitigationConfig {
        MitigationConfig {
            hold_down: self.hold_down.unwrap_or(base.hold_down),
            levels: self.levels.clone().unwrap_or_else(|| base.levels.clone()),
            communities: self
                .communities
                .clone()
                .unwrap_or_else(|| base.communities.clone()),
            next_hop: self.next_hop.or(base.next_hop),
            next_hop_v6: self.next_hop_v6.or(base.next_hop_v6),
            rate_limit_multiple: self.rate_limit_multiple.unwrap_or(base.rate_limit_multiple),
            rate_limit_floor_mbps: self
                .rate_limit_floor_mbps
                .unwrap_or(base.rate_limit_floor_mbps),
            ..base.clone()
        }
    }
}

/// The kinds of `[[mitigation.speaker]]`.
pub const SPEAKER_KINDS: &[&str] = &["gobgp", "exabgp", "bird", "frr"];

/// One `[[mitigation.speaker]]`: `kind` and that kind's keys.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SpeakerConfig {
    /// `kind = "gobgp"`.
    Gobgp(GobgpSpeaker),
    /// `kind = "exabgp"`.
    Exabgp(ExabgpSpeaker),
    /// `kind = "bird"`.
    Bird(BirdSpeaker),
    /// `kind = "frr"`.
    Frr(FrrSpeaker),
}

/// GoBGP, driven through its gRPC API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GobgpSpeaker {
    /// `gobgpd`'s gRPC API address. Default `"127.0.0.1:50051"`.
    #[serde(default = "default_gobgp_api")]
    pub api: SocketAddr,
}

/// ExaBGP 4.2, through its process API (`exabgp.api.ack=true`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExabgpSpeaker {
    /// Absolute path of the Unix socket through which the helper ExaBGP runs talks to the
    /// sensor. Default `"/run/surgewatch/exabgp.sock"`.
    #[serde(default = "default_exabgp_socket")]
    pub socket: PathBuf,
}

/// BIRD 2: a rendered include file, applied with `birdc configure`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BirdSpeaker {
    /// Absolute path of the include file the sensor writes (required).
    pub include: PathBuf,
    /// Absolute path of BIRD's control socket. Default `"/run/bird/bird.ctl"`.
    #[serde(default = "default_bird_socket")]
    pub socket: PathBuf,
}

/// FRR 8.4 (RTBH only), through `vtysh`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FrrSpeaker {
    /// The local AS of `router bgp` (required, ≥ 1).
    #[serde(deserialize_with = "serde_with::positive_u32")]
    pub asn: NonZeroU32,
    /// Absolute path of the vty socket directory; absent: FRR's default.
    #[serde(default)]
    pub vty_socket: Option<PathBuf>,
}

fn default_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_max_rules() -> NonZeroU32 {
    NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN)
}
fn default_max_rules_per_target() -> NonZeroU32 {
    NonZeroU32::new(8).unwrap_or(NonZeroU32::MIN)
}
fn default_hold_down() -> Duration {
    Duration::from_secs(60)
}
pub(crate) fn default_levels() -> Vec<LevelConfig> {
    vec![
        LevelConfig::new(100.0, MitigationAction::FlowspecRateLimit),
        LevelConfig::new(500.0, MitigationAction::FlowspecDiscard),
        LevelConfig::new(2000.0, MitigationAction::Rtbh),
        LevelConfig::new(5000.0, MitigationAction::Scrubbing),
    ]
}
fn default_rate_limit_multiple() -> f64 {
    1.0
}
fn default_rate_limit_floor_mbps() -> f64 {
    10.0
}
fn default_gobgp_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_exabgp_socket() -> PathBuf {
    PathBuf::from("/run/surgewatch/exabgp.sock")
}
fn default_bird_socket() -> PathBuf {
    PathBuf::from("/run/bird/bird.ctl")
}
