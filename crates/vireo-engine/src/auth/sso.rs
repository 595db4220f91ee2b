//! The SSO endpoints, shaped like ovirt-engine's `enginesso` servlets:
//!
//! | path | oVirt servlet |
//! | --- | --- |
//! | `/ovirt-engine/sso/oauth/token` | `OAuthTokenServlet` (grants `password` and `urn:ovirt:params:oauth:grant-type:http`) |
//! | `/ovirt-engine/sso/oauth/token-http-auth` | the same, reached with a Basic header |
//! | `/ovirt-engine/sso/oauth/token-info` | `OAuthTokenInfoServlet` |
//! | `/ovirt-engine/sso/oauth/revoke` | `OAuthRevokeServlet` |
//! | `/ovirt-engine/services/sso-logout` | `SsoLogoutServlet` (what the SDK's `close()` calls) |
//!
//! Like the servlets, every method is served, parameters come from the query string and
//! an urlencoded body, and every answer — errors included — is JSON: the SDK ignores the
//! HTTP status and only parses the body when the `Content-Type` is JSON.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};
use vireo_store::TokenKind;

use super::sessions::{self, Credentials};
use super::{Auth, LoginError};

const GRANT_PASSWORD: &str = "password";
const GRANT_HTTP: &str = "urn:ovirt:params:oauth:grant-type:http";
const API_SCOPE: &str = "ovirt-app-api";
/// Form bodies here are a few hundred bytes; refuse anything absurd before buffering it.
const MAX_BODY: usize = 64 * 1024;

/// Scopes that imply others (ovirt-engine's `sso_scope_dependency` table). oVirt answers
/// with the requested scopes plus their dependencies, sorted and space-separated.
const SCOPE_DEPENDENCIES: &[(&str, &[&str])] = &[
    (
        "ovirt-app-api",
        &[
            "ovirt-ext=token-info:authz-search",
            "ovirt-ext=token-info:public-authz-search",
            "ovirt-ext=token-info:validate",
            "ovirt-ext=token:password-access",
        ],
    ),
    (
        "ovirt-app-admin",
        &[
            "ovirt-app-api",
            "ovirt-ext=token:password-access",
            "ovirt-ext=token-info:authz-search",
            "ovirt-ext=token-info:public-authz-search",
            "ovirt-ext=token-info:validate",
            "ovirt-ext=revoke:revoke-all",
        ],
    ),
    (
        "ovirt-app-portal",
        &[
            "ovirt-app-api",
            "ovirt-ext=token:password-access",
            "ovirt-ext=token-info:authz-search",
            "ovirt-ext=token-info:public-authz-search",
            "ovirt-ext=token-info:validate",
            "ovirt-ext=revoke:revoke-all",
        ],
    ),
];

fn scope_list(scope: &str) -> Vec<&str> {
    scope.split_whitespace().collect()
}

/// The requested scopes with their dependencies, sorted and de-duplicated.
fn resolve_scope(scope: &str) -> String {
    let mut all = std::collections::BTreeSet::new();
    for s in scope_list(scope) {
        all.insert(s);
        for (name, deps) in SCOPE_DEPENDENCIES {
            if *name == s {
                all.extend(deps.iter().copied());
            }
        }
    }
    all.into_iter().collect::<Vec<_>>().join(" ")
}

/// Scopes we grant: the three application scopes, OpenID's, and oVirt's `ovirt-ext=…`
/// extensions. A token must include `ovirt-app-api` or the API would refuse it anyway
/// (oVirt: "The required scope ovirt-app-api is not granted.").
fn check_scope(scope: &str) -> Result<(), String> {
    let list = scope_list(scope);
    let known = |s: &&str| {
        matches!(
            *s,
            "ovirt-app-api" | "ovirt-app-admin" | "ovirt-app-portal" | "openid"
        ) || s.starts_with("ovirt-ext=")
    };
    if list.contains(&API_SCOPE) && list.iter().all(known) {
        Ok(())
    } else {
        // oVirt formats the scope as a Java list.
        Err(format!(
            "The requested scope '[{}]' is invalid, unknown, malformed, or exceeds the scope \
             granted by the resource owner.",
            list.join(", ")
        ))
    }
}

