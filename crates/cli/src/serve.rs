//! `tokengate serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokengate_server::config::{Config, LogFormat};
use tokengate_server::state::{self, SystemClock};

/// Options of `tokengate serve`; each overrides the config file and environment.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8787; env TOKENGATE_LISTEN].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory [default: ~/.local/share/tokengate; env TOKENGATE_DATA_DIR].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (see docs/configuration.md).
    #[arg(long, value_name = "FILE", env = "TOKENGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// Loads the configuration, opens the store and serves until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), |k| std::env::var(k).ok())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let data_dir = config.data_dir.clone();
    // Bound first: the relying party's default origin carries the port actually served
    // (`--listen 127.0.0.1:0` picks one).
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    config.listen = local;
    let state = tokio::task::spawn_blocking(move || state::open(config, Arc::new(SystemClock)))
        .await
        .context("start-up task")?
        .with_context(|| format!("opening the data dir {}", data_dir.display()))?;
    tracing::info!(
        listen = %local,
        data_dir = %data_dir.display(),
        account = %state.account_id,
        mfa_required = state.config.mfa.required,
        "tokengate is serving the STS and IAM query APIs"
    );
    // The portal's URL is the relying party's origin: browsers refuse WebAuthn on IP
    // literals and accept http://localhost and http://NAME.localhost (docs/portal.md).
    let portal = format!("{}/signin", state.security_keys.origin);
    tracing::info!(portal = %portal, "sign-in portal: open this URL in a browser");
    tokengate_server::serve(Arc::new(state), listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .with_context(|| format!("log.level {:?}", config.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
