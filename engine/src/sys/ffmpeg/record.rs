//! A file in any container FFmpeg writes (FLAC, MP3, Ogg, Matroska, MP4,
//! WAV, ...), through a seekable Rust AVIO so headers that are completed at
//! the end (FLAC STREAMINFO, the MP3 Xing frame, the MP4 index) get written.

use std::ffi::{CStr, CString, c_int, c_void};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ffmpeg_sys_next as ff;

use super::encode::{EncoderSetup, find_encoder};
use super::mux::{Muxer, free_output, sealed, write_stream_packet};
use super::{Encoder, MediaError, check};

/// Usual bitrates for lossy encoders when the spec names none; other
/// encoders keep FFmpeg's own default (lossless ones ignore it).
fn default_bitrate(encoder: &str) -> i64 {
    match encoder {
        "aac" | "libfdk_aac" | "libvorbis" => 128_000,
        "libopus" => 96_000,
        "mp2" | "libtwolame" | "libmp3lame" | "libshine" => 192_000,
        "ac3" | "eac3" => 192_000,
        _ => 0,
    }
}

/// What the muxer writes into: the file, and the first error writing it.
struct FileSink {
    file: BufWriter<File>,
    error: Option<std::io::Error>,
}

impl FileSink {
    fn fail(&mut self, e: std::io::Error) -> c_int {
        let code = e.raw_os_error().map_or(ff::AVERROR(ff::EIO), ff::AVERROR);
        self.error.get_or_insert(e);
        code
    }
}

unsafe extern "C" fn write_cb(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    if size <= 0 {
        return 0;
    }
    // SAFETY: `opaque` is the boxed sink owned by the muxer, alive while the
    // AVIO context exists; `buf` holds `size` readable bytes.
    let (sink, data) =
        unsafe { (&mut *opaque.cast::<FileSink>(), std::slice::from_raw_parts(buf, size as usize)) };
    match catch_unwind(AssertUnwindSafe(|| sink.file.write_all(data))) {
        Ok(Ok(())) => size,
        Ok(Err(e)) => sink.fail(e),
        Err(_) => ff::AVERROR(ff::EIO),
    }
}

unsafe extern "C" fn seek_cb(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `write_cb`.
    let sink = unsafe { &mut *opaque.cast::<FileSink>() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        if whence & ff::AVSEEK_SIZE as c_int != 0 {
            sink.file.flush()?;
            return Ok(sink.file.get_ref().metadata()?.len());
        }
        let to = match whence & !(ff::AVSEEK_FORCE as c_int) {
            libc::SEEK_SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| invalid())?),
            libc::SEEK_CUR => SeekFrom::Current(offset),
            libc::SEEK_END => SeekFrom::End(offset),
            _ => return Err(invalid()),
        };
        sink.file.seek(to)
    }));
    match result {
        Ok(Ok(pos)) => i64::try_from(pos).unwrap_or(i64::MAX),
        Ok(Err(e)) => i64::from(sink.fail(e)),
        Err(_) => i64::from(ff::AVERROR(ff::EIO)),
    }
}

fn invalid() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::InvalidInput)
}

/// A file recorder's muxer: one audio stream in the container the file name
/// (or an explicit muxer name) asks for. Worker threads only.
pub struct FileMuxer {
    fmt: *mut ff::AVFormatContext,
    avio: *mut ff::AVIOContext,
    sink: *mut FileSink,
    stream_tb: ff::AVRational,
    path: PathBuf,
    container: String,
}

impl std::fmt::Debug for FileMuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMuxer").field("path", &self.path).field("container", &self.container).finish()
    }
}

// SAFETY: the muxer exclusively owns its contexts and sink; FFmpeg allows a
// format context to be used from any one thread at a time.
unsafe impl Send for FileMuxer {}

/// What [`FileMuxer::create`] records.
#[derive(Debug, Clone, Copy)]
pub struct FileRecording<'a> {
    /// The file written (created or truncated).
    pub path: &'a Path,
    /// FFmpeg muxer name; guessed from the file's extension when `None`.
    pub format: Option<&'a str>,
    /// FFmpeg encoder name; the container's default audio codec when `None`.
    pub codec: Option<&'a str>,
    /// Channels of the audio.
    pub channels: usize,
    /// Sample rate of the audio.
    pub rate: u32,
    /// Bitrate in bit/s for lossy codecs.
    pub bitrate: Option<u32>,
    /// Creates the file for `path` and says where it is: the recording
    /// policy (never over an existing file) lives with the workers
    /// (`crate::workers::recording::create_new`), not in the FFI fence.
    pub create: fn(&Path) -> std::io::Result<(std::fs::File, std::path::PathBuf)>,
}