/// oVirt's `isRestApiScope`: API clients get `{"error_code", "error"}`, everybody else the
/// OAuth shape `{"error", "error_description"}`.
fn is_rest_api_scope(scope: &str) -> bool {
    let list = scope_list(scope);
    list.contains(&API_SCOPE)
        && !list.contains(&"ovirt-app-admin")
        && !list.contains(&"ovirt-app-portal")
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Token answers must not be cached (RFC 6749 §5.1).
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An SSO error: HTTP 400 and JSON, as `SsoService.sendJsonDataWithMessage` answers.
struct SsoError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl SsoError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        SsoError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    fn missing(param: &str) -> Self {
        Self::new("invalid_request", format!("Missing parameter: '{param}'"))
    }

    fn render(self, rest_api: bool) -> Response {
        let body = if rest_api {
            json!({ "error_code": self.code, "error": self.message })
        } else {
            json!({ "error": self.code, "error_description": self.message })
        };
        let mut r = json_response(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, super::www_authenticate());
        }
        r
    }
}

impl From<LoginError> for SsoError {
    fn from(e: LoginError) -> Self {
        SsoError::new(e.code, e.message)
    }
}

/// Request parameters: the query string first, then an urlencoded body, first value wins
/// (the servlet API's `getParameter`).
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, SsoError> {
        self.get(name).ok_or_else(|| SsoError::missing(name))
    }
}

/// What a handler needs of the request, read once.
struct Call {
    params: Params,
    headers: axum::http::HeaderMap,
    peer: Option<IpAddr>,
}

async fn read_call(req: Request) -> Result<Call, SsoError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let (parts, body) = req.into_parts();
    let mut params: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    // No Content-Type at all is read as a form too, as curl users often send none.
    let is_form = match parts.headers.get(CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        }),
    };
    if is_form {
        let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY)
            .await
            .map_err(|_| {
                SsoError::new(
                    "invalid_request",
                    "The request body is too large or unreadable.",
                )
            })?;
        params.extend(form_urlencoded::parse(&bytes).into_owned());
    }
    Ok(Call {
        params: Params(params),
        headers: parts.headers,
        peer,
    })
}

impl Auth {
    /// The SSO routes, with this `Auth` as their state; merge it into the engine's router.
    pub fn sso_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/ovirt-engine/sso/oauth/token", any(token))
            .route("/ovirt-engine/sso/oauth/token-http-auth", any(token))
            .route("/ovirt-engine/sso/oauth/token-info", any(token_info))
            .route("/ovirt-engine/sso/oauth/revoke", any(revoke))
            .route("/ovirt-engine/services/sso-logout", any(sso_logout))
            .with_state(Arc::clone(self))
    }

    async fn grant(&self, call: &Call) -> Result<Value, SsoError> {
        let grant = call.params.get("grant_type").unwrap_or("");
        let scope = call.params.get("scope").unwrap_or("");
        let (login, password) =
            match grant {
                GRANT_PASSWORD => {
                    let login = call.params.require("username")?.to_owned();
                    let password = call.params.require("password")?.to_owned();
                    (login, password)
                }
                GRANT_HTTP => {
                    let unauthorized = |m: &str| SsoError {
                        status: StatusCode::UNAUTHORIZED,
                        ..SsoError::new("access_denied", format!("Cannot authenticate user {m}."))
                    };
                    match sessions::credentials(&call.headers) {
                        Credentials::Basic { b64, .. } => {
                            sessions::decode_basic(b64).ok_or_else(|| {
                                unauthorized("Unable to extract user credentials from request")
                            })?
                        }
                        _ => return Err(unauthorized("Authentication required")),
                    }
                }
                _ => return Err(SsoError::new(
                    "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.",
                )),
            };
        // Checked before the password so a malformed request costs no argon2 run.
        check_scope(scope).map_err(|m| SsoError::new("invalid_scope", m))?;
        let who = self
            .login(&login, &password, call.peer)
            .await
            .map_err(|e| {
                if grant == GRANT_HTTP {
                    SsoError {
                        status: StatusCode::UNAUTHORIZED,
                        ..e.into()
                    }
                } else {
                    e.into()
                }
            })?;
        let (token, _, expires_ms) = self
            .issue_token(
                &who,
                TokenKind::Bearer,
                self.settings.bearer_ttl_ms,
                call.peer,
            )
            .await
            .map_err(server_error)?;
        Ok(json!({
            "access_token": token,
            "token_type": "bearer",
            "scope": resolve_scope(scope),
            "exp": expires_ms.to_string(),
        }))
    }

    async fn token_info(&self, call: &Call) -> Result<Value, SsoError> {
        let token = call.params.require("token")?;
        let scope = call.params.get("scope").unwrap_or("");
        let expired = || {
            SsoError::new(
                "invalid_grant",
                "The provided authorization grant for the auth code has expired.",
            )
        };
        let t = self
            .use_token(token, TokenKind::Bearer)
            .await
            .map_err(server_error)?
            .ok_or_else(expired)?;
        if scope_list(scope).contains(&"ovirt-ext=token-info:validate") {
            return Ok(json!({}));
        }
        let user = self
            .store
            .get("users", &t.user_id)
            .await
            .map_err(server_error)?
            .ok_or_else(expired)?;
        let u = vireo_model::from_json::<vireo_model::User>(
            user.doc.as_bytes(),
            vireo_model::Limits::default(),
        )
        .unwrap_or_default();
        let user_name = user.name.unwrap_or_default();
        let (principal, authz) = user_name.rsplit_once('@').unwrap_or((&user_name, ""));
        let profile = authz.strip_suffix("-authz").unwrap_or(authz);
        Ok(json!({
            "active": true,
            "token_type": "bearer",
            "client_id": null,
            "user_id": format!("{principal}@{profile}"),
            "user_authz": authz,
            // The store keeps no scope per token; every token we issue has the API scope.
            "scope": resolve_scope(API_SCOPE),
            "exp": t.expires_ms.to_string(),
            "ovirt": {
                "version": "0",
                "principal_id": t.user_id,
                "email": u.email,
                "namespace": u.namespace,
                "first_name": u.name,
                "last_name": u.last_name,
                "group_ids": [],
                "capability_credentials_change": authz == super::INTERNAL_AUTHZ,
            },
        }))
    }

    async fn revoke_call(&self, call: &Call) -> Result<Value, SsoError> {
        let token = call.params.require("token")?;
        self.revoke(token, call.peer).await.map_err(server_error)?;
        Ok(json!({}))
    }
}

