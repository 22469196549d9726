//! The daemon: config → engine link, HTTP, SIGHUP reload, clean shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Config, FullPolicy, Overrides};
pub use crate::controller::ConfigSource;
use crate::controller::{Controller, sync_ports};
use crate::engine_link::{EngineLink, EngineLinkConfig, Shared};
use crate::http::{self, HttpState};
use crate::ports::PortAllocator;
use crate::upload::SpoolAction;

/// Finds the engine binary: the configured one, else `airlift-engine`
/// beside this executable, else on `PATH`.
pub fn engine_binary(config: &Config) -> PathBuf {
    if let Some(b) = &config.engine.binary {
        return b.resolve(&config.base_dir);
    }
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
    {
        let beside = dir.join("airlift-engine");
        if beside.exists() {
            return beside;
        }
    }
    PathBuf::from("airlift-engine")
}

/// Runs ctld until SIGINT or SIGTERM.
pub async fn run(config: Config, source: ConfigSource, overrides: Overrides) -> anyhow::Result<()> {
    let spool = config.spool_dir();
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("cannot create the spool {}", spool.display()))?;
    // One owner per spool, before anything else touches it, the bus or the engine.
    let spool_lock = crate::upload::spool_lock::SpoolLock::acquire(&spool)?;
    tracing::info!(lock = %spool_lock.path().display(), "spool locked");
    let socket = config.engine_socket();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Everything that can fail on bad files fails before anything starts.
    let http_paths = config.http_paths();
    let security = http::HttpSecurity::load(&config.http.view(&http_paths)).context("[http]")?;
    let shared = Shared::new();

    shared.metrics.spool_limit_bytes.set(i64::try_from(config.spool.max_bytes.0).unwrap_or(i64::MAX));

    let mut args = Vec::new();
    if let Some(cpu) = config.engine.cpu {
        args.extend(["--cpu".to_string(), cpu.to_string()]);
    }
    if let Some(p) = config.engine.rt_priority {
        args.extend(["--rt-priority".to_string(), p.to_string()]);
    }
    if config.engine.mlock {
        args.push("--mlock".into());
    }
    args.extend(["--spool".to_string(), spool.display().to_string()]);
    args.extend(["--max-pulls".to_string(), config.limits.max_pull_jobs.to_string()]);
    let link_config = EngineLinkConfig {
        socket: socket.clone(),
        spawn: config.engine.spawn.then(|| engine_binary(&config)),
        args,
    };
    // The operator's runtime values hold across restarts: the engine starts
    // with them (and runtime pull jobs with their ports).
    let state_file = config.state_file();
    let spool_over_limit = config.spool.full_policy == FullPolicy::StopRecording
        && crate::upload::spool::total_bytes(&spool) > config.spool.max_bytes.0;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let restored = crate::state::restore(&state_file, &config.state, spool_over_limit, now);
    // Listener ports are reserved before the engine binds them.
    let mut ports = PortAllocator::new(config.srt.port_range);
    sync_ports(&mut ports, &restored.state.holding(&config.state));
    shared.metrics.srt_ports_total.set(ports.capacity() as i64);
    shared.metrics.srt_ports_in_use.set(ports.held() as i64);
    let link = EngineLink::start(link_config, restored.state.apply(&config.resolved_state()), shared.clone());
    let (uploads, mut spool_actions, upload_task) =
        crate::upload::start(&config, shared.clone()).context("cannot start the uploader")?;

    let listener = tokio::net::TcpListener::bind(config.http.listen.0)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen.0))?;
    let listen_addr = listener.local_addr()?;
    tracing::info!(address = %listen_addr, "health and metrics on http://{listen_addr}/health and /metrics");
    let http_state = Arc::new(HttpState {
        shared: shared.clone(),
        node: config.node.name.to_string(),
        started: Instant::now(),
        spool_path: spool.display().to_string(),
        spool_bytes: Default::default(),
        spool_limit: config.spool.max_bytes.0,
        desired_flows: std::sync::Mutex::new(config.state.flows.iter().map(|f| f.name.to_string()).collect()),
        uploads,
        orphans: Default::default(),
        health: std::sync::Mutex::new(config.health.clone()),
    });
    // Alarms to webhooks (config check read the secrets once; read them
    // again now, as the files may have changed).
    let mut alert_targets = Vec::new();
    for target in &config.alerts {
        match crate::alert::check_target(target, &config.base_dir) {
            Ok(secret) => alert_targets.push((target.clone(), secret)),
            Err(e) => tracing::error!(alert = %target.name, "alert target off: {e}"),
        }
    }
    crate::alert::start(alert_targets, config.node.name.to_string(), http_state.clone());

    let spawned = config.engine.spawn;
    let dbus_config = config.dbus.clone();
    let api_token_file = config.api_token_file();
    let api_token =
        crate::api::auth::load_or_create_token(&api_token_file).context("[http] api_token_file")?;
    let session_ttl = Duration::from_secs(u64::from(config.http.session_minutes) * 60);
    let controller = Arc::new(Controller::new(
        link,
        shared,
        http_state.clone(),
        config,
        source,
        overrides,
        ports,
        restored,
        state_file,
    ));
    // Recent alarms and segments, for the console: subscribed before the
    // uploader starts.
    let recent = Arc::new(crate::recent::Recent::new());
    recent.start(controller.shared.clone(), http_state.uploads.clone());
    let api = Arc::new(crate::api::Api {
        ctl: controller.clone(),
        auth: crate::api::auth::Auth::new(api_token, session_ttl, security.tls.is_some()),
        recent,
    });
    tracing::info!(token_file = %api_token_file.display(), "web console on http{}://{listen_addr}/", if security.tls.is_some() { "s" } else { "" });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(http::serve(listener, http_state.clone(), security, Some(api), async {
        let _ = http_stopped.await;
    }));
    let _dbus = match crate::dbus::serve(controller.clone(), &dbus_config).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!("D-Bus control is off: {e}");
            None
        }
    };
    controller.announce_restore();

    // Signals are in place: uploads may start (and alarm).
    upload_task.spawn();

    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("serving http://{listen_addr}")),
    ]);
    let watchdog = sd_notify::watchdog_enabled();
    let mut watchdog_tick = tokio::time::interval(watchdog.map_or(Duration::from_secs(3600), |w| w / 2));

    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                // Errors are logged and counted by the controller.
                let _ = controller.reload().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                let survey = crate::upload::spool::survey(&spool, std::time::Duration::from_secs(10));
                http_state.spool_bytes.store(survey.bytes, Relaxed);
                let before = http_state.orphans.swap(survey.orphans, Relaxed);
                if survey.orphans > before {
                    // More segments without a manifest than at the last look.
                    let message = format!("{} segment(s) without a manifest in the spool", survey.orphans);
                    tracing::warn!("{message}");
                    let _ = http_state.uploads.events.send(crate::upload::UploadEvent::Alarm {
                        kind: "orphan_segments",
                        job: String::new(),
                        message,
                    });
                }
            }
            Some(action) = spool_actions.recv() => recording(&controller, action).await,
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("stopping: closing recordings, then the engine");
    if spawned {
        let shutdown = controller.link.command(airlift_ipc::message::Command::Shutdown);
        match tokio::time::timeout(Duration::from_secs(10), shutdown).await {
            Ok(Ok(())) => tracing::info!("engine stopped cleanly"),
            Ok(Err(e)) => tracing::warn!("engine shutdown: {e}"),
            Err(_) => tracing::warn!("engine did not answer the shutdown within 10 s"),
        }
    }
    let _ = stop_http.send(());
    let _ = http_task.await;
    drop(spool_lock);
    Ok(())
}

/// The `stop_recording` spool policy: holds (or releases) every flow with a
/// segments output and every pull job, as runtime state.
async fn recording(controller: &Controller, action: SpoolAction) {
    controller.set_policy_stop(matches!(action, SpoolAction::StopRecording)).await;
}

/// Loads the configuration the way ctld does: `--config`, else
/// `AIRLIFT_CONFIG`, else `/etc/airlift/airlift.toml` when it exists, else
/// the built-in default.
pub fn load_config(
    explicit: Option<&Path>,
    overrides: &Overrides,
) -> Result<(Config, ConfigSource), config::ConfigErrors> {
    let path = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("AIRLIFT_CONFIG").map(PathBuf::from))
        .or_else(|| Some(PathBuf::from("/etc/airlift/airlift.toml")).filter(|p| p.exists()));
    match path {
        Some(p) => Ok((config::load(&p, overrides)?, ConfigSource::File(p))),
        None => Ok((
            config::parse(config::DEFAULT_CONFIG, "built-in default", Path::new("."), overrides)?,
            ConfigSource::BuiltIn,
        )),
    }
}
