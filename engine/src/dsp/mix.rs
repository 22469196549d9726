//! The mix kernel: `out[f] = Σ_t planes[t.plane][f] · (t.gain + t.step · f)`.
//!
//! Three builds of the same kernel, chosen once at start-up
//! ([`MixKernel::detect`]):
//!
//! - [`MixKernel::Scalar`]: the reference, one sample at a time.
//! - [`MixKernel::Wide`]: `wide::f32x8`, compiled for the build's baseline
//!   target (SSE2 on plain x86-64).
//! - [`MixKernel::Avx2Fma`]: the same block loop compiled with
//!   `#[target_feature(enable = "avx2,fma")]`, so LLVM emits 256-bit FMA code
//!   while the rest of the binary still runs on baseline x86-64. It can only
//!   be had from [`MixKernel::detect`] (it carries a [`CpuHasAvx2Fma`] proof).
//!
//! All three are frame-blocked: a block of [`BLOCK`] output frames stays in
//! registers while every term is added into it, so the output is written once
//! per block however many inputs there are.
//!
//! Realtime-safe: no allocation, no locks, no syscalls.
#![allow(unsafe_code)] // a realtime spot: see engine/tests/layout.rs

use wide::f32x8;

/// Output frames accumulated in registers per block.
pub const BLOCK: usize = 32;

/// One input plane added into the output, with a gain ramp: the gain at frame
/// `f` of the period is `gain + step · f`. `step` is 0 for a constant gain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixTerm {
    /// Index of the source plane in the planes buffer.
    pub plane: usize,
    /// Gain at frame 0.
    pub gain: f32,
    /// Gain increment per frame.
    pub step: f32,
}

/// Which build of the kernel runs.
///
/// [`MixKernel::Avx2Fma`] holds a [`CpuHasAvx2Fma`] proof that only
/// [`MixKernel::detect`] (and [`MixKernel::available`]) can make, after the
/// CPU reported both features: safe code cannot name the AVX2 kernel on a
/// CPU without them, so `mix` may run it without a check.
///
/// ```compile_fail
/// use airlift_engine::dsp::mix::{CpuHasAvx2Fma, MixKernel};
/// let forged = MixKernel::Avx2Fma(CpuHasAvx2Fma(()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MixKernel {
    /// Scalar reference.
    Scalar,
    /// `wide` at the build's baseline instruction set.
    Wide,
    /// AVX2 + FMA, chosen at run time.
    Avx2Fma(CpuHasAvx2Fma),
}

/// Proof that this CPU runs AVX2 and FMA instructions: made only by
/// [`MixKernel::detect`] after asking the CPU (its field is private).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuHasAvx2Fma(());

impl std::fmt::Debug for MixKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MixKernel::Scalar => "Scalar",
            MixKernel::Wide => "Wide",
            MixKernel::Avx2Fma(_) => "Avx2Fma",
        })
    }
}

