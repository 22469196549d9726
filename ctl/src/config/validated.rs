//! The validated [`Config`] and the paths it resolves against its
//! directory.

use std::path::{Path, PathBuf};

use airlift_ipc::spec::{ConsumerSpec, DesiredState, ProducerSpec, TsSink};
use airlift_ipc::units::SafePath;

use super::sections::{
    DbusSection, EngineSection, HttpSection, LimitsSection, NodeSection, S3Target, SpoolSection, SrtSection,
    UploadSection,
};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from.
    pub source: String,
    /// Directory relative paths are resolved against.
    pub base_dir: PathBuf,
    /// `[node]`.
    pub node: NodeSection,
    /// `[engine]`.
    pub engine: EngineSection,
    /// `[http]`.
    pub http: HttpSection,
    /// `[srt]`.
    pub srt: SrtSection,
    /// `[spool]`.
    pub spool: SpoolSection,
    /// `[limits]`.
    pub limits: LimitsSection,
    /// `[[s3]]`.
    pub s3: Vec<S3Target>,
    /// `[upload]`.
    pub upload: UploadSection,
    /// `[dbus]`.
    pub dbus: DbusSection,
    /// `[health]`: when the node counts as degraded.
    pub health: crate::health::HealthSection,
    /// `[[alert]]`: webhooks that receive alarms and their clearing.
    pub alerts: Vec<crate::alert::AlertTarget>,
    /// `[[flow]]` and `[[pull]]`: the desired state sent to the engine.
    pub state: DesiredState,
}

impl Config {
    /// The spool directory, resolved.
    pub fn spool_dir(&self) -> PathBuf {
        resolve(&self.base_dir, self.spool.path.as_path())
    }

    /// The runtime state file, resolved: `[node] state_file`, else
    /// `state.json` beside the spool directory (`/var/lib/airlift/state.json`
    /// for the packaged spool `/var/lib/airlift/spool`).
    pub fn state_file(&self) -> PathBuf {
        if let Some(p) = &self.node.state_file {
            return p.resolve(&self.base_dir);
        }
        let spool = self.spool_dir();
        match spool.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join("state.json"),
            _ => self.base_dir.join("state.json"),
        }
    }

    /// `[http]` TLS certificate, key and token file, resolved.
    pub fn http_paths(&self) -> [Option<PathBuf>; 3] {
        let r = |p: &Option<SafePath>| p.as_ref().map(|p| p.resolve(&self.base_dir));
        [r(&self.http.tls_cert), r(&self.http.tls_key), r(&self.http.token_file)]
    }

    /// The API token file, resolved: `[http] api_token_file`, else
    /// `api-token` beside the state file.
    pub fn api_token_file(&self) -> PathBuf {
        match &self.http.api_token_file {
            Some(p) => p.resolve(&self.base_dir),
            None => self.state_file().with_file_name("api-token"),
        }
    }

    /// The engine socket, resolved.
    pub fn engine_socket(&self) -> PathBuf {
        resolve(&self.base_dir, self.engine.socket.as_path())
    }

    /// The desired state with relative file paths made absolute (the
    /// engine may run in another directory).
    pub fn resolved_state(&self) -> DesiredState {
        let mut state = self.state.clone();
        for flow in &mut state.flows {
            for input in &mut flow.inputs {
                for producer in input.producers_mut() {
                    if let ProducerSpec::File(file) = producer {
                        file.path = absolute(&self.base_dir, &file.path);
                    }
                }
            }
            for output in &mut flow.outputs {
                match &mut output.consumer {
                    ConsumerSpec::Wav { path, .. } => *path = absolute(&self.base_dir, path),
                    ConsumerSpec::Record(record) => record.path = absolute(&self.base_dir, &record.path),
                    ConsumerSpec::Encoded(enc) => {
                        if let TsSink::File { path } = &mut enc.sink {
                            *path = absolute(&self.base_dir, path);
                        }
                    }
                    _ => {}
                }
            }
        }
        state
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { base.join(path) }
}

fn absolute(base: &Path, path: &SafePath) -> SafePath {
    let joined = resolve(base, path.as_path());
    joined.to_str().and_then(|s| SafePath::new(s).ok()).unwrap_or_else(|| path.clone())
}
