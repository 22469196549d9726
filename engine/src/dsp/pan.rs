//! How an input's channels land on the bus: channel mapping, pan law, gain.
//!
//! - Mono input: every bus channel; on a stereo bus panned with the −3 dB
//!   constant-power law (`L = cos θ`, `R = sin θ`, `θ = (pan + 1) · π/4`), so a
//!   centred mono source is −3 dB in each channel.
//! - Same channel count as the bus: channel k → bus channel k; on a stereo bus
//!   pan acts as a balance control with the same law, normalised so that the
//!   centre is unity (`min(1, √2 · cos θ)`).
//! - More channels than the bus: channel k → bus channel `k mod bus` (fold-down).
//! - Fewer (but more than one): channel k → bus channel k.
#![forbid(unsafe_code)]

use std::f32::consts::{FRAC_PI_4, SQRT_2};

/// Gain (linear) of input channel `input_ch` into `bus_ch`, or `None` when
/// that input channel does not reach that bus channel.
pub fn route_gain(
    input_channels: usize,
    bus_channels: usize,
    input_ch: usize,
    bus_ch: usize,
    pan: f32,
) -> Option<f32> {
    let theta = (pan.clamp(-1.0, 1.0) + 1.0) * FRAC_PI_4;
    let (left, right) = (theta.cos(), theta.sin());
    if input_channels == 1 {
        return Some(if bus_channels == 2 { if bus_ch == 0 { left } else { right } } else { 1.0 });
    }
    let target = if input_channels > bus_channels { input_ch % bus_channels } else { input_ch };
    if target != bus_ch {
        return None;
    }
    if bus_channels == 2 && input_channels == 2 {
        // Balance: the channel on the side the pan moves towards stays at
        // unity; the other follows √2 · the constant-power law.
        let g = match bus_ch {
            0 if pan <= 0.0 => 1.0,
            0 => SQRT_2 * left,
            _ if pan >= 0.0 => 1.0,
            _ => SQRT_2 * right,
        };
        return Some(g.min(1.0));
    }
    Some(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_centre_is_minus_3_db() {
        let l = route_gain(1, 2, 0, 0, 0.0).unwrap();
        let r = route_gain(1, 2, 0, 1, 0.0).unwrap();
        assert!((20.0 * l.log10() + 3.0103).abs() < 1e-3);
        assert!((l - r).abs() < 1e-6);
        assert!((l * l + r * r - 1.0).abs() < 1e-6, "constant power");
    }

    #[test]
    fn hard_pans() {
        assert!((route_gain(1, 2, 0, 0, -1.0).unwrap() - 1.0).abs() < 1e-6);
        assert!(route_gain(1, 2, 0, 1, -1.0).unwrap().abs() < 1e-6);
        assert!(route_gain(2, 2, 1, 1, -1.0).unwrap().abs() < 1e-6);
        assert_eq!(route_gain(2, 2, 0, 0, -1.0), Some(1.0));
    }

    #[test]
    fn stereo_centre_is_unity_and_channels_stay_apart() {
        assert_eq!(route_gain(2, 2, 0, 0, 0.0), Some(1.0));
        assert_eq!(route_gain(2, 2, 0, 1, 0.0), None);
        assert_eq!(route_gain(4, 2, 3, 1, 0.0), Some(1.0));
        assert_eq!(route_gain(2, 4, 1, 1, 0.0), Some(1.0));
        assert_eq!(route_gain(2, 4, 1, 3, 0.0), None);
    }
}
