//! The demo client: the careful heartbeat + reconnect client that
//! `flatline run --demo` runs in-process, and the broken variants of it that
//! the scenario library exists to catch.
//!
//! The algorithm follows the careful browser pattern described in
//! `docs/architecture.md` ("How real clients behave"):
//!
//! 1. Connect, each attempt with its own handshake timeout
//!    (`--connect-timeout`): an attempt that gets no answer must not hang.
//! 2. On open, send the subscription (`--subscribe`), on every connection.
//! 3. Every `--heartbeat`, send the heartbeat (text `ping`, or a ping frame).
//!    Any message from the server (pong, data, ping) proves the link alive.
//!    When nothing arrived for `--timeout`, the link is declared dead: a close
//!    frame with code 4000 is sent without waiting for the closing handshake,
//!    the socket is dropped (FIN), and the client reconnects.
//! 4. A text message from the server equal to `--reconnect-message`
//!    (`{"type":"reconnect"}`: a drain or deploy announced at the app level)
//!    is obeyed: the client closes with 1000 and reconnects after the
//!    shortest backoff (`--ignore-reconnect` is the broken variant).
//! 5. Any other end of a connection — a server close frame (whatever its
//!    code, 1000 included: servers restart with 1000 too), FIN without close
//!    frame, RST, read error — leads to a reconnect. Only the client's own
//!    intentional close (`--close-after`) ends it for good.
//! 6. Reconnects wait an exponential backoff with seeded jitter between
//!    `--backoff-min` and `--backoff-max`; failed attempts (refused, reset,
//!    HTTP error) back off further, and an HTTP `Retry-After` is honoured
//!    (capped at `--backoff-max`). A connection that stayed open for
//!    `--timeout` resets the backoff. The first retry after a healthy
//!    connection is lost waits a full-jitter delay (uniform between 0 and
//!    `--backoff-min`): when a server drops thousands of clients at once,
//!    their first retries are spread out instead of arriving together (a
//!    thundering herd). Later retries grow as `--backoff-min · 2^n` times a
//!    jitter factor in `[1, 1.5)`, so that the gaps never shrink.
//!
//! Every decision is logged with the time since the client started.

pub use super::backoff::Backoff;
pub use super::client_opts::{DemoClientOpts, HeartbeatKind};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// The subscription message sent after every open by default.
pub const DEFAULT_SUBSCRIBE: &str = r#"{"type":"subscribe","channel":"demo"}"#;

/// The app-level message with which a server asks the client to reconnect
/// now (a deploy or a drain), by default.
pub const DEFAULT_RECONNECT_MESSAGE: &str = r#"{"type":"reconnect"}"#;

/// The close code the client sends when it declares a link dead.
pub const HEARTBEAT_TIMEOUT_CODE: u16 = 4000;

/// How long the client waits for a close frame of its own to be written
/// before it abandons the socket.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// How long the client drains a connection the server closed, so that
/// tungstenite can write its close reply.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Why [`run_client`] could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither a URL argument nor `FLATLINE_URL`.
    #[error("no URL given: pass one or set `FLATLINE_URL`")]
    NoUrl,
    /// The TLS settings for a wss:// URL could not be built (`--ca`).
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The URL is not a ws:// URL tungstenite can use.
    #[error("invalid URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How [`run_client`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientExit {
    /// The client closed intentionally (`--close-after`) and did not reconnect.
    IntentionalClose,
    /// The shutdown token was cancelled.
    Shutdown,
    /// `--max-runtime` elapsed.
    MaxRuntime,
}

/// Timestamps and forwards decision lines.
struct Logger<F: FnMut(&str)> {
    start: Instant,
    sink: F,
}

