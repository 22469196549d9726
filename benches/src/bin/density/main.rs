//! `make density`: how many live flows, pull jobs and SRT outputs one box
//! carries, and what each costs, beside baselines measured in the same run.
//!
//! - **Live flows** (stereo tone → meter → loudness → AAC 128k segments),
//!   ramped in one engine node at the package's realtime settings
//!   (SCHED_FIFO 70, memory locked) until the first deadline miss or
//!   underrun; the largest count without one is then held for `--hold`
//!   seconds. Baseline: `cyclictest` at the same period for the machine's
//!   own wake-up latency.
//! - **Memory**: the engine binary's resident memory at idle (`serve`, no
//!   flows), the node's per added flow, and after every flow stopped.
//! - **Pull jobs** at 5 Mbit/s each (one `ffmpeg -c copy` sender per job,
//!   started here), ramped until the first continuity-counter error or a
//!   job whose receive rate falls short. Baseline: `srt-live-transmit`
//!   receiving the same stream, for CPU per Mbit/s.
//! - **SRT outputs** (tone → AAC 128k → SRT caller, one flow each) to local
//!   `srt-live-transmit` receivers, ramped until a deadline miss or a lost
//!   packet.
//!
//! Needs root for SCHED_FIFO and mlock, like the packaged engine's unit.
//! Prints every step and writes a Markdown section into
//! `docs/benchmarks.md` (between `<!-- density:start -->` and
//! `<!-- density:end -->`, which `make bench` keeps).
//!
//!   density [--step SECONDS] [--hold SECONDS] [--period FRAMES]
//!           [--flows N,N,..] [--pulls N,N,..] [--outputs N,N,..]
//!           [--out FILE]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod probe;

use airlift_engine::archive::spool::Spool;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::message::{EngineStats, EngineToCtl};
use airlift_ipc::spec::DesiredState;
use anyhow::{Context, Result, bail};
use probe::{
    Children, chrono_like_now, cpu_seconds, cyclictest, engine_idle_kib, ffmpeg, is_root, largest_growth,
    machine_jiffies, rss_by_mapping, rss_kib, rss_split, sender, srt_live_transmit_baseline, srt_receiver,
    write_section,
};

/// Command-line settings.
struct Args {
    step: Duration,
    hold: Duration,
    period: u32,
    flows: Vec<usize>,
    pulls: Vec<usize>,
    outputs: Vec<usize>,
    out: PathBuf,
}

fn list(v: &str) -> Result<Vec<usize>> {
    v.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().context("a list of counts")).collect()
}

fn args() -> Result<Args> {
    let mut a = Args {
        step: Duration::from_secs(20),
        hold: Duration::from_secs(60),
        period: 128,
        flows: vec![8, 16, 24, 32, 40, 48, 56, 64, 80, 96],
        pulls: vec![8, 16, 32, 48, 64, 80, 96],
        outputs: vec![8, 16, 32, 48, 64],
        out: PathBuf::from("docs/benchmarks.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--step" => a.step = Duration::from_secs(value.parse()?),
            "--hold" => a.hold = Duration::from_secs(value.parse()?),
            "--period" => a.period = value.parse()?,
            "--flows" => a.flows = list(&value)?,
            "--pulls" => a.pulls = list(&value)?,
            "--outputs" => a.outputs = list(&value)?,
            "--out" => a.out = PathBuf::from(value),
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn flow_toml(name: &str, period: u32, output: &str) -> String {
    format!(
        r#"
[[flow]]
name = "{name}"
channels = 2
period = {period}

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 997.0, level_dbfs = -18.0 }} }}

[[flow.processor]]
meter = {{}}

[[flow.processor]]
loudness = {{}}

[[flow.output]]
name = "out"
consumer = {{ encoded = {{ codec = "aac", bitrate = 128000, sink = {output} }} }}
"#
    )
}

