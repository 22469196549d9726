//! The FFI fence: every call into FFmpeg ([`ffmpeg`]) and libsrt ([`srt`]),
//! and nothing else. Each `unsafe` block here carries a `SAFETY:` comment;
//! everything above this module is safe Rust (`#![forbid(unsafe_code)]` in
//! each of its files, checked by `engine/tests/layout.rs`).

pub mod ffmpeg;
pub mod srt;
