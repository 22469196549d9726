//! MPEG-TS muxer writing through a Rust [`TsOutput`] (file or SRT).

use std::ffi::{CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use ffmpeg_sys_next as ff;

use super::{Encoder, MediaError, check};

pub(crate) mod sealed {
    use ffmpeg_sys_next as ff;

    use super::MediaError;

    /// The packet entry of a muxer; only this module's muxers have it.
    pub trait WritePacket {
        /// Writes one encoded packet whose timestamps are in `tb`.
        fn write_packet(&mut self, packet: *mut ff::AVPacket, tb: ff::AVRational) -> Result<(), MediaError>;
    }
}

/// A muxer an [`Encoder`] writes its packets into: [`TsMuxer`] or
/// [`FileMuxer`](super::FileMuxer). Sealed: FFmpeg packets never leave
/// this module.
pub trait Muxer: sealed::WritePacket + Send {
    /// Hands what the muxer holds so far to the kernel (no fsync), so a
    /// killed engine leaves a file that holds the audio up to here.
    /// Worker thread; called a few times a second.
    fn checkpoint(&mut self) -> Result<(), MediaError> {
        Ok(())
    }

    /// Writes the trailer and flushes the output.
    fn finish(self) -> Result<(), MediaError>
    where
        Self: Sized;
}

/// Where a muxer's bytes go. Called on the muxer's thread with chunks of at
/// most the muxer's chunk size (1316 bytes for SRT: seven TS packets).
pub trait TsOutput: Send {
    /// Takes the next bytes of the stream. An error stops the muxer.
    fn write_ts(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// The stream is complete; push out anything buffered.
    fn flush_ts(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Service description written into the SDT.
#[derive(Debug, Clone, Default)]
pub struct TsMetadata {
    /// Service name.
    pub service_name: Option<String>,
    /// Provider name.
    pub provider: Option<String>,
}

/// An MPEG-TS muxer with one audio stream. FFmpeg's muxer writes PAT/PMT/SDT,
/// PCR on the audio PID, continuity counters, and PTS/DTS from the encoder's
/// sample counts. Worker threads only.
pub struct TsMuxer {
    fmt: *mut ff::AVFormatContext,
    avio: *mut ff::AVIOContext,
    output: *mut Box<dyn TsOutput>,
    stream_tb: ff::AVRational,
    finished: bool,
}

impl std::fmt::Debug for TsMuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsMuxer").field("finished", &self.finished).finish()
    }
}

// SAFETY: the muxer exclusively owns its contexts and output; FFmpeg allows a
// format context to be used from any one thread at a time, and the output is Send.
unsafe impl Send for TsMuxer {}

unsafe extern "C" fn write_cb(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    if size <= 0 {
        return 0;
    }
    // SAFETY: `opaque` is the boxed output owned by the muxer, alive while
    // the AVIO context exists; `buf` holds `size` readable bytes.
    let (output, data) =
        unsafe { (&mut *opaque.cast::<Box<dyn TsOutput>>(), std::slice::from_raw_parts(buf, size as usize)) };
    match catch_unwind(AssertUnwindSafe(|| output.write_ts(data))) {
        Ok(Ok(())) => size,
        _ => ff::AVERROR(ff::EIO),
    }
}

impl TsMuxer {
    /// Creates a muxer for `encoder`'s stream, writing `chunk`-byte pieces
    /// (a multiple of 188) to `output`, and writes the stream header.
    pub fn new(
        output: Box<dyn TsOutput>,
        encoder: &Encoder,
        metadata: &TsMetadata,
        chunk: usize,
    ) -> Result<Self, MediaError> {
        super::log::install();
        let chunk = (chunk / 188).max(1) * 188;
        let mut fmt: *mut ff::AVFormatContext = std::ptr::null_mut();
        // SAFETY: a valid out pointer and a static format name.
        let r = unsafe {
            ff::avformat_alloc_output_context2(
                &mut fmt,
                std::ptr::null(),
                c"mpegts".as_ptr(),
                std::ptr::null(),
            )
        };
        check(r, || "create MPEG-TS muxer".into())?;
        // SAFETY: allocated with av_malloc as AVIO requires; checked.
        let buffer = unsafe { ff::av_malloc(chunk) }.cast::<u8>();
        let output = Box::into_raw(Box::new(output));
        let avio = if buffer.is_null() {
            std::ptr::null_mut()
        } else {
            // SAFETY: `buffer` is `chunk` bytes from av_malloc (AVIO owns it
            // from now on); `output` stays valid until Drop frees it after the
            // AVIO context.
            unsafe {
                ff::avio_alloc_context(buffer, chunk as c_int, 1, output.cast(), None, Some(write_cb), None)
            }
        };
        let mut mux =
            Self { fmt, avio, output, stream_tb: ff::AVRational { num: 1, den: 90_000 }, finished: false };
        if avio.is_null() {
            if !buffer.is_null() {
                // SAFETY: nobody took ownership of the buffer.
                unsafe { ff::av_free(buffer.cast()) };
            }
            return Err(MediaError::Alloc { what: "AVIO context" });
        }
        // SAFETY: `fmt` and `avio` are valid and owned by `mux`; the stream
        // belongs to `fmt`; the encoder's context is open and only read.
        unsafe {
            (*avio).max_packet_size = chunk as c_int;
            (*fmt).pb = avio;
            (*fmt).flags |= ff::AVFMT_FLAG_CUSTOM_IO;
            let st = ff::avformat_new_stream(fmt, std::ptr::null());
            if st.is_null() {
                return Err(MediaError::Alloc { what: "TS stream" });
            }
            let ctx = encoder.context();
            check(ff::avcodec_parameters_from_context((*st).codecpar, ctx), || "stream parameters".into())?;
            (*st).time_base = (*ctx).time_base;
            for (key, value) in
                [("service_name", &metadata.service_name), ("service_provider", &metadata.provider)]
            {
                if let Some(v) = value {
                    let k = CString::new(key).map_err(|_| MediaError::Nul { field: "metadata key" })?;
                    let v =
                        CString::new(v.as_str()).map_err(|_| MediaError::Nul { field: key_field(key) })?;
                    check(ff::av_dict_set(&mut (*fmt).metadata, k.as_ptr(), v.as_ptr(), 0), || {
                        "TS metadata".into()
                    })?;
                }
            }
            check(ff::avformat_write_header(fmt, std::ptr::null_mut()), || "write TS header".into())?;
            mux.stream_tb = (*st).time_base;
        }
        Ok(mux)
    }

    /// Writes the trailer and flushes the output.
    pub fn finish(mut self) -> Result<(), MediaError> {
        self.finished = true;
        // SAFETY: header written, context valid.
        check(unsafe { ff::av_write_trailer(self.fmt) }, || "write TS trailer".into())?;
        // SAFETY: valid AVIO context.
        unsafe { ff::avio_flush(self.avio) };
        // SAFETY: the output box is alive until Drop.
        let out = unsafe { &mut *self.output };
        out.flush_ts().map_err(|e| MediaError::Ffmpeg {
            what: "flush TS output".into(),
            code: 0,
            message: e.to_string(),
        })
    }
}

/// Writes `packet`, whose timestamps are in `tb`, as stream 0 of `fmt`
/// (stream time base `stream_tb`); FFmpeg's result code.
///
/// # Safety
/// `fmt` is an open output context whose header is written, and `packet` a
/// valid packet from an encoder.
pub(super) unsafe fn write_stream_packet(
    fmt: *mut ff::AVFormatContext,
    packet: *mut ff::AVPacket,
    tb: ff::AVRational,
    stream_tb: ff::AVRational,
) -> c_int {
    // SAFETY: as the caller promises.
    unsafe {
        (*packet).stream_index = 0;
        ff::av_packet_rescale_ts(packet, tb, stream_tb);
        ff::av_write_frame(fmt, packet)
    }
}

/// Frees an output context and its custom AVIO context with its buffer.
///
/// # Safety
/// Both are owned by the caller and used by nothing afterwards; the format
/// context does not own the AVIO context (AVFMT_FLAG_CUSTOM_IO).
pub(super) unsafe fn free_output(fmt: *mut ff::AVFormatContext, avio: &mut *mut ff::AVIOContext) {
    // SAFETY: as the caller promises. FFmpeg may have replaced the AVIO
    // buffer, hence freeing `(*avio).buffer`, not the original pointer.
    unsafe {
        ff::avformat_free_context(fmt);
        if !avio.is_null() {
            ff::av_freep((&mut (**avio).buffer as *mut *mut u8).cast());
            ff::avio_context_free(avio);
        }
    }
}

impl sealed::WritePacket for TsMuxer {
    fn write_packet(&mut self, packet: *mut ff::AVPacket, tb: ff::AVRational) -> Result<(), MediaError> {
        // SAFETY: `packet` is a valid packet from the encoder; the muxer is
        // open (header written) and not finished.
        let r = unsafe { write_stream_packet(self.fmt, packet, tb, self.stream_tb) };
        check(r, || "write TS packet".into())?;
        Ok(())
    }
}

impl Muxer for TsMuxer {
    fn finish(self) -> Result<(), MediaError> {
        TsMuxer::finish(self)
    }
}

fn key_field(key: &str) -> &'static str {
    if key == "service_name" { "service_name" } else { "provider" }
}

impl Drop for TsMuxer {
    fn drop(&mut self) {
        // SAFETY: we own all three and nothing uses them after this; the
        // output box is freed last, after nothing can call back into it.
        unsafe {
            free_output(self.fmt, &mut self.avio);
            drop(Box::from_raw(self.output));
        }
    }
}
