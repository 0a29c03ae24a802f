//! wss:// on both legs, on real sockets on 127.0.0.1 with rustls on every
//! side: byte-exact relaying, a partition that holds and flushes,
//! close_notify as the FIN, RST as RST, and handshake failures that are
//! events with clear messages (never hangs).

mod common;
use common::*;
use flatline::events::{Direction, EventKind, EventLog, Side};
use flatline::faults::{self, Fault};
use flatline::frame::encode_frame;
use flatline::relay::{Relay, RelayConfig};
use flatline::scenario::{Connections, FaultKind};
use flatline::tls::{self, GeneratedCert, ListenCert, ServerTls, UpstreamTrust};
use rustls::pki_types::ServerName;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;
type ServerSideTls = tokio_rustls::server::TlsStream<TcpStream>;

/// A certificate for localhost and 127.0.0.1, its server settings, and
/// client settings that trust it.
struct Pki {
    cert: GeneratedCert,
    server: Arc<ServerTls>,
    client: Arc<rustls::ClientConfig>,
}

fn pki() -> Pki {
    let cert = tls::generate_cert(None).unwrap();
    let server = ServerTls::load(&ListenCert::Files {
        cert: cert.cert_path.clone(),
        key: cert.key_path.clone(),
    })
    .unwrap();
    let client = tls::client_config(&UpstreamTrust::CaFile(cert.cert_path.clone())).unwrap();
    Pki {
        cert,
        server: Arc::new(server),
        client,
    }
}

/// A relay with TLS on the legs asked for; the upstream trusts `pki`.
async fn relay(pki: &Pki, upstream: SocketAddr, client_tls: bool, server_tls: bool) -> Relay {
    let scheme = if server_tls { "wss" } else { "ws" };
    let mut cfg =
        RelayConfig::new(&format!("{scheme}://127.0.0.1:{}/feed", upstream.port())).unwrap();
    if client_tls {
        cfg.tls = Some(pki.server.clone());
    }
    cfg.upstream_trust = UpstreamTrust::CaFile(pki.cert.cert_path.clone());
    Relay::start(cfg, EventLog::new()).await.unwrap()
}

async fn tls_connect(
    cfg: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> std::io::Result<ClientTls> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(T, TlsConnector::from(cfg.clone()).connect(name, tcp))
        .await
        .expect("TLS connect timeout")
}

async fn tls_accept(pki: &Pki, l: &TcpListener) -> ServerSideTls {
    let (tcp, _) = tokio::time::timeout(T, l.accept()).await.unwrap().unwrap();
    tokio::time::timeout(T, TlsAcceptor::from(pki.server.config.clone()).accept(tcp))
        .await
        .unwrap()
        .unwrap()
}

async fn head_of<S: AsyncRead + Unpin>(s: &mut S) -> (Vec<u8>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(T, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "eof before head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(p + 4);
            return (buf, rest);
        }
    }
}

async fn exact<S: AsyncRead + Unpin>(s: &mut S, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    tokio::time::timeout(T, s.read_exact(&mut v))
        .await
        .unwrap()
        .unwrap();
    v
}

async fn to_end<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut v))
        .await
        .unwrap()?;
    Ok(v)
}

/// Client (TLS) ↔ relay ↔ server (TLS), WebSocket open.
async fn tls_pair(pki: &Pki) -> (Relay, ClientTls, ServerSideTls) {
    let (l, addr) = listener().await;
    let relay = relay(pki, addr, true, true).await;
    assert!(relay.url().starts_with("wss://127.0.0.1:"));
    let mut client = tls_connect(&pki.client, relay.addr()).await.unwrap();
    client.write_all(&upgrade_request("/feed")).await.unwrap();
    let mut server = tls_accept(pki, &l).await;
    let (_, rest) = head_of(&mut server).await;
    assert!(rest.is_empty());
    server.write_all(SWITCHING).await.unwrap();
    let (head, rest) = head_of(&mut client).await;
    assert!(head.starts_with(b"HTTP/1.1 101"));
    assert!(rest.is_empty());
    (relay, client, server)
}

/// No byte (no record) is waiting on the raw socket under a TLS stream.
fn no_records(tcp: &TcpStream) {
    let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 16];
    match socket2::SockRef::from(tcp).peek(&mut b) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected no TLS records, got {other:?}"),
    }
}

