//! The durable segment spool shared with the uploader.
//!
//! Layout: `<spool>/<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts` (UTC date of
//! the segment start) with its manifest beside it (`.json`). A segment is
//! written as `<spool>/<job>/.<job>-<seq:08>.ts.partial`, fsynced, renamed,
//! and its directory fsynced; the manifest follows through a temp file,
//! fsync and rename; only then is it reported. Sequence numbers continue
//! from the highest on disk; leftover partials are closed as truncated
//! segments, or moved to `<spool>/<job>/quarantine/` when they hold no
//! packet. Nothing is ever deleted.
//!
//! Control thread or segmenter thread only (blocking file I/O).

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use airlift_ipc::message::{EngineToCtl, SegmentManifest};
use airlift_ipc::units::Name;
use sha2::{Digest, Sha256};

use crate::media::ts::{Cutter, TS_PACKET};

/// Spool errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The disk (or the spool's limit) is full: the job stops; free space
    /// (the uploader drops the oldest) and start it again.
    #[error("spool {path} is full: {reason}")]
    Full {
        /// The file or directory being written.
        path: PathBuf,
        /// What was full.
        reason: String,
    },
    /// Another I/O error on `path`: check permissions and the disk.
    #[error("spool I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| {
        if source.raw_os_error() == Some(libc::ENOSPC) || source.raw_os_error() == Some(libc::EDQUOT) {
            SpoolError::Full { path: path.to_path_buf(), reason: source.to_string() }
        } else {
            SpoolError::Io { path: path.to_path_buf(), source }
        }
    }
}

/// Where closed segments are announced: the node drains these into its
/// events. Cloned into every segmenter.
#[derive(Debug, Clone, Default)]
pub struct SpoolEvents(Arc<Mutex<Vec<EngineToCtl>>>);

impl SpoolEvents {
    /// Queues an event. Not realtime-safe (locks, allocates).
    pub fn push(&self, event: EngineToCtl) {
        if let Ok(mut q) = self.0.lock() {
            q.push(event);
        }
    }

    /// Moves the queued events into `out`. Control thread only.
    pub fn drain_into(&self, out: &mut Vec<EngineToCtl>) {
        if let Ok(mut q) = self.0.lock() {
            out.append(&mut q);
        }
    }
}

/// The spool root and its limits.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    /// Free bytes that must remain on the file system; below this a job
    /// stops as if the disk were full.
    pub min_free_bytes: u64,
}

impl Spool {
    /// A spool at `root` (created when missing on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), min_free_bytes: 64 * 1024 * 1024 }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Opens `job`'s part of the spool: recovers leftover partials (their
    /// manifests are returned, to be reported) and finds the next sequence
    /// number. Segmenter thread or control thread.
    pub fn open_job(&self, job: &Name) -> Result<(JobSpool, Vec<SegmentManifest>), SpoolError> {
        let dir = self.root.join(job.as_str());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut max_seq: Option<u64> = None;
        let mut partials = Vec::new();
        scan(&dir, job.as_str(), 0, &mut max_seq, &mut partials);
        let mut spool = JobSpool {
            root: self.root.clone(),
            job: job.clone(),
            next_seq: max_seq.map_or(0, |s| s + 1),
            min_free_bytes: self.min_free_bytes,
        };
        partials.sort();
        let mut recovered = Vec::new();
        for (seq, path) in partials {
            match spool.recover(seq, &path) {
                Ok(Some(m)) => recovered.push(m),
                Ok(None) => {}
                Err(e) => tracing::error!(job = %job, partial = %path.display(), "cannot recover: {e}"),
            }
        }
        Ok((spool, recovered))
    }
}

