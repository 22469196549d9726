//! One upload attempt of one segment: the local bytes checked against the
//! manifest, then the segment and its manifest written once to every target
//! still missing them (looked for first, compared instead of written over).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Ctx, Outcome};
use crate::upload::UploadError;
use crate::upload::breaker::Admission;
use crate::upload::s3::{PutOutcome, PutPlan, S3Bucket, StoredObject};
use crate::upload::spool::{self, SpoolItem};

/// One attempt at one segment on every target still missing it.
pub(super) async fn upload(
    ctx: &Ctx,
    item: &SpoolItem,
    key: &str,
    mut done: Vec<bool>,
    sent: &AtomicU64,
) -> Outcome {
    let m = &item.manifest;
    let multipart = m.bytes >= ctx.plan.multipart_threshold;
    // The local bytes must still be what the manifest says.
    let segment = item.segment_path.clone();
    let local = tokio::task::spawn_blocking(move || -> std::io::Result<(Option<Bytes>, String, u64)> {
        if multipart {
            let (sha, n) = spool::hash_file(&segment)?;
            Ok((None, sha, n))
        } else {
            let data = std::fs::read(&segment)?;
            let sha = spool::hex(&Sha256::digest(&data));
            let n = data.len() as u64;
            Ok((Some(Bytes::from(data)), sha, n))
        }
    })
    .await;
    let (data, sha, len) = match local {
        Ok(Ok(v)) => v,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                manifest = %item.manifest_path.display(),
                "segment gone (finished before a restart, or removed): manifest removed"
            );
            let _ = spool::forget_orphan(item);
            return Outcome::Orphan;
        }
        Ok(Err(e)) => {
            return failed(UploadError::Io { path: item.segment_path.clone(), source: e }, done, None);
        }
        Err(e) => return failed(UploadError::S3 { op: "read", message: e.to_string() }, done, None),
    };
    if sha != m.sha256.to_ascii_lowercase() || len != m.bytes {
        let err = UploadError::Corrupt {
            path: item.segment_path.clone(),
            expected: m.sha256.clone(),
            actual: sha,
            bytes: len,
        };
        return match spool::quarantine(&ctx.root, item) {
            Ok(to) => Outcome::Quarantined(format!("{err}; quarantined as {}", to.display())),
            Err(e) => failed(e, done, None),
        };
    }
    let manifest_bytes = match tokio::fs::read(&item.manifest_path).await {
        Ok(b) => Bytes::from(b),
        Err(e) => return failed(UploadError::Io { path: item.manifest_path.clone(), source: e }, done, None),
    };
    let manifest_sha = spool::hex(&Sha256::digest(&manifest_bytes));
    for (i, target) in ctx.targets.iter().enumerate() {
        if done[i] {
            continue;
        }
        let admission = match target.breaker.lock() {
            Ok(mut b) => b.admit(Instant::now()),
            Err(_) => Admission::Go,
        };
        if let Admission::Wait(wait) = admission {
            return Outcome::Deferred { wait, done };
        }
        let b = &target.bucket;
        let key = rekey(key, &ctx.targets[0].bucket.prefix, &b.prefix);
        let mkey = spool::manifest_key(&key);
        let attempt = async {
            let body = match &data {
                Some(d) => Body::Bytes(d.clone()),
                None => Body::File(&item.segment_path),
            };
            let progress = |n: u64| sent.store(n, Relaxed);
            let segment = put_once(b, &key, body, len, &sha, &ctx.plan, &progress).await?;
            sent.store(len, Relaxed);
            let manifest = Body::Bytes(manifest_bytes.clone());
            let mlen = manifest_bytes.len() as u64;
            let man = put_once(b, &mkey, manifest, mlen, &manifest_sha, &ctx.plan, &|_| {}).await?;
            Ok::<_, UploadError>([segment, man])
        };
        match attempt.await {
            Ok(placed) => {
                if let Ok(mut br) = target.breaker.lock()
                    && br.success()
                {
                    tracing::info!(target = %b.name, "s3 target reachable again: circuit breaker closed");
                }
                for (k, p) in [&key, &mkey].into_iter().zip(placed) {
                    if p == Placed::AlreadyThere {
                        tracing::info!(
                            target = %b.name, key = %k,
                            "already stored with the same SHA-256 (an earlier attempt): not written again"
                        );
                    }
                }
                done[i] = true;
            }
            Err(e @ UploadError::Conflict { .. }) => {
                // The target answered: a conflict is not an outage.
                if let Ok(mut br) = target.breaker.lock() {
                    br.success();
                }
                return match spool::quarantine(&ctx.root, item) {
                    Ok(to) => {
                        Outcome::Conflict(format!("{e}; local segment quarantined as {}", to.display()))
                    }
                    Err(q) => failed(q, done, None),
                };
            }
            Err(e) => {
                let opened = target.breaker.lock().is_ok_and(|mut br| br.failure(Instant::now()));
                if opened {
                    tracing::error!(target = %b.name, "circuit breaker open: {e}");
                }
                return failed(e, done, opened.then(|| b.name.clone()));
            }
        }
    }
    match spool::finish(&ctx.root, item, ctx.retain) {
        Ok(()) => Outcome::Uploaded,
        Err(e) => failed(e, done, None),
    }
}

