//! Bridged flows in real time: two graphs on two threads and clocks, and
//! two flows of a desired state joined by a link. Apart from the hour-long
//! drift simulations (`drift.rs`) so that those do not load the CPU while
//! these keep their deadlines.

use std::sync::Arc;

use airlift_engine::rt::bridge::{BridgeQuality, bridge};
use airlift_engine::rt::stats::FlowCounters;

const RATE: f64 = 48_000.0;
const PERIOD: usize = 256;
const RING_PERIODS: usize = 16;

/// Two graphs, each on its own thread and clock, joined by a bridge: the
/// second hears the first's sine, primed once and never starved.
#[test]
fn two_flows_on_their_own_clocks_are_bridged() {
    use airlift_engine::dsp::mix::MixKernel;
    use airlift_engine::dsp::signal::SignalGenerator;
    use airlift_engine::graph::rt_graph::{Pacing, RtGraph, RtInput, Sink, Source};
    use airlift_engine::rt::clock::InternalClock;
    use airlift_ipc::spec::{SignalKind, TestSignalSpec};
    use airlift_ipc::units::{Channels, FrequencyHz, LevelDbfs};

    let rate = RATE as u32;
    let counters_b = Arc::new(FlowCounters::default());
    let (writer, reader) =
        bridge(rate, 2, PERIOD, RING_PERIODS, BridgeQuality::Sinc, Some(counters_b.clone())).unwrap();
    let sine = TestSignalSpec {
        kind: SignalKind::Sine,
        frequency: Some(FrequencyHz::new(1_000.0).unwrap()),
        end_frequency: None,
        sweep_seconds: None,
        level_dbfs: LevelDbfs::new(-6.0).unwrap(),
        channels: Channels::new(2).unwrap(),
    };
    let input = |source| RtInput { source, channels: 2, first_plane: 0, gain: 1.0, pan: 0.0, muted: false };
    let counters_a = Arc::new(FlowCounters::default());
    let mut a = RtGraph::new(
        Pacing::Realtime,
        MixKernel::detect(),
        PERIOD,
        rate,
        2,
        vec![input(Source::Signal(SignalGenerator::new(&sine, rate)))],
        vec![],
        vec![Sink::Bridge(Box::new(writer))],
        counters_a.clone(),
    );
    let mut b = RtGraph::new(
        Pacing::Realtime,
        MixKernel::detect(),
        PERIOD,
        rate,
        2,
        vec![input(Source::Bridge(Box::new(reader)))],
        vec![],
        vec![Sink::Null],
        counters_b.clone(),
    );
    let run_for = std::time::Duration::from_millis(1_500);
    let thread_a = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut clock = InternalClock::new(PERIOD as u32, rate, 4800);
        let mut overruns = 0;
        while start.elapsed() < run_for {
            overruns += u32::from(a.process().overrun);
            clock.wait();
        }
        overruns
    });
    let thread_b = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut clock = InternalClock::new(PERIOD as u32, rate, 4800);
        let (mut underruns, mut sum_sq, mut count) = (0, 0.0f64, 0u64);
        while start.elapsed() < run_for {
            underruns += u32::from(b.process().underrun);
            if start.elapsed() > run_for / 2 {
                sum_sq += b.bus_channel(1).iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
                count += PERIOD as u64;
            }
            clock.wait();
        }
        (underruns, (sum_sq / count as f64).sqrt())
    });
    let overruns = thread_a.join().unwrap();
    let (underruns, rms) = thread_b.join().unwrap();
    let drift = counters_b.snapshot("b", Default::default()).drift_ppm.unwrap();
    println!("bridged flows: rms {rms:.4}, drift {drift:.1} ppm, underruns {underruns}, overruns {overruns}");
    assert_eq!((underruns, overruns), (0, 0));
    let want = 10f64.powf(-6.0 / 20.0) / 2f64.sqrt();
    assert!((rms - want).abs() < want * 0.02, "rms {rms} (want {want})");
    // Both threads run on the same monotonic clock: no real offset to find.
    assert!(drift.abs() < 200.0, "drift {drift} ppm");
}

/// Two flows of a desired state joined by a link: each on its own audio
/// thread and clock (periods of 256 and 96 frames), the second records what
/// the first plays, with the drift estimate in its stats; changing one flow
/// rebuilds both ends; a link nobody writes is refused.
#[test]
fn a_link_joins_two_flows_of_the_desired_state() {
    use airlift_engine::assembly::BuildOptions;
    use airlift_engine::node::Node;
    use airlift_engine::rt::thread::RealtimeRequest;
    use airlift_ipc::spec::DesiredState;

    let dir = std::env::temp_dir().join(format!("airlift-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        r#"
[[flow]]
name = "studio"
period = 256

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0, level_dbfs = -6.0, channels = 2 }} }}

[[flow.output]]
name = "to_air"
consumer = {{ link = {{ name = "feed" }} }}

[[flow]]
name = "air"
period = 96

[[flow.input]]
name = "from_studio"
producer = {{ link = {{ name = "feed" }} }}

[[flow.output]]
name = "rec"
consumer = {{ wav = {{ path = "{}", format = "f32" }} }}
"#,
        dir.join("air.wav").display()
    );
    let state: DesiredState = toml::from_str(&toml).unwrap();
    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.apply_state(&state, &mut events).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    let air = node.flow("air").unwrap().stats();
    let studio = node.flow("studio").unwrap().stats();
    println!(
        "air: drift {:?} ppm, underruns {}, deadline misses {}; studio: overruns {}, deadline misses {}",
        air.drift_ppm, air.underruns, air.deadline_misses, studio.overruns, studio.deadline_misses
    );
    assert_eq!(air.underruns, 0);
    assert_eq!(studio.overruns, 0);
    // Same monotonic clock on both sides, but an internal clock skips the
    // periods it misses on a loaded machine, which the bridge sees (and
    // absorbs) as drift: only bound it by what the bridge follows.
    assert!(air.drift_ppm.expect("a bridged flow reports drift").abs() < 2_000.0);

    // Changing the reader rebuilds the writer too (a link's ends are made together).
    let mut changed = state.clone();
    changed.flows[1].processors.push(airlift_ipc::spec::ProcessorSpec::Meter);
    node.apply_state(&changed, &mut events).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let after = node.flow("air").unwrap().stats();
    assert_eq!(after.underruns, 0, "the rebuilt link feeds the reader");
    // The estimate moves every few periods; a loaded machine may stall the
    // reader's thread for a while, so the change is awaited (at most 5 s).
    let moved = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        node.flow("air").unwrap().stats().drift_ppm != after.drift_ppm
    });
    assert!(moved, "the rebuilt reader publishes into the flow's counters");
    node.shutdown(&mut events);

    let mut reader = hound::WavReader::open(dir.join("air.wav")).unwrap();
    let samples: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    // The recorder's spec did not change: it kept recording into the same
    // file across the rebuild (1.2 s before it, 0.7 s after).
    let seconds = samples.len() as f64 / 2.0 / 48_000.0;
    assert!(seconds > 1.7, "the recording holds {seconds} s: it was restarted by the rebuild");
    // The level after the rebuilt link settled.
    let tail = &samples[samples.len() * 3 / 4..];
    let rms = (tail.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / tail.len() as f64).sqrt();
    let want = 10f64.powf(-6.0 / 20.0) / 2f64.sqrt();
    assert!((rms - want).abs() < want * 0.03, "recorded rms {rms} (want {want})");

    let mut orphan = state.clone();
    orphan.flows.remove(0);
    let err = node.apply_state(&orphan, &mut events).unwrap_err();
    assert!(err.to_string().contains("no flow writes link"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
