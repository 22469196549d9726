//! SRT connection policy ([`link`]): callers that reconnect with backoff,
//! listeners that accept one peer at a time (passphrase and allow-list
//! rules), and the link statistics they publish. Built on [`crate::sys::srt`].
#![forbid(unsafe_code)]

pub mod link;
