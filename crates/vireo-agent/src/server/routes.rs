//! The protocol's routes under `/vireo-agent/v1`, each a thin translation to [`Hypervisor`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use vireo_agent_proto::{
    paths, AgentError, DomainSpec, EnrollComplete, EnrollRequest, ErrorCode, Hypervisor,
    VmOperation, VmSpec, VolumeOperation, PREFIX,
};

use super::reply::{self, parse};
use super::{ConnInfo, HostState};
use crate::tls::Peer;

/// Requests are small JSON documents; anything bigger is a mistake or an attack.
const BODY_LIMIT: usize = 1 << 20;

type St<H> = State<Arc<HostState<H>>>;

pub fn router<H: Hypervisor + 'static>(state: Arc<HostState<H>>) -> Router {
    let api = Router::new()
        .route(paths::ENROLL, post(enroll::<H>))
        .route(paths::ENROLL_COMPLETE, post(enroll_complete::<H>))
        .route(paths::CAPABILITIES, get(capabilities::<H>))
        .route(paths::STATS, get(stats::<H>))
        .route(paths::VMS, get(list_vms::<H>).post(create_vm::<H>))
        .route("/vms/{id}", get(get_vm::<H>))
        .route("/vms/{id}/{op}", post(vm_operation::<H>))
        .route(paths::STORAGE_DOMAINS, post(connect_domain::<H>))
        .route(
            "/storage/domains/{id}",
            get(domain_info::<H>).delete(disconnect_domain::<H>),
        )
        .route("/storage/domains/{id}/files", get(list_files::<H>))
        .route(paths::VOLUMES, post(volume_operation::<H>))
        .merge(crate::transfer::control::routes::<H>())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), gate::<H>));
    Router::new()
        .nest(PREFIX, api)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone())
        // The image data path: outside the prefix, no client certificate (the ticket is the
        // credential), bodies streamed.
        .merge(crate::transfer::http::router(state.transfers.clone()))
}

/// Before enrollment only the enrollment calls answer; after it everything else needs the
/// engine's client certificate on a connection accepted under the current enrollment.
async fn gate<H: Hypervisor + 'static>(State(state): St<H>, req: Request, next: Next) -> Response {
    // Inside `nest` the prefix is already stripped from the URI.
    let path = req.uri().path();
    let path = path.strip_prefix(PREFIX).unwrap_or(path);
    let enrolling = path == paths::ENROLL || path == paths::ENROLL_COMPLETE;
    if enrolling {
        return next.run(req).await;
    }
    if !state.enroller.is_enrolled() {
        return reply::error(&AgentError::new(
            ErrorCode::NotEnrolled,
            "this host is not enrolled: the engine must enroll it first",
        ));
    }
    let authorized = req
        .extensions()
        .get::<ConnInfo>()
        .is_some_and(|c| c.peer == Peer::Engine && c.generation == state.enroller.generation());
    if !authorized {
        return reply::error(&AgentError::new(
            ErrorCode::Unauthenticated,
            "a client certificate issued by this host's engine is required",
        ));
    }
    next.run(req).await
}

async fn enroll<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    match parse::<EnrollRequest>(&body) {
        Ok(req) => reply::result(state.enroller.begin(req).await),
        Err(e) => reply::error(&e),
    }
}

async fn enroll_complete<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    match parse::<EnrollComplete>(&body) {
        Ok(req) => reply::result(
            state
                .enroller
                .complete(req)
                .await
                .map(|()| serde_json::json!({})),
        ),
        Err(e) => reply::error(&e),
    }
}

async fn capabilities<H: Hypervisor + 'static>(State(state): St<H>) -> Response {
    // Enrollment is the server's business: the id the engine gave is the truth, whatever the
    // driver thinks.
    reply::result(state.driver.capabilities().await.map(|mut caps| {
        caps.host_id = state.enroller.host_id();
        caps
    }))
}

async fn stats<H: Hypervisor + 'static>(State(state): St<H>) -> Response {
    reply::result(state.driver.stats().await)
}

async fn list_vms<H: Hypervisor + 'static>(State(state): St<H>) -> Response {
    reply::result(state.driver.list_vms().await)
}

