//! TLS on either leg: `wss://` toward the client (a listener certificate,
//! given or generated) and toward the server (rustls, SNI from the URL host,
//! system roots, a CA file, or no checking at all).
//!
//! The relay terminates TLS on each leg and relays the decrypted WebSocket
//! bytes unchanged (same frames, masks and fragmentation), so frame-level
//! faults and expectations see what they see over `ws://`. TCP stays TCP
//! underneath: a FIN, an RST or a held partition act on the socket, see
//! [`stream`] (the relay's `Transport` for TLS) and `docs/scenarios.md`
//! ("TLS").
//!
//! [`TlsSettings`] is what the CLI (`run`, `relay`), the library and
//! `serve` give a relay; [`ServerTls`] is a loaded listener certificate;
//! [`client_config`] the upstream side.

pub mod certs;
pub mod handshake;
pub mod stream;

pub use certs::{generate_cert, spki_sha256, GeneratedCert};
pub use stream::{AsyncStream, TlsStream};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors loading certificates and keys or building TLS settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {err}")]
    File {
        /// The file.
        path: PathBuf,
        /// OS error.
        err: std::io::Error,
    },
    /// A PEM file holds no certificate.
    #[error("{0}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")]
    NoCert(PathBuf),
    /// A PEM file holds no private key.
    #[error("{0}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file")]
    NoKey(PathBuf),
    /// rustls refused the certificate, key or settings.
    #[error("{what}: {err}")]
    Rustls {
        /// What was being built.
        what: String,
        /// rustls' reason.
        err: rustls::Error,
    },
    /// The certificate could not be generated.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    /// A certificate could not be parsed (to find its public key).
    #[error("{0}")]
    BadCert(String),
}

/// Where the listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenCert {
    /// PEM files: the certificate chain and its private key.
    Files {
        /// Certificate chain (PEM).
        cert: PathBuf,
        /// Private key (PEM).
        key: PathBuf,
    },
    /// A self-signed certificate for `localhost` and `127.0.0.1`, generated
    /// into a fresh directory under the system's temporary directory.
    Auto,
}

/// How a `wss://` upstream's certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamTrust {
    /// The system's root certificates.
    #[default]
    System,
    /// Only the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// No checking at all (a warning is printed).
    Insecure,
}

/// TLS settings of a relay, both legs. The default is plain `ws://` toward
/// the client and system roots for a `wss://` upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsSettings {
    /// Serve `wss://` to the client with this certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<ListenCert>,
    /// How a `wss://` upstream is checked.
    #[serde(default, skip_serializing_if = "UpstreamTrust::is_system")]
    pub upstream: UpstreamTrust,
}

impl UpstreamTrust {
    /// The default: system roots.
    pub fn is_system(&self) -> bool {
        *self == UpstreamTrust::System
    }
}

impl TlsSettings {
    /// Nothing set: `ws://` toward the client, system roots upstream.
    pub fn is_default(&self) -> bool {
        *self == TlsSettings::default()
    }

    /// Load (or generate) the listener certificate, if there is one.
    pub fn listener(&self) -> Result<Option<Arc<ServerTls>>, TlsError> {
        self.listen
            .as_ref()
            .map(|l| ServerTls::load(l).map(Arc::new))
            .transpose()
    }

    /// Check what can be checked before a run: the listener's files load,
    /// the upstream CA file loads. Returns the loaded listener certificate.
    pub fn prepare(&self) -> Result<Option<Arc<ServerTls>>, TlsError> {
        if let UpstreamTrust::CaFile(f) = &self.upstream {
            load_certs(f)?;
        }
        self.listener()
    }
}

/// The TLS flags shared by `run` and `relay` (and `serve`).
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// Serve wss:// to the client with this certificate chain (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// `auto`: serve wss:// with a self-signed certificate for localhost and
    /// 127.0.0.1, generated into a file flatline names (and exports to the
    /// client command in SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE).
    #[arg(long, value_name = "MODE", value_parser = ["auto"])]
    pub tls: Option<String>,
    /// Trust only the CA certificates in this PEM file for a wss:// upstream.
    #[arg(long, value_name = "FILE", conflicts_with = "upstream_insecure")]
    pub upstream_ca: Option<PathBuf>,
    /// Do not check a wss:// upstream's certificate at all (prints a warning).
    #[arg(long)]
    pub upstream_insecure: bool,
}

impl TlsArgs {
    /// The settings these flags describe.
    pub fn settings(&self) -> TlsSettings {
        let listen = match (&self.tls_cert, &self.tls_key, &self.tls) {
            (Some(cert), Some(key), _) => Some(ListenCert::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (_, _, Some(_)) => Some(ListenCert::Auto),
            _ => None,
        };
        let upstream = match (&self.upstream_ca, self.upstream_insecure) {
            (Some(f), _) => UpstreamTrust::CaFile(f.clone()),
            (None, true) => UpstreamTrust::Insecure,
            (None, false) => UpstreamTrust::System,
        };
        TlsSettings { listen, upstream }
    }
}

/// The crypto provider: ring, named explicitly so that no process-wide
/// default has to be installed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_err(what: &str) -> impl FnOnce(rustls::Error) -> TlsError + '_ {
    move |err| TlsError::Rustls {
        what: what.to_string(),
        err,
    }
}

