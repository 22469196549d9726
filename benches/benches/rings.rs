//! Our output ring path (planar bus → interleaved straight into the ring's
//! write chunk → consumer) against raw rtrb slices doing the same job
//! (interleave into a buffer, `push_entire_slice`, `pop_entire_slice`), and
//! against raw rtrb moving already-interleaved samples (the floor), at 32,
//! 256 and 1024 stereo frames.

use airlift_engine::graph::rt_graph::write_interleaved;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    for frames in [32usize, 256, 1024] {
        let mut group = c.benchmark_group(format!("ring{frames}"));
        group.throughput(Throughput::Elements((frames * 2) as u64));
        // Raw rtrb: one interleaved stereo period in and out.
        let (mut tx, mut rx) = rtrb::RingBuffer::<f32>::new(frames * 2 * 8);
        let src: Vec<f32> = (0..frames * 2).map(|i| i as f32).collect();
        let mut dst = vec![0.0f32; frames * 2];
        group.bench_function(BenchmarkId::new("raw_rtrb", frames), |b| {
            b.iter(|| {
                tx.push_entire_slice(black_box(&src)).unwrap();
                rx.pop_entire_slice(black_box(&mut dst)).unwrap();
            })
        });
        // The same job done by hand with raw rtrb slices: interleave the
        // planar bus into a scratch buffer, push it whole, pop it whole.
        let planes: Vec<f32> = (0..frames * 2).map(|i| i as f32).collect();
        let mut scratch = vec![0.0f32; frames * 2];
        group.bench_function(BenchmarkId::new("raw_rtrb_with_interleave", frames), |b| {
            b.iter(|| {
                let (l, r) = planes.split_at(frames);
                for (f, o) in scratch.chunks_exact_mut(2).enumerate() {
                    o[0] = l[f];
                    o[1] = r[f];
                }
                tx.push_entire_slice(black_box(&scratch)).unwrap();
                rx.pop_entire_slice(black_box(&mut dst)).unwrap();
            })
        });
        // Ours: the engine's output path interleaves straight into the ring.
        group.bench_function(BenchmarkId::new("engine_ring_path", frames), |b| {
            b.iter(|| {
                assert!(write_interleaved(&mut tx, black_box(&planes), frames, 2, frames));
                rx.pop_entire_slice(black_box(&mut dst)).unwrap();
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
