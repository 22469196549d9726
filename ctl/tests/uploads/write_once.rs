//! An S3 key is written once; a spool has one ctld.
//!
//! Objects are planted in s3s-fs with curl (an independent client) before
//! ctld starts. ctld talks to s3s-fs through [`RecordingProxy`], which logs
//! every request it forwards, so "no PUT to that key" is seen on the wire,
//! not inferred. The planted objects are checked afterwards by ETag, bytes,
//! and the inode and modification time of s3s-fs's own file.

use super::*;

/// A TCP proxy in front of s3s-fs recording the method and target of every
/// HTTP/1.1 request it forwards. Requests are parsed (request line, headers,
/// `Content-Length` body) so that keep-alive connections are followed;
/// responses are passed through as they come.
struct RecordingProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

impl RecordingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (s2, r2) = (stop.clone(), requests.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (c2, sv2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
                let r = r2.clone();
                std::thread::spawn(move || forward_requests(client, server, &r));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (sv2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        Self { port, stop, requests }
    }

    /// Requests whose method is `method` and whose path (query left off) is
    /// the object `key`.
    fn count(&self, method: &str, key: &str) -> usize {
        let path = format!("/{BUCKET}/{key}");
        let r = self.requests.lock().expect("requests");
        r.iter().filter(|(m, t)| m == method && t.split('?').next() == Some(path.as_str())).count()
    }

    fn all(&self) -> Vec<(String, String)> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn forward_requests(mut from: TcpStream, mut to: TcpStream, log: &Mutex<Vec<(String, String)>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    'requests: loop {
        // The head: up to the empty line.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => break 'requests,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_string();
        let target = first.next().unwrap_or_default().to_string();
        let mut length = 0usize;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("Content-Length");
            }
            assert!(
                !(name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")),
                "the recording proxy does not follow chunked request bodies"
            );
        }
        log.lock().expect("log").push((method, target));
        while buf.len() < head_end + length {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => break 'requests,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        if to.write_all(&buf[..head_end + length]).is_err() {
            break;
        }
        buf.drain(..head_end + length);
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// curl with its own SigV4 against s3s-fs.
fn curl(s3: &S3Server, args: &[&str], key: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{AK}:{SK}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args)
        .arg(format!("http://127.0.0.1:{}/{BUCKET}/{key}", s3.port))
        .output()
        .expect("curl")
}

/// Stores `data` under `key` behind ctld's back.
fn plant(s3: &S3Server, dir: &Path, key: &str, data: &[u8]) {
    let file = dir.join("planted.tmp");
    std::fs::write(&file, data).expect("planted body");
    let out = curl(s3, &["-X", "PUT", "--data-binary", &format!("@{}", file.display())], key);
    assert!(out.status.success(), "planting {key}: {}", String::from_utf8_lossy(&out.stderr));
}

/// What proves an object was not touched: its ETag, its bytes, and the
/// inode and modification time of s3s-fs's file.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    etag: String,
    sha256: String,
    inode: u64,
    modified: std::time::SystemTime,
}

fn fingerprint(s3: &S3Server, key: &str) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let out = curl(s3, &["-I"], key);
    assert!(out.status.success(), "HEAD {key}: {}", String::from_utf8_lossy(&out.stderr));
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    let etag = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("etag")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no ETag for {key}:\n{head}"));
    let body = s3.get(s3.port, key).unwrap_or_else(|| panic!("GET {key}"));
    let meta = std::fs::metadata(s3.data.join(BUCKET).join(key)).expect("s3s-fs file");
    Fingerprint {
        etag,
        sha256: hex(&Sha256::digest(&body)),
        inode: meta.ino(),
        modified: meta.modified().expect("mtime"),
    }
}

fn key(job: &str, seq: u64, ext: &str) -> String {
    format!("{PREFIX}/{job}/2026/11/22/{job}-{seq:08}.{ext}")
}

fn local(spool: &Path, job: &str, seq: u64, ext: &str) -> PathBuf {
    spool.join(format!("{job}/2026/11/22/{job}-{seq:08}.{ext}"))
}

