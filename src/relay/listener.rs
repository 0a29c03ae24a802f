//! The listener: accepting clients (or refusing them as a fault says:
//! stop listening, RST, FIN, stall, or answer the handshake with an HTTP
//! status), reading each request head, connecting upstream, and handing
//! the connection to its task (`conn`).

use super::conn::{self, Conn};
use super::handshake;
use super::mark::StreamMark;
use super::transport::AnyTransport;
use super::{Board, Ctx, RelayConfig};
use crate::events::{Direction, Ending, EventKind, EventLog};
use crate::faults::Refusal;
use crate::tls::{self, AsyncStream};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the relay waits for the upstream to accept TCP.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    cfg: Arc<Ctx>,
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
            (Some((name, Refusal::StopListening)), Some(_)) => {
                listener = None;
                log.emit(
                    None,
                    EventKind::StoppedListening {
                        fault: name.to_string(),
                    },
                );
            }
            (r, None) if !matches!(r, Some((_, Refusal::StopListening))) => {
                match super::bind(&cfg.cfg, addr).await {
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
            .is_some_and(|(_, r)| r == Refusal::StopListening);
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
                    let conn = handle(sock, peer, cfg.clone(), log.clone(), board.clone(), stop.clone(), tracker.clone());
                    tracker.spawn(conn);
                }
                Err(e) => {
                    let why = match e.raw_os_error() {
                        Some(libc::EMFILE) | Some(libc::ENFILE) => format!(
                            "accept failed: {e}: out of file descriptors; {}",
                            super::nofile::raise().ok().and_then(|l| l.warning(u64::MAX)).unwrap_or_default()
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

/// A connection's first task: refusal, TLS, request head, upstream. The
/// relaying then runs as a task of its own, spawned here: a task's poll
/// function reserves the stack of every state its future can be in, and the
/// setup's (TLS, head buffers) came to 40 KiB, probed page by page on every
/// wake-up of the relaying loop while it was one future.
#[allow(clippy::too_many_arguments)]
async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    cfg: Arc<Ctx>,
    log: EventLog,
    board: Arc<Board>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    // Commands are boxed: a channel allocates its first block of 32 slots
    // up front, and 8-byte slots keep an idle connection small.
    let (tx, rx) = super::inbox::inbox();
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
    match setup(client, id, &cfg, &log, refusal, stages, stop).await {
        Ok(c) => {
            tracker.spawn(async move {
                conn::run(c, rx).await;
                board.unregister(id);
            });
        }
        Err(how) => {
            log.emit(Some(id), EventKind::Closed { how });
            board.unregister(id);
        }
    }
}

/// Everything before the pipes: refusal, TLS, request head, upstream
/// connect. Returns the connection ready to relay, or how it ended here
/// (the pipes log their own `Closed`).
async fn setup(
    client: TcpStream,
    id: u32,
    ctx: &Ctx,
    log: &EventLog,
    refusal: Option<(Arc<str>, Refusal)>,
    stages: conn::InitialStages,
    stop: CancellationToken,
) -> Result<Conn, Ending> {
    let pre = async {
        // A refusal acts on TCP, before any TLS; only an HTTP answer needs
        // the handshake first (the client must be able to read it).
        let answer = matches!(refusal, Some((_, Refusal::Answer { .. })));
        if let (Some((name, r)), false) = (&refusal, answer) {
            return Err(refuse(&mut AsyncStream::Tcp(client), id, log, name, r).await);
        }
        let mut client = match tls::handshake::accept_client(client, ctx.cfg.tls.as_deref()).await {
            Ok(c) => c,
            Err(reason) => {
                log.emit(Some(id), EventKind::BadRequest { reason });
                return Err(Ending::Failed);
            }
        };
        if let Some((name, r)) = &refusal {
            return Err(refuse(&mut client, id, log, name, r).await);
        }
        let (req, server, raw) = pre_pipes(&mut client, id, ctx, log).await?;
        Ok((client, req, server, raw))
    };
    let (client, req, server, raw) = tokio::select! {
        _ = stop.cancelled() => return Err(Ending::Shutdown),
        r = pre => r?,
    };
    Ok(Conn {
        id,
        log: log.clone(),
        client: client.into_transport(),
        server,
        initial: stages,
        head: req.head,
        rest: req.rest,
        seed: ctx.cfg.seed,
        raw_head: req.raw_len,
        marks: if raw {
            [None, None]
        } else {
            marks(&ctx.cfg, id)
        },
        raw,
    })
}

/// A client silent this long is relayed as raw TCP (with `raw_fallback`):
/// the server speaks first (MySQL, SMTP…).
const RAW_SILENCE: Duration = Duration::from_millis(250);

/// Read the request head (or, with `raw_fallback`, whatever comes first);
/// whether the connection is raw TCP.
async fn read_head(
    client: &mut AsyncStream,
    id: u32,
    cfg: &RelayConfig,
    log: &EventLog,
) -> Result<(handshake::Request, bool), handshake::HeadError> {
    let host = cfg.upstream.authority();
    if !cfg.raw_fallback {
        return handshake::read_request(client, &host, cfg.keep_extensions)
            .await
            .map(|r| (r, false));
    }
    match handshake::read_first(client, &host, cfg.keep_extensions, RAW_SILENCE).await? {
        handshake::First::Upgrade(r) => Ok((r, false)),
        handshake::First::Raw(bytes, why) => {
            log.emit(
                Some(id),
                EventKind::Note {
                    text: format!(
                        "not a WebSocket upgrade ({why}): relayed as raw TCP, byte-level faults only"
                    ),
                },
            );
            let r = handshake::Request {
                path: String::new(),
                head: bytes,
                rest: Vec::new(),
                raw_len: 0,
                extensions_removed: false,
            };
            Ok((r, true))
        }
    }
}

/// Read the request head and connect upstream (and whether the connection
/// is raw TCP); `Err` is how it ended.
async fn pre_pipes(
    client: &mut AsyncStream,
    id: u32,
    ctx: &Ctx,
    log: &EventLog,
) -> Result<(handshake::Request, AnyTransport, bool), Ending> {
    let cfg = &ctx.cfg;
    let (req, raw) = match read_head(client, id, cfg, log).await {
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
    if !raw {
        log.emit(
            Some(id),
            EventKind::Request {
                path: req.path.clone(),
                extensions_removed: req.extensions_removed,
            },
        );
    }
    let authority = cfg.upstream.authority();
    let connect = match &cfg.sockets {
        None => Box::pin(TcpStream::connect(authority.clone())),
        Some(s) => s.connect(id, &authority),
    };
    let server = match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(upstream_failed(client, id, log, &authority, &e.to_string(), raw).await)
        }
        Err(_) => {
            return Err(upstream_failed(
                client,
                id,
                log,
                &authority,
                "connect timed out after 5 s",
                raw,
            )
            .await)
        }
    };
    let _ = server.set_nodelay(true);
    log.emit(Some(id), EventKind::UpstreamConnected);
    let Some(connector) = &ctx.upstream_tls else {
        return Ok((req, AnyTransport::Tcp(server), raw));
    };
    match tls::handshake::connect_upstream(connector, &cfg.upstream.host, server).await {
        Ok(t) => Ok((req, AnyTransport::Other(Box::new(t)), raw)),
        Err(e) => Err(upstream_failed(client, id, log, &authority, &e, raw).await),
    }
}

async fn upstream_failed(
    client: &mut AsyncStream,
    id: u32,
    log: &EventLog,
    authority: &str,
    err: &str,
    raw: bool,
) -> Ending {
    log.emit(
        Some(id),
        EventKind::UpstreamFailed {
            error: format!("{authority}: {err}"),
        },
    );
    if !raw {
        // A raw TCP client would not understand an HTTP answer: it only sees the close.
        let body = format!("flatline: upstream {authority} unreachable: {err}\n");
        let _ = client
            .write_all(&handshake::http_response(502, "Bad Gateway", &[], &body))
            .await;
    }
    let _ = client.shutdown().await;
    Ending::Failed
}

async fn refuse(
    client: &mut AsyncStream,
    id: u32,
    log: &EventLog,
    name: &str,
    r: &Refusal,
) -> Ending {
    let how = match r {
        Refusal::StopListening | Refusal::Reset => "reset".to_string(),
        Refusal::Close => "close".to_string(),
        Refusal::Stall => "stall".to_string(),
        Refusal::Answer { status, .. } => format!("http {status}"),
    };
    log.emit(
        Some(id),
        EventKind::Refused {
            fault: name.to_string(),
            how,
        },
    );
    match r {
        Refusal::StopListening | Refusal::Reset => {
            let _ = socket2::SockRef::from(client.tcp()).set_linger(Some(Duration::ZERO));
            Ending::Reset
        }
        Refusal::Close => {
            let _ = client.shutdown().await;
            Ending::Fin
        }
        Refusal::Stall => {
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
        Refusal::Answer { status, headers } => {
            // Read the request head (bounded) so the answer is a real response.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                handshake::read_request(client, "refused", true),
            )
            .await;
            let body = format!("flatline: refused by fault `{name}`\n");
            let bytes = handshake::http_response(
                *status,
                handshake::reason_phrase(*status),
                headers,
                &body,
            );
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
            log.emit(
                Some(id),
                EventKind::Injected {
                    fault: name.to_string(),
                    to: crate::events::Side::Client,
                    what: format!("http {status}"),
                },
            );
            Ending::Fin
        }
    }
}

/// Stream positions to share for connection `id`, where an observer of the
/// link can read its bytes (plain TCP legs only: TLS bytes are not frames).
fn marks(cfg: &super::RelayConfig, id: u32) -> [Option<Arc<StreamMark>>; 2] {
    let mark = |dir, plain: bool| {
        cfg.sockets
            .as_ref()
            .filter(|_| plain)
            .and_then(|s| s.stream_mark(id, dir))
    };
    [
        mark(Direction::ToServer, cfg.tls.is_none()),
        mark(Direction::ToClient, !cfg.upstream.tls),
    ]
}
