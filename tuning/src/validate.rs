//! The semantic pass: every limit an operator can set is checked here, all at once.

use std::collections::HashMap;
use std::time::Duration;

use ipnet::IpNet;

use crate::decode::Issue;
use crate::error::ConfigErrorKind;
use crate::mitigation::{LevelConfig, MitigationConfig, SpeakerConfig};
use crate::schema::{BaselineConfig, CaptureConfig, DetectionConfig, GroupConfig, SensorConfig};
use crate::units::format_duration;

/// Most VXLAN ports `capture.decap.vxlan_ports` may list.
pub const MAX_VXLAN_PORTS: usize = 4;

/// Most accepted `sensor.max_tracked_ips` and `sensor.auto_monitor_limit`.
pub const MAX_TRACKED_IPS: u32 = 100_000_000;
/// Shortest accepted `sensor.tick`.
pub const MIN_TICK: Duration = Duration::from_millis(100);
/// Longest accepted `sensor.tick`.
pub const MAX_TICK: Duration = Duration::from_secs(60);
/// Most samples a baseline window may hold (`baseline_window / tick`); bounds the memory
/// kept per monitored address.
pub const MAX_BASELINE_SAMPLES: u64 = 3600;
/// Shortest accepted `baseline.save_interval`.
pub const MIN_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// Most groups a config may define (`[[group]]` tables plus the `monitor` shorthand): the
/// sensor numbers them with a 16-bit group id whose largest value is reserved
/// (`surgewatch_per_ip::GroupId::MAX` is 65534; the sensor asserts the two agree).
pub const MAX_GROUPS: usize = 65_535;
/// Shortest `capture.busy_poll`.
pub const MIN_BUSY_POLL: Duration = Duration::from_micros(1);
/// Longest `capture.busy_poll`.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(10);
/// Shortest `mitigation.ttl`.
pub const MIN_MITIGATION_TTL: Duration = Duration::from_secs(10);
/// Longest `mitigation.ttl`.
pub const MAX_MITIGATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest `mitigation.hold_down`.
pub const MAX_HOLD_DOWN: Duration = Duration::from_secs(3600);
/// Most `mitigation.max_rules`.
pub const MAX_MITIGATION_RULES: u32 = 10_000;
/// Most levels of a mitigation ladder.
pub const MAX_LEVELS: usize = 8;

/// Where a group came from, for key paths.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GroupOrigin {
    /// `group[i]`.
    Table(usize),
    /// The top-level `monitor` shorthand.
    Monitor,
}

impl GroupOrigin {
    fn path(self) -> String {
        match self {
            GroupOrigin::Table(i) => format!("group[{i}]"),
            GroupOrigin::Monitor => "monitor".into(),
        }
    }
    fn name_path(self) -> String {
        match self {
            GroupOrigin::Table(i) => format!("group[{i}].name"),
            GroupOrigin::Monitor => "monitor".into(),
        }
    }
    fn prefixes_path(self) -> String {
        match self {
            GroupOrigin::Table(i) => format!("group[{i}].prefixes"),
            GroupOrigin::Monitor => "monitor".into(),
        }
    }
}

/// What validation looks at; `None` sections failed to decode and are skipped.
pub(crate) struct Parts<'a> {
    pub sensor: Option<&'a SensorConfig>,
    /// False when `sensor.tick` failed to decode: tick-relative checks are skipped rather
    /// than run against the default standing in for it.
    pub tick_decoded: bool,
    pub detection: Option<&'a DetectionConfig>,
    pub baseline: Option<&'a BaselineConfig>,
    pub capture: Option<&'a CaptureConfig>,
    pub groups: Vec<(GroupOrigin, &'a GroupConfig)>,
    pub mitigation: Option<&'a MitigationConfig>,
}

