//! The upload scheduler: one task that turns the spool into uploads.
//!
//! It rescans the spool at start-up, on every `SegmentClosed` event and every
//! `[upload] rescan_secs`; dispatches the oldest due segments with at most
//! `[upload] concurrency` in flight; retries failures with backoff and
//! jitter behind a circuit breaker per target; and applies the spool limit
//! policy. Its only state besides the spool is timing (when to retry).
//!
//! The queue in memory holds at most `[limits] upload_queue` segments; the
//! others wait in the spool (nothing is dropped for it) and are queued,
//! oldest of each job first and jobs in turn, as uploads make room.
//!
//! A reload that changes `[[s3]]`, `[upload]` or `[limits] upload_queue`
//! hands the scheduler new [`UploadSettings`]: uploads in flight finish (or
//! fail) on the targets they started on, every other segment goes to the
//! new targets. Nothing leaves the spool without being stored and verified
//! on every target of its settings, and a segment stored before the reload
//! is not sent again (an upload that failed on the old targets starts over
//! on the new ones; a partial copy left on an old target stays there).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlift_ipc::message::EngineToCtl;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;

use super::UploadError;
use super::breaker::{CircuitBreaker, Jitter, backoff_delay};
use super::s3::{PutPlan, S3Bucket};
use super::spool::{self, SpoolItem};
use crate::config::{Config, FullPolicy};
use crate::engine_link::Shared;
use crate::metrics::TargetLabel;

mod attempt;
mod policy;

use attempt::upload;

/// Something D-Bus (or a log) should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    /// A segment and its manifest are stored and verified on every target.
    Uploaded {
        /// The job.
        job: String,
        /// Its sequence number.
        sequence: u64,
        /// The segment's object key.
        key: String,
    },
    /// Needs attention: `kind` is `spool_full`, `upload_failing`,
    /// `quarantine` or `upload_conflict` (another object is already stored
    /// under a segment's key: the segment is quarantined, never written over it).
    Alarm {
        /// The kind.
        kind: &'static str,
        /// The job concerned, or empty.
        job: String,
        /// What happened.
        message: String,
    },
}

/// What the daemon must do for the `stop_recording` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolAction {
    /// Stop every flow and pull job that writes segments.
    StopRecording,
    /// The spool is below its limit again: start them again.
    ResumeRecording,
}

/// The last verified upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUpload {
    /// The segment's object key.
    pub key: String,
    /// Bytes of the segment.
    pub bytes: u64,
    /// When it was verified, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// One segment in the queue, as `ListUploads` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadEntry {
    /// The segment's object key.
    pub key: String,
    /// Size of the segment.
    pub bytes: u64,
    /// Bytes sent in the current attempt.
    pub sent: u64,
    /// `waiting`, `uploading`, or `retrying in N s (attempt A): error`.
    pub state: String,
}

#[derive(Debug)]
struct Job {
    item: SpoolItem,
    key: String,
    attempts: u32,
    next: Instant,
    in_flight: bool,
    done: Vec<bool>,
    sent: Arc<AtomicU64>,
    last_error: Option<String>,
}

/// Upload state shared with HTTP, D-Bus and the CLI.
#[derive(Debug)]
pub struct UploadStatus {
    /// Names of the configured targets (empty: uploads are off).
    targets: Mutex<Vec<String>>,
    queue: Mutex<BTreeMap<PathBuf, Job>>,
    /// Segments in the spool left out of the queue for want of room.
    unqueued: AtomicU64,
    /// `[limits] upload_queue`.
    queue_limit: AtomicU64,
    /// New settings for the scheduler (reloads).
    settings: mpsc::UnboundedSender<UploadSettings>,
    last: Mutex<Option<LastUpload>>,
    recording_stopped: AtomicBool,
    /// Targets whose circuit breaker is open or half-open.
    breakers_open: Mutex<Vec<String>>,
    /// Upload events (D-Bus signals subscribe here).
    pub events: broadcast::Sender<UploadEvent>,
}

