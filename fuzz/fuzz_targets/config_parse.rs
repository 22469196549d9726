//! Feeds arbitrary text to ctld's configuration parser: it must accept or
//! list errors, never panic, and give the same verdict twice.
#![no_main]

use std::path::Path;

use airlift_ctl::config::{Overrides, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let first = parse(text, "fuzz", Path::new("/"), &Overrides::default());
    let second = parse(text, "fuzz", Path::new("/"), &Overrides::default());
    assert_eq!(first, second);
    if let Err(errors) = first {
        assert!(!errors.0.is_empty(), "an error verdict lists its errors");
    }
});
