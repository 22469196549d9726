//! The control side of Airlift: `airlift-ctld` and `airliftctl`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The version of the control tools.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
