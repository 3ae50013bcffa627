//! Iteration over the set bits of a bitmap (the per-tick "touched" sets).

/// Set bits of a bitmap, ascending.
pub(crate) struct BitIter<'a> {
    words: std::slice::Iter<'a, u64>,
    base: usize,
    cur: u64,
}

impl<'a> BitIter<'a> {
    pub(crate) fn new(bits: &'a [u64]) -> Self {
        BitIter {
            words: bits.iter(),
            base: 0,
            cur: 0,
        }
    }
}

impl Iterator for BitIter<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.cur == 0 {
            self.cur = *self.words.next()?;
            self.base += 64;
        }
        let b = self.cur.trailing_zeros() as usize;
        self.cur &= self.cur - 1;
        Some(self.base - 64 + b)
    }
}

/// Calls `f` with the index of every set bit of `bits`, ascending.
#[inline]
pub(crate) fn for_each_bit(bits: &[u64], f: impl FnMut(usize)) {
    BitIter::new(bits).for_each(f);
}
