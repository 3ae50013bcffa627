//! Memory mappings shared with the kernel (an AF_PACKET ring, a UMEM), the page size and
//! `RLIMIT_MEMLOCK`.
//!
//! A [`Mapping`] owns its pages (unmapped on drop) and hands them out only through
//! bounds-checked accessors that borrow it, so no access can fall outside the mapping or
//! outlive it. What the accessors cannot know is *who owns which bytes right now*: the kernel
//! writes the mapping concurrently, and which parts are stable is decided by the ring protocol
//! of each user (a block's status word for AF_PACKET, the RX and fill rings for AF_XDP), kept
//! by the capture code above. The contents are plain bytes and integers with no validity
//! invariant, so a protocol mistake there yields wrong bytes (and every consumer already
//! treats frame bytes as untrusted input), never an invalid value or an access outside the
//! mapping. Words the kernel and user space hand back and forth are read atomically
//! ([`Mapping::atomic_u32`]).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;

use super::Plain;

/// A mapping of `len` bytes, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is memory owned by this value alone (the kernel aside, see the module
// docs); it is only reached through borrows of its owner, so moving the owner to another
// thread is sound. (Not `Sync`: nothing needs to share one across threads.)
unsafe impl Send for Mapping {}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("len", &self.len).finish()
    }
}

impl Mapping {
    fn map(len: usize, flags: libc::c_int, fd: libc::c_int) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a new mapping with no address hint (the kernel picks an unused range, so no
        // existing memory is replaced); the result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mapping { ptr, len })
    }

    /// `len` bytes of anonymous, private, pre-faulted, page-aligned memory (a UMEM).
    pub fn anonymous(len: usize) -> io::Result<Self> {
        Self::map(
            len,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
        )
    }

