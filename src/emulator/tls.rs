//! HTTPS for the emulator: a certificate authority made at start, and a
//! server certificate it signs for the emulator's names. Clients trust the
//! CA (its PEM, from [`Certified::ca_pem`]; `--ca-cert` for the importer);
//! the keys live in memory only and die with the emulator.

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// What the emulator's HTTPS certificate is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Host names and IP addresses the server certificate is valid for.
    pub names: Vec<String>,
}

impl Default for Tls {
    /// The loopback names: `localhost`, `127.0.0.1`, `::1`.
    fn default() -> Tls {
        Tls {
            names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        }
    }
}

/// A CA and the server certificate it signed, ready to accept connections.
pub struct Certified {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot make the TLS certificate: {e}"))
}

/// Make a fresh CA and a server certificate for `tls.names`.
pub fn certify(tls: &Tls) -> io::Result<Certified> {
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(DnType::CommonName, "transcript-import emulator CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(other)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(other)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(tls.names.clone()).map_err(other)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "transcript-import emulator");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(other)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(other)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(other)?;
    Ok(Certified {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}
