//! What an input may make FFmpeg do, decided before FFmpeg sees a byte:
//! which protocols, containers and decoders are accepted, which streams are
//! discarded, and how much probing is allowed. Everything refused gets a
//! typed [`MediaError`] naming the input.
//!
//! - SRT (network) inputs: the MPEG-TS demuxer only, forced (no format
//!   probing), the audio decoders in [`TS_CODECS`] only, every other stream
//!   discarded as soon as the PMT declares it, no stream-info probing (the
//!   PMT names the codecs; streams of undeclared types are never
//!   content-probed), the PAT/PMT scan and the wait for the first audio
//!   frame bounded by [`TS_PROBE_BYTES`], at most 32 streams.
//! - File inputs: the `file` protocol only, the audio containers in
//!   [`FILE_FORMATS`] only (the probed container is checked before it is
//!   opened, so an HLS playlist or an `ffconcat` list is refused), audio
//!   decoders only (for the one stream played), non-audio streams discarded
//!   before stream-info probing.

use std::ffi::{CStr, CString, c_int};
use std::sync::OnceLock;

use ffmpeg_sys_next as ff;

use super::MediaError;

/// The audio codecs an SRT (MPEG-TS) input decodes: FFmpeg's codec, its
/// name in messages.
pub const TS_CODECS: &[(ff::AVCodecID, &str)] = &[
    (ff::AVCodecID::AV_CODEC_ID_AAC, "aac"),
    (ff::AVCodecID::AV_CODEC_ID_AAC_LATM, "aac_latm"),
    (ff::AVCodecID::AV_CODEC_ID_MP2, "mp2"),
    (ff::AVCodecID::AV_CODEC_ID_MP3, "mp3"),
    (ff::AVCodecID::AV_CODEC_ID_OPUS, "opus"),
    (ff::AVCodecID::AV_CODEC_ID_AC3, "ac3"),
    (ff::AVCodecID::AV_CODEC_ID_EAC3, "eac3"),
    (ff::AVCodecID::AV_CODEC_ID_S302M, "s302m"),
];

/// FFmpeg's decoders for [`TS_CODECS`], as its `codec_whitelist` option.
const TS_DECODERS: &CStr =
    c"aac,aac_fixed,aac_latm,mp2,mp2float,mp3,mp3float,opus,libopus,ac3,ac3_fixed,eac3,s302m";

/// Bytes an SRT input may read looking for its PAT and PMT, and again
/// looking for its first audio frame: 1.6 s of a 5 Mbit/s stream, minutes
/// of audio alone. Both stop as soon as they find what they look for.
pub const TS_PROBE_BYTES: i64 = 1024 * 1024;

/// Stream time FFmpeg may analyse, in microseconds (a bound should any
/// analysis run; MPEG-TS inputs are not stream-info probed).
pub const TS_ANALYZE_MICROS: i64 = 1_000_000;

/// Streams an SRT input may declare (programmes carry a handful).
const TS_MAX_STREAMS: &CStr = c"32";

/// The containers a file input may be (FFmpeg demuxer names): audio files
/// and the MPEG-TS the engine records itself.
pub const FILE_FORMATS: &[&str] = &[
    "wav", "w64", "flac", "mp3", "ogg", "mov", "mp4", "m4a", "matroska", "webm", "aac", "aiff", "caf", "au",
    "ac3", "eac3", "wv", "mpegts",
];

/// Whether FFmpeg's demuxer `name` (a comma-separated list such as
/// `mov,mp4,m4a,3gp,3g2,mj2`) is one of `allowed`.
pub fn format_allowed(name: &str, allowed: &[&str]) -> bool {
    name.split(',').any(|n| allowed.contains(&n))
}

/// [`FILE_FORMATS`] as FFmpeg's `format_whitelist` option.
fn file_formats() -> &'static CStr {
    static LIST: OnceLock<CString> = OnceLock::new();
    LIST.get_or_init(|| CString::new(FILE_FORMATS.join(",")).unwrap_or_default())
}

/// Every audio decoder of this FFmpeg build, as a `codec_whitelist`: a file
/// input may be in any audio codec, never opens a video or subtitle decoder.
fn audio_decoders() -> &'static CStr {
    static LIST: OnceLock<CString> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut names = Vec::new();
        let mut opaque = std::ptr::null_mut();
        loop {
            // SAFETY: iterates FFmpeg's static codec table with its cursor.
            let codec = unsafe { ff::av_codec_iterate(&mut opaque) };
            if codec.is_null() {
                break;
            }
            // SAFETY: a static codec descriptor with a static name.
            unsafe {
                if ff::av_codec_is_decoder(codec) != 0
                    && (*codec).type_ == ff::AVMediaType::AVMEDIA_TYPE_AUDIO
                {
                    names.push(CStr::from_ptr((*codec).name).to_string_lossy().into_owned());
                }
            }
        }
        CString::new(names.join(",")).unwrap_or_default()
    })
}

