//! `surgewatch run -i IF` (a mirror port) and `surgewatch agent` (the host's own addresses):
//! live capture until a signal or `--duration`.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use surgewatch_export::diag::{self, Diag};
use surgewatch_export::sink::Delivery;
use surgewatch_export::summary::{LinkJson, QueueJson, RunInfo};
use surgewatch_sensor::live::{self, Follower, QueueStats, WorkerSpec};
use surgewatch_sensor::livesrc::{self, LinkFollower, LinkFollowers, LiveSource};

use super::observer::{LiveObs, Observer};
use crate::agent_addrs::AgentAddrs;
use crate::cli::{AgentArgs, RunArgs};
use crate::settings::{self, Settings};

/// Captures an interface: one pinned worker per RX queue, following the interface as it is
/// deleted and comes back, or its MTU changes.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let effective = super::effective(args.detect.config.as_deref(), &args.overrides())?;
    let settings = Settings::new(effective, args.detect.format, &[])?;
    super::announce(&settings);
    let opts = settings::live_options(&settings.config, &args.interface);
    // Subscribed before capture opens: no link event in between is missed.
    let events = LinkFollower::subscribe(&args.interface);
    let mut opened = livesrc::open(&opts, &mut |message| {
        diag::emit(Diag::CaptureWarning {
            interface: args.interface.clone(),
            message,
        })
    })?;
    // Holds promiscuous mode (renewed on each re-attach) until the run is over.
    let follower = LinkFollower::new(&opts, &mut opened, events);
    run_workers(
        settings,
        LiveRun {
            workers: opened.workers,
            inputs: vec![args.interface.clone()],
            capture: opened.description,
            agent: None,
            followers: LinkFollowers(vec![follower]),
        },
    )
}

/// Watches the host's own addresses on its interfaces, following them as they change.
pub fn agent(args: AgentArgs) -> Result<ExitCode> {
    let effective = super::effective(args.detect.config.as_deref(), &args.overrides())?;
    let interfaces = if args.interfaces.is_empty() {
        surgewatch_sensor::hostaddr::up_interfaces().context("listing interfaces")?
    } else {
        args.interfaces.clone()
    };
    if interfaces.is_empty() {
        bail!("no interface to watch (none is up besides loopback)");
    }
    let addrs = surgewatch_sensor::hostaddr::host_addresses(&interfaces)
        .context("reading the host's addresses")?;
    if addrs.is_empty() && effective.monitor.is_empty() {
        bail!("no address to watch on {}", interfaces.join(", "));
    }
    diag::emit(Diag::AgentWatching {
        addresses: addrs.clone(),
    });
    let settings = Settings::new(effective, args.detect.format, &addrs)?;
    super::announce(&settings);
    let mut workers = Vec::new();
    let mut descriptions = Vec::new();
    let mut followers = Vec::new();
    for ifname in &interfaces {
        let opts = settings::agent_live_options(ifname);
        let events = LinkFollower::subscribe(ifname);
        let mut opened = livesrc::open(&opts, &mut |message| {
            diag::emit(Diag::CaptureWarning {
                interface: ifname.clone(),
                message,
            })
        })?;
        for w in &mut opened.workers {
            // One light worker per interface; let the scheduler place them.
            w.core = None;
        }
        followers.push(LinkFollower::new(&opts, &mut opened, events).first_worker(workers.len()));
        workers.extend(opened.workers);
        descriptions.push(opened.description);
    }
    let agent = AgentAddrs::new(
        settings.config.clone(),
        interfaces.clone(),
        settings.extra_monitor.clone(),
        addrs,
    );
    run_workers(
        settings,
        LiveRun {
            workers,
            inputs: interfaces,
            capture: descriptions.join("; "),
            agent: Some(agent),
            followers: LinkFollowers(followers),
        },
    )
}

/// What a live run captures: the opened workers, their description, for the host agent the
/// addresses to follow, and the interfaces to follow.
struct LiveRun {
    workers: Vec<WorkerSpec<LiveSource>>,
    inputs: Vec<String>,
    capture: String,
    agent: Option<AgentAddrs>,
    followers: LinkFollowers,
}

/// Runs opened workers until a signal or `--duration`, then drains and reports.
fn run_workers(settings: Settings, run: LiveRun) -> Result<ExitCode> {
    let LiveRun {
        workers,
        inputs,
        capture,
        agent,
        mut followers,
    } = run;
    let stop = surgewatch_sensor::signals::install();
    if let Some(d) = settings.duration {
        std::thread::spawn(move || {
            std::thread::sleep(d);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    diag::emit(Diag::Capturing {
        description: capture.clone(),
    });
    let n = workers.len();
    // A slow reader of stdout must not stall the tick: a full queue drops (and counts).
    let observer = Observer::start(&settings, Delivery::DropWhenFull, None)?;
    let mut obs = LiveObs::new(observer, settings.status_interval, agent);
    let started = live::now_ns();
    let lcfg = live::LiveConfig {
        monitor: settings.monitor.monitor.clone(),
        tick: settings.tick,
        parse: settings.parse,
    };
    let follow: &mut dyn Follower<LiveSource> = &mut followers;
    let (acct, queues) = live::run_live_following(&lcfg, workers, stop, &mut obs, Some(follow));
    let s = followers.stats();
    let link = Some(LinkJson {
        losses: s.losses,
        reattaches: s.reattaches,
    });
    let info = RunInfo {
        inputs,
        groups: settings.monitor.groups.clone(),
        monitor_mode: settings.monitor.mode,
        tick_secs: settings.tick.as_duration().as_secs_f64(),
        workers: n,
        time_span_ns: Some((started, live::now_ns())),
        late_frames: 0,
        errors: Vec::new(),
        input_anomalies: Default::default(),
        incidents: Vec::new(),
        capture: Some(capture),
        queues: queues.iter().map(queue_json).collect(),
        link,
        mitigations: None,
    };
    obs.finish(&acct, info, settings.top_n);
    Ok(ExitCode::SUCCESS)
}

fn queue_json(q: &QueueStats) -> QueueJson {
    QueueJson {
        name: q.name.clone(),
        core: q.core,
        received: q.capture.received,
        bytes: q.capture.bytes,
        parse_errors: q.parse_errors,
        kernel_drops: q.capture.kernel_drops,
        rx_ring_full: q.capture.rx_ring_full,
        fill_ring_empty: q.capture.fill_ring_empty,
        invalid_descs: q.capture.invalid_descs,
    }
}
