//! AF_XDP's memory: the UMEM area, and the two calls where `xdpilone` asks for `unsafe` at
//! its API, wrapped so that the borrow checker keeps their conditions.
//!
//! - `Umem::new` takes a raw pointer to the area and makes the caller responsible for keeping
//!   it mapped: [`UmemArea::register`] borrows the area for as long as the returned
//!   [`RegisteredUmem`] lives.
//! - A ring's `as_raw_fd` is to be "treated as a `BorrowedFd<'_>`": [`rx_fd`] returns exactly
//!   that, borrowed from the ring, which holds the socket open.
//!
//! The rest of AF_XDP (sockets, rings, bind, statistics) is safe `xdpilone` API, used directly
//! by [`crate::capture::afxdp`].

use std::io;
use std::ops::Deref;
use std::os::fd::BorrowedFd;

use xdpilone::{RingRx, Umem, UmemConfig};

use super::mem::Mapping;

/// An anonymous, page-aligned, pre-faulted mapping holding one UMEM (also used by the AF_XDP
/// TX generator of the benches); unmapped on drop.
#[derive(Debug)]
pub struct UmemArea {
    map: Mapping,
}

impl UmemArea {
    /// Maps `len` bytes.
    pub fn new(len: usize) -> io::Result<Self> {
        Ok(UmemArea {
            map: Mapping::anonymous(len)?,
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the area is empty (never: areas have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Copies `data` to offset `at` (before the area is registered as a UMEM: `&mut self`
    /// cannot be had while a [`RegisteredUmem`] borrows it); false (and nothing written) when
    /// it does not fit.
    pub fn write(&mut self, at: usize, data: &[u8]) -> bool {
        self.map.write(at, data)
    }

    /// The `len` bytes at UMEM address `addr`, when inside the area. The chunk holding them
    /// must be one the kernel handed over on the RX ring and that is not yet back on the fill
    /// ring (see [`super::mem`] on who owns which bytes).
    #[inline]
    pub fn get(&self, addr: u64, len: u32) -> Option<&[u8]> {
        self.map
            .bytes(usize::try_from(addr).ok()?, usize::try_from(len).ok()?)
    }

    /// Hints the CPU to fetch the first two cache lines at `addr` (no effect outside the
    /// area).
    #[inline]
    pub fn prefetch(&self, addr: u64) {
        if let Ok(at) = usize::try_from(addr) {
            self.map.prefetch(at);
        }
    }

    /// Registers the area as a UMEM (`XDP_UMEM_REG` on a new AF_XDP socket) with `config`.
    /// The area stays borrowed, so mapped, for as long as the returned UMEM lives; the UMEM
    /// is needed only to create and bind sockets and rings (which do not borrow the area: the
    /// kernel keeps its own reference to the pages).
    pub fn register(&self, config: UmemConfig) -> io::Result<RegisteredUmem<'_>> {
        // `Umem::new` asserts these; report them instead.
        if config.frame_size == 0 || u64::try_from(self.len()).is_err() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: the area is a page-aligned (mmap) mapping of `len` bytes, valid for every
        // chunk of the configuration (the kernel checks the sizes against `len`); it stays
        // mapped while the `Umem` lives because `RegisteredUmem` borrows `self`.
        let umem = unsafe { Umem::new(config, self.map.as_slice_ptr()) }.map_err(os_error)?;
        Ok(RegisteredUmem { umem, _area: self })
    }
}

/// A UMEM registered over a borrowed [`UmemArea`]; dereferences to `xdpilone::Umem`.
pub struct RegisteredUmem<'area> {
    umem: Umem,
    _area: &'area UmemArea,
}

impl Deref for RegisteredUmem<'_> {
    type Target = Umem;

    fn deref(&self) -> &Umem {
        &self.umem
    }
}

/// An `xdpilone` error as an [`io::Error`].
pub fn os_error(e: xdpilone::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.get_raw().abs())
}

/// The AF_XDP socket of an RX ring, borrowed from the ring (which keeps it open).
pub fn rx_fd(rx: &RingRx) -> BorrowedFd<'_> {
    // SAFETY: `RingRx` holds the socket's descriptor open (an `Arc` of it) for as long as it
    // lives, and xdpilone documents `as_raw_fd` as to be treated as a `BorrowedFd<'_>`; the
    // returned borrow is tied to `rx`.
    unsafe { BorrowedFd::borrow_raw(rx.as_raw_fd()) }
}
