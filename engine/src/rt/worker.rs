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
        let handle = std::thread::Builder::new().name(name).spawn(move || body(ctx))?;
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
