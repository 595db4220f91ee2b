//! The storage side of the host agents, as inventory work uses it: an object-safe view of the
//! storage methods of [`Hypervisor`] (connect a domain, its files, volume operations), every
//! call bounded by a timeout, and the agent of a host.
//!
//! The hosts module owns the connections to agents; `storage_for` asks it for the host's
//! client. Tests (and tools) can put an agent in place of a host's with [`register`].

use crate::api::fault::{ApiError, ApiResult};
use crate::state::Engine;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use vireo_agent_proto::{
    AgentError, AgentResult, DomainInfo, DomainSpec, ErrorCode, FileInfo, Hypervisor, VolumeInfo,
    VolumeOperation,
};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What storage work asks of a host.
pub trait Storage: Send + Sync {
    fn connect_domain<'a>(&'a self, spec: &'a DomainSpec)
        -> BoxFuture<'a, AgentResult<DomainInfo>>;
    fn domain_info<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AgentResult<DomainInfo>>;
    fn list_files<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AgentResult<Vec<FileInfo>>>;
    fn volume_operation<'a>(
        &'a self,
        op: &'a VolumeOperation,
    ) -> BoxFuture<'a, AgentResult<VolumeInfo>>;
    fn disconnect_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AgentResult<()>>;
}

impl<H: Hypervisor + 'static> Storage for H {
    fn connect_domain<'a>(
        &'a self,
        spec: &'a DomainSpec,
    ) -> BoxFuture<'a, AgentResult<DomainInfo>> {
        Box::pin(Hypervisor::connect_domain(self, spec))
    }
    fn domain_info<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AgentResult<DomainInfo>> {
        Box::pin(Hypervisor::domain_info(self, id))
    }
    fn list_files<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AgentResult<Vec<FileInfo>>> {
        Box::pin(Hypervisor::list_files(self, id))
    }
    fn volume_operation<'a>(
        &'a self,
        op: &'a VolumeOperation,
    ) -> BoxFuture<'a, AgentResult<VolumeInfo>> {
        Box::pin(Hypervisor::volume_operation(self, op))
    }
    fn disconnect_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, AgentResult<()>> {
        Box::pin(Hypervisor::disconnect_domain(self, id))
    }
}

/// A request waits this long for an agent (connecting a domain when it is added).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Background work waits this long for one volume operation.
pub const WORK_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = AgentResult<T>>,
) -> AgentResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err(AgentError::new(
            ErrorCode::Unreachable,
            format!("the host did not answer within {} s", limit.as_secs()),
        )),
    }
}

fn overrides() -> &'static RwLock<HashMap<String, Arc<dyn Storage>>> {
    static O: OnceLock<RwLock<HashMap<String, Arc<dyn Storage>>>> = OnceLock::new();
    O.get_or_init(Default::default)
}

/// Puts `agent` in place of the agent of `host_id` (tests, tools).
pub fn register(host_id: &str, agent: Arc<dyn Storage>) {
    overrides()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(host_id.to_string(), agent);
}

/// The storage agent of a host.
pub async fn storage_for(engine: &Engine, host_id: &str) -> ApiResult<Arc<dyn Storage>> {
    resolver(engine, host_id).await
}

/// The agent of a host, as a future that does not hold the engine (for background work):
/// what it needs of the engine is taken now.
pub fn resolver(engine: &Engine, host_id: &str) -> BoxFuture<'static, ApiResult<Arc<dyn Storage>>> {
    let store = engine.store.clone();
    let tls = engine
        .pki
        .engine_client_config()
        .map_err(ApiError::internal);
    let host_id = host_id.to_string();
    Box::pin(async move {
        if let Some(a) = overrides()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&host_id)
        {
            return Ok(a.clone());
        }
        client_of_host(&store, tls?, &host_id).await
    })
}

/// A client for the agent of an enrolled host, from its address in the store and the engine's
/// client certificate. Clients are kept: each holds a connection pool.
async fn client_of_host(
    store: &vireo_store::Store,
    tls: Arc<rustls::ClientConfig>,
    host_id: &str,
) -> ApiResult<Arc<dyn Storage>> {
    /// host id → (address:port, client)
    type Clients = RwLock<HashMap<String, (String, Arc<dyn Storage>)>>;
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Default::default);
    let rec = store
        .get("hosts", host_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no host with id '{host_id}'")))?;
    let doc: serde_json::Value = serde_json::from_str(&rec.doc).map_err(ApiError::internal)?;
    let address = doc
        .get("address")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let port = crate::inventory::rules::common::int_at(&doc, "port").unwrap_or(54321) as u16;
    let key = format!("{address}:{port}");
    if let Some((k, c)) = clients
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(host_id)
    {
        if *k == key {
            return Ok(c.clone());
        }
    }
    let client = vireo_agent::client::AgentClient::new(&address, port, tls).map_err(|e| {
        ApiError::conflict(format!(
            "Cannot reach the agent of host {}: {}",
            rec.name.clone().unwrap_or_default(),
            e.message
        ))
    })?;
    let client: Arc<dyn Storage> = Arc::new(client);
    clients
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(host_id.to_string(), (key, client.clone()));
    Ok(client)
}

/// How a failed agent call reads in a fault.
pub fn fault(action: &str, kind: &str, e: &AgentError) -> ApiError {
    let rest = format!("The host failed: {}", e.message);
    match e.code {
        ErrorCode::InvalidRequest | ErrorCode::Unsupported => {
            crate::inventory::messages::invalid(action, kind, &rest)
        }
        _ => crate::inventory::messages::conflict(action, kind, &rest),
    }
}
