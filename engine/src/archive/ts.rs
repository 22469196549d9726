//! A pure-Rust MPEG-TS reader and cutter: parses packets, PAT/PMT, PES
//! headers (PTS) and key frames, and decides where a stream may be cut into
//! segments without decoding. It never panics, whatever the bytes.
//!
//! Everything here runs on the segmenter's thread (the encoder worker or a
//! pull job's thread), never on the audio thread.

#![forbid(unsafe_code)]

/// Size of one TS packet.
pub const TS_PACKET: usize = 188;
/// The PID of the PAT.
pub const PAT_PID: u16 = 0;
/// Mask of a 33-bit PTS.
const PTS_MASK: u64 = (1 << 33) - 1;
/// The PCR clock in 27 MHz ticks per 90 kHz tick.
const PCR_PER_90K: u64 = 300;

/// One parsed TS packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Packet identifier.
    pub pid: u16,
    /// Payload unit start indicator: a PES or section starts here.
    pub pusi: bool,
    /// Continuity counter.
    pub cc: u8,
    /// Whether the packet carries payload (the CC counts only these).
    pub has_payload: bool,
    /// The adaptation field's random access indicator.
    pub random_access: bool,
    /// The adaptation field's discontinuity indicator.
    pub discontinuity: bool,
    /// The programme clock reference in 27 MHz ticks, if present.
    pub pcr: Option<u64>,
    /// The payload bytes.
    pub payload: &'a [u8],
}

/// Parses one 188-byte packet; `None` when it is not one (no sync byte,
/// wrong length, transport error, impossible adaptation field).
pub fn parse_packet(p: &[u8]) -> Option<Packet<'_>> {
    if p.len() != TS_PACKET || p[0] != 0x47 || p[1] & 0x80 != 0 {
        return None;
    }
    let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
    let pusi = p[1] & 0x40 != 0;
    let afc = (p[3] >> 4) & 0x3;
    let cc = p[3] & 0x0f;
    let mut pos = 4;
    let mut random_access = false;
    let mut discontinuity = false;
    let mut pcr = None;
    if afc & 0x2 != 0 {
        let len = usize::from(p[4]);
        let end = 5 + len;
        if end > TS_PACKET {
            return None;
        }
        if len > 0 {
            let flags = p[5];
            discontinuity = flags & 0x80 != 0;
            random_access = flags & 0x40 != 0;
            if flags & 0x10 != 0 && len >= 7 {
                let b = &p[6..12];
                let base = (u64::from(b[0]) << 25)
                    | (u64::from(b[1]) << 17)
                    | (u64::from(b[2]) << 9)
                    | (u64::from(b[3]) << 1)
                    | (u64::from(b[4]) >> 7);
                let ext = (u64::from(b[4] & 1) << 8) | u64::from(b[5]);
                pcr = Some(base * PCR_PER_90K + ext);
            }
        }
        pos = end;
    }
    let has_payload = afc & 0x1 != 0;
    let payload = if has_payload { p.get(pos..).unwrap_or(&[]) } else { &[] };
    Some(Packet { pid, pusi, cc, has_payload, random_access, discontinuity, pcr, payload })
}

/// The PTS of a PES header at the start of `payload`, if it has one.
pub fn pes_pts(payload: &[u8]) -> Option<u64> {
    if payload.len() < 14 || payload[..3] != [0, 0, 1] {
        return None;
    }
    if payload[7] & 0x80 == 0 {
        return None;
    }
    let b = &payload[9..14];
    Some(
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1),
    )
}

/// The elementary stream data after a PES header, if the header is whole.
fn pes_data(payload: &[u8]) -> &[u8] {
    if payload.len() < 9 || payload[..3] != [0, 0, 1] {
        return &[];
    }
    payload.get(9 + usize::from(payload[8])..).unwrap_or(&[])
}

/// `b − a` on the 33-bit PTS clock.
pub fn pts_diff(a: u64, b: u64) -> u64 {
    b.wrapping_sub(a) & PTS_MASK
}

/// What kind of elementary stream a PID carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// H.264 video.
    H264,
    /// H.265 video.
    Hevc,
    /// MPEG-1/2 video.
    Mpeg2Video,
    /// Any audio (or private data treated as audio).
    Audio,
    /// Something else.
    Other,
}