fn start(relay: &Relay, name: &str, yaml: &str) {
    let k: FaultKind = serde_yaml::from_str(yaml).unwrap();
    let f: Arc<dyn Fault> = Arc::from(faults::build(&k).unwrap());
    relay
        .board()
        .start_fault(name, f, &Connections::default(), k.is_instant());
}

#[tokio::test]
async fn relays_bytes_unchanged_over_tls_on_both_legs() {
    let pki = pki();
    let (relay, mut client, mut server) = tls_pair(&pki).await;
    let log = relay.log().clone();
    // Masked, fragmented, a ping between fragments, a large binary frame.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let up = [
        encode_frame(1, false, b"frag-", Some([1, 2, 3, 4])),
        encode_frame(9, true, b"mid", Some([9, 9, 9, 9])),
        encode_frame(0, true, b"ment", Some([5, 6, 7, 8])),
        encode_frame(2, true, &big, Some([0xa, 0xb, 0xc, 0xd])),
    ]
    .concat();
    let down = [
        encode_frame(1, true, b"hello", None),
        encode_frame(2, true, &big, None),
        encode_frame(10, true, b"pong", None),
    ]
    .concat();
    // A TLS stream may keep the last records until flushed.
    let (w1, r1) = tokio::join!(
        async {
            client.write_all(&up).await?;
            client.flush().await
        },
        exact(&mut server, up.len())
    );
    w1.unwrap();
    assert_eq!(r1, up);
    let (w2, r2) = tokio::join!(
        async {
            server.write_all(&down).await?;
            server.flush().await
        },
        exact(&mut client, down.len())
    );
    w2.unwrap();
    assert_eq!(r2, down);
    // The frame observer saw decrypted frames.
    let f = wait_frames(&log, 1, Direction::ToServer, 4).await;
    assert_eq!(
        f.iter().map(|f| f.len).collect::<Vec<_>>(),
        [5, 3, 4, 300_000]
    );
    assert_eq!(wait_frames(&log, 1, Direction::ToClient, 3).await.len(), 3);
}

#[tokio::test]
async fn partition_holds_tls_records_then_flushes_in_order() {
    let pki = pki();
    let (relay, mut client, mut server) = tls_pair(&pki).await;
    let log = relay.log().clone();
    start(&relay, "outage", "kind: partition");
    let f1 = encode_frame(1, true, b"one", Some([1, 2, 3, 4]));
    let f2 = encode_frame(1, true, b"two", Some([5, 6, 7, 8]));
    client.write_all(&f1).await.unwrap();
    wait_event(&log, |e| {
        matches!(
            &e.kind,
            EventKind::Held {
                dir: Direction::ToServer,
                ..
            }
        )
    })
    .await;
    client.write_all(&f2).await.unwrap();
    client.shutdown().await.unwrap(); // close_notify + FIN
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::Fin { from: Side::Client })
    })
    .await;
    no_records(server.get_ref().0);
    let g = encode_frame(1, true, b"down", None);
    server.write_all(&g).await.unwrap();
    wait_event(&log, |e| {
        matches!(
            &e.kind,
            EventKind::Held {
                dir: Direction::ToClient,
                ..
            }
        )
    })
    .await;
    no_records(client.get_ref().0);
    relay.board().stop_fault("outage");
    // Everything, in order, then a clean end (close_notify: no truncation error).
    assert_eq!(to_end(&mut server).await.unwrap(), [f1, f2].concat());
    assert_eq!(exact(&mut client, g.len()).await, g);
}

#[tokio::test]
async fn close_notify_is_the_fin_and_the_other_direction_keeps_working() {
    let pki = pki();
    let (relay, mut client, mut server) = tls_pair(&pki).await;
    let log = relay.log().clone();
    let close = encode_frame(8, true, &[0x03, 0xe8], Some([1, 1, 1, 1]));
    client.write_all(&close).await.unwrap();
    client.shutdown().await.unwrap();
    // The server reads the frame, then a clean end: close_notify arrived
    // (tokio-rustls reports a FIN without it as UnexpectedEof).
    assert_eq!(to_end(&mut server).await.unwrap(), close);
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::FinSent { to: Side::Server }
    )));
    // Half-closed: the server still talks to the client.
    let reply = encode_frame(8, true, &[0x03, 0xe8], None);
    server.write_all(&reply).await.unwrap();
    server.shutdown().await.unwrap();
    assert_eq!(to_end(&mut client).await.unwrap(), reply);
    let closed = wait_closed(&log, 1).await;
    assert!(matches!(
        closed.kind,
        EventKind::Closed {
            how: flatline::events::Ending::Fin
        }
    ));
}

