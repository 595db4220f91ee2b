//! End-to-end tests of the auth module over a real SQLite store.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use base64::Engine as _;
use serde_json::Value;
use tower::ServiceExt as _;
use vireo_store::{EventQuery, Filter, Query, Store};

use super::*;

const PASSWORD: &str = "conformance-secret";
const T0: i64 = 1_700_000_000_000;

struct Env {
    auth: Arc<Auth>,
    store: Store,
    time: Arc<AtomicI64>,
    dir: tempfile::TempDir,
}

impl Env {
    fn advance(&self, ms: i64) {
        self.time.fetch_add(ms, Ordering::SeqCst);
    }
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("vireo.db").to_str().unwrap())
        .await
        .unwrap();
    let time = Arc::new(AtomicI64::new(T0));
    let t = Arc::clone(&time);
    let settings = Settings {
        clock: Arc::new(move || t.load(Ordering::SeqCst)),
        ..Settings::default()
    };
    let auth = Arc::new(Auth::with_settings(store.clone(), settings));
    auth.bootstrap_admin(Some(PASSWORD), dir.path())
        .await
        .unwrap();
    Env {
        auth,
        store,
        time,
        dir,
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn basic(user: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// POSTs a form to the SSO router; returns status, Content-Type and the JSON body.
async fn post_form(
    auth: &Arc<Auth>,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, String, Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Body::from(body))
        .unwrap();
    send(auth, req).await
}

async fn send(auth: &Arc<Auth>, req: Request<Body>) -> (StatusCode, String, Value) {
    let resp = auth.sso_router().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, ct, json)
}

async fn grant(auth: &Arc<Auth>, user: &str, password: &str) -> (StatusCode, String, Value) {
    post_form(
        auth,
        "/ovirt-engine/sso/oauth/token",
        &[
            ("grant_type", "password"),
            ("scope", "ovirt-app-api"),
            ("username", user),
            ("password", password),
        ],
    )
    .await
}

async fn bearer(auth: &Auth, token: &str) -> Result<(Principal, Option<HeaderValue>), AuthError> {
    auth.authenticate(&headers(&[("authorization", &format!("Bearer {token}"))]))
        .await
}

async fn events(store: &Store, code: i64) -> Vec<vireo_store::Event> {
    let all = store.list_events(&EventQuery::default()).await.unwrap();
    all.into_iter().filter(|e| e.code == code).collect()
}

#[tokio::test]
async fn bootstrap_creates_exactly_one_admin() {
    let e = env().await;
    // A second start changes nothing, whatever password it is given.
    assert_eq!(
        e.auth
            .bootstrap_admin(Some("other"), e.dir.path())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        e.auth.bootstrap_admin(None, e.dir.path()).await.unwrap(),
        None
    );
    let users = e.store.list("users", &Query::default()).await.unwrap();
    assert_eq!(users.len(), 1);
    let admin = &users[0];
    assert_eq!(admin.name.as_deref(), Some(ADMIN_USER_NAME));
    let doc: Value = serde_json::from_str(&admin.doc).unwrap();
    assert_eq!(doc["user_name"], "admin@internal-authz");
    assert_eq!(doc["principal"], "admin");
    assert_eq!(doc["name"], "admin");
    assert_eq!(doc["namespace"], "*");
    assert_eq!(doc["domain"]["name"], "internal-authz");
    assert_eq!(doc["domain"]["id"], "696E7465726E616C2D617574687A");
    assert!(doc.get("href").is_none() && doc.get("link").is_none());

    let perms = e
        .store
        .list("permissions", &Query::default())
        .await
        .unwrap();
    assert_eq!(perms.len(), 1);
    let p: Value = serde_json::from_str(&perms[0].doc).unwrap();
    assert_eq!(p["role"]["id"], SUPERUSER_ROLE_ID);
    assert_eq!(p["user"]["id"], admin.id.as_str());
    let filter = Filter::eq(PERM_OBJECT, SYSTEM_OBJECT_ID);
    assert_eq!(e.store.count("permissions", &filter).await.unwrap(), 1);

    let phc = e.store.get_password_hash(&admin.id).await.unwrap().unwrap();
    assert!(phc.starts_with("$argon2id$") && !phc.contains(PASSWORD));
    // The password was given, so no file was written.
    assert!(!e.dir.path().join("admin-password").exists());
}

