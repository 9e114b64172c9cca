//! `eenplan-server serve --data DIR --listen ADDR [--tls-cert PEM --tls-key PEM]
//!  [--origin URL]… [--metrics-token-file FILE] [--push-quota-bundles N --push-quota-mib N]`
//!
//! Opens (or creates) `DIR/server.db`, or with `--database postgres://user@host:port/db` (or
//! `EENPLAN_DATABASE_URL`, which keeps a password out of the process list) that PostgreSQL
//! database, migrating either to this build's schema; binds `ADDR` (port 0 picks a free one), prints one line
//! `listening on ADDR` to stdout once the socket accepts connections (scripts and tests wait
//! for it), and serves until SIGTERM or Ctrl-C. A server without a network writes its
//! one-time init secret to `DIR/init-secret` (mode 0600) and says so on stderr: the
//! administrator's `init` must carry it. Shutdown is graceful: no new connections,
//! requests in flight finish, live sockets are closed, and the group-commit writer writes
//! whatever was queued before the process exits with status 0.
//!
//! Logs are `tracing` events on stderr, filtered by `RUST_LOG` (default `info`), as JSON
//! lines when `EENPLAN_LOG_JSON=1`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use eenplan_server::init_secret::{self, InitSecret};
use eenplan_server::live_events::RelayTarget;
use eenplan_server::quota::QuotaLimits;
use eenplan_server::routes::{self, AppState, ServerConfig};
use eenplan_server::storage::postgres::redact_url;
use eenplan_server::storage::{PostgresStorage, SqliteStorage, Storage};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

/// How long in-flight requests get to finish after a shutdown signal (TLS server; the plain
/// server waits for them, and they time out after 30 s anyway).
const GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(name = "eenplan-server", version, about = "The eenplan sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API.
    Serve(Serve),
}

#[derive(Debug, Args)]
struct Serve {
    /// Directory of the database (`server.db`) and the init secret; created if missing.
    #[arg(long)]
    data: PathBuf,
    /// A PostgreSQL database to keep everything in instead of `server.db`:
    /// postgres://user[:password]@host[:port]/db (no TLS: loopback or a private network).
    #[arg(long, env = "EENPLAN_DATABASE_URL", value_name = "URL", value_parser = parse_database)]
    database: Option<DatabaseUrl>,
    /// Address to listen on, e.g. 0.0.0.0:8443 (port 0: any free port).
    #[arg(long)]
    listen: SocketAddr,
    /// PEM certificate chain; serves HTTPS (rustls) with --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The origin administrators address this server by (e.g. https://eenplan.example.nl),
    /// as the load balancer in front of it is reached; repeat for several. Admin requests
    /// signed for any other origin are refused. Without it, any origin is taken (the signature
    /// still binds the network's root key).
    #[arg(long = "origin", value_name = "URL", value_parser = parse_origin)]
    origins: Vec<String>,
    /// A file holding the bearer token `GET /metrics` asks for. Without it, metrics are off.
    #[arg(long, value_name = "FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Bundles one device may push per rolling hour.
    #[arg(long, default_value_t = eenplan_protocol::sync::PUSH_QUOTA_BUNDLES)]
    push_quota_bundles: u64,
    /// Sync-request MiB one device may send per rolling hour.
    #[arg(long, default_value_t = eenplan_protocol::sync::PUSH_QUOTA_BYTES / (1024 * 1024))]
    push_quota_mib: u64,
}

/// A database URL; its `Debug` leaves the password out.
#[derive(Clone)]
struct DatabaseUrl(String);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

fn parse_database(text: &str) -> Result<DatabaseUrl, String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        Ok(DatabaseUrl(text.to_owned()))
    } else {
        Err("a database is postgres://user[:password]@host[:port]/database".to_string())
    }
}

