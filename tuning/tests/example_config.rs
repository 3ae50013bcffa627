//! The annotated example config at the repository root must always load, and say what
//! its comments say.

use std::path::Path;
use std::time::Duration;

use surgewatch_tuning::{load, Config, DetectionConfig};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../surgewatch.example.toml");

fn example() -> Config {
    match load(Path::new(EXAMPLE)) {
        Ok(config) => config,
        Err(errors) => panic!("{EXAMPLE} does not load:\n{errors}"),
    }
}

#[test]
fn example_config_loads() {
    let c = example();
    assert_eq!(c.sensor.tick, Duration::from_secs(1));
    assert_eq!(c.sensor.auto_monitor_limit.get(), 100_000);
    assert_eq!(
        c.baseline.path.as_deref(),
        Some(Path::new("/var/lib/surgewatch/baselines.bin"))
    );

    let groups = c.resolved_groups();
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["hosting", "dns-servers", "office"]);

    let hosting = &groups[0];
    assert_eq!(hosting.prefixes[0].to_string(), "203.0.113.0/24");
    assert_eq!(hosting.prefixes[1].to_string(), "2001:db8:100::/48");
    assert_eq!(hosting.detection.floor_pps.get(), 5000);
    assert_eq!(hosting.detection.floor_mbps, 50.0);
    assert_eq!(hosting.detection.static_pps.get(), 10_000, "inherited");

    let dns = &groups[1];
    assert!(
        hosting.prefixes[0].contains(&dns.prefixes[0]),
        "the example shows nesting"
    );
    assert_eq!(dns.detection.baseline_multiplier, 5.0);
    assert_eq!(dns.detection.start_ticks.get(), 3);
    assert_eq!(dns.detection.floor_pps.get(), 1000, "inherited");

    assert_eq!(groups[2].detection, c.detection, "no overrides");
}

#[test]
fn example_shows_the_defaults() {
    // The [sensor], [detection] and [baseline] values in the example are the defaults, so
    // the file documents them; keep the two in step.
    let c = example();
    let defaults = Config::default();
    assert_eq!(c.sensor, defaults.sensor);
    assert_eq!(c.detection, DetectionConfig::default());
    assert_eq!(c.baseline.save_interval, defaults.baseline.save_interval);
}

#[test]
fn example_monitor_shorthand_works_when_uncommented() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("#     monitor = "))
        .map(|l| l.trim_start().trim_start_matches('#').trim().to_owned())
        .unwrap_or_default();
    assert!(
        line.starts_with("monitor = "),
        "the example documents `monitor`"
    );
    let config = surgewatch_tuning::from_str(&format!("{line}\n{text}"), "example")
        .unwrap_or_else(|e| panic!("{e}"));
    let last = config.groups.last().map(|g| g.name.as_str());
    assert_eq!(last, Some(surgewatch_tuning::DEFAULT_GROUP_NAME));
    assert_eq!(config.groups.len(), 4);
}

#[test]
fn the_commented_mitigation_section_loads_when_uncommented() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let (_, block) = text
        .split_once("\n# [mitigation]\n")
        .map(|(head, tail)| (head, format!("# [mitigation]\n{tail}")))
        .expect("the example has a commented [mitigation] section");
    let uncommented: String = block
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let whole = format!("{text}\n{uncommented}");
    let c = match surgewatch_tuning::from_str(&whole, "example") {
        Ok(c) => c,
        Err(e) => panic!("the uncommented mitigation section does not load:\n{e}\n{uncommented}"),
    };
    let m = c.mitigation.expect("a [mitigation] table");
    let defaults = surgewatch_tuning::MitigationConfig::default();
    assert_eq!(m.mode, defaults.mode);
    assert_eq!(m.ttl, defaults.ttl);
    assert_eq!(
        m.levels, defaults.levels,
        "the example shows the default ladder"
    );
    assert_eq!(m.speakers.len(), 1);
    assert!(
        example().mitigation.is_none(),
        "commented out: no mitigation"
    );
}
