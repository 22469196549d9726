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
use crate::graph::alsa::{AlsaDevice, XrunInjector};
use crate::graph::failover::Failover;
use crate::graph::processor::{Bus, Processor};
use crate::rt::bridge::{BridgeReader, BridgeWriter};
use crate::rt::clock::now_ns;
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
    /// An ALSA capture device, read with blocking I/O on the audio thread.
    Alsa(Box<AlsaDevice>),
    /// Another flow's audio, from another clock domain, through an adaptive
    /// resampler. Built with this graph's period and rate; its channels must
    /// equal the input's. It always produces whole periods.
    Bridge(Box<BridgeReader>),
    /// A primary source and its backups: plays the first healthy one in
    /// order of preference, crossfading at every switch.
    Failover(Box<Failover>),
}

impl Source {
    /// This source, or a failover's sources (primary first).
    pub fn members(&self) -> Box<dyn Iterator<Item = &Source> + '_> {
        match self {
            Source::Failover(f) => Box::new(f.sources()),
            s => Box::new(std::iter::once(s)),
        }
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Signal(g) => f.debug_tuple("Signal").field(g).finish(),
            Source::Ring { .. } => f.write_str("Ring"),
            Source::Alsa(d) => f.debug_tuple("Alsa").field(d).finish(),
            Source::Bridge(b) => f.debug_tuple("Bridge").field(b).finish(),
            Source::Failover(b) => f.debug_tuple("Failover").field(b).finish(),
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
    /// An ALSA playback device, written with blocking I/O on the audio thread.
    Alsa(Box<AlsaDevice>),
    /// To another flow in another clock domain. Its channels must equal the
    /// bus's.
    Bridge(Box<BridgeWriter>),
    /// Placeholder for sink `.0` of the graph this one replaces: an output
    /// whose spec did not change keeps its ring, worker, encoder and file
    /// across the swap ([`RtGraph::adopt_sinks`]). Silent until adopted.
    Carried(usize),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Null => f.write_str("Null"),
            Sink::Ring { .. } => f.write_str("Ring"),
            Sink::Alsa(d) => f.debug_tuple("Alsa").field(d).finish(),
            Sink::Bridge(b) => f.debug_tuple("Bridge").field(b).finish(),
            Sink::Carried(i) => f.debug_tuple("Carried").field(i).finish(),
        }
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
    inputs: Vec<RtInput>,
    /// Per bus channel: the routes into it and their mix terms (same order).
    routes: Vec<Vec<Route>>,
    terms: Vec<Vec<MixTerm>>,
    processors: Vec<Box<dyn Processor>>,
    sinks: Vec<Sink>,
    counters: Arc<FlowCounters>,
    /// The flow's frame count at this graph's first period (`u64::MAX`
    /// until then): where its new encoders' timestamps start, so a rebuilt
    /// flow's TS continues the old one's timeline.
    started_at: Arc<std::sync::atomic::AtomicU64>,
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
    /// An ALSA device of the graph is lost (it no longer blocks, so it no
    /// longer clocks the thread).
    pub device_lost: bool,
    /// ALSA xruns recovered in this period.
    pub xruns: u32,
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
            inputs,
            routes,
            terms,
            processors,
            sinks,
            counters,
            started_at: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
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
        for input in &mut self.inputs {
            if let Source::Bridge(reader) = &mut input.source {
                reader.publish_to(counters.clone());
            }
        }
        self.counters = counters;
        self
    }

    /// Takes over the sinks of `old` that this graph's [`Sink::Carried`]
    /// placeholders name, leaving the placeholders in `old` (which is then
    /// dropped off the audio thread as usual). Realtime-safe: moves values
    /// between existing slots, allocates and frees nothing.
    pub fn adopt_sinks(&mut self, old: &mut RtGraph) {
        for i in 0..self.sinks.len() {
            if let Sink::Carried(j) = self.sinks[i]
                && let Some(slot) = old.sinks.get_mut(j)
            {
                std::mem::swap(&mut self.sinks[i], slot);
            }
        }
    }

    /// Makes `marker` this graph's start marker (see [`RtGraph::started_at`]).
    /// Control thread only, before the graph runs.
    pub fn set_start_marker(&mut self, marker: Arc<std::sync::atomic::AtomicU64>) {
        self.started_at = marker;
    }

    /// The flow's frame count at this graph's first period, once it ran.
    pub fn started_at(&self) -> Option<u64> {
        Some(self.started_at.load(std::sync::atomic::Ordering::Acquire)).filter(|f| *f != u64::MAX)
    }

    /// Calls [`Processor::finish`] on every processor. Control thread only,
    /// after the last period.
    pub fn finish_processors(&mut self) {
        for p in &mut self.processors {
            p.finish();
        }
    }

    /// Whether the graph holds ALSA devices, whose blocking I/O then clocks
    /// the audio thread instead of the internal clock.
    pub fn has_devices(&self) -> bool {
        self.inputs.iter().flat_map(|i| i.source.members()).any(|s| matches!(s, Source::Alsa(_)))
            || self.sinks.iter().any(|s| matches!(s, Sink::Alsa(_)))
    }

    /// Handles that inject xruns into the graph's ALSA devices, inputs first
    /// then outputs. Control thread only.
    pub fn xrun_injectors(&self) -> Vec<XrunInjector> {
        let inputs = self.inputs.iter().flat_map(|i| i.source.members()).filter_map(|s| match s {
            Source::Alsa(d) => Some(d.xrun_injector()),
            _ => None,
        });
        let outputs = self.sinks.iter().filter_map(|s| match s {
            Sink::Alsa(d) => Some(d.xrun_injector()),
            _ => None,
        });
        inputs.chain(outputs).collect()
    }

    /// Lets playback devices play out what they hold. Control thread only,
    /// after the last period.
    pub fn drain_devices(&mut self) {
        for sink in &mut self.sinks {
            if let Sink::Alsa(d) = sink {
                d.drain();
            }
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
        if self.started_at.load(std::sync::atomic::Ordering::Relaxed) == u64::MAX {
            // Published before any sample of this graph reaches a ring.
            let at = self.counters.frames.load(std::sync::atomic::Ordering::Relaxed);
            self.started_at.store(at, std::sync::atomic::Ordering::Release);
        }
        let mut report = PeriodReport { sources_ended: true, ..Default::default() };
        let (stride, pacing) = (self.stride, self.pacing);
        for input in &mut self.inputs {
            let planes = &mut self.planes[input.first_plane * stride..][..input.channels * stride];
            let pull = Pull { frames, stride, pacing, counters: &self.counters };
            pull_source(&mut input.source, input.channels, planes, &pull, &mut report);
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
        let need = frames * self.bus_channels;
        for sink in &mut self.sinks {
            if let Sink::Bridge(writer) = sink {
                report.overrun |= !writer.push_planes(&self.bus, stride, frames, now_ns());
                continue;
            }
            if let Sink::Alsa(device) = sink {
                let outcome = device.playback(&self.bus, stride, self.bus_channels, frames);
                report.device_lost |= outcome.lost;
                report.xruns += outcome.xruns;
                continue;
            }
            if let Sink::Ring { ring, worker } = sink {
                if pacing == Pacing::Offline {
                    while ring.slots() < need && !ring.is_abandoned() {
                        worker.unpark();
                        std::thread::park_timeout(Duration::from_micros(100));
                    }
                }
                if !write_interleaved(ring, &self.bus, stride, self.bus_channels, frames) {
                    report.overrun = true;
                }
                self.counters.output_fill(ring.slots(), ring.buffer().capacity());
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
}

pub use crate::rt::ring::write_interleaved;

/// Fills an input's planes for one period; returns (underrun, ended).
/// Spreads interleaved frames of `channels` samples (`a` then `b`: the two
/// halves of a ring read) over planes `stride` apart.
fn deinterleave(a: &[f32], b: &[f32], planes: &mut [f32], stride: usize, channels: usize) {
    if a.len().is_multiple_of(channels) {
        transpose(a, planes, stride, channels, 0);
        transpose(b, planes, stride, channels, a.len() / channels);
        return;
    }
    // A read that splits a frame (writers push whole frames into rings of
    // whole frames, so this is the exception). Counters, not `i % channels`
    // and `i / channels`: a division per sample is slow.
    let (mut c, mut f) = (0, 0);
    for &s in a.iter().chain(b) {
        planes[c * stride + f] = s;
        c += 1;
        if c == channels {
            c = 0;
            f += 1;
        }
    }
}

/// Whole interleaved frames into planes from frame `first` on, in blocks of
/// 16 frames so each plane is written a cache line at a time.
fn transpose(src: &[f32], planes: &mut [f32], stride: usize, channels: usize, first: usize) {
    const BLOCK: usize = 16;
    for (i, block) in src.chunks(BLOCK * channels).enumerate() {
        let (start, n) = (first + i * BLOCK, block.len() / channels);
        for c in 0..channels {
            let plane = &mut planes[c * stride + start..][..n];
            for (f, d) in plane.iter_mut().enumerate() {
                *d = block[f * channels + c];
            }
        }
    }
}

/// One period's pull: its length, the plane stride, the pacing, and the
/// counters ring fills are reported to.
pub(crate) struct Pull<'a> {
    /// Frames this period.
    pub frames: usize,
    /// Floats between the planes of one source.
    pub stride: usize,
    /// Realtime or offline.
    pub pacing: Pacing,
    /// The flow's counters.
    pub counters: &'a FlowCounters,
}

/// Reads one period of `source` (delivering `channels` channels) into
/// `planes`, folding underruns, device state and the end of ring sources
/// into `report`. Returns whether the source delivered audio for the whole
/// period (silence substituted for a dry ring, a lost device or a
/// buffering bridge is not). Realtime-safe in [`Pacing::Realtime`].
pub(crate) fn pull_source(
    source: &mut Source,
    channels: usize,
    planes: &mut [f32],
    pull: &Pull<'_>,
    report: &mut PeriodReport,
) -> bool {
    let Pull { frames, stride, pacing, counters } = *pull;
    match source {
        Source::Bridge(reader) => {
            let delivered = reader.pull(planes, stride, now_ns());
            report.underrun |= !delivered && reader.starved() > 0;
            delivered
        }
        Source::Alsa(device) => {
            let outcome = device.capture(planes, stride, frames);
            report.device_lost |= outcome.lost;
            report.xruns += outcome.xruns;
            !outcome.lost
        }
        Source::Failover(failover) => failover.pull(planes, pull, report),
        Source::Signal(_) | Source::Ring { .. } => {
            let (underrun, ended) = pull_input(source, channels, planes, frames, stride, pacing);
            report.underrun |= underrun;
            report.sources_ended &= ended;
            if let Source::Ring { ring, .. } = source {
                counters.input_fill(ring.slots(), ring.buffer().capacity());
                return !underrun && !ended;
            }
            true
        }
    }
}

fn pull_input(
    source: &mut Source,
    ch: usize,
    planes: &mut [f32],
    frames: usize,
    stride: usize,
    pacing: Pacing,
) -> (bool, bool) {
    match source {
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
                deinterleave(a, b, planes, stride, ch);
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
        // Read by the caller before it gets here.
        Source::Alsa(_) | Source::Bridge(_) | Source::Failover(_) => (false, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn interleaving_into_the_ring_is_exact_across_wraps(
            channels in 1usize..6,
            frames in 1usize..70,
            capacity_frames in 70usize..200,
            writes in 1usize..12,
        ) {
            let stride = frames + 3;
            let planes: Vec<f32> = (0..channels * stride).map(|i| i as f32).collect();
            let (mut tx, mut rx) = rtrb::RingBuffer::new(capacity_frames * channels);
            let mut got = vec![0.0; frames * channels];
            for _ in 0..writes {
                prop_assert!(write_interleaved(&mut tx, &planes, stride, channels, frames));
                rx.pop_entire_slice(&mut got).unwrap();
                for f in 0..frames {
                    for c in 0..channels {
                        prop_assert_eq!(got[f * channels + c], planes[c * stride + f]);
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn deinterleaving_a_split_read_is_exact(
            channels in 1usize..70,
            frames in 1usize..40,
            split in 0.0f64..1.0,
            whole_frames: bool,
        ) {
            let stride = frames + 2;
            let interleaved: Vec<f32> = (0..frames * channels).map(|i| i as f32).collect();
            let at = if whole_frames {
                (frames as f64 * split) as usize * channels
            } else {
                (interleaved.len() as f64 * split) as usize
            };
            let mut planes = vec![-1.0; channels * stride];
            deinterleave(&interleaved[..at], &interleaved[at..], &mut planes, stride, channels);
            for c in 0..channels {
                for f in 0..stride {
                    let want = if f < frames { interleaved[f * channels + c] } else { -1.0 };
                    prop_assert_eq!(planes[c * stride + f], want);
                }
            }
        }
    }

    #[test]
    fn a_full_ring_takes_nothing() {
        let planes = vec![1.0; 64];
        let (mut tx, _rx) = rtrb::RingBuffer::new(40);
        assert!(write_interleaved(&mut tx, &planes, 32, 2, 16));
        assert!(!write_interleaved(&mut tx, &planes, 32, 2, 16));
        assert_eq!(tx.slots(), 8);
    }
}
