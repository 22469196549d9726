//! Writes `docs/benchmarks.md` from one `make bench` run: criterion's
//! estimates (every figure, and the headline ratios against the baseline
//! measured in the same run), the lines the benches print about their paired
//! runs, the realtime stress run against cyclictest and the pull-job load run.
//!
//! `bench-report --criterion DIR --log FILE [--rt-stress FILE] [--pulls FILE]
//!  [--machine FILE] --out FILE`

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One criterion benchmark: its id and its median time per iteration.
struct Figure {
    /// `group/function[/value]`, criterion's `full_id`.
    id: String,
    /// Median of the per-iteration time, in nanoseconds.
    median_ns: f64,
    /// Bytes or elements per iteration, when the bench declared them.
    throughput: Option<(String, f64)>,
}

fn read_figures(dir: &Path) -> Result<BTreeMap<String, Figure>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "report" || n == "base" || n == "change") {
                    continue;
                }
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "benchmark.json")
                && path.parent().and_then(Path::file_name).is_some_and(|n| n == "new")
            {
                let bench: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)
                    .with_context(|| format!("parsing {}", path.display()))?;
                let estimates_path = path.with_file_name("estimates.json");
                let estimates: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&estimates_path)?)
                        .with_context(|| format!("parsing {}", estimates_path.display()))?;
                let Some(id) = bench["full_id"].as_str() else { continue };
                let Some(median_ns) = estimates["median"]["point_estimate"].as_f64() else { continue };
                let throughput = bench["throughput"].as_object().and_then(|t| {
                    t.iter().next().and_then(|(kind, n)| n.as_f64().map(|n| (kind.clone(), n)))
                });
                out.insert(id.to_owned(), Figure { id: id.to_owned(), median_ns, throughput });
            }
        }
    }
    Ok(out)
}

fn human_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn human_rate(figure: &Figure) -> String {
    match &figure.throughput {
        Some((kind, n)) if kind == "Bytes" => format!("{:.1} MB/s", n / figure.median_ns * 1e3),
        Some((kind, n)) if kind == "Elements" => format!("{:.2} G elem/s", n / figure.median_ns),
        _ => String::new(),
    }
}

/// A headline: our figure, its baseline from the same run, and the ratio.
struct Headline {
    what: String,
    ours: String,
    baseline: String,
    ratio: String,
}

fn find<'a>(figures: &'a BTreeMap<String, Figure>, id: &str) -> Option<&'a Figure> {
    figures.get(id)
}

/// The runtime-dispatched mix kernel's name in this run (`Avx2Fma`, …).
fn dispatched_kernel(figures: &BTreeMap<String, Figure>) -> Option<String> {
    figures.keys().find_map(|id| {
        let rest = id.strip_prefix("mix16x1024/add_limit/")?;
        (rest != "Wide").then(|| rest.to_owned())
    })
}

