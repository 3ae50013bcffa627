//! The typed configuration: one struct per TOML table, decoded with serde
//! `deny_unknown_fields`, every default in a `default_*` function.

use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::mitigation::{MitigationConfig, MitigationOverrides};
use crate::units::serde_with;

/// Name of the implicit group built from the top-level `monitor` list.
pub const DEFAULT_GROUP_NAME: &str = "default";

/// A complete, validated surgewatch configuration.
///
/// Obtained from [`crate::load`] or [`crate::from_str`], which fold the top-level
/// `monitor = [...]` shorthand into [`Config::groups`] as a group named
/// [`DEFAULT_GROUP_NAME`] (appended last) before returning.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Config {
    /// `[sensor]`: tick, worker and summary settings.
    pub sensor: SensorConfig,
    /// `[detection]`: detection defaults for every group.
    pub detection: DetectionConfig,
    /// `[baseline]`: baseline persistence.
    pub baseline: BaselineConfig,
    /// `[capture]`: live capture (ignored by replay, except `decap`).
    pub capture: CaptureConfig,
    /// `[[group]]` entries, in file order, then the `monitor` shorthand group if any.
    ///
    /// Empty means "no prefixes configured": replay monitors every destination up to
    /// [`SensorConfig::auto_monitor_limit`].
    pub groups: Vec<GroupConfig>,
    /// `[mitigation]`: the mitigation policy and its speakers; `None` (no such table): no
    /// mitigation.
    pub mitigation: Option<MitigationConfig>,
}

impl Config {
    /// Every group with its overrides applied on top of [`Config::detection`], in the
    /// order of [`Config::groups`].
    ///
    /// Prefixes are unique across groups (validated), but may nest: an address that
    /// falls in several groups' prefixes belongs to the group with the longest match.
    pub fn resolved_groups(&self) -> Vec<ResolvedGroup> {
        self.groups
            .iter()
            .map(|g| ResolvedGroup {
                name: g.name.clone(),
                prefixes: g.prefixes.clone(),
                detection: g.detection.apply(&self.detection),
            })
            .collect()
    }
}

/// `[sensor]`: how the sensor ticks, how many workers it runs, what it summarises.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SensorConfig {
    /// Accounting and detection tick: counters are turned into rates and checked once per
    /// tick. Duration string, `100ms..=60s`. Default `"1s"`.
    #[serde(default = "default_tick", deserialize_with = "serde_with::duration")]
    pub tick: Duration,

    /// With no prefixes configured (no `[[group]]`, no `monitor`), replay monitors every
    /// destination address it sees, up to this many addresses; later ones are counted only
    /// in totals. Default `100000`.
    #[serde(
        default = "default_auto_monitor_limit",
        deserialize_with = "serde_with::positive_u32"
    )]
    pub auto_monitor_limit: NonZeroU32,

    /// With prefixes configured, the most addresses inside them that get per-address state
    /// (the tracked-address budget: 0.75-1 KB each with one worker, about 0.28 KB more per
    /// extra worker, see the README);
    /// traffic to the others is counted as untracked. Default `1000000`, at most `100000000`.
    #[serde(
        default = "default_max_tracked_ips",
        deserialize_with = "serde_with::positive_u32"
    )]
    pub max_tracked_ips: NonZeroU32,

    /// When every tracked slot is taken (`max_tracked_ips`, or `auto_monitor_limit` without
    /// prefixes), an untracked destination that receives at least this many packets per
    /// second in a tick is tracked from the next tick on, in place of the tracked address
    /// quiet for longest. `0` turns this off. Default `1000`.
    #[serde(default = "default_admit_untracked_pps")]
    pub admit_untracked_pps: u64,

    /// When more than seven eighths of the tracked slots are taken, addresses without
    /// traffic for this long stop being tracked (their learned baseline is kept, within
    /// bounds, and restored if they come back). `"0s"` turns this off. Default `"5m"`.
    #[serde(
        default = "default_idle_evict",
        deserialize_with = "serde_with::duration"
    )]
    pub idle_evict: Duration,

    /// Worker threads; `0` means one per available core. Default `0`.
    #[serde(default = "default_workers")]
    pub workers: u32,

    /// How many addresses the summary lists, busiest first. `0` lists none. Default `10`.
    #[serde(default = "default_top_n")]
    pub top_n: u32,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            tick: default_tick(),
            auto_monitor_limit: default_auto_monitor_limit(),
            max_tracked_ips: default_max_tracked_ips(),
            admit_untracked_pps: default_admit_untracked_pps(),
            idle_evict: default_idle_evict(),
            workers: default_workers(),
            top_n: default_top_n(),
        }
    }
}

