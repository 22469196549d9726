//! The durable segment spool shared with the uploader.
//!
//! Layout: `<spool>/<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts` (UTC date of
//! the segment start) with its manifest beside it (`.json`). A segment is
//! written as `<spool>/<job>/.<job>-<seq:08>.ts.partial`, fsynced, renamed,
//! and its directory fsynced; the manifest follows through a temp file,
//! fsync and rename; only then is it reported.
//!
//! Sequence numbers are never reused: `<spool>/<job>/.sequence` holds the
//! job's high-water mark (the next number), written and fsynced before a
//! number is used, so it survives drained spools, retention expiry,
//! reboots and clock steps. A job continues from the larger of the mark
//! and the highest number on disk; a job whose numbers would wrap is
//! refused.
//!
//! One writer per job: a [`JobSpool`] holds an exclusive `flock` on
//! `<spool>/<job>/.lock` for its lifetime. Leftover partials are recovered
//! only by whoever takes that lock (so a rebuilt flow never mistakes its
//! predecessor's live partial for a crash leftover): closed as truncated
//! segments, or moved to `<spool>/<job>/quarantine/` when they hold no
//! packet. Nothing is ever deleted.
//!
//! Control thread or segmenter thread only (blocking file I/O).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use airlift_ipc::message::{EngineToCtl, SegmentJobStats, SegmentManifest};
use airlift_ipc::units::Name;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::archive::ts::{Cutter, TS_PACKET};
use airlift_ipc::spool_layout as layout;

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
    /// Another writer holds the job (a rebuilt flow's predecessor still
    /// closing its last segment, or a second engine on the same spool):
    /// try again once it has let go.
    #[error("spool job {job} is held by another writer ({path})")]
    Locked {
        /// The job.
        job: String,
        /// Its lock file.
        path: PathBuf,
    },
    /// The job's sequence numbers are used up (a number at or near
    /// `u64::MAX` is on disk or in the mark): rename the job.
    #[error("spool job {job}: sequence numbers exhausted after {last}")]
    SequenceExhausted {
        /// The job.
        job: String,
        /// The highest number seen.
        last: u64,
    },
    /// Another engine already owns this spool: stop it, or give this one a
    /// spool of its own.
    #[error("spool {path} is owned by another engine ({holder}); one engine per spool")]
    Owned {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as its lock file says (e.g. `pid 1234`).
        holder: String,
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
/// events. Cloned into every segmenter. It also holds each job's
/// [`SegmentJobCounters`], which outlive the job's segmenters (a rebuilt
/// flow keeps counting).
#[derive(Debug, Clone, Default)]
pub struct SpoolEvents(Arc<Mutex<Vec<EngineToCtl>>>, Arc<Mutex<BTreeMap<String, Arc<SegmentJobCounters>>>>);

/// Counters of one segment job's writing, shared by its segmenters and read
/// by the node's statistics.
#[derive(Debug, Default)]
pub struct SegmentJobCounters {
    /// Times the spool refused writes (full, or below its free-space floor).
    pub stalls: AtomicU64,
    /// Bytes held in memory now while the spool refuses writes.
    pub held_bytes: AtomicU64,
    /// Most bytes held at once.
    pub held_bytes_max: AtomicU64,
    /// Bytes dropped (oldest first, whole packets) because the hold was full.
    pub dropped_bytes: AtomicU64,
    /// Gaps written into manifests (segments marked with a `gap_90k`).
    pub gaps: AtomicU64,
    /// Audio lost in those gaps, 90 kHz ticks.
    pub gap_90k: AtomicU64,
    /// Bytes that did not parse as TS (pull input).
    pub junk_bytes: AtomicU64,
}

impl SegmentJobCounters {
    /// A snapshot for IPC.
    pub fn snapshot(&self, job: &str) -> SegmentJobStats {
        SegmentJobStats {
            job: job.to_owned(),
            stalls: self.stalls.load(Relaxed),
            held_bytes: self.held_bytes.load(Relaxed),
            held_bytes_max: self.held_bytes_max.load(Relaxed),
            dropped_bytes: self.dropped_bytes.load(Relaxed),
            gaps: self.gaps.load(Relaxed),
            gap_90k: self.gap_90k.load(Relaxed),
            junk_bytes: self.junk_bytes.load(Relaxed),
        }
    }
}

impl SpoolEvents {
    /// The counters of `job` (created on first use). Not realtime-safe.
    pub fn job_counters(&self, job: &str) -> Arc<SegmentJobCounters> {
        match self.1.lock() {
            Ok(mut jobs) => jobs.entry(job.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Snapshots of every job's counters. Control thread only.
    pub fn job_stats(&self) -> Vec<SegmentJobStats> {
        self.1.lock().map(|jobs| jobs.iter().map(|(job, c)| c.snapshot(job)).collect()).unwrap_or_default()
    }

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

    /// Makes this process the spool's engine for as long as the returned
    /// guard lives: an exclusive `flock` on `<spool>/.engine.lock`, with
    /// this process's id written into it. A second engine on the same spool
    /// gets [`SpoolError::Owned`] and must not touch anything. (ctld holds
    /// a lock of its own, `.ctld.lock`.) Control thread, at start-up.
    pub fn claim(&self) -> Result<SpoolOwner, SpoolError> {
        fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let path = self.root.join(ENGINE_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let pid = format!("pid {}\n", std::process::id());
                let written = lock.set_len(0).and_then(|()| lock.write_all(pid.as_bytes()));
                written.map_err(io_err(&path))?;
                Ok(SpoolOwner { _lock: lock })
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = fs::read_to_string(&path).map(|t| t.trim().to_owned()).unwrap_or_default();
                Err(SpoolError::Owned { path, holder })
            }
            Err((_, errno)) => Err(io_err(&path)(std::io::Error::from(errno))),
        }
    }

    /// Opens `job`'s part of the spool: takes the job's lock
    /// ([`SpoolError::Locked`] when another writer holds it), recovers
    /// leftover partials (their manifests are returned, to be reported)
    /// and finds the next sequence number. Segmenter thread or control
    /// thread.
    pub fn open_job(&self, job: &Name) -> Result<(JobSpool, Vec<SegmentManifest>), SpoolError> {
        let dir = self.root.join(job.as_str());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock_path = dir.join(JOB_LOCK);
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(SpoolError::Locked { job: job.to_string(), path: lock_path });
            }
            Err((_, errno)) => return Err(io_err(&lock_path)(std::io::Error::from(errno))),
        };
        let mut max_seq: Option<u64> = None;
        let mut partials = Vec::new();
        let mut orphans = Vec::new();
        scan(&dir, job.as_str(), 0, &mut max_seq, &mut partials, &mut orphans);
        let exhausted = |last| SpoolError::SequenceExhausted { job: job.to_string(), last };
        let on_disk = match max_seq {
            Some(s) => s.checked_add(1).ok_or_else(|| exhausted(s))?,
            None => 0,
        };
        let mark_path = dir.join(SEQUENCE_MARK);
        let mark = read_mark(&mark_path, job);
        let next_seq = on_disk.max(mark.unwrap_or(0));
        if next_seq == u64::MAX {
            return Err(exhausted(next_seq));
        }
        let mut spool = JobSpool {
            root: self.root.clone(),
            job: job.clone(),
            next_seq,
            min_free_bytes: self.min_free_bytes,
            mark_path,
            _lock: lock,
        };
        partials.sort();
        orphans.sort();
        let mut recovered = Vec::new();
        for (seq, path) in orphans {
            match spool.adopt_orphan(seq, &path) {
                Ok(m) => recovered.push(m),
                Err(e) => {
                    tracing::error!(job = %job, segment = %path.display(), "cannot write the missing manifest: {e}")
                }
            }
        }
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

// The engine's lock file, inside the spool root (`Spool::claim`).
pub use airlift_ipc::spool_layout::ENGINE_LOCK;

/// Proof that this process owns a spool ([`Spool::claim`]); the spool is
/// free again when it drops (or the process dies).
#[derive(Debug)]
pub struct SpoolOwner {
    _lock: Flock<File>,
}

// The job's lock file and sequence high-water mark, inside `<spool>/<job>/`.
pub use airlift_ipc::spool_layout::{JOB_LOCK, SEQUENCE_MARK};

/// The high-water mark in `path`, if it is there and readable. A mark that
/// cannot be read is logged: the numbers on disk still apply.
fn read_mark(path: &Path, job: &Name) -> Option<u64> {
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                tracing::error!(job = %job, mark = %path.display(), "sequence mark unreadable; continuing from the numbers on disk");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::error!(job = %job, mark = %path.display(), "cannot read the sequence mark: {e}");
            None
        }
    }
}

/// Parses `<job>-<seq>.ts`/`.json` and `.<job>-<seq>.ts.partial` names.
fn seq_of(name: &str, job: &str) -> Option<(u64, bool)> {
    layout::parse_sequence(name, job)
}

/// Walks a job's folder: the highest sequence number, leftover partials,
/// and closed segments without a manifest (`orphans`).
fn scan(
    dir: &Path,
    job: &str,
    depth: u8,
    max: &mut Option<u64>,
    partials: &mut Vec<(u64, PathBuf)>,
    orphans: &mut Vec<(u64, PathBuf)>,
) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if depth < 4 && name != layout::QUARANTINE {
                scan(&path, job, depth + 1, max, partials, orphans);
            } else if name == layout::QUARANTINE {
                let mut ignored = (Vec::new(), Vec::new());
                scan(&path, job, 4, max, &mut ignored.0, &mut ignored.1);
            }
            continue;
        }
        let Some((seq, partial)) = seq_of(name, job) else { continue };
        *max = Some(max.map_or(seq, |m| m.max(seq)));
        if partial && depth == 0 {
            partials.push((seq, path));
        } else if !partial && depth == 3 && name.ends_with(".ts") && !path.with_extension("json").exists() {
            orphans.push((seq, path));
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
pub(crate) fn civil(ms: i64) -> (i64, u32, u32) {
    layout::civil(ms)
}

/// One job's part of the spool, held exclusively (its lock is released
/// when this drops).
#[derive(Debug)]
pub struct JobSpool {
    root: PathBuf,
    job: Name,
    next_seq: u64,
    min_free_bytes: u64,
    mark_path: PathBuf,
    _lock: Flock<File>,
}

impl JobSpool {
    /// The sequence number the next segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_seq
    }

    fn partial_path(&self, seq: u64) -> PathBuf {
        self.root.join(self.job.as_str()).join(layout::partial_name(self.job.as_str(), seq))
    }

    /// Relative path (from the spool root) of segment `seq` starting at `utc_ms`.
    fn final_rel(&self, seq: u64, utc_ms: i64) -> PathBuf {
        PathBuf::from(layout::segment_rel_path(self.job.as_str(), seq, utc_ms))
    }

    /// Changes the free-space floor (tests; a reload).
    pub fn set_min_free_bytes(&mut self, bytes: u64) {
        self.min_free_bytes = bytes;
    }

    /// [`SpoolError::Full`] when the file system has less than the floor
    /// free (one `statvfs`).
    pub fn check_free(&self, path: &Path) -> Result<(), SpoolError> {
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

    /// Makes `next` the job's durable high-water mark: temp file, fsync,
    /// rename, fsync of the directory.
    fn write_mark(&self, next: u64) -> Result<(), SpoolError> {
        let dir = self.root.join(self.job.as_str());
        let tmp = dir.join(format!("{SEQUENCE_MARK}.tmp"));
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(format!("{next}\n").as_bytes()).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &self.mark_path).map_err(io_err(&self.mark_path))?;
        sync_dir(&dir)
    }

    /// Starts the next segment (as a partial file) now. Its number is
    /// durably marked as used first.
    pub fn begin(&mut self) -> Result<SegmentWriter, SpoolError> {
        let seq = self.next_seq;
        let path = self.partial_path(seq);
        self.check_free(&path)?;
        let next = seq
            .checked_add(1)
            .filter(|n| *n < u64::MAX)
            .ok_or_else(|| SpoolError::SequenceExhausted { job: self.job.to_string(), last: seq })?;
        self.write_mark(next)?;
        let file = File::create_new(&path).map_err(io_err(&path))?;
        self.next_seq = next;
        Ok(SegmentWriter {
            file,
            pending: Vec::with_capacity(WRITE_CHUNK),
            hasher: Sha256::new(),
            bytes: 0,
            seq,
            partial: path,
            utc_start_ms: now_ms(),
            discontinuity: false,
            gap_90k: 0,
        })
    }

    /// Closes `w` into its final place and writes its manifest; returns the
    /// manifest to report. On failure (a full disk) the writer comes back
    /// with the error, nothing it accepted lost: closing it again later
    /// continues where this attempt stopped (every step is repeatable).
    pub fn close(
        &self,
        mut w: SegmentWriter,
        first_pts: i64,
        duration_90k: u64,
        truncated: bool,
    ) -> Result<SegmentManifest, Box<(SpoolError, SegmentWriter)>> {
        if let Err(e) = w.sync() {
            return Err(Box::new((e, w)));
        }
        let manifest = SegmentManifest {
            job: self.job.clone(),
            sequence: w.seq,
            path: self.final_rel(w.seq, w.utc_start_ms).to_string_lossy().into_owned(),
            utc_start_ms: w.utc_start_ms,
            first_pts,
            duration_90k,
            bytes: w.bytes,
            sha256: hex(&w.hasher.clone().finalize()),
            truncated,
            discontinuity: w.discontinuity || truncated || w.gap_90k > 0,
            gap_90k: w.gap_90k,
        };
        self.publish(&w.partial, manifest).map_err(|e| Box::new((e, w)))
    }

    /// Renames `from` to the manifest's place and puts the manifest beside
    /// it. The manifest is written (to a temp file, fsynced) before the
    /// segment moves, so a full disk stops this before anything is renamed
    /// and the `.ts` is never left without its manifest by a running
    /// engine; only a crash between the two renames can leave one, and
    /// [`Spool::open_job`] writes the missing manifest. Repeatable: a
    /// rename already done is not done again.
    fn publish(&self, from: &Path, manifest: SegmentManifest) -> Result<SegmentManifest, SpoolError> {
        let dest = self.root.join(&manifest.path);
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = self.manifest_tmp(&dest, &manifest)?;
        let renamed = !from.exists() && dest.exists();
        if from != dest && !renamed {
            fs::rename(from, &dest).map_err(io_err(&dest))?;
            sync_dir(&dir)?;
            if let Some(partial_dir) = from.parent() {
                sync_dir(partial_dir)?;
            }
        }
        self.commit_manifest(&tmp, &dest)?;
        Ok(manifest)
    }

    fn write_manifest(&self, dest: &Path, manifest: &SegmentManifest) -> Result<(), SpoolError> {
        let tmp = self.manifest_tmp(dest, manifest)?;
        self.commit_manifest(&tmp, dest)
    }

    /// Writes the manifest of segment `dest` to a fsynced temp file beside it.
    fn manifest_tmp(&self, dest: &Path, manifest: &SegmentManifest) -> Result<PathBuf, SpoolError> {
        let seq = manifest.sequence;
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| SpoolError::Io { path: dest.to_path_buf(), source: std::io::Error::other(e) })?;
        let tmp = dir.join(layout::manifest_tmp_name(self.job.as_str(), seq));
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&json).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        Ok(tmp)
    }

    /// Moves a manifest temp file to its place beside segment `dest`.
    fn commit_manifest(&self, tmp: &Path, dest: &Path) -> Result<(), SpoolError> {
        let json_path = dest.with_extension("json");
        fs::rename(tmp, &json_path).map_err(io_err(&json_path))?;
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        sync_dir(&dir)
    }

    /// Closes a segment given up on (the spool refused its writes too long)
    /// as a truncated segment of what reached its file, as if a crash had
    /// left it; bytes still pending are dropped. On failure the writer
    /// comes back, to try again later.
    pub fn close_abandoned(
        &mut self,
        w: SegmentWriter,
    ) -> Result<Option<SegmentManifest>, Box<(SpoolError, SegmentWriter)>> {
        if let Err(e) = w.file.sync_all() {
            return Err(Box::new((io_err(&w.partial)(e), w)));
        }
        let (seq, path) = (w.seq, w.partial.clone());
        if !path.exists() {
            // Already closed by an earlier attempt.
            return Ok(None);
        }
        self.recover(seq, &path).map_err(|e| Box::new((e, w)))
    }

    /// Closes a partial left by a crash as a truncated segment (cut to whole
    /// packets), or quarantines it when it holds no whole packet. The file
    /// is streamed (hashed and parsed as it is read), never held in memory.
    fn recover(&mut self, seq: u64, path: &Path) -> Result<Option<SegmentManifest>, SpoolError> {
        let scanned = scan_ts(path, None)?;
        if scanned.packets == 0 {
            let qdir = self.root.join(self.job.as_str()).join(layout::QUARANTINE);
            fs::create_dir_all(&qdir).map_err(io_err(&qdir))?;
            let dest = rename_noreplace(path, &qdir.join(layout::quarantined_name(self.job.as_str(), seq)))?;
            sync_dir(&qdir)?;
            tracing::warn!(job = %self.job, file = %dest.display(), "partial segment without TS packets quarantined");
            return Ok(None);
        }
        if scanned.whole < scanned.len {
            let f = fs::OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
            f.set_len(scanned.whole).map_err(io_err(path))?;
            f.sync_all().map_err(io_err(path))?;
        }
        let start = mtime_ms(path) - (scanned.duration_90k / 90) as i64;
        let manifest = SegmentManifest {
            job: self.job.clone(),
            sequence: seq,
            path: self.final_rel(seq, start).to_string_lossy().into_owned(),
            utc_start_ms: start,
            first_pts: scanned.first_pts,
            duration_90k: scanned.duration_90k,
            bytes: scanned.whole,
            sha256: scanned.sha256,
            truncated: true,
            discontinuity: true,
            gap_90k: 0,
        };
        let m = self.publish(path, manifest)?;
        tracing::warn!(job = %self.job, sequence = seq, path = %m.path, "partial segment from a crash closed as truncated");
        Ok(Some(m))
    }

    /// Writes the manifest of a closed segment that has none (the engine
    /// died between renaming the segment and writing its manifest). The
    /// segment was complete and fsynced before its rename. It is marked a
    /// discontinuity: whether it began a new run cannot be told any more.
    fn adopt_orphan(&mut self, seq: u64, path: &Path) -> Result<SegmentManifest, SpoolError> {
        let scanned = scan_ts(path, Some(path))?;
        let rel = path.strip_prefix(&self.root).map(Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf());
        let start = mtime_ms(path) - (scanned.duration_90k / 90) as i64;
        let manifest = SegmentManifest {
            job: self.job.clone(),
            sequence: seq,
            path: rel.to_string_lossy().into_owned(),
            utc_start_ms: start,
            first_pts: scanned.first_pts,
            duration_90k: scanned.duration_90k,
            bytes: scanned.len,
            sha256: scanned.sha256,
            truncated: false,
            discontinuity: true,
            gap_90k: 0,
        };
        self.write_manifest(path, &manifest)?;
        tracing::warn!(job = %self.job, sequence = seq, path = %manifest.path, "segment without a manifest found; manifest written");
        Ok(manifest)
    }
}

