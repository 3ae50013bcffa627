//! The loader of [`super::xdp_prog`]'s program: creates the XSKMAP, loads the instructions,
//! attaches them through a bpf_link and registers sockets, over the raw calls of
//! [`crate::sys::bpf`]; and says what a refusal means ([`CaptureError`]).
//!
//! The link is created first in driver mode then, when the driver cannot (`EOPNOTSUPP`,
//! `EINVAL`, or `ERANGE` for an MTU too large for native XDP), in generic (skb) mode.
//!
//! The attachment is a **bpf_link**: the kernel detaches the program when the last file
//! descriptor of the link is closed, which happens when [`XdpProgram`] is dropped and also
//! when the process dies in any way (even `kill -9`). Nothing is left behind on the interface.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::sys::bpf::{
    self, MapDef, ProgDef, BPF_F_TEST_XDP_LIVE_FRAMES, BPF_F_XDP_HAS_FRAGS, BPF_MAP_TYPE_XSKMAP,
    BPF_PROG_TYPE_XDP, BPF_XDP, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE,
};

use super::xdp_prog::{
    obj_name, program, BpfInsn, XdpAttachMode, XdpFallback, LICENSE, MAP_NAME, PROGRAM_NAME,
};
use super::{ifindex, CaptureError};

/// Maps an errno of a `bpf(2)` call to an operator-friendly error.
fn bpf_error(interface: &str, op: &'static str, e: io::Error) -> CaptureError {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::NeedsCapabilities {
            interface: interface.to_owned(),
            caps: "CAP_NET_ADMIN and CAP_BPF",
        },
        _ => CaptureError::Socket {
            interface: interface.to_owned(),
            op,
            source: e,
        },
    }
}

/// Maps an errno of `BPF_LINK_CREATE`.
fn link_error(ifname: &str, e: io::Error) -> CaptureError {
    match e.raw_os_error() {
        // EBUSY: a bpf_link or a program of the same mode is attached; EEXIST: a program in
        // the other mode is attached.
        Some(libc::EBUSY) | Some(libc::EEXIST) => CaptureError::XdpProgramPresent {
            interface: ifname.to_owned(),
        },
        Some(libc::ENODEV) => CaptureError::NoSuchInterface {
            interface: ifname.to_owned(),
        },
        _ => bpf_error(ifname, "attach XDP program", e),
    }
}

/// Whether a driver-mode attach failed in a way that generic (skb) mode may not.
fn retry_in_skb_mode(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ERANGE)
    )
}

/// The last line of a NUL-terminated verifier log (empty when there is none).
fn last_log_line(log: &[u8]) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default());
    text.trim().lines().last().unwrap_or("").to_owned()
}

/// An XDP program attached to one interface through a bpf_link, with its XSKMAP. Shared by all
/// the AF_XDP sockets of the interface (wrap it in an `Arc`); dropping the last owner detaches
/// the program.
#[derive(Debug)]
pub struct XdpProgram {
    interface: String,
    ifindex: u32,
    n_queues: u32,
    mode: XdpAttachMode,
    fallback: XdpFallback,
    // Declaration order is drop order: the link first (detaches), then program and map.
    link: OwnedFd,
    prog: OwnedFd,
    map: OwnedFd,
}

impl XdpProgram {
    /// Creates an XSKMAP of `n_queues` entries, loads the program and attaches it to `ifname`
    /// (in the calling thread's network namespace), in driver mode when the driver supports it,
    /// else in generic (skb) mode; [`XdpProgram::mode`] says which.
    ///
    /// `n_queues` must exceed the highest queue index that will be registered (use
    /// `rx_queues(ifname)`'s largest entry + 1).
    pub fn attach(
        ifname: &str,
        n_queues: u32,
        fallback: XdpFallback,
    ) -> Result<XdpProgram, CaptureError> {
        Self::attach_with(ifname, n_queues, fallback, false)
    }

