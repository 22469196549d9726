//! The flow graph: producers → per-input gain/mute/pan → mixer bus →
//! processors → consumers.
//!
//! [`crate::assembly::build`] turns a spec into an [`rt_graph::RtGraph`] on the control thread;
//! the audio thread only ever runs [`rt_graph::RtGraph::process`].
#![forbid(unsafe_code)]

pub mod alsa;
pub mod failover;
pub mod link;
pub mod loudness;
pub mod processor;
pub mod rt_graph;

pub use processor::{Bus, Processor};
