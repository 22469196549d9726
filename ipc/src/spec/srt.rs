//! SRT endpoints: caller or listener, with their options, written in a
//! configuration either as an `srt://` URL or as a table.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::srt_url::{SrtUrl, SrtUrlError, UrlProblem};
use crate::units::{Host, Passphrase, PeerNetwork, Port, SrtLatencyMs, StreamId};

/// SRT connection mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SrtMode {
    /// Connect to a remote listener.
    Caller {
        /// Remote host.
        host: Host,
        /// Remote port.
        port: Port,
    },
    /// Wait for callers on a local port (allocated by ctl).
    Listener {
        /// Local port.
        port: Port,
    },
}

/// Key length for SRT encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLength {
    /// AES-128.
    #[default]
    Aes128,
    /// AES-192.
    Aes192,
    /// AES-256.
    Aes256,
}

impl KeyLength {
    /// The value of libsrt's `SRTO_PBKEYLEN` in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            KeyLength::Aes128 => 16,
            KeyLength::Aes192 => 24,
            KeyLength::Aes256 => 32,
        }
    }
}

/// An SRT endpoint and its options.
///
/// In TOML and JSON it is written either as an `srt://` URL, read by
/// [`SrtUrl::parse`] (the parser behind D-Bus `StartPull`), or as a table of
/// these fields:
///
/// ```
/// # use airlift_ipc::spec::SrtSpec;
/// #[derive(serde::Deserialize)]
/// struct Endpoint { srt: SrtSpec }
/// let url: Endpoint = toml::from_str(
///     r#"srt = "srt://studio.example.net:9000?latency=300&passphrase=a%20long%20secret&pbkeylen=32""#,
/// ).expect("a valid URL");
/// let table: Endpoint = toml::from_str(
///     r#"srt = { mode = { caller = { host = "studio.example.net", port = 9000 } }, latency_ms = 300,
///               passphrase = "a long secret", key_length = "aes256" }"#,
/// ).expect("a valid table");
/// assert_eq!(url.srt, table.srt);
/// ```
///
/// A listener in a URL names its port (`srt://:30010?mode=listener&…`):
/// port 0 ("any free port") is for `StartPull` only, where ctld's pool
/// hands one out. Binary formats (the engine protocol) carry the table form
/// only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SrtSpec {
    /// Caller or listener.
    pub mode: SrtMode,
    /// Receiver latency.
    #[serde(default = "default_latency")]
    pub latency_ms: SrtLatencyMs,
    /// Encryption passphrase; `None` for no encryption.
    #[serde(default)]
    pub passphrase: Option<Passphrase>,
    /// Key length used with the passphrase.
    #[serde(default)]
    pub key_length: KeyLength,
    /// Stream id sent by a caller / required by a listener.
    #[serde(default)]
    pub stream_id: Option<StreamId>,
    /// A listener without a passphrase is refused unless this says so: anyone
    /// who reaches the port could otherwise feed (or take) the stream. With
    /// it the listener runs and ctld's health carries `unencrypted_listener`.
    /// Callers need no opt-out.
    #[serde(default)]
    pub allow_unencrypted: bool,
    /// Peer networks a listener accepts callers from (`"10.0.0.0/8"`,
    /// `"127.0.0.1/32"`, `"::1/128"`); empty: any peer. Checked in the
    /// handshake, before any data flows. Meaningless for a caller.
    #[serde(default)]
    pub allow_from: Vec<PeerNetwork>,
}

/// Longest `allow_from` list of one endpoint.
pub const MAX_ALLOW_FROM: usize = 64;

impl SrtSpec {
    /// True for a listener that carries no passphrase (allowed or not).
    pub fn is_unencrypted_listener(&self) -> bool {
        matches!(self.mode, SrtMode::Listener { .. }) && self.passphrase.is_none()
    }

