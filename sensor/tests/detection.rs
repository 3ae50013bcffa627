//! Detection end to end: incidents from the labelled captures of `pcaps/captures/` and from the
//! public captures of `../shared/pcaps/`, through the real binary.

use std::path::PathBuf;
use std::process::Output;

mod manifest;

use serde_json::Value;
use surgewatch_pcaps::{captures_dir, catalogue, load_expected};

fn replay(files: &[PathBuf], args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_surgewatch"))
        .arg("replay")
        .args(files)
        .args(["--format", "json", "--no-progress"])
        .args(args)
        .output()
        .expect("running surgewatch")
}

fn events(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect()
}

fn starts(ev: &[Value]) -> Vec<&Value> {
    ev.iter().filter(|e| e["event"] == "start").collect()
}

const EVENT_FIELDS: [&str; 17] = [
    "event",
    "incident_id",
    "target",
    "family",
    "vectors",
    "confidence",
    "ts",
    "onset_ts",
    "pps",
    "bps",
    "peak_pps",
    "peak_bps",
    "unique_sources",
    "spoofed",
    "top_sources",
    "top_dst_ports",
    "packets",
];

/// An empty temporary directory of this test process, `surgewatch-TAG-PID`.
fn fresh_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("surgewatch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn labelled_attacks_are_found_with_family_target_and_timing_and_benign_ones_are_not() {
    for spec in catalogue() {
        let exp = load_expected(&spec).expect("expected");
        let mut args: Vec<String> = vec!["--threshold-pps".into(), "1000".into()];
        for m in &exp.monitor {
            args.push("--monitor".into());
            args.push(m.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ev = events(&replay(&[captures_dir().join(&spec.file_name)], &args));
        let summary = ev.last().expect("summary");
        assert_eq!(summary["event"], "summary");
        let st = starts(&ev);
        assert_eq!(
            st.len(),
            exp.attacks.len(),
            "{}: one incident per attack, got {st:?}",
            spec.name
        );
        assert_eq!(
            summary["incidents"].as_array().map(Vec::len),
            Some(exp.attacks.len()),
            "{}",
            spec.name
        );
        for (a, s) in exp.attacks.iter().zip(&st) {
            for f in EVENT_FIELDS {
                assert!(s.get(f).is_some(), "{}: start event lacks {f}", spec.name);
            }
            assert_eq!(s["target"], a.target.to_string(), "{}: target", spec.name);
            assert_eq!(s["family"], a.family.as_str(), "{}: family", spec.name);
            let onset = a.onset_ns as f64 / 1e9;
            let ts = s["ts"].as_f64().expect("ts");
            let onset_ts = s["onset_ts"].as_f64().expect("onset_ts");
            assert!(
                ts >= onset && ts - onset <= 2.0,
                "{}: start at {ts}, onset {onset}",
                spec.name
            );
            assert!(
                (onset_ts - onset).abs() <= 1.0,
                "{}: onset_ts {onset_ts} vs {onset}",
                spec.name
            );
            if a.family == "multi_vector" {
                let mut got: Vec<&str> = s["vectors"]
                    .as_array()
                    .expect("vectors")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let mut want: Vec<&str> = a.vectors.iter().map(String::as_str).collect();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "{}: vectors", spec.name);
            }
        }
        // Every incident ends, and each end comes after its start.
        let ends = ev.iter().filter(|e| e["event"] == "end").count();
        assert_eq!(ends, st.len(), "{}: every incident ends", spec.name);
    }
}

#[test]
fn events_are_identical_whatever_the_worker_count() {
    let files: Vec<PathBuf> = catalogue()
        .iter()
        .map(|s| captures_dir().join(&s.file_name))
        .collect();
    let mut args = vec!["--threshold-pps", "1000"];
    for m in surgewatch_pcaps::expected::MONITOR {
        args.extend(["--monitor", m]);
    }
    let one = replay(&files, &args);
    let mut two_args = args.clone();
    two_args.extend(["--workers", "2"]);
    let two = replay(&files, &two_args);
    let ev = events(&one);
    // Back-to-back captures attacking the same target within `end_ticks` merge into one
    // incident, so fewer incidents than attacks.
    assert!(starts(&ev).len() >= 5, "the catalogue holds many attacks");
    assert_eq!(
        one.stdout, two.stdout,
        "byte-identical JSON with 1 and 2 workers"
    );
}

#[test]
fn an_instant_attack_starts_with_sources_estimated_from_the_onset_sample() {
    // A SYN flood from thousands of random sources that jumps from nothing to far above the
    // threshold within one tick: nobody was watching the target, so the start event's source
    // fields come from the 1-in-64 onset sample (counts in multiples of 64); later events
    // carry the watched, exact ones.
    let file = captures_dir().join("syn_flood_v4.pcap");
    let ev = events(&replay(
        &[file],
        &["--threshold-pps", "1000", "--monitor", "203.0.113.0/24"],
    ));
    let st = starts(&ev);
    assert_eq!(st.len(), 1, "{ev:?}");
    let start = st[0];
    let top = start["top_sources"].as_array().expect("top_sources");
    assert!(!top.is_empty(), "{start}");
    for s in top {
        let n = s["packets"].as_u64().expect("packets");
        assert!(n > 0 && n % 64 == 0, "{s}");
    }
    assert!(start["unique_sources"].as_u64().unwrap_or(0) > 0, "{start}");
    assert!(
        !start["top_dst_ports"].as_array().expect("ports").is_empty(),
        "{start}"
    );
    let end = ev
        .iter()
        .find(|e| e["event"] == "end")
        .expect("the incident ends");
    assert!(
        end["unique_sources"].as_u64().unwrap_or(0) > start["unique_sources"].as_u64().unwrap_or(0),
        "watched sources are exact: {end}"
    );
}

#[test]
fn baselines_survive_a_restart_and_a_corrupt_file_only_warns() {
    let dir = fresh_dir("baselines");
    let file = dir.join("b.bin");
    let cap = captures_dir().join("benign_web_mix.pcap");
    let args = [
        "--monitor",
        "203.0.113.0/24",
        "--baselines",
        file.to_str().expect("utf8"),
    ];
    let first = replay(std::slice::from_ref(&cap), &args);
    assert!(first.status.success());
    let len = std::fs::metadata(&file)
        .expect("baseline file written")
        .len();
    assert!(len > 32, "baseline file has content");
    let second = replay(std::slice::from_ref(&cap), &args);
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("loaded"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    std::fs::write(&file, b"SWBL garbage that is not a baseline file").expect("write");
    let third = replay(std::slice::from_ref(&cap), &args);
    assert!(
        third.status.success(),
        "a corrupt baseline file must not stop the sensor"
    );
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(
        err.contains("warning") && err.contains("fresh baselines"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two groups with different baseline windows (so different sketch shapes): the baselines of
/// both are saved, and the next run loads all of them (it used to save only the first
/// group's: "loaded 1 baselines").
#[test]
fn baselines_of_groups_with_their_own_window_survive_a_restart() {
    let dir = fresh_dir("bl-groups");
    let file = dir.join("b.bin");
    let config = dir.join("groups.toml");
    std::fs::write(
        &config,
        r#"
[detection]
baseline_window = "5s"
warmup = "2s"

[[group]]
name = "low"
prefixes = ["203.0.113.0/28"]

[[group]]
name = "high"
prefixes = ["203.0.113.16/28"]
[group.detection]
baseline_window = "10s"
"#,
    )
    .expect("config");
    let cap = captures_dir().join("benign_web_mix.pcap");
    let args = [
        "--config",
        config.to_str().expect("utf8"),
        "--baselines",
        file.to_str().expect("utf8"),
    ];
    let first = replay(std::slice::from_ref(&cap), &args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Targets of both groups were seen (203.0.113.10; .20 and .30).
    let seen = events(&first)
        .last()
        .and_then(|s| s["monitored_ips_seen"].as_u64())
        .expect("summary");
    assert_eq!(seen, 3);
    let second = replay(std::slice::from_ref(&cap), &args);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("loaded 3 baselines"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second sensor on a baselines file in use (its lock held, here by the test as a running
/// sensor holds it) stops at start with one error line and exit status 2, and the file is
/// left alone; once the lock is released it runs.
#[test]
fn a_baselines_file_in_use_stops_a_second_sensor_at_start() {
    let dir = fresh_dir("bl-lock");
    let file = dir.join("b.bin");
    std::fs::write(&file, b"held by the first sensor").expect("write");
    let lock = std::fs::File::create(dir.join("b.bin.lock")).expect("lock file");
    lock.try_lock().expect("lock");
    let cap = captures_dir().join("benign_web_mix.pcap");
    let args = [
        "--monitor",
        "203.0.113.0/24",
        "--baselines",
        file.to_str().expect("utf8"),
    ];
    let o = replay(std::slice::from_ref(&cap), &args);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("in use by another surgewatch"), "{err}");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        b"held by the first sensor"
    );
    drop(lock);
    let o = replay(std::slice::from_ref(&cap), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_thresholds_are_refused() {
    let cap = captures_dir().join("benign_web_mix.pcap");
    for bad in [
        "--threshold-pps=0",
        "--threshold-pps=-5",
        "--threshold-mbps=0",
        "--threshold-mbps=nan",
    ] {
        let o = replay(std::slice::from_ref(&cap), &[bad]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("must be a positive number"));
    }
}

/// The family a public attack capture must be classified as, from its MANIFEST label.
fn family_of_label(label: &str) -> Option<&'static str> {
    let l = label.to_ascii_lowercase();
    Some(if l.contains("syn flood") || l.contains("syn)") {
        "syn_flood"
    } else if l.contains("snmp") {
        "snmp_amplification"
    } else if l.contains("dns") {
        "dns_amplification"
    } else if l.contains("ntp") {
        "ntp_amplification"
    } else if l.contains("udp amplification") {
        "udp_amplification"
    } else {
        return None;
    })
}

#[test]
fn public_attack_captures_yield_their_family_and_benign_ones_nothing() {
    let Some(entries) = manifest::entries("public_attack_captures_yield_their_family") else {
        return;
    };
    let mut checked = 0;
    for e in &entries {
        let file = &e.path;
        match e.get("category") {
            "attack" => {
                let victim = e
                    .get("victim_ips")
                    .split_whitespace()
                    .next()
                    .expect("victim");
                let label = e.get("repo_label");
                let family =
                    family_of_label(label).unwrap_or_else(|| panic!("no family for label {label}"));
                // Thresholds low enough for the capture's own rate: a tenth of its mean
                // packet rate. The DNS capture is mostly unrelated TCP, so its bit rate is
                // what stands out: a bps threshold at half its mean bit rate.
                let packets = e.packets() as f64;
                let secs: f64 = e
                    .get("duration_s")
                    .parse::<f64>()
                    .expect("duration")
                    .max(1.0);
                let pps = (packets / secs / 10.0).max(10.0).floor().to_string();
                let size = std::fs::metadata(file).expect("size").len() as f64;
                let mbps = format!("{:.3}", size * 8.0 / secs / 1e6 / 2.0);
                let args: Vec<&str> = if family == "dns_amplification" {
                    vec!["--monitor", victim, "--threshold-mbps", &mbps]
                } else {
                    vec!["--monitor", victim, "--threshold-pps", &pps]
                };
                let ev = events(&replay(std::slice::from_ref(file), &args));
                let st = starts(&ev);
                assert!(!st.is_empty(), "{}: no incident", e.name());
                for s in &st {
                    assert_eq!(s["target"], victim, "{}", e.name());
                    assert_eq!(s["family"], family, "{}: {s}", e.name());
                }
                checked += 1;
            }
            "benign" => {
                let ev = events(&replay(std::slice::from_ref(file), &[]));
                assert!(
                    starts(&ev).is_empty(),
                    "{}: benign capture alerted: {:?}",
                    e.name(),
                    starts(&ev)
                );
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 10);
}