/// How a [`super::Decoder`]'s input is restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    /// An SRT (network) input carrying MPEG-TS.
    Ts,
    /// A local file.
    File,
}

impl Policy {
    /// Whether a stream of `codec` may be decoded.
    pub(super) fn codec_allowed(self, codec: ff::AVCodecID) -> bool {
        match self {
            Self::Ts => TS_CODECS.iter().any(|(id, _)| *id == codec),
            // The codec whitelist decides; unknown codecs have no decoder.
            Self::File => codec != ff::AVCodecID::AV_CODEC_ID_NONE,
        }
    }

    /// Whether FFmpeg's stream-info probing runs (it may open a decoder
    /// for every stream and read far ahead). An MPEG-TS input knows its
    /// codecs from the PMT and is not probed: the chosen audio decoder
    /// finds the rest in the first frames.
    pub(super) fn probes_stream_info(self) -> bool {
        self == Self::File
    }

    /// The `codec_whitelist` for this kind of input.
    pub(super) fn decoders(self) -> &'static CStr {
        match self {
            Self::Ts => TS_DECODERS,
            Self::File => audio_decoders(),
        }
    }

    /// The options for `avformat_open_input`.
    pub(super) fn format_options(self) -> Result<Options, MediaError> {
        let mut o = Options::default();
        match self {
            Self::Ts => {
                o.set(c"codec_whitelist", self.decoders())?;
                o.set(c"format_whitelist", c"mpegts")?;
                // A custom byte source opens nothing; a nested open (none in
                // the TS demuxer) would find no protocol allowed.
                o.set(c"protocol_whitelist", c"none")?;
                o.set(c"max_streams", TS_MAX_STREAMS)?;
            }
            Self::File => {
                o.set(c"format_whitelist", file_formats())?;
                o.set(c"protocol_whitelist", c"file")?;
                // WAV and other PCM demuxers cut 4 KiB packets by default:
                // 32 frames of a 64-channel file, a packet and a decode call
                // each. 16 KiB packets halve the decoding time of such
                // files; larger ones cost more in the WAV demuxer's S/PDIF
                // probe of the first packet than they save. Demuxers
                // without the option leave it in the dictionary.
                o.set(c"max_size", c"16384")?;
            }
        }
        Ok(o)
    }
}

/// The protocol FFmpeg would use for `url` (`file` for a plain path).
pub(super) fn protocol_of(url: &CStr) -> String {
    // SAFETY: NUL-terminated input; the result is null or a static name.
    let name = unsafe { ff::avio_find_protocol_name(url.as_ptr()) };
    if name.is_null() {
        // Not a protocol FFmpeg knows: name what it would have looked for.
        let text = url.to_string_lossy();
        return text.split(':').next().unwrap_or_default().chars().take(32).collect();
    }
    // SAFETY: static NUL-terminated name.
    unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

/// Marks every stream except audio in an allowed codec to be discarded, so
/// the demuxer drops its packets and stream-info probing opens no decoder
/// for it. Returns the codec of the first audio stream refused, if any.
///
/// # Safety
/// `fmt` is an open input context.
pub(super) unsafe fn discard_unwanted(
    fmt: *mut ff::AVFormatContext,
    policy: Policy,
) -> Option<ff::AVCodecID> {
    let mut refused = None;
    // SAFETY: the caller's open context; `streams` holds `nb_streams`
    // valid stream pointers, each with parameters.
    unsafe {
        for i in 0..(*fmt).nb_streams as usize {
            let st = *(*fmt).streams.add(i);
            let par = (*st).codecpar;
            let audio = (*par).codec_type == ff::AVMediaType::AVMEDIA_TYPE_AUDIO;
            if audio && policy.codec_allowed((*par).codec_id) {
                continue;
            }
            if audio && refused.is_none() {
                refused = Some((*par).codec_id);
            }
            (*st).discard = ff::AVDiscard::AVDISCARD_ALL;
        }
    }
    refused
}

/// FFmpeg's name for `codec`.
pub(super) fn codec_name(codec: ff::AVCodecID) -> String {
    // SAFETY: returns a static NUL-terminated name for any id.
    unsafe { CStr::from_ptr(ff::avcodec_get_name(codec)) }.to_string_lossy().into_owned()
}

/// An owned `AVDictionary` of options.
#[derive(Debug)]
pub(super) struct Options(pub(super) *mut ff::AVDictionary);

impl Default for Options {
    fn default() -> Self {
        Self(std::ptr::null_mut())
    }
}

impl Options {
    pub(super) fn set(&mut self, key: &CStr, value: &CStr) -> Result<(), MediaError> {
        // SAFETY: our dictionary (null starts one); FFmpeg copies both strings.
        let r = unsafe { ff::av_dict_set(&mut self.0, key.as_ptr(), value.as_ptr(), 0) };
        if r < 0 { Err(MediaError::Alloc { what: "options" }) } else { Ok(()) }
    }
}

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: ours; null is ignored.
        unsafe { ff::av_dict_free(&mut self.0) };
    }
}

