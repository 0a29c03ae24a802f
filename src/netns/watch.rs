//! Watching a peer's socket table. While the kernel drops a side's packets
//! the relay cannot see that side close, reset or give up, so a thread that
//! entered the side's namespace reads `/proc/thread-self/net/tcp` every few
//! milliseconds and logs a [`EventKind::KernelGaveUp`] when one of its
//! connections to the relay leaves `ESTABLISHED`: a FIN (the socket moves to
//! `FIN_WAIT1` and on), or the socket vanishing (an RST from the
//! application, or the kernel abandoning it: `TCP_USER_TIMEOUT`, the
//! retransmission limit, keepalive expiry). The last retransmission or probe
//! count seen says which.

use super::kernel::SharedState;
use super::UpstreamPorts;
use crate::events::{EventKind, EventLog, Side};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the socket table is read.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// One row of `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Local address.
    pub local: SocketAddrV4,
    /// Remote address.
    pub remote: SocketAddrV4,
    /// TCP state (1 = ESTABLISHED … 11 = CLOSING).
    pub state: u8,
    /// Active timer (1 retransmit, 2 keepalive, 4 zero-window probe).
    pub timer: u8,
    /// Retransmissions of unacknowledged data.
    pub retrans: u32,
    /// Unanswered keepalive or zero-window probes.
    pub probes: u32,
}

const ESTABLISHED: u8 = 1;
const CLOSE: u8 = 7;
const CLOSE_WAIT: u8 = 8;

fn addr(hex: &str) -> Option<SocketAddrV4> {
    let (a, p) = hex.split_once(':')?;
    let a = u32::from_str_radix(a, 16).ok()?;
    let p = u16::from_str_radix(p, 16).ok()?;
    // The kernel prints the network-order word as a native integer.
    Some(SocketAddrV4::new(Ipv4Addr::from(a.to_ne_bytes()), p))
}

/// Parse the IPv4 socket table.
pub fn parse(table: &str) -> Vec<Row> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (timer, _) = f.get(5)?.split_once(':')?;
            Some(Row {
                local: addr(f.get(1)?)?,
                remote: addr(f.get(2)?)?,
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                timer: u8::from_str_radix(timer, 16).ok()?,
                retrans: u32::from_str_radix(f.get(6)?, 16).ok()?,
                probes: f.get(8)?.parse().ok()?,
            })
        })
        .collect()
}

/// Which of a namespace's sockets are connections to the relay, and how to
/// tell which connection each is.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The client: sockets to the relay's address; keyed by local port.
    Client {
        /// The relay's address on the client link.
        relay: SocketAddrV4,
    },
    /// The server: sockets on its port from the relay; keyed by the relay's port.
    Server {
        /// The server's port.
        port: u16,
        /// Connection → relay's port toward the server.
        upstream: UpstreamPorts,
    },
}

impl Peer {
    fn side(&self) -> Side {
        match self {
            Peer::Client { .. } => Side::Client,
            Peer::Server { .. } => Side::Server,
        }
    }

    /// The connection a row belongs to, if it is one of ours.
    fn conn(&self, r: &Row, shared: &SharedState) -> Option<u32> {
        match self {
            Peer::Client { relay } => {
                if r.remote != *relay {
                    return None;
                }
                let s = shared.lock().unwrap_or_else(|p| p.into_inner());
                s.client_ports.get(&r.local.port()).copied()
            }
            Peer::Server { port, upstream } => {
                if r.local.port() != *port {
                    return None;
                }
                let u = upstream.lock().unwrap_or_else(|p| p.into_inner());
                u.iter()
                    .find(|(_, p)| **p == r.remote.port())
                    .map(|(c, _)| *c)
            }
        }
    }
}

/// How a socket that vanished ended, from the last row seen; whether its
/// kernel abandoned it (nothing the relay could see was sent then).
fn gone_how(last: &Row) -> (String, bool) {
    match (last.timer, if last.timer == 1 { last.retrans } else { last.probes }) {
        (1, n) if n > 0 => (
            format!("abandoned by its kernel after {n} retransmissions (TCP_USER_TIMEOUT or tcp_retries2)"),
            true,
        ),
        (2, n) if n > 0 => (
            format!("abandoned by its kernel after {n} unanswered keepalive probes"),
            true,
        ),
        (4, n) if n > 0 => (
            format!("abandoned by its kernel after {n} zero-window probes"),
            true,
        ),
        _ => ("reset (gone from the socket table)".to_string(), false),
    }
}

/// Per-connection state between two reads.
struct Seen {
    last: Row,
    reported: bool,
}

/// Watch one namespace until `stop` is set. Logs only while that side's
/// packets are dropped (otherwise the relay sees for itself).
pub fn watch(ns: PathBuf, peer: Peer, shared: SharedState, log: EventLog, stop: Arc<AtomicBool>) {
    if super::ns::enter(&ns).is_err() {
        return;
    }
    let side = peer.side();
    let mut seen: HashMap<u32, Seen> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(table) = std::fs::read_to_string("/proc/thread-self/net/tcp") else {
            return;
        };
        let rows = parse(&table);
        let mut present: Vec<u32> = Vec::new();
        for r in &rows {
            let Some(conn) = peer.conn(r, &shared) else {
                continue;
            };
            present.push(conn);
            let s = seen.entry(conn).or_insert(Seen {
                last: *r,
                reported: false,
            });
            let was_open = matches!(s.last.state, ESTABLISHED | CLOSE_WAIT);
            let closed = !matches!(r.state, ESTABLISHED | CLOSE_WAIT);
            if was_open && closed && !s.reported {
                let (what, silent) = if r.state == CLOSE {
                    gone_how(&s.last)
                } else {
                    ("FIN".into(), false)
                };
                s.reported = report(&log, &shared, conn, side, what, silent);
            }
            s.last = *r;
        }
        for (conn, s) in seen.iter_mut() {
            if !present.contains(conn)
                && !s.reported
                && matches!(s.last.state, ESTABLISHED | CLOSE_WAIT)
            {
                let (what, silent) = gone_how(&s.last);
                s.reported = report(&log, &shared, *conn, side, what, silent);
                s.last.state = CLOSE;
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Log a give-up if the relay cannot see it (the side's packets are dropped,
/// or its kernel abandoned the connection without a word); whether it was
/// logged.
fn report(
    log: &EventLog,
    shared: &SharedState,
    conn: u32,
    side: Side,
    what: String,
    silent: bool,
) -> bool {
    let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
    let blocked = silent || sh.blocked(conn, side);
    if blocked && sh.first_report(conn, side) {
        drop(sh);
        log.emit(
            Some(conn),
            EventKind::KernelGaveUp {
                from: side,
                what,
                seen: "socket table".into(),
            },
        );
    }
    blocked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 02004D0A:C350 01004D0A:0FA0 01 00000064:00000000 01:000000C8 00000003     0        0 123 2 0000000000000000 20 4 30 10 -1\n";
        let rows = parse(t);
        assert_eq!(
            rows,
            vec![Row {
                local: "10.77.0.2:50000".parse().unwrap(),
                remote: "10.77.0.1:4000".parse().unwrap(),
                state: ESTABLISHED,
                timer: 1,
                retrans: 3,
                probes: 0,
            }]
        );
        assert!(gone_how(&rows[0]).0.contains("after 3 retransmissions"));
    }
}
