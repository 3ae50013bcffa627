//! `surgewatch run` follows the interface it captures (the real binary in a network namespace,
//! on a veth pair that the test creates and removes):
//!
//! - deleted and recreated (a new index), capture is re-attached with the method that ran
//!   (AF_XDP and AF_PACKET): frames sent before and after are all counted, and the summary and
//!   status line report one loss and one re-attach;
//! - set down and up again, each is said once and capture resumes on the same sockets;
//! - its MTU raised during AF_XDP capture, the sockets are set up again (with the reason) and
//!   jumbo frames are counted, none dropped;
//! - another XDP program holding the hook (another sensor's), `--capture auto` and
//!   `--capture af_packet` warn that it redirects traffic AF_PACKET does not see, also when it
//!   is attached after capture started.
//!
//! Needs root; prints that it was skipped otherwise. Runs one at a time (an AF_XDP queue
//! rebind can briefly fail with EBUSY). Each wait is for what the binary says on stderr, with
//! a generous deadline, never for a fixed time.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use support::{accounted_frames, inject, ip, skip_unless_root, Spawned, VethPair};
use surgewatch_pcaps::packet::{Net, Packet, Transport, V4};

static SERIAL: Mutex<()> = Mutex::new(());

/// How long a test waits for something that should happen (it goes on as soon as it did).
const DEADLINE: Duration = Duration::from_secs(60);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A UDP frame of exactly `len` bytes from end B to 10.9.0.7 (a monitored address).
fn udp_frame(pair: &VethPair, len: usize) -> Vec<u8> {
    udp_frame_to(pair, pair.mac_a, "10.9.0.7", len)
}

/// A UDP frame of exactly `len` bytes from end B to `dst` at MAC address `mac`.
fn udp_frame_to(pair: &VethPair, mac: [u8; 6], dst: &str, len: usize) -> Vec<u8> {
    let p = Packet {
        eth: support::eth(pair.mac_b, mac),
        net: Net::V4(V4::new(
            "198.51.100.1".parse().expect("ip"),
            dst.parse().expect("ip"),
        )),
        l4: Transport::Udp {
            sport: 53,
            dport: 4444,
        },
        payload: vec![0x5a; len - 14 - 20 - 8],
    };
    let f = p.build(9000).into_iter().next().expect("frame").bytes;
    assert_eq!(f.len(), len);
    f
}

/// Starts `surgewatch run` on end A with a status line every second, and waits until it
/// captures.
fn start(pair: &VethPair, method: &str) -> Spawned {
    let mut s = Spawned::surgewatch(
        &pair.ns_a,
        &[
            "run",
            "-i",
            &pair.if_a,
            "--capture",
            method,
            "--format",
            "json",
            "--status-interval",
            "1s",
            "--monitor",
            "10.9.0.0/24",
        ],
    );
    await_line(&mut s, "capture set up", "surgewatch: capturing ");
    s
}

fn await_line(s: &mut Spawned, what: &str, text: &str) -> String {
    s.await_stderr(what, |e| e.contains(text), DEADLINE)
}

/// Waits for a status line accounting for `n` frames (then the summary counts them all).
fn await_frames(s: &mut Spawned, n: usize) -> String {
    s.await_stderr(
        &format!("a status line accounting for {n} frames"),
        |e| accounted_frames(e).is_some_and(|k| k >= n as u64),
        DEADLINE,
    )
}

/// Stops with SIGINT: exit 0, the summary last; returns it and stderr.
fn stop(s: Spawned) -> (Value, String) {
    let f = s.stop(libc::SIGINT, DEADLINE);
    assert_eq!(
        f.status.code(),
        Some(0),
        "exit status; stderr: {}",
        f.stderr
    );
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
    let last = f
        .stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output; stderr: {}", f.stderr));
    let summary: Value = serde_json::from_str(last).expect("summary JSON");
    assert_eq!(summary["event"], "summary");
    (summary, f.stderr)
}

/// Deletes end A (its peer goes with it).
fn delete(pair: &VethPair) {
    ip(&["-n", &pair.ns_a, "link", "del", &pair.if_a]);
}

/// Creates the pair again under the same names, with `queues` RX and TX queues, both ends up:
/// end A gets a new index.
fn add_again(pair: &VethPair, queues: u32) {
    let q = queues.to_string();
    #[rustfmt::skip]
    ip(&[
        "-n", &pair.ns_a, "link", "add", &pair.if_a, "numtxqueues", &q, "numrxqueues", &q,
        "type", "veth", "peer", "name", &pair.if_b, "numtxqueues", &q, "numrxqueues", &q,
        "netns", &pair.ns_b,
    ]);
    ip(&["-n", &pair.ns_a, "link", "set", &pair.if_a, "up"]);
    ip(&["-n", &pair.ns_b, "link", "set", &pair.if_b, "up"]);
}

