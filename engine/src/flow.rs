//! Running a built flow: on its own realtime audio thread, or offline as fast
//! as possible.
//!
//! The control side talks to the audio thread only through `rtrb` rings:
//! [`RtCommand`]s in (parameter changes, a new graph, stop), replaced graphs
//! back out so they are freed here and never on the audio thread.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;

use airlift_ipc::message::{FlowStats, Loudness, RealtimeReport};
use airlift_ipc::spec::FlowSpec;

use crate::assembly::{BuildError, BuildOptions, BuiltFlow, build, catch_up_frames};
use crate::graph::processor::{Processor, Report};
use crate::graph::rt_graph::{Pacing, ParamChange, RtGraph};
use crate::rt::clock::{InternalClock, now_ns};
use crate::rt::link_status::{SrtLinkSnapshot, SrtLinkStatus};
use crate::rt::stats::FlowCounters;
use crate::rt::thread::{RealtimeRequest, apply};
use crate::rt::worker::Worker;

/// A message to a flow's audio thread.
#[derive(Debug)]
pub enum RtCommand {
    /// Change one input's parameters.
    Param(ParamChange),
    /// Replace the graph; the old one comes back on the return ring.
    Swap(Box<RtGraph>),
    /// Leave the loop.
    Stop,
}

/// The audio-thread side of a flow: everything it owns, moved into the thread.
struct AudioThread {
    graph: Box<RtGraph>,
    commands: rtrb::Consumer<RtCommand>,
    returned: rtrb::Producer<Box<RtGraph>>,
    /// A replaced graph waiting for room on the return ring.
    pending_return: Option<Box<RtGraph>>,
    counters: Arc<FlowCounters>,
    /// The last period found an ALSA device lost.
    device_lost: bool,
}

impl AudioThread {
    /// Drains commands; returns false on Stop. Realtime-safe.
    ///
    /// A replaced graph is never dropped here: it goes onto the return ring,
    /// or waits in `pending_return` (one slot) when the ring is full. While
    /// that slot is taken, a new graph is not accepted: the swap, and every
    /// command behind it, waits in the command ring until the control thread
    /// has taken graphs back.
    fn poll_commands(&mut self) -> bool {
        if let Some(old) = self.pending_return.take()
            && let Err(rtrb::PushError::Full(old)) = self.returned.push(old)
        {
            self.pending_return = Some(old);
        }
        loop {
            if self.pending_return.is_some() && matches!(self.commands.peek(), Ok(RtCommand::Swap(_))) {
                break;
            }
            let Ok(cmd) = self.commands.pop() else { break };
            match cmd {
                RtCommand::Param(p) => self.graph.apply(p),
                RtCommand::Swap(mut new) => {
                    new.adopt_sinks(&mut self.graph);
                    let old = std::mem::replace(&mut self.graph, new);
                    if let Err(rtrb::PushError::Full(old)) = self.returned.push(old) {
                        // Empty: checked before the swap was taken.
                        self.pending_return = Some(old);
                    }
                }
                RtCommand::Stop => return false,
            }
        }
        true
    }

    /// One period: commands, processing, accounting. Realtime-safe.
    pub fn run_period(&mut self, period_ns: u64) -> bool {
        if !self.poll_commands() {
            return false;
        }
        let start = now_ns();
        let report = self.graph.process();
        let took = now_ns().saturating_sub(start);
        self.counters.record_period(self.graph.frames() as u32, took, period_ns);
        if report.underrun {
            self.counters.underruns.fetch_add(1, Relaxed);
        }
        if report.overrun {
            self.counters.overruns.fetch_add(1, Relaxed);
        }
        if report.xruns > 0 {
            self.counters.xruns.fetch_add(u64::from(report.xruns), Relaxed);
        }
        self.device_lost = report.device_lost;
        true
    }
}

/// What paces a flow's audio thread between periods.
#[derive(Debug)]
enum Pace {
    /// The graph's ALSA devices: their blocking `readi`/`writei` inside the
    /// period is the wait, so nothing else waits.
    Device,
    /// The engine's clock: sleep to the next absolute deadline.
    Internal(InternalClock),
}

