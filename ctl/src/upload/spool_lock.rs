//! One ctld per spool: an exclusive `flock` on `<spool>/.ctld.lock`, taken
//! at start-up before anything touches the spool, the bus or the engine,
//! and held for ctld's life (the kernel releases it when ctld exits, even
//! after `kill -9`). The engine locks its own file (`.engine.lock`).

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// ctld's lock file, inside the spool.
pub const CTLD_LOCK: &str = ".ctld.lock";

/// Why the spool could not be locked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolLockError {
    /// Another ctld holds the spool: stop it first, or give this one a
    /// spool of its own (`[spool] path`, `--spool`).
    #[error(
        "the spool {} is in use by another airlift-ctld ({holder}, lock {}): stop it first, or give this one \
         a spool of its own ([spool] path or --spool)",
        spool.display(), lock.display()
    )]
    Held {
        /// The spool.
        spool: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// `pid N` from the lock file, or what is known.
        holder: String,
    },
    /// The lock file cannot be opened, locked or written: check the spool's
    /// permissions.
    #[error("cannot lock the spool: {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases the spool.
#[derive(Debug)]
pub struct SpoolLock {
    _file: File,
    path: PathBuf,
}

impl SpoolLock {
    /// Locks `spool` (which must exist) without waiting and writes this
    /// process's pid into the lock file. Nothing else in the spool is read
    /// or written.
    pub fn acquire(spool: &Path) -> Result<Self, SpoolLockError> {
        let path = spool.join(CTLD_LOCK);
        let io = |source| SpoolLockError::Io { path: path.clone(), source };
        let mut file =
            File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "pid unknown".to_string(),
                };
                return Err(SpoolLockError::Held { spool: spool.to_path_buf(), lock: path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("airlift-spool-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let first = SpoolLock::acquire(&dir).expect("first");
        assert_eq!(
            std::fs::read_to_string(first.path()).expect("pid").trim(),
            std::process::id().to_string()
        );
        // flock is per open file description: a second open in this process conflicts too.
        let err = SpoolLock::acquire(&dir).expect_err("held");
        let text = err.to_string();
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        assert!(text.contains(&dir.display().to_string()), "{text}");
        drop(first);
        SpoolLock::acquire(&dir).expect("free again");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
