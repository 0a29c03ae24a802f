//! The relay: listener, handshake pass-through and the connections.
//!
//! [`Relay::start`] binds the listener and returns at once; every accepted
//! client connection gets a number (#1, #2… in accept order) and a task
//! ([`conn`]) that reads the upgrade request head, connects upstream,
//! forwards the rewritten head, and then relays bytes both ways unchanged.
//! The [`Board`] is how the timeline controller reaches connections: it puts
//! fault stages on pipes, sends instant actions, and sets the listener's
//! refusal mode. Everything that happens goes to the [`EventLog`].
//!
//! Layers: `listener` (accept, refuse, request head, upstream connect),
//! [`conn`] (one task per connection driving both legs), [`pipe`] (one
//! direction's logic, without I/O), [`transport`] (what a leg must offer:
//! the seam where TLS plugs in). The relay offers mechanisms (hold,
//! release, FIN, RST, inject at a frame boundary, stop listening, answer a
//! handshake); which fault uses them is decided in `faults`.

pub mod conn;
pub mod handshake;
mod inbox;
mod listener;
pub mod mark;
pub mod nofile;
pub mod pipe;
pub mod transport;
mod wake;

use crate::events::{Direction, EventKind, EventLog};
use crate::faults::{Fault, Refusal};
use crate::scenario::{ConnWhich, Connections};
use crate::tls::{self, ServerTls, UpstreamTrust};
use conn::ConnCmd;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Errors starting the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The upstream URL is not `ws://host:port/path` (or `wss://`).
    #[error("invalid upstream URL `{url}`: {why}")]
    BadUpstream {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {err}")]
    Bind {
        /// Address.
        addr: String,
        /// OS error.
        err: std::io::Error,
    },
    /// TLS settings could not be built (certificate, key, roots).
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// A `ws://` or `wss://` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host as written.
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query (default `/`).
    pub path: String,
    /// `wss://`: TLS toward the server, SNI from `host`.
    pub tls: bool,
}

impl Upstream {
    /// Parse `ws://host:port/path` or `wss://host:port/path`.
    pub fn parse(url: &str) -> Result<Upstream, RelayError> {
        let bad = |why: &str| RelayError::BadUpstream {
            url: url.to_string(),
            why: why.to_string(),
        };
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let tls = match u.scheme() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            s => return Err(bad(&format!("scheme `{s}`, expected ws:// or wss://"))),
        };
        let host = u.host_str().ok_or_else(|| bad("no host"))?.to_string();
        if tls {
            tls::server_name(&host).map_err(|e| bad(&e))?;
        }
        let port = u
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Upstream {
            host,
            port,
            path,
            tls,
        })
    }

    /// `host:port` for the `Host` header and connecting.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where the relay makes its sockets when not in this process's network
/// namespace (`--netns`: the listener inside the relay's namespace, upstream
/// connections wherever the server is).
pub trait Sockets: Send + Sync + std::fmt::Debug {
    /// Bind the listening socket (non-blocking).
    fn listen(&self, addr: SocketAddr) -> std::io::Result<std::net::TcpListener>;
    /// Connect to the upstream `authority` for connection `conn`.
    fn connect(
        &self,
        conn: u32,
        authority: &str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<tokio::net::TcpStream>> + Send>,
    >;
    /// Where connection `conn`'s stream toward `dir` is, for an observer of
    /// the link (none by default).
    fn stream_mark(&self, _conn: u32, _dir: Direction) -> Option<Arc<mark::StreamMark>> {
        None
    }
}

/// Bind the listener where `cfg` says.
pub(crate) async fn bind(cfg: &RelayConfig, addr: SocketAddr) -> std::io::Result<TcpListener> {
    match &cfg.sockets {
        None => TcpListener::bind(addr).await,
        Some(s) => TcpListener::from_std(s.listen(addr)?),
    }
}

/// Settings of a relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where sockets are made (default: this process's network namespace).
    pub sockets: Option<Arc<dyn Sockets>>,
    /// Where to listen (`127.0.0.1:0` = any free port).
    pub listen: SocketAddr,
    /// Where to connect.
    pub upstream: Upstream,
    /// Keep `Sec-WebSocket-Extensions` (default: strip).
    pub keep_extensions: bool,
    /// Seed for the per-pipe RNGs.
    pub seed: u64,
    /// Relay a connection whose first bytes are not a WebSocket upgrade
    /// request as raw TCP (byte-level faults only) instead of answering 400.
    pub raw_fallback: bool,
    /// Serve `wss://` to clients with this certificate (`None`: `ws://`).
    pub tls: Option<Arc<ServerTls>>,
    /// How a `wss://` upstream's certificate is checked.
    pub upstream_trust: UpstreamTrust,
}

