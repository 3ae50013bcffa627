//! End-to-end tests of `surgewatch replay` / `check-config`: the real binary on the labelled
//! captures of `pcaps/captures/`, on the public captures of `../shared/pcaps/`, and on bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod manifest;
mod support;

use serde_json::Value;
use surgewatch_pcaps::{catalogue, load_expected, CaptureSpec};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_surgewatch"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("running surgewatch")
}

fn stdout_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn summary_of(o: &Output) -> Value {
    let lines = stdout_lines(o);
    let last = lines
        .last()
        .unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&o.stderr)));
    let v: Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(v["event"], "summary", "last line must be the summary");
    v
}

fn capture_path(spec: &CaptureSpec) -> PathBuf {
    surgewatch_pcaps::captures_dir().join(&spec.file_name)
}

fn replay_json(file: &Path, monitor: &[String], extra: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("replay")
        .arg(file)
        .args(["--format", "json", "--top", "100000", "--no-progress"]);
    for m in monitor {
        cmd.args(["--monitor", m]);
    }
    cmd.args(extra);
    cmd.output().expect("running surgewatch")
}

#[test]
fn labelled_captures_match_their_expected_results() {
    let specs = catalogue();
    assert!(
        specs.len() >= 10,
        "the catalogue should hold the labelled captures"
    );
    for spec in &specs {
        let exp = load_expected(spec).expect("expected.json");
        let path = capture_path(spec);
        let out = replay_json(&path, &exp.monitor, &[]);
        assert!(
            out.status.success(),
            "{}: exit {:?}: {}",
            spec.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary_of(&out);
        let name = spec.name;
        assert_eq!(s["packets"], exp.packets, "{name}: packets");
        assert_eq!(s["bytes"], exp.bytes, "{name}: bytes");
        assert_eq!(s["non_ip"], exp.non_ip, "{name}: non_ip");
        let errs = s["parse_errors"].as_object().expect("parse_errors object");
        for (reason, n) in errs {
            let want = exp.parse_errors.get(reason).copied().unwrap_or(0);
            assert_eq!(n.as_u64(), Some(want), "{name}: parse_errors.{reason}");
        }
        for reason in exp.parse_errors.keys() {
            assert!(
                errs.contains_key(reason),
                "{name}: reason {reason} missing from output"
            );
        }
        assert_eq!(
            s["monitored_ips_seen"], exp.monitored_ips_seen,
            "{name}: monitored_ips_seen"
        );
        let top = s["top_ips"].as_array().expect("top_ips");
        assert_eq!(
            top.len() as u64,
            exp.monitored_ips_seen,
            "{name}: every seen IP is listed with --top large"
        );
        let by_ip: BTreeMap<String, &Value> = top
            .iter()
            .map(|v| (v["ip"].as_str().unwrap_or_default().to_owned(), v))
            .collect();
        for ip in &exp.ips {
            let key = ip.ip.to_string();
            let got = by_ip
                .get(&key)
                .unwrap_or_else(|| panic!("{name}: {key} missing from top_ips"));
            assert_eq!(got["packets_in"], ip.packets_in, "{name} {key}: packets_in");
            assert_eq!(got["bytes_in"], ip.bytes_in, "{name} {key}: bytes_in");
            assert_eq!(
                got["packets_out"], ip.packets_out,
                "{name} {key}: packets_out"
            );
            assert_eq!(got["bytes_out"], ip.bytes_out, "{name} {key}: bytes_out");
            assert_eq!(
                got["peak_pps_in"], ip.peak_pps,
                "{name} {key}: peak inbound pps"
            );
            let classes = got["classes"].as_object().expect("classes");
            for (class, c) in classes {
                let want_in = ip
                    .classes_in
                    .get(class)
                    .map(|c| (c.packets, c.bytes))
                    .unwrap_or((0, 0));
                let want_out = ip
                    .classes_out
                    .get(class)
                    .map(|c| (c.packets, c.bytes))
                    .unwrap_or((0, 0));
                assert_eq!(
                    (c["packets_in"].as_u64(), c["bytes_in"].as_u64()),
                    (Some(want_in.0), Some(want_in.1)),
                    "{name} {key}: {class} in"
                );
                assert_eq!(
                    (c["packets_out"].as_u64(), c["bytes_out"].as_u64()),
                    (Some(want_out.0), Some(want_out.1)),
                    "{name} {key}: {class} out"
                );
            }
        }
    }
}

#[test]
fn json_output_is_identical_whatever_the_worker_count() {
    let files: Vec<PathBuf> = catalogue().iter().map(capture_path).collect();
    let mut outputs = Vec::new();
    for workers in ["1", "2", "3"] {
        let mut cmd = bin();
        cmd.arg("replay").args(&files).args([
            "--format",
            "json",
            "--no-progress",
            "--workers",
            workers,
        ]);
        for m in surgewatch_pcaps::expected::MONITOR {
            cmd.args(["--monitor", m]);
        }
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(out.stdout);
    }
    assert!(!outputs[0].is_empty());
    assert_eq!(outputs[0], outputs[1], "1 vs 2 workers");
    assert_eq!(outputs[0], outputs[2], "1 vs 3 workers");
}

#[test]
fn public_captures_replay_to_their_end_with_the_manifest_packet_count() {
    let Some(entries) = manifest::entries("public_captures_replay_to_their_end") else {
        return;
    };
    for e in &entries {
        for workers in ["1", "2"] {
            let out = replay_json(&e.path, &[], &["--workers", workers]);
            assert!(
                out.status.success(),
                "{}: {}",
                e.name(),
                String::from_utf8_lossy(&out.stderr)
            );
            let s = summary_of(&out);
            assert_eq!(s["packets"], e.packets(), "{}", e.name());
            assert_eq!(
                s["errors"].as_array().map(Vec::len),
                Some(0),
                "{}",
                e.name()
            );
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("surgewatch-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn one_error_line(o: &Output) -> String {
    support::one_error_line(&String::from_utf8_lossy(&o.stderr))
}

#[test]
fn truncated_capture_keeps_what_was_read_names_the_offset_and_exits_non_zero() {
    let spec = catalogue()
        .into_iter()
        .find(|s| s.name == "udp_flood")
        .expect("udp_flood capture");
    let exp = load_expected(&spec).expect("expected");
    let bytes = std::fs::read(capture_path(&spec)).expect("read");
    let dir = temp_dir("trunc");
    let cut = dir.join("cut.pcap");
    // Cut in the middle of a record, roughly half-way.
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).expect("write");
    let out = replay_json(&cut, &exp.monitor, &[]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary_of(&out);
    let read = s["packets"].as_u64().expect("packets");
    assert!(read > 0 && read < exp.packets, "partial count {read}");
    let line = one_error_line(&out);
    assert!(
        line.contains("cut.pcap") && line.contains("offset"),
        "{line}"
    );
    assert_eq!(s["errors"].as_array().map(Vec::len), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unusable_inputs_give_one_line_and_exit_2() {
    let dir = temp_dir("bad");
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all, not even close").expect("write");
    let good = capture_path(&catalogue()[0]);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "replay".into(),
                dir.join("missing.pcap").display().to_string(),
            ],
            "missing.pcap",
        ),
        (
            vec!["replay".into(), dir.display().to_string()],
            "directory",
        ),
        (
            vec!["replay".into(), empty.display().to_string()],
            "empty.pcap",
        ),
        (
            vec!["replay".into(), garbage.display().to_string()],
            "garbage.pcap",
        ),
        (
            vec![
                "replay".into(),
                good.display().to_string(),
                "--monitor".into(),
                "10.0.0.0/33".into(),
            ],
            "10.0.0.0/33",
        ),
        (
            vec![
                "replay".into(),
                good.display().to_string(),
                "--monitor".into(),
                "bogus".into(),
            ],
            "bogus",
        ),
        (
            vec![
                "replay".into(),
                good.display().to_string(),
                "--tick".into(),
                "10ms".into(),
            ],
            "--tick",
        ),
        (
            vec![
                "replay".into(),
                good.display().to_string(),
                "--workers".into(),
                "0".into(),
            ],
            "--workers",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = one_error_line(&out);
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The group limit (16-bit group ids) is tuning's: check-config and replay refuse 70,000
/// groups with the same located line, instead of check-config saying ok and replay failing
/// on an integer conversion.
#[test]
fn check_config_and_replay_agree_on_the_group_limit() {
    let dir = temp_dir("groups");
    let many = dir.join("many.toml");
    let text: String = (0..70_000)
        .map(|i| {
            format!(
                "[[group]]\nname = \"g{i}\"\nprefixes = [\"{}.{}.{}.0/24\"]\n",
                10 + i / 65536,
                i / 256 % 256,
                i % 256
            )
        })
        .collect();
    std::fs::write(&many, text).expect("write");
    let many = many.to_str().expect("utf8");
    let want = format!("{many}:1:1: group: at most 65535 groups (found 70000)");

    let out = run(&["check-config", many]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), want);

    let good = capture_path(&catalogue()[0]);
    let out = run(&["replay", good.to_str().expect("utf8"), "--config", many]);
    assert_eq!(out.status.code(), Some(1));
    let line = one_error_line(&out);
    assert!(line.contains(&want), "{line}");
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_accepts_the_example_and_reports_every_error() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../surgewatch.example.toml");
    let out = run(&["check-config", example.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = temp_dir("cfg");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[sensor]\ntick = \"10ms\"\nbogus_key = 1\n\n[[group]]\nname = \"a\"\nprefixes = [\"10.0.0.0/33\"]\n",
    )
    .expect("write");
    let out = run(&["check-config", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "three errors, one per line: {err}");
    for l in &lines {
        assert!(
            l.starts_with(bad.to_str().expect("utf8")),
            "each line has a location: {l}"
        );
    }
    assert!(
        err.contains("sensor.tick") && err.contains("bogus_key") && err.contains("prefixes[0]"),
        "{err}"
    );

    // The same config given to replay, run or agent is refused before anything starts
    // (no interface is opened) with one line and, like check-config, exit 1 (README: 1 for
    // a config with errors, 2 for unusable input or a bad option).
    let good = capture_path(&catalogue()[0]);
    let bad = bad.to_str().expect("utf8");
    let commands: [&[&str]; 3] = [
        &["replay", good.to_str().expect("utf8"), "--config", bad],
        &["run", "-i", "surgewatch-no-such-if0", "--config", bad],
        &["agent", "-i", "surgewatch-no-such-if0", "--config", bad],
    ];
    for args in commands {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = one_error_line(&out);
        assert!(
            line.starts_with("surgewatch: error: invalid configuration (3 error(s)): ")
                && line.contains("sensor.tick"),
            "{args:?}: {line}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A bad option is still exit 2, with or without a config.
    let out = run(&["replay", good.to_str().expect("utf8"), "--tick", "10ms"]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn auto_monitor_mode_says_so_on_stderr() {
    let good = capture_path(&catalogue()[0]);
    let out = run(&["replay", good.to_str().expect("utf8"), "--format", "json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("monitoring every destination"), "{err}");
    let s = summary_of(&out);
    assert_eq!(s["monitor_mode"], "auto");
    assert!(s["monitored_ips_seen"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn a_full_budget_says_so_and_keeps_the_flood_visible() {
    // 24 destinations, a budget of 3: the smallest three are tracked first; the ACK flood's
    // target is untracked in its busiest tick, where its /24 opens a network incident, and
    // tracked (in place of a quiet address) from the next tick on.
    let dir = temp_dir("budget");
    let cfg = dir.join("budget.toml");
    std::fs::write(&cfg, "[sensor]\nauto_monitor_limit = 3\n").expect("writing the config");
    let cap = surgewatch_pcaps::captures_dir().join("ack_flood.pcap");
    let out = replay_json(
        &cap,
        &[],
        &[
            "--config",
            cfg.to_str().expect("utf8"),
            "--threshold-pps",
            "1000",
        ],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the tracked-address budget (3 addresses) is full"),
        "{err}"
    );
    let s = summary_of(&out);
    assert_eq!(s["tracked_ips_limit"], 3);
    assert!(s["tracked_ips"].as_u64().unwrap_or(99) <= 3, "{s}");
    assert!(
        s["unmonitored_overflow_packets"].as_u64().unwrap_or(0) > 1000,
        "{s}"
    );
    assert_eq!(s["admitted_busy_ips"], 1, "{s}");
    let tracked: Vec<&str> = s["top_ips"]
        .as_array()
        .expect("top_ips")
        .iter()
        .filter_map(|t| t["ip"].as_str())
        .collect();
    assert!(tracked.contains(&"203.0.113.10"), "{tracked:?}");
    let incidents = s["incidents"].as_array().expect("incidents");
    assert!(
        incidents
            .iter()
            .any(|i| i["target"] == "203.0.113.0/24" && i["scope"] == "network"),
        "{incidents:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replay_reports_the_mitigation_ladder_as_dry_run() {
    // The multi-vector attack on 203.0.113.10 (about 4 Mbit/s) against a ladder at 1 Mbit/s:
    // announced in dry-run after its start event, withdrawn by the end of the run.
    let dir = temp_dir("mitigation");
    let cfg = dir.join("m.toml");
    std::fs::write(
        &cfg,
        "[mitigation]\nmode = \"enforce\"\nlevels = [{ at_mbps = 1.0, action = \"flowspec-discard\" }]\n",
    )
    .expect("writing the config");
    let cap = surgewatch_pcaps::captures_dir().join("multi_vector.pcap");
    let out = replay_json(
        &cap,
        &["203.0.113.0/24".to_owned()],
        &[
            "--config",
            cfg.to_str().expect("utf8"),
            "--threshold-pps",
            "1000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no speaker adapter"), "{err}");
    let lines: Vec<Value> = stdout_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let start = lines
        .iter()
        .position(|l| l["event"] == "start")
        .expect("an incident starts");
    let mitigations: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "mitigation")
        .collect();
    let first = lines
        .iter()
        .position(|l| l["event"] == "mitigation")
        .expect("a mitigation line");
    assert!(first > start, "actions follow the event that caused them");
    let announced: Vec<&&Value> = mitigations
        .iter()
        .filter(|m| m["action"] == "announce")
        .collect();
    assert!(!announced.is_empty(), "{mitigations:?}");
    for m in &mitigations {
        assert_eq!(m["target"], "203.0.113.10");
        assert_eq!(
            (m["mode"].as_str(), m["outcome"].as_str()),
            (Some("dry-run"), Some("dry-run"))
        );
        assert_eq!(m["rule"]["destination"], "203.0.113.10/32");
        assert_eq!(m["rule"]["then"], "discard");
    }
    let withdrawn = mitigations
        .iter()
        .filter(|m| m["action"] == "withdraw")
        .count();
    assert_eq!(
        withdrawn,
        announced.len(),
        "every rule is withdrawn by the end"
    );
    let s = summary_of(&out);
    assert_eq!(s["mitigations"]["announced"], announced.len());
    assert_eq!(s["mitigations"]["withdrawn"], withdrawn);
    // Without [mitigation], no line and no summary field.
    let plain = replay_json(
        &cap,
        &["203.0.113.0/24".to_owned()],
        &["--threshold-pps", "1000"],
    );
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("mitigation"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn text_output_lists_the_summary() {
    let spec = catalogue()
        .into_iter()
        .find(|s| s.name == "syn_flood_v4")
        .expect("syn_flood_v4");
    let exp = load_expected(&spec).expect("expected");
    let mut args = vec![
        "replay".to_owned(),
        capture_path(&spec).display().to_string(),
    ];
    for m in &exp.monitor {
        args.push("--monitor".into());
        args.push(m.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{} packets", exp.packets)), "{text}");
    assert!(text.contains("parse errors: 0"), "{text}");
    assert!(text.contains("top "), "{text}");
}

/// Runs `surgewatch replay` with `--baselines baselines` on a labelled capture, failing the
/// test if it has not exited within a minute (a generous bound: it takes well under a second).
fn replay_with_baselines(baselines: &Path) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let cap = surgewatch_pcaps::captures_dir().join("benign_web_mix.pcap");
    let mut child = bin()
        .arg("replay")
        .args(["--monitor", "203.0.113.0/24", "--baselines"])
        .arg(baselines)
        .arg(cap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running surgewatch");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "surgewatch --baselines {} did not exit",
                baselines.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_baselines_path_that_is_no_regular_file_is_a_warning_and_a_fresh_start() {
    let dir = std::env::temp_dir().join(format!("surgewatch-bl-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status();
    // /dev/zero through a symbolic link (a test must not risk the device itself): neither is
    // read, and the end-of-run save refuses to rename over either.
    let zero = dir.join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let mut paths = vec![zero];
    match made {
        Ok(s) if s.success() => paths.push(fifo.clone()),
        other => eprintln!("mkfifo unavailable ({other:?}): FIFO case skipped"),
    }
    for p in &paths {
        let o = replay_with_baselines(p);
        let err = String::from_utf8_lossy(&o.stderr);
        let warnings: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("fresh baselines"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}: {err}", p.display());
        assert!(warnings[0].contains("not a regular file"), "{err}");
        // A fresh start: the run completes and reports.
        assert!(o.status.success(), "{}: {err}", p.display());
        assert!(!stdout_lines(&o).is_empty(), "{}: {err}", p.display());
        assert!(
            err.contains("not a regular file, not saved over"),
            "{}: the save is refused: {err}",
            p.display()
        );
    }
    use std::os::unix::fs::FileTypeExt;
    let link = std::fs::symlink_metadata(&paths[0]).expect("the link is still there");
    assert!(link.file_type().is_symlink(), "the link was not replaced");
    if let Some(f) = paths.get(1) {
        let m = std::fs::symlink_metadata(f).expect("the FIFO is still there");
        assert!(
            m.file_type().is_fifo(),
            "the FIFO was not replaced by a regular file"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A classic pcap (microseconds, Ethernet) of 60-byte UDP frames to 203.0.113.5 at 2,000
/// frames a second for 10 s, each record claiming the original length `orig`.
fn udp_flood_pcap(orig: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // The version field is two u16s: 2, 4.
    out.splice(4..8, [2, 0, 4, 0]);
    for i in 0..20_000u32 {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let src = [198, 51, 100, (i % 200) as u8];
        let mut ip = vec![0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&[203, 0, 113, 5]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 26, 0, 0]);
        f.resize(60, 0xab);
        let (sec, usec) = (1_700_000_000 + i / 2_000, (i % 2_000) * 500);
        for v in [sec, usec, 60, orig] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&f);
    }
    out
}

/// Every number under a key ending in `bps` in a JSON value.
fn bps_values(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k.ends_with("bps") {
                    if let Some(n) = x.as_f64() {
                        out.push(n);
                    }
                }
                bps_values(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| bps_values(x, out)),
        _ => {}
    }
}

#[test]
fn one_record_dated_far_ahead_does_not_pile_the_capture_into_one_tick() {
    // 10 s of 2,000 frames/s, the first record dated 2106: counted as late frames, the whole
    // capture was one tick of 20,000 frames (an incident at a 3,000 pps threshold).
    let dir = std::env::temp_dir().join(format!("surgewatch-jump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let honest = udp_flood_pcap(60);
    let mut lying = honest[..24].to_vec();
    let first_record = &honest[24..24 + 16 + 60];
    lying.extend_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    lying.extend_from_slice(&first_record[4..]);
    lying.extend_from_slice(&honest[24..]);
    let path = dir.join("jump.pcap");
    std::fs::write(&path, &lying).expect("write");
    let monitor = ["203.0.113.0/24".to_owned()];
    let out = replay_json(&path, &monitor, &["--threshold-pps", "3000"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timestamps jump back by"), "{err}");
    let s = summary_of(&out);
    assert_eq!(s["packets"], 20_001);
    assert_eq!(s["incidents"], serde_json::json!([]), "{s}");
    assert!(s["ticks"].as_u64().unwrap_or(0) >= 10, "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn frames_claiming_4_gib_count_as_their_captured_length() {
    let dir = std::env::temp_dir().join(format!("surgewatch-4gib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let lying = dir.join("lying.pcap");
    let honest = dir.join("honest.pcap");
    std::fs::write(&lying, udp_flood_pcap(u32::MAX)).expect("write");
    std::fs::write(&honest, udp_flood_pcap(60)).expect("write");
    let monitor = ["203.0.113.0/24".to_owned()];
    let lie = replay_json(&lying, &monitor, &[]);
    let truth = replay_json(&honest, &monitor, &[]);
    assert!(
        lie.status.success(),
        "{}",
        String::from_utf8_lossy(&lie.stderr)
    );
    let mut bps = Vec::new();
    for line in stdout_lines(&lie) {
        let v: Value = serde_json::from_str(&line).expect("JSON line");
        bps_values(&v, &mut bps);
    }
    assert!(!bps.is_empty(), "the output reports rates");
    // 2,000 frames/s × 60 B × 8 = 960 kbit/s; allow any accounting of headers.
    assert!(bps.iter().all(|&b| b < 2e6), "absurd rates: {bps:?}");
    // The same output as the honest capture's, but for the counts of what lied.
    let mut lie_summary = summary_of(&lie);
    assert_eq!(
        lie_summary["input_anomalies"],
        serde_json::json!({
            "wire_len_below_captured": 0,
            "wire_len_implausible": 20_000,
            "subsecond_out_of_range": 0
        })
    );
    let err = String::from_utf8_lossy(&lie.stderr);
    assert_eq!(
        err.matches("records with impossible headers").count(),
        1,
        "one diagnostic: {err}"
    );
    let mut truth_summary = summary_of(&truth);
    assert!(
        truth_summary.get("input_anomalies").is_none(),
        "absent when none"
    );
    for s in [&mut lie_summary, &mut truth_summary] {
        let m = s.as_object_mut().expect("object");
        m.remove("input_anomalies");
        m.remove("inputs");
    }
    assert_eq!(
        lie_summary, truth_summary,
        "a 4 GiB claim counts as the 60 bytes captured"
    );
    assert_eq!(stdout_lines(&lie).len(), stdout_lines(&truth).len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// An invalid `[mitigation]`: every error at once from `check-config`, each with its
/// location and key path (issue 13, "Bad input").
#[test]
fn check_config_reports_every_mitigation_error() {
    let dir = temp_dir("mitcfg");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[mitigation]\nmode = \"on\"\nmax_rules_per_target = 500\n\
         levels = [{ at_mbps = 500.0, action = \"rtbh\" }, { at_mbps = 100.0, action = \"flowspec-discard\" }]\n\n\
         [[mitigation.speaker]]\nkind = \"quagga\"\n\n\
         [[mitigation.speaker]]\nkind = \"gobgp\"\nport = 50051\n",
    )
    .expect("write");
    let out = run(&["check-config", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "mitigation.mode",
        "mitigation.speaker[0].kind: unknown speaker kind \"quagga\"",
        "mitigation.speaker[1].port: unknown key",
        "mitigation.max_rules_per_target: 500 is out of range",
        "mitigation.levels[1].at_mbps: 100.0 is out of range",
    ] {
        assert!(err.contains(want), "{want:?} in {err}");
    }
    assert!(
        err.lines()
            .all(|l| l.starts_with(bad.to_str().expect("utf8"))),
        "each line has a location: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
