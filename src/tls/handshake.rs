//! The TLS handshakes before a connection is relayed: the client's (or the
//! check that a plain listener is not spoken TLS to), and the upstream's.
//! Each is bounded and fails with a reason that names the usual causes.

use super::{describe_error, server_name, AsyncStream, ServerTls, TlsStream};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long a client gets for its TLS handshake.
pub const CLIENT_TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the upstream gets for its TLS handshake.
pub const UPSTREAM_TLS_TIMEOUT: Duration = Duration::from_secs(5);

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The client's TLS handshake when the listener has a certificate. `Err`
/// is the reason (a client speaking plain HTTP to a TLS listener got a 400
/// first; one starting TLS on a plain listener is named as such).
pub async fn accept_client(
    client: TcpStream,
    tls: Option<&ServerTls>,
) -> Result<AsyncStream, String> {
    let mut first = [0u8; 1];
    let peeked = match tls {
        // A plain listener waits for the request head as long as it always did.
        None => client.peek(&mut first).await,
        Some(_) => tokio::time::timeout(CLIENT_TLS_TIMEOUT, client.peek(&mut first))
            .await
            .map_err(|_| {
                format!(
                    "TLS handshake with the client: nothing received within {} s",
                    CLIENT_TLS_TIMEOUT.as_secs()
                )
            })?,
    };
    let got_byte = matches!(peeked, Ok(1));
    let is_tls = got_byte && first[0] == TLS_HANDSHAKE;
    let Some(server_tls) = tls else {
        if is_tls {
            return Err(
                "the client started a TLS handshake (wss://) on a plain ws:// listener: \
                 connect with ws://, or start flatline with --tls auto or --tls-cert/--tls-key"
                    .into(),
            );
        }
        return Ok(AsyncStream::Tcp(client));
    };
    if got_byte && !is_tls {
        let mut client = client;
        let body = "flatline: this is a TLS (wss://) listener\n";
        let _ = client
            .write_all(&crate::relay::handshake::http_response(
                400,
                "Bad Request",
                &[],
                body,
            ))
            .await;
        let _ = client.shutdown().await;
        return Err(
            "the client spoke plain HTTP (ws://) to a TLS listener: connect with wss://".into(),
        );
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls.config.clone());
    match tokio::time::timeout(CLIENT_TLS_TIMEOUT, acceptor.accept(client)).await {
        Ok(Ok(t)) => Ok(AsyncStream::Tls(Box::new(t))),
        Ok(Err(e)) => Err(format!(
            "TLS handshake with the client failed: {}",
            describe_error(&e)
        )),
        Err(_) => Err(format!(
            "TLS handshake with the client did not finish within {} s",
            CLIENT_TLS_TIMEOUT.as_secs()
        )),
    }
}

/// TLS toward the upstream over a connected socket, SNI from `host`.
/// `Err` is the reason.
pub async fn connect_upstream(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream, String> {
    let name = server_name(host)?;
    match tokio::time::timeout(UPSTREAM_TLS_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(t)) => {
            let (tcp, conn) = t.into_inner();
            Ok(TlsStream::new(tcp, conn))
        }
        Ok(Err(e)) => Err(format!("TLS handshake failed: {}", describe_error(&e))),
        Err(_) => Err(format!(
            "TLS handshake did not finish within {} s",
            UPSTREAM_TLS_TIMEOUT.as_secs()
        )),
    }
}
