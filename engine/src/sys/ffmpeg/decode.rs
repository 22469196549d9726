//! Decoder: a file (audio containers only) or an MPEG-TS byte source
//! (SRT inputs), first accepted audio stream, resampled by swresample to
//! interleaved f32 at the flow's rate. What is accepted is decided in
//! [`super::input`].

use std::ffi::{CStr, CString, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use ffmpeg_sys_next as ff;

use super::input::{self, Policy};
use super::{CodecContext, Frame, MediaError, Packet, check, default_layout};

/// A byte source for a demuxer (e.g. an SRT connection carrying MPEG-TS).
pub trait TsInput: Send {
    /// Fills `buf` with the next bytes; `Ok(0)` ends the stream.
    fn read_ts(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// A [`TsInput`] over bytes in memory (tests and the fuzz target).
#[derive(Debug, Clone)]
pub struct TsBytes {
    data: Vec<u8>,
    at: usize,
}

impl TsBytes {
    /// Serves `data`, then ends.
    pub fn new(data: Vec<u8>) -> Self {
        Self { data, at: 0 }
    }
}

impl TsInput for TsBytes {
    fn read_ts(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.at.min(self.data.len())..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
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

/// A file opened through FFmpeg's `file` protocol, owned by us (the format
/// context is told it is custom I/O and leaves it alone).
struct FileInput(*mut ff::AVIOContext);

impl Drop for FileInput {
    fn drop(&mut self) {
        // SAFETY: ours; avio_closep closes, frees and nulls (null ignored).
        unsafe { ff::avio_closep(&mut self.0) };
    }
}

/// What a decoder reads from; only dropped, after the format context.
enum InputIo {
    Custom(#[allow(dead_code)] CustomInput),
    File(#[allow(dead_code)] FileInput),
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
    // Field order is drop order: the format context (closed in `drop`)
    // before its input.
    fmt: *mut ff::AVFormatContext,
    _input: InputIo,
    codec: CodecContext,
    swr: *mut ff::SwrContext,
    swr_in: (c_int, c_int, c_int),
    packet: Packet,
    frame: Frame,
    stream: c_int,
    known_streams: u32,
    policy: Policy,
    /// Another accepted audio stream whose packets arrive while ours has
    /// none: `(stream, its first such packet's time in seconds, packets)`.
    /// A live TS whose PMT moved the programme's audio to a new PID ends
    /// up here, and the decoder follows it ([`Decoder::follow`]).
    stray: Option<(c_int, f64, u32)>,
    /// Samples decoded while opening, delivered by the first `read`.
    pending: Vec<f32>,
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
    /// Opens a local file: the `file` protocol only (a `concat:`, `http:`,
    /// `pipe:` ... path is refused with [`MediaError::ProtocolRefused`]),
    /// an audio container of [`input::FILE_FORMATS`] only (anything else,
    /// e.g. an HLS playlist, is refused with [`MediaError::FormatRefused`]),
    /// audio decoders only. `channels`: the output channel count, or `None`
    /// for the file's own. Output is at `rate` Hz. Worker or control thread.
    pub fn open_file(path: &Path, rate: u32, channels: Option<usize>) -> Result<Self, MediaError> {
        super::log::install();
        let label = path.display().to_string();
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| MediaError::Nul { field: "path" })?;
        let protocol = input::protocol_of(&cpath);
        if protocol != "file" {
            return Err(MediaError::ProtocolRefused { path: label, protocol });
        }
        let mut io = FileInput(std::ptr::null_mut());
        let mut open = input::Options::default();
        open.set(c"protocol_whitelist", c"file")?;
        // SAFETY: valid out pointer, NUL-terminated URL, our dictionary.
        let r = unsafe {
            ff::avio_open2(
                &mut io.0,
                cpath.as_ptr(),
                ff::AVIO_FLAG_READ as c_int,
                std::ptr::null(),
                &mut open.0,
            )
        };
        check(r, || format!("open {label}"))?;
        let mut format: *const ff::AVInputFormat = std::ptr::null();
        // SAFETY: an open AVIO context; probing rewinds it afterwards.
        let r = unsafe {
            ff::av_probe_input_buffer2(io.0, &mut format, cpath.as_ptr(), std::ptr::null_mut(), 0, 0)
        };
        check(r, || format!("{label}: not a recognised audio file"))?;
        // SAFETY: a probed format has a static name.
        let name = unsafe { CStr::from_ptr((*format).name) }.to_string_lossy().into_owned();
        if !input::format_allowed(&name, input::FILE_FORMATS) {
            return Err(MediaError::FormatRefused { input: label, format: name });
        }
        // SAFETY: plain allocation, checked.
        let mut fmt = unsafe { ff::avformat_alloc_context() };
        if fmt.is_null() {
            return Err(MediaError::Alloc { what: "format context" });
        }
        let mut options = Policy::File.format_options()?;
        // SAFETY: `fmt` is fresh; our AVIO is attached as custom I/O (FFmpeg
        // never closes it); the probed format is forced. On failure
        // avformat_open_input frees `fmt` and nulls it.
        let r = unsafe {
            (*fmt).pb = io.0;
            (*fmt).flags |= ff::AVFMT_FLAG_CUSTOM_IO as c_int;
            ff::avformat_open_input(&mut fmt, cpath.as_ptr(), format, &mut options.0)
        };
        check(r, || format!("open {label}"))?;
        Self::finish_open(fmt, InputIo::File(io), Policy::File, label, rate, channels)
    }

    /// Opens an MPEG-TS byte stream read from `source`, output as
    /// `channels` channels at `rate` Hz. Blocks until the stream's audio
    /// parameters are known (or the source ends). Only the MPEG-TS demuxer
    /// and the audio codecs of [`input::TS_CODECS`] are used; other streams
    /// (video, data) are discarded before probing, and probing is bounded.
    /// Worker threads only.
    pub fn open_ts(source: Box<dyn TsInput>, rate: u32, channels: usize) -> Result<Self, MediaError> {
        super::log::install();
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
        let mut options = match Policy::Ts.format_options() {
            Ok(o) => o,
            Err(e) => {
                // SAFETY: not opened yet: a plain free.
                unsafe { ff::avformat_free_context(fmt) };
                return Err(e);
            }
        };
        // SAFETY: `fmt` is a fresh context; we attach our AVIO and mark it
        // custom so FFmpeg never closes it; the demuxer is forced (no
        // probing of other formats). On failure avformat_open_input frees
        // `fmt` and nulls it.
        let r = unsafe {
            (*fmt).pb = input.avio;
            (*fmt).flags |= ff::AVFMT_FLAG_CUSTOM_IO as c_int;
            (*fmt).probesize = input::TS_PROBE_BYTES;
            (*fmt).max_analyze_duration = input::TS_ANALYZE_MICROS;
            let mpegts = ff::av_find_input_format(c"mpegts".as_ptr());
            if mpegts.is_null() {
                ff::avformat_free_context(fmt);
                return Err(MediaError::DemuxerMissing { name: "mpegts" });
            }
            ff::avformat_open_input(&mut fmt, std::ptr::null(), mpegts, &mut options.0)
        };
        check(r, || "open MPEG-TS stream".into())?;
        Self::finish_open(fmt, InputIo::Custom(input), Policy::Ts, "TS stream".into(), rate, Some(channels))
    }

    fn finish_open(
        fmt: *mut ff::AVFormatContext,
        input: InputIo,
        policy: Policy,
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
            known_streams: 0,
            policy,
            stray: None,
            pending: Vec::new(),
            channels: 0,
            rate,
            label,
            draining: false,
            done: false,
        };
        let label = dec.label.clone();
        // Streams the header declared (for MPEG-TS: the PMT's, parsed in
        // avformat_open_input): everything but accepted audio is dropped
        // before anything else is read, so no video is ever parsed or
        // decoded.
        // SAFETY: `fmt` is an open input context we own.
        let mut refused = unsafe { input::discard_unwanted(fmt, policy) };
        if policy.probes_stream_info() {
            // SAFETY: as above.
            check(unsafe { ff::avformat_find_stream_info(fmt, std::ptr::null_mut()) }, || {
                format!("{label}: stream info")
            })?;
            // Streams found only while probing are discarded now.
            // SAFETY: as above.
            refused = unsafe { input::discard_unwanted(fmt, policy) }.or(refused);
        }
        // SAFETY: plain field of our open context.
        dec.known_streams = unsafe { (*fmt).nb_streams };
        let mut codec: *const ff::AVCodec = std::ptr::null();
        // SAFETY: open context; `codec` receives a static descriptor.
        let mut stream = unsafe {
            ff::av_find_best_stream(fmt, ff::AVMediaType::AVMEDIA_TYPE_AUDIO, -1, -1, &mut codec, 0)
        };
        // FFmpeg's pick ignores discarding: when it chose a refused stream,
        // take the first accepted audio stream instead.
        // SAFETY: open context; indices below `nb_streams`.
        if stream < 0 || unsafe { !accepted(fmt, stream) } {
            // SAFETY: as above.
            stream = (0..dec.known_streams as c_int).find(|&i| unsafe { accepted(fmt, i) }).unwrap_or(-1);
            codec = if stream < 0 {
                std::ptr::null()
            } else {
                // SAFETY: as above; a static descriptor or null.
                unsafe {
                    ff::avcodec_find_decoder((*(*(*(*fmt).streams.add(stream as usize))).codecpar).codec_id)
                }
            };
        }
        if stream < 0 || codec.is_null() {
            return Err(match refused {
                Some(id) => MediaError::CodecRefused { input: label, codec: input::codec_name(id) },
                None => MediaError::NoAudio { input: label },
            });
        }
        // SAFETY: `stream` indexes the context's streams (checked above).
        let st = unsafe { *(*fmt).streams.add(stream as usize) };
        dec.stream = stream;
        // Other accepted audio streams (a second language) are not needed
        // either: discarded too.
        dec.discard_others();
        // SAFETY: `st` is the context's stream `stream`; `codec` its decoder.
        unsafe { dec.open_codec(st, codec)? };
        // SAFETY: open context, plain field.
        let own = unsafe { (*dec.codec.0).ch_layout.nb_channels };
        let out = channels.map_or(own, |c| c as c_int);
        if !(1..=64).contains(&out) {
            return Err(MediaError::Channels { input: label, channels: out });
        }
        dec.channels = out as usize;
        if !policy.probes_stream_info() {
            dec.prime()?;
        }
        Ok(dec)
    }

    /// Decodes up to the first samples, so that the stream's parameters
    /// are known when the decoder is handed out (MPEG-TS, where no
    /// stream-info probing ran). Reads at most [`input::TS_PROBE_BYTES`]
    /// more bytes.
    fn prime(&mut self) -> Result<(), MediaError> {
        // SAFETY: our open context and its (custom) AVIO; plain field.
        let start = unsafe { (*(*self.fmt).pb).pos };
        let mut pending = Vec::new();
        loop {
            let more = self.read(&mut pending)?;
            if !pending.is_empty() {
                self.pending = pending;
                return Ok(());
            }
            // SAFETY: as above.
            let read = unsafe { (*(*self.fmt).pb).pos } - start;
            if !more || read > input::TS_PROBE_BYTES {
                return Err(MediaError::NoAudio { input: self.label.clone() });
            }
        }
    }

    /// Opens a decoder (on the policy's whitelist) for stream `st`, whose
    /// decoder is `codec`, replacing the current one.
    ///
    /// # Safety
    /// `st` is a stream of our open context and `codec` a decoder descriptor.
    unsafe fn open_codec(&mut self, st: *mut ff::AVStream, codec: *const ff::AVCodec) -> Result<(), MediaError> {
        // SAFETY: allocation for a valid codec, owned by `self` at once
        // (the previous context, if any, is freed by the replacement).
        self.codec = CodecContext(unsafe { ff::avcodec_alloc_context3(codec) });
        if self.codec.0.is_null() {
            return Err(MediaError::Alloc { what: "decoder context" });
        }
        let mut options = input::Options::default();
        options.set(c"codec_whitelist", self.policy.decoders())?;
        let label = &self.label;
        // SAFETY: the stream's parameters are copied into our context; the
        // decoder opens only if it is on the whitelist.
        unsafe {
            check(ff::avcodec_parameters_to_context(self.codec.0, (*st).codecpar), || {
                format!("{label}: decoder parameters")
            })?;
            (*self.codec.0).pkt_timebase = (*st).time_base;
            check(ff::avcodec_open2(self.codec.0, codec, &mut options.0), || format!("{label}: open decoder"))?;
        }
        Ok(())
    }

    /// Discards every stream but the one decoded.
    fn discard_others(&mut self) {
        // SAFETY: our open context; plain field; streams are only marked.
        unsafe {
            self.known_streams = (*self.fmt).nb_streams;
            for i in 0..self.known_streams as usize {
                if i as c_int != self.stream {
                    (*(*(*self.fmt).streams.add(i))).discard = ff::AVDiscard::AVDISCARD_ALL;
                }
            }
        }
    }

    /// Looks at streams that appeared since the last look (MPEG-TS adds
    /// streams when a new PMT arrives). A file's are discarded. In a TS,
    /// everything the policy refuses is discarded before it is parsed, so
    /// no video is ever parsed; an accepted audio stream is kept, parsed
    /// and never decoded, as where the programme's audio may have moved.
    fn discard_new_streams(&mut self) {
        // SAFETY: our open context; plain field.
        let n = unsafe { (*self.fmt).nb_streams };
        if n == self.known_streams {
            return;
        }
        if self.policy == Policy::Ts {
            self.known_streams = n;
            // SAFETY: our open context.
            unsafe { input::discard_unwanted(self.fmt, self.policy) };
        } else {
            self.discard_others();
        }
    }

    /// Notes a packet of accepted audio stream `index`, not ours. Once such
    /// packets span a second (or 64 of them without timestamps) without a
    /// packet of ours in between, the programme's audio has moved: the
    /// decoder switches to that stream and returns true.
    fn follow(&mut self, index: c_int) -> Result<bool, MediaError> {
        // SAFETY: the packet was filled by av_read_frame for stream
        // `index`, below nb_streams; plain fields.
        let (at, st) = unsafe {
            let st = *(*self.fmt).streams.add(index as usize);
            let pts = (*self.packet.0).pts;
            let tb = (*st).time_base;
            let at = if pts == ff::AV_NOPTS_VALUE || tb.den == 0 {
                f64::NAN
            } else {
                pts as f64 * f64::from(tb.num) / f64::from(tb.den)
            };
            (at, st)
        };
        let (first, seen) = match self.stray {
            Some((s, first, seen)) if s == index => (first, seen + 1),
            _ => (at, 1),
        };
        self.stray = Some((index, first, seen));
        let span = at - first;
        if !(span.abs() >= 1.0 || seen >= 64) {
            return Ok(false);
        }
        // SAFETY: plain fields of our context's streams; `index` and
        // `self.stream` are below nb_streams.
        let (from, to, codec) = unsafe {
            let old = *(*self.fmt).streams.add(self.stream as usize);
            (*old).discard = ff::AVDiscard::AVDISCARD_ALL;
            ((*old).id, (*st).id, ff::avcodec_find_decoder((*(*st).codecpar).codec_id))
        };
        if codec.is_null() {
            return Ok(false);
        }
        self.stream = index;
        self.stray = None;
        // SAFETY: `st` is stream `index` of our context; `codec` its decoder.
        unsafe { self.open_codec(st, codec)? };
        tracing::warn!(input = %self.label, from_pid = from, to_pid = to, "the audio moved to another PID: decoding that one");
        Ok(true)
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
        if !self.pending.is_empty() {
            out.append(&mut self.pending);
            return Ok(true);
        }
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
            self.discard_new_streams();
            // SAFETY: the packet was filled by av_read_frame.
            let index = unsafe { (*self.packet.0).stream_index };
            if index == self.stream {
                self.stray = None;
            } else if self.policy == Policy::Ts && index >= 0 && (index as u32) < self.known_streams {
                // Only accepted audio gets here: everything else is discarded.
                if let Err(e) = self.follow(index) {
                    // SAFETY: the packet was filled by av_read_frame.
                    unsafe { ff::av_packet_unref(self.packet.0) };
                    return Err(e);
                }
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
        let format = input::sample_format(key.0)
            .ok_or_else(|| MediaError::SampleFormat { input: self.label.clone(), format: key.0 })?;
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
                format,
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

/// Feeds `data` through the SRT input's reading path — a [`TsInput`],
/// [`Decoder::open_ts`], [`Decoder::read`] until the end — as the engine
/// does for a connection; returns the samples decoded (stereo, 48 kHz).
/// Refusals and decode errors are normal outcomes; it must never crash,
/// hang or leak. Used by the `srt_input` fuzz target and its corpus replay
/// test. Worker threads only.
pub fn check_srt_input_path(data: &[u8]) -> Result<usize, MediaError> {
    const CHANNELS: usize = 2;
    let mut decoder = Decoder::open_ts(Box::new(TsBytes::new(data.to_vec())), 48_000, CHANNELS)?;
    let mut samples = Vec::new();
    let mut total = 0;
    loop {
        let more = decoder.read(&mut samples)?;
        assert_eq!(samples.len() % CHANNELS, 0, "interleaved output cut mid-frame");
        total += samples.len();
        samples.clear();
        if !more {
            return Ok(total);
        }
    }
}

/// Whether stream `i` of `fmt` is audio that was not discarded.
///
/// # Safety
/// `fmt` is an open input context and `i` below its `nb_streams`.
unsafe fn accepted(fmt: *mut ff::AVFormatContext, i: c_int) -> bool {
    // SAFETY: the caller's guarantees.
    unsafe {
        let st = *(*fmt).streams.add(i as usize);
        (*st).discard != ff::AVDiscard::AVDISCARD_ALL
            && (*(*st).codecpar).codec_type == ff::AVMediaType::AVMEDIA_TYPE_AUDIO
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
