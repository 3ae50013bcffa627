//! The XDP program that steers an interface's frames into AF_XDP sockets, loaded without a C
//! compiler, an ELF loader or libbpf.
//!
//! The program is six hand-assembled eBPF instructions (see [`program`]):
//!
//! ```text
//! 0: r2 = *(u32 *)(r1 + 16)     ; ctx->rx_queue_index
//! 1: r1 = map_fd ll             ; the XSKMAP (BPF_LD_IMM64, BPF_PSEUDO_MAP_FD), 2 slots
//! 3: r3 = 2                     ; fallback action: XDP_PASS (2) or XDP_DROP (1)
//! 4: call 51                    ; bpf_redirect_map(map, rx_queue_index, fallback)
//! 5: exit                       ; r0 = XDP_REDIRECT, or the fallback when no socket is bound
//! ```
//!
//! `bpf_redirect_map` returns the low bits of its flags argument when the lookup fails, so a
//! queue without a registered socket gets the fallback action: [`XdpFallback::Pass`] (the
//! default) hands the frame to the kernel stack as if no program were attached;
//! [`XdpFallback::Drop`] suits a dedicated mirror port whose frames nobody else wants.
//!
//! Everything goes through raw `bpf(2)` calls: `BPF_MAP_CREATE` (an `XSKMAP`, key and value
//! `u32`, one entry per queue), `BPF_PROG_LOAD` (`BPF_PROG_TYPE_XDP`), `BPF_LINK_CREATE`
//! (`BPF_XDP`), first in driver mode then, when the driver cannot (`EOPNOTSUPP`, `EINVAL`,
//! or `ERANGE` for an MTU too large for native XDP), in generic (skb) mode.
//!
//! The attachment is a **bpf_link**: the kernel detaches the program when the last file
//! descriptor of the link is closed, which happens when [`XdpProgram`] is dropped and also
//! when the process dies in any way (even `kill -9`). Nothing is left behind on the interface.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::CaptureError;

/// What the program does with a frame of a queue that has no AF_XDP socket registered.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum XdpFallback {
    /// Hand it to the kernel stack (`XDP_PASS`): the interface keeps working normally.
    #[default]
    Pass,
    /// Drop it (`XDP_DROP`): for a dedicated mirror port whose frames nobody else needs.
    Drop,
}

impl XdpFallback {
    /// The XDP action number (`XDP_PASS` = 2, `XDP_DROP` = 1).
    pub fn action(self) -> i32 {
        match self {
            XdpFallback::Pass => XDP_PASS,
            XdpFallback::Drop => XDP_DROP,
        }
    }
}

/// Where the kernel runs the program.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver, before any socket buffer is allocated (`XDP_FLAGS_DRV_MODE`).
    Driver,
    /// Generic XDP, after the socket buffer is built (`XDP_FLAGS_SKB_MODE`): works on every
    /// interface, slower.
    Skb,
}

impl XdpAttachMode {
    /// `"driver"` or `"skb"`.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpAttachMode::Driver => "driver",
            XdpAttachMode::Skb => "skb",
        }
    }
}

// ---- Kernel ABI constants (include/uapi/linux/bpf.h, if_link.h) ----

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value of `BPF_XDP`.
const BPF_XDP: u32 = 37;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_FUNC_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

const XDP_DROP: i32 = 1;
const XDP_PASS: i32 = 2;

/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

// Opcode parts (class | size | mode, or class | operation | source).
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ALU64: u8 = 0x07;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_MOV: u8 = 0xb0;
const BPF_K: u8 = 0x00;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;

/// Builds an opcode from its parts (a plain OR; a function so that zero parts stay named).
const fn op(a: u8, b: u8, c: u8) -> u8 {
    a | b | c
}

const BPF_LDX_MEM_W: u8 = op(BPF_LDX, BPF_W, BPF_MEM);
const BPF_LD_IMM_DW: u8 = op(BPF_LD, BPF_DW, BPF_IMM);
const BPF_ALU64_MOV_K: u8 = op(BPF_ALU64, BPF_MOV, BPF_K);
const BPF_JMP_CALL: u8 = op(BPF_JMP, BPF_CALL, 0);
const BPF_JMP_EXIT: u8 = op(BPF_JMP, BPF_EXIT, 0);

