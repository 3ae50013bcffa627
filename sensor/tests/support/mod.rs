//! Shared harness for live-capture integration tests (AF_PACKET, AF_XDP): throw-away network
//! namespaces joined by a veth pair, running code inside a namespace, raw frame injection, and
//! running the real `surgewatch` binary inside a namespace.
//!
//! Use it from a test file with `mod support;`. Everything here needs root (network namespaces
//! and raw sockets); start each test with
//!
//! ```ignore
//! if !support::skip_unless_root("my_test") { return; }
//! ```
//!
//! so that an unprivileged `cargo test` prints why it skipped instead of failing.
//!
//! Isolation: [`VethPair`] creates two fresh namespaces `sw-<pid>-<n>a` / `sw-<pid>-<n>b` and
//! a veth pair *directly inside them* (`ip -n A link add … peer … netns B`), so the host's
//! interfaces, addresses and routes are never touched and concurrent tests never share a
//! namespace. IPv6 is disabled inside both namespaces by default so the kernel emits no ND/MLD
//! frames of its own: frame counts seen on the veth are exactly the frames a test injects.
//! Dropping the pair deletes both namespaces (and with them the veth), also when the test
//! panics.
//!
//! Typical test:
//!
//! ```ignore
//! let pair = support::VethPair::new();
//! // Sockets keep the namespace they were created in, whatever thread uses them later.
//! let mut src = support::run_in_netns(&pair.ns_a, || AfPacketSource::open(&cfg)).unwrap();
//! support::inject(&pair.ns_b, &pair.if_b, &frames);
//! // … poll `src` on this thread …
//! ```

#![allow(dead_code)]

use std::ffi::CString;
use std::io::Read;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Whether the tests run with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the running kernel is at least `major.minor` (from `/proc/sys/kernel/osrelease`).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let have = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    have >= (major, minor)
}

/// Returns true when `test` may run; otherwise prints why it is skipped and returns false.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipped: {test} needs root (network namespaces, raw sockets)");
    false
}

