//! The demo server over real sockets on 127.0.0.1: echo, heartbeats,
//! subscriptions, ping frames, its own pings, close handling, bad peers, and
//! a clean stop.

use flatline::peers::{spawn_demo_server, DemoServerOpts};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

const BOUND: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(addr: SocketAddr, path: &str) -> Ws {
    let url = format!("ws://{addr}{path}");
    let (ws, _) = timeout(BOUND, connect_async(url.as_str()))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    ws
}

/// The next message that is not a ping frame.
async fn next_msg(ws: &mut Ws) -> Message {
    loop {
        let msg = timeout(BOUND, ws.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("no error");
        if !matches!(msg, Message::Ping(_)) {
            return msg;
        }
    }
}

async fn roundtrip(ws: &mut Ws, send: Message) -> Message {
    ws.send(send).await.expect("send");
    next_msg(ws).await
}

#[tokio::test]
async fn echoes_and_answers_heartbeats_and_subscriptions() {
    let (addr, server) = spawn_demo_server(DemoServerOpts::default()).await.unwrap();
    let mut ws = connect(addr, "/feed").await;

    assert_eq!(
        roundtrip(&mut ws, Message::text("hello")).await,
        Message::text("hello")
    );
    assert_eq!(
        roundtrip(&mut ws, Message::Binary(vec![0, 1, 2, 255])).await,
        Message::Binary(vec![0, 1, 2, 255])
    );
    assert_eq!(
        roundtrip(&mut ws, Message::text("ping")).await,
        Message::text("pong")
    );
    assert_eq!(
        roundtrip(&mut ws, Message::text(r#"{"type":"ping"}"#)).await,
        Message::text(r#"{"type":"pong"}"#)
    );
    assert_eq!(
        roundtrip(
            &mut ws,
            Message::text(r#"{"type":"subscribe","channel":"demo"}"#)
        )
        .await,
        Message::text(r#"{"type":"subscribed","channel":"demo"}"#)
    );
    assert_eq!(
        roundtrip(&mut ws, Message::text(r#"{"type":"subscribe"}"#)).await,
        Message::text(r#"{"type":"subscribed"}"#)
    );
    // Not quite JSON: echoed as is.
    assert_eq!(
        roundtrip(&mut ws, Message::text(r#"{"type":"ping""#)).await,
        Message::text(r#"{"type":"ping""#)
    );
    // A ping frame is answered by a pong frame with the same payload.
    ws.send(Message::Ping(b"hb-1".to_vec())).await.unwrap();
    assert_eq!(next_msg(&mut ws).await, Message::Pong(b"hb-1".to_vec()));

    server.stop().await.unwrap();
}

#[tokio::test]
async fn replies_to_a_close_frame_with_a_close_frame() {
    let (addr, server) = spawn_demo_server(DemoServerOpts::default()).await.unwrap();
    let mut ws = connect(addr, "/").await;
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    match next_msg(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a close frame, got {other:?}"),
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sends_its_own_pings_when_asked() {
    let opts = DemoServerOpts {
        ping_every: Some(Duration::from_millis(30)),
        ..Default::default()
    };
    let (addr, server) = spawn_demo_server(opts).await.unwrap();
    let mut ws = connect(addr, "/").await;
    for _ in 0..2 {
        let msg = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(msg, Message::Ping(_)), "got {msg:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sends_no_pings_by_default() {
    let (addr, server) = spawn_demo_server(DemoServerOpts::default()).await.unwrap();
    let mut ws = connect(addr, "/").await;
    // The echo of a marker sent now must be the very next message.
    ws.send(Message::text("marker")).await.unwrap();
    let msg = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(msg, Message::text("marker"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn path_option_rejects_other_paths_with_404() {
    let opts = DemoServerOpts {
        path: Some("/feed".into()),
        ..Default::default()
    };
    let (addr, server) = spawn_demo_server(opts).await.unwrap();
    let url = format!("ws://{addr}/other");
    let err = timeout(BOUND, connect_async(url.as_str()))
        .await
        .unwrap()
        .expect_err("wrong path is rejected");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 404),
        other => panic!("expected an HTTP error, got {other}"),
    }
    let mut ws = connect(addr, "/feed").await;
    assert_eq!(
        roundtrip(&mut ws, Message::text("ping")).await,
        Message::text("pong")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn survives_bad_peers() {
    let (addr, server) = spawn_demo_server(DemoServerOpts::default()).await.unwrap();

    // Garbage instead of an upgrade request.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = timeout(BOUND, raw.read_to_end(&mut buf)).await.unwrap();

    // A valid handshake followed by an unmasked (invalid) client frame.
    let mut ws = connect(addr, "/").await;
    ws.get_mut()
        .get_mut_tcp()
        .write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .unwrap();
    timeout(BOUND, async { while let Some(Ok(_)) = ws.next().await {} })
        .await
        .expect("the server ends the bad connection");

    // A peer that connects and vanishes.
    drop(TcpStream::connect(addr).await.unwrap());

    // The server still serves.
    let mut ws = connect(addr, "/").await;
    assert_eq!(
        roundtrip(&mut ws, Message::text("ping")).await,
        Message::text("pong")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn stop_closes_open_connections_with_1001_and_ends_every_task() {
    let (addr, server) = spawn_demo_server(DemoServerOpts::default()).await.unwrap();
    let mut ws = connect(addr, "/").await;
    assert_eq!(
        roundtrip(&mut ws, Message::text("ping")).await,
        Message::text("pong")
    );
    // A second peer stuck before its handshake must not keep the server alive.
    let _stalled = TcpStream::connect(addr).await.unwrap();

    timeout(BOUND, server.stop())
        .await
        .expect("stop returns once every task ended")
        .unwrap();
    match next_msg(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

trait TcpOf {
    fn get_mut_tcp(&mut self) -> &mut TcpStream;
}

impl TcpOf for MaybeTlsStream<TcpStream> {
    fn get_mut_tcp(&mut self) -> &mut TcpStream {
        match self {
            MaybeTlsStream::Plain(s) => s,
            _ => unreachable!("plain ws:// only"),
        }
    }
}