#[tokio::test]
async fn bootstrap_without_password_writes_a_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("vireo.db").to_str().unwrap())
        .await
        .unwrap();
    let auth = Auth::new(store);
    let data = dir.path().join("data");
    let pw = auth.bootstrap_admin(None, &data).await.unwrap().unwrap();
    assert_eq!(pw.len(), 20);
    let path = data.join("admin-password");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), pw);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(auth.bootstrap_admin(None, &data).await.unwrap(), None);
    let h = headers(&[("authorization", &basic("admin@internal", &pw))]);
    assert!(auth.authenticate(&h).await.unwrap().0.superuser);
}

#[tokio::test]
async fn token_grant_then_bearer() {
    let e = env().await;
    let (status, ct, tok) = grant(&e.auth, "admin@internal", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/json"));
    assert_eq!(tok["token_type"], "bearer");
    assert!(tok["scope"].as_str().unwrap().contains("ovirt-app-api"));
    let exp: i64 = tok["exp"].as_str().unwrap().parse().unwrap();
    assert_eq!(exp, T0 + 10 * 3600 * 1000);
    let token = tok["access_token"].as_str().unwrap();
    assert_eq!(token.len(), 43);

    let (p, cookie) = bearer(&e.auth, token).await.unwrap();
    assert!(p.superuser && cookie.is_none());
    assert_eq!(p.user_name, ADMIN_USER_NAME);
    assert_eq!(
        p.token_hash.as_deref(),
        Some(tokens::hash_token(token).as_str())
    );
    // Only the hash is stored.
    assert!(e.store.get_token(token).await.unwrap().is_none());
    assert_eq!(events(&e.store, audit::USER_VDC_LOGIN).await.len(), 1);

    // The authz spelling is accepted too.
    let (_, _, tok2) = grant(&e.auth, "admin@internal-authz", PASSWORD).await;
    assert!(tok2["access_token"].is_string());

    let (status, _, info) = post_form(
        &e.auth,
        "/ovirt-engine/sso/oauth/token-info",
        &[("token", token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["active"], true);
    assert_eq!(info["user_id"], "admin@internal");
    assert_eq!(info["user_authz"], "internal-authz");
    assert_eq!(info["exp"], tok["exp"]);

    // Bad tokens of every shape are refused, none panics.
    for bad in ["", "nope", "Zm9v", "a b c"] {
        let h = headers(&[("authorization", &format!("Bearer {bad}"))]);
        assert!(matches!(
            e.auth.authenticate(&h).await,
            Err(AuthError::Invalid(_))
        ));
    }
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_bytes(b"Bearer \xff\x80").unwrap(),
    );
    assert!(matches!(
        e.auth.authenticate(&h).await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn revoked_token_is_refused() {
    let e = env().await;
    let (_, _, tok) = grant(&e.auth, "admin@internal", PASSWORD).await;
    let token = tok["access_token"].as_str().unwrap().to_owned();
    assert!(bearer(&e.auth, &token).await.is_ok());

    // What the SDK's close() sends.
    let (status, ct, body) = post_form(
        &e.auth,
        "/ovirt-engine/services/sso-logout",
        &[("scope", "ovirt-app-api"), ("token", &token)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("application/json"));
    assert_eq!(body, serde_json::json!({}));
    assert!(matches!(
        bearer(&e.auth, &token).await,
        Err(AuthError::Invalid(_))
    ));
    assert_eq!(events(&e.store, audit::USER_VDC_LOGOUT).await.len(), 1);

    // Revoking again is fine; the OAuth endpoint works the same way.
    let (status, _, body) = post_form(
        &e.auth,
        "/ovirt-engine/sso/oauth/revoke",
        &[("token", &token)],
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({})));
    let (status, _, body) = post_form(&e.auth, "/ovirt-engine/sso/oauth/revoke", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn wrong_password_is_a_json_error_and_audited() {
    let e = env().await;
    let (status, ct, body) = grant(&e.auth, "admin@internal", "wrong-one").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(ct.starts_with("application/json"));
    assert_eq!(body["error_code"], "access_denied");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.starts_with("Cannot authenticate user 'admin@internal': "),
        "{msg}"
    );

    let failed = events(&e.store, audit::USER_VDC_LOGIN_FAILED).await;
    assert_eq!(failed.len(), 1);
    let ev = &failed[0];
    assert_eq!(ev.severity, "error");
    assert!(ev.description.contains("admin@internal"));
    assert!(!ev.description.contains("wrong-one"));
    let admin = e
        .store
        .get_by_name("users", ADMIN_USER_NAME, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.refs.user_id.as_deref(), Some(admin.id.as_str()));

    // Unknown users and logins without a profile fail the same way (no user id to record).
    let (_, _, body) = grant(&e.auth, "nobody@internal", "x").await;
    assert_eq!(body["error_code"], "access_denied");
    let (_, _, body) = grant(&e.auth, "admin", PASSWORD).await;
    assert_eq!(body["error_code"], "access_denied");
    let failed = events(&e.store, audit::USER_VDC_LOGIN_FAILED).await;
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().filter(|e| e.refs.user_id.is_none()).count() == 2);
}

#[tokio::test]
async fn malformed_sso_requests_answer_json() {
    let e = env().await;
    let (status, ct, body) = post_form(
        &e.auth,
        "/ovirt-engine/sso/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("scope", "ovirt-app-api"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(ct.starts_with("application/json"));
    assert_eq!(body["error_code"], "unsupported_grant_type");

    let (_, _, body) = post_form(
        &e.auth,
        "/ovirt-engine/sso/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "admin@internal"),
            ("password", PASSWORD),
        ],
    )
    .await;
    // No API scope: OAuth's error shape.
    assert_eq!(body["error"], "invalid_scope");
    assert!(body["error_description"].is_string());

    let (_, _, body) = post_form(
        &e.auth,
        "/ovirt-engine/sso/oauth/token",
        &[("grant_type", "password"), ("scope", "ovirt-app-api")],
    )
    .await;
    assert_eq!(body["error_code"], "invalid_request");
    assert_eq!(body["error"], "Missing parameter: 'username'");

    // Garbage bodies, odd methods, no Content-Type: still JSON.
    let req = Request::get("/ovirt-engine/sso/oauth/token?grant_type=password&scope=ovirt-app-api")
        .body(Body::from(vec![0xffu8, 0x00, b'%', b'=', b'&']))
        .unwrap();
    let (status, ct, body) = send(&e.auth, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(ct.starts_with("application/json"));
    assert!(body["error"].is_string());

    let (status, _, body) = post_form(
        &e.auth,
        "/ovirt-engine/sso/oauth/token-info",
        &[("token", "nope")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn http_grant_with_basic_header() {
    let e = env().await;
    let req = Request::post("/ovirt-engine/sso/oauth/token-http-auth")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, basic("admin@internal", PASSWORD))
        .body(Body::from(
            "grant_type=urn%3Aovirt%3Aparams%3Aoauth%3Agrant-type%3Ahttp&scope=ovirt-app-api",
        ))
        .unwrap();
    let (status, _, tok) = send(&e.auth, req).await;
    assert_eq!(status, StatusCode::OK, "{tok}");
    assert!(bearer(&e.auth, tok["access_token"].as_str().unwrap())
        .await
        .is_ok());

    let req = Request::post("/ovirt-engine/sso/oauth/token-http-auth")
        .header(header::AUTHORIZATION, basic("admin@internal", "bad"))
        .body(Body::from(
            "grant_type=urn:ovirt:params:oauth:grant-type:http&scope=ovirt-app-api",
        ))
        .unwrap();
    let (status, _, body) = send(&e.auth, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error_code"], "access_denied");
}

#[tokio::test]
async fn basic_without_persistence() {
    let e = env().await;
    let h = headers(&[("authorization", &basic("admin@internal", PASSWORD))]);
    let (p, cookie) = e.auth.authenticate(&h).await.unwrap();
    assert!(p.superuser && cookie.is_none() && p.token_hash.is_none());
    assert_eq!(events(&e.store, audit::USER_VDC_LOGIN).await.len(), 1);

    // Cached: a repeat costs no argon2 run and logs no second login.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        e.auth.authenticate(&h).await.unwrap();
    }
    assert!(started.elapsed() < std::time::Duration::from_millis(200));
    assert_eq!(events(&e.store, audit::USER_VDC_LOGIN).await.len(), 1);
    // ...until the cache period is over.
    e.advance(61_000);
    e.auth.authenticate(&h).await.unwrap();
    assert_eq!(events(&e.store, audit::USER_VDC_LOGIN).await.len(), 2);

    // Wrong passwords are refused every time and never cached.
    let bad = headers(&[("authorization", &basic("admin@internal", "wrong"))]);
    for _ in 0..2 {
        assert!(matches!(
            e.auth.authenticate(&bad).await,
            Err(AuthError::Invalid(_))
        ));
    }
    assert_eq!(
        events(&e.store, audit::USER_VDC_LOGIN_FAILED).await.len(),
        2
    );

    // Missing and malformed credentials.
    assert_eq!(
        e.auth.authenticate(&HeaderMap::new()).await,
        Err(AuthError::Missing)
    );
    for v in [
        "Basic !!!",
        "Basic",
        "Basic bm9jb2xvbg==",
        "Digest x",
        "Basic /w==",
    ] {
        let h = headers(&[("authorization", v)]);
        assert!(
            matches!(e.auth.authenticate(&h).await, Err(AuthError::Invalid(_))),
            "{v}"
        );
    }
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_bytes(b"Basic \xc3\xa9").unwrap(),
    );
    assert!(matches!(
        e.auth.authenticate(&h).await,
        Err(AuthError::Invalid(_))
    ));
    assert_eq!(www_authenticate(), "Basic realm=\"RESTAPI\"");
}

fn cookie_value(set_cookie: &HeaderValue) -> String {
    let s = set_cookie.to_str().unwrap();
    assert!(
        s.ends_with("; Path=/ovirt-engine/api; Secure; HttpOnly"),
        "{s}"
    );
    let first = s.split(';').next().unwrap();
    first.strip_prefix("JSESSIONID=").unwrap().to_owned()
}

#[tokio::test]
async fn persistent_auth_session() {
    let e = env().await;
    let h = headers(&[
        ("authorization", &basic("admin@internal", PASSWORD)),
        ("prefer", "persistent-auth"),
    ]);
    let (p, cookie) = e.auth.authenticate(&h).await.unwrap();
    let sid = cookie_value(&cookie.unwrap());
    assert!(p.superuser && p.token_hash.is_some());

    // The cookie alone authenticates, and sends no new cookie.
    let with_cookie = headers(&[
        ("cookie", &format!("other=1; JSESSIONID={sid}")),
        ("prefer", "persistent-auth"),
    ]);
    let (p2, cookie2) = e.auth.authenticate(&with_cookie).await.unwrap();
    assert_eq!(p2.token_hash, p.token_hash);
    assert!(cookie2.is_none());

    // Basic plus a live cookie reuses the session instead of making another.
    let both = headers(&[
        ("authorization", &basic("admin@internal", PASSWORD)),
        ("cookie", &format!("JSESSIONID={sid}")),
        ("prefer", "persistent-auth"),
    ]);
    let (p3, cookie3) = e.auth.authenticate(&both).await.unwrap();
    assert_eq!((p3.token_hash, cookie3), (p.token_hash.clone(), None));

    // The session id is not a bearer token.
    assert!(bearer(&e.auth, &sid).await.is_err());

    // A request without `Prefer: persistent-auth` ends the session (oVirt's behaviour).
    let plain = headers(&[("cookie", &format!("JSESSIONID={sid}"))]);
    assert!(e.auth.authenticate(&plain).await.is_ok());
    assert!(matches!(
        e.auth.authenticate(&with_cookie).await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn sessions_slide_and_expire() {
    let e = env().await;
    let login = |ttl: Option<&str>| {
        let mut h = headers(&[
            ("authorization", &basic("admin@internal", PASSWORD)),
            ("prefer", "persistent-auth"),
        ]);
        if let Some(t) = ttl {
            h.insert("session-ttl", HeaderValue::from_str(t).unwrap());
        }
        h
    };
    let cookie = |sid: &str| {
        headers(&[
            ("cookie", &format!("JSESSIONID={sid}")),
            ("prefer", "persistent-auth"),
        ])
    };

    // Default: 30 idle minutes, sliding with use.
    let sid = cookie_value(&e.auth.authenticate(&login(None)).await.unwrap().1.unwrap());
    for _ in 0..4 {
        e.advance(20 * 60_000);
        assert!(
            e.auth.authenticate(&cookie(&sid)).await.is_ok(),
            "used sessions stay alive"
        );
    }
    e.advance(31 * 60_000);
    assert!(
        e.auth.authenticate(&cookie(&sid)).await.is_err(),
        "idle sessions expire"
    );
    // ...and are cleaned from the store.
    assert!(e
        .store
        .get_token(&tokens::hash_token(&sid))
        .await
        .unwrap()
        .is_none());

    // Session-TTL (minutes) on creation.
    let sid = cookie_value(
        &e.auth
            .authenticate(&login(Some("2")))
            .await
            .unwrap()
            .1
            .unwrap(),
    );
    e.advance(90_000);
    assert!(e.auth.authenticate(&cookie(&sid)).await.is_ok());
    e.advance(90_000);
    assert!(
        e.auth.authenticate(&cookie(&sid)).await.is_ok(),
        "slid by the last use"
    );
    e.advance(121_000);
    assert!(e.auth.authenticate(&cookie(&sid)).await.is_err());
}

#[tokio::test]
async fn bearer_tokens_expire_after_ten_hours() {
    let e = env().await;
    let (_, _, tok) = grant(&e.auth, "admin@internal", PASSWORD).await;
    let token = tok["access_token"].as_str().unwrap().to_owned();
    e.advance(10 * 3600 * 1000 - 1);
    assert!(
        bearer(&e.auth, &token).await.is_ok(),
        "use does not extend a bearer token"
    );
    e.advance(1);
    assert!(bearer(&e.auth, &token).await.is_err());
    assert!(e
        .store
        .get_token(&tokens::hash_token(&token))
        .await
        .unwrap()
        .is_none());

    // Logins sweep other expired tokens too.
    let (_, _, old) = grant(&e.auth, "admin@internal", PASSWORD).await;
    let old_hash = tokens::hash_token(old["access_token"].as_str().unwrap());
    e.advance(11 * 3600 * 1000);
    grant(&e.auth, "admin@internal", PASSWORD).await;
    assert!(e.store.get_token(&old_hash).await.unwrap().is_none());
    assert_eq!(e.auth.purge_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn authorization_is_read_only_for_ordinary_users() {
    let e = env().await;
    // An ordinary internal user with a password and no permission.
    let id = uuid::Uuid::new_v4().to_string();
    let user = vireo_model::User {
        id: Some(id.clone()),
        user_name: Some("joe@internal-authz".into()),
        principal: Some("joe".into()),
        ..Default::default()
    };
    let phc = password::hash("joe-pw").unwrap();
    let mut tx = e.store.begin().await.unwrap();
    tx.insert(&user_write(&user)).await.unwrap();
    tx.set_password_hash(&id, &phc).await.unwrap();
    tx.commit().await.unwrap();

    let h = headers(&[("authorization", &basic("joe@internal", "joe-pw"))]);
    let (joe, _) = e.auth.authenticate(&h).await.unwrap();
    assert!(!joe.superuser);
    assert!(e
        .auth
        .authorize(&joe, &Method::GET, "/ovirt-engine/api/vms")
        .is_ok());
    assert!(e
        .auth
        .authorize(&joe, &Method::HEAD, "/ovirt-engine/api")
        .is_ok());
    assert!(e
        .auth
        .authorize(&joe, &Method::POST, "/ovirt-engine/api/vms")
        .is_err());
    assert!(e
        .auth
        .authorize(&joe, &Method::DELETE, "/ovirt-engine/api/vms/x")
        .is_err());

    let h = headers(&[("authorization", &basic("admin@internal", PASSWORD))]);
    let (admin, _) = e.auth.authenticate(&h).await.unwrap();
    assert!(e
        .auth
        .authorize(&admin, &Method::DELETE, "/ovirt-engine/api/vms/x")
        .is_ok());

    // Removing the user kills its tokens at the next use.
    let (_, _, tok) = grant(&e.auth, "joe@internal", "joe-pw").await;
    let mut tx = e.store.begin().await.unwrap();
    tx.delete("users", &id).await.unwrap();
    tx.commit().await.unwrap();
    e.auth.forget_user(&id);
    assert!(bearer(&e.auth, tok["access_token"].as_str().unwrap())
        .await
        .is_err());
    let h = headers(&[("authorization", &basic("joe@internal", "joe-pw"))]);
    assert!(e.auth.authenticate(&h).await.is_err());
}
