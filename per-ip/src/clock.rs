//! Tick boundaries from packet timestamps (pure: time only arrives as arguments).

use std::num::NonZeroU64;
use std::time::Duration;

use crate::counters::PacketsBytes;

/// A tick length: non-zero, whole nanoseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TickLength(NonZeroU64);

impl TickLength {
    /// From nanoseconds; `None` for zero.
    pub fn from_nanos(ns: u64) -> Option<Self> {
        NonZeroU64::new(ns).map(TickLength)
    }

    /// From a duration; `None` for zero or more than `u64::MAX` ns (584 years).
    pub fn from_duration(d: Duration) -> Option<Self> {
        u64::try_from(d.as_nanos()).ok().and_then(Self::from_nanos)
    }

    /// Nanoseconds.
    #[inline]
    pub fn as_nanos(self) -> u64 {
        self.0.get()
    }

    /// As a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.as_nanos())
    }

    /// Start of the tick containing `ts_ns` (ticks are aligned to multiples of the length
    /// since the epoch).
    #[inline]
    pub fn align(self, ts_ns: u64) -> u64 {
        ts_ns - ts_ns % self.0
    }
}

/// What the caller must do with a frame's timestamp, from [`TickClock::observe`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TickAdvance {
    /// The frame belongs to the current tick (including late frames).
    Current,
    /// The very first frame: the tick starting at `start_ns` is now open.
    Opened {
        /// Start of the newly opened tick.
        start_ns: u64,
    },
    /// Close the tick that started at `closed_start_ns` first; the frame then belongs to the
    /// tick starting at `start_ns`. `skipped` empty ticks lay in between (idle time).
    Advanced {
        /// Start of the tick to close.
        closed_start_ns: u64,
        /// Start of the new current tick.
        start_ns: u64,
        /// Number of whole empty ticks between the two.
        skipped: u64,
    },
}

/// Decides tick boundaries from packet timestamps. Time never goes backwards: a frame older than
/// the current tick's start is counted in the current tick (and in [`TickClock::late_frames`]).
#[derive(Clone, Debug)]
pub struct TickClock {
    len: TickLength,
    current: Option<u64>,
    late_frames: u64,
}

impl TickClock {
    /// A clock with no tick open yet.
    pub fn new(len: TickLength) -> Self {
        TickClock {
            len,
            current: None,
            late_frames: 0,
        }
    }

    /// The tick length.
    pub fn tick_length(&self) -> TickLength {
        self.len
    }

    /// Start of the current tick, if one is open.
    pub fn current_start_ns(&self) -> Option<u64> {
        self.current
    }

    /// Frames that arrived with a timestamp before the current tick's start.
    pub fn late_frames(&self) -> u64 {
        self.late_frames
    }

    /// Places a frame with timestamp `ts_ns` (ns since the epoch).
    pub fn observe(&mut self, ts_ns: u64) -> TickAdvance {
        let Some(cur) = self.current else {
            let start_ns = self.len.align(ts_ns);
            self.current = Some(start_ns);
            return TickAdvance::Opened { start_ns };
        };
        if ts_ns < cur {
            self.late_frames += 1;
            return TickAdvance::Current;
        }
        self.advance(cur, ts_ns)
    }

    /// Moves time to `now_ns` without a frame (a live sensor's idle timer): closes the current
    /// tick if `now_ns` is past its end. Never opens a tick and never counts a late frame.
    pub fn poll(&mut self, now_ns: u64) -> TickAdvance {
        match self.current {
            Some(cur) if now_ns >= cur => self.advance(cur, now_ns),
            _ => TickAdvance::Current,
        }
    }

    /// Ends the clock (end of a capture): returns the start of the open tick, to be closed.
    pub fn finish(&mut self) -> Option<u64> {
        self.current.take()
    }

    fn advance(&mut self, cur: u64, ts_ns: u64) -> TickAdvance {
        let start_ns = self.len.align(ts_ns);
        if start_ns == cur {
            return TickAdvance::Current;
        }
        self.current = Some(start_ns);
        TickAdvance::Advanced {
            closed_start_ns: cur,
            start_ns,
            skipped: (start_ns - cur) / self.len.as_nanos() - 1,
        }
    }
}

/// Counts per second over one tick: a multiplier when the tick divides a second (1 s: the
/// identity), else an exact 128-bit division.
#[derive(Copy, Clone, Debug)]
pub struct PerSec {
    tick_ns: u64,
    mul: Option<u64>,
}

impl PerSec {
    /// Rates over `tick_ns` nanoseconds (0 counts as 1).
    pub fn new(tick_ns: u64) -> Self {
        let tick_ns = tick_ns.max(1);
        PerSec {
            tick_ns,
            mul: (1_000_000_000 % tick_ns == 0).then_some(1_000_000_000 / tick_ns),
        }
    }

