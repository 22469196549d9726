//! Audio encoders: AAC (native), Opus (libopus), MP2, S302M.

use std::ffi::{CStr, c_int};

use airlift_ipc::spec::Codec;
use ff::AVSampleFormat as Fmt;
use ffmpeg_sys_next as ff;

use super::mux::sealed::WritePacket;
use super::{CodecContext, Frame, MediaError, Packet, check, default_layout};

/// An open encoder taking interleaved f32 at the flow's rate. Worker threads only.
pub struct Encoder {
    ctx: CodecContext,
    frame: Frame,
    packet: Packet,
    name: &'static str,
    channels: usize,
    frame_size: usize,
    format: Fmt,
    small_last_frame: bool,
    /// Significant bits of 32-bit integer samples (24 for FLAC and
    /// `pcm_s24le`, which drop the low byte): rounded at that depth.
    depth: u32,
    pending: Vec<f32>,
    pts: i64,
    recipe: Recipe,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("codec", &self.name)
            .field("channels", &self.channels)
            .field("frame_size", &self.frame_size)
            .finish()
    }
}

// SAFETY: the encoder exclusively owns its FFmpeg contexts, which FFmpeg
// allows to be used from any one thread at a time.
unsafe impl Send for Encoder {}

/// FFmpeg's encoder name and default bitrate for a codec.
fn encoder_name(codec: Codec) -> (&'static str, i64) {
    match codec {
        Codec::Aac => ("aac", 128_000),
        Codec::Opus => ("libopus", 96_000),
        Codec::Mp2 => ("mp2", 192_000),
        Codec::S302m => ("s302m", 0),
    }
}

const PREFERRED: [Fmt; 6] = [
    Fmt::AV_SAMPLE_FMT_FLTP,
    Fmt::AV_SAMPLE_FMT_FLT,
    Fmt::AV_SAMPLE_FMT_S32,
    Fmt::AV_SAMPLE_FMT_S16,
    Fmt::AV_SAMPLE_FMT_S32P,
    Fmt::AV_SAMPLE_FMT_S16P,
];

/// How an encoder is opened: what the codec and container need.
#[derive(Clone, Copy)]
pub(super) struct EncoderSetup {
    /// FFmpeg's encoder.
    pub codec: *const ff::AVCodec,
    /// Its name, static in FFmpeg.
    pub name: &'static str,
    /// Bitrate when none is asked for (0: leave FFmpeg's default).
    pub default_bitrate: i64,
    /// The container wants codec headers out of band (MP4, Matroska, Ogg).
    pub global_header: bool,
}

// SAFETY: `codec` points at one of FFmpeg's static, immutable encoder
// descriptors, which any thread may read.
unsafe impl Send for EncoderSetup {}

/// Everything an encoder was opened with, to open another one just like
/// it (on another thread: see [`super::ChunkedEncoder`]).
#[derive(Clone, Copy)]
pub(super) struct Recipe {
    setup: EncoderSetup,
    channels: usize,
    rate: u32,
    bitrate: Option<u32>,
}

impl Recipe {
    /// A fresh encoder with the same settings.
    pub(super) fn open(&self) -> Result<Encoder, MediaError> {
        Encoder::open(&self.setup, self.channels, self.rate, self.bitrate)
    }
}

/// The encoder called `name` in this FFmpeg build, with its static name.
pub(super) fn find_encoder(name: &str) -> Result<(*const ff::AVCodec, &'static str), MediaError> {
    let missing = || MediaError::EncoderMissing { name: name.to_owned() };
    let cname = std::ffi::CString::new(name).map_err(|_| MediaError::Nul { field: "codec" })?;
    // SAFETY: a NUL-terminated name; the result is a static descriptor or null.
    let enc = unsafe { ff::avcodec_find_encoder_by_name(cname.as_ptr()) };
    if enc.is_null() {
        return Err(missing());
    }
    // SAFETY: a valid descriptor's name is a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr((*enc).name) }.to_str().map_err(|_| missing())?;
    Ok((enc, name))
}

