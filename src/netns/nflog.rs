//! Reading the packets the kernel drops. The drop rules on packets from a
//! peer also `log group` them ([`GROUP`]); a netlink socket made inside the
//! relay's namespace receives copies (NFLOG), and each flow's bytes are
//! scanned for frames once, in sequence order, retransmissions skipped. A
//! close frame, a FIN or an RST from a side is logged as that side giving
//! the connection up ([`EventKind::KernelGaveUp`], seen in a dropped
//! packet), at the moment it was first sent, although the relay gets it only
//! after the heal, if ever.

use super::kernel::SharedState;
use super::{UpstreamPorts, CLIENT_ADDR, SERVER_ADDR};
use crate::events::{EventKind, EventLog, Opcode, Side};
use crate::frame::{FrameScanner, Scan};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The NFLOG group the drop rules log to (groups are per namespace).
pub const GROUP: u16 = 7;

const NETLINK_NETFILTER: i32 = 12;
const SUBSYS_ULOG: u16 = 4;
const MSG_PACKET: u16 = 0;
const MSG_CONFIG: u16 = 1;
const CFG_CMD: u16 = 1;
const CFG_MODE: u16 = 2;
const CMD_BIND: u8 = 1;
const COPY_PACKET: u8 = 2;
const ATTR_PAYLOAD: u16 = 9;

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// A config message for `group` with one attribute.
fn config(group: u16, kind: u16, data: &[u8]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&group.to_be_bytes());
    attr(&mut body, kind, data);
    let mut m = Vec::with_capacity(16 + body.len());
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&((SUBSYS_ULOG << 8) | MSG_CONFIG).to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&body);
    m
}