    /// [`XdpProgram::attach`], with `frags`: the program is loaded as able to handle frames in
    /// several buffers (`BPF_F_XDP_HAS_FRAGS`), which drivers require before they take it on an
    /// interface whose MTU exceeds a page (multi-buffer AF_XDP sockets need it).
    pub fn attach_with(
        ifname: &str,
        n_queues: u32,
        fallback: XdpFallback,
        frags: bool,
    ) -> Result<XdpProgram, CaptureError> {
        let ifindex = ifindex(ifname)?;
        let map = create_xskmap(ifname, n_queues.max(1))?;
        let insns = program(map.as_raw_fd(), fallback);
        let flags = if frags { BPF_F_XDP_HAS_FRAGS } else { 0 };
        let prog = load_xdp_insns_with_flags(ifname, PROGRAM_NAME, &insns, flags)?;
        let link_in = |flags| bpf::link_create(prog.as_fd(), ifindex, BPF_XDP, flags);
        let (link, mode) = match link_in(XDP_FLAGS_DRV_MODE) {
            Ok(link) => (link, XdpAttachMode::Driver),
            Err(e) if retry_in_skb_mode(&e) => {
                let link = link_in(XDP_FLAGS_SKB_MODE).map_err(|e| link_error(ifname, e))?;
                (link, XdpAttachMode::Skb)
            }
            Err(e) => return Err(link_error(ifname, e)),
        };
        Ok(XdpProgram {
            interface: ifname.to_owned(),
            ifindex,
            n_queues: n_queues.max(1),
            mode,
            fallback,
            link,
            prog,
            map,
        })
    }

    /// Steers the frames of `queue` to `socket` (an AF_XDP socket bound to that queue of this
    /// interface). Replaces an earlier registration of the same queue.
    pub fn register(&self, queue: u32, socket: &impl AsFd) -> Result<(), CaptureError> {
        if queue >= self.n_queues {
            return Err(CaptureError::NoSuchQueue {
                interface: self.interface.clone(),
                queue,
            });
        }
        // An XSKMAP's value is the socket's descriptor number (never negative).
        let value = socket.as_fd().as_raw_fd().unsigned_abs();
        bpf::map_update_u32(self.map.as_fd(), queue, value)
            .map_err(|e| bpf_error(&self.interface, "register socket in XSKMAP", e))
    }

    /// Stops steering the frames of `queue` to a socket (they get the fallback action).
    pub fn unregister(&self, queue: u32) -> Result<(), CaptureError> {
        match bpf::map_delete_u32(self.map.as_fd(), queue) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(bpf_error(&self.interface, "remove socket from XSKMAP", e)),
        }
    }

    /// Driver or generic (skb) mode.
    pub fn mode(&self) -> XdpAttachMode {
        self.mode
    }

    /// The action for frames of queues without a socket.
    pub fn fallback(&self) -> XdpFallback {
        self.fallback
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface index (in the namespace where the program was attached).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Entries of the XSKMAP.
    pub fn n_queues(&self) -> u32 {
        self.n_queues
    }

    /// The bpf_link's file descriptor (closing it detaches the program).
    pub fn link_fd(&self) -> RawFd {
        self.link.as_raw_fd()
    }

    /// The program's file descriptor.
    pub fn prog_fd(&self) -> RawFd {
        self.prog.as_raw_fd()
    }
}

fn create_xskmap(ifname: &str, n_queues: u32) -> Result<OwnedFd, CaptureError> {
    bpf::map_create(&MapDef {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: n_queues,
        name: obj_name(MAP_NAME),
    })
    .map_err(|e| bpf_error(ifname, "create XSKMAP", e))
}

/// Loads `insns` as a `BPF_PROG_TYPE_XDP` program named `name` (at most 15 bytes are kept),
/// not attached to anything. `ifname` only labels errors. A program the verifier rejects is
/// loaded again with the verifier log, whose last line becomes the error.
pub fn load_xdp_insns(
    ifname: &str,
    name: &[u8],
    insns: &[BpfInsn],
) -> Result<OwnedFd, CaptureError> {
    load_xdp_insns_with_flags(ifname, name, insns, 0)
}