impl Pace {
    /// Waits for the next period unless a device already did; a lost device
    /// hands over to the internal clock so the thread neither spins nor
    /// stops. Realtime-safe.
    fn after_period(&mut self, device_lost: bool, frames: u32, rate: u32, counters: &FlowCounters) {
        if device_lost && matches!(self, Pace::Device) {
            *self = Pace::Internal(InternalClock::new(frames, rate, catch_up_frames(frames, rate)));
        }
        if let Pace::Internal(clock) = self {
            let tick = clock.wait();
            if tick.late_ns > 0 {
                counters.late_periods.fetch_add(1, Relaxed);
                counters.max_late_ns.fetch_max(tick.late_ns, Relaxed);
            }
            if tick.missed {
                counters.deadline_misses.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Builds the command and return rings around `graph`: the control ends and
/// the audio-thread state. Exposed for the realtime-safety test, which drives
/// [`AudioDriver::run_period`] on a thread of its own.
pub fn audio_driver(graph: Box<RtGraph>) -> (FlowControl, AudioDriver) {
    let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(256);
    let (ret_tx, ret_rx) = rtrb::RingBuffer::new(4);
    let counters = graph.counters().clone();
    (
        FlowControl { commands: cmd_tx, returned: ret_rx },
        AudioDriver(AudioThread {
            graph,
            commands: cmd_rx,
            returned: ret_tx,
            pending_return: None,
            counters,
            device_lost: false,
        }),
    )
}

/// The control thread's ends of a flow's rings.
#[derive(Debug)]
pub struct FlowControl {
    commands: rtrb::Producer<RtCommand>,
    returned: rtrb::Consumer<Box<RtGraph>>,
}

impl FlowControl {
    /// Sends a command; gives it back when the ring is full. Control thread only.
    pub fn send(&mut self, cmd: RtCommand) -> Result<(), RtCommand> {
        self.commands.push(cmd).map_err(|rtrb::PushError::Full(c)| c)
    }

    /// Takes one replaced graph back, if the audio thread returned one.
    pub fn take_returned(&mut self) -> Option<Box<RtGraph>> {
        self.returned.pop().ok()
    }
}

/// The audio thread's state for one flow. Realtime-safe to drive.
pub struct AudioDriver(AudioThread);

impl std::fmt::Debug for AudioDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AudioDriver").field(&self.0.graph).finish()
    }
}

impl AudioDriver {
    /// Runs one period; false once a Stop command arrived. Realtime-safe.
    pub fn run_period(&mut self, period_ns: u64) -> bool {
        self.0.run_period(period_ns)
    }

    /// The current graph.
    pub fn graph(&self) -> &RtGraph {
        &self.0.graph
    }
}

/// What an ending audio thread hands back: its graph, and a replaced one
/// still waiting for room on the return ring.
type ReturnedGraphs = (Box<RtGraph>, Option<Box<RtGraph>>);

/// A flow running on its own audio thread. Control thread only.
#[derive(Debug)]
pub struct RunningFlow {
    spec: FlowSpec,
    control: FlowControl,
    /// The audio thread; it hands back its graph and one still waiting
    /// for room on the return ring.
    thread: Option<JoinHandle<ReturnedGraphs>>,
    workers: Vec<Worker>,
    /// Per output index, the range of `workers` that serve it.
    output_workers: Vec<(usize, std::ops::Range<usize>)>,
    /// Workers of replaced graphs, stopped when their graph comes back.
    retired: VecDeque<Vec<Worker>>,
    reports: Vec<rtrb::Consumer<Report>>,
    inputs: std::collections::HashMap<airlift_ipc::units::Name, usize>,
    counters: Arc<FlowCounters>,
    realtime: RealtimeReport,
    injectors: Vec<crate::graph::alsa::XrunInjector>,
    links: Vec<Arc<SrtLinkStatus>>,
    failovers: Vec<(airlift_ipc::units::Name, Arc<crate::graph::failover::FailoverControl>)>,
}

/// Starts `spec` on a realtime audio thread named `airlift-rt-<flow>`.
pub fn start(
    spec: &FlowSpec,
    options: &BuildOptions,
    rt: &RealtimeRequest,
    custom: Vec<Box<dyn Processor>>,
) -> Result<RunningFlow, BuildError> {
    let mut options = options.clone();
    options.pacing = Pacing::Realtime;
    let built = build(spec, &options, custom)?;
    start_built(spec, built, rt)
}

/// Starts an already built flow (built with [`Pacing::Realtime`]) on its
/// audio thread.
pub fn start_built(
    spec: &FlowSpec,
    built: BuiltFlow,
    rt: &RealtimeRequest,
) -> Result<RunningFlow, BuildError> {
    let BuiltFlow { graph, workers, reports, inputs, counters, links, output_workers, failovers, .. } = built;
    let injectors = graph.xrun_injectors();
    let (control, mut driver) = audio_driver(graph);
    let (rt_tx, rt_rx) = std::sync::mpsc::sync_channel(1);
    let rt = *rt;
    let frames = spec.period.get();
    let rate = spec.sample_rate.get();
    let name = spec.name.to_string();
    let thread = std::thread::Builder::new()
        .name(crate::rt::worker::os_thread_name(&format!("airlift-rt-{name}")))
        .spawn(move || {
            let report = apply(&rt);
            let _ = rt_tx.send(report);
            let period_ns = u64::from(frames) * 1_000_000_000 / u64::from(rate);
            // A graph with ALSA devices was built for a flow clocked by one
            // of them (the build refuses anything else in realtime pacing).
            let mut pace = if driver.graph().has_devices() {
                Pace::Device
            } else {
                Pace::Internal(InternalClock::new(frames, rate, catch_up_frames(frames, rate)))
            };
            while driver.run_period(period_ns) {
                pace.after_period(driver.0.device_lost, frames, rate, &driver.0.counters);
            }
            // Both graphs go back to the control thread with the join.
            (driver.0.graph, driver.0.pending_return)
        })
        .map_err(|source| BuildError::Thread { flow: name.clone(), source })?;
    let realtime = rt_rx.recv().unwrap_or_default();
    if !realtime.refusals.is_empty() {
        tracing::warn!(flow = %name, refusals = ?realtime.refusals, "running without full realtime privileges");
    }
    Ok(RunningFlow {
        spec: spec.clone(),
        control,
        thread: Some(thread),
        workers,
        output_workers,
        retired: VecDeque::new(),
        reports,
        inputs,
        counters,
        realtime,
        injectors,
        links,
        failovers,
    })
}

/// A parameter change that names something the flow does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// No input of that name.
    #[error("flow {flow} has no input {input:?}")]
    UnknownInput {
        /// The flow.
        flow: String,
        /// The input asked for.
        input: String,
    },
    /// The command ring is full (more than 256 changes in one period).
    #[error("flow {flow} is busy; try again")]
    Busy {
        /// The flow.
        flow: String,
    },
    /// The input has no backups, or no source of that name.
    #[error("flow {flow}: input {input} has no source {name:?} (its sources: {known})")]
    UnknownSource {
        /// The flow.
        flow: String,
        /// The input.
        input: String,
        /// The source asked for.
        name: String,
        /// The sources it has, comma-separated (empty without backups).
        known: String,
    },
}

impl RunningFlow {
    /// The spec this flow runs.
    pub fn spec(&self) -> &FlowSpec {
        &self.spec
    }

