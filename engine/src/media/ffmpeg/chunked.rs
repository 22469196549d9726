//! Parallel encoding for offline renders: the stream is cut into chunks
//! that separate encoders code at the same time, then spliced back into one
//! stream in order.
//!
//! The codecs it is used for (AAC, MP2) code each frame from a window of
//! input around it and a little state carried from frame to frame (window
//! decisions and rate control for AAC, the filter bank for MP2). So each
//! chunk's encoder starts a *preroll* before the chunk, which warms that
//! state up on the real signal, and reads a *postroll* past its end, which
//! gives its last frames their look-ahead; only the packets whose time lies
//! inside the chunk are kept. The frames on both sides of a splice are then
//! transforms of the same input with settled decisions, so the overlap-add
//! in the decoder cancels their aliasing as within one encoder's stream:
//! timestamps, packet count and duration are those of one serial encoder,
//! and the coding noise at a splice is that of any other frame (checked by
//! `engine/tests/parallel_encode.rs`). Live flows never use this: a chunk
//! waits for its whole audio.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};

use airlift_ipc::spec::Codec;
use ffmpeg_sys_next as ff;

use super::mux::sealed::WritePacket;
use super::{Encoder, MediaError, Muxer, Packet};

/// An encoder as the encoder worker sees it: samples in, packets out to a
/// muxer. Sealed: [`Encoder`] and [`ChunkedEncoder`].
pub trait AudioEncoder: sealed::Sealed + Send {
    /// Encodes interleaved samples, writing finished packets to `mux`.
    fn encode(&mut self, interleaved: &[f32], mux: &mut impl Muxer) -> Result<(), MediaError>;
    /// Encodes what is pending, flushes, and writes the rest to `mux`.
    fn finish(&mut self, mux: &mut impl Muxer) -> Result<(), MediaError>;
    /// FFmpeg's encoder name, for logs.
    fn name(&self) -> &'static str;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Encoder {}
    impl Sealed for super::ChunkedEncoder {}
}

impl AudioEncoder for Encoder {
    fn encode(&mut self, interleaved: &[f32], mux: &mut impl Muxer) -> Result<(), MediaError> {
        Encoder::encode(self, interleaved, mux)
    }

    fn finish(&mut self, mux: &mut impl Muxer) -> Result<(), MediaError> {
        Encoder::finish(self, mux)
    }

    fn name(&self) -> &'static str {
        Encoder::name(self)
    }
}

/// Shortest chunk: below this the preroll costs more than it saves.
const MIN_CHUNK_SECONDS: u32 = 2;
/// Longest chunk: bounds the audio held per chunk on long renders.
const MAX_CHUNK_SECONDS: u32 = 30;
/// Most audio held per chunk (f32 samples), whatever the channel count.
const MAX_CHUNK_BYTES: u64 = 16 << 20;
/// Most encoders run at once (with the byte bound: at most 128 MiB of
/// audio in flight).
pub const MAX_THREADS: usize = 8;

/// Codec frames of preroll and postroll for `codec`, or `None` when chunked
/// encoding is not used for it. AAC's rate control settles within about 16
/// frames (packet sizes then match a serial encoder's to a few bytes) and
/// needs one frame of look-ahead; MP2's filter bank holds 512 samples.
/// Opus is not chunked (its splices are not validated) nor S302M (PCM,
/// cheaper to copy than to split).
fn overlap(codec: Codec) -> Option<(usize, usize)> {
    match codec {
        Codec::Aac => Some((16, 2)),
        Codec::Mp2 => Some((2, 2)),
        Codec::Opus | Codec::S302m => None,
    }
}

/// What one chunk's encoder produced: packets in stream order, or the error.
type ChunkResult = (u64, Result<Vec<Packet>, MediaError>);

/// The encoder settings every chunk's encoder is opened with.
#[derive(Debug, Clone, Copy)]
struct Settings {
    codec: Codec,
    channels: usize,
    rate: u32,
    bitrate: Option<u32>,
}

