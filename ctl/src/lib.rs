//! The control side of Airlift: `airlift-ctld` and `airliftctl`.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, raw sections → validated [`config::Config`],
//!   every error reported at once with file, line, column and key.
//! - [`ports`]: the SRT port allocator (pure logic).
//! - [`engine_link`]: connect to or spawn and supervise `airlift-engine`,
//!   re-send the desired state on every (re)connect, record gaps.
//! - [`metrics`]: Prometheus metrics fed by engine events.
//! - [`http`]: the HTTP listener: `/health`, `/metrics`, and [`api`]: the
//!   JSON API `/api/v1` and the web console, one more client of the controller.
//! - [`recent`]: the last alarms and segments, for clients that arrive later.
//! - [`controller`]: the operations shared by SIGHUP and D-Bus, validating every argument.
//! - [`state`]: the runtime state (the operator's gain, mute, pan, stops and pull
//!   jobs over the configuration), merged into the desired state and persisted.
//! - [`upload`]: the spool → S3 uploader (durable queue, checksums, breaker, spool policy).
//! - [`dbus`]: the `org.airlift.Node1` service; [`client`]: its proxy, used by `airliftctl`.
//! - [`daemon`]: everything together, with SIGHUP reload.
//!
//! ctld never touches audio samples, FFmpeg or libsrt.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alert;
pub mod api;
pub mod client;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod dbus;
pub mod engine_link;
pub mod health;
pub mod http;
pub mod metrics;
pub mod ports;
pub mod recent;
pub mod state;
pub mod upload;

/// The version of the control tools.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The uid this process runs as (from /proc, which needs no unsafe code).
pub(crate) fn own_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