    /// The rules of one endpoint, each as `(field, message)` relative to
    /// the endpoint: a listener needs a passphrase unless
    /// `allow_unencrypted = true`; `allow_from` only applies to listeners and
    /// holds at most [`MAX_ALLOW_FROM`] networks.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.is_unencrypted_listener() && !self.allow_unencrypted {
            out.push((
                "passphrase",
                "an SRT listener needs a passphrase (10 to 79 bytes): without one, anyone who reaches \
                 the port can connect; to run it unencrypted anyway, set allow_unencrypted = true"
                    .to_owned(),
            ));
        }
        if !self.allow_from.is_empty() && !matches!(self.mode, SrtMode::Listener { .. }) {
            out.push((
                "allow_from",
                "only a listener checks its peers; a caller chooses its peer".to_owned(),
            ));
        }
        if self.allow_from.len() > MAX_ALLOW_FROM {
            out.push(("allow_from", format!("{} networks; at most {MAX_ALLOW_FROM}", self.allow_from.len())));
        }
        out
    }
}

fn default_latency() -> SrtLatencyMs {
    SrtLatencyMs::new(120).expect("120 ms is a valid latency")
}

impl SrtSpec {
    /// The endpoint an `srt://` URL describes, for a configuration or flow
    /// file: as [`SrtUrl::parse`], and a listener must name its port.
    pub fn from_url(url: &str) -> Result<Self, SrtUrlError> {
        SrtUrl::parse(url)?
            .into_spec(None)
            .ok_or_else(|| SrtUrlError::new(url, UrlProblem::ListenerWithoutPort))
    }
}

/// The table form, exactly [`SrtSpec`]'s fields (serde's derive, kept in
/// step with the struct by the compiler: `remote` builds an `SrtSpec`).
#[derive(Deserialize)]
#[serde(remote = "SrtSpec", deny_unknown_fields)]
struct SrtSpecTable {
    mode: SrtMode,
    #[serde(default = "default_latency")]
    latency_ms: SrtLatencyMs,
    #[serde(default)]
    passphrase: Option<Passphrase>,
    #[serde(default)]
    key_length: KeyLength,
    #[serde(default)]
    stream_id: Option<StreamId>,
    #[serde(default)]
    allow_unencrypted: bool,
    #[serde(default)]
    allow_from: Vec<PeerNetwork>,
}

impl<'de> Deserialize<'de> for SrtSpec {
    /// A string is an `srt://` URL, a table (map) the fields; which one is
    /// decided by what the input holds, so each form keeps its own error
    /// messages. Binary formats carry the table form only.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(SrtSpecVisitor)
        } else {
            SrtSpecTable::deserialize(deserializer)
        }
    }
}

/// Dispatches on string (a URL) or map (the table form).
struct SrtSpecVisitor;

