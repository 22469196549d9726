//! What happened lately, for clients that arrive later (the web console, the
//! HTTP API): the last alarms and the last segments with their upload state.
//! Also what an engine event means for people ([`engine_alarm`]), which the
//! D-Bus `Alarm` signal and this log share.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlift_ipc::message::{EngineToCtl, SrtLinkState};
use serde::Serialize;

use crate::engine_link::Shared;
use crate::upload::{UploadEvent, UploadStatus};

/// Alarms kept.
pub const ALARMS: usize = 200;
/// Segments kept.
pub const SEGMENTS: usize = 50;

/// One alarm, as the D-Bus `Alarm` signal carries it, with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// `silence`, `xrun`, `srt_down`, `segment_gap`, `engine`, or one of the
    /// uploader's kinds (`spool_full`, `upload_failing`, `quarantine`,
    /// `upload_conflict`, `state_file`, …).
    pub kind: String,
    /// The flow or job concerned, or empty.
    pub flow: String,
    /// What happened, for people.
    pub message: String,
}

/// A segment closed lately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentSegment {
    /// The segment job (flow or pull job).
    pub job: String,
    /// Its sequence number.
    pub sequence: u64,
    /// Its path in the spool.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// When the engine reported it, ms since the Unix epoch.
    pub closed_at_ms: i64,
    /// `spooled` (waiting or being sent), `uploaded`, or `local` when no
    /// upload target is configured.
    pub upload: &'static str,
    /// The object key once uploaded.
    pub key: Option<String>,
}

/// The kind, subject and message of the alarm an engine event raises, if any.
pub fn engine_alarm(event: &EngineToCtl) -> Option<(&'static str, String, String)> {
    match event {
        EngineToCtl::Silence { flow, silent } => {
            let msg = if *silent { "silence detected" } else { "audio is back" };
            Some(("silence", flow.to_string(), msg.to_string()))
        }
        EngineToCtl::Xrun { flow, node, total } => {
            Some(("xrun", flow.to_string(), format!("{node}: {total} xruns")))
        }
        EngineToCtl::SrtLink { flow, link, state, connects, refusals } => {
            let message = match state {
                SrtLinkState::Waiting if *connects > 0 => format!("{link}: peer lost, reconnecting"),
                SrtLinkState::Refused => format!("{link}: refused by the peer ({refusals} refusals)"),
                _ => return None,
            };
            Some(("srt_down", flow.to_string(), message))
        }
        EngineToCtl::SegmentClosed(m) if m.gap_90k > 0 => Some((
            "segment_gap",
            m.job.to_string(),
            format!(
                "{:.3} s of audio lost before segment {} ({}): the spool refused writes for longer than the memory hold",
                m.gap_90k as f64 / 90_000.0,
                m.sequence,
                m.path
            ),
        )),
        _ => None,
    }
}

/// The message of the alarm raised when the engine link goes down.
pub const ENGINE_DOWN: &str = "the engine is not connected";

