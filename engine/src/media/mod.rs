//! Media I/O on worker threads: FFmpeg codecs and MPEG-TS, SRT.
//!
//! - [`ffmpeg`]: safe FFmpeg wrappers ([`ffmpeg::Encoder`],
//!   [`ffmpeg::TsMuxer`], [`ffmpeg::Decoder`]); all FFmpeg FFI lives there.
//! - [`srt`]: safe libsrt wrapper ([`srt::SrtSocket`], [`srt::SrtListener`]);
//!   all SRT FFI lives there.
//! - [`encoded`]: the encoder consumer (`airlift-enc-<output>`): bus ring →
//!   encoder → TS muxer → file or SRT sender (`airlift-srt-tx-<output>`).
//! - [`srt_in`]: the SRT input producer (`airlift-srt-rx-<input>`).
//! - [`file_in`]: the file producer for anything FFmpeg decodes.
//! - [`untrusted`]: logging what peers send: escaped, cut, rate-limited.
//!
//! Nothing here runs on the audio thread; it meets it only through rtrb rings.

pub mod encoded;
pub mod ffmpeg;
pub mod file_in;
pub mod link;
pub mod pull;
pub mod segment;
pub mod spool;
pub mod srt;
pub mod srt_in;
pub mod ts;
pub mod untrusted;