/// A netlink socket bound to the log group, made in the current namespace.
fn open(group: u16) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket calls on a fd this function owns.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as u16;
        let sap = &sa as *const libc::sockaddr_nl as *const libc::sockaddr;
        if libc::bind(
            fd.as_raw_fd(),
            sap,
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // Wake up every 100 ms to look at the stop flag.
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let mut mode = 0xFFFFu32.to_be_bytes().to_vec();
        mode.extend_from_slice(&[COPY_PACKET, 0]);
        for msg in [
            config(group, CFG_CMD, &[CMD_BIND]),
            config(group, CFG_MODE, &mode),
        ] {
            if libc::send(
                fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(fd)
    }
}

/// The IP packets in one netlink datagram.
fn payloads(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            break;
        }
        if kind == (SUBSYS_ULOG << 8) | MSG_PACKET {
            let mut a = off + 20;
            while a + 4 <= off + len {
                let alen = u16::from_ne_bytes([buf[a], buf[a + 1]]) as usize;
                let akind = u16::from_ne_bytes([buf[a + 2], buf[a + 3]]) & 0x3fff;
                if alen < 4 || a + alen > off + len {
                    break;
                }
                if akind == ATTR_PAYLOAD {
                    out.push(&buf[a + 4..a + alen]);
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

/// What matters of one TCP/IPv4 packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// TCP payload.
    pub data: &'a [u8],
}

/// Parse an IPv4 TCP packet.
pub fn segment(p: &[u8]) -> Option<Segment<'_>> {
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 6 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).min(p.len());
    let t = p.get(ihl..total)?;
    if t.len() < 20 {
        return None;
    }
    let doff = usize::from(t[12] >> 4) * 4;
    Some(Segment {
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        fin: t[13] & 0x01 != 0,
        rst: t[13] & 0x04 != 0,
        data: t.get(doff..)?,
    })
}

/// One flow's dropped bytes, scanned once in sequence order.
struct Flow {
    next_seq: Option<u32>,
    scanner: FrameScanner,
    reported: bool,
}

/// Where a dropped segment came from: its side and connection.
fn whose(s: &Segment<'_>, shared: &SharedState, upstream: &UpstreamPorts) -> Option<(Side, u32)> {
    if s.src == CLIENT_ADDR {
        let sh = shared.lock().unwrap_or_else(|p| p.into_inner());
        return sh.client_ports.get(&s.sport).map(|c| (Side::Client, *c));
    }
    if s.src == SERVER_ADDR {
        let u = upstream.lock().unwrap_or_else(|p| p.into_inner());
        return u
            .iter()
            .find(|(_, p)| **p == s.dport)
            .map(|(c, _)| (Side::Server, *c));
    }
    None
}

/// What in a dropped segment gives the connection up, scanning its new bytes.
fn give_up_in(flow: &mut Flow, s: &Segment<'_>) -> Option<String> {
    let start = *flow.next_seq.get_or_insert(s.seq);
    // Bytes of this segment already scanned (retransmissions repeat them);
    // a segment after a gap is not scanned.
    let seen = start.wrapping_sub(s.seq) as i32;
    let mut found = None;
    if seen >= 0 && (seen as usize) < s.data.len() {
        let new = &s.data[seen as usize..];
        flow.next_seq = Some(start.wrapping_add(new.len() as u32));
        flow.scanner.feed(new, |sc| {
            if let Scan::Info(_, f) = sc {
                if f.opcode == Opcode::Close && found.is_none() {
                    found = Some(match f.close_code {
                        Some(c) => format!("close frame {c}"),
                        None => "close frame without code".into(),
                    });
                }
            }
        });
    }
    found.or_else(|| {
        if s.rst {
            Some("RST".into())
        } else if s.fin {
            Some("FIN".into())
        } else {
            None
        }
    })
}

/// Receive dropped packets in the relay's namespace until `stop` is set.
pub fn watch(
    relay_ns: PathBuf,
    shared: SharedState,
    upstream: UpstreamPorts,
    log: EventLog,
    stop: Arc<AtomicBool>,
) {
    if super::ns::enter(&relay_ns).is_err() {
        return;
    }
    let fd = match open(GROUP) {
        Ok(fd) => fd,
        Err(e) => {
            log.emit(
                None,
                EventKind::Note {
                    text: format!("cannot read dropped packets (NFLOG): {e}"),
                },
            );
            return;
        }
    };
    let mut flows: HashMap<(Side, u32), Flow> = HashMap::new();
    let mut buf = vec![0u8; 1 << 17];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: reading into a buffer this function owns.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n <= 0 {
            continue;
        }
        for p in payloads(&buf[..n as usize]) {
            let Some(s) = segment(p) else { continue };
            let Some((side, conn)) = whose(&s, &shared, &upstream) else {
                continue;
            };
            let dir = side.sending();
            let flow = flows.entry((side, conn)).or_insert_with(|| Flow {
                next_seq: None,
                scanner: FrameScanner::new(dir),
                reported: false,
            });
            if flow.reported {
                continue;
            }
            if let Some(what) = give_up_in(flow, &s) {
                flow.reported = true;
                if !shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .first_report(conn, side)
                {
                    continue;
                }
                log.emit(
                    Some(conn),
                    EventKind::KernelGaveUp {
                        from: side,
                        what,
                        seen: "dropped packet".into(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Direction;

    fn packet(seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1,
        ];
        let tcp = [
            &[0xc3, 0x50, 0x0f, 0xa0][..],
            &seq.to_be_bytes(),
            &[0, 0, 0, 0, 0x50, flags, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        p.extend_from_slice(&tcp);
        p.extend_from_slice(data);
        let len = p.len() as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    #[test]
    fn a_close_frame_is_found_once_and_retransmissions_are_skipped() {
        let close = crate::frame::encode_frame(8, true, &[0x03, 0xf3], Some([1, 2, 3, 4]));
        let text = crate::frame::encode_frame(1, true, b"hi", Some([1, 2, 3, 4]));
        let mut flow = Flow {
            next_seq: None,
            scanner: FrameScanner::new(Direction::ToServer),
            reported: false,
        };
        let p1 = packet(1000, 0x18, &text);
        let s1 = segment(&p1).unwrap();
        assert_eq!((s1.sport, s1.dport, s1.src), (50000, 4000, CLIENT_ADDR));
        assert_eq!(give_up_in(&mut flow, &s1), None);
        // The same bytes again, then the close frame after them.
        assert_eq!(give_up_in(&mut flow, &s1), None);
        let p2 = packet(1000 + text.len() as u32, 0x18, &close);
        let s2 = segment(&p2).unwrap();
        assert_eq!(
            give_up_in(&mut flow, &s2).as_deref(),
            Some("close frame 1011")
        );
        let fin = packet(2000, 0x11, &[]);
        assert_eq!(
            give_up_in(&mut flow, &segment(&fin).unwrap()).as_deref(),
            Some("FIN")
        );
    }
}
