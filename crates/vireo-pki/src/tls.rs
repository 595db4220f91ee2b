//! rustls configurations built from PEM material.
//!
//! Every config names the ring provider explicitly instead of relying on the
//! process-wide default: if any other crate in the engine enables rustls'
//! aws-lc feature as well, the implicit default becomes ambiguous and rustls
//! panics at first use.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::PkiError;

/// Offered by servers in preference order: HTTP/2 first, HTTP/1.1 for clients
/// (the oVirt SDKs, curl without nghttp2) that do not speak it.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(context: &str) -> impl FnOnce(rustls::Error) -> PkiError + '_ {
    move |e| PkiError::Tls(format!("{context}: {e}"))
}

/// All certificates of a PEM text, in order (leaf first for a chain).
fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Tls(format!("{what}: bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::Tls(format!("{what}: no certificate in PEM")));
    }
    Ok(certs)
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| PkiError::Tls(format!("{what}: no usable private key in PEM: {e}")))
}

/// A trust store holding exactly the certificates of `ca_pem` and nothing
/// else: neither the system's roots nor webpki-roots, so only our CA's
/// certificates are ever accepted.
fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, PkiError> {
    let mut store = RootCertStore::empty();
    for cert in certs(ca_pem, "CA")? {
        store.add(cert).map_err(tls_err("CA certificate"))?;
    }
    Ok(Arc::new(store))
}

/// A server that asks for no client certificate (the engine's HTTPS API,
/// where users log in with passwords or tokens).
pub(crate) fn server(cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, PkiError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("server protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(
            certs(cert_pem, "server certificate")?,
            key(key_pem, "server key")?,
        )
        .map_err(tls_err("server certificate and key"))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A server that requires a client certificate issued by `ca_pem`.
pub(crate) fn mutual_server(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, PkiError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
        .build()
        .map_err(|e| PkiError::Tls(format!("client certificate verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("agent protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(cert_pem, "agent certificate")?,
            key(key_pem, "agent key")?,
        )
        .map_err(tls_err("agent certificate and key"))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client trusting only `ca_pem`, optionally presenting a certificate.
/// No ALPN is set: which HTTP versions to offer is the HTTP client's choice.
pub(crate) fn client(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("client protocol versions"))?
        .with_root_certificates(roots(ca_pem)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => builder
            .with_client_auth_cert(
                certs(cert_pem, "client certificate")?,
                key(key_pem, "client key")?,
            )
            .map_err(tls_err("client certificate and key"))?,
    };
    Ok(Arc::new(config))
}
