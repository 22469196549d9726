//! Arbitrary bytes through the pull path's TS reading code (packet
//! splitter, PAT/PMT/PES reader, key-frame cutter): it must never panic and
//! must pass every byte through exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    airlift_engine::archive::ts::check_reading_path(data);
});
