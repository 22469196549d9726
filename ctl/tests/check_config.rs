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
    }
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
