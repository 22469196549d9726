//! The node's health verdict, one rule for `/health`, D-Bus `Status` and the
//! `airlift_health_reason` metric: pure, from a [`HealthInputs`] snapshot.
//!
//! - `unhealthy` (HTTP 503): the engine is away, or every flow failed.
//! - `degraded`: any other [`Reason`] holds — a flow failed and is being
//!   retried, a flow is silent, a pull job failed or is reconnecting, a
//!   configured SRT link has been down for longer than
//!   `[health] link_down_seconds`, the upload circuit breaker is open,
//!   uploads keep failing (`[health] upload_failures` attempts in a row), the
//!   oldest segment waiting is older than `[health] max_upload_lag_seconds`,
//!   segments without manifests sit in the spool, the spool is over 80 %
//!   full, or the `stop_recording` policy stopped recording.
//! - warnings ([`WARNING_CODES`]) are reasons that leave the verdict as it
//!   is: an SRT listener running without a passphrase because its endpoint
//!   says `allow_unencrypted = true` (`unencrypted_listener`). They show in
//!   the reasons and the metric, so the choice stays visible, without
//!   turning a working node `degraded`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[health]`: when a condition turns the node `degraded`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// Oldest segment waiting for upload, in seconds, above which uploads
    /// count as lagging.
    #[serde(default = "default_lag")]
    pub max_upload_lag_seconds: u64,
    /// Seconds a configured SRT link may be down (waiting or refused)
    /// before it counts.
    #[serde(default = "default_link_down")]
    pub link_down_seconds: u64,
    /// Failed attempts in a row on one segment before uploads count as failing.
    #[serde(default = "default_failures")]
    pub upload_failures: u32,
}

fn default_lag() -> u64 {
    300
}
fn default_link_down() -> u64 {
    10
}
fn default_failures() -> u32 {
    3
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            max_upload_lag_seconds: default_lag(),
            link_down_seconds: default_link_down(),
            upload_failures: default_failures(),
        }
    }
}

/// Every reason code, for the metric (each is exported, 0 when it does not hold).
pub const REASON_CODES: [&str; 14] = [
    "engine_away",
    "all_flows_failed",
    "flow_failed",
    "flow_silent",
    "pull_failed",
    "link_down",
    "upload_breaker_open",
    "upload_failing",
    "upload_lag",
    "orphan_segments",
    "spool_high",
    "recording_stopped",
    "state_rejected",
    "unencrypted_listener",
];

/// Reason codes that warn without changing the verdict.
pub const WARNING_CODES: [&str; 1] = ["unencrypted_listener"];

/// What the verdict is made from: a snapshot taken by the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthInputs {
    /// The engine is connected.
    pub engine_connected: bool,
    /// Desired flows with their state text (`running`, `stopped`,
    /// `failed: …`, `unknown`) and whether they are silent.
    pub flows: Vec<(String, String, bool)>,
    /// Pull jobs that failed or are reconnecting, with the reason.
    pub pulls_failing: Vec<(String, String)>,
    /// SRT links not connected, with how long: `(flow, link, down for)`.
    pub links_down: Vec<(String, String, Duration)>,
    /// Upload targets whose circuit breaker is open.
    pub breakers_open: Vec<String>,
    /// Most failed attempts of one waiting segment.
    pub most_upload_attempts: u32,
    /// Age of the oldest segment waiting for upload.
    pub upload_lag: Option<Duration>,
    /// Segments without manifests found in the spool.
    pub orphans: u64,
    /// Bytes in the spool and its limit (0: no limit).
    pub spool_bytes: u64,
    /// The spool's limit.
    pub spool_limit: u64,
    /// The `stop_recording` policy holds recording.
    pub recording_stopped: bool,
    /// The engine refused the last desired state, with its message.
    pub state_rejected: Option<String>,
    /// SRT listeners of the desired state running without a passphrase
    /// (opted out with `allow_unencrypted = true`), by endpoint, e.g.
    /// `flow[main].input[studio].producer.srt_in.srt`.
    pub unencrypted_listeners: Vec<String>,
}

