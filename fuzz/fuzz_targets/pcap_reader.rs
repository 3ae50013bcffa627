//! Fuzzes the pcap/pcapng reader, `surgewatch_sensor::capture::pcap::PcapFileSource`: the first
//! byte picks the read buffer size (64 B to 8 KiB, so records straddle refills) and the poll
//! budget, the rest is the capture file. Beyond "never panics", it checks what the reader
//! promises of every frame it lends and that it stops: no frame after the end or an error, and
//! the read buffer never beyond its bound.
//!
//! Seed the corpus from `pcaps/captures/` (each file prefixed with one selector byte).

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use surgewatch_sensor::capture::pcap::{
    PcapFileSource, MAX_BUFFER_BYTES, MAX_CAPLEN, MAX_WIRE_LEN,
};
use surgewatch_sensor::capture::{Capture, Poll};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let buffer = 64usize << (selector % 8);
    let budget = 1 + usize::from(selector >> 3);
    let Ok(mut src) = PcapFileSource::from_reader("fuzz", Cursor::new(file.to_vec()), buffer)
    else {
        return;
    };
    let mut frames = 0usize;
    // Every lent frame consumes a record header of at least 12 bytes, so this many polls
    // always reach the end.
    for _ in 0..=file.len() {
        let polled = src.poll(budget, |f| {
            assert!(f.data.len() <= MAX_CAPLEN as usize);
            assert!(f.wire_len as usize >= f.data.len(), "wire length below captured");
            assert!(f.wire_len <= MAX_WIRE_LEN);
            frames += 1;
        });
        assert!(src.buffer_bytes() <= MAX_BUFFER_BYTES);
        match polled {
            Ok(Poll::Frames(n)) => assert!((1..=budget).contains(&n)),
            Ok(Poll::Idle) => panic!("a file source is never idle"),
            Ok(Poll::End) | Err(_) => break,
        }
    }
    assert!(matches!(
        src.poll(budget, |_| panic!("a frame after the end")),
        Ok(Poll::End)
    ));
    assert!(frames <= file.len() / 12 + 1);
    let (consumed, _) = src.progress();
    assert!(consumed <= file.len() as u64);
});
