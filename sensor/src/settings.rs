//! From a validated config and the command line to what a run is built of: what is monitored
//! (prefix table and group names), the detector's config, the frame parsing options, the live
//! capture options and the outputs. Every such mapping is here, as exhaustive conversions.
//!
//! The command line's values are checked by [`surgewatch_tuning::Overrides::apply`] (its
//! [`Effective`] config is this module's input); nothing here re-checks them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ipnet::IpNet;
use surgewatch_detect::baseline::BaselineParams;
use surgewatch_detect::{DetectorConfig, GroupDetection};
use surgewatch_export::contract::MonitorMode;
use surgewatch_export::diag::Diag;
use surgewatch_export::sink::stdout::{Format as OutputFormat, StdoutConfig};
use surgewatch_export::sink::SinkConfig;
use surgewatch_mitigate::{Ladder, Level, LevelAction, Mode, PolicyConfig};
use surgewatch_per_ip::{GroupId, Monitor, PrefixTable, TickLength};
use surgewatch_pipeline::{Decap, ParseOptions};
use surgewatch_sensor::capture::xdp_prog;
use surgewatch_sensor::livesrc::{self, LiveOptions};
use surgewatch_tuning::{
    CaptureMethod, CaptureOverrides, Community, Config, DetectionConfig, Effective, LiveOverrides,
    MitigationAction, MitigationConfig, MitigationMode, Overrides, QuickThresholds, XdpFallback,
};

use crate::cli::{AgentArgs, CaptureArg, DetectArgs, Format, ReplayArgs, RunArgs};

/// How often a live run prints its status line when the command line does not say.
const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Everything a run is set up from.
pub struct Settings {
    /// The config with the command line applied.
    pub config: Config,
    /// Tick length.
    pub tick: TickLength,
    /// IPs listed in the summary.
    pub top_n: usize,
    /// Replay worker threads.
    pub workers: usize,
    /// What is monitored.
    pub monitor: MonitorSetup,
    /// `--monitor`'s prefixes (the agent puts the host's addresses before them).
    pub extra_monitor: Vec<IpNet>,
    /// The detector's config.
    pub detector: DetectorConfig,
    /// Frame parsing options.
    pub parse: ParseOptions,
    /// Where baselines are loaded from and saved to, and how often.
    pub baselines: Option<(PathBuf, Duration)>,
    /// The outputs.
    pub outputs: Vec<SinkConfig>,
    /// The mitigation policy (`[mitigation]`), when configured.
    pub mitigation: Option<PolicyConfig>,
    /// Live runs: stop after this long.
    pub duration: Option<Duration>,
    /// Live runs: a status line this often (zero: never).
    pub status_interval: Duration,
    /// What the operator should hear about the settings (auto-monitoring, a clamped
    /// percentile), in order; the command emits them when the run starts.
    pub notes: Vec<Diag>,
}

/// What is monitored, and the groups' names and detection settings by group id.
pub struct MonitorSetup {
    /// The monitor the shards use.
    pub monitor: Arc<Monitor>,
    /// Group names, indexed by group id.
    pub groups: Vec<String>,
    /// Group detection settings, indexed by group id.
    pub detection: Vec<DetectionConfig>,
    /// Configured prefixes, or every destination.
    pub mode: MonitorMode,
    /// Auto mode says so.
    pub note: Option<Diag>,
}

impl Settings {
    /// The settings of a run from `eff` (the config with the command line applied), with
    /// `host` (the agent's host addresses) monitored before `--monitor`'s prefixes, events and
    /// the summary on stdout as `format`.
    pub fn new(eff: Effective, format: Format, host: &[IpAddr]) -> Result<Self> {
        let Effective {
            config,
            monitor: extra_monitor,
            thresholds,
            duration,
            status_interval,
            ..
        } = eff;
        let tick = TickLength::from_duration(config.sensor.tick)
            .context("tick length must be positive")?;
        let top_n = config.sensor.top_n as usize;
        let workers = match config.sensor.workers {
            0 => 1,
            n => n as usize,
        };
        let mut extra: Vec<IpNet> = host.iter().map(|&a| IpNet::from(a)).collect();
        extra.extend(extra_monitor.iter().copied());
        let monitor = monitor_setup(&config, &extra)?;
        let mitigation = policy_config(&config, &extra);
        let mut notes: Vec<Diag> = monitor.note.iter().cloned().collect();
        let (mut detector, clamped) = detector_config(&monitor.detection, thresholds, tick, top_n);
        // Baselines of evicted addresses: up to a quarter of the budget's worth.
        if let Some(limit) = monitor.monitor.ip_limit() {
            detector.max_parked_baselines = (limit / 4).max(1024);
        }
        notes.extend(clamped);
        Ok(Settings {
            tick,
            top_n,
            workers,
            extra_monitor,
            detector,
            parse: parse_options(&config),
            baselines: config
                .baseline
                .path
                .clone()
                .map(|p| (p, config.baseline.save_interval)),
            outputs: vec![SinkConfig::Stdout(StdoutConfig {
                format: format.into(),
            })],
            mitigation,
            duration,
            status_interval: status_interval.unwrap_or(DEFAULT_STATUS_INTERVAL),
            notes,
            monitor,
            config,
        })
    }
}

