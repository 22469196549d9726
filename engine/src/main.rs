//! `airlift-engine`: run flows in real time, render them offline, or serve
//! `airlift-ctld` on a Unix socket.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use airlift_engine::control::{PeerPolicy, serve};
use airlift_engine::flow::render;
use airlift_engine::graph::BuildOptions;
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::spec::DesiredState;

#[derive(Parser)]
#[command(name = "airlift-engine", version, about = "Airlift's realtime audio engine")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the flows of a TOML file in real time until SIGINT or SIGTERM.
    Run {
        /// Flow file (`[[flow]]` tables, the same spec ctld sends).
        #[arg(long)]
        flows: PathBuf,
        #[command(flatten)]
        rt: RtArgs,
    },
    /// Render the flows of a TOML file offline, as fast as possible.
    Render {
        /// Flow file.
        #[arg(long)]
        flows: PathBuf,
        /// Seconds of audio to render.
        #[arg(long)]
        seconds: f64,
    },
    /// Serve airlift-ctld on a Unix socket; flows keep running across
    /// ctl reconnects.
    Serve {
        /// Socket path.
        #[arg(long)]
        listen: PathBuf,
        /// Also accept connections from this uid.
        #[arg(long)]
        allow_uid: Option<u32>,
        #[command(flatten)]
        rt: RtArgs,
    },
}

#[derive(Args, Clone, Copy)]
struct RtArgs {
    /// Pin audio threads to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// SCHED_FIFO priority for audio threads (1-99).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
    rt_priority: Option<u8>,
    /// Lock memory with mlockall.
    #[arg(long)]
    mlock: bool,
}

impl RtArgs {
    fn request(self) -> RealtimeRequest {
        RealtimeRequest { cpu: self.cpu, fifo_priority: self.rt_priority, lock_memory: self.mlock }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIRLIFT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlift-engine: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load(path: &Path) -> anyhow::Result<DesiredState> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let state: DesiredState =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Err(errors) = state.validate() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("{}: {}", path.display(), list.join("; "));
    }
    Ok(state)
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.mode {
        Mode::Render { flows, seconds } => {
            anyhow::ensure!(seconds.is_finite() && seconds > 0.0, "--seconds must be a positive number");
            let state = load(&flows)?;
            let options = BuildOptions { base_dir: base_dir(&flows), ..BuildOptions::default() };
            for spec in &state.flows {
                let summary = render(spec, &options, seconds, Vec::new())?;
                let speed = seconds / summary.wall_seconds.max(1e-9);
                println!(
                    "flow {}: {} frames in {:.3} s ({:.0}x real time), underruns {}",
                    spec.name, summary.stats.frames, summary.wall_seconds, speed, summary.stats.underruns
                );
                if let Some(l) = summary.loudness {
                    println!(
                        "flow {}: integrated {:.2} LUFS, short-term {:.2} LUFS, true peak {:.2} dBTP",
                        spec.name, l.integrated_lufs, l.short_term_lufs, l.true_peak_dbtp
                    );
                }
            }
            Ok(())
        }
        Mode::Run { flows, rt } => {
            let state = load(&flows)?;
            let options = BuildOptions { base_dir: base_dir(&flows), ..BuildOptions::default() };
            let signals = block_signals()?;
            let mut node = Node::new(options, rt.request());
            let mut events = Vec::new();
            node.apply_state(&state, &mut events)?;
            tracing::info!(flows = state.flows.len(), "running; Ctrl-C stops");
            let signal = signals.wait().context("waiting for a signal")?;
            tracing::info!(?signal, "stopping");
            for stats in node.stats().flows {
                print_run_stats(&stats);
            }
            for (flow, l) in node.srt_links() {
                println!(
                    "flow {flow}: {} {:?}, {} connects, {} refused, rtt {:.2} ms, bandwidth {:.1} Mbit/s, lost {}, retransmitted {}, {} bytes",
                    l.name,
                    l.state,
                    l.connects,
                    l.refusals,
                    l.rtt_ms,
                    l.bandwidth_mbps,
                    l.lost,
                    l.retransmits,
                    l.bytes
                );
            }
            node.shutdown(&mut events);
            Ok(())
        }
        Mode::Serve { listen, allow_uid, rt } => {
            if listen.exists() {
                std::fs::remove_file(&listen)
                    .with_context(|| format!("cannot remove stale {}", listen.display()))?;
            }
            let listener = std::os::unix::net::UnixListener::bind(&listen)
                .with_context(|| format!("cannot listen on {}", listen.display()))?;
            tracing::info!(socket = %listen.display(), "serving ctl");
            let node = Node::new(BuildOptions::default(), rt.request());
            serve(listener, node, PeerPolicy { extra_uid: allow_uid })?;
            let _ = std::fs::remove_file(&listen);
            Ok(())
        }
    }
}

/// Prints a flow's counters and its processing-load distribution.
fn print_run_stats(stats: &airlift_ipc::message::FlowStats) {
    use airlift_ipc::message::PROCESS_LOAD_BUCKETS;
    println!(
        "flow {}: {} periods, {} deadline misses, {} underruns, {} overruns, max processing {} us",
        stats.flow,
        stats.periods,
        stats.deadline_misses,
        stats.underruns,
        stats.overruns,
        stats.max_process_us
    );
    let total = stats.periods.max(1) as f64;
    let mut cumulative = 0u64;
    for (i, count) in stats.process_load_histogram.iter().enumerate() {
        cumulative += count;
        let bound = PROCESS_LOAD_BUCKETS
            .get(i)
            .map_or_else(|| "above".to_string(), |b| format!("<= {:.0}%", b * 100.0));
        println!(
            "flow {}: load {bound:>7} of the period: {count} periods (cumulative {:.4}%)",
            stats.flow,
            cumulative as f64 * 100.0 / total
        );
    }
    println!("flow {}: realtime {:?}", stats.flow, stats.realtime);
}

/// Blocks SIGINT and SIGTERM in every thread (call before starting any), so
/// the main thread can wait for them synchronously.
fn block_signals() -> anyhow::Result<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("cannot block signals")?;
    Ok(set)
}