/// [`load_xdp_insns`] with `BPF_PROG_LOAD` `prog_flags`.
fn load_xdp_insns_with_flags(
    ifname: &str,
    name: &[u8],
    insns: &[BpfInsn],
    flags: u32,
) -> Result<OwnedFd, CaptureError> {
    let def = ProgDef {
        prog_type: BPF_PROG_TYPE_XDP,
        expected_attach_type: BPF_XDP,
        flags,
        insns,
        license: LICENSE,
        name: obj_name(name),
    };
    match bpf::prog_load(&def, None) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(bpf_error(ifname, "load", e)),
        Err(first) => {
            // Load again with the verifier log to say why.
            let mut log = vec![0u8; 16 * 1024];
            let _ = bpf::prog_load(&def, Some(&mut log));
            let text = last_log_line(&log);
            Err(CaptureError::XdpProgramRejected {
                interface: ifname.to_owned(),
                reason: if text.is_empty() {
                    first.to_string()
                } else {
                    text
                },
            })
        }
    }
}

/// Runs the XDP program `prog` `repeat` times over copies of `frame` in **live-frames** mode
/// (`BPF_PROG_TEST_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18+): what the program
/// returns is carried out, so `XDP_TX`/`XDP_REDIRECT` really transmit, `batch` frames at a
/// time (0: the kernel's default of 64). Runs in the calling thread, in its network namespace.
/// This is how a traffic generator sends at XDP speed without a NIC queue of its own.
pub fn test_run_live_frames(
    prog: &OwnedFd,
    frame: &[u8],
    repeat: u32,
    batch: u32,
) -> io::Result<()> {
    bpf::prog_test_run(
        prog.as_fd(),
        frame,
        repeat,
        BPF_F_TEST_XDP_LIVE_FRAMES,
        batch,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(n: i32) -> io::Error {
        io::Error::from_raw_os_error(n)
    }

    #[test]
    fn refusals_say_what_to_do() {
        for n in [libc::EPERM, libc::EACCES] {
            assert!(matches!(
                bpf_error("eth0", "load", errno(n)),
                CaptureError::NeedsCapabilities { .. }
            ));
        }
        assert!(matches!(
            bpf_error("eth0", "create XSKMAP", errno(libc::ENOMEM)),
            CaptureError::Socket {
                op: "create XSKMAP",
                ..
            }
        ));
        for n in [libc::EBUSY, libc::EEXIST] {
            assert!(matches!(
                link_error("eth0", errno(n)),
                CaptureError::XdpProgramPresent { .. }
            ));
        }
        assert!(matches!(
            link_error("eth0", errno(libc::ENODEV)),
            CaptureError::NoSuchInterface { .. }
        ));
        assert!(matches!(
            link_error("eth0", errno(libc::EPERM)),
            CaptureError::NeedsCapabilities { .. }
        ));
        for n in [libc::EOPNOTSUPP, libc::EINVAL, libc::ERANGE] {
            assert!(retry_in_skb_mode(&errno(n)), "{n}");
        }
        assert!(!retry_in_skb_mode(&errno(libc::EBUSY)));
    }

    #[test]
    fn the_verifier_logs_last_line_is_the_reason() {
        let mut log = b"0: R1=ctx() R10=fp0\n; r2 = *(u32 *)(r1 +16)\ninvalid bpf_context access off=99 size=4\nprocessed 1 insns\n\0garbage".to_vec();
        assert_eq!(last_log_line(&log), "processed 1 insns");
        log.truncate(10);
        assert_eq!(last_log_line(&log), "0: R1=ctx(");
        assert_eq!(last_log_line(&[0; 8]), "");
        assert_eq!(last_log_line(&[]), "");
    }
}
