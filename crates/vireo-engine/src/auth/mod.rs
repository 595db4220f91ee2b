//! Authentication and authorization, wire-compatible with oVirt Engine 4.5.
//!
//! * [`Auth::sso_router`]: the SSO endpoints the SDK and scripts call for tokens
//!   (`/ovirt-engine/sso/oauth/…`, `/ovirt-engine/services/sso-logout`).
//! * [`Auth::authenticate`]: one call per API request, for `Bearer` tokens, HTTP Basic
//!   (optionally kept as a `JSESSIONID` session) and session cookies.
//! * [`Auth::authorize`]: the single authorization check point.
//! * [`Auth::bootstrap_admin`]: `admin@internal` with SuperUser on first start.
//!
//! Passwords are argon2id hashes (see [`password`]); tokens are random and the store keeps
//! only their SHA-256. Logins are audited with oVirt's event codes (see [`audit`]).

pub mod audit;
pub mod password;
mod sessions;
mod sso;
mod tokens;
mod users;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method};
use tokio::sync::Semaphore;
use vireo_store::{Store, TokenKind};

pub use sessions::SESSION_COOKIE;
use sessions::{BasicCache, Credentials};
pub use users::{
    domain_id, permission_write, user_write, ADMIN_PRINCIPAL, ADMIN_USER_NAME, INTERNAL_AUTHZ,
    INTERNAL_PROFILE, PERM_OBJECT, PERM_OBJECT_TYPE, PERM_ROLE, PERM_USER, SUPERUSER_ROLE_ID,
    SYSTEM_OBJECT_ID,
};

/// Milliseconds since the Unix epoch; replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Timeouts and the clock. `Settings::default()` is what oVirt ships with.
#[derive(Clone)]
pub struct Settings {
    /// Lifetime of an SSO bearer token (oVirt: 10 hours, not sliding).
    pub bearer_ttl_ms: i64,
    /// Idle timeout of a `JSESSIONID` session unless `Session-TTL` says otherwise
    /// (oVirt: 30 minutes, sliding).
    pub session_idle_ms: i64,
    /// How long verified Basic credentials are trusted without another argon2 check.
    pub basic_cache_ms: i64,
    pub clock: Clock,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bearer_ttl_ms: 10 * 3600 * 1000,
            session_idle_ms: 30 * 60 * 1000,
            basic_cache_ms: 60 * 1000,
            clock: Arc::new(vireo_store::now_ms),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// The `users` record name, e.g. `admin@internal-authz`.
    pub user_name: String,
    pub superuser: bool,
    /// The hash of the bearer token or session that authenticated the request, if any.
    pub token_hash: Option<String>,
}

/// Why a request is not authenticated. Both answer 401 with
/// `WWW-Authenticate: Basic realm="RESTAPI"` ([`www_authenticate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials at all.
    Missing,
    /// Credentials that do not authenticate; the text is for logs and the fault detail,
    /// and never contains a password.
    Invalid(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing => f.write_str("no credentials were given"),
            AuthError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for AuthError {}

/// The `WWW-Authenticate` value of every 401 from the API.
pub fn www_authenticate() -> HeaderValue {
    HeaderValue::from_static("Basic realm=\"RESTAPI\"")
}

/// A failed password login, shaped for the SSO's JSON errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginError {
    /// OAuth error code (`access_denied`, `server_error`).
    pub code: &'static str,
    pub message: String,
}

/// oVirt's text for wrong credentials (`USER_FAILED_TO_AUTHENTICATE`), wrapped in
/// `CANNOT_AUTHENTICATE_USER_IN_DOMAIN` ("Cannot authenticate user '%1$s@%2$s': %3$s.").
/// The doubled final period is what oVirt really sends.
const FAILED_TO_AUTHENTICATE: &str =
    "Unable to log in. Verify your login information or contact the system administrator.";
const NO_PROFILE: &str = "No valid profile found in credentials.";

pub struct Auth {
    store: Store,
    settings: Settings,
    basic_cache: BasicCache,
    /// Bounds concurrent argon2 runs: each one holds 19 MiB, and a flood of bad logins must
    /// not fill the blocking pool (512 threads) with them.
    argon_slots: Semaphore,
}

impl Auth {
    pub fn new(store: Store) -> Self {
        Self::with_settings(store, Settings::default())
    }

