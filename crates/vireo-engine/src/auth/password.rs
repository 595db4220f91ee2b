//! Password hashing: argon2id in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
//!
//! The PHC string carries its own parameters, so verification always uses the parameters a
//! hash was made with; changing [`params`] only affects new hashes.
//!
//! These functions are CPU-bound (tens of milliseconds by design): async callers run them
//! on a few dedicated threads (`run`), never on the runtime's worker threads.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use rand::RngCore;

/// Memory cost in KiB (19 MiB), iterations and lanes: OWASP's first recommended argon2id
/// setting. Measured on the development machine (2-vCPU AMD EPYC): about 32 ms per
/// verification in a release build, about 45 ms in a debug build.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

/// Length of generated admin passwords: 20 alphanumerics are about 119 bits.
pub const GENERATED_LEN: usize = 20;

fn hasher() -> Argon2<'static> {
    // Params::new only fails for out-of-range values; ours are constants well inside them.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A fresh PHC hash of `password` with a random 16-byte salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let phc = hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(phc.to_string())
}

/// True when `password` matches the PHC string `phc`. A malformed stored hash is a
/// mismatch (and worth a log line), never a panic.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!("stored password hash is malformed: {e}");
            false
        }
    }
}

/// Burns the same time as a real verification. Used when the user does not exist, so
/// that the answer time does not tell which user names are valid.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("vireo-dummy-password").unwrap_or_default());
    if !phc.is_empty() {
        let _ = verify(password, phc);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// argon2 runs on a few dedicated threads rather than tokio's blocking pool: each argon2 call
/// takes a 19 MiB block, and glibc keeps a memory arena per thread that ever allocated one,
/// so hundreds of short-lived blocking threads would pin hundreds of MiB after a login burst.
fn workers() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<Job>> {
    static POOL: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        for i in 0..n {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                });
        }
        std::sync::Mutex::new(tx)
    })
}

/// Runs `f` (an argon2 hash or verification) on the argon2 threads.
pub async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> anyhow::Result<R> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    workers()
        .lock()
        .map_err(|_| anyhow::anyhow!("argon2 workers are gone"))?
        .send(job)
        .map_err(|_| anyhow::anyhow!("argon2 workers are gone"))?;
    Ok(rx.await?)
}

/// A random password for the first admin when none was given.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut OsRng, GENERATED_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
        assert!(!verify("s3cret", "not a phc string"));
        assert_ne!(h, hash("s3cret").unwrap(), "salts differ");
    }

    #[test]
    fn generated_passwords() {
        let p = generate();
        assert_eq!(p.len(), GENERATED_LEN);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, generate());
    }
}