/// (a) An object already under a segment's key with the same bytes (an
/// earlier attempt, say, whose answer was lost) counts as uploaded: not
/// written again, the segment leaves the spool as after an upload. Also:
/// a retained copy never replaces an older retained file of the same name.
#[test]
fn an_object_already_there_with_our_bytes_counts_as_uploaded() {
    let dir = test_dir("same");
    let s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let expected = write_segments(&spool, "news", 1, 4, 64 << 10);
    // Segment 2: its segment is there. Segment 3: segment and manifest.
    let seg2 = std::fs::read(local(&spool, "news", 2, "ts")).expect("segment 2");
    plant(&s3, &dir, &key("news", 2, "ts"), &seg2);
    plant(&s3, &dir, &key("news", 3, "ts"), &std::fs::read(local(&spool, "news", 3, "ts")).expect("3"));
    plant(&s3, &dir, &key("news", 3, "json"), &std::fs::read(local(&spool, "news", 3, "json")).expect("3"));
    let planted = [key("news", 2, "ts"), key("news", 3, "ts"), key("news", 3, "json")];
    let before: Vec<Fingerprint> = planted.iter().map(|k| fingerprint(&s3, k)).collect();
    // An older retained file with segment 1's name, from some earlier run.
    let old = spool.join(RETAINED_DIR).join("news/2026/11/22/news-00000001.ts");
    std::fs::create_dir_all(old.parent().expect("parent")).expect("retained dir");
    std::fs::write(&old, b"an older segment 1").expect("old retained");

    let proxy = RecordingProxy::start(s3.port);
    let ctld = Ctld::start(&dir, &Options { retention_hours: 1, ..Options::new(proxy.port) });
    drain(&ctld, &spool, Duration::from_secs(60));
    assert_all_stored(&s3, &expected);
    let after: Vec<Fingerprint> = planted.iter().map(|k| fingerprint(&s3, k)).collect();
    assert_eq!(before, after, "a planted object changed");
    for k in &planted {
        assert_eq!(proxy.count("PUT", k), 0, "{k} was written again: {:?}", proxy.all());
    }
    for k in [key("news", 1, "ts"), key("news", 1, "json"), key("news", 2, "json"), key("news", 4, "ts")] {
        assert_eq!(proxy.count("PUT", &k), 1, "{k}: {:?}", proxy.all());
    }
    assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(4.0));
    assert_eq!(ctld.metric("airlift_upload_conflicts_total"), Some(0.0));
    assert_eq!(ctld.metric("airlift_spool_quarantined_segments_total"), Some(0.0));
    assert!(ctld.log().contains("already stored with the same SHA-256"), "{}", tail(&ctld.log()));
    // Retained as after any upload; the older file of the same name is kept.
    let retained = spool.join(RETAINED_DIR).join("news/2026/11/22");
    assert_eq!(std::fs::read(&old).expect("old retained"), b"an older segment 1");
    assert_eq!(
        hex(&Sha256::digest(std::fs::read(retained.join("news-00000001.1.ts")).expect("renamed"))),
        expected[&key("news", 1, "ts")]
    );
    assert!(retained.join("news-00000001.1.json").exists());
    assert_eq!(std::fs::read(retained.join("news-00000002.ts")).expect("retained 2"), seg2);
    println!("requests through the proxy: {}", proxy.all().len());
    cleanup(&dir);
}

const RETAINED_DIR: &str = "retained";