    /// Sends a parameter change for the input named `input`.
    pub fn set(&mut self, input: &str, change: impl FnOnce(usize) -> ParamChange) -> Result<(), ParamError> {
        self.collect();
        let index = *self.inputs.get(input).ok_or_else(|| ParamError::UnknownInput {
            flow: self.spec.name.to_string(),
            input: input.chars().take(64).collect(),
        })?;
        self.control
            .send(RtCommand::Param(change(index)))
            .map_err(|_| ParamError::Busy { flow: self.spec.name.to_string() })
    }

    /// Forces the source input `input` plays (`primary` or a backup's
    /// name), or returns it to automatic selection (`None`). The running
    /// spec follows. Control thread only.
    pub fn select_source(&mut self, input: &str, source: Option<&str>) -> Result<(), ParamError> {
        let flow = self.spec.name.to_string();
        let spec = self.spec.inputs.iter().find(|i| i.name.as_str() == input);
        let Some(spec) = spec else {
            return Err(ParamError::UnknownInput { flow, input: input.chars().take(64).collect() });
        };
        let failover = spec.failover.as_ref();
        let control = self.failovers.iter().find(|(n, _)| n.as_str() == input).map(|(_, c)| c);
        let unknown = |source: &str| ParamError::UnknownSource {
            flow: flow.clone(),
            input: input.to_owned(),
            name: source.chars().take(64).collect(),
            known: failover
                .map(|f| {
                    (0..=f.backups.len()).filter_map(|i| f.source_name(i)).collect::<Vec<_>>().join(", ")
                })
                .unwrap_or_default(),
        };
        let (Some(failover), Some(control)) = (failover, control) else {
            return Err(unknown(source.unwrap_or("auto")));
        };
        let index = match source {
            None => None,
            Some(s) => Some(failover.source_index(s).ok_or_else(|| unknown(s))?),
        };
        if !control.select(index) {
            return Err(unknown(source.unwrap_or("auto")));
        }
        Ok(())
    }

