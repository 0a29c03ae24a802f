//! The demo client's options: `flatline demo-client`'s flags, and the
//! scenario's `demo_client:` arguments under `--demo`.

use super::client::{DEFAULT_RECONNECT_MESSAGE, DEFAULT_SUBSCRIBE};
use super::server::parse_duration;
use std::time::Duration;

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
    /// Broken: back off without jitter (every client retries at the same
    /// instants: a thundering herd after a server restart).
    #[arg(long)]
    pub no_jitter: bool,
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
    /// For wss://: trust the CA certificates in this PEM file (default:
    /// the system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,
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
            no_jitter: false,
            reconnect_after_close: false,
            no_resubscribe: false,
            no_connect_timeout: false,
            reconnect_message: DEFAULT_RECONNECT_MESSAGE.to_owned(),
            ignore_reconnect: false,
            ca: None,
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