pub(crate) fn validate(parts: &Parts<'_>, issues: &mut Vec<Issue>) {
    let mut v = Validator { issues };
    let tick = parts
        .sensor
        .and_then(|s| v.sensor(s))
        .filter(|_| parts.tick_decoded);
    if let Some(detection) = parts.detection {
        v.detection("detection", detection, tick, &|_| true);
    }
    if let Some(baseline) = parts.baseline {
        v.baseline(baseline);
    }
    if let Some(capture) = parts.capture {
        v.capture(capture);
    }
    v.groups(&parts.groups, parts.detection, tick);
    if let Some(m) = parts.mitigation {
        v.mitigation(m);
    }
    for &(origin, group) in &parts.groups {
        if !group.mitigation.is_empty() {
            let resolved = group
                .mitigation
                .apply(&parts.mitigation.cloned().unwrap_or_default());
            let path = format!("{}.mitigation", origin.path());
            let m = &group.mitigation;
            v.ladder(&path, &resolved, &|k| match k {
                "hold_down" => m.hold_down.is_some(),
                "levels" => m.levels.is_some(),
                "next_hop" => m.next_hop.is_some(),
                "next_hop_v6" => m.next_hop_v6.is_some(),
                "rate_limit_multiple" => m.rate_limit_multiple.is_some(),
                "rate_limit_floor_mbps" => m.rate_limit_floor_mbps.is_some(),
                _ => false,
            });
        }
    }
}

struct Validator<'a> {
    issues: &'a mut Vec<Issue>,
}