    /// Records a parameter change sent to input `input` in the spec this
    /// flow runs. Control thread only.
    pub fn note_input(&mut self, input: &str, change: impl Fn(&mut airlift_ipc::spec::InputSpec)) {
        if let Some(i) = self.spec.inputs.iter_mut().find(|i| i.name.as_str() == input) {
            change(i);
        }
    }

    /// Replaces the running graph with one built from `spec`, at a period
    /// boundary, without stopping the audio thread. Outputs the new graph
    /// carries over ([`BuiltFlow::carried`]) keep their workers; the old
    /// graph's other workers stop once the audio thread hands it back.
    pub fn replace(&mut self, spec: &FlowSpec, built: BuiltFlow) -> Result<(), BuildError> {
        self.collect();
        let BuiltFlow {
            graph,
            mut workers,
            reports,
            inputs,
            counters,
            links,
            mut output_workers,
            carried,
            failovers,
            ..
        } = built;
        // The counters live on across the swap: keep the old ones.
        drop(counters);
        let graph = graph.with_counters(self.counters.clone());
        let injectors = graph.xrun_injectors();
        if let Err(RtCommand::Swap(graph)) = self.control.send(RtCommand::Swap(graph)) {
            drop(graph);
            return Err(BuildError::Processor {
                flow: spec.name.to_string(),
                field: "graph".into(),
                message: "the flow's command ring is full; try again".into(),
            });
        }
        let mut old: Vec<Option<Worker>> = std::mem::take(&mut self.workers).into_iter().map(Some).collect();
        for (new_index, old_index) in carried {
            let Some((_, range)) = self.output_workers.iter().find(|(o, _)| *o == old_index) else {
                continue;
            };
            let start = workers.len();
            workers.extend(range.clone().filter_map(|k| old.get_mut(k).and_then(Option::take)));
            output_workers.push((new_index, start..workers.len()));
        }
        self.retired.push_back(old.into_iter().flatten().collect());
        self.workers = workers;
        self.output_workers = output_workers;
        self.reports = reports;
        self.inputs = inputs;
        self.injectors = injectors;
        self.links = links;
        self.failovers = failovers;
        self.spec = spec.clone();
        Ok(())
    }

    /// Frees replaced graphs the audio thread handed back, and stops their workers.
    pub fn collect(&mut self) {
        let mut freed = false;
        while let Some(old) = self.control.take_returned() {
            drop(old);
            if let Some(workers) = self.retired.pop_front() {
                for w in workers {
                    w.finish();
                }
            }
            freed = true;
        }
        if freed {
            // A replaced graph is freed here, after the swap was applied.
            crate::rt::thread::return_freed_memory();
        }
    }

    /// Reports from the flow's processors since the last call.
    pub fn drain_reports(&mut self, mut each: impl FnMut(Report)) {
        for ring in &mut self.reports {
            while let Ok(r) = ring.pop() {
                each(r);
            }
        }
    }

    /// Handles that inject xruns into the running graph's ALSA devices
    /// (fault drills and tests); empty once the graph was replaced.
    pub fn xrun_injectors(&self) -> &[crate::graph::alsa::XrunInjector] {
        &self.injectors
    }