/// (b) Another object under a segment's key (same size, other bytes), and
/// another manifest under a manifest's key: neither is written over; an
/// `upload_conflict` alarm (D-Bus) and the conflict metric count each; the
/// local segment and manifest go to quarantine, where an older quarantined
/// pair of the same name is kept.
#[test]
fn an_object_already_there_with_other_bytes_is_never_written_over() {
    let dir = test_dir("conflict");
    let bus = Bus::start(&dir);
    let s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let expected = write_segments(&spool, "news", 1, 3, 64 << 10);
    let mut other = std::fs::read(local(&spool, "news", 2, "ts")).expect("segment 2");
    other[1000] ^= 0x01;
    plant(&s3, &dir, &key("news", 2, "ts"), &other);
    plant(&s3, &dir, &key("news", 3, "json"), b"{\"someone\": \"else\"}");
    let planted = [key("news", 2, "ts"), key("news", 3, "json")];
    let before: Vec<Fingerprint> = planted.iter().map(|k| fingerprint(&s3, k)).collect();
    // A pair already in quarantine under segment 2's names.
    let quarantine = spool.join("quarantine");
    std::fs::create_dir_all(&quarantine).expect("quarantine dir");
    std::fs::write(quarantine.join("news-00000002.ts"), b"older").expect("older segment");
    std::fs::write(quarantine.join("news-00000002.json"), b"older manifest").expect("older manifest");
    let seg2 = std::fs::read(local(&spool, "news", 2, "ts")).expect("segment 2");
    let seg3 = std::fs::read(local(&spool, "news", 3, "ts")).expect("segment 3");

    let proxy = RecordingProxy::start(s3.port);
    let ctld = Ctld::start(&dir, &Options { dbus: Some(bus.address.clone()), ..Options::new(proxy.port) });
    drain(&ctld, &spool, Duration::from_secs(60));
    wait_for("two conflicts", Duration::from_secs(10), || {
        ctld.metric("airlift_upload_conflicts_total") == Some(2.0)
    });
    let after: Vec<Fingerprint> = planted.iter().map(|k| fingerprint(&s3, k)).collect();
    assert_eq!(before, after, "a planted object changed");
    for k in &planted {
        assert_eq!(proxy.count("PUT", k), 0, "{k} was written over: {:?}", proxy.all());
        assert_eq!(proxy.count("POST", k), 0, "{k}: {:?}", proxy.all());
    }
    // Segment 2's manifest is not uploaded after its segment conflicted;
    // segment 3 itself went up before its manifest's key was found taken.
    assert_eq!(proxy.count("PUT", &key("news", 2, "json")), 0, "{:?}", proxy.all());
    let mut stored: Vec<String> = planted.to_vec();
    stored.extend([key("news", 1, "ts"), key("news", 1, "json"), key("news", 3, "ts")]);
    stored.sort();
    assert_eq!(s3.stored_keys(), stored);
    assert_eq!(
        s3.get(s3.port, &key("news", 1, "ts")).map(|b| hex(&Sha256::digest(&b))).as_ref(),
        expected.get(&key("news", 1, "ts"))
    );
    // Quarantined beside the older pair, which is kept.
    assert_eq!(std::fs::read(quarantine.join("news-00000002.ts")).expect("older"), b"older");
    assert_eq!(std::fs::read(quarantine.join("news-00000002.json")).expect("older"), b"older manifest");
    assert_eq!(std::fs::read(quarantine.join("news-00000002.1.ts")).expect("quarantined 2"), seg2);
    assert!(quarantine.join("news-00000002.1.json").exists());
    assert_eq!(std::fs::read(quarantine.join("news-00000003.ts")).expect("quarantined 3"), seg3);
    assert!(quarantine.join("news-00000003.json").exists());
    assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(1.0));
    assert_eq!(ctld.metric("airlift_spool_quarantined_segments_total"), Some(2.0));
    wait_for("the alarms", Duration::from_secs(5), || {
        bus.signals().matches("string \"upload_conflict\"").count() == 2
    });
    let signals = bus.signals();
    assert!(signals.contains("not written over"), "{signals}");
    let log = ctld.log();
    assert!(log.contains(&key("news", 2, "ts")) && log.contains("quarantined"), "{}", tail(&log));
    // The conflicts stay put: a later scan uploads nothing over them.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(before, planted.iter().map(|k| fingerprint(&s3, k)).collect::<Vec<_>>());
    assert_eq!(ctld.metric("airlift_upload_conflicts_total"), Some(2.0));
    cleanup(&dir);
}

