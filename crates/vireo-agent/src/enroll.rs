//! Enrollment: the engine proves it knows the secret, gets a CSR for a key this host makes,
//! and sends back the certificate its CA signed. From then on new connections are served
//! with that certificate and the engine's client certificate is required (see [`crate::tls`]).
//!
//! The identity in use only changes when `/enroll/complete` has checked and persisted the
//! new certificate, so a failed or abandoned enrollment leaves the host as it was.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use subtle::ConstantTimeEq;
use tokio::sync::{watch, Mutex};
use vireo_agent_proto::{
    AgentError, AgentResult, EnrollComplete, EnrollRequest, EnrollResponse, ErrorCode,
};

use crate::identity::{Enrollment, Identity, KeyedCert};
use crate::tls;

/// Bounds on what an unauthenticated caller may make us parse and keep.
const MAX_NAMES: usize = 32;
const MAX_HOST_ID: usize = 128;

/// A `/enroll` waiting for its `/enroll/complete`.
struct Pending {
    host_id: String,
    engine_ca_pem: String,
    names: Vec<String>,
    key_pem: String,
}

struct Inner {
    identity: Identity,
    pending: Option<Pending>,
}

pub struct Enroller {
    /// Bumped at every completed enrollment; a connection keeps the generation it was
    /// accepted under, so one opened for an earlier engine loses its rights.
    generation: std::sync::atomic::AtomicU64,
    /// SHA-256 of the secret: comparing digests takes the same time whatever the length or
    /// content of the guess.
    secret_digest: [u8; 32],
    /// Async: completing does file I/O, and concurrent enrollments must queue, not interleave.
    inner: Mutex<Inner>,
    /// Read at every accept; replaced when enrollment completes.
    tls: RwLock<Arc<ServerConfig>>,
    host_id: watch::Sender<Option<String>>,
}

fn digest(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn invalid(message: impl Into<String>) -> AgentError {
    AgentError::new(ErrorCode::InvalidRequest, message)
}

impl Enroller {
    pub fn new(identity: Identity, secret: &str) -> anyhow::Result<Enroller> {
        anyhow::ensure!(!secret.is_empty(), "the enroll secret must not be empty");
        let config = match &identity.enrollment {
            Some(e) => tls::enrolled_config(e),
            None => tls::bootstrap_config(&identity.bootstrap),
        }
        .map_err(|e| anyhow::anyhow!("{}: {e}", identity.dir().display()))?;
        let host_id = identity.enrollment.as_ref().map(|e| e.host_id.clone());
        Ok(Enroller {
            generation: std::sync::atomic::AtomicU64::new(0),
            secret_digest: digest(secret),
            inner: Mutex::new(Inner {
                identity,
                pending: None,
            }),
            tls: RwLock::new(config),
            host_id: watch::Sender::new(host_id),
        })
    }

    /// The TLS configuration new connections get, with its generation.
    pub fn tls_config(&self) -> (Arc<ServerConfig>, u64) {
        // Read under the lock so the pair is consistent with `complete`'s swap.
        // A poisoned lock only means a writer panicked between two complete values.
        let config = self.tls.read().unwrap_or_else(|p| p.into_inner());
        (config.clone(), self.generation())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn is_enrolled(&self) -> bool {
        self.host_id.borrow().is_some()
    }

    /// The engine's id for this host, once enrolled.
    pub fn host_id(&self) -> Option<String> {
        self.host_id.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<String>> {
        self.host_id.subscribe()
    }

    fn check_secret(&self, secret: &str) -> AgentResult<()> {
        if bool::from(digest(secret).ct_eq(&self.secret_digest)) {
            Ok(())
        } else {
            Err(AgentError::new(
                ErrorCode::BadSecret,
                "the enroll secret is wrong",
            ))
        }
    }

    /// `/enroll`: a fresh key and a CSR for the names the engine chose.
    pub async fn begin(&self, req: EnrollRequest) -> AgentResult<EnrollResponse> {
        self.check_secret(&req.secret)?;
        let host_id = req.host_id.trim();
        if host_id.is_empty() || host_id.len() > MAX_HOST_ID {
            return Err(invalid(format!(
                "host_id must have 1 to {MAX_HOST_ID} characters"
            )));
        }
        if req.names.is_empty() || req.names.len() > MAX_NAMES {
            return Err(invalid(format!(
                "names must list 1 to {MAX_NAMES} host names or addresses"
            )));
        }
        tls::roots(&req.engine_ca_pem).map_err(invalid)?;
        let names = req.names.clone();
        // Key generation is CPU work: keep it off the reactor so 500 hosts enrolling at once
        // do not stall each other's I/O.
        let (csr_pem, key_pem) = tokio::task::spawn_blocking(move || vireo_pki::host_csr(&names))
            .await
            .map_err(|e| {
                AgentError::new(ErrorCode::Failed, format!("key generation stopped: {e}"))
            })?
            .map_err(|e| invalid(format!("cannot make a CSR for {:?}: {e}", req.names)))?;
        let mut inner = self.inner.lock().await;
        inner.pending = Some(Pending {
            host_id: host_id.to_string(),
            engine_ca_pem: req.engine_ca_pem,
            names: req.names,
            key_pem,
        });
        tracing::info!(host_id, "enrollment started: CSR sent to the engine");
        Ok(EnrollResponse { csr_pem })
    }

    /// `/enroll/complete`: check, persist, then switch new connections to mutual TLS.
    pub async fn complete(&self, req: EnrollComplete) -> AgentResult<()> {
        self.check_secret(&req.secret)?;
        let mut inner = self.inner.lock().await;
        let pending = inner.pending.as_ref().ok_or_else(|| {
            AgentError::new(
                ErrorCode::WrongState,
                "no enrollment in progress: POST /enroll first",
            )
        })?;
        tls::check_issued(&req.cert_pem, &pending.key_pem, &pending.engine_ca_pem)
            .map_err(invalid)?;
        let enrollment = Enrollment {
            host_id: pending.host_id.clone(),
            engine_ca_pem: pending.engine_ca_pem.clone(),
            names: pending.names.clone(),
            cert: KeyedCert {
                cert_pem: req.cert_pem,
                key_pem: pending.key_pem.clone(),
            },
            enrolled_at_ms: now_ms(),
        };
        let config = tls::enrolled_config(&enrollment).map_err(invalid)?;
        // Persist before serving: an agent that answered "enrolled" must come back enrolled.
        let dir = inner.identity.dir().to_path_buf();
        let to_save = enrollment.clone();
        tokio::task::spawn_blocking(move || crate::identity::write_enrollment(&dir, &to_save))
            .await
            .map_err(|e| AgentError::new(ErrorCode::Failed, format!("saving stopped: {e}")))?
            .map_err(|e| AgentError::new(ErrorCode::Failed, format!("{e:#}")))?;
        inner.identity.enrollment = Some(enrollment);
        inner.pending = None;
        {
            let mut current = self.tls.write().unwrap_or_else(|p| p.into_inner());
            *current = config;
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        let host_id = inner
            .identity
            .enrollment
            .as_ref()
            .map(|e| e.host_id.clone());
        tracing::info!(
            host_id = host_id.as_deref().unwrap_or(""),
            "enrolled: serving mutual TLS to the engine"
        );
        self.host_id.send_replace(host_id);
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
