//! The demo server: a small, well-behaved WebSocket server that flatline runs
//! in-process when a scenario names no upstream.
//!
//! It echoes text and binary messages, answers the usual application-level
//! heartbeats (`ping` → `pong`, `{"type":"ping"}` → `{"type":"pong"}`) and
//! subscriptions (`{"type":"subscribe",...}` → `{"type":"subscribed",...}`),
//! lets tungstenite answer ping frames and close frames, and can send its own
//! pings (`--ping-every`). Every connection task is tracked; stopping the
//! server closes each open connection with 1001 and waits for its task.

use crate::scenario::Dur;
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a peer may take to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for its close frame to be written on shutdown.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// Parses a scenario-style duration (`250ms`, `1.5s`, `2m`) for the CLI.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<Dur>().map(|d| d.0)
}

/// Options of the demo server (`flatline demo-server`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DemoServerOpts {
    /// Send a ping frame to every client this often (default: never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ping_every: Option<Duration>,
    /// Accept upgrades only on this path (default: any path); others get 404.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Serve wss:// with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve wss:// with these rustls settings (in-process use; wins over
    /// --tls-cert).
    #[arg(skip)]
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl DemoServerOpts {
    /// The TLS acceptor, if the server speaks wss://.
    fn acceptor(&self) -> io::Result<Option<tokio_rustls::TlsAcceptor>> {
        if let Some(cfg) = &self.tls {
            return Ok(Some(cfg.clone().into()));
        }
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let tls = crate::tls::ServerTls::load(&crate::tls::ListenCert::Files {
            cert: cert.clone(),
            key: key.clone(),
        })
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Some(tls.config.clone().into()))
    }
}

/// A running demo server started by [`spawn_demo_server`].
#[derive(Debug)]
pub struct DemoServerHandle {
    shutdown: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

impl DemoServerHandle {
    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the server: closes every connection (code 1001), waits for every
    /// task to end, and returns the accept loop's result.
    pub async fn stop(self) -> io::Result<()> {
        self.shutdown.cancel();
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(format!("demo server task failed: {e}"))),
        }
    }
}

/// Binds `127.0.0.1:0` and serves the demo server there in a task.
pub async fn spawn_demo_server(opts: DemoServerOpts) -> io::Result<(SocketAddr, DemoServerHandle)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, opts, shutdown.clone()));
    Ok((addr, DemoServerHandle { shutdown, task }))
}

/// Accepts connections on `listener` until `shutdown` is cancelled, one
/// tracked task per connection. Returns once every connection task ended.
pub async fn serve(
    listener: TcpListener,
    opts: DemoServerOpts,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tls = opts.acceptor()?;
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let opts = opts.clone();
                let shutdown = shutdown.clone();
                let tls = tls.clone();
                tracker.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    // A bad peer only ends its own connection.
                    let Some(acceptor) = tls else {
                        let _ = serve_connection(stream, opts, shutdown).await;
                        return;
                    };
                    let accepted = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
                    };
                    if let Ok(Ok(tls_stream)) = accepted {
                        let _ = serve_connection(tls_stream, opts, shutdown).await;
                    }
                });
            }
            // Per-connection accept errors (ECONNABORTED, EMFILE…) must not
            // end the server; back off a little so EMFILE does not spin.
            Err(_) => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Why a connection ended (only used to structure the code; not reported).
type ConnResult = Result<(), tokio_tungstenite::tungstenite::Error>;

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    opts: DemoServerOpts,
    shutdown: CancellationToken,
) -> ConnResult {
    let wanted_path = opts.path.clone();
    // The error type is tungstenite's callback contract.
    #[allow(clippy::result_large_err)]
    let check_path = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match &wanted_path {
            Some(p) if req.uri().path() != p => {
                let mut err = ErrorResponse::new(Some(format!("no WebSocket at {}\n", req.uri())));
                *err.status_mut() = StatusCode::NOT_FOUND;
                Err(err)
            }
            _ => Ok(resp),
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, check_path);
    let mut ws = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake) => match r {
            Ok(ws) => ws?,
            Err(_elapsed) => return Ok(()),
        },
    };

    let mut pinger = opts.ping_every.map(|every| {
        let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        iv
    });

    loop {
        let tick = async {
            match pinger.as_mut() {
                Some(iv) => {
                    iv.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {
                let frame = CloseFrame {
                    code: CloseCode::Away,
                    reason: "server shutting down".into(),
                };
                let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, ws.close(Some(frame))).await;
                return Ok(());
            }
            _ = tick => {
                ws.send(Message::Ping(b"flatline-demo".to_vec())).await?;
            }
            msg = ws.next() => {
                let Some(msg) = msg else { return Ok(()) };
                if let Some(reply) = reply_to(msg?) {
                    ws.send(reply).await?;
                }
            }
        }
    }
}

/// The demo server's answer to one message from a client, if any.
pub fn reply_to(msg: Message) -> Option<Message> {
    match msg {
        Message::Text(text) => Some(Message::Text(reply_to_text(text))),
        Message::Binary(data) => Some(Message::Binary(data)),
        // tungstenite queues the pong and the close reply itself.
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => None,
    }
}

fn reply_to_text(text: String) -> String {
    if text == "ping" {
        return "pong".to_owned();
    }
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(&text) {
        match obj.get("type").and_then(|t| t.as_str()) {
            Some("ping") => return r#"{"type":"pong"}"#.to_owned(),
            Some("subscribe") => {
                return match obj.get("channel") {
                    Some(channel) => format!(r#"{{"type":"subscribed","channel":{channel}}}"#),
                    None => r#"{"type":"subscribed"}"#.to_owned(),
                };
            }
            _ => {}
        }
    }
    text
}
