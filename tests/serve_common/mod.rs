//! Helpers for the `flatline serve` tests: a server on 127.0.0.1:0, a tiny
//! HTTP/1.1 client (one request per connection) and a WebSocket client.
#![allow(dead_code)]

use flatline::peers::server::{spawn_demo_server, DemoServerHandle, DemoServerOpts};
use flatline::serve::{ServeOptions, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Bounded wait for anything in tests.
pub const T: Duration = Duration::from_secs(15);

/// A server on 127.0.0.1, any port.
pub async fn server() -> Server {
    let opts = ServeOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        allow_remote: false,
    };
    Server::start(opts, CancellationToken::new()).await.unwrap()
}

/// The demo server (echo) on 127.0.0.1, any port.
pub async fn echo() -> (SocketAddr, DemoServerHandle) {
    spawn_demo_server(DemoServerOpts::default()).await.unwrap()
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(p) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..p]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[p + 2..p + 2 + size]);
        b = &b[p + 2 + size + 2..];
    }
}

/// Send one request and read the whole answer.
pub async fn http(api: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    let fut = async {
        let mut s = TcpStream::connect(api).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let p = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head");
        let head = String::from_utf8_lossy(&raw[..p]).to_string();
        let status = head[9..12].parse().unwrap();
        let rest = &raw[p + 4..];
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_vec()
        };
        Answer {
            status,
            head,
            body: String::from_utf8_lossy(&body).to_string(),
        }
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("HTTP answer in time")
}

/// A WebSocket client.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Connect to `url`.
pub async fn ws(url: &str) -> Ws {
    tokio::time::timeout(T, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .unwrap()
        .0
}

/// Send a text and wait for its echo (the demo server echoes).
pub async fn echo_text(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.unwrap();
    let fut = async {
        while let Some(m) = ws.next().await {
            if let Message::Text(t) = m.unwrap() {
                if t.contains(text) {
                    return;
                }
            }
        }
        panic!("closed before the echo of {text}");
    };
    tokio::time::timeout(T, fut).await.expect("echo in time");
}

/// Follow a session's events until one line satisfies `pred` (bounded).
pub async fn wait_event(api: SocketAddr, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    use tokio::io::AsyncBufReadExt;
    let fut = async {
        let mut s = TcpStream::connect(api).await.unwrap();
        let req = format!("GET /sessions/{id}/events?follow=true HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut lines = tokio::io::BufReader::new(s).lines();
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                if pred(&v) {
                    return v;
                }
            }
        }
        panic!("the event stream of {id} ended");
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("the event in time")
}
