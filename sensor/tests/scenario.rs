//! End-to-end test on the long scenario of `surgewatch_pcaps::scenario`: minutes of benign
//! background, a warm-up longer than the baseline window, one attack of each family at known
//! times and targets, and a benign rate rise. With the default thresholds (learned baselines
//! after warm-up) each attack must give exactly one incident of the right family on the right
//! target within two ticks of its onset, and nothing else may alert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use surgewatch_pcaps::scenario::{write_scenario, ScenarioExpected, ScenarioOptions};

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("surgewatch-scenario-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

fn replay(file: &Path, exp: &ScenarioExpected, workers: &str) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_surgewatch"));
    cmd.arg("replay")
        .arg(file)
        .args(["--format", "json", "--no-progress", "--workers", workers]);
    for m in &exp.monitor {
        cmd.args(["--monitor", m]);
    }
    let out = cmd.output().expect("running surgewatch");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

#[test]
fn long_scenario_detects_each_attack_once_and_nothing_else() {
    let dir = temp_dir();
    let pcap = dir.0.join("scenario.pcap");
    let t = Instant::now();
    let exp = write_scenario(&pcap, &ScenarioOptions::default()).expect("write scenario");
    let size = std::fs::metadata(&pcap).expect("pcap").len();
    eprintln!(
        "scenario: {} frames, {} bytes, generated in {:.1} s",
        exp.packets,
        size,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let stdout = replay(&pcap, &exp, "1");
    eprintln!("replay --workers 1: {:.1} s", t.elapsed().as_secs_f64());

    // Start events by incident id.
    let text = String::from_utf8_lossy(&stdout);
    let mut starts: BTreeMap<u64, Value> = BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        if v["event"] == "start" {
            for f in [
                "incident_id",
                "target",
                "family",
                "vectors",
                "confidence",
                "ts",
                "onset_ts",
            ] {
                assert!(v.get(f).is_some(), "start event without {f}: {line}");
            }
            let id = v["incident_id"].as_u64().expect("incident_id");
            assert!(
                starts.insert(id, v).is_none(),
                "two starts for incident {id}"
            );
        }
    }
    let summary: Value = serde_json::from_str(text.lines().last().expect("output")).expect("JSON");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["packets"], exp.packets, "every frame replayed");
    let seen: Vec<String> = starts
        .values()
        .map(|v| {
            format!(
                "{} {} ts {} onset {}",
                v["target"], v["family"], v["ts"], v["onset_ts"]
            )
        })
        .collect();
    eprintln!("incidents:\n  {}", seen.join("\n  "));

    let mut failures = Vec::new();
    let mut matched = Vec::new();
    for a in &exp.attacks {
        let onset = secs(a.onset_ns);
        let on_target: Vec<(&u64, &Value)> = starts
            .iter()
            .filter(|(_, v)| v["target"] == a.target.as_str())
            .collect();
        if on_target.len() != 1 {
            failures.push(format!(
                "{} on {}: {} incidents on the target (want 1): {:?}",
                a.family,
                a.target,
                on_target.len(),
                on_target
                    .iter()
                    .map(|(_, v)| format!("{} ts {}", v["family"], v["ts"]))
                    .collect::<Vec<_>>()
            ));
            matched.extend(on_target.iter().map(|(id, _)| **id));
            continue;
        }
        let (id, v) = on_target[0];
        matched.push(*id);
        let ts = v["ts"].as_f64().expect("ts");
        let onset_ts = v["onset_ts"].as_f64().expect("onset_ts");
        let result = if v["family"] != a.family.as_str() {
            Err(format!("family {} (want {})", v["family"], a.family))
        } else if !(ts - onset <= 2.0 && ts >= onset - 1.0) {
            Err(format!(
                "start ts {ts} vs onset {onset}: {:.3} s",
                ts - onset
            ))
        } else if (onset_ts - onset).abs() > 1.0 {
            Err(format!("onset_ts {onset_ts} vs onset {onset}"))
        } else {
            Ok(())
        };
        match result {
            Ok(()) => eprintln!(
                "PASS {} on {}: start {:.3} s after onset",
                a.family,
                a.target,
                ts - onset
            ),
            Err(e) => failures.push(format!("{} on {}: {e}", a.family, a.target)),
        }
    }
    // Nothing else may alert, in particular not the benign rise.
    for (id, v) in &starts {
        if !matched.contains(id) {
            let what = if v["target"] == exp.benign_rise.target.as_str() {
                " (the benign rise)"
            } else {
                ""
            };
            failures.push(format!(
                "unexpected incident {id}{what}: {} {} ts {}",
                v["target"], v["family"], v["ts"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failures:\n  {}",
        failures.join("\n  ")
    );

    let t = Instant::now();
    let stdout2 = replay(&pcap, &exp, "2");
    eprintln!("replay --workers 2: {:.1} s", t.elapsed().as_secs_f64());
    assert!(
        stdout == stdout2,
        "--workers 2 output differs from --workers 1"
    );
}
