//! Memory helpers of the hot paths: a cache prefetch hint and zeroed allocation of large
//! tables. The only `unsafe` of the crate lives here.

/// Hints the CPU to bring the cache line holding `p` into L1. Never faults, has no effect on
/// program semantics, a no-op on other architectures.
#[inline(always)]
#[allow(unsafe_code)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it never faults (not even on an invalid address) and
    // does not read or write memory as far as the program can observe. SSE is part of the
    // x86_64 baseline, so the instruction always exists.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Plain-integer types, for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for types made of integers (and arrays of them), without padding invariants.
#[allow(unsafe_code)]
pub(crate) unsafe trait Zeroed: Copy {}
// SAFETY: arrays of `u64` (e.g. a tick's packed cells).
#[allow(unsafe_code)]
unsafe impl<const N: usize> Zeroed for [u64; N] {}

/// `n` zeroed values from zeroed memory (`calloc`: fresh pages are the kernel's zero pages, not
/// written until used). `vec![zero; n]` does that only for a few std types; this is for the
/// shard's large tables, whose size jumps (index doublings, room for every id).
pub(crate) fn zeroed_vec<T: Zeroed>(n: usize) -> Vec<T> {
    let layout = match std::alloc::Layout::array::<T>(n) {
        Ok(l) if l.size() > 0 => l,
        _ => return Vec::new(),
    };
    // SAFETY: `layout` has a non-zero size, and all-zero bytes are a valid `T` (`Zeroed`).
    // The memory comes from the global allocator with the layout of an array of `n` values of
    // `T`, which is what `Vec::from_raw_parts` requires for a capacity (and length) of `n`; a
    // failed allocation is handled before.
    #[allow(unsafe_code)]
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<T>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(p, n, n)
    }
}
