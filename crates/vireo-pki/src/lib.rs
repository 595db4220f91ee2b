//! The engine's certificate authority.
//!
//! On first start [`Pki::load_or_create`] makes a private CA and, signed by
//! it, the engine's HTTPS server certificate and the client certificate the
//! engine presents to host agents. Later starts load them back. Hosts join by
//! sending a CSR ([`host_csr`] on the agent side, [`Pki::sign_host_csr`] on the
//! engine side), after which engine and agent talk mutual TLS
//! ([`Pki::engine_client_config`] ↔ [`Pki::agent_server_config`]).
//!
//! Layout of the directory (mode 0700 when we create it):
//!
//! | file | what | mode |
//! |---|---|---|
//! | `ca.pem` / `ca.key` | CA, 10 years | 0644 / 0600 |
//! | `server.pem` / `server.key` | engine HTTPS, 5 years | 0644 / 0600 |
//! | `engine-client.pem` / `engine-client.key` | engine → agent client cert, 5 years | 0644 / 0600 |
//!
//! The directory belongs to one engine process: two engines starting on the
//! same directory at the same moment could each create a CA.

mod ca;
mod error;
mod files;
mod hostname;
mod issue;
mod names;
mod tls;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca::Ca;
use names::Name;

pub use error::PkiError;
pub use tls::ALPN_PROTOCOLS;

/// File names inside the PKI directory, for code that serves or backs them up.
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVER_CERT_FILE: &str = "server.pem";
pub const SERVER_KEY_FILE: &str = "server.key";
pub const ENGINE_CLIENT_CERT_FILE: &str = "engine-client.pem";
pub const ENGINE_CLIENT_KEY_FILE: &str = "engine-client.key";

/// A stored certificate is re-issued on start when it has less than this left,
/// so an engine that restarts now and then never serves an expired one.
const RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;

/// A certificate with its private key, both PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
}

/// The engine's PKI: the CA with its key, the server certificate and the
/// engine's agent-facing client certificate.
pub struct Pki {
    dir: PathBuf,
    ca: Ca,
    server: Leaf,
    engine_client: Leaf,
}

// Hand-written so that a stray `{:?}` in a log line can never print a key.
impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// First start: creates `dir` (mode 0700), a CA (`dir/ca.pem`, key
    /// `dir/ca.key` mode 0600, CN "vireo CA <hostname>.<random>", 10 years,
    /// basicConstraints CA, keyCertSign/cRLSign), a server certificate signed
    /// by it (`dir/server.pem` + `dir/server.key`, 5 years) whose SANs cover
    /// localhost, 127.0.0.1, ::1, the machine's host name(s) and every name in
    /// `extra_names` (DNS names or IP addresses), and the engine's client
    /// certificate (`dir/engine-client.pem` + `.key`).
    ///
    /// Later starts load them. The CA is never replaced silently, since hosts
    /// trust it: a missing key or a broken ca.pem is an error. The server and
    /// client certificates are re-issued by the same CA when they are
    /// missing, not from this CA, do not match their key, expire within 30
    /// days, or (server) lack a required name. A re-issued server certificate
    /// keeps the names the old one had, so clients using them keep working.
    pub fn load_or_create(dir: &Path, extra_names: &[String]) -> Result<Pki, PkiError> {
        let extra = extra_names
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Name::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        files::ensure_dir(dir)?;

        let hosts = hostname::machine_host_names();
        let ca = load_or_create_ca(dir, hosts.first())?;

        let mut required = vec![
            Name::Dns("localhost".into()),
            Name::Ip(Ipv4Addr::LOCALHOST.into()),
            Name::Ip(Ipv6Addr::LOCALHOST.into()),
        ];
        names::merge(&mut required, hosts.iter().cloned());
        names::merge(&mut required, extra.iter().cloned());
        // The subject CN is cosmetic (clients match SANs) but shows in
        // browsers: prefer the public name the operator configured.
        let common_name = extra
            .iter()
            .chain(&hosts)
            .find(|n| matches!(n, Name::Dns(_)))
            .map_or_else(|| "localhost".to_string(), Name::to_string);

        let server = load_or_issue(
            dir,
            &ca,
            (SERVER_CERT_FILE, SERVER_KEY_FILE),
            &required,
            |names| issue::server_params(&common_name, names),
        )?;
        let engine_client = load_or_issue(
            dir,
            &ca,
            (ENGINE_CLIENT_CERT_FILE, ENGINE_CLIENT_KEY_FILE),
            &[],
            |_| issue::engine_client_params(),
        )?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
            server,
            engine_client,
        })
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Exactly the bytes of `dir/ca.pem`.
    pub fn ca_pem(&self) -> &str {
        self.ca.pem()
    }

    /// The CA certificate in DER (what oVirt's pki-resource serves as X509-DER).
    pub fn ca_der(&self) -> &[u8] {
        self.ca.der()
    }

    /// The engine's HTTPS certificate, PEM.
    pub fn server_cert_pem(&self) -> &str {
        &self.server.cert_pem
    }

    /// The certificate the engine presents to agents, PEM.
    pub fn engine_client_cert_pem(&self) -> &str {
        &self.engine_client.cert_pem
    }

    /// TLS for the engine's API: the server certificate, ALPN h2 and
    /// http/1.1, no client certificates.
    pub fn server_tls_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        tls::server(&self.server.cert_pem, &self.server.key_pem)
    }

    /// Issues a host certificate from the agent's CSR (PEM): SANs are exactly
    /// `names` (whatever the CSR asked for is ignored), signed by the CA, 5
    /// years, EKU serverAuth + clientAuth. Returns the certificate PEM.
    pub fn sign_host_csr(&self, csr_pem: &str, names: &[String]) -> Result<String, PkiError> {
        let names = parse_names(names)?;
        let csr = issue::csr_with_profile(csr_pem, &names)?;
        self.ca.sign_csr(csr)
    }

    /// TLS for a host agent: serves `cert_pem`/`key_pem` and requires a client
    /// certificate issued by `ca_pem` (the engine's). Needs no `Pki`: the
    /// agent only has the CA certificate, never its key.
    pub fn agent_server_config(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        tls::mutual_server(ca_pem, cert_pem, key_pem)
    }

    /// TLS for the engine calling agents: presents the engine's client
    /// certificate and trusts only this CA.
    pub fn engine_client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        tls::client(
            self.ca.pem(),
            Some((&self.engine_client.cert_pem, &self.engine_client.key_pem)),
        )
    }
}

