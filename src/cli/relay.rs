//! `flatline relay`: a standalone relay (no scenario, no faults) that
//! streams its events to a file and prints one line per connection opened
//! and closed (with the frames and payload bytes it relayed each way).

use super::{exit, interrupt_token, prepare_tls};
use crate::events::{Ending, EventKind, EventLog, EventSink, Retention};
use crate::relay::{Relay, RelayConfig};
use crate::tls::TlsSettings;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Connections one relay is meant to hold; below that, say why not.
const MANY_CONNECTIONS: u64 = 10_000;

/// Raise the open-file limit; warn when it still caps the connections.
fn warn_nofile() {
    match crate::relay::nofile::raise() {
        Ok(l) => {
            if let Some(w) = l.warning(MANY_CONNECTIONS) {
                errln!("flatline: warning: {w}");
            }
        }
        Err(e) => errln!("flatline: warning: cannot read the open-file limit: {e}"),
    }
}

pub(super) async fn cmd_relay(
    listen: SocketAddr,
    upstream: &str,
    events: Option<PathBuf>,
    keep_extensions: bool,
    tls: TlsSettings,
) -> i32 {
    let mut cfg = match RelayConfig::new(upstream) {
        Ok(c) => c,
        Err(e) => {
            errln!("error: {e}");
            return exit::INVALID;
        }
    };
    cfg.listen = listen;
    cfg.keep_extensions = keep_extensions;
    cfg.tls = match prepare_tls(&tls) {
        Ok(t) => t,
        Err(code) => return code,
    };
    cfg.upstream_trust = tls.upstream.clone();
    warn_nofile();
    // Nothing is kept per frame: events stream to the file, if any.
    let sink = match &events {
        Some(p) => match EventSink::append(p) {
            Ok(s) => Some(s),
            Err(e) => {
                errln!("error: cannot open {}: {e}", p.display());
                return exit::INVALID;
            }
        },
        None => None,
    };
    let log = EventLog::with(Retention::Stream, sink);
    let mut rx = log.subscribe();
    let relay = match Relay::start(cfg, log.clone()).await {
        Ok(r) => r,
        Err(e) => {
            errln!("error: {e}");
            return exit::CANNOT_RUN;
        }
    };
    errln!(
        "flatline: relaying {} -> {upstream} (Ctrl-C to stop)",
        relay.url()
    );
    let interrupt = interrupt_token();
    let mut last_from = std::collections::HashMap::new();
    loop {
        tokio::select! {
            _ = interrupt.cancelled() => break,
            ev = rx.recv() => match ev {
                Ok(e) => describe(&e, &log, &mut last_from),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }
    relay.stop().await;
    if let Err(e) = log.finish_sink() {
        errln!("error: writing the events file: {e}");
        return exit::CANNOT_RUN;
    }
    exit::PASS
}

/// One readable line per connection opened and closed (how, by whom, and
/// what it relayed).
fn describe(
    e: &crate::events::Event,
    log: &EventLog,
    first_end: &mut std::collections::HashMap<u32, String>,
) {
    let t = e.t.as_secs_f64();
    let Some(n) = e.conn else { return };
    match &e.kind {
        EventKind::Open => errln!("{t:9.3}s  #{n} open"),
        EventKind::Rejected { status } => {
            errln!("{t:9.3}s  #{n} handshake rejected: HTTP {status}")
        }
        EventKind::UpstreamFailed { error } => {
            errln!("{t:9.3}s  #{n} upstream unreachable: {error}")
        }
        EventKind::BadRequest { reason } => errln!("{t:9.3}s  #{n} bad request: {reason}"),
        EventKind::Frame(f) if f.opcode == crate::events::Opcode::Close => {
            first_end.entry(n).or_insert_with(|| {
                format!(
                    "close frame {} from the {}",
                    f.close_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "without code".into()),
                    f.dir.from_side()
                )
            });
        }
        EventKind::Fin { from } => {
            first_end
                .entry(n)
                .or_insert_with(|| format!("FIN from the {from}"));
        }
        EventKind::Rst { from } => {
            first_end
                .entry(n)
                .or_insert_with(|| format!("RST from the {from}"));
        }
        EventKind::Closed { how } => {
            let by = first_end
                .remove(&n)
                .unwrap_or_else(|| "no close frame, FIN or RST seen".into());
            let how = match how {
                Ending::Fin => "closed",
                Ending::Reset => "reset",
                Ending::Shutdown => "closed by flatline",
                Ending::Failed => "failed",
            };
            let relayed = log
                .closed_summary(n)
                .map(|s| relayed(&s))
                .unwrap_or_default();
            errln!("{t:9.3}s  #{n} {how} ({by}){relayed}");
        }
        _ => {}
    }
}

/// `; 3 frames (41 B) from the client, 2 (9 B) from the server`, or nothing
/// when no frame passed.
fn relayed(s: &crate::events::ConnSummary) -> String {
    if s.to_server.frames + s.to_client.frames == 0 {
        return String::new();
    }
    let (c, v) = (&s.to_server, &s.to_client);
    let frames = |n: u64| if n == 1 { "frame" } else { "frames" };
    format!(
        "; {} {} ({} B) from the client, {} ({} B) from the server",
        c.frames,
        frames(c.frames),
        c.payload_bytes,
        v.frames,
        v.payload_bytes
    )
}
