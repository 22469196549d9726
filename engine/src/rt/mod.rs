//! The realtime side: thread setup, clocks and the counters the audio thread
//! publishes without locks.

pub mod clock;
pub mod stats;
pub mod thread;
