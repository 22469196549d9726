//! `airliftctl`: drive an Airlift node over D-Bus from a terminal or script.
//!
//! Exit codes: 0 ok, 1 the daemon refused or failed, 2 usage, 3 daemon unreachable.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use futures_util::StreamExt;
use zbus::{OwnedVariant, Variant};

use airlift_ctl::client::{
    BusChoice, Failure, MeterView, Node1Proxy, classify, connect, level, levels_json, loudness_line,
    status_json,
};

#[derive(Parser)]
#[command(name = "airliftctl", version, about = "Control an Airlift node over D-Bus")]
struct Cli {
    /// Use the system bus (the default).
    #[arg(long, global = true, conflicts_with_all = ["session", "address"])]
    system: bool,
    /// Use the session bus.
    #[arg(long, global = true, conflicts_with = "address")]
    session: bool,
    /// Use this bus address.
    #[arg(long, global = true)]
    address: Option<String>,
    /// Print JSON (read commands).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Node status.
    Status,
    /// List, start or stop flows.
    Flows {
        #[command(subcommand)]
        action: Option<FlowsCmd>,
    },
    /// Set an input's gain in dB.
    Gain {
        /// Flow.
        flow: String,
        /// Input.
        input: String,
        /// Gain in dB (−120 … 24); a negative value needs no `--`.
        #[arg(allow_hyphen_values = true)]
        db: f64,
    },
    /// Mute an input (`--off` to unmute).
    Mute {
        /// Flow.
        flow: String,
        /// Input.
        input: String,
        /// Unmute instead.
        #[arg(long)]
        off: bool,
    },
    /// Set an input's pan (−1 left … 1 right).
    Pan {
        /// Flow.
        flow: String,
        /// Input.
        input: String,
        /// Position; a negative value needs no `--`.
        #[arg(allow_hyphen_values = true)]
        position: f64,
    },
    /// Pull jobs.
    /// Inputs with backups: force a source, or return to automatic failover.
    Input {
        #[command(subcommand)]
        action: InputCmd,
    },
    Pull {
        #[command(subcommand)]
        action: PullCmd,
    },
    /// Files in the spool.
    Segments {
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Show at most this many (≤ 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Uploads.
    Uploads {
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Show at most this many (≤ 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Re-read the daemon's configuration file.
    Reload,
    /// The runtime state: each value set at run time (gain, mute, pan,
    /// stopped flows, paused and runtime pull jobs, the spool policy's stop)
    /// next to the configured value.
    State {
        #[command(subcommand)]
        action: Option<StateCmd>,
    },
    /// Live level meters (bars redrawn in place on a terminal, lines
    /// otherwise): peak and RMS per channel for flows with a `meter`
    /// processor, loudness for flows with a `loudness` processor. Silence is
    /// `-inf` (`null` with `--json`).
    Meter {
        /// Only this flow.
        flow: Option<String>,
        /// Stop after this many updates.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, …
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Subcommand)]
enum FlowsCmd {
    /// List flows (the default).
    List,
    /// Start a flow.
    Start {
        /// Flow.
        flow: String,
    },
    /// Stop a flow.
    Stop {
        /// Flow.
        flow: String,
    },
}

#[derive(Subcommand)]
enum StateCmd {
    /// Show the runtime values (the default).
    Show,
    /// Clear the runtime values of FLOW (or pull job), or all of them: the
    /// configuration applies again.
    Reset {
        /// Flow or pull job; all when absent.
        flow: Option<String>,
    },
}

#[derive(Subcommand)]
enum InputCmd {
    /// Play SOURCE (`primary` or a backup's name) on an input with backups
    /// whatever the sources do, or `--auto` to let failover choose again.
    /// The choice outlives restarts until changed (`airliftctl state`).
    Select {
        /// Flow.
        flow: String,
        /// Input.
        input: String,
        /// `primary` or a backup's name.
        #[arg(required_unless_present = "auto", conflicts_with = "auto")]
        source: Option<String>,
        /// Return the input to automatic selection.
        #[arg(long)]
        auto: bool,
    },
}

#[derive(Subcommand)]
enum PullCmd {
    /// Start pulling an SRT stream into segments: `srt://host:port` (caller)
    /// or `srt://:port?mode=listener&passphrase=…` (port 0: one from the
    /// node's pool); query options latency (ms), passphrase, pbkeylen,
    /// streamid, allow_from (networks, comma-separated), allow_unencrypted
    /// (a listener without a passphrase is refused unless it is true).
    Start {
        /// Source URL.
        url: String,
        /// Job name (default pull-N).
        #[arg(long)]
        name: Option<String>,
        /// Target segment duration in seconds (default 6).
        #[arg(long)]
        segment_seconds: Option<u32>,
        /// Forced cut size in bytes (default: the node's limit).
        #[arg(long)]
        max_segment_bytes: Option<u64>,
    },
    /// Stop a pull job.
    Stop {
        /// Job id.
        id: String,
    },
    /// List pull jobs.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Cmd::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "airliftctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Cmd::Man => {
            let man = clap_mangen::Man::new(Cli::command());
            return match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("airliftctl: {e}");
                    ExitCode::from(1)
                }
            };
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("airliftctl: {e}");
            return ExitCode::from(1);
        }
    };
    let bus = match (&cli.address, cli.session) {
        (Some(a), _) => BusChoice::Address(a.clone()),
        (None, true) => BusChoice::Session,
        (None, false) => BusChoice::System,
    };
    let result = runtime.block_on(async {
        let conn =
            connect(&bus).await.map_err(|e| (Failure::Unreachable, format!("cannot reach the bus: {e}")))?;
        run(cli, conn).await.map_err(|e| classify(&e))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((failure, message)) => {
            eprintln!("airliftctl: {message}");
            ExitCode::from(failure.code())
        }
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn run(cli: Cli, conn: zbus::Connection) -> zbus::Result<()> {
    let node = Node1Proxy::new(&conn).await?;
    match cli.command {
        Cmd::Status => {
            let status = node.status().await?;
            let json = status_json(&status);
            if cli.json {
                print_json(&json);
            } else if let serde_json::Value::Object(map) = json {
                for (k, v) in map {
                    println!("{k:18} {}", v.as_str().map_or_else(|| v.to_string(), str::to_string));
                }
            }
        }
        Cmd::Flows { action: None | Some(FlowsCmd::List) } => {
            let flows = node.list_flows().await?;
            if cli.json {
                print_json(&serde_json::json!(
                    flows.iter().map(|(n, s)| serde_json::json!({"name": n, "state": s})).collect::<Vec<_>>()
                ));
            } else {
                for (name, state) in flows {
                    println!("{name:24} {state}");
                }
            }
        }
        Cmd::Flows { action: Some(FlowsCmd::Start { flow }) } => node.start_flow(&flow).await?,
        Cmd::Flows { action: Some(FlowsCmd::Stop { flow }) } => node.stop_flow(&flow).await?,
        Cmd::Gain { flow, input, db } => node.set_gain(&flow, &input, db).await?,
        Cmd::Mute { flow, input, off } => node.set_mute(&flow, &input, !off).await?,
        Cmd::Pan { flow, input, position } => node.set_pan(&flow, &input, position).await?,
        Cmd::Input { action: InputCmd::Select { flow, input, source, auto } } => {
            let source = if auto { "auto".to_string() } else { source.unwrap_or_default() };
            node.select_source(&flow, &input, &source).await?
        }
        Cmd::Pull { action: PullCmd::Start { url, name, segment_seconds, max_segment_bytes } } => {
            let mut options = HashMap::new();
            if let Some(n) = name {
                options.insert("name".to_string(), OwnedVariant::try_from(Variant::from(n))?);
            }
            if let Some(s) = segment_seconds {
                options.insert("segment_seconds".to_string(), OwnedVariant::try_from(Variant::from(s))?);
            }
            if let Some(b) = max_segment_bytes {
                options.insert("max_segment_bytes".to_string(), OwnedVariant::try_from(Variant::from(b))?);
            }
            println!("{}", node.start_pull(&url, options).await?)
        }
        Cmd::Pull { action: PullCmd::Stop { id } } => node.stop_pull(&id).await?,
        Cmd::Pull { action: PullCmd::List } => {
            let pulls = node.list_pulls().await?;
            if cli.json {
                print_json(&serde_json::json!(
                    pulls
                        .iter()
                        .map(|(n, s, u)| serde_json::json!({"id": n, "state": s, "source": u}))
                        .collect::<Vec<_>>()
                ));
            } else {
                for (id, state, source) in pulls {
                    println!("{id:24} {state:12} {source}");
                }
            }
        }
        Cmd::Segments { offset, limit } => {
            let files = node.list_segments(offset, limit).await?;
            if cli.json {
                print_json(&serde_json::json!(
                    files.iter().map(|(p, b)| serde_json::json!({"path": p, "bytes": b})).collect::<Vec<_>>()
                ));
            } else {
                for (path, bytes) in files {
                    println!("{bytes:>12}  {path}");
                }
            }
        }
        Cmd::Uploads { offset, limit } => {
            let uploads = node.list_uploads(offset, limit).await?;
            if cli.json {
                print_json(&serde_json::json!(
                    uploads
                        .iter()
                        .map(|(k, b, s)| serde_json::json!({"key": k, "bytes": b, "state": s}))
                        .collect::<Vec<_>>()
                ));
            } else if std::io::stdout().is_terminal() {
                upload_progress(&node, offset, limit, uploads).await?;
            } else {
                for (key, bytes, state) in uploads {
                    println!("{bytes:>12}  {state:10} {key}");
                }
            }
        }
        Cmd::Reload => {
            let n = node.reload().await?;
            println!("reloaded: {n} flows");
        }
        Cmd::State { action: None | Some(StateCmd::Show) } => {
            let rows = node.runtime_state().await?;
            if cli.json {
                print_json(&serde_json::json!(
                    rows.iter()
                        .map(|(f, s, k, r, c)| serde_json::json!({"flow": f, "subject": s, "key": k, "runtime": r, "config": c}))
                        .collect::<Vec<_>>()
                ));
            } else if rows.is_empty() {
                println!("no runtime overrides: the configuration applies");
            } else {
                let dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
                println!("{:16} {:16} {:8} {:28} CONFIG", "FLOW", "SUBJECT", "KEY", "RUNTIME");
                for (flow, subject, key, runtime, config) in rows {
                    println!("{:16} {:16} {:8} {:28} {config}", dash(&flow), dash(&subject), key, runtime);
                }
            }
        }
        Cmd::State { action: Some(StateCmd::Reset { flow }) } => {
            let n = node.reset_state(flow.as_deref().unwrap_or("")).await?;
            println!("reset: {n} runtime value(s) cleared; the configuration applies");
        }
        Cmd::Meter { flow, count } => meter(&node, flow, count, cli.json).await?,
        Cmd::Completions { .. } | Cmd::Man => {}
    }
    Ok(())
}

/// Redraws the upload queue in place twice a second, with a bar per
/// upload in flight, until the queue is empty (terminal only).
async fn upload_progress(
    node: &Node1Proxy<'_>,
    offset: u32,
    limit: u32,
    mut uploads: Vec<(String, u64, String)>,
) -> zbus::Result<()> {
    let width = 30usize;
    let mut drawn = 0usize;
    loop {
        let mut lines = vec![format!("{} segment(s) waiting for upload", node.upload_backlog().await?)];
        for (key, bytes, state) in uploads.iter().take(20) {
            let bar = match state.strip_prefix("uploading ").and_then(|r| r.split_once('/')) {
                Some((sent, _)) => {
                    let sent: u64 = sent.parse().unwrap_or(0);
                    let filled =
                        if *bytes == 0 { width } else { (sent.min(*bytes) * width as u64 / bytes) as usize };
                    format!(
                        "[{}{}] {:>3}%",
                        "#".repeat(filled),
                        "-".repeat(width - filled),
                        filled * 100 / width
                    )
                }
                None => format!("{state:.40}"),
            };
            lines.push(format!("{bytes:>12}  {bar}  {key}"));
        }
        let mut out = std::io::stdout().lock();
        if drawn > 0 {
            let _ = write!(out, "\x1b[{drawn}A");
        }
        for l in &lines {
            let _ = writeln!(out, "\x1b[2K{l}");
        }
        // Clear lines left over from a longer previous frame.
        for _ in lines.len()..drawn {
            let _ = writeln!(out, "\x1b[2K");
        }
        drawn = drawn.max(lines.len());
        let _ = out.flush();
        if uploads.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        uploads = node.list_uploads(offset, limit).await?;
    }
}

async fn meter(
    node: &Node1Proxy<'_>,
    only: Option<String>,
    count: Option<u64>,
    json: bool,
) -> zbus::Result<()> {
    let mut stream = node.receive_levels().await?;
    let tty = std::io::stdout().is_terminal() && !json;
    let mut views: HashMap<String, MeterView> = HashMap::new();
    let mut drawn_lines = 0;
    let mut n = 0u64;
    let width = 40;
    while let Some(signal) = stream.next().await {
        let args = signal.args()?;
        let flow = args.flow().to_string();
        if only.as_ref().is_some_and(|f| f != &flow) {
            continue;
        }
        let (peak, rms, loudness) = (args.peak_dbfs(), args.rms_dbfs(), args.loudness());
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(out, "{}", levels_json(&flow, peak, rms, loudness));
        } else if tty {
            let lines = views.entry(flow.clone()).or_default().render(&flow, peak, rms, loudness, width);
            // Move back over the previous frame and redraw it in place.
            if drawn_lines > 0 {
                let _ = write!(out, "\x1b[{drawn_lines}A");
            }
            for l in &lines {
                let _ = writeln!(out, "\x1b[2K{l}");
            }
            drawn_lines = lines.len();
        } else {
            let mut line = flow.clone();
            if !peak.is_empty() {
                let short = |v: f64| level(v, "").trim().to_string();
                let chans: Vec<String> =
                    peak.iter().zip(rms).map(|(p, r)| format!("{}/{}", short(*p), short(*r))).collect();
                line.push_str(&format!(" peak/rms dBFS {}", chans.join(" ")));
            }
            if let Some(l) = loudness_line(loudness) {
                line.push_str(&format!(" {}", l.split_whitespace().collect::<Vec<_>>().join(" ")));
            }
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        n += 1;
        if count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(())
}
