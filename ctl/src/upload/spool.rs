//! The spool as the upload queue: manifests on disk are the work list.
//!
//! Layout (written by the engine's segment writer):
//! `<spool>/<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts` and the manifest beside
//! it with `.json`. ctld adds `<spool>/quarantine/` (segments whose bytes no
//! longer match their manifest) and `<spool>/retained/` (uploaded segments
//! kept for `[spool] retention_hours`). `.partial` files are never touched.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use airlift_ipc::message::SegmentManifest;
use sha2::{Digest, Sha256};

use super::UploadError;

/// Folder of quarantined segments, inside the spool.
pub const QUARANTINE: &str = "quarantine";
/// Folder of uploaded segments kept for a while, inside the spool.
pub const RETAINED: &str = "retained";

/// One segment waiting in the spool, with its manifest.
#[derive(Debug, Clone)]
pub struct SpoolItem {
    /// The manifest.
    pub manifest: SegmentManifest,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// The segment file.
    pub segment_path: PathBuf,
}

impl SpoolItem {
    /// Bytes of the segment and its manifest (what leaves the spool when it is done).
    pub fn bytes_on_disk(&self) -> u64 {
        let m = std::fs::metadata(&self.manifest_path).map_or(0, |m| m.len());
        self.manifest.bytes + m
    }
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The object key of a segment, fixed from its manifest alone:
/// `<prefix>/<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts` (UTC date of the
/// segment's start). The manifest's key is the same with `.json`.
pub fn object_key(prefix: &str, manifest: &SegmentManifest) -> String {
    let (y, m, d) = civil_from_days(manifest.utc_start_ms.div_euclid(86_400_000));
    let job = manifest.job.as_str();
    let rest = format!("{job}/{y:04}/{m:02}/{d:02}/{job}-{:08}.ts", manifest.sequence);
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { rest } else { format!("{prefix}/{rest}") }
}

/// The manifest's key for a segment key.
pub fn manifest_key(segment_key: &str) -> String {
    match segment_key.strip_suffix(".ts") {
        Some(stem) => format!("{stem}.json"),
        None => format!("{segment_key}.json"),
    }
}

/// Every manifest in the spool (not in quarantine or retention), oldest
/// path first. Unreadable folders are skipped.
pub fn manifests(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(jobs) = std::fs::read_dir(root) else { return found };
    let mut stack: Vec<PathBuf> = jobs
        .flatten()
        .filter(|e| e.file_name() != QUARANTINE && e.file_name() != RETAINED)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() && p.extension().is_some_and(|x| x == "json") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Reads a manifest and checks that it describes the segment beside it.
pub fn load(root: &Path, manifest_path: &Path) -> Result<SpoolItem, UploadError> {
    let bad = |message: String| UploadError::Manifest { path: manifest_path.to_path_buf(), message };
    let text = std::fs::read(manifest_path).map_err(|e| bad(e.to_string()))?;
    let manifest: SegmentManifest = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let rel = Path::new(&manifest.path);
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(bad(format!("path {:?} is not a plain relative path", manifest.path)));
    }
    let segment_path = root.join(rel);
    if segment_path.with_extension("json") != manifest_path {
        return Err(bad(format!("path {:?} is not the segment beside this manifest", manifest.path)));
    }
    let hex_ok = manifest.sha256.len() == 64 && manifest.sha256.bytes().all(|c| c.is_ascii_hexdigit());
    if !hex_ok {
        return Err(bad("sha256 is not 64 hex digits".into()));
    }
    Ok(SpoolItem { manifest, manifest_path: manifest_path.to_path_buf(), segment_path })
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (lowercase hex) and size of a file, read in blocks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UploadError + '_ {
    move |source| UploadError::Io { path: path.to_path_buf(), source }
}

/// Moves a segment (if present) and its manifest to `<spool>/quarantine/`,
/// keeping both names. Returns where the segment went.
pub fn quarantine(root: &Path, item: &SpoolItem) -> Result<PathBuf, UploadError> {
    let dir = root.join(QUARANTINE);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let name = |p: &Path| dir.join(p.file_name().unwrap_or_default());
    let target = name(&item.segment_path);
    if item.segment_path.exists() {
        std::fs::rename(&item.segment_path, &target).map_err(io(&item.segment_path))?;
    }
    std::fs::rename(&item.manifest_path, name(&item.manifest_path)).map_err(io(&item.manifest_path))?;
    Ok(target)
}

/// Removes an uploaded segment from the queue: deleted, or moved under
/// `<spool>/retained/` (same relative path, modification time = now) when
/// `retain` is set. The segment goes first, the manifest last, so a crash in
/// between leaves a manifest without a segment, which [`forget_orphan`] clears.
pub fn finish(root: &Path, item: &SpoolItem, retain: bool) -> Result<(), UploadError> {
    if retain {
        let rel = Path::new(&item.manifest.path);
        let seg_to = root.join(RETAINED).join(rel);
        if let Some(dir) = seg_to.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let man_to = seg_to.with_extension("json");
        std::fs::rename(&item.segment_path, &seg_to).map_err(io(&item.segment_path))?;
        std::fs::rename(&item.manifest_path, &man_to).map_err(io(&item.manifest_path))?;
        for p in [&seg_to, &man_to] {
            if let Ok(f) = std::fs::File::options().append(true).open(p) {
                let _ = f.set_modified(SystemTime::now());
            }
        }
    } else {
        match std::fs::remove_file(&item.segment_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&item.segment_path)(e)),
        }
        std::fs::remove_file(&item.manifest_path).map_err(io(&item.manifest_path))?;
    }
    Ok(())
}

