//! The loader: reading the file, one section at a time, applying the
//! environment's and the command line's overrides, and reporting every
//! problem with its file, line, column and key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use airlift_ipc::spec::{DesiredState, FlowSpec, PullSpec};
use airlift_ipc::units::SafePath;

use super::sections::{
    DbusSection, EngineSection, HttpSection, LimitsSection, NodeSection, S3Target, SpoolSection, SrtSection,
    UploadSection, default_max_flows, default_max_segment, default_node_name, default_policy, default_ports,
    default_spool, default_spool_bytes, default_upload_queue,
};
use super::validated::Config;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `built-in default`, or `environment`).
    pub file: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key, e.g. `srt.port_range` or `flow[main]`.
    pub key: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}: {}", self.file, self.key, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// All the problems of one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), list(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn list(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

/// Overrides from the environment and the command line, applied after the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `AIRLIFT_HTTP_LISTEN` / `--http-listen`.
    pub http_listen: Option<String>,
    /// `AIRLIFT_SPOOL` / `--spool`.
    pub spool: Option<String>,
    /// `AIRLIFT_ENGINE_BINARY` / `--engine-binary`.
    pub engine_binary: Option<String>,
    /// `AIRLIFT_DBUS_ADDRESS` / `--dbus-address`.
    pub dbus_address: Option<String>,
}

impl Overrides {
    /// Reads the `AIRLIFT_*` environment variables.
    pub fn from_env() -> Self {
        Self {
            http_listen: std::env::var("AIRLIFT_HTTP_LISTEN").ok(),
            spool: std::env::var("AIRLIFT_SPOOL").ok(),
            engine_binary: std::env::var("AIRLIFT_ENGINE_BINARY").ok(),
            dbus_address: std::env::var("AIRLIFT_DBUS_ADDRESS").ok(),
        }
    }

    /// `self`, with every value `other` sets taking precedence.
    pub fn then(self, other: Overrides) -> Self {
        Self {
            http_listen: other.http_listen.or(self.http_listen),
            spool: other.spool.or(self.spool),
            engine_binary: other.engine_binary.or(self.engine_binary),
            dbus_address: other.dbus_address.or(self.dbus_address),
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.clone(),
            position: None,
            key: "-".into(),
            message: e.to_string(),
        }])
    })?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parse(&text, &file, base, overrides)
}

/// Validates `text` (named `file` in errors), resolving relative paths
/// against `base_dir`. Reports every error found.
pub fn parse(text: &str, file: &str, base_dir: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let mut cx = Context { text, file, errors: Vec::new() };
    let root = match DeTable::parse(text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            cx.toml_error("-", e);
            return Err(ConfigErrors(cx.errors));
        }
    };
    let mut sections: BTreeMap<String, Spanned<DeValue<'_>>> = BTreeMap::new();
    for (key, value) in root {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "node" | "engine" | "http" | "srt" | "spool" | "limits" | "s3" | "upload" | "dbus" | "health" | "alert"
            | "flow" | "pull" => {
                sections.insert(name, value);
            }
            other => cx.at(
                key.span().start,
                other,
                "unknown section; expected node, engine, http, srt, spool, limits, s3, upload, dbus, health, alert, flow or pull",
            ),
        }
    }
    let node: Option<NodeSection> = cx.section(&mut sections, "node");
    let engine: Option<EngineSection> = cx.section(&mut sections, "engine");
    let http: Option<HttpSection> = cx.section(&mut sections, "http");
    let srt: Option<SrtSection> = cx.section(&mut sections, "srt");
    let spool: Option<SpoolSection> = cx.section(&mut sections, "spool");
    let limits: Option<LimitsSection> = cx.section(&mut sections, "limits");
    let s3: Vec<(usize, S3Target)> = cx.array(&mut sections, "s3");
    let upload: Option<UploadSection> = cx.section(&mut sections, "upload");
    let dbus: Option<DbusSection> = cx.section(&mut sections, "dbus");
    let health: Option<crate::health::HealthSection> = cx.section(&mut sections, "health");
    let alerts: Vec<(usize, crate::alert::AlertTarget)> = cx.array(&mut sections, "alert");
    for (at, target) in &alerts {
        if let Err(e) = crate::alert::check_target(target, base_dir) {
            cx.at(*at, &format!("alert[{}]", target.name), e.to_string());
        }
    }
    let flows: Vec<(usize, FlowSpec)> = cx.array(&mut sections, "flow");
    let pulls: Vec<(usize, PullSpec)> = cx.array(&mut sections, "pull");

    let mut config = Config {
        source: file.to_string(),
        base_dir: base_dir.to_path_buf(),
        node: node.unwrap_or_else(|| NodeSection { name: default_node_name(), state_file: None }),
        engine: engine.unwrap_or_else(parse_default_section),
        http: http.unwrap_or_else(HttpSection::defaults),
        srt: srt.unwrap_or(SrtSection { port_range: default_ports() }),
        spool: spool.unwrap_or(SpoolSection {
            path: default_spool(),
            max_bytes: default_spool_bytes(),
            full_policy: default_policy(),
            retention_hours: 0,
        }),
        limits: limits.unwrap_or(LimitsSection {
            max_flows: default_max_flows(),
            max_pull_jobs: default_max_flows(),
            max_segment_bytes: default_max_segment(),
            upload_queue: default_upload_queue(),
        }),
        s3: s3.iter().map(|(_, t)| t.clone()).collect(),
        upload: upload.unwrap_or_default(),
        dbus: dbus.unwrap_or_default(),
        health: health.unwrap_or_default(),
        alerts: alerts.into_iter().map(|(_, t)| t).collect(),
        state: DesiredState {
            flows: flows.iter().map(|(_, f)| f.clone()).collect(),
            pulls: pulls.iter().map(|(_, p)| p.clone()).collect(),
            stopped: Vec::new(),
        },
    };
    apply_overrides(&mut config, overrides, &mut cx.errors);
    cx.check(&config, &flows, &pulls, &s3);
    if cx.errors.is_empty() { Ok(config) } else { Err(ConfigErrors(cx.errors)) }
}