impl<'de> Visitor<'de> for SrtSpecVisitor {
    type Value = SrtSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "an SRT endpoint: a URL (\"srt://host:port?latency=…\" or \"srt://:port?mode=listener&passphrase=…\") \
             or a table with mode = { caller = { host, port } } or { listener = { port } }",
        )
    }

    fn visit_str<E: de::Error>(self, url: &str) -> Result<SrtSpec, E> {
        SrtSpec::from_url(url).map_err(E::custom)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<SrtSpec, A::Error> {
        SrtSpecTable::deserialize(de::value::MapAccessDeserializer::new(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PullSpec, SrtInSpec};

    #[derive(Debug, Serialize, Deserialize)]
    struct One {
        srt: SrtSpec,
    }

    fn from_toml(text: &str) -> Result<SrtSpec, String> {
        toml::from_str::<One>(text).map(|o| o.srt).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn a_url_and_a_table_give_the_same_spec() {
        for (url, table) in [
            (
                "srt://studio.example.net:9000?latency=300&passphrase=a%20long%20secret&pbkeylen=32&streamid=live/a",
                r#"{ mode = { caller = { host = "studio.example.net", port = 9000 } }, latency_ms = 300,
                     passphrase = "a long secret", key_length = "aes256", stream_id = "live/a" }"#,
            ),
            ("srt://10.0.0.21:9000", r#"{ mode = { caller = { host = "10.0.0.21", port = 9000 } } }"#),
            (
                "srt://10.0.0.21:9000?mode=caller&pbkeylen=24",
                r#"{ mode = { caller = { host = "10.0.0.21", port = 9000 } }, key_length = "aes192" }"#,
            ),
            (
                "srt://:30010?mode=listener&passphrase=contribution-secret&allow_from=10.0.0.0/8,127.0.0.1/32",
                r#"{ mode = { listener = { port = 30010 } }, passphrase = "contribution-secret",
                     allow_from = ["10.0.0.0/8", "127.0.0.1/32"] }"#,
            ),
            (
                "srt://:30011?allow_unencrypted=true",
                r#"{ mode = { listener = { port = 30011 } }, allow_unencrypted = true }"#,
            ),
        ] {
            let a = from_toml(&format!("srt = {url:?}")).unwrap();
            let b = from_toml(&format!("srt = {}", table.replace('\n', " "))).unwrap();
            assert_eq!(a, b, "{url}");
            assert_eq!(a, SrtSpec::from_url(url).unwrap(), "{url}");
        }
    }

    #[test]
    fn the_url_form_works_wherever_an_endpoint_is_written() {
        let pull: PullSpec = toml::from_str(
            r#"name = "cam"
source = "srt://10.0.0.21:9000?latency=500"
segments = { job = "cam", target_seconds = 6 }
no_data_timeout_s = 9"#,
        )
        .unwrap();
        assert_eq!(pull.source.latency_ms.get(), 500);
        assert_eq!(pull.no_data_timeout_s, 9);
        // Options of the input itself stay beside the URL.
        let input: SrtInSpec = toml::from_str(
            r#"srt = "srt://:30010?mode=listener&passphrase=0123456789"
jitter_ms = 350"#,
        )
        .unwrap();
        assert_eq!(input.jitter_ms, 350);
        assert_eq!(input.srt.mode, SrtMode::Listener { port: Port::new(30010).unwrap() });
    }

    #[test]
    fn each_form_keeps_its_own_errors() {
        for (text, needle) in [
            (
                "srt = \"srt://:0?mode=listener&passphrase=0123456789\"",
                "port 0: a configured listener needs its port",
            ),
            ("srt = \"srt://host:0\"", "port 0: a caller needs a port"),
            ("srt = \"srt://host:1?mode=rendezvous\"", "mode \"rendezvous\" is not caller or listener"),
            ("srt = \"srt://host:1?latncy=200\"", "unknown option \"latncy\""),
            ("srt = \"srt://host:1?passphrase=short\"", "passphrase has 5 bytes"),
            ("srt = \"http://host:1\"", "does not start with srt://"),
            ("srt = { latency_ms = 200 }", "missing field `mode`"),
            (
                "srt = { mode = { caller = { host = \"h\", port = 1 } }, latency = 200 }",
                "unknown field `latency`",
            ),
            ("srt = 5", "an SRT endpoint: a URL"),
        ] {
            let e = from_toml(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = from_toml("srt = \"srt://h:1?passphrase=SeCrEt&x=1\"").unwrap_err();
        assert!(!e.contains("SeCrEt"), "{e}");
    }

    #[test]
    fn the_wire_form_is_the_table() {
        let spec =
            SrtSpec::from_url("srt://:30010?mode=listener&passphrase=0123456789&allow_from=::1/128").unwrap();
        let bytes = postcard::to_allocvec(&spec).unwrap();
        assert_eq!(postcard::from_bytes::<SrtSpec>(&bytes).unwrap(), spec);
        // Written out (the table form), it reads back the same.
        let text = toml::to_string(&One { srt: spec.clone() }).unwrap();
        assert_eq!(from_toml(&text).unwrap(), spec, "{text}");
    }
}
