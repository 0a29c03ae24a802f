//! The relay: listener, handshake pass-through and the connections.
//!
//! [`Relay::start`] binds the listener and returns at once; every accepted
//! client connection gets a number (#1, #2… in accept order) and a task
//! ([`conn`]) that reads the upgrade request head, connects upstream,
//! forwards the rewritten head, and then relays bytes both ways unchanged.
//! The [`Board`] is how the timeline controller reaches connections: it puts
//! fault stages on pipes, sends instant actions, and sets the listener's
//! refusal mode. Everything that happens goes to the [`EventLog`].

pub mod conn;
pub mod handshake;
pub mod nofile;

use crate::events::{Direction, Ending, EventKind, EventLog};
use crate::faults::{Fault, Refusal};
use crate::scenario::{ConnWhich, Connections, RefuseHow};
use conn::{Conn, ConnCmd};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the relay waits for the upstream to accept TCP.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors starting the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The upstream URL is not `ws://host:port/path`.
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
}

/// A `ws://` upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host as written.
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query (default `/`).
    pub path: String,
}

impl Upstream {
    /// Parse `ws://host:port/path`.
    pub fn parse(url: &str) -> Result<Upstream, RelayError> {
        let bad = |why: &str| RelayError::BadUpstream {
            url: url.to_string(),
            why: why.to_string(),
        };
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match u.scheme() {
            "ws" | "http" => {}
            "wss" | "https" => return Err(bad("TLS upstreams are not supported; use ws://")),
            s => return Err(bad(&format!("scheme `{s}`, expected ws://"))),
        }
        let host = u.host_str().ok_or_else(|| bad("no host"))?.to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Upstream { host, port, path })
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

/// Settings of a relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where to listen (`127.0.0.1:0` = any free port).
    pub listen: SocketAddr,
    /// Where to connect.
    pub upstream: Upstream,
    /// Keep `Sec-WebSocket-Extensions` (default: strip).
    pub keep_extensions: bool,
    /// Seed for the per-pipe RNGs.
    pub seed: u64,
}

impl RelayConfig {
    /// Listen on 127.0.0.1, any port, toward `upstream`.
    pub fn new(upstream: &str) -> Result<RelayConfig, RelayError> {
        Ok(RelayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: Upstream::parse(upstream)?,
            keep_extensions: false,
            seed: 0,
        })
    }
}

