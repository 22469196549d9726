//! An HTTP/1.1 proxy in front of s3s-fs that records the method, target and
//! answer status of every request it sees, and that can be told to refuse
//! (503 for every request) or to black-hole (accept, read, never answer).
//!
//! Requests and answers are parsed (head, `Content-Length` or chunked body),
//! one exchange at a time per connection, so each answer's status is paired
//! with its request: "a key written twice" is two 2xx PUTs on the wire, not
//! an inference.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to s3s-fs and pass the answer back.
    Pass = 0,
    /// Answer 503 SlowDown without forwarding.
    Refuse = 1,
    /// Read the request and never answer (the connection is closed when
    /// the mode changes).
    BlackHole = 2,
}

/// One request seen: method, target (with query), answer status (0: none).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub target: String,
    pub status: u16,
}

pub struct S3Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    mode: Arc<AtomicU8>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl S3Proxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let (s2, m2, l2) = (stop.clone(), mode.clone(), log.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::Builder::new()
            .name("s3-proxy".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let (s3, m3, l3) = (s2.clone(), m2.clone(), l2.clone());
                    let _ = std::thread::Builder::new()
                        .name("s3-proxy-conn".into())
                        .spawn(move || serve(client, upstream, &s3, &m3, &l3));
                }
            })
            .expect("proxy thread");
        Self { port, stop, mode, log }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    pub fn log(&self) -> Vec<Exchange> {
        self.log.lock().expect("proxy log").clone()
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn mode_of(m: &AtomicU8) -> Mode {
    match m.load(Ordering::Relaxed) {
        1 => Mode::Refuse,
        2 => Mode::BlackHole,
        _ => Mode::Pass,
    }
}

/// Buffered reads on one socket.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Takes bytes up to and including the first `\r\n\r\n` (or `\r\n`
    /// when `line`).
    fn take_until(&mut self, pat: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                return Some(self.buf.drain(..i + pat.len()).collect());
            }
            if self.buf.len() > 1 << 20 || !self.fill() {
                return None;
            }
        }
    }

    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// A whole message (head and body) as raw bytes, with its first line
    /// and headers. `no_body`: an answer to HEAD, or 1xx/204/304.
    fn message(&mut self, response_to_head: bool) -> Option<(Vec<u8>, String)> {
        let head = self.take_until(b"\r\n\r\n")?;
        let text = String::from_utf8_lossy(&head).to_string();
        let first = text.split("\r\n").next().unwrap_or_default().to_string();
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for line in text.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else { continue };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok();
            }
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
        let status: u16 = if first.starts_with("HTTP/") {
            first.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
        } else {
            0
        };
        let no_body = response_to_head || (100..200).contains(&status) || status == 204 || status == 304;
        let mut raw = head;
        if no_body {
        } else if chunked {
            loop {
                let line = self.take_until(b"\r\n")?;
                let size_text = String::from_utf8_lossy(&line).to_string();
                let size =
                    usize::from_str_radix(size_text.trim().split(';').next().unwrap_or("0"), 16).ok()?;
                raw.extend_from_slice(&line);
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        let t = self.take_until(b"\r\n")?;
                        let end = t.len() == 2;
                        raw.extend_from_slice(&t);
                        if end {
                            break;
                        }
                    }
                    break;
                }
                raw.extend(self.take(size + 2)?);
            }
        } else if let Some(n) = length {
            raw.extend(self.take(n)?);
        } else if status != 0 {
            // An answer without length: up to the close.
            while self.fill() {}
            raw.append(&mut self.buf);
        }
        Some((raw, first))
    }
}

fn serve(client: TcpStream, upstream: u16, stop: &AtomicBool, mode: &AtomicU8, log: &Mutex<Vec<Exchange>>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let mut from = Reader { stream: client.try_clone().expect("clone"), buf: Vec::new() };
    let mut to_client = client;
    let mut server: Option<Reader> = None;
    while let Some((request, first)) = from.message(false) {
        let mut parts = first.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        match mode_of(mode) {
            Mode::Refuse => {
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                            <Message>refused by the torture test</Message></Error>";
                let answer = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                log.lock().expect("log").push(Exchange { method, target, status: 503 });
                if to_client.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
            Mode::BlackHole => {
                log.lock().expect("log").push(Exchange { method, target, status: 0 });
                let until = Instant::now() + Duration::from_secs(120);
                while mode_of(mode) == Mode::BlackHole
                    && !stop.load(Ordering::Relaxed)
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                break;
            }
            Mode::Pass => {
                if server.is_none() {
                    let Ok(s) = TcpStream::connect(("127.0.0.1", upstream)) else { break };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                    server = Some(Reader { stream: s, buf: Vec::new() });
                }
                let Some(up) = server.as_mut() else { break };
                if up.stream.write_all(&request).is_err() {
                    break;
                }
                let Some((answer, status_line)) = up.message(method == "HEAD") else { break };
                let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                log.lock().expect("log").push(Exchange { method, target, status });
                if to_client.write_all(&answer).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_client.shutdown(Shutdown::Both);
    if let Some(s) = server {
        let _ = s.stream.shutdown(Shutdown::Both);
    }
}