impl<F: FnMut(&str)> Logger<F> {
    fn log(&mut self, msg: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs_f64();
        let line = format!("[{t:>8.3}s] demo-client: {}", msg.as_ref());
        (self.sink)(&line);
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How one open connection ended.
enum SessionEnd {
    /// Nothing from the server for `timeout`.
    HeartbeatTimeout,
    /// The server sent a close frame.
    ServerClose(Option<CloseFrame<'static>>),
    /// FIN without a close frame.
    Eof,
    /// A read or write error (RST…).
    Error(tungstenite::Error),
    /// `--close-after` elapsed.
    IntentionalClose,
    /// The server's app-level message asked for a reconnect.
    ReconnectAsked,
    /// Shutdown token or max runtime.
    Stop(ClientExit),
}

/// Why an attempt failed, and what it asks for.
struct AttemptFailure {
    reason: String,
    retry_after: Option<Duration>,
}

fn fmt_dur(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn describe_close(frame: &Option<CloseFrame<'_>>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("code {}", u16::from(f.code)),
        Some(f) => format!("code {} ({:?})", u16::from(f.code), f.reason),
        None => "no code".to_owned(),
    }
}

/// Runs the demo client until `shutdown` is cancelled, `--max-runtime`
/// elapses, or it closed intentionally (`--close-after`). Each decision is
/// passed to `log` as one timestamped line.
pub async fn run_client(
    opts: DemoClientOpts,
    shutdown: CancellationToken,
    log: impl FnMut(&str) + Send,
) -> Result<ClientExit, ClientError> {
    let url = match opts.url.clone() {
        Some(u) => u,
        None => std::env::var("FLATLINE_URL").map_err(|_| ClientError::NoUrl)?,
    };
    {
        use tungstenite::client::IntoClientRequest;
        if let Err(e) = url.as_str().into_client_request() {
            return Err(ClientError::BadUrl {
                url,
                reason: e.to_string(),
            });
        }
    }
    let tls = if url.starts_with("wss://") {
        let trust = match &opts.ca {
            Some(f) => crate::tls::UpstreamTrust::CaFile(f.clone()),
            None => crate::tls::UpstreamTrust::System,
        };
        Some(tokio_tungstenite::Connector::Rustls(
            crate::tls::client_config(&trust)?,
        ))
    } else {
        None
    };
    let mut client = Client {
        url,
        tls,
        backoff: if opts.no_jitter {
            Backoff::without_jitter(opts.backoff_min, opts.backoff_max)
        } else {
            Backoff::new(opts.backoff_min, opts.backoff_max, opts.seed)
        },
        stop_at: opts.max_runtime.map(|d| Instant::now() + d),
        opts,
        shutdown,
        logger: Logger {
            start: Instant::now(),
            sink: log,
        },
        first_open: None,
        closed_intentionally: false,
    };
    Ok(client.run().await)
}

struct Client<F: FnMut(&str)> {
    url: String,
    /// rustls settings for a wss:// URL.
    tls: Option<tokio_tungstenite::Connector>,
    opts: DemoClientOpts,
    shutdown: CancellationToken,
    stop_at: Option<Instant>,
    logger: Logger<F>,
    backoff: Backoff,
    first_open: Option<Instant>,
    closed_intentionally: bool,
}

impl<F: FnMut(&str)> Client<F> {
    /// Resolves when the client must stop, with the reason.
    async fn stopped(shutdown: &CancellationToken, stop_at: Option<Instant>) -> ClientExit {
        let runtime = async {
            match stop_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => ClientExit::Shutdown,
            _ = runtime => ClientExit::MaxRuntime,
        }
    }

    fn log(&mut self, msg: impl AsRef<str>) {
        self.logger.log(msg)
    }

    /// The delay before the next attempt after a failure or a lost connection.
    fn reconnect_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        if self.opts.no_backoff {
            return Duration::ZERO;
        }
        let delay = self.backoff.next_delay();
        match retry_after {
            Some(ra) => delay.max(ra.min(self.opts.backoff_max)),
            None => delay,
        }
    }

    /// The delay before the first attempt after an open connection ended:
    /// full jitter when no failure is counted, the backoff otherwise.
    fn lost_delay(&mut self) -> Duration {
        if self.opts.no_backoff {
            Duration::ZERO
        } else if self.backoff.failures() == 0 {
            self.backoff.first_retry()
        } else {
            self.backoff.next_delay()
        }
    }

    async fn run(&mut self) -> ClientExit {
        let mut attempt: u64 = 0;
        let mut opened: u64 = 0;
        let mut delay = Duration::ZERO;
        loop {
            if !delay.is_zero() {
                let stopped = Self::stopped(&self.shutdown, self.stop_at);
                tokio::select! {
                    exit = stopped => {
                        self.log(format!("stopping ({exit:?}) while waiting to reconnect"));
                        return exit;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            attempt += 1;
            self.log(format!("attempt {attempt}: connecting to {}", self.url));
            let connected = {
                let stopped = Self::stopped(&self.shutdown, self.stop_at);
                tokio::select! {
                    exit = stopped => Err(exit),
                    r = self.connect() => Ok(r),
                }
            };
            let mut ws = match connected {
                Err(exit) => {
                    self.log(format!("stopping ({exit:?}) during attempt {attempt}"));
                    return exit;
                }
                Ok(Err(failure)) => {
                    delay = self.reconnect_delay(failure.retry_after);
                    let ra = match failure.retry_after {
                        Some(ra) => format!(" (Retry-After {})", fmt_dur(ra)),
                        None => String::new(),
                    };
                    self.log(format!(
                        "attempt {attempt} failed: {}{ra}; retrying in {} ({} consecutive failures)",
                        failure.reason,
                        fmt_dur(delay),
                        self.backoff.failures()
                    ));
                    continue;
                }
                Ok(Ok(ws)) => ws,
            };
            opened += 1;
            let opened_at = Instant::now();
            if self.first_open.is_none() {
                self.first_open = Some(opened_at);
            }
            self.log(format!("attempt {attempt}: open (connection {opened})"));
            let end = if opened == 1 || !self.opts.no_resubscribe {
                self.log(format!("subscribing: {}", self.opts.subscribe));
                match ws.send(Message::Text(self.opts.subscribe.clone())).await {
                    Ok(()) => self.session(&mut ws).await,
                    Err(e) => SessionEnd::Error(e),
                }
            } else {
                self.log("not subscribing again (--no-resubscribe)");
                self.session(&mut ws).await
            };
            if opened_at.elapsed() >= self.opts.timeout {
                // The connection was healthy: the next loss starts afresh.
                self.backoff.reset();
            }
            match self.after_session(ws, end).await {
                Ok(d) => delay = d,
                Err(exit) => return exit,
            }
        }
    }

    /// What follows the end of an open connection: the delay before the
    /// next attempt, or the end of the client.
    async fn after_session(&mut self, mut ws: Ws, end: SessionEnd) -> Result<Duration, ClientExit> {
        let delay;
        match end {
            SessionEnd::Stop(exit) => {
                self.log(format!("stopping ({exit:?}): closing with 1001"));
                close_and_abandon(ws, CloseCode::Away, "client stopping").await;
                return Err(exit);
            }
            SessionEnd::IntentionalClose => {
                self.closed_intentionally = true;
                self.log("closing intentionally with 1000 (--close-after)");
                self.close_gracefully(&mut ws).await;
                drop(ws);
                if !self.opts.reconnect_after_close {
                    self.log("closed intentionally: not reconnecting");
                    return Err(ClientExit::IntentionalClose);
                }
                delay = self.lost_delay();
                self.log(format!(
                    "reconnecting after my own close anyway (--reconnect-after-close) in {}",
                    fmt_dur(delay)
                ));
            }
            SessionEnd::ReconnectAsked => {
                self.log("the server asked for a reconnect: closing with 1000");
                self.close_gracefully(&mut ws).await;
                drop(ws);
                self.backoff.reset();
                delay = self.reconnect_delay(None);
                self.log(format!("reconnecting as asked in {}", fmt_dur(delay)));
            }
            SessionEnd::HeartbeatTimeout => {
                close_and_abandon(
                    ws,
                    CloseCode::from(HEARTBEAT_TIMEOUT_CODE),
                    "heartbeat timeout",
                )
                .await;
                delay = self.lost_delay();
                self.log(format!(
                    "nothing from the server for {}: link declared dead, sent close {HEARTBEAT_TIMEOUT_CODE} and abandoned the socket; reconnecting in {}",
                    fmt_dur(self.opts.timeout),
                    fmt_dur(delay)
                ));
            }
            SessionEnd::ServerClose(frame) => {
                // Let tungstenite write its close reply and see the FIN.
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                drop(ws);
                delay = self.lost_delay();
                self.log(format!(
                    "server closed the connection ({}): reconnecting in {}",
                    describe_close(&frame),
                    fmt_dur(delay)
                ));
            }
            SessionEnd::Eof => {
                drop(ws);
                delay = self.lost_delay();
                self.log(format!(
                    "connection ended without a close frame (abnormal, 1006): reconnecting in {}",
                    fmt_dur(delay)
                ));
            }
            SessionEnd::Error(e) => {
                drop(ws);
                delay = self.lost_delay();
                self.log(format!(
                    "connection failed ({e}): reconnecting in {}",
                    fmt_dur(delay)
                ));
            }
        }
        Ok(delay)
    }

    /// One connection attempt, bounded by `--connect-timeout`.
    async fn connect(&self) -> Result<Ws, AttemptFailure> {
        let attempt = tokio_tungstenite::connect_async_tls_with_config(
            self.url.as_str(),
            None,
            true,
            self.tls.clone(),
        );
        let result = if self.opts.no_connect_timeout {
            attempt.await
        } else {
            match tokio::time::timeout(self.opts.connect_timeout, attempt).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(AttemptFailure {
                        reason: format!(
                            "no handshake answer within {}",
                            fmt_dur(self.opts.connect_timeout)
                        ),
                        retry_after: None,
                    })
                }
            }
        };
        match result {
            Ok((ws, _response)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Err(AttemptFailure {
                    reason: format!("HTTP {}", response.status()),
                    retry_after,
                })
            }
            Err(e) => Err(AttemptFailure {
                reason: e.to_string(),
                retry_after: None,
            }),
        }
    }

    /// Runs an open connection until it ends.
    async fn session(&mut self, ws: &mut Ws) -> SessionEnd {
        let heartbeat_on = !self.opts.no_heartbeat;
        let mut last_rx = Instant::now();
        let every = self.opts.heartbeat.max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let close_at = match (self.opts.close_after, self.first_open) {
            (Some(after), Some(first)) if !self.closed_intentionally => Some(first + after),
            _ => None,
        };
        loop {
            let dead_at = last_rx + self.opts.timeout;
            let heartbeat_due = async {
                if heartbeat_on {
                    ticker.tick().await;
                } else {
                    std::future::pending::<()>().await
                }
            };
            let dead = async {
                if heartbeat_on {
                    tokio::time::sleep_until(dead_at).await
                } else {
                    std::future::pending::<()>().await
                }
            };
            let close_due = async {
                match close_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let stopped = Self::stopped(&self.shutdown, self.stop_at);
            tokio::select! {
                exit = stopped => return SessionEnd::Stop(exit),
                _ = close_due => return SessionEnd::IntentionalClose,
                _ = dead => return SessionEnd::HeartbeatTimeout,
                _ = heartbeat_due => {
                    let beat = match self.opts.heartbeat_kind {
                        HeartbeatKind::Text => Message::Text("ping".to_owned()),
                        HeartbeatKind::Ping => Message::Ping(b"flatline".to_vec()),
                    };
                    // A write blocked by a full send buffer must not stall
                    // the dead-link timer: bound it by the time left.
                    let left = dead_at.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, ws.send(beat)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return SessionEnd::Error(e),
                        Err(_) => return SessionEnd::HeartbeatTimeout,
                    }
                }
                msg = ws.next() => match msg {
                    None => return SessionEnd::Eof,
                    Some(Err(tungstenite::Error::ConnectionClosed)) => return SessionEnd::Eof,
                    Some(Err(e)) => return SessionEnd::Error(e),
                    Some(Ok(Message::Close(frame))) => return SessionEnd::ServerClose(frame),
                    Some(Ok(Message::Text(t))) if t == self.opts.reconnect_message => {
                        if !self.opts.ignore_reconnect {
                            return SessionEnd::ReconnectAsked;
                        }
                        self.log("ignoring the server's reconnect message (--ignore-reconnect)");
                        last_rx = Instant::now();
                    }
                    Some(Ok(_)) => last_rx = Instant::now(),
                },
            }
        }
    }

    /// Sends close 1000 and waits (bounded by `--timeout`) for the server's
    /// close reply or the end of the stream.
    async fn close_gracefully(&mut self, ws: &mut Ws) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        };
        let timeout = self.opts.timeout;
        let outcome = tokio::time::timeout(timeout, async {
            ws.send(Message::Close(Some(frame))).await?;
            while let Some(msg) = ws.next().await {
                if let Message::Close(reply) = msg? {
                    return Ok::<_, tungstenite::Error>(Some(reply));
                }
            }
            Ok(None)
        })
        .await;
        match outcome {
            Ok(Ok(Some(reply))) => self.log(format!(
                "server answered the close ({})",
                describe_close(&reply)
            )),
            Ok(Ok(None)) | Ok(Err(tungstenite::Error::ConnectionClosed)) => {
                self.log("connection ended after the close")
            }
            Ok(Err(e)) => self.log(format!("error while closing: {e}")),
            Err(_) => self.log(format!(
                "no close reply within {}: abandoning the socket",
                fmt_dur(timeout)
            )),
        }
    }
}

/// Sends a close frame (bounded), then drops the socket without waiting for
/// the closing handshake: on a dead link that handshake never completes.
async fn close_and_abandon(mut ws: Ws, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
    drop(ws);
}
