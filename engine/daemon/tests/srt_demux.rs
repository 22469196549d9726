//! What FFmpeg may do with untrusted input. SRT inputs: the MPEG-TS demuxer
//! and the accepted audio codecs only, video discarded before probing (a
//! 1080p H.264 + AAC stream costs the engine's threads within 10 % of the
//! AAC alone, and the process no more than a bare `srt-live-transmit` pays
//! to receive the video's bytes),
//! the `srt_input` fuzz corpus replayed. File inputs: the `file` protocol
//! and audio containers only. Real ffmpeg peers and the real engine binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use airlift_engine::sys::ffmpeg::{Decoder, MediaError, TsBytes, check_srt_input_path};
use common::{
    Peer, TempDir, engine_log_says, engine_running, free_port, frequency, loud_part, read_wav, run_engine,
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/srt_input")
}

fn seed(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).expect("committed seed")
}

/// `ffmpeg` with `args`, which must succeed.
fn ffmpeg(args: &[&str]) {
    let out = Command::new("timeout")
        .args(["300", "ffmpeg", "-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn srt_input_corpus_replays_cleanly() {
    let mut files = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("the fuzz corpus is committed") {
        let data = std::fs::read(entry.expect("readable entry").path()).expect("readable file");
        files += 1;
        let _ = check_srt_input_path(&data);
        for cut in [1, 188, 189, data.len() / 2] {
            let _ = check_srt_input_path(&data[..cut.min(data.len())]);
        }
    }
    assert!(files >= 8, "corpus has only {files} files");
}

#[test]
fn every_accepted_codec_decodes_from_ts_and_others_are_refused() {
    for name in ["aac", "h264-aac", "mp2", "mp3", "opus", "ac3", "s302m"] {
        let samples =
            check_srt_input_path(&seed(&format!("seed-{name}.ts"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Each seed holds at least 0.08 s of stereo audio at 48 kHz.
        assert!(samples >= 2 * 3000, "{name}: only {samples} samples");
    }
    // DTS declared as such (HDMV registration): refused by name.
    match check_srt_input_path(&seed("seed-dts-m2ts.ts")) {
        Err(e @ MediaError::CodecRefused { .. }) => assert!(e.to_string().contains("dts"), "{e}"),
        other => panic!("DTS accepted: {other:?}"),
    }
    // A stream of an undeclared type is never content-probed (that would
    // run every format's probe on untrusted bytes): no audio here.
    match check_srt_input_path(&seed("seed-dts-probed.ts")) {
        Err(MediaError::NoAudio { .. }) => {}
        other => panic!("undeclared stream probed: {other:?}"),
    }
}

#[test]
fn garbage_and_other_formats_are_not_probed_as_something_else() {
    // A WAV file and an HLS playlist are not MPEG-TS: the forced demuxer
    // finds no audio in them instead of guessing another format.
    let dir = TempDir::new("demux-garbage");
    let wav = dir.path("tone.wav");
    ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", wav.to_str().unwrap()]);
    for data in
        [std::fs::read(&wav).unwrap(), b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1,\nx.ts\n".to_vec()]
    {
        let r = Decoder::open_ts(Box::new(TsBytes::new(data)), 48_000, 2);
        assert!(matches!(r, Err(MediaError::NoAudio { .. }) | Err(MediaError::Ffmpeg { .. })), "{r:?}");
    }
}

// ---------------------------------------------------------------- files

#[test]
fn file_inputs_refuse_other_protocols_naming_the_path() {
    for path in [
        "concat:/etc/hostname|/etc/hostname",
        "http://127.0.0.1:1/x",
        "pipe:0",
        "subfile,,start,0,end,10,,:/etc/hostname",
    ] {
        match Decoder::open_file(Path::new(path), 48_000, None) {
            Err(e @ MediaError::ProtocolRefused { .. }) => {
                let text = e.to_string();
                assert!(text.starts_with(path), "{text}");
                assert!(text.contains("not allowed for file inputs"), "{text}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

/// A file holding an HLS playlist of a local TS segment, which FFmpeg would
/// play through its `hls` demuxer (it opens the segment by itself).
fn hls_playlist(dir: &TempDir) -> PathBuf {
    std::fs::write(dir.path("seg.ts"), seed("seed-aac.ts")).unwrap();
    let list = dir.path("playlist.wav");
    std::fs::write(
        &list,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\nseg.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    // The playlist really is playable by FFmpeg itself: the refusal below
    // is the engine's.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=format_name", "-of", "csv=p=0"])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "hls");
    list
}

#[test]
fn an_hls_playlist_as_a_file_input_is_refused_and_wav_and_flac_play() {
    let dir = TempDir::new("file-policy");
    let list = hls_playlist(&dir);
    match Decoder::open_file(&list, 48_000, None) {
        Err(e @ MediaError::FormatRefused { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with(list.to_str().unwrap()) && text.contains("\"hls\""), "{text}");
        }
        other => panic!("HLS playlist accepted: {other:?}"),
    }
    for ext in ["wav", "flac"] {
        let file = dir.path(&format!("tone.{ext}"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=660:sample_rate=48000:duration=1",
            file.to_str().unwrap(),
        ]);
        let mut decoder = Decoder::open_file(&file, 48_000, None).unwrap();
        let mut samples = Vec::new();
        while decoder.read(&mut samples).unwrap() {}
        let samples: Vec<f64> = samples.iter().map(|&s| f64::from(s)).collect();
        assert_eq!(samples.len(), 48_000, "{ext}");
        let f = frequency(48_000, &samples);
        assert!((f - 660.0).abs() < 0.5, "{ext}: {f} Hz");
    }
}

#[test]
fn the_engine_refuses_a_flow_whose_file_input_is_a_playlist() {
    let dir = TempDir::new("file-policy-engine");
    let list = hls_playlist(&dir);
    let flows = format!(
        "[[flow]]\nname = \"f\"\nchannels = 2\n\n[[flow.input]]\nname = \"list\"\nproducer = {{ file = {{ path = \"{}\" }} }}\n",
        list.display()
    );
    std::fs::write(dir.path("flows.toml"), flows).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-engine"))
        .args(["render", "--flows", dir.path("flows.toml").to_str().unwrap(), "--seconds", "1"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rendered a playlist: {stderr}");
    assert!(
        stderr.contains(list.to_str().unwrap()) && stderr.contains("not accepted for file inputs"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- cost

/// Seconds of the stream sent in the cost comparison.
const SECONDS: u32 = 20;

/// CPU seconds so far of each thread of process `pid`, by thread name, to
/// the nanosecond (the scheduler's own runtime, `/proc/…/schedstat`, rather
/// than `stat`'s clock ticks, which are 10 ms coarse).
fn cpu_by_thread(pid: u32) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let path = task.path();
        let (Ok(comm), Ok(sched)) =
            (std::fs::read_to_string(path.join("comm")), std::fs::read_to_string(path.join("schedstat")))
        else {
            continue;
        };
        let ns: u64 = sched.split_whitespace().next().unwrap().parse().unwrap();
        rows.push((comm.trim().to_owned(), ns as f64 * 1e-9));
    }
    rows
}

/// Peak resident memory of process `pid` in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const FLOW: &str = r#"
[[flow]]
name = "rx"
channels = 2

[[flow.input]]
name = "contrib"
producer = { srt_in = { srt = { mode = { listener = { port = PORT } }, allow_unencrypted = true }, jitter_ms = 200 } }

[[flow.output]]
name = "rec"
consumer = { wav = { path = "rx.wav", format = "f32" } }
"#;

/// What one run cost the engine.
#[derive(Debug)]
struct Cost {
    /// CPU seconds of libsrt's own threads (`SRT:RcvQ`, `SRT:SndQ`,
    /// `SRT:GC`): the transport, which costs per packet received whatever
    /// the packets carry.
    libsrt: f64,
    /// Peak resident memory (VmHWM), KiB.
    peak_kib: u64,
    /// Per-thread figures, for the log.
    threads: Vec<(String, f64)>,
}

impl Cost {
    /// CPU seconds of all the process's running threads, to the nanosecond.
    fn all(&self) -> f64 {
        self.threads.iter().map(|(_, s)| s).sum()
    }

    /// CPU seconds of the engine's own running threads (everything but
    /// libsrt's), to the nanosecond.
    fn engine(&self) -> f64 {
        self.threads.iter().filter(|(name, _)| !name.starts_with("SRT:")).map(|(_, s)| s).sum()
    }
}

/// `ffmpeg` sending `ts` in real time, every stream copied, to an SRT
/// listener on `port` (lingering so its tail is delivered).
fn sender(ts: &Path, port: u16) -> Peer {
    Peer::spawn(
        "ffmpeg sender",
        Command::new("timeout")
            .args(["90", "ffmpeg", "-v", "error", "-nostdin", "-re", "-i"])
            .arg(ts)
            .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
            .arg(format!("srt://127.0.0.1:{port}?pkt_size=1316&linger=2"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Streams `ts` in real time over SRT into a fresh engine and returns what
/// that cost it; checks the recording holds the 997 Hz tone throughout.
fn stream_into_engine(dir: &TempDir, ts: &Path, beside: &Path) -> Cost {
    let _ = std::fs::remove_file(dir.path("rx.wav"));
    let mut bystander = Bystander::start(beside);
    let port = free_port();
    let mut engine = run_engine(&dir.0, &FLOW.replace("PORT", &port.to_string()));
    let pid = engine.child.as_ref().unwrap().id();
    engine_running(&dir.0);
    let mut sender = sender(ts, port);
    let log = dir.path("engine.log");
    engine_log_says(&dir.0, "SRT input decoding", Duration::from_secs(15));
    // Sampled while the stream still runs, so that every thread (libsrt's
    // per-connection ones too) is still there to be attributed.
    std::thread::sleep(Duration::from_secs(u64::from(SECONDS) - 3));
    let threads = cpu_by_thread(pid);
    let libsrt = threads.iter().filter(|(name, _)| name.starts_with("SRT:")).map(|(_, s)| s).sum();
    let cost = Cost { libsrt, peak_kib: peak_rss_kib(pid), threads };
    assert!(
        std::fs::read_to_string(&log).is_ok_and(|l| !l.contains("SRT input lost")),
        "the stream ended early: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(sender.wait(Duration::from_secs(60)).is_some_and(|s| s.success()), "ffmpeg sender failed");
    assert!(
        bystander.sender.wait(Duration::from_secs(60)).is_some_and(|s| s.success()),
        "the bystander's ffmpeg sender failed"
    );
    std::thread::sleep(Duration::from_millis(800));
    let status = engine.interrupt(Duration::from_secs(10)).expect("engine exits");
    assert!(status.success(), "engine: {status}");
    let (rate, channels, samples) = read_wav(&dir.path("rx.wav"));
    for c in 0..usize::from(channels) {
        let tone = loud_part(&samples, usize::from(channels), c);
        let got = tone.len() as f64 / f64::from(rate);
        assert!(got > f64::from(SECONDS) - 1.5, "channel {c}: only {got} s of tone");
        let f = frequency(rate, &tone[tone.len() / 10..tone.len() * 9 / 10]);
        assert!((f - 997.0).abs() < 0.5, "channel {c}: {f} Hz");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("h264"), "the video stream reached a decoder or parser: {text}");
    cost
}

/// `srt-live-transmit` listening on `port`, throwing away what it receives.
fn srt_live_transmit(port: u16) -> Peer {
    Peer::spawn(
        "srt-live-transmit",
        Command::new("srt-live-transmit")
            .args(["-chunk:1316", "-q"])
            .arg(format!("srt://:{port}?mode=listener&latency=200"))
            .arg("file://con")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// The other stream of a comparison, sent in real time to an
/// `srt-live-transmit` beside the engine: the machine then carries the same
/// traffic (both senders, both streams' packets over loopback) whichever
/// stream the engine receives, and only where the video lands differs. On a
/// two-core machine the video's sender and its packets slow every thread
/// sharing the cores, the engine's audio thread included (+9 to +12 % for
/// the very same audio work, measured in CI); that is the machine's cost of
/// the video, not the engine's.
struct Bystander {
    _receiver: Peer,
    sender: Peer,
}

impl Bystander {
    fn start(ts: &Path) -> Bystander {
        let port = free_port();
        let receiver = srt_live_transmit(port);
        std::thread::sleep(Duration::from_millis(300));
        Bystander { _receiver: receiver, sender: sender(ts, port) }
    }
}

/// What the same stream costs `srt-live-transmit` receiving it and throwing
/// it away: libsrt's transport cost alone, the floor for any SRT receiver.
fn stream_into_srt_live_transmit(ts: &Path) -> Cost {
    let port = free_port();
    let mut receiver = srt_live_transmit(port);
    let pid = receiver.child.as_ref().unwrap().id();
    std::thread::sleep(Duration::from_millis(500));
    let mut sender = sender(ts, port);
    std::thread::sleep(Duration::from_secs(u64::from(SECONDS) - 2));
    let threads = cpu_by_thread(pid);
    let cost = Cost { libsrt: threads.iter().map(|(_, s)| s).sum(), peak_kib: peak_rss_kib(pid), threads };
    sender.kill();
    receiver.kill();
    cost
}

#[test]
fn a_1080p_h264_stream_beside_the_audio_costs_the_engine_no_more_than_the_audio_alone() {
    let dir = TempDir::new("demux-cost");
    let (av, audio) = (dir.path("av.ts"), dir.path("audio.ts"));
    let secs = SECONDS.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size=1920x1080:rate=25:duration={secs}"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=997:sample_rate=48000:duration={secs}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-b:v",
        "5M",
        "-maxrate",
        "5M",
        "-bufsize",
        "5M",
        "-g",
        "50",
        "-ac",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-f",
        "mpegts",
        av.to_str().unwrap(),
    ]);
    // The very same audio packets, without the video.
    ffmpeg(&[
        "-i",
        av.to_str().unwrap(),
        "-map",
        "0:a",
        "-c",
        "copy",
        "-f",
        "mpegts",
        audio.to_str().unwrap(),
    ]);
    let av_bytes = std::fs::metadata(&av).unwrap().len();
    assert!(av_bytes > 8_000_000, "the video stream is only {av_bytes} bytes");
    // The demuxing and decoding path alone, on this thread, from memory.
    let demux_cpu = |path: &Path| {
        let data = std::fs::read(path).unwrap();
        let start = thread_cpu();
        let samples = check_srt_input_path(&data).unwrap();
        assert!(samples >= 2 * 48_000 * (SECONDS as usize - 1), "{}: {samples} samples", path.display());
        thread_cpu() - start
    };
    let (demux_alone, demux_with_video) = (demux_cpu(&audio), demux_cpu(&av));
    // Three runs of each, alternating, and the cheapest of each judged: what
    // a stream costs, without what a busy machine adds to one run. In
    // each run the other stream goes to a bystander, so that the machine's
    // load is the same in both and only the engine's share differs.
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push((stream_into_engine(&dir, &audio, &av), stream_into_engine(&dir, &av, &audio)));
    }
    let cheapest = |pick: fn(&(Cost, Cost)) -> &Cost| {
        runs.iter().map(pick).min_by(|a, b| a.all().total_cmp(&b.all())).expect("three runs")
    };
    let least_engine = |pick: fn(&(Cost, Cost)) -> &Cost| {
        runs.iter().map(|r| pick(r).engine()).fold(f64::INFINITY, f64::min)
    };
    let (alone_engine, video_engine) = (least_engine(|r| &r.0), least_engine(|r| &r.1));
    let (alone, with_video) = (cheapest(|r| &r.0), cheapest(|r| &r.1));
    let mbps = av_bytes as f64 * 8.0 / f64::from(SECONDS) / 1e6;
    for (a, v) in &runs {
        println!(
            "run: audio only {:.3} s (engine {:.3}), with video {:.3} s (engine {:.3})",
            a.all(),
            a.engine(),
            v.all(),
            v.engine()
        );
    }
    println!("audio only, CPU s by thread: {:?}", alone.threads);
    println!("with 1080p video ({mbps:.1} Mbit/s), CPU s by thread: {:?}", with_video.threads);
    println!(
        "engine threads (cheapest run): {:.3} s vs {:.3} s CPU ({:+.1} %); libsrt threads: {:.3} s vs {:.3} s; whole process: {:.3} s vs {:.3} s ({:+.1} %); peak RSS {} vs {} KiB ({:+.1} %); demux+decode from memory: {:.3} s vs {:.3} s",
        video_engine,
        alone_engine,
        (video_engine / alone_engine - 1.0) * 100.0,
        with_video.libsrt,
        alone.libsrt,
        with_video.all(),
        alone.all(),
        (with_video.all() / alone.all() - 1.0) * 100.0,
        with_video.peak_kib,
        alone.peak_kib,
        (with_video.peak_kib as f64 / alone.peak_kib as f64 - 1.0) * 100.0,
        demux_with_video,
        demux_alone,
    );
    let (slt_alone, slt_video) = (stream_into_srt_live_transmit(&audio), stream_into_srt_live_transmit(&av));
    println!(
        "srt-live-transmit receiving the same streams: {:.3} s vs {:.3} s ({:+.3} s); by thread {:?} vs {:?}",
        slt_video.all(),
        slt_alone.all(),
        slt_video.all() - slt_alone.all(),
        slt_video.threads,
        slt_alone.threads
    );
    // The engine's own threads within 10 %. The whole process also holds
    // libsrt's transport threads, which receive 40 times the packets: what
    // it pays for the video is within what a bare receiver pays for the
    // same bytes, plus 10 %.
    assert!(
        video_engine <= alone_engine * 1.10,
        "engine threads: {video_engine} s vs {alone_engine} s; cheapest runs: {with_video:?} vs {alone:?}"
    );
    let floor = (slt_video.all() - slt_alone.all()).max(0.0);
    assert!(
        with_video.all() - alone.all() <= floor + alone.all() * 0.10,
        "CPU: {with_video:?} vs {alone:?}; srt-live-transmit pays {floor} s for the video"
    );
    assert!(
        with_video.peak_kib as f64 <= alone.peak_kib as f64 * 1.10,
        "memory: {with_video:?} vs {alone:?}"
    );
    // Skipping 5 Mbit/s of video costs the demuxer well under 1 % of a core.
    let per_second = (demux_with_video - demux_alone) / f64::from(SECONDS);
    assert!(per_second < 0.01, "demuxing the video costs {per_second} s of CPU per second");
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out pointer.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0);
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Every sample `data` decodes to through the SRT input path, interleaved
/// stereo at 48 kHz.
fn decode_all(data: Vec<u8>) -> Vec<f64> {
    let mut decoder = Decoder::open_ts(Box::new(TsBytes::new(data)), 48_000, 2).expect("audio found");
    let (mut out, mut samples) = (Vec::new(), Vec::new());
    while decoder.read(&mut samples).expect("decodes") {
        out.extend(samples.drain(..).map(f64::from));
    }
    out
}

#[test]
fn a_programme_whose_audio_moves_to_another_pid_is_followed() {
    // An encoder restarted with other PIDs on the same connection: 3 s of
    // 440 Hz on PMT 0x1000 / audio 0x100, then 3 s of 997 Hz on PMT 0x1100
    // / audio 0x150 (a new PAT, a new PMT, a new audio PID), and the same
    // with only the audio PID moved.
    let dir = TempDir::new("demux-pid-change");
    let part = |name: &str, freq: u32, pmt: &str, audio: &str| {
        let path = dir.path(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency={freq}:sample_rate=48000:duration=3"),
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-mpegts_pmt_start_pid",
            pmt,
            "-mpegts_start_pid",
            audio,
            "-f",
            "mpegts",
            path.to_str().unwrap(),
        ]);
        std::fs::read(path).unwrap()
    };
    let first = part("a.ts", 440, "0x1000", "0x100");
    for (pmt, audio) in [("0x1100", "0x150"), ("0x1000", "0x150")] {
        let mut data = first.clone();
        data.extend(part("b.ts", 997, pmt, audio));
        let samples = decode_all(data);
        let left: Vec<f64> = samples.iter().step_by(2).copied().collect();
        let secs = left.len() as f64 / 48_000.0;
        // Both parts, less at most the second it takes to see that the
        // audio moved.
        assert!(secs > 4.9, "PMT {pmt}, audio {audio}: only {secs} s decoded");
        let tail = &left[left.len() - 48_000..left.len() - 4_800];
        let f = frequency(48_000, tail);
        assert!((f - 997.0).abs() < 1.0, "PMT {pmt}, audio {audio}: the end is {f} Hz, not the new stream");
        let head = &left[4_800..48_000];
        assert!((frequency(48_000, head) - 440.0).abs() < 1.0);
    }
}