    /// `n` per `tick_ns`, as a count per second (rounded down, saturating).
    #[inline]
    pub fn of(self, n: u64) -> u64 {
        match self.mul {
            Some(1) => n,
            Some(m) => n.saturating_mul(m),
            None => u64::try_from(u128::from(n) * 1_000_000_000 / u128::from(self.tick_ns))
                .unwrap_or(u64::MAX),
        }
    }

    /// Packets per second and bits per second of a count.
    #[inline]
    pub fn rates(self, c: PacketsBytes) -> (u64, u64) {
        (self.of(c.packets), self.of(c.bytes.saturating_mul(8)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn clock() -> TickClock {
        TickClock::new(TickLength::from_duration(Duration::from_secs(1)).unwrap())
    }

    #[test]
    fn tick_length_validation() {
        assert_eq!(TickLength::from_nanos(0), None);
        assert_eq!(TickLength::from_duration(Duration::ZERO), None);
        assert_eq!(
            TickLength::from_duration(Duration::from_secs(u64::MAX)),
            None
        );
        assert_eq!(
            TickLength::from_duration(Duration::from_millis(100))
                .unwrap()
                .as_nanos(),
            S / 10
        );
    }

    #[test]
    fn first_packet_opens_an_aligned_tick() {
        let mut c = clock();
        assert_eq!(c.current_start_ns(), None);
        assert_eq!(
            c.observe(5 * S + 123),
            TickAdvance::Opened { start_ns: 5 * S }
        );
        assert_eq!(c.current_start_ns(), Some(5 * S));
        assert_eq!(c.observe(5 * S + S - 1), TickAdvance::Current);
    }

    #[test]
    fn first_packet_at_zero_and_on_boundary() {
        let mut c = clock();
        assert_eq!(c.observe(0), TickAdvance::Opened { start_ns: 0 });
        assert_eq!(
            c.observe(S),
            TickAdvance::Advanced {
                closed_start_ns: 0,
                start_ns: S,
                skipped: 0
            }
        );
    }

    #[test]
    fn late_frames_stay_in_current_tick() {
        let mut c = clock();
        c.observe(10 * S);
        assert_eq!(c.observe(9 * S + 5), TickAdvance::Current);
        assert_eq!(c.observe(0), TickAdvance::Current);
        assert_eq!(c.late_frames(), 2);
        assert_eq!(c.current_start_ns(), Some(10 * S));
        // Within the tick but earlier than a previous frame is not late.
        c.observe(10 * S + 500);
        assert_eq!(c.observe(10 * S + 1), TickAdvance::Current);
        assert_eq!(c.late_frames(), 2);
    }

    #[test]
    fn gaps_report_skipped_empty_ticks() {
        let mut c = clock();
        c.observe(3 * S);
        assert_eq!(
            c.observe(7 * S + 42),
            TickAdvance::Advanced {
                closed_start_ns: 3 * S,
                start_ns: 7 * S,
                skipped: 3
            }
        );
        assert_eq!(
            c.observe(8 * S),
            TickAdvance::Advanced {
                closed_start_ns: 7 * S,
                start_ns: 8 * S,
                skipped: 0
            }
        );
    }

    #[test]
    fn non_second_alignment() {
        let mut c = TickClock::new(TickLength::from_nanos(300).unwrap());
        assert_eq!(c.observe(1000), TickAdvance::Opened { start_ns: 900 });
        assert_eq!(c.observe(1199), TickAdvance::Current);
        assert_eq!(
            c.observe(1200),
            TickAdvance::Advanced {
                closed_start_ns: 900,
                start_ns: 1200,
                skipped: 0
            }
        );
    }

    #[test]
    fn poll_and_finish() {
        let mut c = clock();
        assert_eq!(c.poll(5 * S), TickAdvance::Current);
        assert_eq!(c.current_start_ns(), None);
        c.observe(5 * S);
        assert_eq!(c.poll(4 * S), TickAdvance::Current);
        assert_eq!(c.late_frames(), 0);
        assert_eq!(
            c.poll(6 * S + 1),
            TickAdvance::Advanced {
                closed_start_ns: 5 * S,
                start_ns: 6 * S,
                skipped: 0
            }
        );
        assert_eq!(c.finish(), Some(6 * S));
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn extreme_timestamps() {
        let mut c = clock();
        c.observe(u64::MAX);
        assert_eq!(c.observe(u64::MAX), TickAdvance::Current);
        let mut c = clock();
        c.observe(0);
        let last = u64::MAX - u64::MAX % S;
        assert_eq!(
            c.observe(u64::MAX),
            TickAdvance::Advanced {
                closed_start_ns: 0,
                start_ns: last,
                skipped: last / S - 1
            }
        );
    }
}