fn criterion_headlines(figures: &BTreeMap<String, Figure>) -> Vec<Headline> {
    let mut out = Vec::new();
    if let Some(k) = dispatched_kernel(figures) {
        for frames in [256, 1024] {
            if let (Some(mix), Some(add)) = (
                find(figures, &format!("mix16x{frames}/mix/{k}")),
                find(figures, &format!("mix16x{frames}/add_limit/{k}")),
            ) {
                out.push(Headline {
                    what: format!("Mix 16 inputs × {frames} frames ({k}) vs the pure-add limit"),
                    ours: human_time(mix.median_ns),
                    baseline: human_time(add.median_ns),
                    ratio: format!("{:.2}× the limit's time", mix.median_ns / add.median_ns),
                });
            }
        }
        if let (Some(mix), Some(scalar)) =
            (find(figures, &format!("mix16x1024/mix/{k}")), find(figures, "mix16x1024/mix/Scalar"))
        {
            out.push(Headline {
                what: format!("Mix 16 × 1024 ({k}) vs the scalar reference"),
                ours: human_time(mix.median_ns),
                baseline: human_time(scalar.median_ns),
                ratio: format!("{:.1}× faster", scalar.median_ns / mix.median_ns),
            });
        }
    }
    for frames in [32, 256, 1024] {
        if let (Some(ours), Some(raw)) = (
            find(figures, &format!("ring{frames}/engine_ring_path/{frames}")),
            find(figures, &format!("ring{frames}/raw_rtrb_with_interleave/{frames}")),
        ) {
            out.push(Headline {
                what: format!("Ring path, {frames} frames, vs raw rtrb with the same interleave"),
                ours: human_time(ours.median_ns),
                baseline: human_time(raw.median_ns),
                ratio: format!("{:.2}× raw rtrb's time", ours.median_ns / raw.median_ns),
            });
        }
    }
    if let Some(render) = find(figures, "render/64_stereo_inputs_1s") {
        out.push(Headline {
            what: "Offline render, 64 stereo inputs, 1 s of audio, vs real time".into(),
            ours: human_time(render.median_ns),
            baseline: "1.000 s".into(),
            ratio: format!("{:.0}× real time", 1e9 / render.median_ns),
        });
    }
    let encodes: Vec<&str> = figures
        .keys()
        .filter_map(|id| id.strip_suffix("/ffmpeg_cli_threads_1"))
        .filter(|g| g.starts_with("encode_"))
        .collect();
    for group in encodes {
        if let (Some(ours), Some(ffmpeg)) = (
            find(figures, &format!("{group}/airlift_render")),
            find(figures, &format!("{group}/ffmpeg_cli_threads_1")),
        ) {
            out.push(Headline {
                what: format!(
                    "Render `{}` vs the ffmpeg CLI (wall time)",
                    group.trim_start_matches("encode_")
                ),
                ours: human_time(ours.median_ns),
                baseline: human_time(ffmpeg.median_ns),
                ratio: format!("{:.2}× faster", ffmpeg.median_ns / ours.median_ns),
            });
        }
    }
    let uploads: Vec<&str> = figures.keys().filter_map(|id| id.strip_prefix("upload/s3cmd_put/")).collect();
    for label in uploads {
        if let (Some(ours), Some(s3cmd)) = (
            find(figures, &format!("upload/ours/{label}")),
            find(figures, &format!("upload/s3cmd_put/{label}")),
        ) {
            out.push(Headline {
                what: format!(
                    "Upload {label} to a local S3 server (with manifests, SHA-256 and read-back) vs s3cmd put"
                ),
                ours: human_rate(ours),
                baseline: human_rate(s3cmd),
                ratio: format!("{:.2}× s3cmd's throughput", s3cmd.median_ns / ours.median_ns),
            });
        }
    }
    out
}

/// The number after `key` in `line` (`key` then optional spaces/colon).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let at = line.find(key)? + key.len();
    let rest = line[at..].trim_start_matches([' ', ':']);
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Encode CPU per audio second, from the lines `benches/encode.rs` prints
/// about its alternating paired runs.
fn encode_cpu_headlines(log: &str) -> Vec<Headline> {
    log.lines()
        .filter(|l| l.contains(": CPU per audio second airlift"))
        .filter_map(|l| {
            let label = l.split(':').next()?;
            let ours = number_after(l, "(one encoder")?;
            let ffmpeg = number_after(l, "ffmpeg")?;
            let ratio = number_after(&l[l.rfind("(one encoder")?..], "(one encoder")?;
            Some(Headline {
                what: format!(
                    "Encode CPU per audio second, `{label}`, one encoder (as a live flow) vs ffmpeg"
                ),
                ours: format!("{ours:.2} ms"),
                baseline: format!("{ffmpeg:.2} ms"),
                ratio: format!("{ratio:.3}× ffmpeg's CPU"),
            })
        })
        .collect()
}

/// The render against the encode-only limit on every CPU, from the lines
/// `benches/encode.rs` prints about its alternating paired runs.
fn render_limit_headlines(log: &str) -> Vec<Headline> {
    log.lines()
        .filter(|l| l.contains(": limit (the mix already in memory"))
        .filter_map(|l| {
            let label = l.split(':').next()?;
            let wall = number_after(l, "wall")?;
            let fraction = number_after(l, "render fraction of the limit")?;
            let render = log
                .lines()
                .find(|m| m.starts_with(&format!("{label}: ")) && m.contains("alternating runs"))
                .and_then(|m| number_after(m, "wall airlift"))?;
            Some(Headline {
                what: format!(
                    "Render `{label}` vs the limit: the same mix already in memory, encode-only, one part per CPU at once"
                ),
                ours: format!("{render:.1} ms"),
                baseline: format!("{wall:.1} ms"),
                ratio: format!("{fraction:.2} of the limit"),
            })
        })
        .collect()
}