impl Encoder {
    /// Opens `codec` for `channels` at `rate` Hz; `bitrate` in bit/s (the
    /// codec's default when `None`; ignored by S302M).
    pub fn new(codec: Codec, channels: usize, rate: u32, bitrate: Option<u32>) -> Result<Self, MediaError> {
        super::log::install();
        let (name, default_bitrate) = encoder_name(codec);
        let (enc, name) = find_encoder(name)?;
        if codec == Codec::S302m && (rate != 48_000 || !matches!(channels, 2 | 4 | 6 | 8)) {
            return Err(MediaError::Settings {
                codec: name,
                channels,
                rate,
                reason: "S302M needs 48 kHz and 2, 4, 6 or 8 channels",
            });
        }
        // MPEG-TS wants in-band headers (ADTS for AAC), not global ones.
        let setup = EncoderSetup { codec: enc, name, default_bitrate, global_header: false };
        Self::open(&setup, channels, rate, bitrate)
    }

    /// Opens the encoder described by `setup`. FFmpeg's experimental
    /// encoders are refused, except S302M, whose only encoder is marked so.
    pub(super) fn open(
        setup: &EncoderSetup,
        channels: usize,
        rate: u32,
        bitrate: Option<u32>,
    ) -> Result<Self, MediaError> {
        super::log::install();
        let (enc, name, default_bitrate) = (setup.codec, setup.name, setup.default_bitrate);
        let settings = |reason| MediaError::Settings { codec: name, channels, rate, reason };
        if channels == 0 || channels > 64 {
            return Err(settings("channel count outside 1..=64"));
        }
        // SAFETY: `enc` is a valid static codec descriptor; its lists are
        // terminated by -1 / 0 / a zeroed layout as documented.
        let (format, rates_ok, layouts_ok, caps, audio) = unsafe {
            let fmts = (*enc).sample_fmts;
            let mut supported = Vec::new();
            if !fmts.is_null() {
                let mut p = fmts;
                while *p != Fmt::AV_SAMPLE_FMT_NONE {
                    supported.push(*p);
                    p = p.add(1);
                }
            }
            let format = PREFERRED.iter().copied().find(|f| supported.contains(f));
            let rates = (*enc).supported_samplerates;
            let mut rates_ok = rates.is_null();
            if !rates.is_null() {
                let mut p = rates;
                while *p != 0 {
                    rates_ok |= *p as u32 == rate;
                    p = p.add(1);
                }
            }
            let layouts = (*enc).ch_layouts;
            let mut layouts_ok = layouts.is_null();
            if !layouts.is_null() {
                let mut p = layouts;
                while (*p).nb_channels != 0 {
                    layouts_ok |= (*p).nb_channels as usize == channels;
                    p = p.add(1);
                }
            }
            let audio = (*enc).type_ == ff::AVMediaType::AVMEDIA_TYPE_AUDIO;
            (format, rates_ok, layouts_ok, (*enc).capabilities as u32, audio)
        };
        if !audio {
            return Err(settings("not an audio encoder"));
        }
        let experimental = caps & ff::AV_CODEC_CAP_EXPERIMENTAL != 0;
        if experimental && name != "s302m" {
            return Err(settings(
                "FFmpeg marks this encoder experimental; pick another (e.g. libopus for Opus)",
            ));
        }
        let format = format.ok_or_else(|| settings("no sample format this engine can feed"))?;
        if !rates_ok {
            return Err(settings("sample rate not supported by the encoder"));
        }
        if !layouts_ok {
            return Err(settings("channel count not supported by the encoder"));
        }
        // SAFETY: allocation for a valid codec, checked.
        let ctx = CodecContext(unsafe { ff::avcodec_alloc_context3(enc) });
        if ctx.0.is_null() {
            return Err(MediaError::Alloc { what: "encoder context" });
        }
        // SAFETY: `ctx.0` is a fresh context we own; we set plain fields
        // before opening it.
        unsafe {
            let c = &mut *ctx.0;
            c.sample_fmt = format;
            c.sample_rate = rate as c_int;
            c.time_base = ff::AVRational { num: 1, den: rate as c_int };
            ff::av_channel_layout_uninit(&mut c.ch_layout);
            c.ch_layout = default_layout(channels);
            if default_bitrate > 0 {
                c.bit_rate = bitrate.map_or(default_bitrate, i64::from);
            }
            if experimental {
                // FFmpeg marks its S302M encoder experimental.
                c.strict_std_compliance = ff::FF_COMPLIANCE_EXPERIMENTAL;
            }
            if setup.global_header {
                c.flags |= ff::AV_CODEC_FLAG_GLOBAL_HEADER as c_int;
            }
        }
        // SAFETY: the context is configured; open it with no options.
        check(unsafe { ff::avcodec_open2(ctx.0, enc, std::ptr::null_mut()) }, || {
            format!("open encoder {name}")
        })?;
        // SAFETY: the context is open; read-only fields.
        let depth = unsafe { [(*ctx.0).bits_per_raw_sample, (*ctx.0).bits_per_coded_sample] }
            .into_iter()
            .filter_map(|b| u32::try_from(b).ok().filter(|b| (1..32).contains(b)))
            .min()
            .unwrap_or(32);
        // SAFETY: the context is open; frame_size is set by the encoder.
        let frame_size = match unsafe { (*ctx.0).frame_size } {
            n if n > 0 => n as usize,
            _ => (rate / 50) as usize,
        };
        let frame = Frame::new()?;
        // SAFETY: `frame.0` is a fresh frame; we describe the buffers we want
        // and let FFmpeg allocate them once.
        unsafe {
            let f = &mut *frame.0;
            f.format = format as c_int;
            f.nb_samples = frame_size as c_int;
            f.sample_rate = rate as c_int;
            check(ff::av_channel_layout_copy(&mut f.ch_layout, &(*ctx.0).ch_layout), || {
                "copy channel layout".into()
            })?;
            check(ff::av_frame_get_buffer(frame.0, 0), || "allocate encoder frame".into())?;
        }
        let small_last_frame =
            caps & (ff::AV_CODEC_CAP_SMALL_LAST_FRAME | ff::AV_CODEC_CAP_VARIABLE_FRAME_SIZE) != 0;
        Ok(Self {
            ctx,
            frame,
            packet: Packet::new()?,
            name,
            channels,
            frame_size,
            format,
            small_last_frame,
            depth,
            pending: Vec::with_capacity(frame_size * channels * 4),
            pts: 0,
            recipe: Recipe { setup: *setup, channels, rate, bitrate },
        })
    }

