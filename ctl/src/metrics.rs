//! Prometheus metrics (through `prometheus-client`), fed by engine events.
//!
//! Engine counters restart at zero when the engine restarts; ctld keeps its
//! own counters monotonic by adding the difference since the last report
//! (or the whole value after a restart).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

mod labels;
mod record;

pub use labels::{
    AlertLabel, ChannelLabel, FlowLabel, InputLabel, JobLabel, LinkLabel, ProcessLabel, ReasonLabel,
    ResultLabel, RingLabel, SourceLabel, SwitchLabel, TargetLabel,
};

/// CPU seconds (user + system) and resident bytes of process `pid`, from
/// `/proc/<pid>/stat` and `/proc/<pid>/statm`.
pub fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
    Some((ticks as f64 / hz, pages * page))
}

/// A histogram whose buckets are counted elsewhere (by the engine's audio
/// thread) and copied in whole.
#[derive(Debug, Default, Clone)]
pub struct ExternalHistogram(Arc<Mutex<HistogramData>>);

/// Sum, count and per-bucket counts (upper bound, count).
type HistogramData = (f64, u64, Vec<(f64, u64)>);

impl ExternalHistogram {
    fn set(&self, sum: f64, count: u64, buckets: Vec<(f64, u64)>) {
        if let Ok(mut h) = self.0.lock() {
            *h = (sum, count, buckets);
        }
    }
}

impl TypedMetric for ExternalHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ExternalHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = self.0.lock().map_err(|_| std::fmt::Error)?;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.0, h.1, &h.2, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Every metric ctld exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    frames: Family<FlowLabel, Counter>,
    periods: Family<FlowLabel, Counter>,
    deadline_misses: Family<FlowLabel, Counter>,
    late_periods: Family<FlowLabel, Counter>,
    ring_fill: Family<RingLabel, Gauge<f64, AtomicU64>>,
    max_late: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    underruns: Family<FlowLabel, Counter>,
    overruns: Family<FlowLabel, Counter>,
    xruns: Family<FlowLabel, Counter>,
    max_process: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    load: Family<FlowLabel, ExternalHistogram>,
    peak: Family<ChannelLabel, Gauge<f64, AtomicU64>>,
    rms: Family<ChannelLabel, Gauge<f64, AtomicU64>>,
    loudness_momentary: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    loudness_short: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    loudness_integrated: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    silence: Family<FlowLabel, Gauge>,
    health_reasons: Family<ReasonLabel, Gauge>,
    true_peak: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    alerts: Family<AlertLabel, Counter>,
    drift: Family<FlowLabel, Gauge<f64, AtomicU64>>,
    latency: Family<FlowLabel, Gauge>,
    process_cpu: Family<ProcessLabel, Gauge<f64, AtomicU64>>,
    process_rss: Family<ProcessLabel, Gauge>,
    health_state: Gauge,
    /// 1 while the engine link is up.
    pub engine_connected: Gauge,
    /// Engine (re)starts after the first.
    pub engine_restarts: Counter,
    /// Seconds without an engine, summed over restarts.
    pub engine_gap_seconds: Counter<f64, AtomicU64>,
    /// Length of the last gap.
    pub engine_last_gap_seconds: Gauge<f64, AtomicU64>,
    /// Flows in the desired state.
    pub flows_desired: Gauge,
    /// Flows the engine reports running.
    pub flows_running: Gauge,
    /// SRT ports held.
    pub srt_ports_in_use: Gauge,
    /// SRT ports in the range.
    pub srt_ports_total: Gauge,
    srt_connected: Family<LinkLabel, Gauge>,
    srt_connects: Family<LinkLabel, Counter>,
    srt_refusals: Family<LinkLabel, Counter>,
    srt_rtt: Family<LinkLabel, Gauge<f64, AtomicU64>>,
    srt_bandwidth: Family<LinkLabel, Gauge<f64, AtomicU64>>,
    srt_lost: Family<LinkLabel, Gauge>,
    srt_retransmits: Family<LinkLabel, Gauge>,
    srt_bytes: Family<LinkLabel, Gauge>,
    input_dropped: Family<InputLabel, Counter>,
    input_inserted: Family<InputLabel, Counter>,
    input_drift: Family<InputLabel, Gauge<f64, AtomicU64>>,
    input_source: Family<SourceLabel, Gauge>,
    input_switches: Family<SwitchLabel, Counter>,
    /// Segments closed in the spool, per job.
    pub segments: Family<JobLabel, Counter>,
    /// Bytes of closed segments, per job.
    pub segment_bytes: Family<JobLabel, Counter>,
    segment_stalls: Family<JobLabel, Counter>,
    segment_held: Family<JobLabel, Gauge>,
    segment_dropped: Family<JobLabel, Counter>,
    segment_gaps: Family<JobLabel, Counter>,
    segment_gap_seconds: Family<JobLabel, Counter<f64, AtomicU64>>,
    pull_junk: Family<JobLabel, Counter>,
    pull_connects: Family<JobLabel, Counter>,
    pull_bytes: Family<JobLabel, Counter>,
    pull_packets: Family<JobLabel, Counter>,
    pull_cc_errors: Family<JobLabel, Counter>,
    pull_unparsable: Family<JobLabel, Counter>,
    pull_forced_cuts: Family<JobLabel, Counter>,
    pull_bitrate: Family<JobLabel, Gauge>,
    pull_pcr_jitter: Family<JobLabel, Gauge<f64, AtomicU64>>,
    pull_since_key: Family<JobLabel, Gauge<f64, AtomicU64>>,
    /// Config reloads by result.
    pub reloads: Family<ResultLabel, Counter>,
    /// Bytes in the spool.
    pub spool_bytes: Gauge,
    /// Spool limit.
    pub spool_limit_bytes: Gauge,
    /// Seconds since ctld started.
    pub uptime_seconds: Gauge<f64, AtomicU64>,
    /// Upload metrics.
    pub upload: UploadMetrics,
    last: Mutex<HashMap<(String, &'static str), u64>>,
    known_pulls: Mutex<std::collections::BTreeSet<String>>,
}

