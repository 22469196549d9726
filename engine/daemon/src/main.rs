//! `airlift-engine`: run flows in real time, render them offline, or serve
//! `airlift-ctld` on a Unix socket.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod control;

use airlift_engine::archive::spool::Spool;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::flow::render;
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::message::{EngineToCtl, FlowState};
use airlift_ipc::spec::DesiredState;
use control::{PeerPolicy, serve};

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
        /// Segment spool directory.
        #[arg(long, default_value = "./spool")]
        spool: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
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
        /// Segment spool directory.
        #[arg(long, default_value = "./spool")]
        spool: PathBuf,
        /// Encoders coding chunks of one AAC or MP2 output at once
        /// (default: one per CPU, at most 8; 1 encodes serially, as a live
        /// flow does).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=airlift_engine::sys::ffmpeg::MAX_ENCODE_THREADS as i64))]
        encode_threads: Option<u16>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Print the man page (roff) and exit.
    #[command(hide = true)]
    Man,
    /// Serve airlift-ctld on a Unix socket; flows keep running across
    /// ctl reconnects.
    Serve {
        /// Socket path (default: `[engine] socket` of --config).
        #[arg(long)]
        listen: Option<PathBuf>,
        /// ctld's configuration file: its `[engine]` section gives the
        /// socket, cpu, rt_priority and mlock (flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Segment spool directory (default: `[spool] path` of --config,
        /// relative to its folder, as ctld resolves it; else `./spool`).
        #[arg(long)]
        spool: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Also accept connections from this uid.
        #[arg(long, conflicts_with = "allow_user")]
        allow_uid: Option<u32>,
        /// Also accept connections from this user (by name; the packaged
        /// unit, where the engine runs as airlift-engine, names ctld's
        /// user `airlift`).
        #[arg(long)]
        allow_user: Option<String>,
        #[command(flatten)]
        rt: RtArgs,
    },
}

/// Limits of segments and pull jobs.
#[derive(Args, Clone, Copy)]
struct LimitArgs {
    /// Most pull jobs at once (default: `[limits] max_pull_jobs` of
    /// --config, else 16).
    #[arg(long)]
    max_pulls: Option<usize>,
    /// Free MiB the spool's file system must keep; below it segment jobs
    /// hold their stream in memory and wait (default 64).
    #[arg(long)]
    spool_min_free_mb: Option<u64>,
}

