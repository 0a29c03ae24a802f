//! The incremental WebSocket frame scanner. It watches the byte stream of one
//! direction as it passes through the relay and reports, with offsets into the
//! chunk just read, where frames start, when a frame's header and payload
//! preview are known, and where frames end. It never copies, re-encodes or
//! rewrites the forwarded bytes: the pipe forwards the chunk it read.
//!
//! Headers may be split across reads at any byte; the scanner keeps at most
//! one partial header (14 bytes) and one payload preview
//! ([`PREVIEW_BYTES`]) per direction.

use crate::events::{Direction, FrameInfo, Opcode};

/// How many unmasked payload bytes a frame event carries at most.
pub const PREVIEW_BYTES: usize = 256;

/// What the scanner found in a chunk. Offsets are into the chunk passed to
/// [`FrameScanner::feed`]. The scanner reports a frame as a [`Frame`] view
/// (`Scan<Frame<'_>>`, nothing allocated); [`Scan::owned`] makes the
/// self-contained `Scan` (with a [`FrameInfo`]) to keep.
#[derive(Debug, Clone, PartialEq)]
pub enum Scan<F = FrameInfo> {
    /// A frame's first header byte is at this offset.
    Start(usize),
    /// The frame's header and preview are complete; every byte before this
    /// offset belonging to the frame has been seen.
    Info(usize, F),
    /// The frame ends just before this offset (exclusive).
    End(usize),
    /// The stream broke RFC 6455 here (the bytes are still forwarded).
    Violation(String),
}

impl Scan<Frame<'_>> {
    /// The finding with its frame's [`FrameInfo`] built (preview text,
    /// close code and reason).
    pub fn owned(self) -> Scan {
        match self {
            Scan::Start(p) => Scan::Start(p),
            Scan::Info(p, f) => Scan::Info(p, f.info()),
            Scan::End(p) => Scan::End(p),
            Scan::Violation(v) => Scan::Violation(v),
        }
    }
}

/// Where the scanner reports its findings, one by one, in order. Any
/// `FnMut(Scan<Frame<'_>>)` is one; a type of its own lets the data path's
/// handling be inlined into the scanner.
pub trait Findings {
    /// One finding.
    fn found(&mut self, s: Scan<Frame<'_>>);
}

impl<F: FnMut(Scan<Frame<'_>>)> Findings for F {
    fn found(&mut self, s: Scan<Frame<'_>>) {
        self(s)
    }
}

/// A frame as the scanner saw it: its header, and its payload preview
/// borrowed from the chunk or the scanner (unmasked on demand). Only
/// counting a frame needs nothing more; [`Frame::info`] builds the event's
/// [`FrameInfo`] when it is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame<'a> {
    /// Which way the frame travelled.
    pub dir: Direction,
    /// Frame opcode.
    pub opcode: Opcode,
    /// The FIN bit.
    pub fin: bool,
    /// RSV1..3 as the low three bits.
    pub rsv: u8,
    /// Whether the payload was masked.
    pub masked: bool,
    /// Payload length in bytes.
    pub len: u64,
    /// Up to [`PREVIEW_BYTES`] payload bytes (none for binary), as they
    /// travelled: XOR with [`Frame::mask`] to read them
    /// ([`Frame::preview`]). Unmasking waits until someone reads them, so
    /// a frame that is only counted costs no pass over its payload.
    pub raw_preview: &'a [u8],
    /// The masking key of [`Frame::raw_preview`] (all zero when the bytes
    /// are already plain).
    pub mask: [u8; 4],
}