    pub fn with_settings(store: Store, settings: Settings) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Auth {
            store,
            settings,
            basic_cache: BasicCache::default(),
            argon_slots: Semaphore::new(cpus * 2),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn now(&self) -> i64 {
        (self.settings.clock)()
    }

    /// Drops cached Basic credentials of a user; call it when a user's password changes or
    /// the user or its permissions are removed, so the change applies at once rather than
    /// within [`Settings::basic_cache_ms`].
    pub fn forget_user(&self, user_id: &str) {
        self.basic_cache.forget_user(user_id);
    }

    /// Drops every verified Basic credential: after a change to users, groups, roles or
    /// permissions, a cached principal (its superuser flag, its very existence) may be stale.
    pub fn forget_all_users(&self) {
        self.basic_cache.clear();
    }

    /// Checks a login name and password (argon2 off the runtime). Failures are audited.
    pub(crate) async fn login(
        &self,
        login: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Principal, LoginError> {
        let Some(name) = users::parse_login(login) else {
            self.audit_failure(login, None, peer, NO_PROFILE).await;
            return Err(LoginError {
                code: "access_denied",
                message: format!("Cannot authenticate user '{login}@N/A': {NO_PROFILE}."),
            });
        };
        let denied = || LoginError {
            code: "access_denied",
            message: format!(
                "Cannot authenticate user '{}@{}': {FAILED_TO_AUTHENTICATE}.",
                name.principal, name.profile
            ),
        };
        let internal = |e: String| {
            tracing::error!("login of {login:?} failed on the store: {e}");
            LoginError {
                code: "server_error",
                message: "The authentication service is unavailable.".to_owned(),
            }
        };

        let user = self
            .store
            .get_by_name("users", &name.user_name, None)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let hash = match &user {
            Some(u) => self
                .store
                .get_password_hash(&u.id)
                .await
                .map_err(|e| internal(e.to_string()))?,
            None => None,
        };
        let ok = self.verify(password, hash).await.map_err(internal)?;
        let user = match user {
            Some(u) if ok => u,
            other => {
                let user_id = other.as_ref().map(|u| u.id.as_str());
                self.audit_failure(login, user_id, peer, "Invalid credentials")
                    .await;
                return Err(denied());
            }
        };
        let superuser = users::is_superuser(&self.store, &user.id)
            .await
            .map_err(|e| internal(e.to_string()))?;
        Ok(Principal {
            user_name: user.name.clone().unwrap_or(name.user_name),
            user_id: user.id,
            superuser,
            token_hash: None,
        })
    }

    /// argon2 verification on the blocking pool; `None` (no such user, or no password set)
    /// still costs one verification so timing does not reveal which users exist.
    async fn verify(&self, password: &str, phc: Option<String>) -> Result<bool, String> {
        let _slot = self
            .argon_slots
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let password = password.to_owned();
        password::run(move || match phc {
            Some(phc) => password::verify(&password, &phc),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(|e| e.to_string())
    }

    async fn audit_failure(
        &self,
        login: &str,
        user_id: Option<&str>,
        peer: Option<IpAddr>,
        why: &str,
    ) {
        let event = audit::login_failed(login, user_id, peer, why, self.now());
        let result = async {
            let mut tx = self.store.begin().await?;
            tx.insert_event(&event).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("could not audit a failed login: {e}");
        }
    }

    /// Authenticates one API request; see [`Auth::authenticate_from`].
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Principal, Option<HeaderValue>), AuthError> {
        self.authenticate_from(headers, None).await
    }

    /// Authenticates one API request, in oVirt's order: a `Bearer` token; else a live
    /// `JSESSIONID` session (unless `Prefer: new-auth`); else HTTP Basic, kept as a new
    /// session when `Prefer: persistent-auth` asks for it (the returned `Set-Cookie` value
    /// must then be sent). As in oVirt, a session used without `Prefer: persistent-auth`
    /// ends with the request. `peer` only feeds the audit log.
    pub async fn authenticate_from(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<(Principal, Option<HeaderValue>), AuthError> {
        let creds = sessions::credentials(headers);
        if let Credentials::Bearer(token) = creds {
            return self.bearer(token).await.map(|p| (p, None));
        }
        let prefer = sessions::prefer(headers);
        let cookies = sessions::session_cookies(headers);
        if !prefer.new_auth {
            for sid in &cookies {
                if let Some(p) = self.session(sid, prefer.persistent_auth).await? {
                    return Ok((p, None));
                }
            }
        }
        match creds {
            Credentials::Basic { header, b64 } => {
                let p = self.basic(header, b64, peer).await?;
                if !prefer.persistent_auth {
                    return Ok((p, None));
                }
                let ttl =
                    sessions::session_ttl_ms(headers).unwrap_or(self.settings.session_idle_ms);
                let (token, hash, _) = self
                    .issue_token(&p, TokenKind::Session, ttl, peer)
                    .await
                    .map_err(|e| store_failure("create a session", e))?;
                let cookie = HeaderValue::from_str(&sessions::set_cookie(&token))
                    .map_err(|e| AuthError::Invalid(e.to_string()))?;
                Ok((
                    Principal {
                        token_hash: Some(hash),
                        ..p
                    },
                    Some(cookie),
                ))
            }
            Credentials::Unusable(why) => Err(AuthError::Invalid(why.to_owned())),
            Credentials::None if !cookies.is_empty() => Err(AuthError::Invalid(
                "the session has expired or was closed".to_owned(),
            )),
            Credentials::None | Credentials::Bearer(_) => Err(AuthError::Missing),
        }
    }

    async fn bearer(&self, token: &str) -> Result<Principal, AuthError> {
        let t = self
            .use_token(token, TokenKind::Bearer)
            .await
            .map_err(|e| store_failure("read a token", e))?
            .ok_or_else(|| {
                AuthError::Invalid("the token is unknown, expired or revoked".to_owned())
            })?;
        self.principal_of(t.user_id, t.token_hash).await
    }

    /// A live session for `sid`, or `None` to try other credentials.
    async fn session(&self, sid: &str, keep: bool) -> Result<Option<Principal>, AuthError> {
        let Some(t) = self
            .use_token(sid, TokenKind::Session)
            .await
            .map_err(|e| store_failure("read a session", e))?
        else {
            return Ok(None);
        };
        let mut p = self.principal_of(t.user_id, t.token_hash.clone()).await?;
        if !keep {
            // oVirt's RestApiSessionMgmtFilter logs such a session out after the request;
            // ending it now has the same effect, and this request is already authenticated.
            self.delete_token_hash(&t.token_hash).await;
            p.token_hash = None;
        }
        Ok(Some(p))
    }

    async fn principal_of(
        &self,
        user_id: String,
        token_hash: String,
    ) -> Result<Principal, AuthError> {
        let user = self
            .store
            .get("users", &user_id)
            .await
            .map_err(|e| store_failure("read a user", e))?;
        let Some(user) = user else {
            // The user was removed: its tokens are worthless.
            self.delete_token_hash(&token_hash).await;
            return Err(AuthError::Invalid(
                "the token's user no longer exists".to_owned(),
            ));
        };
        let superuser = users::is_superuser(&self.store, &user_id)
            .await
            .map_err(|e| store_failure("read permissions", e))?;
        Ok(Principal {
            user_id,
            user_name: user.name.unwrap_or_default(),
            superuser,
            token_hash: Some(token_hash),
        })
    }

    async fn basic(
        &self,
        header: &str,
        b64: &str,
        peer: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let now = self.now();
        let key = BasicCache::key(header);
        if let Some(p) = self.basic_cache.get(&key, now) {
            return Ok(p);
        }
        let (login, password) = sessions::decode_basic(b64)
            .ok_or_else(|| AuthError::Invalid("malformed Basic credentials".to_owned()))?;
        let p = self
            .login(&login, &password, peer)
            .await
            .map_err(|e| AuthError::Invalid(e.message))?;
        self.record_basic_login(&p, peer).await;
        self.basic_cache.put(
            key,
            p.clone(),
            now.saturating_add(self.settings.basic_cache_ms),
            now,
        );
        Ok(p)
    }

    /// oVirt logs every Basic request as a login; we log the ones that really checked the
    /// password (at most one per credentials per cache period).
    async fn record_basic_login(&self, p: &Principal, peer: Option<IpAddr>) {
        let event = audit::login_succeeded(&p.user_name, &p.user_id, peer, None, self.now());
        let result = async {
            let mut tx = self.store.begin().await?;
            tx.insert_event(&event).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("could not audit a login: {e}");
        }
    }

    /// The one authorization check point. SuperUser may do anything; everybody else may
    /// only read until role checks arrive. `path` is the request path, for those checks.
    pub fn authorize(&self, who: &Principal, method: &Method, path: &str) -> Result<(), String> {
        let _ = path;
        if who.superuser || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Ok(())
        } else {
            Err("User is not authorized to perform this action.".to_owned())
        }
    }
}

/// Store trouble while authenticating: logged in full, answered as a plain refusal (the
/// client retries once after a 401, which is the right thing for a passing fault).
fn store_failure(what: &str, e: impl std::fmt::Display) -> AuthError {
    tracing::error!("authentication could not {what}: {e}");
    AuthError::Invalid(format!("authentication could not {what}"))
}
