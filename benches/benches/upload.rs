//! Upload throughput: ctld's uploader against `s3cmd put` of the same files
//! to the same S3 server (`s3s-fs` on 127.0.0.1, started here), in the same
//! run.
//!
//! "ours" drives the library uploader exactly as ctld does
//! ([`airlift_ctl::upload::start`] on a spool of segments with manifests):
//! each segment is hashed and checked against its manifest, PUT with a
//! server-verified `x-amz-checksum-sha256`, read back and hashed, then its
//! manifest is PUT and read back, and only then is it removed from the
//! spool. A batch is timed from the scheduler's start to the last
//! `Uploaded` event. "s3cmd" is one `s3cmd put` of the same segment files
//! (no manifests, no read-back). Both use the shipped defaults: our
//! `[upload] concurrency = 4`, s3cmd's one file at a time. A third run,
//! "ours_without_read_back" (`verify_read_back_max = 0`: size check only),
//! shows what the read-back costs.
//!
//! In test mode (`cargo test`, or `cargo bench -- --test`) the batch is
//! small: the bench only proves that it works.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airlift_ctl::config::{Overrides, parse};
use airlift_ctl::engine_link::Shared;
use airlift_ctl::upload::{self, UploadEvent};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

const AK: &str = "airliftbench";
const SK: &str = "airliftbenchsecret";
const BUCKET: &str = "archive";
const JOB: &str = "bench";
/// Size of one segment.
const SEGMENT: usize = 4 << 20;
/// Segments per batch with `--bench`.
const SEGMENTS: u64 = 24;
/// Segments per batch in test mode.
const SEGMENTS_QUICK: u64 = 4;
/// 2026-11-22T00:00:00Z.
const DAY_MS: i64 = 20_779 * 86_400_000;
/// Longest wait for one batch (either side) or for s3s-fs to listen.
const LIMIT: Duration = Duration::from_secs(300);