/// (d) A second ctld on the same spool exits at once with an error that
/// names the spool and the holder's pid, having started nothing; the first
/// keeps uploading.
#[test]
fn a_second_ctld_on_the_same_spool_refuses_to_start() {
    let dir = test_dir("owner");
    let s3 = S3Server::start(&dir, free_port());
    let spool = dir.join("spool");
    let mut expected = write_segments(&spool, "news", 1, 3, 16 << 10);
    let first = Ctld::start(&dir, &Options::new(s3.port));
    drain(&first, &spool, Duration::from_secs(30));
    let lock = spool.join(".ctld.lock");
    let holder = std::fs::read_to_string(&lock).expect("lock file");
    assert_eq!(holder.trim(), first.child.id().to_string());

    // The same configuration (and spool), another HTTP port.
    let config = dir.join("airlift.toml");
    let http = free_port();
    let started = Instant::now();
    let mut second = Command::new(env!("CARGO_BIN_EXE_airlift-ctld"))
        .arg("--config")
        .arg(&config)
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second ctld");
    wait_for("the second ctld to exit", Duration::from_secs(10), || {
        second.try_wait().expect("try_wait").is_some()
    });
    let out = second.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("second ctld, after {:?}: {stderr}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let spool_shown = spool.display().to_string();
    for needle in ["is in use by another airlift-ctld", &format!("pid {}", first.child.id()), &spool_shown] {
        assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    }
    for started_something in ["health and metrics", "D-Bus service up", "engine", "uploaded"] {
        assert!(
            !stderr.contains(started_something),
            "the second ctld went on to {started_something:?}:\n{stderr}"
        );
    }
    assert!(TcpStream::connect(("127.0.0.1", http)).is_err(), "the second ctld serves HTTP");
    assert_eq!(std::fs::read_to_string(&lock).expect("lock file"), holder, "the lock file was rewritten");

    // The first one still owns the spool and keeps working.
    expected.extend(write_segments(&spool, "news", 4, 3, 16 << 10));
    drain(&first, &spool, Duration::from_secs(30));
    assert_all_stored(&s3, &expected);
    assert_eq!(first.metric("airlift_uploads_ok_total"), Some(6.0));
    // Once the first is gone, the spool is free again.
    first.kill9();
    let third = Ctld::start(&dir, &Options::new(s3.port));
    assert_eq!(std::fs::read_to_string(&lock).expect("lock file").trim(), third.child.id().to_string());
    cleanup(&dir);
}

/// The client sends `If-None-Match: *` and s3s-fs honours it, on a single
/// PUT and on completing a multipart upload: the second write of a key is
/// refused (412) and the first object stays. `existing` tells the three
/// cases apart.
#[test]
fn the_server_refuses_a_second_write_of_a_key() {
    use airlift_ctl::upload::s3::{PutOutcome, PutPlan, S3Bucket, StoredObject};
    use bytes::Bytes;

    let dir = test_dir("ifnonematch");
    let s3 = S3Server::start(&dir, free_port());
    let path = Ctld::config(&dir, &Options::new(s3.port));
    let config = airlift_ctl::config::load(&path, &Default::default()).expect("config");
    let bucket = S3Bucket::connect(&config.s3[0], &config.base_dir).expect("bucket");
    let plan = PutPlan {
        multipart_threshold: 5 << 20,
        part_size: 5 << 20,
        read_back_max: 64 << 20,
        timeout: Duration::from_secs(20),
    };
    let sha = |b: &[u8]| hex(&Sha256::digest(b));
    let (first, second) = (b"the first object".to_vec(), b"the other object".to_vec());
    let big_a: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 251) as u8).collect();
    let big_b: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 241) as u8).collect();
    let (file_a, file_b) = (dir.join("big-a"), dir.join("big-b"));
    std::fs::write(&file_a, &big_a).expect("big a");
    std::fs::write(&file_b, &big_b).expect("big b");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let t = plan.timeout;
        let (sha_first, sha_second) = (sha(&first), sha(&second));
        let put = |data: &Vec<u8>, sum: &str| {
            let d = Bytes::from(data.clone());
            let sum = sum.to_string();
            let bucket = &bucket;
            async move { bucket.put_small("k/small", d, &sum, t).await.expect("put") }
        };
        assert_eq!(put(&first, &sha_first).await, PutOutcome::Stored);
        assert_eq!(put(&second, &sha_second).await, PutOutcome::Exists);
        assert_eq!(put(&first, &sha_first).await, PutOutcome::Exists);
        let n = first.len() as u64;
        assert_eq!(
            bucket.existing("k/small", n, &sha(&first), &plan).await.expect("same"),
            StoredObject::Same
        );
        assert_eq!(
            bucket.existing("k/small", n, &sha(&second), &plan).await.expect("different"),
            StoredObject::Different { bytes: n, sha256: Some(sha(&first)) }
        );
        assert_eq!(
            bucket.existing("k/none", n, &sha(&first), &plan).await.expect("missing"),
            StoredObject::Missing
        );
        let size = big_a.len() as u64;
        let progress = |_| {};
        let a =
            bucket.put_multipart("k/big", &file_a, size, &plan, &progress).await.expect("first multipart");
        assert_eq!(a, PutOutcome::Stored);
        let b =
            bucket.put_multipart("k/big", &file_b, size, &plan, &progress).await.expect("second multipart");
        assert_eq!(b, PutOutcome::Exists);
        assert_eq!(
            bucket.existing("k/big", size, &sha(&big_a), &plan).await.expect("big"),
            StoredObject::Same
        );
    });
    assert_eq!(s3.get(s3.port, "k/small").expect("small"), first);
    assert_eq!(hex(&Sha256::digest(s3.get(s3.port, "k/big").expect("big"))), sha(&big_a));
    cleanup(&dir);
}
