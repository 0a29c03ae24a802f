//! Certificates for the user: a self-signed certificate for `localhost` and
//! `127.0.0.1` (rcgen), and the SPKI hash Chromium's
//! `--ignore-certificate-errors-spki-list` takes.

use super::TlsError;
use base64::Engine;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A generated certificate and key, written as PEM files. The directory
/// flatline created for them is removed when this is dropped (a directory
/// given by the caller is left alone).
#[derive(Debug)]
pub struct GeneratedCert {
    /// The certificate (PEM): the file a client trusts.
    pub cert_path: PathBuf,
    /// The private key (PEM).
    pub key_path: PathBuf,
    /// A directory flatline created, removed on drop.
    owned_dir: Option<PathBuf>,
}

impl Drop for GeneratedCert {
    fn drop(&mut self) {
        if let Some(d) = &self.owned_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Generate a self-signed certificate for `localhost` and `127.0.0.1` into
/// `dir` (`cert.pem`, `key.pem`), or into a fresh directory under the
/// system's temporary directory when `dir` is `None`.
pub fn generate_cert(dir: Option<&Path>) -> Result<GeneratedCert, TlsError> {
    static N: AtomicU32 = AtomicU32::new(0);
    let (dir, owned) = match dir {
        Some(d) => (d.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(format!(
                "flatline-tls-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )),
            true,
        ),
    };
    let file_err = |path: &Path| {
        let path = path.to_path_buf();
        move |err| TlsError::File { path, err }
    };
    std::fs::create_dir_all(&dir).map_err(file_err(&dir))?;
    let generated = GeneratedCert {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
        owned_dir: owned.then(|| dir.clone()),
    };
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".into()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::write(&generated.cert_path, ck.cert.pem()).map_err(file_err(&generated.cert_path))?;
    write_private(&generated.key_path, ck.key_pair.serialize_pem().as_bytes())
        .map_err(file_err(&generated.key_path))?;
    Ok(generated)
}

/// A file readable by its owner only (a private key).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// base64(sha256(SubjectPublicKeyInfo)) of a certificate.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Result<String, String> {
    let spki = spki_of(cert.as_ref())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki)))
}

/// One DER element and what follows it.
struct Der<'a> {
    tag: u8,
    /// Tag, length and content.
    whole: &'a [u8],
    content: &'a [u8],
    rest: &'a [u8],
}

fn der_next(data: &[u8]) -> Result<Der<'_>, String> {
    let short = || "truncated DER".to_string();
    let tag = *data.first().ok_or_else(short)?;
    let first = *data.get(1).ok_or_else(short)?;
    let (len, hdr) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err("unsupported DER length".into());
        }
        let bytes = data.get(2..2 + n).ok_or_else(short)?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let end = hdr
        .checked_add(len)
        .filter(|e| *e <= data.len())
        .ok_or_else(short)?;
    Ok(Der {
        tag,
        whole: &data[..end],
        content: &data[hdr..end],
        rest: &data[end..],
    })
}

/// The SubjectPublicKeyInfo element (tag and length included) of an X.509
/// certificate: Certificate { tbsCertificate { [0] version?, serial,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, … } … }.
fn spki_of(cert: &[u8]) -> Result<&[u8], String> {
    let c = der_next(cert)?;
    if c.tag != 0x30 {
        return Err("not a DER certificate".into());
    }
    let tbs = der_next(c.content)?;
    if tbs.tag != 0x30 {
        return Err("no tbsCertificate".into());
    }
    let mut rest = tbs.content;
    let first = der_next(rest)?;
    if first.tag == 0xa0 {
        rest = first.rest; // explicit version
    }
    // serial, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = der_next(rest)?.rest;
    }
    let spki = der_next(rest)?;
    if spki.tag != 0x30 {
        return Err("no subjectPublicKeyInfo".into());
    }
    Ok(spki.whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_matches_the_key_pair() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = CertificateDer::from(ck.cert.der().to_vec());
        assert_eq!(
            spki_of(der.as_ref()).unwrap(),
            &ck.key_pair.public_key_der()[..]
        );
        let want = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(ck.key_pair.public_key_der()));
        assert_eq!(spki_sha256(&der).unwrap(), want);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x85\x01",
            b"\x30\x03\x02\x01",
            b"hello",
        ] {
            assert!(spki_sha256(&CertificateDer::from(bad.to_vec())).is_err());
        }
    }

    #[test]
    fn generated_files_load_and_vanish() {
        let g = generate_cert(None).unwrap();
        let dir = g.cert_path.parent().unwrap().to_path_buf();
        let tls = crate::tls::ServerTls::from_files(&g.cert_path, &g.key_path, None).unwrap();
        assert_eq!(tls.spki.len(), 44);
        drop(g);
        assert!(!dir.exists());
    }
}
