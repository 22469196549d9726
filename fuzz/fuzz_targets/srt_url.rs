//! Feeds arbitrary text to the `srt://` URL parser behind D-Bus `StartPull`:
//! it parses or refuses with a message, never panics, and what it accepts
//! becomes a spec for any listener port.
#![no_main]

use airlift_ipc::srt_url::SrtUrl;
use airlift_ipc::units::Port;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match SrtUrl::parse(text) {
        Ok(url) => {
            let port = Port::new(30_000).ok();
            assert!(url.into_spec(port).is_some(), "an accepted URL yields a spec");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