/// One chunk to encode: the samples from `start` (global sample index), and
/// the range of packet times (global, in samples) to keep.
struct Job {
    index: u64,
    start: u64,
    samples: Vec<f32>,
    keep_from: i64,
    keep_to: i64,
}

/// Encodes a stream in chunks on up to `threads` threads at once, writing
/// the packets in stream order. Worker threads only. See the module docs.
pub struct ChunkedEncoder {
    settings: Settings,
    name: &'static str,
    threads: usize,
    /// Samples per channel in one chunk, a multiple of the codec frame.
    chunk: u64,
    preroll: u64,
    postroll: u64,
    /// Interleaved samples from global sample `buf_start` on.
    buf: Vec<f32>,
    buf_start: u64,
    /// Global sample where the next chunk's kept range starts.
    next_start: u64,
    next_index: u64,
    in_flight: usize,
    results_tx: Sender<ChunkResult>,
    results_rx: Receiver<ChunkResult>,
    /// Finished chunks waiting for an earlier one.
    done: BTreeMap<u64, Vec<Packet>>,
    next_write: u64,
    tb: ff::AVRational,
}

impl std::fmt::Debug for ChunkedEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedEncoder")
            .field("codec", &self.name)
            .field("threads", &self.threads)
            .field("chunk", &self.chunk)
            .finish()
    }
}

impl ChunkedEncoder {
    /// A chunked encoder for the stream `template` was opened for (`codec`,
    /// `bitrate` as given to [`Encoder::new`]), with up to `threads` chunks
    /// encoding at once, sized for about `length_hint` samples per channel
    /// when the length is known. `None` when chunking does not pay or is not
    /// validated for the codec: then encode with `template` serially.
    pub fn new(
        template: &Encoder,
        codec: Codec,
        bitrate: Option<u32>,
        threads: usize,
        length_hint: Option<u64>,
    ) -> Option<Self> {
        let (pre, post) = overlap(codec)?;
        let threads = threads.min(MAX_THREADS);
        if threads < 2 {
            return None;
        }
        let frame = template.frame_size() as u64;
        let rate = template.rate();
        let (min, max) = (u64::from(rate * MIN_CHUNK_SECONDS), u64::from(rate * MAX_CHUNK_SECONDS));
        if length_hint.is_some_and(|n| n < 2 * min) {
            // Too short to split.
            return None;
        }
        let per_thread = length_hint.map_or(max, |n| n.div_ceil(threads as u64));
        let by_bytes = MAX_CHUNK_BYTES / (4 * template.channels() as u64);
        let chunk = per_thread.clamp(min, max).min(by_bytes).max(16 * frame).div_ceil(frame) * frame;
        let (results_tx, results_rx) = channel();
        Some(Self {
            settings: Settings { codec, channels: template.channels(), rate, bitrate },
            name: template.name(),
            threads,
            chunk,
            preroll: pre as u64 * frame,
            postroll: post as u64 * frame,
            buf: Vec::new(),
            buf_start: 0,
            next_start: 0,
            next_index: 0,
            in_flight: 0,
            results_tx,
            results_rx,
            done: BTreeMap::new(),
            next_write: 0,
            tb: template.time_base(),
        })
    }

    /// Chunks encoding at once, at most.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Samples per channel in one chunk.
    pub fn chunk_frames(&self) -> u64 {
        self.chunk
    }

    fn buffered_end(&self) -> u64 {
        self.buf_start + (self.buf.len() / self.settings.channels) as u64
    }

