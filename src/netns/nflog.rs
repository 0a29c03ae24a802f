//! Reading the packets the kernel drops. The drop rules on packets from a
//! peer also `log group` them ([`GROUP`]); a netlink socket made inside the
//! relay's namespace receives copies (NFLOG), and each flow's bytes are
//! scanned for frames once, in sequence order, retransmissions skipped. A
//! close frame, a FIN or an RST from a side is logged as that side giving
//! the connection up ([`EventKind::KernelGaveUp`], seen in a dropped
//! packet), at the moment it was first sent, although the relay gets it only
//! after the heal, if ever.

use super::kernel::SharedState;
use super::{Marks, UpstreamPorts, CLIENT_ADDR, SERVER_ADDR};
use crate::events::{Direction, EventKind, EventLog, FrameInfo, Opcode, Side};
use crate::frame::{FrameScanner, Scan};
use crate::relay::mark::StreamMark;
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
const CFG_QTHRESH: u16 = 5;
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
        // One packet per message: by default the kernel batches them for
        // up to a second, and a frame would be seen after the relay got it.
        for msg in [
            config(group, CFG_CMD, &[CMD_BIND]),
            config(group, CFG_MODE, &mode),
            config(group, CFG_QTHRESH, &1u32.to_be_bytes()),
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
    /// SYN flag (its sequence number is the flow's initial one).
    pub syn: bool,
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
        syn: t[13] & 0x02 != 0,
        data: t.get(doff..)?,
    })
}

/// One flow's dropped bytes, scanned once in sequence order.
#[derive(Default)]
struct Flow {
    /// Raw stream offset of the next byte to scan, once scanning started.
    next: Option<u64>,
    scanner: Option<FrameScanner>,
    frame_start: u64,
    reported: bool,
}

/// Scan what is new in a dropped segment whose first byte is at raw stream
/// offset `off`, for frames nobody logged yet (marked `dropped`). Scanning
/// starts only where the relay's scanner knows a frame starts; a segment
/// after a gap, or bytes already scanned (retransmissions), are skipped.
fn frames_in(
    flow: &mut Flow,
    off: u64,
    data: &[u8],
    dir: Direction,
    mark: &StreamMark,
    out: &mut Vec<FrameInfo>,
) {
    let end = off + data.len() as u64;
    let next = match flow.next {
        Some(n) => n,
        None => match (mark.frames_start(), mark.boundary()) {
            (Some(from), Some(b)) if b >= from && b >= off => b,
            _ => return,
        },
    };
    flow.next = Some(next);
    if off > next || end <= next {
        return;
    }
    let new = &data[(next - off) as usize..];
    flow.next = Some(end);
    let mut start = flow.frame_start;
    let scanner = flow.scanner.get_or_insert_with(|| FrameScanner::new(dir));
    scanner.feed(new, |sc| match sc {
        Scan::Start(p) => start = next + p as u64,
        Scan::Info(_, f) if mark.claim(start) => out.push(FrameInfo {
            dropped: true,
            ..f.info()
        }),
        _ => {}
    });
    flow.frame_start = start;
}