/// The key of the same segment under another target's prefix.
pub(super) fn rekey(key: &str, first_prefix: &str, prefix: &str) -> String {
    let first = first_prefix.trim_matches('/');
    let rest = if first.is_empty() {
        key
    } else {
        key.strip_prefix(first).map_or(key, |r| r.trim_start_matches('/'))
    };
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { rest.to_string() } else { format!("{prefix}/{rest}") }
}

/// The bytes of one object to write.
enum Body<'a> {
    /// In memory (a small segment, a manifest).
    Bytes(Bytes),
    /// A segment file, sent in parts.
    File(&'a Path),
}

/// How one object reached a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placed {
    /// Written now, and verified.
    Stored,
    /// Already there with the same SHA-256 (an earlier attempt): not written.
    AlreadyThere,
}

/// Writes `key` once: looks first (HEAD), writes only where nothing is
/// (conditionally, `If-None-Match: *`, in case another writer comes in
/// between), and compares whatever it finds instead of writing over it.
/// Another object under the key is [`UploadError::Conflict`].
async fn put_once(
    b: &S3Bucket,
    key: &str,
    body: Body<'_>,
    len: u64,
    sha: &str,
    plan: &PutPlan,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Placed, UploadError> {
    let mut found = b.existing(key, len, sha, plan).await?;
    if found == StoredObject::Missing {
        let put = match body {
            Body::Bytes(d) => b.put_small(key, d, sha, plan.timeout).await?,
            Body::File(path) => b.put_multipart(key, path, len, plan, progress).await?,
        };
        if put == PutOutcome::Stored {
            b.verify(key, len, sha, plan).await?;
            return Ok(Placed::Stored);
        }
        // Refused as existing: someone wrote it between our HEAD and PUT.
        found = b.existing(key, len, sha, plan).await?;
    }
    match found {
        StoredObject::Same => Ok(Placed::AlreadyThere),
        StoredObject::Different { bytes, sha256 } => Err(UploadError::Conflict {
            target: b.name.clone(),
            key: key.to_string(),
            stored_bytes: bytes,
            stored_sha256: sha256,
            bytes: len,
            sha256: sha.to_string(),
        }),
        StoredObject::Missing => Err(UploadError::S3 {
            op: "put",
            message: format!("{key}: refused as existing, yet no object is there; retried"),
        }),
    }
}

fn failed(e: UploadError, done: Vec<bool>, breaker_opened: Option<String>) -> Outcome {
    Outcome::Failed { error: e.to_string(), done, breaker_opened }
}
