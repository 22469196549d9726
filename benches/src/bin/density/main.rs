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
use std::path::PathBuf;
use std::time::Duration;

mod probe;
mod ramp;

use ramp::{
    AFTER_STOP, Bench, flow_totals, flows_judge, hold_ramp, memory_after_stop, per_unit_mib, ramp, sustained,
};

use airlift_ipc::message::EngineStats;
use anyhow::{Context, Result, bail};
use probe::{
    Children, chrono_like_now, cyclictest, engine_idle_kib, ffmpeg, is_root, largest_growth, rss_by_mapping,
    rss_kib, rss_split, sender, srt_live_transmit_baseline, srt_receiver, write_section,
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

fn main() -> Result<()> {
    // As `airlift-engine` does, before any other thread exists.
    airlift_engine::rt::thread::one_malloc_arena();
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
    let hold = hold_ramp(
        &mut bench,
        &steps,
        args.hold,
        &|n| live_flows(n, period),
        &mut Children::default(),
        &flows_judge,
        "live flows",
    )?;
    bench.apply("")?;
    // Past the node's second return of freed memory, 5 s after a stop.
    bench.run_for(AFTER_STOP);
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
    let per_flow = per_unit_mib(&steps);
    writeln!(
        md,
        "- Live flows without a deadline miss, an underrun, an encoder overrun or a segment gap: {}; in {:.0} s steps {}.",
        sustained(&hold),
        args.step.as_secs(),
        best.map_or("none".into(), |n| n.to_string()),
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
        let judge = |before: &EngineStats, after: &EngineStats, secs: f64| {
            let cc = |s: &EngineStats| s.pulls.iter().map(|p| p.cc_errors).sum::<u64>();
            let errors = cc(after) - cc(before).min(cc(after));
            // Each job's mean rate over the step, from its byte count: what
            // arrived, whatever the instantaneous rate did at a loop point.
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
        let phold = hold_ramp(
            &mut bench,
            &psteps,
            args.hold,
            &|n| pulls(n, base),
            &mut senders,
            &judge,
            "pull jobs",
        )?;
        drop(senders);
        let pull_memory = memory_after_stop(&mut bench, node_idle, &idle_maps, "pull job")?;
        writeln!(
            md,
            "| pull jobs × 5 Mbit/s | seconds | engine CPU, % of one core | per job | per Mbit/s | machine busy (with the ffmpeg senders) | RSS KiB | result |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|")?;
        for s in psteps.iter().chain(phold.iter()) {
            writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.2} | {:.3} | {:.0} % | {} | {} |",
                s.units,
                s.seconds,
                s.cpu,
                s.cpu / s.units as f64,
                s.cpu / s.units as f64 / 5.0,
                s.machine,
                s.rss_kib,
                s.note
            )?;
        }
        writeln!(md)?;
        writeln!(
            md,
            "- Pull jobs without a CC error, a reconnect or a short rate: {}; in {:.0} s steps {}.",
            sustained(&phold),
            args.step.as_secs(),
            pbest.map_or("none".into(), |n| n.to_string()),
        )?;
        if let Some(p) = per_unit_mib(&psteps) {
            writeln!(md, "- Resident memory per added pull job: **{p:.2} MiB**.")?;
        }
        writeln!(md, "- {pull_memory}")?;
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
        let judge = |before: &EngineStats, after: &EngineStats, _: f64| {
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
        let ohold = hold_ramp(
            &mut bench,
            &osteps,
            args.hold,
            &|n| srt_outputs(n, period, base),
            &mut receivers,
            &judge,
            "SRT outputs",
        )?;
        drop(receivers);
        let output_memory = memory_after_stop(&mut bench, node_idle, &idle_maps, "SRT output")?;
        writeln!(
            md,
            "| SRT outputs (AAC 128k) | seconds | engine CPU, % of one core | per output | machine busy (with the receivers) | RSS KiB | result |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|")?;
        for s in osteps.iter().chain(ohold.iter()) {
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
        writeln!(
            md,
            "- SRT outputs without a deadline miss, an encoder overrun, a lost packet or a link down: {}; in {:.0} s steps {}.",
            sustained(&ohold),
            args.step.as_secs(),
            obest.map_or("none".into(), |n| n.to_string()),
        )?;
        if let Some(p) = per_unit_mib(&osteps) {
            writeln!(md, "- Resident memory per added SRT output: **{p:.2} MiB**.")?;
        }
        writeln!(md, "- {output_memory}")?;
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