impl MixKernel {
    /// The fastest kernel this CPU runs. Control thread only (call once).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return MixKernel::Avx2Fma(CpuHasAvx2Fma(()));
        }
        MixKernel::Wide
    }

    /// Every kernel this CPU can run (for tests and benches).
    pub fn available() -> Vec<Self> {
        let mut all = vec![MixKernel::Scalar, MixKernel::Wide];
        if let k @ MixKernel::Avx2Fma(_) = Self::detect() {
            all.push(k);
        }
        all
    }

    /// Mixes `terms` from `planes` (plane `p` occupies
    /// `planes[p * stride ..][.. out.len()]`) into `out`, overwriting it.
    ///
    /// Realtime-safe.
    ///
    /// # Panics
    /// If a term's plane lies outside `planes` or `out` is longer than `stride`
    /// (both are graph-construction bugs, never input-dependent).
    pub fn mix(self, out: &mut [f32], planes: &[f32], stride: usize, terms: &[MixTerm]) {
        assert!(out.len() <= stride, "period longer than the plane stride");
        for t in terms {
            assert!((t.plane + 1) * stride <= planes.len(), "mix term outside the planes buffer");
        }
        match self {
            MixKernel::Scalar => mix_scalar(out, planes, stride, terms),
            MixKernel::Wide => mix_wide(out, planes, stride, terms),
            MixKernel::Avx2Fma(_) => {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Avx2Fma` carries a `CpuHasAvx2Fma`, which only
                // `detect` makes, after the CPU reported both avx2 and fma.
                unsafe {
                    mix_avx2_fma(out, planes, stride, terms)
                }
                #[cfg(not(target_arch = "x86_64"))]
                mix_wide(out, planes, stride, terms)
            }
        }
    }

    /// Sums planes without gains: the bandwidth baseline the benches compare
    /// the mix kernel against, built the same way as this kernel.
    pub fn sum(self, out: &mut [f32], planes: &[f32], stride: usize, plane_ids: &[usize]) {
        assert!(out.len() <= stride);
        for &p in plane_ids {
            assert!((p + 1) * stride <= planes.len());
        }
        match self {
            MixKernel::Scalar => sum_body(out, planes, stride, plane_ids),
            MixKernel::Wide => sum_wide(out, planes, stride, plane_ids),
            MixKernel::Avx2Fma(_) => {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as in `mix`: the proof is only made after feature detection.
                unsafe {
                    sum_avx2(out, planes, stride, plane_ids)
                }
                #[cfg(not(target_arch = "x86_64"))]
                sum_wide(out, planes, stride, plane_ids)
            }
        }
    }
}

/// The scalar reference: one frame at a time, terms in order.
pub fn mix_scalar(out: &mut [f32], planes: &[f32], stride: usize, terms: &[MixTerm]) {
    out.fill(0.0);
    for t in terms {
        let src = &planes[t.plane * stride..][..out.len()];
        for (f, (o, s)) in out.iter_mut().zip(src).enumerate() {
            *o += s * (t.gain + t.step * f as f32);
        }
    }
}

fn block(planes: &[f32], plane: usize, stride: usize, frame: usize) -> &[f32; BLOCK] {
    planes[plane * stride + frame..]
        .first_chunk::<BLOCK>()
        .expect("block inside the plane (checked by the caller)")
}

/// The block loop shared by the auto-vectorised builds. `FMA` selects fused
/// multiply-add, which is only fast where the target has it.
#[inline(always)]
fn mix_blocks<const FMA: bool>(out: &mut [f32], planes: &[f32], stride: usize, terms: &[MixTerm]) {
    let ramped = terms.iter().any(|t| t.step != 0.0);
    let whole = out.len() / BLOCK * BLOCK;
    let mut ramp = [0f32; BLOCK];
    for (k, r) in ramp.iter_mut().enumerate() {
        *r = k as f32;
    }
    for f in (0..whole).step_by(BLOCK) {
        let mut acc = [0f32; BLOCK];
        for t in terms {
            let src = block(planes, t.plane, stride, f);
            if ramped {
                let g0 = t.gain + t.step * f as f32;
                for k in 0..BLOCK {
                    let g = g0 + t.step * ramp[k];
                    acc[k] = if FMA { src[k].mul_add(g, acc[k]) } else { acc[k] + src[k] * g };
                }
            } else {
                for k in 0..BLOCK {
                    acc[k] = if FMA { src[k].mul_add(t.gain, acc[k]) } else { acc[k] + src[k] * t.gain };
                }
            }
        }
        out[f..f + BLOCK].copy_from_slice(&acc);
    }
    mix_tail(out, planes, stride, terms, whole);
}

fn mix_tail(out: &mut [f32], planes: &[f32], stride: usize, terms: &[MixTerm], from: usize) {
    let tail = &mut out[from..];
    tail.fill(0.0);
    for t in terms {
        let src = &planes[t.plane * stride + from..][..tail.len()];
        for (i, (o, s)) in tail.iter_mut().zip(src).enumerate() {
            *o += s * (t.gain + t.step * (from + i) as f32);
        }
    }
}

#[inline(always)]
fn sum_body(out: &mut [f32], planes: &[f32], stride: usize, plane_ids: &[usize]) {
    let whole = out.len() / BLOCK * BLOCK;
    for f in (0..whole).step_by(BLOCK) {
        let mut acc = [0f32; BLOCK];
        for &p in plane_ids {
            let src = block(planes, p, stride, f);
            for k in 0..BLOCK {
                acc[k] += src[k];
            }
        }
        out[f..f + BLOCK].copy_from_slice(&acc);
    }
    for f in whole..out.len() {
        out[f] = plane_ids.iter().map(|&p| planes[p * stride + f]).sum();
    }
}

fn load8(src: &[f32; BLOCK], j: usize) -> f32x8 {
    let lanes: [f32; 8] = src[j * 8..j * 8 + 8].try_into().expect("8 lanes");
    f32x8::from(lanes)
}

const VECS: usize = BLOCK / 8;

fn mix_wide(out: &mut [f32], planes: &[f32], stride: usize, terms: &[MixTerm]) {
    let ramped = terms.iter().any(|t| t.step != 0.0);
    let whole = out.len() / BLOCK * BLOCK;
    let lane = f32x8::from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    for f in (0..whole).step_by(BLOCK) {
        let mut acc = [f32x8::ZERO; VECS];
        for t in terms {
            let src = block(planes, t.plane, stride, f);
            if ramped {
                let step = f32x8::splat(t.step);
                for (j, a) in acc.iter_mut().enumerate() {
                    let g = f32x8::splat(t.gain + t.step * (f + j * 8) as f32) + step * lane;
                    *a += load8(src, j) * g;
                }
            } else {
                let g = f32x8::splat(t.gain);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += load8(src, j) * g;
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            out[f + j * 8..f + j * 8 + 8].copy_from_slice(&a.to_array());
        }
    }
    mix_tail(out, planes, stride, terms, whole);
}

fn sum_wide(out: &mut [f32], planes: &[f32], stride: usize, plane_ids: &[usize]) {
    let whole = out.len() / BLOCK * BLOCK;
    for f in (0..whole).step_by(BLOCK) {
        let mut acc = [f32x8::ZERO; VECS];
        for &p in plane_ids {
            let src = block(planes, p, stride, f);
            for (j, a) in acc.iter_mut().enumerate() {
                *a += load8(src, j);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            out[f + j * 8..f + j * 8 + 8].copy_from_slice(&a.to_array());
        }
    }
    for f in whole..out.len() {
        out[f] = plane_ids.iter().map(|&p| planes[p * stride + f]).sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn mix_avx2_fma(out: &mut [f32], planes: &[f32], stride: usize, terms: &[MixTerm]) {
    mix_blocks::<true>(out, planes, stride, terms);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn sum_avx2(out: &mut [f32], planes: &[f32], stride: usize, plane_ids: &[usize]) {
    sum_body(out, planes, stride, plane_ids);
}

/// Copies `src` into `dst` scaled by a gain ramp (`gain + step · f`); used by
/// the bus gain processor. Realtime-safe.
pub fn apply_gain(buf: &mut [f32], gain: f32, step: f32) {
    if step == 0.0 {
        if gain == 1.0 {
            return;
        }
        for s in buf.iter_mut() {
            *s *= gain;
        }
    } else {
        for (f, s) in buf.iter_mut().enumerate() {
            *s *= gain + step * f as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(kernel: MixKernel, frames: usize, planes: &[f32], stride: usize, terms: &[MixTerm]) {
        let mut want = vec![0.0; frames];
        let mut got = vec![f32::NAN; frames];
        mix_scalar(&mut want, planes, stride, terms);
        kernel.mix(&mut got, planes, stride, terms);
        for f in 0..frames {
            // Bound the rounding error: each term's gain is rounded relative to
            // |gain| + |step·f|, and the sum relative to the magnitudes added.
            let scale: f32 = terms
                .iter()
                .map(|t| planes[t.plane * stride + f].abs() * (t.gain.abs() + t.step.abs() * f as f32))
                .sum();
            let tol = 1e-5 * scale + 1e-12;

            assert!((want[f] - got[f]).abs() <= tol, "{kernel:?} frame {f}: {} vs {}", want[f], got[f]);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn every_kernel_agrees_with_the_scalar_reference(
            frames in 1usize..300,
            nplanes in 1usize..20,
            seed in any::<u64>(),
            terms in prop::collection::vec((any::<prop::sample::Index>(), -4.0f32..4.0, -0.01f32..0.01, any::<bool>()), 0..24),
        ) {
            let stride = frames + 5;
            let mut x = seed | 1;
            let planes: Vec<f32> = (0..nplanes * stride).map(|_| {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            }).collect();
            let terms: Vec<MixTerm> = terms.into_iter().map(|(p, gain, step, ramp)| MixTerm {
                plane: p.index(nplanes), gain, step: if ramp { step } else { 0.0 },
            }).collect();
            for kernel in MixKernel::available() {
                check(kernel, frames, &planes, stride, &terms);
            }
        }

        #[test]
        fn sum_agrees_with_scalar(frames in 1usize..300, nplanes in 1usize..20) {
            let stride = frames;
            let planes: Vec<f32> = (0..nplanes * stride).map(|i| (i % 17) as f32 * 0.1).collect();
            let ids: Vec<usize> = (0..nplanes).collect();
            let mut want = vec![0.0; frames];
            MixKernel::Scalar.sum(&mut want, &planes, stride, &ids);
            for kernel in MixKernel::available() {
                let mut got = vec![0.0; frames];
                kernel.sum(&mut got, &planes, stride, &ids);
                for f in 0..frames {
                    prop_assert!((want[f] - got[f]).abs() <= 1e-4, "{kernel:?}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_kernel_comes_only_from_detection() {
        let cpu = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        assert_eq!(matches!(MixKernel::detect(), MixKernel::Avx2Fma(_)), cpu);
        assert_eq!(MixKernel::available().iter().any(|k| matches!(k, MixKernel::Avx2Fma(_))), cpu);
        assert_eq!(format!("{:?}", MixKernel::detect()), if cpu { "Avx2Fma" } else { "Wide" });
    }

    #[test]
    fn no_terms_is_silence() {
        let mut out = vec![1.0; 40];
        for k in MixKernel::available() {
            k.mix(&mut out, &[], 40, &[]);
            assert!(out.iter().all(|&s| s == 0.0));
        }
    }
}