    /// Sends the chunk whose kept range starts at `next_start` and ends at
    /// `end` (`None`: the end of the stream) to an encoder thread.
    fn dispatch(&mut self, end: Option<u64>, mux: &mut impl Muxer) -> Result<(), MediaError> {
        while self.in_flight >= self.threads {
            self.collect(true, mux)?;
        }
        let ch = self.settings.channels;
        let from = self.next_start.saturating_sub(self.preroll).max(self.buf_start);
        let to = end.map_or(self.buffered_end(), |e| (e + self.postroll).min(self.buffered_end()));
        let slice = &self.buf[(from - self.buf_start) as usize * ch..(to - self.buf_start) as usize * ch];
        let job = Job {
            index: self.next_index,
            start: from,
            samples: slice.to_vec(),
            // The first chunk keeps the encoder's priming packet (negative time).
            keep_from: if self.next_index == 0 { i64::MIN } else { self.next_start as i64 },
            keep_to: end.map_or(i64::MAX, |e| e as i64),
        };
        self.in_flight += 1;
        self.next_index += 1;
        let (settings, tx) = (self.settings, self.results_tx.clone());
        let run = move |job: Job| {
            let index = job.index;
            // A closed channel means the stream was abandoned; nothing to tell.
            let _ = tx.send((index, encode_chunk(settings, job)));
        };
        // The job goes to the thread once it runs; without a thread it is
        // encoded here (slower, never lost).
        let (job_tx, job_rx) = channel::<Job>();
        let run_there = run.clone();
        let spawned =
            std::thread::Builder::new().name(format!("airlift-enc-chunk-{}", job.index)).spawn(move || {
                if let Ok(job) = job_rx.recv() {
                    run_there(job);
                }
            });
        match spawned {
            Ok(_) => {
                if let Err(unsent) = job_tx.send(job) {
                    run(unsent.0);
                }
            }
            Err(e) => {
                tracing::warn!(encoder = self.name, "no thread for a chunk, encoding it here: {e}");
                run(job);
            }
        }
        if let Some(e) = end {
            self.next_start = e;
            // Keep what the next chunk's preroll needs.
            let keep_from = e.saturating_sub(self.preroll).max(self.buf_start);
            self.buf.drain(..(keep_from - self.buf_start) as usize * ch);
            self.buf_start = keep_from;
        }
        Ok(())
    }

    /// Takes finished chunks (waiting for one when `block`) and writes every
    /// chunk whose predecessors are written.
    fn collect(&mut self, block: bool, mux: &mut impl Muxer) -> Result<(), MediaError> {
        let first = if block {
            // The sender half lives in `self`, so this cannot disconnect.
            self.results_rx.recv().ok()
        } else {
            self.results_rx.try_recv().ok()
        };
        let mut next = first;
        while let Some((index, result)) = next {
            self.in_flight -= 1;
            self.done.insert(index, result?);
            next = self.results_rx.try_recv().ok();
        }
        while let Some(packets) = self.done.remove(&self.next_write) {
            for packet in packets {
                mux.write_packet(packet.0, self.tb)?;
            }
            self.next_write += 1;
        }
        Ok(())
    }
}

impl AudioEncoder for ChunkedEncoder {
    fn encode(&mut self, interleaved: &[f32], mux: &mut impl Muxer) -> Result<(), MediaError> {
        self.buf.extend_from_slice(interleaved);
        loop {
            let end = self.next_start + self.chunk;
            if self.buffered_end() < end + self.postroll {
                break;
            }
            self.dispatch(Some(end), mux)?;
        }
        self.collect(false, mux)
    }

