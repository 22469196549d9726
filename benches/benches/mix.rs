//! The mix kernel against its bandwidth limit (a pure-add kernel over the same
//! memory, same build) and against the scalar reference, at 16 inputs ×
//! 256 frames (L1) and × 1024 frames (L2), for the runtime-dispatched kernel
//! and the baseline (`wide` at the build's default target) kernel.

use airlift_engine::dsp::mix::{MixKernel, MixTerm, mix_scalar};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const INPUTS: usize = 16;

fn bench(c: &mut Criterion) {
    let dispatched = MixKernel::detect();
    for frames in [256usize, 1024] {
        let planes: Vec<f32> =
            (0..INPUTS * frames).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
        let terms: Vec<MixTerm> =
            (0..INPUTS).map(|p| MixTerm { plane: p, gain: 0.5 + p as f32 * 0.01, step: 0.0 }).collect();
        let ids: Vec<usize> = (0..INPUTS).collect();
        let mut out = vec![0.0f32; frames];
        let mut group = c.benchmark_group(format!("mix16x{frames}"));
        group.throughput(Throughput::Elements((INPUTS * frames) as u64));
        group.bench_function(BenchmarkId::new("add_limit", format!("{dispatched:?}")), |b| {
            b.iter(|| dispatched.sum(black_box(&mut out), black_box(&planes), frames, &ids))
        });
        group.bench_function(BenchmarkId::new("mix", format!("{dispatched:?}")), |b| {
            b.iter(|| dispatched.mix(black_box(&mut out), black_box(&planes), frames, &terms))
        });
        group.bench_function(BenchmarkId::new("add_limit", "Wide"), |b| {
            b.iter(|| MixKernel::Wide.sum(black_box(&mut out), black_box(&planes), frames, &ids))
        });
        group.bench_function(BenchmarkId::new("mix", "Wide"), |b| {
            b.iter(|| MixKernel::Wide.mix(black_box(&mut out), black_box(&planes), frames, &terms))
        });
        group.bench_function(BenchmarkId::new("mix", "Scalar"), |b| {
            b.iter(|| mix_scalar(black_box(&mut out), black_box(&planes), frames, &terms))
        });
        let ramped: Vec<MixTerm> = terms.iter().map(|t| MixTerm { step: 1e-4, ..*t }).collect();
        group.bench_function(BenchmarkId::new("mix_ramped", format!("{dispatched:?}")), |b| {
            b.iter(|| dispatched.mix(black_box(&mut out), black_box(&planes), frames, &ramped))
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