    /// Samples per channel in one codec frame.
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// FFmpeg's encoder name (`aac`, `libopus`, `mp2`, `s302m`, `flac`, ...).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Channels encoded.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// How to open another encoder like this one.
    pub(super) fn recipe(&self) -> Recipe {
        self.recipe
    }

    /// Sample rate in Hz.
    pub fn rate(&self) -> u32 {
        // SAFETY: the context is open; a read-only field we set.
        unsafe { (*self.ctx.0).sample_rate as u32 }
    }

    /// The time base of the packets' timestamps.
    pub(super) fn time_base(&self) -> ff::AVRational {
        // SAFETY: the context is open; a read-only field.
        unsafe { (*self.ctx.0).time_base }
    }

    pub(super) fn context(&self) -> *const ff::AVCodecContext {
        self.ctx.0
    }

    /// Starts the timestamps at `pts` (in samples) instead of 0; only before
    /// the first frame is sent. Worker thread.
    pub fn start_at(&mut self, pts: i64) {
        if self.pts == 0 && self.pending.is_empty() {
            self.pts = pts;
        }
    }

    /// Encodes interleaved samples, writing finished packets to `mux`.
    pub fn encode(&mut self, interleaved: &[f32], mux: &mut impl super::Muxer) -> Result<(), MediaError> {
        self.pending.extend_from_slice(interleaved);
        let block = self.frame_size * self.channels;
        let mut start = 0;
        while self.pending.len() - start >= block {
            self.fill_and_send(start, self.frame_size)?;
            start += block;
            self.drain(mux)?;
        }
        self.pending.drain(..start);
        Ok(())
    }

    /// Encodes what is pending (padded to a full frame with silence when the
    /// codec needs it), flushes the encoder and writes the rest to `mux`.
    pub fn finish(&mut self, mux: &mut impl super::Muxer) -> Result<(), MediaError> {
        let left = self.pending.len() / self.channels;
        if left > 0 {
            let frames = if self.small_last_frame {
                left
            } else {
                self.pending.resize(self.frame_size * self.channels, 0.0);
                self.frame_size
            };
            self.fill_and_send(0, frames)?;
            self.drain(mux)?;
            self.pending.clear();
        }
        // SAFETY: a null frame asks the open encoder to flush.
        check(unsafe { ff::avcodec_send_frame(self.ctx.0, std::ptr::null()) }, || {
            format!("flush {}", self.name)
        })?;
        self.drain(mux)
    }

