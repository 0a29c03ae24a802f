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
//!    `--timeout` resets the backoff.
//!
//! Every decision is logged with the time since the client started.

use super::server::parse_duration;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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

/// What the client sends as its heartbeat.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HeartbeatKind {
    /// The text `ping`, answered by the text `pong` (what a browser page can do).
    #[default]
    Text,
    /// WebSocket ping frames, answered by pong frames.
    Ping,
}

/// Options of the demo client (`flatline demo-client`, and the scenario's
/// `demo_client:` arguments under `--demo`).
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct DemoClientOpts {
    /// The ws:// URL to connect to (default: `$FLATLINE_URL`).
    #[arg(value_name = "URL")]
    pub url: Option<String>,
    /// Heartbeat interval.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// The link is declared dead after this long without any message from the server.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// What the heartbeat is.
    #[arg(long, value_enum, default_value_t = HeartbeatKind::Text)]
    pub heartbeat_kind: HeartbeatKind,
    /// Smallest reconnect delay.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = parse_duration)]
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Each connection attempt's own handshake timeout.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// The subscription message sent after every open.
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_SUBSCRIBE)]
    pub subscribe: String,
    /// Close intentionally (code 1000) this long after the first open, then exit.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub close_after: Option<Duration>,
    /// Seed of the backoff jitter.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Stop after this long in any case.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_runtime: Option<Duration>,
    /// Broken: send no heartbeat and never declare a link dead.
    #[arg(long)]
    pub no_heartbeat: bool,
    /// Broken: reconnect immediately, with no delay (and ignore `Retry-After`).
    #[arg(long)]
    pub no_backoff: bool,
    /// Broken: reconnect even after the client's own intentional close.
    #[arg(long)]
    pub reconnect_after_close: bool,
    /// Broken: subscribe only on the first connection.
    #[arg(long)]
    pub no_resubscribe: bool,
    /// Broken: no handshake timeout (an unanswered attempt hangs forever).
    #[arg(long)]
    pub no_connect_timeout: bool,
    /// The text message with which the server asks for a reconnect: the
    /// client closes with 1000 and reconnects after the shortest backoff.
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_RECONNECT_MESSAGE)]
    pub reconnect_message: String,
    /// Broken: ignore the server's reconnect message.
    #[arg(long)]
    pub ignore_reconnect: bool,
}

impl Default for DemoClientOpts {
    fn default() -> Self {
        DemoClientOpts {
            url: None,
            heartbeat: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            heartbeat_kind: HeartbeatKind::Text,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            subscribe: DEFAULT_SUBSCRIBE.to_owned(),
            close_after: None,
            seed: 0,
            max_runtime: None,
            no_heartbeat: false,
            no_backoff: false,
            reconnect_after_close: false,
            no_resubscribe: false,
            no_connect_timeout: false,
            reconnect_message: DEFAULT_RECONNECT_MESSAGE.to_owned(),
            ignore_reconnect: false,
        }
    }
}

#[derive(clap::Parser)]
#[command(name = "demo-client", args_override_self = true)]
struct DemoClientCli {
    #[command(flatten)]
    opts: DemoClientOpts,
}

impl DemoClientOpts {
    /// Parses demo-client arguments (without a program name), e.g. a
    /// scenario's `demo_client:` list followed by extra ones. A flag given
    /// twice keeps its last value.
    pub fn from_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        let argv = std::iter::once(std::ffi::OsString::from("demo-client"))
            .chain(args.into_iter().map(Into::into));
        DemoClientCli::try_parse_from(argv).map(|cli| cli.opts)
    }
}

/// Why [`run_client`] could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither a URL argument nor `FLATLINE_URL`.
    #[error("no URL given: pass one or set `FLATLINE_URL`")]
    NoUrl,
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

/// Exponential backoff with seeded jitter: the delay before reconnect
/// attempt `n` (counting consecutive failures from 0) is
/// `min(backoff_max, backoff_min * 2^n * j)` with `j` uniform in `[1, 1.5)`.
/// Because `j < 2`, delays never shrink until they reach the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// A backoff between `min` and `max` (a `max` below `min` is raised to it).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 2f64.powi(self.failures.min(40) as i32) * self.rng.gen_range(1.0..1.5);
        self.failures = self.failures.saturating_add(1);
        let secs = self.min.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs).max(self.min)
        }
    }

    /// Forgets the failures (after a connection that stayed open a while).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
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
    let mut client = Client {
        url,
        backoff: Backoff::new(opts.backoff_min, opts.backoff_max, opts.seed),
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
            match end {
                SessionEnd::Stop(exit) => {
                    self.log(format!("stopping ({exit:?}): closing with 1001"));
                    close_and_abandon(ws, CloseCode::Away, "client stopping").await;
                    return exit;
                }
                SessionEnd::IntentionalClose => {
                    self.closed_intentionally = true;
                    self.log("closing intentionally with 1000 (--close-after)");
                    self.close_gracefully(&mut ws).await;
                    drop(ws);
                    if !self.opts.reconnect_after_close {
                        self.log("closed intentionally: not reconnecting");
                        return ClientExit::IntentionalClose;
                    }
                    delay = self.reconnect_delay(None);
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
                    delay = self.reconnect_delay(None);
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
                    delay = self.reconnect_delay(None);
                    self.log(format!(
                        "server closed the connection ({}): reconnecting in {}",
                        describe_close(&frame),
                        fmt_dur(delay)
                    ));
                }
                SessionEnd::Eof => {
                    drop(ws);
                    delay = self.reconnect_delay(None);
                    self.log(format!(
                        "connection ended without a close frame (abnormal, 1006): reconnecting in {}",
                        fmt_dur(delay)
                    ));
                }
                SessionEnd::Error(e) => {
                    drop(ws);
                    delay = self.reconnect_delay(None);
                    self.log(format!(
                        "connection failed ({e}): reconnecting in {}",
                        fmt_dur(delay)
                    ));
                }
            }
        }
    }

    /// One connection attempt, bounded by `--connect-timeout`.
    async fn connect(&self) -> Result<Ws, AttemptFailure> {
        let attempt = tokio_tungstenite::connect_async_with_config(self.url.as_str(), None, true);
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
