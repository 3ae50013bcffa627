//! Decoding and validation tests over small TOML fixtures.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use super::*;

const ORIGIN: &str = "t.toml";

fn ok(text: &str) -> Config {
    match from_str(text, ORIGIN) {
        Ok(config) => config,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// The error lines for `text`, which must be invalid.
fn errors(text: &str) -> Vec<String> {
    match from_str(text, ORIGIN) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(e) => {
            let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
            assert_eq!(lines.len(), e.len(), "one line per error");
            lines
        }
    }
}

/// The single error line for `text`.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    errors.into_iter().next().unwrap_or_default()
}

fn assert_error(text: &str, prefix: &str, contains: &str) {
    let e = error(text);
    assert!(e.starts_with(prefix), "{e:?} should start with {prefix:?}");
    assert!(e.contains(contains), "{e:?} should contain {contains:?}");
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

const GROUP: &str = "[[group]]\nname = \"g\"\nprefixes = [\"192.0.2.0/24\"]\n";

// ---------------------------------------------------------------------------------------
// Defaults and shapes

#[test]
fn defaults() {
    let c = Config::default();
    assert_eq!(c.sensor.tick, Duration::from_secs(1));
    assert_eq!(c.sensor.auto_monitor_limit.get(), 100_000);
    assert_eq!(c.sensor.max_tracked_ips.get(), 1_000_000);
    assert_eq!(c.sensor.admit_untracked_pps, 1_000);
    assert_eq!(c.sensor.idle_evict, Duration::from_secs(300));
    assert_eq!(c.sensor.workers, 0);
    assert_eq!(c.sensor.top_n, 10);
    let d = &c.detection;
    assert_eq!(d.floor_pps.get(), 1000);
    assert_eq!(d.floor_mbps, 10.0);
    assert_eq!(d.static_pps.get(), 10_000);
    assert_eq!(d.static_mbps, 100.0);
    assert_eq!(d.baseline_window, Duration::from_secs(300));
    assert_eq!(d.baseline_percentile, 99.0);
    assert_eq!(d.baseline_multiplier, 3.0);
    assert_eq!(d.baseline_recompute, Duration::from_secs(10));
    assert_eq!(d.warmup, Duration::from_secs(300));
    assert_eq!(d.start_ticks.get(), 1);
    assert_eq!(d.end_ticks.get(), 10);
    assert_eq!(d.baseline_samples(c.sensor.tick), 300);
    assert_eq!(c.baseline.path, None);
    assert_eq!(c.baseline.save_interval, Duration::from_secs(60));
    assert!(c.groups.is_empty());
    assert!(c.validate().is_ok(), "the defaults are valid");
}

#[test]
fn empty_documents_and_empty_sections_are_the_defaults() {
    assert_eq!(ok(""), Config::default());
    assert_eq!(
        ok("# nothing\n[sensor]\n[detection]\n[baseline]\n"),
        Config::default()
    );
}

#[test]
fn every_key_decodes_into_its_type() {
    let c = ok(r#"
        [sensor]
        tick = "100ms"
        auto_monitor_limit = 5
        workers = 3
        top_n = 0
        [detection]
        floor_pps = 1
        floor_mbps = 1
        static_pps = 2
        static_mbps = 2.5
        baseline_window = "1m"
        baseline_percentile = 100
        baseline_multiplier = 1.5
        baseline_recompute = "1.5s"
        warmup = "0s"
        start_ticks = 3
        end_ticks = 4
        [baseline]
        path = "/var/lib/surgewatch/b.bin"
        save_interval = "1h"
    "#);
    assert_eq!(c.sensor.tick, Duration::from_millis(100));
    assert_eq!(c.sensor.auto_monitor_limit, NonZeroU32::new(5).unwrap());
    assert_eq!((c.sensor.workers, c.sensor.top_n), (3, 0));
    let d = &c.detection;
    assert_eq!(d.floor_pps, NonZeroU64::new(1).unwrap());
    assert_eq!(d.floor_mbps, 1.0, "an integer is accepted for a float");
    assert_eq!(d.static_mbps, 2.5);
    assert_eq!(d.baseline_window, Duration::from_secs(60));
    assert_eq!(d.baseline_samples(c.sensor.tick), 600);
    assert_eq!(d.baseline_percentile, 100.0);
    assert_eq!(d.baseline_recompute, Duration::from_millis(1500));
    assert_eq!(d.warmup, Duration::ZERO);
    assert_eq!((d.start_ticks.get(), d.end_ticks.get()), (3, 4));
    assert_eq!(
        c.baseline.path.as_deref(),
        Some(std::path::Path::new("/var/lib/surgewatch/b.bin"))
    );
    assert_eq!(c.baseline.save_interval, Duration::from_secs(3600));
}

#[test]
fn groups_decode_with_overrides_applied() {
    let c = ok(r#"
        [detection]
        floor_pps = 2000
        warmup = "10m"

        [[group]]
        name = "hosting"
        prefixes = ["203.0.113.0/24", "2001:db8:100::/48"]
        [group.detection]
        floor_pps = 5000
        baseline_multiplier = 4.0

        [[group]]
        name = "dns-servers"
        prefixes = ["203.0.113.53/32"]   # nested inside hosting: allowed, longest match wins
    "#);
    assert_eq!(c.groups.len(), 2);
    assert_eq!(
        c.groups[0].prefixes,
        vec![net("203.0.113.0/24"), net("2001:db8:100::/48")]
    );
    assert_eq!(c.groups[0].detection.floor_pps, NonZeroU64::new(5000));
    assert_eq!(c.groups[0].detection.warmup, None);

    let r = c.resolved_groups();
    assert_eq!(r[0].name, "hosting");
    assert_eq!(r[0].detection.floor_pps.get(), 5000, "overridden");
    assert_eq!(r[0].detection.baseline_multiplier, 4.0, "overridden");
    assert_eq!(
        r[0].detection.warmup,
        Duration::from_secs(600),
        "inherited from [detection]"
    );
    assert_eq!(r[0].detection.static_pps.get(), 10_000, "inherited default");
    assert_eq!(r[1].name, "dns-servers");
    assert_eq!(
        r[1].detection, c.detection,
        "no overrides: exactly [detection]"
    );
}

#[test]
fn overrides_apply_key_by_key() {
    let base = DetectionConfig::default();
    assert_eq!(DetectionOverrides::default().apply(&base), base);
    let o = DetectionOverrides {
        end_ticks: NonZeroU32::new(30),
        baseline_window: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let applied = o.apply(&base);
    assert_eq!(applied.end_ticks.get(), 30);
    assert_eq!(applied.baseline_window, Duration::from_secs(60));
    assert_eq!(applied.floor_pps, base.floor_pps);
    assert_eq!(o.set_keys(), vec!["baseline_window", "end_ticks"]);
}

#[test]
fn monitor_shorthand_becomes_the_default_group() {
    let c = ok(r#"
        monitor = ["192.0.2.0/24", "2001:db8::/32"]
        [detection]
        floor_pps = 3000
    "#);
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].name, DEFAULT_GROUP_NAME);
    assert_eq!(
        c.groups[0].prefixes,
        vec![net("192.0.2.0/24"), net("2001:db8::/32")]
    );
    assert_eq!(c.groups[0].detection, DetectionOverrides::default());
    assert_eq!(c.resolved_groups()[0].detection.floor_pps.get(), 3000);
}

#[test]
fn monitor_combines_with_groups_and_comes_last() {
    let c = ok(&format!("monitor = [\"198.51.100.0/24\"]\n{GROUP}"));
    let names: Vec<_> = c.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["g", "default"]);
}

#[test]
fn inline_group_tables_are_accepted() {
    let c = ok(
        r#"group = [{ name = "a", prefixes = ["192.0.2.0/25"], detection = { end_ticks = 2 } }]"#,
    );
    assert_eq!(c.groups[0].detection.end_ticks, NonZeroU32::new(2));
}

#[test]
fn same_prefix_spelled_differently_is_still_a_duplicate() {
    let e = errors(
        r#"
        [[group]]
        name = "a"
        prefixes = ["2001:db8:100::/48"]
        [[group]]
        name = "b"
        prefixes = ["2001:0db8:0100:0000::/48"]
        "#,
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("t.toml:7:21: group[1].prefixes[0]: prefix 2001:db8:100::/48 is already listed at group[0].prefixes[0] (group \"a\")"), "{}", e[0]);
}

// ---------------------------------------------------------------------------------------
// Syntax, unknown keys, types

#[test]
fn syntax_error_is_one_error_with_a_location() {
    let e = error("[sensor]\ntick = \"1s\n");
    assert!(e.starts_with("t.toml:2:"), "{e}");
    assert!(e.contains("TOML syntax error"), "{e}");
    assert!(!e.contains('\n'));
    // Duplicate keys are a TOML error too.
    assert!(error("[sensor]\ntop_n = 1\ntop_n = 2\n").starts_with("t.toml:3:"));
}

#[test]
fn unknown_top_level_key() {
    assert_error(
        "[senor]\n",
        "t.toml:1:2: senor: unknown key",
        "did you mean `sensor`?",
    );
    assert_error(
        "[[groups]]\nname = \"x\"\n",
        "t.toml:1:3: groups: unknown key",
        "did you mean `group`?",
    );
    assert_error(
        "colour = 1\n",
        "t.toml:1:1: colour: unknown key",
        "expected one of: sensor, detection, baseline, capture, group, monitor",
    );
}

#[test]
fn unknown_key_in_detection() {
    assert_error(
        "[detection]\nflor_pps = 5\n",
        "t.toml:2:1: detection.flor_pps: unknown key",
        "did you mean `floor_pps`?",
    );
}

#[test]
fn unknown_key_in_sensor_and_baseline() {
    assert_error(
        "[sensor]\nticks = \"1s\"\n",
        "t.toml:2:1: sensor.ticks: unknown key",
        "`tick`",
    );
    assert_error(
        "[baseline]\nfile = \"/x\"\n",
        "t.toml:2:1: baseline.file: unknown key",
        "expected one of: path, save_interval",
    );
}

#[test]
fn unknown_key_in_group_and_group_detection() {
    let e = errors(&format!(
        "{GROUP}prefix = [\"10.0.0.0/8\"]\n[group.detection]\nwarm_up = \"1s\"\n"
    ));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with("t.toml:4:1: group[0].prefix: unknown key; did you mean `prefixes`?"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with(
            "t.toml:6:1: group[0].detection.warm_up: unknown key; did you mean `warmup`?"
        ),
        "{}",
        e[1]
    );
}

#[test]
fn wrong_types() {
    assert_error(
        "[sensor]\ntop_n = \"10\"\n",
        "t.toml:2:9: sensor.top_n: ",
        "invalid type: string \"10\"",
    );
    assert_error(
        "[detection]\nfloor_mbps = \"10\"\n",
        "t.toml:2:14: detection.floor_mbps: ",
        "invalid type",
    );
    assert_error(
        "[detection]\nstatic_pps = 1.5\n",
        "t.toml:2:14: detection.static_pps: ",
        "invalid type",
    );
    assert_error(
        "sensor = 5\n",
        "t.toml:1:10: sensor: ",
        "expected a table, found integer",
    );
    assert_error(
        "monitor = \"192.0.2.0/24\"\n",
        "t.toml:1:11: monitor: ",
        "expected an array of CIDR strings",
    );
    assert_error(
        "[[group]]\nname = 5\nprefixes = [\"192.0.2.0/24\"]\n",
        "t.toml:2:8: group[0].name: ",
        "invalid type: integer",
    );
    assert_error(
        "[group]\nname = \"x\"\n",
        "t.toml:1:1: group: ",
        "write `[[group]]`, not `[group]`",
    );
    assert_error(
        "[sensor]\nworkers = -1\n",
        "t.toml:2:11: sensor.workers: ",
        "invalid value: integer `-1`",
    );
}

#[test]
fn durations_need_a_unit() {
    assert_error(
        "[sensor]\ntick = 1\n",
        "t.toml:2:8: sensor.tick: ",
        "a bare number is ambiguous; write a string with a unit, e.g. \"1s\" or \"1ms\"",
    );
    assert_error(
        "[sensor]\ntick = \"1\"\n",
        "t.toml:2:8: sensor.tick: ",
        "missing unit; write e.g. \"1s\" or \"1ms\"",
    );
    assert_error(
        "[detection]\nwarmup = \"5 min\"\n",
        "t.toml:2:10: detection.warmup: ",
        "expected a number followed by a unit",
    );
}

#[test]
fn zero_and_negative_counts_are_rejected_while_decoding() {
    assert_error(
        "[detection]\nfloor_pps = 0\n",
        "t.toml:2:13: detection.floor_pps: ",
        "invalid value 0: must be at least 1",
    );
    assert_error(
        "[detection]\nstatic_pps = -5\n",
        "t.toml:2:14: detection.static_pps: ",
        "invalid value -5: must be at least 1",
    );
    assert_error(
        "[detection]\nstart_ticks = 0\n",
        "t.toml:2:15: detection.start_ticks: ",
        "must be at least 1",
    );
    assert_error(
        "[detection]\nend_ticks = 0\n",
        "t.toml:2:13: detection.end_ticks: ",
        "must be at least 1",
    );
    assert_error(
        "[sensor]\nauto_monitor_limit = 0\n",
        "t.toml:2:22: sensor.auto_monitor_limit: ",
        "must be at least 1",
    );
    assert_error(
        "[detection]\nend_ticks = 5000000000\n",
        "t.toml:2:13: detection.end_ticks: ",
        "at most 4294967295",
    );
    assert_error(
        &format!("{GROUP}[group.detection]\nstart_ticks = 0\n"),
        "t.toml:5:15: group[0].detection.start_ticks: ",
        "must be at least 1",
    );
}

// ---------------------------------------------------------------------------------------
// Semantic checks

#[test]
fn tick_must_be_between_100ms_and_60s() {
    assert_error(
        "[sensor]\ntick = \"50ms\"\n",
        "t.toml:2:8: sensor.tick: \"50ms\" is out of range",
        "expected a duration in 100ms..=1m",
    );
    assert_error(
        "[sensor]\ntick = \"61s\"\n",
        "t.toml:2:8: sensor.tick: \"61s\" is out of range",
        "100ms..=1m",
    );
    assert_error(
        "[sensor]\ntick = \"0s\"\n",
        "t.toml:2:8: sensor.tick: ",
        "out of range",
    );
    ok("[sensor]\ntick = \"100ms\"\n[detection]\nbaseline_recompute = \"100ms\"\n");
    ok("[sensor]\ntick = \"60s\"\n[detection]\nbaseline_recompute = \"1m\"\n");
}

#[test]
fn the_tracked_address_budget_is_bounded_and_idle_eviction_is_off_or_a_tick_or_more() {
    assert_error(
        "[sensor]\nmax_tracked_ips = 0\n",
        "t.toml:2:19: sensor.max_tracked_ips: ",
        "must be at least 1",
    );
    assert_error(
        "[sensor]\nmax_tracked_ips = 200000000\n",
        "t.toml:2:19: sensor.max_tracked_ips: 200000000 is out of range",
        "at most 100000000",
    );
    assert_error(
        "[sensor]\nauto_monitor_limit = 100000001\n",
        "t.toml:2:22: sensor.auto_monitor_limit: ",
        "at most 100000000",
    );
    assert_error(
        "[sensor]\ntick = \"2s\"\nidle_evict = \"1s\"\n",
        "t.toml:3:14: sensor.idle_evict: \"1s\" is out of range",
        "0s (off), or at least one tick",
    );
    let c = ok("[sensor]\nmax_tracked_ips = 5000\nadmit_untracked_pps = 0\nidle_evict = \"0s\"\n");
    assert_eq!(
        (
            c.sensor.max_tracked_ips.get(),
            c.sensor.admit_untracked_pps,
            c.sensor.idle_evict
        ),
        (5000, 0, Duration::ZERO)
    );
}

#[test]
fn floors_and_static_mbps_must_be_positive_and_finite() {
    for (key, value) in [
        ("floor_mbps", "0.0"),
        ("floor_mbps", "-1.0"),
        ("static_mbps", "0"),
        ("static_mbps", "inf"),
        ("floor_mbps", "nan"),
    ] {
        let e = error(&format!("[detection]\n{key} = {value}\n"));
        assert!(
            e.starts_with(&format!("t.toml:2:{}: detection.{key}: ", key.len() + 4)),
            "{e}"
        );
        assert!(
            e.contains("expected a finite number of Mbit/s greater than 0"),
            "{e}"
        );
    }
}

#[test]
fn percentile_must_be_in_0_exclusive_to_100() {
    for bad in ["0", "0.0", "-1", "100.5", "nan"] {
        assert_error(
            &format!("[detection]\nbaseline_percentile = {bad}\n"),
            "t.toml:2:23: detection.baseline_percentile: ",
            "expected a percentile in (0, 100]",
        );
    }
    ok("[detection]\nbaseline_percentile = 0.1\n");
    ok("[detection]\nbaseline_percentile = 100\n");
}

#[test]
fn multiplier_must_exceed_one() {
    for bad in ["1.0", "1", "0.5", "-2", "inf"] {
        assert_error(
            &format!("[detection]\nbaseline_multiplier = {bad}\n"),
            "t.toml:2:23: detection.baseline_multiplier: ",
            "greater than 1.0",
        );
    }
    ok("[detection]\nbaseline_multiplier = 1.01\n");
}

#[test]
fn baseline_window_must_hold_1_to_3600_ticks() {
    assert_error(
        "[detection]\nbaseline_window = \"500ms\"\n",
        "t.toml:2:19: detection.baseline_window: \"500ms\" is out of range",
        "expected at least one tick (1s)",
    );
    assert_error(
        "[detection]\nbaseline_window = \"3601s\"\n",
        "t.toml:2:19: detection.baseline_window: \"3601s\" is out of range",
        "expected at most 3600 ticks (1h at a 1s tick)",
    );
    ok("[detection]\nbaseline_window = \"1h\"\n");
    ok("[detection]\nbaseline_window = \"1s\"\n");
    // The limit is in ticks, so it moves with the tick.
    assert_error(
        "[sensor]\ntick = \"100ms\"\n[detection]\nbaseline_window = \"361s\"\n",
        "t.toml:4:19: detection.baseline_window: ",
        "at most 3600 ticks (6m at a 100ms tick)",
    );
}

#[test]
fn recompute_must_be_at_least_a_tick() {
    assert_error(
        "[detection]\nbaseline_recompute = \"500ms\"\n",
        "t.toml:2:22: detection.baseline_recompute: \"500ms\" is out of range",
        "expected at least one tick (1s)",
    );
}

#[test]
fn an_inherited_default_is_reported_as_such() {
    // A 60s tick makes the default 10s recompute too short; the key is not in the file,
    // so the error points at the [detection] table and says the value is the default.
    let e = error("[sensor]\ntick = \"60s\"\n[detection]\nwarmup = \"1h\"\n");
    assert_eq!(
        e,
        "t.toml:3:1: detection.baseline_recompute: \"10s\" (the default) is out of range: expected at least one tick (1m)"
    );
    // With no [detection] table at all there is nothing to point at.
    let e = error("[sensor]\ntick = \"60s\"\n");
    assert!(
        e.starts_with("t.toml: detection.baseline_recompute: \"10s\" (the default)"),
        "{e}"
    );
}

#[test]
fn baseline_path_must_be_absolute_and_save_interval_at_least_1s() {
    assert_error(
        "[baseline]\npath = \"baselines.bin\"\n",
        "t.toml:2:8: baseline.path: ",
        "is not an absolute path",
    );
    assert_error(
        "[baseline]\nsave_interval = \"500ms\"\n",
        "t.toml:2:17: baseline.save_interval: ",
        "expected at least 1s",
    );
}

#[test]
fn group_name_is_required_and_unique() {
    assert_error(
        "[[group]]\nprefixes = [\"192.0.2.0/24\"]\n",
        "t.toml:1:1: group[0].name: ",
        "every group needs a non-empty `name`",
    );
    assert_error(
        "[[group]]\nname = \"\"\nprefixes = [\"192.0.2.0/24\"]\n",
        "t.toml:2:8: group[0].name: ",
        "non-empty",
    );
    assert_error(
        "[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.0/25\"]\n[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.128/25\"]\n",
        "t.toml:5:8: group[1].name: duplicate group name \"a\"",
        "(first used by group[0].name)",
    );
    assert_error(
        "monitor = [\"198.51.100.0/24\"]\n[[group]]\nname = \"default\"\nprefixes = [\"192.0.2.0/24\"]\n",
        "t.toml:1:11: monitor: duplicate group name \"default\"",
        "group[0].name",
    );
}

#[test]
fn group_needs_prefixes() {
    assert_error(
        "[[group]]\nname = \"a\"\n",
        "t.toml:1:1: group[0].prefixes: ",
        "no prefixes; list at least one CIDR",
    );
    assert_error(
        "[[group]]\nname = \"a\"\nprefixes = []\n",
        "t.toml:3:12: group[0].prefixes: ",
        "no prefixes",
    );
    assert_error("monitor = []\n", "t.toml:1:11: monitor: ", "no prefixes");
}

#[test]
fn a_prefix_belongs_to_one_group() {
    assert_error(
        &format!("{GROUP}[[group]]\nname = \"h\"\nprefixes = [\"198.51.100.0/24\", \"192.0.2.0/24\"]\n"),
        "t.toml:6:32: group[1].prefixes[1]: prefix 192.0.2.0/24 is already listed at group[0].prefixes[0] (group \"g\")",
        "nested prefixes are fine",
    );
    // Twice within one group.
    assert_error(
        "[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.0/24\", \"192.0.2.0/24\"]\n",
        "t.toml:3:29: group[0].prefixes[1]: ",
        "already listed at group[0].prefixes[0]",
    );
    // Nested is fine, in either order.
    ok(&format!(
        "{GROUP}[[group]]\nname = \"h\"\nprefixes = [\"192.0.2.0/25\", \"192.0.0.0/16\"]\n"
    ));
}

/// 50,000 duplicate prefixes are 50,000 errors, each at its own line and column. Locating
/// them used to rescan the text and clone the document once per error (16k duplicates took
/// 45 s); now the key path is walked by reference and the offset goes through one
/// precomputed `LineIndex` (unit-tested in `error.rs`), so this takes well under a second
/// in a release build, and finishes at all in a debug one.
#[test]
fn fifty_thousand_duplicate_prefixes_are_located_in_one_pass() {
    const N: usize = 50_000;
    // One prefix a line...
    let text = format!(
        "[[group]]\nname = \"a\"\nprefixes = [\n{}]\n",
        "  \"10.0.0.0/24\",\n".repeat(N + 1)
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), N);
    assert!(errs[0].starts_with("t.toml:5:3: group[0].prefixes[1]: prefix 10.0.0.0/24 is already listed at group[0].prefixes[0]"), "{}", errs[0]);
    let last = format!("t.toml:{}:3: group[0].prefixes[{N}]: ", N + 4);
    assert!(errs[N - 1].starts_with(&last), "{}", errs[N - 1]);
    // ...and all on one line, after a multi-byte comment: columns count characters.
    let text = format!(
        "# é\n[[group]]\nname = \"a\"\nprefixes = [{}]\n",
        "\"10.0.0.0/24\", ".repeat(N + 1)
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), N);
    let column = 13 + 15 * N;
    let last = format!("t.toml:4:{column}: group[0].prefixes[{N}]: ");
    assert!(errs[N - 1].starts_with(&last), "{}", errs[N - 1]);
}

