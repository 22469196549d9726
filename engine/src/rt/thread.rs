//! Realtime thread setup: CPU pinning, SCHED_FIFO, `mlockall` (on fault).
//!
//! Each request may be refused (a normal user gets EPERM for SCHED_FIFO and
//! ENOMEM for `mlockall` under the default memlock limit). The engine runs
//! anyway and reports exactly what it got in a [`RealtimeReport`].
#![allow(unsafe_code)] // a realtime spot: see engine/tests/layout.rs

use airlift_ipc::message::RealtimeReport;

/// What a flow's audio thread asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RealtimeRequest {
    /// Pin to this CPU.
    pub cpu: Option<usize>,
    /// SCHED_FIFO at this priority (1–99).
    pub fifo_priority: Option<u8>,
    /// Lock all current and future memory.
    pub lock_memory: bool,
}

/// Applies `request` to the calling thread and reports what succeeded.
/// Call it on the audio thread before its loop. Not realtime-safe (it makes
/// syscalls); it runs once.
pub fn apply(request: &RealtimeRequest) -> RealtimeReport {
    let mut report = RealtimeReport::default();
    if let Some(cpu) = request.cpu {
        let mut set = nix::sched::CpuSet::new();
        match set.set(cpu).and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)) {
            Ok(()) => report.pinned_cpu = u32::try_from(cpu).ok(),
            Err(e) => report.refusals.push(format!("pin to CPU {cpu}: {e}")),
        }
    }
    if let Some(priority) = request.fifo_priority {
        let param = libc::sched_param { sched_priority: i32::from(priority) };
        // SAFETY: `param` is a valid sched_param for the duration of the call;
        // pid 0 means the calling thread.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        if rc == 0 {
            report.fifo_priority = Some(priority);
        } else {
            let e = nix::errno::Errno::last();
            report.refusals.push(format!("SCHED_FIFO {priority}: {e}"));
        }
    }
    if request.lock_memory {
        match lock_memory() {
            Ok(()) => report.memory_locked = true,
            Err(e) => report.refusals.push(format!("mlockall: {e}")),
        }
    }
    report
}

/// Bytes of the audio thread's stack touched (and so locked) before its
/// loop: far more than a period's call depth uses.
const STACK_PREFAULT: usize = 64 * 1024;

/// Locks the process's memory the first time, and this thread's stack.
///
/// `MCL_ONFAULT`: a page is locked once it has been touched, and never
/// paged out after that. Without it `mlockall` reads in every page of every
/// mapping — all of FFmpeg's libraries, every thread's whole stack, every
/// malloc arena — and an engine with 8 flows is 255 MiB resident instead
/// of 65. What the audio thread uses is touched in its first periods (its
/// buffers, its code) and its stack here, so its later periods take no
/// page fault either way.
fn lock_memory() -> Result<(), nix::errno::Errno> {
    let result = *LOCKED.get_or_init(|| {
        // SAFETY: plain syscall with flag constants.
        let rc = unsafe { libc::mlockall(LOCK_FLAGS) };
        if rc == 0 { Ok(()) } else { Err(nix::errno::Errno::last()) }
    });
    if result.is_ok() {
        prefault_stack();
    }
    result
}

/// How the process's memory is locked.
const LOCK_FLAGS: libc::c_int = libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT;

/// Whether (and how) the process's memory was locked, once.
static LOCKED: std::sync::OnceLock<Result<(), nix::errno::Errno>> = std::sync::OnceLock::new();

/// Gives memory freed by stopped flows back to the system. Control thread,
/// after flows stopped or graphs were replaced.
///
/// malloc keeps freed memory and releases it with `MADV_DONTNEED`, which
/// the kernel refuses for locked pages: under `mlockall` every page a
/// stopped flow used would stay resident for good (an engine that ran 16
/// flows kept 36 MiB after they stopped). So the lock is lifted for the
/// trim and taken again at once (on fault: nothing is read in); running
/// flows' pages stay resident throughout, they are only unlocked for the
/// trim's few milliseconds.
pub fn return_freed_memory() {
    with_lock_lifted(|| {
        // SAFETY: malloc_trim is thread-safe (it takes each arena's lock).
        unsafe { libc::malloc_trim(0) };
    });
}

/// Makes every thread allocate from malloc's one main arena. For a process
/// whose flows may lock memory, first thing in `main`, before any other
/// thread has allocated (a thread that did keeps its own arena, and later
/// threads share it): `airlift-engine` does.
///
/// glibc gives threads their own arenas (up to 8 per CPU), and when memory
/// at the top of a thread arena is freed it shrinks the arena with
/// `MADV_DONTNEED`, which the kernel refuses on locked pages; glibc counts
/// the arena shrunk anyway, so those pages are resident and locked for
/// good, out of reach of any later trim (32 pull jobs stopped left 20 MiB
/// in 16 arenas). The main arena shrinks with `brk`, which locked pages do
/// not stop, and [`return_freed_memory`] trims the rest. Small allocations
/// still come from each thread's own cache without a lock; the audio
/// thread allocates nothing.
pub fn one_malloc_arena() {
    // SAFETY: a plain call with constants; mallopt is thread-safe.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) } != 1 {
        tracing::warn!("mallopt(M_ARENA_MAX, 1) refused; memory freed under mlockall may stay resident");
    }
}