/// Runs `ip ARGS…`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2 must be installed)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip netns exec NS PROGRAM ARGS…` to completion, panicking when it fails; returns stdout.
pub fn netns_exec(ns: &str, program: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .expect("run ip netns exec");
    assert!(
        out.status.success(),
        "ip netns exec {ns} {program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns` name, file under /run/netns).
    pub name: String,
}

impl Netns {
    /// Creates `name`, with loopback up and, unless `keep_ipv6`, IPv6 disabled for every
    /// interface created in it afterwards.
    pub fn new(name: &str, keep_ipv6: bool) -> Netns {
        ip(&["netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"]);
        if !keep_ipv6 {
            for key in [
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ] {
                netns_exec(name, "sysctl", &["-qw", key]);
            }
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Not `ip()`: never panic in drop (this may run while unwinding).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Options of a [`VethPair`].
#[derive(Clone, Debug)]
pub struct VethOptions {
    /// MTU of both ends (default 1500; AF_XDP native mode fails with jumbo MTUs on veth).
    pub mtu: u32,
    /// Number of RX and TX queues of each end (default 1). More queues let tests exercise
    /// per-queue sockets; veth picks the RX queue on the peer from the sender's TX queue.
    pub queues: u32,
    /// Keep IPv6 enabled (default false: no kernel-generated ND/MLD frames).
    pub keep_ipv6: bool,
}

impl Default for VethOptions {
    fn default() -> Self {
        VethOptions {
            mtu: 1500,
            queues: 1,
            keep_ipv6: false,
        }
    }
}

/// Two fresh network namespaces joined by a veth pair, both ends up and without addresses.
/// Everything is removed on drop (also on panic).
#[derive(Debug)]
pub struct VethPair {
    /// Namespace of end A.
    pub ns_a: String,
    /// Namespace of end B.
    pub ns_b: String,
    /// Interface name of end A (inside `ns_a`).
    pub if_a: String,
    /// Interface name of end B (inside `ns_b`).
    pub if_b: String,
    /// MAC address of end A.
    pub mac_a: [u8; 6],
    /// MAC address of end B.
    pub mac_b: [u8; 6],
    // Dropped last: the namespaces, which take the veth with them.
    _a: Netns,
    _b: Netns,
}

static NEXT_PAIR: AtomicUsize = AtomicUsize::new(0);

impl VethPair {
    /// A pair with the default options (MTU 1500, one queue, IPv6 off).
    pub fn new() -> VethPair {
        VethPair::with_options(&VethOptions::default())
    }

    /// A pair with these options.
    pub fn with_options(opts: &VethOptions) -> VethPair {
        let n = NEXT_PAIR.fetch_add(1, Ordering::Relaxed);
        let base = format!("sw-{}-{n}", std::process::id());
        let (ns_a, ns_b) = (format!("{base}a"), format!("{base}b"));
        let a = Netns::new(&ns_a, opts.keep_ipv6);
        let b = Netns::new(&ns_b, opts.keep_ipv6);
        let (if_a, if_b) = ("swv0".to_string(), "swv1".to_string());
        let q = opts.queues.max(1).to_string();
        let mtu = opts.mtu.to_string();
        // Created inside ns A with its peer inside ns B: nothing ever appears on the host.
        #[rustfmt::skip]
        ip(&[
            "-n", &ns_a, "link", "add", &if_a, "mtu", &mtu, "numtxqueues", &q, "numrxqueues", &q,
            "type", "veth", "peer", "name", &if_b, "mtu", &mtu, "numtxqueues", &q, "numrxqueues",
            &q, "netns", &ns_b,
        ]);
        ip(&["-n", &ns_a, "link", "set", &if_a, "up"]);
        ip(&["-n", &ns_b, "link", "set", &if_b, "up"]);
        let mac_a = read_mac(&ns_a, &if_a);
        let mac_b = read_mac(&ns_b, &if_b);
        VethPair {
            ns_a,
            ns_b,
            if_a,
            if_b,
            mac_a,
            mac_b,
            _a: a,
            _b: b,
        }
    }

    /// Sets end A administratively down (`up = false`) or up.
    pub fn set_a_up(&self, up: bool) {
        ip(&[
            "-n",
            &self.ns_a,
            "link",
            "set",
            &self.if_a,
            if up { "up" } else { "down" },
        ]);
    }

    /// Whether end A currently has IFF_PROMISC (as `ip link show` reports it).
    pub fn a_is_promiscuous(&self) -> bool {
        let out = Command::new("ip")
            .args(["-n", &self.ns_a, "-d", "link", "show", "dev", &self.if_a])
            .output()
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout);
        // First line: "N: swv0@if..: <BROADCAST,MULTICAST,PROMISC,UP,LOWER_UP> ..."; -d adds
        // "promiscuity N" which is what membership-based promiscuous mode raises.
        text.split_whitespace()
            .skip_while(|w| *w != "promiscuity")
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|v| v > 0)
    }
}

fn read_mac(ns: &str, ifname: &str) -> [u8; 6] {
    let text = netns_exec(ns, "cat", &[&format!("/sys/class/net/{ifname}/address")]);
    let mut mac = [0u8; 6];
    let parts: Vec<u8> = text
        .trim()
        .split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    assert_eq!(parts.len(), 6, "MAC of {ifname} in {ns}: {text:?}");
    mac.copy_from_slice(&parts);
    mac
}

/// Runs `f` on a new thread that has joined network namespace `ns` (`setns` on
/// `/run/netns/NS`), and returns its result. Sockets created by `f` stay in `ns` even when
/// returned to and used by the calling thread. Panics inside `f` propagate.
pub fn run_in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: `file` is an open namespace file; setns only changes this thread's
            // network namespace (the thread is ours and ends after `f`).
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Index of `ifname` in the calling thread's namespace (panics when it does not exist).
fn ifindex(ifname: &str) -> libc::c_int {
    let c = CString::new(ifname).expect("interface name");
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(idx != 0, "no interface {ifname}");
    libc::c_int::try_from(idx).expect("ifindex")
}

/// Sends raw Ethernet `frames` (each a whole frame without FCS) out of `ifname` inside
/// namespace `ns`, in order, through an AF_PACKET `SOCK_RAW` socket; retries briefly on
/// ENOBUFS/EAGAIN. Panics on any other error.
pub fn inject(ns: &str, ifname: &str, frames: &[Vec<u8>]) {
    run_in_netns(ns, || inject_here(ifname, frames));
}

/// [`inject`] in the calling thread's namespace.
pub fn inject_here(ifname: &str, frames: &[Vec<u8>]) {
    let idx = ifindex(ifname);
    // SAFETY: plain system call with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a new descriptor owned by nothing else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { MaybeUninit::zeroed().assume_init() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = idx;
    sll.sll_halen = 6;
    for frame in frames {
        sll.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&[0; 6]));
        let mut tries = 0;
        loop {
            // SAFETY: `frame` is valid for `frame.len()` bytes and `sll` for its size.
            let rc = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                assert_eq!(rc as usize, frame.len(), "short send");
                break;
            }
            let e = std::io::Error::last_os_error();
            let retry = matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN));
            tries += 1;
            assert!(retry && tries < 10_000, "sendto {ifname}: {e}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

/// The one line of `stderr` that mentions an error (asserting there is exactly one, and no
/// panic).
/// Frames received plus frames dropped by the kernel, over every queue, as of the last status
/// line in `stderr` (`… NAME rx=N drops=D err=E; …`).
pub fn accounted_frames(stderr: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("surgewatch: status: "))?;
    Some(
        line.split_whitespace()
            .filter_map(|w| w.strip_prefix("rx=").or_else(|| w.strip_prefix("drops=")))
            .filter_map(|v| v.trim_end_matches(';').parse::<u64>().ok())
            .sum(),
    )
}