impl<'a> Frame<'a> {
    /// The preview, unmasked.
    pub fn preview(&self) -> std::borrow::Cow<'a, [u8]> {
        if self.mask == [0; 4] {
            return self.raw_preview.into();
        }
        let m = self.mask;
        let plain = self.raw_preview.iter().enumerate();
        plain.map(|(i, b)| b ^ m[i & 3]).collect::<Vec<u8>>().into()
    }

    /// The preview as lossy UTF-8, unmasked into the string's own buffer.
    fn preview_text(&self) -> String {
        match self.preview() {
            std::borrow::Cow::Borrowed(b) => String::from_utf8_lossy(b).into_owned(),
            std::borrow::Cow::Owned(v) => String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }

    /// The frame's event record: preview as lossy UTF-8 (text, ping, pong,
    /// continuation), close code and reason (close).
    pub fn info(&self) -> FrameInfo {
        let (mut preview, mut close_code, mut close_reason) = (String::new(), None, None);
        match self.opcode {
            Opcode::Close => {
                let p = &*self.preview();
                if p.len() >= 2 {
                    close_code = Some(u16::from_be_bytes([p[0], p[1]]));
                    close_reason = Some(String::from_utf8_lossy(&p[2..]).into_owned());
                }
            }
            Opcode::Binary => {}
            _ => preview = self.preview_text(),
        }
        FrameInfo {
            dir: self.dir,
            opcode: self.opcode,
            fin: self.fin,
            rsv: self.rsv,
            masked: self.masked,
            len: self.len,
            preview,
            close_code,
            close_reason,
            dropped: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    rsv: u8,
    opcode: Opcode,
    masked: bool,
    mask: [u8; 4],
    len: u64,
}

enum State {
    /// Collecting header bytes (`have` of at most 14 in `hdr`).
    Header,
    /// Inside a payload: `seen` of `header.len` bytes passed.
    Payload {
        header: Header,
        seen: u64,
        info_sent: bool,
    },
}

/// Incremental scanner for one direction. Laid out in declaration order
/// (`repr(C)`): the state a whole frame's scan reads comes first, the
/// header and preview buffers of frames split across chunks last.
#[repr(C)]
pub struct FrameScanner {
    state: State,
    have: usize,
    dir: Direction,
    /// Inside a fragmented data message (a continuation is expected).
    in_message: bool,
    hdr: [u8; 14],
    preview_len: usize,
    preview: [u8; PREVIEW_BYTES],
}

impl FrameScanner {
    /// A scanner for bytes travelling in `dir`.
    pub fn new(dir: Direction) -> FrameScanner {
        FrameScanner {
            dir,
            state: State::Header,
            hdr: [0; 14],
            have: 0,
            preview: [0; PREVIEW_BYTES],
            preview_len: 0,
            in_message: false,
        }
    }

    /// Whether the scanner is between frames (no partial header or payload).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header) && self.have == 0
    }

    /// Bytes still to come for the current frame's payload, if inside one.
    pub fn payload_remaining(&self) -> Option<u64> {
        match &self.state {
            State::Payload { header, seen, .. } => Some(header.len - seen),
            State::Header => None,
        }
    }

    /// Scan `chunk`, calling `on` for every finding, in order.
    pub fn feed(&mut self, chunk: &[u8], mut on: impl FnMut(Scan<Frame<'_>>)) {
        self.feed_to(chunk, &mut on)
    }

    /// [`FrameScanner::feed`], reporting to any [`Findings`].
    pub fn feed_to(&mut self, chunk: &[u8], on: &mut impl Findings) {
        let mut pos = 0;
        while pos < chunk.len() {
            if self.at_boundary() {
                if let Some(end) = self.whole_frame(chunk, pos, on) {
                    pos = end;
                    continue;
                }
            }
            match &mut self.state {
                State::Header => {
                    if self.have == 0 {
                        on.found(Scan::Start(pos));
                    }
                    let need = header_len(&self.hdr[..self.have]);
                    let take = (need - self.have).min(chunk.len() - pos);
                    // Copy only as many bytes as the header still needs (its
                    // length is known once the first two bytes are).
                    self.fill_header(&chunk[pos..pos + take]);
                    pos += take;
                    let need = header_len(&self.hdr[..self.have]);
                    if self.have < need {
                        continue;
                    }
                    let header = self.parse_header(on);
                    self.have = 0;
                    self.preview_len = 0;
                    self.state = State::Payload {
                        header,
                        seen: 0,
                        info_sent: false,
                    };
                    self.after_payload_bytes(pos, on);
                }
                State::Payload { header, seen, .. } => {
                    let left = header.len - *seen;
                    let take = (left.min((chunk.len() - pos) as u64)) as usize;
                    // Keep the preview (unmasked) while it is short of the cap.
                    if self.preview_len < PREVIEW_BYTES && wants_preview(header.opcode) {
                        let room = PREVIEW_BYTES - self.preview_len;
                        let n = take.min(room);
                        for i in 0..n {
                            let off = (*seen as usize) + i;
                            let mut b = chunk[pos + i];
                            if header.masked {
                                b ^= header.mask[off & 3];
                            }
                            self.preview[self.preview_len + i] = b;
                        }
                        self.preview_len += n;
                    }
                    *seen += take as u64;
                    pos += take;
                    self.after_payload_bytes(pos, on);
                }
            }
        }
    }

    /// The common case, a frame that starts at `pos` and ends within
    /// `chunk`: reported straight from the chunk (no header copy, no state
    /// change). The offset after it, or `None` if the frame goes on past the
    /// chunk (the byte-by-byte path takes it).
    fn whole_frame(&mut self, chunk: &[u8], pos: usize, on: &mut impl Findings) -> Option<usize> {
        let rest = &chunk[pos..];
        let hlen = header_len(rest);
        if rest.len() < hlen {
            return None;
        }
        let (header, len7) = parse_header(&rest[..hlen]);
        let end = (hlen as u64)
            .checked_add(header.len)
            .filter(|&e| e <= rest.len() as u64)? as usize;
        on.found(Scan::Start(pos));
        self.check(&header, len7, on);
        let n = if wants_preview(header.opcode) {
            (header.len as usize).min(PREVIEW_BYTES)
        } else {
            0
        };
        // The wire bytes and their mask: unmasked only if an event is built.
        let raw = &rest[hlen..hlen + n];
        on.found(Scan::Info(
            pos + end,
            view(self.dir, &header, raw, header.mask),
        ));
        on.found(Scan::End(pos + end));
        Some(pos + end)
    }

    fn fill_header(&mut self, bytes: &[u8]) {
        self.hdr[self.have..self.have + bytes.len()].copy_from_slice(bytes);
        self.have += bytes.len();
    }

    /// Emit `Info` once the preview is complete and `End` at the frame's end.
    fn after_payload_bytes(&mut self, pos: usize, on: &mut impl Findings) {
        let State::Payload {
            header,
            seen,
            info_sent,
        } = &mut self.state
        else {
            return;
        };
        let preview_target = if wants_preview(header.opcode) {
            header.len.min(PREVIEW_BYTES as u64)
        } else {
            0
        };
        if !*info_sent && (*seen >= preview_target) {
            *info_sent = true;
            let header = *header;
            let preview = &self.preview[..self.preview_len];
            on.found(Scan::Info(pos, view(self.dir, &header, preview, [0; 4])));
        }
        let State::Payload { header, seen, .. } = &self.state else {
            return;
        };
        if *seen == header.len {
            self.state = State::Header;
            on.found(Scan::End(pos));
        }
    }

    fn parse_header(&mut self, on: &mut impl Findings) -> Header {
        let (header, len7) = parse_header(&self.hdr[..self.have]);
        self.check(&header, len7, on);
        header
    }

    /// Report what breaks RFC 6455 in this header, and follow fragmented
    /// messages.
    #[inline(always)]
    fn check(&mut self, h: &Header, len7: u8, on: &mut impl Findings) {
        // The common case first: a whole text, binary or control frame with
        // a short length, masked as its direction must be. Nothing to report
        // and no state to change.
        let ordinary = h.fin
            && len7 < 126
            && h.masked == (self.dir == Direction::ToServer)
            && match h.opcode {
                Opcode::Text | Opcode::Binary => !self.in_message,
                Opcode::Ping | Opcode::Pong | Opcode::Close => true,
                _ => false,
            };
        if !ordinary {
            self.check_all(h, len7, on);
        }
    }

    #[inline(never)]
    fn check_all(&mut self, h: &Header, len7: u8, on: &mut impl Findings) {
        if let Opcode::Reserved(n) = h.opcode {
            on.found(Scan::Violation(format!("reserved opcode 0x{n:x}")));
        }
        if len7 == 127 && h.len >> 63 != 0 {
            on.found(Scan::Violation(
                "64-bit payload length with the most significant bit set".into(),
            ));
        }
        if (len7 == 126 && h.len < 126) || (len7 == 127 && h.len <= 0xffff) {
            on.found(Scan::Violation(format!(
                "payload length {} not in minimal encoding",
                h.len
            )));
        }
        if h.opcode.is_control() {
            if h.len > 125 {
                on.found(Scan::Violation(format!(
                    "{} frame with {} bytes of payload (at most 125)",
                    h.opcode.name(),
                    h.len
                )));
            }
            if !h.fin {
                on.found(Scan::Violation(format!(
                    "fragmented {} frame",
                    h.opcode.name()
                )));
            }
        } else {
            match h.opcode {
                Opcode::Continuation if !self.in_message => on.found(Scan::Violation(
                    "continuation frame outside a message".into(),
                )),
                Opcode::Text | Opcode::Binary if self.in_message => {
                    on.found(Scan::Violation(format!(
                        "new {} message before the previous one finished",
                        h.opcode.name()
                    )))
                }
                _ => {}
            }
            if matches!(
                h.opcode,
                Opcode::Continuation | Opcode::Text | Opcode::Binary
            ) {
                self.in_message = !h.fin;
            }
        }
        match (self.dir, h.masked) {
            (Direction::ToServer, false) => {
                on.found(Scan::Violation("unmasked frame from the client".into()))
            }
            (Direction::ToClient, true) => {
                on.found(Scan::Violation("masked frame from the server".into()))
            }
            _ => {}
        }
    }
}

/// A complete header (`h` is exactly [`header_len`] bytes) and its 7-bit
/// length field.
#[inline(always)]
fn parse_header(h: &[u8]) -> (Header, u8) {
    let fin = h[0] & 0x80 != 0;
    let rsv = (h[0] >> 4) & 0x07;
    let opcode = Opcode::from_u8(h[0]);
    let masked = h[1] & 0x80 != 0;
    let len7 = h[1] & 0x7f;
    let (len, off) = match len7 {
        126 => (u16::from_be_bytes([h[2], h[3]]) as u64, 4),
        127 => (
            u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            10,
        ),
        n => (n as u64, 2),
    };
    let mut mask = [0; 4];
    if masked {
        mask.copy_from_slice(&h[off..off + 4]);
    }
    let header = Header {
        fin,
        rsv,
        opcode,
        masked,
        mask,
        len,
    };
    (header, len7)
}

/// The view of a frame whose preview bytes are `raw`, masked with `mask`.
fn view<'a>(dir: Direction, h: &Header, raw: &'a [u8], mask: [u8; 4]) -> Frame<'a> {
    Frame {
        dir,
        opcode: h.opcode,
        fin: h.fin,
        rsv: h.rsv,
        masked: h.masked,
        len: h.len,
        raw_preview: raw,
        mask,
    }
}

/// Binary payloads get no preview (it would be lossy garbage); the rest do,
/// including continuation frames (usually text fragments).
fn wants_preview(op: Opcode) -> bool {
    !matches!(op, Opcode::Binary)
}

/// How long the header is, given its first bytes (2 if fewer than 2 known).
pub fn header_len(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let mut n = match h[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    if h[1] & 0x80 != 0 {
        n += 4;
    }
    n
}

/// Encode a frame (for tests and for injected close frames). `mask` given
/// means the payload is masked with it.
pub fn encode_frame(opcode: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let m = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A close frame payload: code then reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p.truncate(125);
    p
}

#[cfg(test)]
mod tests;
