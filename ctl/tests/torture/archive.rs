//! What the torture test knows about the archive, and the invariants it
//! checks against it: every manifest ever seen (spool and S3), every object
//! seen in s3s-fs's folder (size, inode, mtime, SHA-256), every file
//! recording's size, and the proxy's log of writes.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlift_ipc::message::SegmentManifest;
use sha2::{Digest, Sha256};

use crate::node::{BUCKET, PREFIX};
use crate::proxy::Exchange;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha_of(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| hex(&Sha256::digest(&b)))
}

/// An object as s3s-fs stores it; any change of these is a replacement.
#[derive(Debug, Clone, PartialEq)]
struct ObjectPrint {
    len: u64,
    ino: u64,
    mtime_ns: i128,
    sha256: String,
}

/// Files under `root` (recursively), skipping folders named in `skip` and
/// nothing else.
fn walk(root: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if !skip.contains(&name.as_str()) {
                    stack.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[derive(Default)]
pub struct Archive {
    /// (job, sequence) → the manifest first seen for it.
    pub seen: BTreeMap<(String, u64), SegmentManifest>,
    /// Object key → its print.
    objects: BTreeMap<String, ObjectPrint>,
    /// Spool segments already hashed against their manifest.
    spool_checked: BTreeSet<PathBuf>,
    /// Recording file → its size at the last check.
    recordings: BTreeMap<PathBuf, u64>,
    /// Partials that were empty and quarantined by the engine (figures).
    pub quarantined_partials: usize,
}

impl Archive {
    /// (b) A manifest for (job, sequence) never changes once seen: a second,
    /// different one is a reused number.
    fn record(&mut self, m: SegmentManifest, whence: &str) -> Result<(), String> {
        let k = (m.job.to_string(), m.sequence);
        match self.seen.get(&k) {
            Some(old) if old.sha256 != m.sha256 || old.path != m.path || old.bytes != m.bytes => {
                Err(format!(
                    "(b) sequence {} of job {} reused: seen before as {} ({} bytes, sha256 {}), now in {whence} as {} \
                 ({} bytes, sha256 {})",
                    m.sequence, m.job, old.path, old.bytes, old.sha256, m.path, m.bytes, m.sha256
                ))
            }
            Some(_) => Ok(()),
            None => {
                self.seen.insert(k, m);
                Ok(())
            }
        }
    }

    /// Reads the spool and the bucket; checks (b) and (c) and that no
    /// object changed once stored.
    pub fn observe(&mut self, spool: &Path, bucket: &Path) -> Result<(), String> {
        for p in walk(spool, &["quarantine", "retained"]) {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else { continue };
            let m: SegmentManifest = serde_json::from_slice(&bytes)
                .map_err(|e| format!("spool manifest {} does not parse: {e}", p.display()))?;
            let ts = spool.join(&m.path);
            if !self.spool_checked.contains(&ts)
                && let Some(sha) = sha_of(&ts)
            {
                // Read again if it moved meanwhile (uploaded and removed).
                if sha != m.sha256 && ts.exists() {
                    return Err(format!(
                        "(c) spool segment {} has sha256 {sha}, its manifest says {}",
                        ts.display(),
                        m.sha256
                    ));
                }
                self.spool_checked.insert(ts);
            }
            self.record(m, "the spool")?;
        }
        let quarantined = walk(spool, &["retained"])
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".ts.quarantined"))
            .count();
        self.quarantined_partials = quarantined;

        for p in walk(bucket, &[]) {
            let Ok(rel) = p.strip_prefix(bucket) else { continue };
            let key = rel.to_string_lossy().to_string();
            if rel.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')) {
                continue;
            }
            if key.ends_with(".json") {
                let Ok(bytes) = std::fs::read(&p) else { continue };
                let m: SegmentManifest = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("(c) stored manifest {key} does not parse: {e}"))?;
                if format!("{PREFIX}/{}", m.path.replace(".ts", ".json")) != key {
                    return Err(format!("stored manifest {key} names another segment: {}", m.path));
                }
                self.record(m, "S3")?;
            }
            let Ok(meta) = std::fs::metadata(&p) else { continue };
            let print = |sha256: String| ObjectPrint {
                len: meta.len(),
                ino: meta.ino(),
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                sha256,
            };
            match self.objects.get(&key) {
                Some(old) => {
                    let now = print(old.sha256.clone());
                    if *old != now {
                        return Err(format!("(a) object {key} was replaced: {old:?} then {now:?}"));
                    }
                }
                None => {
                    let Some(sha) = sha_of(&p) else { continue };
                    self.objects.insert(key, print(sha));
                }
            }
        }
        // (c) Every stored segment matches the manifest seen for it.
        let by_key: BTreeMap<String, &str> =
            self.seen.values().map(|m| (format!("{PREFIX}/{}", m.path), m.sha256.as_str())).collect();
        for (key, o) in &self.objects {
            if let Some(sha) = by_key.get(key)
                && *sha != o.sha256
            {
                return Err(format!("(c) object {key} has sha256 {}, its manifest says {sha}", o.sha256));
            }
        }
        // (b) Numbers go up with time: a later number never starts
        // before an earlier one (2.5 s allowed for a recovered segment,
        // whose start is estimated from its file's mtime).
        let mut last: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
        for ((job, seq), m) in &self.seen {
            if let Some((s0, t0)) = last.get(job.as_str())
                && m.utc_start_ms + 2_500 < *t0
            {
                return Err(format!(
                    "(b) job {job}: sequence {seq} starts at {} ms, before sequence {s0} ({t0} ms): a number was reused",
                    m.utc_start_ms
                ));
            }
            last.insert(job, (*seq, m.utc_start_ms));
        }
        Ok(())
    }

    /// (e) Files under `dir` never shrink and are never removed.
    pub fn check_recordings(&mut self, dir: &Path) -> Result<(), String> {
        let now: BTreeMap<PathBuf, u64> = walk(dir, &[])
            .into_iter()
            .filter_map(|p| Some((p.clone(), std::fs::metadata(&p).ok()?.len())))
            .collect();
        for (p, size) in &self.recordings {
            match now.get(p) {
                None => {
                    return Err(format!("(e) recording {} was removed ({size} bytes before)", p.display()));
                }
                Some(n) if n < size => {
                    return Err(format!("(e) recording {} shrank from {size} to {n} bytes", p.display()));
                }
                _ => {}
            }
        }
        self.recordings = now;
        Ok(())
    }

    pub fn recording_figures(&self) -> (usize, u64) {
        (self.recordings.len(), self.recordings.values().sum())
    }

    pub fn objects(&self) -> usize {
        self.objects.len()
    }
}

