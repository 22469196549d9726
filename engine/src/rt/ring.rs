//! Moving planar audio into interleaved `rtrb` rings without an
//! intermediate copy: what the graph's consumers and the clock-domain
//! bridge share. Realtime-safe.
#![forbid(unsafe_code)]

/// Interleaves `frames` frames of `channels` planar channels (channel `c` at
/// `planes[c * stride..]`) straight into the ring's free space, with no
/// intermediate copy. Returns false (writing nothing) when the ring lacks
/// room. Realtime-safe.
pub fn write_interleaved(
    ring: &mut rtrb::Producer<f32>,
    planes: &[f32],
    stride: usize,
    channels: usize,
    frames: usize,
) -> bool {
    let Ok(mut chunk) = ring.write_chunk(frames * channels) else {
        return false;
    };
    let (a, b) = chunk.as_mut_slices();
    // Ring capacities and writes are whole frames, so the wrap point falls
    // between frames.
    let split = a.len() / channels;
    interleave_into(a, planes, stride, channels, 0, split);
    interleave_into(b, planes, stride, channels, split, frames);
    chunk.commit_all();
    true
}

fn interleave_into(out: &mut [f32], planes: &[f32], stride: usize, channels: usize, from: usize, to: usize) {
    if from >= to {
        return;
    }
    if channels == 2 {
        let (l, r) = (&planes[from..to], &planes[stride + from..stride + to]);
        for ((o, &l), &r) in out.chunks_exact_mut(2).zip(l).zip(r) {
            o[0] = l;
            o[1] = r;
        }
        return;
    }
    for c in 0..channels {
        let plane = &planes[c * stride + from..c * stride + to];
        for (o, &s) in out[c..].iter_mut().step_by(channels).zip(plane) {
            *o = s;
        }
    }
}
