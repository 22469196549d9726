//! Any byte string decodes, asks for more, or errors: never a panic, and the
//! decoder never allocates more than the maximum frame size.

mod strategies;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use airlift_ipc::{CtlToEngine, EngineToCtl, MAX_PAYLOAD_LEN, frame};
use proptest::prelude::*;

/// Counts bytes allocated on this thread while armed.
struct Tracking;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the
// bookkeeping touches only const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(delta: isize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            LIVE.with(|live| {
                live.set(live.get() + delta);
                PEAK.with(|peak| peak.set(peak.get().max(live.get())));
            });
        }
    });
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Runs `f` and returns the peak number of bytes it held at once.
fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, isize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, PEAK.with(|p| p.get()))
}

fn with_header(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&frame::MAGIC);
    v.extend_from_slice(&airlift_ipc::PROTOCOL_VERSION.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = frame::decode::<CtlToEngine>(&bytes);
        let _ = frame::decode::<EngineToCtl>(&bytes);
    }

    #[test]
    fn random_payloads_behind_a_valid_header_stay_bounded(payload in prop::collection::vec(any::<u8>(), 0..2048)) {
        let bytes = with_header(&payload);
        let (_, peak) = peak_bytes(|| frame::decode::<CtlToEngine>(&bytes));
        prop_assert!(peak <= MAX_PAYLOAD_LEN as isize, "peak {peak}");
        let (_, peak) = peak_bytes(|| frame::decode::<EngineToCtl>(&bytes));
        prop_assert!(peak <= MAX_PAYLOAD_LEN as isize, "peak {peak}");
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        msg in strategies::ctl_to_engine(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = frame::encode(&msg).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let (_, peak) = peak_bytes(|| frame::decode::<CtlToEngine>(&bytes));
        prop_assert!(peak <= MAX_PAYLOAD_LEN as isize, "peak {peak}");
    }
}

/// A payload that announces a vector of 2^32 flows must not make the decoder
/// reserve room for them.
#[test]
fn huge_announced_lengths_do_not_preallocate() {
    // Command variant 1 (Command), id 0, Command::ApplyState (0), then a
    // varint flow count of u32::MAX.
    let payload = [1u8, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let bytes = with_header(&payload);
    let (result, peak) = peak_bytes(|| frame::decode::<CtlToEngine>(&bytes));
    assert!(result.is_err());
    assert!(peak <= MAX_PAYLOAD_LEN as isize, "peak {peak}");
}
