//! Incident analysis of one attacked target's inbound traffic: what kind of attack it is
//! ([`classify`]) and who sends it ([`SourceStats`]).
//!
//! Both are pure and deterministic: filled per packet, merged across workers in any order,
//! they give the same results for the same packets however they were spread.

mod classify;
mod sources;

pub use classify::{
    classify, reflector_index, signature_strength, AttackProfile, Classification, Family,
    Reflector, VectorShare, N_REFLECTORS, REFLECTORS, VECTOR_MIN_PERMILLE,
};
pub use sources::{
    LengthStats, SourceStats, SpoofPattern, SpoofVerdict, DEFAULT_SOURCE_CAP, LENGTH_BUCKETS,
    SPOOF_MIN_SOURCES, WATCH_SOURCE_CAP,
};
