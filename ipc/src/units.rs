//! Validated newtypes shared by every spec.
//!
//! Each type's constructor enforces its range; `serde` deserialises through
//! the same constructor (`#[serde(try_from = …)]`), so a value that came in
//! over IPC or from a TOML file is as valid as one built in code.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A value outside the range its type accepts.
///
/// The message names the type, the value and the accepted range; callers put
/// the field name in front of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
#[non_exhaustive]
pub struct UnitError {
    /// The type that refused the value, e.g. `"sample rate"`.
    pub what: &'static str,
    /// Why the value was refused, including the accepted range.
    pub message: String,
}

impl UnitError {
    /// An error about `what`, saying `message`.
    pub fn new(what: &'static str, message: impl Into<String>) -> Self {
        Self { what, message: message.into() }
    }
}

/// Defines an integer newtype with an inclusive range.
macro_rules! ranged_int {
    ($(#[$doc:meta])* $name:ident($inner:ty, $inner_str:literal), $what:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = $inner_str, into = $inner_str)]
        pub struct $name($inner);

        impl $name {
            /// Smallest accepted value.
            pub const MIN: $inner = $min;
            /// Largest accepted value.
            pub const MAX: $inner = $max;

            /// Validates `value` against the accepted range.
            pub fn new(value: $inner) -> Result<Self, UnitError> {
                if (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(UnitError::new(
                        $what,
                        format!("{value} is outside {}..={}", Self::MIN, Self::MAX),
                    ))
                }
            }

            /// The plain value.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl TryFrom<$inner> for $name {
            type Error = UnitError;
            fn try_from(value: $inner) -> Result<Self, UnitError> {
                Self::new(value)
            }
        }

        impl From<$name> for $inner {
            fn from(value: $name) -> $inner {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// Defines a finite `f32` newtype with an inclusive range.
macro_rules! ranged_f32 {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(try_from = "f32", into = "f32")]
        pub struct $name(f32);

        impl $name {
            /// Smallest accepted value.
            pub const MIN: f32 = $min;
            /// Largest accepted value.
            pub const MAX: f32 = $max;

            /// Validates `value`: finite and inside the accepted range.
            pub fn new(value: f32) -> Result<Self, UnitError> {
                if value.is_finite() && (Self::MIN..=Self::MAX).contains(&value) {
                    Ok(Self(value))
                } else {
                    Err(UnitError::new(
                        $what,
                        format!("{value} is not a finite number in {}..={}", Self::MIN, Self::MAX),
                    ))
                }
            }

            /// The plain value.
            pub const fn get(self) -> f32 {
                self.0
            }
        }

        impl TryFrom<f32> for $name {
            type Error = UnitError;
            fn try_from(value: f32) -> Result<Self, UnitError> {
                Self::new(value)
            }
        }

        impl From<$name> for f32 {
            fn from(value: $name) -> f32 {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

/// Sample rates the engine runs flows at.
pub const SUPPORTED_SAMPLE_RATES: [u32; 9] =
    [16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000, 192_000];

/// A flow's sample rate in Hz; one of [`SUPPORTED_SAMPLE_RATES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct SampleRate(u32);

impl SampleRate {
    /// 48 kHz, the broadcast default.
    pub const HZ_48000: SampleRate = SampleRate(48_000);

    /// Validates `hz` against [`SUPPORTED_SAMPLE_RATES`].
    pub fn new(hz: u32) -> Result<Self, UnitError> {
        if SUPPORTED_SAMPLE_RATES.contains(&hz) {
            Ok(Self(hz))
        } else {
            Err(UnitError::new(
                "sample rate",
                format!("{hz} Hz is not supported; use one of {SUPPORTED_SAMPLE_RATES:?}"),
            ))
        }
    }

    /// The rate in Hz.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for SampleRate {
    type Error = UnitError;
    fn try_from(hz: u32) -> Result<Self, UnitError> {
        Self::new(hz)
    }
}

impl From<SampleRate> for u32 {
    fn from(rate: SampleRate) -> u32 {
        rate.0
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

ranged_int!(
    /// A channel count: 1 to 64.
    Channels(u16, "u16"), "channel count", 1, 64
);
ranged_int!(
    /// Frames per period: 16 to 4096.
    PeriodFrames(u32, "u32"), "period size", 16, 4096
);
ranged_int!(
    /// Number of periods in a device or ring buffer: 2 to 32.
    Periods(u32, "u32"), "period count", 2, 32
);
ranged_int!(
    /// SRT receiver latency in milliseconds: 20 to 10 000.
    SrtLatencyMs(u32, "u32"), "SRT latency", 20, 10_000
);
ranged_int!(
    /// Encoder bitrate in bit/s: 8 kbit/s to 1.5 Mbit/s.
    Bitrate(u32, "u32"), "bitrate", 8_000, 1_536_000
);
ranged_int!(
    /// Target segment duration in seconds: 1 to 3600.
    SegmentSeconds(u32, "u32"), "segment duration", 1, 3_600
);
ranged_int!(
    /// A network port other than 0.
    Port(u16, "u16"), "port", 1, 65_535
);

ranged_f32!(
    /// A gain in dB: −120 to +24, finite.
    GainDb, "gain", -120.0, 24.0
);
ranged_f32!(
    /// A pan position: −1 (left) to +1 (right).
    Pan, "pan", -1.0, 1.0
);
ranged_f32!(
    /// A signal level in dBFS: −120 to 0.
    LevelDbfs, "level", -120.0, 0.0
);
ranged_f32!(
    /// A frequency in Hz: 1 Hz to 96 kHz (the engine also checks it against
    /// the flow's Nyquist frequency).
    FrequencyHz, "frequency", 1.0, 96_000.0
);

impl GainDb {
    /// Unity gain.
    pub const UNITY: GainDb = GainDb(0.0);

    /// The linear factor for this gain.
    pub fn linear(self) -> f32 {
        10f32.powf(self.0 / 20.0)
    }
}

impl Default for GainDb {
    fn default() -> Self {
        Self::UNITY
    }
}

impl Pan {
    /// Centre.
    pub const CENTER: Pan = Pan(0.0);
}

impl Default for Pan {
    fn default() -> Self {
        Self::CENTER
    }
}

impl LevelDbfs {
    /// The linear amplitude for this level.
    pub fn linear(self) -> f32 {
        10f32.powf(self.0 / 20.0)
    }
}

/// Longest accepted [`Name`].
pub const MAX_NAME_LEN: usize = 64;

/// The name of a flow, input, output or pull job.
///
/// 1 to 64 characters from `[A-Za-z0-9_-]`, starting with a letter or digit,
/// so a name is always safe as a file-name component and a D-Bus path element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, UnitError> {
        let name = name.into();
        let ok_len = !name.is_empty() && name.len() <= MAX_NAME_LEN;
        let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let ok_start = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok_len && ok_chars && ok_start {
            Ok(Self(name))
        } else {
            let shown: String = name.chars().take(MAX_NAME_LEN).collect();
            Err(UnitError::new(
                "name",
                format!(
                    "{shown:?} must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ -, starting with a letter or digit"
                ),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = UnitError;
    fn try_from(name: String) -> Result<Self, UnitError> {
        Self::new(name)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Longest accepted [`FfmpegName`].
pub const MAX_FFMPEG_NAME_LEN: usize = 32;

/// The name of an FFmpeg encoder or muxer (`flac`, `libmp3lame`, `matroska`):
/// 1 to 32 characters of `[a-z0-9_]`. Whether FFmpeg has it is checked when
/// the flow is built.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FfmpegName(String);

impl FfmpegName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, UnitError> {
        let name = name.into();
        let ok_len = !name.is_empty() && name.len() <= MAX_FFMPEG_NAME_LEN;
        if ok_len && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            Ok(Self(name))
        } else {
            let shown: String = name.chars().take(MAX_FFMPEG_NAME_LEN).collect();
            Err(UnitError::new(
                "FFmpeg name",
                format!(
                    "{shown:?} must be 1 to {MAX_FFMPEG_NAME_LEN} characters of a-z 0-9 _ (as `ffmpeg -encoders` / `-muxers` print them)"
                ),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FfmpegName {
    type Error = UnitError;
    fn try_from(name: String) -> Result<Self, UnitError> {
        Self::new(name)
    }
}

impl From<FfmpegName> for String {
    fn from(name: FfmpegName) -> String {
        name.0
    }
}

impl fmt::Display for FfmpegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest accepted [`SafePath`] in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// A file path from outside (config, IPC) that may be used as is: not empty,
/// at most [`MAX_PATH_LEN`] bytes, valid UTF-8, no NUL, no `..` component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SafePath(String);

impl SafePath {
    /// Validates `path`.
    pub fn new(path: impl Into<String>) -> Result<Self, UnitError> {
        let path = path.into();
        if path.is_empty() {
            return Err(UnitError::new("path", "must not be empty"));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(UnitError::new("path", format!("is longer than {MAX_PATH_LEN} bytes")));
        }
        if path.contains('\0') {
            return Err(UnitError::new("path", "must not contain a NUL byte"));
        }
        if Path::new(&path).components().any(|c| c == Component::ParentDir) {
            return Err(UnitError::new("path", format!("{path:?} must not contain `..`")));
        }
        Ok(Self(path))
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Resolves a relative path against `base`; absolute paths stay as they are.
    pub fn resolve(&self, base: &Path) -> PathBuf {
        base.join(self.as_path())
    }
}

impl TryFrom<String> for SafePath {
    type Error = UnitError;
    fn try_from(path: String) -> Result<Self, UnitError> {
        Self::new(path)
    }
}

impl From<SafePath> for String {
    fn from(path: SafePath) -> String {
        path.0
    }
}

impl fmt::Display for SafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An SRT passphrase: 10 to 79 bytes of UTF-8 without NUL (libsrt's limits,
/// which count bytes, not characters).
///
/// `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Passphrase(String);

impl Passphrase {
    /// Validates `secret`.
    pub fn new(secret: impl Into<String>) -> Result<Self, UnitError> {
        let secret = secret.into();
        // libsrt counts bytes (SRTO_PASSPHRASE takes 10 to 79 of them), so
        // a multi-byte UTF-8 secret is measured the same way.
        let len = secret.len();
        if secret.contains('\0') {
            Err(UnitError::new("passphrase", "contains a NUL byte; SRT cannot take it"))
        } else if (10..=79).contains(&len) {
            Ok(Self(secret))
        } else {
            Err(UnitError::new("passphrase", format!("has {len} bytes (UTF-8); SRT needs 10 to 79 bytes")))
        }
    }

    /// The secret itself, for handing to libsrt only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Passphrase {
    type Error = UnitError;
    fn try_from(secret: String) -> Result<Self, UnitError> {
        Self::new(secret)
    }
}

impl From<Passphrase> for String {
    fn from(secret: Passphrase) -> String {
        secret.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Longest accepted SRT stream id (libsrt's limit).
pub const MAX_STREAM_ID_LEN: usize = 512;

/// An SRT stream id: at most 512 bytes, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, UnitError> {
        let id = id.into();
        if id.len() <= MAX_STREAM_ID_LEN && !id.contains('\0') {
            Ok(Self(id))
        } else {
            Err(UnitError::new("stream id", format!("must be at most {MAX_STREAM_ID_LEN} bytes without NUL")))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = UnitError;
    fn try_from(id: String) -> Result<Self, UnitError> {
        Self::new(id)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

/// Longest accepted [`Host`].
pub const MAX_HOST_LEN: usize = 253;

/// A host name or IP address literal: 1 to 253 characters of
/// `[A-Za-z0-9.-:]` (no URL syntax, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Host(String);

impl Host {
    /// Validates `host`.
    pub fn new(host: impl Into<String>) -> Result<Self, UnitError> {
        let host = host.into();
        let ok = !host.is_empty()
            && host.len() <= MAX_HOST_LEN
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if ok {
            Ok(Self(host))
        } else {
            let shown: String = host.chars().take(MAX_HOST_LEN).collect();
            Err(UnitError::new("host", format!("{shown:?} is not a host name or IP address")))
        }
    }

    /// The host as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Host {
    type Error = UnitError;
    fn try_from(host: String) -> Result<Self, UnitError> {
        Self::new(host)
    }
}

impl From<Host> for String {
    fn from(host: Host) -> String {
        host.0
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A peer network in CIDR form (`10.0.0.0/8`, `127.0.0.1/32`, `::1/128`; a
/// bare address means that one host), for an SRT listener's `allow_from`.
/// Host bits below the prefix must be zero, so a typo such as `10.0.0.1/8`
/// is refused instead of silently widening to a whole network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerNetwork(ipnet::IpNet);

impl PeerNetwork {
    /// Parses `text`: `ADDRESS/PREFIX` or a bare `ADDRESS`.
    pub fn new(text: &str) -> Result<Self, UnitError> {
        let shown: String = text.chars().take(64).collect();
        let refuse = |why: &str| UnitError::new("peer network", format!("{shown:?} {why}"));
        let text = text.trim();
        let net = if text.contains('/') {
            text.parse::<ipnet::IpNet>().map_err(|_| {
                refuse("is not a network in CIDR form (ADDRESS/PREFIX, e.g. 10.0.0.0/8, 127.0.0.1/32 or ::1/128)")
            })?
        } else {
            let ip = text.parse::<std::net::IpAddr>().map_err(|_| {
                refuse("is not an IP address or a network in CIDR form (e.g. 10.0.0.0/8, 127.0.0.1/32 or ::1/128)")
            })?;
            ipnet::IpNet::from(ip)
        };
        if net.trunc() != net {
            return Err(refuse(&format!(
                "has bits set below its prefix length; the network is {}",
                net.trunc()
            )));
        }
        Ok(Self(net))
    }

    /// True when `peer` lies inside this network. An IPv4 peer seen through
    /// an IPv6 socket (`::ffff:a.b.c.d`) is compared as IPv4.
    pub fn contains(&self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&peer)
    }
}

impl std::str::FromStr for PeerNetwork {
    type Err = UnitError;
    fn from_str(text: &str) -> Result<Self, UnitError> {
        Self::new(text)
    }
}

impl TryFrom<String> for PeerNetwork {
    type Error = UnitError;
    fn try_from(text: String) -> Result<Self, UnitError> {
        Self::new(&text)
    }
}

impl From<PeerNetwork> for String {
    fn from(net: PeerNetwork) -> String {
        net.to_string()
    }
}

impl fmt::Display for PeerNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// True when `peer` may connect to a listener allowing `allow_from` (an
/// empty list allows every peer).
pub fn peer_allowed(allow_from: &[PeerNetwork], peer: std::net::IpAddr) -> bool {
    allow_from.is_empty() || allow_from.iter().any(|n| n.contains(peer))
}

#[cfg(test)]
mod tests;