impl LimitArgs {
    fn apply(self, options: &mut BuildOptions) {
        options.max_pulls = self.max_pulls.unwrap_or(16);
        options.spool.min_free_bytes = self.spool_min_free_mb.unwrap_or(64) * 1024 * 1024;
    }
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
    // Before any thread exists: memory that workers free while flows hold
    // memory locked must go back to the system (see the function's docs).
    airlift_engine::rt::thread::one_malloc_arena();
    airlift_log::init();
    // FFmpeg logs through tracing (rate limited), never to stderr directly.
    airlift_engine::sys::ffmpeg::log::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlift-engine: {}", airlift_ipc::report::chain_text(e.as_ref()));
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
        Mode::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Mode::Render { flows, seconds, spool, encode_threads, limits } => {
            anyhow::ensure!(seconds.is_finite() && seconds > 0.0, "--seconds must be a positive number");
            let state = load(&flows)?;
            let mut options = BuildOptions {
                base_dir: base_dir(&flows),
                spool: Spool::new(spool),
                encode_threads: encode_threads.and_then(|n| std::num::NonZeroUsize::new(n.into())),
                ..BuildOptions::default()
            };
            limits.apply(&mut options);
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
        Mode::Run { flows, spool, limits, rt } => {
            let state = load(&flows)?;
            let spool = Spool::new(spool);
            let _owner = spool.claim()?;
            let mut options = BuildOptions { base_dir: base_dir(&flows), spool, ..BuildOptions::default() };
            limits.apply(&mut options);
            let signals = block_signals()?;
            let mut node = Node::new(options, rt.request());
            let mut events = Vec::new();
            node.apply_state(&state, &mut events)?;
            // Under ctld a flow that cannot be built is retried; run is a
            // one-shot command with nobody to watch it: it refuses.
            let failed: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    EngineToCtl::FlowState { flow, state: FlowState::Failed { reason } } => {
                        Some(format!("flow {flow}: {reason}"))
                    }
                    EngineToCtl::PullState { job, state: FlowState::Failed { reason } } => {
                        Some(format!("pull {job}: {reason}"))
                    }
                    _ => None,
                })
                .collect();
            if !failed.is_empty() {
                node.shutdown(&mut events);
                anyhow::bail!("{}", failed.join("; "));
            }
            tracing::info!(flows = state.flows.len(), "running; Ctrl-C stops");
            // The node is polled (replaced graphs collected, reports turned
            // into events, failed flows retried) until a signal arrives;
            // events are logged where they are made.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new().name("al-signals".into()).spawn(move || {
                let _ = tx.send(signals.wait());
            })?;
            let signal = loop {
                match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok(signal) => break signal.context("waiting for a signal")?,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        events.clear();
                        node.poll(&mut events);
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        anyhow::bail!("the signal thread ended")
                    }
                }
            };
            tracing::info!(?signal, "stopping");
            for stats in node.stats().flows {
                print_run_stats(&stats);
            }
            for (flow, l) in node.srt_links() {
                println!(
                    "flow {flow}: {} {:?}, {} connects, {} refused, rtt {:.2} ms, bandwidth {:.1} Mbit/s, lost {}, retransmitted {}, {} bytes{}",
                    l.name,
                    l.state,
                    l.connects,
                    l.refusals,
                    l.rtt_ms,
                    l.bandwidth_mbps,
                    l.lost,
                    l.retransmits,
                    l.bytes,
                    match l.drift_ppm {
                        Some(ppm) => format!(
                            ", drift {ppm:.1} ppm, {} frames dropped, {} inserted",
                            l.dropped_frames, l.inserted_frames
                        ),
                        None => String::new(),
                    }
                );
            }
            for stats in node.stats().flows {
                for i in stats.input_sources {
                    println!(
                        "flow {}: input {} plays {}, {} switches{}",
                        stats.flow,
                        i.input,
                        i.active,
                        i.switches,
                        i.selected.map(|s| format!(", selected {s}")).unwrap_or_default()
                    );
                }
            }
            for p in node.stats().pulls {
                let state = node
                    .pulls()
                    .find(|(n, _)| n.as_str() == p.job)
                    .map_or_else(|| "Stopped".to_owned(), |(_, j)| format!("{:?}", j.status().state()));
                println!(
                    "pull {}: {}, {} connects, {} bytes, {} packets, {:.2} Mbit/s, {} CC errors, {} unparsable packets, {} junk bytes, PCR jitter {} us, {} segments ({} cut at the size limit), last key frame {:?} ms ago",
                    p.job,
                    state,
                    p.connects,
                    p.bytes,
                    p.packets,
                    p.bitrate_bps as f64 / 1e6,
                    p.cc_errors,
                    p.unparsable_packets,
                    p.junk_bytes,
                    p.pcr_jitter_us,
                    p.segments,
                    p.forced_cuts,
                    p.since_key_frame_ms
                );
            }
            for j in node.stats().segment_jobs {
                println!(
                    "segments {}: {} stalls, {} bytes held at most, {} bytes dropped, {} gaps, {:.3} s lost, {} junk bytes",
                    j.job,
                    j.stalls,
                    j.held_bytes_max,
                    j.dropped_bytes,
                    j.gaps,
                    j.gap_90k as f64 / 90_000.0,
                    j.junk_bytes
                );
            }
            node.shutdown(&mut events);
            Ok(())
        }
        Mode::Serve { listen, config, spool, limits, allow_uid, allow_user, rt } => {
            let (listen, rt, spool, limits) = serve_settings(listen, config.as_deref(), spool, limits, rt)?;
            let allow_uid = match allow_user {
                Some(name) => Some(uid_of(&name)?),
                None => allow_uid,
            };
            // First of all: a second engine on this spool leaves everything
            // (the first one's socket included) as it is.
            let spool = Spool::new(spool);
            let _owner = spool.claim()?;
            if listen.exists() {
                std::fs::remove_file(&listen)
                    .with_context(|| format!("cannot remove stale {}", listen.display()))?;
            }
            let listener = std::os::unix::net::UnixListener::bind(&listen)
                .with_context(|| format!("cannot listen on {}", listen.display()))?;
            tracing::info!(socket = %listen.display(), "serving ctl");
            let signals = block_signals()?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            std::thread::Builder::new().name("al-signals".into()).spawn(move || {
                if let Ok(signal) = signals.wait() {
                    tracing::info!(?signal, "stopping");
                    flag.store(true, Ordering::Release);
                }
            })?;
            tracing::info!(spool = %spool.root().display(), "segment spool");
            let mut options = BuildOptions { spool, ..BuildOptions::default() };
            limits.apply(&mut options);
            let node = Node::new(options, rt.request());
            serve(listener, node, PeerPolicy { extra_uid: allow_uid }, stop)?;
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
    if stats.late_periods > 0 {
        println!(
            "flow {}: {} late periods caught up without loss, max lateness {} us",
            stats.flow, stats.late_periods, stats.max_late_us
        );
    }
    if stats.xruns > 0 || stats.latency_frames.is_some() || stats.drift_ppm.is_some() {
        let latency = stats.latency_frames.map_or_else(|| "-".to_owned(), |f| format!("{f} frames"));
        let drift = stats.drift_ppm.map_or_else(|| "-".to_owned(), |d| format!("{d:+.1} ppm"));
        println!(
            "flow {}: {} device xruns, duplex latency {latency}, link drift {drift}",
            stats.flow, stats.xruns
        );
    }
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

#[derive(serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    engine: toml::Table,
    #[serde(default)]
    spool: toml::Table,
    #[serde(default)]
    limits: toml::Table,
}

