//! `srt://` URLs from outside (D-Bus `StartPull`, `airliftctl pull start`):
//! any string parses or is refused with a message, never a panic; every
//! URL built from valid parts parses back to those parts.

use airlift_ipc::spec::KeyLength;
use airlift_ipc::srt_url::{SrtUrl, UrlMode};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_text_never_panics(tail in ".{0,300}", prefixed in any::<bool>()) {
        let url = if prefixed { format!("srt://{tail}") } else { tail };
        if let Err(e) = SrtUrl::parse(&url) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn query_soup_never_panics(
        host in "[a-z0-9.:\\[\\]]{0,20}",
        port in any::<u32>(),
        pairs in prop::collection::vec(("[a-z]{1,12}", "[ -~%]{0,40}"), 0..6),
    ) {
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = SrtUrl::parse(&format!("srt://{host}:{port}?{}", query.join("&")));
    }

    /// Whatever else is wrong with a URL, its error never shows the
    /// passphrase: raw, with a bad escape, not UTF-8 once decoded, too
    /// short, too long, or with the key misspelt. (The secret is upper
    /// case; nothing else in these URLs is.)
    #[test]
    fn errors_never_contain_the_passphrase(
        secret in "[A-Z]{12,40}",
        mangle in 0usize..7,
        listener in any::<bool>(),
        before in prop::collection::vec(("[a-z_]{1,12}", "[a-z0-9=%./:_-]{0,20}"), 0..3),
        after in prop::collection::vec(("[a-z_]{1,12}", "[a-z0-9=%./:_-]{0,20}"), 0..3),
    ) {
        let (key, value) = match mangle {
            0 => ("passphrase", secret.clone()),
            1 => ("passphrase", format!("{secret}%zz")),
            2 => ("passphrase", format!("{secret}%ff%fe")),
            3 => ("passphrase", secret[..5].to_owned()),
            4 => ("passphrase", secret.repeat(4)),
            5 => ("Passphrase", secret.clone()),
            _ => ("pass_phrase", secret.clone()),
        };
        let shown_secret = if mangle == 3 { &secret[..5] } else { &secret[..12] };
        let pairs: Vec<String> = before
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(std::iter::once(format!("{key}={value}")))
            .chain(after.iter().map(|(k, v)| format!("{k}={v}")))
            .collect();
        let base = if listener { "srt://:0?mode=listener&" } else { "srt://10.0.0.1:9000?" };
        let url = format!("{base}{}", pairs.join("&"));
        if let Err(e) = SrtUrl::parse(&url) {
            let e = e.to_string();
            prop_assert!(!e.contains(shown_secret), "{url} -> {e}");
        }
    }

    #[test]
    fn valid_parts_round_trip(
        octets in prop::array::uniform4(0u8..=255),
        port in 1u16..,
        latency in 20u32..=10_000,
        key in prop::sample::select(vec![(16, KeyLength::Aes128), (24, KeyLength::Aes192), (32, KeyLength::Aes256)]),
        secret in "[a-zA-Z0-9 #&=%]{10,40}",
    ) {
        let host = format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]);
        let encoded: String = secret
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let url = format!("srt://{host}:{port}?latency={latency}&pbkeylen={}&passphrase={encoded}", key.0);
        let parsed = SrtUrl::parse(&url).map_err(|e| TestCaseError::fail(e.to_string()))?;
        match &parsed.mode {
            UrlMode::Caller { host: h, port: p } => {
                prop_assert_eq!(h.as_str(), host.as_str());
                prop_assert_eq!(p.get(), port);
            }
            UrlMode::Listener { .. } => prop_assert!(false, "a caller URL parsed as a listener"),
        }
        prop_assert_eq!(parsed.latency_ms.get(), latency);
        prop_assert_eq!(parsed.key_length, key.1);
        prop_assert_eq!(parsed.passphrase.as_ref().map(|p| p.expose()), Some(secret.as_str()));
    }
}

/// The committed corpus of the `srt_url` fuzz target parses or is refused,
/// never panics.
#[test]
fn fuzz_corpus_replays_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/srt_url");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus is committed") {
        let bytes = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = SrtUrl::parse(text);
        }
        files += 1;
    }
    assert!(files >= 5, "corpus has only {files} files");
}
