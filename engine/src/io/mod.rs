//! I/O: WAV files on named non-realtime worker threads, joined to the audio
//! thread only by `rtrb` rings of interleaved f32 samples; ALSA devices
//! ([`alsa`]) driven straight from the audio thread they clock.

pub mod alsa;
pub mod recording;
pub mod wav;
pub mod worker;