impl StreamKind {
    fn from_type(t: u8) -> Self {
        match t {
            0x1b => Self::H264,
            0x24 => Self::Hevc,
            0x01 | 0x02 => Self::Mpeg2Video,
            0x03 | 0x04 | 0x0f | 0x11 | 0x81 | 0x87 | 0x06 => Self::Audio,
            _ => Self::Other,
        }
    }

    /// True for video kinds.
    pub fn is_video(self) -> bool {
        matches!(self, Self::H264 | Self::Hevc | Self::Mpeg2Video)
    }
}

/// Whether the start of an access unit's data (`es`) holds a key frame.
fn es_is_key(kind: StreamKind, es: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            let b = es[i + 3];
            let key = match kind {
                StreamKind::H264 => matches!(b & 0x1f, 5 | 7),
                StreamKind::Hevc => matches!((b >> 1) & 0x3f, 16..=21 | 32..=34),
                StreamKind::Mpeg2Video => matches!(b, 0xb3 | 0xb8),
                _ => false,
            };
            if key {
                return true;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

/// What the reader learned from one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketInfo {
    /// The packet's PID.
    pub pid: u16,
    /// True for a PAT or PMT packet.
    pub psi: bool,
    /// True when a PES starts here on the timing PID (the video PID if the
    /// programme has video, else the first audio PID).
    pub timing_start: bool,
    /// That PES's PTS, if it has one.
    pub pts: Option<u64>,
    /// True when that PES starts a key frame (always true for audio).
    pub key: bool,
    /// The packet could not be parsed (it is still passed through).
    pub garbage: bool,
}

/// Counters a reader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReaderStats {
    /// Packets read.
    pub packets: u64,
    /// Packets that did not parse.
    pub garbage: u64,
    /// Continuity counter errors.
    pub cc_errors: u64,
    /// Key frames (or audio PES on audio-only programmes) seen.
    pub keys: u64,
    /// Largest PCR jitter seen, in microseconds (PCR progress against the
    /// arrival clock).
    pub pcr_jitter_us: u64,
}

/// Reads a TS packet by packet, tracking PAT, PMT, continuity counters and
/// PCR; never panics.
#[derive(Debug, Default)]
pub struct TsReader {
    pmt_pid: Option<u16>,
    streams: Vec<(u16, StreamKind)>,
    timing: Option<(u16, StreamKind)>,
    last_cc: Vec<(u16, u8)>,
    pat: Option<[u8; TS_PACKET]>,
    pmt: Option<[u8; TS_PACKET]>,
    pcr_origin: Option<(u64, u64)>,
    stats: ReaderStats,
}

impl TsReader {
    /// A reader that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The last PAT and PMT packets seen, to start a segment with.
    pub fn psi(&self) -> (Option<&[u8; TS_PACKET]>, Option<&[u8; TS_PACKET]>) {
        (self.pat.as_ref(), self.pmt.as_ref())
    }

    /// The timing PID and its kind, once the PMT is known.
    pub fn timing(&self) -> Option<(u16, StreamKind)> {
        self.timing
    }

    /// Reads one packet; `arrival_us` is the arrival clock in microseconds
    /// (used only for PCR jitter; pass 0 for files).
    pub fn read(&mut self, raw: &[u8], arrival_us: u64) -> PacketInfo {
        self.stats.packets += 1;
        let Some(p) = parse_packet(raw) else {
            self.stats.garbage += 1;
            return PacketInfo { garbage: true, ..PacketInfo::default() };
        };
        let mut info = PacketInfo { pid: p.pid, ..PacketInfo::default() };
        self.check_cc(&p);
        if let Some(pcr) = p.pcr {
            self.pcr(pcr, arrival_us, p.discontinuity);
        }
        if p.pid == PAT_PID {
            info.psi = true;
            if p.pusi {
                self.parse_pat(p.payload);
            }
            if let Ok(a) = <[u8; TS_PACKET]>::try_from(raw) {
                self.pat = Some(a);
            }
            return info;
        }
        if Some(p.pid) == self.pmt_pid {
            info.psi = true;
            if p.pusi {
                self.parse_pmt(p.payload);
            }
            if let Ok(a) = <[u8; TS_PACKET]>::try_from(raw) {
                self.pmt = Some(a);
            }
            return info;
        }
        if let Some((pid, kind)) = self.timing
            && pid == p.pid
            && p.pusi
        {
            info.timing_start = true;
            info.pts = pes_pts(p.payload);
            info.key = !kind.is_video() || p.random_access || es_is_key(kind, pes_data(p.payload));
            if info.key {
                self.stats.keys += 1;
            }
        }
        info
    }

