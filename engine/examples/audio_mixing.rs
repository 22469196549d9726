//! Mixes a tone, pink noise and a muted input onto a stereo bus with gains
//! and pans, meters it, and renders five seconds offline.
//!
//! `cargo run -p airlift-engine --example audio_mixing`

use airlift_engine::{BuildOptions, FlowBuilder, render};
use airlift_ipc::spec::{ProcessorSpec, ProducerSpec, SignalKind, TestSignalSpec};
use airlift_ipc::units::{Channels, LevelDbfs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join(format!("airlift-audio-mixing-{}.wav", std::process::id()));
    let noise = TestSignalSpec {
        kind: SignalKind::PinkNoise,
        frequency: None,
        end_frequency: None,
        sweep_seconds: None,
        level_dbfs: LevelDbfs::new(-30.0)?,
        channels: Channels::new(2)?,
    };
    let spec = FlowBuilder::new("mix")?
        .sine("voice", 440.0, -12.0)?
        .pan("voice", -0.5)?
        .input("bed", ProducerSpec::TestSignal(noise))?
        .gain("bed", -6.0)?
        .sine("talkback", 1000.0, -6.0)?
        .mute("talkback")?
        .processor(ProcessorSpec::Meter)
        .processor(ProcessorSpec::Loudness)
        .wav("rec", out.to_str().ok_or("temp path is not UTF-8")?)?
        .spec();
    let summary = render(&spec, &BuildOptions::default(), 5.0, vec![])?;
    let loudness = summary.loudness.ok_or("the loudness processor reports")?;
    println!(
        "rendered {} frames in {:.3} s; integrated {:.1} LUFS, true peak {:.1} dBTP -> {}",
        summary.stats.frames,
        summary.wall_seconds,
        loudness.integrated_lufs,
        loudness.true_peak_dbtp,
        out.display()
    );
    assert!(loudness.integrated_lufs < -10.0 && loudness.integrated_lufs > -30.0);
    std::fs::remove_file(out)?;
    Ok(())
}

#[test]
fn runs() {
    main().unwrap();
}
