//! The engine's side of the protocol: [`AgentClient::enroll`] to make a host trust the
//! engine, then an [`AgentClient`] per host that implements [`Hypervisor`] over mutual TLS.
//!
//! Every call is bounded by [`Timeouts`] (3 s to connect, 10 s per request by default), so
//! the engine's monitoring can count a hung agent as unreachable instead of hanging with it.
//! Transport failures come back as [`ErrorCode::Unreachable`]; what the agent refused comes
//! back as the agent's own [`AgentError`].

mod enroll;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use vireo_agent_proto::{
    paths, AgentError, AgentResult, Capabilities, DomainInfo, DomainSpec, ErrorCode, FileInfo,
    HostStats, Hypervisor, VmOperation, VmRuntime, VmSpec, VolumeInfo, VolumeOperation, PREFIX,
};

/// How long the client waits for an agent.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// A whole request, connection included.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(10),
        }
    }
}

/// A connection pool to one host agent. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct AgentClient {
    base: String,
    http: reqwest::Client,
    timeouts: Timeouts,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// `https://ADDRESS:PORT/vireo-agent/v1`, with IPv6 literals bracketed.
fn base_url(address: &str, port: u16) -> String {
    let host = if address.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    format!("https://{host}:{port}{PREFIX}")
}

/// Percent-encodes an id for use as one path segment.
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    // reqwest's own message is terse ("error sending request"); the cause is further down.
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn build_http(mut tls: rustls::ClientConfig, timeouts: Timeouts) -> AgentResult<reqwest::Client> {
    // This client speaks HTTP/1.1 only (no h2 support compiled in): never offer h2.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        // Agent traffic is engine-to-host, never through a proxy from the environment.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(4)
        .build()
        .map_err(|e| {
            AgentError::new(
                ErrorCode::Failed,
                format!("cannot build the agent client: {}", error_chain(&e)),
            )
        })
}

impl AgentClient {
    /// A client for the agent at `address:port`, with `tls` from
    /// `vireo_pki::Pki::engine_client_config` (it presents the engine's certificate and trusts
    /// only the engine's CA, whose certificate the host got at enrollment).
    pub fn new(
        address: &str,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    ) -> AgentResult<AgentClient> {
        AgentClient::with_timeouts(address, port, tls, Timeouts::default())
    }

    pub fn with_timeouts(
        address: &str,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
        timeouts: Timeouts,
    ) -> AgentResult<AgentClient> {
        let http = build_http((*tls).clone(), timeouts)?;
        Ok(AgentClient {
            base: base_url(address, port),
            http,
            timeouts,
        })
    }

    /// [`AgentClient::new`] with `pki.engine_client_config()`. That config is rebuilt from PEM
    /// on every call: an engine making clients for many hosts should build it once and use
    /// `new`.
    pub fn from_pki(address: &str, port: u16, pki: &vireo_pki::Pki) -> AgentResult<AgentClient> {
        let tls = pki
            .engine_client_config()
            .map_err(|e| AgentError::new(ErrorCode::Failed, format!("engine client TLS: {e}")))?;
        AgentClient::new(address, port, tls)
    }

    /// `https://ADDRESS:PORT/vireo-agent/v1`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Enrolls the agent at `address:port`: proves the secret, has the engine's CA sign a
    /// certificate for `names` (the address is added when missing: the engine connects to
    /// it), and checks that the agent then answers over mutual TLS as `host_id`.
    pub async fn enroll(
        address: &str,
        port: u16,
        secret: &str,
        pki: &vireo_pki::Pki,
        host_id: &str,
        names: &[String],
    ) -> AgentResult<()> {
        enroll::enroll(
            address,
            port,
            secret,
            pki,
            host_id,
            names,
            Timeouts::default(),
        )
        .await
    }