    fn check_cc(&mut self, p: &Packet<'_>) {
        if p.pid == 0x1fff {
            return;
        }
        match self.last_cc.iter_mut().find(|(pid, _)| *pid == p.pid) {
            Some((_, last)) => {
                if p.has_payload {
                    let expected = (*last + 1) & 0x0f;
                    // A repeated packet (same CC) is legal once.
                    if p.cc != expected && p.cc != *last && !p.discontinuity {
                        self.stats.cc_errors += 1;
                    }
                    *last = p.cc;
                }
            }
            None => {
                if self.last_cc.len() < 64 {
                    self.last_cc.push((p.pid, p.cc));
                }
            }
        }
    }

    fn pcr(&mut self, pcr: u64, arrival_us: u64, discontinuity: bool) {
        match self.pcr_origin {
            Some((pcr0, at0)) if !discontinuity && arrival_us >= at0 => {
                let stream_us = (pcr.wrapping_sub(pcr0) & ((PTS_MASK + 1) * PCR_PER_90K - 1)) / 27;
                let wall_us = arrival_us - at0;
                let jitter = stream_us.abs_diff(wall_us);
                // Beyond 10 s of skew this is a jump, not jitter: start again.
                if jitter > 10_000_000 {
                    self.pcr_origin = Some((pcr, arrival_us));
                } else {
                    self.stats.pcr_jitter_us = self.stats.pcr_jitter_us.max(jitter);
                    // Follow the faster clock so that buffering shows as
                    // positive delay, not as accumulating drift.
                    if stream_us > wall_us {
                        self.pcr_origin = Some((pcr, arrival_us));
                    }
                }
            }
            _ => self.pcr_origin = Some((pcr, arrival_us)),
        }
    }

    /// The section at the start of a PUSI payload, without its pointer field.
    fn section(payload: &[u8]) -> Option<&[u8]> {
        let pointer = usize::from(*payload.first()?);
        let s = payload.get(1 + pointer..)?;
        if s.len() < 3 {
            return None;
        }
        let len = usize::from(u16::from(s[1] & 0x0f) << 8 | u16::from(s[2]));
        // Sections spanning packets are cut to what this packet holds.
        s.get(..(3 + len).min(s.len()))
    }

    fn parse_pat(&mut self, payload: &[u8]) {
        let Some(s) = Self::section(payload) else { return };
        if s[0] != 0x00 || s.len() < 12 {
            return;
        }
        // Programme loop: after 8 header bytes, before the 4-byte CRC.
        let body = &s[8..s.len().saturating_sub(4).max(8)];
        for entry in body.chunks_exact(4) {
            let program = u16::from(entry[0]) << 8 | u16::from(entry[1]);
            let pid = u16::from(entry[2] & 0x1f) << 8 | u16::from(entry[3]);
            if program != 0 {
                if self.pmt_pid != Some(pid) {
                    self.pmt_pid = Some(pid);
                    self.streams.clear();
                    self.timing = None;
                }
                return;
            }
        }
    }

