//! A node: the set of running flows, converged to a desired state.
//!
//! Control thread only. Every change is prepared (built) before anything
//! running is touched, so a command either applies whole or changes nothing.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use airlift_ipc::message::{
    ChannelMeter, EngineStats, EngineToCtl, FlowState, PullStats, RejectKind, Rejection,
};
use airlift_ipc::spec::{
    ConsumerSpec, DesiredState, FlowSpec, ProducerSpec, PullSpec, SrtMode, SrtSpec, TsSink,
};
use airlift_ipc::units::{GainDb, Name, Pan};

use crate::archive::pull::{PullError, PullJob};
use crate::assembly::{BuildError, BuildOptions, build, build_replacing};
use crate::flow::{ParamError, RunningFlow, start_built};
use crate::graph::alsa::AlsaError;
use crate::graph::processor::{NodeRef, Processor, Report};
use crate::graph::rt_graph::{Pacing, ParamChange};
use crate::rt::link_status::{LinkState, SrtLinkSnapshot};
use crate::rt::thread::RealtimeRequest;

/// A command the node refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A flow could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A parameter change named an unknown input, or the flow was busy.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// No flow of that name.
    #[error("no flow named {0:?}")]
    UnknownFlow(String),
    /// A flow of that name already runs.
    #[error("flow {0} already exists")]
    FlowExists(String),
    /// The engine build lacks a capability.
    #[error("{0} is not available in this engine build")]
    Unsupported(&'static str),
    /// A pull job could not start.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// No pull job of that name.
    #[error("no pull job named {0:?}")]
    UnknownPull(String),
    /// A pull job of that name already runs.
    #[error("pull job {0} already exists")]
    PullExists(String),
    /// `pulls` asks for more concurrent pull jobs than the limit: stop one
    /// or raise the limit.
    #[error("pulls: {wanted} pull jobs exceed the limit of {max}")]
    TooManyPulls {
        /// Jobs asked for.
        wanted: usize,
        /// The limit.
        max: usize,
    },
}

impl NodeError {
    /// The IPC rejection for this error.
    pub fn rejection(&self) -> Rejection {
        let kind = match self {
            NodeError::Build(BuildError::Unsupported { .. }) | NodeError::Unsupported(_) => {
                RejectKind::Unsupported
            }
            NodeError::Build(BuildError::Thread { .. }) => RejectKind::Internal,
            NodeError::Build(BuildError::Alsa { source: AlsaError::NotFound { .. }, .. }) => {
                RejectKind::NotFound
            }
            NodeError::Build(BuildError::Alsa { source: AlsaError::Busy { .. }, .. }) => RejectKind::Busy,
            NodeError::Build(_) => RejectKind::InvalidArgument,
            NodeError::Param(ParamError::UnknownInput { .. } | ParamError::UnknownSource { .. })
            | NodeError::UnknownFlow(_) => RejectKind::NotFound,
            NodeError::Param(ParamError::Busy { .. }) => RejectKind::Busy,
            NodeError::UnknownPull(_) => RejectKind::NotFound,
            NodeError::PullExists(_) | NodeError::TooManyPulls { .. } => RejectKind::Busy,
            NodeError::Pull(PullError::Thread { .. }) => RejectKind::Internal,
            NodeError::Pull(_) => RejectKind::InvalidArgument,
            NodeError::FlowExists(_) => RejectKind::InvalidArgument,
        };
        Rejection { kind, message: self.to_string() }
    }
}

/// The engine's flows.
#[derive(Debug)]
pub struct Node {
    options: BuildOptions,
    rt: RealtimeRequest,
    desired: BTreeMap<Name, FlowSpec>,
    stopped: BTreeSet<Name>,
    running: BTreeMap<Name, RunningFlow>,
    /// Flows whose device was lost, with when to try reopening them.
    failed: BTreeMap<Name, Reopen>,
    /// Flows reopened after a loss: when, and the wait that preceded it, so
    /// a device that fails again soon backs off further instead of looping.
    reopened: BTreeMap<Name, Reopen>,
    /// Running pull jobs.
    pulls: BTreeMap<Name, PullJob>,
    /// Pull jobs of the desired state that could not start, with when to
    /// try again.
    pulls_failed: BTreeMap<Name, (PullSpec, Reopen)>,
    /// The last failure of each flow (`.0`) and pull job (`.1`) that waits
    /// for a retry, to tell a new ctl connection.
    reasons: (Reasons, Reasons),
    /// Each SRT link's state and connect/refusal counts at the last look,
    /// by flow and link, to send changes as events.
    links_seen: BTreeMap<(Name, String), (LinkState, u64, u64)>,
    /// When to give memory back once more after a stop: libsrt frees a
    /// closed socket's buffers on its own thread about a second later, and
    /// a worker left to finish after the stop deadline frees its own later.
    trim_again_at: Option<Instant>,
}