    /// The first `len` bytes of the memory socket `fd` offers for mapping (a packet socket's
    /// ring, after `PACKET_RX_RING`), shared with the kernel and pre-faulted.
    pub fn shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd())
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mappings have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `at..at + len` when it lies inside the mapping.
    #[inline]
    fn range(&self, at: usize, len: usize) -> Option<usize> {
        let end = at.checked_add(len)?;
        (end <= self.len).then_some(at)
    }

    /// The `len` bytes at offset `at`, when inside the mapping.
    #[inline]
    pub fn bytes(&self, at: usize, len: usize) -> Option<&[u8]> {
        let at = self.range(at, len)?;
        // SAFETY: `at..at + len` lies inside the live mapping, which the returned slice
        // borrows (it cannot outlive `self`). The bytes are plain data; that the kernel leaves
        // them alone meanwhile is the caller's ring protocol (module docs).
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(at), len) })
    }

    /// Copies `data` to offset `at`; false (and nothing written) when it does not fit.
    pub fn write(&mut self, at: usize, data: &[u8]) -> bool {
        let Some(at) = self.range(at, data.len()) else {
            return false;
        };
        // SAFETY: `at..at + data.len()` lies inside the live mapping, which `&mut self`
        // borrows exclusively; `data` is a separate borrow, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(at), data.len());
        }
        true
    }

    /// A copy of the `T` at offset `at` (any alignment), when inside the mapping.
    #[inline]
    pub fn read<T: Plain>(&self, at: usize) -> Option<T> {
        let at = self.range(at, std::mem::size_of::<T>())?;
        // SAFETY: the `size_of::<T>()` bytes at `at` lie inside the live mapping;
        // `read_unaligned` copies them out whatever their alignment, and every bit pattern is
        // a valid `T` (`Plain`).
        Some(unsafe { std::ptr::read_unaligned(self.ptr.as_ptr().add(at).cast::<T>()) })
    }

    /// A `u32` at offset `at` read with a volatile load (a field the kernel wrote before
    /// handing its block over), when inside the mapping and aligned.
    #[inline]
    pub fn read_volatile_u32(&self, at: usize) -> Option<u32> {
        let at = self.range(at, 4)?;
        let p = self.ptr.as_ptr().wrapping_add(at).cast::<u32>();
        if !p.is_aligned() {
            return None;
        }
        // SAFETY: the 4 bytes at `at` lie inside the live mapping and are aligned for u32.
        Some(unsafe { std::ptr::read_volatile(p) })
    }

    /// The `u32` at offset `at` as an atomic (a status word shared with the kernel), when
    /// inside the mapping and aligned.
    #[inline]
    pub fn atomic_u32(&self, at: usize) -> Option<&AtomicU32> {
        let at = self.range(at, 4)?;
        let p = self.ptr.as_ptr().wrapping_add(at).cast::<u32>();
        if !p.is_aligned() {
            return None;
        }
        // SAFETY: the 4 bytes at `at` lie inside the live mapping, aligned for `AtomicU32`
        // (same size and, checked here, alignment); the returned reference borrows `self`, so
        // it cannot outlive the mapping. The kernel's side of the word is atomic too.
        Some(unsafe { AtomicU32::from_ptr(p) })
    }

    /// Hints the CPU to fetch the two cache lines at offset `at` (nothing outside the
    /// mapping).
    #[inline]
    pub fn prefetch(&self, at: usize) {
        if at >= self.len {
            return;
        }
        let p = self.ptr.as_ptr().wrapping_add(at);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `prefetcht0` is a hint: it never faults and has no effect the program can
        // observe; SSE is part of the x86_64 baseline.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// The whole mapping as a raw slice pointer (what `xdpilone::Umem::new` takes).
    pub(crate) fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped once here; every
        // borrow handed out has ended (they borrow `self`). For a UMEM or a ring, the kernel
        // keeps its own reference to the pages while a socket still uses them.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The page size (4096 when the kernel does not say).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// The soft and hard `RLIMIT_MEMLOCK`.
fn memlock() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

fn set_memlock(lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads the valid `lim`.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft `RLIMIT_MEMLOCK` so that `needed` more bytes can be locked, when it is not
/// unlimited: beyond the hard limit when allowed (`CAP_SYS_RESOURCE`), else up to it. Returns
/// the soft limit now in force (`u64::MAX`: unlimited; 0: unknown).
pub fn raise_memlock(needed: u64) -> u64 {
    let Ok(lim) = memlock() else {
        return 0;
    };
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    let want = lim.rlim_cur.saturating_add(needed);
    let new = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    if set_memlock(&new).is_ok() {
        return want;
    }
    // Without CAP_SYS_RESOURCE: up to the hard limit.
    let capped = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    if set_memlock(&capped).is_ok() {
        capped.rlim_cur
    } else {
        lim.rlim_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn accessors_stay_inside_the_mapping() {
        let page = page_size() as usize;
        let mut m = Mapping::anonymous(page).expect("mmap");
        assert_eq!(m.len(), page);
        assert!(m.write(8, &[1, 2, 3, 4]));
        assert!(!m.write(page - 2, &[1, 2, 3]));
        assert!(!m.write(usize::MAX, &[1]));
        assert_eq!(m.bytes(8, 4), Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(m.bytes(page - 1, 2), None);
        assert_eq!(m.bytes(usize::MAX, 2), None);
        assert_eq!(m.read::<u32>(8), Some(u32::from_ne_bytes([1, 2, 3, 4])));
        assert_eq!(m.read::<u16>(9), Some(u16::from_ne_bytes([2, 3])));
        assert_eq!(m.read::<u32>(page - 3), None);
        assert_eq!(
            m.read_volatile_u32(8),
            Some(u32::from_ne_bytes([1, 2, 3, 4]))
        );
        assert_eq!(m.read_volatile_u32(9), None, "unaligned");
        let w = m.atomic_u32(8).expect("aligned");
        w.store(7, Ordering::Release);
        assert_eq!(m.read::<u32>(8), Some(7));
        assert!(m.atomic_u32(10).is_none());
        assert!(m.atomic_u32(page).is_none());
        m.prefetch(0);
        m.prefetch(usize::MAX);
        assert!(Mapping::anonymous(0).is_err());
    }

    #[test]
    fn memlock_is_never_lowered() {
        let before = memlock().expect("getrlimit").rlim_cur;
        let now = raise_memlock(0);
        assert!(now >= before || now == u64::MAX, "{now} < {before}");
    }
}
