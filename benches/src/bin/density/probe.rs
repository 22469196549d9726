//! What the density bench measures with: `/proc` figures, peers and
//! baselines (ffmpeg senders, `srt-live-transmit`, `cyclictest`), and the
//! section it writes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Processes started for a phase, killed when dropped.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    // SAFETY: plain sysconf query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
pub fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|s| s.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of process `pid` by kind, KiB: (anonymous, file-backed
/// — code and data of the binary and its libraries).
pub fn rss_split(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    (get("RssAnon:"), get("RssFile:"))
}

/// Resident memory of process `pid` per mapped file (anonymous mappings
/// under `[anon]`, `[heap]`, `[stack]`), KiB, from `/proc/PID/smaps`.
pub fn rss_by_mapping(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by = std::collections::BTreeMap::new();
    let mut current = String::from("[anon]");
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: range perms offset dev inode [path].
            let path = words.nth(4).unwrap_or("[anon]");
            current = path.rsplit('/').next().unwrap_or(path).to_string();
        } else if first == "Rss:" {
            let kib: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *by.entry(current.clone()).or_insert(0) += kib;
        }
    }
    by
}

/// The mappings that grew most from `before` to `after`, largest first,
/// as "name +N KiB".
pub fn largest_growth(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    n: usize,
) -> Vec<String> {
    let mut grown: Vec<(i64, &String)> = after
        .iter()
        .map(|(k, v)| (*v as i64 - before.get(k).copied().unwrap_or(0) as i64, k))
        .filter(|(d, _)| *d > 0)
        .collect();
    grown.sort_by_key(|g| std::cmp::Reverse(g.0));
    grown.into_iter().take(n).map(|(d, k)| format!("{k} +{d} KiB")).collect()
}

/// The engine binary's resident memory serving no flows, KiB.
pub fn engine_idle_kib(dir: &Path) -> Result<u64> {
    let exe = std::env::current_exe()?;
    let engine = exe.with_file_name("airlift-engine");
    let mut child = Children::default();
    child.0.push(
        Command::new(&engine)
            .args(["serve", "--listen"])
            .arg(dir.join("idle.sock"))
            .arg("--spool")
            .arg(dir.join("idle-spool"))
            .args(["--rt-priority", "70", "--mlock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("{} (build it with cargo build --release)", engine.display()))?,
    );
    std::thread::sleep(Duration::from_secs(3));
    Ok(rss_kib(child.0[0].id()))
}

/// `cyclictest` at `period_us` for `secs` on one thread: max wake-up
/// latency (µs) and wake-ups later than one period.
pub fn cyclictest(period_us: u32, secs: u32) -> Option<(u64, u64)> {
    let out = Command::new("cyclictest")
        .args(["-m", "-p", "70", "-t", "1", "-q", "-h", "40000"])
        .arg("-i")
        .arg(period_us.to_string())
        .arg("-D")
        .arg(secs.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let max =
        text.lines().find(|l| l.starts_with("# Max Latencies:"))?.split_whitespace().last()?.parse().ok()?;
    let late = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse::<u64>().ok()?, f.next()?.parse::<u64>().ok()?))
        })
        .filter(|(us, _)| *us > u64::from(period_us))
        .map(|(_, n)| n)
        .sum();
    Some((max, late))
}

pub fn ffmpeg(args: &[&str]) -> Result<()> {
    let st = Command::new("ffmpeg").args(["-v", "error", "-nostdin", "-y"]).args(args).status()?;
    if !st.success() {
        bail!("ffmpeg {args:?} failed");
    }
    Ok(())
}

pub fn sender(src: &Path, port: u16) -> Result<Child> {
    Ok(Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i"])
        .arg(src)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("srt://127.0.0.1:{port}?mode=caller&pkt_size=1316"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// `srt-live-transmit` listening on `port`, throwing what it receives away.
pub fn srt_receiver(port: u16) -> Result<Child> {
    Command::new("srt-live-transmit")
        .args(["-q", "-chunk:1316"])
        .arg(format!("srt://:{port}?mode=listener"))
        .arg("file://con")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("srt-live-transmit (scripts/install-deps --test)")
}

/// CPU % of one core `srt-live-transmit` spends receiving `src` (and the
/// stream's Mbit/s), over `secs`.
pub fn srt_live_transmit_baseline(src: &Path, port: u16, secs: u64) -> Result<f64> {
    let mut kids = Children::default();
    kids.0.push(srt_receiver(port)?);
    std::thread::sleep(Duration::from_millis(500));
    kids.0.push(sender(src, port)?);
    std::thread::sleep(Duration::from_secs(3));
    let pid = kids.0[0].id();
    let (c0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    Ok(100.0 * (cpu_seconds(pid) - c0) / t0.elapsed().as_secs_f64())
}

pub fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

/// The date and time, UTC, from `date` (no date crate for one line).
pub fn chrono_like_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Puts `section` between the density markers of `path` (appended when
/// they are not there yet).
pub fn write_section(path: &Path, section: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{START}\n{section}{END}\n");
    let new = match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{block}{}", &text[..a], text[b + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{block}", text.trim_end()),
    };
    std::fs::write(path, new)?;
    Ok(())
}

const START: &str = "<!-- density:start -->";
const END: &str = "<!-- density:end -->";
