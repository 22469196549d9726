//! Test-signal generators: sine, silence, white and pink noise, sweep.
//!
//! [`SignalGenerator::fill`] is realtime-safe. The sine is a quadrature
//! oscillator vectorised over eight lanes; each period it is re-seeded from a
//! phase kept in f64, so neither phase nor amplitude drifts over days.
#![forbid(unsafe_code)]

use std::f64::consts::TAU;

use wide::f32x8;

use airlift_ipc::spec::{SignalKind, TestSignalSpec};

/// A running test signal.
#[derive(Debug, Clone)]
pub struct SignalGenerator {
    kind: SignalKind,
    amplitude: f32,
    rate: f64,
    /// Phase in cycles (0..1) at the start of the next block.
    phase: f64,
    /// Cycles per sample.
    increment: f64,
    /// Sweep: start and end frequency, sweep length in samples, position.
    sweep: (f64, f64, u64, u64),
    rng: u64,
    pink: [f32; 7],
}

impl SignalGenerator {
    /// Builds a generator at `sample_rate`. Control thread only.
    pub fn new(spec: &TestSignalSpec, sample_rate: u32) -> Self {
        let rate = f64::from(sample_rate);
        let f0 = spec.frequency.map_or(1000.0, |f| f64::from(f.get()));
        let f1 = spec.end_frequency.map_or(20_000.0_f64.min(rate * 0.45), |f| f64::from(f.get()));
        let seconds = spec.sweep_seconds.map_or(10, |s| u64::from(s.get()));
        let amplitude = match spec.kind {
            // Noise levels are RMS: uniform noise of amplitude a has RMS a/√3.
            SignalKind::WhiteNoise => spec.level_dbfs.linear() * 3f32.sqrt(),
            SignalKind::PinkNoise => spec.level_dbfs.linear(),
            _ => spec.level_dbfs.linear(),
        };
        Self {
            kind: spec.kind,
            amplitude,
            rate,
            phase: 0.0,
            increment: f0 / rate,
            sweep: (f0, f1, seconds * sample_rate as u64, 0),
            rng: 0x9E37_79B9_7F4A_7C15,
            pink: [0.0; 7],
        }
    }

    /// Writes the next `out.len()` samples. Realtime-safe.
    pub fn fill(&mut self, out: &mut [f32]) {
        match self.kind {
            SignalKind::Silence => out.fill(0.0),
            SignalKind::Sine => self.fill_sine(out),
            SignalKind::WhiteNoise => {
                for s in out.iter_mut() {
                    *s = self.amplitude * self.uniform();
                }
            }
            SignalKind::PinkNoise => self.fill_pink(out),
            SignalKind::Sweep => self.fill_sweep(out),
        }
    }

    fn fill_sine(&mut self, out: &mut [f32]) {
        let w = TAU * self.increment;
        let len = out.len();
        let (chunks, tail) = out.as_chunks_mut::<8>();
        let done = len - tail.len();
        // Lane k starts at phase φ + k·w; each step rotates every lane by 8·w.
        let mut c = [0f32; 8];
        let mut s = [0f32; 8];
        let phi = TAU * self.phase;
        for k in 0..8 {
            let p = phi + w * k as f64;
            c[k] = p.cos() as f32;
            s[k] = p.sin() as f32;
        }
        let (mut c, mut s) = (f32x8::from(c), f32x8::from(s));
        let (rc, rs) = ((8.0 * w).cos() as f32, (8.0 * w).sin() as f32);
        let (rc, rs) = (f32x8::splat(rc), f32x8::splat(rs));
        let amp = f32x8::splat(self.amplitude);
        for chunk in chunks.iter_mut() {
            *chunk = (s * amp).to_array();
            let nc = c * rc - s * rs;
            s = s * rc + c * rs;
            c = nc;
        }
        for (i, t) in tail.iter_mut().enumerate() {
            *t = self.amplitude * (phi + w * (done + i) as f64).sin() as f32;
        }
        self.phase = (self.phase + self.increment * len as f64).fract();
    }

    fn fill_sweep(&mut self, out: &mut [f32]) {
        let (f0, f1, len, pos) = &mut self.sweep;
        let len = (*len).max(1);
        for s in out.iter_mut() {
            let t = *pos as f64 / len as f64;
            let f = *f0 * (*f1 / *f0).powf(t);
            *s = self.amplitude * (TAU * self.phase).sin() as f32;
            self.phase = (self.phase + f / self.rate).fract();
            *pos = (*pos + 1) % len;
        }
    }

    fn fill_pink(&mut self, out: &mut [f32]) {
        // Paul Kellet's refined pink filter over white noise; 0.11 normalises
        // its gain so the RMS lands near the requested level.
        for s in out.iter_mut() {
            let w = self.uniform() * 3f32.sqrt();
            let b = &mut self.pink;
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.153852;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            let pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
            b[6] = w * 0.115926;
            *s = self.amplitude * pink * 0.11 / 0.34;
        }
    }

    /// Uniform in [-1, 1) from xorshift64*.
    fn uniform(&mut self) -> f32 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((r >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlift_ipc::units::{Channels, FrequencyHz, LevelDbfs};

    fn spec(kind: SignalKind, level: f32) -> TestSignalSpec {
        TestSignalSpec {
            kind,
            frequency: Some(FrequencyHz::new(997.0).unwrap()),
            end_frequency: None,
            sweep_seconds: None,
            level_dbfs: LevelDbfs::new(level).unwrap(),
            channels: Channels::new(1).unwrap(),
        }
    }

    #[test]
    fn sine_matches_the_closed_form_across_periods() {
        let mut g = SignalGenerator::new(&spec(SignalKind::Sine, -6.0), 48_000);
        let amp = LevelDbfs::new(-6.0).unwrap().linear() as f64;
        let mut n = 0u64;
        for period in [256usize, 131, 4096, 7] {
            for _ in 0..200 {
                let mut buf = vec![0.0; period];
                g.fill(&mut buf);
                for s in buf {
                    let want = amp * (TAU * 997.0 * n as f64 / 48_000.0).sin();
                    assert!((s as f64 - want).abs() < 2e-5, "sample {n}: {s} vs {want}");
                    n += 1;
                }
            }
        }
    }

    #[test]
    fn noise_rms_is_near_the_level() {
        for kind in [SignalKind::WhiteNoise, SignalKind::PinkNoise] {
            let mut g = SignalGenerator::new(&spec(kind, -20.0), 48_000);
            let mut buf = vec![0.0; 480_000];
            g.fill(&mut buf);
            let rms = (buf.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / buf.len() as f64).sqrt();
            let db = 20.0 * rms.log10();
            assert!((db + 20.0).abs() < 1.5, "{kind:?}: {db} dBFS");
        }
    }
}
