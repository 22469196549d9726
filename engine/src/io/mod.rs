//! I/O that runs on named non-realtime worker threads, joined to the audio
//! thread only by `rtrb` rings of interleaved f32 samples.

pub mod wav;
pub mod worker;
