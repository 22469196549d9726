//! `GET /api/v1/flows`: each flow as the console shows it — the effective
//! input settings (configuration with the operator's values on top), the
//! processors and outputs, and the engine's last report of its realtime
//! figures, SRT links, input sources and meters.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Serialize;

use airlift_ipc::message::FlowStats;
use airlift_ipc::spec::{ConsumerSpec, FlowSpec, ProcessorSpec, TsSink};

use super::{Api, ApiError, ApiResult, json};
use crate::engine_link::MeterReading;

/// A level for JSON: −∞ (silence) and NaN are `null`.
pub fn level(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[derive(Serialize)]
pub(super) struct Flow {
    name: String,
    state: String,
    silent: bool,
    inputs: Vec<Input>,
    processors: Vec<&'static str>,
    outputs: Vec<Output>,
    links: Vec<Link>,
    realtime: Option<Realtime>,
    meters: Option<Meters>,
}

#[derive(Serialize)]
pub(super) struct Input {
    pub(super) name: String,
    pub(super) gain_db: f64,
    pub(super) muted: bool,
    pub(super) pan: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) selected: Option<Option<String>>,
}

#[derive(Serialize)]
struct Output {
    name: String,
    kind: &'static str,
}

#[derive(Serialize)]
struct Link {
    name: String,
    connected: bool,
    connects: u64,
    refusals: u64,
    rtt_ms: f64,
    bandwidth_mbps: f64,
    lost: u64,
    retransmits: u64,
    bytes: u64,
    dropped_frames: u64,
    inserted_frames: u64,
    drift_ppm: Option<f64>,
}

#[derive(Serialize)]
struct Realtime {
    /// Mean processing time over the period, 0 … 1.
    load: f64,
    periods: u64,
    late_periods: u64,
    deadline_misses: u64,
    xruns: u64,
    underruns: u64,
    overruns: u64,
    max_process_us: u32,
    period_us: f64,
}

#[derive(Serialize)]
pub(super) struct Meters {
    peak_dbfs: Vec<Option<f64>>,
    rms_dbfs: Vec<Option<f64>>,
    loudness: Option<Loudness>,
}

#[derive(Serialize)]
struct Loudness {
    momentary_lufs: Option<f64>,
    short_term_lufs: Option<f64>,
    integrated_lufs: Option<f64>,
    true_peak_dbtp: Option<f64>,
}

/// A meter report as JSON.
pub(super) fn meters(m: &MeterReading) -> Meters {
    Meters {
        peak_dbfs: m.channels.iter().map(|c| level(f64::from(c.peak_dbfs))).collect(),
        rms_dbfs: m.channels.iter().map(|c| level(f64::from(c.rms_dbfs))).collect(),
        loudness: m.loudness.as_ref().map(|l| Loudness {
            momentary_lufs: level(l.momentary_lufs),
            short_term_lufs: level(l.short_term_lufs),
            integrated_lufs: level(l.integrated_lufs),
            true_peak_dbtp: level(l.true_peak_dbtp),
        }),
    }
}

fn processor(p: &ProcessorSpec) -> &'static str {
    match p {
        ProcessorSpec::Gain { .. } => "gain",
        ProcessorSpec::Meter => "meter",
        ProcessorSpec::Loudness => "loudness",
        ProcessorSpec::SilenceDetector { .. } => "silence_detector",
    }
}

fn output_kind(c: &ConsumerSpec) -> &'static str {
    match c {
        ConsumerSpec::Null => "null",
        ConsumerSpec::Wav { .. } => "wav",
        ConsumerSpec::AlsaPlayback(_) => "alsa",
        ConsumerSpec::Encoded(e) => match &e.sink {
            TsSink::Segments(_) => "segments",
            TsSink::Srt(_) => "srt",
            _ => "ts",
        },
        ConsumerSpec::Link(_) => "link",
        ConsumerSpec::Record(_) => "record",
    }
}

