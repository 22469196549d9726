//! Offline render of 64 stereo test-signal inputs onto a stereo bus, against
//! real time: one iteration renders one second of audio, so the speed-up is
//! 1 s divided by the time per iteration.

use airlift_engine::FlowBuilder;
use airlift_engine::assembly::BuildOptions;
use airlift_engine::flow::render;
use airlift_ipc::spec::{ProducerSpec, SignalKind, TestSignalSpec};
use airlift_ipc::units::{Channels, FrequencyHz, LevelDbfs};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut builder = FlowBuilder::new("render64").unwrap();
    for i in 0..64 {
        let signal = TestSignalSpec {
            kind: SignalKind::Sine,
            frequency: Some(FrequencyHz::new(100.0 + 37.0 * i as f32).unwrap()),
            end_frequency: None,
            sweep_seconds: None,
            level_dbfs: LevelDbfs::new(-40.0).unwrap(),
            channels: Channels::new(2).unwrap(),
        };
        builder = builder.input(&format!("in{i}"), ProducerSpec::TestSignal(signal)).unwrap();
        builder = builder.pan(&format!("in{i}"), (i as f32 / 32.0) - 1.0).unwrap();
    }
    let spec = builder.null("out").unwrap().spec();
    let options = BuildOptions::default();
    let mut group = c.benchmark_group("render");
    group.bench_function("64_stereo_inputs_1s", |b| b.iter(|| render(&spec, &options, 1.0, vec![]).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
