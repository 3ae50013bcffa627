//! The XDP program that steers an interface's frames into AF_XDP sockets, assembled by hand:
//! no C compiler, no ELF loader, no libbpf.
//!
//! This module is pure: it assembles instructions and makes no system call, so everything in
//! it is tested without a kernel. Loading and attaching are [`super::xdp_load`]'s (which
//! defines [`XdpProgram`], re-exported here), over the raw `bpf(2)` calls of
//! [`crate::sys::bpf`].
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
//! The loader creates the `XSKMAP` (key and value `u32`, one entry per queue), loads the
//! program as `BPF_PROG_TYPE_XDP` and attaches it through a **bpf_link**, which the kernel
//! detaches when its last descriptor closes, so nothing is left behind on the interface even
//! after `kill -9`.

use std::ffi::CStr;
use std::os::fd::RawFd;

pub use super::xdp_load::XdpProgram;

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

// ---- Kernel ABI constants of the program (include/uapi/linux/bpf.h) ----

const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `BPF_FUNC_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;

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
pub const LICENSE: &CStr = c"Dual MIT/GPL";

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

/// A kernel object name (at most 15 bytes, NUL-padded).
pub fn obj_name(s: &[u8]) -> [u8; 16] {
    let mut name = [0u8; 16];
    for (d, &b) in name.iter_mut().zip(s.iter().take(15)) {
        *d = b;
    }
    name
}

/// Name of the steering program.
pub const PROGRAM_NAME: &[u8] = b"sw_xsk_redirect";
/// Name of its XSKMAP.
pub const MAP_NAME: &[u8] = b"sw_xskmap";

#[cfg(test)]
mod tests {
    use super::*;

    /// An instruction as the kernel reads it (little-endian host).
    fn encode(i: &BpfInsn) -> [u8; 8] {
        let [o0, o1] = i.off.to_le_bytes();
        let [m0, m1, m2, m3] = i.imm.to_le_bytes();
        [i.code, i.regs, o0, o1, m0, m1, m2, m3]
    }

    #[test]
    fn program_encoding() {
        for (fallback, action) in [(XdpFallback::Pass, 2), (XdpFallback::Drop, 1)] {
            let bytes: Vec<[u8; 8]> = program(7, fallback).iter().map(encode).collect();
            assert_eq!(
                bytes,
                vec![
                    [0x61, 0x12, 16, 0, 0, 0, 0, 0],
                    [0x18, 0x11, 0, 0, 7, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 0, 0],
                    [0xb7, 0x03, 0, 0, action, 0, 0, 0],
                    [0x85, 0x00, 0, 0, 51, 0, 0, 0],
                    [0x95, 0x00, 0, 0, 0, 0, 0, 0],
                ],
                "{fallback:?}"
            );
        }
        // The map descriptor lands in the immediate whatever its value.
        assert_eq!(program(0x1234_5678, XdpFallback::Pass)[1].imm, 0x1234_5678);
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
    }

    #[test]
    fn registers_pack_destination_low_and_source_high() {
        let i = BpfInsn::new(BPF_LDX_MEM_W, 2, 1, -4, 0);
        assert_eq!(i.regs, 0x12);
        assert_eq!(encode(&i)[2..4], [0xfc, 0xff]);
        assert_eq!(BpfInsn::new(0, 10, 0, 0, 0).regs, 0x0a);
    }

    #[test]
    fn fallback_actions_are_the_kernels_numbers() {
        assert_eq!(XdpFallback::default(), XdpFallback::Pass);
        assert_eq!(XdpFallback::Pass.action(), 2); // XDP_PASS
        assert_eq!(XdpFallback::Drop.action(), 1); // XDP_DROP
        assert_eq!(XdpAttachMode::Driver.as_str(), "driver");
        assert_eq!(XdpAttachMode::Skb.as_str(), "skb");
    }

    #[test]
    fn object_names_are_truncated_and_nul_padded() {
        assert_eq!(&obj_name(b"abc")[..4], b"abc\0");
        let long = obj_name(b"a-name-longer-than-fifteen");
        assert_eq!(&long[..15], b"a-name-longer-t");
        assert_eq!(long[15], 0);
        assert!(obj_name(PROGRAM_NAME).ends_with(&[0]));
        assert_eq!(LICENSE.to_bytes(), b"Dual MIT/GPL");
    }

    /// What a register holds in [`run`].
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    enum Val {
        Unset,
        Ctx,
        Map(i32),
        Scalar(u64),
    }

    /// Runs `prog` the way the kernel would for a frame of queue `rx_queue`, with the helper
    /// `bpf_redirect_map` modelled (`XDP_REDIRECT` when the queue has a socket, else the low
    /// two bits of the flags); returns the XDP action. Panics on anything else: the program
    /// must use nothing but what is modelled here.
    fn run(prog: &[BpfInsn], map_fd: i32, rx_queue: u32, bound: &[u32]) -> u64 {
        const XDP_REDIRECT: u64 = 4;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex (u32 each).
        let ctx = [0x1000, 0x1040, 0x1000, 3, rx_queue, 0];
        let mut r = [Val::Unset; 11];
        r[1] = Val::Ctx;
        let mut pc = 0;
        loop {
            let i = prog[pc];
            let (dst, src) = (usize::from(i.regs & 0x0f), usize::from(i.regs >> 4));
            match i.code {
                BPF_LDX_MEM_W => {
                    assert_eq!(r[src], Val::Ctx, "load from the context only");
                    let off = usize::try_from(i.off).expect("offset");
                    assert_eq!(off % 4, 0);
                    r[dst] = Val::Scalar(u64::from(ctx[off / 4]));
                }
                BPF_LD_IMM_DW => {
                    assert_eq!(src, usize::from(BPF_PSEUDO_MAP_FD));
                    assert_eq!(prog[pc + 1], BpfInsn::new(0, 0, 0, 0, 0), "second slot");
                    r[dst] = Val::Map(i.imm);
                    pc += 1;
                }
                BPF_ALU64_MOV_K => r[dst] = Val::Scalar(i64::from(i.imm) as u64),
                BPF_JMP_CALL => {
                    assert_eq!(i.imm, BPF_FUNC_REDIRECT_MAP);
                    assert_eq!(r[1], Val::Map(map_fd));
                    let (Val::Scalar(key), Val::Scalar(flags)) = (r[2], r[3]) else {
                        panic!("helper arguments {:?}", &r[1..4]);
                    };
                    let found = bound.iter().any(|&q| u64::from(q) == key);
                    r[0] = Val::Scalar(if found { XDP_REDIRECT } else { flags & 3 });
                    // Caller-saved registers are clobbered by a call.
                    r[1..6].fill(Val::Unset);
                }
                BPF_JMP_EXIT => {
                    let Val::Scalar(action) = r[0] else {
                        panic!("r0 not set at exit: {:?}", r[0]);
                    };
                    return action;
                }
                code => panic!("unexpected opcode {code:#x} at {pc}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn frames_of_bound_queues_are_redirected_the_others_get_the_fallback() {
        for fallback in [XdpFallback::Pass, XdpFallback::Drop] {
            let prog = program(9, fallback);
            let other = fallback.action() as u64;
            assert_eq!(run(&prog, 9, 0, &[0, 1]), 4, "{fallback:?}");
            assert_eq!(run(&prog, 9, 1, &[0, 1]), 4, "{fallback:?}");
            assert_eq!(run(&prog, 9, 2, &[0, 1]), other, "{fallback:?}");
            assert_eq!(run(&prog, 9, 0, &[]), other, "{fallback:?}");
        }
    }
}
