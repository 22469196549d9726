//! Feeding the metrics: engine stats reports, meters, switches, health,
//! alert deliveries and process usage folded into the registered series.

use std::collections::HashMap;

use prometheus_client::metrics::counter::Counter;

use airlift_ipc::message::{
    ChannelMeter, FlowStats, Loudness, PROCESS_LOAD_BUCKETS, PullStats, SegmentJobStats,
};

use super::{
    AlertLabel, ChannelLabel, FlowLabel, InputLabel, JobLabel, LinkLabel, Metrics, ProcessLabel, ReasonLabel,
    RingLabel, SourceLabel, SwitchLabel, level, proc_usage,
};

impl Metrics {
    /// Adds the growth of an engine counter since its last report.
    fn grow(&self, counter: &Counter, flow: &str, what: &'static str, now: u64) {
        let Ok(mut last) = self.last.lock() else { return };
        let prev = last.insert((flow.to_string(), what), now).unwrap_or(0);
        // A smaller value means the engine restarted: all of it is new.
        counter.inc_by(if now >= prev { now - prev } else { now });
    }

    /// Folds the segment jobs of one engine stats report in (spool
    /// stalls, memory hold, drops and gaps).
    pub fn record_segment_jobs(&self, jobs: &[SegmentJobStats]) {
        for j in jobs {
            let l = JobLabel { job: j.job.clone() };
            let key = format!("segments/{}", j.job);
            self.grow(&self.segment_stalls.get_or_create(&l), &key, "stalls", j.stalls);
            self.grow(&self.segment_dropped.get_or_create(&l), &key, "dropped", j.dropped_bytes);
            self.grow(&self.segment_gaps.get_or_create(&l), &key, "gaps", j.gaps);
            let Ok(mut last) = self.last.lock() else { continue };
            let prev = last.insert((key, "gap_90k"), j.gap_90k).unwrap_or(0);
            drop(last);
            let delta = if j.gap_90k >= prev { j.gap_90k - prev } else { j.gap_90k };
            self.segment_gap_seconds.get_or_create(&l).inc_by(delta as f64 / 90_000.0);
            self.segment_held.get_or_create(&l).set(i64::try_from(j.held_bytes).unwrap_or(i64::MAX));
        }
    }

    /// Folds the pull jobs of one engine stats report in; series of jobs
    /// no longer reported are dropped.
    pub fn record_pulls(&self, pulls: &[PullStats]) {
        for p in pulls {
            let l = JobLabel { job: p.job.clone() };
            let key = format!("pull/{}", p.job);
            self.grow(&self.pull_junk.get_or_create(&l), &key, "junk", p.junk_bytes);
            self.grow(&self.pull_connects.get_or_create(&l), &key, "connects", p.connects);
            self.grow(&self.pull_bytes.get_or_create(&l), &key, "bytes", p.bytes);
            self.grow(&self.pull_packets.get_or_create(&l), &key, "packets", p.packets);
            self.grow(&self.pull_cc_errors.get_or_create(&l), &key, "cc_errors", p.cc_errors);
            self.grow(&self.pull_unparsable.get_or_create(&l), &key, "unparsable", p.unparsable_packets);
            self.grow(&self.pull_forced_cuts.get_or_create(&l), &key, "forced_cuts", p.forced_cuts);
            self.pull_bitrate.get_or_create(&l).set(i64::try_from(p.bitrate_bps).unwrap_or(i64::MAX));
            self.pull_pcr_jitter.get_or_create(&l).set(p.pcr_jitter_us as f64 / 1e6);
            match p.since_key_frame_ms {
                Some(ms) => {
                    self.pull_since_key.get_or_create(&l).set(ms as f64 / 1e3);
                }
                None => {
                    self.pull_since_key.remove(&l);
                }
            }
        }
        let gone: Vec<String> = self
            .known_pulls
            .lock()
            .map(|mut known| {
                let now: std::collections::BTreeSet<String> = pulls.iter().map(|p| p.job.clone()).collect();
                let gone = known.difference(&now).cloned().collect();
                *known = now;
                gone
            })
            .unwrap_or_default();
        for job in gone {
            let l = JobLabel { job: job.clone() };
            for fam in [
                &self.pull_connects,
                &self.pull_bytes,
                &self.pull_packets,
                &self.pull_cc_errors,
                &self.pull_unparsable,
                &self.pull_forced_cuts,
                &self.pull_junk,
            ] {
                fam.remove(&l);
            }
            self.pull_bitrate.remove(&l);
            self.pull_pcr_jitter.remove(&l);
            self.pull_since_key.remove(&l);
            if let Ok(mut last) = self.last.lock() {
                let key = format!("pull/{job}");
                last.retain(|(f, _), _| f != &key);
            }
        }
    }

