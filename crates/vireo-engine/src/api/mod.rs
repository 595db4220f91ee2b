//! The HTTP surface: `/ovirt-engine/api` (the service tree of the model), the SSO endpoints,
//! health and the CA download.

pub mod entry;
pub mod fault;
pub mod format;
pub mod params;
pub mod path;
pub mod render;
pub mod search;

use crate::auth::Principal;
use crate::state::Engine;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use fault::{ApiError, ApiResult};
use format::Format;
use params::Params;
use path::Resolved;
use std::sync::Arc;
use std::time::Instant;
use vireo_model::meta::{MethodKind, ServiceDef};

/// Everything a handler needs to know about the request it serves.
pub struct Ctx<'a> {
    pub engine: &'a Engine,
    pub format: Format,
    pub params: Params,
    pub principal: Principal,
    pub resolved: Resolved,
    pub headers: &'a HeaderMap,
    pub body: bytes::Bytes,
}

impl Ctx<'_> {
    pub fn parse_body<T: vireo_model::Model>(&self) -> ApiResult<T> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(
                ApiError::bad_request(format!("the request needs a <{}> body", T::XML))
                    .with_format(self.format),
            );
        }
        Format::of_request(self.headers)
            .parse(&self.body)
            .map_err(|e| ApiError::from_codec(e).with_format(self.format))
    }

    pub fn ok<T: vireo_model::Model>(&self, status: StatusCode, v: &T) -> Response {
        let mut r = (status, self.format.render(v)).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, self.format.content_type());
        r
    }
}

pub fn router(engine: Arc<Engine>) -> Router {
    let sso = engine.auth.sso_router();
    let image_proxy = crate::transfer::proxy::router(&engine);
    Router::new()
        .route("/ovirt-engine/services/health", get(health))
        .route("/ovirt-engine/services/pki-resource", get(pki_resource))
        .route("/ovirt-engine/api", any(api))
        .route("/ovirt-engine/api/", any(api))
        .route("/ovirt-engine/api/{*rest}", any(api))
        .with_state(engine)
        .merge(sso)
        .merge(image_proxy)
        .fallback(|| async { ApiError::not_found("no such resource") })
        .layer(axum::middleware::from_fn(log_request))
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "DB Up!Welcome to Health Status!",
    )
        .into_response()
}

async fn pki_resource(
    State(engine): State<Arc<Engine>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let params: Vec<(String, String)> = q
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (get("resource"), get("format")) {
        (
            Some("ca-certificate") | Some("engine-certificate"),
            Some("X509-PEM-CA") | Some("X509-PEM") | None,
        ) => (
            [(header::CONTENT_TYPE, "application/x-x509-ca-cert")],
            engine.pki.ca_pem().to_string(),
        )
            .into_response(),
        _ => ApiError::bad_request(
            "pki-resource serves resource=ca-certificate with format=X509-PEM-CA",
        )
        .into_response(),
    }
}

/// One log line per request: method, path, status, duration and correlation id.
async fn log_request(req: Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut correlation = req
        .headers()
        .get("correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(params::clean_correlation_id)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut res = next.run(req).await;
    if let Some(c) = res
        .headers()
        .get("correlation-id")
        .and_then(|v| v.to_str().ok())
    {
        correlation = c.to_string();
    }
    tracing::info!(method = %method, path = %path, status = res.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0, correlation_id = %correlation, "request");
    if res.status() != StatusCode::UNAUTHORIZED {
        if let Ok(v) = HeaderValue::from_str(&correlation) {
            res.headers_mut().insert("correlation-id", v);
        }
    }
    res
}

async fn api(State(engine): State<Arc<Engine>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    // HTTP/2 carries the host in the URI (`:authority`), not in a Host header.
    if !parts.headers.contains_key(header::HOST) {
        if let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| axum::http::HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, v);
        }
    }
    let query = parts.uri.query().map(str::to_string);
    let accept_param = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "accept")
            .map(|(_, v)| v.into_owned())
    });
    let format = Format::of_response(&parts.headers, accept_param.as_deref());
    match handle(&engine, &parts, query.as_deref(), body, format).await {
        Ok(r) => r,
        Err(e) => e.with_format(format).into_response(),
    }
}

