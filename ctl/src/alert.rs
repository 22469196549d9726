//! Alarms reach people: `[[alert]]` webhooks.
//!
//! Every health reason ([`crate::health`]) that appears is sent as an alarm
//! `raised`, and as `cleared` when it goes; one-shot alarms of the uploader
//! (an S3 conflict, a quarantined segment, a full spool, a damaged state
//! file) are sent `raised` — those whose kind is also a health reason
//! (`upload_failing`, `orphan_segments`) only through the verdict, so each
//! is raised once and cleared. Each goes to every target as a JSON POST
//! ([`AlertEvent`]), signed when the target has a secret: header
//! `X-Airlift-Signature: sha256=<hex HMAC-SHA256 of the body>`. A target
//! has a bounded queue ([`QUEUE`] events; more are dropped and counted) and
//! retries a failed POST with backoff (0.5 s doubling, [`ATTEMPTS`]
//! attempts). A health condition is raised once it has held for [`HOLD`];
//! raised alarms of one kind are limited to [`RATE_PER_MINUTE`] a minute
//! (clearings of raised alarms always go out).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::health::Reason;
use crate::http::HttpState;
use crate::upload::UploadEvent;

/// Events a target may have waiting.
pub const QUEUE: usize = 256;
/// POST attempts per event.
pub const ATTEMPTS: u32 = 5;
/// Raised alarms of one kind sent in any minute.
pub const RATE_PER_MINUTE: usize = 10;
/// How long a condition must hold before it is raised (so start-up and a
/// reload's moment of change raise nothing).
pub const HOLD: Duration = Duration::from_secs(3);
/// Largest secret file read.
const SECRET_MAX: u64 = 4096;

/// `[[alert]]`: one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTarget {
    /// A name for logs and metrics.
    pub name: airlift_ipc::units::Name,
    /// `http://` or `https://` URL receiving the POSTs.
    pub url: String,
    /// File holding the HMAC secret (its bytes, a trailing newline
    /// removed); without it events go unsigned.
    #[serde(default)]
    pub secret_file: Option<airlift_ipc::units::SafePath>,
    /// Seconds one POST may take.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    5
}

/// Why an alert target cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The URL is not an http(s) URL: fix `url`.
    #[error("url {0:?} must be an http:// or https:// URL")]
    Url(String),
    /// The secret file cannot be read, is not a regular file, is empty or
    /// too large: fix `secret_file`.
    #[error("secret_file {path}: {message}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Checks a target's URL and reads its secret (relative paths against
