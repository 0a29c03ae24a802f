mod common;
use common::*;
use flatline::events::{Direction, EventKind, Opcode, Side};
use flatline::frame::encode_frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn handshake_and_frames_pass_byte_exact() {
    let (server_l, addr) = listener().await;
    let relay = relay_to_addr(addr).await;
    let (mut client, mut server) = raw_pair(&relay, &server_l).await;
    let f = encode_frame(1, true, b"hello", Some([1, 2, 3, 4]));
    client.write_all(&f).await.unwrap();
    assert_eq!(read_exact(&mut server, f.len()).await, f);
    let g = encode_frame(2, true, &[9; 300], None);
    server.write_all(&g).await.unwrap();
    assert_eq!(read_exact(&mut client, g.len()).await, g);
    let log = relay.log().clone();
    let e = wait_event(&log, |e| matches!(&e.kind, EventKind::Frame(f) if f.dir == Direction::ToServer)).await;
    let EventKind::Frame(fi) = e.kind else { unreachable!() };
    assert_eq!(fi.opcode, Opcode::Text);
    assert_eq!(fi.preview, "hello");
    assert!(fi.masked);
    wait_event(&log, |e| matches!(e.kind, EventKind::Open)).await;
    drop(client);
    // FIN from the client reaches the server as EOF.
    let mut rest = Vec::new();
    tokio::time::timeout(T, server.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty());
    wait_event(&log, |e| matches!(e.kind, EventKind::Fin { from: Side::Client })).await;
    drop(server);
    wait_closed(&log, 1).await;
    relay.stop().await;
}