/// The uploader's metrics.
#[derive(Debug, Default)]
pub struct UploadMetrics {
    /// Segments in the spool waiting for upload (queued or not).
    pub queue_segments: Gauge,
    /// Bytes of the segments in the upload queue.
    pub queue_bytes: Gauge,
    /// Segments waiting in the spool for room in the upload queue.
    pub unqueued_segments: Gauge,
    /// `[limits] upload_queue`: most segments in the upload queue at once.
    pub queue_limit: Gauge,
    /// Age of the oldest waiting segment (now − its UTC start), 0 when none waits.
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// Segments uploaded and verified on every target.
    pub ok: Counter,
    /// Upload attempts of a segment that failed (each is retried).
    pub failed: Counter,
    /// Attempts after the first.
    pub retried: Counter,
    /// Bytes uploaded and verified.
    pub bytes: Counter,
    /// Circuit breaker per target: 0 closed, 1 open, 2 half-open.
    pub breaker_state: Family<TargetLabel, Gauge>,
    /// Segments dropped by the `drop_oldest` spool policy before upload.
    pub dropped: Counter,
    /// Segments quarantined: their bytes no longer matched their manifest, or
    /// another object was already stored under their key.
    pub quarantined: Counter,
    /// Segments (or manifests) whose key already held another object in S3:
    /// not written over, quarantined.
    pub conflicts: Counter,
    /// 1 while the spool is over its limit (or the disk is full).
    pub spool_full: Gauge,
    /// 1 while recording is stopped by the `stop_recording` policy.
    pub recording_stopped: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("airlift");
        let m = Self {
            frames: Family::default(),
            periods: Family::default(),
            deadline_misses: Family::default(),
            late_periods: Family::default(),
            ring_fill: Family::default(),
            max_late: Family::default(),
            underruns: Family::default(),
            overruns: Family::default(),
            xruns: Family::default(),
            max_process: Family::default(),
            load: Family::default(),
            peak: Family::default(),
            rms: Family::default(),
            loudness_momentary: Family::default(),
            loudness_short: Family::default(),
            loudness_integrated: Family::default(),
            silence: Family::default(),
            health_reasons: Family::default(),
            true_peak: Family::default(),
            alerts: Family::default(),
            drift: Family::default(),
            latency: Family::default(),
            process_cpu: Family::default(),
            process_rss: Family::default(),
            health_state: Gauge::default(),
            engine_connected: Gauge::default(),
            engine_restarts: Counter::default(),
            engine_gap_seconds: Counter::default(),
            engine_last_gap_seconds: Gauge::default(),
            flows_desired: Gauge::default(),
            flows_running: Gauge::default(),
            srt_ports_in_use: Gauge::default(),
            srt_ports_total: Gauge::default(),
            reloads: Family::default(),
            segments: Family::default(),
            srt_connected: Family::default(),
            srt_connects: Family::default(),
            srt_refusals: Family::default(),
            srt_rtt: Family::default(),
            srt_bandwidth: Family::default(),
            srt_lost: Family::default(),
            srt_retransmits: Family::default(),
            srt_bytes: Family::default(),
            input_dropped: Family::default(),
            input_inserted: Family::default(),
            input_drift: Family::default(),
            input_source: Family::default(),
            input_switches: Family::default(),
            segment_bytes: Family::default(),
            segment_stalls: Family::default(),
            segment_held: Family::default(),
            segment_dropped: Family::default(),
            segment_gaps: Family::default(),
            segment_gap_seconds: Family::default(),
            pull_junk: Family::default(),
            pull_connects: Family::default(),
            pull_bytes: Family::default(),
            pull_packets: Family::default(),
            pull_cc_errors: Family::default(),
            pull_unparsable: Family::default(),
            pull_forced_cuts: Family::default(),
            pull_bitrate: Family::default(),
            pull_pcr_jitter: Family::default(),
            pull_since_key: Family::default(),
            spool_bytes: Gauge::default(),
            spool_limit_bytes: Gauge::default(),
            uptime_seconds: Gauge::default(),
            upload: UploadMetrics::default(),
            last: Mutex::new(HashMap::new()),
            known_pulls: Mutex::new(std::collections::BTreeSet::new()),
            registry: Registry::default(),
        };
        registry.register("frames", "Frames processed per flow", m.frames.clone());
        registry.register("periods", "Periods processed per flow", m.periods.clone());
        registry.register(
            "deadline_misses",
            "Periods too late to catch up: the internal clock skipped periods and audio was lost",
            m.deadline_misses.clone(),
        );
        registry.register(
            "late_periods",
            "Periods that finished after the next deadline and were caught up without losing audio",
            m.late_periods.clone(),
        );
        registry.register(
            "ring_fill_ratio",
            "Fill of the rings between a flow's audio thread and its workers since the last report: lowest of the \
             input rings (near 0: an underrun is close), highest of the output rings (near 1: an overrun is close)",
            m.ring_fill.clone(),
        );
        registry.register(
            "period_lateness_max_seconds",
            "Largest lateness of a period past its deadline (scheduling latency)",
            m.max_late.clone(),
        );
        registry.register("underruns", "Periods with an input ring that ran dry", m.underruns.clone());
        registry.register("overruns", "Periods with a full output ring", m.overruns.clone());
        registry.register("xruns", "Device xruns", m.xruns.clone());
        registry.register(
            "period_process_max_seconds",
            "Longest period processing time",
            m.max_process.clone(),
        );
        registry.register(
            "period_load_ratio",
            "Period processing time as a fraction of the period",
            m.load.clone(),
        );
        registry.register(
            "meter_peak_dbfs",
            "Sample peak per bus channel over the last 100 ms",
            m.peak.clone(),
        );
        registry.register("meter_rms_dbfs", "RMS per bus channel over the last 100 ms", m.rms.clone());
        registry.register(
            "loudness_momentary_lufs",
            "EBU R128 momentary loudness",
            m.loudness_momentary.clone(),
        );
        registry.register(
            "loudness_short_term_lufs",
            "EBU R128 short-term loudness",
            m.loudness_short.clone(),
        );
        registry.register(
            "loudness_integrated_lufs",
            "EBU R128 integrated loudness",
            m.loudness_integrated.clone(),
        );
        registry.register("silence", "1 while a flow's silence detector reports silence", m.silence.clone());
        registry.register("true_peak_dbtp", "EBU R128 true peak of a flow's bus", m.true_peak.clone());
        registry.register(
            "alerts",
            "Alert webhook deliveries by target and outcome (sent, failed, dropped)",
            m.alerts.clone(),
        );
        registry.register(
            "flow_drift_ppm",
            "Clock drift a flow's bridge input follows, in parts per million",
            m.drift.clone(),
        );
        registry.register(
            "flow_latency_frames",
            "Input-to-output latency of a duplex device flow, in frames",
            m.latency.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time (user + system) used so far by ctld and by the engine",
            m.process_cpu.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of ctld and of the engine",
            m.process_rss.clone(),
        );
        registry.register(
            "health_reason",
            "How many times each health reason holds now (0 when it does not)",
            m.health_reasons.clone(),
        );
        registry.register("health_state", "0 healthy, 1 degraded, 2 unhealthy", m.health_state.clone());
        registry.register(
            "engine_connected",
            "1 while ctld is connected to the engine",
            m.engine_connected.clone(),
        );
        registry.register(
            "engine_restarts",
            "Engine restarts after a crash or disconnect",
            m.engine_restarts.clone(),
        );
        registry.register(
            "engine_gap_seconds",
            "Seconds without an engine, summed",
            m.engine_gap_seconds.clone(),
        );
        registry.register(
            "engine_last_gap_seconds",
            "Length of the last engine gap",
            m.engine_last_gap_seconds.clone(),
        );
        registry.register("flows_desired", "Flows in the configuration", m.flows_desired.clone());
        registry.register("flows_running", "Flows the engine reports running", m.flows_running.clone());
        registry.register("srt_ports_in_use", "SRT ports held", m.srt_ports_in_use.clone());
        registry.register("srt_ports", "SRT ports in the configured range", m.srt_ports_total.clone());
        registry.register("segments", "Segments closed in the spool", m.segments.clone());
        registry.register("srt_connected", "1 while an SRT link is connected", m.srt_connected.clone());
        registry.register("srt_connects", "SRT connections made", m.srt_connects.clone());
        registry.register("srt_refusals", "SRT connection attempts the peer refused", m.srt_refusals.clone());
        registry.register(
            "srt_rtt_seconds",
            "SRT round-trip time of the current connection",
            m.srt_rtt.clone(),
        );
        registry.register("srt_bandwidth_mbps", "SRT estimated link bandwidth", m.srt_bandwidth.clone());
        registry.register(
            "srt_lost_packets",
            "SRT packets lost on the current connection",
            m.srt_lost.clone(),
        );
        registry.register(
            "srt_retransmitted_packets",
            "SRT packets retransmitted on the current connection",
            m.srt_retransmits.clone(),
        );
        registry.register(
            "srt_connection_bytes",
            "Bytes carried by the current SRT connection",
            m.srt_bytes.clone(),
        );
        registry.register(
            "input_dropped_frames",
            "Frames an SRT input dropped because its sender ran ahead of the flow's clock",
            m.input_dropped.clone(),
        );
        registry.register(
            "input_inserted_frames",
            "Frames of silence an SRT input played while it buffered again after running dry",
            m.input_inserted.clone(),
        );
        registry.register(
            "input_drift_ppm",
            "Clock offset of an SRT input's sender against its flow, in ppm, as the input's adaptive resampler follows it",
            m.input_drift.clone(),
        );
        registry.register(
            "input_source_active",
            "1 for the source an input with backups plays, 0 for its other sources",
            m.input_source.clone(),
        );
        registry.register(
            "input_switches",
            "Switches of an input with backups to a source, by reason",
            m.input_switches.clone(),
        );
        registry.register("segment_bytes", "Bytes of segments closed in the spool", m.segment_bytes.clone());
        registry.register(
            "segment_stalls",
            "Times the spool refused a segment job's writes (full, or below its free-space floor)",
            m.segment_stalls.clone(),
        );
        registry.register(
            "segment_held_bytes",
            "Bytes a segment job holds in memory while the spool refuses writes",
            m.segment_held.clone(),
        );
        registry.register(
            "segment_dropped_bytes",
            "Bytes a segment job dropped (oldest first) because its memory hold was full",
            m.segment_dropped.clone(),
        );
        registry.register(
            "segment_gaps",
            "Gaps recorded in a segment job's manifests",
            m.segment_gaps.clone(),
        );
        registry.register(
            "segment_gap_seconds",
            "Audio lost in gaps recorded in a segment job's manifests",
            m.segment_gap_seconds.clone(),
        );
        registry.register(
            "pull_junk_bytes",
            "Bytes of a pulled stream that did not parse as TS (they count towards the segment size)",
            m.pull_junk.clone(),
        );
        registry.register("pull_connects", "Connections a pull job made", m.pull_connects.clone());
        registry.register("pull_received_bytes", "Bytes a pull job received", m.pull_bytes.clone());
        registry.register("pull_packets", "TS packets a pull job read", m.pull_packets.clone());
        registry.register(
            "pull_cc_errors",
            "Continuity-counter errors in a pulled stream (packets lost before us)",
            m.pull_cc_errors.clone(),
        );
        registry.register(
            "pull_unparsable_packets",
            "Packets of a pulled stream that were not TS",
            m.pull_unparsable.clone(),
        );
        registry.register(
            "pull_forced_cuts",
            "Segment cuts forced by the size limit (no key frame in time)",
            m.pull_forced_cuts.clone(),
        );
        registry.register("pull_bitrate_bps", "Bits per second a pull job receives", m.pull_bitrate.clone());
        registry.register(
            "pull_pcr_jitter_max_seconds",
            "Largest PCR jitter of a pulled stream (includes network and sender bursts)",
            m.pull_pcr_jitter.clone(),
        );
        registry.register(
            "pull_since_key_frame_seconds",
            "Time since a pulled stream's last key frame (absent before the first)",
            m.pull_since_key.clone(),
        );
        registry.register("config_reloads", "Configuration reloads by result", m.reloads.clone());
        registry.register("spool_bytes", "Bytes in the spool", m.spool_bytes.clone());
        registry.register("spool_limit_bytes", "Configured spool limit", m.spool_limit_bytes.clone());
        registry.register("uptime_seconds", "Seconds since ctld started", m.uptime_seconds.clone());
        let u = &m.upload;
        registry.register("upload_queue_segments", "Segments waiting for upload", u.queue_segments.clone());
        registry.register(
            "upload_queue_bytes",
            "Bytes of the segments in the upload queue",
            u.queue_bytes.clone(),
        );
        registry.register(
            "upload_unqueued_segments",
            "Segments waiting in the spool for room in the upload queue (limits.upload_queue)",
            u.unqueued_segments.clone(),
        );
        registry.register(
            "upload_queue_limit_segments",
            "Most segments in the upload queue at once (limits.upload_queue)",
            u.queue_limit.clone(),
        );
        registry.register(
            "upload_lag_seconds",
            "Age of the oldest segment waiting for upload",
            u.lag_seconds.clone(),
        );
        registry.register("uploads_ok", "Segments uploaded and verified on every target", u.ok.clone());
        registry.register("uploads_failed", "Failed upload attempts (retried)", u.failed.clone());
        registry.register("uploads_retried", "Upload attempts after the first", u.retried.clone());
        registry.register("upload_bytes", "Bytes uploaded and verified", u.bytes.clone());
        registry.register(
            "upload_breaker_state",
            "Circuit breaker per S3 target: 0 closed, 1 open, 2 half-open",
            u.breaker_state.clone(),
        );
        registry.register(
            "spool_dropped_segments",
            "Segments dropped before upload by the drop_oldest policy",
            u.dropped.clone(),
        );
        registry.register(
            "spool_quarantined_segments",
            "Segments quarantined: bytes no longer match the manifest, or an S3 conflict",
            u.quarantined.clone(),
        );
        registry.register(
            "upload_conflicts",
            "Segments whose S3 key already held another object (never written over; quarantined)",
            u.conflicts.clone(),
        );
        registry.register(
            "spool_full",
            "1 while the spool is over its limit or the disk is full",
            u.spool_full.clone(),
        );
        registry.register(
            "recording_stopped",
            "1 while recording is stopped by the stop_recording spool policy",
            u.recording_stopped.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        if prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry).is_err() {
            return String::new();
        }
        to_prometheus_text(&open_metrics)
    }
}

