//! The command line: what `surgewatch --help` shows. Plain clap definitions; what the
//! options mean for a run is decided in `settings` (their values are checked by
//! `surgewatch_tuning::Overrides`).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// DDoS sensor: which monitored IP is under attack, by what, within a second.
#[derive(Parser, Debug)]
#[command(name = "surgewatch", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Replay pcap/pcapng captures through the pipeline and report per-IP traffic.
    Replay(ReplayArgs),
    /// Capture live from an interface (a mirror port): one pinned worker per RX queue.
    Run(RunArgs),
    /// Host agent: watch this host's own addresses on its interfaces (AF_PACKET).
    Agent(AgentArgs),
    /// Validate a configuration file, reporting every error with its location.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng), replayed in the order given.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Worker threads (default: the config's `sensor.workers`, else 1).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CaptureArg {
    Auto,
    #[value(name = "af_xdp")]
    AfXdp,
    #[value(name = "af_packet")]
    AfPacket,
}

/// Options of live runs.
#[derive(clap::Args, Debug)]
pub struct LiveArgs {
    /// Stop after this long (default: run until SIGINT, SIGTERM or SIGQUIT).
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Print a status line on stderr this often ("0s": only when SIGUSR1 asks for one).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub status_interval: String,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Interface to capture (the mirror port).
    #[arg(long, short = 'i', value_name = "IF")]
    pub interface: String,
    /// Capture method (default: the config's `capture.method`, "auto").
    #[arg(long, value_enum)]
    pub capture: Option<CaptureArg>,
    /// RX queues to capture, comma-separated (default: the config's, else all).
    #[arg(long, value_delimiter = ',', value_name = "Q,...")]
    pub queues: Vec<u32>,
    /// Cores to pin the workers to, comma-separated (default: the config's, else worker i on core i).
    #[arg(long, value_delimiter = ',', value_name = "C,...")]
    pub cores: Vec<usize>,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// AF_XDP: busy-poll each queue for up to this long per poll, e.g. "50us" (each worker
    /// then spins at 100 % of its core; default: the config's `capture.busy_poll`, else off).
    #[arg(long, value_name = "DURATION")]
    pub busy_poll: Option<String>,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// Interfaces to watch (repeatable; default: every non-loopback interface that is up).
    #[arg(long = "interface", short = 'i', value_name = "IF")]
    pub interfaces: Vec<String>,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

/// Options shared by every command that runs the pipeline.
#[derive(clap::Args, Debug)]
pub struct DetectArgs {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Monitor this prefix (repeatable; a bare address means /32 or /128). Adds to the config's groups.
    #[arg(long = "monitor", value_name = "CIDR")]
    pub monitor: Vec<String>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Tick length, e.g. "1s" or "100ms" (default: the config's `sensor.tick`).
    #[arg(long, value_name = "DURATION")]
    pub tick: Option<String>,
    /// Number of monitored IPs listed in the summary (default: the config's `sensor.top_n`).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Static threshold and floor in packets per second for every group and class (quick runs).
    #[arg(long, value_name = "N")]
    pub threshold_pps: Option<f64>,
    /// Static threshold and floor in Mbit/s for every group and class (quick runs).
    #[arg(long, value_name = "N")]
    pub threshold_mbps: Option<f64>,
    /// Baseline file to load at start and save periodically and at the end
    /// (default: the config's `baseline.path`).
    #[arg(long, value_name = "FILE")]
    pub baselines: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}
