//! One `[[s3]]` target through the `minio` crate: put with a checksum the
//! server verifies, multipart above a threshold, then read back.
//!
//! Keys are written once. Every write is conditional (`If-None-Match: *`,
//! refused with 412 where the object exists), and [`S3Bucket::existing`]
//! looks (HEAD) before the write, which also covers servers that ignore the
//! condition. An object found under a key is compared with the local bytes,
//! never written over.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use minio::s3::builders::{PutObject, UploadPart};
use minio::s3::client::{MinioClient, MinioClientBuilder};
use minio::s3::creds::StaticProvider;
use minio::s3::error::{Error as MinioError, NetworkError, S3ServerError};
use minio::s3::header_constants::{IF_NONE_MATCH, X_AMZ_CHECKSUM_SHA256};
use minio::s3::http::BaseUrl;
use minio::s3::multimap_ext::{Multimap, MultimapExt};
use minio::s3::response_traits::HasEtagFromHeaders;
use minio::s3::segmented_bytes::SegmentedBytes;
use minio::s3::types::S3Api;
use minio::s3::types::basic_types::PartInfo;
use minio::s3::types::minio_error_response::MinioErrorCode;
use minio::s3::types::typed_parameters::{BucketName, ObjectKey};
use minio::s3::utils::ChecksumAlgorithm;
use sha2::{Digest, Sha256};

use super::UploadError;
use crate::config::S3Target;

