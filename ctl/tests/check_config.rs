//! `airlift-ctld check-config`: every example config is valid; every file of
//! the bad-config corpus is refused with exit code 2, naming the key and the
//! line, and ctld given one starts nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ctld() -> Command {
    Command::new(env!("CARGO_BIN_EXE_airlift-ctld"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn example_configs_are_valid() {
    let dir = repo().join("examples/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = ctld().arg("check-config").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        n += 1;
    }
    assert!(n >= 4, "only {n} example configs");
    for shipped in ["packaging/airlift.toml", "packaging/docker/airlift.toml"] {
        let out = ctld().arg("check-config").arg(repo().join(shipped)).output().unwrap();
        assert!(out.status.success(), "{shipped}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// (file, texts that must appear in the errors)
const CORPUS: &[(&str, &[&str])] = &[
    ("wrong-type.toml", &["node", ":2:"]),
    ("port-range-inverted.toml", &["srt", "inverted"]),
    ("unknown-key.toml", &["engine", "unknown field `color`"]),
    ("period-too-small.toml", &["flow[0]", "period size"]),
    ("passphrase-too-short.toml", &["flow[0]", "passphrase"]),
    ("path-traversal.toml", &["spool", "`..`"]),
    ("output-path-traversal.toml", &["flow[0]", "`..`"]),
    ("port-outside-range.toml", &["flow[x].input[s]", "outside srt.port_range"]),
    ("http-not-loopback.toml", &["http", "loopback"]),
    ("too-many-flows.toml", &["flow", "max_flows"]),
    ("gain-nan.toml", &["flow[0]", "gain"]),
    (
        "failover-invalid.toml",
        &[
            "input[contrib].failover.backup[primary]: a backup's name must be unique and neither",
            "input[contrib].failover.loss_ms: 5 is outside 20 to 60000",
            "input[contrib].failover.selected: \"nosuch\" is neither \"primary\" nor a backup",
        ],
    ),
    ("syntax.toml", &[":1:"]),
    ("many-errors.toml", &["node", "srt", "spool", "flow[0]", "4 configuration error(s)"]),
    (
        "duplicate-segment-job.toml",
        &[
            "duplicate-segment-job.toml:12:1: flow[backup].output[archive].consumer.encoded.sink.segments.job: \
             segment job \"main\" is already used by flow[studio].output[archive]",
            "duplicate-segment-job.toml:21:1: pull[camera1].segments.job: segment job \"main\" is already used",
            "2 configuration error(s)",
        ],
    ),
    (
        "unencrypted-listener.toml",
        &[
            "unencrypted-listener.toml:8:1: flow[studio].input[contribution].producer.srt_in.srt: \
             an SRT listener without a passphrase serves whoever connects first",
            "unencrypted-listener.toml:18:1: pull[camera1].source: an SRT listener without a passphrase",
            "allow_unencrypted = true",
            "2 configuration error(s)",
        ],
    ),
    (
        "srt-url-caller-port-zero.toml",
        &["srt-url-caller-port-zero.toml:11:56: flow[0].output[to-studio].consumer.encoded.sink.srt: \
             SRT URL \"srt://studio.example.net:0?passphrase=***\": port 0: a caller needs a port"],
    ),
    (
        "srt-url-unknown-mode.toml",
        &[
            "srt-url-unknown-mode.toml:10:31: flow[0].input[remote].producer.srt_in.srt: ",
            "mode \"rendezvous\" is not caller or listener",
        ],
    ),
    (
        "srt-url-passphrase-short.toml",
        &[
            "srt-url-passphrase-short.toml:4:10: pull[0].source: ",
            "passphrase has 6 bytes (UTF-8); SRT needs 10 to 79",
        ],
    ),
    (
        "srt-url-passphrase-long.toml",
        &[
            "srt-url-passphrase-long.toml:4:10: pull[0].source: ",
            "passphrase has 80 bytes (UTF-8); SRT needs 10 to 79",
        ],
    ),
    (
        "srt-url-unknown-key.toml",
        &[
            "srt-url-unknown-key.toml:14:31: flow[0].input[contrib].failover.backup[second-link].producer.srt_in.srt: ",
            "unknown option \"latncy\" (known: mode, latency,",
        ],
    ),
    (
        "srt-url-listener-without-port.toml",
        &["pull[0].source: ", "port 0: a configured listener needs its port (srt://:PORT?mode=listener"],
    ),
    (
        "reserved-segment-job.toml",
        &[
            "reserved-segment-job.toml:2:1: flow[studio].output[archive].consumer.encoded.sink.segments.job: \
             segment job name \"retained\" is reserved",
            "reserved-segment-job.toml:11:1: pull[camera1].segments.job: segment job name \"quarantine\" is reserved",
            "2 configuration error(s)",
        ],
    ),
];

#[test]
fn bad_configs_are_refused_with_every_error() {
    let dir = repo().join("ctl/tests/bad-configs");
    let listed: Vec<&str> = CORPUS.iter().map(|(f, _)| *f).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(listed.contains(&name.as_str()), "{name} is in the corpus but not checked");
    }
    for (file, needles) in CORPUS {
        let path = dir.join(file);
        let out = ctld().arg("check-config").arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        for needle in *needles {
            assert!(stderr.contains(needle), "{file}: expected {needle:?} in:\n{stderr}");
        }
        assert!(stderr.contains(&format!("{file}:")), "{file}: the file is not named:\n{stderr}");
        // The srt-url-* passphrases contain CANARY; no error may show one.
        assert!(!stderr.contains("CANARY"), "{file}: a passphrase is shown:\n{stderr}");
    }
}

/// `check-config --print` of every example: valid TOML that ctld accepts
/// again as the same configuration, with no passphrase or other secret.
#[test]
fn printed_configs_read_back_without_secrets() {
    let tmp = std::env::temp_dir().join(format!("airlift-print-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let dir = repo().join("examples/configs");
    let mut secrets_seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let original = std::fs::read_to_string(&path).unwrap();
        let out = ctld().arg("check-config").arg("--print").arg(&path).output().unwrap();
        assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8(out.stdout).unwrap();
        for secret in ["contribution-secret", "a%20long%20shared%20secret", "a long shared secret"] {
            if original.contains(secret) {
                secrets_seen += 1;
            }
            assert!(!printed.contains(secret), "{}: {secret} printed:\n{printed}", path.display());
        }
        // Written out, it is a configuration again, with the same flows and jobs.
        let copy = tmp.join(path.file_name().unwrap());
        std::fs::write(&copy, &printed).unwrap();
        let again = ctld().arg("check-config").arg("--print").arg(&copy).output().unwrap();
        assert!(
            again.status.success(),
            "{}: {}\n{printed}",
            path.display(),
            String::from_utf8_lossy(&again.stderr)
        );
        let body = |text: &str| text.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&String::from_utf8_lossy(&again.stdout)), body(&printed), "{}", path.display());
    }
    assert!(secrets_seen >= 3, "the examples no longer carry the passphrases this test looks for");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Secrets beyond SRT passphrases: webhook URLs (their path may be the
/// token) and credentials in an S3 endpoint are redacted too.
#[test]
fn printed_configs_redact_urls_with_credentials() {
    let tmp = std::env::temp_dir().join(format!("airlift-print-urls-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = tmp.join("secrets.toml");
    std::fs::write(
        &cfg,
        r#"[[s3]]
name = "archive"
endpoint = "https://AKIDCANARY:SECRETCANARY@s3.example.net"
bucket = "archive"

[[alert]]
name = "ops"
url = "https://hooks.example.net/services/T0/B0/TOKENCANARY"

[[pull]]
name = "cam"
source = "srt://:30010?mode=listener&passphrase=PASSCANARY-42&allow_from=10.0.0.0/8"
segments = { job = "cam", target_seconds = 6 }
"#,
    )
    .unwrap();
    let out = ctld().arg("check-config").arg("--print").arg(&cfg).output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!printed.contains("CANARY"), "{printed}");
    for shown in ["https://s3.example.net/", "https://hooks.example.net/", "\"10.0.0.0/8\"", "port = 30010"] {
        assert!(printed.contains(shown), "{shown} missing:\n{printed}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn ctld_with_a_bad_config_starts_nothing() {
    let tmp = std::env::temp_dir().join(format!("airlift-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let cfg = tmp.join("bad.toml");
    std::fs::write(&cfg, "[engine]\nsocket = \"engine.sock\"\n[spool]\npath = \"spool\"\n[[flow]]\nname = \"a\"\nchannels = 0\n").unwrap();
    let out = ctld().arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!tmp.join("engine.sock").exists());
    assert!(!tmp.join("spool").exists());
    std::fs::remove_dir_all(&tmp).unwrap();
}
