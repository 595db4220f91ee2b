//! Enrollment from the engine's side.
//!
//! The first connection cannot authenticate the agent: it serves a self-signed certificate
//! nobody knows yet, and the engine has nothing to pin it against (an operator-supplied
//! fingerprint, as `ssh` asks for, would be the way; the protocol has no place for one yet).
//! So the engine trusts whatever answers there, as oVirt trusts a host's SSH key on first
//! deploy. What protects the host is the secret; what protects the engine is that after this
//! exchange it only talks to the certificate its own CA signed.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use vireo_agent_proto::{
    paths, AgentError, AgentResult, EnrollComplete, EnrollRequest, EnrollResponse, ErrorCode,
    Hypervisor,
};

use super::{AgentClient, Timeouts};

/// Accepts any certificate, but still checks the handshake's signatures so the TLS session
/// is at least bound to the key that certificate holds.
#[derive(Debug)]
struct TrustOnFirstContact(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustOnFirstContact {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn first_contact_tls() -> AgentResult<rustls::ClientConfig> {
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::new(ErrorCode::Failed, format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustOnFirstContact(provider)))
        // No client certificate: an agent enrolled by another engine would reject ours.
        .with_no_client_auth();
    Ok(config)
}

fn pki_error(what: &str) -> impl FnOnce(vireo_pki::PkiError) -> AgentError + '_ {
    move |e| AgentError::new(ErrorCode::Failed, format!("{what}: {e}"))
}

pub(super) async fn enroll(
    address: &str,
    port: u16,
    secret: &str,
    pki: &vireo_pki::Pki,
    host_id: &str,
    names: &[String],
    timeouts: Timeouts,
) -> AgentResult<()> {
    let mut names = names.to_vec();
    if !names.iter().any(|n| n == address) {
        names.push(address.to_string());
    }
    let http = super::build_http(first_contact_tls()?, timeouts)?;
    let first = AgentClient {
        base: super::base_url(address, port),
        http,
        timeouts,
    };
    let request = EnrollRequest {
        secret: secret.into(),
        host_id: host_id.into(),
        engine_ca_pem: pki.ca_pem().into(),
        names: names.clone(),
    };
    let EnrollResponse { csr_pem } = first.post(paths::ENROLL, &request).await?;
    let cert_pem = pki
        .sign_host_csr(&csr_pem, &names)
        .map_err(pki_error("the agent's CSR cannot be signed"))?;
    let _: serde_json::Value = first
        .post(
            paths::ENROLL_COMPLETE,
            &EnrollComplete {
                secret: secret.into(),
                cert_pem,
            },
        )
        .await?;

    // Enrolled only if the engine can now reach it the way monitoring will.
    let tls = pki
        .engine_client_config()
        .map_err(pki_error("engine client TLS"))?;
    let caps = AgentClient::with_timeouts(address, port, tls, timeouts)?
        .capabilities()
        .await
        .map_err(|e| {
            AgentError::new(
                e.code,
                format!(
                    "the agent took the certificate but does not answer over mutual TLS: {}",
                    e.message
                ),
            )
        })?;
    if caps.host_id.as_deref() != Some(host_id) {
        return Err(AgentError::new(
            ErrorCode::Failed,
            format!(
                "the agent says it is host {:?}, not {host_id}",
                caps.host_id
            ),
        ));
    }
    Ok(())
}
