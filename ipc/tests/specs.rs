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
