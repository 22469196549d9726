//! A user-written processor: a soft clipper that also counts the samples it
//! had to touch. It allocates nothing in `process`, as the trait requires.
//!
//! `cargo run -p airlift-engine --example custom_processor`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use airlift_engine::{BuildOptions, Bus, FlowBuilder, Processor, render};

/// Soft-clips everything above `ceiling` with tanh and counts what it clipped.
struct SoftClipper {
    ceiling: f32,
    clipped: Arc<AtomicU64>,
}

impl Processor for SoftClipper {
    fn process(&mut self, bus: &mut Bus<'_>) {
        let mut n = 0;
        for c in 0..bus.channels() {
            for s in bus.channel_mut(c) {
                if s.abs() > self.ceiling {
                    *s = self.ceiling * (*s / self.ceiling).tanh();
                    n += 1;
                }
            }
        }
        // A relaxed atomic add: realtime-safe.
        self.clipped.fetch_add(n, Ordering::Relaxed);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join(format!("airlift-custom-{}.wav", std::process::id()));
    let spec = FlowBuilder::new("clip")?
        .channels(1)?
        .sine("hot", 100.0, -1.0)?
        .wav("rec", out.to_str().ok_or("temp path is not UTF-8")?)?
        .spec();
    let clipped = Arc::new(AtomicU64::new(0));
    let clipper = SoftClipper { ceiling: 0.5, clipped: clipped.clone() };
    render(&spec, &BuildOptions::default(), 1.0, vec![Box::new(clipper)])?;

    let mut reader = hound::WavReader::open(&out)?;
    let peak = reader
        .samples::<i32>()
        .map(|s| s.map(|v| v.unsigned_abs()))
        .try_fold(0u32, |m, s| s.map(|s| m.max(s)))?;
    let peak = f64::from(peak) / f64::from(1u32 << 23);
    println!("clipped {} samples; output peak {peak:.3} (input peak 0.891)", clipped.load(Ordering::Relaxed));
    assert!(peak <= 0.5 + 1e-3, "the clipper held the ceiling");
    assert!(clipped.load(Ordering::Relaxed) > 10_000);
    std::fs::remove_file(out)?;
    Ok(())
}

#[test]
fn runs() {
    main().unwrap();
}
