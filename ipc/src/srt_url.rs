//! `srt://` URLs in the form libsrt's tools (`srt-live-transmit`) and FFmpeg
//! write them: `srt://host:port?latency=200&passphrase=…` for a caller,
//! `srt://:port?mode=listener&passphrase=…` for a listener (port 0: let
//! ctld pick one from its pool — D-Bus `StartPull` only; a configured
//! listener names its port). Query values are percent-decoded; `latency`
//! is in milliseconds, as in libsrt's URI syntax. Two keys of our own, as in
//! the table form: `allow_unencrypted=true` runs a listener without a
//! passphrase (refused otherwise), `allow_from=10.0.0.0/8,127.0.0.1/32` lists
//! the peer networks a listener accepts.
//!
//! The same parser reads D-Bus `StartPull`'s URL and every SRT endpoint of a
//! configuration written as a string (see [`crate::spec::SrtSpec`]).
//!
//! No error message ever contains the passphrase: the URL is shown with its
//! `passphrase` value replaced by `***`.

use crate::spec::{KeyLength, MAX_ALLOW_FROM, SrtMode, SrtSpec};
use crate::units::{Host, Passphrase, PeerNetwork, Port, SrtLatencyMs, StreamId};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 4096;

/// The query keys a URL may carry, as error messages list them.
pub const QUERY_KEYS: &str = "mode, latency, passphrase, pbkeylen, streamid, allow_unencrypted, allow_from";

/// A refused `srt://` URL: the URL as shown (passphrase redacted, cut to 80
/// characters) and what is wrong with which part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SRT URL {url:?}: {problem}")]
#[non_exhaustive]
pub struct SrtUrlError {
    /// The URL, redacted by [`redact`].
    pub url: String,
    /// The part that is wrong, and why.
    pub problem: UrlProblem,
}

impl SrtUrlError {
    /// An error about `url` (redacted here).
    pub fn new(url: &str, problem: UrlProblem) -> Self {
        Self { url: redact(url), problem }
    }
}

