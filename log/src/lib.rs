//! Logging set-up shared by `airlift-ctld` and `airlift-engine`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The environment variable holding the `tracing` filter (default `info`).
pub const FILTER_VAR: &str = "AIRLIFT_LOG";

/// Logs to journald (structured fields) when started by systemd with the
/// journal as stderr (`JOURNAL_STREAM` set), else to stderr as text.
/// [`FILTER_VAR`] sets the filter. Call once, first thing in `main`.
pub fn init() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env(FILTER_VAR).unwrap_or_else(|_| "info".into());
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    match journald {
        Some(layer) => tracing_subscriber::registry().with(filter).with(layer).init(),
        None => tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}