/// The inputs of `spec` with their effective settings.
pub(super) fn inputs(spec: &FlowSpec, stats: Option<&FlowStats>) -> Vec<Input> {
    spec.inputs
        .iter()
        .map(|i| {
            let failover = i.failover.as_ref();
            let active = stats
                .and_then(|s| s.input_sources.iter().find(|x| x.input == i.name.as_str()))
                .map(|x| x.active.clone());
            Input {
                name: i.name.to_string(),
                gain_db: f64::from(i.gain_db.get()),
                muted: i.muted,
                pan: f64::from(i.pan.get()),
                sources: failover.map(|_| i.producers().map(|(n, _)| n.to_string()).collect()),
                source: failover.and(active),
                selected: failover.map(|f| f.selected.as_ref().map(|s| s.to_string())),
            }
        })
        .collect()
}

fn realtime(spec: &FlowSpec, s: &FlowStats) -> Realtime {
    let period_s = f64::from(spec.period.get()) / f64::from(spec.sample_rate.get());
    let load = if s.periods > 0 && period_s > 0.0 {
        s.process_ns_total as f64 / 1e9 / s.periods as f64 / period_s
    } else {
        0.0
    };
    Realtime {
        load,
        periods: s.periods,
        late_periods: s.late_periods,
        deadline_misses: s.deadline_misses,
        xruns: s.xruns,
        underruns: s.underruns,
        overruns: s.overruns,
        max_process_us: s.max_process_us,
        period_us: period_s * 1e6,
    }
}

/// Every flow, in configuration order.
pub(super) async fn all(api: &Api) -> Vec<Flow> {
    let desired = api.ctl.desired_state().await;
    let infos = api.ctl.flows().await;
    let mut out = Vec::new();
    for info in infos {
        let Some(spec) = desired.flows.iter().find(|f| f.name.as_str() == info.name) else {
            // Stopped by the operator: the desired state leaves it out; the
            // configuration still has it.
            let config = api.ctl.config().await;
            if let Some(spec) = config.state.flows.iter().find(|f| f.name.as_str() == info.name) {
                out.push(flow(api, spec, info.state, false));
            }
            continue;
        };
        out.push(flow(api, spec, info.state, true));
    }
    out
}

fn flow(api: &Api, spec: &FlowSpec, state: String, live: bool) -> Flow {
    api.ctl.shared.with_view(|v| {
        let name = spec.name.as_str();
        let stats = v.stats.get(name).filter(|_| live);
        Flow {
            name: name.to_string(),
            state,
            silent: v.silent.get(name).copied().unwrap_or(false),
            inputs: inputs(spec, stats),
            processors: spec.processors.iter().map(processor).collect(),
            outputs: spec
                .outputs
                .iter()
                .map(|o| Output { name: o.name.to_string(), kind: output_kind(&o.consumer) })
                .collect(),
            links: stats
                .map(|s| {
                    s.srt_links
                        .iter()
                        .map(|l| Link {
                            name: l.name.clone(),
                            connected: l.connected,
                            connects: l.connects,
                            refusals: l.refusals,
                            rtt_ms: l.rtt_ms,
                            bandwidth_mbps: l.bandwidth_mbps,
                            lost: l.lost,
                            retransmits: l.retransmits,
                            bytes: l.bytes,
                            dropped_frames: l.dropped_frames,
                            inserted_frames: l.inserted_frames,
                            drift_ppm: l.drift_ppm,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            realtime: stats.map(|s| realtime(spec, s)),
            meters: v.meters.get(name).filter(|_| live).map(meters),
        }
    })
}

pub(super) async fn list(State(api): State<Arc<Api>>) -> Response {
    json(&all(&api).await)
}

pub(super) async fn one(State(api): State<Arc<Api>>, Path(name): Path<String>) -> ApiResult<Response> {
    all(&api).await.into_iter().find(|f| f.name == name).map(|f| json(&f)).ok_or_else(|| {
        ApiError::not_found(format!("no flow named {}", name.chars().take(64).collect::<String>()))
    })
}
