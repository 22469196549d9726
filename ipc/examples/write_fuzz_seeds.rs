//! Writes one valid frame per message kind into a directory, as seeds for
//! the `ipc_decode` fuzz target: `cargo run -p airlift-ipc --example
//! write_fuzz_seeds -- fuzz/corpus/ipc_decode`.

use airlift_ipc::frame;
use airlift_ipc::message::*;
use airlift_ipc::spec::*;
use airlift_ipc::units::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: write_fuzz_seeds DIR")?;
    std::fs::create_dir_all(&dir)?;
    let flows: DesiredState = toml::from_str(include_str!("../tests/data/two_flows.toml"))?;
    let name = Name::new("main")?;
    let ctl = [
        CtlToEngine::Hello { protocol: PROTOCOL, client: "seed".into() },
        CtlToEngine::Command { id: CommandId(1), command: Command::ApplyState(flows) },
        CtlToEngine::Command {
            id: CommandId(2),
            command: Command::SetGain {
                flow: name.clone(),
                input: Name::new("tone")?,
                gain: GainDb::new(-6.0)?,
            },
        },
        CtlToEngine::Command { id: CommandId(3), command: Command::Shutdown },
        CtlToEngine::Command { id: CommandId(4), command: Command::ApplyState(toml::from_str(FAILOVER)?) },
        CtlToEngine::Command {
            id: CommandId(5),
            command: Command::SelectSource {
                flow: name.clone(),
                input: Name::new("contrib")?,
                source: Some(Name::new("slate")?),
            },
        },
    ];
    let engine = [
        EngineToCtl::Hello { protocol: PROTOCOL, engine_version: "0.1.0".into(), pid: 1 },
        EngineToCtl::Rejected {
            id: CommandId(9),
            reason: Rejection { kind: RejectKind::NotFound, message: "no flow x".into() },
        },
        EngineToCtl::Meters {
            flow: name.clone(),
            channels: vec![ChannelMeter { peak_dbfs: -20.0, rms_dbfs: -23.0 }; 2],
            loudness: None,
        },
        EngineToCtl::Stats(EngineStats {
            flows: vec![FlowStats { flow: "main".into(), ..Default::default() }],
            pulls: vec![PullStats { job: "cam".into(), ..Default::default() }],
            segment_jobs: vec![SegmentJobStats { job: "cam".into(), ..Default::default() }],
        }),
        EngineToCtl::RecordingClosed(RecordingClosed {
            flow: name.clone(),
            output: Name::new("rec")?,
            path: "show.ogg".into(),
            duration_ms: 26_000,
            bytes: 420_000,
            sha256: "0".repeat(64),
        }),
        EngineToCtl::InputSwitched {
            flow: name.clone(),
            input: Name::new("contrib")?,
            source: Name::new("slate")?,
            reason: SwitchReason::Loss,
        },
    ];
    for (i, m) in ctl.iter().enumerate() {
        std::fs::write(format!("{dir}/seed-ctl-{i}"), frame::encode(m)?)?;
    }
    for (i, m) in engine.iter().enumerate() {
        std::fs::write(format!("{dir}/seed-engine-{i}"), frame::encode(m)?)?;
    }
    Ok(())
}

const PROTOCOL: u16 = airlift_ipc::PROTOCOL_VERSION;

/// A flow whose SRT input fails over to a file.
const FAILOVER: &str = r#"
[[flow]]
name = "main"

[[flow.input]]
name = "contrib"
producer = { srt_in = { srt = { mode = { caller = { host = "127.0.0.1", port = 9000 } } } } }

[flow.input.failover]
loss_ms = 300
silence_threshold_dbfs = -50.0

[[flow.input.failover.backup]]
name = "slate"
producer = { file = { path = "slate.wav", looped = true } }
"#;