impl FileMuxer {
    /// Picks the container and codec, checks they fit together and the
    /// audio, opens the encoder, creates a new file (the configured path,
    /// or a rotation name beside it when a file is there: see
    /// [`FileMuxer::path`]) and writes the header. Nothing is created when
    /// the choice is refused.
    pub fn create(rec: &FileRecording<'_>) -> Result<(Encoder, Self), MediaError> {
        super::log::install();
        let shown = rec.path.display().to_string();
        let ofmt = output_format(rec.format, rec.path)?;
        // SAFETY: a static muxer descriptor from av_guess_format.
        let (container, flags, default_codec) = unsafe {
            (CStr::from_ptr((*ofmt).name).to_string_lossy().into_owned(), (*ofmt).flags, (*ofmt).audio_codec)
        };
        if flags & ff::AVFMT_NOFILE as c_int != 0 {
            return Err(MediaError::MuxerMissing { what: format!("{container} writes no file") });
        }
        let (codec, name) = match rec.codec {
            Some(name) => find_encoder(name)?,
            None => {
                if default_codec == ff::AVCodecID::AV_CODEC_ID_NONE {
                    return Err(MediaError::Incompatible { container, codec: "any audio codec".into() });
                }
                // SAFETY: plain lookup of a static descriptor by id.
                let enc = unsafe { ff::avcodec_find_encoder(default_codec) };
                if enc.is_null() {
                    // SAFETY: avcodec_get_name returns a static string for any id.
                    let codec = unsafe { CStr::from_ptr(ff::avcodec_get_name(default_codec)) };
                    return Err(MediaError::EncoderMissing { name: codec.to_string_lossy().into_owned() });
                }
                // SAFETY: a valid descriptor's name is static.
                find_encoder(&unsafe { CStr::from_ptr((*enc).name) }.to_string_lossy())?
            }
        };
        // SAFETY: static descriptors; the query only reads them.
        let fits = unsafe { ff::avformat_query_codec(ofmt, (*codec).id, ff::FF_COMPLIANCE_NORMAL as c_int) };
        if fits == 0 {
            return Err(MediaError::Incompatible { container, codec: name.to_owned() });
        }
        // Muxers without codec tables answer "unknown"; then a refused
        // header means the pair does not fit (FFmpeg logs its reason).
        // SAFETY: static descriptors.
        let unsure = fits < 0 && unsafe { (*codec).id != default_codec };
        let setup = EncoderSetup {
            codec,
            name,
            default_bitrate: default_bitrate(name),
            global_header: flags & ff::AVFMT_GLOBALHEADER as c_int != 0,
        };
        let encoder = Encoder::open(&setup, rec.channels, rec.rate, rec.bitrate)?;
        // A new file, never an existing one (the caller's policy).
        let (file, path) = (rec.create)(rec.path)
            .map_err(|e| MediaError::Io { path: shown.clone(), message: e.to_string() })?;
        let mux = Self::start(ofmt, file, &encoder, &path, container.clone());
        match mux {
            Ok(mux) => Ok((encoder, mux)),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                match e {
                    MediaError::Ffmpeg { what, .. } if unsure && what.ends_with("header") => {
                        Err(MediaError::Incompatible { container, codec: name.to_owned() })
                    }
                    e => Err(e),
                }
            }
        }
    }

    fn start(
        ofmt: *const ff::AVOutputFormat,
        file: File,
        encoder: &Encoder,
        path: &Path,
        container: String,
    ) -> Result<Self, MediaError> {
        const CHUNK: usize = 1 << 16;
        let mut fmt: *mut ff::AVFormatContext = std::ptr::null_mut();
        // SAFETY: a valid out pointer and a static muxer descriptor.
        let r =
            unsafe { ff::avformat_alloc_output_context2(&mut fmt, ofmt, std::ptr::null(), std::ptr::null()) };
        check(r, || format!("create {container} muxer"))?;
        let sink =
            Box::into_raw(Box::new(FileSink { file: BufWriter::with_capacity(CHUNK, file), error: None }));
        let mut mux = Self {
            fmt,
            avio: std::ptr::null_mut(),
            sink,
            stream_tb: ff::AVRational { num: 1, den: 1 },
            path: path.to_path_buf(),
            container,
        };
        // SAFETY: allocated with av_malloc as AVIO requires; checked.
        let buffer = unsafe { ff::av_malloc(CHUNK) }.cast::<u8>();
        if buffer.is_null() {
            return Err(MediaError::Alloc { what: "AVIO buffer" });
        }
        // SAFETY: `buffer` is CHUNK bytes from av_malloc (AVIO owns it from
        // now on); `sink` stays valid until Drop frees it after the AVIO context.
        mux.avio = unsafe {
            ff::avio_alloc_context(
                buffer,
                CHUNK as c_int,
                1,
                sink.cast(),
                None,
                Some(write_cb),
                Some(seek_cb),
            )
        };
        if mux.avio.is_null() {
            // SAFETY: nobody took ownership of the buffer.
            unsafe { ff::av_free(buffer.cast()) };
            return Err(MediaError::Alloc { what: "AVIO context" });
        }
        // SAFETY: `fmt` and `avio` are valid and owned by `mux`; the stream
        // belongs to `fmt`; the encoder's context is open and only read.
        unsafe {
            (*fmt).pb = mux.avio;
            (*fmt).flags |= ff::AVFMT_FLAG_CUSTOM_IO;
            let st = ff::avformat_new_stream(fmt, std::ptr::null());
            if st.is_null() {
                return Err(MediaError::Alloc { what: "audio stream" });
            }
            let ctx = encoder.context();
            check(ff::avcodec_parameters_from_context((*st).codecpar, ctx), || "stream parameters".into())?;
            (*st).time_base = (*ctx).time_base;
            let r = ff::avformat_write_header(fmt, std::ptr::null_mut());
            mux.io_error()?;
            check(r, || format!("write {} header", mux.container))?;
            mux.stream_tb = (*st).time_base;
        }
        Ok(mux)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first I/O error of the file, if any (more telling than FFmpeg's EIO).
    fn io_error(&mut self) -> Result<(), MediaError> {
        // SAFETY: the sink is alive until Drop; no callback runs now.
        match unsafe { (*self.sink).error.take() } {
            Some(e) => Err(MediaError::Io { path: self.path.display().to_string(), message: e.to_string() }),
            None => Ok(()),
        }
    }
}

impl sealed::WritePacket for FileMuxer {
    fn write_packet(&mut self, packet: *mut ff::AVPacket, tb: ff::AVRational) -> Result<(), MediaError> {
        // SAFETY: `packet` is a valid packet from the encoder; the muxer is
        // open (header written) and not finished.
        let r = unsafe { write_stream_packet(self.fmt, packet, tb, self.stream_tb) };
        self.io_error()?;
        check(r, || format!("write {} packet", self.container))?;
        Ok(())
    }
}

impl Muxer for FileMuxer {
    fn checkpoint(&mut self) -> Result<(), MediaError> {
        // SAFETY: header written, context valid; a null packet asks a
        // muxer that allows it to write out what it buffers (Ogg: the
        // current page).
        unsafe {
            if (*(*self.fmt).oformat).flags & ff::AVFMT_ALLOW_FLUSH as c_int != 0 {
                ff::av_write_frame(self.fmt, std::ptr::null_mut());
            }
            ff::avio_flush(self.avio);
        }
        self.io_error()?;
        // SAFETY: the sink is alive until Drop; no callback runs now.
        let sink = unsafe { &mut *self.sink };
        sink.file
            .flush()
            .map_err(|e| MediaError::Io { path: self.path.display().to_string(), message: e.to_string() })
    }

    fn finish(mut self) -> Result<(), MediaError> {
        // SAFETY: header written, context valid.
        let r = unsafe { ff::av_write_trailer(self.fmt) };
        // SAFETY: valid AVIO context.
        unsafe { ff::avio_flush(self.avio) };
        self.io_error()?;
        check(r, || format!("write {} trailer", self.container))?;
        // SAFETY: the sink is alive until Drop; no callback runs now.
        let sink = unsafe { &mut *self.sink };
        let synced = sink.file.flush().and_then(|()| sink.file.get_ref().sync_data());
        synced.map_err(|e| MediaError::Io { path: self.path.display().to_string(), message: e.to_string() })
    }
}

impl Drop for FileMuxer {
    fn drop(&mut self) {
        // SAFETY: we own all three and nothing uses them after this; the
        // sink is freed last, after nothing can call back into it.
        unsafe {
            free_output(self.fmt, &mut self.avio);
            drop(Box::from_raw(self.sink));
        }
    }
}

/// The muxer `format`, or the one FFmpeg picks for `path`'s extension.
fn output_format(format: Option<&str>, path: &Path) -> Result<*const ff::AVOutputFormat, MediaError> {
    let (ofmt, what) = match format {
        Some(name) => {
            let c = CString::new(name).map_err(|_| MediaError::Nul { field: "format" })?;
            // SAFETY: a NUL-terminated name; the result is static or null.
            (unsafe { ff::av_guess_format(c.as_ptr(), std::ptr::null(), std::ptr::null()) }, name.to_owned())
        }
        None => {
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            let c = CString::new(file.clone()).map_err(|_| MediaError::Nul { field: "path" })?;
            // SAFETY: a NUL-terminated file name; the result is static or null.
            let ofmt = unsafe { ff::av_guess_format(std::ptr::null(), c.as_ptr(), std::ptr::null()) };
            (ofmt, format!("{file} (no container for this extension; set `format`)"))
        }
    };
    if ofmt.is_null() { Err(MediaError::MuxerMissing { what }) } else { Ok(ofmt) }
}