    fn fill_and_send(&mut self, start: usize, frames: usize) -> Result<(), MediaError> {
        let ch = self.channels;
        let src = &self.pending[start..start + frames * ch];
        // SAFETY: the frame was allocated for `frame_size` samples of
        // `format` and `ch` channels; make_writable keeps that shape. We
        // write `frames <= frame_size` samples per channel into its planes
        // (one per channel when planar, else one interleaved plane).
        unsafe {
            check(ff::av_frame_make_writable(self.frame.0), || "encoder frame writable".into())?;
            let f = &mut *self.frame.0;
            f.nb_samples = frames as c_int;
            f.pts = self.pts;
            let planes = f.extended_data;
            match self.format {
                Fmt::AV_SAMPLE_FMT_FLTP => {
                    for c in 0..ch {
                        let dst = std::slice::from_raw_parts_mut((*planes.add(c)).cast::<f32>(), frames);
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = src[i * ch + c];
                        }
                    }
                }
                Fmt::AV_SAMPLE_FMT_FLT => {
                    std::slice::from_raw_parts_mut((*planes).cast::<f32>(), frames * ch).copy_from_slice(src);
                }
                Fmt::AV_SAMPLE_FMT_S16 => {
                    let dst = std::slice::from_raw_parts_mut((*planes).cast::<i16>(), frames * ch);
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = to_i16(*s);
                    }
                }
                Fmt::AV_SAMPLE_FMT_S32 => {
                    let dst = std::slice::from_raw_parts_mut((*planes).cast::<i32>(), frames * ch);
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = to_i32(*s, self.depth);
                    }
                }
                Fmt::AV_SAMPLE_FMT_S16P => {
                    for c in 0..ch {
                        let dst = std::slice::from_raw_parts_mut((*planes.add(c)).cast::<i16>(), frames);
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = to_i16(src[i * ch + c]);
                        }
                    }
                }
                _ => {
                    for c in 0..ch {
                        let dst = std::slice::from_raw_parts_mut((*planes.add(c)).cast::<i32>(), frames);
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = to_i32(src[i * ch + c], self.depth);
                        }
                    }
                }
            }
        }
        self.pts += frames as i64;
        // SAFETY: the frame is filled and the encoder open.
        check(unsafe { ff::avcodec_send_frame(self.ctx.0, self.frame.0) }, || {
            format!("encode {}", self.name)
        })?;
        Ok(())
    }

    fn drain(&mut self, mux: &mut impl WritePacket) -> Result<(), MediaError> {
        loop {
            // SAFETY: open encoder and owned packet.
            let r = unsafe { ff::avcodec_receive_packet(self.ctx.0, self.packet.0) };
            if r == ff::AVERROR(ff::EAGAIN) || r == ff::AVERROR_EOF {
                return Ok(());
            }
            check(r, || format!("encode {}", self.name))?;
            let tb = self.time_base();
            let written = mux.write_packet(self.packet.0, tb);
            // SAFETY: the packet is ours; unref releases its data.
            unsafe { ff::av_packet_unref(self.packet.0) };
            written?;
        }
    }
}

fn to_i16(s: f32) -> i16 {
    (s * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// `s` as a 32-bit sample rounded to `depth` significant bits (the rest zero).
fn to_i32(s: f32, depth: u32) -> i32 {
    let full = f64::from(1u32 << (depth - 1));
    let v = (f64::from(s) * full).round().clamp(-full, full - 1.0) as i32;
    v << (32 - depth)
}

/// The FFmpeg name of the encoder used for `codec`, e.g. for logs.
pub(super) fn codec_label(ctx: *const ff::AVCodecContext) -> String {
    // SAFETY: an open context always has a codec with a static name.
    unsafe {
        let codec = (*ctx).codec;
        if codec.is_null() {
            String::new()
        } else {
            CStr::from_ptr((*codec).name).to_string_lossy().into_owned()
        }
    }
}