/// The sample format FFmpeg reports as an integer (an `AVFrame`'s
/// `format`), if it is one FFmpeg defines.
pub(super) fn sample_format(value: c_int) -> Option<ff::AVSampleFormat> {
    use ff::AVSampleFormat::*;
    [
        AV_SAMPLE_FMT_U8,
        AV_SAMPLE_FMT_S16,
        AV_SAMPLE_FMT_S32,
        AV_SAMPLE_FMT_FLT,
        AV_SAMPLE_FMT_DBL,
        AV_SAMPLE_FMT_U8P,
        AV_SAMPLE_FMT_S16P,
        AV_SAMPLE_FMT_S32P,
        AV_SAMPLE_FMT_FLTP,
        AV_SAMPLE_FMT_DBLP,
        AV_SAMPLE_FMT_S64,
        AV_SAMPLE_FMT_S64P,
    ]
    .into_iter()
    .find(|f| *f as c_int == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_formats_convert_only_when_ffmpeg_defines_them() {
        for f in [ff::AVSampleFormat::AV_SAMPLE_FMT_S16, ff::AVSampleFormat::AV_SAMPLE_FMT_FLTP] {
            assert_eq!(sample_format(f as c_int), Some(f));
        }
        for bad in [-1, ff::AVSampleFormat::AV_SAMPLE_FMT_NB as c_int, 999, c_int::MIN] {
            assert_eq!(sample_format(bad), None, "{bad}");
        }
        // Every defined value converts back to itself.
        for v in 0..ff::AVSampleFormat::AV_SAMPLE_FMT_NB as c_int {
            assert_eq!(sample_format(v).map(|f| f as c_int), Some(v));
        }
    }

    #[test]
    fn container_names_match_any_of_ffmpegs_aliases() {
        assert!(format_allowed("mov,mp4,m4a,3gp,3g2,mj2", FILE_FORMATS));
        assert!(format_allowed("matroska,webm", FILE_FORMATS));
        assert!(format_allowed("wav", FILE_FORMATS));
        for refused in ["hls", "concat", "image2", "lavfi", "tty", "mpegtsraw", "sdp", "rtsp"] {
            assert!(!format_allowed(refused, FILE_FORMATS), "{refused}");
        }
    }

    #[test]
    fn protocols_are_named_as_ffmpeg_would_pick_them() {
        assert_eq!(protocol_of(c"/srv/audio/a.wav"), "file");
        assert_eq!(protocol_of(c"relative/a.flac"), "file");
        assert_eq!(protocol_of(c"concat:/a.wav|/b.wav"), "concat");
        assert_eq!(protocol_of(c"pipe:0"), "pipe");
        assert_eq!(protocol_of(c"nosuchproto:x"), "nosuchproto");
    }

    #[test]
    fn ts_inputs_decode_only_the_listed_audio_codecs() {
        assert!(Policy::Ts.codec_allowed(ff::AVCodecID::AV_CODEC_ID_AAC));
        assert!(Policy::Ts.codec_allowed(ff::AVCodecID::AV_CODEC_ID_S302M));
        assert!(!Policy::Ts.codec_allowed(ff::AVCodecID::AV_CODEC_ID_H264));
        assert!(!Policy::Ts.codec_allowed(ff::AVCodecID::AV_CODEC_ID_DTS));
        let list = audio_decoders().to_string_lossy().into_owned();
        assert!(list.split(',').any(|n| n == "flac"), "{list}");
        assert!(!list.split(',').any(|n| n == "h264"), "{list}");
    }
}
