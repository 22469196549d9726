//! Tests of the configuration: the loader, the checks and the defaults.

use super::*;
use std::path::Path;

use airlift_ipc::spec::SrtMode;

#[test]
fn the_default_config_is_valid() {
    let config = parse(DEFAULT_CONFIG, "built-in default", Path::new("."), &Overrides::default()).unwrap();
    assert!(!config.state.flows.is_empty());
}

#[test]
fn upload_settings_have_defaults_and_ranges() {
    let config = parse("", "empty.toml", Path::new("."), &Overrides::default()).unwrap();
    assert_eq!(config.upload, UploadSection::default());
    assert_eq!(config.spool.retention_hours, 0);
    let text = r#"
[spool]
retention_hours = 9000
[upload]
concurrency = 0
multipart_threshold = "1MiB"
part_size = "1KiB"
backoff_min_ms = 5000
backoff_max_ms = 100
breaker_failures = 0
rescan_secs = 0
[limits]
upload_queue = 0
"#;
    let errors = parse(text, "u.toml", Path::new("."), &Overrides::default()).unwrap_err().0;
    let all: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
    for key in [
        "spool.retention_hours",
        "upload.concurrency",
        "upload.multipart_threshold",
        "upload.part_size",
        "upload.backoff_max_ms",
        "upload.breaker_failures",
        "upload.rescan_secs",
        "limits.upload_queue",
    ] {
        assert!(all.iter().any(|k| k == key), "missing {key} in {all:?}");
    }
    let bad = parse("[upload]\nspeed = 1\n", "u.toml", Path::new("."), &Overrides::default()).unwrap_err();
    assert!(bad.to_string().contains("unknown field `speed`"), "{bad}");
}

#[test]
fn an_unencrypted_srt_listener_is_refused_unless_opted_out() {
    let text = r#"[srt]
port_range = "31000-31010"

[[flow]]
name = "main"

[[flow.input]]
name = "tone"
producer = { test_signal = { kind = "silence" } }

[[flow.input]]
name = "studio"
producer = { srt_in = { srt = { mode = { listener = { port = 31000 } } } } }

[[pull]]
name = "ingest"
segments = { job = "ingest", target_seconds = 6 }
source = { mode = { listener = { port = 31001 } } }
"#;
    let errors = parse(text, "l.toml", Path::new("."), &Overrides::default()).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.contains(
            "l.toml:12:1: flow[main].input[studio].producer.srt_in.srt: an SRT listener without a passphrase"
        ),
        "{shown}"
    );
    assert!(shown.contains("allow_unencrypted = true"), "{shown}");
    assert!(shown.contains("l.toml:18:1: pull[ingest].source: an SRT listener"), "{shown}");
    assert_eq!(errors.0.len(), 2, "{shown}");

    let opted_out =
        text.replace("port = 31000 } } }", "port = 31000 } }, allow_unencrypted = true }").replace(
            "port = 31001 } } }",
            "port = 31001 } }, allow_unencrypted = true, allow_from = [\"10.0.0.0/8\"] }",
        );
    let config = parse(&opted_out, "l.toml", Path::new("."), &Overrides::default()).unwrap();
    assert!(config.state.pulls[0].source.allow_unencrypted);
    assert_eq!(config.state.pulls[0].source.allow_from[0].to_string(), "10.0.0.0/8");
    let encrypted = text
        .replace("port = 31000 } } }", "port = 31000 } }, passphrase = \"correct horse\" }")
        .replace("port = 31001 } } }", "port = 31001 } }, passphrase = \"correct horse\" }");
    parse(&encrypted, "l.toml", Path::new("."), &Overrides::default()).unwrap();
    // A malformed network is refused with its own message.
    let bad = opted_out.replace("10.0.0.0/8", "10.0.0.1/8");
    let shown = parse(&bad, "l.toml", Path::new("."), &Overrides::default()).unwrap_err().to_string();
    assert!(shown.contains("the network is 10.0.0.0/8"), "{shown}");
}

