//! oVirt's refusals, worded as its AppErrors bundle words them (`Cannot ${action} ${type}. …`)
//! and answered with the status its ErrorMessageHelper gives them: 409 for conflicts (name in
//! use, wrong state, locked), 400 for bad input, 404 for references to nothing.

use super::spec;
use crate::api::fault::ApiError;
use axum::http::StatusCode;

/// `Cannot add VM. {rest}` for the kind's noun.
pub fn cannot(action: &str, kind: &str, rest: &str) -> String {
    format!("Cannot {action} {}. {rest}", spec::noun(kind))
}

/// 409: the object is in a state (or has company) that forbids this.
pub fn conflict(action: &str, kind: &str, rest: &str) -> ApiError {
    ApiError::conflict(cannot(action, kind, rest))
}

/// 400: the request itself is wrong.
pub fn invalid(action: &str, kind: &str, rest: &str) -> ApiError {
    ApiError::operation_failed(StatusCode::BAD_REQUEST, &[cannot(action, kind, rest)])
}

/// `ACTION_TYPE_FAILED_NAME_ALREADY_USED`.
pub fn name_in_use(action: &str, kind: &str) -> ApiError {
    let noun = spec::noun(kind);
    ApiError::conflict(format!("Cannot {action} {noun}. The {noun} name is already in use, please choose a unique name and try again."))
}

/// A reference in the body to an object that does not exist: oVirt's 404
/// `Entity not found: Cluster: name=foo`.
pub fn entity_not_found(what: &str, by: &str, value: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Operation Failed",
        format!("Entity not found: {what}: {by}={value}"),
    )
}

/// An object that must not change while long work holds it.
pub fn locked(action: &str, kind: &str) -> ApiError {
    conflict(
        action,
        kind,
        &format!(
            "{} is locked. Please try again in a few minutes.",
            spec::noun(kind)
        ),
    )
}
