//! What an agent remembers about itself across restarts: a machine id, the self-signed
//! certificate it serves before enrollment, and, once enrolled, the engine's CA and the
//! certificate it signed.
//!
//! Each state is one JSON document written atomically (see [`crate::files`]), so a crash can
//! never leave a certificate next to the wrong key, or a new engine CA next to an old
//! certificate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::files;

const MACHINE_ID_FILE: &str = "machine-id";
const BOOTSTRAP_FILE: &str = "bootstrap-tls.json";
pub const ENROLLMENT_FILE: &str = "enrollment.json";

/// A certificate with its private key, PEM.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the engine told this host at enrollment, and what it signed.
#[derive(Clone, Serialize, Deserialize)]
pub struct Enrollment {
    pub host_id: String,
    pub engine_ca_pem: String,
    pub names: Vec<String>,
    pub cert: KeyedCert,
    pub enrolled_at_ms: i64,
}

pub struct Identity {
    dir: PathBuf,
    /// Stable for the life of the data directory, like /etc/machine-id: the simulation derives
    /// hardware addresses from it before the engine names the host.
    pub machine_id: String,
    pub bootstrap: KeyedCert,
    pub enrollment: Option<Enrollment>,
}

// Hand-written so that no `{:?}` can ever print a key.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("dir", &self.dir)
            .field("machine_id", &self.machine_id)
            .field("host_id", &self.enrollment.as_ref().map(|e| &e.host_id))
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads the identity kept in `dir`, making what is missing (first start).
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Identity> {
        files::ensure_dir(dir)?;
        let machine_id = match files::read_optional(&dir.join(MACHINE_ID_FILE))? {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                files::write_private(&dir.join(MACHINE_ID_FILE), id.as_bytes())?;
                id
            }
        };
        let bootstrap = match read_json::<KeyedCert>(&dir.join(BOOTSTRAP_FILE))? {
            Some(b) => b,
            None => {
                let b = self_signed()?;
                write_json(&dir.join(BOOTSTRAP_FILE), &b)?;
                b
            }
        };
        // A broken enrollment file is an error, not a silent return to "not enrolled": the
        // operator should know the host forgot its engine.
        let enrollment = read_json::<Enrollment>(&dir.join(ENROLLMENT_FILE))?;
        Ok(Identity {
            dir: dir.to_path_buf(),
            machine_id,
            bootstrap,
            enrollment,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Persists a new enrollment in `dir`, replacing any earlier one in a single rename.
pub fn write_enrollment(dir: &Path, enrollment: &Enrollment) -> anyhow::Result<()> {
    write_json(&dir.join(ENROLLMENT_FILE), enrollment)
}

/// The certificate served until the engine signs one. Nobody can verify it (that is what
/// enrollment fixes), so its names are cosmetic.
fn self_signed() -> anyhow::Result<KeyedCert> {
    let names = vec![
        "vireo-agent-unenrolled".to_string(),
        "localhost".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)
        .context("cannot make the bootstrap certificate")?;
    Ok(KeyedCert {
        cert_pem: certified.cert.pem(),
        key_pem: certified.key_pair.serialize_pem(),
    })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    match files::read_optional(path)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is damaged; remove it to start this host's enrollment afresh",
                path.display()
            )
        }),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(value).context("cannot encode identity")?;
    files::write_private(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_and_later_starts_keep_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        assert!(first.enrollment.is_none());
        let again = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(first.machine_id, again.machine_id);
        assert_eq!(first.bootstrap.cert_pem, again.bootstrap.cert_pem);
        assert!(
            !format!("{again:?}").contains("PRIVATE"),
            "Debug never shows a key"
        );
    }

    #[test]
    fn a_damaged_enrollment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        std::fs::write(dir.path().join(ENROLLMENT_FILE), b"{half").unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"));
    }
}
