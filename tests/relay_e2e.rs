//! Real WebSocket peers end to end (tokio-tungstenite on both sides), many
//! connections at once, and stopping the relay.
mod common;
use common::*;
use flatline::events::{Direction, Ending, EventKind, Opcode};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(T, ws.next())
        .await
        .expect("no message in time")
        .expect("stream ended")
        .expect("ws error")
}

#[tokio::test]
async fn tungstenite_end_to_end_with_fragments_and_pings() {
    let relay = relay_to(&format!("ws://{}/chat", ws_echo_server().await)).await;
    let log = relay.log().clone();
    let (mut ws, resp) = tokio::time::timeout(T, tokio_tungstenite::connect_async(relay.url()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 101);
    // Plain messages.
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Text("hello".into()));
    ws.send(Message::Binary(vec![7; 100_000])).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Binary(vec![7; 100_000]));
    // A fragmented message with a ping in the middle, from the client.
    for f in [
        Frame::message(b"abc".to_vec(), OpCode::Data(Data::Text), false),
        Frame::ping(b"between".to_vec()),
        Frame::message(b"def".to_vec(), OpCode::Data(Data::Continue), true),
    ] {
        ws.feed(Message::Frame(f)).await.unwrap();
    }
    ws.flush().await.unwrap();
    // The server's tungstenite answers the ping (not the relay) and echoes the whole message.
    assert_eq!(next(&mut ws).await, Message::Pong(b"between".to_vec()));
    assert_eq!(next(&mut ws).await, Message::Text("abcdef".into()));
    // A fragmented message with a ping in the middle, from the server.
    ws.send(Message::Text("fragment-me".into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Ping(b"mid".to_vec()));
    assert_eq!(next(&mut ws).await, Message::Text("frag-mented".into()));
    // Server ping, client pong (tungstenite answers while reading).
    ws.send(Message::Text("ping-me".into())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::Ping(b"srv".to_vec()));
    assert_eq!(next(&mut ws).await, Message::Text("got pong: srv".into()));
    // Close handshake.
    ws.close(None).await.unwrap();
    match tokio::time::timeout(T, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(_))) | None => {}
        Some(Ok(m)) => panic!("unexpected {m:?}"),
        Some(Err(e)) => panic!("{e}"),
    }
    drop(ws);
    wait_closed(&log, 1).await;
    let up: Vec<_> = frames(&log, 1, Direction::ToServer)
        .iter()
        .map(|f| (f.opcode, f.fin))
        .collect();
    use Opcode::*;
    assert_eq!(
        up,
        [
            (Text, true),
            (Binary, true),
            (Text, false),
            (Ping, true),
            (Continuation, true),
            (Text, true),
            (Pong, true),
            (Text, true),
            (Pong, true),
            (Close, true)
        ]
    );
    let down: Vec<_> = frames(&log, 1, Direction::ToClient)
        .iter()
        .map(|f| (f.opcode, f.fin))
        .collect();
    assert_eq!(
        down,
        [
            (Text, true),
            (Binary, true),
            (Pong, true),
            (Text, true),
            (Text, false),
            (Continuation, false),
            (Ping, true),
            (Continuation, true),
            (Ping, true),
            (Text, true),
            (Close, true)
        ]
    );
    assert!(log
        .events()
        .iter()
        .all(|e| !matches!(e.kind, EventKind::ProtocolError { .. })));
    relay.stop().await;
}

#[tokio::test]
async fn two_hundred_connections_no_cross_talk() {
    let relay = relay_to(&format!("ws://{}/echo", ws_echo_server().await)).await;
    let log = relay.log().clone();
    let url = relay.url();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio::time::timeout(T, tokio_tungstenite::connect_async(url))
                .await
                .unwrap()
                .unwrap();
            for round in 0..3u32 {
                let text = format!("connection {i} round {round}");
                let bin: Vec<u8> = (0..(1000 + i * 37))
                    .map(|k| (k ^ i ^ round) as u8)
                    .collect();
                ws.send(Message::Text(text.clone())).await.unwrap();
                ws.send(Message::Binary(bin.clone())).await.unwrap();
                assert_eq!(next(&mut ws).await, Message::Text(text));
                assert_eq!(next(&mut ws).await, Message::Binary(bin));
            }
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = tokio::time::timeout(T, ws.next()).await.unwrap() {}
        }));
    }
    for t in tasks {
        tokio::time::timeout(T * 3, t).await.unwrap().unwrap();
    }
    for n in 1..=200 {
        wait_closed(&log, n).await;
    }
    let opens = log
        .events()
        .iter()
        .filter(|e| e.kind == EventKind::Open)
        .count();
    assert_eq!(opens, 200);
    relay.stop().await;
}

#[tokio::test]
async fn stop_closes_connections_and_leaves_no_task() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let log = relay.log().clone();
    let relay_addr = relay.addr();
    let mut pairs = Vec::new();
    for _ in 0..3 {
        pairs.push(raw_pair(&relay, &server_l).await);
    }
    // One more connection stuck before its head is complete.
    let mut half = tokio::net::TcpStream::connect(relay_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, b"GET / HTTP/1.1\r\n")
        .await
        .unwrap();
    wait_event(&log, |e| {
        e.conn == Some(4) && matches!(e.kind, EventKind::Accept { .. })
    })
    .await;
    // `stop` returns only once the task tracker is empty.
    tokio::time::timeout(T, relay.stop())
        .await
        .expect("stop did not finish");
    for (mut c, mut s) in pairs {
        let (got, r) = read_until_end(&mut c).await;
        assert!(got.is_empty() && r.is_ok(), "client: {r:?}");
        let (got, r) = read_until_end(&mut s).await;
        assert!(got.is_empty() && r.is_ok(), "server: {r:?}");
    }
    let (got, r) = read_until_end(&mut half).await;
    assert!(got.is_empty() && r.is_ok(), "half-open client: {r:?}");
    for n in 1..=4 {
        assert!(
            has(&log, n, |k| *k
                == EventKind::Closed {
                    how: Ending::Shutdown
                }),
            "conn {n}"
        );
    }
    // The listener is gone too.
    assert!(tokio::net::TcpStream::connect(relay_addr).await.is_err());
}