impl DetectArgs {
    /// The options every pipeline command shares, as overrides.
    fn overrides(&self) -> Overrides {
        Overrides {
            tick: self.tick.clone(),
            top: self.top,
            threshold_pps: self.threshold_pps,
            threshold_mbps: self.threshold_mbps,
            monitor: self.monitor.clone(),
            baselines: self.baselines.clone(),
            ..Overrides::default()
        }
    }
}

impl ReplayArgs {
    /// `replay`'s overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            workers: self.workers,
            ..self.detect.overrides()
        }
    }
}

impl RunArgs {
    /// `run`'s overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            capture: CaptureOverrides {
                method: self.capture.map(CaptureMethod::from),
                queues: self.queues.clone(),
                cores: self.cores.clone(),
                no_promisc: self.no_promisc,
                busy_poll: self.busy_poll.clone(),
            },
            live: LiveOverrides {
                duration: self.live.duration.clone(),
                status_interval: Some(self.live.status_interval.clone()),
            },
            ..self.detect.overrides()
        }
    }
}

impl AgentArgs {
    /// `agent`'s overrides.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            live: LiveOverrides {
                duration: self.live.duration.clone(),
                status_interval: Some(self.live.status_interval.clone()),
            },
            ..self.detect.overrides()
        }
    }
}

impl From<CaptureArg> for CaptureMethod {
    fn from(a: CaptureArg) -> Self {
        match a {
            CaptureArg::Auto => CaptureMethod::Auto,
            CaptureArg::AfXdp => CaptureMethod::AfXdp,
            CaptureArg::AfPacket => CaptureMethod::AfPacket,
        }
    }
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Text => OutputFormat::Text,
            Format::Json => OutputFormat::Json,
        }
    }
}

/// The live source's capture method for the config's.
pub fn capture_method(m: CaptureMethod) -> livesrc::Method {
    match m {
        CaptureMethod::Auto => livesrc::Method::Auto,
        CaptureMethod::AfXdp => livesrc::Method::AfXdp,
        CaptureMethod::AfPacket => livesrc::Method::AfPacket,
    }
}

/// The XDP program's action for queues without a socket.
pub fn xdp_fallback(f: XdpFallback) -> xdp_prog::XdpFallback {
    match f {
        XdpFallback::Pass => xdp_prog::XdpFallback::Pass,
        XdpFallback::Drop => xdp_prog::XdpFallback::Drop,
    }
}

// Tuning's limit is the number of group ids: validated configs always fit.
const _: () = assert!(surgewatch_tuning::MAX_GROUPS == GroupId::MAX.0 as usize + 1);

/// The id of the `index`th group; past [`GroupId::MAX`] only for the extra `cli` group of a
/// config that already has [`surgewatch_tuning::MAX_GROUPS`] groups.
fn group_id(index: usize) -> Result<GroupId> {
    u16::try_from(index)
        .ok()
        .filter(|&i| i <= GroupId::MAX.0)
        .map(GroupId)
        .with_context(|| format!("at most {} groups", surgewatch_tuning::MAX_GROUPS))
}