impl RelayConfig {
    /// Listen on 127.0.0.1, any port, toward `upstream`.
    pub fn new(upstream: &str) -> Result<RelayConfig, RelayError> {
        Ok(RelayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: Upstream::parse(upstream)?,
            keep_extensions: false,
            seed: 0,
            raw_fallback: false,
            tls: None,
            upstream_trust: UpstreamTrust::System,
            sockets: None,
        })
    }
}

struct ConnEntry {
    tx: inbox::Sender<Box<ConnCmd>>,
    /// The connection number is open (handshake not necessarily done).
    live: bool,
}

struct ActiveFault {
    name: Arc<str>,
    fault: Arc<dyn Fault>,
    which: Connections,
    conns: Vec<u32>,
}

#[derive(Default)]
struct BoardInner {
    /// The relay is stopping: connections get no command channel.
    stopped: bool,
    next_conn: u32,
    conns: BTreeMap<u32, ConnEntry>,
    active: Vec<ActiveFault>,
}

/// The controller's handle on the relay: connections, active faults and the
/// listener's refusal mode.
pub struct Board {
    log: EventLog,
    inner: Mutex<BoardInner>,
    changed: Notify,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoardInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refusal in force (the first active `refuse` fault), with its name.
    pub fn refusal(&self) -> Option<(Arc<str>, Refusal)> {
        let inner = self.lock();
        inner
            .active
            .iter()
            .find_map(|f| f.fault.refusal().map(|r| (f.name.clone(), r)))
    }