/// What is wrong with an `srt://` URL. Every message names the offending
/// part (the port, the key, the value — never the passphrase's value); the
/// fix is to rewrite that part as the message says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// The URL is longer than [`MAX_URL_LEN`]: shorten it.
    #[error("longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// The scheme is not `srt://`.
    #[error("does not start with srt://")]
    NotSrt,
    /// No `:port` after the host.
    #[error("has no port (srt://host:port)")]
    NoPort,
    /// The port is not a number from 0 to 65535.
    #[error("port {0:?} is not 0 to 65535")]
    BadPort(String),
    /// A caller with port 0: a caller must name the port it calls.
    #[error(
        "port 0: a caller needs a port to call (1 to 65535); port 0 means \"any free port\" for a listener"
    )]
    CallerPortZero,
    /// A caller without a host.
    #[error("a caller needs a host (srt://host:port)")]
    CallerWithoutHost,
    /// A listener with a host: listeners bind every address.
    #[error("host {0:?}: a listener binds every address: leave the host out (srt://:port?mode=listener)")]
    ListenerWithHost(String),
    /// A listener with port 0 where no pool hands out ports (a
    /// configuration or flow file): name the port.
    #[error(
        "port 0: a configured listener needs its port (srt://:PORT?mode=listener, inside [srt] port_range); \
         only StartPull picks a free one"
    )]
    ListenerWithoutPort,
    /// The host is not a host name or IP address.
    #[error("host {host:?} is not a host name or IP address")]
    BadHost {
        /// The host as written (cut to 64 characters).
        host: String,
    },
    /// `mode=` is neither `caller` nor `listener` (rendezvous is not supported).
    #[error("mode {0:?} is not caller or listener")]
    UnknownMode(String),
    /// A query key this parser does not know.
    #[error("unknown option {0:?} (known: {QUERY_KEYS})")]
    UnknownKey(String),
    /// A query key given twice.
    #[error("option {0:?} is given twice")]
    RepeatedKey(String),
    /// A query pair without `=`.
    #[error("{0:?} has no value (write key=value)")]
    NoValue(String),
    /// A `%` not followed by two hex digits.
    #[error("{key}: a % is not followed by two hex digits")]
    BadEscape {
        /// The key whose value holds it.
        key: String,
    },
    /// A value that is not UTF-8 once percent-decoded.
    #[error("{key}: the value is not UTF-8 once decoded")]
    NotUtf8 {
        /// The key whose value it is.
        key: String,
    },
    /// `latency=` is not a whole number of milliseconds.
    #[error("latency {0:?} is not milliseconds")]
    LatencyNotNumber(String),
    /// `latency=` is outside the range libsrt and the engine accept.
    #[error("latency {ms}: SRT latency must be {} to {} ms", SrtLatencyMs::MIN, SrtLatencyMs::MAX)]
    LatencyRange {
        /// The value given.
        ms: u32,
    },
    /// The passphrase is shorter than 10 or longer than 79 bytes.
    #[error("passphrase has {bytes} bytes (UTF-8); SRT needs 10 to 79 bytes")]
    PassphraseLength {
        /// Its length in bytes (never its value).
        bytes: usize,
    },
    /// The passphrase holds a NUL byte.
    #[error("passphrase contains a NUL byte; SRT cannot take it")]
    PassphraseNul,
    /// `pbkeylen=` is not 16, 24 or 32.
    #[error("pbkeylen {0:?} is not 16, 24 or 32")]
    BadKeyLength(String),
    /// `streamid=` is too long or holds a NUL byte.
    #[error("streamid: {0}")]
    BadStreamId(String),
    /// `allow_unencrypted=` is not a boolean.
    #[error("allow_unencrypted {0:?} is not true or false")]
    BadAllowUnencrypted(String),
    /// One network of `allow_from=` is malformed.
    #[error("allow_from: {0}")]
    BadNetwork(String),
    /// `allow_from=` lists too many networks.
    #[error("allow_from lists more than {MAX_ALLOW_FROM} networks")]
    TooManyNetworks,
    /// A listener without a passphrase and without `allow_unencrypted=true`.
    #[error(
        "passphrase: an SRT listener needs a passphrase (passphrase=…, 10 to 79 bytes): without one, \
         anyone who reaches the port can connect; to run it unencrypted anyway, add allow_unencrypted=true"
    )]
    ListenerWithoutPassphrase,
    /// Another rule of the endpoint ([`SrtSpec::problems`]) is broken.
    #[error("{field}: {message}")]
    Endpoint {
        /// The option concerned.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Caller or listener, as the URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlMode {
    /// Connect to `host:port`.
    Caller {
        /// Remote host.
        host: Host,
        /// Remote port.
        port: Port,
    },
    /// Listen on a local port; `None` (port 0 in the URL): any free port of
    /// the node's pool.
    Listener {
        /// The port, if the URL fixes one.
        port: Option<Port>,
    },
}

/// A parsed `srt://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtUrl {
    /// Endpoint.
    pub mode: UrlMode,
    /// Receiver latency (`latency=`, ms; 120 when absent).
    pub latency_ms: SrtLatencyMs,
    /// `passphrase=`.
    pub passphrase: Option<Passphrase>,
    /// `pbkeylen=` 16, 24 or 32.
    pub key_length: KeyLength,
    /// `streamid=`.
    pub stream_id: Option<StreamId>,
    /// `allow_unencrypted=true`: a listener may run without a passphrase.
    pub allow_unencrypted: bool,
    /// `allow_from=NET,NET`: the peer networks a listener accepts.
    pub allow_from: Vec<PeerNetwork>,
}

/// `url` as errors show it: every query pair that mentions the passphrase
/// key (however it is written or mangled) shows `passphrase=***`, and the
/// whole is cut to 80 characters.
pub fn redact(url: &str) -> String {
    let redacted = match url.split_once('?') {
        None => url.to_owned(),
        Some((base, query)) => {
            let pairs: Vec<&str> = query
                .split('&')
                .map(|pair| if is_secret_pair(pair) { "passphrase=***" } else { pair })
                .collect();
            format!("{base}?{}", pairs.join("&"))
        }
    };
    redacted.chars().take(80).collect()
}

