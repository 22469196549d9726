//! A node: the set of running flows, converged to a desired state.
//!
//! Control thread only. Every change is prepared (built) before anything
//! running is touched, so a command either applies whole or changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use airlift_ipc::message::{ChannelMeter, EngineStats, EngineToCtl, FlowState, RejectKind, Rejection};
use airlift_ipc::spec::{DesiredState, FlowSpec};
use airlift_ipc::units::{GainDb, Name, Pan};

use crate::flow::{ParamError, RunningFlow, start_built};
use crate::graph::build::{BuildError, BuildOptions, build};
use crate::graph::processor::{Processor, Report};
use crate::graph::rt_graph::{Pacing, ParamChange};
use crate::media::link::SrtLinkSnapshot;
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
}

impl NodeError {
    /// The IPC rejection for this error.
    pub fn rejection(&self) -> Rejection {
        let kind = match self {
            NodeError::Build(BuildError::Unsupported { .. }) | NodeError::Unsupported(_) => {
                RejectKind::Unsupported
            }
            NodeError::Build(BuildError::Thread { .. }) => RejectKind::Internal,
            NodeError::Build(_) => RejectKind::InvalidArgument,
            NodeError::Param(ParamError::UnknownInput { .. }) | NodeError::UnknownFlow(_) => {
                RejectKind::NotFound
            }
            NodeError::Param(ParamError::Busy { .. }) => RejectKind::Busy,
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
}

impl Node {
    /// An empty node building flows with `options` and asking `rt` for each
    /// audio thread.
    pub fn new(mut options: BuildOptions, rt: RealtimeRequest) -> Self {
        options.pacing = Pacing::Realtime;
        Self { options, rt, desired: BTreeMap::new(), stopped: BTreeSet::new(), running: BTreeMap::new() }
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

    /// Converges to `state`: stops flows that are gone, swaps the graph of
    /// flows whose spec changed, starts new ones, and leaves unchanged flows
    /// running untouched. All new graphs are built first; if any fails,
    /// nothing changes.
    pub fn apply_state(
        &mut self,
        state: &DesiredState,
        events: &mut Vec<EngineToCtl>,
    ) -> Result<(), NodeError> {
        state.validate().map_err(|e| NodeError::Build(BuildError::Invalid(e)))?;
        if !state.pulls.is_empty() {
            return Err(NodeError::Unsupported("pulling SRT streams into segments"));
        }
        let mut prepared = Vec::new();
        for spec in &state.flows {
            let unchanged = self.desired.get(&spec.name) == Some(spec);
            let wants_running = !self.stopped.contains(&spec.name);
            if unchanged || !wants_running {
                continue;
            }
            prepared.push((spec, build(spec, &self.options, Vec::new())?));
        }
        let keep: BTreeSet<&Name> = state.flows.iter().map(|f| &f.name).collect();
        let gone: Vec<Name> = self.desired.keys().filter(|n| !keep.contains(n)).cloned().collect();
        for name in gone {
            self.desired.remove(&name);
            self.stopped.remove(&name);
            if let Some(flow) = self.running.remove(&name) {
                flow.stop();
                events.push(EngineToCtl::FlowState { flow: name, state: FlowState::Stopped });
            }
        }
        for (spec, built) in prepared {
            match self.running.get_mut(&spec.name) {
                Some(flow)
                    if flow.spec().sample_rate == spec.sample_rate && flow.spec().period == spec.period =>
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
        for spec in &state.flows {
            self.desired.insert(spec.name.clone(), spec.clone());
        }
        Ok(())
    }

    /// Starts a flow of the desired state that was stopped.
    pub fn start_flow(&mut self, name: &str, events: &mut Vec<EngineToCtl>) -> Result<(), NodeError> {
        let spec = self.desired.get(name).ok_or_else(|| NodeError::UnknownFlow(name.into()))?.clone();
        if self.running.contains_key(name) {
            return Ok(());
        }
        let built = build(&spec, &self.options, Vec::new())?;
        let flow = start_built(&spec, built, &self.rt)?;
        self.running.insert(spec.name.clone(), flow);
        self.stopped.remove(&spec.name);
        events.push(EngineToCtl::FlowState { flow: spec.name, state: FlowState::Running });
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
        }
        self.stopped.insert(key.clone());
        events.push(EngineToCtl::FlowState { flow: key, state: FlowState::Stopped });
        Ok(())
    }

    fn flow_mut(&mut self, flow: &str) -> Result<&mut RunningFlow, NodeError> {
        self.running.get_mut(flow).ok_or_else(|| NodeError::UnknownFlow(flow.chars().take(64).collect()))
    }

    /// Sets one input's gain (ramped over a period).
    pub fn set_gain(&mut self, flow: &str, input: &str, gain: GainDb) -> Result<(), NodeError> {
        let linear = gain.linear();
        Ok(self.flow_mut(flow)?.set(input, |i| ParamChange::Gain(i, linear))?)
    }

    /// Mutes or unmutes one input (ramped).
    pub fn set_mute(&mut self, flow: &str, input: &str, muted: bool) -> Result<(), NodeError> {
        Ok(self.flow_mut(flow)?.set(input, |i| ParamChange::Mute(i, muted))?)
    }

    /// Sets one input's pan.
    pub fn set_pan(&mut self, flow: &str, input: &str, pan: Pan) -> Result<(), NodeError> {
        let p = pan.get();
        Ok(self.flow_mut(flow)?.set(input, |i| ParamChange::Pan(i, p))?)
    }

    /// Statistics of every running flow.
    pub fn stats(&self) -> EngineStats {
        EngineStats { flows: self.running.values().map(RunningFlow::stats).collect() }
    }

    /// State and statistics of every SRT link, by flow. Control thread only.
    pub fn srt_links(&self) -> Vec<(String, SrtLinkSnapshot)> {
        self.running
            .iter()
            .flat_map(|(name, flow)| flow.srt_links().into_iter().map(move |l| (name.to_string(), l)))
            .collect()
    }

    /// Collects replaced graphs and turns processor reports into events.
    pub fn poll(&mut self, events: &mut Vec<EngineToCtl>) {
        for (name, flow) in &mut self.running {
            flow.collect();
            let mut meters: Option<Vec<ChannelMeter>> = None;
            let mut loudness = None;
            flow.drain_reports(|r| match r {
                Report::Meters { channels, levels } => meters = Some(levels[..channels].to_vec()),
                Report::Loudness(l) => loudness = Some(l),
                Report::Silence(silent) => events.push(EngineToCtl::Silence { flow: name.clone(), silent }),
            });
            if meters.is_some() || loudness.is_some() {
                events.push(EngineToCtl::Meters {
                    flow: name.clone(),
                    channels: meters.unwrap_or_default(),
                    loudness,
                });
            }
        }
    }

    /// Stops every flow, draining and closing recordings.
    pub fn shutdown(&mut self, events: &mut Vec<EngineToCtl>) {
        for (name, flow) in std::mem::take(&mut self.running) {
            flow.stop();
            events.push(EngineToCtl::FlowState { flow: name, state: FlowState::Stopped });
        }
    }
}
