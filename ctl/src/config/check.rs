//! The cross-field checks: the rules across fields and sections that
//! serde cannot express (ranges, duplicate names, SRT listener ports,
//! segment job names, S3 targets and their CA files), each problem pushed
//! with its place in the file.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use airlift_ipc::spec::{
    ConsumerSpec, DesiredState, FlowSpec, ProducerSpec, PullSpec, SrtMode, SrtSpec, TsSink,
};

use super::load::{ConfigError, Context};
use super::sections::{S3Target, UploadSection};
use super::validated::Config;

/// Largest CA file read (a bundle of a few hundred certificates fits).
const CA_FILE_MAX: u64 = 1 << 20;

/// Checks that `path` is a regular file of PEM certificates that each parse
/// as a trust anchor; the message says what is wrong.
fn check_ca_file(path: &Path) -> Result<usize, String> {
    use std::io::Read;
    // Looked at before it is opened: opening a FIFO would block.
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    if meta.len() > CA_FILE_MAX {
        return Err(format!("is larger than {CA_FILE_MAX} bytes; expected PEM certificates"));
    }
    let mut pem = Vec::new();
    file.take(CA_FILE_MAX).read_to_end(&mut pem).map_err(|e| format!("cannot be read: {e}"))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots
            .add(cert.clone())
            .map_err(|e| format!("certificate {} is not a usable CA certificate: {e}", i + 1))?;
    }
    Ok(certs.len())
}

