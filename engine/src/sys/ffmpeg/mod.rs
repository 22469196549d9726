//! FFmpeg behind safe RAII types: [`Encoder`] (AAC, Opus, MP2, S302M, and
//! any audio encoder for files), [`TsMuxer`] (MPEG-TS through a Rust
//! [`TsOutput`]), [`FileMuxer`] (any container FFmpeg writes, into a file) and [`Decoder`] (any
//! format FFmpeg reads, from a file or a Rust [`TsInput`], resampled to the
//! flow). Every FFmpeg call of the engine is in this module; no FFmpeg
//! pointer leaves it. Worker threads only: nothing here is realtime-safe.

mod chunked;
mod decode;
mod encode;
pub mod input;
pub mod log;
mod mux;
mod record;

use std::ffi::{CStr, c_char, c_int};

use ffmpeg_sys_next as ff;

pub use chunked::{AudioEncoder, ChunkedEncoder, MAX_THREADS as MAX_ENCODE_THREADS};
pub use decode::{Decoder, TsBytes, TsInput, check_srt_input_path};
pub use encode::Encoder;
pub use mux::{Muxer, TsMetadata, TsMuxer, TsOutput};
pub use record::{FileMuxer, FileRecording};

/// An FFmpeg operation that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// FFmpeg returned an error; the message is FFmpeg's.
    #[error("{what}: {message}")]
    Ffmpeg {
        /// The step, e.g. `open encoder aac`.
        what: String,
        /// FFmpeg's error code.
        code: i32,
        /// FFmpeg's text for it.
        message: String,
    },
    /// The encoder is not in this FFmpeg build; install it or pick another codec.
    #[error("encoder {name} is not in this FFmpeg build")]
    EncoderMissing {
        /// FFmpeg's encoder name.
        name: String,
    },
    /// The container (muxer) is not in this FFmpeg build, or cannot be
    /// guessed from the file name.
    #[error("{what}: no such container in this FFmpeg build (see `ffmpeg -muxers`)")]
    MuxerMissing {
        /// The muxer name or file name asked for.
        what: String,
    },
    /// The container cannot hold the codec (e.g. FLAC in an MP3 file).
    #[error("container {container} cannot hold {codec}")]
    Incompatible {
        /// The muxer.
        container: String,
        /// The encoder.
        codec: String,
    },
    /// Writing the output file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The codec cannot take these settings; change the flow's rate or channels.
    #[error("{codec} cannot encode {channels} channels at {rate} Hz: {reason}")]
    Settings {
        /// The codec.
        codec: &'static str,
        /// Channels asked for.
        channels: usize,
        /// Rate asked for.
        rate: u32,
        /// Why.
        reason: &'static str,
    },
    /// The input has no audio stream (or no decoder for it).
    #[error("{input}: no decodable audio stream")]
    NoAudio {
        /// The file or stream.
        input: String,
    },
    /// The input's channel count is outside 1..=64.
    #[error("{input}: {channels} channels; 1 to 64 are supported")]
    Channels {
        /// The file or stream.
        input: String,
        /// Its channel count.
        channels: i32,
    },
    /// A text field holds a NUL byte; fix the field.
    #[error("{field} contains a NUL byte")]
    Nul {
        /// The field.
        field: &'static str,
    },
    /// A file input's path names another FFmpeg protocol than a local file
    /// (`concat:`, `http:`, `pipe:` ...); give the path of a local file.
    #[error(
        "{path}: the {protocol:?} protocol is not allowed for file inputs; give the path of a local audio file"
    )]
    ProtocolRefused {
        /// The path as configured.
        path: String,
        /// The protocol FFmpeg would have used.
        protocol: String,
    },
    /// A file input is not an accepted audio container (e.g. an HLS
    /// playlist); convert it to WAV, FLAC, MP3, Ogg, MP4/M4A, Matroska ...
    #[error(
        "{input}: container {format:?} is not accepted for file inputs (accepted: wav, w64, flac, mp3, ogg, mp4/m4a/mov, matroska/webm, aac, aiff, caf, au, ac3, eac3, wavpack, mpegts)"
    )]
    FormatRefused {
        /// The file.
        input: String,
        /// FFmpeg's name for the container found.
        format: String,
    },
    /// The input's audio is in a codec this input does not decode; send
    /// one of AAC, MP2, MP3, Opus, AC-3, E-AC-3, S302M.
    #[error(
        "{input}: audio codec {codec} is not accepted here (accepted: aac, aac_latm, mp2, mp3, opus, ac3, eac3, s302m)"
    )]
    CodecRefused {
        /// The file or stream.
        input: String,
        /// FFmpeg's name for the codec.
        codec: String,
    },
    /// The decoder produced a sample format FFmpeg does not define (a
    /// broken decoder); the input cannot be used.
    #[error("{input}: decoder produced unknown sample format {format}")]
    SampleFormat {
        /// The file or stream.
        input: String,
        /// The value reported.
        format: i32,
    },
    /// The demuxer is not in this FFmpeg build; install a full FFmpeg.
    #[error("demuxer {name} is not in this FFmpeg build")]
    DemuxerMissing {
        /// FFmpeg's demuxer name.
        name: &'static str,
    },
    /// FFmpeg could not allocate memory.
    #[error("out of memory: {what}")]
    Alloc {
        /// The allocation.
        what: &'static str,
    },
}

