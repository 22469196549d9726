//! `https://` S3 endpoints with a private CA: s3s-fs speaks plain HTTP, so
//! a tokio-rustls proxy terminates TLS in front of it, with a CA and a
//! server certificate for 127.0.0.1 made by the `openssl` CLI.

use super::*;
/// A private CA and a server certificate it signed for 127.0.0.1 (IP SAN)
/// and localhost, made with the `openssl` CLI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let subject = format!("/CN=Airlift test CA {name}");
        let mut ca = vec!["req", "-x509", "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj"];
        ca.push(&subject);
        ca.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        ca.extend(ec);
        openssl(&dir, &ca);
        let mut csr = vec!["req", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"];
        csr.extend(ec);
        openssl(&dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .expect("extensions");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        Self { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
    }
}

/// TLS in front of s3s-fs (which speaks plain HTTP): tokio-rustls on a
/// port of 127.0.0.1, each connection piped to the upstream port. Counts
/// failed handshakes; stopped on drop.
struct TlsProxy {
    port: u16,
    failed_handshakes: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsProxy {
    fn start(pki: &Pki, upstream: u16) -> Self {
        let certs: Vec<_> = rustls_pemfile::certs(&mut std::fs::read(&pki.cert).expect("cert").as_slice())
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
        let key = rustls_pemfile::private_key(&mut std::fs::read(&pki.key).expect("key").as_slice())
            .expect("server key PEM")
            .expect("a server key");
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let failed_handshakes = Arc::new(AtomicU64::new(0));
        let failed = failed_handshakes.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("test-tls-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    let serve = async {
                        loop {
                            let Ok((tcp, _)) = listener.accept().await else { continue };
                            let (acceptor, failed) = (acceptor.clone(), failed.clone());
                            tokio::spawn(async move {
                                let Ok(mut tls) = acceptor.accept(tcp).await else {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    return;
                                };
                                let Ok(mut up) =
                                    tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                                else {
                                    return;
                                };
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                            });
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("proxy thread");
        Self { port, failed_handshakes, stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn https_with_a_private_ca_file_uploads_and_verifies() {
    let dir = test_dir("tls");
    let s3 = S3Server::start(&dir, free_port());
    let pki = Pki::new(&dir, "ca1");
    let proxy = TlsProxy::start(&pki, s3.port);
    let spool = dir.join("spool");
    let mut expected = write_segments(&spool, "news", 1, 10, 200 << 10);
    // And one in parts, over the same TLS connections.
    expected.extend(write_segments(&spool, "news", 11, 1, (6 << 20) + 777));
    let options = Options { tls: true, ca_file: Some(pki.ca.clone()), ..Options::new(proxy.port) };
    let ctld = Ctld::start(&dir, &options);
    drain(&ctld, &spool, Duration::from_secs(120));
    // Checked past the proxy, straight against the server.
    assert_all_stored(&s3, &expected);
    assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(11.0));
    assert_eq!(ctld.metric("airlift_uploads_failed_total"), Some(0.0), "{}", tail(&ctld.log()));
    assert_eq!(proxy.failed_handshakes.load(Ordering::Relaxed), 0);
    cleanup(&dir);
}

#[test]
fn https_with_an_unknown_ca_fails_and_keeps_the_spool() {
    let dir = test_dir("tls-unknown");
    let s3 = S3Server::start(&dir, free_port());
    let pki = Pki::new(&dir, "server-ca");
    let other = Pki::new(&dir, "other-ca");
    let proxy = TlsProxy::start(&pki, s3.port);
    let spool = dir.join("spool");
    write_segments(&spool, "news", 1, 3, 10_000);
    // Without ca_file (only the built-in roots), then with another CA.
    for ca_file in [None, Some(other.ca.clone())] {
        let _ = std::fs::remove_file(dir.join("ctld.log"));
        let label = format!("ca_file {ca_file:?}");
        let options = Options { tls: true, ca_file, ..Options::new(proxy.port) };
        let ctld = Ctld::start(&dir, &options);
        wait_for("failed uploads", Duration::from_secs(30), || {
            ctld.metric("airlift_uploads_failed_total") >= Some(3.0)
        });
        assert_eq!(ctld.metric("airlift_uploads_ok_total"), Some(0.0), "{label}");
        let log = ctld.log();
        assert!(
            log.contains("upload failed") && log.contains("certificate") && log.contains("UnknownIssuer"),
            "{label}: the log names the certificate problem:\n{}",
            tail(&log)
        );
        if let Some(line) = log.lines().find(|l| l.contains("upload failed")) {
            println!("{label}: {line}");
        }
        assert_eq!(pending(&spool), 6, "{label}: nothing leaves the spool");
        assert!(s3.stored_keys().is_empty(), "{label}: nothing is stored");
    }
    assert!(proxy.failed_handshakes.load(Ordering::Relaxed) >= 6, "the server saw the handshakes fail");
    cleanup(&dir);
}

#[test]
fn a_ca_file_that_is_not_pem_is_a_config_error() {
    let dir = test_dir("tls-badca");
    let bad = dir.join("not-a-ca.pem");
    std::fs::write(&bad, "just some text\n").expect("bad CA file");
    let options = Options { tls: true, ca_file: Some(bad.clone()), ..Options::new(free_port()) };
    let config = Ctld::config(&dir, &options);
    let text = std::fs::read_to_string(&config).expect("config");
    let line = text.lines().position(|l| l.starts_with("ca_file")).expect("ca_file line") + 1;
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-ctld"))
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("check-config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let want = format!(
        "{}:{line}:1: s3[local].ca_file: {}: holds no PEM certificate",
        config.display(),
        bad.display()
    );
    assert!(stderr.contains(&want), "expected {want:?} in:\n{stderr}");
    // ctld given it starts nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_airlift-ctld"))
        .arg("--config")
        .arg(&config)
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("ctld");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("s3[local].ca_file"), "{stderr}");
    assert!(!dir.join("spool").exists(), "no spool was created");
    cleanup(&dir);
}
