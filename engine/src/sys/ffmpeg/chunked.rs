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
//! `engine/daemon/tests/parallel_encode.rs`). Live flows never use this: a chunk's
//! packets can only go out once every earlier chunk is finished, which
//! would delay the stream by a whole chunk.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};

use ffmpeg_sys_next as ff;

use super::encode::Recipe;
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
    /// Starts the timestamps at `pts` (in samples) instead of 0, before
    /// anything was encoded; ignored afterwards.
    fn start_at(&mut self, pts: i64) {
        let _ = pts;
    }
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

    fn start_at(&mut self, pts: i64) {
        Encoder::start_at(self, pts);
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

/// Codec frames of preroll and postroll for FFmpeg's encoder `name`, or
/// `None` when chunked encoding is not used for it. AAC's rate control
/// settles within about 16 frames (packet sizes then match a serial
/// encoder's to a few bytes) and needs one frame of look-ahead; MP2's filter
/// bank holds 512 samples. Other encoders are not chunked: Opus's and MP3's
/// splices are not validated, S302M and PCM are cheaper to copy than to
/// split, and FLAC's stream header (sample count, MD5) comes from its one
/// encoder.
fn overlap(name: &str) -> Option<(usize, usize)> {
    match name {
        "aac" => Some((16, 2)),
        "mp2" => Some((2, 2)),
        _ => None,
    }
}

/// What one chunk's encoder produced: packets in stream order, or the error.
type ChunkResult = (u64, Result<Vec<Packet>, MediaError>);

/// What a chunk's encoder is told.
enum LaneMsg {
    /// The next input samples (interleaved).
    Samples(Vec<f32>),
    /// The input is complete: keep the packets before `keep_to` (global
    /// sample time; `None`: the stream ends here, keep all).
    Finish(Option<u64>),
}

/// One chunk's encoder: fed as its input arrives, it keeps the packets from
/// its chunk's start on.
struct ChunkWork {
    encoder: Encoder,
    keep: Keep,
    rate: u32,
}

impl ChunkWork {
    /// An encoder for the chunk whose input starts at global sample `start`
    /// and whose packets are kept from global sample time `keep_from`.
    fn open(recipe: Recipe, start: u64, keep_from: Option<u64>) -> Result<Self, MediaError> {
        let encoder = recipe.open()?;
        let (tb, rate) = (encoder.time_base(), encoder.rate());
        let keep = Keep {
            packets: Vec::new(),
            offset: scale(start, rate, tb),
            // The first chunk keeps the encoder's priming packet (negative time).
            from: keep_from.map_or(i64::MIN, |k| scale(k, rate, tb)),
        };
        Ok(Self { encoder, keep, rate })
    }

    fn feed(&mut self, samples: &[f32]) -> Result<(), MediaError> {
        self.encoder.encode(samples, &mut self.keep)
    }

    fn finish(mut self, keep_to: Option<u64>) -> Result<Vec<Packet>, MediaError> {
        self.encoder.finish(&mut self.keep)?;
        let mut packets = self.keep.packets;
        if let Some(to) = keep_to {
            let to = scale(to, self.rate, self.encoder.time_base());
            // SAFETY: our own packets, valid until dropped.
            packets.retain(|p| unsafe { (*p.0).pts } < to);
        }
        Ok(packets)
    }
}

/// Runs a chunk's encoder on its own thread until it is told to finish,
/// then sends its packets (or the first error) back.
fn run_chunk(
    index: u64,
    work: Result<ChunkWork, MediaError>,
    rx: Receiver<LaneMsg>,
    tx: Sender<ChunkResult>,
) {
    let result = (|| {
        let mut work = work?;
        let mut failed = None;
        while let Ok(msg) = rx.recv() {
            match msg {
                LaneMsg::Samples(s) if failed.is_none() => failed = work.feed(&s).err(),
                LaneMsg::Samples(_) => {}
                LaneMsg::Finish(keep_to) => return failed.map_or_else(|| work.finish(keep_to), Err),
            }
        }
        // The stream was abandoned before its end; nobody waits for this.
        Ok(Vec::new())
    })();
    // A closed channel means the stream was abandoned; nothing to tell.
    let _ = tx.send((index, result));
}

/// Where a chunk's encoder runs.
enum Runner {
    /// On its own thread, fed through a channel.
    Thread(Sender<LaneMsg>),
    /// Here, when no thread could be had (slower, nothing lost).
    Inline(Box<ChunkWork>),
    /// Failed while encoding inline; the error is reported when it finishes.
    Failed(MediaError),
}

/// A chunk whose encoder is open.
struct Lane {
    index: u64,
    /// Its kept range starts here (global sample).
    start: u64,
    /// Global sample up to which its input goes: its end plus the postroll.
    input_end: u64,
    runner: Runner,
}

/// Encodes a stream in chunks on up to `threads` encoders at once, writing
/// the packets in stream order. Each chunk's encoder starts as soon as its
/// preroll arrives and codes while the rest of the stream is still coming.
/// Worker threads only. See the module docs.
pub struct ChunkedEncoder {
    recipe: Recipe,
    channels: usize,
    name: &'static str,
    threads: usize,
    /// Samples per channel in one chunk, a multiple of the codec frame.
    chunk: u64,
    preroll: u64,
    postroll: u64,
    /// Global sample of the next input.
    position: u64,
    /// Chunks still taking input, oldest first.
    open: std::collections::VecDeque<Lane>,
    next_index: u64,
    /// Chunks told to finish whose packets have not come back yet.
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
    /// A chunked encoder for the stream `template` was opened for, with up
    /// to `threads` chunks encoding at once, sized for about `length_hint`
    /// samples per channel when the length is known. `None` when chunking
    /// does not pay or is not validated for the encoder: then encode with
    /// `template` serially.
    pub fn new(template: &Encoder, threads: usize, length_hint: Option<u64>) -> Option<Self> {
        let (pre, post) = overlap(template.name())?;
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
        // So that the chunk after the last one would open (with its
        // preroll) only past the end: exactly `threads` chunks.
        let preroll = pre as u64 * frame;
        let per_thread = length_hint.map_or(max, |n| (n + preroll).div_ceil(threads as u64));
        let by_bytes = MAX_CHUNK_BYTES / (4 * template.channels() as u64);
        // Several times the overlap, so a chunk's input is complete before
        // the chunk two places later opens.
        let least = 4 * (pre + post) as u64 * frame;
        let chunk = per_thread.clamp(min, max).min(by_bytes).max(least).div_ceil(frame) * frame;
        let (results_tx, results_rx) = channel();
        Some(Self {
            recipe: template.recipe(),
            channels: template.channels(),
            name: template.name(),
            threads,
            chunk,
            preroll,
            postroll: post as u64 * frame,
            position: 0,
            open: std::collections::VecDeque::new(),
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

    /// Opens the next chunk's encoder, waiting for an older chunk to finish
    /// first when `threads` are busy.
    fn open_lane(&mut self, mux: &mut impl Muxer) -> Result<(), MediaError> {
        while self.open.len() + self.in_flight >= self.threads {
            if self.in_flight == 0 {
                // Only chunks still taking input: cannot happen with chunks
                // longer than the overlap, but never wait for nothing.
                break;
            }
            self.collect(true, mux)?;
        }
        let index = self.next_index;
        self.next_index += 1;
        let start = index * self.chunk;
        let input_start = start.saturating_sub(self.preroll);
        let (recipe, keep_from) = (self.recipe, (index > 0).then_some(start));
        let (tx, rx) = channel::<LaneMsg>();
        let results = self.results_tx.clone();
        let spawned = std::thread::Builder::new().name(format!("al-enc{index}")).spawn(move || {
            run_chunk(index, ChunkWork::open(recipe, input_start, keep_from), rx, results);
        });
        let runner = match spawned {
            Ok(_) => Runner::Thread(tx),
            Err(e) => {
                tracing::warn!(encoder = self.name, "no thread for a chunk, encoding it here: {e}");
                match ChunkWork::open(recipe, input_start, keep_from) {
                    Ok(work) => Runner::Inline(Box::new(work)),
                    Err(e) => Runner::Failed(e),
                }
            }
        };
        self.open.push_back(Lane { index, start, input_end: start + self.chunk + self.postroll, runner });
        Ok(())
    }

    /// Tells the oldest open chunk that its input is complete.
    fn close_oldest(&mut self, keep_to: Option<u64>) {
        let Some(lane) = self.open.pop_front() else {
            return;
        };
        self.in_flight += 1;
        match lane.runner {
            Runner::Thread(tx) => {
                if tx.send(LaneMsg::Finish(keep_to)).is_err() {
                    // The thread is gone (it panicked): say so in order.
                    let _ = self
                        .results_tx
                        .send((lane.index, Err(MediaError::Alloc { what: "chunk encoder thread" })));
                }
            }
            Runner::Inline(work) => {
                let _ = self.results_tx.send((lane.index, work.finish(keep_to)));
            }
            Runner::Failed(e) => {
                let _ = self.results_tx.send((lane.index, Err(e)));
            }
        }
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
        let ch = self.channels;
        let mut rest = interleaved;
        while !rest.is_empty() {
            // Open the chunk whose preroll starts within this input.
            let next_input = (self.next_index * self.chunk).saturating_sub(self.preroll);
            if next_input <= self.position {
                self.open_lane(mux)?;
                continue;
            }
            // Up to where the next chunk opens or the oldest one is complete.
            let mut until = next_input;
            if let Some(oldest) = self.open.front() {
                until = until.min(oldest.input_end);
            }
            let n = ((until - self.position) as usize).min(rest.len() / ch);
            let (now, later) = rest.split_at(n * ch);
            for lane in &mut self.open {
                let runner = &mut lane.runner;
                match runner {
                    Runner::Thread(tx) => {
                        // A closed channel: the thread died; reported at finish.
                        let _ = tx.send(LaneMsg::Samples(now.to_vec()));
                    }
                    Runner::Inline(work) => {
                        if let Err(e) = work.feed(now) {
                            *runner = Runner::Failed(e);
                        }
                    }
                    Runner::Failed(_) => {}
                }
            }
            self.position += n as u64;
            rest = later;
            while let Some(oldest) = self.open.front() {
                if oldest.input_end > self.position {
                    break;
                }
                let end = oldest.start + self.chunk;
                self.close_oldest(Some(end));
            }
        }
        self.collect(false, mux)
    }

    fn finish(&mut self, mux: &mut impl Muxer) -> Result<(), MediaError> {
        if self.open.is_empty() && self.next_index == 0 {
            // Nothing came at all: one empty chunk flushes like one encoder would.
            self.open_lane(mux)?;
        }
        // The last open chunk takes the stream's end; any before it keeps
        // its range (its postroll was cut short by the end).
        while self.open.len() > 1 {
            let end = self.open.front().map(|l| l.start + self.chunk);
            self.close_oldest(end);
        }
        self.close_oldest(None);
        while self.in_flight > 0 {
            self.collect(true, mux)?;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// `samples` at `rate` in `tb`.
fn scale(samples: u64, rate: u32, tb: ff::AVRational) -> i64 {
    // SAFETY: plain arithmetic on rationals.
    unsafe { ff::av_rescale_q(samples as i64, ff::AVRational { num: 1, den: rate as i32 }, tb) }
}

/// Collects one chunk's packets from `from` (global time) on, shifting
/// their times by `offset`.
struct Keep {
    packets: Vec<Packet>,
    offset: i64,
    from: i64,
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
        if global < self.from {
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

    use airlift_ipc::spec::Codec;

    fn chunked(codec: Codec, channels: usize, threads: usize, hint: Option<u64>) -> Option<ChunkedEncoder> {
        let template = Encoder::new(codec, channels, 48_000, None).unwrap();
        ChunkedEncoder::new(&template, threads, hint)
    }

    #[test]
    fn chunks_split_the_render_evenly_in_whole_codec_frames() {
        let aac = chunked(Codec::Aac, 2, 2, Some(480_000)).unwrap();
        assert_eq!((aac.threads(), aac.chunk_frames()), (2, 248_832));
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