fn live_flows(n: usize, period: u32) -> String {
    (0..n)
        .map(|i| {
            flow_toml(
                &format!("f{i}"),
                period,
                &format!(r#"{{ segments = {{ job = "f{i}", target_seconds = 6 }} }}"#),
            )
        })
        .collect()
}

fn srt_outputs(n: usize, period: u32, base: u16) -> String {
    (0..n)
        .map(|i| {
            let port = base + i as u16;
            flow_toml(
                &format!("o{i}"),
                period,
                &format!(
                    r#"{{ srt = {{ mode = {{ caller = {{ host = "127.0.0.1", port = {port} }} }}, allow_unencrypted = true }} }}"#
                ),
            )
        })
        .collect()
}

fn pulls(n: usize, base: u16) -> String {
    (0..n)
        .map(|i| {
            let port = base + i as u16;
            format!(
                r#"
[[pull]]
name = "p{i}"
source = {{ mode = {{ listener = {{ port = {port} }} }}, allow_unencrypted = true }}
segments = {{ job = "p{i}", target_seconds = 4 }}
no_data_timeout_s = 5
"#
            )
        })
        .collect()
}

/// The node under test, polled while time passes.
struct Bench {
    node: Node,
    events: Vec<EngineToCtl>,
    dir: PathBuf,
}

impl Bench {
    fn new(dir: &Path) -> Self {
        let options = BuildOptions {
            spool: Spool::new(dir.join("spool")),
            base_dir: dir.to_path_buf(),
            max_pulls: 256,
            ..BuildOptions::default()
        };
        // What the package's configuration asks for (packaging/airlift.toml).
        let rt = RealtimeRequest { cpu: None, fifo_priority: Some(70), lock_memory: true };
        Self { node: Node::new(options, rt), events: Vec::new(), dir: dir.to_path_buf() }
    }

    fn apply(&mut self, toml_text: &str) -> Result<()> {
        let state: DesiredState = toml::from_str(toml_text).context("bench state")?;
        self.node.apply_state(&state, &mut self.events).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Polls for `d`, and removes closed segments so the disk stays small.
    fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.node.poll(&mut self.events);
            for e in self.events.drain(..) {
                if let EngineToCtl::SegmentClosed(m) = e {
                    let ts = self.dir.join("spool").join(&m.path);
                    let _ = std::fs::remove_file(ts.with_extension("json"));
                    let _ = std::fs::remove_file(ts);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stats(&self) -> EngineStats {
        self.node.stats()
    }
}

/// Totals over the node's flows.
#[derive(Debug, Default, Clone, Copy)]
struct FlowTotals {
    misses: u64,
    underruns: u64,
    /// Periods whose audio did not fit an output's ring: its worker (the
    /// encoder) fell behind, and that output lost the period.
    overruns: u64,
    max_process_us: u32,
}

fn flow_totals(s: &EngineStats, prefix: char) -> FlowTotals {
    let mut t = FlowTotals::default();
    for f in s.flows.iter().filter(|f| f.flow.starts_with(prefix)) {
        t.misses += f.deadline_misses;
        t.underruns += f.underruns;
        t.overruns += f.overruns;
        t.max_process_us = t.max_process_us.max(f.max_process_us);
    }
    t
}

/// One ramp step's figures.
#[derive(Debug, Clone)]
struct Step {
    units: usize,
    seconds: f64,
    /// Our process's CPU, % of one core.
    cpu: f64,
    /// The whole machine's CPU, % of all cores.
    machine: f64,
    rss_kib: u64,
    failures: u64,
    note: String,
}

/// Measures `d` of the node: our CPU, the machine's, and what `judge`
/// counts as failures between the start and the end.
fn measure(
    bench: &mut Bench,
    d: Duration,
    judge: &dyn Fn(&EngineStats, &EngineStats) -> (u64, String),
) -> Step {
    let me = std::process::id();
    let before = bench.stats();
    let (cpu0, m0, t0) = (cpu_seconds(me), machine_jiffies(), Instant::now());
    bench.run_for(d);
    let (cpu1, m1, wall) = (cpu_seconds(me), machine_jiffies(), t0.elapsed().as_secs_f64());
    let after = bench.stats();
    let (failures, note) = judge(&before, &after);
    Step {
        units: 0,
        seconds: wall,
        cpu: 100.0 * (cpu1 - cpu0) / wall,
        machine: 100.0 * (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64,
        rss_kib: rss_kib(me),
        failures,
        note,
    }
}

fn flows_judge(before: &EngineStats, after: &EngineStats) -> (u64, String) {
    let (b, a) = (flow_totals(before, 'f'), flow_totals(after, 'f'));
    let misses = a.misses - b.misses.min(a.misses);
    let underruns = a.underruns - b.underruns.min(a.underruns);
    let overruns = a.overruns - b.overruns.min(a.overruns);
    let lost = |s: &EngineStats| s.segment_jobs.iter().map(|j| j.gaps + j.stalls).sum::<u64>();
    let gaps = lost(after) - lost(before).min(lost(after));
    (
        misses + underruns + overruns + gaps,
        format!(
            "{misses} deadline misses, {underruns} underruns, {overruns} encoder overruns, {gaps} segment gaps or stalls, max processing {} µs",
            a.max_process_us
        ),
    )
}

/// Ramps through `counts`: the node gets `state(n)`, and `peers(from, to)`
/// starts the peers of the units added (before the state when
/// `peers_first`: receivers that callers connect to; after it otherwise:
/// callers of the node's listeners).
#[allow(clippy::too_many_arguments)]
fn ramp(
    bench: &mut Bench,
    peers_first: bool,
    counts: &[usize],
    step: Duration,
    state: &dyn Fn(usize) -> String,
    on_step: &mut dyn FnMut(usize, usize) -> Result<()>,
    judge: &dyn Fn(&EngineStats, &EngineStats) -> (u64, String),
    label: &str,
) -> Result<(Vec<Step>, Option<usize>)> {
    let mut steps = Vec::new();
    let mut best = None;
    let mut have = 0;
    for &n in counts {
        if peers_first {
            on_step(have, n)?;
        }
        if let Err(e) = bench.apply(&state(n)) {
            println!("density: {label} {n}: refused: {e}");
            break;
        }
        if !peers_first {
            on_step(have, n)?;
        }
        have = n;
        // Let new units start (encoders open, senders connect) before
        // measuring.
        bench.run_for(Duration::from_secs(3));
        let mut s = measure(bench, step, judge);
        s.units = n;
        println!(
            "density: {label} {n}: {:.1} s, our CPU {:.1} % of one core ({:.2} % each), machine {:.0} % busy, RSS {} KiB; {}",
            s.seconds,
            s.cpu,
            s.cpu / n as f64,
            s.machine,
            s.rss_kib,
            s.note
        );
        let failed = s.failures > 0;
        steps.push(s);
        if failed {
            break;
        }
        best = Some(n);
    }
    Ok((steps, best))
}

/// Holds `n` units (the most a ramp passed) for `hold`, with only the
/// first `n` peers left running, and measures that.
fn hold_at(
    bench: &mut Bench,
    n: usize,
    hold: Duration,
    state: &dyn Fn(usize) -> String,
    peers: &mut Children,
    judge: &dyn Fn(&EngineStats, &EngineStats) -> (u64, String),
    label: &str,
) -> Result<Step> {
    for mut extra in peers.0.drain(n.min(peers.0.len())..) {
        let _ = extra.kill();
        let _ = extra.wait();
    }
    bench.apply(&state(n))?;
    bench.run_for(Duration::from_secs(3));
    let mut s = measure(bench, hold, judge);
    s.units = n;
    println!("density: {label} {n} held {:.0} s: our CPU {:.1} %, {}", s.seconds, s.cpu, s.note);
    Ok(s)
}

fn main() -> Result<()> {
    let args = args()?;
    if is_root() {
        println!("density: running as root: SCHED_FIFO 70 and mlock as the package's engine");
    } else {
        println!("density: not root: SCHED_FIFO and mlock will be refused; figures are for a normal thread");
    }
    let dir = std::env::temp_dir().join(format!("airlift-density-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let period_us = args.period * 1_000_000 / 48_000;
    let mut md = String::new();
    writeln!(md, "## Density (`make density`)")?;
    writeln!(md)?;
    writeln!(
        md,
        "Written by `benches/src/bin/density/` on {} ({} cores). Live flows: stereo tone → meter → loudness → AAC 128k \
         segments, {}-frame periods, SCHED_FIFO 70 and memory locked as the package runs them; each ramp step runs {} s \
         after a 3 s start.",
        chrono_like_now(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.period,
        args.step.as_secs()
    )?;
    writeln!(md)?;

    // Memory at idle: the engine binary itself, then this node.
    let engine_idle = engine_idle_kib(&dir)?;
    let mut bench = Bench::new(&dir);
    bench.run_for(Duration::from_secs(1));
    let node_idle = rss_kib(std::process::id());
    let idle_split = rss_split(std::process::id());
    let idle_maps = rss_by_mapping(std::process::id());
    println!(
        "density: engine binary idle (serve, no flows): {engine_idle} KiB; this node idle: {node_idle} KiB"
    );

    // Baseline: the machine's own wake-up latency at the period.
    let cyclic = cyclictest(period_us, 10);
    if let Some((max, late)) = cyclic {
        println!(
            "density: cyclictest {period_us} µs for 10 s (idle machine): max {max} µs, {late} wake-ups later than a period"
        );
    }

    // Warm idle: one flow started and stopped again. What stays is paid
    // once per process: FFmpeg's code pages and tables first touched.
    let period = args.period;
    bench.apply(&live_flows(1, period))?;
    bench.run_for(Duration::from_secs(3));
    bench.apply("")?;
    bench.run_for(Duration::from_secs(2));
    let warm_idle = rss_kib(std::process::id());
    let warm_split = rss_split(std::process::id());
    println!("density: warm idle (one flow started and stopped): {warm_idle} KiB");

    // Live flows.
    let (steps, best) = ramp(
        &mut bench,
        false,
        &args.flows,
        args.step,
        &|n| live_flows(n, period),
        &mut |_, _| Ok(()),
        &flows_judge,
        "live flows",
    )?;
    let mut hold = None;
    if let Some(n) = best {
        bench.apply(&live_flows(n, period))?;
        let mut s = measure(&mut bench, args.hold, &flows_judge);
        s.units = n;
        println!("density: live flows {n} held {:.0} s: our CPU {:.1} %, {}", s.seconds, s.cpu, s.note);
        hold = Some(s);
    }
    bench.apply("")?;
    bench.run_for(Duration::from_secs(3));
    let after_stop = rss_kib(std::process::id());
    let stop_split = rss_split(std::process::id());
    let stop_growth = largest_growth(&idle_maps, &rss_by_mapping(std::process::id()), 6);
    println!(
        "density: after every flow stopped: {after_stop} KiB (cold idle {node_idle} KiB, warm {warm_idle} KiB); grown since cold idle: {}",
        stop_growth.join(", ")
    );

    writeln!(
        md,
        "| live flows | seconds | CPU, % of one core | per flow | machine busy | RSS KiB | result |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for s in steps.iter().chain(hold.iter()) {
        writeln!(
            md,
            "| {} | {:.0} | {:.1} | {:.2} | {:.0} % | {} | {} |",
            s.units,
            s.seconds,
            s.cpu,
            s.cpu / s.units as f64,
            s.machine,
            s.rss_kib,
            s.note
        )?;
    }
    writeln!(md)?;
    // Per added flow: the slope between the first and the last passing step.
    let passing: Vec<&Step> = steps.iter().filter(|s| s.failures == 0).collect();
    let per_flow = match (passing.first(), passing.last()) {
        (Some(a), Some(b)) if b.units > a.units => {
            Some((b.rss_kib as f64 - a.rss_kib as f64) / (b.units - a.units) as f64 / 1024.0)
        }
        _ => None,
    };
    writeln!(
        md,
        "- Most live flows without a deadline miss, an underrun or an encoder overrun: **{}**{}.",
        best.map_or("none".into(), |n| n.to_string()),
        hold.as_ref().map_or(String::new(), |h| format!(" (held {:.0} s: {})", h.seconds, h.note))
    )?;
    if let Some(s) = steps.last().filter(|s| s.failures > 0) {
        writeln!(
            md,
            "- First failing step: {} flows, machine {:.0} % busy: {}.",
            s.units, s.machine, s.note
        )?;
    }
    writeln!(
        md,
        "- Engine resident memory at idle (`airlift-engine serve`, mlock on): **{:.1} MiB**.",
        engine_idle as f64 / 1024.0
    )?;
    if let Some(p) = per_flow {
        writeln!(
            md,
            "- Resident memory per added live flow: **{p:.2} MiB** (slope between the first and the last passing step)."
        )?;
    }
    let mib = |k: u64| k as f64 / 1024.0;
    writeln!(
        md,
        "- This node: cold idle {:.1} MiB (anonymous {:.1}, file-backed {:.1}); warm idle, once one flow ran and \
         stopped, {:.1} MiB (anonymous {:.1}, file-backed {:.1}).",
        mib(node_idle),
        mib(idle_split.0),
        mib(idle_split.1),
        mib(warm_idle),
        mib(warm_split.0),
        mib(warm_split.1)
    )?;
    writeln!(
        md,
        "- After every flow stopped: **{:.1} MiB** (anonymous {:.1}, file-backed {:.1}): {:+.1} % against cold idle, \
         {:+.1} % against warm idle. With nothing running the engine drops FFmpeg's code pages (read-only, never \
         written) from its resident set; what stays, by mapping, against cold idle: {}.",
        mib(after_stop),
        mib(stop_split.0),
        mib(stop_split.1),
        (after_stop as f64 / node_idle as f64 - 1.0) * 100.0,
        (after_stop as f64 / warm_idle as f64 - 1.0) * 100.0,
        if stop_growth.is_empty() { "nothing".to_string() } else { stop_growth.join(", ") }
    )?;
    if let Some((max, late)) = cyclic {
        writeln!(
            md,
            "- Baseline: `cyclictest -i {period_us}` for 10 s on the idle machine: max wake-up latency {max} µs, {late} wake-ups later than one period."
        )?;
    }
    writeln!(md)?;

    // Pull jobs at 5 Mbit/s.
    if !args.pulls.is_empty() {
        let src = dir.join("pull.ts");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=997",
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            // Constant 4.7 Mbit/s of video (filler NAL units), with the
            // audio and TS overhead 5 Mbit/s on the wire.
            "-b:v",
            "4700k",
            "-minrate",
            "4700k",
            "-maxrate",
            "4700k",
            "-bufsize",
            "1M",
            "-x264-params",
            "nal-hrd=cbr",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "mpegts",
            src.to_str().context("path")?,
        ])?;
        let base = 31_000u16;
        let baseline = srt_live_transmit_baseline(&src, base - 1, 10)?;
        println!(
            "density: srt-live-transmit receiving one 5 Mbit/s stream: {baseline:.2} % of one core ({:.3} % per Mbit/s)",
            baseline / 5.0
        );
        let senders = std::cell::RefCell::new(Children::default());
        let step_secs = args.step.as_secs_f64();
        let judge = |before: &EngineStats, after: &EngineStats| {
            let cc = |s: &EngineStats| s.pulls.iter().map(|p| p.cc_errors).sum::<u64>();
            let errors = cc(after) - cc(before).min(cc(after));
            // Each job's mean rate over the step, from its byte count: what
            // arrived, whatever the instantaneous rate did at a loop point.
            let secs = step_secs;
            let rates: Vec<f64> = after
                .pulls
                .iter()
                .map(|p| {
                    let was = before.pulls.iter().find(|b| b.job == p.job).map_or(0, |b| b.bytes);
                    (p.bytes - was.min(p.bytes)) as f64 * 8.0 / secs / 1e6
                })
                .collect();
            let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let short = rates.iter().filter(|r| **r < 4.5).count() as u64;
            let reconnects = |s: &EngineStats| s.pulls.iter().map(|p| p.connects).sum::<u64>();
            let dropped = reconnects(after) - reconnects(before).min(reconnects(after));
            (
                errors + short + dropped,
                format!(
                    "{errors} CC errors, {dropped} reconnects, {short} jobs below 4.5 Mbit/s over the step, slowest {min:.2} Mbit/s"
                ),
            )
        };
        let (psteps, pbest) = ramp(
            &mut bench,
            false,
            &args.pulls,
            args.step,
            &|n| pulls(n, base),
            &mut |from, to| {
                for i in from..to {
                    senders.borrow_mut().0.push(sender(&src, base + i as u16)?);
                }
                Ok(())
            },
            &judge,
            "pull jobs",
        )?;
        let mut senders = senders.into_inner();
        let phold = match pbest {
            Some(n) => Some(hold_at(
                &mut bench,
                n,
                args.hold,
                &|n| pulls(n, base),
                &mut senders,
                &judge,
                "pull jobs",
            )?),
            None => None,
        };
        drop(senders);
        bench.apply("")?;
        bench.run_for(Duration::from_secs(2));
        writeln!(
            md,
            "| pull jobs × 5 Mbit/s | seconds | engine CPU, % of one core | per job | per Mbit/s | machine busy (with the ffmpeg senders) | result |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        for s in psteps.iter().chain(phold.iter()) {
            writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.2} | {:.3} | {:.0} % | {} |",
                s.units,
                s.seconds,
                s.cpu,
                s.cpu / s.units as f64,
                s.cpu / s.units as f64 / 5.0,
                s.machine,
                s.note
            )?;
        }
        writeln!(md)?;
        writeln!(
            md,
            "- Most pull jobs without a CC error, a reconnect or a short rate: **{}**{}.",
            pbest.map_or("none".into(), |n| n.to_string()),
            phold.as_ref().map_or(String::new(), |h| format!(" (held {:.0} s: {})", h.seconds, h.note))
        )?;
        if let Some(s) = psteps.last().filter(|s| s.failures > 0) {
            writeln!(
                md,
                "- First failing step: {} jobs, machine {:.0} % busy (the senders run on the same machine): {}.",
                s.units, s.machine, s.note
            )?;
        }
        writeln!(
            md,
            "- Baseline: `srt-live-transmit` receiving the same stream: {baseline:.2} % of one core, {:.3} % per Mbit/s.",
            baseline / 5.0
        )?;
        writeln!(md)?;
    }

    // SRT outputs to local receivers.
    if !args.outputs.is_empty() {
        let base = 33_000u16;
        let receivers = std::cell::RefCell::new(Children::default());
        let judge = |before: &EngineStats, after: &EngineStats| {
            let (b, a) = (flow_totals(before, 'o'), flow_totals(after, 'o'));
            let lost =
                |s: &EngineStats| s.flows.iter().flat_map(|f| &f.srt_links).map(|l| l.lost).sum::<u64>();
            let down = after.flows.iter().flat_map(|f| &f.srt_links).filter(|l| !l.connected).count() as u64;
            let misses = a.misses - b.misses.min(a.misses);
            let overruns = a.overruns - b.overruns.min(a.overruns);
            let lost = lost(after) - lost(before).min(lost(after));
            (
                misses + overruns + lost + down,
                format!(
                    "{misses} deadline misses, {overruns} encoder overruns, {lost} packets lost, {down} links down"
                ),
            )
        };
        let (osteps, obest) = ramp(
            &mut bench,
            true,
            &args.outputs,
            args.step,
            &|n| srt_outputs(n, period, base),
            &mut |from, to| {
                for i in from..to {
                    receivers.borrow_mut().0.push(srt_receiver(base + i as u16)?);
                }
                Ok(())
            },
            &judge,
            "SRT outputs",
        )?;
        let mut receivers = receivers.into_inner();
        let ohold = match obest {
            Some(n) => Some(hold_at(
                &mut bench,
                n,
                args.hold,
                &|n| srt_outputs(n, period, base),
                &mut receivers,
                &judge,
                "SRT outputs",
            )?),
            None => None,
        };
        drop(receivers);
        bench.apply("")?;
        bench.run_for(Duration::from_secs(2));
        writeln!(
            md,
            "| SRT outputs (AAC 128k) | seconds | engine CPU, % of one core | per output | machine busy (with the receivers) | result |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        for s in osteps.iter().chain(ohold.iter()) {
            writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.2} | {:.0} % | {} |",
                s.units,
                s.seconds,
                s.cpu,
                s.cpu / s.units as f64,
                s.machine,
                s.note
            )?;
        }
        writeln!(md)?;
        writeln!(
            md,
            "- Most SRT outputs without a deadline miss, an encoder overrun, a lost packet or a link down: **{}**{}.",
            obest.map_or("none".into(), |n| n.to_string()),
            ohold.as_ref().map_or(String::new(), |h| format!(" (held {:.0} s: {})", h.seconds, h.note))
        )?;
        if let Some(s) = osteps.last().filter(|s| s.failures > 0) {
            writeln!(
                md,
                "- First failing step: {} outputs, machine {:.0} % busy (the receivers run on the same machine): {}.",
                s.units, s.machine, s.note
            )?;
        }
        writeln!(md)?;
    }
    bench.node.shutdown(&mut bench.events);
    let _ = std::fs::remove_dir_all(&dir);
    write_section(&args.out, &md)?;
    println!("density: written into {}", args.out.display());
    Ok(())
}