fn rt_stress_headline(text: &str) -> Option<Headline> {
    let summary = text.lines().find(|l| l.contains(" deadline misses, "))?;
    let periods = number_after(summary, ":")?;
    let misses = number_after(summary, "periods,")?;
    let max_process = number_after(summary, "max processing")?;
    let seconds = text.lines().find_map(|l| number_after(l, "rt-stress:"))?;
    let cyc_max =
        text.lines().find(|l| l.starts_with("# Max Latencies"))?.split_whitespace().nth(3)?.to_owned();
    let cyc_late = text.lines().find_map(|l| number_after(l, "cyclictest:"))?;
    Some(Headline {
        what: format!(
            "Realtime stress, {seconds:.0} s at 128-frame periods (2.67 ms) under stress-ng on every core, vs cyclictest at the same period and load"
        ),
        ours: format!(
            "{misses:.0} deadline misses in {periods:.0} periods; max processing {max_process:.0} µs"
        ),
        baseline: format!(
            "cyclictest max wake-up latency {} µs, {cyc_late:.0} wake-ups later than a period",
            cyc_max.parse::<u64>().unwrap_or_default()
        ),
        ratio: format!("{misses:.0} vs {cyc_late:.0} periods missed"),
    })
}

fn pulls_headline(text: &str) -> Option<Headline> {
    let line = text.lines().find(|l| l.contains("% per job"))?;
    let jobs = number_after(line, "pull-load:")?;
    let total = number_after(line, "=")?;
    let per_job = number_after(line, "of one core,")?;
    // The rate each job measured: "pull camN: …, 2.55 Mbit/s, …".
    let rates: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("pull "))
        .filter_map(|l| l.split(", ").find_map(|f| f.strip_suffix(" Mbit/s")?.parse().ok()))
        .collect();
    let rate = if rates.is_empty() {
        String::new()
    } else {
        format!(" of {:.1} Mbit/s each", rates.iter().sum::<f64>() / rates.len() as f64)
    };
    Some(Headline {
        what: format!(
            "Pull jobs: {jobs:.0} SRT streams{rate} (720p25 H.264 + AAC) cut into segments at key frames"
        ),
        ours: format!("{total:.1}% of one core in all, {per_job:.2}% per job"),
        baseline: "one core (100%)".into(),
        ratio: format!("≈ {:.0} pull jobs per core", 100.0 / per_job),
    })
}

fn arg_value(args: &[String], name: &str) -> Option<PathBuf> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(PathBuf::from)
}