/// Detection settings for one group (`[detection]` holds the defaults for all groups).
///
/// An address is over threshold in a tick when its rate, in total or in any traffic class,
/// is at least the floor **and** at least its threshold: the static threshold while the
/// address is younger than [`warmup`](Self::warmup), afterwards the learned baseline
/// (`baseline_percentile` of the last `baseline_window` of samples × `baseline_multiplier`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DetectionConfig {
    /// Never alert below this many packets per second. Default `1000`.
    #[serde(
        default = "default_floor_pps",
        deserialize_with = "serde_with::positive_u64"
    )]
    pub floor_pps: NonZeroU64,

    /// Never alert below this many megabits per second (> 0). Default `10.0`.
    #[serde(default = "default_floor_mbps")]
    pub floor_mbps: f64,

    /// Packets-per-second threshold used during warm-up. Default `10000`.
    #[serde(
        default = "default_static_pps",
        deserialize_with = "serde_with::positive_u64"
    )]
    pub static_pps: NonZeroU64,

    /// Megabits-per-second threshold used during warm-up (> 0). Default `100.0`.
    #[serde(default = "default_static_mbps")]
    pub static_mbps: f64,

    /// How much history the baseline keeps; one sample per tick, so `window / tick`
    /// samples, at least 1 and at most [`MAX_BASELINE_SAMPLES`](crate::MAX_BASELINE_SAMPLES).
    /// Default `"300s"`.
    #[serde(
        default = "default_baseline_window",
        deserialize_with = "serde_with::duration"
    )]
    pub baseline_window: Duration,

    /// Percentile of the window's samples taken as the baseline, in `(0, 100]`.
    /// Default `99.0`.
    #[serde(default = "default_baseline_percentile")]
    pub baseline_percentile: f64,

    /// Threshold = baseline × this; must be greater than `1.0` (at `1.0` an address's own
    /// normal tail would open incidents). Default `3.0`.
    #[serde(default = "default_baseline_multiplier")]
    pub baseline_multiplier: f64,

    /// How often the percentile is recomputed; at least one tick. Default `"10s"`.
    #[serde(
        default = "default_baseline_recompute",
        deserialize_with = "serde_with::duration"
    )]
    pub baseline_recompute: Duration,

    /// How long an address uses the static thresholds before its baseline takes over.
    /// `"0s"` trusts the baseline from the first sample. Default `"300s"`.
    #[serde(default = "default_warmup", deserialize_with = "serde_with::duration")]
    pub warmup: Duration,

    /// Consecutive ticks over threshold that open an incident. Default `1`.
    #[serde(
        default = "default_start_ticks",
        deserialize_with = "serde_with::positive_u32"
    )]
    pub start_ticks: NonZeroU32,

    /// Consecutive ticks under threshold that close an incident. Default `10`.
    #[serde(
        default = "default_end_ticks",
        deserialize_with = "serde_with::positive_u32"
    )]
    pub end_ticks: NonZeroU32,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            floor_pps: default_floor_pps(),
            floor_mbps: default_floor_mbps(),
            static_pps: default_static_pps(),
            static_mbps: default_static_mbps(),
            baseline_window: default_baseline_window(),
            baseline_percentile: default_baseline_percentile(),
            baseline_multiplier: default_baseline_multiplier(),
            baseline_recompute: default_baseline_recompute(),
            warmup: default_warmup(),
            start_ticks: default_start_ticks(),
            end_ticks: default_end_ticks(),
        }
    }
}

