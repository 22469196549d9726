//! Peak and RMS measurement, with a `wide` kernel and its scalar reference.
//!
//! Realtime-safe: no allocation, no locks.
#![forbid(unsafe_code)]

use wide::f32x8;

/// Peak (largest magnitude) and sum of squares of a block.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BlockLevel {
    /// Largest `|x|`.
    pub peak: f32,
    /// `Σ x²`, accumulated in f64 across blocks by the caller.
    pub sum_squares: f32,
}

/// Scalar reference.
pub fn level_scalar(samples: &[f32]) -> BlockLevel {
    let mut peak = 0f32;
    let mut sum = 0f32;
    for &s in samples {
        peak = peak.max(s.abs());
        sum += s * s;
    }
    BlockLevel { peak, sum_squares: sum }
}

/// `wide::f32x8` kernel. Realtime-safe.
pub fn level(samples: &[f32]) -> BlockLevel {
    let (chunks, tail) = samples.as_chunks::<8>();
    let mut peak = f32x8::ZERO;
    let mut sum = f32x8::ZERO;
    for c in chunks {
        let v = f32x8::from(*c);
        peak = peak.max(v.abs());
        sum += v * v;
    }
    let t = level_scalar(tail);
    let peak = peak.to_array().into_iter().fold(t.peak, f32::max);
    let sum = sum.to_array().iter().sum::<f32>() + t.sum_squares;
    BlockLevel { peak, sum_squares: sum }
}

/// Converts a linear amplitude to dBFS (−∞ for 0).
pub fn to_dbfs(amplitude: f32) -> f32 {
    if amplitude > 0.0 { 20.0 * amplitude.log10() } else { f32::NEG_INFINITY }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn wide_agrees_with_scalar(samples in prop::collection::vec(-2.0f32..2.0, 0..700)) {
            let a = level_scalar(&samples);
            let b = level(&samples);
            prop_assert_eq!(a.peak, b.peak);
            prop_assert!((a.sum_squares - b.sum_squares).abs() <= 1e-4 * a.sum_squares.max(1.0));
        }
    }

    #[test]
    fn dbfs() {
        assert_eq!(to_dbfs(1.0), 0.0);
        assert!((to_dbfs(0.1) + 20.0).abs() < 1e-5);
        assert_eq!(to_dbfs(0.0), f32::NEG_INFINITY);
    }
}
