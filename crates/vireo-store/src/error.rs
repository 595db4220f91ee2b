//! The store's typed error.

/// Everything a store operation can fail with.
///
/// Callers match on the first four variants to map them onto API answers
/// (404, 409, 412 ...); `Backend` is everything the database itself refused
/// or could not do, kept with its source for logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist.
    #[error("not found: {what}")]
    NotFound { what: String },

    /// A uniqueness rule was violated (duplicate id, name in scope, token hash).
    #[error("conflict: {what}")]
    Conflict { what: String },

    /// An optimistic update named a generation that is no longer current.
    #[error("stale generation for {kind} {id}: expected {expected}, current is {actual}")]
    StaleGeneration {
        kind: String,
        id: String,
        expected: i64,
        actual: i64,
    },

    /// The caller passed something the store will not accept (empty kind,
    /// reserved attribute name, NaN, negative limit, malformed URL ...).
    #[error("invalid input: {0}")]
    Invalid(String),

    /// A statement inside this transaction already failed. PostgreSQL aborts
    /// the whole transaction at that point and would silently turn COMMIT
    /// into ROLLBACK; we refuse the commit on both backends instead, so
    /// nobody mistakes a rolled-back transaction for a committed one.
    #[error("transaction aborted by an earlier error; it has been rolled back")]
    TxAborted,

    /// The database schema cannot be brought to (or is newer than) the
    /// version this binary knows.
    #[error("schema migration: {0}")]
    Migration(String),

    /// Anything the database driver reported.
    #[error("database error: {0}")]
    Backend(#[from] sqlx::Error),
}

/// Result alias used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub(crate) fn conflict(what: impl Into<String>) -> Self {
        StoreError::Conflict { what: what.into() }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        StoreError::Invalid(what.into())
    }

    /// Map a driver error, turning unique violations into `Conflict`. This is
    /// the fallback for races that our pre-checks cannot see (two PostgreSQL
    /// transactions renaming to the same name at once).
    pub(crate) fn from_db(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                let what = db
                    .constraint()
                    .map(|c| format!("unique constraint {c}"))
                    .unwrap_or_else(|| db.message().to_string());
                return StoreError::Conflict { what };
            }
        }
        StoreError::Backend(err)
    }
}