/// The recent alarms and segments; fed by [`Recent::start`].
#[derive(Debug)]
pub struct Recent {
    alarms: Mutex<VecDeque<Alarm>>,
    segments: Mutex<VecDeque<RecentSegment>>,
    /// Every alarm as it is logged (the event stream subscribes here).
    pub alarm_events: tokio::sync::broadcast::Sender<Alarm>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Default for Recent {
    fn default() -> Self {
        Self::new()
    }
}

impl Recent {
    /// An empty log that announces its alarms.
    pub fn new() -> Self {
        Self {
            alarms: Mutex::default(),
            segments: Mutex::default(),
            alarm_events: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// The last alarms, newest first.
    pub fn alarms(&self) -> Vec<Alarm> {
        self.alarms.lock().map(|a| a.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// The last segments, newest first.
    pub fn segments(&self) -> Vec<RecentSegment> {
        self.segments.lock().map(|s| s.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// Logs an alarm.
    pub fn alarm(&self, kind: &str, flow: &str, message: &str) {
        let alarm = Alarm {
            at_ms: now_ms(),
            kind: kind.to_string(),
            flow: flow.to_string(),
            message: message.to_string(),
        };
        if let Ok(mut a) = self.alarms.lock() {
            if a.len() == ALARMS {
                a.pop_front();
            }
            a.push_back(alarm.clone());
        }
        let _ = self.alarm_events.send(alarm);
    }

    fn segment_closed(&self, m: &airlift_ipc::message::SegmentManifest, uploads_on: bool) {
        if let Ok(mut s) = self.segments.lock() {
            if s.len() == SEGMENTS {
                s.pop_front();
            }
            s.push_back(RecentSegment {
                job: m.job.to_string(),
                sequence: m.sequence,
                path: m.path.clone(),
                bytes: m.bytes,
                closed_at_ms: now_ms(),
                upload: if uploads_on { "spooled" } else { "local" },
                key: None,
            });
        }
    }

    fn uploaded(&self, job: &str, sequence: u64, key: &str) {
        if let Ok(mut s) = self.segments.lock()
            && let Some(seg) = s.iter_mut().rev().find(|s| s.job == job && s.sequence == sequence)
        {
            seg.upload = "uploaded";
            seg.key = Some(key.to_string());
        }
    }

    /// Follows the engine's events, the uploader's and the link's state
    /// until ctld stops. Subscribed before this returns, so nothing sent
    /// after it is missed.
    pub fn start(self: &Arc<Self>, shared: Arc<Shared>, uploads: Arc<UploadStatus>) {
        let mut engine = shared.events.subscribe();
        let mut upload_events = uploads.events.subscribe();
        let recent = self.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut connected = false;
            let mut pid = shared.with_view(|v| v.engine_pid);
            loop {
                tokio::select! {
                    event = engine.recv() => match event {
                        Ok(event) => {
                            if let Some((kind, flow, message)) = engine_alarm(&event) {
                                recent.alarm(kind, &flow, &message);
                            }
                            if let EngineToCtl::SegmentClosed(m) = &event {
                                recent.segment_closed(m, !uploads.targets().is_empty());
                            }
                        }
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    event = upload_events.recv() => match event {
                        Ok(UploadEvent::Uploaded { job, sequence, key }) => recent.uploaded(&job, sequence, &key),
                        Ok(UploadEvent::Alarm { kind, job, message }) => recent.alarm(kind, &job, &message),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => {
                        let (now, now_pid, last) =
                            shared.with_view(|v| (v.connected, v.engine_pid, v.gaps.last().map(|g| g.1)));
                        if connected && !now {
                            recent.alarm("engine", "", ENGINE_DOWN);
                        } else if connected && now && pid.is_some() && now_pid.is_some() && now_pid != pid {
                            // Gone and back between two looks.
                            let gap = last.map_or(0.0, |g| g.as_secs_f64());
                            let message = format!("the engine restarted ({gap:.1} s without it)");
                            recent.alarm("engine", "", &message);
                        }
                        connected = now;
                        pid = now_pid;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_and_says_newest_first() {
        let r = Recent::new();
        for i in 0..(ALARMS + 5) {
            r.alarm("xrun", "main", &format!("{i}"));
        }
        let a = r.alarms();
        assert_eq!(a.len(), ALARMS);
        assert_eq!(a[0].message, format!("{}", ALARMS + 4));
        assert_eq!(a[ALARMS - 1].message, "5");
    }

    #[test]
    fn an_uploaded_segment_is_marked_with_its_key() {
        let r = Recent::new();
        let m = airlift_ipc::message::SegmentManifest {
            job: airlift_ipc::units::Name::new("main").unwrap(),
            sequence: 7,
            path: "main/7.ts".into(),
            utc_start_ms: 0,
            first_pts: 0,
            duration_90k: 540_000,
            bytes: 10,
            sha256: String::new(),
            truncated: false,
            discontinuity: false,
            gap_90k: 0,
        };
        r.segment_closed(&m, true);
        assert_eq!(r.segments()[0].upload, "spooled");
        r.uploaded("main", 7, "node/main/7.ts");
        assert_eq!(r.segments()[0].upload, "uploaded");
        assert_eq!(r.segments()[0].key.as_deref(), Some("node/main/7.ts"));
    }
}