impl UploadStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Job>> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Segments waiting (or being uploaded), in the queue or in the spool
    /// for want of room in it.
    pub fn backlog(&self) -> u32 {
        if self.targets.lock().map(|t| t.is_empty()).unwrap_or(false) {
            // Uploads are off: segments stay in the spool, nothing waits.
            return 0;
        }
        let n = (self.lock().len() as u64).saturating_add(self.unqueued());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Segments waiting in the spool for room in the queue (`[limits]
    /// upload_queue`); they are queued as uploads finish.
    pub fn unqueued(&self) -> u64 {
        self.unqueued.load(Relaxed)
    }

    /// `[limits] upload_queue`: most segments in the queue at once.
    pub fn queue_limit(&self) -> u64 {
        self.queue_limit.load(Relaxed)
    }

    /// Names of the configured targets (empty: uploads are off).
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Hands the scheduler new targets and settings (a reload). Uploads in
    /// flight finish on the targets they started on; every other segment
    /// goes to the new ones. Errors when the scheduler is not running.
    pub fn reconfigure(&self, settings: UploadSettings) -> Result<(), UploadError> {
        self.settings.send(settings).map_err(|_| UploadError::Target {
            target: String::new(),
            message: "the uploader is not running".into(),
        })
    }

    /// The last verified upload.
    pub fn last_upload(&self) -> Option<LastUpload> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    /// Targets whose circuit breaker is open or half-open (uploads to
    /// them paused but for one probe).
    pub fn breakers_open(&self) -> Vec<String> {
        self.breakers_open.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// The most failed attempts of one waiting segment.
    pub fn most_attempts(&self) -> u32 {
        self.lock().values().map(|j| j.attempts).max().unwrap_or(0)
    }

    /// True while the `stop_recording` policy holds recording.
    pub fn recording_stopped(&self) -> bool {
        self.recording_stopped.load(Relaxed)
    }

    /// A page of the queue, oldest first; `limit` is capped at 1000.
    pub fn list(&self, offset: u32, limit: u32) -> Vec<UploadEntry> {
        let now = Instant::now();
        let q = self.lock();
        let mut jobs: Vec<&Job> = q.values().collect();
        jobs.sort_by_key(|j| order(j));
        jobs.into_iter()
            .skip(offset as usize)
            .take(limit.min(1000) as usize)
            .map(|j| UploadEntry {
                key: j.key.clone(),
                bytes: j.item.manifest.bytes,
                sent: j.sent.load(Relaxed),
                state: if j.in_flight {
                    "uploading".into()
                } else if let Some(e) = &j.last_error {
                    let wait = j.next.saturating_duration_since(now).as_secs();
                    format!("retrying in {wait} s (attempt {}): {e}", j.attempts + 1)
                } else {
                    "waiting".into()
                },
            })
            .collect()
    }
}

fn order(j: &Job) -> (i64, String, u64) {
    (j.item.manifest.utc_start_ms, j.item.manifest.job.to_string(), j.item.manifest.sequence)
}

struct Target {
    bucket: S3Bucket,
    breaker: Mutex<CircuitBreaker>,
}

/// What the scheduler takes from `[[s3]]`, `[upload]` and `[limits]
/// upload_queue`, checked (targets connected, credentials read); built at
/// start-up and by a reload before anything changes.
pub struct UploadSettings {
    targets: Vec<Target>,
    plan: PutPlan,
    concurrency: usize,
    backoff: (Duration, Duration),
    rescan: Duration,
    queue_limit: usize,
}

impl std::fmt::Debug for UploadSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.targets.iter().map(|t| t.bucket.name.as_str()).collect();
        f.debug_struct("UploadSettings")
            .field("targets", &names)
            .field("concurrency", &self.concurrency)
            .field("queue_limit", &self.queue_limit)
            .finish_non_exhaustive()
    }
}

impl UploadSettings {
    /// Checks every `[[s3]]` target of `config` (endpoint, region,
    /// credentials) and reads `[upload]` and `[limits] upload_queue`.
    pub fn from_config(config: &Config) -> Result<Self, UploadError> {
        let u = &config.upload;
        let mut targets = Vec::new();
        for t in &config.s3 {
            let bucket = S3Bucket::connect(t, &config.base_dir)?;
            let breaker = CircuitBreaker::new(u.breaker_failures, Duration::from_millis(u.breaker_open_ms));
            targets.push(Target { bucket, breaker: Mutex::new(breaker) });
        }
        Ok(Self {
            targets,
            plan: PutPlan {
                multipart_threshold: u.multipart_threshold.0,
                part_size: u.part_size.0,
                read_back_max: u.verify_read_back_max.0,
                timeout: Duration::from_secs(u.request_timeout_secs),
            },
            concurrency: u.concurrency as usize,
            backoff: (Duration::from_millis(u.backoff_min_ms), Duration::from_millis(u.backoff_max_ms)),
            rescan: Duration::from_secs(u.rescan_secs),
            queue_limit: config.limits.upload_queue as usize,
        })
    }

