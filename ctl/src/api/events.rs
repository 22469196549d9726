//! `GET /api/v1/events`: Server-Sent Events for the console — levels (at
//! most [`LEVELS_PER_SECOND`] a second per flow), flow states, input
//! changes made by any client, source switches, SRT links, segments,
//! uploads, alarms, pull jobs, the engine link. Each connection has its own
//! bounded queue: a client that falls behind misses events, ctld never
//! waits for it. A stream ends after [`STREAM_MAX`] (the HTTP server closes
//! every connection within a minute) and tells the browser to reconnect
//! after [`RETRY`]; the console reads the state again when it does.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use airlift_ipc::message::{EngineToCtl, FlowState, SrtLinkState};

use super::Api;
use crate::controller::Change;
use crate::upload::UploadEvent;

/// Level events per second per flow, at most.
pub const LEVELS_PER_SECOND: u64 = 10;
/// How long one stream lasts before the browser is asked to reconnect.
pub const STREAM_MAX: Duration = Duration::from_secs(50);
/// How soon the browser reconnects.
pub const RETRY: Duration = Duration::from_millis(500);
/// Events queued for one connection.
const QUEUE: usize = 256;

pub(super) async fn stream(State(api): State<Arc<Api>>) -> Response {
    let (tx, mut rx) = mpsc::channel::<Event>(QUEUE);
    tokio::spawn(feed(api, tx));
    let events =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|e| e.map(Ok::<_, Infallible>)));
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// Queues one event; `false` once the client is gone.
fn send<T: Serialize>(tx: &mpsc::Sender<Event>, name: &str, data: &T) -> bool {
    let Ok(event) = Event::default().event(name).json_data(data) else { return true };
    match tx.try_send(event) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

type InputKey = (String, String);

/// Each input's settings as the console shows them.
async fn input_snapshot(api: &Api) -> BTreeMap<InputKey, serde_json::Value> {
    let mut out = BTreeMap::new();
    for f in super::flows::all(api).await {
        let v = serde_json::to_value(&f).unwrap_or_default();
        let flow = v["name"].as_str().unwrap_or_default().to_string();
        for i in v["inputs"].as_array().into_iter().flatten() {
            let input = i["name"].as_str().unwrap_or_default().to_string();
            let data = serde_json::json!({
                "flow": flow,
                "input": input,
                "gain_db": i["gain_db"],
                "muted": i["muted"],
                "pan": i["pan"],
                "selected": i.get("selected").cloned().unwrap_or(serde_json::Value::Null),
            });
            out.insert((flow.clone(), input), data);
        }
    }
    out
}

fn state_text(state: &FlowState) -> String {
    match state {
        FlowState::Running => "running".into(),
        FlowState::Stopped => "stopped".into(),
        FlowState::Failed { reason } => format!("failed: {reason}"),
    }
}

async fn feed(api: Arc<Api>, tx: mpsc::Sender<Event>) {
    let mut engine = api.ctl.shared.events.subscribe();
    let mut uploads = api.ctl.http.uploads.events.subscribe();
    let mut alarms = api.recent.alarm_events.subscribe();
    let mut changes = api.ctl.changes.subscribe();
    let mut inputs = input_snapshot(&api).await;
    let mut pulls = api.ctl.pulls().await;
    let mut connected = api.ctl.shared.with_view(|v| v.connected);
    let mut last_levels: HashMap<String, Instant> = HashMap::new();
    let level_gap = Duration::from_millis(1000 / LEVELS_PER_SECOND);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let end = tokio::time::sleep(STREAM_MAX);
    tokio::pin!(end);
    if tx.try_send(Event::default().retry(RETRY).event("hello").data(api.ctl.http.node.clone())).is_err() {
        return;
    }
    loop {
        let alive = tokio::select! {
            () = &mut end => return,
            () = tx.closed() => return,
            event = engine.recv() => match event {
                Ok(event) => engine_event(&tx, &event, &mut last_levels, level_gap),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            event = uploads.recv() => match event {
                Ok(UploadEvent::Uploaded { job, sequence, key }) => send(
                    &tx,
                    "segment_uploaded",
                    &serde_json::json!({ "job": job, "sequence": sequence, "key": key }),
                ),
                Ok(UploadEvent::Alarm { .. }) | Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            alarm = alarms.recv() => match alarm {
                Ok(alarm) => send(&tx, "alarm", &alarm),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
            change = changes.recv() => {
                let now = input_snapshot(&api).await;
                let mut alive = true;
                for (key, value) in &now {
                    if inputs.get(key) != Some(value) {
                        alive &= send(&tx, "input", value);
                    }
                }
                inputs = now;
                let now = api.ctl.pulls().await;
                if now != pulls {
                    alive &= send(&tx, "pulls", &serde_json::json!({}));
                }
                pulls = now;
                match change {
                    Ok(Change::Runtime) => alive,
                    // A reload, or events missed: read everything again.
                    Ok(_) | Err(RecvError::Lagged(_)) => alive && send(&tx, "changed", &serde_json::json!({})),
                    Err(RecvError::Closed) => return,
                }
            }
            _ = tick.tick() => {
                let now = api.ctl.shared.with_view(|v| v.connected);
                let mut alive = true;
                if now != connected {
                    connected = now;
                    alive = send(&tx, "engine", &serde_json::json!({ "connected": now }));
                }
                // Pull jobs change state without an operator's change.
                let now = api.ctl.pulls().await;
                if now != pulls {
                    pulls = now;
                    alive &= send(&tx, "pulls", &serde_json::json!({}));
                }
                alive
            }
        };
        if !alive {
            return;
        }
    }
}

/// One engine event as a console event (levels thinned out).
fn engine_event(
    tx: &mpsc::Sender<Event>,
    event: &EngineToCtl,
    last_levels: &mut HashMap<String, Instant>,
    gap: Duration,
) -> bool {
    use serde_json::json;
    match event {
        EngineToCtl::Meters { flow, channels, loudness } => {
            let due = last_levels.get(flow.as_str()).is_none_or(|t| t.elapsed() >= gap);
            if !due {
                return true;
            }
            last_levels.insert(flow.to_string(), Instant::now());
            let m = super::flows::meters(&crate::engine_link::MeterReading {
                channels: channels.clone(),
                loudness: *loudness,
            });
            let mut v = serde_json::to_value(&m).unwrap_or_default();
            v["flow"] = json!(flow.as_str());
            send(tx, "levels", &v)
        }
        // A new engine (a restart can be quicker than the link's poll).
        EngineToCtl::Hello { .. } => send(tx, "engine", &json!({ "connected": true })),
        EngineToCtl::FlowState { flow, state } => {
            send(tx, "flow_state", &json!({ "flow": flow.as_str(), "state": state_text(state) }))
        }
        EngineToCtl::InputSwitched { flow, input, source, reason } => send(
            tx,
            "input_switched",
            &json!({ "flow": flow.as_str(), "input": input.as_str(), "source": source.as_str(), "reason": reason.as_str() }),
        ),
        EngineToCtl::SrtLink { flow, link, state, connects, refusals } => {
            let state = match state {
                SrtLinkState::Connected => "connected",
                SrtLinkState::Waiting => "waiting",
                SrtLinkState::Refused => "refused",
            };
            send(
                tx,
                "link",
                &json!({ "flow": flow.as_str(), "link": link, "state": state, "connects": connects, "refusals": refusals }),
            )
        }
        EngineToCtl::SegmentClosed(m) => send(
            tx,
            "segment_closed",
            &json!({ "job": m.job.as_str(), "sequence": m.sequence, "path": m.path, "bytes": m.bytes }),
        ),
        _ => true,
    }
}
