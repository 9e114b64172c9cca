//! `eenplan-admin console`: the administrator's web page, served by this process on 127.0.0.1
//! only, so the keys stay in this keyring's memory and never reach a browser or a server.
//!
//! Everything the page does goes through the same functions as the CLI commands
//! (`commands::device`, `commands::audit`, `commands::plan`): the console only renders.
//! `guard.rs` keeps other pages and other processes out (one-time login link, session cookie,
//! Host, Origin and CSRF checks, a strict Content-Security-Policy); `jobs.rs` runs a revocation
//! in the background and reports its rotation progress; `pages.rs` holds the pages.

mod guard;
mod jobs;
mod pages;

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};

use crate::args::ConsoleArgs;
use crate::commands::Session;
use crate::error::AdminError;
use crate::output::Output;

/// What every request of the console shares.
pub(crate) struct State {
    /// The unlocked keyring: one call at a time, as the CLI runs one command at a time.
    session: Mutex<Session>,
    guard: guard::Guard,
    jobs: jobs::Jobs,
}

type Shared = Arc<State>;

impl State {
    fn session(&self) -> MutexGuard<'_, Session> {
        // A call that panicked left the keyring as saved on disk; the next call goes on.
        self.session.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub fn run(session: Session, args: &ConsoleArgs) -> Result<Output, AdminError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AdminError::Console(format!("cannot start: {e}")))?;
    runtime.block_on(serve(session, args.port))?;
    Ok(Output::Text(String::new()))
}

async fn serve(session: Session, port: u16) -> Result<(), AdminError> {
    // Loopback only: the page drives keys that can revoke a region's phones.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| AdminError::Console(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener.local_addr().map_err(|e| AdminError::Console(e.to_string()))?.port();
    let guard = guard::Guard::new(port)?;
    let link = format!("http://127.0.0.1:{port}/login?token={}", guard.login_token());
    let state = Arc::new(State { session: Mutex::new(session), guard, jobs: jobs::Jobs::default() });
    // The link alone on stdout, for scripts; the explanation on stderr.
    eprintln!("De beheerconsole draait. Open deze link één keer in je browser (hij werkt maar één keer):");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{link}")
        .and_then(|()| stdout.flush())
        .map_err(|e| AdminError::Console(e.to_string()))?;
    drop(stdout);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| AdminError::Console(e.to_string()))
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/enrol", get(pages::enrol_form).post(pages::enrol))
        .route("/devices/{device}/approve", post(pages::approve))
        .route("/devices/{device}/revoke", get(pages::revoke_form).post(jobs::revoke))
        .route("/users/{user}/offboard", get(pages::offboard_form).post(jobs::offboard))
        .route("/jobs/{job}", get(jobs::page))
        .route("/jobs/{job}/progress", get(jobs::progress))
        .route("/plan", get(pages::plan))
        .route("/audit", get(pages::audit))
        .route("/login", get(guard::login))
        .route("/static/console.css", get(pages::css))
        .route("/static/console.js", get(pages::js))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::check))
        .with_state(state)
}