pub fn one_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one error line expected, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_owned()
}

/// Path of the `surgewatch` binary built for these tests.
pub fn surgewatch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_surgewatch"))
}

/// How a process started with [`Spawned`] ended.
#[derive(Debug)]
pub struct Finished {
    /// Exit status (`None` from `code()` when killed by a signal).
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// A process running inside a namespace with stdout and stderr captured (read by background
/// threads, so it never blocks on a full pipe; stderr can be watched while it runs, see
/// [`Spawned::await_stderr`]). Killed with SIGKILL on drop if still running.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    /// Everything written to stderr so far.
    err_so_far: Arc<Mutex<Vec<u8>>>,
}

/// Reads `r` to its end on a new thread, appending each piece to `so_far` as it comes.
fn drain(
    r: Option<impl Read + Send + 'static>,
    so_far: Arc<Mutex<Vec<u8>>>,
) -> Option<JoinHandle<String>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => so_far
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let v = so_far.lock().unwrap_or_else(|p| p.into_inner());
            String::from_utf8_lossy(&v).into_owned()
        })
    })
}

impl Spawned {
    /// Starts `ip netns exec NS PROGRAM ARGS…`. `ip netns exec` execs the program in place,
    /// so [`pid`](Self::pid) is the program's own pid and signals reach it directly.
    pub fn in_netns(ns: &str, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Spawned {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        let err_so_far = Arc::new(Mutex::new(Vec::new()));
        let out = drain(child.stdout.take(), Arc::new(Mutex::new(Vec::new())));
        let err = drain(child.stderr.take(), Arc::clone(&err_so_far));
        Spawned {
            child,
            out,
            err,
            err_so_far,
        }
    }

    /// What the process has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        let v = self.err_so_far.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&v).into_owned()
    }

    /// Waits until the stderr written so far satisfies `done` (checked every 10 ms) and returns
    /// it. Panics, naming `what` and with the process's output, when the process exits first
    /// or `timeout` passes: tests wait for what the process says rather than for a time that
    /// assumes how fast the machine is.
    pub fn await_stderr(
        &mut self,
        what: &str,
        done: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let err = self.stderr_so_far();
            if done(&err) {
                return err;
            }
            match self.child.try_wait() {
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => panic!("{what}: not within {timeout:?}; stderr so far:\n{err}"),
                Ok(Some(_)) => {
                    let f = self.wait_timeout(Duration::from_secs(5));
                    panic!("{what}: the process exited first: {f:?}");
                }
                Err(e) => panic!("wait for {}: {e}", self.child.id()),
            }
        }
    }

    /// Starts the real `surgewatch` binary with `args` inside `ns`.
    pub fn surgewatch(ns: &str, args: &[&str]) -> Spawned {
        Spawned::in_netns(ns, surgewatch_bin(), args)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. `libc::SIGINT`, `libc::SIGTERM`); false if the process is gone.
    pub fn signal(&self, sig: libc::c_int) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return false;
        };
        // SAFETY: kill has no memory-safety preconditions; `pid` is our own child, not reaped
        // yet (we hold its `Child`), so the pid cannot have been reused.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Finished> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let take = |h: Option<JoinHandle<String>>| {
                        h.and_then(|h| h.join().ok()).unwrap_or_default()
                    };
                    return Some(Finished {
                        status,
                        stdout: take(self.out.take()),
                        stderr: take(self.err.take()),
                    });
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => return None,
                Err(e) => panic!("wait for {}: {e}", self.child.id()),
            }
        }
    }

    /// Sends `sig`, then waits up to `timeout`; panics (after SIGKILL) if it does not exit.
    pub fn stop(mut self, sig: libc::c_int, timeout: Duration) -> Finished {
        self.signal(sig);
        match self.wait_timeout(timeout) {
            Some(f) => f,
            None => {
                let _ = self.child.kill();
                let f = self.wait_timeout(Duration::from_secs(5));
                panic!("process did not exit within {timeout:?} of signal {sig}: {f:?}");
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Frame builders: the generator's packet builder (`surgewatch_pcaps::packet`), re-exported so
/// tests build frames the same way the labelled captures do.
pub use surgewatch_pcaps::packet;

/// An Ethernet header from `src` to `dst` (use the veth MACs, or any unicast MAC: veth
/// delivers every frame to the peer; the peer's stack ignores frames for other MACs).
pub fn eth(src: [u8; 6], dst: [u8; 6]) -> packet::Eth {
    packet::Eth::new(src, dst)
}