fn server_error(e: impl std::fmt::Display) -> SsoError {
    tracing::error!("SSO request failed: {e}");
    SsoError::new(
        "server_error",
        "The authorization server failed to answer the request.",
    )
}

/// Runs one SSO call and renders its result as JSON.
async fn serve<F, Fut>(req: Request, f: F) -> Response
where
    F: FnOnce(Call) -> Fut,
    Fut: std::future::Future<Output = (Result<Value, SsoError>, bool)>,
{
    let call = match read_call(req).await {
        Ok(c) => c,
        Err(e) => return e.render(false),
    };
    match f(call).await {
        (Ok(body), _) => json_response(StatusCode::OK, &body),
        (Err(e), rest_api) => e.render(rest_api),
    }
}

fn rest_api(call: &Call) -> bool {
    is_rest_api_scope(call.params.get("scope").unwrap_or(""))
}

async fn token(State(auth): State<Arc<Auth>>, req: Request) -> Response {
    serve(req, |call| async move {
        (auth.grant(&call).await, rest_api(&call))
    })
    .await
}

async fn token_info(State(auth): State<Arc<Auth>>, req: Request) -> Response {
    serve(req, |call| async move {
        (auth.token_info(&call).await, rest_api(&call))
    })
    .await
}

async fn revoke(State(auth): State<Arc<Auth>>, req: Request) -> Response {
    serve(req, |call| async move {
        (auth.revoke_call(&call).await, rest_api(&call))
    })
    .await
}

/// `SsoLogoutServlet` relays the revoke answer with status 200 whatever it says.
async fn sso_logout(State(auth): State<Arc<Auth>>, req: Request) -> Response {
    let mut r = serve(req, |call| async move {
        (auth.revoke_call(&call).await, rest_api(&call))
    })
    .await;
    *r.status_mut() = StatusCode::OK;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            resolve_scope("ovirt-app-api"),
            "ovirt-app-api ovirt-ext=token-info:authz-search ovirt-ext=token-info:public-authz-search \
             ovirt-ext=token-info:validate ovirt-ext=token:password-access"
        );
        assert!(check_scope("ovirt-app-api").is_ok());
        assert!(check_scope("ovirt-app-api ovirt-ext=token:password-access").is_ok());
        assert!(check_scope("").is_err());
        assert!(check_scope("ovirt-app-api bogus").is_err());
        assert!(is_rest_api_scope("ovirt-app-api"));
        assert!(!is_rest_api_scope("ovirt-app-api ovirt-app-admin"));
        assert!(!is_rest_api_scope(""));
    }
}
