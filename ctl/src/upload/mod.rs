//! Durable uploads from the spool to S3: nothing recorded is ever lost.
//!
//! # Layout
//!
//! - [`spool`]: the spool is the queue. Manifests on disk are the work list
//!   (no in-memory-only state); object keys are fixed from the manifest, so
//!   a retry or a restart overwrites the same key and never duplicates.
//! - [`s3`]: one `[[s3]]` target through the `minio` crate: PUT with
//!   `x-amz-checksum-sha256` (verified by the server), multipart above
//!   `[upload] multipart_threshold`, then HEAD (size) and read-back (SHA-256).
//! - [`breaker`]: circuit breaker per target, exponential backoff with jitter.
//! - [`queue`]: the scheduler task: rescans, dispatches with bounded
//!   concurrency, applies the spool limit policy, feeds metrics and events.
//!
//! A segment leaves the spool (deleted, or moved to `<spool>/retained/`)
//! only after every target stored it and the stored bytes were checked.

pub mod breaker;
pub mod queue;
pub mod s3;
pub mod spool;

use std::path::PathBuf;

pub use queue::{LastUpload, SpoolAction, UploadEntry, UploadEvent, UploadStatus, UploadTask, start};

/// What went wrong with one upload; every variant is retried except
/// [`UploadError::Corrupt`] (quarantined) and configuration errors.
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
    /// The stored object differs from the segment; uploaded again.
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
}