/// Parses `<job>-<seq>.ts`/`.json` and `.<job>-<seq>.ts.partial` names.
fn seq_of(name: &str, job: &str) -> Option<(u64, bool)> {
    if let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".ts.partial")) {
        let seq = rest.strip_prefix(job)?.strip_prefix('-')?;
        return seq.parse().ok().map(|s| (s, true));
    }
    let stem = name
        .strip_suffix(".ts.quarantined")
        .or_else(|| name.strip_suffix(".ts"))
        .or_else(|| name.strip_suffix(".json"))?;
    let seq = stem.strip_prefix(job)?.strip_prefix('-')?;
    seq.parse().ok().map(|s| (s, false))
}

fn scan(dir: &Path, job: &str, depth: u8, max: &mut Option<u64>, partials: &mut Vec<(u64, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if depth < 4 {
                scan(&path, job, depth + 1, max, partials);
            }
            continue;
        }
        let Some((seq, partial)) = seq_of(name, job) else { continue };
        *max = Some(max.map_or(seq, |m| m.max(seq)));
        if partial && depth == 0 {
            partials.push((seq, path));
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `(year, month, day)` of a UTC time in milliseconds.
fn civil(ms: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil.
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// One job's part of the spool.
#[derive(Debug)]
pub struct JobSpool {
    root: PathBuf,
    job: Name,
    next_seq: u64,
    min_free_bytes: u64,
}

impl JobSpool {
    /// The sequence number the next segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_seq
    }

    fn partial_path(&self, seq: u64) -> PathBuf {
        self.root.join(self.job.as_str()).join(format!(".{}-{seq:08}.ts.partial", self.job))
    }

    /// Relative path (from the spool root) of segment `seq` starting at `utc_ms`.
    fn final_rel(&self, seq: u64, utc_ms: i64) -> PathBuf {
        let (y, m, d) = civil(utc_ms);
        PathBuf::from(self.job.as_str())
            .join(format!("{y:04}"))
            .join(format!("{m:02}"))
            .join(format!("{d:02}"))
            .join(format!("{}-{seq:08}.ts", self.job))
    }

    fn check_free(&self, path: &Path) -> Result<(), SpoolError> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        if let Ok(st) = nix::sys::statvfs::statvfs(&self.root) {
            let free = st.blocks_available().saturating_mul(st.fragment_size());
            if free < self.min_free_bytes {
                return Err(SpoolError::Full {
                    path: path.to_path_buf(),
                    reason: format!("{free} bytes free, the limit is {}", self.min_free_bytes),
                });
            }
        }
        Ok(())
    }

    /// Starts the next segment (as a partial file) now.
    pub fn begin(&mut self) -> Result<SegmentWriter, SpoolError> {
        let seq = self.next_seq;
        let path = self.partial_path(seq);
        self.check_free(&path)?;
        let file = File::create_new(&path).map_err(io_err(&path))?;
        self.next_seq += 1;
        Ok(SegmentWriter {
            file: BufWriter::with_capacity(1 << 16, file),
            hasher: Sha256::new(),
            bytes: 0,
            seq,
            partial: path,
            utc_start_ms: now_ms(),
        })
    }

    /// Closes `w` into its final place and writes its manifest; returns the
    /// manifest to report.
    pub fn close(
        &self,
        w: SegmentWriter,
        first_pts: i64,
        duration_90k: u64,
        truncated: bool,
    ) -> Result<SegmentManifest, SpoolError> {
        let SegmentWriter { file, hasher, bytes, seq, partial, utc_start_ms } = w;
        let file = file.into_inner().map_err(|e| io_err(&partial)(e.into_error()))?;
        file.sync_all().map_err(io_err(&partial))?;
        drop(file);
        let sha256 = hex(&hasher.finalize());
        self.publish(seq, &partial, utc_start_ms, first_pts, duration_90k, bytes, sha256, truncated)
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        seq: u64,
        from: &Path,
        utc_start_ms: i64,
        first_pts: i64,
        duration_90k: u64,
        bytes: u64,
        sha256: String,
        truncated: bool,
    ) -> Result<SegmentManifest, SpoolError> {
        let rel = self.final_rel(seq, utc_start_ms);
        let dest = self.root.join(&rel);
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::rename(from, &dest).map_err(io_err(&dest))?;
        sync_dir(&dir)?;
        if let Some(partial_dir) = from.parent() {
            sync_dir(partial_dir)?;
        }
        let manifest = SegmentManifest {
            job: self.job.clone(),
            sequence: seq,
            path: rel.to_string_lossy().into_owned(),
            utc_start_ms,
            first_pts,
            duration_90k,
            bytes,
            sha256,
            truncated,
            discontinuity: truncated,
            gap_90k: 0,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| SpoolError::Io { path: dest.clone(), source: std::io::Error::other(e) })?;
        let json_path = dest.with_extension("json");
        let tmp = dir.join(format!(".{}-{seq:08}.json.tmp", self.job));
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&json).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &json_path).map_err(io_err(&json_path))?;
        sync_dir(&dir)?;
        Ok(manifest)
    }

    /// Closes a partial left by a crash as a truncated segment (cut to whole
    /// packets), or quarantines it when it holds no whole packet.
    fn recover(&mut self, seq: u64, path: &Path) -> Result<Option<SegmentManifest>, SpoolError> {
        let mut data = Vec::new();
        File::open(path).and_then(|mut f| f.read_to_end(&mut data)).map_err(io_err(path))?;
        let whole = data.len() / TS_PACKET * TS_PACKET;
        let mut cutter = Cutter::new(u64::MAX / 4, u64::MAX / 4);
        let mut packets = 0u64;
        for p in data[..whole].chunks_exact(TS_PACKET) {
            let (info, _) = cutter.push(p, 0);
            packets += u64::from(!info.garbage);
        }
        if packets == 0 {
            let qdir = self.root.join(self.job.as_str()).join("quarantine");
            fs::create_dir_all(&qdir).map_err(io_err(&qdir))?;
            let dest = qdir.join(format!("{}-{seq:08}.ts.quarantined", self.job));
            fs::rename(path, &dest).map_err(io_err(&dest))?;
            sync_dir(&qdir)?;
            tracing::warn!(job = %self.job, file = %dest.display(), "partial segment without TS packets quarantined");
            return Ok(None);
        }
        if whole < data.len() {
            let f = fs::OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
            f.set_len(whole as u64).map_err(io_err(path))?;
            f.sync_all().map_err(io_err(path))?;
        }
        let timing = cutter.timing(None);
        let mtime = fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(now_ms, |d| d.as_millis() as i64);
        let start = mtime - (timing.duration_90k / 90) as i64;
        let sha = hex(&Sha256::digest(&data[..whole]));
        let m =
            self.publish(seq, path, start, timing.first_pts, timing.duration_90k, whole as u64, sha, true)?;
        tracing::warn!(job = %self.job, sequence = seq, path = %m.path, "partial segment from a crash closed as truncated");
        Ok(Some(m))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A segment being written.
#[derive(Debug)]
pub struct SegmentWriter {
    file: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
    seq: u64,
    partial: PathBuf,
    utc_start_ms: i64,
}

impl SegmentWriter {
    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        self.file.write_all(data).map_err(io_err(&self.partial))?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Hands buffered bytes to the kernel (no fsync): a killed engine
    /// leaves them in the partial file for recovery.
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        self.file.flush().map_err(io_err(&self.partial))
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The sequence number.
    pub fn sequence(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        // 2024-02-29T12:00:00Z
        assert_eq!(civil(1_709_208_000_000), (2024, 2, 29));
        assert_eq!(civil(1_798_761_599_000), (2026, 12, 31));
    }

    #[test]
    fn names() {
        assert_eq!(seq_of("cam-00000012.ts", "cam"), Some((12, false)));
        assert_eq!(seq_of("cam-00000012.json", "cam"), Some((12, false)));
        assert_eq!(seq_of(".cam-00000013.ts.partial", "cam"), Some((13, true)));
        assert_eq!(seq_of("cam2-00000013.ts", "cam"), None);
        assert_eq!(seq_of("cam-00000013.ts.quarantined", "cam"), Some((13, false)));
    }
}