    fn parse_pmt(&mut self, payload: &[u8]) {
        let Some(s) = Self::section(payload) else { return };
        if s[0] != 0x02 || s.len() < 16 {
            return;
        }
        let info_len = usize::from(u16::from(s[10] & 0x0f) << 8 | u16::from(s[11]));
        let end = s.len().saturating_sub(4);
        let mut i = 12 + info_len;
        let mut streams = Vec::new();
        while i + 5 <= end {
            let kind = StreamKind::from_type(s[i]);
            let pid = u16::from(s[i + 1] & 0x1f) << 8 | u16::from(s[i + 2]);
            let es_len = usize::from(u16::from(s[i + 3] & 0x0f) << 8 | u16::from(s[i + 4]));
            if streams.len() < 32 {
                streams.push((pid, kind));
            }
            i += 5 + es_len;
        }
        if streams.is_empty() {
            return;
        }
        let timing = streams
            .iter()
            .find(|(_, k)| k.is_video())
            .or_else(|| streams.iter().find(|(_, k)| *k == StreamKind::Audio))
            .copied();
        self.streams = streams;
        self.timing = timing;
    }
}

/// Why a segment was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// At a key frame (or audio frame) after the target duration.
    Target,
    /// Forced by the maximum segment size.
    MaxSize,
    /// Forced by the wall-clock limit ([`wall_limit`]): nothing to cut at
    /// arrived in time (no PTS, no key frame).
    WallClock,
    /// Before a gap: what arrived while the spool refused writes did not
    /// all fit in memory, and the oldest part was dropped.
    Gap,
}

/// The wall-clock time after which a segment of `target_90k` is cut
/// whatever arrives: three times the target (at least one second).
pub fn wall_limit(target_90k: u64) -> std::time::Duration {
    std::time::Duration::from_millis(target_90k.saturating_mul(3) / 90).max(std::time::Duration::from_secs(1))
}

/// Decides where to cut a TS into segments: before the first PES start on
/// the timing PID that is a key frame at least `target_90k` after the
/// segment's first PTS, or before any packet that would take the segment
/// past `max_bytes`.
#[derive(Debug)]
pub struct Cutter {
    /// The reader (its stats and PSI are the job's).
    pub reader: TsReader,
    target_90k: u64,
    max_bytes: u64,
    bytes: u64,
    first_pts: Option<u64>,
    last_pts: Option<u64>,
    last_step: u64,
    started: bool,
    forced: u64,
}

/// Timing of a segment that was just closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentTiming {
    /// First PTS on the timing PID (0 when none was seen).
    pub first_pts: i64,
    /// Duration in 90 kHz units.
    pub duration_90k: u64,
}

impl Cutter {
    /// A cutter for segments of `target_90k` ticks and at most `max_bytes`.
    pub fn new(target_90k: u64, max_bytes: u64) -> Self {
        Self {
            reader: TsReader::new(),
            target_90k,
            max_bytes: max_bytes.max(4 * TS_PACKET as u64),
            bytes: 0,
            first_pts: None,
            last_pts: None,
            last_step: 0,
            started: false,
            forced: 0,
        }
    }

    /// The target duration in 90 kHz ticks.
    pub fn target_90k(&self) -> u64 {
        self.target_90k
    }

    /// The maximum segment size.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Cuts forced by the size limit so far.
    pub fn forced_cuts(&self) -> u64 {
        self.forced
    }

    /// Reads one packet and says whether the segment must be cut before
    /// it, with the timing of the segment that ends there.
    pub fn push(&mut self, raw: &[u8], arrival_us: u64) -> (PacketInfo, Option<(Cut, SegmentTiming)>) {
        let info = self.reader.read(raw, arrival_us);
        let mut cut = None;
        if info.timing_start
            && info.key
            && let (Some(pts), Some(first)) = (info.pts, self.first_pts)
            && pts_diff(first, pts) >= self.target_90k
            && pts_diff(first, pts) < PTS_MASK / 2
        {
            cut = Some(Cut::Target);
        }
        // Room for the PAT/PMT that start the next segment.
        if cut.is_none() && self.started && self.bytes + (3 * TS_PACKET) as u64 > self.max_bytes {
            cut = Some(Cut::MaxSize);
            self.forced += 1;
        }
        let closed = cut.map(|c| (c, self.timing(info.pts)));
        if closed.is_some() {
            self.bytes = 0;
            self.first_pts = None;
        }
        if info.timing_start
            && let Some(pts) = info.pts
        {
            if self.first_pts.is_none() {
                self.first_pts = Some(pts);
            }
            if let Some(last) = self.last_pts {
                let step = pts_diff(last, pts);
                if step > 0 && step < 90_000 * 10 {
                    self.last_step = step;
                }
            }
            self.last_pts = Some(pts);
        }
        self.started = true;
        self.bytes += TS_PACKET as u64;
        (info, closed)
    }

