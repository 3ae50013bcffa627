//! The raw `bpf(2)` commands this crate uses, with the parts of `union bpf_attr` they need
//! (`include/uapi/linux/bpf.h`): `BPF_MAP_CREATE`, `BPF_MAP_UPDATE_ELEM`,
//! `BPF_MAP_DELETE_ELEM`, `BPF_PROG_LOAD`, `BPF_LINK_CREATE` and `BPF_PROG_TEST_RUN`.
//!
//! Programs arrive as instructions assembled by the pure [`crate::capture::xdp_prog`];
//! nothing here knows what they do. Deciding which errno means what (a missing capability, a
//! program already attached) is the loader's job ([`crate::capture::xdp_load`]).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::capture::xdp_prog::BpfInsn;

use super::owned_fd;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;

/// `BPF_MAP_TYPE_XSKMAP`.
pub const BPF_MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
pub const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type` value of `BPF_XDP`.
pub const BPF_XDP: u32 = 37;
/// `BPF_PROG_LOAD` flag: the XDP program handles multi-buffer frames (Linux 5.18+).
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `BPF_PROG_TEST_RUN` flag: carry out what the XDP program returns (Linux 5.18+).
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// `BPF_LINK_CREATE` flag for `BPF_XDP`: generic XDP, after the socket buffer is built.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `BPF_LINK_CREATE` flag for `BPF_XDP`: in the driver.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

// The kernel reads `insn_cnt` × 8 bytes of instructions.
const _: () = assert!(std::mem::size_of::<BpfInsn>() == 8);

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
///
/// Every caller below fills `attr` so that each pointer in it (instructions, license, log
/// buffer, key, value, frame) refers to memory borrowed for the whole call, with the length
/// beside it, and each descriptor in it is borrowed too.
fn sys_bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialised `union bpf_attr` of the size passed (zeroed
    // first, then one member set), exclusively borrowed for the call; the pointers inside it
    // are valid as the callers guarantee (see above).
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
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    owned_fd(fd)
}

/// A descriptor as the `u32` of `bpf_attr`.
fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are non-negative.
    fd.as_raw_fd().unsigned_abs()
}

/// `len` as a `u32` size or count (`E2BIG` beyond).
fn len_u32(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))
}

/// A map to create.
#[derive(Copy, Clone, Debug)]
pub struct MapDef {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Bytes of a key.
    pub key_size: u32,
    /// Bytes of a value.
    pub value_size: u32,
    /// Entries.
    pub max_entries: u32,
    /// Name (at most 15 bytes, NUL-padded).
    pub name: [u8; 16],
}

/// `BPF_MAP_CREATE`.
pub fn map_create(def: &MapDef) -> io::Result<OwnedFd> {
    let mut attr = BpfAttr::zeroed();
    attr.map_create = MapCreateAttr {
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: def.name,
    };
    sys_bpf_fd(BPF_MAP_CREATE, &mut attr)
}

/// `BPF_MAP_UPDATE_ELEM` (`BPF_ANY`) of a map with `u32` keys and values (an XSKMAP: the
/// value is a socket's descriptor number).
pub fn map_update_u32(map: BorrowedFd<'_>, key: u32, value: u32) -> io::Result<()> {
    let mut attr = BpfAttr::zeroed();
    attr.map_elem = MapElemAttr {
        map_fd: fd_u32(map),
        _pad: 0,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        flags: 0, // BPF_ANY
    };
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

/// `BPF_MAP_DELETE_ELEM` of a map with `u32` keys.
pub fn map_delete_u32(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    let mut attr = BpfAttr::zeroed();
    attr.map_elem = MapElemAttr {
        map_fd: fd_u32(map),
        _pad: 0,
        key: &key as *const u32 as u64,
        value: 0,
        flags: 0,
    };
    sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr).map(drop)
}

/// A program to load.
#[derive(Copy, Clone, Debug)]
pub struct ProgDef<'a> {
    /// `BPF_PROG_TYPE_*`.
    pub prog_type: u32,
    /// `enum bpf_attach_type` the program is meant for.
    pub expected_attach_type: u32,
    /// `BPF_F_*` load flags.
    pub flags: u32,
    /// The instructions.
    pub insns: &'a [BpfInsn],
    /// The license string.
    pub license: &'a CStr,
    /// Name (at most 15 bytes, NUL-padded).
    pub name: [u8; 16],
}

/// `BPF_PROG_LOAD`; with `log`, the verifier writes its log there (level 1), NUL-terminated.
pub fn prog_load(def: &ProgDef<'_>, log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let (log_level, log_size, log_buf) = match log {
        // A log longer than 4 GiB is passed as its first 4 GiB.
        Some(buf) if !buf.is_empty() => (
            1,
            u32::try_from(buf.len()).unwrap_or(u32::MAX),
            buf.as_mut_ptr() as u64,
        ),
        _ => (0, 0, 0),
    };
    let mut attr = BpfAttr::zeroed();
    attr.prog_load = ProgLoadAttr {
        prog_type: def.prog_type,
        insn_cnt: len_u32(def.insns.len())?,
        insns: def.insns.as_ptr() as u64,
        license: def.license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: def.flags,
        prog_name: def.name,
        prog_ifindex: 0,
        expected_attach_type: def.expected_attach_type,
    };
    sys_bpf_fd(BPF_PROG_LOAD, &mut attr)
}

/// `BPF_LINK_CREATE`: attaches `prog` to `target_ifindex` as `attach_type`, with `flags`.
/// The link holds the attachment until its last descriptor closes.
pub fn link_create(
    prog: BorrowedFd<'_>,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = BpfAttr::zeroed();
    attr.link_create = LinkCreateAttr {
        prog_fd: fd_u32(prog),
        target_ifindex,
        attach_type,
        flags,
    };
    sys_bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// `BPF_PROG_TEST_RUN` of `prog` over `repeat` copies of `frame`, with `flags`, `batch` frames
/// at a time (0: the kernel's default). No output is asked for.
pub fn prog_test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    repeat: u32,
    flags: u32,
    batch: u32,
) -> io::Result<()> {
    let mut attr = BpfAttr::zeroed();
    attr.test_run = TestRunAttr {
        prog_fd: fd_u32(prog),
        retval: 0,
        data_size_in: len_u32(frame.len())?,
        data_size_out: 0,
        data_in: frame.as_ptr() as u64,
        data_out: 0,
        repeat,
        duration: 0,
        ctx_size_in: 0,
        ctx_size_out: 0,
        ctx_in: 0,
        ctx_out: 0,
        flags,
        cpu: 0,
        batch_size: batch,
    };
    sys_bpf(BPF_PROG_TEST_RUN, &mut attr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn attr_layout_matches_the_kernel() {
        assert_eq!(size_of::<BpfAttr>(), 128);
        // Offsets from include/uapi/linux/bpf.h.
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(LinkCreateAttr, flags), 12);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(offset_of!(TestRunAttr, flags), 64);
        assert_eq!(offset_of!(TestRunAttr, batch_size), 72);
    }
}