fn error_text(code: c_int) -> String {
    let mut buf = [0 as c_char; 128];
    // SAFETY: `buf` is writable for its whole length, which is passed.
    let r = unsafe { ff::av_strerror(code, buf.as_mut_ptr(), buf.len()) };
    if r < 0 {
        return format!("FFmpeg error {code}");
    }
    // SAFETY: av_strerror NUL-terminates within the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

fn check(code: c_int, what: impl FnOnce() -> String) -> Result<c_int, MediaError> {
    if code < 0 {
        Err(MediaError::Ffmpeg { what: what(), code, message: error_text(code) })
    } else {
        Ok(code)
    }
}

/// An owned `AVFrame`.
struct Frame(*mut ff::AVFrame);

impl Frame {
    fn new() -> Result<Self, MediaError> {
        // SAFETY: plain allocation, checked.
        let f = unsafe { ff::av_frame_alloc() };
        if f.is_null() { Err(MediaError::Alloc { what: "frame" }) } else { Ok(Self(f)) }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        // SAFETY: we own the frame; av_frame_free nulls our pointer.
        unsafe { ff::av_frame_free(&mut self.0) };
    }
}

/// An owned `AVPacket`.
struct Packet(*mut ff::AVPacket);

impl Packet {
    fn new() -> Result<Self, MediaError> {
        // SAFETY: plain allocation, checked.
        let p = unsafe { ff::av_packet_alloc() };
        if p.is_null() { Err(MediaError::Alloc { what: "packet" }) } else { Ok(Self(p)) }
    }
}

// SAFETY: a packet is owned by one holder at a time; FFmpeg's packets carry
// no thread affinity (their buffers are reference counted atomically).
unsafe impl Send for Packet {}

impl Drop for Packet {
    fn drop(&mut self) {
        // SAFETY: we own the packet; av_packet_free nulls our pointer.
        unsafe { ff::av_packet_free(&mut self.0) };
    }
}

/// An owned codec context.
struct CodecContext(*mut ff::AVCodecContext);

impl Drop for CodecContext {
    fn drop(&mut self) {
        // SAFETY: we own the context; avcodec_free_context nulls our pointer.
        unsafe { ff::avcodec_free_context(&mut self.0) };
    }
}

/// The default channel layout for `channels`.
fn default_layout(channels: usize) -> ff::AVChannelLayout {
    // SAFETY: AVChannelLayout is plain data; zeroed is a valid "unset" value
    // that av_channel_layout_default then fills.
    let mut layout: ff::AVChannelLayout = unsafe { std::mem::zeroed() };
    // SAFETY: `layout` is a valid, writable layout.
    unsafe { ff::av_channel_layout_default(&mut layout, channels as c_int) };
    layout
}
