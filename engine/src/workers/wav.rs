//! WAV file source and recorder (through `hound`), each on a worker thread.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use airlift_ipc::spec::WavFormat;

use crate::rt::worker::{Worker, WorkerContext};
use crate::workers::recording::{self, RecordingNotice};

/// A WAV file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file does not exist or cannot be read; fix the path or permissions.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: hound::Error,
    },
    /// The file's sample rate differs from the flow's; resampling of files
    /// arrives with the FFmpeg decoder. Convert the file or change the flow.
    #[error("{path} is {file} Hz but the flow runs at {flow} Hz")]
    RateMismatch {
        /// The file.
        path: PathBuf,
        /// The file's rate.
        file: u32,
        /// The flow's rate.
        flow: u32,
    },
    /// The file has more channels than a flow input accepts.
    #[error("{path} has {channels} channels; at most 64 are supported")]
    TooManyChannels {
        /// The file.
        path: PathBuf,
        /// Its channel count.
        channels: u16,
    },
    /// The recording cannot be created; check the directory and permissions.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: hound::Error,
    },
}

type Reader = hound::WavReader<std::io::BufReader<File>>;

/// An opened WAV file, checked against the flow and ready to stream.
pub struct WavSource {
    reader: Reader,
    path: PathBuf,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource").field("path", &self.path).field("spec", &self.reader.spec()).finish()
    }
}

impl WavSource {
    /// Opens `path` for a flow at `flow_rate`. Control thread only.
    pub fn open(path: &Path, flow_rate: u32) -> Result<Self, WavError> {
        let reader =
            hound::WavReader::open(path).map_err(|source| WavError::Open { path: path.into(), source })?;
        let spec = reader.spec();
        if spec.sample_rate != flow_rate {
            return Err(WavError::RateMismatch {
                path: path.into(),
                file: spec.sample_rate,
                flow: flow_rate,
            });
        }
        if spec.channels == 0 || spec.channels > 64 {
            return Err(WavError::TooManyChannels { path: path.into(), channels: spec.channels });
        }
        Ok(Self { reader, path: path.into() })
    }

    /// Channels in the file.
    pub fn channels(&self) -> usize {
        usize::from(self.reader.spec().channels)
    }

    /// Streams the file into `ring` on a worker thread named `name`; sets
    /// `ended` when the file is done (never, when `looped`).
    pub fn spawn(
        self,
        name: String,
        cadence: Duration,
        mut ring: rtrb::Producer<f32>,
        looped: bool,
        ended: Arc<AtomicBool>,
    ) -> std::io::Result<Worker> {
        Worker::spawn(name, cadence, move |ctx: WorkerContext| {
            let WavSource { mut reader, path } = self;
            let spec = reader.spec();
            let capacity = ring.buffer().capacity();
            let mut chunk: Vec<f32> = Vec::with_capacity(capacity);
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            loop {
                if ctx.stopping() {
                    break;
                }
                if chunk.is_empty() {
                    let want = (capacity / 4).max(1);
                    match read_block(&mut reader, spec, scale, want, &mut chunk) {
                        Ok(0) if looped && reader.len() > 0 => {
                            if let Err(e) = reader.seek(0) {
                                tracing::error!(file = %path.display(), "cannot rewind: {e}");
                                break;
                            }
                            continue;
                        }
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(file = %path.display(), "read failed, input ends here: {e}");
                            break;
                        }
                    }
                }
                let (pushed, _) = ring.push_partial_slice(&chunk);
                let n = pushed.len();
                chunk.drain(..n);
                if !chunk.is_empty() {
                    ctx.wait();
                }
            }
            ended.store(true, Ordering::Release);
        })
    }
}

fn read_block(
    reader: &mut Reader,
    spec: hound::WavSpec,
    scale: f32,
    want: usize,
    out: &mut Vec<f32>,
) -> Result<usize, hound::Error> {
    let before = out.len();
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for s in reader.samples::<f32>().take(want) {
                out.push(s?);
            }
        }
        hound::SampleFormat::Int => {
            for s in reader.samples::<i32>().take(want) {
                out.push(s? as f32 * scale);
            }
        }
    }
    Ok(out.len() - before)
}

/// How often a WAV recorder updates its header and hands its bytes to the kernel.
const WAV_CHECKPOINT: Duration = Duration::from_millis(250);

/// A WAV recording being written.
pub struct WavRecorder {
    writer: hound::WavWriter<BufWriter<File>>,
    format: WavFormat,
    path: PathBuf,
}