impl Context<'_> {
    /// Rules across fields and sections.
    pub(super) fn check(
        &mut self,
        config: &Config,
        flows: &[(usize, FlowSpec)],
        pulls: &[(usize, PullSpec)],
        s3: &[(usize, S3Target)],
    ) {
        self.check_upload(&config.upload, config.spool.retention_hours);
        let limits = &config.limits;
        if !(1..=256).contains(&limits.max_flows) {
            self.errors.push(self.plain("limits.max_flows", "must be 1 to 256"));
        }
        if limits.max_pull_jobs > 256 {
            self.errors.push(self.plain("limits.max_pull_jobs", "must be 0 to 256"));
        }
        if !(1..=1_000_000).contains(&limits.upload_queue) {
            self.errors.push(self.plain("limits.upload_queue", "must be 1 to 1000000"));
        }
        if flows.len() > limits.max_flows as usize {
            let at = flows[limits.max_flows as usize].0;
            self.at(
                at,
                "flow",
                format!("{} flows exceed limits.max_flows = {}", flows.len(), limits.max_flows),
            );
        }
        if pulls.len() > limits.max_pull_jobs as usize {
            let at = pulls[limits.max_pull_jobs as usize].0;
            self.at(
                at,
                "pull",
                format!("{} pull jobs exceed limits.max_pull_jobs = {}", pulls.len(), limits.max_pull_jobs),
            );
        }
        let http = &config.http;
        if http.tls_cert.is_some() != http.tls_key.is_some() {
            self.errors.push(self.plain("http.tls_cert", "tls_cert and tls_key go together"));
        }
        if !http.listen.0.ip().is_loopback() && (http.tls_cert.is_none() || http.token_file.is_none()) {
            self.errors.push(self.plain(
                "http.listen",
                &format!("{} is not a loopback address: serving beyond the host needs tls_cert, tls_key and token_file", http.listen.0),
            ));
        }
        if !(1..=100_000).contains(&http.rate_limit_per_second) {
            self.errors.push(self.plain("http.rate_limit_per_second", "must be 1 to 100000"));
        }
        if !(1..=10_080).contains(&http.session_minutes) {
            self.errors.push(self.plain("http.session_minutes", "must be 1 to 10080 (a week)"));
        }
        if let Some(p) = config.engine.rt_priority
            && !(1..=99).contains(&p)
        {
            self.errors.push(self.plain("engine.rt_priority", "must be 1 to 99"));
        }
        let mut names = HashSet::new();
        for (at, flow) in flows {
            if !names.insert(flow.name.as_str()) {
                self.at(*at, &format!("flow[{}]", flow.name), "duplicate flow name");
            }
            if let Err(errors) = flow.validate() {
                for e in errors {
                    self.at(*at, &format!("flow[{}].{}", flow.name, e.field), e.message);
                }
            }
        }
        let mut jobs = HashSet::new();
        for (at, pull) in pulls {
            if !jobs.insert(pull.name.as_str()) {
                self.at(*at, &format!("pull[{}]", pull.name), "duplicate pull job name");
            }
            if pull.segments.max_bytes > limits.max_segment_bytes.0 {
                self.at(
                    *at,
                    &format!("pull[{}].segments.max_bytes", pull.name),
                    format!("exceeds limits.max_segment_bytes ({})", limits.max_segment_bytes),
                );
            }
        }
        self.check_segment_jobs(flows, pulls);
        // SRT listener ports: inside the range, each used once.
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        let mut listener = |cx: &mut Self, at: usize, key: String, srt: &SrtSpec| {
            for (field, message) in srt.problems() {
                match field {
                    "passphrase" => cx.at(
                        at,
                        &key,
                        "an SRT listener without a passphrase serves whoever connects first; \
                         set passphrase = \"…\" (10 to 79 bytes), or allow_unencrypted = true to run it \
                         unencrypted anyway (/health then warns: unencrypted_listener)",
                    ),
                    other => cx.at(at, &format!("{key}.{other}"), message),
                }
            }
            if let SrtMode::Listener { port } = srt.mode {
                let port = port.get();
                if !config.srt.port_range.contains(port) {
                    cx.at(
                        at,
                        &key,
                        format!(
                            "listener port {port} is outside srt.port_range {}",
                            String::from(config.srt.port_range)
                        ),
                    );
                }
                if let Some(other) = ports.insert(port, key.clone()) {
                    cx.at(at, &key, format!("listener port {port} is already used by {other}"));
                }
            }
        };
        for (at, flow) in flows {
            for input in &flow.inputs {
                for (source, producer) in input.producers() {
                    if let ProducerSpec::SrtIn(s) = producer {
                        let key = match source {
                            airlift_ipc::spec::PRIMARY_SOURCE => {
                                format!("flow[{}].input[{}].producer.srt_in.srt", flow.name, input.name)
                            }
                            backup => format!(
                                "flow[{}].input[{}].failover.backup[{backup}].producer.srt_in.srt",
                                flow.name, input.name
                            ),
                        };
                        let at = self.name_offset(*at, input.name.as_str());
                        listener(self, at, key, &s.srt);
                    }
                }
            }
            for output in &flow.outputs {
                if let ConsumerSpec::Encoded(e) = &output.consumer
                    && let TsSink::Srt(s) = &e.sink
                {
                    let at = self.name_offset(*at, output.name.as_str());
                    listener(
                        self,
                        at,
                        format!("flow[{}].output[{}].consumer.encoded.sink.srt", flow.name, output.name),
                        s,
                    );
                }
            }
        }
        for (at, pull) in pulls {
            let source = self.key_offset(*at, "source");
            listener(self, source, format!("pull[{}].source", pull.name), &pull.source);
        }
        for (at, target) in s3 {
            let key = format!("s3[{}]", target.name);
            if !(target.endpoint.starts_with("http://") || target.endpoint.starts_with("https://")) {
                self.at(*at, &format!("{key}.endpoint"), "must start with http:// or https://");
            }
            let b = &target.bucket;
            let bucket_ok = (3..=63).contains(&b.len())
                && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
            if !bucket_ok {
                self.at(*at, &format!("{key}.bucket"), "must be 3 to 63 characters of a-z 0-9 . -");
            }
            if target.prefix.contains("..") || target.prefix.starts_with('/') {
                self.at(*at, &format!("{key}.prefix"), "must be relative and must not contain `..`");
            }
            if let Some(ca) = &target.ca_file {
                let path = ca.resolve(&config.base_dir);
                if let Err(message) = check_ca_file(&path) {
                    let offset = self.key_offset(*at, "ca_file");
                    self.at(offset, &format!("{key}.ca_file"), format!("{}: {message}", path.display()));
                }
            }
        }
    }

    /// Segment jobs share one namespace (the spool's folders, the S3 keys)
    /// across flows and pulls, apart from the spool's own folder names. What
    /// a segment job is comes from [`DesiredState::segment_jobs`]; each entry
    /// is looked at on its own so the error carries its position.
    fn check_segment_jobs(&mut self, flows: &[(usize, FlowSpec)], pulls: &[(usize, PullSpec)]) {
        let one =
            |flows: Vec<FlowSpec>, pulls: Vec<PullSpec>| DesiredState { flows, pulls, stopped: Vec::new() };
        let owners = flows
            .iter()
            .map(|(at, f)| (*at, format!("flow[{}]", f.name), one(vec![f.clone()], Vec::new())))
            .chain(
                pulls
                    .iter()
                    .map(|(at, p)| (*at, format!("pull[{}]", p.name), one(Vec::new(), vec![p.clone()]))),
            );
        let mut used: BTreeMap<String, String> = BTreeMap::new();
        for (at, owner, state) in owners {
            for (_, field, job) in state.segment_jobs() {
                let key = format!("{owner}.{field}");
                if let Some(reason) = airlift_ipc::spec::reserved_job_name(job.as_str()) {
                    self.at(at, &key, reason);
                } else if let Some(first) = used.get(job.as_str()) {
                    self.at(
                        at,
                        &key,
                        format!(
                            "segment job {:?} is already used by {first}: every job needs a name of its own",
                            job.as_str()
                        ),
                    );
                } else {
                    used.insert(job.to_string(), key);
                }
            }
        }
    }

    /// Where `name = "NAME"` is first written after `from` inside the same
    /// `[[flow]]` (an input or output's own table), else `from`.
    fn name_offset(&self, from: usize, name: &str) -> usize {
        let Some(rest) = self.text.get(from..) else { return from };
        let mut offset = from;
        for (i, line) in rest.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with("[[flow]]") {
                break;
            }
            for (at, _) in line.match_indices("name") {
                let after = line[at + 4..].trim_start();
                if let Some(value) = after.strip_prefix('=')
                    && value
                        .trim_start()
                        .strip_prefix('"')
                        .is_some_and(|v| v.starts_with(&format!("{name}\"")))
                {
                    return offset + at;
                }
            }
            offset += line.len();
        }
        from
    }

    /// Where `key = …` is written in the table that starts at `table`
    /// (`table` itself when it is not found, e.g. in an inline table).
    fn key_offset(&self, table: usize, key: &str) -> usize {
        let Some(rest) = self.text.get(table..) else { return table };
        let mut offset = table;
        for (i, line) in rest.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                break;
            }
            if let Some(after) = trimmed.strip_prefix(key)
                && after.trim_start().starts_with('=')
            {
                return offset + (line.len() - trimmed.len());
            }
            offset += line.len();
        }
        table
    }

    fn check_upload(&mut self, u: &UploadSection, retention_hours: u32) {
        let mut bad = |key: &str, ok: bool, message: &str| {
            if !ok {
                self.errors.push(self.plain(key, message));
            }
        };
        bad("spool.retention_hours", retention_hours <= 24 * 365, "must be 0 to 8760");
        bad("upload.concurrency", (1..=64).contains(&u.concurrency), "must be 1 to 64");
        bad("upload.multipart_threshold", u.multipart_threshold.0 >= 5 << 20, "must be at least 5 MiB");
        bad("upload.part_size", (5 << 20..=5 << 30).contains(&u.part_size.0), "must be 5 MiB to 5 GiB");
        bad("upload.backoff_min_ms", (10..=60_000).contains(&u.backoff_min_ms), "must be 10 to 60000");
        bad(
            "upload.backoff_max_ms",
            u.backoff_max_ms >= u.backoff_min_ms && u.backoff_max_ms <= 3_600_000,
            "must be at least upload.backoff_min_ms and at most 3600000",
        );
        bad("upload.breaker_failures", (1..=1000).contains(&u.breaker_failures), "must be 1 to 1000");
        bad("upload.breaker_open_ms", (10..=3_600_000).contains(&u.breaker_open_ms), "must be 10 to 3600000");
        bad("upload.rescan_secs", (1..=3600).contains(&u.rescan_secs), "must be 1 to 3600");
        bad("upload.request_timeout_secs", (1..=3600).contains(&u.request_timeout_secs), "must be 1 to 3600");
    }

    fn plain(&self, key: &str, message: &str) -> ConfigError {
        ConfigError { file: self.file.into(), position: None, key: key.into(), message: message.into() }
    }
}
