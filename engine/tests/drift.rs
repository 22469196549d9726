//! Two clocks offset by ±100 ppm, bridged for a simulated hour (offline,
//! event by event): the ring fill stays bounded, the controller's drift
//! estimate finds the offset, and nothing is dropped or repeated outside the
//! resampler (every frame written is consumed by the resampler or still in
//! the ring; the ring never overflows or runs dry).

use std::sync::Arc;

use airlift_engine::rt::bridge::{BridgeQuality, bridge};
use airlift_engine::rt::stats::FlowCounters;

const RATE: f64 = 48_000.0;
const PERIOD: usize = 256;
const RING_PERIODS: usize = 16;

#[derive(Debug)]
struct Run {
    pushed: u64,
    consumed: u64,
    fill_end: u64,
    /// Fill range (frames) after the controller settled.
    settled_fill: (usize, usize),
    /// Fill range over the whole run, after priming.
    fill: (usize, usize),
    drift_ppm: f64,
    dropped: u64,
    starved: u64,
    /// RMS of the last second of output (the input is a sine of RMS 0.5/√2).
    rms_end: f64,
    published_ppm: Option<f64>,
    /// The fill the controller held.
    target: usize,
}

fn simulate(ppm: f64, seconds: f64, quality: BridgeQuality) -> Run {
    let counters = Arc::new(FlowCounters::default());
    let (mut writer, mut reader) =
        bridge(RATE as u32, 1, PERIOD, RING_PERIODS, quality, Some(counters.clone())).unwrap();
    // The writer's clock runs at RATE·(1 + ppm): its periods are shorter.
    let writer_period = PERIOD as f64 / (RATE * (1.0 + ppm * 1e-6));
    let reader_period = PERIOD as f64 / RATE;
    let settle = 120.0;
    let (mut tw, mut tr) = (0.0f64, 0.0f64);
    let mut block = vec![0.0f32; PERIOD];
    let mut planes = vec![0.0f32; PERIOD];
    let mut phase = 0.0f64;
    let step = 2.0 * std::f64::consts::PI * 1_000.0 / RATE;
    let mut pushed = 0u64;
    let (mut settled, mut all) = ((usize::MAX, 0), (usize::MAX, 0));
    let mut primed = false;
    let (mut sum_sq, mut count) = (0.0f64, 0u64);
    while tr < seconds {
        if tw <= tr {
            for s in &mut block {
                *s = (0.5 * phase.sin()) as f32;
                phase = (phase + step) % (2.0 * std::f64::consts::PI);
            }
            assert!(writer.push(&block, (tw * 1e9) as u64), "ring overflow at {tw:.1} s");
            pushed += PERIOD as u64;
            tw += writer_period;
        } else {
            primed |= reader.pull(&mut planes, PERIOD, (tr * 1e9) as u64);
            tr += reader_period;
            let fill = reader.fill_frames();
            if primed {
                all = (all.0.min(fill), all.1.max(fill));
                if tr > settle {
                    settled = (settled.0.min(fill), settled.1.max(fill));
                }
            }
            if tr > seconds - 1.0 {
                sum_sq += planes.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>();
                count += PERIOD as u64;
            }
        }
    }
    let stats = counters.snapshot("bridge", Default::default());
    Run {
        pushed,
        consumed: reader.consumed(),
        fill_end: reader.fill_frames() as u64,
        settled_fill: settled,
        fill: all,
        drift_ppm: reader.drift_ppm(),
        dropped: writer.dropped(),
        starved: reader.starved(),
        rms_end: (sum_sq / count as f64).sqrt(),
        published_ppm: stats.drift_ppm,
        target: reader.target_fill(),
    }
}

fn check(ppm: f64, seconds: f64, quality: BridgeQuality) {
    let run = simulate(ppm, seconds, quality);
    println!("{ppm:+} ppm, {seconds} s, {quality:?}: {run:?}");
    let target = run.target;
    assert_eq!(run.dropped, 0, "ring overflowed");
    assert_eq!(run.starved, 0, "ring ran dry");
    assert_eq!(run.pushed, run.consumed + run.fill_end, "frames lost or repeated outside the resampler");
    assert!(run.fill.0 > 0 && run.fill.1 < RING_PERIODS * PERIOD, "fill {:?}", run.fill);
    // Settled: within two periods of the target (the writer adds whole periods).
    assert!(
        run.settled_fill.0 + 2 * PERIOD >= target && run.settled_fill.1 <= target + 2 * PERIOD,
        "settled fill {:?} around {target}",
        run.settled_fill
    );
    assert!((run.drift_ppm - ppm).abs() < 0.1, "drift estimate {} ppm for {ppm}", run.drift_ppm);
    let published = run.published_ppm.expect("the flow's stats carry the drift");
    assert!((published - run.drift_ppm).abs() < 1e-3);
    let rms = 0.5 / 2f64.sqrt();
    assert!((run.rms_end - rms).abs() < rms * 0.01, "output RMS {} (input {rms})", run.rms_end);
}

#[test]
fn a_fast_clock_is_bridged_for_an_hour() {
    check(100.0, 3_600.0, BridgeQuality::Cubic);
}

#[test]
fn a_slow_clock_is_bridged_for_an_hour() {
    check(-100.0, 3_600.0, BridgeQuality::Cubic);
}

#[test]
fn the_sinc_bridge_tracks_too() {
    check(-100.0, 300.0, BridgeQuality::Sinc);
}