    /// Starts over on a new stream (after a reconnect): forgets timing,
    /// continuity counters, PCR and PSI, keeps the counters.
    pub fn restart(&mut self) {
        let stats = self.reader.stats;
        self.reader = TsReader { stats, ..TsReader::default() };
        self.bytes = 0;
        self.first_pts = None;
        self.last_pts = None;
        self.started = false;
    }

    /// Counts bytes written outside [`Cutter::push`] (inserted PAT/PMT,
    /// junk that is not a packet).
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    /// Bytes in the open segment.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ends the open segment here (a cut that no packet decided: size
    /// limit reached by junk, wall-clock limit, a gap): returns its timing
    /// and starts the next segment, keeping PSI and continuity state.
    /// `why` is counted when it is [`Cut::MaxSize`].
    pub fn cut_now(&mut self, why: Cut) -> SegmentTiming {
        if why == Cut::MaxSize {
            self.forced += 1;
        }
        let timing = self.timing(None);
        self.bytes = 0;
        self.first_pts = None;
        timing
    }

    /// The PTS just after the last PES seen (its PTS plus one PES step).
    pub fn end_pts(&self) -> Option<u64> {
        self.last_pts.map(|last| last.wrapping_add(self.last_step) & PTS_MASK)
    }

    /// Timing of the open segment as it ends at `next_pts` (or at the end of
    /// the stream when `None`: the last PES plus one step).
    pub fn timing(&self, next_pts: Option<u64>) -> SegmentTiming {
        let Some(first) = self.first_pts else { return SegmentTiming::default() };
        let end = match (next_pts, self.last_pts) {
            (Some(n), _) => n,
            (None, Some(last)) => last.wrapping_add(self.last_step),
            (None, None) => first,
        };
        let d = pts_diff(first, end);
        SegmentTiming { first_pts: first as i64, duration_90k: if d < PTS_MASK / 2 { d } else { 0 } }
    }
}

/// Splits a byte stream into 188-byte packets, resynchronising on the sync
/// byte after garbage.
#[derive(Debug, Default)]
pub struct PacketSplitter {
    buf: Vec<u8>,
}

impl PacketSplitter {
    /// A splitter with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `data` and calls `each` for every whole packet found; bytes
    /// that cannot start a packet are passed as `Err(bytes)` so that a
    /// writer can keep them (nothing is lost).
    pub fn push(&mut self, data: &[u8], mut each: impl FnMut(Result<&[u8], &[u8]>)) {
        self.buf.extend_from_slice(data);
        let mut i = 0;
        let mut junk_from = None;
        while i + TS_PACKET <= self.buf.len() {
            let aligned =
                self.buf[i] == 0x47 && (i + TS_PACKET == self.buf.len() || self.buf[i + TS_PACKET] == 0x47);
            if aligned {
                if let Some(j) = junk_from.take() {
                    each(Err(&self.buf[j..i]));
                }
                each(Ok(&self.buf[i..i + TS_PACKET]));
                i += TS_PACKET;
            } else {
                if junk_from.is_none() {
                    junk_from = Some(i);
                }
                i += 1;
            }
        }
        if let Some(j) = junk_from {
            each(Err(&self.buf[j..i]));
        }
        self.buf.drain(..i);
    }

    /// Bytes left over that do not make a whole packet.
    pub fn rest(&self) -> &[u8] {
        &self.buf
    }
}