/// How long after a stop the memory freed since is given back once more.
const TRIM_AGAIN_AFTER: Duration = Duration::from_secs(5);

/// First wait before reopening a lost device's flow.
const REOPEN_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between reopen attempts.
const REOPEN_MAX: Duration = Duration::from_secs(30);

/// When a failed flow is next rebuilt, and the wait after that.
#[derive(Debug, Clone, Copy)]
struct Reopen {
    at: Instant,
    delay: Duration,
}

/// Why flows and pull jobs waiting for a retry failed last, by name.
type Reasons = BTreeMap<Name, String>;

impl Node {
    /// An empty node building flows with `options` and asking `rt` for each
    /// audio thread.
    pub fn new(mut options: BuildOptions, rt: RealtimeRequest) -> Self {
        options.pacing = Pacing::Realtime;
        Self {
            options,
            rt,
            desired: BTreeMap::new(),
            stopped: BTreeSet::new(),
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
            reopened: BTreeMap::new(),
            links_seen: BTreeMap::new(),
            trim_again_at: None,
            pulls: BTreeMap::new(),
            pulls_failed: BTreeMap::new(),
            reasons: (Reasons::new(), Reasons::new()),
        }
    }

    /// The running flow named `name`.
    pub fn flow(&self, name: &str) -> Option<&RunningFlow> {
        self.running.get(name)
    }

    /// Names of the running flows.
    pub fn running(&self) -> impl Iterator<Item = &Name> {
        self.running.keys()
    }