/// `base`). Used by config validation and at start-up.
pub fn check_target(target: &AlertTarget, base: &Path) -> Result<Option<Vec<u8>>, AlertError> {
    let ok_url = reqwest::Url::parse(&target.url)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !ok_url {
        return Err(AlertError::Url(target.url.chars().take(200).collect()));
    }
    let Some(file) = &target.secret_file else { return Ok(None) };
    let path = Path::new(file.as_str());
    let path = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    let bad = |message: String| AlertError::Secret { path: path.clone(), message };
    let meta = std::fs::metadata(&path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > SECRET_MAX {
        return Err(bad(format!("is larger than {SECRET_MAX} bytes")));
    }
    let mut secret = std::fs::read(&path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(Some(secret))
}

/// What a webhook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// The node's name.
    pub node: String,
    /// The alarm's kind: a health reason code or an uploader alarm kind.
    pub kind: String,
    /// What it is about (flow, `flow/link`, job, target), or empty.
    pub subject: String,
    /// For people.
    pub message: String,
    /// `raised` or `cleared`.
    pub state: String,
    /// When, in Unix milliseconds.
    pub time_ms: i64,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Turns successive health verdicts into raised and cleared alarms, and
/// limits how many of one kind are raised a minute. Pure apart from time.
#[derive(Debug, Default)]
pub struct AlarmTracker {
    /// Conditions holding, with when they were first seen and whether
    /// they were raised.
    active: BTreeMap<(&'static str, String), (String, Instant, bool)>,
    raised: HashMap<String, VecDeque<Instant>>,
    /// Raised alarms not sent for the rate limit.
    pub limited: u64,
}

impl AlarmTracker {
    /// The alarms raised and cleared since the last call, for `reasons`
    /// holding now.
    pub fn diff(&mut self, node: &str, reasons: &[Reason], now: Instant) -> Vec<AlertEvent> {
        let mut out = Vec::new();
        let mut next = BTreeMap::new();
        for r in reasons {
            let key = (r.code, r.subject.clone());
            let (since, mut raised) =
                self.active.get(&key).map_or((now, false), |(_, since, raised)| (*since, *raised));
            if !raised && now.duration_since(since) >= HOLD && self.admit(r.code, now) {
                out.push(event(node, r.code, &r.subject, &r.message, "raised"));
                raised = true;
            }
            next.insert(key, (r.message.clone(), since, raised));
        }
        for ((code, subject), (message, _, raised)) in &self.active {
            if *raised && !next.contains_key(&(*code, subject.clone())) {
                out.push(event(node, code, subject, message, "cleared"));
            }
        }
        self.active = next;
        out
    }

    /// Whether one more alarm of `kind` may be raised now.
    pub fn admit(&mut self, kind: &str, now: Instant) -> bool {
        let sent = self.raised.entry(kind.to_string()).or_default();
        while sent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            sent.pop_front();
        }
        if sent.len() >= RATE_PER_MINUTE {
            self.limited += 1;
            return false;
        }
        sent.push_back(now);
        true
    }
}

fn event(node: &str, kind: &str, subject: &str, message: &str, state: &str) -> AlertEvent {
    AlertEvent {
        node: node.to_string(),
        kind: kind.to_string(),
        subject: subject.to_string(),
        message: message.to_string(),
        state: state.to_string(),
        time_ms: now_ms(),
    }
}

/// One target's sender: its queue and the task that empties it.
struct Sender {
    name: String,
    queue: mpsc::Sender<AlertEvent>,
}

/// Starts one sender task per target and the task that watches health
/// and uploader alarms. Runs until ctld stops. Tokio runtime.
pub fn start(targets: Vec<(AlertTarget, Option<Vec<u8>>)>, node: String, http: Arc<HttpState>) {
    if targets.is_empty() {
        return;
    }
    let mut senders = Vec::new();
    for (target, secret) in targets {
        let (tx, rx) = mpsc::channel(QUEUE);
        let name = target.name.to_string();
        tokio::spawn(send_loop(target, secret, rx, http.clone()));
        senders.push(Sender { name, queue: tx });
    }
    tokio::spawn(watch(senders, node, http));
}

async fn watch(senders: Vec<Sender>, node: String, http: Arc<HttpState>) {
    let mut tracker = AlarmTracker::default();
    let mut uploads = http.uploads.events.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let events = tokio::select! {
            _ = tick.tick() => {
                let (_, reasons) = http.judge();
                tracker.diff(&node, &reasons, Instant::now())
            }
            got = uploads.recv() => match got {
                // Kinds that are also health reasons are raised and cleared
                // from the health verdict: once each, with their clearing.
                Ok(UploadEvent::Alarm { kind, job, message })
                    if !crate::health::REASON_CODES.contains(&kind) && tracker.admit(kind, Instant::now()) =>
                {
                    vec![event(&node, kind, &job, &message, "raised")]
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Vec::new(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        };
        for e in events {
            tracing::info!(kind = %e.kind, subject = %e.subject, state = %e.state, "alert: {}", e.message);
            for s in &senders {
                if s.queue.try_send(e.clone()).is_err() {
                    tracing::warn!(target = %s.name, "alert queue full: event dropped");
                    http.shared.metrics.alert_outcome(&s.name, "dropped");
                }
            }
        }
    }
}

async fn send_loop(
    target: AlertTarget,
    secret: Option<Vec<u8>>,
    mut rx: mpsc::Receiver<AlertEvent>,
    http: Arc<HttpState>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(target.timeout_seconds.max(1)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target = %target.name, "alerts off: cannot make an HTTP client: {e}");
            return;
        }
    };
    let name = target.name.to_string();
    while let Some(event) = rx.recv().await {
        let body = match serde_json::to_vec(&event) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let mut delay = Duration::from_millis(500);
        let mut delivered = false;
        for attempt in 1..=ATTEMPTS {
            let mut request = client
                .post(&target.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Airlift-Event", event.state.as_str())
                .body(body.clone());
            if let Some(secret) = &secret {
                request = request.header("X-Airlift-Signature", sign(secret, &body));
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(r) => tracing::warn!(target = %name, attempt, status = %r.status(), "alert refused"),
                Err(e) => tracing::warn!(target = %name, attempt, "alert not delivered: {e}"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        http.shared.metrics.alert_outcome(&name, if delivered { "sent" } else { "failed" });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &'static str, subject: &str) -> Reason {
        Reason { code, subject: subject.into(), message: format!("{code} {subject}") }
    }

    #[test]
    fn alarms_are_raised_once_and_cleared() {
        let mut t = AlarmTracker::default();
        let now = Instant::now();
        assert!(t.diff("n", &[reason("flow_failed", "b")], now).is_empty(), "raised before the hold");
        let later = now + HOLD;
        let e = t.diff("n", &[reason("flow_failed", "b")], later);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].kind.as_str(), e[0].state.as_str()), ("flow_failed", "raised"));
        assert!(t.diff("n", &[reason("flow_failed", "b")], later).is_empty(), "raised twice");
        let e = t.diff("n", &[], later);
        assert_eq!((e[0].subject.as_str(), e[0].state.as_str()), ("b", "cleared"));
    }

    #[test]
    fn raised_alarms_of_one_kind_are_rate_limited() {
        let mut t = AlarmTracker::default();
        let now = Instant::now();
        let many: Vec<Reason> = (0..15).map(|i| reason("link_down", &format!("f/l{i}"))).collect();
        assert!(t.diff("n", &many, now).is_empty());
        assert_eq!(t.diff("n", &many, now + HOLD).len(), RATE_PER_MINUTE);
        assert_eq!(t.limited, 5);
        assert!(t.admit("link_down", now + HOLD + Duration::from_secs(61)));
        assert!(t.admit("flow_failed", now), "another kind has its own budget");
    }

    #[test]
    fn a_condition_gone_before_the_hold_raises_and_clears_nothing() {
        let mut t = AlarmTracker::default();
        let now = Instant::now();
        assert!(t.diff("n", &[reason("engine_away", "")], now).is_empty());
        assert!(t.diff("n", &[], now + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn signatures_match_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn targets_are_checked() {
        let base = std::env::temp_dir();
        let t = |url: &str| AlertTarget {
            name: airlift_ipc::units::Name::new("hook").unwrap(),
            url: url.into(),
            secret_file: None,
            timeout_seconds: 5,
        };
        assert!(check_target(&t("https://alerts.example/hook"), &base).is_ok());
        assert!(matches!(check_target(&t("ftp://x/y"), &base), Err(AlertError::Url(_))));
        assert!(matches!(check_target(&t("not a url"), &base), Err(AlertError::Url(_))));
        let mut with_secret = t("http://127.0.0.1:1/x");
        with_secret.secret_file = Some(airlift_ipc::units::SafePath::new("/nonexistent/secret").unwrap());
        assert!(matches!(check_target(&with_secret, &base), Err(AlertError::Secret { .. })));
    }
}
