//! Links between flows: one writer, one reader, the same sample rate, and
//! every broken rule named with its flow and field.

use airlift_ipc::spec::DesiredState;

fn state(extra: &str) -> DesiredState {
    let toml = format!(
        r#"
[[flow]]
name = "studio"

[[flow.input]]
name = "tone"
producer = {{ test_signal = {{ kind = "sine", frequency = 1000.0 }} }}

[[flow.output]]
name = "feed"
consumer = {{ link = {{ name = "air" }} }}

[[flow]]
name = "tx"
{extra}

[[flow.input]]
name = "studio"
producer = {{ link = {{ name = "air" }} }}

[[flow.output]]
name = "void"
consumer = "null"
"#
    );
    toml::from_str(&toml).unwrap()
}

fn errors(state: &DesiredState) -> String {
    state
        .validate()
        .map(|()| String::new())
        .unwrap_or_else(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
}

#[test]
fn a_link_with_one_writer_and_one_reader_is_valid() {
    state("").validate().unwrap();
}

#[test]
fn a_link_between_rates_is_refused() {
    let text = errors(&state("sample_rate = 44100"));
    assert!(text.contains("tx") && text.contains("input[studio].producer.link.name"), "{text}");
    assert!(text.contains("another sample rate"), "{text}");
}

#[test]
fn a_link_without_writer_or_reader_is_refused() {
    let mut s = state("");
    s.flows.remove(0);
    assert!(errors(&s).contains("no flow writes link \"air\""), "{}", errors(&s));
    let mut s = state("");
    s.flows.remove(1);
    assert!(errors(&s).contains("no flow reads link \"air\""), "{}", errors(&s));
}

#[test]
fn a_link_read_twice_is_refused() {
    let mut s = state("");
    let mut second = s.flows[1].clone();
    second.name = airlift_ipc::units::Name::new("tx2").unwrap();
    s.flows.push(second);
    assert!(errors(&s).contains("more than one reader"), "{}", errors(&s));
}
