//! Tests of the metrics: levels (−∞, never NaN) and engine counters folded
//! in as monotonic counters.

use super::*;
use airlift_ipc::message::{ChannelMeter, Loudness, PullStats, SegmentJobStats};

#[test]
fn silence_is_minus_inf_and_nan_never_leaks() {
    let m = Metrics::new();
    let silent = ChannelMeter { peak_dbfs: f32::NEG_INFINITY, rms_dbfs: f32::NAN };
    let loudness = Loudness {
        momentary_lufs: f64::NEG_INFINITY,
        short_term_lufs: f64::NAN,
        integrated_lufs: -23.5,
        true_peak_dbtp: f64::NEG_INFINITY,
    };
    m.record_meters("quiet", &[silent], Some(&loudness));
    let text = m.encode();
    for line in [
        "airlift_meter_peak_dbfs{flow=\"quiet\",channel=\"0\"} -Inf",
        "airlift_meter_rms_dbfs{flow=\"quiet\",channel=\"0\"} -Inf",
        "airlift_loudness_momentary_lufs{flow=\"quiet\"} -Inf",
        "airlift_loudness_short_term_lufs{flow=\"quiet\"} -Inf",
        "airlift_loudness_integrated_lufs{flow=\"quiet\"} -23.5",
        "airlift_true_peak_dbtp{flow=\"quiet\"} -Inf",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
    assert!(!text.contains("NaN") && !text.contains("-inf") && !text.contains("-200"), "{text}");
}

#[test]
fn segment_gaps_and_pull_junk_are_exported_as_counters() {
    let m = Metrics::new();
    let job = |gap_90k, gaps| SegmentJobStats {
        job: "main".into(),
        stalls: 1,
        held_bytes: 4096,
        held_bytes_max: 8192,
        dropped_bytes: 376,
        gaps,
        gap_90k,
        junk_bytes: 0,
    };
    m.record_segment_jobs(&[job(90_000, 1)]);
    m.record_segment_jobs(&[job(225_000, 2)]);
    m.record_pulls(&[PullStats { job: "cam".into(), junk_bytes: 1316, ..Default::default() }]);
    let text = m.encode();
    for line in [
        "airlift_segment_gap_seconds_total{job=\"main\"} 2.5",
        "airlift_segment_gaps_total{job=\"main\"} 2",
        "airlift_segment_stalls_total{job=\"main\"} 1",
        "airlift_segment_dropped_bytes_total{job=\"main\"} 376",
        "airlift_segment_held_bytes{job=\"main\"} 4096",
        "airlift_pull_junk_bytes_total{job=\"cam\"} 1316",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
}
