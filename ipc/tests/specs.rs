//! Flow specs from TOML: what the engine's `--flows` files and ctld's config use.

use airlift_ipc::spec::{ConsumerSpec, DesiredState, ProducerSpec, SignalKind};

const TWO_INPUTS: &str = r#"
[[flow]]
name = "main"
sample_rate = 48000
period = 128
channels = 2

[[flow.input]]
name = "tone"
gain_db = -3.0
pan = -0.5
producer = { test_signal = { kind = "sine", frequency = 1000.0, level_dbfs = -20.0 } }

[[flow.input]]
name = "bed"
muted = true
producer = { test_signal = { kind = "silence" } }

[[flow.processor]]
meter = {}

[[flow.output]]
name = "rec"
consumer = { wav = { path = "out/main.wav", format = "s16" } }
"#;

#[test]
fn a_flow_file_parses() {
    let state: DesiredState = toml::from_str(TWO_INPUTS).unwrap();
    state.validate().unwrap();
    let flow = &state.flows[0];
    assert_eq!(flow.period.get(), 128);
    assert_eq!(flow.inputs.len(), 2);
    assert!(matches!(&flow.inputs[0].producer, ProducerSpec::TestSignal(s) if s.kind == SignalKind::Sine));
    assert!(flow.inputs[1].muted);
    assert!(matches!(&flow.outputs[0].consumer, ConsumerSpec::Wav { .. }));
}

#[test]
fn out_of_range_values_name_the_problem() {
    let bad = TWO_INPUTS.replace("channels = 2", "channels = 0");
    let err = toml::from_str::<DesiredState>(&bad).unwrap_err().to_string();
    assert!(err.contains("channel count"), "{err}");
    assert!(err.contains("line"), "{err}");

    let bad = TWO_INPUTS.replace("gain_db = -3.0", "gain_db = nan");
    let err = toml::from_str::<DesiredState>(&bad).unwrap_err().to_string();
    assert!(err.contains("gain"), "{err}");

    let bad = TWO_INPUTS.replace("out/main.wav", "../../etc/passwd");
    let err = toml::from_str::<DesiredState>(&bad).unwrap_err().to_string();
    assert!(err.contains(".."), "{err}");
}

#[test]
fn unknown_keys_are_refused() {
    let bad = TWO_INPUTS.replace("period = 128", "period = 128\nperiod_size = 3");
    let err = toml::from_str::<DesiredState>(&bad).unwrap_err().to_string();
    assert!(err.contains("period_size"), "{err}");
}

#[test]
fn cross_field_rules_report_every_error() {
    let bad = TWO_INPUTS
        .replace("frequency = 1000.0", "frequency = 30000.0")
        .replace("name = \"bed\"", "name = \"tone\"");
    let state: DesiredState = toml::from_str(&bad).unwrap();
    let errors = state.validate().unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().any(|e| e.field.contains("frequency")));
    assert!(errors.iter().any(|e| e.message.contains("duplicate")));
}

const LISTENERS: &str = r#"
[[flow]]
name = "main"

[[flow.input]]
name = "studio"
producer = { srt_in = { srt = { mode = { listener = { port = 31000 } } } } }

[[flow.output]]
name = "out"
consumer = { encoded = { codec = "aac", bitrate = 128000, sink = { srt = { mode = { listener = { port = 31001 } }, passphrase = "correct horse battery" } } } }

[[pull]]
name = "ingest"
source = { mode = { listener = { port = 31002 } } }
segments = { job = "ingest", target_seconds = 6 }
"#;

#[test]
fn an_srt_listener_without_a_passphrase_needs_the_opt_out() {
    let state: DesiredState = toml::from_str(LISTENERS).unwrap();
    let errors = state.validate().unwrap_err();
    let mut fields: Vec<String> = errors.iter().map(|e| format!("{}.{}", e.flow, e.field)).collect();
    fields.sort();
    assert_eq!(fields, ["ingest.source.passphrase", "main.input[studio].producer.srt_in.srt.passphrase"]);
    assert!(errors.iter().all(|e| e.message.contains("allow_unencrypted = true")), "{errors:?}");

    let opted_out = LISTENERS
        .replace("listener = { port = 31000 } }", "listener = { port = 31000 } }, allow_unencrypted = true")
        .replace("listener = { port = 31002 } }", "listener = { port = 31002 } }, allow_unencrypted = true, allow_from = [\"127.0.0.2/32\", \"::1/128\"]");
    let state: DesiredState = toml::from_str(&opted_out).unwrap();
    state.validate().unwrap();
    assert_eq!(state.pulls[0].source.allow_from.len(), 2);
    assert!(state.pulls[0].source.is_unencrypted_listener());
    assert!(!state.flows[0].srt_endpoints().nth(1).unwrap().1.is_unencrypted_listener());

    // A caller needs no passphrase, and takes no allow-list.
    let caller = LISTENERS.replace(
        "{ mode = { listener = { port = 31002 } } }",
        "{ mode = { caller = { host = \"10.0.0.9\", port = 9000 } }, allow_from = [\"10.0.0.0/8\"] }",
    );
    let state: DesiredState = toml::from_str(&caller).unwrap();
    let errors = state.validate().unwrap_err();
    assert!(
        errors.iter().any(|e| e.field == "source.allow_from" && e.message.contains("only a listener")),
        "{errors:?}"
    );
    assert!(!errors.iter().any(|e| e.flow == "ingest" && e.field == "source.passphrase"));

    // A malformed network is refused when the spec is read.
    let bad = opted_out.replace("127.0.0.2/32", "127.0.0.2/33");
    let err = toml::from_str::<DesiredState>(&bad).unwrap_err().to_string();
    assert!(err.contains("peer network") && err.contains("CIDR"), "{err}");
}