async fn handle(
    engine: &Engine,
    parts: &axum::http::request::Parts,
    query: Option<&str>,
    body: Body,
    format: Format,
) -> ApiResult<Response> {
    let rest = parts
        .uri
        .path()
        .strip_prefix("/ovirt-engine/api")
        .unwrap_or("")
        .trim_start_matches('/');
    let rest = version(rest, &parts.headers)?;
    let resolved = path::resolve(rest)?;

    let (principal, cookie) = engine
        .auth
        .authenticate(&parts.headers)
        .await
        .map_err(|e| {
            ApiError::unauthorized(match e {
                crate::auth::AuthError::Missing => "authentication is required".to_string(),
                crate::auth::AuthError::Invalid(why) => why,
            })
        })?;
    engine
        .auth
        .authorize(&principal, &parts.method, parts.uri.path())
        .map_err(ApiError::forbidden)?;

    let params = Params::parse(query, &resolved.matrix, &parts.headers)?;
    let body = axum::body::to_bytes(body, format::BODY_LIMITS.max_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                format!(
                    "the body is larger than {} bytes",
                    format::BODY_LIMITS.max_bytes
                ),
            )
        })?;
    let correlation = params.correlation_id.clone();
    let ctx = Ctx {
        engine,
        format,
        params,
        principal,
        resolved,
        headers: &parts.headers,
        body,
    };
    let mut res = dispatch(&ctx, &parts.method).await?;
    if let Some(c) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    if let Some(c) = correlation.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().insert("correlation-id", c);
    }
    Ok(res)
}

/// `/v4/...` or the `Version` header; anything but 4 is refused.
fn version<'a>(rest: &'a str, headers: &HeaderMap) -> ApiResult<&'a str> {
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if first.len() >= 2 && first.starts_with('v') && first[1..].chars().all(|c| c.is_ascii_digit())
    {
        if first != "v4" {
            return Err(ApiError::bad_request(format!(
                "API version {} is not supported; this engine serves version 4",
                &first[1..]
            )));
        }
        return Ok(tail);
    }
    if let Some(v) = headers.get("version").and_then(|v| v.to_str().ok()) {
        if v.trim() != "4" {
            return Err(ApiError::bad_request(format!(
                "API version '{v}' is not supported; this engine serves version 4"
            )));
        }
    }
    Ok(rest)
}

fn method_kind(ctx: &Ctx<'_>, http: &Method) -> ApiResult<MethodKind> {
    let svc = ctx.resolved.service();
    let kind = match (http, &ctx.resolved.action) {
        (&Method::POST, Some(_)) => MethodKind::Action,
        (_, Some(a)) => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                format!("the action '{a}' takes POST"),
            ))
        }
        (&Method::GET | &Method::HEAD, None)
            if svc.methods_of(MethodKind::List).next().is_some() =>
        {
            MethodKind::List
        }
        (&Method::GET | &Method::HEAD, None) => MethodKind::Get,
        (&Method::POST, None) => MethodKind::Add,
        (&Method::PUT, None) => MethodKind::Update,
        (&Method::DELETE, None) => MethodKind::Remove,
        _ => return Err(not_allowed(svc, http)),
    };
    let exists = match (&kind, &ctx.resolved.action) {
        (MethodKind::Action, Some(a)) => svc.action(a).next().is_some(),
        _ => {
            svc.methods_of(kind).next().is_some()
                || (kind == MethodKind::Get && ctx.resolved.nodes.is_empty())
        }
    };
    if !exists {
        return Err(not_allowed(svc, http));
    }
    Ok(kind)
}

fn not_allowed(svc: &ServiceDef, http: &Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        format!("{} does not support {http}", svc.name),
    )
}

async fn dispatch(ctx: &Ctx<'_>, http: &Method) -> ApiResult<Response> {
    let kind = method_kind(ctx, http)?;
    if ctx.resolved.nodes.is_empty() && kind == MethodKind::Get {
        return entry::entry_point(ctx, http == Method::HEAD).await;
    }
    if let Some(r) = crate::inventory::dispatch(ctx, kind).await? {
        return Ok(r);
    }
    let svc = ctx.resolved.service();
    let name = match (&kind, &ctx.resolved.action) {
        (MethodKind::Action, Some(a)) => a.clone(),
        (k, _) => format!("{k:?}").to_lowercase(),
    };
    Err(ApiError::not_implemented(format!(
        "{}.{name} is not implemented by vireo yet",
        svc.name
    )))
}