/// Makes a fresh key pair and CSR (PEM) for a host agent: `(csr_pem, key_pem)`.
/// `names` become the requested SANs and the first one the subject CN; the
/// engine decides the names actually issued.
pub fn host_csr(names: &[String]) -> Result<(String, String), PkiError> {
    issue::new_csr(&parse_names(names)?)
}

/// A client trusting only the CA in `ca_pem` and presenting no certificate:
/// what a CLI or test needs to talk to the engine's API.
pub fn client_config_trusting(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    tls::client(ca_pem, None)
}

fn parse_names(names: &[String]) -> Result<Vec<Name>, PkiError> {
    let mut parsed = Vec::new();
    for n in names {
        names::merge(&mut parsed, [Name::parse(n)?]);
    }
    if parsed.is_empty() {
        return Err(PkiError::Cert("at least one host name is required".into()));
    }
    Ok(parsed)
}

fn load_or_create_ca(dir: &Path, host: Option<&Name>) -> Result<Ca, PkiError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if let Some(pem) = files::read_optional(&cert_path)? {
        let key_pem = files::read_optional(&key_path)?.ok_or_else(|| {
            PkiError::Cert(format!(
                "{} exists but {} is missing: restore the CA key from backup",
                cert_path.display(),
                key_path.display()
            ))
        })?;
        files::tighten_key_mode(&key_path)?;
        return Ca::load(pem, &key_pem);
    }
    // ca.pem is written after ca.key and before anything it signs, so a
    // missing ca.pem next to issued certificates is not an interrupted first
    // start but a lost CA. Making a new one would cut off every host.
    for issued in [SERVER_CERT_FILE, ENGINE_CLIENT_CERT_FILE] {
        if dir.join(issued).exists() {
            return Err(PkiError::Cert(format!(
                "{} is missing but {issued} exists: restore the CA from backup, \
                 or empty {} to start a new CA",
                cert_path.display(),
                dir.display()
            )));
        }
    }
    let host = host.map_or_else(|| "localhost".to_string(), Name::to_string);
    let (ca, key_pem) = Ca::generate(&host)?;
    // Key first: a crash in between leaves no ca.pem, i.e. a clean first start.
    files::write_atomic(&key_path, key_pem.as_bytes(), files::KEY_MODE)?;
    files::write_atomic(&cert_path, ca.pem().as_bytes(), files::CERT_MODE)?;
    Ok(ca)
}

fn load_or_issue(
    dir: &Path,
    ca: &Ca,
    (cert_file, key_file): (&str, &str),
    required: &[Name],
    params: impl FnOnce(&[Name]) -> Result<rcgen::CertificateParams, PkiError>,
) -> Result<Leaf, PkiError> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    let mut names = required.to_vec();

    let stored = match (
        files::read_optional(&cert_path)?,
        files::read_optional(&key_path)?,
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    if let Some((cert_pem, key_pem)) = stored {
        if let Some(info) = ca.inspect_leaf(&cert_pem, &key_pem) {
            let fresh = info.not_after - now_unix() > RENEW_BEFORE_SECS;
            if fresh && required.iter().all(|n| info.names.contains(n)) {
                files::tighten_key_mode(&key_path)?;
                return Ok(Leaf { cert_pem, key_pem });
            }
            names::merge(&mut names, info.names);
        }
    }

    let (cert_pem, key_pem) = ca.issue_with_new_key(params(&names)?, cert_file)?;
    // Key first: a crash in between leaves the old certificate with the new
    // key, which `inspect_leaf` rejects, so the next start re-issues.
    files::write_atomic(&key_path, key_pem.as_bytes(), files::KEY_MODE)?;
    files::write_atomic(&cert_path, cert_pem.as_bytes(), files::CERT_MODE)?;
    Ok(Leaf { cert_pem, key_pem })
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
