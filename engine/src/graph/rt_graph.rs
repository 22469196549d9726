//! The graph the audio thread runs: every buffer preallocated, every ring end
//! owned, so [`RtGraph::process`] never allocates, locks or makes a syscall
//! in realtime pacing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

use crate::dsp::mix::{MixKernel, MixTerm};
use crate::dsp::pan::route_gain;
use crate::dsp::signal::SignalGenerator;
use crate::graph::processor::{Bus, Processor};
use crate::rt::stats::FlowCounters;

/// How the graph treats rings that are empty or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Never wait: a dry input gives silence, a full output drops the period;
    /// both are counted.
    Realtime,
    /// Offline rendering: wait for workers, so every sample arrives.
    Offline,
}

/// Where an input's samples come from.
pub enum Source {
    /// Generated on the audio thread.
    Signal(SignalGenerator),
    /// Interleaved samples from a worker thread.
    Ring {
        /// Ring end.
        ring: rtrb::Consumer<f32>,
        /// Set by the worker when no more samples will come.
        ended: Arc<AtomicBool>,
        /// The worker, woken in offline pacing.
        worker: Thread,
    },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Signal(g) => f.debug_tuple("Signal").field(g).finish(),
            Source::Ring { .. } => f.write_str("Ring"),
        }
    }
}

/// One input of the graph.
#[derive(Debug)]
pub struct RtInput {
    /// The source.
    pub source: Source,
    /// Channels delivered by the source.
    pub channels: usize,
    /// Index of the input's first plane.
    pub first_plane: usize,
    /// Linear gain.
    pub gain: f32,
    /// Pan position.
    pub pan: f32,
    /// Muted.
    pub muted: bool,
}

/// Where the bus goes.
pub enum Sink {
    /// Nowhere.
    Null,
    /// Interleaved to a worker thread.
    Ring {
        /// Ring end.
        ring: rtrb::Producer<f32>,
        /// The worker, woken in offline pacing.
        worker: Thread,
    },
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Null => "Null",
            Sink::Ring { .. } => "Ring",
        })
    }
}

/// A parameter change for one input; `Copy`, so it crosses an `rtrb` ring
/// without allocating. Ramped over the next period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamChange {
    /// New linear gain of input `.0`.
    Gain(usize, f32),
    /// Mute (`true`) or unmute input `.0`.
    Mute(usize, bool),
    /// New pan of input `.0`.
    Pan(usize, f32),
}

/// One routed term: an input channel into a bus channel.
#[derive(Debug, Clone, Copy)]
struct Route {
    input: usize,
    input_channel: usize,
    /// Gain reached at the end of the last period.
    current: f32,
}

/// The graph of one flow as the audio thread sees it.
pub struct RtGraph {
    pacing: Pacing,
    kernel: MixKernel,
    frames: usize,
    stride: usize,
    rate: u32,
    bus_channels: usize,
    /// Input planes, `stride` floats each.
    planes: Vec<f32>,
    /// Bus planes.
    bus: Vec<f32>,
    /// Interleaving scratch, `bus_channels * stride`.
    scratch: Vec<f32>,
    inputs: Vec<RtInput>,
    /// Per bus channel: the routes into it and their mix terms (same order).
    routes: Vec<Vec<Route>>,
    terms: Vec<Vec<MixTerm>>,
    processors: Vec<Box<dyn Processor>>,
    sinks: Vec<Sink>,
    counters: Arc<FlowCounters>,
}

impl std::fmt::Debug for RtGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtGraph")
            .field("frames", &self.frames)
            .field("bus_channels", &self.bus_channels)
            .field("inputs", &self.inputs)
            .field("processors", &self.processors.len())
            .field("sinks", &self.sinks)
            .finish()
    }
}

/// What [`RtGraph::process`] noticed in one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodReport {
    /// An input ring ran dry.
    pub underrun: bool,
    /// An output ring was full.
    pub overrun: bool,
    /// Every ring source has ended and is drained (offline rendering stops).
    pub sources_ended: bool,
}