/// What is monitored: the config's groups, then `extra` (`--monitor`, the agent's host
/// addresses) in a group named `cli` with the `[detection]` defaults (prefixes the config
/// already lists, or listed twice, are left out); with no prefix at all, every destination
/// in a group named `auto`.
pub fn monitor_setup(cfg: &Config, extra: &[IpNet]) -> Result<MonitorSetup> {
    let mut groups: Vec<String> = Vec::new();
    let mut detection = Vec::new();
    let mut prefixes: Vec<(IpNet, GroupId)> = Vec::new();
    for g in cfg.resolved_groups() {
        let id = group_id(groups.len())?;
        prefixes.extend(g.prefixes.iter().map(|p| (*p, id)));
        groups.push(g.name.clone());
        detection.push(g.detection.clone());
    }
    if !extra.is_empty() {
        let id = group_id(groups.len()).context(
            "no group id left for the `cli` group (`--monitor`, the agent's host addresses)",
        )?;
        groups.push("cli".to_string());
        detection.push(cfg.detection.clone());
        for &net in extra {
            if !prefixes.iter().any(|(p, _)| *p == net) {
                prefixes.push((net, id));
            }
        }
    }
    if prefixes.is_empty() {
        let limit = cfg.sensor.auto_monitor_limit.get();
        groups.push("auto".to_string());
        detection.push(cfg.detection.clone());
        let id = GroupId(u16::try_from(groups.len() - 1).unwrap_or(0));
        return Ok(MonitorSetup {
            monitor: Arc::new(budget(Monitor::auto(limit as usize, id), cfg)),
            groups,
            detection,
            mode: MonitorMode::Auto,
            note: Some(Diag::AutoMonitor { limit }),
        });
    }
    let table = PrefixTable::new(prefixes).context("building the monitored prefix table")?;
    let limit = cfg.sensor.max_tracked_ips.get() as usize;
    Ok(MonitorSetup {
        monitor: Arc::new(budget(Monitor::prefixes(table).with_ip_limit(limit), cfg)),
        groups,
        detection,
        mode: MonitorMode::Prefixes,
        note: None,
    })
}

/// The tracked-address budget's policy from `[sensor]`: admission of busy untracked
/// destinations, eviction of idle addresses.
fn budget(m: Monitor, cfg: &Config) -> Monitor {
    let idle = u64::try_from(cfg.sensor.idle_evict.as_nanos()).unwrap_or(u64::MAX);
    m.with_untracked_admission(cfg.sensor.admit_untracked_pps)
        .with_idle_eviction(idle)
}

/// The detector's config: each group's detection settings in ticks, with the quick-run
/// thresholds (which replace the static thresholds and floors; with only one rate given, the
/// other never triggers). Also the warnings about percentiles the sketch cannot keep.
pub fn detector_config(
    detection: &[DetectionConfig],
    quick: Option<QuickThresholds>,
    tick: TickLength,
    top_n: usize,
) -> (DetectorConfig, Vec<Diag>) {
    let tick_d = tick.as_duration();
    let ticks = |dur: Duration| -> u32 {
        let n = dur.as_nanos() / tick_d.as_nanos().max(1);
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    };
    let (pps, mbps) = quick.map_or((None, None), |q| (q.pps, q.mbps));
    let mut notes = Vec::new();
    let groups = detection
        .iter()
        .map(|d| {
            let mut b = BaselineParams {
                window_samples: ticks(d.baseline_window),
                percentile: d.baseline_percentile,
                multiplier: d.baseline_multiplier,
                recompute_ticks: ticks(d.baseline_recompute),
                floor_pps: d.floor_pps.get(),
                floor_bps: (d.floor_mbps * 1e6) as u64,
                static_pps: d.static_pps.get(),
                static_bps: (d.static_mbps * 1e6) as u64,
                warmup_ticks: u32::try_from(d.warmup.as_nanos() / tick_d.as_nanos().max(1))
                    .unwrap_or(u32::MAX),
                ..BaselineParams::default()
            };
            if let Some(p) = pps {
                b.static_pps = p.ceil() as u64;
                b.floor_pps = p.ceil() as u64;
            }
            if let Some(m) = mbps {
                b.static_bps = (m * 1e6) as u64;
                b.floor_bps = (m * 1e6) as u64;
            }
            match (pps, mbps) {
                // A pps-only quick run: the bit-rate thresholds must not trigger on their own.
                (Some(_), None) => {
                    b.static_bps = u64::MAX / 2;
                    b.floor_bps = u64::MAX / 2;
                }
                (None, Some(_)) => {
                    b.static_pps = u64::MAX / 2;
                    b.floor_pps = u64::MAX / 2;
                }
                (Some(_), Some(_)) | (None, None) => {}
            }
            let effective = b.policy().effective_percentile();
            if (effective - b.percentile).abs() > 1e-6 {
                notes.push(Diag::PercentileClamped {
                    percentile: b.percentile,
                    samples: b.window_samples,
                    effective,
                });
            }
            GroupDetection {
                baseline: b,
                start_ticks: d.start_ticks.get(),
                end_ticks: d.end_ticks.get(),
            }
        })
        .collect();
    let config = DetectorConfig {
        groups,
        tick_ns: tick.as_nanos(),
        update_interval_ns: 1_000_000_000u64.max(tick.as_nanos()),
        top_n: 10.min(top_n.max(1)),
        max_parked_baselines: surgewatch_detect::DEFAULT_MAX_PARKED_BASELINES,
    };
    (config, notes)
}

