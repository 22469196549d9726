//! Airlift's audio engine as a library; the `airlift-engine` binary (the
//! Unix-socket server that `airlift-ctld` talks to) is the package
//! `airlift-engine-daemon` in `engine/daemon`.
//!
//! # Layout
//!
//! - [`rt`]: realtime thread setup, clocks, lock-free counters, and
//!   [`rt::bridge`], the adaptive-resampling bridge between two clock domains.
//! - [`dsp`]: SIMD kernels (mix, meters) with scalar references, pan law,
//!   test signals.
//! - [`graph`]: the flow graph; [`graph::build`] prepares it on the control
//!   thread, [`graph::rt_graph::RtGraph::process`] runs one period on the
//!   audio thread; the [`Processor`] trait for your own DSP.
//! - [`io`]: WAV source and recorder on named worker threads; [`io::alsa`],
//!   ALSA capture and playback whose blocking I/O clocks the flow's audio
//!   thread (the only module that calls alsa-lib).
//! - [`media`]: FFmpeg codecs and MPEG-TS, SRT input and output, on named
//!   worker threads (all FFI in `media::ffmpeg` and `media::srt`).
//! - [`flow`]: a flow on its audio thread, or rendered offline.
//! - [`node`]: the set of flows converged to a desired state.
//!
//! Which thread may call what is said on each item: "Realtime-safe." or
//! "Control thread only.".
//!
//! # Example: render a tone into a WAV file
//!
//! ```
//! use airlift_engine::{FlowBuilder, flow::render, graph::BuildOptions};
//!
//! let dir = std::env::temp_dir().join(format!("airlift-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let spec = FlowBuilder::new("doc")
//!     .unwrap()
//!     .sine("tone", 1000.0, -20.0)
//!     .unwrap()
//!     .wav("rec", dir.join("tone.wav").to_str().unwrap())
//!     .unwrap()
//!     .spec();
//! let summary = render(&spec, &BuildOptions::default(), 1.0, vec![]).unwrap();
//! assert_eq!(summary.stats.frames, 48_000);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![deny(missing_docs)]

pub mod dsp;
pub mod flow;
pub mod graph;
pub mod io;
pub mod media;
pub mod node;
pub mod rt;

mod builder;

pub use builder::FlowBuilder;
pub use graph::{Bus, Processor};
pub use node::Node;

/// The engine's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
