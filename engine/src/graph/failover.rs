//! Input failover: an input's own producer (the source `primary`) and its
//! backups, all running all the time, of which the input plays one.
//!
//! Every period each source is read into its own planes and judged: *lost*
//! when it has delivered no audio for `loss_ms` (a dry ring, a buffering
//! SRT input, a lost device), *silent* when its peak stayed below the
//! threshold for `silence_ms`. The input plays the first source, in order of
//! preference, that is neither; it goes back to a more preferred source once
//! that has been healthy for `return_after_ms`. An operator's choice
//! ([`FailoverControl::select`]) holds whatever the sources do. Every switch
//! crossfades linearly over `crossfade_ms`, is counted, and is reported
//! through a [`Report::InputSwitched`].
//!
//! `Failover::pull` runs on the audio thread: no allocation, no locks.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use airlift_ipc::spec::FailoverSpec;

use crate::graph::processor::Report;
use crate::graph::rt_graph::{PeriodReport, Pull, Source, pull_source};

pub use airlift_ipc::message::SwitchReason;

/// `selected` when the input chooses by itself.
const AUTO: usize = usize::MAX;

/// The control side's handle on a failover: which source plays, how often
/// it switched, and the operator's choice. Atomics: any thread.
#[derive(Debug)]
pub struct FailoverControl {
    active: AtomicUsize,
    switches: AtomicU64,
    selected: AtomicUsize,
    sources: usize,
}

impl FailoverControl {
    /// The index of the source playing (0: the primary).
    pub fn active(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Switches so far.
    pub fn switches(&self) -> u64 {
        self.switches.load(Relaxed)
    }

    /// The operator's choice, if any.
    pub fn selected(&self) -> Option<usize> {
        Some(self.selected.load(Relaxed)).filter(|&s| s != AUTO)
    }

    /// Forces source `index` (`None`: automatic again). Returns false for an
    /// index out of range (nothing changes).
    pub fn select(&self, index: Option<usize>) -> bool {
        match index {
            Some(i) if i >= self.sources => false,
            i => {
                self.selected.store(i.unwrap_or(AUTO), Relaxed);
                true
            }
        }
    }
}

/// How one source is doing, in frames.
#[derive(Debug, Default, Clone, Copy)]
struct Health {
    /// Frames since it last delivered audio.
    dry: usize,
    /// Frames it has been below the silence threshold.
    quiet: usize,
    /// Frames it has been healthy.
    healthy: usize,
}

/// One source of a failover.
struct Member {
    source: Source,
    channels: usize,
    health: Health,
}

/// An input's primary and backup sources, on the audio thread.
pub struct Failover {
    input: usize,
    members: Vec<Member>,
    /// The members' planes: member `m`'s channel `c` at `(m·MAXC + c)·stride`.
    planes: Vec<f32>,
    stride: usize,
    max_channels: usize,
    channels: usize,
    active: usize,
    /// The source faded out, and frames of the fade done.
    fading: Option<(usize, usize)>,
    fade_frames: usize,
    loss_frames: usize,
    silence: Option<(f32, usize)>,
    return_frames: usize,
    last_selected: usize,
    control: Arc<FailoverControl>,
    reports: rtrb::Producer<Report>,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover")
            .field("input", &self.input)
            .field("sources", &self.members.len())
            .field("active", &self.active)
            .finish()
    }
}

fn ms_to_frames(ms: u32, rate: u32) -> usize {
    (u64::from(ms) * u64::from(rate) / 1000) as usize
}