    /// Adds and starts one flow with extra user processors (library use).
    pub fn add_flow(
        &mut self,
        spec: FlowSpec,
        custom: Vec<Box<dyn Processor>>,
        events: &mut Vec<EngineToCtl>,
    ) -> Result<(), NodeError> {
        if self.desired.contains_key(&spec.name) {
            return Err(NodeError::FlowExists(spec.name.to_string()));
        }
        let built = build(&spec, &self.options, custom)?;
        let flow = start_built(&spec, built, &self.rt)?;
        events.push(EngineToCtl::FlowState { flow: spec.name.clone(), state: FlowState::Running });
        self.running.insert(spec.name.clone(), flow);
        self.desired.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// Converges to `state`: stops flows that are gone or stopped, swaps the
    /// graph of flows whose spec changed, starts new ones, and leaves
    /// unchanged flows running untouched. A state that breaks the spec
    /// rules is refused whole. A flow (or pull job) that cannot be built —
    /// a port taken, a device or file missing — fails alone: it is
    /// reported [`FlowState::Failed`] with the reason and retried with
    /// backoff (0.5 s doubling to 30 s) while everything else applies.
    ///
    /// Flows with ALSA devices or SRT listeners are restarted rather than
    /// swapped (a device clocks its thread, and neither a PCM nor a listening
    /// port can be opened twice): a changed flow that holds one is stopped,
    /// then rebuilt after every other change applied. If that rebuild fails, its previous spec is started again
    /// and the error returned; the other changes stay applied.
    pub fn apply_state(
        &mut self,
        state: &DesiredState,
        events: &mut Vec<EngineToCtl>,
    ) -> Result<(), NodeError> {
        let result = self.apply_desired(state, events);
        // Flows stopped or rebuilt: what they used goes back to the system.
        self.return_memory();
        result
    }

    /// Gives memory that stopped flows and pull jobs freed back to the
    /// system, now and once more [`TRIM_AGAIN_AFTER`] later (see
    /// [`Node::poll`]); when nothing runs any more, also the media
    /// libraries' code.
    fn return_memory(&mut self) {
        self.return_memory_now();
        self.trim_again_at = Some(Instant::now() + TRIM_AGAIN_AFTER);
    }

    fn return_memory_now(&self) {
        if self.running.is_empty() && self.pulls.is_empty() {
            crate::rt::thread::return_idle_memory();
        } else {
            crate::rt::thread::return_freed_memory();
        }
    }

    fn apply_desired(&mut self, state: &DesiredState, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        state.validate().map_err(|e| NodeError::Build(BuildError::Invalid(e)))?;
        if state.pulls.len() > self.options.max_pulls {
            return Err(NodeError::TooManyPulls { wanted: state.pulls.len(), max: self.options.max_pulls });
        }
        // The operator's stops are part of the state: stop what is now
        // stopped; flows no longer stopped start below like new ones.
        self.stopped = state.stopped.iter().cloned().collect();
        let now_stopped: Vec<Name> =
            self.running.keys().filter(|n| self.stopped.contains(*n)).cloned().collect();
        for name in now_stopped {
            self.failed.remove(&name);
            if let Some(flow) = self.running.remove(&name) {
                flow.stop();
                events.push(EngineToCtl::FlowState { flow: name, state: FlowState::Stopped });
            }
        }
        for name in &self.stopped {
            self.failed.remove(name);
        }
        let mut prepared = Vec::new();
        let mut restart = Vec::new();
        let mut failed_builds: Vec<(&FlowSpec, BuildError)> = Vec::new();
        let wanted: Vec<&FlowSpec> = state.flows.iter().filter(|s| !self.stopped.contains(&s.name)).collect();
        let changed: Vec<&FlowSpec> = wanted
            .iter()
            .copied()
            .filter(|s| self.desired.get(&s.name) != Some(*s) || !self.running.contains_key(&s.name))
            .collect();
        // A link's reading end is taken once: a rebuilt flow rebuilds every
        // flow linked to it. Devices make a whole group restart.
        let mut todo = Vec::new();
        let mut deferred = BTreeSet::new();
        // Only gains, mutes or pans changed on a running flow without
        // links: ramp them in and keep the graph (its devices, listeners
        // and recordings) running without a single dropped sample.
        let mut retuned = Vec::new();
        let changed: Vec<&FlowSpec> = changed
            .into_iter()
            .filter(|spec| {
                let retune =
                    self.desired.get(&spec.name).is_some_and(|old| only_input_params_differ(old, spec))
                        && self.running.contains_key(&spec.name)
                        && link_group(&wanted, &spec.name).len() == 1;
                if retune {
                    retuned.push(*spec);
                }
                !retune
            })
            .collect();
        for spec in &changed {
            let group = link_group(&wanted, &spec.name);
            let holds_devices =
                group.iter().any(|g| self.running.get(&g.name).is_some_and(|f| holds_exclusive(f.spec())));
            for member in group {
                if holds_devices {
                    deferred.insert(member.name.clone());
                }
                if !todo.iter().any(|t: &&FlowSpec| t.name == member.name) {
                    todo.push(member);
                }
            }
        }
        for spec in writers_first(todo) {
            if deferred.contains(&spec.name) {
                restart.push(spec);
                continue;
            }
            // A flow that will be swapped keeps its unchanged outputs running.
            let swapped_from = self.running.get(&spec.name).map(RunningFlow::spec).filter(|old| {
                old.sample_rate == spec.sample_rate && old.period == spec.period && !uses_alsa(spec)
            });
            let playing = self.running.get(&spec.name).map(RunningFlow::playing).unwrap_or_default();
            match build_replacing(spec, &self.options, Vec::new(), swapped_from, &playing) {
                Ok(built) => prepared.push((spec, built)),
                Err(e) => failed_builds.push((spec, e)),
            }
        }
        self.apply_pulls(&state.pulls, events)?;
        for spec in retuned {
            self.retune(spec)?;
        }
        let keep: BTreeSet<&Name> = state.flows.iter().map(|f| &f.name).collect();
        let gone: Vec<Name> = self.desired.keys().filter(|n| !keep.contains(n)).cloned().collect();
        for name in gone {
            self.desired.remove(&name);
            self.failed.remove(&name);
            self.reopened.remove(&name);
            self.stopped.remove(&name);
            if let Some(flow) = self.running.remove(&name) {
                flow.stop();
                events.push(EngineToCtl::FlowState { flow: name, state: FlowState::Stopped });
            }
        }
        for (spec, e) in failed_builds {
            // A flow whose new graph cannot be built stops (its old graph
            // would no longer match the state) and is retried on its own.
            if let Some(old) = self.running.remove(&spec.name) {
                old.stop();
            }
            self.desired.insert(spec.name.clone(), spec.clone());
            self.fail_for_retry(&spec.name, e.to_string(), events);
        }
        for (spec, built) in prepared {
            match self.running.get_mut(&spec.name) {
                Some(flow)
                    if flow.spec().sample_rate == spec.sample_rate
                        && flow.spec().period == spec.period
                        && !uses_alsa(spec) =>
                {
                    flow.replace(spec, built)?;
                }
                _ => {
                    if let Some(old) = self.running.remove(&spec.name) {
                        old.stop();
                    }
                    let flow = start_built(spec, built, &self.rt)?;
                    self.running.insert(spec.name.clone(), flow);
                }
            }
            events.push(EngineToCtl::FlowState { flow: spec.name.clone(), state: FlowState::Running });
        }
        let mut result = Ok(());
        for spec in restart {
            let mut playing = Vec::new();
            let previous = self.running.remove(&spec.name).map(|old| {
                let previous = old.spec().clone();
                playing = old.playing();
                old.stop();
                previous
            });
            match build_replacing(spec, &self.options, Vec::new(), None, &playing)
                .map_err(NodeError::from)
                .and_then(|built| start_built(spec, built, &self.rt).map_err(NodeError::from))
            {
                Ok(flow) => {
                    self.running.insert(spec.name.clone(), flow);
                    self.desired.insert(spec.name.clone(), spec.clone());
                    events
                        .push(EngineToCtl::FlowState { flow: spec.name.clone(), state: FlowState::Running });
                }
                Err(e) => {
                    if let Some(previous) = previous {
                        if let Ok(flow) =
                            build(&previous, &self.options, Vec::new()).map_err(NodeError::from).and_then(
                                |built| start_built(&previous, built, &self.rt).map_err(NodeError::from),
                            )
                        {
                            self.running.insert(previous.name.clone(), flow);
                        } else {
                            events.push(EngineToCtl::FlowState {
                                flow: previous.name.clone(),
                                state: FlowState::Failed { reason: e.to_string() },
                            });
                        }
                    }
                    result = result.and(Err(e));
                }
            }
        }
        for spec in &state.flows {
            let failed_restart = result.is_err() && self.desired.get(&spec.name).is_some_and(|d| d != spec);
            if !failed_restart || !holds_exclusive(spec) {
                self.desired.insert(spec.name.clone(), spec.clone());
            }
        }
        result
    }

    /// Sends the gain, mute, pan and source choice of every input of `spec`
    /// to its running flow.
    fn retune(&mut self, spec: &FlowSpec) -> Result<(), NodeError> {
        let flow = self.flow_mut(spec.name.as_str())?;
        for input in &spec.inputs {
            let (gain, muted, pan) = (input.gain_db.linear(), input.muted, input.pan.get());
            flow.set(input.name.as_str(), |i| ParamChange::Gain(i, gain))?;
            flow.set(input.name.as_str(), |i| ParamChange::Mute(i, muted))?;
            flow.set(input.name.as_str(), |i| ParamChange::Pan(i, pan))?;
            if let Some(f) = &input.failover {
                flow.select_source(input.name.as_str(), f.selected.as_ref().map(Name::as_str))?;
            }
            flow.note_input(input.name.as_str(), |i| {
                i.gain_db = input.gain_db;
                i.muted = input.muted;
                i.pan = input.pan;
                if let (Some(to), Some(from)) = (i.failover.as_mut(), input.failover.as_ref()) {
                    to.selected = from.selected.clone();
                }
            });
        }
        Ok(())
    }

    /// Starts a flow of the desired state that was stopped.
    pub fn start_flow(&mut self, name: &str, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        let spec = self.desired.get(name).ok_or_else(|| NodeError::UnknownFlow(name.into()))?.clone();
        if self.running.contains_key(name) {
            return Ok(());
        }
        self.start_linked(&spec.name, events)?;
        self.stopped.remove(&spec.name);
        Ok(())
    }

    /// (Re)starts `name` and every running flow linked to it, writers first:
    /// a link's ends are made together. Control thread only.
    fn start_linked(&mut self, name: &Name, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        let desired: Vec<FlowSpec> = self.desired.values().cloned().collect();
        let all: Vec<&FlowSpec> = desired.iter().collect();
        let group: Vec<&FlowSpec> = link_group(&all, name)
            .into_iter()
            .filter(|g| &g.name == name || self.running.contains_key(&g.name))
            .collect();
        for spec in writers_first(group) {
            if let Some(old) = self.running.remove(&spec.name) {
                old.stop();
            }
            let built = build(spec, &self.options, Vec::new())?;
            let flow = start_built(spec, built, &self.rt)?;
            self.running.insert(spec.name.clone(), flow);
            events.push(EngineToCtl::FlowState { flow: spec.name.clone(), state: FlowState::Running });
        }
        Ok(())
    }

    /// Stops a flow; it stays in the desired state, stopped.
    pub fn stop_flow(&mut self, name: &str, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        let key = self
            .desired
            .keys()
            .find(|n| n.as_str() == name)
            .cloned()
            .ok_or_else(|| NodeError::UnknownFlow(name.into()))?;
        if let Some(flow) = self.running.remove(&key) {
            flow.stop();
            self.return_memory();
        }
        self.failed.remove(&key);
        self.stopped.insert(key.clone());
        events.push(EngineToCtl::FlowState { flow: key, state: FlowState::Stopped });
        Ok(())
    }

    fn flow_mut(&mut self, flow: &str) -> Result<&mut RunningFlow, NodeError> {
        self.running.get_mut(flow).ok_or_else(|| NodeError::UnknownFlow(flow.chars().take(64).collect()))
    }

    /// Sets one input's gain (ramped over a period). The desired state
    /// follows, so a later state carrying the same value changes nothing.
    pub fn set_gain(&mut self, flow: &str, input: &str, gain: GainDb) -> Result<(), NodeError> {
        let linear = gain.linear();
        self.flow_mut(flow)?.set(input, |i| ParamChange::Gain(i, linear))?;
        self.note_input(flow, input, |i| i.gain_db = gain);
        Ok(())
    }

    /// Mutes or unmutes one input (ramped).
    pub fn set_mute(&mut self, flow: &str, input: &str, muted: bool) -> Result<(), NodeError> {
        self.flow_mut(flow)?.set(input, |i| ParamChange::Mute(i, muted))?;
        self.note_input(flow, input, |i| i.muted = muted);
        Ok(())
    }

    /// Sets one input's pan.
    pub fn set_pan(&mut self, flow: &str, input: &str, pan: Pan) -> Result<(), NodeError> {
        let p = pan.get();
        self.flow_mut(flow)?.set(input, |i| ParamChange::Pan(i, p))?;
        self.note_input(flow, input, |i| i.pan = pan);
        Ok(())
    }

    /// Forces the source an input with backups plays, or returns it to
    /// automatic selection (`None`). The desired state follows, so the
    /// choice holds across rebuilds.
    pub fn select_source(&mut self, flow: &str, input: &str, source: Option<Name>) -> Result<(), NodeError> {
        self.flow_mut(flow)?.select_source(input, source.as_ref().map(Name::as_str))?;
        self.note_input(flow, input, |i| {
            if let Some(f) = i.failover.as_mut() {
                f.selected = source.clone();
            }
        });
        Ok(())
    }

    /// Records a parameter change in the desired and running specs of
    /// `flow`, so the next state that carries it is seen as unchanged.
    fn note_input(&mut self, flow: &str, input: &str, change: impl Fn(&mut airlift_ipc::spec::InputSpec)) {
        if let Some(spec) = self.desired.get_mut(flow)
            && let Some(i) = spec.inputs.iter_mut().find(|i| i.name.as_str() == input)
        {
            change(i);
        }
        if let Some(running) = self.running.get_mut(flow) {
            running.note_input(input, change);
        }
    }

    /// Periods processed so far by each running flow (for liveness checks).
    pub fn periods(&self) -> BTreeMap<Name, u64> {
        self.running.iter().map(|(n, f)| (n.clone(), f.stats().periods)).collect()
    }

    /// The state of every flow and pull job of the desired state, as
    /// events: what a newly connected ctl is told (it may have restarted
    /// while the engine ran on). Control thread only.
    pub fn current_states(&self) -> Vec<EngineToCtl> {
        let mut out = Vec::new();
        for name in self.desired.keys() {
            let state = if self.running.contains_key(name) {
                FlowState::Running
            } else if self.failed.contains_key(name) {
                let reason =
                    self.reasons.0.get(name).cloned().unwrap_or_else(|| "waiting to be rebuilt".into());
                FlowState::Failed { reason }
            } else {
                FlowState::Stopped
            };
            out.push(EngineToCtl::FlowState { flow: name.clone(), state });
        }
        for (name, job) in &self.pulls {
            out.push(EngineToCtl::PullState { job: name.clone(), state: job.status().state() });
        }
        for name in self.pulls_failed.keys() {
            let reason = self.reasons.1.get(name).cloned().unwrap_or_else(|| "waiting to start".into());
            out.push(EngineToCtl::PullState { job: name.clone(), state: FlowState::Failed { reason } });
        }
        out
    }

    /// The live counters of every running flow, for a watchdog thread that
    /// reads their period counts without the control thread.
    pub fn period_counters(&self) -> Vec<(Name, std::sync::Arc<crate::rt::stats::FlowCounters>)> {
        self.running.iter().map(|(n, f)| (n.clone(), f.counters())).collect()
    }

    /// Statistics of every running flow.
    pub fn stats(&self) -> EngineStats {
        let pulls = self
            .pulls
            .iter()
            .map(|(job, pull)| {
                let s = pull.status();
                let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                PullStats {
                    job: job.to_string(),
                    connects: get(&s.connects),
                    bytes: get(&s.bytes),
                    packets: get(&s.packets),
                    bitrate_bps: get(&s.bitrate_bps),
                    cc_errors: get(&s.cc_errors),
                    unparsable_packets: get(&s.garbage),
                    pcr_jitter_us: get(&s.pcr_jitter_us),
                    segments: get(&s.segments),
                    forced_cuts: get(&s.forced_cuts),
                    since_key_frame_ms: s.since_key_ms(),
                    junk_bytes: get(&s.junk_bytes),
                }
            })
            .collect();
        EngineStats {
            flows: self.running.values().map(RunningFlow::stats).collect(),
            pulls,
            segment_jobs: self.options.spool_events.job_stats(),
        }
    }

    /// State and statistics of every SRT link, by flow. Control thread only.
    pub fn srt_links(&self) -> Vec<(String, SrtLinkSnapshot)> {
        self.running
            .iter()
            .flat_map(|(name, flow)| flow.srt_links().into_iter().map(move |l| (name.to_string(), l)))
            .collect()
    }

    /// Collects replaced graphs, turns processor and device reports into
    /// events, fails flows whose device was lost and reopens them with
    /// backoff.
    pub fn poll(&mut self, events: &mut Vec<EngineToCtl>) {
        self.options.spool_events.drain_into(events);
        let mut lost = Vec::new();
        for (name, flow) in &mut self.running {
            flow.collect();
            let mut meters: Option<Vec<ChannelMeter>> = None;
            let mut loudness = None;
            let spec = flow.spec().clone();
            flow.drain_reports(|r| match r {
                Report::Meters { channels, levels } => meters = Some(levels[..channels].to_vec()),
                Report::Loudness(l) => loudness = Some(l),
                Report::Silence(silent) => events.push(EngineToCtl::Silence { flow: name.clone(), silent }),
                Report::Xrun { node, total } => {
                    if let Some(node) = node_name(&spec, node) {
                        events.push(EngineToCtl::Xrun { flow: name.clone(), node, total });
                    }
                }
                Report::InputSwitched { input, source, reason } => {
                    let Some(i) = spec.inputs.get(input) else { return };
                    let Some(f) = i.failover.as_ref() else { return };
                    let Some(source) = f.source_name(source).and_then(|n| Name::new(n).ok()) else { return };
                    tracing::info!(
                        flow = %name,
                        input = %i.name,
                        source = %source,
                        reason = reason.as_str(),
                        "input switched source"
                    );
                    events.push(EngineToCtl::InputSwitched {
                        flow: name.clone(),
                        input: i.name.clone(),
                        source,
                        reason,
                    });
                }
                Report::DeviceLost { node, errno } => {
                    let node = node_name(&spec, node).map(|n| n.to_string()).unwrap_or_default();
                    let why = nix::errno::Errno::from_raw(errno).desc();
                    lost.push((name.clone(), format!("ALSA device of {node} lost: {why}")));
                }
            });
            if meters.is_some() || loudness.is_some() {
                events.push(EngineToCtl::Meters {
                    flow: name.clone(),
                    channels: meters.unwrap_or_default(),
                    loudness,
                });
            }
        }
        self.fail_and_reopen(lost, events);
        self.retry_pulls(events);
        self.link_events(events);
        if self.trim_again_at.is_some_and(|at| at <= Instant::now()) {
            self.trim_again_at = None;
            self.return_memory_now();
        }
    }

    /// Sends an [`EngineToCtl::SrtLink`] for each SRT link that is new, or
    /// whose state or connect/refusal counts changed since the last look
    /// (so a reconnect between two looks is not missed either).
    fn link_events(&mut self, events: &mut Vec<EngineToCtl>) {
        let mut seen = BTreeMap::new();
        for (flow, flow_run) in &self.running {
            for link in flow_run.srt_links() {
                let key = (flow.clone(), link.name.clone());
                let now = (link.state, link.connects, link.refusals);
                if self.links_seen.get(&key) != Some(&now) {
                    events.push(EngineToCtl::SrtLink {
                        flow: flow.clone(),
                        link: link.name.clone(),
                        state: link.state,
                        connects: link.connects,
                        refusals: link.refusals,
                    });
                }
                seen.insert(key, now);
            }
        }
        self.links_seen = seen;
    }

    /// Reports `name` failed and schedules its rebuild: 0.5 s after the
    /// first failure, twice as long after each failure that follows soon
    /// after a reopen, at most 30 s.
    fn fail_for_retry(&mut self, name: &Name, reason: String, events: &mut Vec<EngineToCtl>) {
        tracing::warn!(flow = %name, %reason, "flow failed; retrying with backoff");
        self.reasons.0.insert(name.clone(), reason.clone());
        events.push(EngineToCtl::FlowState { flow: name.clone(), state: FlowState::Failed { reason } });
        let delay = match (self.reopened.remove(name), self.failed.get(name)) {
            (_, Some(pending)) => (pending.delay * 2).min(REOPEN_MAX),
            (Some(last), None) if last.at.elapsed() < REOPEN_MAX => (last.delay * 2).min(REOPEN_MAX),
            _ => REOPEN_FIRST,
        };
        self.failed.insert(name.clone(), Reopen { at: Instant::now() + delay, delay });
    }

    /// Flows that failed and wait for their next build attempt.
    pub fn failed_flows(&self) -> impl Iterator<Item = &Name> {
        self.failed.keys()
    }

    /// Stops flows whose device was lost (the audio thread already runs on
    /// the internal clock, so this joins promptly), then rebuilds failed
    /// flows whose backoff has passed.
    fn fail_and_reopen(&mut self, lost: Vec<(Name, String)>, events: &mut Vec<EngineToCtl>) {
        for (name, reason) in lost {
            if let Some(flow) = self.running.remove(&name) {
                flow.stop();
            }
            self.fail_for_retry(&name, reason, events);
        }
        let now = Instant::now();
        let due: Vec<Name> =
            self.failed.iter().filter(|(_, r)| r.at <= now).map(|(n, _)| n.clone()).collect();
        for name in due {
            let Some(spec) = self.desired.get(&name).cloned().filter(|_| !self.stopped.contains(&name))
            else {
                self.failed.remove(&name);
                continue;
            };
            match self.start_linked(&spec.name, events) {
                Ok(()) => {
                    if let Some(r) = self.failed.remove(&name) {
                        self.reopened.insert(name.clone(), Reopen { at: now, delay: r.delay });
                    }
                }
                Err(e) => {
                    if let Some(r) = self.failed.get_mut(&name) {
                        r.delay = (r.delay * 2).min(REOPEN_MAX);
                        r.at = now + r.delay;
                        tracing::debug!(flow = %name, error = %e, retry_in = ?r.delay, "reopen failed");
                    }
                }
            }
        }
    }

    /// Stops every flow, draining and closing recordings and segments, and
    /// every pull job.
    pub fn shutdown(&mut self, events: &mut Vec<EngineToCtl>) {
        for (name, flow) in std::mem::take(&mut self.running) {
            flow.stop();
            events.push(EngineToCtl::FlowState { flow: name, state: FlowState::Stopped });
        }
        for (_, job) in std::mem::take(&mut self.pulls) {
            job.stop();
        }
        self.options.spool_events.drain_into(events);
    }
}

mod pulls;

mod helpers;
use helpers::*;
