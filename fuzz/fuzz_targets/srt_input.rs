//! Arbitrary bytes through the SRT input's reading path, as the engine runs
//! it for a connection: a `TsInput` byte source, `Decoder::open_ts` (the
//! MPEG-TS demuxer only, accepted audio codecs only, other streams
//! discarded) and `Decoder::read` until the end. Refusals are fine; a
//! crash, a hang, a leak or a sanitizer report is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = airlift_engine::sys::ffmpeg::check_srt_input_path(data);
});
