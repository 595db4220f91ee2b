//! Shared by the integration tests: an agent on 127.0.0.1:0 in a temp dir, an engine PKI,
//! and raw HTTP clients for what `AgentClient` would never send.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use vireo_agent::{AgentClient, AgentConfig, RunningAgent};
use vireo_agent_proto::{Hypervisor, VmState};

pub const SECRET: &str = "correct horse battery staple";

pub async fn start_agent(dir: &Path, hosts: usize) -> RunningAgent {
    let config = AgentConfig {
        hosts,
        ..AgentConfig::simulated(dir, "127.0.0.1:0", SECRET)
    };
    vireo_agent::start(&config, vireo_agent::simulate::SimHost::open)
        .await
        .expect("agent starts")
}

pub fn engine(dir: &Path) -> vireo_pki::Pki {
    vireo_pki::Pki::load_or_create(dir, &[]).expect("engine PKI")
}

pub fn mtls(pki: &vireo_pki::Pki, port: u16) -> AgentClient {
    AgentClient::new("127.0.0.1", port, pki.engine_client_config().unwrap()).unwrap()
}

pub async fn enroll(pki: &vireo_pki::Pki, port: u16, host_id: &str) {
    AgentClient::enroll(
        "127.0.0.1",
        port,
        SECRET,
        pki,
        host_id,
        &["127.0.0.1".to_string()],
    )
    .await
    .expect("enrollment");
}

/// Polls like the engine's monitoring would, until the VM is in `want` (10 s at most).
pub async fn wait_state(client: &AgentClient, id: &str, want: VmState) {
    for _ in 0..100 {
        if client.get_vm(id).await.unwrap().state == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("VM {id} never reached {want:?}");
}

/// A raw HTTP client with the given TLS, for requests `AgentClient` cannot make.
pub fn raw(mut tls: rustls::ClientConfig) -> reqwest::Client {
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trusts `ca_pem`, presents `cert_pem`/`key_pem` (any identity we want to try).
pub fn client_tls(ca_pem: &str, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    }
}

/// Accepts any server certificate: what a stranger probing an agent does.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
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
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn stranger_tls() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider())))
        .with_no_client_auth()
}

pub fn url(port: u16, path: &str) -> String {
    format!("https://127.0.0.1:{port}/vireo-agent/v1{path}")
}
