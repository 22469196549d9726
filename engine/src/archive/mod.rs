//! The archive: MPEG-TS reading ([`ts`]), cutting it into segments at key
//! frames with manifests ([`segment`]), the durable spool they are written
//! into ([`spool`]), and pull jobs that receive remote SRT streams straight
//! into segments ([`pull`]). Worker threads only; nothing here runs on the
//! audio thread.
#![forbid(unsafe_code)]

pub mod pull;
pub mod segment;
pub mod spool;
pub mod ts;