    /// True when `new` differs from `old` in what these settings hold.
    pub fn changed(old: &Config, new: &Config) -> bool {
        old.s3 != new.s3 || old.upload != new.upload || old.limits.upload_queue != new.limits.upload_queue
    }

    fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.bucket.name.clone()).collect()
    }
}

struct Ctx {
    root: PathBuf,
    targets: Vec<Target>,
    plan: PutPlan,
    retain: bool,
    shared: Arc<Shared>,
}

enum Outcome {
    Uploaded,
    Failed { error: String, done: Vec<bool>, breaker_opened: Option<String> },
    Deferred { wait: Duration, done: Vec<bool> },
    Quarantined(String),
    Conflict(String),
    Orphan,
}

/// The scheduler, built but not running yet: [`UploadTask::spawn`] it once
/// every subscriber of [`UploadStatus::events`] (D-Bus) is in place, so the
/// first scan's alarms are not lost.
pub struct UploadTask(Scheduler);

impl std::fmt::Debug for UploadTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadTask").field("spool", &self.0.ctx.root).finish_non_exhaustive()
    }
}

impl UploadTask {
    /// Starts the scheduler on the current tokio runtime.
    pub fn spawn(self) {
        tokio::spawn(self.0.run());
    }
}

/// Checks the targets and builds the scheduler. Returns the shared status,
/// the channel of [`SpoolAction`]s for the daemon, and the task to spawn.
pub fn start(
    config: &Config,
    shared: Arc<Shared>,
) -> Result<(Arc<UploadStatus>, mpsc::UnboundedReceiver<SpoolAction>, UploadTask), UploadError> {
    let settings = UploadSettings::from_config(config)?;
    for name in settings.names() {
        shared.metrics.upload.breaker_state.get_or_create(&TargetLabel { target: name }).set(0);
    }
    shared.metrics.upload.queue_limit.set(settings.queue_limit as i64);
    let (settings_tx, settings_rx) = mpsc::unbounded_channel();
    let status = Arc::new(UploadStatus {
        targets: Mutex::new(settings.names()),
        queue: Mutex::new(BTreeMap::new()),
        unqueued: AtomicU64::new(0),
        queue_limit: AtomicU64::new(settings.queue_limit as u64),
        settings: settings_tx,
        last: Mutex::new(None),
        recording_stopped: AtomicBool::new(false),
        breakers_open: Mutex::new(Vec::new()),
        events: broadcast::channel(1024).0,
    });
    let root = config.spool_dir();
    warn_if_disk_too_small(&root, config.spool.max_bytes.0);
    let ctx = Arc::new(Ctx {
        root,
        targets: settings.targets,
        plan: settings.plan,
        retain: config.spool.retention_hours > 0,
        shared,
    });
    let (actions, actions_rx) = mpsc::unbounded_channel();
    let scheduler = Scheduler {
        ctx,
        status: status.clone(),
        actions,
        settings: Some(settings_rx),
        generation: 0,
        concurrency: settings.concurrency,
        backoff: settings.backoff,
        rescan: settings.rescan,
        queue_limit: settings.queue_limit,
        retention: Duration::from_secs(u64::from(config.spool.retention_hours) * 3600),
        max_bytes: config.spool.max_bytes.0,
        policy: config.spool.full_policy,
        jitter: Jitter::from_clock(),
        warned: Default::default(),
    };
    Ok((status, actions_rx, UploadTask(scheduler)))
}

/// Free bytes on the file system of `dir` (None when unknown).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(s.blocks_available().saturating_mul(s.fragment_size()))
}

fn warn_if_disk_too_small(root: &Path, max_bytes: u64) {
    if let Some(free) = free_bytes(root) {
        let have = free.saturating_add(spool::total_bytes(root));
        if max_bytes > have {
            tracing::warn!(
                spool = %root.display(),
                "[spool] max_bytes = {max_bytes} exceeds the free disk space ({have} bytes with the spool's own): \
                 the disk will fill before the spool limit policy applies"
            );
        }
    }
}

