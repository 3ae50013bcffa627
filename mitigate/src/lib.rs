//! # surgewatch-mitigate
//!
//! The mitigation policy: a pure state machine, in the style of quinn-proto, that turns
//! incident events ([`surgewatch_detect::IncidentEvent`]) into rule actions — announce,
//! refresh, withdraw or refuse a FlowSpec, RTBH or scrubbing [`Rule`] — and learns the
//! outcome of each executed action. It never executes anything: the caller owns the
//! speakers, the sockets and the clock.
//!
//! ## Contract
//! - **Pure, sans-IO, deterministic**: no threads, clocks, environment, I/O or randomness;
//!   time arrives as `now_ns` (capture or wall-clock nanoseconds, the caller decides, but
//!   non-decreasing). Every map is ordered, so the same calls give the same actions, in
//!   the same order, with the same ids.
//! - **No panic on any input**; every refusal is an [`Action`] with [`Op::Refused`] and a
//!   count in [`Stats`].
//! - **Bounded**: at most [`PolicyConfig::max_rules`] rules are in force (announced and not
//!   withdrawn), at most [`PolicyConfig::max_rules_per_target`] per target; state is kept
//!   per open incident and per rule, both bounded by those limits and by the detector's.
//!
//! ## Driving a [`Policy`]
//! 1. Feed every incident event as the detector emits it: [`Policy::handle_event`].
//! 2. Drain [`Policy::poll_action`] until `None`; execute each action (or, in
//!    [`Mode::DryRun`], only record it) and report its result with
//!    [`Policy::handle_outcome`] (optional in dry-run, where an unreported action counts as
//!    done; in enforce mode a withdrawn rule is remembered until its outcome comes, or for
//!    [`RetryConfig::max_ns`], so that a failed withdraw can be retried).
//! 3. Ask [`Policy::poll_timeout`] for the next deadline (one at or before the clock is
//!    due at once); when the clock reaches it call [`Policy::handle_timeout`], then drain
//!    actions again (step 2).
//! 4. On a clean stop call [`Policy::shutdown`], then keep draining actions and serving
//!    timeouts until [`Policy::is_idle`] (withdrawals respect the coalescing window).
//!
//! Every `handle_*` call may queue actions; none emits anything by itself.
//!
//! ## The ladder
//! Each group has a ladder of [`Level`]s (the global [`PolicyConfig::defaults`] unless the
//! group has its own, [`PolicyConfig::groups`]); the defaults ([`Ladder::default`]) are
//! 1: FlowSpec rate-limit above 100 Mbit/s, 2: FlowSpec discard above 500 Mbit/s,
//! 3: RTBH above 2 Gbit/s, 4: scrubbing hand-off above 5 Gbit/s. A level is *crossed* when
//! the incident's current rate (the event's `bps`/`pps`, its last tick) is above the level's
//! `at_bps` or its `at_pps` (either). The policy escalates at once to the highest level
//! crossed; it de-escalates only after the rate stayed below the current level for the
//! ladder's `hold_down`, then to the highest level crossed during that hold-down. An `end`
//! event withdraws the incident's rules `hold_down` later. Only the current level's rules
//! are in force: FlowSpec rules at levels of FlowSpec actions, one RTBH route at an RTBH
//! level, one scrubbing hand-off at a scrubbing level; a change of level announces the new
//! rules before it withdraws the old ones.
//!
//! ## Rules from the fingerprint
//! See [`rules_for`]: one FlowSpec rule per attack vector (bounded per target), each as
//! narrow as the event lets it be: destination /32 or /128 always, protocol, the reflector
//! source port of an amplification vector, TCP flags of SYN/SYN-ACK/ACK/RST floods, the
//! destination ports when few carry the attack, a packet-length range from the length
//! distribution, the fragment flag of a fragment flood. The rate-limit value is
//! `rate_limit_multiple ×` the target's normal rate — the events carry no baseline, so the
//! incident's threshold ([`surgewatch_detect::IncidentEvent::threshold`]) stands for it —
//! and at least `rate_limit_floor_bps`.
//!
//! ## Safety rails
//! - A target outside [`PolicyConfig::monitored`], inside [`PolicyConfig::never`], or a
//!   network incident (`prefix_len` set: many addresses, no single host to protect) gets
//!   one [`Op::Refused`] action per incident and no rule.
//! - The caps: a rule beyond [`PolicyConfig::max_rules_per_target`] for its target, or one
//!   that would exceed [`PolicyConfig::max_rules`] in force, is refused (once while it stays
//!   wanted); a globally refused rule is announced later if room frees while it is still
//!   wanted. Rules in force include those being withdrawn (a rule whose withdraw failed is
//!   still on the routers); withdrawals that free room go out before the announces that
//!   need it, otherwise a level's new rules go out before its old ones leave.
//! - **TTL**: every rule carries `expires_ns` (announce or refresh time + [`PolicyConfig::ttl_ns`]).
//!   A rule is refreshed half a TTL after it was last announced or refreshed, when an event
//!   of its incident arrived since. An incident with no event for a whole TTL (stuck open:
//!   the detector stopped reporting it) is dropped and its rules withdrawn
//!   ([`WithdrawReason::Expired`]), so nothing outlives its evidence by more than a TTL.
//! - **Coalescing**: a rule (identified by its destination, kind and match fields) never
//!   gets two changes within [`PolicyConfig::coalesce_ns`] (100 ms): a later change is held
//!   until the window has passed and then only the net change is emitted (none at all when
//!   it came back to what is in force). ExaBGP 4.2 reorders same-rule changes that arrive
//!   together.
//! - [`Policy::shutdown`] withdraws everything and ignores later events.
//! - The [`Mode`] (dry-run by default) is carried in every action.
//!
//! ## Outcomes
//! An [`Outcome::Error`] of an announce, refresh or withdraw is retried with exponential
//! backoff ([`RetryConfig`]: 1 s, 2 s, 4 s … up to 60 s, at most 5 attempts); the retry
//! sends the rule's *net* state at that time (a rule no longer wanted is not re-announced).
//! After the last attempt the failure is counted ([`Stats::failed`]) and the rule is left
//! alone until what is wanted of it changes. During shutdown errors are not retried.

#![forbid(unsafe_code)]
// Any input, no panic (STYLE.md, rule 7), like `pipeline`.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]
#![warn(missing_docs)]

mod config;
mod policy;
mod rule;

pub use config::{Ladder, Level, LevelAction, Mode, PolicyConfig, RetryConfig};
pub use policy::{Action, ActionId, Op, Outcome, Policy, RefuseReason, Stats, WithdrawReason};
pub use rule::{
    rules_for, Community, Kind, Rule, TcpFlags, Then, BLACKHOLE, MAX_DESTINATION_PORTS,
    MAX_SOURCE_PORTS,
};

#[cfg(test)]
mod tests;