/// The verdict (as a number: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// All is well.
    Healthy = 0,
    /// Running, but something needs attention.
    Degraded = 1,
    /// Not doing its job: answer 503.
    Unhealthy = 2,
}

impl Verdict {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Degraded => "degraded",
            Verdict::Unhealthy => "unhealthy",
        }
    }
}

/// One reason the node is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// One of [`REASON_CODES`].
    pub code: &'static str,
    /// What it is about: a flow, `flow/link`, a pull job, a target, or
    /// empty for the node.
    pub subject: String,
    /// For people.
    pub message: String,
}

/// Judges `inputs` by `bounds`.
pub fn judge(inputs: &HealthInputs, bounds: &HealthSection) -> (Verdict, Vec<Reason>) {
    let mut reasons = Vec::new();
    let mut reason = |code: &'static str, subject: &str, message: String| {
        reasons.push(Reason { code, subject: subject.into(), message })
    };
    let mut unhealthy = false;
    if !inputs.engine_connected {
        unhealthy = true;
        reason("engine_away", "", "the engine is not connected".into());
    }
    let wanted: Vec<_> = inputs.flows.iter().filter(|(_, s, _)| s != "stopped").collect();
    let failed = wanted.iter().filter(|(_, s, _)| s.starts_with("failed")).count();
    if inputs.engine_connected && !wanted.is_empty() && failed == wanted.len() {
        unhealthy = true;
        reason("all_flows_failed", "", format!("every flow failed ({failed})"));
    }
    for (name, state, silent) in &inputs.flows {
        // A flow the engine has not reported yet (just started) is not a
        // failure; one it reported failed is.
        if state.starts_with("failed") {
            reason("flow_failed", name, format!("flow {name} is {state}; retrying"));
        }
        if *silent {
            reason("flow_silent", name, format!("flow {name} is silent"));
        }
    }
    for (job, why) in &inputs.pulls_failing {
        reason("pull_failed", job, format!("pull job {job}: {why}"));
    }
    let link_limit = Duration::from_secs(bounds.link_down_seconds);
    for (flow, link, down) in &inputs.links_down {
        if *down >= link_limit {
            reason(
                "link_down",
                &format!("{flow}/{link}"),
                format!("SRT link {link} of flow {flow} down for {} s", down.as_secs()),
            );
        }
    }
    for target in &inputs.breakers_open {
        reason("upload_breaker_open", target, format!("uploads to {target} paused: circuit breaker open"));
    }
    if bounds.upload_failures > 0 && inputs.most_upload_attempts >= bounds.upload_failures {
        reason(
            "upload_failing",
            "",
            format!("a segment failed to upload {} times in a row", inputs.most_upload_attempts),
        );
    }
    if let Some(lag) = inputs.upload_lag
        && lag > Duration::from_secs(bounds.max_upload_lag_seconds)
    {
        reason(
            "upload_lag",
            "",
            format!(
                "the oldest segment has waited {} s for upload (bound {} s)",
                lag.as_secs(),
                bounds.max_upload_lag_seconds
            ),
        );
    }
    if inputs.orphans > 0 {
        reason(
            "orphan_segments",
            "",
            format!("{} segment(s) without a manifest in the spool", inputs.orphans),
        );
    }
    if inputs.spool_limit > 0 && inputs.spool_bytes.saturating_mul(10) > inputs.spool_limit.saturating_mul(8)
    {
        reason(
            "spool_high",
            "",
            format!("the spool is {}% full", inputs.spool_bytes.saturating_mul(100) / inputs.spool_limit),
        );
    }
    if inputs.recording_stopped {
        reason("recording_stopped", "", "recording stopped by the spool policy: the spool is full".into());
    }
    if let Some(message) = &inputs.state_rejected {
        reason("state_rejected", "", format!("the engine refused the desired state: {message}"));
    }
    for endpoint in &inputs.unencrypted_listeners {
        reason(
            "unencrypted_listener",
            endpoint,
            format!(
                "SRT listener {endpoint} runs without a passphrase (allow_unencrypted = true): anyone who reaches its port can connect"
            ),
        );
    }
    let verdict = if unhealthy {
        Verdict::Unhealthy
    } else if reasons.iter().all(|r| WARNING_CODES.contains(&r.code)) {
        Verdict::Healthy
    } else {
        Verdict::Degraded
    };
    (verdict, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> HealthInputs {
        HealthInputs {
            engine_connected: true,
            flows: vec![("main".into(), "running".into(), false), ("b".into(), "running".into(), false)],
            ..HealthInputs::default()
        }
    }

    /// Each condition alone gives its reason and the verdict it should.
    #[test]
    fn each_condition_gives_its_reason() {
        let bounds = HealthSection::default();
        type Provoke = fn(&mut HealthInputs);
        let table: [(&str, Provoke, Verdict); 15] = [
            ("engine_away", |i| i.engine_connected = false, Verdict::Unhealthy),
            (
                "all_flows_failed",
                |i| {
                    for f in &mut i.flows {
                        f.1 = "failed: port taken".into();
                    }
                },
                Verdict::Unhealthy,
            ),
            ("flow_failed", |i| i.flows[1].1 = "failed: port taken".into(), Verdict::Degraded),
            ("flow_silent", |i| i.flows[0].2 = true, Verdict::Degraded),
            ("pull_failed", |i| i.pulls_failing.push(("cam".into(), "no data".into())), Verdict::Degraded),
            (
                "link_down",
                |i| i.links_down.push(("main".into(), "tx".into(), Duration::from_secs(11))),
                Verdict::Degraded,
            ),
            ("upload_breaker_open", |i| i.breakers_open.push("s3".into()), Verdict::Degraded),
            ("upload_failing", |i| i.most_upload_attempts = 3, Verdict::Degraded),
            ("upload_lag", |i| i.upload_lag = Some(Duration::from_secs(301)), Verdict::Degraded),
            ("orphan_segments", |i| i.orphans = 1, Verdict::Degraded),
            (
                "spool_high",
                |i| {
                    i.spool_bytes = 81;
                    i.spool_limit = 100;
                },
                Verdict::Degraded,
            ),
            ("recording_stopped", |i| i.recording_stopped = true, Verdict::Degraded),
            ("state_rejected", |i| i.state_rejected = Some("bad".into()), Verdict::Degraded),
            (
                "unencrypted_listener",
                |i| i.unencrypted_listeners.push("pull[ingest].source".into()),
                Verdict::Healthy,
            ),
            ("", |_| {}, Verdict::Healthy),
        ];
        for (code, provoke, verdict) in table {
            let mut inputs = running();
            provoke(&mut inputs);
            let (v, reasons) = judge(&inputs, &bounds);
            assert_eq!(v, verdict, "{code}: {reasons:?}");
            if code.is_empty() {
                assert!(reasons.is_empty(), "{reasons:?}");
            } else if WARNING_CODES.contains(&code) {
                assert_eq!(reasons.len(), 1, "{reasons:?}");
                assert_eq!(reasons[0].code, code);
            } else {
                assert!(reasons.iter().any(|r| r.code == code), "{code}: {reasons:?}");
                assert!(REASON_CODES.contains(&code));
            }
        }
    }

    #[test]
    fn below_the_bounds_nothing_counts() {
        let bounds = HealthSection::default();
        let mut inputs = running();
        inputs.links_down.push(("main".into(), "tx".into(), Duration::from_secs(9)));
        inputs.most_upload_attempts = 2;
        inputs.upload_lag = Some(Duration::from_secs(299));
        inputs.spool_bytes = 80;
        inputs.spool_limit = 100;
        inputs.flows[1].1 = "stopped".into();
        assert_eq!(judge(&inputs, &bounds), (Verdict::Healthy, vec![]));
    }

    #[test]
    fn a_warning_never_hides_a_degradation() {
        let mut inputs = running();
        inputs.unencrypted_listeners.push("flow[main].input[studio].producer.srt_in.srt".into());
        inputs.flows[0].2 = true;
        let (verdict, reasons) = judge(&inputs, &HealthSection::default());
        assert_eq!(verdict, Verdict::Degraded);
        assert_eq!(reasons.len(), 2);
        inputs.engine_connected = false;
        assert_eq!(judge(&inputs, &HealthSection::default()).0, Verdict::Unhealthy);
    }
}