impl std::fmt::Debug for WavRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavRecorder").field("path", &self.path).field("format", &self.format).finish()
    }
}

impl WavRecorder {
    /// Creates a new recording for `path`: `path` itself, or a rotation
    /// name beside it when a file is there (see [`recording::create_new`]);
    /// [`WavRecorder::path`] says which. Control thread only.
    pub fn create(path: &Path, channels: usize, rate: u32, format: WavFormat) -> Result<Self, WavError> {
        let (bits, sample_format) = match format {
            WavFormat::S16 => (16, hound::SampleFormat::Int),
            WavFormat::S24 => (24, hound::SampleFormat::Int),
            WavFormat::F32 => (32, hound::SampleFormat::Float),
        };
        let spec = hound::WavSpec {
            channels: u16::try_from(channels).unwrap_or(u16::MAX),
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format,
        };
        let (file, path) = recording::create_new(path)
            .map_err(|e| WavError::Create { path: path.into(), source: hound::Error::IoError(e) })?;
        let writer = hound::WavWriter::new(BufWriter::new(file), spec).map_err(|source| {
            let _ = std::fs::remove_file(&path);
            WavError::Create { path: path.clone(), source }
        })?;
        Ok(Self { writer, format, path })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what arrives on `ring` on a worker thread named `name` until
    /// stopped, then drains the ring, finalises the header and announces
    /// the closed file through `notice`.
    pub fn spawn(
        self,
        name: String,
        cadence: Duration,
        mut ring: rtrb::Consumer<f32>,
        notice: Option<RecordingNotice>,
    ) -> std::io::Result<Worker> {
        Worker::spawn(name, cadence, move |ctx: WorkerContext| {
            let WavRecorder { mut writer, format, path } = self;
            let mut failed = false;
            let mut samples = 0u64;
            let mut checkpoint = std::time::Instant::now();
            loop {
                let stopping = ctx.stopping();
                let n = ring.slots();
                if n > 0 {
                    if let Ok(chunk) = ring.read_chunk(n) {
                        let (a, b) = chunk.as_slices();
                        if !failed && let Err(e) = write_samples(&mut writer, format, a.iter().chain(b)) {
                            tracing::error!(file = %path.display(), "recording failed, audio is discarded: {e}");
                            failed = true;
                        }
                        if !failed {
                            samples += (a.len() + b.len()) as u64;
                            // Sizes in the header kept current a few times a
                            // second (whole frames only): a killed engine
                            // leaves a WAV any reader plays up to here.
                            let whole_frames =
                                samples.is_multiple_of(u64::from(writer.spec().channels.max(1)));
                            if whole_frames && checkpoint.elapsed() >= WAV_CHECKPOINT {
                                checkpoint = std::time::Instant::now();
                                if let Err(e) = writer.flush() {
                                    tracing::error!(file = %path.display(), "recording failed, audio is discarded: {e}");
                                    failed = true;
                                }
                            }
                        }
                        chunk.commit_all();
                    }
                } else if stopping || ring.is_abandoned() {
                    break;
                } else {
                    ctx.wait();
                }
            }
            let closed = writer.finalize().and_then(|()| {
                File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.sync_all())
                    .map_err(hound::Error::IoError)
            });
            match closed {
                Ok(()) => {
                    if let Some(notice) = notice {
                        notice.announce(samples);
                    }
                }
                Err(e) => tracing::error!(file = %path.display(), "cannot finalise recording: {e}"),
            }
        })
    }
}

fn write_samples<'a>(
    writer: &mut hound::WavWriter<BufWriter<File>>,
    format: WavFormat,
    samples: impl Iterator<Item = &'a f32>,
) -> Result<(), hound::Error> {
    match format {
        WavFormat::S16 => {
            for &s in samples {
                writer.write_sample(quantise(s, 32_768.0) as i16)?;
            }
        }
        WavFormat::S24 => {
            for &s in samples {
                writer.write_sample(quantise(s, 8_388_608.0))?;
            }
        }
        WavFormat::F32 => {
            for &s in samples {
                writer.write_sample(s)?;
            }
        }
    }
    Ok(())
}

/// Rounds `s · full_scale` to the nearest integer, clipping to the integer
/// range (so reading with `1 / full_scale` and writing back is exact).
fn quantise(s: f32, full_scale: f32) -> i32 {
    (s * full_scale).round().clamp(-full_scale, full_scale - 1.0) as i32
}
