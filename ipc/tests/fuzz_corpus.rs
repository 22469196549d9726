//! Replays the committed corpus of the `ipc_decode` fuzz target through the
//! same checks the fuzz target makes, so every CI run exercises it without
//! libFuzzer.

use std::path::Path;

use airlift_ipc::{CtlToEngine, EngineToCtl, frame};
use serde::{Serialize, de::DeserializeOwned};

fn check<M: Serialize + DeserializeOwned>(data: &[u8]) -> bool {
    match frame::decode::<M>(data) {
        Ok(Some((msg, used))) => {
            assert!(used <= data.len());
            let again = frame::encode(&msg).expect("a decoded message re-encodes");
            let (back, _) = frame::decode::<M>(&again).expect("re-decodes").expect("complete");
            assert_eq!(frame::encode(&back).expect("re-encodes"), again);
            true
        }
        _ => false,
    }
}

#[test]
fn corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ipc_decode");
    let mut files = 0;
    let mut decoded = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus is committed") {
        let data = std::fs::read(entry.expect("readable entry").path()).expect("readable file");
        files += 1;
        decoded += usize::from(check::<CtlToEngine>(&data));
        decoded += usize::from(check::<EngineToCtl>(&data));
    }
    assert!(files >= 8, "corpus has only {files} files");
    assert!(decoded >= 8, "only {decoded} corpus entries decode: the seeds are missing");
}
