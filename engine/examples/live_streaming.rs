//! Live streaming through SRT, engine to engine on one node: a "studio"
//! flow encodes a tone to AAC in MPEG-TS and serves it on an SRT listener
//! (AES-256 passphrase); a "contribution" flow calls it, decodes the stream
//! behind a jitter buffer and records it to WAV.
//!
//! `cargo run -p airlift-engine --example live_streaming [OUT.wav]`

use std::time::Duration;

use airlift_engine::{BuildOptions, FlowBuilder, Node, RealtimeRequest};
use airlift_ipc::spec::{
    Codec, ConsumerSpec, EncodedSpec, KeyLength, ProducerSpec, SrtInSpec, SrtMode, SrtSpec, TsSink,
};
use airlift_ipc::units::{Bitrate, Host, Passphrase, Port, SrtLatencyMs};

fn srt(mode: SrtMode) -> Result<SrtSpec, Box<dyn std::error::Error>> {
    Ok(SrtSpec {
        mode,
        latency_ms: SrtLatencyMs::new(120)?,
        passphrase: Some(Passphrase::new("airlift-example-secret")?),
        key_length: KeyLength::Aes256,
        stream_id: None,
        allow_unencrypted: false,
        allow_from: Vec::new(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| std::env::temp_dir().join("airlift-live-streaming.wav").display().to_string());
    // A free UDP port for the listener.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();

    let studio = FlowBuilder::new("studio")?
        .channels(2)?
        .sine("tone", 1000.0, -18.0)?
        .output(
            "air",
            ConsumerSpec::Encoded(EncodedSpec {
                codec: Codec::Aac,
                bitrate: Some(Bitrate::new(128_000)?),
                service_name: Some("Airlift Example".into()),
                provider: Some("Airlift".into()),
                sink: TsSink::Srt(srt(SrtMode::Listener { port: Port::new(port)? })?),
            }),
        )?
        .spec();
    let contribution = FlowBuilder::new("contribution")?
        .channels(2)?
        .input(
            "studio",
            ProducerSpec::SrtIn(SrtInSpec {
                srt: srt(SrtMode::Caller { host: Host::new("127.0.0.1")?, port: Port::new(port)? })?,
                jitter_ms: 200,
            }),
        )?
        .wav("rec", &out)?
        .spec();

    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.add_flow(studio, vec![], &mut events)?;
    node.add_flow(contribution, vec![], &mut events)?;
    std::thread::sleep(Duration::from_secs(3));
    node.shutdown(&mut events);

    // Some of the three seconds went into connecting and the jitter buffer;
    // the rest is the tone.
    let mut reader = hound::WavReader::open(&out)?;
    let scale = 1.0 / f64::from(1u32 << 23);
    let peak = reader
        .samples::<i32>()
        .map(|s| s.map(|v| (f64::from(v) * scale).abs()))
        .try_fold(0.0f64, |m, s| s.map(|s| m.max(s)))?;
    let peak_db = 20.0 * peak.log10();
    // A mono -18 dBFS tone panned centre onto a stereo bus: -21 dBFS per side.
    println!("recorded {out}: tone peak {peak_db:.1} dBFS (expected -21 dBFS)");
    assert!((peak_db + 21.0).abs() < 1.0, "the tone came through SRT");
    Ok(())
}

#[test]
fn runs() {
    main().unwrap();
}