/// The sensor numbers groups with a 16-bit id (one value reserved): more than
/// `MAX_GROUPS` is one error, at the first `[[group]]`, checked here rather than at run time.
#[test]
fn at_most_65535_groups() {
    let groups = |n: usize| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "[[group]]\nname = \"g{i}\"\nprefixes = [\"10.{}.{}.0/24\"]\n",
                    i / 256,
                    i % 256
                )
            })
            .collect()
    };
    assert_eq!(MAX_GROUPS, 65_535);
    assert_eq!(ok(&groups(MAX_GROUPS)).groups.len(), MAX_GROUPS);
    assert_eq!(
        error(&groups(MAX_GROUPS + 1)),
        "t.toml:1:1: group: at most 65535 groups (found 65536)"
    );
    // The `monitor` shorthand is a group too.
    assert_eq!(
        error(&format!(
            "monitor = [\"192.0.2.0/24\"]\n{}",
            groups(MAX_GROUPS)
        )),
        "t.toml:2:1: group: at most 65535 groups (found 65536)"
    );
}

#[test]
fn cidrs_are_strict() {
    assert_error(
        "monitor = [\"10.0.0.0/33\"]\n",
        "t.toml:1:12: monitor[0]: invalid CIDR \"10.0.0.0/33\": ",
        "prefix length must be 0..=32 for an IPv4 address",
    );
    assert_error("monitor = [\"10.0.0.1/24\"]\n", "t.toml:1:12: monitor[0]: ", "host bits are set; did you mean the network \"10.0.0.0/24\" or the single host \"10.0.0.1/32\"?");
    assert_error(
        "monitor = [\"198.51.100.53\"]\n",
        "t.toml:1:12: monitor[0]: ",
        "write \"198.51.100.53/32\"",
    );
    assert_error(
        "monitor = [24]\n",
        "t.toml:1:12: monitor[0]: ",
        "invalid type: integer",
    );
    let e = errors(
        "[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.0/24\", \"nope/8\", \"2001:db8::1/32\"]\n",
    );
    assert_eq!(e.len(), 2, "every bad element is reported: {e:#?}");
    assert!(
        e[0].starts_with(
            "t.toml:3:29: group[0].prefixes[1]: invalid CIDR \"nope/8\": \"nope\" is not"
        ),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with(
            "t.toml:3:39: group[0].prefixes[2]: invalid CIDR \"2001:db8::1/32\": host bits"
        ),
        "{}",
        e[1]
    );
}

