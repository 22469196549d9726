//! EBU R128 loudness (momentary, short-term, integrated) and true peak.
//!
//! The `ebur128` crate measures momentary and integrated loudness (in
//! histogram mode: fixed memory however long the flow runs) and true peak.
//! Short-term loudness (3 s) is kept here, as the mean of the last thirty
//! 100 ms block energies: the crate's own short-term mode keeps the last
//! three seconds of K-weighted audio in `f64` (2.2 MiB for a stereo flow at
//! 48 kHz), where thirty block energies are 240 bytes. At every block
//! boundary the two are the same sum.

use airlift_ipc::message::Loudness;

use super::processor::{Bus, MAX_CHANNELS, Processor, Report};

/// 100 ms blocks in the short-term window.
const SHORT_TERM_BLOCKS: usize = 30;

/// Loudness of a mean-square energy, as BS.1770 defines it.
fn energy_to_loudness(energy: f64) -> f64 {
    if energy > 0.0 { 10.0 * energy.log10() - 0.691 } else { f64::NEG_INFINITY }
}

/// Mean-square energy of a loudness (the inverse of [`energy_to_loudness`]).
fn loudness_to_energy(lufs: f64) -> f64 {
    if lufs.is_finite() { 10f64.powf((lufs + 0.691) / 10.0) } else { 0.0 }
}

/// EBU R128 loudness and true peak of the bus, reported every 100 ms (at
/// each block boundary).
pub struct LoudnessMeter {
    state: ebur128::EbuR128,
    /// Frames in a 100 ms block, as the crate counts them.
    block: usize,
    /// Frames of the current block so far.
    filled: usize,
    /// Energies of the last [`SHORT_TERM_BLOCKS`] blocks, a ring.
    blocks: [f64; SHORT_TERM_BLOCKS],
    next: usize,
    reports: rtrb::Producer<Report>,
}

impl std::fmt::Debug for LoudnessMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoudnessMeter").field("filled", &self.filled).finish_non_exhaustive()
    }
}

impl LoudnessMeter {
    /// A loudness meter for `channels` at `sample_rate`. Control thread only.
    pub fn new(
        channels: usize,
        sample_rate: u32,
        reports: rtrb::Producer<Report>,
    ) -> Result<Self, ebur128::Error> {
        use ebur128::Mode;
        let mode = Mode::M | Mode::I | Mode::TRUE_PEAK | Mode::HISTOGRAM;
        let state = ebur128::EbuR128::new(channels.min(MAX_CHANNELS) as u32, sample_rate, mode)?;
        Ok(Self {
            state,
            block: ((sample_rate as usize + 5) / 10).max(1),
            filled: 0,
            blocks: [0.0; SHORT_TERM_BLOCKS],
            next: 0,
            reports,
        })
    }

    /// The loudness so far.
    pub fn loudness(&self) -> Loudness {
        let channels = self.state.channels();
        let true_peak = (0..channels).filter_map(|c| self.state.true_peak(c).ok()).fold(0.0f64, f64::max);
        let short_term = self.blocks.iter().sum::<f64>() / SHORT_TERM_BLOCKS as f64;
        Loudness {
            momentary_lufs: self.state.loudness_momentary().unwrap_or(f64::NEG_INFINITY),
            short_term_lufs: energy_to_loudness(short_term),
            integrated_lufs: self.state.loudness_global().unwrap_or(f64::NEG_INFINITY),
            true_peak_dbtp: if true_peak > 0.0 { 20.0 * true_peak.log10() } else { f64::NEG_INFINITY },
        }
    }

    /// Ends a block: its energy joins the short-term window, and the
    /// loudness is reported.
    fn close_block(&mut self) {
        let energy = self.state.loudness_window(100).map_or(0.0, loudness_to_energy);
        self.blocks[self.next] = energy;
        self.next = (self.next + 1) % SHORT_TERM_BLOCKS;
        self.filled = 0;
        let _ = self.reports.push(Report::Loudness(self.loudness()));
    }
}

impl Processor for LoudnessMeter {
    fn process(&mut self, bus: &mut Bus<'_>) {
        let channels = (self.state.channels() as usize).min(bus.channels());
        let frames = bus.frames();
        let mut done = 0;
        while done < frames {
            let take = (self.block - self.filled).min(frames - done);
            let mut planes: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (c, p) in planes.iter_mut().enumerate().take(channels) {
                *p = &bus.channel(c)[done..done + take];
            }
            // The only error is a channel-count mismatch, excluded above.
            let _ = self.state.add_frames_planar_f32(&planes[..channels]);
            self.filled += take;
            done += take;
            if self.filled == self.block {
                self.close_block();
            }
        }
    }