impl Failover {
    /// A failover for input `index` from `primary` and `backups` (each a
    /// source with its channel count), delivering the primary's channels,
    /// at `rate` Hz in periods of `period` frames; switches are reported
    /// into `reports`. It starts on the operator's choice, else on
    /// `resume` (the source the input it replaces was playing, so that a
    /// rebuild does not fall back to a lost primary and wait out the loss
    /// time again), else the primary. Control thread only: allocates every
    /// buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        spec: &FailoverSpec,
        primary: (Source, usize),
        backups: Vec<(Source, usize)>,
        rate: u32,
        period: usize,
        reports: rtrb::Producer<Report>,
        resume: Option<&str>,
    ) -> (Failover, Arc<FailoverControl>) {
        let channels = primary.1;
        let members: Vec<Member> = std::iter::once(primary)
            .chain(backups)
            .map(|(source, channels)| Member { source, channels, health: Health::default() })
            .collect();
        let max_channels = members.iter().map(|m| m.channels).max().unwrap_or(1).max(1);
        let selected = spec
            .selected
            .as_ref()
            .and_then(|s| spec.source_index(s.as_str()))
            .filter(|&i| i < members.len())
            .unwrap_or(AUTO);
        let resumed = resume.and_then(|s| spec.source_index(s)).filter(|&i| i < members.len()).unwrap_or(0);
        let active = if selected == AUTO { resumed } else { selected };
        let control = Arc::new(FailoverControl {
            active: AtomicUsize::new(active),
            switches: AtomicU64::new(0),
            selected: AtomicUsize::new(selected),
            sources: members.len(),
        });
        let failover = Failover {
            input: index,
            planes: vec![0.0; members.len() * max_channels * period],
            members,
            stride: period,
            max_channels,
            channels,
            active,
            fading: None,
            fade_frames: ms_to_frames(spec.crossfade_ms, rate),
            loss_frames: ms_to_frames(spec.loss_ms, rate).max(1),
            silence: spec
                .silence_threshold_dbfs
                .map(|t| (10f32.powf(t.get() / 20.0), ms_to_frames(spec.silence_ms, rate).max(1))),
            return_frames: ms_to_frames(spec.return_after_ms, rate),
            last_selected: selected,
            control: control.clone(),
            reports,
        };
        (failover, control)
    }

    /// The sources, primary first. Control thread only.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.members.iter().map(|m| &m.source)
    }

    /// Reads every source for one period, picks the one to play, and writes
    /// it (crossfaded during a switch) into `planes` (the primary's
    /// channels, `pull.stride` apart). Returns whether the input delivered
    /// audio. Realtime-safe.
    pub(crate) fn pull(&mut self, planes: &mut [f32], pull: &Pull<'_>, report: &mut PeriodReport) -> bool {
        let frames = pull.frames.min(self.stride);
        let inner = Pull { frames, stride: self.stride, pacing: pull.pacing, counters: pull.counters };
        let mut delivered_active = false;
        let len = self.max_channels * self.stride;
        for m in 0..self.members.len() {
            let (member, stride) = (&mut self.members[m], self.stride);
            let mut sub = PeriodReport { sources_ended: true, ..Default::default() };
            let own = &mut self.planes[m * len..][..member.channels * stride];
            let delivered = pull_source(&mut member.source, member.channels, own, &inner, &mut sub);
            let peak =
                own.chunks(stride).flat_map(|plane| plane[..frames].iter()).fold(0f32, |p, s| p.max(s.abs()));
            // A lost device counts for the flow whichever source plays.
            report.device_lost |= sub.device_lost;
            report.xruns += sub.xruns;
            if m == self.active {
                report.underrun |= sub.underrun;
                delivered_active = delivered;
            }
            self.judge(m, delivered, peak, frames);
        }
        self.choose();
        self.write(planes, pull.stride, frames);
        delivered_active
    }

    fn judge(&mut self, m: usize, delivered: bool, peak: f32, frames: usize) {
        let h = &mut self.members[m].health;
        h.dry = if delivered { 0 } else { h.dry.saturating_add(frames) };
        h.quiet = match self.silence {
            Some((threshold, _)) if peak < threshold => h.quiet.saturating_add(frames),
            _ => 0,
        };
        let lost = h.dry >= self.loss_frames;
        let silent = self.silence.is_some_and(|(_, hold)| h.quiet >= hold);
        h.healthy = if lost || silent || !delivered { 0 } else { h.healthy.saturating_add(frames) };
    }

    /// Why source `m` is unfit to play, if it is.
    fn unfit(&self, m: usize) -> Option<SwitchReason> {
        let h = self.members[m].health;
        if h.dry >= self.loss_frames {
            Some(SwitchReason::Loss)
        } else if self.silence.is_some_and(|(_, hold)| h.quiet >= hold) {
            Some(SwitchReason::Silence)
        } else {
            None
        }
    }

    fn choose(&mut self) {
        let selected = self.control.selected.load(Relaxed);
        if selected != self.last_selected {
            self.last_selected = selected;
            if selected != AUTO && selected < self.members.len() {
                self.switch(selected, SwitchReason::Forced);
                return;
            }
            if selected == AUTO {
                // Back to automatic: the best source now, without waiting.
                let best = (0..self.members.len()).find(|&m| self.unfit(m).is_none()).unwrap_or(self.active);
                self.switch(best, SwitchReason::Auto);
                return;
            }
        }
        if selected != AUTO {
            return;
        }
        if let Some(reason) = self.unfit(self.active) {
            if let Some(next) = (0..self.members.len()).find(|&m| m != self.active && self.unfit(m).is_none())
            {
                self.switch(next, reason);
            }
            return;
        }
        if let Some(better) =
            (0..self.active).find(|&m| self.members[m].health.healthy >= self.return_frames.max(1))
        {
            self.switch(better, SwitchReason::Recovered);
        }
    }

    fn switch(&mut self, to: usize, reason: SwitchReason) {
        if to == self.active {
            return;
        }
        self.fading = (self.fade_frames > 0).then_some((self.active, 0));
        self.active = to;
        self.control.active.store(to, Relaxed);
        self.control.switches.fetch_add(1, Relaxed);
        let _ = self.reports.push(Report::InputSwitched { input: self.input, source: to, reason });
    }

    /// Writes the active source (and the one fading out) in the primary's
    /// channel layout: a mono source feeds every channel, otherwise
    /// channel `c` takes source channel `c` modulo its count.
    fn write(&mut self, planes: &mut [f32], stride: usize, frames: usize) {
        let len = self.max_channels * self.stride;
        let new = &self.planes[self.active * len..][..len];
        let new_channels = self.members[self.active].channels;
        for c in 0..self.channels {
            let src = &new[(c % new_channels) * self.stride..][..frames];
            planes[c * stride..][..frames].copy_from_slice(src);
        }
        let Some((old_index, done)) = self.fading else { return };
        let old = &self.planes[old_index * len..][..len];
        let old_channels = self.members[old_index].channels;
        let total = self.fade_frames as f32;
        for c in 0..self.channels {
            let src = &old[(c % old_channels) * self.stride..][..frames];
            let out = &mut planes[c * stride..][..frames];
            for (f, (o, &s)) in out.iter_mut().zip(src).enumerate() {
                let g = ((done + f) as f32 / total).min(1.0);
                *o = *o * g + s * (1.0 - g);
            }
        }
        let done = done + frames;
        self.fading = (done < self.fade_frames).then_some((old_index, done));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::rt_graph::Pacing;
    use crate::rt::stats::FlowCounters;
    use airlift_ipc::spec::{BackupSpec, ProducerSpec, TestSignalSpec};
    use airlift_ipc::units::{LevelDbfs, Name};

    const RATE: u32 = 48_000;
    const PERIOD: usize = 480;

    fn signal(level: f32) -> TestSignalSpec {
        toml::from_str(&format!("kind = \"sine\"\nfrequency = 1000.0\nlevel_dbfs = {level:.1}")).unwrap()
    }

    /// A primary fed from a ring the test fills (or not), a tone backup.
    fn rig(
        spec: &FailoverSpec,
    ) -> (Failover, Arc<FailoverControl>, rtrb::Producer<f32>, rtrb::Consumer<Report>) {
        let (feed, ring) = rtrb::RingBuffer::new(PERIOD * 64);
        let primary = Source::Ring {
            ring,
            ended: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            worker: std::thread::current(),
        };
        let backup = Source::Signal(crate::dsp::signal::SignalGenerator::new(&signal(-20.0), RATE));
        let (tx, rx) = rtrb::RingBuffer::new(16);
        let (f, c) = Failover::new(0, spec, (primary, 1), vec![(backup, 1)], RATE, PERIOD, tx, None);
        (f, c, feed, rx)
    }

    fn spec() -> FailoverSpec {
        let backup = BackupSpec {
            name: Name::new("tone").unwrap(),
            producer: ProducerSpec::TestSignal(signal(-20.0)),
        };
        FailoverSpec {
            loss_ms: 100,
            return_after_ms: 200,
            crossfade_ms: 5,
            ..FailoverSpec::new(vec![backup])
        }
    }

    fn period(f: &mut Failover, out: &mut [f32]) -> bool {
        let counters = FlowCounters::default();
        let pull = Pull { frames: PERIOD, stride: PERIOD, pacing: Pacing::Realtime, counters: &counters };
        let mut report = PeriodReport::default();
        f.pull(out, &pull, &mut report)
    }

    fn reasons(rx: &mut rtrb::Consumer<Report>) -> Vec<(usize, SwitchReason)> {
        let mut out = Vec::new();
        while let Ok(r) = rx.pop() {
            if let Report::InputSwitched { source, reason, .. } = r {
                out.push((source, reason));
            }
        }
        out
    }

    #[test]
    fn a_lost_primary_switches_after_the_loss_time_and_comes_back_after_the_hold() {
        let (mut f, control, mut feed, mut rx) = rig(&spec());
        let mut out = vec![0.0; PERIOD];
        // Primary delivering a constant 0.5.
        for _ in 0..5 {
            let _ = feed.push_partial_slice(&[0.5; PERIOD]);
            assert!(period(&mut f, &mut out));
            assert!(out.iter().all(|&s| s == 0.5));
        }
        // Primary gone: 100 ms = 10 periods of 10 ms until the switch.
        let mut switched_at = None;
        for p in 0..20 {
            period(&mut f, &mut out);
            if control.active() == 1 && switched_at.is_none() {
                switched_at = Some(p);
            }
        }
        assert_eq!(switched_at, Some(9), "switched once 100 ms of loss were seen");
        assert_eq!(reasons(&mut rx), vec![(1, SwitchReason::Loss)]);
        assert!(out.iter().any(|s| s.abs() > 0.05), "the tone plays");
        // Primary back: 200 ms healthy (20 periods) before returning.
        let mut back_at = None;
        for p in 0..30 {
            let _ = feed.push_partial_slice(&[0.5; PERIOD]);
            period(&mut f, &mut out);
            if control.active() == 0 && back_at.is_none() {
                back_at = Some(p);
            }
        }
        assert_eq!(back_at, Some(19));
        assert_eq!(reasons(&mut rx), vec![(0, SwitchReason::Recovered)]);
        assert_eq!(control.switches(), 2);
    }

    #[test]
    fn a_switch_crossfades_without_a_step() {
        let (mut f, _control, mut feed, _rx) = rig(&FailoverSpec { crossfade_ms: 20, ..spec() });
        let mut out = vec![0.0; PERIOD];
        let _ = feed.push_partial_slice(&[0.5; PERIOD]);
        period(&mut f, &mut out);
        let mut all = Vec::new();
        for _ in 0..15 {
            // The primary delivers, then goes dry.
            period(&mut f, &mut out);
            all.extend_from_slice(&out);
        }
        // From the constant 0.5 (then silence while dry) to a −20 dBFS
        // tone: no sample-to-sample step larger than the tone's own slope
        // plus the fade's (0.1·2π·1000/48000 + 1/960).
        let max_step = all.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0f32, f32::max);
        assert!(max_step < 0.016, "largest step {max_step}");
    }

    #[test]
    fn silence_switches_when_a_threshold_is_set_and_the_operator_choice_holds() {
        let s = FailoverSpec {
            silence_threshold_dbfs: Some(LevelDbfs::new(-50.0).unwrap()),
            silence_ms: 100,
            ..spec()
        };
        let (mut f, control, mut feed, mut rx) = rig(&s);
        let mut out = vec![0.0; PERIOD];
        for _ in 0..12 {
            let _ = feed.push_partial_slice(&[0.0; PERIOD]);
            period(&mut f, &mut out);
        }
        assert_eq!(reasons(&mut rx), vec![(1, SwitchReason::Silence)]);
        // Forced to the (silent) primary: it stays there.
        assert!(control.select(Some(0)));
        for _ in 0..30 {
            let _ = feed.push_partial_slice(&[0.0; PERIOD]);
            period(&mut f, &mut out);
        }
        assert_eq!(control.active(), 0);
        assert_eq!(reasons(&mut rx), vec![(0, SwitchReason::Forced)]);
        assert!(!control.select(Some(2)), "no third source");
        // Automatic again: the primary is silent, so the tone.
        assert!(control.select(None));
        let _ = feed.push_partial_slice(&[0.0; PERIOD]);
        period(&mut f, &mut out);
        assert_eq!(reasons(&mut rx), vec![(1, SwitchReason::Auto)]);
    }
}
