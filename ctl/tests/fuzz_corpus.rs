//! Replays the committed corpus of the `config_parse` fuzz target: every
//! input parses or yields errors, never a panic, and an accepted config
//! parses again to the same result.

use std::path::Path;

use airlift_ctl::config::{Overrides, parse};

#[test]
fn config_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config_parse");
    let mut files = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("readable");
        files += 1;
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        match parse(text, "fuzz", Path::new("/"), &Overrides::default()) {
            Ok(config) => {
                valid += 1;
                let again = parse(text, "fuzz", Path::new("/"), &Overrides::default())
                    .expect("same input, same verdict");
                assert_eq!(again, config);
            }
            Err(errors) => assert!(!errors.0.is_empty()),
        }
    }
    assert!(files >= 10, "corpus has {files} files");
    assert!(valid >= 3, "only {valid} valid configs in the corpus");
}
