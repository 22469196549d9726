//! Sample conversion between ALSA's interleaved integer/float formats and
//! the engine's planar f32.
//!
//! Integers of `b` bits map to f32 by dividing by `2^(b-1)`; f32 maps back by
//! multiplying, rounding and clipping to the integer range. Every integer of
//! up to 24 significant bits therefore round-trips exactly (int → f32 → int).
//! S32_LE values with more than 24 significant bits lose their low bits in
//! f32, as they must. Everything here is realtime-safe: no allocation.

use airlift_ipc::spec::SampleFormat;

/// Bytes one sample takes on the device.
pub fn bytes_per_sample(format: SampleFormat) -> usize {
    match format {
        SampleFormat::S16Le => 2,
        SampleFormat::S24_3le => 3,
        SampleFormat::S24Le | SampleFormat::S32Le | SampleFormat::FloatLe => 4,
    }
}

const S16_SCALE: f32 = 32_768.0;
const S24_SCALE: f32 = 8_388_608.0;
const S32_SCALE: f32 = 2_147_483_648.0;

fn to_int(x: f32, scale: f32, min: f32, max: f32) -> i32 {
    // NaN becomes 0 (an `as` cast of NaN is 0); the clamp keeps the cast exact.
    (x * scale).round().clamp(min, max) as i32
}

fn s24_from(b: &[u8]) -> f32 {
    // Sign-extend the 24-bit value from the top of an i32.
    let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
    v as f32 / S24_SCALE
}

fn s24_to(x: f32) -> [u8; 4] {
    to_int(x, S24_SCALE, -S24_SCALE, S24_SCALE - 1.0).to_le_bytes()
}

/// One sample from its bytes.
fn read(format: SampleFormat, b: &[u8]) -> f32 {
    match format {
        SampleFormat::S16Le => f32::from(i16::from_le_bytes([b[0], b[1]])) / S16_SCALE,
        SampleFormat::S24_3le | SampleFormat::S24Le => s24_from(b),
        SampleFormat::S32Le => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / S32_SCALE,
        SampleFormat::FloatLe => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
    }
}

/// One sample into its bytes.
fn write(format: SampleFormat, x: f32, b: &mut [u8]) {
    match format {
        SampleFormat::S16Le => {
            let v = to_int(x, S16_SCALE, -S16_SCALE, S16_SCALE - 1.0) as i16;
            b.copy_from_slice(&v.to_le_bytes());
        }
        SampleFormat::S24_3le => b.copy_from_slice(&s24_to(x)[..3]),
        // The 24 bits in the low three bytes, sign-extended into the fourth.
        SampleFormat::S24Le => b.copy_from_slice(&s24_to(x)),
        SampleFormat::S32Le => {
            // 2^31 - 1 is not an f32; clamping in f64 keeps full scale exact.
            let v = (f64::from(x) * f64::from(S32_SCALE)).round().clamp(-2_147_483_648.0, 2_147_483_647.0);
            b.copy_from_slice(&(v as i32).to_le_bytes());
        }
        SampleFormat::FloatLe => b.copy_from_slice(&x.to_le_bytes()),
    }
}

/// Decodes `frames` interleaved frames of `channels` from `bytes` into
/// planes (channel `c` at `planes[c * stride..]`). Realtime-safe.
pub fn decode_into_planes(
    format: SampleFormat,
    bytes: &[u8],
    channels: usize,
    planes: &mut [f32],
    stride: usize,
    frames: usize,
) {
    let bps = bytes_per_sample(format);
    for (f, frame) in bytes.chunks_exact(bps * channels).take(frames).enumerate() {
        for (c, sample) in frame.chunks_exact(bps).enumerate() {
            planes[c * stride + f] = read(format, sample);
        }
    }
}

