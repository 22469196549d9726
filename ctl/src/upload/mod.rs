//! Durable uploads from the spool to S3: nothing recorded is ever lost.
//!
//! # Layout
//!
//! - [`spool`]: the spool is the queue. Manifests on disk are the work list
//!   (no in-memory-only state); object keys are fixed from the manifest, so
//!   a retry or a restart finds its own earlier object and never duplicates.
//! - [`s3`]: one `[[s3]]` target through the `minio` crate: HEAD, then PUT
//!   with `If-None-Match: *` and `x-amz-checksum-sha256` (verified by the
//!   server), multipart above `[upload] multipart_threshold`, then HEAD
//!   (size) and read-back (SHA-256).
//! - [`breaker`]: circuit breaker per target, exponential backoff with jitter.
//! - [`spool_lock`]: one ctld per spool (`flock` on `<spool>/.ctld.lock`).
//! - [`queue`]: the scheduler task: rescans, dispatches with bounded
//!   concurrency, applies the spool limit policy, feeds metrics and events.
//!
//! A segment leaves the spool (deleted, or moved to `<spool>/retained/`)
//! only after every target stored it and the stored bytes were checked.
//!
//! An S3 key is written once. An object already under a segment's (or its
//! manifest's) key with the same SHA-256 counts as uploaded (an earlier
//! attempt stored it); one with other bytes is a conflict: it is left as it
//! is, the local segment and manifest go to `<spool>/quarantine/`, and an
//! `upload_conflict` alarm is raised and counted
//! (`airlift_upload_conflicts_total`). Nothing moved into `retained/` or
//! `quarantine/` replaces a file there: a taken name is numbered
//! (`x.1.ts`, `x.1.json`).

pub mod breaker;
pub mod queue;
pub mod s3;
pub mod spool;
pub mod spool_lock;

use std::path::PathBuf;

pub use queue::{
    LastUpload, SpoolAction, UploadEntry, UploadEvent, UploadSettings, UploadStatus, UploadTask, start,
};

/// What went wrong with one upload; every variant is retried except
/// [`UploadError::Corrupt`] and [`UploadError::Conflict`] (quarantined) and
/// configuration errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// A spool file could not be read, moved or deleted; retried later.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest is unreadable or inconsistent; it is left alone and reported.
    #[error("manifest {}: {message}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A target is misconfigured (endpoint, region, credentials); fix the config.
    #[error("s3 target {target}: {message}")]
    Target {
        /// The target's name.
        target: String,
        /// What is wrong (never the secret).
        message: String,
    },
    /// The server refused or the connection failed; retried with backoff.
    #[error("S3 {op}: {message}")]
    S3 {
        /// The operation.
        op: &'static str,
        /// The server's or the client's message.
        message: String,
    },
    /// A request took longer than `[upload] request_timeout_secs`; retried.
    #[error("S3 {op}: timed out")]
    Timeout {
        /// The operation.
        op: &'static str,
    },
    /// The object just stored differs from the segment; retried: the next
    /// attempt reads the object again and, if the difference is confirmed,
    /// it is a [`UploadError::Conflict`] (never written over).
    #[error("verification of {key} failed: {message}")]
    Mismatch {
        /// The object key.
        key: String,
        /// How it differs.
        message: String,
    },
    /// The local segment no longer matches its manifest; it is quarantined.
    #[error("{}: SHA-256 {actual} ({bytes} bytes) does not match the manifest's {expected}", path.display())]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// SHA-256 in the manifest.
        expected: String,
        /// SHA-256 of the file.
        actual: String,
        /// Size of the file.
        bytes: u64,
    },
    /// Another object is already stored under the key: it is never written
    /// over; the local segment and manifest are quarantined and an alarm is
    /// raised. Someone must decide which copy is right.
    #[error(
        "s3 target {target}: {key} already holds another object ({stored_bytes} bytes, SHA-256 {}) than ours \
         ({bytes} bytes, SHA-256 {sha256}): not written over",
        stored_sha256.as_deref().unwrap_or("not read: the size differs")
    )]
    Conflict {
        /// The target's name.
        target: String,
        /// The object key.
        key: String,
        /// Size of the stored object.
        stored_bytes: u64,
        /// SHA-256 of the stored object, when it was read.
        stored_sha256: Option<String>,
        /// Size of ours.
        bytes: u64,
        /// SHA-256 of ours.
        sha256: String,
    },
}