/// Frame parsing options from `[capture.decap]`: the mirror's own wrapper only (one level).
pub fn parse_options(cfg: &Config) -> ParseOptions {
    let d = &cfg.capture.decap;
    let mut decap = Decap::MIRROR;
    decap.gre = d.gre;
    decap.erspan = d.erspan;
    decap.vxlan = d.vxlan;
    decap.vxlan_ports = [0; 4];
    for (slot, port) in decap.vxlan_ports.iter_mut().zip(&d.vxlan_ports) {
        *slot = *port;
    }
    decap.max_depth = 1;
    ParseOptions::new(decap)
}

/// `run`'s capture of `interface`, from `[capture]` (with the command line applied).
pub fn live_options(cfg: &Config, interface: &str) -> LiveOptions {
    let c = &cfg.capture;
    LiveOptions {
        interface: interface.to_owned(),
        method: capture_method(c.method),
        queues: c.queues.clone(),
        cores: c.cores.clone(),
        promiscuous: c.promiscuous,
        xdp_fallback: xdp_fallback(c.xdp_fallback),
        packet_ring: None,
        busy_poll: c.busy_poll,
        xdp_frames: Some(c.xdp_frames),
    }
}

/// The host agent's capture of `interface`: AF_PACKET (an XDP redirect would take the host's
/// traffic from its own stack), one queue, not promiscuous, a small ring.
pub fn agent_live_options(interface: &str) -> LiveOptions {
    LiveOptions {
        interface: interface.to_owned(),
        method: livesrc::Method::AfPacket,
        queues: vec![0],
        cores: Vec::new(),
        promiscuous: false,
        xdp_fallback: xdp_prog::XdpFallback::Pass,
        // 4 MiB: about a second of 10 kpps of full-size frames, which keeps the agent's
        // footprint small (the ring is resident memory).
        packet_ring: Some((1 << 20, 4)),
        busy_poll: None,
        xdp_frames: None,
    }
}