impl DetectionConfig {
    /// Number of one-tick samples the baseline window holds (`baseline_window / tick`,
    /// rounded down). Validation guarantees `1..=MAX_BASELINE_SAMPLES` for the config's tick.
    pub fn baseline_samples(&self, tick: Duration) -> u64 {
        if tick.is_zero() {
            return 0;
        }
        (self.baseline_window.as_nanos() / tick.as_nanos()).min(u64::MAX as u128) as u64
    }
}

/// `[group.detection]`: per-group overrides; every key of [`DetectionConfig`], all optional.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DetectionOverrides {
    /// Overrides [`DetectionConfig::floor_pps`].
    #[serde(default, deserialize_with = "serde_with::opt_positive_u64")]
    pub floor_pps: Option<NonZeroU64>,
    /// Overrides [`DetectionConfig::floor_mbps`].
    #[serde(default)]
    pub floor_mbps: Option<f64>,
    /// Overrides [`DetectionConfig::static_pps`].
    #[serde(default, deserialize_with = "serde_with::opt_positive_u64")]
    pub static_pps: Option<NonZeroU64>,
    /// Overrides [`DetectionConfig::static_mbps`].
    #[serde(default)]
    pub static_mbps: Option<f64>,
    /// Overrides [`DetectionConfig::baseline_window`].
    #[serde(default, deserialize_with = "serde_with::opt_duration")]
    pub baseline_window: Option<Duration>,
    /// Overrides [`DetectionConfig::baseline_percentile`].
    #[serde(default)]
    pub baseline_percentile: Option<f64>,
    /// Overrides [`DetectionConfig::baseline_multiplier`].
    #[serde(default)]
    pub baseline_multiplier: Option<f64>,
    /// Overrides [`DetectionConfig::baseline_recompute`].
    #[serde(default, deserialize_with = "serde_with::opt_duration")]
    pub baseline_recompute: Option<Duration>,
    /// Overrides [`DetectionConfig::warmup`].
    #[serde(default, deserialize_with = "serde_with::opt_duration")]
    pub warmup: Option<Duration>,
    /// Overrides [`DetectionConfig::start_ticks`].
    #[serde(default, deserialize_with = "serde_with::opt_positive_u32")]
    pub start_ticks: Option<NonZeroU32>,
    /// Overrides [`DetectionConfig::end_ticks`].
    #[serde(default, deserialize_with = "serde_with::opt_positive_u32")]
    pub end_ticks: Option<NonZeroU32>,
}

impl DetectionOverrides {
    /// `base` with every key set here replaced.
    pub fn apply(&self, base: &DetectionConfig) -> DetectionConfig {
        DetectionConfig {
            floor_pps: self.floor_pps.unwrap_or(base.floor_pps),
            floor_mbps: self.floor_mbps.unwrap_or(base.floor_mbps),
            static_pps: self.static_pps.unwrap_or(base.static_pps),
            static_mbps: self.static_mbps.unwrap_or(base.static_mbps),
            baseline_window: self.baseline_window.unwrap_or(base.baseline_window),
            baseline_percentile: self.baseline_percentile.unwrap_or(base.baseline_percentile),
            baseline_multiplier: self.baseline_multiplier.unwrap_or(base.baseline_multiplier),
            baseline_recompute: self.baseline_recompute.unwrap_or(base.baseline_recompute),
            warmup: self.warmup.unwrap_or(base.warmup),
            start_ticks: self.start_ticks.unwrap_or(base.start_ticks),
            end_ticks: self.end_ticks.unwrap_or(base.end_ticks),
        }
    }

    /// Names of the keys this group overrides (used to report an invalid resolved value
    /// at the group that set it, and an inherited one only once, at `[detection]`).
    pub(crate) fn set_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut note = |set: bool, key| {
            if set {
                keys.push(key)
            }
        };
        note(self.floor_pps.is_some(), "floor_pps");
        note(self.floor_mbps.is_some(), "floor_mbps");
        note(self.static_pps.is_some(), "static_pps");
        note(self.static_mbps.is_some(), "static_mbps");
        note(self.baseline_window.is_some(), "baseline_window");
        note(self.baseline_percentile.is_some(), "baseline_percentile");
        note(self.baseline_multiplier.is_some(), "baseline_multiplier");
        note(self.baseline_recompute.is_some(), "baseline_recompute");
        note(self.warmup.is_some(), "warmup");
        note(self.start_ticks.is_some(), "start_ticks");
        note(self.end_ticks.is_some(), "end_ticks");
        keys
    }
}

