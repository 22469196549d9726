//! Airlift's audio engine as a library; the `airlift-engine` binary (the
//! Unix-socket server that `airlift-ctld` talks to) is the package
//! `airlift-engine-daemon` in `engine/daemon`.
//!
//! # The API
//!
//! [`FlowBuilder`] writes a flow's spec, [`render`] runs it offline,
//! [`Node`] runs flows in real time with [`RealtimeRequest`], and your own
//! DSP is a [`Processor`] on the mix [`Bus`]; [`BuildOptions`] says where
//! files and the spool are. The specs themselves are `airlift_ipc::spec`.
//! The modules below are public only with the `internals` feature (for the
//! `airlift-engine` binary, the benches, the fuzz targets and the engine's
//! own tests).
//!
//! # Layout: rooms, lowest first
//!
//! A room uses its own modules and lower rooms only (checked by
//! `engine/tests/layout.rs`, with `#![forbid(unsafe_code)]` everywhere but
//! the FFI fence and two realtime spots); docs/architecture.md draws it.
//!
//! - `sys`: **the FFI fence**: every FFmpeg (`sys::ffmpeg`) and libsrt
//!   (`sys::srt`) call, and nothing else.
//! - `dsp`: SIMD kernels (mix, meters) with scalar references, pan law,
//!   test signals (`unsafe` only for the SIMD intrinsics in `dsp::mix`).
//! - `rt`: the realtime core's plumbing: thread set-up, clocks (`unsafe`
//!   only for `clock_nanosleep` and `sched_setscheduler`), lock-free
//!   counters, rings, worker threads, and `rt::bridge`, the adaptive
//!   resampler between two clock domains.
//! - `graph`: the flow graph the audio thread runs
//!   (`graph::rt_graph::RtGraph::process`), the [[`Processor`]] trait for your
//!   own DSP, input failover, flow links, and ALSA devices (`graph::alsa`)
//!   whose blocking I/O clocks the audio thread.
//! - `net`: SRT connection policy: callers with backoff, listeners with
//!   their passphrase and allow-list rules.
//! - `archive`: TS reading, segments, the spool, pull jobs.
//! - `workers`: the threads that move audio between rings and the outside:
//!   encoders and TS/SRT senders, the SRT and file inputs, WAV I/O.
//! - `assembly`: a flow spec turned into a graph with its workers
//!   (`assembly::build`), one function per producer and consumer kind.
//! - `flow`: a flow on its audio thread, or rendered offline; `node`: the
//!   set of flows converged to a desired state.
//! - `untrusted`: escaping and rate-limiting what peers send before it is
//!   logged (a leaf any room may use).
//!
//! Which thread may call what is said on each item: "Realtime-safe." or
//! "Control thread only.".
//!
//! # Example: render a tone into a WAV file
//!
//! ```
//! use airlift_engine::{BuildOptions, FlowBuilder, render};
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
// Without `internals` the inner modules are private: what only the binary,
// the benches or the tests use is unused here, and the API's types name
// inner types (as `Node`'s methods do) without exporting them.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports, private_interfaces, private_bounds))]

/// Declares the inner modules: public with the `internals` feature,
/// crate-private without it.
macro_rules! inner {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])* #[cfg(feature = "internals")] pub mod $name;
            $(#[$doc])* #[cfg(not(feature = "internals"))] mod $name;
        )*
    };
}

inner! {
    archive;
    assembly;
    dsp;
    flow;
    graph;
    net;
    node;
    rt;
    sys;
    untrusted;
    workers;
}

mod builder;

pub use assembly::BuildOptions;
pub use builder::FlowBuilder;
pub use flow::{RenderSummary, render};
pub use graph::{Bus, Processor};
pub use node::Node;
pub use rt::thread::RealtimeRequest;

/// The engine's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