/// Deletes a manifest whose segment is gone (its upload finished before a
/// crash, or someone removed it).
pub fn forget_orphan(item: &SpoolItem) -> Result<(), UploadError> {
    std::fs::remove_file(&item.manifest_path).map_err(io(&item.manifest_path))
}

/// Deletes a segment and its manifest that will never be uploaded (the
/// `drop_oldest` policy).
pub fn drop_item(item: &SpoolItem) -> Result<(), UploadError> {
    finish(Path::new(""), item, false)
}

/// Files under `<spool>/retained/` with their modification time and size,
/// oldest first.
pub fn retained(root: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(RETAINED)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            }
        }
    }
    out.sort_by_key(|(_, t, _)| *t);
    out
}

/// Deletes retained files older than `keep`; returns how many.
pub fn expire_retained(root: &Path, keep: Duration) -> usize {
    let now = SystemTime::now();
    let mut n = 0;
    for (p, t, _) in retained(root) {
        if now.duration_since(t).is_ok_and(|age| age >= keep) && std::fs::remove_file(&p).is_ok() {
            n += 1;
        }
    }
    n
}

/// Bytes of every file in the spool, retention and quarantine included.
pub fn total_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlift_ipc::units::Name;

    fn manifest(job: &str, seq: u64, ms: i64) -> SegmentManifest {
        SegmentManifest {
            job: Name::new(job).expect("name"),
            sequence: seq,
            path: String::new(),
            utc_start_ms: ms,
            first_pts: 0,
            duration_90k: 0,
            bytes: 0,
            sha256: String::new(),
            truncated: false,
            discontinuity: false,
            gap_90k: 0,
        }
    }

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn keys_are_fixed_by_the_manifest() {
        let m = manifest("news", 42, 1_763_769_600_000 + 5_000);
        assert_eq!(object_key("archive/", &m), "archive/news/2025/11/22/news-00000042.ts");
        assert_eq!(object_key("", &m), "news/2025/11/22/news-00000042.ts");
        assert_eq!(manifest_key(&object_key("", &m)), "news/2025/11/22/news-00000042.json");
    }
}