/// `[baseline]`: persistence of learned baselines across restarts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BaselineConfig {
    /// Absolute path of the baseline file. Absent: baselines are not persisted and every
    /// address starts in warm-up after a restart. Default: absent.
    #[serde(default)]
    pub path: Option<PathBuf>,

    /// How often baselines are written to `path`; at least `"1s"`. Default `"60s"`.
    #[serde(
        default = "default_save_interval",
        deserialize_with = "serde_with::duration"
    )]
    pub save_interval: Duration,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            path: None,
            save_interval: default_save_interval(),
        }
    }
}

/// How live capture receives frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// AF_XDP when it can be set up, else AF_PACKET (saying why).
    #[default]
    Auto,
    /// AF_XDP only (zero-copy where the driver allows it, copy mode elsewhere).
    AfXdp,
    /// AF_PACKET TPACKET_V3 with PACKET_FANOUT.
    AfPacket,
}

/// What the XDP program does with frames of a queue no socket is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpFallback {
    /// Hand them to the kernel stack (safe default).
    #[default]
    Pass,
    /// Drop them (a dedicated mirror port whose frames nobody else needs).
    Drop,
}

/// `[capture]`: live capture settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CaptureConfig {
    /// `"auto"`, `"af_xdp"` or `"af_packet"`. Default `"auto"`.
    #[serde(default)]
    pub method: CaptureMethod,
    /// RX queues to capture (one worker each). Empty: every queue of the interface.
    #[serde(default)]
    pub queues: Vec<u32>,
    /// CPU cores to pin workers to, in queue order (cycled when shorter). Empty: worker `i`
    /// on core `i` modulo the number of cores.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Put the interface in promiscuous mode while capturing (restored on exit). Default true.
    #[serde(default = "default_true")]
    pub promiscuous: bool,
    /// XDP action for frames of queues without a socket. Default `"pass"`.
    #[serde(default)]
    pub xdp_fallback: XdpFallback,
    /// Mirror encapsulations decapsulated to the inner frame.
    #[serde(default)]
    pub decap: DecapConfig,
    /// AF_XDP only: the workers busy-poll their queue's NAPI context for up to this long per
    /// poll (`"20us"`..`"10ms"`), instead of sleeping in `poll(2)` and waiting for softirqs.
    /// Each worker then spins at 100 % of its core, but receive processing runs in the
    /// worker's own context with no interrupt or kernel-thread hand-offs: the fastest AF_XDP
    /// mode (also set the interface's `napi_defer_hard_irqs` and `gro_flush_timeout`, see the
    /// README). A socket the kernel gives no NAPI context (copy mode on Linux 6.13+) spins on
    /// its rings in user space instead. Default: off.
    #[serde(default, deserialize_with = "serde_with::opt_duration")]
    pub busy_poll: Option<Duration>,
    /// AF_XDP only: UMEM frames (2 KiB each; 4 KiB when the interface's MTU is over 1770, so
    /// that its longest frames fit) per queue, a power of two from 1024 to 262144;
    /// the fill and RX rings get half as many entries. More frames ride out longer worker
    /// stalls (16384: 32 MiB of locked memory per queue, ~5 ms at 3 Mpps); fewer keep the
    /// kernel's copies cache-warm when the worker always keeps up (busy polling).
    /// Default 16384.
    #[serde(default = "default_xdp_frames")]
    pub xdp_frames: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            method: CaptureMethod::Auto,
            queues: Vec::new(),
            cores: Vec::new(),
            promiscuous: true,
            xdp_fallback: XdpFallback::Pass,
            decap: DecapConfig::default(),
            busy_poll: None,
            xdp_frames: default_xdp_frames(),
        }
    }
}