/// A pair that is (or might be meant as) the passphrase: its key (before
/// `=`) contains `pass` in any case, or is percent-encoded.
fn is_secret_pair(pair: &str) -> bool {
    let key = pair.split_once('=').map_or(pair, |(k, _)| k);
    key.to_ascii_lowercase().contains("pass") || key.contains('%')
}

/// `key` as an error may show it: a key that might hide the passphrase
/// shows as `passphrase`.
fn shown_key(key: &str) -> String {
    if is_secret_pair(key) { "passphrase".to_owned() } else { key.chars().take(40).collect() }
}

/// Percent-decodes the value of `key` (`+` stays a plus, as in RFC 3986).
fn decode(key: &str, value: &str) -> Result<String, UrlProblem> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UrlProblem::BadEscape { key: shown_key(key) })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlProblem::NotUtf8 { key: shown_key(key) })
}

/// The first `n` characters of `text`, for messages.
fn cut(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

impl SrtUrl {
    /// Parses `url` and checks the endpoint's rules (a listener needs a
    /// passphrase unless `allow_unencrypted=true`; `allow_from` is for
    /// listeners); every refusal names the part that is wrong.
    pub fn parse(url: &str) -> Result<Self, SrtUrlError> {
        Self::parse_parts(url).map_err(|problem| SrtUrlError::new(url, problem))
    }

    fn parse_parts(url: &str) -> Result<Self, UrlProblem> {
        if url.len() > MAX_URL_LEN {
            return Err(UrlProblem::TooLong);
        }
        let rest = url.strip_prefix("srt://").ok_or(UrlProblem::NotSrt)?;
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let (host, port) = authority.rsplit_once(':').ok_or(UrlProblem::NoPort)?;
        let port: u16 = port.parse().map_err(|_| UrlProblem::BadPort(cut(port, 20)))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');

        let mut mode = None;
        let mut latency_ms = SrtLatencyMs::new(120).map_err(|_| UrlProblem::LatencyRange { ms: 120 })?;
        let mut passphrase = None;
        let mut key_length = KeyLength::default();
        let mut stream_id = None;
        let mut allow_unencrypted = false;
        let mut allow_from = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                let shown = if is_secret_pair(pair) { "passphrase=***".to_owned() } else { cut(pair, 40) };
                return Err(UrlProblem::NoValue(shown));
            };
            if seen.contains(&key) {
                return Err(UrlProblem::RepeatedKey(shown_key(key)));
            }
            seen.push(key);
            let value = decode(key, value)?;
            match key {
                "mode" => mode = Some(value),
                "latency" => {
                    let ms: u32 = value.parse().map_err(|_| UrlProblem::LatencyNotNumber(cut(&value, 20)))?;
                    latency_ms = SrtLatencyMs::new(ms).map_err(|_| UrlProblem::LatencyRange { ms })?;
                }
                "passphrase" => {
                    if value.contains('\0') {
                        return Err(UrlProblem::PassphraseNul);
                    }
                    let bytes = value.len();
                    passphrase =
                        Some(Passphrase::new(value).map_err(|_| UrlProblem::PassphraseLength { bytes })?);
                }
                "allow_unencrypted" => {
                    allow_unencrypted = match value.as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(UrlProblem::BadAllowUnencrypted(cut(&value, 20))),
                    }
                }
                "allow_from" => {
                    for net in value.split(',').filter(|n| !n.trim().is_empty()) {
                        allow_from
                            .push(PeerNetwork::new(net).map_err(|e| UrlProblem::BadNetwork(e.message))?);
                    }
                    if allow_from.len() > MAX_ALLOW_FROM {
                        return Err(UrlProblem::TooManyNetworks);
                    }
                }
                "pbkeylen" => {
                    key_length = match value.as_str() {
                        "16" => KeyLength::Aes128,
                        "24" => KeyLength::Aes192,
                        "32" => KeyLength::Aes256,
                        _ => return Err(UrlProblem::BadKeyLength(cut(&value, 20))),
                    }
                }
                "streamid" => {
                    stream_id = Some(StreamId::new(value).map_err(|e| UrlProblem::BadStreamId(e.message))?)
                }
                other => return Err(UrlProblem::UnknownKey(shown_key(other))),
            }
        }
        let listener = match mode.as_deref() {
            Some("listener") => true,
            Some("caller") => false,
            None => host.is_empty(),
            Some(other) => return Err(UrlProblem::UnknownMode(cut(other, 20))),
        };
        let mode = if listener {
            if !host.is_empty() && host != "0.0.0.0" && host != "::" {
                return Err(UrlProblem::ListenerWithHost(cut(host, 64)));
            }
            UrlMode::Listener { port: Port::new(port).ok() }
        } else {
            if host.is_empty() {
                return Err(UrlProblem::CallerWithoutHost);
            }
            UrlMode::Caller {
                host: Host::new(host).map_err(|_| UrlProblem::BadHost { host: cut(host, 64) })?,
                port: Port::new(port).map_err(|_| UrlProblem::CallerPortZero)?,
            }
        };
        let url_spec =
            Self { mode, latency_ms, passphrase, key_length, stream_id, allow_unencrypted, allow_from };
        // The endpoint rules are the spec's (one rule for config, D-Bus and
        // the engine); a listener's port is not known yet, any one will do.
        let any_port = Port::new(1).ok();
        if let Some((field, message)) =
            url_spec.clone().into_spec(any_port).and_then(|spec| spec.problems().into_iter().next())
        {
            return Err(match field {
                "passphrase" => UrlProblem::ListenerWithoutPassphrase,
                _ => UrlProblem::Endpoint { field, message },
            });
        }
        Ok(url_spec)
    }

    /// The endpoint spec; a listener without a port takes `listener_port`
    /// (`None` if neither fixes one).
    pub fn into_spec(self, listener_port: Option<Port>) -> Option<SrtSpec> {
        let mode = match self.mode {
            UrlMode::Caller { host, port } => SrtMode::Caller { host, port },
            UrlMode::Listener { port } => SrtMode::Listener { port: port.or(listener_port)? },
        };
        Some(SrtSpec {
            mode,
            latency_ms: self.latency_ms,
            passphrase: self.passphrase,
            key_length: self.key_length,
            stream_id: self.stream_id,
            allow_unencrypted: self.allow_unencrypted,
            allow_from: self.allow_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_and_listeners() {
        let u = SrtUrl::parse("srt://10.0.0.21:9000?latency=500&streamid=%23!%3A%3Ar%3Dcam1&pbkeylen=32&passphrase=correct%20horse")
            .unwrap();
        assert_eq!(
            u.mode,
            UrlMode::Caller { host: Host::new("10.0.0.21").unwrap(), port: Port::new(9000).unwrap() }
        );
        assert_eq!(u.latency_ms.get(), 500);
        assert_eq!(u.stream_id.as_ref().map(StreamId::as_str), Some("#!::r=cam1"));
        assert_eq!(u.key_length, KeyLength::Aes256);
        assert_eq!(u.passphrase.as_ref().map(Passphrase::expose), Some("correct horse"));

        let l = SrtUrl::parse("srt://:31000?mode=listener&passphrase=0123456789").unwrap();
        assert_eq!(l.mode, UrlMode::Listener { port: Some(Port::new(31000).unwrap()) });
        let any =
            SrtUrl::parse("srt://:0?allow_unencrypted=true&allow_from=127.0.0.2/32,10.0.0.0/8").unwrap();
        assert!(any.allow_unencrypted);
        assert_eq!(any.allow_from.len(), 2);
        assert_eq!(any.mode, UrlMode::Listener { port: None });
        assert!(any.clone().into_spec(None).is_none());
        let spec = any.into_spec(Some(Port::new(31005).unwrap())).unwrap();
        assert_eq!(spec.mode, SrtMode::Listener { port: Port::new(31005).unwrap() });
        assert!(spec.allow_unencrypted);
        assert_eq!(spec.allow_from[0].to_string(), "127.0.0.2/32");
    }

    #[test]
    fn an_unencrypted_listener_needs_the_opt_out() {
        for url in ["srt://:31000?mode=listener", "srt://:0", "srt://:0?allow_unencrypted=false"] {
            let e = SrtUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains("needs a passphrase") && e.contains("allow_unencrypted=true"), "{url}: {e}");
        }
        // Callers need no passphrase.
        assert!(SrtUrl::parse("srt://10.0.0.1:9000").is_ok());
        let e = SrtUrl::parse("srt://10.0.0.1:9000?allow_from=10.0.0.0/8").unwrap_err().to_string();
        assert!(e.contains("only a listener"), "{e}");
        let e =
            SrtUrl::parse("srt://:0?allow_unencrypted=true&allow_from=10.0.0.1/8").unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn errors_never_show_the_passphrase() {
        let secret = "SeCrEtWoRd-42";
        for url in [
            format!("srt://h:1?passphrase={secret}&latency=fast"),
            format!("srt://h:1?passphrase={secret}&oops=1"),
            format!("srt://h:1?passphrase={secret}%zz"),
            format!("srt://h:1?passphrase={secret}%ff%fe"),
            format!("srt://h:1?passphrase={secret}{}", "x".repeat(80)),
            format!("srt://h:1?passphrase%3D{secret}"),
            format!("srt://h:1?PASSPHRASE={secret}"),
            format!("srt://h:1?passphrase={secret}&mode=rendezvous"),
            format!("srt://:1?mode=listener&passphrase={secret}&allow_from=nope"),
            format!("srt://h:1?passphrase={secret}&{}", "y".repeat(5000)),
        ] {
            let e = SrtUrl::parse(&url).unwrap_err().to_string();
            assert!(!e.contains("SeCrEt"), "{url}: {e}");
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        for (url, why) in [
            ("http://x:1", "srt://"),
            ("srt://host", "no port"),
            ("srt://host:99999", "port"),
            ("srt://host:0", "caller needs a port"),
            ("srt://:9000?mode=caller", "caller needs a host"),
            ("srt://10.0.0.1:9000?mode=listener", "leave the host out"),
            ("srt://h:1?mode=rendezvous", "rendezvous"),
            ("srt://h:1?latency=fast", "milliseconds"),
            ("srt://h:1?latency=5", "SRT latency"),
            ("srt://h:1?pbkeylen=20", "pbkeylen"),
            ("srt://h:1?passphrase=short", "passphrase"),
            ("srt://h:1?passphrase=%C3%A9%C3%A9%C3%A9%C3%A9", "8 bytes"),
            ("srt://h:1?oops=1", "unknown option"),
            ("srt://h:1?streamid=%zz", "hex"),
            ("srt://h:1?streamid=%+1", "hex"),
            ("srt://bad host:1", "host"),
        ] {
            let e = SrtUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(SrtUrl::parse(&format!("srt://h:1?streamid={}", "x".repeat(5000))).is_err());
    }

    #[test]
    fn refusals_are_typed() {
        let problem = |url: &str| SrtUrl::parse(url).unwrap_err().problem;
        assert_eq!(problem("srt://h:0"), UrlProblem::CallerPortZero);
        assert_eq!(problem("srt://h:1?mode=rendezvous"), UrlProblem::UnknownMode("rendezvous".into()));
        assert_eq!(problem("srt://h:1?passphrase=short"), UrlProblem::PassphraseLength { bytes: 5 });
        assert_eq!(
            problem(&format!("srt://h:1?passphrase={}", "p".repeat(80))),
            UrlProblem::PassphraseLength { bytes: 80 }
        );
        assert_eq!(problem("srt://h:1?latncy=200"), UrlProblem::UnknownKey("latncy".into()));
        assert_eq!(problem("srt://h:1?latency=200&latency=300"), UrlProblem::RepeatedKey("latency".into()));
        assert_eq!(problem("srt://:1?mode=listener"), UrlProblem::ListenerWithoutPassphrase);
        // The message names the URL (redacted) and the part.
        let e = SrtUrl::parse("srt://h:1?passphrase=SeCrEtWoRd-42&mode=dance").unwrap_err().to_string();
        assert_eq!(
            e,
            "SRT URL \"srt://h:1?passphrase=***&mode=dance\": mode \"dance\" is not caller or listener"
        );
    }
}