struct Scheduler {
    ctx: Arc<Ctx>,
    status: Arc<UploadStatus>,
    actions: mpsc::UnboundedSender<SpoolAction>,
    /// Reloads' new settings (taken by `run`).
    settings: Option<mpsc::UnboundedReceiver<UploadSettings>>,
    /// Counts settings changes; an upload reports the one it started under.
    generation: u64,
    concurrency: usize,
    backoff: (Duration, Duration),
    rescan: Duration,
    queue_limit: usize,
    retention: Duration,
    max_bytes: u64,
    policy: FullPolicy,
    jitter: Jitter,
    warned: std::collections::HashSet<PathBuf>,
}

impl Scheduler {
    async fn run(mut self) {
        let mut events = self.ctx.shared.events.subscribe();
        let mut rescan = tokio::time::interval(self.rescan);
        let mut tasks: JoinSet<(PathBuf, u64, Outcome)> = JoinSet::new();
        let (_keep, mut settings) = match self.settings.take() {
            Some(rx) => (None, rx),
            // Never: `start` puts it there. A closed channel never fires.
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), rx)
            }
        };
        let mut dirty = true;
        loop {
            if dirty {
                dirty = false;
                self.scan().await;
                self.police();
            }
            self.dispatch(&mut tasks);
            self.update_gauges();
            let wake = self.next_wake(tasks.len());
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(EngineToCtl::SegmentClosed(_)) | Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Closed) => events = self.ctx.shared.events.subscribe(),
                },
                _ = rescan.tick() => dirty = true,
                Some(new) = settings.recv() => {
                    self.reconfigure(new);
                    rescan = tokio::time::interval(self.rescan);
                    dirty = true;
                }
                Some(done) = tasks.join_next() => {
                    if let Ok((path, generation, outcome)) = done {
                        let freed = self.finish(path, generation, outcome);
                        // Room in the queue: segments waiting in the spool come in.
                        if freed && self.status.unqueued() > 0 {
                            dirty = true;
                        }
                        // Space came back: the policy may release recording.
                        if freed && self.status.recording_stopped() {
                            self.police();
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    async fn scan(&mut self) {
        let root = self.ctx.root.clone();
        let Ok(paths) = tokio::task::spawn_blocking(move || spool::manifests(&root)).await else { return };
        let known: std::collections::HashSet<&PathBuf> = paths.iter().collect();
        let mut q = self.status.lock();
        q.retain(|p, j| j.in_flight || known.contains(p));
        // A smaller limit (a reload): the newest waiting segments go back
        // to waiting in the spool only.
        if q.len() > self.queue_limit {
            let mut waiting: Vec<(PathBuf, (i64, String, u64))> =
                q.iter().filter(|(_, j)| !j.in_flight).map(|(p, j)| (p.clone(), order(j))).collect();
            waiting.sort_by(|a, b| b.1.cmp(&a.1));
            let excess = q.len() - self.queue_limit;
            for (path, _) in waiting.into_iter().take(excess) {
                q.remove(&path);
            }
        }
        let n = self.ctx.targets.len();
        let now = Instant::now();
        let candidates = fair_order(&self.ctx.root, paths.iter().filter(|p| !q.contains_key(*p)));
        let mut unqueued = candidates.len();
        for path in candidates {
            if q.len() >= self.queue_limit {
                break;
            }
            unqueued -= 1;
            match spool::load(&self.ctx.root, path) {
                Ok(item) => {
                    let key = spool::object_key(
                        self.ctx.targets.first().map_or("", |t| t.bucket.prefix.as_str()),
                        &item.manifest,
                    );
                    q.insert(
                        path.clone(),
                        Job {
                            item,
                            key,
                            attempts: 0,
                            next: now,
                            in_flight: false,
                            done: vec![false; n],
                            sent: Arc::new(AtomicU64::new(0)),
                            last_error: None,
                        },
                    );
                }
                Err(e) => {
                    if self.warned.insert(path.clone()) {
                        tracing::warn!("spool: {e}; left in place");
                        let _ = self.status.events.send(UploadEvent::Alarm {
                            kind: "quarantine",
                            job: String::new(),
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
        self.status.unqueued.store(unqueued as u64, Relaxed);
    }

    /// Takes new targets and settings: every segment not in flight starts
    /// over on the new targets (its key follows the new first target's
    /// prefix); uploads in flight finish on the old ones ([`Self::finish`]
    /// sees their generation).
    fn reconfigure(&mut self, new: UploadSettings) {
        let m = &self.ctx.shared.metrics.upload;
        let names = new.names();
        for old in &self.ctx.targets {
            if !names.contains(&old.bucket.name) {
                m.breaker_state.remove(&TargetLabel { target: old.bucket.name.clone() });
            }
        }
        for name in &names {
            m.breaker_state.get_or_create(&TargetLabel { target: name.clone() }).set(0);
        }
        m.queue_limit.set(new.queue_limit as i64);
        self.generation += 1;
        {
            let mut q = self.status.lock();
            let prefix = new.targets.first().map_or("", |t| t.bucket.prefix.as_str());
            let now = Instant::now();
            for job in q.values_mut().filter(|j| !j.in_flight) {
                restart_job(job, prefix, names.len(), now);
            }
        }
        if let Ok(mut t) = self.status.targets.lock() {
            t.clone_from(&names);
        }
        if let Ok(mut b) = self.status.breakers_open.lock() {
            b.clear();
        }
        self.status.queue_limit.store(new.queue_limit as u64, Relaxed);
        self.ctx = Arc::new(Ctx {
            root: self.ctx.root.clone(),
            targets: new.targets,
            plan: new.plan,
            retain: self.ctx.retain,
            shared: self.ctx.shared.clone(),
        });
        self.concurrency = new.concurrency;
        self.backoff = new.backoff;
        self.rescan = new.rescan;
        self.queue_limit = new.queue_limit;
        tracing::info!(
            targets = ?names,
            "uploads reconfigured: waiting segments go to the new targets, uploads in flight finish on the old ones"
        );
    }

    fn dispatch(&mut self, tasks: &mut JoinSet<(PathBuf, u64, Outcome)>) {
        if self.ctx.targets.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut q = self.status.lock();
        let free = self.concurrency.saturating_sub(tasks.len());
        if free == 0 {
            return;
        }
        let mut due: Vec<(&PathBuf, (i64, String, u64))> =
            q.iter().filter(|(_, j)| !j.in_flight && j.next <= now).map(|(p, j)| (p, order(j))).collect();
        due.sort_by(|a, b| a.1.cmp(&b.1));
        let picked: Vec<PathBuf> = due.into_iter().take(free).map(|(p, _)| p.clone()).collect();
        for path in picked {
            let Some(job) = q.get_mut(&path) else { continue };
            job.in_flight = true;
            job.sent.store(0, Relaxed);
            let ctx = self.ctx.clone();
            let item = job.item.clone();
            let key = job.key.clone();
            let done = job.done.clone();
            let sent = job.sent.clone();
            let generation = self.generation;
            tasks.spawn(async move {
                let outcome = upload(&ctx, &item, &key, done, &sent).await;
                (path, generation, outcome)
            });
        }
    }

    /// Applies an outcome; returns true when the segment left the spool.
    /// An upload started before a reconfiguration that did not store the
    /// segment starts over on the new targets.
    fn finish(&mut self, path: PathBuf, generation: u64, outcome: Outcome) -> bool {
        let m = &self.ctx.shared.metrics.upload;
        let mut q = self.status.lock();
        let Some(job) = q.get_mut(&path) else { return false };
        job.in_flight = false;
        if generation != self.generation
            && matches!(outcome, Outcome::Failed { .. } | Outcome::Deferred { .. })
        {
            let prefix = self.ctx.targets.first().map_or("", |t| t.bucket.prefix.as_str());
            restart_job(job, prefix, self.ctx.targets.len(), Instant::now());
            return false;
        }
        let mut open = Vec::new();
        for t in &self.ctx.targets {
            let code = t.breaker.lock().map_or(0, |b| b.state().code());
            m.breaker_state.get_or_create(&TargetLabel { target: t.bucket.name.clone() }).set(code);
            // Half-open is still open for health: only the probe may go,
            // and a slow probe (a server that accepts and never answers)
            // must not make the reason flicker away while it waits.
            if code != 0 {
                open.push(t.bucket.name.clone());
            }
        }
        if let Ok(mut b) = self.status.breakers_open.lock() {
            *b = open;
        }
        match outcome {
            Outcome::Uploaded => {
                let Some(job) = q.remove(&path) else { return false };
                m.ok.inc();
                m.bytes.inc_by(job.item.manifest.bytes);
                let at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                if let Ok(mut l) = self.status.last.lock() {
                    *l = Some(LastUpload { key: job.key.clone(), bytes: job.item.manifest.bytes, at_ms });
                }
                tracing::info!(key = %job.key, bytes = job.item.manifest.bytes, "uploaded and verified");
                let _ = self.status.events.send(UploadEvent::Uploaded {
                    job: job.item.manifest.job.to_string(),
                    sequence: job.item.manifest.sequence,
                    key: job.key,
                });
                true
            }
            Outcome::Failed { error, done, breaker_opened } => {
                job.done = done;
                let delay =
                    backoff_delay(job.attempts, self.backoff.0, self.backoff.1, self.jitter.next_u64());
                job.attempts += 1;
                job.next = Instant::now() + delay;
                m.failed.inc();
                m.retried.inc();
                tracing::warn!(key = %job.key, attempt = job.attempts, "upload failed, retry in {delay:?}: {error}");
                job.last_error = Some(error.clone());
                let name = job.item.manifest.job.to_string();
                if let Some(target) = breaker_opened {
                    let _ = self.status.events.send(UploadEvent::Alarm {
                        kind: "upload_failing",
                        job: name,
                        message: format!("s3 target {target}: circuit breaker open: {error}"),
                    });
                }
                false
            }
            Outcome::Deferred { wait, done } => {
                job.done = done;
                job.next = Instant::now() + wait;
                false
            }
            Outcome::Quarantined(message) => {
                let name = job.item.manifest.job.to_string();
                q.remove(&path);
                m.quarantined.inc();
                tracing::error!("{message}");
                let _ =
                    self.status.events.send(UploadEvent::Alarm { kind: "quarantine", job: name, message });
                true
            }
            Outcome::Conflict(message) => {
                let name = job.item.manifest.job.to_string();
                q.remove(&path);
                m.conflicts.inc();
                m.quarantined.inc();
                tracing::error!("{message}");
                let _ = self.status.events.send(UploadEvent::Alarm {
                    kind: "upload_conflict",
                    job: name,
                    message,
                });
                true
            }
            Outcome::Orphan => {
                q.remove(&path);
                true
            }
        }
    }

    fn next_wake(&self, in_flight: usize) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        if in_flight >= self.concurrency || self.ctx.targets.is_empty() {
            return far;
        }
        self.status.lock().values().filter(|j| !j.in_flight).map(|j| j.next).min().unwrap_or(far).min(far)
    }

    fn update_gauges(&self) {
        let m = &self.ctx.shared.metrics.upload;
        if self.ctx.targets.is_empty() {
            // Uploads are off: nothing waits for one, nothing lags.
            m.queue_segments.set(0);
            m.unqueued_segments.set(0);
            m.queue_bytes.set(0);
            m.lag_seconds.set(0.0);
            return;
        }
        let q = self.status.lock();
        let unqueued = i64::try_from(self.status.unqueued()).unwrap_or(i64::MAX);
        m.queue_segments.set((q.len() as i64).saturating_add(unqueued));
        m.unqueued_segments.set(unqueued);
        m.queue_bytes.set(q.values().map(|j| j.item.manifest.bytes as i64).sum());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let oldest = q.values().map(|j| j.item.manifest.utc_start_ms).min();
        m.lag_seconds.set(oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0));
    }
}

/// A queued segment as if new, for other targets: no target has it, its
/// key follows `prefix`, it is due now.
fn restart_job(job: &mut Job, prefix: &str, targets: usize, now: Instant) {
    job.key = spool::object_key(prefix, &job.item.manifest);
    job.done = vec![false; targets];
    job.attempts = 0;
    job.next = now;
    job.last_error = None;
}

/// The order in which segments not queued yet come into the queue: the
/// oldest of each job first (spool paths sort by time within a job), jobs
/// in turn, so that one job's backlog does not hold another's back.
fn fair_order<'a>(root: &Path, paths: impl Iterator<Item = &'a PathBuf>) -> Vec<&'a PathBuf> {
    let mut by_job: BTreeMap<std::ffi::OsString, std::collections::VecDeque<&'a PathBuf>> = BTreeMap::new();
    for p in paths {
        let job = p
            .strip_prefix(root)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_owned())
            .unwrap_or_default();
        by_job.entry(job).or_default().push_back(p);
    }
    let mut order = Vec::new();
    loop {
        let before = order.len();
        for queue in by_job.values_mut() {
            if let Some(p) = queue.pop_front() {
                order.push(p);
            }
        }
        if order.len() == before {
            return order;
        }
    }
}

#[cfg(test)]
mod tests;