impl Validator<'_> {
    fn out_of_range(&mut self, key: String, value: String, expected: impl Into<String>) {
        self.issues.push(Issue {
            key,
            span: None,
            kind: ConfigErrorKind::OutOfRange {
                value,
                expected: expected.into(),
            },
        });
    }

    /// Checks `[sensor]`; returns the tick when it is valid, for the checks relative to it.
    fn sensor(&mut self, sensor: &SensorConfig) -> Option<Duration> {
        let tick = sensor.tick;
        if !(MIN_TICK..=MAX_TICK).contains(&tick) {
            self.out_of_range(
                "sensor.tick".into(),
                quoted(tick),
                format!(
                    "a duration in {}..={}",
                    format_duration(MIN_TICK),
                    format_duration(MAX_TICK)
                ),
            );
            return None;
        }
        let most = MAX_TRACKED_IPS;
        if sensor.max_tracked_ips.get() > most || sensor.auto_monitor_limit.get() > most {
            let (key, v) = if sensor.max_tracked_ips.get() > most {
                ("sensor.max_tracked_ips", sensor.max_tracked_ips.get())
            } else {
                ("sensor.auto_monitor_limit", sensor.auto_monitor_limit.get())
            };
            self.out_of_range(key.into(), v.to_string(), format!("at most {most}"));
        }
        let idle = sensor.idle_evict;
        if !idle.is_zero() && idle < tick {
            self.out_of_range(
                "sensor.idle_evict".into(),
                quoted(idle),
                "0s (off), or at least one tick".to_string(),
            );
        }
        Some(tick)
    }

    /// Checks one detection config at `path`, reporting only keys for which `owns` is true
    /// (a group reports the keys it overrides; inherited values are reported at
    /// `[detection]`). Tick-relative checks are skipped when the tick is unknown.
    fn detection(
        &mut self,
        path: &str,
        d: &DetectionConfig,
        tick: Option<Duration>,
        owns: &dyn Fn(&str) -> bool,
    ) {
        let key = |k: &str| format!("{path}.{k}");
        for (name, value) in [("floor_mbps", d.floor_mbps), ("static_mbps", d.static_mbps)] {
            if owns(name) && !(value > 0.0 && value.is_finite()) {
                self.out_of_range(
                    key(name),
                    number(value),
                    "a finite number of Mbit/s greater than 0",
                );
            }
        }
        let p = d.baseline_percentile;
        if owns("baseline_percentile") && !(p > 0.0 && p <= 100.0) {
            self.out_of_range(
                key("baseline_percentile"),
                number(p),
                "a percentile in (0, 100]",
            );
        }
        let m = d.baseline_multiplier;
        if owns("baseline_multiplier") && !(m > 1.0 && m.is_finite()) {
            self.out_of_range(
                key("baseline_multiplier"),
                number(m),
                "a finite number greater than 1.0 (threshold = baseline × multiplier; at 1.0 \
                 or below an address's own normal peaks would open incidents)",
            );
        }
        if owns("baseline_window") {
            let window = d.baseline_window;
            match tick {
                Some(tick) if d.baseline_samples(tick) == 0 => self.out_of_range(
                    key("baseline_window"),
                    quoted(window),
                    format!("at least one tick ({})", format_duration(tick)),
                ),
                Some(tick) if d.baseline_samples(tick) > MAX_BASELINE_SAMPLES => self.out_of_range(
                    key("baseline_window"),
                    quoted(window),
                    format!(
                        "at most {MAX_BASELINE_SAMPLES} ticks ({} at a {} tick)",
                        format_duration(tick * MAX_BASELINE_SAMPLES as u32),
                        format_duration(tick)
                    ),
                ),
                None if window.is_zero() => {
                    self.out_of_range(key("baseline_window"), quoted(window), "at least one tick")
                }
                _ => {}
            }
        }
        if owns("baseline_recompute") {
            let every = d.baseline_recompute;
            match tick {
                Some(tick) if every < tick => self.out_of_range(
                    key("baseline_recompute"),
                    quoted(every),
                    format!("at least one tick ({})", format_duration(tick)),
                ),
                None if every.is_zero() => self.out_of_range(
                    key("baseline_recompute"),
                    quoted(every),
                    "at least one tick",
                ),
                _ => {}
            }
        }
    }

    fn capture(&mut self, c: &CaptureConfig) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, q) in c.queues.iter().enumerate() {
            if !seen.insert(*q) {
                self.out_of_range(
                    format!("capture.queues[{i}]"),
                    q.to_string(),
                    "each queue listed once",
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, core) in c.cores.iter().enumerate() {
            if !seen.insert(*core) {
                self.out_of_range(
                    format!("capture.cores[{i}]"),
                    core.to_string(),
                    "each core listed once",
                );
            }
        }
        if let Some(d) = c.busy_poll {
            if !(MIN_BUSY_POLL..=MAX_BUSY_POLL).contains(&d) {
                self.out_of_range(
                    "capture.busy_poll".into(),
                    format_duration(d),
                    format!(
                        "a duration from {} to {}",
                        format_duration(MIN_BUSY_POLL),
                        format_duration(MAX_BUSY_POLL)
                    ),
                );
            }
        }
        if !c.xdp_frames.is_power_of_two() || !(1024..=262_144).contains(&c.xdp_frames) {
            self.out_of_range(
                "capture.xdp_frames".into(),
                c.xdp_frames.to_string(),
                "a power of two from 1024 to 262144",
            );
        }
        if c.decap.vxlan && c.decap.vxlan_ports.is_empty() {
            self.out_of_range(
                "capture.decap.vxlan_ports".into(),
                "[]".into(),
                "at least one port while `vxlan = true` (4789 is the IANA port)",
            );
        }
        if c.decap.vxlan_ports.len() > MAX_VXLAN_PORTS {
            self.out_of_range(
                "capture.decap.vxlan_ports".into(),
                format!("{} ports", c.decap.vxlan_ports.len()),
                format!("at most {MAX_VXLAN_PORTS} ports"),
            );
        }
        for (i, p) in c.decap.vxlan_ports.iter().enumerate() {
            if *p == 0 {
                self.out_of_range(
                    format!("capture.decap.vxlan_ports[{i}]"),
                    "0".into(),
                    "a port in 1..=65535",
                );
            }
        }
    }

    fn baseline(&mut self, b: &BaselineConfig) {
        if let Some(path) = &b.path {
            if !path.is_absolute() {
                self.issues.push(Issue {
                    key: "baseline.path".into(),
                    span: None,
                    kind: ConfigErrorKind::InvalidValue {
                        message: format!(
                            "{path:?} is not an absolute path; the sensor's working directory \
                             is not a stable place, write e.g. \"/var/lib/surgewatch/baselines.bin\""
                        ),
                    },
                });
            }
        }
        if b.save_interval < MIN_SAVE_INTERVAL {
            self.out_of_range(
                "baseline.save_interval".into(),
                quoted(b.save_interval),
                format!("at least {}", format_duration(MIN_SAVE_INTERVAL)),
            );
        }
    }

    fn groups(
        &mut self,
        groups: &[(GroupOrigin, &GroupConfig)],
        base: Option<&DetectionConfig>,
        tick: Option<Duration>,
    ) {
        if groups.len() > MAX_GROUPS {
            self.issues.push(Issue {
                key: "group".into(),
                span: None,
                kind: ConfigErrorKind::TooManyGroups {
                    found: groups.len(),
                    max: MAX_GROUPS,
                },
            });
        }
        let mut names: HashMap<&str, GroupOrigin> = HashMap::new();
        let mut prefixes: HashMap<IpNet, (String, &str)> = HashMap::new();
        for &(origin, group) in groups {
            if group.name.is_empty() {
                self.issues.push(Issue {
                    key: origin.name_path(),
                    span: None,
                    kind: ConfigErrorKind::MissingGroupName,
                });
            } else if let Some(first) = names.get(group.name.as_str()) {
                self.issues.push(Issue {
                    key: origin.name_path(),
                    span: None,
                    kind: ConfigErrorKind::DuplicateGroupName {
                        name: group.name.clone(),
                        first: first.name_path(),
                    },
                });
            } else {
                names.insert(&group.name, origin);
            }

            if group.prefixes.is_empty() {
                self.issues.push(Issue {
                    key: origin.prefixes_path(),
                    span: None,
                    kind: ConfigErrorKind::NoPrefixes {
                        group: group.name.clone(),
                    },
                });
            }
            for (j, prefix) in group.prefixes.iter().enumerate() {
                let here = format!("{}[{j}]", origin.prefixes_path());
                if let Some((first, first_group)) = prefixes.get(prefix) {
                    self.issues.push(Issue {
                        key: here,
                        span: None,
                        kind: ConfigErrorKind::DuplicatePrefix {
                            prefix: *prefix,
                            first: first.clone(),
                            first_group: (*first_group).to_owned(),
                        },
                    });
                } else {
                    prefixes.insert(*prefix, (here, &group.name));
                }
            }

            let set = group.detection.set_keys();
            if !set.is_empty() {
                let resolved = group.detection.apply(&base.cloned().unwrap_or_default());
                let path = format!("{}.detection", origin.path());
                self.detection(&path, &resolved, tick, &|k| set.contains(&k));
            }
        }
    }
}

