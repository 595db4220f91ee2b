//! The one error type of the crate.

use std::path::PathBuf;

/// What can go wrong while loading, creating or using the engine's PKI.
///
/// Kept to three broad kinds on purpose: callers (the engine's start-up, the
/// host deploy flow) only need to tell "the disk failed" from "the material is
/// bad" from "rustls refused it"; the message carries the detail for the log.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key, CSR or name is malformed, inconsistent or could not be issued.
    #[error("certificate error: {0}")]
    Cert(String),
    /// rustls rejected the material while building a TLS configuration.
    #[error("TLS error: {0}")]
    Tls(String),
}

impl PkiError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.into();
        move |source| PkiError::Io { path, source }
    }

    /// Wraps an rcgen (or other) failure with what we were doing, since
    /// rcgen's own messages ("Could not parse certificate") name no file.
    pub(crate) fn cert(context: impl std::fmt::Display) -> impl FnOnce(rcgen::Error) -> PkiError {
        let context = context.to_string();
        move |e| PkiError::Cert(format!("{context}: {e}"))
    }
}
