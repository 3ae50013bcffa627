//! Fuzzes the baselines file decoder, `surgewatch_detect::baseline::decode_baselines`, with the
//! default policy. Beyond "never panics": what decodes re-encodes to a file that decodes to the
//! same baselines (the decoder accepts only what the encoder could have written).
//!
//! Seed the corpus from saved baselines files (`sensor/tests/golden/out/*.baselines`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use surgewatch_detect::baseline::{decode_baselines, encode_baselines, BaselinePolicy};

fuzz_target!(|data: &[u8]| {
    let policy = BaselinePolicy::default();
    let Ok(file) = decode_baselines(data, &policy) else {
        return;
    };
    let again = encode_baselines(
        file.entries.iter().map(|(a, b)| (*a, b)),
        &policy,
        file.now_tick,
    );
    // What was left out (entries of another sketch shape) is not written again.
    let back = decode_baselines(&again, &policy).ok();
    assert_eq!(
        back.map(|b| (b.now_tick, b.entries, b.dropped)),
        Some((file.now_tick, file.entries, 0))
    );
});