/// License string given to the kernel (`bpf_redirect_map` is not GPL-only, but a GPL-compatible
/// license keeps every helper available).
const LICENSE: &[u8] = b"Dual MIT/GPL\0";

/// One eBPF instruction, `struct bpf_insn`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode.
    pub code: u8,
    /// Destination register in the low nibble, source register in the high nibble.
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl BpfInsn {
    /// An instruction from its fields (`dst`/`src` are register numbers 0..=10).
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        BpfInsn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }
}

/// The program, for an XSKMAP whose file descriptor is `map_fd`.
pub fn program(map_fd: RawFd, fallback: XdpFallback) -> [BpfInsn; 6] {
    [
        // r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index))
        BpfInsn::new(BPF_LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (64-bit immediate over two slots; the kernel swaps the fd for the map)
        BpfInsn::new(BPF_LD_IMM_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        BpfInsn::new(0, 0, 0, 0, 0),
        // r3 = fallback action
        BpfInsn::new(BPF_ALU64_MOV_K, 3, 0, 0, fallback.action()),
        // r0 = bpf_redirect_map(r1, r2, r3)
        BpfInsn::new(BPF_JMP_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // return r0
        BpfInsn::new(BPF_JMP_EXIT, 0, 0, 0, 0),
    ]
}

// ---- `union bpf_attr`, the parts used here ----

#[repr(C)]
#[derive(Copy, Clone)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Copy, Clone)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Copy, Clone)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Copy, Clone)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `union bpf_attr`, zero-padded to 128 bytes (the kernel checks that bytes it does not know
/// are zero, and zero-fills what it knows beyond the size passed).
#[repr(C)]
union BpfAttr {
    map_create: MapCreateAttr,
    map_elem: MapElemAttr,
    prog_load: ProgLoadAttr,
    link_create: LinkCreateAttr,
    test_run: TestRunAttr,
    _size: [u64; 16],
}

impl BpfAttr {
    fn zeroed() -> Self {
        BpfAttr { _size: [0; 16] }
    }
}

/// `bpf(cmd, attr, sizeof attr)`, returning the non-negative result or the errno.
fn sys_bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialised `union bpf_attr` of the size passed; every
    // pointer inside it (instructions, license, log buffer, key, value) is set by the caller to
    // memory that outlives this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BpfAttr,
            std::mem::size_of::<BpfAttr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Like [`sys_bpf`] for commands that return a new file descriptor.
fn sys_bpf_fd(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us (with O_CLOEXEC); nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Index of an interface in the calling thread's network namespace.
pub(crate) fn ifindex(ifname: &str) -> Result<u32, CaptureError> {
    let no_such = || CaptureError::NoSuchInterface {
        interface: ifname.to_owned(),
    };
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(no_such());
    }
    let c = CString::new(ifname).map_err(|_| no_such())?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(no_such())
    } else {
        Ok(idx)
    }
}

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
        let prog = load_program(ifname, &map, fallback, frags)?;
        let (link, mode) = match create_link(&prog, ifindex, XDP_FLAGS_DRV_MODE) {
            Ok(link) => (link, XdpAttachMode::Driver),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ERANGE)
                ) =>
            {
                let link = create_link(&prog, ifindex, XDP_FLAGS_SKB_MODE)
                    .map_err(|e| link_error(ifname, e))?;
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
        let key = queue;
        let value = u32::try_from(socket.as_fd().as_raw_fd()).unwrap_or(u32::MAX);
        let mut attr = BpfAttr::zeroed();
        attr.map_elem = MapElemAttr {
            map_fd: self.map_fd(),
            _pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0, // BPF_ANY
        };
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| bpf_error(&self.interface, "register socket in XSKMAP", e))
    }

    /// Stops steering the frames of `queue` to a socket (they get the fallback action).
    pub fn unregister(&self, queue: u32) -> Result<(), CaptureError> {
        let key = queue;
        let mut attr = BpfAttr::zeroed();
        attr.map_elem = MapElemAttr {
            map_fd: self.map_fd(),
            _pad: 0,
            key: &key as *const u32 as u64,
            value: 0,
            flags: 0,
        };
        match sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(()),
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

    fn map_fd(&self) -> u32 {
        u32::try_from(self.map.as_raw_fd()).unwrap_or(u32::MAX)
    }
}

