//! The realtime side: thread setup, clocks, the bridge between two clock
//! domains, and the counters the audio thread publishes without locks.
#![deny(unsafe_code)] // allowed only in the files that say so

pub mod bridge;
pub mod clock;
pub mod link_status;
pub mod ring;
pub mod stats;
pub mod thread;
pub mod worker;