    /// Connection numbers currently live.
    pub fn live_conns(&self) -> Vec<u32> {
        self.lock()
            .conns
            .iter()
            .filter(|(_, e)| e.live)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Start a fault now on the connections `which` selects. Instant faults
    /// act once and are logged as starting and ending at once. Returns the
    /// time of the run it took effect at: one clock reading, taken when the
    /// connections are known, stamps its start and is when its stages and
    /// actions are sent to them.
    pub fn start_fault(
        &self,
        name: &str,
        fault: Arc<dyn Fault>,
        which: &Connections,
        instant: bool,
    ) -> Duration {
        let name: Arc<str> = Arc::from(name);
        let mut inner = self.lock();
        let at = Instant::now();
        let targets: Vec<u32> = inner
            .conns
            .iter()
            .filter(|(n, e)| {
                // A refusal acts on new attempts only: open connections are
                // untouched, so it lists none.
                e.live
                    && !fault.new_attempts_only()
                    && match which {
                        Connections::Which(ConnWhich::All | ConnWhich::Open) => true,
                        Connections::Which(ConnWhich::New) => false,
                        Connections::List(l) => l.contains(n),
                    }
            })
            .map(|(n, _)| *n)
            .collect();
        // Logged before the connections act, so what they do follows it.
        self.log.emit_at(
            None,
            EventKind::FaultStart {
                fault: name.to_string(),
                conns: targets.clone(),
            },
            at,
        );
        if instant {
            self.log.emit_at(
                None,
                EventKind::FaultEnd {
                    fault: name.to_string(),
                    conns: targets.clone(),
                },
                at,
            );
        }
        for n in &targets {
            let tx = &inner.conns[n].tx;
            for d in Direction::BOTH {
                if let Some(stage) = fault.stage(d) {
                    tx.send(Box::new(ConnCmd::AddStage {
                        fault: name.clone(),
                        dir: d,
                        stage,
                    }));
                }
            }
            for action in fault.actions() {
                tx.send(Box::new(ConnCmd::Act {
                    fault: name.clone(),
                    action,
                }));
            }
        }
        if !instant {
            inner.active.push(ActiveFault {
                name,
                fault,
                which: which.clone(),
                conns: targets,
            });
        }
        drop(inner);
        self.changed.notify_waiters();
        at.saturating_duration_since(self.log.start())
    }

    /// End an active fault. Returns the time of the run it ended at (as
    /// [`Board::start_fault`]), or now if it was not active.
    pub fn stop_fault(&self, name: &str) -> Duration {
        let mut inner = self.lock();
        let at = Instant::now();
        let Some(i) = inner.active.iter().position(|f| &*f.name == name) else {
            return at.saturating_duration_since(self.log.start());
        };
        let f = inner.active.remove(i);
        // Logged first: what the connections then release or reset follows it.
        self.log.emit_at(
            None,
            EventKind::FaultEnd {
                fault: f.name.to_string(),
                conns: f.conns.clone(),
            },
            at,
        );
        for n in &f.conns {
            if let Some(e) = inner.conns.get(n) {
                e.tx.send(Box::new(ConnCmd::RemoveFault {
                    fault: f.name.clone(),
                }));
            }
        }
        drop(inner);
        self.changed.notify_waiters();
        at.saturating_duration_since(self.log.start())
    }

    /// Number a new connection and collect the stages of active faults that
    /// cover it.
    fn register(
        &self,
        tx: inbox::Sender<Box<ConnCmd>>,
    ) -> (u32, conn::InitialStages, Vec<Arc<str>>) {
        let mut inner = self.lock();
        inner.next_conn += 1;
        let id = inner.next_conn;
        if !inner.stopped {
            // Stopping: `tx` is dropped here, so the connection's channel is
            // closed from the start and it shuts down at once.
            inner.conns.insert(id, ConnEntry { tx, live: true });
        }
        let mut stages = Vec::new();
        let mut joined = Vec::new();
        for f in inner.active.iter_mut() {
            let covers = match &f.which {
                Connections::Which(ConnWhich::All | ConnWhich::New) => true,
                Connections::Which(ConnWhich::Open) => false,
                Connections::List(l) => l.contains(&id),
            };
            if !covers || f.fault.new_attempts_only() {
                continue;
            }
            f.conns.push(id);
            joined.push(f.name.clone());
            for d in Direction::BOTH {
                if let Some(s) = f.fault.stage(d) {
                    stages.push((f.name.clone(), d, s));
                }
            }
        }
        drop(inner);
        (id, stages, joined)
    }

    /// Stop: every connection's command channel closes, which is how a
    /// running connection learns to shut down (a closed channel costs its
    /// loop nothing per chunk; polling a cancellation token took two locks
    /// per wake-up).
    fn shutdown(&self) {
        let mut inner = self.lock();
        inner.stopped = true;
        let conns = std::mem::take(&mut inner.conns);
        drop(inner);
        drop(conns);
    }

    fn unregister(&self, id: u32) {
        let mut inner = self.lock();
        if let Some(e) = inner.conns.get_mut(&id) {
            e.live = false;
        }
        inner.conns.remove(&id);
    }
}

/// A relay's settings plus what was built from them once.
struct Ctx {
    cfg: RelayConfig,
    /// rustls settings toward a `wss://` upstream.
    upstream_tls: Option<tokio_rustls::TlsConnector>,
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    upstream: Upstream,
    tls: bool,
    log: EventLog,
    board: Arc<Board>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Relay {
    /// Bind and start accepting. The log's clock is the run's clock.
    pub async fn start(cfg: RelayConfig, log: EventLog) -> Result<Relay, RelayError> {
        let upstream_tls = if cfg.upstream.tls {
            Some(tokio_rustls::TlsConnector::from(tls::client_config(
                &cfg.upstream_trust,
            )?))
        } else {
            None
        };
        let listener = bind(&cfg, cfg.listen)
            .await
            .map_err(|err| RelayError::Bind {
                addr: cfg.listen.to_string(),
                err,
            })?;
        let addr = listener.local_addr().map_err(|err| RelayError::Bind {
            addr: cfg.listen.to_string(),
            err,
        })?;
        log.emit(
            None,
            EventKind::Listening {
                addr: addr.to_string(),
            },
        );
        let board = Arc::new(Board {
            log: log.clone(),
            inner: Mutex::new(BoardInner::default()),
            changed: Notify::new(),
        });
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let upstream = cfg.upstream.clone();
        let tls = cfg.tls.is_some();
        tracker.spawn(listener::accept_loop(
            listener,
            addr,
            Arc::new(Ctx { cfg, upstream_tls }),
            log.clone(),
            board.clone(),
            stop.clone(),
            tracker.clone(),
        ));
        Ok(Relay {
            addr,
            upstream,
            tls,
            log,
            board,
            stop,
            tracker,
        })
    }

    /// The address the relay listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR/PATH` (`wss://` with a listener certificate): the relay's
    /// address plus the upstream's path.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, self.upstream.path)
    }

    /// The event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The controller's handle.
    pub fn board(&self) -> &Arc<Board> {
        &self.board
    }

    /// Stop: close every connection and the listener, wait for every task.
    pub async fn stop(self) -> EventLog {
        self.stop.cancel();
        self.board.shutdown();
        self.tracker.close();
        self.tracker.wait().await;
        self.log
    }
}