/// Captures with `method`, deletes the interface and creates it again with `queues_after`
/// queues (more queues than workers: a worker reads several).
fn survives_delete_and_recreate(method: &str, queues_after: u32) {
    let pair = VethPair::new();
    let mut s = start(&pair, method);
    let before: Vec<Vec<u8>> = (0..20).map(|_| udp_frame(&pair, 100)).collect();
    inject(&pair.ns_b, &pair.if_b, &before);
    await_frames(&mut s, before.len());

    delete(&pair);
    let err = await_line(
        &mut s,
        "the interface-lost warning",
        &format!("surgewatch: warning: {} disappeared", pair.if_a),
    );
    assert!(
        err.contains("capture stopped; it resumes when an interface named"),
        "{err}"
    );
    add_again(&pair, queues_after);
    let err = await_line(
        &mut s,
        "the re-attach line",
        &format!("surgewatch: {} is back", pair.if_a),
    );
    let back = err
        .lines()
        .find(|l| l.contains(" is back "))
        .expect("back line");
    assert!(
        back.contains(&format!("capture re-attached: {}: {method}", pair.if_a)),
        "{method}: re-attached with the method that ran: {back}"
    );

    let after: Vec<Vec<u8>> = (0..30).map(|_| udp_frame(&pair, 200)).collect();
    inject(&pair.ns_b, &pair.if_b, &after);
    let err = await_frames(&mut s, before.len() + after.len());
    assert!(
        err.contains("interface lost 1 time(s), re-attached 1"),
        "{method}: the status line counts the loss and the re-attach: {err}"
    );
    let (summary, stderr) = stop(s);
    assert_eq!(
        summary["packets"],
        before.len() + after.len(),
        "{method}: every frame before and after counted once; stderr: {stderr}"
    );
    assert_eq!(summary["bytes"], 20 * 100 + 30 * 200, "{method}");
    assert_eq!(
        summary["link"],
        serde_json::json!({"losses": 1, "reattaches": 1}),
        "{method}"
    );
    assert_eq!(
        stderr.matches(" disappeared (interface ").count(),
        1,
        "{method}: said once: {stderr}"
    );
    assert!(
        !stderr.contains("error: worker") && !stderr.contains("interface is down"),
        "{method}: the disappearance is the one line about it: {stderr}"
    );
}

fn down_and_up(method: &str) {
    let pair = VethPair::new();
    let mut s = start(&pair, method);
    pair.set_a_up(false);
    await_line(
        &mut s,
        "the interface-down note",
        "interface is down: no frames until it is up again",
    );
    pair.set_a_up(true);
    await_line(&mut s, "the interface-up note", "interface is up again");
    let frames: Vec<Vec<u8>> = (0..25).map(|_| udp_frame(&pair, 120)).collect();
    inject(&pair.ns_b, &pair.if_b, &frames);
    await_frames(&mut s, frames.len());
    let (summary, stderr) = stop(s);
    assert_eq!(summary["packets"], frames.len(), "{method}: {stderr}");
    assert_eq!(stderr.matches("interface is down").count(), 1, "{stderr}");
    assert!(!stderr.contains("error: worker"), "{method}: {stderr}");
    // Down is not lost: the sockets stayed.
    assert_eq!(
        summary["link"],
        serde_json::json!({"losses": 0, "reattaches": 0}),
        "{method}"
    );
}

#[test]
fn an_interface_set_down_and_up_is_said_once_each_and_capture_resumes() {
    if !skip_unless_root("an_interface_set_down_and_up_is_said_once_each_and_capture_resumes") {
        return;
    }
    let _g = serial();
    for method in ["af_xdp", "af_packet"] {
        down_and_up(method);
    }
}

#[test]
fn af_xdp_capture_survives_its_interface_being_deleted_and_recreated() {
    if !skip_unless_root("af_xdp_capture_survives_its_interface_being_deleted_and_recreated") {
        return;
    }
    let _g = serial();
    survives_delete_and_recreate("af_xdp", 1);
    // Back with two queues for its one worker.
    survives_delete_and_recreate("af_xdp", 2);
}

#[test]
fn af_packet_capture_survives_its_interface_being_deleted_and_recreated() {
    if !skip_unless_root("af_packet_capture_survives_its_interface_being_deleted_and_recreated") {
        return;
    }
    let _g = serial();
    survives_delete_and_recreate("af_packet", 2);
}