impl RtGraph {
    /// Assembles a graph. Control thread only: allocates every buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pacing: Pacing,
        kernel: MixKernel,
        frames: usize,
        rate: u32,
        bus_channels: usize,
        inputs: Vec<RtInput>,
        processors: Vec<Box<dyn Processor>>,
        sinks: Vec<Sink>,
        counters: Arc<FlowCounters>,
    ) -> Self {
        let stride = frames.next_multiple_of(crate::dsp::mix::BLOCK);
        let total_planes = inputs.iter().map(|i| i.first_plane + i.channels).max().unwrap_or(0);
        let mut routes = vec![Vec::new(); bus_channels];
        for (i, input) in inputs.iter().enumerate() {
            for ic in 0..input.channels {
                for (bc, list) in routes.iter_mut().enumerate() {
                    if route_gain(input.channels, bus_channels, ic, bc, input.pan).is_some() {
                        let current = Self::target_gain(input, bus_channels, ic, bc);
                        list.push(Route { input: i, input_channel: ic, current });
                    }
                }
            }
        }
        let terms = routes
            .iter()
            .map(|list| list.iter().map(|r| MixTerm { plane: 0, gain: r.current, step: 0.0 }).collect())
            .collect();
        let mut graph = Self {
            pacing,
            kernel,
            frames,
            stride,
            rate,
            bus_channels,
            planes: vec![0.0; total_planes * stride],
            bus: vec![0.0; bus_channels * stride],
            scratch: vec![0.0; bus_channels * stride],
            inputs,
            routes,
            terms,
            processors,
            sinks,
            counters,
        };
        for bc in 0..bus_channels {
            for (r, t) in graph.routes[bc].iter().zip(graph.terms[bc].iter_mut()) {
                t.plane = graph.inputs[r.input].first_plane + r.input_channel;
            }
        }
        graph
    }

    fn target_gain(input: &RtInput, bus_channels: usize, ic: usize, bc: usize) -> f32 {
        if input.muted {
            return 0.0;
        }
        input.gain * route_gain(input.channels, bus_channels, ic, bc, input.pan).unwrap_or(0.0)
    }

    /// The same graph reporting into `counters` (a rebuilt flow keeps its
    /// counters). Control thread only.
    pub fn with_counters(mut self: Box<Self>, counters: Arc<FlowCounters>) -> Box<Self> {
        self.counters = counters;
        self
    }

    /// Calls [`Processor::finish`] on every processor. Control thread only,
    /// after the last period.
    pub fn finish_processors(&mut self) {
        for p in &mut self.processors {
            p.finish();
        }
    }

    /// Frames per period.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Bus channels.
    pub fn bus_channels(&self) -> usize {
        self.bus_channels
    }

    /// The flow's counters.
    pub fn counters(&self) -> &Arc<FlowCounters> {
        &self.counters
    }

    /// Channel `c` of the bus after the last period (for tests and embedding).
    pub fn bus_channel(&self, c: usize) -> &[f32] {
        &self.bus[c * self.stride..][..self.frames]
    }

    /// Applies a parameter change; it ramps in over the next period.
    /// Realtime-safe. Out-of-range input indices are ignored (the control
    /// side resolves names before sending).
    pub fn apply(&mut self, change: ParamChange) {
        let (ParamChange::Gain(i, _) | ParamChange::Mute(i, _) | ParamChange::Pan(i, _)) = change;
        let Some(input) = self.inputs.get_mut(i) else {
            return;
        };
        match change {
            ParamChange::Gain(_, g) => input.gain = g,
            ParamChange::Mute(_, m) => input.muted = m,
            ParamChange::Pan(_, p) => input.pan = p,
        }
    }

    /// Runs one period: pull inputs, mix, process, push outputs.
    /// Realtime-safe in [`Pacing::Realtime`].
    pub fn process(&mut self) -> PeriodReport {
        self.process_frames(self.frames)
    }

    /// Runs a short period of `frames` (at most the period size; offline
    /// rendering uses it to end on an exact frame count). Realtime-safe in
    /// [`Pacing::Realtime`].
    pub fn process_frames(&mut self, frames: usize) -> PeriodReport {
        let frames = frames.min(self.frames);
        let mut report = PeriodReport { sources_ended: true, ..Default::default() };
        let (stride, pacing) = (self.stride, self.pacing);
        for input in &mut self.inputs {
            let planes = &mut self.planes[input.first_plane * stride..][..input.channels * stride];
            let (underrun, ended) = pull_input(input, planes, frames, stride, pacing);
            report.underrun |= underrun;
            report.sources_ended &= ended;
        }
        self.update_terms(frames);
        for bc in 0..self.bus_channels {
            let out = &mut self.bus[bc * stride..][..frames];
            self.kernel.mix(out, &self.planes, stride, &self.terms[bc]);
        }
        {
            let mut bus = Bus::new(&mut self.bus, stride, frames, self.bus_channels, self.rate);
            for p in &mut self.processors {
                p.process(&mut bus);
            }
        }
        self.interleave(frames);
        let need = frames * self.bus_channels;
        for sink in &mut self.sinks {
            if let Sink::Ring { ring, worker } = sink {
                if pacing == Pacing::Offline {
                    while ring.slots() < need && !ring.is_abandoned() {
                        worker.unpark();
                        std::thread::park_timeout(Duration::from_micros(100));
                    }
                }
                match ring.write_chunk(need) {
                    Ok(mut chunk) => {
                        let (a, b) = chunk.as_mut_slices();
                        a.copy_from_slice(&self.scratch[..a.len()]);
                        b.copy_from_slice(&self.scratch[a.len()..need]);
                        chunk.commit_all();
                    }
                    Err(_) => report.overrun = true,
                }
                if pacing == Pacing::Offline && ring.slots() < ring.buffer().capacity() / 2 {
                    worker.unpark();
                }
            }
        }
        report
    }

    /// Sets each term's ramp from the gain reached so far to the target.
    fn update_terms(&mut self, frames: usize) {
        let inv = 1.0 / frames as f32;
        for bc in 0..self.bus_channels {
            for (r, t) in self.routes[bc].iter_mut().zip(self.terms[bc].iter_mut()) {
                let target = Self::target_gain(&self.inputs[r.input], self.bus_channels, r.input_channel, bc);
                t.gain = r.current;
                t.step = if target == r.current { 0.0 } else { (target - r.current) * inv };
                r.current = target;
            }
        }
    }

    fn interleave(&mut self, frames: usize) {
        let (stride, ch) = (self.stride, self.bus_channels);
        if ch == 2 {
            let (l, r) = self.bus.split_at(stride);
            for (f, out) in self.scratch[..frames * 2].chunks_exact_mut(2).enumerate() {
                out[0] = l[f];
                out[1] = r[f];
            }
            return;
        }
        for c in 0..ch {
            let plane = &self.bus[c * stride..][..frames];
            for (f, &s) in plane.iter().enumerate() {
                self.scratch[f * ch + c] = s;
            }
        }
    }
}

