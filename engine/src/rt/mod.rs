//! The realtime side: thread setup, clocks, the bridge between two clock
//! domains, and the counters the audio thread publishes without locks.

pub mod bridge;
pub mod clock;
pub mod stats;
pub mod thread;
