//! Realtime thread setup: CPU pinning, SCHED_FIFO, `mlockall`.
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
        use nix::sys::mman::{MlockAllFlags, mlockall};
        match mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
            Ok(()) => report.memory_locked = true,
            Err(e) => report.refusals.push(format!("mlockall: {e}")),
        }
    }
    report
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
