//! A reload that changes `[[s3]]`, `[upload]` and `[limits] upload_queue`
//! restarts the uploader on the new settings: uploads in flight finish on
//! the old bucket, every other segment goes to the new one, each segment is
//! stored exactly once; a reload with a target that does not check out is
//! refused and the running targets stay.

use super::*;

/// Every key stored in `bucket`, from s3s-fs's folder.
fn keys_in(s3: &S3Server, bucket: &str) -> Vec<String> {
    let root = s3.data.join(bucket);
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.push(p.strip_prefix(&root).expect("inside").to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

fn hup(ctld: &Ctld) {
    let status = Command::new("kill").args(["-HUP", &ctld.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn a_reload_moves_uploads_to_a_new_bucket_without_loss_or_duplicates() {
    let dir = test_dir("reload-s3");
    let mut s3 = S3Server::start(&dir, free_port());
    std::fs::create_dir_all(s3.data.join("archive2")).expect("second bucket");
    let spool = dir.join("spool");
    let early = write_segments(&spool, "news", 1, 5, 256 << 10);
    let ctld = Ctld::start(&dir, &Options { concurrency: 2, ..Options::new(s3.port) });
    assert_eq!(ctld.metric("airlift_upload_queue_limit_segments"), Some(10_000.0));
    drain(&ctld, &spool, Duration::from_secs(60));

    // S3 is down: segments pile up in the queue, failing and retrying.
    s3.stop();
    let waiting = write_segments(&spool, "news", 6, 20, 256 << 10);
    wait_for("failed attempts", Duration::from_secs(20), || {
        ctld.metric("airlift_uploads_failed_total") >= Some(4.0)
    });
    let config = dir.join("airlift.toml");
    let old = std::fs::read_to_string(&config).expect("config");
    let new = old.replace("bucket = \"archive\"", "bucket = \"archive2\"").replace("node1/", "node2/")
        + "[limits]\nupload_queue = 3\n";
    std::fs::write(&config, &new).expect("config");
    hup(&ctld);
    // ctld has no engine here: a reload waits for it a few seconds.
    wait_for("the reload", Duration::from_secs(20), || {
        ctld.metric("airlift_config_reloads_total{result=\"ok\"}") == Some(1.0)
    });
    let late = write_segments(&spool, "news", 26, 10, 64 << 10);
    // The queue holds 3; the other 27 wait in the spool, counted, none dropped.
    wait_for("the smaller queue", Duration::from_secs(10), || {
        ctld.metric("airlift_upload_unqueued_segments") == Some(27.0)
    });
    assert_eq!(ctld.metric("airlift_upload_queue_segments"), Some(30.0));
    assert_eq!(ctld.metric("airlift_upload_queue_limit_segments"), Some(3.0));
    let health: serde_json::Value =
        serde_json::from_str(&ctld.get("/health").expect("health")).expect("JSON");
    assert_eq!(health["uploads"]["queue_limit"], serde_json::json!(3), "{health}");
    assert_eq!(health["uploads"]["unqueued"], serde_json::json!(27), "{health}");
    assert_eq!(health["uploads"]["backlog"], serde_json::json!(30), "{health}");
    assert_eq!(pending(&spool), 60, "every waiting segment and manifest is still in the spool");

    s3.restart();
    drain(&ctld, &spool, Duration::from_secs(120));
    // Before the reload: the first bucket; after: the second; each once,
    // with the bytes of its manifest.
    let want = |set: &BTreeMap<String, String>, prefix: &str| -> Vec<String> {
        let mut keys: Vec<String> = set
            .keys()
            .flat_map(|k| {
                let k = k.replacen("node1/", prefix, 1);
                [k.clone(), k.replace(".ts", ".json")]
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys_in(&s3, BUCKET), want(&early, "node1/"), "{BUCKET} holds what went before the reload");
    let mut after = waiting.clone();
    after.extend(late.clone());
    assert_eq!(keys_in(&s3, "archive2"), want(&after, "node2/"), "archive2 holds the rest, once");
    for (bucket, prefix, set) in [(BUCKET, "node1/", &early), ("archive2", "node2/", &after)] {
        for (key, sha) in set {
            let key = key.replacen("node1/", prefix, 1);
            let body = get(&s3, bucket, &key).unwrap_or_else(|| panic!("GET {bucket}/{key}"));
            assert_eq!(&hex(&Sha256::digest(&body)), sha, "{bucket}/{key}");
        }
    }
    assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(35.0));
    assert_eq!(ctld.metric("airlift_upload_unqueued_segments"), Some(0.0));
    assert!(ctld.log().contains("uploads reconfigured"), "{}", tail(&ctld.log()));

    // A target whose credentials cannot be read: the reload is refused,
    // the running targets stay.
    std::fs::write(&config, new.replace("credentials_file = \"creds\"", "credentials_file = \"missing\""))
        .expect("config");
    hup(&ctld);
    wait_for("the refusal", Duration::from_secs(20), || {
        ctld.metric("airlift_config_reloads_total{result=\"rejected\"}") == Some(1.0)
    });
    let log = ctld.log();
    assert!(log.contains("reload refused") && log.contains("missing"), "{}", tail(&log));
    let last = write_segments(&spool, "news", 36, 3, 64 << 10);
    drain(&ctld, &spool, Duration::from_secs(60));
    after.extend(last);
    assert_eq!(keys_in(&s3, "archive2"), want(&after, "node2/"), "the refused reload changed the target");
    assert_eq!(keys_in(&s3, BUCKET), want(&early, "node1/"));
    cleanup(&dir);
}

/// GET through curl's own SigV4 from any bucket.
fn get(s3: &S3Server, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &format!("{AK}:{SK}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("http://127.0.0.1:{}/{bucket}/{key}", s3.port))
        .output()
        .expect("curl");
    out.status.success().then_some(out.stdout)
}