#[test]
fn group_overrides_are_checked_where_they_are_set() {
    let e = errors(&format!(
        "[detection]\nbaseline_multiplier = 0.5\n{GROUP}[group.detection]\nbaseline_percentile = 0\nbaseline_window = \"100ms\"\n[[group]]\nname = \"h\"\nprefixes = [\"198.51.100.0/24\"]\n"
    ));
    assert_eq!(
        e.len(),
        3,
        "the inherited multiplier is reported once, at [detection]: {e:#?}"
    );
    assert!(
        e[0].starts_with("t.toml:2:23: detection.baseline_multiplier: "),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with("t.toml:7:23: group[0].detection.baseline_percentile: "),
        "{}",
        e[1]
    );
    assert!(e[2].starts_with("t.toml:8:19: group[0].detection.baseline_window: \"100ms\" is out of range: expected at least one tick (1s)"), "{}", e[2]);
}

// ---------------------------------------------------------------------------------------
// Everything at once

#[test]
fn every_error_in_a_document_is_reported_at_once() {
    let text = r#"# one document, many problems
surplus = true

[sensor]
tick = "30ms"
top_n = "ten"

[detection]
baseline_percentile = 120.0
floor_pps = 0
start_ticks = 0
warmup = 300

[baseline]
path = "relative.bin"

[[group]]
name = "hosting"
prefixes = ["203.0.113.0/24"]
colour = "red"

[[group]]
name = "hosting"
prefixes = ["203.0.113.0/24", "10.0.0.0/33"]

[[group]]
name = ""
prefixes = []
[group.detection]
end_ticks = 0
"#;
    let err = from_str(text, "surgewatch.toml").unwrap_err();
    let lines: Vec<&str> = text.lines().collect();
    let rendered = err.to_string();
    let expected = [
        ("2:1", "surplus", "unknown key"),
        ("5:8", "sensor.tick", "out of range"),
        ("6:9", "sensor.top_n", "invalid type"),
        ("9:23", "detection.baseline_percentile", "out of range"),
        ("10:13", "detection.floor_pps", "must be at least 1"),
        ("11:15", "detection.start_ticks", "must be at least 1"),
        ("12:10", "detection.warmup", "a bare number is ambiguous"),
        ("15:8", "baseline.path", "absolute"),
        ("20:1", "group[0].colour", "unknown key"),
        ("23:8", "group[1].name", "duplicate group name \"hosting\""),
        ("24:31", "group[1].prefixes[1]", "invalid CIDR"),
        ("27:8", "group[2].name", "non-empty `name`"),
        ("28:12", "group[2].prefixes", "no prefixes"),
        (
            "30:13",
            "group[2].detection.end_ticks",
            "must be at least 1",
        ),
    ];
    let got: Vec<&str> = rendered.lines().collect();
    assert_eq!(got.len(), expected.len(), "{rendered}");
    assert_eq!(err.len(), expected.len());
    for (line, (at, key, what)) in got.iter().zip(expected) {
        assert!(
            line.starts_with(&format!("surgewatch.toml:{at}: {key}: ")),
            "{line:?} vs {at} {key}"
        );
        assert!(line.contains(what), "{line:?} should say {what:?}");
    }
    // Every error carries a location that points into the document.
    for e in err.errors() {
        let Location { line, column } = e.location.expect("located");
        assert!(
            line <= lines.len() && column <= lines[line - 1].len() + 1,
            "{e}"
        );
    }
    // A key that failed to decode is left out of the semantic checks (group[1]'s valid
    // prefix is checked against group[0] once its bad neighbour is fixed).
    let fixed = text.replace(", \"10.0.0.0/33\"", "");
    let again = from_str(&fixed, "surgewatch.toml").unwrap_err().to_string();
    assert!(
        again.contains("surgewatch.toml:24:13: group[1].prefixes[0]: prefix 203.0.113.0/24 is already listed at group[0].prefixes[0]"),
        "{again}"
    );
}

