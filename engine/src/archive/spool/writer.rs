//! Writing one segment ([`SegmentWriter`]) and deciding when to look at
//! the file system's free space again ([`FreeSpaceGate`]).

use super::*;

/// Decides when a writer looks at the file system's free space again: at
/// most every `every`, and at least every `bytes` written, so that a
/// check costs one `statvfs` now and then, not one per write. Pure.
#[derive(Debug, Clone)]
pub struct FreeSpaceGate {
    pub(super) every: Duration,
    pub(super) bytes: u64,
    pub(super) last: Option<Instant>,
    pub(super) since: u64,
}

impl FreeSpaceGate {
    /// Checks at most every `every` unless `bytes` were written since.
    pub fn new(every: Duration, bytes: u64) -> Self {
        Self { every, bytes, last: None, since: 0 }
    }

    /// Notes `n` bytes about to be written at `now`; true when the free
    /// space must be looked at before writing them.
    pub fn due(&mut self, n: u64, now: Instant) -> bool {
        self.since = self.since.saturating_add(n);
        let due = self.last.is_none_or(|t| now.saturating_duration_since(t) >= self.every)
            || self.since >= self.bytes;
        if due {
            self.last = Some(now);
            self.since = 0;
        }
        due
    }
}

impl Default for FreeSpaceGate {
    /// Every 250 ms or 1 MiB.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), 1 << 20)
    }
}

/// Bytes a [`SegmentWriter`] collects before it writes them to its file.
pub(super) const WRITE_CHUNK: usize = 1 << 16;

/// A segment being written. What it accepts it keeps until the file took
/// it: a write the disk refuses (full) stays in memory, byte-exact, and
/// goes out with the next flush, so the partial file is never left with a
/// hole or a torn packet in the middle.
#[derive(Debug)]
pub struct SegmentWriter {
    pub(super) file: File,
    /// Accepted bytes not yet written to `file`.
    pub(super) pending: Vec<u8>,
    pub(super) hasher: Sha256,
    pub(super) bytes: u64,
    pub(super) seq: u64,
    pub(super) partial: PathBuf,
    pub(super) utc_start_ms: i64,
    pub(super) discontinuity: bool,
    pub(super) gap_90k: u64,
}

impl SegmentWriter {
    /// Marks the segment as not continuing the previous one seamlessly
    /// (new encoder settings), with `gap_90k` of audio known to be lost
    /// before it.
    pub fn mark_discontinuity(&mut self, gap_90k: u64) {
        self.discontinuity = true;
        self.gap_90k = self.gap_90k.saturating_add(gap_90k);
    }

    /// Appends bytes. They are accepted even when the error says the disk
    /// refused them: they wait in memory ([`SegmentWriter::pending_bytes`])
    /// for the next [`SegmentWriter::flush`].
    pub fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        self.pending.extend_from_slice(data);
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        if self.pending.len() >= WRITE_CHUNK { self.flush() } else { Ok(()) }
    }

    /// Hands the accepted bytes to the kernel (no fsync): a killed engine
    /// leaves them in the partial file for recovery. What the kernel does
    /// not take (a full disk) stays pending.
    pub fn flush(&mut self) -> Result<(), SpoolError> {
        let mut done = 0;
        let result = loop {
            if done == self.pending.len() {
                break Ok(());
            }
            match self.file.write(&self.pending[done..]) {
                Ok(0) => break Err(io_err(&self.partial)(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(io_err(&self.partial)(e)),
            }
        };
        self.pending.drain(..done);
        result
    }

    /// Flushes and fsyncs.
    pub(super) fn sync(&mut self) -> Result<(), SpoolError> {
        self.flush()?;
        self.file.sync_all().map_err(io_err(&self.partial))
    }

    /// Accepted bytes not yet on disk.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
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