/// Feeds `data` through the whole TS reading path (splitter in chunks whose
/// size the first byte chooses, reader, cutter) and asserts its invariants:
/// every byte comes out exactly once, whole packets start with the sync
/// byte, timings stay within the 33-bit clock. Returns the packets read.
/// Used by the `ts_reader` fuzz target and its corpus replay test.
pub fn check_reading_path(data: &[u8]) -> u64 {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1) * 7;
    let mut splitter = PacketSplitter::new();
    let mut cutter = Cutter::new(90_000, 188 * 20);
    let mut out = 0usize;
    let mut packets = 0u64;
    let mut arrival = 0u64;
    for piece in data.chunks(chunk) {
        arrival += 1000;
        splitter.push(piece, |p| match p {
            Ok(packet) => {
                assert!(packet.len() == TS_PACKET && packet[0] == 0x47);
                out += packet.len();
                packets += 1;
                let (_, cut) = cutter.push(packet, arrival);
                if let Some((_, t)) = cut {
                    assert!(t.duration_90k < PTS_MASK && t.first_pts >= 0);
                }
            }
            Err(junk) => out += junk.len(),
        });
    }
    out += splitter.rest().len();
    assert_eq!(out, data.len(), "every byte comes out once");
    let t = cutter.timing(None);
    assert!(t.duration_90k < PTS_MASK);
    packets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ts_reader");
        std::fs::read(dir.join(name)).expect("corpus seed")
    }

    #[test]
    fn cuts_fall_on_key_frames_after_the_target() {
        // 0.5 s of 25 fps H.264 with a key frame every 5 frames (0.2 s).
        let data = seed("h264_aac.ts");
        let mut cutter = Cutter::new(9_000, u64::MAX / 2);
        let mut cuts = 0;
        for p in data.chunks_exact(TS_PACKET) {
            let (info, cut) = cutter.push(p, 0);
            if let Some((why, t)) = cut {
                assert_eq!(why, Cut::Target);
                assert!(info.key && info.timing_start, "cut at a key frame");
                assert!(t.duration_90k >= 9_000, "{t:?}");
                cuts += 1;
            }
        }
        assert!(cuts >= 1, "{cuts}");
        assert!(cutter.reader.timing().is_some_and(|(_, k)| k == StreamKind::H264));
        assert_eq!(cutter.reader.stats().cc_errors, 0);
    }

    #[test]
    fn the_size_limit_forces_counted_cuts() {
        let data = seed("h264_aac.ts");
        let max = 188 * 20;
        let mut cutter = Cutter::new(90_000 * 60, max);
        let mut bytes = 0u64;
        for p in data.chunks_exact(TS_PACKET) {
            let (_, cut) = cutter.push(p, 0);
            if cut.is_some() {
                // The next segment also gets PAT and PMT (2 packets).
                assert!(bytes + 2 * 188 <= max, "{bytes}");
                bytes = 0;
                cutter.add_bytes(2 * 188);
            }
            bytes += 188;
        }
        // 70 packets, at most 20 a segment.
        assert!(cutter.forced_cuts() >= 3, "{}", cutter.forced_cuts());
    }

    #[test]
    fn a_cut_now_ends_the_segment_and_keeps_the_psi() {
        let data = seed("h264_aac.ts");
        let mut cutter = Cutter::new(90_000 * 60, u64::MAX / 4);
        let packets: Vec<&[u8]> = data.chunks_exact(TS_PACKET).collect();
        for p in &packets[..40] {
            cutter.push(p, 0);
        }
        let t = cutter.cut_now(Cut::MaxSize);
        assert!(t.duration_90k > 0, "{t:?}");
        assert_eq!((cutter.bytes(), cutter.forced_cuts()), (0, 1));
        assert!(cutter.reader.psi().0.is_some() && cutter.reader.psi().1.is_some());
        assert!(cutter.end_pts().is_some());
        assert_eq!(cutter.cut_now(Cut::WallClock), SegmentTiming::default(), "nothing since the cut");
        assert_eq!(cutter.forced_cuts(), 1);
    }

    #[test]
    fn the_wall_clock_limit_is_three_targets() {
        assert_eq!(wall_limit(90_000), std::time::Duration::from_secs(3));
        assert_eq!(wall_limit(10 * 90_000), std::time::Duration::from_secs(30));
        assert_eq!(wall_limit(0), std::time::Duration::from_secs(1));
    }

    #[test]
    fn wrong_continuity_counters_are_counted() {
        let data = seed("wrong_cc.ts");
        let mut reader = TsReader::new();
        for p in data.chunks_exact(TS_PACKET) {
            reader.read(p, 0);
        }
        assert!(reader.stats().cc_errors > 5, "{:?}", reader.stats());
    }
}
