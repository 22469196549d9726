//! The file producer for anything FFmpeg decodes, resampled to the flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::rt::worker::{Worker, WorkerContext};
use crate::sys::ffmpeg::Decoder;

/// Streams `decoder` into `ring` on a worker thread named `name`; sets
/// `ended` when the file is done (never, when `looped`). Control thread only.
pub fn spawn_file(
    mut decoder: Decoder,
    name: String,
    cadence: Duration,
    mut ring: rtrb::Producer<f32>,
    looped: bool,
    ended: Arc<AtomicBool>,
) -> std::io::Result<Worker> {
    Worker::spawn(name, cadence, move |ctx: WorkerContext| {
        let mut chunk: Vec<f32> = Vec::with_capacity(ring.buffer().capacity());
        let mut start = 0;
        let mut produced_any = false;
        loop {
            if ctx.stopping() {
                break;
            }
            if start == chunk.len() {
                chunk.clear();
                start = 0;
                match decoder.read(&mut chunk) {
                    Ok(true) => produced_any |= !chunk.is_empty(),
                    Ok(false) if looped && produced_any => {
                        if let Err(e) = decoder.rewind() {
                            tracing::error!("cannot rewind, input ends here: {e}");
                            break;
                        }
                        continue;
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!("decoding failed, input ends here: {e}");
                        break;
                    }
                }
            }
            let (pushed, _) = ring.push_partial_slice(&chunk[start..]);
            start += pushed.len();
            if start < chunk.len() {
                ctx.wait();
            }
        }
        ended.store(true, Ordering::Release);
    })
}