    /// The flow's live counters (atomics: any thread may read them).
    pub fn counters(&self) -> Arc<FlowCounters> {
        self.counters.clone()
    }

    /// Per input with backups, the name of the source it plays now: what a
    /// rebuilt flow resumes on ([`crate::assembly::build_replacing`]).
    pub fn playing(&self) -> Vec<(airlift_ipc::units::Name, String)> {
        self.failovers
            .iter()
            .filter_map(|(input, control)| {
                let spec = self.spec.inputs.iter().find(|i| &i.name == input)?.failover.as_ref()?;
                Some((input.clone(), spec.source_name(control.active())?.to_owned()))
            })
            .collect()
    }

    /// Statistics.
    pub fn stats(&self) -> FlowStats {
        let mut stats = self.counters.snapshot(self.spec.name.as_str(), self.realtime.clone());
        stats.srt_links = self.srt_links().into_iter().collect();
        stats.input_sources = self
            .failovers
            .iter()
            .filter_map(|(input, control)| {
                let spec = self.spec.inputs.iter().find(|i| &i.name == input)?.failover.as_ref()?;
                let name = |i: usize| spec.source_name(i).unwrap_or("primary").to_string();
                Some(airlift_ipc::message::InputSourceStats {
                    input: input.to_string(),
                    active: name(control.active()),
                    sources: (0..=spec.backups.len()).map(name).collect(),
                    selected: control.selected().map(name),
                    switches: control.switches(),
                })
            })
            .collect();
        stats
    }

    /// State and statistics of the flow's SRT links. Control thread only.
    pub fn srt_links(&self) -> Vec<SrtLinkSnapshot> {
        self.links.iter().map(|l| l.snapshot()).collect()
    }

