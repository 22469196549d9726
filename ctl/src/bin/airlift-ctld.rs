//! `airlift-ctld`, the Airlift control daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use airlift_ctl::config::{self, Overrides};
use airlift_ctl::daemon;

#[derive(Parser)]
#[command(name = "airlift-ctld", version, about = "Airlift control daemon")]
struct Cli {
    /// Configuration file (default: $AIRLIFT_CONFIG, then /etc/airlift/airlift.toml, then the built-in demo).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address for /health and /metrics (overrides `[http] listen` and AIRLIFT_HTTP_LISTEN).
    #[arg(long)]
    http_listen: Option<String>,
    /// Spool directory (overrides `[spool] path` and AIRLIFT_SPOOL).
    #[arg(long)]
    spool: Option<String>,
    /// Engine binary to spawn (overrides `[engine] binary` and AIRLIFT_ENGINE_BINARY).
    #[arg(long)]
    engine_binary: Option<String>,
    /// D-Bus address to serve on instead of the configured bus (e.g. a private test bus).
    #[arg(long)]
    dbus_address: Option<String>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the man page (roff) and exit.
    #[command(hide = true)]
    Man,
    /// Validate a configuration file and exit: 0 valid, 2 invalid.
    CheckConfig {
        /// The file.
        file: PathBuf,
        /// Also print the effective configuration (defaults filled in,
        /// secrets redacted) as TOML on standard output.
        #[arg(long)]
        print: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides::from_env().then(Overrides {
        http_listen: cli.http_listen.clone(),
        spool: cli.spool.clone(),
        engine_binary: cli.engine_binary.clone(),
        dbus_address: cli.dbus_address.clone(),
    });
    if let Some(Cmd::Man) = &cli.command {
        use clap::CommandFactory;
        return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("airlift-ctld: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Some(Cmd::CheckConfig { file, print }) = &cli.command {
        return match config::load(file, &overrides) {
            Ok(c) => {
                let verdict = format!(
                    "{}: valid ({} flows, {} pull jobs)",
                    file.display(),
                    c.state.flows.len(),
                    c.state.pulls.len()
                );
                if !print {
                    println!("{verdict}");
                    return ExitCode::SUCCESS;
                }
                match config::effective_toml(&c) {
                    Ok(text) => {
                        // The verdict as a comment: the output reads back as a configuration.
                        println!(
                            "# {verdict}\n# The effective configuration: defaults filled in, secrets shown as {:?}.\n\n{text}",
                            config::REDACTED
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("airlift-ctld: {e}");
                        ExitCode::from(1)
                    }
                }
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        };
    }
    airlift_log::init();
    let (config, source) = match daemon::load_config(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(config = %config.source, flows = config.state.flows.len(), "airlift-ctld {}", airlift_ctl::VERSION);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("airlift-ctld: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(daemon::run(config, source, overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlift-ctld: {}", airlift_ipc::report::chain_text(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
