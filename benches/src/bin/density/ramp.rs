//! The density bench's node and how it ramps, holds and judges: one
//! engine node polled while time passes, steps measured against the
//! machine, and the memory it keeps once everything stopped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlift_engine::archive::spool::Spool;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::node::Node;
use airlift_engine::rt::thread::RealtimeRequest;
use airlift_ipc::message::{EngineStats, EngineToCtl};
use airlift_ipc::spec::DesiredState;
use anyhow::{Context, Result};

use crate::probe::{Children, cpu_seconds, largest_growth, machine_jiffies, rss_by_mapping, rss_kib};

/// The node under test, polled while time passes.
pub struct Bench {
    pub node: Node,
    pub events: Vec<EngineToCtl>,
    pub dir: PathBuf,
}

impl Bench {
    pub fn new(dir: &Path) -> Self {
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

    pub fn apply(&mut self, toml_text: &str) -> Result<()> {
        let state: DesiredState = toml::from_str(toml_text).context("bench state")?;
        self.node.apply_state(&state, &mut self.events).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Polls for `d`, and removes closed segments so the disk stays small.
    pub fn run_for(&mut self, d: Duration) {
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

    pub fn stats(&self) -> EngineStats {
        self.node.stats()
    }
}

/// Totals over the node's flows.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlowTotals {
    pub misses: u64,
    pub underruns: u64,
    /// Periods whose audio did not fit an output's ring: its worker (the
    /// encoder) fell behind, and that output lost the period.
    pub overruns: u64,
    pub max_process_us: u32,
}

pub fn flow_totals(s: &EngineStats, prefix: char) -> FlowTotals {
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
pub struct Step {
    pub units: usize,
    pub seconds: f64,
    /// Our process's CPU, % of one core.
    pub cpu: f64,
    /// The whole machine's CPU, % of all cores.
    pub machine: f64,
    pub rss_kib: u64,
    pub failures: u64,
    pub note: String,
}

/// Measures `d` of the node: our CPU, the machine's, and what `judge`
/// counts as failures between the start and the end.
pub fn measure(
    bench: &mut Bench,
    d: Duration,
    judge: &dyn Fn(&EngineStats, &EngineStats, f64) -> (u64, String),
) -> Step {
    let me = std::process::id();
    let before = bench.stats();
    let (cpu0, m0, t0) = (cpu_seconds(me), machine_jiffies(), Instant::now());
    bench.run_for(d);
    let (cpu1, m1, wall) = (cpu_seconds(me), machine_jiffies(), t0.elapsed().as_secs_f64());
    let after = bench.stats();
    let (failures, note) = judge(&before, &after, wall);
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

pub fn flows_judge(before: &EngineStats, after: &EngineStats, _seconds: f64) -> (u64, String) {
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
pub fn ramp(
    bench: &mut Bench,
    peers_first: bool,
    counts: &[usize],
    step: Duration,
    state: &dyn Fn(usize) -> String,
    on_step: &mut dyn FnMut(usize, usize) -> Result<()>,
    judge: &dyn Fn(&EngineStats, &EngineStats, f64) -> (u64, String),
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

/// Resident MiB per added unit: the slope between the first and the last
/// passing step of a ramp.
pub fn per_unit_mib(steps: &[Step]) -> Option<f64> {
    let passing: Vec<&Step> = steps.iter().filter(|s| s.failures == 0).collect();
    match (passing.first(), passing.last()) {
        (Some(a), Some(b)) if b.units > a.units => {
            Some((b.rss_kib as f64 - a.rss_kib as f64) / (b.units - a.units) as f64 / 1024.0)
        }
        _ => None,
    }
}

/// Holds the most units a ramp passed for `hold`, with only as many peers
/// left running; when that count fails over the longer time, the next
/// smaller count the ramp passed, and so on. Every hold tried, in order:
/// the last is the one that held, if any did.
pub fn hold_ramp(
    bench: &mut Bench,
    steps: &[Step],
    hold: Duration,
    state: &dyn Fn(usize) -> String,
    peers: &mut Children,
    judge: &dyn Fn(&EngineStats, &EngineStats, f64) -> (u64, String),
    label: &str,
) -> Result<Vec<Step>> {
    let mut tried = Vec::new();
    for n in steps.iter().filter(|s| s.failures == 0).map(|s| s.units).rev() {
        for mut extra in peers.0.drain(n.min(peers.0.len())..) {
            let _ = extra.kill();
            let _ = extra.wait();
        }
        bench.apply(&state(n))?;
        bench.run_for(Duration::from_secs(3));
        let mut s = measure(bench, hold, judge);
        s.units = n;
        println!("density: {label} {n} held {:.0} s: our CPU {:.1} %, {}", s.seconds, s.cpu, s.note);
        let held = s.failures == 0;
        tried.push(s);
        if held {
            break;
        }
    }
    Ok(tried)
}

/// How long after everything stopped memory is read: past the node's
/// second return of freed memory (5 s after a stop).
pub const AFTER_STOP: Duration = Duration::from_secs(7);

/// Stops everything and says how the node's resident memory compares with
/// `cold_idle` KiB once it has settled.
pub fn memory_after_stop(
    bench: &mut Bench,
    cold_idle: u64,
    idle_maps: &std::collections::BTreeMap<String, u64>,
    what: &str,
) -> Result<String> {
    bench.apply("")?;
    bench.run_for(AFTER_STOP);
    let after = rss_kib(std::process::id());
    let grown = largest_growth(idle_maps, &rss_by_mapping(std::process::id()), 4);
    let line = format!(
        "Resident memory after every {what} stopped: **{:.1} MiB**, {:+.1} % against cold idle{}.",
        after as f64 / 1024.0,
        (after as f64 / cold_idle as f64 - 1.0) * 100.0,
        if grown.is_empty() { String::new() } else { format!(" (grown: {})", grown.join(", ")) }
    );
    println!("density: {line}");
    Ok(line)
}

/// "**N** sustained for S s (note)", or why nothing was.
pub fn sustained(tried: &[Step]) -> String {
    match tried.last() {
        Some(s) if s.failures == 0 => {
            format!("**{}** sustained for {:.0} s ({})", s.units, s.seconds, s.note)
        }
        Some(_) => "**none** sustained for the hold: every passing step failed when held".into(),
        None => "**none**: no step passed".into(),
    }
}
