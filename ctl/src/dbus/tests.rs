//! Tests of the D-Bus service's helpers: levels and pull options as they
//! cross the bus, and who may change the node.

use super::*;

#[test]
fn levels_carry_minus_inf_and_never_nan() {
    use airlift_ipc::message::{ChannelMeter, Loudness};
    let silent = ChannelMeter { peak_dbfs: f32::NEG_INFINITY, rms_dbfs: f32::NAN };
    let (peak, rms, loudness) = levels_args(&[silent], None);
    assert_eq!((peak, rms), (vec![f64::NEG_INFINITY], vec![f64::NEG_INFINITY]));
    assert!(loudness.is_empty(), "no loudness processor, no loudness keys");
    let l = Loudness {
        momentary_lufs: f64::NAN,
        short_term_lufs: -30.0,
        integrated_lufs: f64::NEG_INFINITY,
        true_peak_dbtp: -1.0,
    };
    let (peak, _, loudness) = levels_args(&[], Some(&l));
    assert!(peak.is_empty());
    assert_eq!(loudness["momentary_lufs"], f64::NEG_INFINITY);
    assert_eq!(loudness["integrated_lufs"], f64::NEG_INFINITY);
    assert_eq!(loudness["short_term_lufs"], -30.0);
}

#[test]
fn the_engine_link_carries_minus_inf() {
    use airlift_ipc::message::{ChannelMeter, Loudness};
    let flow = airlift_ipc::units::Name::new("quiet").unwrap();
    let sent = EngineToCtl::Meters {
        flow,
        channels: vec![ChannelMeter { peak_dbfs: f32::NEG_INFINITY, rms_dbfs: f32::NEG_INFINITY }],
        loudness: Some(Loudness {
            momentary_lufs: f64::NEG_INFINITY,
            short_term_lufs: f64::NEG_INFINITY,
            integrated_lufs: f64::NEG_INFINITY,
            true_peak_dbtp: f64::NEG_INFINITY,
        }),
    };
    let bytes = airlift_ipc::frame::encode(&sent).unwrap();
    let (got, _) = airlift_ipc::frame::decode::<EngineToCtl>(&bytes).unwrap().unwrap();
    assert_eq!(got, sent);
}

#[test]
fn pull_options_are_typed() {
    let opt = |k: &str, v: Value<'_>| HashMap::from([(k.to_string(), OwnedValue::try_from(v).unwrap())]);
    let o = pull_options(&opt("name", Value::from("cam1"))).unwrap();
    assert_eq!(o.name.as_deref(), Some("cam1"));
    assert_eq!(pull_options(&opt("segment_seconds", Value::from(4u32))).unwrap().segment_seconds, Some(4));
    assert_eq!(
        pull_options(&opt("max_segment_bytes", Value::from(1u64 << 20))).unwrap().max_segment_bytes,
        Some(1 << 20)
    );
    for bad in [
        opt("segment_seconds", Value::from("6")),
        opt("max_segment_bytes", Value::from(5u32)),
        opt("name", Value::from(3u32)),
        opt("colour", Value::from("blue")),
        opt("name", Value::from("x".repeat(MAX_ARG + 1).as_str())),
    ] {
        assert!(matches!(pull_options(&bad), Err(NodeError::InvalidArgument(_))), "{bad:?}");
    }
}

#[test]
fn root_is_in_root_group() {
    assert!(user_in_group(0, "root"));
    assert!(!user_in_group(0, "no-such-group-here"));
}