/// [`return_freed_memory`], and also drops the media libraries' code and
/// read-only data from this process's resident set: for when no flow and
/// no pull job runs. Control thread.
///
/// Once a flow has run, FFmpeg's code pages stay resident, and under
/// `mlockall` locked, for the life of the process: about 5 MiB that no
/// thread runs once the engine is idle (libavcodec alone 3.3 MiB after
/// AAC flows). Their pages are still in the page cache; the next flow's
/// build and workers fault them back in (never the audio thread, which
/// runs no FFmpeg code). Only mappings that were never written are
/// dropped (read-only, and no private copy of any page), so what comes
/// back from the file is exactly what was there.
pub fn return_idle_memory() {
    let ranges = clean_media_mappings();
    with_lock_lifted(|| {
        // SAFETY: as in return_freed_memory.
        unsafe { libc::malloc_trim(0) };
        for (start, len) in &ranges {
            // SAFETY: a whole mapping of this process from /proc/self/smaps,
            // read-only and file-backed with no anonymous (written) page:
            // MADV_DONTNEED drops its pages, and a later access reads the
            // same bytes from the file again.
            unsafe { libc::madvise(*start as *mut libc::c_void, *len, libc::MADV_DONTNEED) };
        }
    });
}

/// Libraries whose code only flows and pull jobs run.
const MEDIA_LIBRARIES: [&str; 8] =
    ["libavcodec.", "libavformat.", "libavutil.", "libavfilter.", "libavdevice.", "libswresample.", "libswscale.", "libsrt"];

/// (start, length) of every mapping of a media library that is read-only
/// and holds no anonymous (copied-on-write) page.
fn clean_media_mappings() -> Vec<(usize, usize)> {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return Vec::new() };
    let mut ranges = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let perms = words.next().unwrap_or_default();
            let file = words.nth(3).and_then(|p| p.rsplit('/').next()).unwrap_or_default();
            let media = MEDIA_LIBRARIES.iter().any(|m| file.starts_with(m));
            let read_only = perms.len() >= 3 && !perms.contains('w') && perms.ends_with('p');
            current = match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                (Ok(a), Ok(b)) if media && read_only && b > a => Some((a, b - a)),
                _ => None,
            };
        } else if first == "Anonymous:" {
            let written = words.next().is_none_or(|kib| kib != "0");
            if let Some(range) = current.take().filter(|_| !written) {
                ranges.push(range);
            }
        }
    }
    ranges
}

/// Runs `f` with the process's memory lock lifted, when it is locked.
///
/// malloc keeps freed memory and releases it with `MADV_DONTNEED`, which
/// the kernel refuses for locked pages: under `mlockall` every page a
/// stopped flow used would stay resident for good. So the lock is lifted
/// for `f` and taken again at once (on fault: nothing is read in); running
/// flows' pages stay resident throughout, they are only unlocked for the
/// few milliseconds `f` takes.
fn with_lock_lifted(f: impl FnOnce()) {
    let locked = LOCKED.get().is_some_and(Result::is_ok);
    if locked {
        // SAFETY: a plain call without arguments.
        unsafe { libc::munlockall() };
    }
    f();
    // SAFETY: a plain call with constant flags.
    if locked && unsafe { libc::mlockall(LOCK_FLAGS) } != 0 {
        tracing::warn!("mlockall after returning freed memory: {}", nix::errno::Errno::last());
    }
}

/// Touches [`STACK_PREFAULT`] bytes of the calling thread's stack.
#[inline(never)]
fn prefault_stack() {
    let mut page = [0u8; STACK_PREFAULT];
    for b in page.iter_mut().step_by(4096) {
        // SAFETY: a valid, aligned pointer into our own array.
        unsafe { std::ptr::write_volatile(b, 1) };
    }
    std::hint::black_box(&page);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_reported_not_fatal() {
        // Priority 99 may or may not be granted here; either way the report
        // says exactly one thing about it.
        let report = std::thread::spawn(|| {
            apply(&RealtimeRequest { cpu: Some(0), fifo_priority: Some(1), lock_memory: false })
        })
        .join()
        .unwrap();
        assert_eq!(report.pinned_cpu, Some(0));
        assert_eq!(
            usize::from(report.fifo_priority.is_some())
                + report.refusals.iter().filter(|r| r.contains("SCHED_FIFO")).count(),
            1
        );
    }
}