/// Access key and secret of a target. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Access key id.
    pub access_key: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses `ACCESS:SECRET` (surrounding white space ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let (a, s) = text.trim().split_once(':')?;
        (!a.is_empty() && !s.is_empty()).then(|| Self { access_key: a.into(), secret: s.into() })
    }

    /// From `credentials_file` (resolved against `base_dir`), else
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`. Errors never contain
    /// the secret.
    pub fn load(target: &S3Target, base_dir: &Path) -> Result<Self, UploadError> {
        let name = target.name.to_string();
        if let Some(file) = &target.credentials_file {
            let path = file.resolve(base_dir);
            let text = std::fs::read_to_string(&path)
                .map_err(|source| UploadError::Io { path: path.clone(), source })?;
            return Self::parse(&text).ok_or_else(|| UploadError::Target {
                target: name,
                message: format!("{} must hold ACCESS_KEY:SECRET_KEY", path.display()),
            });
        }
        match (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
            (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => Ok(Self { access_key: a, secret: s }),
            _ => Err(UploadError::Target {
                target: name,
                message: "no credentials_file and no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".into(),
            }),
        }
    }
}

/// Sizes that choose between one PUT and a multipart upload.
#[derive(Debug, Clone, Copy)]
pub struct PutPlan {
    /// Objects at least this large go in parts.
    pub multipart_threshold: u64,
    /// Part size.
    pub part_size: u64,
    /// Objects up to this size are read back and hashed after the upload.
    pub read_back_max: u64,
    /// Timeout of one request.
    pub timeout: Duration,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was created.
    Stored,
    /// The server refused: an object already exists under the key (412).
    Exists,
}

/// What is stored under a key, compared with the bytes we would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredObject {
    /// Nothing: the key is free.
    Missing,
    /// An object with the same size and SHA-256.
    Same,
    /// An object with other bytes: it is never written over.
    Different {
        /// Its size.
        bytes: u64,
        /// Its SHA-256 (lowercase hex), when it was read (not when the size
        /// already differs).
        sha256: Option<String>,
    },
}

/// A connected S3 target. `Debug` shows no credentials.
#[derive(Clone)]
pub struct S3Bucket {
    /// The target's name.
    pub name: String,
    /// Key prefix.
    pub prefix: String,
    bucket: String,
    client: MinioClient,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Bucket")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn s3_err(op: &'static str) -> impl FnOnce(minio::s3::error::Error) -> UploadError {
    move |e| UploadError::S3 { op, message: chain(&e) }
}

/// True when the server refused a conditional write because the object
/// exists (`412 Precondition Failed`, with or without an XML body).
fn precondition_failed(e: &MinioError) -> bool {
    match e {
        MinioError::S3Server(S3ServerError::S3Error(r)) => {
            // minio keeps unknown codes lowercased.
            matches!(r.code(), MinioErrorCode::OtherError(c) if c.eq_ignore_ascii_case("PreconditionFailed"))
        }
        MinioError::S3Server(S3ServerError::HttpError(412, _))
        | MinioError::Network(NetworkError::ServerError(412)) => true,
        MinioError::S3Server(S3ServerError::InvalidServerResponse { http_status_code, .. }) => {
            *http_status_code == 412
        }
        _ => false,
    }
}

/// What a HEAD found.
enum Head {
    /// An object of this size.
    Size(u64),
    /// No object (404).
    Missing,
    /// The server would not say (403), with its message.
    Denied(String),
}

/// True when the server refused the request (403).
fn access_denied(e: &MinioError) -> bool {
    matches!(e, MinioError::S3Server(S3ServerError::S3Error(r)) if r.code() == MinioErrorCode::AccessDenied)
}

/// True when the server says the key holds no object.
fn no_such_key(e: &MinioError) -> bool {
    matches!(e, MinioError::S3Server(S3ServerError::S3Error(r)) if r.code() == MinioErrorCode::NoSuchKey)
}

fn v_err(op: &'static str) -> impl FnOnce(minio::s3::error::ValidationErr) -> UploadError {
    move |e| UploadError::S3 { op, message: chain(&e) }
}

/// An error with its causes, `outer: inner: …`. minio's own messages are
/// generic ("Network error occurred"); the cause — connection refused, an
/// unknown certificate issuer — is in the chain.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    airlift_ipc::report::chain_text(e)
}

async fn timed<T>(
    op: &'static str,
    limit: Duration,
    f: impl Future<Output = Result<T, UploadError>>,
) -> Result<T, UploadError> {
    tokio::time::timeout(limit, f).await.map_err(|_| UploadError::Timeout { op })?
}

fn b64_sha256(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

impl S3Bucket {
    /// Builds the client of a target (no network traffic).
    pub fn connect(target: &S3Target, base_dir: &Path) -> Result<Self, UploadError> {
        let name = target.name.to_string();
        let bad = |message: String| UploadError::Target { target: name.clone(), message };
        let creds = Credentials::load(target, base_dir)?;
        let mut url: BaseUrl = target.endpoint.parse().map_err(|e| bad(format!("endpoint: {e}")))?;
        url.region = minio::s3::types::typed_parameters::Region::new(target.region.as_str())
            .map_err(|e| bad(format!("region: {e}")))?;
        url.virtual_style = !target.path_style;
        let ca = target.ca_file.as_ref().map(|c| c.resolve(base_dir));
        let client = MinioClientBuilder::new(url)
            .provider(Some(StaticProvider::new(&creds.access_key, &creds.secret, None)))
            .ssl_cert_file(ca.as_deref())
            .skip_region_lookup(true)
            .app_info(Some(("airlift".into(), crate::VERSION.into())))
            .build()
            .map_err(|e| bad(chain(&e)))?;
        Ok(Self { name, prefix: target.prefix.clone(), bucket: target.bucket.clone(), client })
    }

    /// Puts `data` in one request with `x-amz-checksum-sha256` set to
    /// `sha256` (lowercase hex, from the manifest), which the server verifies
    /// against the bytes it receives, and `If-None-Match: *`: an existing
    /// object is never replaced ([`PutOutcome::Exists`]).
    pub async fn put_small(
        &self,
        key: &str,
        data: Bytes,
        sha256: &str,
        timeout: Duration,
    ) -> Result<PutOutcome, UploadError> {
        let raw =
            unhex(sha256).ok_or_else(|| UploadError::S3 { op: "put", message: "bad SHA-256 hex".into() })?;
        let mut headers = Multimap::new();
        headers.add(X_AMZ_CHECKSUM_SHA256, base64::engine::general_purpose::STANDARD.encode(raw));
        headers.add(IF_NONE_MATCH, "*");
        let inner = UploadPart::builder()
            .client(self.client.clone())
            .bucket(BucketName::try_from(self.bucket.as_str()).map_err(v_err("put"))?)
            .object(ObjectKey::try_from(key).map_err(v_err("put"))?)
            .data(Arc::new(SegmentedBytes::from(data)))
            .extra_headers(Some(headers))
            .build();
        let put = PutObject::builder().inner(inner).build();
        timed("put", timeout, async {
            match put.send().await {
                Ok(_) => Ok(PutOutcome::Stored),
                Err(e) if precondition_failed(&e) => Ok(PutOutcome::Exists),
                Err(e) => Err(s3_err("put")(e)),
            }
        })
        .await
    }

    /// The size of the object under `key`, or `None` when there is none (HEAD).
    pub async fn head(&self, key: &str, timeout: Duration) -> Result<Option<u64>, UploadError> {
        match self.head_or_denied(key, timeout).await? {
            Head::Size(n) => Ok(Some(n)),
            Head::Missing => Ok(None),
            Head::Denied(message) => Err(UploadError::S3 { op: "head", message }),
        }
    }

    async fn head_or_denied(&self, key: &str, timeout: Duration) -> Result<Head, UploadError> {
        let stat = self.client.stat_object(self.bucket.as_str(), key).map_err(v_err("head"))?.build();
        timed("head", timeout, async {
            match stat.send().await {
                Ok(head) => head.size().map(Head::Size).map_err(v_err("head")),
                Err(e) if no_such_key(&e) => Ok(Head::Missing),
                Err(e) if access_denied(&e) => Ok(Head::Denied(chain(&e))),
                Err(e) => Err(s3_err("head")(e)),
            }
        })
        .await
    }

    /// Reads the object under `key` and returns its SHA-256 (lowercase hex)
    /// and size. Hashed as it arrives: no copy of the object in memory.
    pub async fn read_sha256(&self, key: &str, timeout: Duration) -> Result<(String, u64), UploadError> {
        let get = self.client.get_object(self.bucket.as_str(), key).map_err(v_err("get"))?.build();
        let (digest, read) = timed("get", timeout, async {
            let r = get.send().await.map_err(s3_err("get"))?;
            let (mut body, _) = r.into_boxed_stream().map_err(s3_err("get"))?;
            let (mut hasher, mut read) = (Sha256::new(), 0u64);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| UploadError::S3 { op: "get", message: chain(&e) })?;
                read += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok((hasher.finalize(), read))
        })
        .await?;
        Ok((super::spool::hex(&digest), read))
    }

    /// What is stored under `key`, compared with `size` bytes of SHA-256
    /// `sha256` (lowercase hex).
    ///
    /// A HEAD answers whether there is an object (a HEAD refused with 403,
    /// as AWS answers for a missing key without `s3:ListBucket`, counts as
    /// [`StoredObject::Missing`]: the conditional write then decides). Its
    /// hash is established by
    /// reading it back whatever its size (streamed; `[upload]
    /// verify_read_back_max` does not apply: a conflict must be proven, not
    /// guessed). A difference counts only when a second look agrees with the
    /// first (the same other size, or the same other SHA-256), so bytes
    /// garbled in transit are never taken for a conflict: then, and when the
    /// object cannot be read, this is an error and the caller retries later —
    /// with nothing written over the object.
    pub async fn existing(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        plan: &PutPlan,
    ) -> Result<StoredObject, UploadError> {
        let unsure = |op: &'static str, message: String| UploadError::S3 { op, message };
        let stored = match self.head_or_denied(key, plan.timeout).await? {
            Head::Size(n) => n,
            // AWS answers a HEAD of a missing key with 403 to credentials
            // without s3:ListBucket: not known to exist, so the conditional
            // write decides (refused where it exists, then looked at again).
            Head::Missing | Head::Denied(_) => return Ok(StoredObject::Missing),
        };
        if stored != size {
            return match self.head(key, plan.timeout).await? {
                Some(again) if again == stored => Ok(StoredObject::Different { bytes: stored, sha256: None }),
                again => Err(unsure(
                    "head",
                    format!(
                        "{key}: two HEADs disagree ({stored} bytes, then {again:?}); looked at again later"
                    ),
                )),
            };
        }
        // A read shorter or longer than the HEAD said is a transport fault, not evidence.
        let read = || async {
            let (sha, n) = self.read_sha256(key, plan.timeout).await?;
            if n == size {
                Ok(sha)
            } else {
                Err(unsure("get", format!("{key}: read {n} bytes of {size}; looked at again later")))
            }
        };
        let first = read().await?;
        if first == sha256 {
            return Ok(StoredObject::Same);
        }
        let second = read().await?;
        if second == sha256 {
            return Ok(StoredObject::Same);
        }
        if first == second {
            return Ok(StoredObject::Different { bytes: size, sha256: Some(first) });
        }
        Err(unsure("get", format!("{key}: two reads disagree; looked at again later")))
    }

    /// Uploads a file in parts, each with `x-amz-checksum-sha256`. The parts
    /// are read from disk one at a time; `progress` gets the bytes sent. The
    /// upload completes with `If-None-Match: *`: an object that appeared
    /// meanwhile is never replaced ([`PutOutcome::Exists`], the parts are
    /// aborted).
    pub async fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        plan: &PutPlan,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, UploadError> {
        let create = self
            .client
            .create_multipart_upload(self.bucket.as_str(), key)
            .map_err(v_err("create multipart upload"))?
            .checksum_algorithm(Some(ChecksumAlgorithm::SHA256))
            .build();
        let created = timed("create multipart upload", plan.timeout, async {
            create.send().await.map_err(s3_err("create multipart upload"))
        })
        .await?;
        let upload_id = created.upload_id().await.map_err(v_err("create multipart upload"))?;
        let result = self.send_parts(key, path, size, plan, upload_id.as_ref(), progress).await;
        if !matches!(result, Ok(PutOutcome::Stored))
            && let Ok(abort) =
                self.client.abort_multipart_upload(self.bucket.as_str(), key, upload_id.to_string())
        {
            let _ = tokio::time::timeout(plan.timeout, abort.build().send()).await;
        }
        result
    }

    async fn send_parts(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        plan: &PutPlan,
        upload_id: &str,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PutOutcome, UploadError> {
        let io = |source| UploadError::Io { path: path.to_path_buf(), source };
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1u16;
        while offset < size {
            let len = plan.part_size.min(size - offset);
            let data = {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    let mut f = std::fs::File::open(&path)?;
                    f.seek(SeekFrom::Start(offset))?;
                    let mut buf = vec![0u8; len as usize];
                    f.read_exact(&mut buf)?;
                    Ok(buf)
                })
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)?
            };
            let checksum = b64_sha256(&data);
            let part = self
                .client
                .upload_part(
                    self.bucket.as_str(),
                    key,
                    upload_id,
                    number,
                    SegmentedBytes::from(Bytes::from(data)),
                )
                .map_err(v_err("upload part"))?
                .checksum_algorithm(Some(ChecksumAlgorithm::SHA256))
                .build();
            let sent = timed("upload part", plan.timeout, async {
                part.send().await.map_err(s3_err("upload part"))
            })
            .await?;
            let etag = sent.etag().map_err(v_err("upload part"))?;
            parts.push(PartInfo::new(number, etag, len, Some((ChecksumAlgorithm::SHA256, checksum))));
            offset += len;
            number = number.checked_add(1).ok_or(UploadError::S3 {
                op: "upload part",
                message: "more than 65535 parts: raise [upload] part_size".into(),
            })?;
            progress(offset);
        }
        let mut headers = Multimap::new();
        headers.add(IF_NONE_MATCH, "*");
        let complete = self
            .client
            .complete_multipart_upload(self.bucket.as_str(), key, upload_id, parts)
            .map_err(v_err("complete multipart upload"))?
            .extra_headers(Some(headers))
            .build();
        timed("complete multipart upload", plan.timeout, async {
            match complete.send().await {
                Ok(_) => Ok(PutOutcome::Stored),
                Err(e) if precondition_failed(&e) => Ok(PutOutcome::Exists),
                Err(e) => Err(s3_err("complete multipart upload")(e)),
            }
        })
        .await
    }

    /// Checks a stored object: its size, and — up to `read_back_max` — its
    /// bytes' SHA-256 (hex) by reading it back.
    pub async fn verify(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        plan: &PutPlan,
    ) -> Result<(), UploadError> {
        let mismatch = |message: String| UploadError::Mismatch { key: key.to_string(), message };
        let stored = self
            .head(key, plan.timeout)
            .await?
            .ok_or_else(|| mismatch("no object under the key after the upload".into()))?;
        if stored != size {
            return Err(mismatch(format!("{stored} bytes stored, {size} expected")));
        }
        if size <= plan.read_back_max {
            let (got, read) = self.read_sha256(key, plan.timeout).await?;
            if read != size {
                return Err(mismatch(format!("{read} bytes read back, {size} expected")));
            }
            if got != sha256 {
                return Err(mismatch(format!("stored SHA-256 {got}, expected {sha256}")));
            }
        }
        Ok(())
    }
}

fn unhex(h: &str) -> Option<Vec<u8>> {
    (h.len().is_multiple_of(2) && h.is_ascii())
        .then(|| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok()).collect())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_hide_the_secret() {
        let c = Credentials::parse(" AK:s3cr3t\n").expect("valid");
        assert_eq!(c.access_key, "AK");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(Credentials::parse("no-colon").is_none());
        assert!(Credentials::parse(":x").is_none());
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0g"), None);
    }

    #[test]
    fn error_messages_carry_their_causes() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let outer = minio::s3::error::Error::from(minio::s3::error::IoError::IOError(inner));
        let text = chain(&outer);
        assert!(text.starts_with("Drive IO error occurred: "), "{text}");
        assert!(text.ends_with("UnknownIssuer"), "{text}");
    }
}