struct ConnEntry {
    tx: mpsc::UnboundedSender<ConnCmd>,
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
    /// act once and are logged as starting and ending at once.
    pub fn start_fault(
        &self,
        name: &str,
        fault: Arc<dyn Fault>,
        which: &Connections,
        instant: bool,
    ) {
        let name: Arc<str> = Arc::from(name);
        let mut inner = self.lock();
        let targets: Vec<u32> = inner
            .conns
            .iter()
            .filter(|(n, e)| {
                // A refusal acts on new attempts only: open connections are
                // untouched, so it lists none.
                e.live
                    && fault.refusal().is_none()
                    && match which {
                        Connections::Which(ConnWhich::All | ConnWhich::Open) => true,
                        Connections::Which(ConnWhich::New) => false,
                        Connections::List(l) => l.contains(n),
                    }
            })
            .map(|(n, _)| *n)
            .collect();
        // Logged before the connections act, so what they do follows it.
        self.log.emit(
            None,
            EventKind::FaultStart {
                fault: name.to_string(),
                conns: targets.clone(),
            },
        );
        if instant {
            self.log.emit(
                None,
                EventKind::FaultEnd {
                    fault: name.to_string(),
                    conns: targets.clone(),
                },
            );
        }
        for n in &targets {
            let tx = &inner.conns[n].tx;
            for d in Direction::BOTH {
                if let Some(stage) = fault.stage(d) {
                    let _ = tx.send(ConnCmd::AddStage {
                        fault: name.clone(),
                        dir: d,
                        stage,
                    });
                }
            }
            for action in fault.actions() {
                let _ = tx.send(ConnCmd::Act {
                    fault: name.clone(),
                    action,
                });
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
    }

    /// End an active fault.
    pub fn stop_fault(&self, name: &str) {
        let mut inner = self.lock();
        let Some(i) = inner.active.iter().position(|f| &*f.name == name) else {
            return;
        };
        let f = inner.active.remove(i);
        // Logged first: what the connections then release or reset follows it.
        self.log.emit(
            None,
            EventKind::FaultEnd {
                fault: f.name.to_string(),
                conns: f.conns.clone(),
            },
        );
        for n in &f.conns {
            if let Some(e) = inner.conns.get(n) {
                let _ = e.tx.send(ConnCmd::RemoveFault {
                    fault: f.name.clone(),
                });
            }
        }
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Number a new connection and collect the stages of active faults that
    /// cover it.
    fn register(
        &self,
        tx: mpsc::UnboundedSender<ConnCmd>,
    ) -> (u32, conn::InitialStages, Vec<Arc<str>>) {
        let mut inner = self.lock();
        inner.next_conn += 1;
        let id = inner.next_conn;
        inner.conns.insert(id, ConnEntry { tx, live: true });
        let mut stages = Vec::new();
        let mut joined = Vec::new();
        for f in inner.active.iter_mut() {
            let covers = match &f.which {
                Connections::Which(ConnWhich::All | ConnWhich::New) => true,
                Connections::Which(ConnWhich::Open) => false,
                Connections::List(l) => l.contains(&id),
            };
            if !covers || f.fault.refusal().is_some() {
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

    fn unregister(&self, id: u32) {
        let mut inner = self.lock();
        if let Some(e) = inner.conns.get_mut(&id) {
            e.live = false;
        }
        inner.conns.remove(&id);
    }
}

/// A running relay.
pub struct Relay {
    addr: SocketAddr,
    upstream: Upstream,
    log: EventLog,
    board: Arc<Board>,
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Relay {
    /// Bind and start accepting. The log's clock is the run's clock.
    pub async fn start(cfg: RelayConfig, log: EventLog) -> Result<Relay, RelayError> {
        let listener = TcpListener::bind(cfg.listen)
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
        tracker.spawn(accept_loop(
            listener,
            addr,
            Arc::new(cfg),
            log.clone(),
            board.clone(),
            stop.clone(),
            tracker.clone(),
        ));
        Ok(Relay {
            addr,
            upstream,
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

    /// `ws://ADDR/PATH`: the relay's address plus the upstream's path.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.upstream.path)
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
        self.tracker.close();
        self.tracker.wait().await;
        self.log
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    cfg: Arc<RelayConfig>,
    log: EventLog,
    board: Arc<Board>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let mut listener = Some(listener);
    loop {
        // `refuse: refused` closes the listening socket until it ends.
        let refusal = board.refusal();
        match (&refusal, &listener) {
            (Some((name, r)), Some(_)) if r.how == RefuseHow::Refused => {
                listener = None;
                log.emit(
                    None,
                    EventKind::StoppedListening {
                        fault: name.to_string(),
                    },
                );
            }
            (r, None) if !r.as_ref().is_some_and(|(_, r)| r.how == RefuseHow::Refused) => {
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        listener = Some(l);
                        log.emit(
                            None,
                            EventKind::Listening {
                                addr: addr.to_string(),
                            },
                        );
                    }
                    Err(e) => {
                        log.emit(
                            None,
                            EventKind::Note {
                                text: format!("cannot listen again on {addr}: {e}"),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
        let changed = board.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // Re-check after arming the notification to avoid a lost wake-up.
        let want_closed = board
            .refusal()
            .is_some_and(|(_, r)| r.how == RefuseHow::Refused);
        if want_closed == listener.is_some() {
            continue;
        }
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = &mut changed => continue,
            r = accept => match r {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    tracker.spawn(handle(sock, peer, cfg.clone(), log.clone(), board.clone(), stop.clone()));
                }
                Err(e) => {
                    let why = match e.raw_os_error() {
                        Some(libc::EMFILE) | Some(libc::ENFILE) => format!(
                            "accept failed: {e}: out of file descriptors; {}",
                            nofile::raise().ok().and_then(|l| l.warning(u64::MAX)).unwrap_or_default()
                        ),
                        _ => format!("accept failed: {e}"),
                    };
                    log.emit(None, EventKind::Note { text: why });
                    // Out of file descriptors and the like: back off a little.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
    }
}

async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    cfg: Arc<RelayConfig>,
    log: EventLog,
    board: Arc<Board>,
    stop: CancellationToken,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let refusal = board.refusal();
    let (id, stages, joined) = board.register(tx);
    // Its frames are counted under a lock of its own.
    let log = log.for_conn(id);
    log.emit(
        Some(id),
        EventKind::Accept {
            peer: peer.to_string(),
        },
    );
    for name in joined {
        log.emit(
            Some(id),
            EventKind::FaultJoin {
                fault: name.to_string(),
            },
        );
    }
    if let Some(how) = setup(client, id, &cfg, &log, refusal, stages, rx, stop).await {
        log.emit(Some(id), EventKind::Closed { how });
    }
    board.unregister(id);
}

/// Everything before the pipes: refusal, request head, upstream connect.
/// Returns how the connection ended if it ended here, `None` if the pipes ran
/// (they log their own `Closed`).
#[allow(clippy::too_many_arguments)]
async fn setup(
    mut client: TcpStream,
    id: u32,
    cfg: &RelayConfig,
    log: &EventLog,
    refusal: Option<(Arc<str>, Refusal)>,
    stages: conn::InitialStages,
    rx: mpsc::UnboundedReceiver<ConnCmd>,
    stop: CancellationToken,
) -> Option<Ending> {
    let pre = async {
        if let Some((name, r)) = refusal {
            return Err(refuse(&mut client, id, log, &name, &r).await);
        }
        pre_pipes(&mut client, id, cfg, log).await
    };
    let (req, server) = tokio::select! {
        _ = stop.cancelled() => return Some(Ending::Shutdown),
        r = pre => match r {
            Ok(v) => v,
            Err(how) => return Some(how),
        },
    };
    conn::run(
        Conn {
            id,
            log: log.clone(),
            client,
            server,
            initial: stages,
            head: req.head,
            rest: req.rest,
            seed: cfg.seed,
        },
        rx,
        stop,
    )
    .await;
    None
}

/// Read the request head and connect upstream; `Err` is how it ended.
async fn pre_pipes(
    client: &mut TcpStream,
    id: u32,
    cfg: &RelayConfig,
    log: &EventLog,
) -> Result<(handshake::Request, TcpStream), Ending> {
    let req = match handshake::read_request(client, &cfg.upstream.authority(), cfg.keep_extensions)
        .await
    {
        Ok(r) => r,
        Err(handshake::HeadError::Eof(n)) => {
            log.emit(
                Some(id),
                EventKind::BadRequest {
                    reason: format!(
                        "client closed after {n} bytes, before the request head was complete"
                    ),
                },
            );
            return Err(Ending::Failed);
        }
        Err(e) => {
            log.emit(
                Some(id),
                EventKind::BadRequest {
                    reason: e.to_string(),
                },
            );
            let body = format!("flatline: {e}\n");
            let _ = client
                .write_all(&handshake::http_response(400, "Bad Request", &[], &body))
                .await;
            let _ = client.shutdown().await;
            return Err(Ending::Failed);
        }
    };
    log.emit(
        Some(id),
        EventKind::Request {
            path: req.path.clone(),
            extensions_removed: req.extensions_removed,
        },
    );
    let authority = cfg.upstream.authority();
    let server = match tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        TcpStream::connect(&authority),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(upstream_failed(client, id, log, &authority, &e.to_string()).await)
        }
        Err(_) => {
            return Err(
                upstream_failed(client, id, log, &authority, "connect timed out after 5 s").await,
            )
        }
    };
    let _ = server.set_nodelay(true);
    log.emit(Some(id), EventKind::UpstreamConnected);
    Ok((req, server))
}

async fn upstream_failed(
    client: &mut TcpStream,
    id: u32,
    log: &EventLog,
    authority: &str,
    err: &str,
) -> Ending {
    log.emit(
        Some(id),
        EventKind::UpstreamFailed {
            error: format!("{authority}: {err}"),
        },
    );
    let body = format!("flatline: upstream {authority} unreachable: {err}\n");
    let _ = client
        .write_all(&handshake::http_response(502, "Bad Gateway", &[], &body))
        .await;
    let _ = client.shutdown().await;
    Ending::Failed
}

async fn refuse(
    client: &mut TcpStream,
    id: u32,
    log: &EventLog,
    name: &str,
    r: &Refusal,
) -> Ending {
    let how = match r.how {
        RefuseHow::Refused | RefuseHow::Reset => "reset",
        RefuseHow::Close => "close",
        RefuseHow::Stall => "stall",
        RefuseHow::Http => "http",
    };
    log.emit(
        Some(id),
        EventKind::Refused {
            fault: name.to_string(),
            how: if r.how == RefuseHow::Http {
                format!("http {}", r.status)
            } else {
                how.to_string()
            },
        },
    );
    match r.how {
        RefuseHow::Refused | RefuseHow::Reset => {
            let _ = socket2::SockRef::from(&*client).set_linger(Some(Duration::ZERO));
            Ending::Reset
        }
        RefuseHow::Close => {
            let _ = client.shutdown().await;
            Ending::Fin
        }
        RefuseHow::Stall => {
            // Accept and never answer: read and discard until the client gives up.
            let mut buf = [0u8; 1024];
            loop {
                match tokio::io::AsyncReadExt::read(client, &mut buf).await {
                    Ok(0) => {
                        log.emit(
                            Some(id),
                            EventKind::Fin {
                                from: crate::events::Side::Client,
                            },
                        );
                        return Ending::Fin;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        log.emit(
                            Some(id),
                            EventKind::Rst {
                                from: crate::events::Side::Client,
                            },
                        );
                        return Ending::Reset;
                    }
                }
            }
        }
        RefuseHow::Http => {
            // Read the request head (bounded) so the answer is a real response.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                handshake::read_request(client, "refused", true),
            )
            .await;
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let body = format!("flatline: refused by fault `{name}`\n");
            let bytes = handshake::http_response(
                r.status,
                handshake::reason_phrase(r.status),
                &headers,
                &body,
            );
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
            log.emit(
                Some(id),
                EventKind::Injected {
                    fault: name.to_string(),
                    to: crate::events::Side::Client,
                    what: format!("http {}", r.status),
                },
            );
            Ending::Fin
        }
    }
}
