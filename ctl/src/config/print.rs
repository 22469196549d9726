//! The effective configuration as TOML (`airlift-ctld check-config --print`):
//! every section with its defaults filled in, secrets redacted, in a form
//! that reads back as a valid configuration.
//!
//! SRT endpoints are written in the table form, which shows every option
//! (latency, key length, ...) with its effective value, whichever form the
//! file used.

use serde::Serialize;
use toml::{Table, Value};

use super::Config;

/// What a secret is replaced with. It is a valid passphrase (10 to 79
/// bytes), so the printed configuration still validates.
pub const REDACTED: &str = "**redacted**";

/// Why the configuration cannot be written as TOML.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrintError {
    /// A section has no TOML form (a bug: every section is plain data).
    #[error("section {section} cannot be written as TOML: {source}")]
    Section {
        /// The section.
        section: &'static str,
        /// Why.
        source: toml::ser::Error,
    },
}

/// `config` as TOML text, defaults filled in and secrets replaced by
/// [`REDACTED`]: SRT passphrases, and in URLs (alert webhooks, S3
/// endpoints) credentials, paths and queries, which may carry tokens.
/// Paths to secret files (`credentials_file`, `token_file`, `secret_file`)
/// are not secret and are shown.
pub fn effective_toml(config: &Config) -> Result<String, PrintError> {
    let mut root = Table::new();
    put(&mut root, "node", &config.node)?;
    put(&mut root, "engine", &config.engine)?;
    put(&mut root, "http", &config.http)?;
    put(&mut root, "srt", &config.srt)?;
    put(&mut root, "spool", &config.spool)?;
    put(&mut root, "limits", &config.limits)?;
    put(&mut root, "upload", &config.upload)?;
    put(&mut root, "dbus", &config.dbus)?;
    put(&mut root, "health", &config.health)?;
    put(&mut root, "s3", &config.s3)?;
    put(&mut root, "alert", &config.alerts)?;
    put(&mut root, "flow", &config.state.flows)?;
    put(&mut root, "pull", &config.state.pulls)?;
    for (key, value) in root.iter_mut() {
        redact(key, value);
    }
    toml::to_string_pretty(&root).map_err(|source| PrintError::Section { section: "(whole)", source })
}

fn put<T: Serialize + ?Sized>(root: &mut Table, section: &'static str, value: &T) -> Result<(), PrintError> {
    let value = Value::try_from(value).map_err(|source| PrintError::Section { section, source })?;
    // An empty array of tables is left out (`s3 = []` reads back the same,
    // but says nothing).
    if !matches!(&value, Value::Array(a) if a.is_empty()) {
        root.insert(section.to_owned(), value);
    }
    Ok(())
}

/// Whether a string under `key` is a secret itself (not a path to one).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_file") && ["passphrase", "password", "secret", "token"].iter().any(|s| key.contains(s))
}

/// Whether a string under `key` is a URL that may carry credentials.
fn is_url_key(key: &str) -> bool {
    matches!(key, "url" | "endpoint")
}

fn redact(key: &str, value: &mut Value) {
    match value {
        Value::String(s) if is_secret_key(key) => *s = REDACTED.to_owned(),
        Value::String(s) if is_url_key(key) => *s = redact_url(s),
        Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                redact(k, v);
            }
        }
        Value::Array(items) => {
            for item in items {
                redact(key, item);
            }
        }
        _ => {}
    }
}

/// `scheme://host:port` of `url`, with `/**redacted**` in place of any
/// credentials, path or query (a webhook's token often is its path).
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return REDACTED.to_owned() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((_, host)) => (true, host),
        None => (false, authority),
    };
    if userinfo || !matches!(tail, "" | "/") {
        format!("{scheme}://{host}/{REDACTED}")
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_where_they_go() {
        for (url, shown) in [
            ("https://s3.example.net", "https://s3.example.net"),
            ("https://s3.example.net/", "https://s3.example.net/"),
            ("https://key:secret@s3.example.net", "https://s3.example.net/**redacted**"),
            ("https://hooks.example.net/services/T0/B0/XXXX", "https://hooks.example.net/**redacted**"),
            ("http://127.0.0.1:9/hook?token=abc", "http://127.0.0.1:9/**redacted**"),
            ("no scheme", REDACTED),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn secret_keys_are_told_from_paths_to_secrets() {
        for key in ["passphrase", "token", "secret_key", "password"] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["token_file", "secret_file", "credentials_file", "name", "stream_id"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
