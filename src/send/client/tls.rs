//! Which certificates the client trusts, and a failed handshake in words.
//!
//! The roots are the system's, as curl and openssl find them
//! (`rustls-native-certs`: `SSL_CERT_FILE`, `SSL_CERT_DIR`, else the
//! distribution's bundle), so a company CA installed there is trusted.
//! A system with none (a scratch or distroless container) gets Mozilla's,
//! built in (`webpki-root-certs`). `--ca-cert` adds certificate
//! authorities to them (a company's own CA, a TLS-inspecting proxy's, the
//! emulator's), never replacing them.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// The TLS settings of the agent: the system's roots, plus `extra`.
pub fn config(extra: &[Certificate<'static>]) -> TlsConfig {
    with_roots(system_roots(), extra)
}

/// The TLS settings with `roots` (Mozilla's when empty), plus `extra`.
fn with_roots(roots: Vec<Certificate<'static>>, extra: &[Certificate<'static>]) -> TlsConfig {
    let roots = if roots.is_empty() {
        built_in_roots()
    } else {
        roots
    };
    let all: Vec<Certificate<'static>> = roots.into_iter().chain(extra.iter().cloned()).collect();
    TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(all)))
        .build()
}

/// The system's trusted certificates; none when it has no store. A file
/// of the store that cannot be read is skipped, as openssl skips it.
fn system_roots() -> Vec<Certificate<'static>> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

/// Mozilla's roots, built in.
fn built_in_roots() -> Vec<Certificate<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

/// Every certificate in a PEM file, each checked to be usable as a trust
/// anchor (ureq would skip one that is not, without a word). The error
/// names what is wrong, never the file's content.
pub fn load_ca(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut certs = Vec::new();
    for (i, item) in ureq::tls::parse_pem(&bytes).enumerate() {
        match item {
            Ok(PemItem::Certificate(cert)) => {
                let mut store = rustls::RootCertStore::empty();
                store
                    .add(rustls::pki_types::CertificateDer::from(cert.der()))
                    .map_err(|e| {
                        format!("PEM block {}: not a usable CA certificate: {e}", i + 1)
                    })?;
                certs.push(cert);
            }
            // A key or anything else in the file is not ours to trust.
            Ok(_) => {}
            Err(_) => return Err(format!("PEM block {}: cannot be decoded", i + 1)),
        }
    }
    if certs.is_empty() {
        return Err(
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE----- ...)".to_string(),
        );
    }
    Ok(certs)
}

/// The rustls error behind a ureq error, if a TLS handshake failed. ureq
/// passes it on as is, or inside an I/O error (rustls's own I/O helper
/// wraps it so).
pub fn rustls_error(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// A failed handshake in words: what is wrong with the certificate, and
/// what to do about it.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("TLS handshake failed: {e}");
    };
    let what = match cert {
        C::UnknownIssuer => {
            return "TLS: the server's certificate is not trusted: its issuer is not a known \
                    certificate authority (if a private CA signed it, pass that CA with --ca-cert)"
                .to_string()
        }
        C::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "is not valid for {} (it names {})",
            expected.to_str(),
            if presented.is_empty() {
                "no host".to_string()
            } else {
                presented
                    .iter()
                    .map(|n| bare_name(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        C::NotValidForName => "is not valid for this host name".to_string(),
        C::Expired | C::ExpiredContext { .. } => "has expired".to_string(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "is not valid yet (is this machine's clock right?)".to_string()
        }
        C::Revoked => "is revoked".to_string(),
        other => format!("is refused ({other:?})"),
    };
    format!("TLS: the server's certificate {what}")
}

/// `elsewhere.test` from rustls's `DnsName("elsewhere.test")`, and the
/// like; anything else as it is.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(kind, rest)| {
            kind.chars()
                .all(|c| c.is_ascii_alphabetic())
                .then_some(rest)?;
            rest.strip_suffix(')')
        })
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_a_certificate_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "hunter2\n").unwrap();
        let e = load_ca(&path).unwrap_err();
        assert!(e.starts_with("no certificate in it"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = load_ca(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.starts_with("cannot read:"), "{e}");
    }

    #[test]
    fn a_block_that_is_not_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_ca(&path).unwrap_err();
        assert!(
            e.starts_with("PEM block 1: not a usable CA certificate"),
            "{e}"
        );
    }

    fn count(config: &TlsConfig) -> usize {
        match config.root_certs() {
            RootCerts::Specific(roots) => roots.len(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extra_roots_come_on_top_of_the_system_ones_or_the_built_in_ones() {
        let cert = Certificate::from_der(b"not parsed here").to_owned();
        let extra = std::slice::from_ref(&cert);
        let system = vec![cert.clone(), cert.clone()];
        assert_eq!(count(&with_roots(system, extra)), 3);
        // No system store: Mozilla's.
        let built_in = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
        assert_eq!(count(&with_roots(Vec::new(), extra)), built_in + 1);
        assert_eq!(count(&with_roots(Vec::new(), &[])), built_in);
    }

    #[test]
    fn certificate_problems_are_named() {
        use rustls::CertificateError as C;
        let e = rustls::Error::InvalidCertificate(C::UnknownIssuer);
        assert!(describe(&e).contains("--ca-cert"), "{}", describe(&e));
        let e = rustls::Error::InvalidCertificate(C::Expired);
        assert_eq!(describe(&e), "TLS: the server's certificate has expired");
        let e = rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected: rustls::pki_types::ServerName::try_from("api.example.com").unwrap(),
            presented: vec![
                "localhost".into(),
                r#"DnsName("a.test")"#.into(),
                "IpAddress(10.0.0.1)".into(),
            ],
        });
        assert_eq!(
            describe(&e),
            "TLS: the server's certificate is not valid for api.example.com (it names localhost, a.test, 10.0.0.1)"
        );
    }
}
