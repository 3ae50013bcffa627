//! Property tests of the baselines file decoder over mutated files (bit flips, byte edits,
//! length-like u32 writes, truncations): it never panics, a strict prefix of a file is always
//! refused, and whatever it accepts re-encodes to a file that decodes to the same baselines
//! (the decoder accepts only what the encoder could have written). `fuzz/` has the same
//! property as a cargo-fuzz target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::sample::Index;
use surgewatch_detect::baseline::{
    decode_baselines, encode_baselines, BaselinePolicy, IpBaseline, TickSample,
};
use surgewatch_pipeline::TrafficClass;

/// A valid file of a few learned baselines (IPv4 and IPv6, one only idle).
fn valid_file(policy: &BaselinePolicy) -> Vec<u8> {
    let mut set = Vec::new();
    for i in 0..5u32 {
        let mut b = IpBaseline::with_phase(policy, i);
        for t in 0..(40 + 25 * i) {
            let mut s = TickSample::new(1_000_000_000);
            let c = TrafficClass::ALL[(i as usize + t as usize % 3) % TrafficClass::ALL.len()];
            s.add(c, u64::from(t * 13 % 97 + i), u64::from(t * 1500 + i));
            b.observe(policy, &s, t % 7 != 0);
        }
        let addr = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8))
        } else {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16))
        };
        set.push((addr, b));
    }
    let mut idle = IpBaseline::new();
    idle.observe_idle(policy, 5);
    set.push((IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), idle));
    encode_baselines(set.iter().map(|(a, b)| (*a, b)), policy, 4_242)
}

#[derive(Clone, Debug)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Len(Index, u32),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        (
            any::<Index>(),
            prop_oneof![Just(0u32), Just(u32::MAX), Just(1 << 30), any::<u32>()]
        )
            .prop_map(|(i, v)| Edit::Len(i, v)),
    ]
}

/// Decodes `bytes`; if accepted, checks the round trip.
fn check(bytes: &[u8], policy: &BaselinePolicy) -> Result<(), TestCaseError> {
    if let Ok(file) = decode_baselines(bytes, policy) {
        let again = encode_baselines(
            file.entries.iter().map(|(a, b)| (*a, b)),
            policy,
            file.now_tick,
        );
        prop_assert_eq!(decode_baselines(&again, policy).ok(), Some(file));
    }
    Ok(())
}

#[test]
fn the_valid_file_decodes() {
    let policy = BaselinePolicy::default();
    let bytes = valid_file(&policy);
    let file = decode_baselines(&bytes, &policy).expect("valid");
    assert_eq!((file.now_tick, file.entries.len()), (4_242, 6));
    check(&bytes, &policy).expect("round trip");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_files_never_panic_and_accept_only_encodable_content(
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let policy = BaselinePolicy::default();
        let mut bytes = valid_file(&policy);
        let n = bytes.len();
        for e in &edits {
            match *e {
                Edit::Flip(i, b) => bytes[i.index(n)] ^= 1 << b,
                Edit::Set(i, v) => bytes[i.index(n)] = v,
                Edit::Len(i, v) => {
                    let at = i.index(n);
                    for (k, b) in v.to_le_bytes().into_iter().enumerate() {
                        if let Some(x) = bytes.get_mut(at + k) {
                            *x = b;
                        }
                    }
                }
            }
        }
        check(&bytes, &policy)?;
    }

    #[test]
    fn a_truncated_file_is_refused(cut in any::<Index>()) {
        let policy = BaselinePolicy::default();
        let bytes = valid_file(&policy);
        let at = cut.index(bytes.len());
        prop_assert!(decode_baselines(&bytes[..at], &policy).is_err());
    }
}
