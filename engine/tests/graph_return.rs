//! Replaced graphs are freed on the control thread, never on the audio
//! thread — also when the control thread is slow to take them back and the
//! return ring (4 slots) is full: a burst of swaps at 4096-frame periods runs
//! on a thread whose allocations and frees are counted.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use airlift_engine::dsp::mix::MixKernel;
use airlift_engine::flow::{AudioDriver, FlowControl, RtCommand, audio_driver};
use airlift_engine::graph::rt_graph::{Pacing, RtGraph};

mod counting_alloc;
use counting_alloc::{ALLOCS, ARMED, FREES};

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

const FRAMES: usize = 4096;

fn graph() -> Box<RtGraph> {
    Box::new(RtGraph::new(
        Pacing::Realtime,
        MixKernel::Scalar,
        FRAMES,
        48_000,
        2,
        vec![],
        vec![],
        vec![],
        Default::default(),
    ))
}

/// Runs `periods` periods (or until Stop) on a counting thread; returns the
/// driver, the periods run and whether Stop arrived.
fn run_counted(mut driver: AudioDriver, periods: u32) -> std::thread::JoinHandle<(AudioDriver, u32, bool)> {
    std::thread::spawn(move || {
        ARMED.with(|a| a.set(true));
        let mut ran = 0;
        let mut stopped = false;
        while ran < periods {
            if !driver.run_period(85_333_333) {
                stopped = true;
                break;
            }
            ran += 1;
        }
        ARMED.with(|a| a.set(false));
        (driver, ran, stopped)
    })
}

fn burst(swaps: usize) {
    ALLOCS.store(0, Ordering::Relaxed);
    FREES.store(0, Ordering::Relaxed);
    let (mut control, driver): (FlowControl, AudioDriver) = audio_driver(graph());
    for _ in 0..swaps {
        control.send(RtCommand::Swap(graph())).unwrap();
    }
    // The control thread takes nothing back while the audio thread runs.
    let (driver, ran, stopped) = run_counted(driver, 20).join().unwrap();
    assert_eq!((ran, stopped), (20, false));
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "{swaps} swaps: a graph was freed on the audio thread");
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "{swaps} swaps: allocation on the audio thread");
    let mut returned = 0;
    while control.take_returned().is_some() {
        returned += 1;
    }
    // Four fit the ring; one more waits in the audio thread's slot; the
    // rest wait, not yet swapped in, in the command ring.
    assert_eq!(returned, swaps.min(4), "{swaps} swaps");

    // Now the control thread takes graphs back as they come; a Stop behind
    // the waiting swaps arrives once they are all done.
    control.send(RtCommand::Stop).unwrap();
    let audio = run_counted(driver, u32::MAX);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !audio.is_finished() {
        assert!(Instant::now() < deadline, "the audio thread never reached Stop");
        while control.take_returned().is_some() {
            returned += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (driver, _, stopped) = audio.join().unwrap();
    assert!(stopped);
    while control.take_returned().is_some() {
        returned += 1;
    }
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "{swaps} swaps: a graph was freed on the audio thread");
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "{swaps} swaps: allocation on the audio thread");
    // Every replaced graph came back (the last one may still sit in the
    // audio thread's slot, handed over with the driver).
    let pending = usize::from(returned < swaps);
    assert_eq!(returned + pending, swaps, "{swaps} swaps");
    drop(driver);
}

/// One test (the counters are global): a burst of five swaps, then one
/// larger than the return ring plus the audio thread's slot.
#[test]
fn swap_bursts_free_nothing_on_the_audio_thread() {
    burst(5);
    burst(8);
}
