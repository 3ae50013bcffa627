//! A replay asked to stop (SIGINT, SIGTERM or SIGQUIT set [`ReplayConfig::stop`]) stops
//! reading after the current poll and still finishes: the outcome holds what was read, with
//! its last tick closed, so the command can end incidents, save baselines and summarise.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use surgewatch_per_ip::{ClosedTick, GroupId, Monitor, NextTick, PrefixTable, TickLength};
use surgewatch_sensor::replay::{open_all, replay, ReplayConfig};
use surgewatch_sensor::tick::{TickInfo, TickObserver};

struct Ticks(u64);

impl TickObserver for Ticks {
    fn on_tick(&mut self, _tick: &ClosedTick<'_>, _info: &TickInfo<'_>) -> NextTick {
        self.0 += 1;
        NextTick::default()
    }
}

fn run(stop: Option<&'static AtomicBool>, workers: usize) -> (u64, bool, u64) {
    let file = surgewatch_pcaps::captures_dir().join("udp_flood.pcap");
    let monitor: Vec<_> = surgewatch_pcaps::expected::MONITOR
        .iter()
        .map(|m| (m.parse().expect("cidr"), GroupId(0)))
        .collect();
    let cfg = ReplayConfig {
        files: vec![file.clone()],
        monitor: Arc::new(Monitor::prefixes(PrefixTable::new(monitor).expect("table"))),
        tick: TickLength::from_nanos(1_000_000_000).expect("tick"),
        workers,
        parse: Default::default(),
        stop,
    };
    let mut obs = Ticks(0);
    let out = replay(&cfg, open_all(&[file]).expect("open"), &mut obs);
    assert!(out.errors.is_empty());
    (out.accounting.report(10).totals.packets, out.stopped, obs.0)
}

#[test]
fn a_stopped_replay_ends_early_with_what_it_read_and_its_last_tick_closed() {
    static ASKED: AtomicBool = AtomicBool::new(true);
    static NOT_ASKED: AtomicBool = AtomicBool::new(false);
    for workers in [1, 2] {
        let (all, stopped, _) = run(Some(&NOT_ASKED), workers);
        assert!(!stopped);
        assert_eq!(run(None, workers).0, all);
        let (read, stopped, ticks) = run(Some(&ASKED), workers);
        assert!(stopped, "workers {workers}");
        assert!(read > 0 && read < all, "workers {workers}: {read} of {all}");
        assert!(ticks >= 1, "the last tick is closed");
    }
}
