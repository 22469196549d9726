//! Airlift's audio engine.
#![deny(missing_docs)]

/// The engine's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
