//! The spool limit policy (`[spool] max_bytes`, `full_policy`) and the
//! expiry of retained segments, applied by the scheduler after each scan and
//! when an upload frees space while recording is stopped.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

use super::{Scheduler, SpoolAction, UploadEvent, free_bytes, order};
use crate::config::FullPolicy;
use crate::upload::spool;

/// Free space below which the disk counts as full (ENOSPC is near).
const DISK_RESERVE: u64 = 64 << 20;

impl Scheduler {
    /// The spool limit policy; also expires retained segments.
    pub(super) fn police(&mut self) {
        let root = &self.ctx.root;
        if !self.retention.is_zero() {
            spool::expire_retained(root, self.retention);
        }
        let mut total = spool::total_bytes(root);
        let disk_full = free_bytes(root).is_some_and(|f| f < DISK_RESERVE);
        if total > self.max_bytes || disk_full {
            // Retained copies are already in S3: they go first.
            for (p, _, len) in spool::retained(root) {
                if total <= self.max_bytes && !disk_full {
                    break;
                }
                if std::fs::remove_file(&p).is_ok() {
                    total = total.saturating_sub(len);
                }
            }
        }
        let full =
            total > self.max_bytes || (disk_full && free_bytes(root).is_some_and(|f| f < DISK_RESERVE));
        let m = &self.ctx.shared.metrics.upload;
        m.spool_full.set(i64::from(full));
        match self.policy {
            FullPolicy::DropOldest if full => {
                let mut q = self.status.lock();
                let mut waiting: Vec<(PathBuf, (i64, String, u64))> =
                    q.iter().filter(|(_, j)| !j.in_flight).map(|(p, j)| (p.clone(), order(j))).collect();
                waiting.sort_by(|a, b| a.1.cmp(&b.1));
                let mut still_full = full;
                for (path, _) in waiting {
                    if !still_full {
                        break;
                    }
                    let Some(job) = q.get(&path) else { continue };
                    let freed = job.item.bytes_on_disk();
                    let key = job.key.clone();
                    let name = job.item.manifest.job.to_string();
                    match spool::drop_item(&job.item) {
                        Ok(()) => {
                            q.remove(&path);
                            total = total.saturating_sub(freed);
                            m.dropped.inc();
                            tracing::error!(%key, "spool over its limit: dropped a segment that was not uploaded");
                            let _ = self.status.events.send(UploadEvent::Alarm {
                                kind: "spool_full",
                                job: name,
                                message: format!(
                                    "spool over {} bytes: dropped {key} before upload",
                                    self.max_bytes
                                ),
                            });
                        }
                        Err(e) => tracing::error!("spool over its limit, cannot drop {key}: {e}"),
                    }
                    still_full = total > self.max_bytes || free_bytes(root).is_some_and(|f| f < DISK_RESERVE);
                }
                m.spool_full.set(i64::from(still_full));
            }
            FullPolicy::StopRecording => {
                let stopped = self.status.recording_stopped();
                // Resume with some hysteresis, so recording does not flap.
                let below = total <= self.max_bytes / 10 * 9 && !disk_full;
                if full && !stopped {
                    self.status.recording_stopped.store(true, Relaxed);
                    m.recording_stopped.set(1);
                    let message = if disk_full {
                        "disk full: recording stopped until uploads free space".to_string()
                    } else {
                        format!("spool {total} bytes over its limit {}: recording stopped", self.max_bytes)
                    };
                    tracing::error!("{message}");
                    let _ = self.status.events.send(UploadEvent::Alarm {
                        kind: "spool_full",
                        job: String::new(),
                        message,
                    });
                    let _ = self.actions.send(SpoolAction::StopRecording);
                } else if stopped && below {
                    self.status.recording_stopped.store(false, Relaxed);
                    m.recording_stopped.set(0);
                    let message = format!("spool {total} bytes, below 90% of its limit: recording resumed");
                    tracing::warn!("{message}");
                    let _ = self.status.events.send(UploadEvent::Alarm {
                        kind: "spool_full",
                        job: String::new(),
                        message,
                    });
                    let _ = self.actions.send(SpoolAction::ResumeRecording);
                }
            }
            FullPolicy::DropOldest => {}
        }
    }
}