    /// Folds one engine stats report in; `period_seconds` gives each flow's
    /// period length for the load histogram's sum.
    pub fn record_stats(&self, flows: &[FlowStats], period_seconds: &HashMap<String, f64>) {
        for s in flows {
            let l = FlowLabel { flow: s.flow.clone() };
            self.grow(&self.frames.get_or_create(&l), &s.flow, "frames", s.frames);
            self.grow(&self.periods.get_or_create(&l), &s.flow, "periods", s.periods);
            self.grow(&self.deadline_misses.get_or_create(&l), &s.flow, "misses", s.deadline_misses);
            self.grow(&self.late_periods.get_or_create(&l), &s.flow, "late", s.late_periods);
            self.max_late.get_or_create(&l).set(f64::from(s.max_late_us) / 1e6);
            for (side, fill) in [("input", s.input_ring_low), ("output", s.output_ring_high)] {
                let label = RingLabel { flow: s.flow.clone(), side: side.into() };
                match fill {
                    Some(f) => {
                        self.ring_fill.get_or_create(&label).set(f64::from(f));
                    }
                    None => {
                        self.ring_fill.remove(&label);
                    }
                }
            }
            self.grow(&self.underruns.get_or_create(&l), &s.flow, "underruns", s.underruns);
            self.grow(&self.overruns.get_or_create(&l), &s.flow, "overruns", s.overruns);
            self.grow(&self.xruns.get_or_create(&l), &s.flow, "xruns", s.xruns);
            self.max_process.get_or_create(&l).set(f64::from(s.max_process_us) / 1e6);
            match s.drift_ppm {
                Some(ppm) => {
                    self.drift.get_or_create(&l).set(ppm);
                }
                None => {
                    self.drift.remove(&l);
                }
            }
            match s.latency_frames {
                Some(frames) => {
                    self.latency.get_or_create(&l).set(i64::try_from(frames).unwrap_or(i64::MAX));
                }
                None => {
                    self.latency.remove(&l);
                }
            }
            let mut buckets: Vec<(f64, u64)> =
                PROCESS_LOAD_BUCKETS.iter().zip(&s.process_load_histogram).map(|(&b, &c)| (b, c)).collect();
            buckets.push((
                f64::INFINITY,
                s.process_load_histogram.get(PROCESS_LOAD_BUCKETS.len()).copied().unwrap_or(0),
            ));
            let count = s.process_load_histogram.iter().sum();
            let sum = period_seconds.get(&s.flow).map_or(0.0, |p| s.process_ns_total as f64 / 1e9 / p);
            self.load.get_or_create(&l).set(sum, count, buckets);
            for link in &s.srt_links {
                let ll = LinkLabel { flow: s.flow.clone(), link: link.name.clone() };
                let key = format!("{}/{}", s.flow, link.name);
                self.srt_connected.get_or_create(&ll).set(i64::from(link.connected));
                self.grow(&self.srt_connects.get_or_create(&ll), &key, "srt_connects", link.connects);
                self.grow(&self.srt_refusals.get_or_create(&ll), &key, "srt_refusals", link.refusals);
                self.srt_rtt.get_or_create(&ll).set(link.rtt_ms / 1000.0);
                self.srt_bandwidth.get_or_create(&ll).set(link.bandwidth_mbps);
                self.srt_lost.get_or_create(&ll).set(i64::try_from(link.lost).unwrap_or(i64::MAX));
                self.srt_retransmits
                    .get_or_create(&ll)
                    .set(i64::try_from(link.retransmits).unwrap_or(i64::MAX));
                self.srt_bytes.get_or_create(&ll).set(i64::try_from(link.bytes).unwrap_or(i64::MAX));
                if let Some(input) = link.name.strip_prefix("airlift-srt-rx-") {
                    let il = InputLabel { flow: s.flow.clone(), input: input.to_string() };
                    let dropped = &self.input_dropped.get_or_create(&il);
                    self.grow(dropped, &key, "input_dropped", link.dropped_frames);
                    let inserted = &self.input_inserted.get_or_create(&il);
                    self.grow(inserted, &key, "input_inserted", link.inserted_frames);
                    match link.drift_ppm {
                        Some(ppm) => {
                            self.input_drift.get_or_create(&il).set(ppm);
                        }
                        None => {
                            self.input_drift.remove(&il);
                        }
                    }
                }
            }
            for i in &s.input_sources {
                for source in &i.sources {
                    let l =
                        SourceLabel { flow: s.flow.clone(), input: i.input.clone(), source: source.clone() };
                    self.input_source.get_or_create(&l).set(i64::from(source == &i.active));
                }
            }
        }
        self.flows_running.set(flows.len() as i64);
    }

