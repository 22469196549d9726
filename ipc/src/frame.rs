//! Framing: `magic (4) | version (u16 LE) | flags (u16 LE, 0) | length (u32 LE) | payload`.
//!
//! The payload is one message serialised with `postcard`. [`decode`] is pure:
//! it reads a byte slice and answers a message and the bytes it used,
//! `None` when more bytes are needed, or a [`FrameError`]. It never reads or
//! allocates for a payload longer than [`MAX_PAYLOAD_LEN`]: the length is
//! checked before the payload is touched.

use serde::{Serialize, de::DeserializeOwned};

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"ALFT";

/// The protocol version this build speaks. A frame of another version is
/// refused with [`FrameError::VersionMismatch`].
pub const PROTOCOL_VERSION: u16 = 3;

/// Size of the frame header in bytes.
pub const HEADER_LEN: usize = 12;

/// Largest payload accepted or produced: 1 MiB.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;

/// A frame that cannot be decoded or encoded.
///
/// Any decode error means the byte stream is out of step or hostile: the
/// connection should be closed. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The stream does not start with [`MAGIC`]; it is not an Airlift peer.
    #[error("not an Airlift frame (bad magic {found:02x?})")]
    BadMagic {
        /// The bytes found instead.
        found: [u8; 4],
    },
    /// The peer speaks another protocol version; upgrade one side.
    #[error("protocol version {found} is not supported (this build speaks {expected})")]
    VersionMismatch {
        /// Our version.
        expected: u16,
        /// The peer's version.
        found: u16,
    },
    /// Reserved header flags were set by a newer peer.
    #[error("unknown frame flags {0:#06x}")]
    UnknownFlags(u16),
    /// The payload length exceeds [`MAX_PAYLOAD_LEN`].
    #[error("frame payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The announced or attempted length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The payload is not a valid message (includes out-of-range values,
    /// which the units refuse while decoding).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The payload decoded but bytes were left over.
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
}

/// Encodes `message` as one frame.
pub fn encode<M: Serialize>(message: &M) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Appends `message` as one frame to `out`. On error `out` is unchanged.
pub fn encode_into<M: Serialize>(message: &M, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let payload = postcard::to_stdvec(message).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(FrameError::TooLarge { len: payload.len(), max: MAX_PAYLOAD_LEN });
    }
    let len = u32::try_from(payload.len())
        .map_err(|_| FrameError::TooLarge { len: payload.len(), max: MAX_PAYLOAD_LEN })?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Decodes one frame from the start of `buf`.
///
/// - `Ok(Some((message, used)))`: a whole frame; drop `used` bytes from the buffer.
/// - `Ok(None)`: the frame is incomplete so far; read more and call again.
/// - `Err(_)`: the stream is invalid; close the connection.
pub fn decode<M: DeserializeOwned>(buf: &[u8]) -> Result<Option<(M, usize)>, FrameError> {
    let Some(payload_len) = check_header(buf)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + payload_len;
    let Some(payload) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    let (message, rest) =
        postcard::take_from_bytes::<M>(payload).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(Some((message, total)))
}

/// Checks the header at the start of `buf`; returns the payload length, or
/// `None` when fewer than [`HEADER_LEN`] bytes are there yet. Bytes that are
/// present are checked even when the header is incomplete, so garbage is
/// refused at once.
pub fn check_header(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let present = buf.len().min(MAGIC.len());
    if buf[..present] != MAGIC[..present] {
        let mut found = [0u8; 4];
        found[..present].copy_from_slice(&buf[..present]);
        return Err(FrameError::BadMagic { found });
    }
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::VersionMismatch { expected: PROTOCOL_VERSION, found: version });
    }
    let flags = u16::from_le_bytes([header[6], header[7]]);
    if flags != 0 {
        return Err(FrameError::UnknownFlags(flags));
    }
    let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(FrameError::TooLarge { len, max: MAX_PAYLOAD_LEN });
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Command, CommandId, CtlToEngine};

    fn sample() -> CtlToEngine {
        CtlToEngine::Command { id: CommandId(42), command: Command::Shutdown }
    }

    #[test]
    fn version_mismatch_is_typed() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[4..6].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(
            decode::<CtlToEngine>(&bytes),
            Err(FrameError::VersionMismatch { expected: PROTOCOL_VERSION, found: 9 })
        );
    }

    #[test]
    fn oversize_is_refused_before_the_payload_arrives() {
        let mut header = Vec::new();
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes());
        header.extend_from_slice(&((MAX_PAYLOAD_LEN as u32) + 1).to_le_bytes());
        assert_eq!(
            decode::<CtlToEngine>(&header),
            Err(FrameError::TooLarge { len: MAX_PAYLOAD_LEN + 1, max: MAX_PAYLOAD_LEN })
        );
    }

    #[test]
    fn oversize_is_refused_on_encode() {
        let big = CtlToEngine::Hello { protocol: 1, client: "x".repeat(MAX_PAYLOAD_LEN + 1) };
        assert!(matches!(encode(&big), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn bad_magic_is_seen_in_the_first_byte() {
        assert_eq!(decode::<CtlToEngine>(b"G"), Err(FrameError::BadMagic { found: *b"G\0\0\0" }));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let bytes = encode(&sample()).unwrap();
        for n in 0..bytes.len() {
            assert_eq!(decode::<CtlToEngine>(&bytes[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn trailing_payload_bytes_are_refused() {
        let mut bytes = encode(&sample()).unwrap();
        bytes.push(0);
        let len = (bytes.len() - HEADER_LEN) as u32;
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        assert_eq!(decode::<CtlToEngine>(&bytes), Err(FrameError::TrailingBytes(1)));
    }

    #[test]
    fn out_of_range_values_fail_while_decoding() {
        use crate::units::{GainDb, Name};
        let msg = CtlToEngine::Command {
            id: CommandId(1),
            command: Command::SetGain {
                flow: Name::new("f").unwrap(),
                input: Name::new("i").unwrap(),
                gain: GainDb::new(6.0).unwrap(),
            },
        };
        let mut bytes = encode(&msg).unwrap();
        // The gain is the last four bytes (postcard writes f32 little endian).
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(decode::<CtlToEngine>(&bytes), Err(FrameError::Malformed(_))));
    }
}