/// Fills an input's planes for one period; returns (underrun, ended).
fn pull_input(
    input: &mut RtInput,
    planes: &mut [f32],
    frames: usize,
    stride: usize,
    pacing: Pacing,
) -> (bool, bool) {
    let ch = input.channels;
    match &mut input.source {
        Source::Signal(generator) => {
            let (first, rest) = planes.split_at_mut(stride);
            generator.fill(&mut first[..frames]);
            for c in 1..ch {
                rest[(c - 1) * stride..][..frames].copy_from_slice(&first[..frames]);
            }
            (false, true)
        }
        Source::Ring { ring, ended, worker } => {
            let need = frames * ch;
            if pacing == Pacing::Offline {
                while ring.slots() < need && !ended.load(Ordering::Acquire) {
                    worker.unpark();
                    std::thread::park_timeout(Duration::from_micros(100));
                }
            }
            let available = ring.slots().min(need) / ch * ch;
            let got = available / ch;
            if let Ok(chunk) = ring.read_chunk(available) {
                let (a, b) = chunk.as_slices();
                for (i, &s) in a.iter().chain(b.iter()).enumerate() {
                    planes[(i % ch) * stride + i / ch] = s;
                }
                chunk.commit_all();
            }
            for c in 0..ch {
                planes[c * stride..][got..frames].fill(0.0);
            }
            let finished = ended.load(Ordering::Acquire);
            if pacing == Pacing::Offline && ring.slots() < ring.buffer().capacity() / 2 {
                worker.unpark();
            }
            (got < frames && !finished, finished && ring.is_empty())
        }
    }
}