#[tokio::test]
async fn half_close_sends_close_notify_and_fin_toward_the_client() {
    let pki = pki();
    let (relay, mut client, mut server) = tls_pair(&pki).await;
    start(&relay, "hc", "{kind: half_close, toward: client}");
    assert_eq!(to_end(&mut client).await.unwrap(), b"");
    let f = encode_frame(1, true, b"still", Some([1, 2, 3, 4]));
    client.write_all(&f).await.unwrap();
    assert_eq!(exact(&mut server, f.len()).await, f);
}

#[tokio::test]
async fn rst_on_one_tls_leg_is_an_rst_on_the_other() {
    let pki = pki();
    let (relay, client, mut server) = tls_pair(&pki).await;
    let log = relay.log().clone();
    reset(client.into_inner().0);
    let r = to_end(&mut server).await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::ConnectionReset);
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::RstSent { to: Side::Server })
    })
    .await;
    assert!(has(&log, 1, |k| matches!(
        k,
        EventKind::Rst { from: Side::Client }
    )));
}

#[tokio::test]
async fn reset_fault_is_a_tcp_rst_under_tls() {
    let pki = pki();
    let (relay, mut client, _server) = tls_pair(&pki).await;
    start(&relay, "rst", "{kind: reset, toward: client}");
    assert_eq!(
        to_end(&mut client).await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
}

/// A raw client through a plain listener gets `status`; the log has `want`.
async fn upstream_fails_with(relay: &Relay, want: &str) {
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(&upgrade_request("/feed")).await.unwrap();
    let (head, _) = read_head(&mut c).await;
    assert!(
        head.starts_with(b"HTTP/1.1 502"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let e = wait_event(relay.log(), |e| {
        matches!(e.kind, EventKind::UpstreamFailed { .. })
    })
    .await;
    let EventKind::UpstreamFailed { error } = e.kind else {
        unreachable!()
    };
    assert!(error.contains(want), "{error}");
}

/// An upstream TLS server that completes handshakes it can (and drops the rest).
fn tls_upstream(l: TcpListener, cfg: Arc<rustls::ServerConfig>) {
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acc = TlsAcceptor::from(cfg.clone());
            tokio::spawn(async move {
                if let Ok(mut s) = acc.accept(tcp).await {
                    let _ = head_of_quiet(&mut s).await;
                }
            });
        }
    });
}

async fn head_of_quiet<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> std::io::Result<()> {
    let mut b = [0u8; 1024];
    while s.read(&mut b).await? > 0 {}
    Ok(())
}