/// A loaded listener certificate: the rustls settings plus what a client
/// needs to trust it.
#[derive(Debug)]
pub struct ServerTls {
    /// rustls settings (HTTP/1.1 only: WebSocket upgrades need it).
    pub config: Arc<rustls::ServerConfig>,
    /// The certificate file (PEM) a client can trust.
    pub cert_path: PathBuf,
    /// The private key file (PEM).
    pub key_path: PathBuf,
    /// base64(sha256(SubjectPublicKeyInfo)) of the leaf certificate, as
    /// Chromium's `--ignore-certificate-errors-spki-list` takes it.
    pub spki: String,
    /// Set when the certificate was generated (`--tls auto`).
    pub generated: Option<GeneratedCert>,
}

impl ServerTls {
    /// Load (or generate) the listener certificate.
    pub fn load(source: &ListenCert) -> Result<ServerTls, TlsError> {
        match source {
            ListenCert::Files { cert, key } => Self::from_files(cert, key, None),
            ListenCert::Auto => {
                let generated = generate_cert(None)?;
                let (c, k) = (generated.cert_path.clone(), generated.key_path.clone());
                Self::from_files(&c, &k, Some(generated))
            }
        }
    }

    fn from_files(
        cert: &Path,
        key: &Path,
        generated: Option<GeneratedCert>,
    ) -> Result<ServerTls, TlsError> {
        let chain = load_certs(cert)?;
        let spki = spki_sha256(&chain[0]).map_err(|e| {
            TlsError::BadCert(format!(
                "{}: cannot read its public key: {e}",
                cert.display()
            ))
        })?;
        let key_der = load_key(key)?;
        let config = server_config(chain, key_der)?;
        Ok(ServerTls {
            config,
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            spki,
            generated,
        })
    }

    /// The variables a client command gets so that common stacks trust the
    /// certificate: `SSL_CERT_FILE` (OpenSSL: Python, curl, Ruby…),
    /// `NODE_EXTRA_CA_CERTS` (Node), `REQUESTS_CA_BUNDLE` (Python requests),
    /// and `FLATLINE_TLS_CERT`, `FLATLINE_TLS_KEY`, `FLATLINE_TLS_SPKI`.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        let cert = self.cert_path.display().to_string();
        vec![
            ("SSL_CERT_FILE", cert.clone()),
            ("NODE_EXTRA_CA_CERTS", cert.clone()),
            ("REQUESTS_CA_BUNDLE", cert.clone()),
            ("FLATLINE_TLS_CERT", cert),
            ("FLATLINE_TLS_KEY", self.key_path.display().to_string()),
            ("FLATLINE_TLS_SPKI", self.spki.clone()),
        ]
    }

    /// One line for the terminal: where the certificate is and how to trust it.
    pub fn describe(&self) -> String {
        format!(
            "TLS certificate {} ({}); SPKI sha256 {} (Chromium: --ignore-certificate-errors-spki-list={})",
            self.cert_path.display(),
            if self.generated.is_some() {
                "self-signed for localhost and 127.0.0.1, generated"
            } else {
                "given"
            },
            self.spki,
            self.spki
        )
    }
}

/// rustls server settings for a certificate chain and key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS versions"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rustls_err("listener certificate and key"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The certificates in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = std::fs::read(path).map_err(|err| TlsError::File {
        path: path.to_path_buf(),
        err,
    })?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &data[..])
        .collect::<Result<_, _>>()
        .map_err(|err| TlsError::File {
            path: path.to_path_buf(),
            err,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = std::fs::read(path).map_err(|err| TlsError::File {
        path: path.to_path_buf(),
        err,
    })?;
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|err| TlsError::File {
            path: path.to_path_buf(),
            err,
        })?
        .ok_or_else(|| TlsError::NoKey(path.to_path_buf()))
}

/// rustls client settings for a `wss://` upstream (or the demo client).
pub fn client_config(trust: &UpstreamTrust) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err("TLS versions"))?;
    let mut cfg = match trust {
        UpstreamTrust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth(),
        UpstreamTrust::CaFile(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(path)? {
                roots.add(c).map_err(|err| TlsError::Rustls {
                    what: format!("CA certificate in {}", path.display()),
                    err,
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTrust::System => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::BadCert(format!(
                    "no usable system root certificates ({}); give --upstream-ca FILE",
                    found
                        .errors
                        .first()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "none found".into())
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The SNI name for a URL host (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(h.to_string())
        .map_err(|e| format!("`{host}` is not a valid TLS name: {e}"))
}

/// A readable reason for a failed TLS handshake, naming the usual causes.
pub fn describe_error(e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error as E};
    let Some(err) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the peer closed the connection during the TLS handshake".into()
            }
            _ => e.to_string(),
        };
    };
    match err {
        E::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "certificate unknown: {err} (not signed by a trusted CA: give --upstream-ca FILE, or --upstream-insecure)"
        ),
        E::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!("name mismatch: {err}"),
        E::InvalidCertificate(_) => format!("bad certificate: {err}"),
        E::PeerIncompatible(_) => format!("protocol version or cipher mismatch: {err}"),
        E::InvalidMessage(_) | E::InappropriateHandshakeMessage { .. } => {
            format!("not TLS, or broken TLS: {err} (is this a plain ws:// peer?)")
        }
        E::AlertReceived(a) => format!(
            "the peer refused the handshake with alert {a:?} (does it trust flatline's certificate?)"
        ),
        _ => err.to_string(),
    }
}

/// `--upstream-insecure`: accepts any certificate (signatures are still
/// checked, so the handshake itself is sound).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