/// What gives the connection up: a close frame found, else RST or FIN.
fn give_up(frames: &[FrameInfo], s: &Segment<'_>) -> Option<String> {
    let close = frames.iter().find(|f| f.opcode == Opcode::Close);
    match close {
        Some(f) => Some(match f.close_code {
            Some(c) => format!("close frame {c}"),
            None => "close frame without code".into(),
        }),
        None if s.rst => Some("RST".into()),
        None if s.fin => Some("FIN".into()),
        None => None,
    }
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

/// The reader's state: each flow's first sequence number and progress.
struct Reader {
    shared: SharedState,
    upstream: UpstreamPorts,
    marks: Marks,
    log: EventLog,
    /// Initial sequence numbers by (source, source port, destination port).
    isn: HashMap<(Ipv4Addr, u16, u16), u32>,
    flows: HashMap<(Side, u32), Flow>,
}

impl Reader {
    fn on_segment(&mut self, s: &Segment<'_>) {
        if s.syn {
            self.isn.insert((s.src, s.sport, s.dport), s.seq);
            return;
        }
        let Some((side, conn)) = whose(s, &self.shared, &self.upstream) else {
            return;
        };
        let dir = side.sending();
        let flow = self.flows.entry((side, conn)).or_default();
        let mut frames = Vec::new();
        let isn = self.isn.get(&(s.src, s.sport, s.dport));
        let mark = self
            .marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(conn, dir))
            .cloned();
        if let (Some(isn), Some(mark)) = (isn, mark) {
            // Raw offset of the first byte (after the SYN); streams of
            // up to 4 GiB.
            let off = u64::from(s.seq.wrapping_sub(*isn).wrapping_sub(1));
            frames_in(flow, off, s.data, dir, &mark, &mut frames);
        }
        let what = if flow.reported {
            None
        } else {
            give_up(&frames, s)
        };
        for f in frames {
            self.log.emit(Some(conn), EventKind::Frame(f));
        }
        let Some(what) = what else { return };
        flow.reported = true;
        if self
            .shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_report(conn, side)
        {
            self.log.emit(
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

/// Receive dropped packets in the relay's namespace until `stop` is set.
pub fn watch(
    relay_ns: PathBuf,
    shared: SharedState,
    upstream: UpstreamPorts,
    marks: Marks,
    log: EventLog,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    if super::ns::enter(&relay_ns).is_err() {
        return;
    }
    let opened = open(GROUP);
    let _ = ready.send(());
    let fd = match opened {
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
    let mut reader = Reader {
        shared,
        upstream,
        marks,
        log,
        isn: HashMap::new(),
        flows: HashMap::new(),
    };
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
            if let Some(s) = segment(p) {
                reader.on_segment(&s);
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

    fn scan(
        flow: &mut Flow,
        mark: &StreamMark,
        seq: u32,
        flags: u8,
        data: &[u8],
    ) -> Vec<FrameInfo> {
        let p = packet(seq, flags, data);
        let s = segment(&p).unwrap();
        let mut out = Vec::new();
        frames_in(
            flow,
            u64::from(s.seq - 1000 - 1),
            s.data,
            Direction::ToServer,
            mark,
            &mut out,
        );
        out
    }

    #[test]
    fn frames_are_found_once_from_a_known_boundary_and_retransmissions_are_skipped() {
        let ping = crate::frame::encode_frame(9, true, b"hb", Some([1, 2, 3, 4]));
        let close = crate::frame::encode_frame(8, true, &[0x03, 0xf3], Some([1, 2, 3, 4]));
        let p1 = packet(1100, 0x18, &ping);
        let s1 = segment(&p1).unwrap();
        assert_eq!((s1.sport, s1.dport, s1.src), (50000, 4000, CLIENT_ADDR));
        assert!(!s1.syn && segment(&packet(1000, 0x02, &[])).unwrap().syn);
        // The relay read a 99-byte head: frames start at raw offset 99.
        let mark = StreamMark::default();
        mark.frames_from(99);
        let mut flow = Flow::default();
        let got = scan(&mut flow, &mark, 1100, 0x18, &ping);
        assert_eq!(got.len(), 1);
        assert!(got[0].dropped && got[0].opcode == Opcode::Ping && got[0].preview == "hb");
        // Retransmitted: nothing new. The relay later gets it: already claimed.
        assert!(scan(&mut flow, &mark, 1100, 0x18, &ping).is_empty());
        assert!(!mark.claim(99));
        let seq2 = 1100 + ping.len() as u32;
        let both = [ping.clone(), close].concat();
        let got = scan(&mut flow, &mark, 1100, 0x18, &both);
        assert_eq!(got.len(), 1);
        let p2 = packet(seq2, 0x18, &[]);
        let s = segment(&p2).unwrap();
        assert_eq!(give_up(&got, &s).as_deref(), Some("close frame 1011"));
        let fin = packet(2000, 0x11, &[]);
        assert_eq!(
            give_up(&[], &segment(&fin).unwrap()).as_deref(),
            Some("FIN")
        );
    }

    #[test]
    fn a_start_inside_a_frame_is_not_scanned_until_a_known_boundary() {
        // A binary frame whose payload looks like a close frame header.
        let fake = crate::frame::encode_frame(8, true, &[0x03, 0xe8], Some([0; 4]));
        let bin = crate::frame::encode_frame(
            2,
            true,
            &[fake.clone(), vec![0; 20]].concat(),
            Some([0; 4]),
        );
        let mark = StreamMark::default();
        mark.frames_from(0);
        // The relay is inside `bin` with its header read: the next frame
        // starts after it.
        let after = bin.len() as u64;
        mark.set_boundary(Some(after));
        let mut flow = Flow::default();
        // A dropped segment from the middle of `bin`: skipped, never parsed.
        assert!(scan(&mut flow, &mark, 1001 + 6, 0x18, &bin[6..]).is_empty());
        // Inside a header: nothing known, nothing scanned.
        let mut flow = Flow::default();
        mark.set_boundary(None);
        assert!(scan(&mut flow, &mark, 1001, 0x18, &bin).is_empty());
        assert_eq!(flow.next, None);
        // The next segment after the frame is scanned.
        mark.set_boundary(Some(after));
        let mut flow = Flow::default();
        let got = scan(&mut flow, &mark, 1001 + after as u32, 0x18, &fake);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].close_code, Some(1000));
    }
}
