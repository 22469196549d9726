//! A named worker thread that stops and is joined when its handle drops.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// A running worker. Dropping it asks the worker to stop, wakes it and joins
/// it (off the audio thread: handles live on the control side).
#[derive(Debug)]
pub struct Worker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// What a worker's loop sees.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    stop: Arc<AtomicBool>,
    /// How long the worker waits when it has nothing to do. The audio thread
    /// makes no syscalls, so it never wakes a realtime worker: workers wake
    /// on this cadence, a fraction of their ring's duration. In offline
    /// rendering the render thread unparks them as soon as there is work.
    pub cadence: Duration,
}

impl WorkerContext {
    /// True once the worker should finish.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Waits for work or the cadence, whichever comes first.
    pub fn wait(&self) {
        std::thread::park_timeout(self.cadence);
    }
}

impl Worker {
    /// Spawns `body` on a thread called `name`.
    pub fn spawn(
        name: String,
        cadence: Duration,
        body: impl FnOnce(WorkerContext) + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = WorkerContext { stop: stop.clone(), cadence };
        let handle = std::thread::Builder::new().name(os_thread_name(&name)).spawn(move || body(ctx))?;
        Ok(Self { stop, handle: Some(handle) })
    }

    /// The worker's thread, for unparking.
    pub fn thread(&self) -> Thread {
        self.handle.as_ref().map(|h| h.thread().clone()).expect("worker running")
    }

    /// Asks the worker to finish and waits for it.
    pub fn finish(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            if handle.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The kernel keeps 15 bytes of a thread's name (`top -H`, `ps -L`,
/// `/proc/<pid>/task/*/comm`).
pub const OS_NAME_MAX: usize = 15;

/// The name a thread gets from the kernel's point of view: the role
/// shortened so that the flow's, input's or output's name survives the
/// 15-byte cut (`airlift-srt-rx-contrib` → `al-rx-contrib`, `airlift-rt-main`
/// → `al-rt-main`, `airlift-enc-chunk-3` → `al-enc3`), then cut at 15 bytes.
/// The long name stays the link's and the log's. docs/architecture.md
/// lists every role.
pub fn os_thread_name(long: &str) -> String {
    const ROLES: &[(&str, &str)] = &[
        ("airlift-srt-rx-", "al-rx-"),
        ("airlift-srt-tx-", "al-tx-"),
        ("airlift-enc-chunk-", "al-enc"),
        ("airlift-", "al-"),
    ];
    let short = ROLES
        .iter()
        .find_map(|(prefix, role)| long.strip_prefix(prefix).map(|rest| format!("{role}{rest}")))
        .unwrap_or_else(|| long.to_string());
    let mut end = short.len().min(OS_NAME_MAX);
    while !short.is_char_boundary(end) {
        end -= 1;
    }
    short[..end].to_string()
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn thread_names_fit_the_kernel_and_keep_role_and_subject() {
        for (long, short) in [
            ("airlift-srt-rx-contrib", "al-rx-contrib"),
            ("airlift-srt-tx-out", "al-tx-out"),
            ("airlift-rt-main", "al-rt-main"),
            ("airlift-enc-chunk-3", "al-enc3"),
            ("airlift-pull-camera-north-7", "al-pull-camera-"),
            ("airlift-ipc-accept", "al-ipc-accept"),
        ] {
            assert_eq!(os_thread_name(long), short);
            assert!(os_thread_name(long).len() <= OS_NAME_MAX);
        }
    }
}