/// The mitigation policy's config from `[mitigation]` (`None` without one): group `i` of the
/// config is [`GroupId`] `i`, as in [`monitor_setup`]; the groups' prefixes and `extra`
/// (`--monitor`, the agent's host addresses) are the monitored prefixes (so in auto mode,
/// with none, every target is refused).
pub fn policy_config(cfg: &Config, extra: &[IpNet]) -> Option<PolicyConfig> {
    let m = cfg.mitigation.as_ref()?;
    let groups = cfg
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| !g.mitigation.is_empty())
        .filter_map(|(i, g)| Some((group_id(i).ok()?, ladder(&g.mitigation.apply(m)))))
        .collect();
    Some(PolicyConfig {
        mode: match m.mode {
            MitigationMode::DryRun => Mode::DryRun,
            MitigationMode::Enforce => Mode::Enforce,
        },
        ttl_ns: nanos(m.ttl),
        max_rules: m.max_rules.get() as usize,
        max_rules_per_target: m.max_rules_per_target.get() as usize,
        monitored: cfg
            .groups
            .iter()
            .flat_map(|g| g.prefixes.iter().copied())
            .chain(extra.iter().copied())
            .collect(),
        never: m.never.clone(),
        defaults: ladder(m),
        groups,
        ..PolicyConfig::default()
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn bps(mbps: f64) -> u64 {
    // Validated finite and positive; `as` saturates.
    (mbps * 1e6) as u64
}

fn ladder(m: &MitigationConfig) -> Ladder {
    Ladder {
        levels: m
            .levels
            .iter()
            .map(|l| Level {
                at_bps: l.at_mbps.map(bps),
                at_pps: l.at_pps.map(|p| p.get()),
                action: match l.action {
                    MitigationAction::FlowspecRateLimit => LevelAction::FlowspecRateLimit,
                    MitigationAction::FlowspecDiscard => LevelAction::FlowspecDiscard,
                    MitigationAction::Rtbh => LevelAction::Rtbh,
                    MitigationAction::Scrubbing => LevelAction::Scrubbing,
                },
            })
            .collect(),
        hold_down_ns: nanos(m.hold_down),
        communities: m
            .communities
            .iter()
            .map(|c| match *c {
                Community::Standard(a, b) => surgewatch_mitigate::Community::Standard(a, b),
                Community::Large(a, b, c) => surgewatch_mitigate::Community::Large(a, b, c),
            })
            .collect(),
        next_hop_v4: m.next_hop,
        next_hop_v6: m.next_hop_v6,
        rate_limit_multiple: m.rate_limit_multiple,
        rate_limit_floor_bps: bps(m.rate_limit_floor_mbps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn config(toml: &str) -> Config {
        surgewatch_tuning::from_str(toml, "t.toml").unwrap()
    }

    fn effective(cfg: Config, o: &Overrides) -> Effective {
        o.apply(cfg).unwrap()
    }

    const TWO_GROUPS: &str = "[[group]]\nname = \"web\"\nprefixes = [\"203.0.113.0/24\"]\n\
        [group.detection]\nstatic_pps = 5000\n\
        [[group]]\nname = \"dns\"\nprefixes = [\"198.51.100.53/32\"]\n";

    #[test]
    fn mitigation_maps_to_the_policy_config() {
        assert!(policy_config(&config(TWO_GROUPS), &[]).is_none());
        let c = config(&format!(
            "[mitigation]\nmode = \"enforce\"\ncommunities = [\"64500:1\"]\n{TWO_GROUPS}\
             [group.mitigation]\nlevels = [{{ at_pps = 1000, action = \"rtbh\" }}]\n"
        ));
        let p = policy_config(&c, &[]).unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.ttl_ns, 300_000_000_000);
        assert_eq!((p.max_rules, p.max_rules_per_target), (100, 8));
        assert_eq!(
            p.monitored,
            vec![net("203.0.113.0/24"), net("198.51.100.53/32")]
        );
        // The defaults are the policy's own defaults, with the configured communities.
        let defaults = Ladder {
            communities: vec![surgewatch_mitigate::Community::Standard(64500, 1)],
            ..Ladder::default()
        };
        assert_eq!(p.defaults, defaults);
        let dns = p.ladder(GroupId(1));
        assert_eq!(dns.levels.len(), 1);
        assert_eq!(dns.levels[0].at_pps, Some(1000));
        assert_eq!(dns.levels[0].action, LevelAction::Rtbh);
        assert_eq!(dns.communities, defaults.communities, "inherited");
        assert_eq!(p.ladder(GroupId(0)), &defaults);
    }

    #[test]
    fn group_ids_stop_before_the_reserved_one() {
        let last = surgewatch_tuning::MAX_GROUPS - 1;
        assert_eq!(group_id(0).unwrap(), GroupId(0));
        assert_eq!(group_id(last).unwrap(), GroupId::MAX);
        let e = group_id(last + 1).unwrap_err().to_string();
        assert_eq!(e, "at most 65535 groups");
    }

    #[test]
    fn the_three_capture_method_enums_map_one_to_one() {
        let cases = [
            (CaptureArg::Auto, CaptureMethod::Auto, livesrc::Method::Auto),
            (
                CaptureArg::AfXdp,
                CaptureMethod::AfXdp,
                livesrc::Method::AfXdp,
            ),
            (
                CaptureArg::AfPacket,
                CaptureMethod::AfPacket,
                livesrc::Method::AfPacket,
            ),
        ];
        for (arg, config, live) in cases {
            assert_eq!(CaptureMethod::from(arg), config);
            assert_eq!(capture_method(config), live);
        }
        assert_eq!(xdp_fallback(XdpFallback::Pass), xdp_prog::XdpFallback::Pass);
        assert_eq!(xdp_fallback(XdpFallback::Drop), xdp_prog::XdpFallback::Drop);
        assert_eq!(OutputFormat::from(Format::Json), OutputFormat::Json);
        assert_eq!(OutputFormat::from(Format::Text), OutputFormat::Text);
    }

    #[test]
    fn monitor_is_the_config_groups_then_the_command_line_in_a_cli_group() {
        let cfg = config(TWO_GROUPS);
        let extra = [
            net("192.0.2.0/24"),
            net("203.0.113.0/24"), // the config's already: stays in "web"
            net("192.0.2.0/24"),   // twice
        ];
        let m = monitor_setup(&cfg, &extra).unwrap();
        assert_eq!(m.groups, ["web", "dns", "cli"]);
        assert_eq!(m.mode, MonitorMode::Prefixes);
        assert!(m.note.is_none());
        assert_eq!(m.detection[0].static_pps.get(), 5000);
        assert_eq!(
            m.detection[2], cfg.detection,
            "cli uses the [detection] defaults"
        );
        assert!(m.monitor.auto_group().is_none());
        // Prefix mode has a budget too, with the admission and eviction policy of [sensor].
        assert_eq!(m.monitor.ip_limit(), Some(1_000_000));
        assert_eq!(m.monitor.untracked_admission_pps(), 1_000);
        assert_eq!(m.monitor.idle_eviction_ns(), 300_000_000_000);
    }

    #[test]
    fn nothing_to_monitor_means_every_destination_and_says_so() {
        let m = monitor_setup(&Config::default(), &[]).unwrap();
        assert_eq!(m.groups, ["auto"]);
        assert_eq!(m.mode, MonitorMode::Auto);
        assert_eq!(m.monitor.auto_group(), Some(GroupId(0)));
        assert_eq!(m.monitor.ip_limit(), Some(100_000));
        assert_eq!(m.note, Some(Diag::AutoMonitor { limit: 100_000 }));
    }

    #[test]
    fn detection_durations_become_ticks() {
        let tick = TickLength::from_duration(Duration::from_millis(100)).unwrap();
        let d = DetectionConfig::default();
        let (c, _) = detector_config(&[d], None, tick, 100_000);
        let b = c.groups[0].baseline;
        assert_eq!(
            (b.window_samples, b.recompute_ticks, b.warmup_ticks),
            (3000, 100, 3000)
        );
        assert_eq!((b.floor_pps, b.floor_bps), (1000, 10_000_000));
        assert_eq!((b.static_pps, b.static_bps), (10_000, 100_000_000));
        assert_eq!((c.groups[0].start_ticks, c.groups[0].end_ticks), (1, 10));
        assert_eq!(c.tick_ns, 100_000_000);
        assert_eq!(
            c.update_interval_ns, 1_000_000_000,
            "at most one update a second"
        );
        assert_eq!(c.top_n, 10);
        let long = TickLength::from_duration(Duration::from_secs(2)).unwrap();
        let (c, _) = detector_config(&[DetectionConfig::default()], None, long, 0);
        assert_eq!((c.update_interval_ns, c.top_n), (2_000_000_000, 1));
        let second = TickLength::from_duration(Duration::from_secs(1)).unwrap();
        let (_, notes) = detector_config(&[DetectionConfig::default()], None, second, 10);
        assert!(
            notes.is_empty(),
            "the defaults' p99 of 300 samples is kept exactly"
        );
    }

    #[test]
    fn quick_thresholds_replace_static_and_floor_and_silence_the_other_rate() {
        let tick = TickLength::from_duration(Duration::from_secs(1)).unwrap();
        let d = [DetectionConfig::default()];
        let run = |pps, mbps| {
            let (c, _) = detector_config(&d, Some(QuickThresholds { pps, mbps }), tick, 10);
            let b = c.groups[0].baseline;
            (b.static_pps, b.floor_pps, b.static_bps, b.floor_bps)
        };
        let never = u64::MAX / 2;
        assert_eq!(run(Some(999.5), None), (1000, 1000, never, never));
        assert_eq!(run(None, Some(2.5)), (never, never, 2_500_000, 2_500_000));
        assert_eq!(run(Some(10.0), Some(1.0)), (10, 10, 1_000_000, 1_000_000));
    }

    #[test]
    fn a_percentile_the_sketch_cannot_keep_is_a_note() {
        let cfg = config("[detection]\nbaseline_percentile = 99.99\nbaseline_window = \"1h\"\n");
        let tick = TickLength::from_duration(Duration::from_secs(1)).unwrap();
        let (c, notes) = detector_config(&[cfg.detection], None, tick, 10);
        let [Diag::PercentileClamped {
            percentile,
            samples,
            effective,
        }] = notes[..]
        else {
            panic!("{notes:?}")
        };
        assert_eq!((percentile, samples), (99.99, 3600));
        assert!(effective < percentile);
        assert_eq!(c.groups[0].baseline.percentile, 99.99);
    }

    #[test]
    fn decapsulation_is_one_level_of_the_configured_wrappers() {
        let cfg = config("[capture.decap]\ngre = true\nvxlan = true\nvxlan_ports = [4789, 8472]\n");
        let p = parse_options(&cfg);
        assert!(p.decap.gre && p.decap.erspan && p.decap.vxlan);
        assert_eq!(p.decap.vxlan_ports, [4789, 8472, 0, 0]);
        assert_eq!(p.decap.max_depth, 1);
        let p = parse_options(&Config::default());
        assert_eq!(p.decap.vxlan_ports, [4789, 0, 0, 0]);
    }

    #[test]
    fn live_options_come_from_the_config_with_the_command_line_applied() {
        let cfg = config(
            "[capture]\nmethod = \"af_xdp\"\nqueues = [0, 1]\ncores = [2, 3]\n\
             xdp_fallback = \"drop\"\nxdp_frames = 4096\n",
        );
        let o = live_options(&cfg, "eth0");
        assert_eq!(o.interface, "eth0");
        assert_eq!(o.method, livesrc::Method::AfXdp);
        assert_eq!((&o.queues[..], &o.cores[..]), (&[0, 1][..], &[2, 3][..]));
        assert!(o.promiscuous);
        assert_eq!(o.xdp_fallback, xdp_prog::XdpFallback::Drop);
        assert_eq!(
            (o.packet_ring, o.busy_poll, o.xdp_frames),
            (None, None, Some(4096))
        );

        let args = Overrides {
            capture: CaptureOverrides {
                method: Some(CaptureMethod::AfPacket),
                queues: vec![5],
                cores: Vec::new(),
                no_promisc: true,
                busy_poll: Some("50us".into()),
            },
            ..Overrides::default()
        };
        let o = live_options(&effective(cfg, &args).config, "eth0");
        assert_eq!(o.method, livesrc::Method::AfPacket);
        assert_eq!((&o.queues[..], &o.cores[..]), (&[5][..], &[2, 3][..]));
        assert!(!o.promiscuous);
        assert_eq!(o.busy_poll, Some(Duration::from_micros(50)));

        let a = agent_live_options("lo0");
        assert_eq!(a.method, livesrc::Method::AfPacket);
        assert_eq!((a.queues, a.promiscuous), (vec![0], false));
        assert_eq!(a.packet_ring, Some((1 << 20, 4)));
    }

    #[test]
    fn settings_of_a_run() {
        let o = Overrides {
            top: Some(3),
            monitor: vec!["192.0.2.0/24".into()],
            baselines: Some("b.bin".into()),
            ..Overrides::default()
        };
        let s = Settings::new(effective(Config::default(), &o), Format::Json, &[]).unwrap();
        assert_eq!(
            (s.top_n, s.workers),
            (3, 1),
            "sensor.workers 0 replays on one thread"
        );
        assert_eq!(s.tick.as_duration(), Duration::from_secs(1));
        assert_eq!(s.monitor.groups, ["cli"]);
        assert_eq!(s.extra_monitor, [net("192.0.2.0/24")]);
        assert_eq!(
            s.baselines,
            Some((PathBuf::from("b.bin"), Duration::from_secs(60)))
        );
        assert_eq!(
            s.outputs,
            [SinkConfig::Stdout(StdoutConfig {
                format: OutputFormat::Json
            })]
        );
        assert_eq!(s.status_interval, DEFAULT_STATUS_INTERVAL);
        assert!(s.notes.is_empty());

        // The agent: the host's addresses first, then --monitor's, all in "cli".
        let host: IpAddr = [192, 0, 2, 10].into();
        let o = Overrides {
            monitor: vec!["198.51.100.0/24".into()],
            workers: Some(4),
            ..Overrides::default()
        };
        let s = Settings::new(effective(Config::default(), &o), Format::Text, &[host]).unwrap();
        assert_eq!(s.workers, 4);
        assert_eq!(s.monitor.groups, ["cli"]);
        assert_eq!(s.extra_monitor, [net("198.51.100.0/24")]);

        // Nothing monitored: the note comes with the settings.
        let s = Settings::new(
            effective(Config::default(), &Overrides::default()),
            Format::Text,
            &[],
        )
        .unwrap();
        assert_eq!(s.notes, [Diag::AutoMonitor { limit: 100_000 }]);
    }
}