fn parse_default_section<T: DeserializeOwned>() -> T {
    toml::from_str("").expect("every field of this section has a default")
}

fn apply_overrides(config: &mut Config, o: &Overrides, errors: &mut Vec<ConfigError>) {
    let env_error = |key: &str, message: String| ConfigError {
        file: "environment".into(),
        position: None,
        key: key.into(),
        message,
    };
    if let Some(listen) = &o.http_listen {
        match listen.parse() {
            Ok(addr) => config.http.listen = addr,
            Err(e) => errors.push(env_error("AIRLIFT_HTTP_LISTEN", e)),
        }
    }
    if let Some(spool) = &o.spool {
        match SafePath::new(spool.as_str()) {
            Ok(p) => config.spool.path = p,
            Err(e) => errors.push(env_error("AIRLIFT_SPOOL", e.to_string())),
        }
    }
    if let Some(addr) = &o.dbus_address {
        config.dbus.address = Some(addr.clone());
    }
    if let Some(bin) = &o.engine_binary {
        match SafePath::new(bin.as_str()) {
            Ok(p) => config.engine.binary = Some(p),
            Err(e) => errors.push(env_error("AIRLIFT_ENGINE_BINARY", e.to_string())),
        }
    }
}

/// Where offset `at` lies inside `value`: `.input[remote].producer.srt_in.srt`
/// (an entry of an array of tables by its `name`, else its index), or ""
/// when `at` is not inside a nested value.
///
/// An inline value's span covers it; a table or array of tables written
/// with a header (`[[flow.input]]`) spans only its header, and its keys
/// follow it: the place is in the last such table that starts before `at`.
fn path_to(value: &Spanned<DeValue<'_>>, at: usize) -> String {
    fn pick<'v, 'i>(
        children: Vec<(String, &'v Spanned<DeValue<'i>>)>,
        at: usize,
    ) -> Option<(String, &'v Spanned<DeValue<'i>>)> {
        let container =
            |v: &Spanned<DeValue<'_>>| matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_));
        let inline = children.iter().position(|(_, v)| v.span().contains(&at));
        let index = inline.or_else(|| {
            let headed =
                children.iter().enumerate().filter(|(_, (_, v))| container(v) && v.span().start <= at);
            headed.max_by_key(|(_, (_, v))| v.span().start).map(|(i, _)| i)
        })?;
        children.into_iter().nth(index)
    }
    let mut path = String::new();
    let mut current = value;
    loop {
        let next = match current.get_ref() {
            DeValue::Table(table) => {
                pick(table.iter().map(|(k, v)| (format!(".{}", k.get_ref()), v)).collect(), at)
            }
            DeValue::Array(items) => pick(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let name = match v.get_ref() {
                            DeValue::Table(t) => t.get("name").and_then(|n| match n.get_ref() {
                                DeValue::String(n) => Some(n.to_string()),
                                _ => None,
                            }),
                            _ => None,
                        };
                        (format!("[{}]", name.unwrap_or_else(|| i.to_string())), v)
                    })
                    .collect(),
                at,
            ),
            _ => None,
        };
        match next {
            Some((step, v)) => {
                path.push_str(&step);
                current = v;
            }
            None => return path,
        }
    }
}

/// The file being read and the errors found so far.
pub(super) struct Context<'a> {
    /// The file's text.
    pub(super) text: &'a str,
    /// The file's name, in errors.
    pub(super) file: &'a str,
    /// Every problem found so far.
    pub(super) errors: Vec<ConfigError>,
}

impl Context<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    pub(super) fn at(&mut self, offset: usize, key: &str, message: impl Into<String>) {
        let position = Some(self.position(offset));
        self.errors.push(ConfigError {
            file: self.file.into(),
            position,
            key: key.into(),
            message: message.into(),
        });
    }

    /// A serde error inside the entry `key`, whose value was `value`: the
    /// key is completed with the path to the error's place in the value.
    fn value_error(&mut self, key: &str, value: &Spanned<DeValue<'_>>, e: toml::de::Error) {
        let inner = e.span().map(|s| path_to(value, s.start)).unwrap_or_default();
        self.toml_error(&format!("{key}{inner}"), e);
    }

    fn toml_error(&mut self, key: &str, e: toml::de::Error) {
        let position = e.span().map(|s| self.position(s.start));
        self.errors.push(ConfigError {
            file: self.file.into(),
            position,
            key: key.to_owned(),
            message: e.message().trim().to_string(),
        });
    }

    fn section<T: DeserializeOwned>(
        &mut self,
        sections: &mut BTreeMap<String, Spanned<DeValue<'_>>>,
        name: &str,
    ) -> Option<T> {
        let value = sections.remove(name)?;
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.value_error(name, &value, e);
                None
            }
        }
    }

    fn array<T: DeserializeOwned>(
        &mut self,
        sections: &mut BTreeMap<String, Spanned<DeValue<'_>>>,
        name: &str,
    ) -> Vec<(usize, T)> {
        let Some(value) = sections.remove(name) else { return Vec::new() };
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.at(span.start, name, format!("must be an array of tables ([[{name}]])"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let start = item.span().start;
            match T::deserialize(item.clone().into_deserializer()) {
                Ok(v) => out.push((start, v)),
                Err(e) => self.value_error(&format!("{name}[{i}]"), &item, e),
            }
        }
        out
    }
}
