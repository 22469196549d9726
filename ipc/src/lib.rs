//! The protocol spoken between `airlift-ctld` and `airlift-engine`, and the
//! flow specifications both processes share.
//!
//! # Layout
//!
//! - [`units`]: validated newtypes (`SampleRate`, `Channels`, `GainDb`, …).
//!   Their constructors enforce the ranges the engine supports, and serde
//!   goes through the same constructors, so a value that decoded is valid.
//! - [`spec`]: flow, producer, processor, consumer and pull-job specs.
//! - [`message`]: the two message enums, named by direction:
//!   [`CtlToEngine`] and [`EngineToCtl`].
//! - [`frame`]: framing (magic, version, length, payload) and a pure decoder
//!   that reads from `&[u8]` and answers "a message", "incomplete" or a typed
//!   error — it owns no socket.
//!
//! This crate is pure code: no threads, no I/O, no `unsafe`.
//!
//! # Example
//!
//! ```
//! use airlift_ipc::{frame, message::{Command, CommandId, CtlToEngine}};
//!
//! let msg = CtlToEngine::Command { id: CommandId(7), command: Command::GetStats };
//! let bytes = frame::encode(&msg).expect("fits in a frame");
//! let (decoded, used) = frame::decode::<CtlToEngine>(&bytes)
//!     .expect("valid frame")
//!     .expect("complete frame");
//! assert_eq!(decoded, msg);
//! assert_eq!(used, bytes.len());
//! // A truncated buffer asks for more instead of failing.
//! assert!(frame::decode::<CtlToEngine>(&bytes[..5]).expect("no error").is_none());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod frame;
pub mod message;
pub mod report;
pub mod settings;
pub mod spec;
pub mod spool_layout;
pub mod srt_url;
pub mod units;

pub use frame::{FrameError, MAX_PAYLOAD_LEN, PROTOCOL_VERSION};
pub use message::{CtlToEngine, EngineToCtl};
