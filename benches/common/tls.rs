//! TLS pieces of the relay benchmark: a certificate for 127.0.0.1, the echo
//! upstream behind TLS, a wss:// client, and flatline with TLS on both legs.
//! Included with `#[path]` next to `echo.rs`.

use crate::echo::{echo_conn, read_head, Res, REQUEST};
use flatline::events::EventLog;
use flatline::relay::{Relay, RelayConfig};
use flatline::tls::{self, GeneratedCert, ListenCert, ServerTls, UpstreamTrust};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A generated certificate, a server acceptor for it and a client that trusts it.
pub struct Pki {
    pub cert: GeneratedCert,
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

pub fn pki() -> Res<Pki> {
    let cert = tls::generate_cert(None)?;
    let (server, trust) = load_dir(cert.cert_path.parent().ok_or("no dir")?)?;
    Ok(Pki {
        acceptor: TlsAcceptor::from(server.config.clone()),
        connector: TlsConnector::from(tls::client_config(&trust)?),
        cert,
    })
}

/// The listener certificate in `dir` and a trust that accepts it.
pub fn load_dir(dir: &Path) -> Res<(Arc<ServerTls>, UpstreamTrust)> {
    let cert = dir.join("cert.pem");
    let server = ServerTls::load(&ListenCert::Files {
        cert: cert.clone(),
        key: dir.join("key.pem"),
    })?;
    Ok((Arc::new(server), UpstreamTrust::CaFile(cert)))
}

/// The echo upstream behind TLS.
pub async fn tls_echo_server(acceptor: TlsAcceptor) -> Res<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                if let Ok(t) = acceptor.accept(s).await {
                    let _ = echo_conn(t).await;
                }
            });
        }
    });
    Ok(addr)
}

/// A wss:// connection, upgraded.
pub async fn wss_connect(c: &TlsConnector, addr: SocketAddr) -> Res<TlsStream<TcpStream>> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut t = c
        .connect(ServerName::try_from("127.0.0.1")?.to_owned(), s)
        .await?;
    t.write_all(REQUEST).await?;
    read_head(&mut t).await?;
    Ok(t)
}

/// flatline with TLS on both legs toward the TLS echo at `up`, with the
/// certificate in `dir`.
pub async fn flatline_tls(up: SocketAddr, dir: &Path) -> Res<Relay> {
    let (server, trust) = load_dir(dir)?;
    let mut cfg = RelayConfig::new(&format!("wss://{up}/echo"))?;
    cfg.tls = Some(server);
    cfg.upstream_trust = trust;
    Ok(Relay::start(cfg, EventLog::new()).await?)
}