fn parse_origin(text: &str) -> Result<String, String> {
    eenplan_protocol::api::normalise_origin(text)
        .ok_or_else(|| "an origin is scheme://host[:port], e.g. https://eenplan.example.nl".to_string())
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the database: {0}")]
    Storage(#[from] eenplan_server::storage::StorageError),
    #[error("{0}")]
    Start(#[from] routes::StartError),
    #[error("the init secret: {0}")]
    InitSecret(#[from] init_secret::InitSecretError),
    #[error("the live-event relay: {0}")]
    Relay(String),
    #[error("the metrics token file {path}: {why}")]
    MetricsToken { path: PathBuf, why: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let Command::Serve(serve_args) = cli.command;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("eenplan-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(serve_args)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "the server failed");
            eprintln!("eenplan-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if std::env::var("EENPLAN_LOG_JSON").is_ok_and(|v| v == "1") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: Serve) -> Result<(), Error> {
    std::fs::create_dir_all(&args.data)?;
    let storage = open_storage(&args).await?;
    let config = ServerConfig {
        init_secret: init_secret(&args, &*storage)?,
        metrics_token: metrics_token(&args)?,
        origins: args.origins.clone(),
        push_quota: QuotaLimits {
            bundles: args.push_quota_bundles,
            bytes: args.push_quota_mib.saturating_mul(1024 * 1024),
            ..QuotaLimits::default()
        },
        // Other processes may share the database: live events go through it to them.
        relay: match &args.database {
            Some(DatabaseUrl(url)) => Some(RelayTarget::parse(url).map_err(Error::Relay)?),
            None => None,
        },
    };
    if config.origins.is_empty() {
        tracing::info!("no --origin: admin requests are taken whatever origin they were signed for");
    }
    let state = AppState::new(storage, config)?;
    let app = routes::router(state.clone());

    // Registered before anything is announced: a SIGTERM that arrives right after the
    // `listening on` line must reach the graceful path, not the default action.
    let signals = Signals::new()?;
    let listener = std::net::TcpListener::bind(args.listen)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;

    match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => {
            // ring, not aws-lc: no C toolchain beyond what ring needs, and one provider in the
            // process (a second one installed by a dependency would make the default ambiguous).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
            let handle = axum_server::Handle::new();
            let server = axum_server::from_tcp_rustls(listener, config)?.handle(handle.clone());
            let watcher = state.clone();
            tokio::spawn(async move {
                signals.wait().await;
                watcher.begin_shutdown();
                handle.graceful_shutdown(Some(GRACE));
            });
            announce(local, "https")?;
            server.serve(app.into_make_service()).await?;
        }
        _ => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let watcher = state.clone();
            announce(local, "http")?;
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    signals.wait().await;
                    watcher.begin_shutdown();
                })
                .await?;
        }
    }
    tracing::info!("no more requests; writing queued pushes");
    tokio::task::spawn_blocking(move || state.finish_shutdown()).await.map_err(std::io::Error::other)?;
    Ok(())
}

/// The PostgreSQL database of `--database`, or else `server.db` in `--data`.
async fn open_storage(args: &Serve) -> Result<Arc<dyn Storage>, Error> {
    if let Some(DatabaseUrl(url)) = args.database.clone() {
        let storage = tokio::task::spawn_blocking(move || PostgresStorage::open(&url))
            .await
            .map_err(std::io::Error::other)??;
        tracing::info!(database = storage.shown(), "PostgreSQL");
        return Ok(Arc::new(storage));
    }
    let path = args.data.join("server.db");
    let storage = tokio::task::spawn_blocking(move || SqliteStorage::open(path))
        .await
        .map_err(std::io::Error::other)??;
    Ok(Arc::new(storage))
}

/// The init secret of a server without a network (made now if needed); `None` once it has one.
fn init_secret(args: &Serve, storage: &dyn Storage) -> Result<Option<InitSecret>, Error> {
    if storage.network()?.is_some() {
        init_secret::remove_stale(&args.data);
        return Ok(None);
    }
    let secret = InitSecret::ensure(&args.data)?;
    tracing::info!(path = %secret.path().display(), "not initialised; the one-time init secret is in this file");
    eprintln!(
        "eenplan-server: not initialised yet; the one-time init secret is in {} (eenplan-admin init --init-secret …)",
        secret.path().display()
    );
    Ok(Some(secret))
}

fn metrics_token(args: &Serve) -> Result<Option<String>, Error> {
    let Some(path) = &args.metrics_token_file else { return Ok(None) };
    let bad = |why: String| Error::MetricsToken { path: path.clone(), why };
    let token = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?.trim().to_string();
    if token.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Ok(Some(token))
}

fn announce(local: SocketAddr, scheme: &str) -> std::io::Result<()> {
    tracing::info!(address = %local, scheme, "listening");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {local}")?;
    stdout.flush()
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        let name = tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    }
}
