//! Records one second of a test tone in real time into a WAV file, through a
//! node (the same path `airlift-engine run` takes).
//!
//! `cargo run -p airlift-engine --example simple_recording [OUT.wav]`

use airlift_engine::{BuildOptions, FlowBuilder, Node, RealtimeRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| std::env::temp_dir().join("airlift-simple-recording.wav").display().to_string());
    let spec = FlowBuilder::new("studio")?.period(128)?.sine("tone", 1000.0, -20.0)?.wav("rec", &out)?.spec();

    let mut node = Node::new(BuildOptions::default(), RealtimeRequest::default());
    let mut events = Vec::new();
    node.add_flow(spec, vec![], &mut events)?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    let stats = node.stats();
    node.shutdown(&mut events);

    let flow = &stats.flows[0];
    println!("recorded {} frames into {out} ({} deadline misses)", flow.frames, flow.deadline_misses);
    let written = hound::WavReader::open(&out)?.duration();
    assert!(written >= 40_000, "about one second was recorded, got {written} frames");
    Ok(())
}

#[test]
fn runs() {
    main().unwrap();
}