#[test]
fn url_listeners_get_the_same_port_checks_as_tables() {
    let text = r#"[srt]
port_range = "31000-31010"

[[flow]]
name = "main"

[[flow.input]]
name = "a"
producer = { srt_in = { srt = "srt://:31000?mode=listener&passphrase=correct-horse" } }

[[flow.input]]
name = "b"
producer = { srt_in = { srt = { mode = { listener = { port = 31000 } }, passphrase = "correct-horse" } } }

[[pull]]
name = "ingest"
segments = { job = "ingest", target_seconds = 6 }
source = "srt://:32000?mode=listener&passphrase=correct-horse"
"#;
    let shown = parse(text, "p.toml", Path::new("."), &Overrides::default()).unwrap_err().to_string();
    assert!(
        shown.contains("p.toml:12:1: flow[main].input[b].producer.srt_in.srt: listener port 31000 is already used by flow[main].input[a]"),
        "{shown}"
    );
    assert!(
        shown.contains("pull[ingest].source: listener port 32000 is outside srt.port_range 31000-31010"),
        "{shown}"
    );
    let fixed = text.replace("port = 31000 }", "port = 31001 }").replace(":32000?", ":31002?");
    let config = parse(&fixed, "p.toml", Path::new("."), &Overrides::default()).unwrap();
    assert_eq!(
        config.state.pulls[0].source.mode,
        SrtMode::Listener { port: airlift_ipc::units::Port::new(31002).unwrap() }
    );
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = r#"
[node]
name = "ok"
colour = "blue"

[srt]
port_range = "30100-30000"

[http]
listen = "0.0.0.0:80"

[[flow]]
name = "a"
channels = 0

[[flow]]
name = "b"
[[flow.input]]
name = "x"
gain_db = 300.0
producer = { test_signal = { kind = "silence" } }

[[s3]]
name = "t"
endpoint = "ftp://x"
bucket = "B"

[bogus]
"#;
    let errors = parse(text, "test.toml", Path::new("."), &Overrides::default()).unwrap_err().0;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = shown.join("\n");
    for needle in [
        "test.toml:4:1: node: unknown field `colour`",
        "test.toml:7:14: srt.port_range: ",
        "inverted",
        "http",
        "loopback",
        "flow[0]",
        "channel count",
        "flow[1]",
        "gain",
        "s3[t].endpoint",
        "s3[t].bucket",
        "bogus: unknown section",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(errors.len() >= 7, "{all}");
}

#[test]
fn an_s3_ca_file_must_hold_pem_certificates() {
    let dir = std::env::temp_dir().join(format!("airlift-config-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("not-pem.pem"), "this is not a certificate\n").unwrap();
    std::fs::write(
        dir.join("bad-base64.pem"),
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let config = |ca: &str| {
        format!(
            "[[s3]]\nname = \"t\"\nendpoint = \"https://127.0.0.1:9000\"\nbucket = \"archive\"\n\
                 ca_file = \"{ca}\"\n"
        )
    };
    for (ca, needle) in [
        ("not-pem.pem", "holds no PEM certificate"),
        ("bad-base64.pem", "is not valid PEM"),
        ("missing.pem", "cannot be read"),
    ] {
        let errors = parse(&config(ca), "ca.toml", &dir, &Overrides::default()).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        let shown = errors[0].to_string();
        assert!(shown.starts_with("ca.toml:5:1: s3[t].ca_file: "), "{shown}");
        assert!(shown.contains(ca) && shown.contains(needle), "{shown}");
    }
    let inline =
        "s3 = [{ name = \"t\", endpoint = \"https://h\", bucket = \"archive\", ca_file = \"x.pem\" }]\n";
    let errors = parse(inline, "ca.toml", &dir, &Overrides::default()).unwrap_err().0;
    assert_eq!(errors[0].key, "s3[t].ca_file");
    assert_eq!(errors[0].position.map(|p| p.0), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn overrides_win_and_are_checked() {
    let o = Overrides { http_listen: Some("127.0.0.1:9999".into()), ..Default::default() };
    let c = parse(DEFAULT_CONFIG, "d", Path::new("."), &o).unwrap();
    assert_eq!(c.http.listen.0.port(), 9999);
    let o = Overrides { spool: Some("../escape".into()), ..Default::default() };
    let e = parse(DEFAULT_CONFIG, "d", Path::new("."), &o).unwrap_err();
    assert!(e.to_string().contains("AIRLIFT_SPOOL"));
}