/// A kernel object name (at most 15 bytes, NUL-padded).
fn obj_name(s: &[u8]) -> [u8; 16] {
    let mut name = [0u8; 16];
    let n = s.len().min(15);
    name[..n].copy_from_slice(&s[..n]);
    name
}

fn create_xskmap(ifname: &str, n_queues: u32) -> Result<OwnedFd, CaptureError> {
    let name = obj_name(b"sw_xskmap");
    let mut attr = BpfAttr::zeroed();
    attr.map_create = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: n_queues,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name,
    };
    sys_bpf_fd(BPF_MAP_CREATE, &mut attr).map_err(|e| bpf_error(ifname, "create XSKMAP", e))
}

fn load_program(
    ifname: &str,
    map: &OwnedFd,
    fallback: XdpFallback,
    frags: bool,
) -> Result<OwnedFd, CaptureError> {
    let insns = program(map.as_raw_fd(), fallback);
    let flags = if frags { BPF_F_XDP_HAS_FRAGS } else { 0 };
    load_xdp_insns_with_flags(ifname, b"sw_xsk_redirect", &insns, flags)
}

/// `BPF_PROG_LOAD` flag: the XDP program handles multi-buffer frames (Linux 5.18+).
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

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
    prog_flags: u32,
) -> Result<OwnedFd, CaptureError> {
    let name = obj_name(name);
    let load = |log: &mut [u8], level: u32| {
        let mut attr = BpfAttr::zeroed();
        attr.prog_load = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: u32::try_from(insns.len()).unwrap_or(u32::MAX),
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level: level,
            log_size: if level == 0 { 0 } else { log.len() as u32 },
            log_buf: if level == 0 {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags,
            prog_name: name,
            prog_ifindex: 0,
            expected_attach_type: BPF_XDP,
        };
        sys_bpf_fd(BPF_PROG_LOAD, &mut attr)
    };
    let mut log = vec![0u8; 16 * 1024];
    match load(&mut log, 0) {
        Ok(fd) => Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(bpf_error(ifname, "load", e)),
        Err(first) => {
            // Load again with the verifier log to say why.
            let _ = load(&mut log, 1);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let text = text.trim().lines().last().unwrap_or("").to_owned();
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

/// `BPF_F_TEST_XDP_LIVE_FRAMES`.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
const BPF_PROG_TEST_RUN: libc::c_long = 10;

#[repr(C)]
#[derive(Copy, Clone)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
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
    let mut attr = BpfAttr::zeroed();
    attr.test_run = TestRunAttr {
        prog_fd: u32::try_from(prog.as_raw_fd()).unwrap_or(u32::MAX),
        retval: 0,
        data_size_in: u32::try_from(frame.len()).unwrap_or(u32::MAX),
        data_size_out: 0,
        data_in: frame.as_ptr() as u64,
        data_out: 0,
        repeat,
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        cpu: 0,
        batch_size: batch,
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr).map(|_| ())
}

fn create_link(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = BpfAttr::zeroed();
    attr.link_create = LinkCreateAttr {
        prog_fd: u32::try_from(prog.as_raw_fd()).unwrap_or(u32::MAX),
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    sys_bpf_fd(BPF_LINK_CREATE, &mut attr)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_encoding() {
        let p = program(7, XdpFallback::Pass);
        let bytes: Vec<[u8; 8]> = p
            .iter()
            .map(|i| {
                let mut b = [0u8; 8];
                b[0] = i.code;
                b[1] = i.regs;
                b[2..4].copy_from_slice(&i.off.to_le_bytes());
                b[4..8].copy_from_slice(&i.imm.to_le_bytes());
                b
            })
            .collect();
        assert_eq!(
            bytes,
            vec![
                [0x61, 0x12, 16, 0, 0, 0, 0, 0],
                [0x18, 0x11, 0, 0, 7, 0, 0, 0],
                [0, 0, 0, 0, 0, 0, 0, 0],
                [0xb7, 0x03, 0, 0, 2, 0, 0, 0],
                [0x85, 0x00, 0, 0, 51, 0, 0, 0],
                [0x95, 0x00, 0, 0, 0, 0, 0, 0],
            ]
        );
        assert_eq!(program(7, XdpFallback::Drop)[3].imm, 1);
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
        assert_eq!(std::mem::size_of::<BpfAttr>(), 128);
    }
}