/// The modification time of `path` in Unix milliseconds (now if unknown).
fn mtime_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or_else(now_ms, |d| d.as_millis() as i64)
}

/// What [`scan_ts`] found in a file.
struct ScannedTs {
    /// Bytes in the file.
    len: u64,
    /// Bytes in whole packets.
    whole: u64,
    /// Packets that parsed.
    packets: u64,
    first_pts: i64,
    duration_90k: u64,
    /// SHA-256 of the whole packets (of the whole file when `whole_file`).
    sha256: String,
}

/// Reads a TS file in blocks: hashes it and measures its timing without
/// holding it in memory. With `whole_file` set the hash covers every byte,
/// else only the whole packets.
fn scan_ts(path: &Path, whole_file: Option<&Path>) -> Result<ScannedTs, SpoolError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let whole = if whole_file.is_some() { len } else { len / TS_PACKET as u64 * TS_PACKET as u64 };
    let mut cutter = Cutter::new(u64::MAX / 4, u64::MAX / 4);
    let mut hasher = Sha256::new();
    let mut packets = 0u64;
    let mut block = vec![0u8; TS_PACKET * 512];
    let mut done = 0u64;
    while done < whole {
        let want = (whole - done).min(block.len() as u64) as usize;
        file.read_exact(&mut block[..want]).map_err(io_err(path))?;
        hasher.update(&block[..want]);
        for p in block[..want].chunks_exact(TS_PACKET) {
            let (info, _) = cutter.push(p, 0);
            packets += u64::from(!info.garbage);
        }
        done += want as u64;
    }
    let timing = cutter.timing(None);
    Ok(ScannedTs {
        len,
        whole,
        packets,
        first_pts: timing.first_pts,
        duration_90k: timing.duration_90k,
        sha256: hex(&hasher.finalize()),
    })
}

/// Renames `from` to `to`, or to `to.1`, `to.2`, … when taken: never over
/// an existing file (`renameat2` with `RENAME_NOREPLACE`). Returns where
/// the file went.
pub fn rename_noreplace(from: &Path, to: &Path) -> Result<PathBuf, SpoolError> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    for n in 0u32..10_000 {
        let dest = if n == 0 {
            to.to_path_buf()
        } else {
            let mut name = to.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        match renameat2(AT_FDCWD, from, AT_FDCWD, &dest, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(dest),
            Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(io_err(&dest)(e.into())),
        }
    }
    Err(io_err(to)(std::io::Error::other("10000 files of this name already exist")))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

mod writer;
use writer::WRITE_CHUNK;
pub use writer::{FreeSpaceGate, SegmentWriter};

#[cfg(test)]
mod tests;
