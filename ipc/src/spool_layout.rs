//! The spool's layout on disk, defined once: the engine writes it
//! (`airlift_engine::archive::spool`), ctld reads, uploads, retains and
//! quarantines from it (`airlift_ctl::upload::spool`). Pure: names and
//! paths only, no I/O.
//!
//! ```text
//! <spool>/
//!   .engine.lock                      the engine's claim on the spool
//!   <job>/
//!     .lock                           the job's writer
//!     .sequence                       the next sequence number (high-water mark)
//!     .<job>-<seq:08>.ts.partial      the segment being written
//!     quarantine/<job>-<seq:08>.ts.quarantined   (engine: unreadable at start-up)
//!     <yyyy>/<mm>/<dd>/<job>-<seq:08>.ts         a closed segment (UTC date of its start)
//!     <yyyy>/<mm>/<dd>/<job>-<seq:08>.json       its manifest, written last
//!   quarantine/…                      ctld: segments no target would take as they are
//!   retained/…                        ctld: uploaded segments kept for `retention_hours`
//! ```
//!
//! An object key in S3 is the segment's path below the spool, under the
//! target's prefix: [`segment_rel_path`].

/// ctld's folder for segments whose bytes no target would store as they are.
pub const QUARANTINE: &str = "quarantine";
/// ctld's folder for uploaded segments kept for `[spool] retention_hours`.
pub const RETAINED: &str = "retained";
/// The engine's lock file in the spool root.
pub const ENGINE_LOCK: &str = ".engine.lock";
/// A job's lock file in `<spool>/<job>/`.
pub const JOB_LOCK: &str = ".lock";
/// A job's sequence high-water mark in `<spool>/<job>/`.
pub const SEQUENCE_MARK: &str = ".sequence";

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `(year, month, day)` of a UTC time in milliseconds since the epoch.
pub fn civil(utc_ms: i64) -> (i64, u32, u32) {
    civil_from_days(utc_ms.div_euclid(86_400_000))
}

/// `<job>-<seq:08>.ts`: a closed segment's file name.
pub fn segment_name(job: &str, seq: u64) -> String {
    format!("{job}-{seq:08}.ts")
}

/// `.<job>-<seq:08>.ts.partial`: the file of a segment being written.
pub fn partial_name(job: &str, seq: u64) -> String {
    format!(".{job}-{seq:08}.ts.partial")
}

/// `.<job>-<seq:08>.json.tmp`: a manifest before its atomic rename.
pub fn manifest_tmp_name(job: &str, seq: u64) -> String {
    format!(".{job}-{seq:08}.json.tmp")
}

/// `<job>-<seq:08>.ts.quarantined`: a segment the engine set aside.
pub fn quarantined_name(job: &str, seq: u64) -> String {
    format!("{job}-{seq:08}.ts.quarantined")
}

/// `<yyyy>/<mm>/<dd>` of a segment starting at `utc_ms`.
pub fn day_dir(utc_ms: i64) -> String {
    let (y, m, d) = civil(utc_ms);
    format!("{y:04}/{m:02}/{d:02}")
}

/// `<job>/<yyyy>/<mm>/<dd>/<job>-<seq:08>.ts`: a closed segment's path
/// below the spool, and its object key below a target's prefix.
pub fn segment_rel_path(job: &str, seq: u64, utc_ms: i64) -> String {
    format!("{job}/{}/{}", day_dir(utc_ms), segment_name(job, seq))
}

/// The manifest's path (or key) for a segment's: `.ts` becomes `.json`.
pub fn manifest_for(segment: &str) -> String {
    match segment.strip_suffix(".ts") {
        Some(stem) => format!("{stem}.json"),
        None => format!("{segment}.json"),
    }
}

/// The sequence number in a file name of `job`'s (`<job>-<seq>.ts`,
/// `.json`, `.ts.quarantined`, or `.<job>-<seq>.ts.partial`), and whether it
/// is a partial.
pub fn parse_sequence(name: &str, job: &str) -> Option<(u64, bool)> {
    if let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".ts.partial")) {
        let seq = rest.strip_prefix(job)?.strip_prefix('-')?;
        return seq.parse().ok().map(|s| (s, true));
    }
    let stem = name
        .strip_suffix(".ts.quarantined")
        .or_else(|| name.strip_suffix(".ts"))
        .or_else(|| name.strip_suffix(".json"))?;
    let seq = stem.strip_prefix(job)?.strip_prefix('-')?;
    seq.parse().ok().map(|s| (s, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil(951_782_400_000), (2000, 2, 29));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(segment_rel_path("cam", 13, 1_796_271_024_729), "cam/2026/12/03/cam-00000013.ts");
        assert_eq!(manifest_for("p/cam/2026/12/03/cam-00000013.ts"), "p/cam/2026/12/03/cam-00000013.json");
        assert_eq!(parse_sequence(&partial_name("cam", 13), "cam"), Some((13, true)));
        assert_eq!(parse_sequence(&segment_name("cam", 13), "cam"), Some((13, false)));
        assert_eq!(parse_sequence(&quarantined_name("cam", 2), "cam"), Some((2, false)));
        assert_eq!(parse_sequence("camx-00000001.ts", "cam"), None);
    }
}
