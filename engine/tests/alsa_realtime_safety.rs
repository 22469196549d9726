//! A device-clocked ALSA duplex flow — blocking capture and playback on
//! alsa-lib's `null` plugin, format conversion both ways, with xruns
//! injected and recovered (`snd_pcm_recover`, playback prefill) — runs on a
//! thread whose allocations are counted, and must allocate and free nothing.
//! Its own test binary: it sets `ALSA_CONFIG_PATH` for the process.

use std::sync::atomic::Ordering;

use airlift_engine::FlowBuilder;
use airlift_engine::assembly::{BuildOptions, build};
use airlift_engine::flow::{RtCommand, audio_driver};
use airlift_ipc::spec::{AlsaSpec, ClockSpec, ConsumerSpec, ProcessorSpec, ProducerSpec, SampleFormat};
use airlift_ipc::units::{Channels, GainDb, Name, Periods};

mod counting_alloc;
use counting_alloc::{ALLOCS, ARMED, FREES};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const PERIODS: u64 = 20_000;

#[test]
fn device_clocked_alsa_flow_never_allocates() {
    let dir = std::env::temp_dir().join(format!("airlift-alsa-rt-safety-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rc = dir.join("asoundrc");
    std::fs::write(&rc, "pcm.nul { type null }\n").unwrap();
    // SAFETY: the only test of this binary sets the variable before any
    // thread reads the environment or touches alsa-lib.
    unsafe { std::env::set_var("ALSA_CONFIG_PATH", &rc) };

    let device = |format| AlsaSpec {
        device: "nul".into(),
        channels: Channels::new(2).unwrap(),
        format,
        periods: Periods::new(3).unwrap(),
    };
    let mut spec = FlowBuilder::new("duplex")
        .unwrap()
        .period(64)
        .unwrap()
        .input("mic", ProducerSpec::AlsaCapture(device(SampleFormat::S24_3le)))
        .unwrap()
        .sine("tone", 997.0, -12.0)
        .unwrap()
        .processor(ProcessorSpec::Gain { gain_db: GainDb::new(-1.0).unwrap() })
        .output("monitor", ConsumerSpec::AlsaPlayback(device(SampleFormat::S16Le)))
        .unwrap()
        .spec();
    spec.clock = ClockSpec::Device { node: Name::new("mic").unwrap() };
    let mut built = build(&spec, &BuildOptions::default(), vec![]).unwrap();
    let injectors = built.graph.xrun_injectors();
    let graph = std::mem::replace(&mut built.graph, Box::new(placeholder()));
    let (mut control, mut driver) = audio_driver(graph);

    let audio = std::thread::spawn(move || {
        // Warm up unarmed: alsa-lib may set things up lazily on first use.
        for _ in 0..16 {
            driver.run_period(1_333_333);
        }
        ARMED.with(|a| a.set(true));
        let mut periods = 0;
        while driver.run_period(1_333_333) {
            periods += 1;
        }
        ARMED.with(|a| a.set(false));
        (periods, driver)
    });
    let mut injected = 0;
    while built.counters.periods.load(Ordering::Relaxed) < PERIODS {
        let p = built.counters.periods.load(Ordering::Relaxed);
        if injected < 10 && p > 1_000 * (injected + 1) {
            injectors[(injected % 2) as usize].inject(1);
            injected += 1;
        }
        for ring in &mut built.reports {
            while ring.pop().is_ok() {}
        }
        std::thread::yield_now();
    }
    while control.send(RtCommand::Stop).is_err() {
        std::thread::yield_now();
    }
    let (periods, driver) = audio.join().unwrap();
    assert!(periods >= PERIODS - 16, "ran {periods} periods");
    assert_eq!(built.counters.xruns.load(Ordering::Relaxed), 10, "every injected xrun recovered");
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "allocations on the audio thread");
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "frees on the audio thread");
    drop(driver);
    built.finish();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn placeholder() -> airlift_engine::graph::rt_graph::RtGraph {
    use airlift_engine::graph::rt_graph::{Pacing, RtGraph};
    RtGraph::new(
        Pacing::Realtime,
        airlift_engine::dsp::mix::MixKernel::Scalar,
        64,
        48_000,
        2,
        vec![],
        vec![],
        vec![],
        Default::default(),
    )
}

#[test]
fn the_clock_domain_bridge_never_allocates() {
    use airlift_engine::rt::bridge::{BridgeQuality, bridge};
    for quality in [BridgeQuality::Sinc, BridgeQuality::Cubic] {
        let counters = std::sync::Arc::new(airlift_engine::rt::stats::FlowCounters::default());
        let (mut writer, mut reader) = bridge(48_000, 2, 64, 8, quality, Some(counters)).unwrap();
        let block = vec![0.25f32; 64 * 2];
        let mut planes = vec![0.0f32; 64 * 2];
        let thread = std::thread::spawn(move || {
            ARMED.with(|a| a.set(true));
            let (mut pushed, mut pulled) = (0u64, 0u64);
            for i in 0..5_000u64 {
                let t = i * 1_333_333;
                // The writer runs 1 % fast: every 100th period it writes twice.
                writer.push(&block, t);
                if i % 100 == 0 {
                    writer.push(&block, t + 1);
                }
                pushed += 1;
                pulled += u64::from(reader.pull(&mut planes, 64, t + 600_000));
            }
            ARMED.with(|a| a.set(false));
            (pushed, pulled)
        });
        let (pushed, pulled) = thread.join().unwrap();
        assert!(pushed == 5_000 && pulled > 4_000, "{quality:?}: {pulled} periods pulled");
    }
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "allocations on the audio thread");
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "frees on the audio thread");
}
