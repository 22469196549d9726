//! The spool as the upload queue: manifests on disk are the work list.
//!
//! Layout (written by the engine's segment writer):
//! `<spool>/<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts` and the manifest beside
//! it with `.json`. ctld adds `<spool>/quarantine/` (segments whose bytes no
//! longer match their manifest, or whose S3 key already held another
//! object), `<spool>/retained/` (uploaded segments kept for `[spool]
//! retention_hours`) and its lock file ([`super::spool_lock::CTLD_LOCK`]).
//! Nothing moved into quarantine or retention replaces a file there
//! ([`move_unique`]). `.partial` files are never touched.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use airlift_ipc::message::SegmentManifest;
use sha2::{Digest, Sha256};

use super::UploadError;

/// Folder of quarantined segments, inside the spool.
pub use airlift_ipc::spool_layout::QUARANTINE;
/// Folder of uploaded segments kept for a while, inside the spool.
pub use airlift_ipc::spool_layout::RETAINED;

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

pub use airlift_ipc::spool_layout::civil_from_days;

/// The object key of a segment, fixed from its manifest alone:
/// `<prefix>/<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts` (UTC date of the
/// segment's start). The manifest's key is the same with `.json`.
pub fn object_key(prefix: &str, manifest: &SegmentManifest) -> String {
    let rest = airlift_ipc::spool_layout::segment_rel_path(
        manifest.job.as_str(),
        manifest.sequence,
        manifest.utc_start_ms,
    );
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { rest } else { format!("{prefix}/{rest}") }
}

/// The manifest's key for a segment key.
pub fn manifest_key(segment_key: &str) -> String {
    airlift_ipc::spool_layout::manifest_for(segment_key)
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

/// `name` with `.n` before its extension: `a.ts`, `a.1.ts`, `a.2.ts`, …
/// (`n` = 0 is the name itself).
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{n}.{ext}"),
        _ => format!("{name}.{n}"),
    }
}

/// Renames `from` to `to` unless `to` exists, atomically: `renameat2` with
/// `RENAME_NOREPLACE`, or, on a file system without it, a hard link and an
/// unlink. A taken name gives [`std::io::ErrorKind::AlreadyExists`]; nothing
/// is ever replaced.
pub fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // The file system cannot do it: link + unlink below.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Most numbered names tried for one file before giving up.
const MAX_NUMBERED: u32 = 100_000;

/// Moves `files` (the files of one segment: the segment, then its
/// manifest) into `dir`, keeping their names, or numbering both the same
/// (`x.1.ts` and `x.1.json`) when a name is taken there. A file never
/// replaces another. Returns where each one went, in order.
pub fn move_unique(dir: &Path, files: &[&Path]) -> Result<Vec<PathBuf>, UploadError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let mut moved = Vec::with_capacity(files.len());
    let mut n = 0u32;
    for (i, from) in files.iter().enumerate() {
        loop {
            if n > MAX_NUMBERED {
                let e = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free name left");
                return Err(io(&dir.join(name(from)))(e));
            }
            // The first file takes a number that is free for every file.
            if i == 0 && files[1..].iter().any(|f| taken(&dir.join(numbered(&name(f), n)))) {
                n += 1;
                continue;
            }
            let to = dir.join(numbered(&name(from), n));
            match rename_no_replace(from, &to) {
                Ok(()) => {
                    moved.push(to);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(io(from)(e)),
            }
        }
    }
    Ok(moved)
}

/// Moves a segment (if present) and its manifest to `<spool>/quarantine/`,
/// keeping both names (numbered `.1`, `.2`, … when taken: nothing in
/// quarantine is ever replaced). Returns where the segment went.
pub fn quarantine(root: &Path, item: &SpoolItem) -> Result<PathBuf, UploadError> {
    let dir = root.join(QUARANTINE);
    let segment_there = std::fs::symlink_metadata(&item.segment_path).is_ok();
    if segment_there {
        let moved = move_unique(&dir, &[&item.segment_path, &item.manifest_path])?;
        Ok(moved[0].clone())
    } else {
        let moved = move_unique(&dir, &[&item.manifest_path])?;
        Ok(moved[0].with_extension("ts"))
    }
}