    /// Stops the audio thread, then the workers (recordings are drained and
    /// finalised). Control thread only.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let mut cmd = RtCommand::Stop;
        // The ring has 256 slots and the audio thread drains it every period.
        while let Err(back) = self.control.send(cmd) {
            cmd = back;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if let Some(thread) = self.thread.take() {
            // A swap waiting for the return ring to empty holds the Stop
            // behind it: keep taking graphs back until the thread is done.
            while !thread.is_finished() {
                self.collect();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            match thread.join() {
                Ok((mut graph, pending)) => {
                    graph.drain_devices();
                    drop(graph);
                    drop(pending);
                }
                Err(_) => tracing::error!(flow = %self.spec.name, "audio thread panicked"),
            }
        }
        self.collect();
        for workers in self.retired.drain(..) {
            drop(workers);
        }
        let workers = std::mem::take(&mut self.workers);
        stop_workers(self.spec.name.as_str(), workers, &self.output_workers, WORKERS_STOP_DEADLINE);
    }
}

/// How long a stopping flow waits for its workers (recorders closing
/// their files, encoders flushing) before it leaves the rest to finish on
/// their own.
pub const WORKERS_STOP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Stops a flow's workers concurrently, one thread per output (an output's
/// own workers in order: its encoder flushes into its sender before the
/// sender stops) and per input worker, and waits for them up to
/// `deadline`. Workers still busy then are left to finish detached, logged.
/// Control thread only.
fn stop_workers(
    flow: &str,
    workers: Vec<Worker>,
    output_workers: &[(usize, std::ops::Range<usize>)],
    deadline: std::time::Duration,
) {
    let mut groups: Vec<Vec<Worker>> = Vec::new();
    let mut slots: Vec<Option<Worker>> = workers.into_iter().map(Some).collect();
    for (_, range) in output_workers {
        let group: Vec<Worker> =
            range.clone().filter_map(|k| slots.get_mut(k).and_then(Option::take)).collect();
        if !group.is_empty() {
            groups.push(group);
        }
    }
    groups.extend(slots.into_iter().flatten().map(|w| vec![w]));
    if groups.len() <= 1 {
        for w in groups.into_iter().flatten() {
            w.finish();
        }
        return;
    }
    let handles: Vec<_> = groups
        .into_iter()
        .filter_map(|group| {
            std::thread::Builder::new()
                .name("al-stop".into())
                .spawn(move || {
                    for w in group {
                        w.finish();
                    }
                })
                .ok()
        })
        .collect();
    let until = std::time::Instant::now() + deadline;
    while handles.iter().any(|h| !h.is_finished()) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let busy = handles.iter().filter(|h| !h.is_finished()).count();
    if busy > 0 {
        tracing::error!(
            flow,
            busy,
            ?deadline,
            "workers still stopping after the deadline; left to finish on their own"
        );
    }
    for h in handles.into_iter().filter(|h| h.is_finished()) {
        let _ = h.join();
    }
}

impl Drop for RunningFlow {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// What an offline render produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderSummary {
    /// Counters of the render.
    pub stats: FlowStats,
    /// The last loudness report, if the flow has a loudness processor.
    pub loudness: Option<Loudness>,
    /// Wall-clock seconds the render took.
    pub wall_seconds: f64,
}

/// Renders `seconds` of `spec` offline, as fast as possible, on the calling
/// thread; every ring waits for its worker, so nothing is dropped. AAC and
/// MP2 outputs are encoded in chunks on [`BuildOptions::encode_threads`]
/// threads (see `sys::ffmpeg::ChunkedEncoder`).
pub fn render(
    spec: &FlowSpec,
    options: &BuildOptions,
    seconds: f64,
    custom: Vec<Box<dyn Processor>>,
) -> Result<RenderSummary, BuildError> {
    let mut options = options.clone();
    options.pacing = Pacing::Offline;
    let rate = spec.sample_rate.get() as u64;
    let total = (seconds * rate as f64).round() as u64;
    options.length_hint = Some(total);
    let mut built = build(spec, &options, custom)?;
    let frames = spec.period.get() as u64;
    let period_ns = frames * 1_000_000_000 / rate;
    let started = now_ns();
    let mut loudness = None;
    let mut done = 0u64;
    while done < total {
        let n = frames.min(total - done);
        done += n;
        let t0 = now_ns();
        let report = built.graph.process_frames(n as usize);
        built.counters.record_period(n as u32, now_ns() - t0, period_ns);
        if report.underrun {
            built.counters.underruns.fetch_add(1, Relaxed);
        }
        built.counters.xruns.fetch_add(u64::from(report.xruns), Relaxed);
        for ring in &mut built.reports {
            while let Ok(r) = ring.pop() {
                if let Report::Loudness(l) = r {
                    loudness = Some(l);
                }
            }
        }
    }
    let wall_seconds = (now_ns() - started) as f64 / 1e9;
    built.graph.drain_devices();
    // A final loudness reading covering everything rendered.
    built.graph.finish_processors();
    for ring in &mut built.reports {
        while let Ok(r) = ring.pop() {
            if let Report::Loudness(l) = r {
                loudness = Some(l);
            }
        }
    }
    let stats = built.counters.snapshot(spec.name.as_str(), RealtimeReport::default());
    built.finish();
    Ok(RenderSummary { stats, loudness, wall_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A worker that takes `linger` to stop once asked.
    fn slow_worker(linger: Duration) -> Worker {
        Worker::spawn("test-slow".into(), Duration::from_millis(5), move |ctx| {
            while !ctx.stopping() {
                ctx.wait();
            }
            std::thread::sleep(linger);
        })
        .unwrap()
    }

    #[test]
    fn outputs_stop_at_once_and_in_order_within_one() {
        let workers: Vec<Worker> = (0..4).map(|_| slow_worker(Duration::from_millis(300))).collect();
        // Outputs 0 and 1 own two workers each: 2 × 300 ms each, side by side.
        let spans = [(0, 0..2), (1, 2..4)];
        let t = Instant::now();
        stop_workers("test", workers, &spans, Duration::from_secs(10));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(600), "an output's workers stopped out of order: {took:?}");
        assert!(took < Duration::from_millis(1100), "outputs stopped one after another: {took:?}");
    }

    #[test]
    fn a_worker_that_will_not_stop_is_left_after_the_deadline() {
        let workers = vec![slow_worker(Duration::from_secs(3)), slow_worker(Duration::from_millis(10))];
        let t = Instant::now();
        stop_workers("test", workers, &[], Duration::from_millis(200));
        assert!(t.elapsed() < Duration::from_millis(1000), "waited {:?}", t.elapsed());
    }
}