/// A level (dBFS, LUFS, dBTP) as ctld passes it on: −∞ (silence) stays
/// −∞ (`-Inf` in /metrics, `-inf` on D-Bus), and NaN, which no meter should
/// produce, becomes −∞ too so that it never reaches a consumer.
pub fn level(db: f64) -> f64 {
    if db.is_nan() { f64::NEG_INFINITY } else { db }
}

/// A sample value in the spelling of the Prometheus text format:
/// `prometheus-client` writes infinities as `inf`/`-inf` (Rust's spelling),
/// Prometheus documents `+Inf`/`-Inf`.
fn prometheus_value(line: &str) -> std::borrow::Cow<'_, str> {
    match line.rsplit_once(' ') {
        Some((series, "-inf")) => format!("{series} -Inf").into(),
        Some((series, "inf")) => format!("{series} +Inf").into(),
        _ => line.into(),
    }
}

/// Turns `prometheus-client`'s OpenMetrics text into the classic Prometheus
/// text format: counter families are named with their `_total` suffix in
/// `# HELP`/`# TYPE`, and the `# EOF` marker is dropped.
fn to_prometheus_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut help: Option<&str> = None;
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let renamed = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some(h) = help.take() {
                let text = h.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')).map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {renamed} {text}\n"));
            }
            out.push_str(&format!("# TYPE {renamed} {kind}\n"));
            continue;
        }
        out.push_str(&prometheus_value(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
