//! Settings read from ctld's configuration file by both daemons, defined
//! once: `airlift-ctld` validates and reports them with the rest of its
//! file; `airlift-engine --config` reads the same section from the same
//! file (systemd starts it before ctld).

use serde::{Deserialize, Serialize};

use crate::units::SafePath;

/// `[engine]`: how ctld runs the engine, and the engine's realtime set-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Spawn and supervise the engine (development, demo); false when
    /// systemd runs `airlift-engine.service` and ctld only connects.
    #[serde(default = "yes")]
    pub spawn: bool,
    /// The engine binary to spawn; by default `airlift-engine` beside ctld,
    /// then on `PATH`.
    #[serde(default)]
    pub binary: Option<SafePath>,
    /// The engine's control socket.
    #[serde(default = "default_socket")]
    pub socket: SafePath,
    /// CPU for audio threads.
    #[serde(default)]
    pub cpu: Option<u16>,
    /// SCHED_FIFO priority for audio threads, 1–99.
    #[serde(default)]
    pub rt_priority: Option<u8>,
    /// Lock the engine's memory.
    #[serde(default)]
    pub mlock: bool,
}

impl EngineSection {
    /// What is wrong with the section, for people, if anything.
    pub fn problem(&self) -> Option<String> {
        match self.rt_priority {
            Some(p) if !(1..=99).contains(&p) => Some("rt_priority must be 1 to 99".into()),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_socket() -> SafePath {
    SafePath::new("airlift-engine.sock").expect("valid path")
}
