//! The one error type of the codecs: it names the element (or JSON key) path that failed.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not well-formed XML or JSON.
    Malformed,
    /// Well-formed, but a value does not fit its declared type.
    InvalidValue,
    /// Nesting deeper than the configured limit.
    TooDeep,
    /// Document larger than the configured limit.
    TooLarge,
    /// A DTD or an entity declaration: refused, never processed.
    Forbidden,
    /// The root element is not the one the request expects.
    UnexpectedRoot,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    pub kind: ErrorKind,
    /// Element path from the root, e.g. `vm.cpu.topology.sockets`; empty for document-level errors.
    pub path: String,
    pub detail: String,
}

impl CodecError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        CodecError {
            kind,
            path: String::new(),
            detail: detail.into(),
        }
    }

    pub fn malformed(detail: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Malformed, detail.to_string())
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidValue, detail)
    }

    /// Prefixes the path with the enclosing element; called on the way out, so only errors pay.
    pub fn within(mut self, element: &str) -> Self {
        if self.path.is_empty() {
            self.path = element.to_string();
        } else {
            self.path = format!("{element}.{}", self.path);
        }
        self
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.detail)
        } else {
            write!(f, "{} (element '{}')", self.detail, self.path)
        }
    }
}

impl std::error::Error for CodecError {}

pub type Result<T> = std::result::Result<T, CodecError>;
