//! Faults: every client error becomes `<fault><reason/><detail/></fault>` with a 4xx status.

use super::format::Format;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vireo_model::{CodecError, Fault};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    pub detail: String,
    pub format: Format,
    pub www_authenticate: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
            detail: detail.into(),
            format: Format::Xml,
            www_authenticate: false,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid value", detail)
    }
    pub fn incomplete(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Incomplete parameters", detail)
    }
    pub fn operation_failed(status: StatusCode, messages: &[String]) -> Self {
        Self::new(
            status,
            "Operation Failed",
            format!("[{}]", messages.join(", ")),
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::operation_failed(StatusCode::CONFLICT, &[message.into()])
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail);
        e.www_authenticate = true;
        e
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }
    pub fn not_implemented(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "Not implemented", what)
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "the engine failed to complete the request; see its log",
        )
    }
    pub fn with_format(mut self, f: Format) -> Self {
        self.format = f;
        self
    }

    /// A body that does not parse or does not fit the model.
    pub fn from_codec(e: CodecError) -> Self {
        use vireo_model::ErrorKind::*;
        match e.kind {
            TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                e.to_string(),
            ),
            Malformed | TooDeep | Forbidden | UnexpectedRoot => Self::new(
                StatusCode::BAD_REQUEST,
                "Request syntactically incorrect.",
                e.to_string(),
            ),
            InvalidValue => Self::bad_request(e.to_string()),
        }
    }

    pub fn fault(&self) -> Fault {
        Fault {
            reason: Some(self.reason.clone()),
            detail: Some(self.detail.clone()),
            ..Default::default()
        }
    }
}

impl From<vireo_store::StoreError> for ApiError {
    fn from(e: vireo_store::StoreError) -> Self {
        match e {
            vireo_store::StoreError::Conflict { what } => ApiError::conflict(what),
            vireo_store::StoreError::NotFound { what } => ApiError::not_found(what),
            vireo_store::StoreError::StaleGeneration { .. } => {
                ApiError::conflict("the object was changed by another request; retry")
            }
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.format.render(&self.fault());
        let mut r = (self.status, body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, self.format.content_type());
        if self.www_authenticate {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RESTAPI\""),
            );
        }
        r
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