/// Removes an uploaded segment from the queue: deleted, or moved under
/// `<spool>/retained/` (same relative path, numbered `.1`, `.2`, … when
/// taken, so a retained file is never replaced; modification time = now)
/// when `retain` is set. The segment goes first, the manifest last, so a
/// crash in between leaves a manifest without a segment, which
/// [`forget_orphan`] clears.
pub fn finish(root: &Path, item: &SpoolItem, retain: bool) -> Result<(), UploadError> {
    if retain {
        let rel = Path::new(&item.manifest.path);
        let seg_to = root.join(RETAINED).join(rel);
        let dir = seg_to.parent().unwrap_or(root);
        let moved = move_unique(dir, &[&item.segment_path, &item.manifest_path])?;
        for p in &moved {
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

/// What a walk of the spool found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolSurvey {
    /// Bytes of every file.
    pub bytes: u64,
    /// Closed segments (`.ts`) without their manifest beside them, older
    /// than the walk's minimum age (a segment is renamed a moment before its
    /// manifest is written), outside quarantine and retention.
    pub orphans: u64,
}

/// Walks the spool once: its size and the segments without a manifest
/// older than `min_age`. Unreadable folders are skipped.
pub fn survey(root: &Path, min_age: Duration) -> SpoolSurvey {
    let mut found = SpoolSurvey::default();
    let now = SystemTime::now();
    let mut stack = vec![(root.to_path_buf(), 0u8)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            let name = e.file_name();
            if m.is_dir() {
                let kept = depth == 0 && (name == QUARANTINE || name == RETAINED);
                if !kept && name != QUARANTINE {
                    stack.push((e.path(), depth + 1));
                } else {
                    found.bytes += total_bytes(&e.path());
                }
                continue;
            }
            found.bytes += m.len();
            let path = e.path();
            let is_segment =
                path.extension().is_some_and(|x| x == "ts") && !name.to_string_lossy().starts_with('.');
            let old =
                m.modified().ok().and_then(|t| now.duration_since(t).ok()).is_some_and(|age| age >= min_age);
            if is_segment && old && !path.with_extension("json").exists() {
                found.orphans += 1;
            }
        }
    }
    found
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
    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("a-00000001.ts", 0), "a-00000001.ts");
        assert_eq!(numbered("a-00000001.ts", 2), "a-00000001.2.ts");
        assert_eq!(numbered("plain", 1), "plain.1");
        assert_eq!(numbered(".hidden", 1), ".hidden.1");
    }

    fn item_in(root: &Path, job: &str, seq: u64, body: &[u8]) -> SpoolItem {
        let rel = format!("{job}/2026/11/22/{job}-{seq:08}.ts");
        let segment_path = root.join(&rel);
        std::fs::create_dir_all(segment_path.parent().expect("parent")).expect("dir");
        std::fs::write(&segment_path, body).expect("segment");
        let manifest_path = segment_path.with_extension("json");
        std::fs::write(&manifest_path, body).expect("manifest");
        let mut m = manifest(job, seq, 0);
        m.path = rel;
        SpoolItem { manifest: m, manifest_path, segment_path }
    }

    fn temp_root(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("airlift-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("root");
        root
    }

    #[test]
    fn renames_never_replace() {
        let root = temp_root("noreplace");
        let (a, b) = (root.join("a"), root.join("b"));
        std::fs::write(&a, "a").expect("a");
        std::fs::write(&b, "b").expect("b");
        let e = rename_no_replace(&a, &b).expect_err("b is taken");
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).expect("b"), b"b");
        assert_eq!(std::fs::read(&a).expect("a stays"), b"a");
        rename_no_replace(&a, &root.join("c")).expect("c is free");
        assert!(!a.exists());
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn quarantine_and_retention_never_overwrite() {
        let root = temp_root("clash");
        // Three segments with one name (a reused sequence number, a planted file).
        for round in 0..3u8 {
            let item = item_in(&root, "news", 7, &[round; 10]);
            let to = quarantine(&root, &item).expect("quarantine");
            let name = numbered("news-00000007.ts", u32::from(round));
            assert_eq!(to, root.join(QUARANTINE).join(&name));
            let man = root.join(QUARANTINE).join(numbered("news-00000007.json", u32::from(round)));
            assert_eq!(std::fs::read(&to).expect("segment"), vec![round; 10]);
            assert_eq!(std::fs::read(&man).expect("manifest"), vec![round; 10]);
        }
        // A manifest name taken alone: the pair moves on to a number free for both.
        std::fs::write(root.join(QUARANTINE).join("news-00000008.json"), "planted").expect("plant");
        let item = item_in(&root, "news", 8, b"eight");
        let to = quarantine(&root, &item).expect("quarantine");
        assert_eq!(to, root.join(QUARANTINE).join("news-00000008.1.ts"));
        assert_eq!(std::fs::read(root.join(QUARANTINE).join("news-00000008.1.json")).expect("m"), b"eight");
        assert_eq!(std::fs::read(root.join(QUARANTINE).join("news-00000008.json")).expect("m"), b"planted");
        for round in 0..2u8 {
            let item = item_in(&root, "news", 9, &[round; 5]);
            finish(&root, &item, true).expect("retain");
            let dir = root.join(RETAINED).join("news/2026/11/22");
            let seg = dir.join(numbered("news-00000009.ts", u32::from(round)));
            assert_eq!(std::fs::read(&seg).expect("retained"), vec![round; 5]);
            assert!(!item.segment_path.exists() && !item.manifest_path.exists());
        }
        assert_eq!(retained(&root).len(), 4);
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