#[test]
fn a_bad_tick_does_not_cause_tick_relative_errors() {
    // The window is fine for the intended tick; the unparsable tick is the only error.
    let e = error("[sensor]\ntick = \"100 ms\"\n[detection]\nbaseline_window = \"500ms\"\n");
    assert!(
        e.starts_with("t.toml:2:8: sensor.tick: invalid duration"),
        "{e}"
    );
}

#[test]
fn kinds_are_structured() {
    let err = from_str("[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.0/24\"]\n[[group]]\nname = \"a\"\nprefixes = [\"192.0.2.0/24\"]\n", ORIGIN).unwrap_err();
    let kinds: Vec<&ConfigErrorKind> = err.errors().iter().map(|e| &e.kind).collect();
    assert!(
        matches!(kinds[0], ConfigErrorKind::DuplicateGroupName { name, first } if name == "a" && first == "group[0].name")
    );
    assert!(
        matches!(kinds[1], ConfigErrorKind::DuplicatePrefix { first_group, .. } if first_group == "a")
    );
    assert_eq!(err.errors()[0].origin, ORIGIN);
    assert_eq!(
        err.errors()[0].location,
        Some(Location { line: 5, column: 8 })
    );
    assert_eq!(err.errors()[0].key, "group[1].name");
}

#[test]
fn programmatic_configs_are_validated_too() {
    let mut c = Config::default();
    c.sensor.tick = Duration::from_millis(10);
    c.detection.baseline_multiplier = 1.0;
    c.groups
        .push(GroupConfig::new("a", vec![net("192.0.2.0/24")]));
    c.groups.push(GroupConfig::new("a", vec![]));
    let e = c.validate().unwrap_err().to_string();
    assert_eq!(
        e.lines()
            .map(|l| l.split(':').next().unwrap_or(""))
            .collect::<Vec<_>>(),
        [
            "sensor.tick",
            "detection.baseline_multiplier",
            "group[1].name",
            "group[1].prefixes"
        ],
        "{e}"
    );
}

