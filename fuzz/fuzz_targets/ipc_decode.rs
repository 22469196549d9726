//! Feeds arbitrary bytes to the IPC frame decoder in both directions, and
//! re-encodes whatever decodes: it must decode again to the same bytes.
#![no_main]

use airlift_ipc::{CtlToEngine, EngineToCtl, frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = frame::decode::<CtlToEngine>(data) {
        assert!(used <= data.len());
        let again = frame::encode(&msg).expect("a decoded message re-encodes");
        let (back, _) = frame::decode::<CtlToEngine>(&again).expect("re-decodes").expect("complete");
        // Compared as bytes: meters may carry NaN, which is never equal to itself.
        assert_eq!(frame::encode(&back).expect("re-encodes"), again);
    }
    if let Ok(Some((msg, used))) = frame::decode::<EngineToCtl>(data) {
        assert!(used <= data.len());
        let again = frame::encode(&msg).expect("a decoded message re-encodes");
        let (back, _) = frame::decode::<EngineToCtl>(&again).expect("re-decodes").expect("complete");
        // Compared as bytes: meters may carry NaN, which is never equal to itself.
        assert_eq!(frame::encode(&back).expect("re-encodes"), again);
    }
});
