//! The workers that move audio between the flow's rings and the outside, each
//! on its own named thread: the encoder consumer ([`encoded`]: ring →
//! encoder → TS muxer → file, segments or SRT sender), the SRT input
//! ([`srt_in`]: receiver → decoder → clock-domain bridge), the file input
//! ([`file_in`]), WAV sources and recorders ([`wav`]) and the recording
//! file names they share ([`recording`]). They meet the audio thread only
//! through lock-free rings.
#![forbid(unsafe_code)]

pub mod encoded;
pub mod file_in;
pub mod recording;
pub mod srt_in;
pub mod wav;