impl Validator<'_> {
    fn invalid(&mut self, key: String, message: String) {
        self.issues.push(Issue {
            key,
            span: None,
            kind: ConfigErrorKind::InvalidValue { message },
        });
    }

    /// `[mitigation]`: its global keys, its ladder, its speakers.
    fn mitigation(&mut self, m: &MitigationConfig) {
        if !(MIN_MITIGATION_TTL..=MAX_MITIGATION_TTL).contains(&m.ttl) {
            self.out_of_range(
                "mitigation.ttl".into(),
                quoted(m.ttl),
                format!(
                    "a duration in {}..={}",
                    format_duration(MIN_MITIGATION_TTL),
                    format_duration(MAX_MITIGATION_TTL)
                ),
            );
        }
        if m.max_rules.get() > MAX_MITIGATION_RULES {
            self.out_of_range(
                "mitigation.max_rules".into(),
                m.max_rules.to_string(),
                format!("at most {MAX_MITIGATION_RULES}"),
            );
        }
        if m.max_rules_per_target > m.max_rules {
            self.out_of_range(
                "mitigation.max_rules_per_target".into(),
                m.max_rules_per_target.to_string(),
                format!("at most max_rules ({})", m.max_rules),
            );
        }
        self.ladder("mitigation", m, &|_| true);
        for (i, s) in m.speakers.iter().enumerate() {
            let path = format!("mitigation.speaker[{i}]");
            let absolute = |v: &mut Self, key: &str, p: &std::path::Path| {
                if !p.is_absolute() {
                    v.invalid(
                        format!("{path}.{key}"),
                        format!("{p:?} is not an absolute path"),
                    );
                }
            };
            match s {
                SpeakerConfig::Gobgp(_) => {}
                SpeakerConfig::Exabgp(e) => absolute(self, "socket", &e.socket),
                SpeakerConfig::Bird(b) => {
                    absolute(self, "include", &b.include);
                    absolute(self, "socket", &b.socket);
                }
                SpeakerConfig::Frr(f) => {
                    if let Some(p) = &f.vty_socket {
                        absolute(self, "vty_socket", p);
                    }
                }
            }
        }
    }

    /// The ladder keys of `m` at `path`, only those `owns` says were set there.
    fn ladder(&mut self, path: &str, m: &MitigationConfig, owns: &dyn Fn(&str) -> bool) {
        let key = |k: &str| format!("{path}.{k}");
        if owns("hold_down") && m.hold_down > MAX_HOLD_DOWN {
            self.out_of_range(
                key("hold_down"),
                quoted(m.hold_down),
                format!("at most {}", format_duration(MAX_HOLD_DOWN)),
            );
        }
        if owns("levels") {
            self.levels(&key("levels"), &m.levels);
        }
        for (name, value) in [
            ("rate_limit_multiple", m.rate_limit_multiple),
            ("rate_limit_floor_mbps", m.rate_limit_floor_mbps),
        ] {
            if owns(name) && !(value > 0.0 && value.is_finite()) {
                self.out_of_range(key(name), number(value), "a finite number greater than 0");
            }
        }
        if owns("next_hop") {
            if let Some(ip) = m.next_hop.filter(|ip| !ip.is_ipv4()) {
                self.invalid(
                    key("next_hop"),
                    format!("{ip} is not an IPv4 address (IPv6 RTBH routes use next_hop_v6)"),
                );
            }
        }
        if owns("next_hop_v6") {
            if let Some(ip) = m.next_hop_v6.filter(|ip| !ip.is_ipv6()) {
                self.invalid(
                    key("next_hop_v6"),
                    format!("{ip} is not an IPv6 address (IPv4 RTBH routes use next_hop)"),
                );
            }
        }
    }

    fn levels(&mut self, path: &str, levels: &[LevelConfig]) {
        if levels.len() > MAX_LEVELS {
            self.out_of_range(
                path.to_owned(),
                format!("{} levels", levels.len()),
                format!("at most {MAX_LEVELS} levels"),
            );
        }
        let mut last_mbps: Option<f64> = None;
        let mut last_pps: Option<u64> = None;
        for (i, level) in levels.iter().enumerate() {
            let here = format!("{path}[{i}]");
            if level.at_mbps.is_none() && level.at_pps.is_none() {
                self.invalid(
                    here.clone(),
                    "a level needs `at_mbps`, `at_pps` or both".to_owned(),
                );
            }
            if let Some(mbps) = level.at_mbps {
                if !(mbps > 0.0 && mbps.is_finite()) {
                    self.out_of_range(
                        format!("{here}.at_mbps"),
                        number(mbps),
                        "a finite number of Mbit/s greater than 0",
                    );
                } else if last_mbps.is_some_and(|last| mbps <= last) {
                    self.out_of_range(
                        format!("{here}.at_mbps"),
                        number(mbps),
                        "more than the level below (levels are listed lowest first)",
                    );
                }
                last_mbps = Some(mbps);
            }
            if let Some(pps) = level.at_pps.map(|p| p.get()) {
                if last_pps.is_some_and(|last| pps <= last) {
                    self.out_of_range(
                        format!("{here}.at_pps"),
                        pps.to_string(),
                        "more than the level below (levels are listed lowest first)",
                    );
                }
                last_pps = Some(pps);
            }
        }
    }
}

fn quoted(d: Duration) -> String {
    format!("\"{}\"", format_duration(d))
}

fn number(v: f64) -> String {
    format!("{v:?}")
}
