//! Every message survives encode → decode unchanged, also when it arrives in
//! pieces or back to back with others.

mod strategies;

use airlift_ipc::{CtlToEngine, EngineToCtl, frame};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ctl_to_engine_round_trips(msg in strategies::ctl_to_engine()) {
        let bytes = frame::encode(&msg).unwrap();
        let (back, used) = frame::decode::<CtlToEngine>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, msg);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn engine_to_ctl_round_trips(msg in strategies::engine_to_ctl()) {
        let bytes = frame::encode(&msg).unwrap();
        let (back, used) = frame::decode::<EngineToCtl>(&bytes).unwrap().unwrap();
        prop_assert_eq!(back, msg);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn frames_decode_from_a_stream_in_any_split(
        msgs in prop::collection::vec(strategies::engine_to_ctl(), 1..5),
        split in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        for m in &msgs {
            frame::encode_into(m, &mut stream).unwrap();
        }
        // Feed the stream in two pieces, like a socket would.
        let cut = split.index(stream.len() + 1);
        let mut buf = stream[..cut].to_vec();
        let mut rest = &stream[cut..];
        let mut out = Vec::new();
        loop {
            match frame::decode::<EngineToCtl>(&buf).unwrap() {
                Some((m, used)) => { out.push(m); buf.drain(..used); }
                None if !rest.is_empty() => { buf.extend_from_slice(rest); rest = &[]; }
                None => break,
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn specs_round_trip_through_toml(flow in strategies::flow()) {
        let state = airlift_ipc::spec::DesiredState { flows: vec![flow], ..Default::default() };
        let text = toml::to_string(&state).unwrap();
        let back: airlift_ipc::spec::DesiredState = toml::from_str(&text).unwrap();
        prop_assert_eq!(back, state);
    }
}