async fn create_vm<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    match parse::<VmSpec>(&body) {
        Ok(spec) => reply::result(state.driver.create_vm(&spec).await),
        Err(e) => reply::error(&e),
    }
}

async fn get_vm<H: Hypervisor + 'static>(State(state): St<H>, Path(id): Path<String>) -> Response {
    reply::result(state.driver.get_vm(&id).await)
}

async fn vm_operation<H: Hypervisor + 'static>(
    State(state): St<H>,
    Path((id, op)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match operation_from(&op, &body) {
        Ok(operation) => reply::result(state.driver.vm_operation(&id, &operation).await),
        Err(e) => reply::error(&e),
    }
}

/// The operation named in the path, its parameters from the body. The body's own `op` tag
/// may be left out (`curl -X POST …/destroy`), but must agree when present.
fn operation_from(op: &str, body: &[u8]) -> Result<VmOperation, AgentError> {
    let invalid = |m: String| AgentError::new(ErrorCode::InvalidRequest, m);
    let mut value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        parse(body)?
    };
    let object = value
        .as_object_mut()
        .ok_or_else(|| invalid("the body of a VM operation must be a JSON object".into()))?;
    match object.get("op") {
        Some(tag) if tag != op => {
            return Err(invalid(format!(
                "the path names operation {op:?} but the body {tag}"
            )))
        }
        Some(_) => {}
        None => {
            object.insert("op".into(), op.into());
        }
    }
    serde_json::from_value(value).map_err(|e| invalid(format!("bad {op:?} operation: {e}")))
}

async fn connect_domain<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    match parse::<DomainSpec>(&body) {
        Ok(spec) => reply::result(state.driver.connect_domain(&spec).await),
        Err(e) => reply::error(&e),
    }
}

async fn domain_info<H: Hypervisor + 'static>(
    State(state): St<H>,
    Path(id): Path<String>,
) -> Response {
    reply::result(state.driver.domain_info(&id).await)
}

async fn disconnect_domain<H: Hypervisor + 'static>(
    State(state): St<H>,
    Path(id): Path<String>,
) -> Response {
    reply::result(
        state
            .driver
            .disconnect_domain(&id)
            .await
            .map(|()| serde_json::json!({})),
    )
}

async fn list_files<H: Hypervisor + 'static>(
    State(state): St<H>,
    Path(id): Path<String>,
) -> Response {
    reply::result(state.driver.list_files(&id).await)
}

async fn volume_operation<H: Hypervisor + 'static>(State(state): St<H>, body: Bytes) -> Response {
    match parse::<VolumeOperation>(&body) {
        Ok(op) => reply::result(state.driver.volume_operation(&op).await),
        Err(e) => reply::error(&e),
    }
}

async fn no_route(method: Method, uri: axum::http::Uri) -> Response {
    let err = AgentError::new(
        ErrorCode::Unsupported,
        format!("no such endpoint: {method} {}", uri.path()),
    );
    reply::error_with_status(&err, axum::http::StatusCode::NOT_FOUND)
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    let err = AgentError::new(
        ErrorCode::Unsupported,
        format!("{method} is not allowed on {}", uri.path()),
    );
    reply::error_with_status(&err, axum::http::StatusCode::METHOD_NOT_ALLOWED)
}

#[cfg(test)]
mod tests {
    use super::operation_from;

    #[test]
    fn the_path_names_the_operation_and_the_body_must_agree() {
        assert_eq!(
            operation_from("destroy", b"").unwrap(),
            vireo_agent_proto::VmOperation::Destroy
        );
        assert!(matches!(
            operation_from("shutdown", br#"{"timeout_s": 5}"#).unwrap(),
            vireo_agent_proto::VmOperation::Shutdown { timeout_s: 5 }
        ));
        assert!(operation_from("pause", br#"{"op": "resume"}"#).is_err());
        assert!(operation_from("explode", b"").is_err());
        assert!(
            operation_from("shutdown", b"{}").is_err(),
            "missing timeout_s"
        );
        assert!(operation_from("pause", b"[1]").is_err());
        assert!(operation_from("pause", b"{bad").is_err());
    }
}
