//! The agent's TLS: a self-signed certificate before enrollment, the engine-signed one with
//! client certificates checked against the engine's CA after it.
//!
//! After enrollment a client certificate is *optional at the TLS layer* but required by the
//! HTTP layer for everything except the two enrollment calls ([`Peer`] carries the
//! difference). That keeps re-enrollment possible for an engine that lost its CA (a
//! reinstalled engine re-adding the host with the secret, as oVirt redeploys with the root
//! password), while a certificate that *is* presented must chain to the engine's CA or the
//! handshake fails.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{Enrollment, KeyedCert};

/// Named explicitly: with several providers compiled in, rustls' implicit default panics.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Who is on the other end of a connection, decided once per TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// No client certificate (before enrollment nobody has one to present).
    Anonymous,
    /// A client certificate from the engine's CA that is not a host's: the engine.
    Engine,
    /// A certificate from the engine's CA that also serves TLS: another host. Hosts must not
    /// drive each other, so it gets no more than an anonymous client.
    OtherHost,
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in PEM"));
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("no usable private key: {e}"))
}

/// The engine's CA as a trust store; also validates `engine_ca_pem` at `/enroll`.
pub fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, String> {
    let mut store = RootCertStore::empty();
    for cert in certs(ca_pem, "engine CA")? {
        store.add(cert).map_err(|e| format!("engine CA: {e}"))?;
    }
    Ok(Arc::new(store))
}

fn finish(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vireo_pki::ALPN_PROTOCOLS
        .iter()
        .map(|p| p.to_vec())
        .collect();
    Arc::new(config)
}

/// Before enrollment: the self-signed certificate, no client certificates asked for.
pub fn bootstrap_config(bootstrap: &KeyedCert) -> Result<Arc<ServerConfig>, String> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            certs(&bootstrap.cert_pem, "bootstrap certificate")?,
            key(&bootstrap.key_pem)?,
        )
        .map_err(|e| format!("bootstrap certificate: {e}"))?;
    Ok(finish(config))
}

/// After enrollment: the engine-signed certificate; client certificates verified against the
/// engine's CA (see the module docs for why they are optional here).
pub fn enrolled_config(enrollment: &Enrollment) -> Result<Arc<ServerConfig>, String> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(&enrollment.engine_ca_pem)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client certificate verifier: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(&enrollment.cert.cert_pem, "host certificate")?,
            key(&enrollment.cert.key_pem)?,
        )
        .map_err(|e| format!("host certificate: {e}"))?;
    Ok(finish(config))
}

/// Classifies a peer from the certificates rustls already verified (leaf first).
pub fn classify(peer_certs: Option<&[CertificateDer<'_>]>) -> Peer {
    let Some(leaf) = peer_certs.and_then(|c| c.first()) else {
        return Peer::Anonymous;
    };
    match X509Certificate::from_der(leaf.as_ref()) {
        Ok((_, cert)) => match cert.extended_key_usage() {
            Ok(Some(eku)) if eku.value.server_auth => Peer::OtherHost,
            _ => Peer::Engine,
        },
        // rustls parsed and verified it, so this cannot happen; refuse rather than guess.
        Err(_) => Peer::Anonymous,
    }
}

/// Checks the certificate the engine returns at `/enroll/complete`: it is for the key this
/// agent made, signed by the CA the engine announced, and valid now. Catching a mix-up here
/// answers the engine with a clear error instead of a host that can never be reached.
pub fn check_issued(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<(), String> {
    let leaf = certs(cert_pem, "host certificate")?.remove(0);
    let (_, cert) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|e| format!("host certificate: {e}"))?;
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("pending key: {e}"))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err("the certificate is not for the key of this enrollment (was /enroll called again meanwhile?)".into());
    }
    if !cert.validity().is_valid() {
        return Err("the certificate is not valid now (check both clocks)".into());
    }
    let signed_by_ca = certs(ca_pem, "engine CA")?.iter().any(|ca| {
        X509Certificate::from_der(ca.as_ref())
            .is_ok_and(|(_, ca)| cert.verify_signature(Some(ca.public_key())).is_ok())
    });
    if !signed_by_ca {
        return Err("the certificate is not signed by the engine CA sent at /enroll".into());
    }
    Ok(())
}
