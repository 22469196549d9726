//! Decoder: any format FFmpeg reads (file path or a Rust byte source),
//! first audio stream, resampled by swresample to interleaved f32 at the
//! flow's rate.

use std::ffi::{CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use ffmpeg_sys_next as ff;

use super::{CodecContext, Frame, MediaError, Packet, check, default_layout, quiet};

/// A byte source for a demuxer (e.g. an SRT connection carrying MPEG-TS).
pub trait TsInput: Send {
    /// Fills `buf` with the next bytes; `Ok(0)` ends the stream.
    fn read_ts(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

struct CustomInput {
    avio: *mut ff::AVIOContext,
    source: *mut Box<dyn TsInput>,
}

impl Drop for CustomInput {
    fn drop(&mut self) {
        // SAFETY: we own both; the AVIO buffer may have been replaced by
        // FFmpeg, so we free the one it holds now; the source goes last.
        unsafe {
            if !self.avio.is_null() {
                ff::av_freep((&mut (*self.avio).buffer as *mut *mut u8).cast());
                ff::avio_context_free(&mut self.avio);
            }
            drop(Box::from_raw(self.source));
        }
    }
}

unsafe extern "C" fn read_cb(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    if size <= 0 {
        return 0;
    }
    // SAFETY: `opaque` is the boxed source owned by the decoder, alive while
    // the AVIO context exists; `buf` holds `size` writable bytes.
    let (source, data) = unsafe {
        (&mut *opaque.cast::<Box<dyn TsInput>>(), std::slice::from_raw_parts_mut(buf, size as usize))
    };
    match catch_unwind(AssertUnwindSafe(|| source.read_ts(data))) {
        Ok(Ok(0)) => ff::AVERROR_EOF,
        Ok(Ok(n)) => n.min(size as usize) as c_int,
        Ok(Err(_)) | Err(_) => ff::AVERROR(ff::EIO),
    }
}

/// An input being decoded. Worker threads only.
pub struct Decoder {
    // Field order is drop order: the format context before its custom input.
    fmt: *mut ff::AVFormatContext,
    /// Owns the custom AVIO and its source; only dropped, after `fmt`.
    _input: Option<CustomInput>,
    codec: CodecContext,
    swr: *mut ff::SwrContext,
    swr_in: (c_int, c_int, c_int),
    packet: Packet,
    frame: Frame,
    stream: c_int,
    channels: usize,
    rate: u32,
    label: String,
    draining: bool,
    done: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("input", &self.label).field("channels", &self.channels).finish()
    }
}

// SAFETY: the decoder exclusively owns its FFmpeg contexts and its source
// (which is Send); FFmpeg allows use from any one thread at a time.
unsafe impl Send for Decoder {}

impl Decoder {
    /// Opens a file. `channels`: the output channel count, or `None` for the
    /// file's own. Output is at `rate` Hz.
    pub fn open_file(path: &Path, rate: u32, channels: Option<usize>) -> Result<Self, MediaError> {
        quiet();
        let label = path.display().to_string();
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| MediaError::Nul { field: "path" })?;
        let mut fmt: *mut ff::AVFormatContext = std::ptr::null_mut();
        // WAV and other PCM demuxers cut 4 KiB packets by default: 32 frames
        // of a 64-channel file, a packet and a decode call each. 16 KiB
        // packets halve the decoding time of such files; larger ones cost
        // more in the WAV demuxer's S/PDIF probe of the first packet than
        // they save. Demuxers without the option leave it in the
        // dictionary, which is freed below.
        let mut options: *mut ff::AVDictionary = std::ptr::null_mut();
        // SAFETY: valid out pointer and NUL-terminated key and value; on
        // failure FFmpeg frees the context and leaves `fmt` null; the
        // dictionary is ours to free afterwards either way.
        let r = unsafe {
            ff::av_dict_set(&mut options, c"max_size".as_ptr(), c"16384".as_ptr(), 0);
            let r = ff::avformat_open_input(&mut fmt, cpath.as_ptr(), std::ptr::null(), &mut options);
            ff::av_dict_free(&mut options);
            r
        };
        check(r, || format!("open {label}"))?;
        Self::finish_open(fmt, None, label, rate, channels)
    }

    /// Opens an MPEG-TS byte stream read from `source`, output as
    /// `channels` channels at `rate` Hz. Blocks until the stream's audio
    /// parameters are known (or the source ends).
    pub fn open_ts(source: Box<dyn TsInput>, rate: u32, channels: usize) -> Result<Self, MediaError> {
        quiet();
        const CHUNK: usize = 1316 * 8;
        // SAFETY: plain allocations, checked below.
        let (fmt, buffer) = unsafe { (ff::avformat_alloc_context(), ff::av_malloc(CHUNK).cast::<u8>()) };
        let source = Box::into_raw(Box::new(source));
        let avio = if buffer.is_null() {
            std::ptr::null_mut()
        } else {
            // SAFETY: `buffer` is CHUNK bytes from av_malloc, owned by AVIO
            // from now on; `source` lives until CustomInput drops, after the
            // format context is closed.
            unsafe {
                ff::avio_alloc_context(buffer, CHUNK as c_int, 0, source.cast(), Some(read_cb), None, None)
            }
        };
        let input = CustomInput { avio, source };
        if fmt.is_null() || avio.is_null() {
            // SAFETY: free what was allocated; a null pointer is ignored.
            unsafe {
                if avio.is_null() && !buffer.is_null() {
                    ff::av_free(buffer.cast());
                }
                ff::avformat_free_context(fmt);
            }
            return Err(MediaError::Alloc { what: "TS input" });
        }
        let mut fmt = fmt;
        // SAFETY: `fmt` is a fresh context; we attach our AVIO and mark it
        // custom so FFmpeg never closes it; the demuxer is chosen by name.
        // On failure avformat_open_input frees `fmt` and nulls it.
        let r = unsafe {
            (*fmt).pb = input.avio;
            (*fmt).flags |= ff::AVFMT_FLAG_CUSTOM_IO;
            (*fmt).probesize = 256 * 1024;
            (*fmt).max_analyze_duration = 1_000_000;
            let mpegts = ff::av_find_input_format(c"mpegts".as_ptr());
            ff::avformat_open_input(&mut fmt, std::ptr::null(), mpegts, std::ptr::null_mut())
        };
        check(r, || "open MPEG-TS stream".into())?;
        Self::finish_open(fmt, Some(input), "TS stream".into(), rate, Some(channels))
    }

    fn finish_open(
        fmt: *mut ff::AVFormatContext,
        input: Option<CustomInput>,
        label: String,
        rate: u32,
        channels: Option<usize>,
    ) -> Result<Self, MediaError> {
        // Own everything first so every early return frees it.
        let mut dec = Self {
            fmt,
            _input: input,
            codec: CodecContext(std::ptr::null_mut()),
            swr: std::ptr::null_mut(),
            swr_in: (0, 0, 0),
            packet: Packet::new()?,
            frame: Frame::new()?,
            stream: -1,
            channels: 0,
            rate,
            label,
            draining: false,
            done: false,
        };
        let label = dec.label.clone();
        // SAFETY: `fmt` is an open input context we own.
        check(unsafe { ff::avformat_find_stream_info(fmt, std::ptr::null_mut()) }, || {
            format!("{label}: stream info")
        })?;
        let mut codec: *const ff::AVCodec = std::ptr::null();
        // SAFETY: open context; `codec` receives a static descriptor.
        let stream = unsafe {
            ff::av_find_best_stream(fmt, ff::AVMediaType::AVMEDIA_TYPE_AUDIO, -1, -1, &mut codec, 0)
        };
        if stream < 0 || codec.is_null() {
            return Err(MediaError::NoAudio { input: label });
        }
        dec.stream = stream;
        // SAFETY: allocation for a valid codec, owned by `dec` at once.
        dec.codec = CodecContext(unsafe { ff::avcodec_alloc_context3(codec) });
        if dec.codec.0.is_null() {
            return Err(MediaError::Alloc { what: "decoder context" });
        }
        // SAFETY: `stream` indexes the context's streams (av_find_best_stream
        // returned it); its parameters are copied into our context.
        unsafe {
            let st = *(*fmt).streams.add(stream as usize);
            check(ff::avcodec_parameters_to_context(dec.codec.0, (*st).codecpar), || {
                format!("{label}: decoder parameters")
            })?;
            (*dec.codec.0).pkt_timebase = (*st).time_base;
            check(ff::avcodec_open2(dec.codec.0, codec, std::ptr::null_mut()), || {
                format!("{label}: open decoder")
            })?;
        }
        // SAFETY: open context, plain field.
        let own = unsafe { (*dec.codec.0).ch_layout.nb_channels };
        let out = channels.map_or(own, |c| c as c_int);
        if !(1..=64).contains(&out) {
            return Err(MediaError::Channels { input: label, channels: out });
        }
        dec.channels = out as usize;
        Ok(dec)
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// What is being decoded, e.g. `aac 48000 Hz 2 ch`.
    pub fn describe(&self) -> String {
        // SAFETY: open decoder context, plain fields read.
        let (rate, ch) = unsafe { ((*self.codec.0).sample_rate, (*self.codec.0).ch_layout.nb_channels) };
        format!("{} {} Hz {} ch", super::encode::codec_label(self.codec.0), rate, ch)
    }

    /// Decodes the next piece, appending interleaved f32 to `out`. Returns
    /// `Ok(false)` once the input is exhausted and everything was delivered.
    pub fn read(&mut self, out: &mut Vec<f32>) -> Result<bool, MediaError> {
        loop {
            if self.done {
                return Ok(false);
            }
            // SAFETY: open decoder, owned frame.
            let r = unsafe { ff::avcodec_receive_frame(self.codec.0, self.frame.0) };
            if r >= 0 {
                let res = self.convert(out);
                // SAFETY: owned frame.
                unsafe { ff::av_frame_unref(self.frame.0) };
                res?;
                return Ok(true);
            }
            // While draining, anything but a frame ends the stream (a broken
            // decoder must not keep us here).
            if r == ff::AVERROR_EOF || self.draining {
                self.flush_resampler(out)?;
                self.done = true;
                return Ok(true);
            }
            if r != ff::AVERROR(ff::EAGAIN) {
                // A broken frame: skip it and keep decoding.
                tracing::debug!(input = %self.label, "decode error: {}", super::error_text(r));
            }
            // SAFETY: open input context and owned packet.
            let r = unsafe { ff::av_read_frame(self.fmt, self.packet.0) };
            if r < 0 {
                self.draining = true;
                // SAFETY: a null packet starts draining the decoder.
                unsafe { ff::avcodec_send_packet(self.codec.0, std::ptr::null()) };
                continue;
            }
            // SAFETY: the packet was filled by av_read_frame.
            unsafe {
                if (*self.packet.0).stream_index == self.stream {
                    let s = ff::avcodec_send_packet(self.codec.0, self.packet.0);
                    if s < 0 && s != ff::AVERROR(ff::EAGAIN) {
                        tracing::debug!(input = %self.label, "bad packet: {}", super::error_text(s));
                    }
                }
                ff::av_packet_unref(self.packet.0);
            }
        }
    }

    /// Starts again from the beginning (files only).
    pub fn rewind(&mut self) -> Result<(), MediaError> {
        // SAFETY: open contexts; seeking to timestamp 0 of the default stream.
        unsafe {
            check(ff::av_seek_frame(self.fmt, -1, 0, ff::AVSEEK_FLAG_BACKWARD as c_int), || {
                format!("{}: rewind", self.label)
            })?;
            ff::avcodec_flush_buffers(self.codec.0);
        }
        self.draining = false;
        self.done = false;
        Ok(())
    }

    fn ensure_resampler(&mut self) -> Result<(), MediaError> {
        // SAFETY: the frame holds a decoded frame; plain fields read.
        let key = unsafe {
            let f = &*self.frame.0;
            (f.format, f.sample_rate, f.ch_layout.nb_channels)
        };
        if !self.swr.is_null() && key == self.swr_in {
            return Ok(());
        }
        // SAFETY: we own the old resampler (if any) and replace it; layouts
        // are valid for the call; the new context is checked and initialised.
        unsafe {
            ff::swr_free(&mut self.swr);
            let mut in_layout = default_layout(key.2.max(1) as usize);
            let f = &*self.frame.0;
            if f.ch_layout.order != ff::AVChannelOrder::AV_CHANNEL_ORDER_UNSPEC {
                ff::av_channel_layout_uninit(&mut in_layout);
                check(ff::av_channel_layout_copy(&mut in_layout, &f.ch_layout), || "copy layout".into())?;
            }
            let mut out_layout = default_layout(self.channels);
            let r = ff::swr_alloc_set_opts2(
                &mut self.swr,
                &mut out_layout,
                ff::AVSampleFormat::AV_SAMPLE_FMT_FLT,
                self.rate as c_int,
                &mut in_layout,
                std::mem::transmute::<c_int, ff::AVSampleFormat>(key.0),
                key.1,
                0,
                std::ptr::null_mut(),
            );
            ff::av_channel_layout_uninit(&mut in_layout);
            ff::av_channel_layout_uninit(&mut out_layout);
            check(r, || format!("{}: resampler", self.label))?;
            check(ff::swr_init(self.swr), || format!("{}: resampler", self.label))?;
        }
        self.swr_in = key;
        Ok(())
    }

    fn convert(&mut self, out: &mut Vec<f32>) -> Result<(), MediaError> {
        self.ensure_resampler()?;
        // SAFETY: the resampler is initialised for this frame's shape; the
        // output pointer has room for `room` frames of `channels` f32 (we
        // reserve it), and we only extend `out` by what swr reports written.
        unsafe {
            let f = &*self.frame.0;
            let room = ff::swr_get_out_samples(self.swr, f.nb_samples).max(0) as usize + 16;
            out.reserve(room * self.channels);
            let mut dst = out.as_mut_ptr().add(out.len()).cast::<u8>();
            let n = ff::swr_convert(
                self.swr,
                &mut dst,
                room as c_int,
                f.extended_data as *mut *const u8,
                f.nb_samples,
            );
            let n = check(n, || format!("{}: resample", self.label))? as usize;
            out.set_len(out.len() + n * self.channels);
        }
        Ok(())
    }

    fn flush_resampler(&mut self, out: &mut Vec<f32>) -> Result<(), MediaError> {
        if self.swr.is_null() {
            return Ok(());
        }
        // SAFETY: as in `convert`, with a null input to drain the delay line.
        unsafe {
            let room = ff::swr_get_out_samples(self.swr, 0).max(0) as usize + 16;
            out.reserve(room * self.channels);
            let mut dst = out.as_mut_ptr().add(out.len()).cast::<u8>();
            let n = ff::swr_convert(self.swr, &mut dst, room as c_int, std::ptr::null_mut(), 0);
            let n = check(n, || format!("{}: resample", self.label))? as usize;
            out.set_len(out.len() + n * self.channels);
        }
        Ok(())
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: we own the resampler and the input context; closing the
        // input does not touch the custom AVIO (flag set), which `input`
        // frees afterwards.
        unsafe {
            ff::swr_free(&mut self.swr);
            ff::avformat_close_input(&mut self.fmt);
        }
    }
}