    /// Folds a meters event in.
    pub fn record_meters(&self, flow: &str, channels: &[ChannelMeter], loudness: Option<&Loudness>) {
        for (i, c) in channels.iter().enumerate() {
            let l = ChannelLabel { flow: flow.to_string(), channel: i.to_string() };
            self.peak.get_or_create(&l).set(level(f64::from(c.peak_dbfs)));
            self.rms.get_or_create(&l).set(level(f64::from(c.rms_dbfs)));
        }
        if let Some(lo) = loudness {
            let l = FlowLabel { flow: flow.to_string() };
            self.loudness_momentary.get_or_create(&l).set(level(lo.momentary_lufs));
            self.loudness_short.get_or_create(&l).set(level(lo.short_term_lufs));
            self.loudness_integrated.get_or_create(&l).set(level(lo.integrated_lufs));
            self.true_peak.get_or_create(&l).set(level(lo.true_peak_dbtp));
        }
    }

    /// Records CPU time and resident memory of `process` (`ctld` or
    /// `engine`) from `/proc/<pid>`; drops its series when it cannot be
    /// read (the engine is away).
    pub fn record_process(&self, process: &str, pid: Option<u32>) {
        let label = ProcessLabel { process: process.to_string() };
        match pid.and_then(proc_usage) {
            Some((cpu, rss)) => {
                self.process_cpu.get_or_create(&label).set(cpu);
                self.process_rss.get_or_create(&label).set(i64::try_from(rss).unwrap_or(i64::MAX));
            }
            None => {
                self.process_cpu.remove(&label);
                self.process_rss.remove(&label);
            }
        }
    }

    /// Counts one alert delivery outcome for `target`.
    pub fn alert_outcome(&self, target: &str, outcome: &str) {
        self.alerts.get_or_create(&AlertLabel { target: target.into(), outcome: outcome.into() }).inc();
    }

    /// Records the health verdict and how often each reason holds.
    pub fn record_health(&self, verdict: crate::health::Verdict, reasons: &[crate::health::Reason]) {
        for code in crate::health::REASON_CODES {
            let n = reasons.iter().filter(|r| r.code == code).count();
            self.health_reasons.get_or_create(&ReasonLabel { reason: code.to_string() }).set(n as i64);
        }
        self.health_state.set(verdict as i64);
    }

    /// Records a silence-detector verdict.
    pub fn record_silence(&self, flow: &str, silent: bool) {
        self.silence.get_or_create(&FlowLabel { flow: flow.to_string() }).set(i64::from(silent));
    }

    /// Drops the per-flow series of a flow that is gone.
    pub fn forget_flow(&self, flow: &str) {
        let l = FlowLabel { flow: flow.to_string() };
        for fam in [
            &self.frames,
            &self.periods,
            &self.deadline_misses,
            &self.late_periods,
            &self.underruns,
            &self.overruns,
            &self.xruns,
        ] {
            fam.remove(&l);
        }
        self.max_process.remove(&l);
        self.max_late.remove(&l);
        self.true_peak.remove(&l);
        self.drift.remove(&l);
        self.latency.remove(&l);
        for side in ["input", "output"] {
            self.ring_fill.remove(&RingLabel { flow: flow.to_string(), side: side.into() });
        }
        if let Ok(mut last) = self.last.lock() {
            last.retain(|(f, _), _| f != flow);
        }
    }

    /// Counts a switch of an input with backups.
    pub fn record_switch(
        &self,
        flow: &str,
        input: &str,
        source: &str,
        reason: airlift_ipc::message::SwitchReason,
    ) {
        let l = SwitchLabel {
            flow: flow.to_string(),
            input: input.to_string(),
            source: source.to_string(),
            reason: reason.as_str().to_string(),
        };
        self.input_switches.get_or_create(&l).inc();
    }

    /// Total deadline misses seen (for health).
    pub fn total(&self, what: &'static str) -> u64 {
        self.last
            .lock()
            .map(|l| l.iter().filter(|((_, w), _)| *w == what).map(|(_, v)| *v).sum())
            .unwrap_or(0)
    }
}
