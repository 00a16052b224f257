//! `iyagi`: the one binary. Reads the command line, the configuration file
//! and `IYAGI_*` environment variables, then hands typed settings to
//! `iyagi_server`. Nothing below this file reads the environment.

mod config;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use iyagi_server::{Application, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "iyagi",
    version,
    about = "iyagi: a real-time chat backend in one binary"
)]
struct Cli {
    /// TOML configuration file. Settings are layered: built-in defaults, then
    /// this file, then IYAGI_* environment variables (IYAGI_SECTION__KEY,
    /// e.g. IYAGI_DATABASE__URL), then command-line flags.
    #[arg(long, short, global = true, env = "IYAGI_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server. With no configuration it listens on 127.0.0.1:8080
    /// and keeps its data in ./data/iyagi.db (SQLite, created on first start).
    Serve(ServeArgs),
    /// Print the effective configuration (defaults + file + environment + flags) as TOML and exit.
    Config(ServeArgs),
    /// Staff administration against the configured database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Give USERNAME a staff role (`moderator` or `admin`): how the first
    /// admin is made, since no one can grant it over the API yet.
    Grant {
        username: String,
        role: String,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 (overrides server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB (overrides database.url).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Log filter such as info or iyagi_server=debug (overrides log.level).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = load(cli.config.as_deref(), &args)?;
            init_tracing(&settings);
            let app = Application::build(settings)
                .await
                .context("starting iyagi")?;
            tracing::info!(address = %app.local_addr(), "iyagi is serving");
            app.run_until(shutdown_signal()).await.context("serving")?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Config(args) => {
            let settings = load(cli.config.as_deref(), &args)?;
            print!("{}", config::to_toml(&settings)?);
            Ok(())
        }
        Command::Admin(AdminCommand::Grant {
            username,
            role,
            args,
        }) => {
            let settings = load(cli.config.as_deref(), &args)?;
            let role = iyagi_server::StaffRole::parse(&role)
                .with_context(|| format!("unknown role {role:?}: moderator or admin"))?;
            let user = iyagi_server::grant_role(&settings, &username, role)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("{username} ({user}) is now {}", role.as_str());
            Ok(())
        }
    }
}

fn load(file: Option<&std::path::Path>, args: &ServeArgs) -> anyhow::Result<Settings> {
    let overrides = config::Overrides {
        listen: args.listen.clone(),
        database_url: args.database_url.clone(),
        log_level: args.log_level.clone(),
    };
    let settings = config::load(file, &overrides)?;
    settings
        .validate()
        .map_err(|msg| anyhow::anyhow!("invalid configuration: {msg}"))?;
    Ok(settings)
}

fn init_tracing(settings: &Settings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log.format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Pretty => builder.compact().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