#[tokio::test]
async fn upstream_name_mismatch_is_an_event_and_a_502() {
    let pki = pki();
    let other = rcgen::generate_simple_self_signed(vec!["other.example".to_string()]).unwrap();
    let cfg = tls::server_config(
        vec![other.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(other.key_pair.serialize_der().into()),
    )
    .unwrap();
    let ca = pki.cert.cert_path.parent().unwrap().join("other.pem");
    std::fs::write(&ca, other.cert.pem()).unwrap();
    let (l, addr) = listener().await;
    tls_upstream(l, cfg);
    let mut rc = RelayConfig::new(&format!("wss://127.0.0.1:{}/feed", addr.port())).unwrap();
    rc.upstream_trust = UpstreamTrust::CaFile(ca);
    let relay = Relay::start(rc, EventLog::new()).await.unwrap();
    upstream_fails_with(&relay, "name mismatch").await;
}

#[tokio::test]
async fn upstream_unknown_ca_is_an_event_and_a_502() {
    let pki = pki();
    let (l, addr) = listener().await;
    tls_upstream(l, pki.server.config.clone());
    // System roots do not know the self-signed certificate.
    let relay = relay_to(&format!("wss://127.0.0.1:{}/feed", addr.port())).await;
    upstream_fails_with(&relay, "certificate unknown").await;
}

#[tokio::test]
async fn plain_upstream_behind_wss_is_a_clear_error() {
    let pki = pki();
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        // A plain HTTP server: answers anything with a 400 and closes.
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let relay = relay(&pki, addr, false, true).await;
    upstream_fails_with(&relay, "TLS handshake failed").await;
}

async fn bad_request(log: &EventLog) -> String {
    let e = wait_event(log, |e| matches!(e.kind, EventKind::BadRequest { .. })).await;
    let EventKind::BadRequest { reason } = e.kind else {
        unreachable!()
    };
    reason
}

#[tokio::test]
async fn client_that_does_not_trust_the_relay_is_an_event() {
    let pki = pki();
    let (_l, addr) = listener().await;
    let relay = relay(&pki, addr, true, false).await;
    let stranger = pki_other_ca();
    let r = tls_connect(&stranger, relay.addr()).await;
    assert!(r.is_err());
    let reason = bad_request(relay.log()).await;
    assert!(
        reason.contains("TLS handshake with the client failed"),
        "{reason}"
    );
    assert!(reason.contains("alert"), "{reason}");
}

fn pki_other_ca() -> Arc<rustls::ClientConfig> {
    let other = tls::generate_cert(None).unwrap();
    tls::client_config(&UpstreamTrust::CaFile(other.cert_path.clone())).unwrap()
}

#[tokio::test]
async fn plain_http_to_the_tls_listener_gets_a_400_and_an_event() {
    let pki = pki();
    let (_l, addr) = listener().await;
    let relay = relay(&pki, addr, true, false).await;
    let mut c = TcpStream::connect(relay.addr()).await.unwrap();
    c.write_all(&upgrade_request("/feed")).await.unwrap();
    let (head, _) = read_head(&mut c).await;
    assert!(head.starts_with(b"HTTP/1.1 400"));
    assert!(bad_request(relay.log()).await.contains("plain HTTP"));
}

#[tokio::test]
async fn tls_to_the_plain_listener_is_an_event() {
    let pki = pki();
    let (_l, addr) = listener().await;
    let relay = relay(&pki, addr, false, false).await;
    assert!(tls_connect(&pki.client, relay.addr()).await.is_err());
    assert!(bad_request(relay.log())
        .await
        .contains("TLS handshake (wss://) on a plain"));
}

#[tokio::test]
async fn records_behind_a_full_socket_then_close_notify_arrive_in_order() {
    let pki = pki();
    let (l, addr) = listener().await;
    let relay = relay(&pki, addr, true, true).await;
    let log = relay.log().clone();
    // A client with a small receive buffer: the relay's socket toward it
    // fills, rustls keeps records the socket did not take, and the FIN
    // (close_notify first) waits behind them.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(8 * 1024).unwrap();
    sock.connect(&relay.addr().into()).unwrap();
    sock.set_nonblocking(true).unwrap();
    let tcp = TcpStream::from_std(sock.into()).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut client = TlsConnector::from(pki.client.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    client.write_all(&upgrade_request("/feed")).await.unwrap();
    let mut server = tls_accept(&pki, &l).await;
    head_of(&mut server).await;
    server.write_all(SWITCHING).await.unwrap();
    head_of(&mut client).await;
    // Far over the socket buffers: the client's small window keeps the
    // relay's socket toward it full, so records wait in rustls most of the
    // time, and when the server's FIN is read (the relay reads a source only
    // while nothing waits in its queue) the last records are still there:
    // close_notify and the FIN must go behind them.
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
    let frame = encode_frame(2, true, &big, None);
    let writer = tokio::spawn(async move {
        server.write_all(&frame).await.unwrap();
        server.shutdown().await.unwrap();
        (server, frame)
    });
    let got = to_end(&mut client).await.unwrap();
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::Fin { from: Side::Server })
    })
    .await;
    let (_server, frame) = writer.await.unwrap();
    assert_eq!(got.len(), frame.len());
    assert!(got == frame);
}

#[tokio::test]
async fn lose_fin_loses_close_notify_with_the_fin() {
    let pki = pki();
    let (relay, mut client, mut server) = tls_pair(&pki).await;
    let log = relay.log().clone();
    start(&relay, "lost", "{kind: lose_fin, from: server}");
    let close = encode_frame(8, true, &flatline::frame::close_payload(1000, ""), None);
    server.write_all(&close).await.unwrap();
    server.shutdown().await.unwrap(); // close_notify + FIN
    wait_event(&log, |e| {
        matches!(e.kind, EventKind::Fin { from: Side::Server })
    })
    .await;
    wait_event(&log, |e| {
        matches!(
            &e.kind,
            EventKind::Held {
                dir: Direction::ToClient,
                ..
            }
        )
    })
    .await;
    // Neither the close frame's record nor close_notify nor FIN reached the client.
    no_records(client.get_ref().0);
    // The client's direction still works.
    let f = encode_frame(1, true, b"still here", Some([1, 1, 1, 1]));
    client.write_all(&f).await.unwrap();
    assert_eq!(exact(&mut server, f.len()).await, f);
}