/// `[capture.decap]`: which mirror encapsulations are unwrapped (one level: the mirror's own
/// wrapper, so a customer's tunnel inside it is still seen as a tunnel).
///
/// ERSPAN is only ever a mirror transport, so it is unwrapped by default. Plain GRE and VXLAN
/// are also ordinary customer traffic (and attack vectors: a GRE flood with forged inner
/// headers), so they are unwrapped only where the mirror session uses them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DecapConfig {
    /// Plain GRE (transparent Ethernet bridging or IP). Default false.
    #[serde(default)]
    pub gre: bool,
    /// ERSPAN type II and III. Default true.
    #[serde(default = "default_true")]
    pub erspan: bool,
    /// VXLAN. Default false.
    #[serde(default)]
    pub vxlan: bool,
    /// UDP destination ports carrying VXLAN. Default `[4789]`.
    #[serde(default = "default_vxlan_ports")]
    pub vxlan_ports: Vec<u16>,
}

impl Default for DecapConfig {
    fn default() -> Self {
        DecapConfig {
            gre: true,
            erspan: true,
            vxlan: true,
            vxlan_ports: default_vxlan_ports(),
        }
    }
}

fn default_xdp_frames() -> u32 {
    16384
}

fn default_true() -> bool {
    true
}

fn default_vxlan_ports() -> Vec<u16> {
    vec![4789]
}

/// One `[[group]]`: a named set of prefixes sharing detection settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GroupConfig {
    /// Unique, non-empty name; used in reports and incident records.
    // Defaulted so a missing name is reported by validation with the other problems.
    #[serde(default)]
    pub name: String,

    /// Monitored prefixes, strict CIDR (`"203.0.113.0/24"`, `"2001:db8::/48"`; no host
    /// bits set; a single host is `/32` or `/128`). At least one; a prefix may appear in
    /// only one group, but prefixes may nest (the longest match wins).
    #[serde(default, deserialize_with = "serde_with::cidrs")]
    pub prefixes: Vec<IpNet>,

    /// `[group.detection]`: overrides of `[detection]` for this group.
    #[serde(default)]
    pub detection: DetectionOverrides,

    /// `[group.mitigation]`: overrides of `[mitigation]`'s ladder for this group.
    #[serde(default)]
    pub mitigation: MitigationOverrides,
}

impl GroupConfig {
    /// A group with no detection overrides.
    pub fn new(name: impl Into<String>, prefixes: Vec<IpNet>) -> Self {
        Self {
            name: name.into(),
            prefixes,
            detection: DetectionOverrides::default(),
            mitigation: MitigationOverrides::default(),
        }
    }
}

/// A group with its detection settings fully resolved; see [`Config::resolved_groups`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResolvedGroup {
    /// The group's name.
    pub name: String,
    /// The group's prefixes.
    pub prefixes: Vec<IpNet>,
    /// `[detection]` with the group's overrides applied.
    pub detection: DetectionConfig,
}

fn default_tick() -> Duration {
    Duration::from_secs(1)
}
fn default_auto_monitor_limit() -> NonZeroU32 {
    NonZeroU32::new(100_000).unwrap_or(NonZeroU32::MIN)
}
fn default_max_tracked_ips() -> NonZeroU32 {
    NonZeroU32::new(1_000_000).unwrap_or(NonZeroU32::MIN)
}
fn default_admit_untracked_pps() -> u64 {
    1_000
}
fn default_idle_evict() -> Duration {
    Duration::from_secs(300)
}
fn default_workers() -> u32 {
    0
}
fn default_top_n() -> u32 {
    10
}
fn default_floor_pps() -> NonZeroU64 {
    NonZeroU64::new(1_000).unwrap_or(NonZeroU64::MIN)
}
fn default_floor_mbps() -> f64 {
    10.0
}
fn default_static_pps() -> NonZeroU64 {
    NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN)
}
fn default_static_mbps() -> f64 {
    100.0
}
fn default_baseline_window() -> Duration {
    Duration::from_secs(300)
}
fn default_baseline_percentile() -> f64 {
    99.0
}
fn default_baseline_multiplier() -> f64 {
    3.0
}
fn default_baseline_recompute() -> Duration {
    Duration::from_secs(10)
}
fn default_warmup() -> Duration {
    Duration::from_secs(300)
}
fn default_start_ticks() -> NonZeroU32 {
    NonZeroU32::MIN
}
fn default_end_ticks() -> NonZeroU32 {
    NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)
}
fn default_save_interval() -> Duration {
    Duration::from_secs(60)
}