#[test]
fn raising_the_mtu_sets_af_xdp_capture_up_again_and_jumbo_frames_are_counted() {
    if !skip_unless_root(
        "raising_the_mtu_sets_af_xdp_capture_up_again_and_jumbo_frames_are_counted",
    ) {
        return;
    }
    let _g = serial();
    let pair = VethPair::new();
    let mut s = start(&pair, "af_xdp");
    for (ns, ifname) in [(&pair.ns_b, &pair.if_b), (&pair.ns_a, &pair.if_a)] {
        ip(&["-n", ns, "link", "set", ifname, "mtu", "3000"]);
    }
    let err = await_line(
        &mut s,
        "the MTU warning",
        "MTU raised from 1500 to 3000: frames of up to 3022 bytes no longer fit the AF_XDP chunks",
    );
    assert_eq!(err.matches("MTU raised").count(), 1, "warned once: {err}");
    let err = await_line(&mut s, "the new sockets", "capture set up again: ");
    assert!(
        err.contains("UMEM frames per queue of 4096 bytes"),
        "chunks sized for the new MTU: {err}"
    );
    let sizes = [100usize, 1500, 2500, 3014];
    let frames: Vec<Vec<u8>> = sizes.iter().map(|&n| udp_frame(&pair, n)).collect();
    inject(&pair.ns_b, &pair.if_b, &frames);
    await_frames(&mut s, frames.len());
    let (summary, stderr) = stop(s);
    assert_eq!(summary["packets"], sizes.len(), "{stderr}");
    assert_eq!(summary["bytes"], sizes.iter().sum::<usize>(), "{stderr}");
    let drops: u64 = summary["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["kernel_drops"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(drops, 0, "no jumbo frame dropped: {stderr}");
    // Not a loss of the interface.
    assert_eq!(
        summary["link"],
        serde_json::json!({"losses": 0, "reattaches": 0})
    );
}

const REDIRECTING: &str =
    "is redirecting traffic: frames it redirects or drops never reach AF_PACKET";

#[test]
fn af_packet_warns_when_another_xdp_program_redirects_the_traffic() {
    if !skip_unless_root("af_packet_warns_when_another_xdp_program_redirects_the_traffic") {
        return;
    }
    let _g = serial();
    let pair = VethPair::new();
    // Attached after AF_PACKET capture started: noticed from the link events.
    let mut packet = start(&pair, "af_packet");
    let holder = start(&pair, "af_xdp");
    let err = await_line(&mut packet, "the warning of a later program", REDIRECTING);
    assert!(err.contains("another XDP program (id "), "{err}");
    let (_, err) = stop(packet);
    assert_eq!(err.matches(REDIRECTING).count(), 1, "warned once: {err}");
    // Already attached at start: `auto` falls back to AF_PACKET and says what that costs, and
    // so does `af_packet`.
    for method in ["auto", "af_packet"] {
        let mut s = Spawned::surgewatch(
            &pair.ns_a,
            &[
                "run",
                "-i",
                &pair.if_a,
                "--capture",
                method,
                "--duration",
                "1s",
                "--status-interval",
                "0s",
            ],
        );
        let f = s.wait_timeout(DEADLINE).expect("exits");
        assert_eq!(f.status.code(), Some(0), "{method}: {}", f.stderr);
        assert!(f.stderr.contains(REDIRECTING), "{method}: {}", f.stderr);
        if method == "auto" {
            assert!(
                f.stderr.contains("falling back to AF_PACKET"),
                "{}",
                f.stderr
            );
        }
    }
    stop(holder);
}

/// The host agent follows each of its interfaces too: deleted and recreated (with the host's
/// address put back), it captures the new one, and the summary counts the loss.
#[test]
fn the_host_agent_captures_its_interface_again_after_it_was_recreated() {
    if !skip_unless_root("the_host_agent_captures_its_interface_again_after_it_was_recreated") {
        return;
    }
    let _g = serial();
    let pair = VethPair::new();
    let add_address = || {
        ip(&[
            "-n",
            &pair.ns_a,
            "addr",
            "add",
            "192.0.2.10/24",
            "dev",
            &pair.if_a,
        ])
    };
    add_address();
    let mut s = Spawned::surgewatch(
        &pair.ns_a,
        &[
            "agent",
            "-i",
            &pair.if_a,
            "--format",
            "json",
            "--status-interval",
            "1s",
            "--top",
            "100",
        ],
    );
    await_line(&mut s, "capture set up", "surgewatch: capturing ");
    // To another MAC address: veth delivers them and the agent captures them, but the host's
    // stack ignores them, so no reply of its own adds to the frames counted.
    let frame = || udp_frame_to(&pair, [0x02, 0, 0, 0, 0, 0x99], "192.0.2.10", 100);
    let before: Vec<Vec<u8>> = (0..20).map(|_| frame()).collect();
    inject(&pair.ns_b, &pair.if_b, &before);
    await_frames(&mut s, before.len());
    delete(&pair);
    await_line(
        &mut s,
        "the interface-lost warning",
        " disappeared (interface ",
    );
    add_again(&pair, 1);
    add_address();
    await_line(&mut s, "the re-attach line", "capture re-attached: ");
    let after: Vec<Vec<u8>> = (0..30).map(|_| frame()).collect();
    inject(&pair.ns_b, &pair.if_b, &after);
    await_frames(&mut s, before.len() + after.len());
    let (summary, stderr) = stop(s);
    let host = summary["top_ips"]
        .as_array()
        .expect("top_ips")
        .iter()
        .find(|v| v["ip"] == "192.0.2.10")
        .unwrap_or_else(|| panic!("192.0.2.10 in the summary: {summary}"))
        .clone();
    assert_eq!(
        host["classes"]["udp"]["packets_in"],
        before.len() + after.len(),
        "every frame to the host before and after counted once; stderr: {stderr}"
    );
    assert_eq!(summary["packets"], before.len() + after.len(), "{stderr}");
    assert_eq!(
        summary["link"],
        serde_json::json!({"losses": 1, "reattaches": 1})
    );
}
