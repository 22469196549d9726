//! ctld's configuration, in two stages: the raw TOML sections (exactly the
//! file, `deny_unknown_fields`) and the validated [`Config`].
//!
//! Every section — and every `[[flow]]` and `[[pull]]` entry — is read on its
//! own, so one run reports all the errors of a file at once, each with the
//! file, line, column and key.
//!
//! The pieces: `sections` holds the raw sections and their defaults,
//! `validated` the [`Config`] they make, `load` the reading of the file,
//! the overrides and the error reporting with file, line and column, and
//! `check` the rules across fields and sections.

mod check;
mod load;
mod print;
mod sections;
mod units;
mod validated;

pub use load::{ConfigError, ConfigErrors, Overrides, load, parse};
pub use print::{PrintError, REDACTED, effective_toml};
pub use sections::{
    BusKind, DbusSection, EngineSection, FullPolicy, HttpSection, HttpSectionView, LimitsSection,
    NodeSection, S3Target, SpoolSection, SrtSection, UploadSection,
};
pub use units::{ByteSize, ListenAddr, PortRange};
pub use validated::Config;

/// The built-in default configuration: the demo node (see README).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

#[cfg(test)]
mod tests;