/// Encodes `frames` frames from planes (`plane_count` of them, channel `c`
/// at `planes[c * stride..]`) into `channels` interleaved device channels;
/// device channels without a plane get silence. Realtime-safe.
pub fn encode_from_planes(
    format: SampleFormat,
    planes: &[f32],
    stride: usize,
    plane_count: usize,
    channels: usize,
    frames: usize,
    bytes: &mut [u8],
) {
    let bps = bytes_per_sample(format);
    for (f, frame) in bytes.chunks_exact_mut(bps * channels).take(frames).enumerate() {
        for (c, sample) in frame.chunks_exact_mut(bps).enumerate() {
            let x = if c < plane_count { planes[c * stride + f] } else { 0.0 };
            write(format, x, sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(format: SampleFormat, bytes: &[u8], channels: usize) -> Vec<u8> {
        let frames = bytes.len() / bytes_per_sample(format) / channels;
        let mut planes = vec![0.0; channels * frames];
        decode_into_planes(format, bytes, channels, &mut planes, frames, frames);
        let mut out = vec![0; bytes.len()];
        encode_from_planes(format, &planes, frames, channels, channels, frames, &mut out);
        out
    }

    proptest! {
        #[test]
        fn s16_round_trips_exactly(v in proptest::collection::vec(any::<i16>(), 2..64)) {
            let v = &v[..v.len() / 2 * 2];
            let bytes: Vec<u8> = v.iter().flat_map(|s| s.to_le_bytes()).collect();
            prop_assert_eq!(round_trip(SampleFormat::S16Le, &bytes, 2), bytes);
        }

        #[test]
        fn s24_round_trips_exactly(v in proptest::collection::vec(-(1i32 << 23)..(1 << 23), 1..64)) {
            let packed: Vec<u8> = v.iter().flat_map(|s| s.to_le_bytes()[..3].to_vec()).collect();
            prop_assert_eq!(round_trip(SampleFormat::S24_3le, &packed, 1), packed);
            let wide: Vec<u8> = v.iter().flat_map(|s| s.to_le_bytes()).collect();
            prop_assert_eq!(round_trip(SampleFormat::S24Le, &wide, 1), wide);
        }

        #[test]
        fn s32_with_24_significant_bits_round_trips_exactly(
            v in proptest::collection::vec(-(1i32 << 23)..(1 << 23), 1..64)
        ) {
            let bytes: Vec<u8> = v.iter().flat_map(|s| (s << 8).to_le_bytes()).collect();
            prop_assert_eq!(round_trip(SampleFormat::S32Le, &bytes, 1), bytes);
        }

        #[test]
        fn float_round_trips_bit_exactly(v in proptest::collection::vec(-4.0f32..4.0, 1..64)) {
            let bytes: Vec<u8> = v.iter().flat_map(|s| s.to_le_bytes()).collect();
            prop_assert_eq!(round_trip(SampleFormat::FloatLe, &bytes, 1), bytes);
        }
    }

    #[test]
    fn full_scale_clips_to_the_integer_range() {
        let cases: [(SampleFormat, i64, i64); 4] = [
            (SampleFormat::S16Le, 32_767, -32_768),
            (SampleFormat::S24_3le, 8_388_607, -8_388_608),
            (SampleFormat::S24Le, 8_388_607, -8_388_608),
            (SampleFormat::S32Le, 2_147_483_647, -2_147_483_648),
        ];
        for (format, max, min) in cases {
            let bps = bytes_per_sample(format);
            let mut out = vec![0; 4 * bps];
            encode_from_planes(format, &[1.0, -1.0, 2.0, -2.0], 4, 1, 1, 4, &mut out);
            let ints: Vec<i64> = out
                .chunks_exact(bps)
                .map(|b| {
                    let mut wide = [0u8; 8];
                    wide[..bps.min(4)].copy_from_slice(&b[..bps.min(4)]);
                    let shift = 64 - 8 * bps.min(4);
                    (i64::from_le_bytes(wide) << shift) >> shift
                })
                .collect();
            assert_eq!(ints, [max, min, max, min], "{format:?}");
        }
        let mut out = vec![0; 8];
        encode_from_planes(SampleFormat::FloatLe, &[1.0, -2.0], 2, 1, 1, 2, &mut out);
        let mut back = [0.0; 2];
        decode_into_planes(SampleFormat::FloatLe, &out, 1, &mut back, 2, 2);
        assert_eq!(back, [1.0, -2.0], "float is not clipped");
    }

    #[test]
    fn extra_device_channels_get_silence() {
        let mut out = vec![0xff; 2 * 2 * 2];
        encode_from_planes(SampleFormat::S16Le, &[0.5, 0.5], 2, 1, 2, 2, &mut out);
        assert_eq!(out, [0x00, 0x40, 0, 0, 0x00, 0x40, 0, 0]);
    }
}