    pub async fn enroll_with_timeouts(
        address: &str,
        port: u16,
        secret: &str,
        pki: &vireo_pki::Pki,
        host_id: &str,
        names: &[String],
        timeouts: Timeouts,
    ) -> AgentResult<()> {
        enroll::enroll(address, port, secret, pki, host_id, names, timeouts).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> AgentResult<T> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let unreachable = |e: reqwest::Error| {
            let what = if e.is_timeout() {
                format!("no answer within {} s", self.timeouts.request.as_secs_f32())
            } else {
                error_chain(&e)
            };
            AgentError::new(ErrorCode::Unreachable, format!("{url}: {what}"))
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        decode(status, &bytes, &url)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> AgentResult<T> {
        self.call(Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> AgentResult<T> {
        let body = serde_json::to_vec(body).map_err(|e| {
            AgentError::new(
                ErrorCode::InvalidRequest,
                format!("cannot encode the request: {e}"),
            )
        })?;
        self.call(Method::POST, path, Some(body)).await
    }
}

/// [`AgentClient::enroll`], as a free function.
pub async fn enroll(
    address: &str,
    port: u16,
    secret: &str,
    pki: &vireo_pki::Pki,
    host_id: &str,
    names: &[String],
) -> AgentResult<()> {
    AgentClient::enroll(address, port, secret, pki, host_id, names).await
}

/// An answer: the value on success, else the agent's `AgentError` (or one made from the
/// status when the body is not one, e.g. from a proxy or a different server on that port).
fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8], url: &str) -> AgentResult<T> {
    if status.is_success() {
        return serde_json::from_slice(body).map_err(|e| {
            AgentError::new(ErrorCode::Failed, format!("{url}: unreadable answer: {e}"))
        });
    }
    if let Ok(err) = serde_json::from_slice::<AgentError>(body) {
        return Err(err);
    }
    let code = match status.as_u16() {
        400 => ErrorCode::InvalidRequest,
        401 => ErrorCode::Unauthenticated,
        404 | 405 | 501 => ErrorCode::Unsupported,
        502..=504 => ErrorCode::Unreachable,
        _ => ErrorCode::Failed,
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Err(AgentError::new(
        code,
        format!("{url}: HTTP {status}: {text}"),
    ))
}

impl Hypervisor for AgentClient {
    async fn capabilities(&self) -> AgentResult<Capabilities> {
        self.get(paths::CAPABILITIES).await
    }

    async fn stats(&self) -> AgentResult<HostStats> {
        self.get(paths::STATS).await
    }

    async fn list_vms(&self) -> AgentResult<Vec<VmRuntime>> {
        self.get(paths::VMS).await
    }

    async fn get_vm(&self, id: &str) -> AgentResult<VmRuntime> {
        self.get(&paths::vm(&segment(id))).await
    }

    async fn create_vm(&self, spec: &VmSpec) -> AgentResult<VmRuntime> {
        self.post(paths::VMS, spec).await
    }

    async fn vm_operation(&self, id: &str, op: &VmOperation) -> AgentResult<VmRuntime> {
        self.post(&paths::vm_operation(&segment(id), op), op).await
    }

    async fn connect_domain(&self, spec: &DomainSpec) -> AgentResult<DomainInfo> {
        self.post(paths::STORAGE_DOMAINS, spec).await
    }

    async fn domain_info(&self, id: &str) -> AgentResult<DomainInfo> {
        self.get(&paths::domain(&segment(id))).await
    }

    async fn list_files(&self, domain_id: &str) -> AgentResult<Vec<FileInfo>> {
        self.get(&paths::domain_files(&segment(domain_id))).await
    }

    async fn volume_operation(&self, op: &VolumeOperation) -> AgentResult<VolumeInfo> {
        self.post(paths::VOLUMES, op).await
    }

    async fn disconnect_domain(&self, id: &str) -> AgentResult<()> {
        let _: serde_json::Value = self
            .call(Method::DELETE, &paths::domain(&segment(id)), None)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_segments() {
        assert_eq!(
            base_url("127.0.0.1", 1),
            "https://127.0.0.1:1/vireo-agent/v1"
        );
        assert_eq!(base_url("::1", 2), "https://[::1]:2/vireo-agent/v1");
        assert_eq!(segment("a-b_c.d"), "a-b_c.d");
        assert_eq!(segment("../x y"), "..%2Fx%20y");
    }

    #[test]
    fn non_agent_errors_get_a_code_from_their_status() {
        let e = decode::<()>(StatusCode::BAD_GATEWAY, b"<html>", "u").unwrap_err();
        assert_eq!(e.code, ErrorCode::Unreachable);
        let e = decode::<()>(
            StatusCode::FORBIDDEN,
            br#"{"code":"bad_secret","message":"no"}"#,
            "u",
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadSecret);
        assert!(decode::<u32>(StatusCode::OK, b"nope", "u").is_err());
    }
}
