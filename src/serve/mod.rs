//! `flatline serve`: a long-running HTTP control API over live sessions.
//!
//! One port serves two APIs: the native one ([`native`]: sessions, faults
//! now, verdicts on demand, events, reports) and Toxiproxy's ([`toxiproxy`]:
//! proxies and toxics, so existing Toxiproxy clients work unchanged). Both
//! drive [`session::Session`]s, each a relay with its own event log and a
//! live timeline: the same engine as `flatline run`. Stopping the server
//! closes every session and leaves no listener.
//!
//! Layout: [`error`] (4xx answers naming the field), [`spec`] (faults and
//! expectations read by the scenario loader), [`session`], [`native`],
//! [`follow`] (streamed events), [`toxiproxy`] and [`toxics`] (the mapping
//! of Toxiproxy's toxics onto flatline's faults).

pub mod error;
mod follow;
pub mod native;
pub mod session;
pub mod spec;
pub mod toxics;
pub mod toxiproxy;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use error::ApiError;
use session::{CloseHow, Session};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Largest request body accepted (a scenario included).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The version `/version` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings of `flatline serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Whether the API and the relays may listen on non-loopback addresses.
    pub allow_remote: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8474)),
            allow_remote: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Not loopback and not allowed.
    #[error("refusing to listen on {0}: a control API that creates relays to any upstream is an open proxy; pass --allow-remote to do it anyway")]
    NotLoopback(SocketAddr),
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        err: std::io::Error,
    },
}

/// What every handler shares.
pub struct AppState {
    sessions: Mutex<BTreeMap<String, Arc<Session>>>,
    next: AtomicU64,
    /// Relays may listen on non-loopback addresses.
    pub allow_remote: bool,
    /// Toxiproxy's proxies.
    pub proxies: tokio::sync::Mutex<toxiproxy::Proxies>,
}

impl AppState {
    fn new(allow_remote: bool) -> AppState {
        AppState {
            sessions: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(1),
            allow_remote,
            proxies: tokio::sync::Mutex::new(toxiproxy::Proxies::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh session id.
    pub fn next_id(&self) -> String {
        format!("s{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Every session, by id.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    /// The session `id`, or 404.
    pub fn session(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        self.lock()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no session `{id}`")))
    }

    fn insert_session(&self, s: Arc<Session>) -> Result<(), ApiError> {
        self.lock().insert(s.id.clone(), s);
        Ok(())
    }

    fn remove_session(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        self.lock()
            .remove(id)
            .ok_or_else(|| ApiError::not_found(format!("no session `{id}`")))
    }

    /// Register a proxy's session under its id (replacing an older one).
    pub fn replace_session(&self, s: Arc<Session>) {
        self.lock().insert(s.id.clone(), s);
    }

    /// Unregister a proxy's session (if it is still this one).
    pub fn forget_session(&self, s: &Arc<Session>) {
        let mut all = self.lock();
        if all.get(&s.id).is_some_and(|x| Arc::ptr_eq(x, s)) {
            all.remove(&s.id);
        }
    }

    /// Stop every session and proxy.
    pub async fn close_all(&self) {
        let all: Vec<Arc<Session>> = std::mem::take(&mut *self.lock()).into_values().collect();
        for s in all {
            s.stop(CloseHow::Fin).await;
        }
        self.proxies.lock().await.close_all(self).await;
    }
}

/// `host:port` (a name is resolved, the first address wins).
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}` is not an address (host:port): {e}"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// The whole API.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(native::routes())
        .merge(toxiproxy::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/serve.md") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint; see docs/serve.md",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Bind and serve until [`Server::stop`] (or `shutdown` is cancelled).
    pub async fn start(
        opts: ServeOptions,
        shutdown: CancellationToken,
    ) -> Result<Server, ServeError> {
        if !opts.listen.ip().is_loopback() && !opts.allow_remote {
            return Err(ServeError::NotLoopback(opts.listen));
        }
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|err| ServeError::Bind {
                addr: opts.listen,
                err,
            })?;
        let addr = listener.local_addr().map_err(|err| ServeError::Bind {
            addr: opts.listen,
            err,
        })?;
        let state = Arc::new(AppState::new(opts.allow_remote));
        let app = router(state.clone());
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            let st = state.clone();
            let graceful = async move {
                token.cancelled().await;
                // Sessions first: their streams and waits end, then the
                // server drains.
                st.close_all().await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .await;
            state.close_all().await;
        });
        Ok(Server {
            addr,
            shutdown,
            task,
        })
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every session and proxy and stop listening.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Wait until the server has stopped (after `shutdown` was cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// One line to stderr; a closed stderr is not a reason to panic.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// `flatline serve`: run until `interrupt` (Ctrl-C, SIGTERM); the exit status.
pub async fn run_cli(opts: ServeOptions, interrupt: CancellationToken) -> i32 {
    if !opts.listen.ip().is_loopback() {
        if opts.allow_remote {
            say!(
                "warning: listening on {}: anyone who reaches this port can make flatline open relays to any address (an open proxy)",
                opts.listen
            );
        } else {
            say!("error: {}", ServeError::NotLoopback(opts.listen));
            return 2;
        }
    }
    let server = match Server::start(opts, interrupt).await {
        Ok(s) => s,
        Err(e) => {
            say!("error: {e}");
            return 3;
        }
    };
    say!(
        "flatline serve: control API on http://{} (native API and Toxiproxy's; Ctrl-C to stop)",
        server.addr()
    );
    server.wait().await;
    say!("flatline serve: every session closed, stopped");
    0
}
