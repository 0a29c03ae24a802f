//! HTTP/1.1 upgrade heads: read the client's request head (bounded), rewrite
//! `Host` and strip `Sec-WebSocket-Extensions`, and recognise the server's
//! response status. Bytes behind a head are returned, never lost.

use tokio::io::AsyncReadExt;

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Why a request head could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Over [`MAX_HEAD`].
    #[error("request head over {MAX_HEAD} bytes")]
    TooLarge,
    /// Not HTTP.
    #[error("malformed request head: {0}")]
    Malformed(String),
    /// The client closed before the head was complete.
    #[error("client closed after {0} bytes, before the request head was complete")]
    Eof(usize),
    /// I/O.
    #[error("reading the request head: {0}")]
    Io(#[from] std::io::Error),
}

/// A parsed and rewritten request.
#[derive(Debug)]
pub struct Request {
    /// Request target as sent.
    pub path: String,
    /// The head to send upstream (Host rewritten, extensions stripped).
    pub head: Vec<u8>,
    /// Bytes that followed the head.
    pub rest: Vec<u8>,
    /// Length of the head as the client sent it (before any rewrite).
    pub raw_len: u64,
    /// Whether `Sec-WebSocket-Extensions` was removed.
    pub extensions_removed: bool,
}

/// Position just past `\r\n\r\n`, if present.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Read the request head from the client.
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    client: &mut S,
    host: &str,
    keep_extensions: bool,
) -> Result<Request, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Eof(buf.len()));
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(e) = head_end(&buf[scan_from..]) {
            break scan_from + e;
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    };
    if end > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    rewrite_request(&buf[..end], host, keep_extensions).map(|(path, head, removed)| Request {
        path,
        head,
        rest: buf[end..].to_vec(),
        raw_len: end as u64,
        extensions_removed: removed,
    })
}

/// What a client's first bytes turned out to be (with raw fallback on).
#[derive(Debug)]
pub enum First {
    /// A WebSocket upgrade request.
    Upgrade(Request),
    /// Anything else (another protocol, plain HTTP, or nothing within the
    /// silence: a protocol where the server speaks first): relayed as raw
    /// TCP. The bytes read so far, unchanged, and why.
    Raw(Vec<u8>, &'static str),
}

/// Read the client's first bytes: a WebSocket upgrade request head, or
/// anything else, which is then relayed as raw TCP. A client that sends
/// nothing for `silence`, or stops that long before its head is whole, is
/// raw too.
pub async fn read_first<S: tokio::io::AsyncRead + Unpin>(
    client: &mut S,
    host: &str,
    keep_extensions: bool,
    silence: std::time::Duration,
) -> Result<First, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // A client that pauses mid-head is waiting for an answer: not HTTP.
        let n = match tokio::time::timeout(silence, client.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) if buf.is_empty() => {
                return Ok(First::Raw(buf, "the client sent nothing first"))
            }
            Err(_) => return Ok(First::Raw(buf, "the first bytes are not a whole HTTP head")),
        };
        if n == 0 {
            if buf.is_empty() {
                return Err(HeadError::Eof(0));
            }
            return Ok(First::Raw(
                buf,
                "the client closed before a complete request head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        // Every HTTP method is upper-case letters then a space.
        let method = buf.iter().take_while(|b| **b != b' ');
        if !method.clone().all(u8::is_ascii_uppercase) || method.count() > 16 {
            return Ok(First::Raw(buf, "the first bytes are not HTTP"));
        }
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Err(_) => return Ok(First::Raw(buf, "the first bytes are not HTTP")),
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Ok(First::Raw(buf, "the first bytes are not HTTP"))
            }
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(end)) => {
                let upgrade = req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("upgrade")
                        && String::from_utf8_lossy(h.value)
                            .to_ascii_lowercase()
                            .contains("websocket")
                });
                if !upgrade {
                    return Ok(First::Raw(
                        buf,
                        "an HTTP request without a WebSocket upgrade",
                    ));
                }
                let (path, head, removed) = rewrite_request(&buf[..end], host, keep_extensions)?;
                return Ok(First::Upgrade(Request {
                    path,
                    head,
                    rest: buf[end..].to_vec(),
                    raw_len: end as u64,
                    extensions_removed: removed,
                }));
            }
        }
    }
}

/// Parse a complete request head and produce the head for upstream.
pub fn rewrite_request(
    raw: &[u8],
    host: &str,
    keep_extensions: bool,
) -> Result<(String, Vec<u8>, bool), HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete".into())),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    }
    let method = req.method.unwrap_or("GET");
    let path = req.path.unwrap_or("/").to_string();
    let version = req.version.unwrap_or(1);
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.{version}\r\n").as_bytes());
    let mut removed = false;
    let mut host_written = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if !host_written {
                out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
                host_written = true;
            }
            continue;
        }
        if !keep_extensions && h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            removed = true;
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    if !host_written {
        out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok((path, out, removed))
}

/// The status code of a complete response head, if it parses.
pub fn response_status(raw: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(raw) {
        Ok(httparse::Status::Complete(_)) => resp.code,
        _ => None,
    }
}

/// A minimal HTTP response with a plain-text body, then the caller sends FIN.
pub fn http_response(
    status: u16,
    reason: &str,
    headers: &[(String, String)],
    body: &str,
) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!(
        "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.into_bytes()
}

/// The reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_host_and_strips_extensions() {
        let raw = b"GET /feed?x=1 HTTP/1.1\r\nHost: 127.0.0.1:5555\r\nUpgrade: websocket\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
        let (path, head, removed) = rewrite_request(raw, "127.0.0.1:9001", false).unwrap();
        assert_eq!(path, "/feed?x=1");
        assert!(removed);
        let s = String::from_utf8(head).unwrap();
        assert!(s.contains("Host: 127.0.0.1:9001\r\n"));
        assert!(!s.contains("Extensions"));
        assert!(s.ends_with("\r\n\r\n"));
        let (_, head, removed) = rewrite_request(raw, "h:1", true).unwrap();
        assert!(!removed);
        assert!(String::from_utf8(head)
            .unwrap()
            .contains("permessage-deflate"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(rewrite_request(b"\x00\x01garbage\r\n\r\n", "h", false).is_err());
    }

    async fn first(bytes: &'static [u8]) -> First {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        let mut c = tokio::net::TcpStream::connect(a).await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut c, bytes)
            .await
            .unwrap();
        read_first(&mut s, "h:1", false, std::time::Duration::from_millis(200))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn first_bytes_decide_websocket_or_raw() {
        let up = first(
            b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nrest",
        )
        .await;
        assert!(matches!(up, First::Upgrade(r) if r.path == "/x" && r.rest == b"rest"));
        let redis = first(b"*1\r\n$4\r\nPING\r\n").await;
        assert!(matches!(redis, First::Raw(b, _) if b == b"*1\r\n$4\r\nPING\r\n"));
        let plain = first(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(matches!(plain, First::Raw(_, why) if why.contains("without a WebSocket upgrade")));
        let hello = first(b"hello").await;
        assert!(matches!(hello, First::Raw(b, _) if b == b"hello"));
        let waiting = first(b"HELLO").await;
        assert!(matches!(waiting, First::Raw(b, why) if b == b"HELLO" && why.contains("whole")));
        let silent = first(b"").await;
        assert!(matches!(silent, First::Raw(b, _) if b.is_empty()));
    }

    #[test]
    fn status_of_response() {
        assert_eq!(
            response_status(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
            Some(101)
        );
        assert_eq!(
            response_status(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n"),
            Some(503)
        );
    }
}
