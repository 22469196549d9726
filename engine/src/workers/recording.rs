//! File recordings are never truncated, replaced or deleted by a rebuild, a
//! restart or a failed build: each run writes a new file.
//!
//! [`create_new`] opens the configured path only if nothing is there
//! (`O_CREAT | O_EXCL`); when a file exists (an earlier run, a crash, the
//! recording of the graph this one replaces) the new recording goes beside
//! it under a rotation name, `<stem>-<UTC yyyymmddThhmmssZ>.<ext>`
//! (`show.ogg` → `show-20261202T131500Z.ogg`), with `-2`, `-3`, … added
//! when that is taken too. [`RecordingNotice`] announces a closed recording
//! (path, duration, size, SHA-256) as an [`EngineToCtl::RecordingClosed`].
//!
//! Control thread (opening) and recorder worker threads (announcing).

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use airlift_ipc::message::{EngineToCtl, RecordingClosed};
use airlift_ipc::units::Name;
use sha2::{Digest, Sha256};

use crate::archive::spool::SpoolEvents;

/// Creates a new file for a recording configured at `path`: `path` itself
/// when nothing is there, else the first free rotation name beside it
/// (logged). Returns the file and where it is. Control thread only.
pub fn create_new(path: &Path) -> std::io::Result<(File, PathBuf)> {
    match File::create_new(path) {
        Ok(file) => return Ok((file, path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let stamp = utc_stamp(SystemTime::now());
    for n in 1u32..1000 {
        let candidate = rotation_name(path, &stamp, n);
        match File::create_new(&candidate) {
            Ok(file) => {
                tracing::info!(
                    configured = %path.display(),
                    file = %candidate.display(),
                    "recording file exists; recording into a new file beside it"
                );
                return Ok((file, candidate));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "999 rotation names of this recording exist"))
}

/// `<stem>-<stamp>.<ext>` beside `path` (`-<stamp>-<n>` for `n` > 1).
pub fn rotation_name(path: &Path, stamp: &str, n: u32) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = if n > 1 { format!("-{n}") } else { String::new() };
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{stamp}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{stamp}{suffix}"),
    };
    path.with_file_name(name)
}

/// `yyyymmddThhmmssZ` of `t` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (y, m, d) = crate::archive::spool::civil(secs * 1000);
    let day = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", day / 3600, day % 3600 / 60, day % 60)
}

/// Announces a recording once its worker has closed the file.
#[derive(Debug, Clone)]
pub struct RecordingNotice {
    /// Where the announcement goes.
    pub events: SpoolEvents,
    /// The flow.
    pub flow: Name,
    /// The output.
    pub output: Name,
    /// The file actually written.
    pub path: PathBuf,
    /// Sample rate and channels of the bus, to turn samples into time.
    pub rate: u32,
    /// Bus channels.
    pub channels: usize,
}

impl RecordingNotice {
    /// Hashes the closed file (streaming) and queues the event for
    /// `samples` interleaved samples recorded. Worker thread.
    pub fn announce(&self, samples: u64) {
        let (bytes, sha256) = match hash_file(&self.path) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(file = %self.path.display(), "cannot read the closed recording back: {e}");
                return;
            }
        };
        let frames = samples / self.channels.max(1) as u64;
        let duration_ms = frames * 1000 / u64::from(self.rate.max(1));
        tracing::info!(flow = %self.flow, output = %self.output, file = %self.path.display(), duration_ms, bytes, "recording closed");
        self.events.push(EngineToCtl::RecordingClosed(RecordingClosed {
            flow: self.flow.clone(),
            output: self.output.clone(),
            path: self.path.display().to_string(),
            duration_ms,
            bytes,
            sha256,
        }));
    }
}

/// Size and SHA-256 (lowercase hex) of a file, read in blocks.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
        bytes += n as u64;
    }
    let digest = hasher.finalize();
    Ok((bytes, digest.iter().map(|b| format!("{b:02x}")).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_names_keep_the_extension() {
        let p = Path::new("/rec/show.ogg");
        assert_eq!(rotation_name(p, "20261202T131500Z", 1), Path::new("/rec/show-20261202T131500Z.ogg"));
        assert_eq!(rotation_name(p, "20261202T131500Z", 3), Path::new("/rec/show-20261202T131500Z-3.ogg"));
        assert_eq!(rotation_name(Path::new("take"), "X", 1), Path::new("take-X"));
    }

    #[test]
    fn utc_stamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_208_000 + 3_723);
        assert_eq!(utc_stamp(t), "20240229T130203Z");
    }

    #[test]
    fn an_existing_file_is_never_opened_again() {
        let dir = std::env::temp_dir().join(format!("airlift-rot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("show.wav");
        std::fs::write(&path, b"earlier run").unwrap();
        let (_, first) = create_new(&path).unwrap();
        let (_, second) = create_new(&path).unwrap();
        assert_ne!(first, path);
        assert_ne!(second, first);
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier run");
        let _ = std::fs::remove_dir_all(dir);
    }
}
