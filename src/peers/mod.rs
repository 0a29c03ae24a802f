//! The reference peers: the demo server and the careful demo client.
//!
//! - [`server`]: a well-behaved WebSocket server (echo, `ping`→`pong`,
//!   subscriptions, optional server pings), run in-process when a scenario
//!   names no upstream (`flatline demo-server`).
//! - [`client`]: the careful heartbeat + reconnect client run by `--demo`
//!   (`flatline demo-client`), with flags that break it on purpose so that
//!   each scenario can be shown to catch the fault it exists for.

pub mod backoff;
pub mod client;
mod client_opts;
pub mod server;

pub use client::{
    run_client, Backoff, ClientError, ClientExit, DemoClientOpts, HeartbeatKind, DEFAULT_SUBSCRIBE,
    HEARTBEAT_TIMEOUT_CODE,
};
pub use server::{reply_to, serve, spawn_demo_server, DemoServerHandle, DemoServerOpts};
