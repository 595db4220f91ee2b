//! Answers: JSON bodies, and every failure as an `AgentError` with its HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use vireo_agent_proto::{AgentError, AgentResult, ErrorCode};

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = (status, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => error(&AgentError::new(
            ErrorCode::Failed,
            format!("cannot encode the answer: {e}"),
        )),
    }
}

pub fn error(err: &AgentError) -> Response {
    let status =
        StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_with_status(err, status)
}

/// For the few answers whose status is not the code's own (no such route: 404, not 501).
pub fn error_with_status(err: &AgentError, status: StatusCode) -> Response {
    if status.is_server_error() {
        tracing::warn!(code = ?err.code, detail = %err.message, "request failed");
    } else {
        tracing::debug!(code = ?err.code, detail = %err.message, "request refused");
    }
    // AgentError always serializes; the fallback keeps this function total anyway.
    let body = serde_json::to_vec(err)
        .unwrap_or_else(|_| br#"{"code":"failed","message":"unencodable error"}"#.to_vec());
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn result<T: Serialize>(r: AgentResult<T>) -> Response {
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(&e),
    }
}

/// Parses a JSON body, turning a bad one into a 400 that says what is wrong.
pub fn parse<T: for<'de> serde::Deserialize<'de>>(body: &[u8]) -> AgentResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| AgentError::new(ErrorCode::InvalidRequest, format!("bad request body: {e}")))
}