/// `s3s-fs` on a free port of 127.0.0.1, killed on drop.
struct S3Server {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl S3Server {
    fn start(dir: &Path) -> Self {
        let data = dir.join("s3data");
        std::fs::create_dir_all(data.join(BUCKET)).expect("bucket dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is installed (scripts/install-deps)");
        let server = Self { child, port, data };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on port {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Objects stored under `prefix` (s3s-fs's folder is its ground truth).
    fn count(&self, prefix: &str) -> usize {
        let mut n = 0;
        let mut stack = vec![self.data.join(BUCKET).join(prefix)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !e.file_name().to_string_lossy().starts_with('.') {
                    n += 1;
                }
            }
        }
        n
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The batch: segment files and manifests in `source/`, as the engine's
/// segment writer leaves them in a spool.
struct Batch {
    dir: PathBuf,
    /// `(relative path, bytes)` of every segment and manifest.
    files: Vec<(String, Vec<u8>)>,
    segments: Vec<PathBuf>,
    bytes: u64,
}

impl Batch {
    fn new(dir: &Path, n: u64) -> Self {
        let source = dir.join("source");
        let mut files = Vec::new();
        let mut segments = Vec::new();
        let mut x = 0x1234_5678_9abc_def1u64;
        for seq in 1..=n {
            let rel = format!("{JOB}/2026/11/22/{JOB}-{seq:08}.ts");
            let mut data = vec![0u8; SEGMENT];
            for chunk in data.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            let manifest = serde_json::json!({
                "job": JOB, "sequence": seq, "path": rel, "utc_start_ms": DAY_MS + seq as i64 * 1000,
                "first_pts": 0, "duration_90k": 900_000, "bytes": SEGMENT,
                "sha256": hex(&Sha256::digest(&data)), "truncated": false,
            });
            let path = source.join(&rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("source dir");
            std::fs::write(&path, &data).expect("segment");
            segments.push(path);
            files.push((rel.replace(".ts", ".json"), manifest.to_string().into_bytes()));
            files.push((rel, data));
        }
        Self { dir: dir.to_path_buf(), files, segments, bytes: n * SEGMENT as u64 }
    }

    /// Puts the batch in an empty spool (manifests last, as the engine does).
    fn fill_spool(&self) -> PathBuf {
        let spool = self.dir.join("spool");
        let _ = std::fs::remove_dir_all(&spool);
        for (rel, data) in self.files.iter().filter(|(r, _)| r.ends_with(".ts")) {
            let path = spool.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("spool dir");
            std::fs::write(path, data).expect("spool segment");
        }
        for (rel, data) in self.files.iter().filter(|(r, _)| r.ends_with(".json")) {
            std::fs::write(spool.join(rel), data).expect("spool manifest");
        }
        spool
    }
}

/// ctld's uploader on `<dir>/spool`: one timed batch, from start to the
/// last segment verified and gone from the spool. Without `read_back`,
/// stored objects are checked by size only (`verify_read_back_max = 0`).
fn ours(dir: &Path, port: u16, segments: usize, read_back: bool) -> Duration {
    let read_back_max = if read_back { "64MiB" } else { "0" };
    let text = format!(
        "[engine]\nspawn = false\n[dbus]\nbus = \"none\"\n\
         [spool]\npath = \"spool\"\nmax_bytes = \"1GiB\"\nfull_policy = \"drop_oldest\"\n\
         [upload]\nrescan_secs = 3600\nverify_read_back_max = \"{read_back_max}\"\n\
         [[s3]]\nname = \"bench\"\nendpoint = \"http://127.0.0.1:{port}\"\nbucket = \"{BUCKET}\"\n\
         prefix = \"ours/\"\ncredentials_file = \"creds\"\n"
    );
    let config = parse(&text, "bench.toml", dir, &Overrides::default()).expect("bench config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("airlift-bench-upload")
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let t = Instant::now();
        let (status, _actions, task) = upload::start(&config, Shared::new()).expect("uploader");
        let mut events = status.events.subscribe();
        task.spawn();
        let mut uploaded = 0;
        while uploaded < segments {
            match tokio::time::timeout_at((t + LIMIT).into(), events.recv()).await {
                Ok(Ok(UploadEvent::Uploaded { .. })) => uploaded += 1,
                Ok(Ok(UploadEvent::Alarm { kind, message, .. })) => panic!("{kind}: {message}"),
                Ok(Err(e)) => panic!("upload events: {e}"),
                Err(_) => {
                    panic!("{uploaded} of {segments} uploaded after {LIMIT:?}: {:?}", status.list(0, 5))
                }
            }
        }
        t.elapsed()
    })
}

/// `s3cmd put` of the same segment files: one timed batch.
fn s3cmd(cfg: &Path, files: &[PathBuf]) -> Duration {
    let t = Instant::now();
    let mut child = Command::new("s3cmd")
        .arg("-c")
        .arg(cfg)
        .args(["--no-progress", "-q", "put"])
        .args(files)
        .arg(format!("s3://{BUCKET}/s3cmd/"))
        .spawn()
        .expect("s3cmd is installed (scripts/install-deps)");
    loop {
        if let Some(status) = child.try_wait().expect("s3cmd") {
            assert!(status.success(), "s3cmd put failed: {status}");
            return t.elapsed();
        }
        if t.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("s3cmd put took longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Removes the bench folder on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn median(times: &Mutex<Vec<f64>>) -> f64 {
    let mut v = times.lock().expect("times").clone();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn bench(c: &mut Criterion) {
    // `cargo bench` passes `--bench`; `cargo test` does not; `-- --test` is quick mode.
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let n = if quick { SEGMENTS_QUICK } else { SEGMENTS };
    let dir = TempDir(std::env::temp_dir().join(format!("airlift-bench-upload-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("bench dir");
    let server = S3Server::start(&dir.0);
    let batch = Batch::new(&dir.0, n);
    std::fs::write(dir.0.join("creds"), format!("{AK}:{SK}\n")).expect("creds");
    let cfg = dir.0.join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {AK}\nsecret_key = {SK}\nhost_base = 127.0.0.1:{p}\nhost_bucket = 127.0.0.1:{p}\n\
             use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n",
            p = server.port
        ),
    )
    .expect("s3cfg");

    // Per-batch seconds of both sides (warm-up included), for the ratio.
    let (ours_s, head_s, s3cmd_s) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let mut group = c.benchmark_group("upload");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Bytes(batch.bytes));
    let label = format!("{n}x4MiB");
    for (name, read_back, times) in [("ours", true, &ours_s), ("ours_without_read_back", false, &head_s)] {
        group.bench_function(format!("{name}/{label}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    batch.fill_spool();
                    let t = ours(&dir.0, server.port, n as usize, read_back);
                    times.lock().expect("times").push(t.as_secs_f64());
                    total += t;
                }
                total
            })
        });
    }
    group.bench_function(format!("s3cmd_put/{label}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = s3cmd(&cfg, &batch.segments);
                s3cmd_s.lock().expect("times").push(t.as_secs_f64());
                total += t;
            }
            total
        })
    });
    group.finish();

    // Both stored the whole batch (ours with its manifests).
    assert_eq!(server.count("ours"), 2 * n as usize, "our uploads in s3s-fs");
    assert_eq!(server.count("s3cmd"), n as usize, "s3cmd's uploads in s3s-fs");
    let mb = batch.bytes as f64 / 1e6;
    let (o, h, s) = (median(&ours_s), median(&head_s), median(&s3cmd_s));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "upload {label} (medians per batch): ours {:.1} MB/s ({o:.3} s, with manifests and read-back), \
         ours without read-back {:.1} MB/s ({h:.3} s), s3cmd put {:.1} MB/s ({s:.3} s); \
         ours/s3cmd throughput ratio {:.2} (without read-back {:.2}); load average {}",
        mb / o,
        mb / h,
        mb / s,
        s / o,
        s / h,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