/// The uid of user `name`, from the user database.
fn uid_of(name: &str) -> anyhow::Result<u32> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => anyhow::bail!("--allow-user {name}: no such user"),
        Err(e) => anyhow::bail!("--allow-user {name}: cannot look the user up: {e}"),
    }
}

/// Merges `--config`'s `[engine]` section under the command-line flags.
fn serve_settings(
    listen: Option<PathBuf>,
    config: Option<&Path>,
    spool: Option<PathBuf>,
    limits: LimitArgs,
    rt: RtArgs,
) -> anyhow::Result<(PathBuf, RtArgs, PathBuf, LimitArgs)> {
    let mut spool_path = None;
    let mut max_pulls = None;
    // The `[engine]` section: the schema ctld validates, read the same way.
    let section: Option<airlift_ipc::settings::EngineSection> = match config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let file: ConfigFile =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            // As ctld resolves them: relative to the config file's folder,
            // `spool` when not given.
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let p = match file.spool.get("path") {
                Some(p) => p
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("{}: [spool] path must be a string", path.display()))?,
                None => "spool",
            };
            spool_path = Some(base.join(p));
            if let Some(v) = file.limits.get("max_pull_jobs") {
                let v = v.as_integer().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| {
                    anyhow::anyhow!("{}: [limits] max_pull_jobs must be a whole number", path.display())
                })?;
                max_pulls = Some(v);
            }
            let section: airlift_ipc::settings::EngineSection = toml::Value::Table(file.engine)
                .try_into()
                .map_err(|e| anyhow::anyhow!("{}: [engine]: {e}", path.display()))?;
            if let Some(problem) = section.problem() {
                anyhow::bail!("{}: [engine] {problem}", path.display());
            }
            Some(section)
        }
        None => None,
    };
    let listen = listen
        .or_else(|| section.as_ref().map(|s| s.socket.as_path().to_path_buf()))
        .ok_or_else(|| anyhow::anyhow!("give --listen PATH or a --config with [engine] socket"))?;
    let rt = RtArgs {
        cpu: rt.cpu.or(section.as_ref().and_then(|s| s.cpu.map(usize::from))),
        rt_priority: rt.rt_priority.or(section.as_ref().and_then(|s| s.rt_priority)),
        mlock: rt.mlock || section.as_ref().is_some_and(|s| s.mlock),
    };
    let spool = spool.or(spool_path).unwrap_or_else(|| PathBuf::from("./spool"));
    let limits = LimitArgs { max_pulls: limits.max_pulls.or(max_pulls), ..limits };
    Ok((listen, rt, spool, limits))
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