fn read_optional(path: Option<&PathBuf>) -> String {
    path.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(criterion), Some(out)) = (arg_value(&args, "--criterion"), arg_value(&args, "--out")) else {
        bail!(
            "usage: bench-report --criterion DIR --log FILE [--rt-stress FILE] [--pulls FILE] [--machine FILE] --out FILE"
        );
    };
    let log = read_optional(arg_value(&args, "--log").as_ref());
    let rt = read_optional(arg_value(&args, "--rt-stress").as_ref());
    let pulls = read_optional(arg_value(&args, "--pulls").as_ref());
    let machine = read_optional(arg_value(&args, "--machine").as_ref());
    let figures = read_figures(&criterion)?;
    if figures.is_empty() {
        bail!(
            "no criterion results under {}; run `cargo bench -p airlift-benches` first",
            criterion.display()
        );
    }

    let mut headlines = criterion_headlines(&figures);
    headlines.extend(encode_cpu_headlines(&log));
    headlines.extend(render_limit_headlines(&log));
    headlines.extend(rt_stress_headline(&rt));
    headlines.extend(pulls_headline(&pulls));

    let mut md = String::new();
    writeln!(md, "# Benchmarks")?;
    writeln!(md)?;
    writeln!(
        md,
        "Written by `make bench` (`scripts/bench`). Every figure is set against a baseline measured in the same run \
         on the same machine, so the ratios carry over better than the absolute times. Medians of criterion's samples."
    )?;
    writeln!(md)?;
    writeln!(md, "## Machine")?;
    writeln!(md)?;
    writeln!(md, "```")?;
    write!(md, "{}", machine.trim_end())?;
    writeln!(md)?;
    writeln!(md, "```")?;
    writeln!(md)?;
    writeln!(md, "## Headline ratios")?;
    writeln!(md)?;
    writeln!(md, "| what | ours | baseline (same run) | ratio |")?;
    writeln!(md, "|---|---|---|---|")?;
    for h in &headlines {
        writeln!(md, "| {} | {} | {} | {} |", h.what, h.ours, h.baseline, h.ratio)?;
    }
    for (name, present) in [
        ("realtime stress vs cyclictest (needs root: `sudo make bench`)", !rt.is_empty()),
        ("pull jobs per core", !pulls.is_empty()),
    ] {
        if !present {
            writeln!(md, "| {name} | not measured in this run | | |")?;
        }
    }
    writeln!(md)?;
    let paired: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("alternating runs, medians")
                || l.contains(": CPU per audio second")
                || l.contains(": limit (the mix already in memory")
                || l.starts_with("upload ")
        })
        .collect();
    if !paired.is_empty() {
        writeln!(md, "## Paired runs printed by the benches")?;
        writeln!(md)?;
        writeln!(
            md,
            "Alternating runs of ours and the baseline, so that a machine whose speed drifts slows both alike."
        )?;
        writeln!(md)?;
        writeln!(md, "```")?;
        for l in paired {
            writeln!(md, "{l}")?;
        }
        writeln!(md, "```")?;
        writeln!(md)?;
    }
    if !rt.is_empty() {
        writeln!(md, "## Realtime stress run (`scripts/rt-stress`)")?;
        writeln!(md)?;
        writeln!(md, "```")?;
        write!(md, "{}", rt.trim_end())?;
        writeln!(md)?;
        writeln!(md, "```")?;
        writeln!(md)?;
    }
    if !pulls.is_empty() {
        writeln!(md, "## Pull-job load run (`scripts/pull-load-test.sh`)")?;
        writeln!(md)?;
        writeln!(md, "```")?;
        write!(md, "{}", pulls.trim_end())?;
        writeln!(md)?;
        writeln!(md, "```")?;
        writeln!(md)?;
    }
    writeln!(md, "## Every criterion figure")?;
    writeln!(md)?;
    writeln!(md, "| benchmark | median per iteration | throughput |")?;
    writeln!(md, "|---|---|---|")?;
    for f in figures.values() {
        writeln!(md, "| `{}` | {} | {} |", f.id, human_time(f.median_ns), human_rate(f))?;
    }
    // The density section (`make density`) is written by its own bench and
    // kept as it is.
    if let Ok(old) = std::fs::read_to_string(&out)
        && let (Some(a), Some(b)) = (old.find("<!-- density:start -->"), old.find("<!-- density:end -->"))
        && b > a
    {
        writeln!(md)?;
        md.push_str(&old[a..b + "<!-- density:end -->".len()]);
        md.push('\n');
    }
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "bench-report: wrote {} ({} headlines, {} figures)",
        out.display(),
        headlines.len(),
        figures.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_cpu_line_is_read() {
        let log = "stereo_aac128_ts: CPU per audio second airlift 3.10 ms (one encoder 2.95 ms), ffmpeg 3.40 ms; ratio airlift/ffmpeg 0.912 (one encoder 0.868)";
        let h = encode_cpu_headlines(log);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].ours, "2.95 ms");
        assert_eq!(h[0].baseline, "3.40 ms");
        assert_eq!(h[0].ratio, "0.868× ffmpeg's CPU");
    }

    #[test]
    fn render_limit_line_is_read() {
        let log = "64ch_mix_aac128_ts: 9 alternating runs, medians: wall airlift 408.8 ms (one encoder 666.8 ms), ffmpeg -threads 1 878.6 ms; airlift faster by 2.15x (one encoder 1.32x)\n\
                   64ch_mix_aac128_ts: limit (the mix already in memory, encode-only, 2 parts on 2 threads at once): wall 342.4 ms, CPU per audio second 65.41 ms; render fraction of the limit 0.85 (limit wall / render wall), one encoder 0.51";
        let h = render_limit_headlines(log);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].ours, "408.8 ms");
        assert_eq!(h[0].baseline, "342.4 ms");
        assert_eq!(h[0].ratio, "0.85 of the limit");
    }

    #[test]
    fn rt_stress_output_is_read() {
        let text = "rt-stress: 60 s, 128-frame periods at 48 kHz, stress-ng --cpu 2, audio thread on CPU 1 at SCHED_FIFO 80\n\
flow stress: 22500 periods, 0 deadline misses, 0 underruns, 0 overruns, max processing 412 us\n\
# Max Latencies: 00097\n\
cyclictest: 0 wake-ups later than one period (2667 us)\n";
        let h = rt_stress_headline(text).expect("headline");
        assert!(h.ours.starts_with("0 deadline misses in 22500 periods; max processing 412"), "{}", h.ours);
        assert!(h.baseline.contains("97 µs"), "{}", h.baseline);
    }

    #[test]
    fn pulls_line_is_read() {
        let text = "pull-load: 4 jobs: engine CPU over 26.0 s: user 1.00 s, sys 0.30 s = 5.0% of one core, 1.25% per job\n\
pull cam1: Failed { reason: \"source lost\" }, 1 connects, 18891180 bytes, 100485 packets, 2.50 Mbit/s, 0 CC errors\n\
pull cam2: Failed { reason: \"source lost\" }, 1 connects, 18891180 bytes, 100485 packets, 2.70 Mbit/s, 0 CC errors\n";
        let h = pulls_headline(text).expect("headline");
        assert!(h.what.contains("of 2.6 Mbit/s each"), "{}", h.what);
        assert_eq!(h.ratio, "≈ 80 pull jobs per core");
    }
}
