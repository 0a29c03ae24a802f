//! # flatline
//!
//! A chaos-testing relay for WebSocket. It sits between a real client and a
//! real server, forwards bytes unchanged, observes WebSocket frames on the
//! side, injects network faults on a timeline (silent partitions, delays,
//! dropped pongs, lost FINs, resets, refused reconnects…) and judges the
//! client's heartbeat and reconnection from one event log.
//!
//! # Layout
//!
//! - [`events`]: the event log, the single record every other part reads.
//! - [`frame`]: the incremental WebSocket frame scanner (never re-encodes).
//! - [`matcher`]: `match:` frame filters, compiled once.
//! - [`relay`]: listener, handshake pass-through, one task per connection
//!   driving two I/O-free pipes (`to_server`, `to_client`) over two transports.
//! - [`scenario`]: the YAML model, parsing and validation with file positions.
//! - [`faults`]: one file per fault kind (parameters, checks, behaviour),
//!   declared once in the registry; behaviour behind the `Stage` trait.
//! - [`timeline`]: the controller that starts and stops faults.
//! - [`expect`]: one module per expectation kind, judged from the log.
//! - [`report`]: terminal, JSON, JUnit, HTML and the snapshot transcript.
//! - [`peers`]: the reference demo server and demo client.
//! - [`tls`]: wss:// on either leg: certificates, trust, the TLS transport.
//! - [`netns`]: `--netns`, where faults with a kernel equivalent are
//!   nftables rules between network namespaces.
#![warn(missing_docs)]

pub mod cli;
pub mod events;
pub mod expect;
pub mod faults;
pub mod frame;
pub mod matcher;
pub mod netns;
pub mod peers;
pub mod relay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod timeline;
pub mod tls;