    fn finish(&mut self) {
        let _ = self.reports.push(Report::Loudness(self.loudness()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `signal` (planar stereo, `period` frames at a time) through a
    /// meter and, beside it, through the crate in its own short-term mode;
    /// returns both readings at every block boundary.
    fn both(signal: &[Vec<f32>; 2], period: usize) -> Vec<(Loudness, Loudness)> {
        use ebur128::Mode;
        let (tx, mut rx) = rtrb::RingBuffer::new(4096);
        let mut meter = LoudnessMeter::new(2, 48_000, tx).unwrap();
        let mut reference =
            ebur128::EbuR128::new(2, 48_000, Mode::M | Mode::S | Mode::I | Mode::TRUE_PEAK | Mode::HISTOGRAM)
                .unwrap();
        let mut out = Vec::new();
        let len = signal[0].len();
        let mut planes = vec![0f32; 2 * period];
        let mut at = 0;
        while at + period <= len {
            for c in 0..2 {
                planes[c * period..][..period].copy_from_slice(&signal[c][at..at + period]);
            }
            let mut bus = Bus::new(&mut planes, period, period, 2, 48_000);
            meter.process(&mut bus);
            // The reference, fed up to each block boundary in this period.
            let mut done = 0;
            while done < period {
                let to_boundary = 4800 - (at + done) % 4800;
                let take = to_boundary.min(period - done);
                let s = at + done;
                reference.add_frames_planar_f32(&[&signal[0][s..s + take], &signal[1][s..s + take]]).unwrap();
                done += take;
                if (at + done) % 4800 == 0 {
                    let Ok(Report::Loudness(ours)) = rx.pop() else { panic!("no report at a block boundary") };
                    let tp = (0..2).map(|c| reference.true_peak(c).unwrap()).fold(0.0f64, f64::max);
                    let theirs = Loudness {
                        momentary_lufs: reference.loudness_momentary().unwrap(),
                        short_term_lufs: reference.loudness_shortterm().unwrap(),
                        integrated_lufs: reference.loudness_global().unwrap(),
                        true_peak_dbtp: if tp > 0.0 { 20.0 * tp.log10() } else { f64::NEG_INFINITY },
                    };
                    out.push((ours, theirs));
                }
            }
            at += period;
        }
        assert!(rx.pop().is_err(), "a report between block boundaries");
        out
    }

    fn close(a: f64, b: f64) -> bool {
        (a == b) || (a - b).abs() < 1e-6
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        /// Short-term loudness from block energies is the crate's own
        /// 3-second window at every block boundary; the rest is the crate's.
        #[test]
        fn readings_match_the_crates_short_term_mode(
            seed in any::<u64>(),
            period in prop::sample::select(vec![64usize, 128, 256, 441, 1024]),
            level in -60f32..0.0,
        ) {
            // 5 s of noise whose level steps every second (so the windows
            // see different levels), from a small xorshift generator.
            let mut x = seed | 1;
            let mut noise = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            };
            let len = 48_000 * 5;
            let (mut left, mut right) = (Vec::with_capacity(len), Vec::with_capacity(len));
            for i in 0..len {
                let gain = 10f32.powf((level - 6.0 * ((i / 48_000) % 3) as f32) / 20.0);
                left.push(noise() * gain);
                right.push(noise() * gain * 0.5);
            }
            let signal = [left, right];
            let readings = both(&signal, period);
            prop_assert_eq!(readings.len(), len / period * period / 4800);
            for (i, (ours, theirs)) in readings.iter().enumerate() {
                prop_assert!(close(ours.short_term_lufs, theirs.short_term_lufs), "block {}: {:?} vs {:?}", i, ours, theirs);
                prop_assert!(close(ours.momentary_lufs, theirs.momentary_lufs), "block {}: {:?} vs {:?}", i, ours, theirs);
                prop_assert!(close(ours.integrated_lufs, theirs.integrated_lufs), "block {}: {:?} vs {:?}", i, ours, theirs);
                prop_assert!(close(ours.true_peak_dbtp, theirs.true_peak_dbtp), "block {}: {:?} vs {:?}", i, ours, theirs);
            }
        }
    }

    #[test]
    fn silence_reads_minus_infinity_and_a_full_scale_sine_about_minus_three() {
        let len = 48_000 * 4;
        let silent = [vec![0f32; len], vec![0f32; len]];
        let last = both(&silent, 256).pop().unwrap().0;
        assert_eq!(last.short_term_lufs, f64::NEG_INFINITY);
        // A 997 Hz sine at full scale on both channels: −3.01 LUFS per
        // channel's mean square, +3 for two channels, about 0 LUFS with
        // K-weighting's small gain at 1 kHz.
        let sine: Vec<f32> =
            (0..len).map(|i| (2.0 * std::f32::consts::PI * 997.0 * i as f32 / 48_000.0).sin()).collect();
        let last = both(&[sine.clone(), sine], 256).pop().unwrap();
        assert!((last.0.short_term_lufs - last.1.short_term_lufs).abs() < 1e-6);
        assert!((last.0.short_term_lufs - 0.0).abs() < 0.5, "{:?}", last.0);
    }
}