#[test]
fn load_reads_a_file_and_labels_errors_with_its_path() {
    let dir = std::env::temp_dir().join(format!("surgewatch-tuning-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[sensor]\ntick = \"1\"\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2:8: sensor.tick: ", path.display())),
        "{e}"
    );
    std::fs::write(&path, "monitor = [\"192.0.2.0/24\"]\n").unwrap();
    assert_eq!(load(&path).unwrap().groups.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();

    let missing = dir.join("missing.toml");
    let err = load(&missing).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(matches!(err.errors()[0].kind, ConfigErrorKind::Io { .. }));
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read config: ", missing.display())));
}

#[test]
fn capture_section_decodes_and_validates() {
    let c = ok("[capture]\nmethod = \"af_packet\"\nqueues = [0, 1]\ncores = [1]\npromiscuous = false\nxdp_fallback = \"drop\"\n[capture.decap]\nvxlan_ports = [4789, 8472]\n");
    assert_eq!(c.capture.method, crate::CaptureMethod::AfPacket);
    assert_eq!(c.capture.queues, vec![0, 1]);
    assert_eq!(c.capture.cores, vec![1]);
    assert!(!c.capture.promiscuous);
    assert_eq!(c.capture.xdp_fallback, crate::XdpFallback::Drop);
    assert!(!c.capture.decap.gre && c.capture.decap.erspan && !c.capture.decap.vxlan);
    assert_eq!(c.capture.decap.vxlan_ports, vec![4789, 8472]);
    assert_eq!(ok("").capture, crate::CaptureConfig::default());

    let e =
        crate::from_str("[capture]\nmethod = \"dpdk\"\n", "t.toml").expect_err("unknown method");
    assert!(e.to_string().contains("capture.method"), "{e}");
    let e = crate::from_str(
        "[capture]\nqueues = [0, 0]\ncores = [2, 2]\nbogus = 1\n[capture.decap]\nvxlan_ports = [0]\n",
        "t.toml",
    )
    .expect_err("several errors");
    let text = e.to_string();
    for needle in [
        "capture.queues[1]",
        "capture.cores[1]",
        "capture.bogus",
        "capture.decap.vxlan_ports[0]",
    ] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    assert_eq!(ok("").capture.xdp_frames, 16384);
    assert_eq!(
        ok("[capture]\nxdp_frames = 4096\n").capture.xdp_frames,
        4096
    );
    for bad in ["1000", "512", "524288"] {
        let e =
            crate::from_str(&format!("[capture]\nxdp_frames = {bad}\n"), "t.toml").expect_err(bad);
        assert!(e.to_string().contains("capture.xdp_frames"), "{bad}: {e}");
    }
    assert_eq!(ok("").capture.busy_poll, None);
    let c = ok("[capture]\nbusy_poll = \"50us\"\n");
    assert_eq!(
        c.capture.busy_poll,
        Some(std::time::Duration::from_micros(50))
    );
    for bad in ["\"0us\"", "\"20ms\"", "\"50\"", "50"] {
        let e =
            crate::from_str(&format!("[capture]\nbusy_poll = {bad}\n"), "t.toml").expect_err(bad);
        assert!(e.to_string().contains("capture.busy_poll"), "{bad}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// [mitigation]

#[test]
fn mitigation_is_absent_by_default_and_has_defaults() {
    assert!(ok(GROUP).mitigation.is_none());
    let c = ok(&format!("[mitigation]\n{GROUP}"));
    let m = c.mitigation.unwrap();
    assert_eq!(m, MitigationConfig::default());
    assert_eq!(m.mode, MitigationMode::DryRun);
    assert_eq!(m.ttl, Duration::from_secs(300));
    assert_eq!((m.max_rules.get(), m.max_rules_per_target.get()), (100, 8));
    assert_eq!(m.hold_down, Duration::from_secs(60));
    assert_eq!(m.levels.len(), 4);
    assert_eq!(
        m.levels[2],
        LevelConfig::new(2000.0, MitigationAction::Rtbh)
    );
}

#[test]
fn mitigation_decodes_every_key_and_speaker_kind() {
    let c = ok(r#"
[mitigation]
mode = "enforce"
ttl = "2m"
max_rules = 50
max_rules_per_target = 4
never = ["192.0.2.1/32"]
hold_down = "30s"
levels = [{ at_mbps = 50.0, at_pps = 100000, action = "flowspec-discard" }, { at_mbps = 1000.0, action = "rtbh" }]
communities = ["64500:666", "64500:1:2"]
next_hop = "192.0.2.254"
next_hop_v6 = "100::1"
rate_limit_multiple = 2.0
rate_limit_floor_mbps = 5.0

[[mitigation.speaker]]
kind = "gobgp"
api = "127.0.0.1:50052"

[[mitigation.speaker]]
kind = "exabgp"

[[mitigation.speaker]]
kind = "bird"
include = "/etc/bird/surgewatch.conf"

[[mitigation.speaker]]
kind = "frr"
asn = 64500

[[group]]
name = "g"
prefixes = ["192.0.2.0/24"]
[group.mitigation]
levels = []
hold_down = "10s"
"#);
    let m = c.mitigation.clone().unwrap();
    assert_eq!(m.mode, MitigationMode::Enforce);
    assert_eq!(m.levels[0].at_pps.map(|p| p.get()), Some(100_000));
    assert_eq!(m.levels[0].action, MitigationAction::FlowspecDiscard);
    assert_eq!(
        m.communities,
        vec![
            Community::Standard(64500, 666),
            Community::Large(64500, 1, 2)
        ]
    );
    assert_eq!(m.speakers.len(), 4);
    assert!(matches!(&m.speakers[0], SpeakerConfig::Gobgp(g) if g.api.port() == 50052));
    assert!(matches!(&m.speakers[3], SpeakerConfig::Frr(f) if f.asn.get() == 64500));
    let g = &c.groups[0].mitigation;
    let resolved = g.apply(&m);
    assert!(resolved.levels.is_empty());
    assert_eq!(resolved.hold_down, Duration::from_secs(10));
    assert_eq!(resolved.communities, m.communities, "inherited");
}

#[test]
fn mitigation_errors_are_all_reported_with_their_key_paths() {
    let e = errors(
        r#"
[mitigation]
mode = "enforcing"
ttl = "1s"
max_rules = 20
max_rules_per_target = 30
levels = [{ at_mbps = 500.0, action = "rtbh" }, { at_mbps = 100.0, action = "flowspec-discard" }, { action = "scrubbing" }]
communities = ["65536:1"]
next_hop = "2001:db8::1"
rate_limit_multiple = 0.0
colour = 1

[[mitigation.speaker]]
kind = "gobg"

[[mitigation.speaker]]
kind = "gobgp"
apii = "127.0.0.1:1"

[[mitigation.speaker]]
kind = "bird"
include = "relative.conf"

[[mitigation.speaker]]
api = "127.0.0.1:1"

[[group]]
name = "g"
prefixes = ["192.0.2.0/24"]
[group.mitigation]
rate_limit_floor_mbps = -1.0
ttl = "1m"
"#,
    );
    let want = [
        "mitigation.mode",
        "mitigation.communities[0]",
        "mitigation.colour: unknown key",
        "mitigation.speaker[0].kind: unknown speaker kind \"gobg\" (did you mean \"gobgp\"?)",
        "mitigation.speaker[1].apii: unknown key; did you mean `api`?",
        "mitigation.speaker[3]: missing `kind`",
        "group[0].mitigation.ttl: unknown key",
    ];
    for w in want {
        assert!(e.iter().any(|l| l.contains(w)), "{w:?} not in {e:#?}");
    }
    // The semantic checks run in the same pass over what decoded.
    for w in [
        "mitigation.ttl: \"1s\" is out of range",
        "mitigation.levels[1].at_mbps: 100.0 is out of range",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w:?} not in {e:#?}");
    }
    // On their own, every semantic error and nothing else.
    let e = errors(
        r#"
[mitigation]
ttl = "1s"
max_rules = 20
max_rules_per_target = 30
levels = [{ at_mbps = 500.0, action = "rtbh" }, { at_mbps = 100.0, action = "flowspec-discard" }, { action = "scrubbing" }]
next_hop = "2001:db8::1"
rate_limit_multiple = 0.0

[[mitigation.speaker]]
kind = "bird"
include = "relative.conf"

[[group]]
name = "g"
prefixes = ["192.0.2.0/24"]
[group.mitigation]
rate_limit_floor_mbps = -1.0
"#,
    );
    let want = [
        "mitigation.ttl: \"1s\" is out of range",
        "mitigation.max_rules_per_target: 30 is out of range: expected at most max_rules (20)",
        "mitigation.levels[1].at_mbps: 100.0 is out of range",
        "mitigation.levels[2]: a level needs `at_mbps`, `at_pps` or both",
        "mitigation.next_hop: 2001:db8::1 is not an IPv4 address",
        "mitigation.rate_limit_multiple: 0.0 is out of range",
        "mitigation.speaker[0].include: \"relative.conf\" is not an absolute path",
        "group[0].mitigation.rate_limit_floor_mbps: -1.0 is out of range",
    ];
    for w in want {
        assert!(e.iter().any(|l| l.contains(w)), "{w:?} not in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    assert!(e[0].starts_with("t.toml:3:"), "located: {e:#?}");
}

#[test]
fn communities_parse_strictly() {
    assert_eq!("65535:666".parse(), Ok(Community::Standard(65535, 666)));
    assert_eq!("1:2:3".parse(), Ok(Community::Large(1, 2, 3)));
    for bad in [
        "", "1", "1:", ":1", "65536:1", "1:2:3:4", "a:b", "1: 2", "-1:2",
    ] {
        assert!(bad.parse::<Community>().is_err(), "{bad:?}");
    }
}