/// Object key → number of successful writes (PUT of a whole object, or a
/// completed multipart upload) in the proxy's log.
pub fn writes(log: &[Exchange]) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    let bucket = format!("/{BUCKET}/");
    for e in log {
        let (path, query) = e.target.split_once('?').unwrap_or((e.target.as_str(), ""));
        let Some(key) = path.strip_prefix(&bucket) else { continue };
        let whole_put = e.method == "PUT" && !query.contains("partNumber");
        let completed = e.method == "POST" && query.contains("uploadId");
        if (whole_put || completed) && (200..300).contains(&e.status) {
            *out.entry(key.to_string()).or_default() += 1;
        }
    }
    out
}

/// (a) No key is written twice.
pub fn check_writes(log: &[Exchange]) -> Result<(), String> {
    match writes(log).into_iter().find(|(_, n)| *n > 1) {
        Some((key, n)) => Err(format!("(a) {key} was written {n} times (successful PUTs on the wire)")),
        None => Ok(()),
    }
}

/// (d) After a clean stop: no partial, no temporary file, no segment
/// without its manifest.
pub fn check_clean_spool(spool: &Path) -> Result<(), String> {
    for p in walk(spool, &["quarantine", "retained"]) {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if name.ends_with(".partial") || name.ends_with(".tmp") {
            return Err(format!("(d) {} left after a clean stop", p.display()));
        }
        if name.ends_with(".ts") && !p.with_extension("json").exists() {
            return Err(format!("(d) {} has no manifest after a clean stop", p.display()));
        }
    }
    Ok(())
}

/// Segment and manifest files still waiting in the spool.
pub fn pending(spool: &Path) -> usize {
    walk(spool, &["quarantine", "retained"])
        .iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            !name.starts_with('.') && (name.ends_with(".ts") || name.ends_with(".json"))
        })
        .count()
}

/// First PTS and end PTS (last packet's PTS plus its duration) of the first
/// audio stream, in 90 kHz units, from ffprobe.
pub fn pts_span(path: &Path) -> Option<(i64, i64)> {
    let out = Command::new("timeout")
        .args(["20", "ffprobe", "-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "packet=pts,duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Every packet needs its PTS and duration, or the span is unknown.
    let rows: Option<Vec<(i64, i64)>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split(',');
            Some((f.next()?.trim().parse().ok()?, f.next()?.trim().parse().ok()?))
        })
        .collect();
    let rows = rows?;
    let first = rows.iter().map(|r| r.0).min()?;
    let end = rows.iter().map(|r| r.0 + r.1).max()?;
    Some((first, end))
}