    fn finish(&mut self, mux: &mut impl Muxer) -> Result<(), MediaError> {
        self.dispatch(None, mux)?;
        self.buf = Vec::new();
        while self.in_flight > 0 {
            self.collect(true, mux)?;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// Encodes one chunk on a fresh encoder, keeping the packets of its range
/// with their times made global.
fn encode_chunk(settings: Settings, job: Job) -> Result<Vec<Packet>, MediaError> {
    let mut encoder = Encoder::new(settings.codec, settings.channels, settings.rate, settings.bitrate)?;
    let tb = encoder.time_base();
    // SAFETY: plain arithmetic on rationals.
    let offset = unsafe {
        ff::av_rescale_q(job.start as i64, ff::AVRational { num: 1, den: settings.rate as i32 }, tb)
    };
    let mut keep = Keep {
        packets: Vec::new(),
        offset,
        from: scale(job.keep_from, settings.rate, tb),
        to: scale(job.keep_to, settings.rate, tb),
    };
    encoder.encode(&job.samples, &mut keep)?;
    encoder.finish(&mut keep)?;
    Ok(keep.packets)
}

/// `samples` in `tb`, leaving the open ends open.
fn scale(samples: i64, rate: u32, tb: ff::AVRational) -> i64 {
    if samples == i64::MIN || samples == i64::MAX {
        return samples;
    }
    // SAFETY: plain arithmetic on rationals.
    unsafe { ff::av_rescale_q(samples, ff::AVRational { num: 1, den: rate as i32 }, tb) }
}

/// Collects one chunk's packets inside `from..to` (global time), shifting
/// their times by `offset`.
struct Keep {
    packets: Vec<Packet>,
    offset: i64,
    from: i64,
    to: i64,
}

impl WritePacket for Keep {
    fn write_packet(&mut self, packet: *mut ff::AVPacket, _tb: ff::AVRational) -> Result<(), MediaError> {
        // SAFETY: `packet` is a valid packet from the encoder, lent for this call.
        let pts = unsafe { (*packet).pts };
        if pts == ff::AV_NOPTS_VALUE {
            return Err(MediaError::Ffmpeg {
                what: "chunked encode".into(),
                code: 0,
                message: "the encoder gave a packet without a time".into(),
            });
        }
        let global = pts + self.offset;
        if global < self.from || global >= self.to {
            return Ok(());
        }
        let owned = Packet::new()?;
        // SAFETY: both packets are valid; the encoder's packet is left blank
        // (its owner unrefs it next, which is then a no-op) and ours takes
        // its data and properties.
        unsafe {
            ff::av_packet_move_ref(owned.0, packet);
            (*owned.0).pts = global;
            if (*owned.0).dts != ff::AV_NOPTS_VALUE {
                (*owned.0).dts += self.offset;
            }
        }
        self.packets.push(owned);
        Ok(())
    }
}

impl Muxer for Keep {
    fn finish(self) -> Result<(), MediaError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(codec: Codec, channels: usize, threads: usize, hint: Option<u64>) -> Option<ChunkedEncoder> {
        let template = Encoder::new(codec, channels, 48_000, None).unwrap();
        ChunkedEncoder::new(&template, codec, None, threads, hint)
    }

    #[test]
    fn chunks_split_the_render_evenly_in_whole_codec_frames() {
        let aac = chunked(Codec::Aac, 2, 2, Some(480_000)).unwrap();
        assert_eq!((aac.threads(), aac.chunk_frames()), (2, 240_640));
        let mp2 = chunked(Codec::Mp2, 2, 4, Some(480_000)).unwrap();
        assert_eq!(mp2.chunk_frames(), 120_960);
    }

    #[test]
    fn chunk_size_is_bounded_by_time_and_memory() {
        // Unknown length: 30 s chunks.
        assert_eq!(chunked(Codec::Aac, 2, 2, None).unwrap().chunk_frames(), 1_440_768);
        // An hour on two threads: still 30 s.
        assert_eq!(chunked(Codec::Aac, 2, 2, Some(172_800_000)).unwrap().chunk_frames(), 1_440_768);
        // Eight channels: 16 MiB of samples per chunk.
        assert_eq!(chunked(Codec::Aac, 8, 2, None).unwrap().chunk_frames(), 524_288);
        // Many threads: at most eight.
        assert_eq!(chunked(Codec::Aac, 2, 64, Some(480_000_000)).unwrap().threads(), MAX_THREADS);
    }

    #[test]
    fn serial_when_chunks_do_not_pay_or_are_not_validated() {
        assert!(chunked(Codec::Aac, 2, 1, Some(480_000)).is_none(), "one thread");
        assert!(chunked(Codec::Aac, 2, 2, Some(3 * 48_000)).is_none(), "3 s render");
        assert!(chunked(Codec::Opus, 2, 4, Some(480_000)).is_none(), "Opus");
        assert!(chunked(Codec::S302m, 2, 4, Some(480_000)).is_none(), "S302M");
    }
}
