//! The engine's side of the agent protocol: an object-safe view of [`Hypervisor`] (so the
//! monitor can hold agents of any implementation behind one pointer), every call bounded by a
//! timeout, and the [`Connector`] that enrolls agents and makes clients for enrolled ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use vireo_agent_proto::{
    AgentError, AgentResult, Capabilities, DomainInfo, DomainSpec, ErrorCode, HostStats,
    Hypervisor, VmOperation, VmRuntime, VmSpec, VolumeInfo, VolumeOperation,
};
use vireo_pki::Pki;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the engine asks of a host. Every [`Hypervisor`] is one; the engine holds them as
/// `Arc<dyn Agent>` so that tests can hand it an in-process simulation.
pub trait Agent: Send + Sync {
    fn capabilities(&self) -> BoxFuture<'_, AgentResult<Capabilities>>;
    fn stats(&self) -> BoxFuture<'_, AgentResult<HostStats>>;
    fn list_vms(&self) -> BoxFuture<'_, AgentResult<Vec<VmRuntime>>>;
    fn create_vm<'a>(&'a self, spec: &'a VmSpec) -> BoxFuture<'a, AgentResult<VmRuntime>>;
    fn vm_operation<'a>(
        &'a self,
        id: &'a str,
        op: &'a VmOperation,
    ) -> BoxFuture<'a, AgentResult<VmRuntime>>;
    /// Where a volume is on the host (a VM's disks are files there).
    fn volume_operation<'a>(
        &'a self,
        op: &'a VolumeOperation,
    ) -> BoxFuture<'a, AgentResult<VolumeInfo>>;
    /// Connects a storage domain (again: harmless when it is), before a VM uses its disks.
    fn connect_domain<'a>(&'a self, spec: &'a DomainSpec)
        -> BoxFuture<'a, AgentResult<DomainInfo>>;
}

impl<H: Hypervisor + 'static> Agent for H {
    fn capabilities(&self) -> BoxFuture<'_, AgentResult<Capabilities>> {
        Box::pin(Hypervisor::capabilities(self))
    }
    fn stats(&self) -> BoxFuture<'_, AgentResult<HostStats>> {
        Box::pin(Hypervisor::stats(self))
    }
    fn list_vms(&self) -> BoxFuture<'_, AgentResult<Vec<VmRuntime>>> {
        Box::pin(Hypervisor::list_vms(self))
    }
    fn create_vm<'a>(&'a self, spec: &'a VmSpec) -> BoxFuture<'a, AgentResult<VmRuntime>> {
        Box::pin(Hypervisor::create_vm(self, spec))
    }
    fn vm_operation<'a>(
        &'a self,
        id: &'a str,
        op: &'a VmOperation,
    ) -> BoxFuture<'a, AgentResult<VmRuntime>> {
        Box::pin(Hypervisor::vm_operation(self, id, op))
    }
    fn volume_operation<'a>(
        &'a self,
        op: &'a VolumeOperation,
    ) -> BoxFuture<'a, AgentResult<VolumeInfo>> {
        Box::pin(Hypervisor::volume_operation(self, op))
    }
    fn connect_domain<'a>(
        &'a self,
        spec: &'a DomainSpec,
    ) -> BoxFuture<'a, AgentResult<DomainInfo>> {
        Box::pin(Hypervisor::connect_domain(self, spec))
    }
}

/// Runs an agent call with a deadline: a host that hangs costs its caller `limit`, never more.
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = AgentResult<T>>,
) -> AgentResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r,
        Err(_) => Err(AgentError::new(
            ErrorCode::Unreachable,
            format!("the agent did not answer within {} s", limit.as_secs_f32()),
        )),
    }
}

/// How the engine reaches agents: enrollment with the secret, then clients over mutual TLS.
pub trait Connector: Send + Sync {
    /// First contact: checks the secret, has the engine's CA sign the agent's certificate and
    /// makes the agent trust only the engine from then on.
    fn enroll<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        secret: &'a str,
        host_id: &'a str,
    ) -> BoxFuture<'a, AgentResult<()>>;
    /// A client for an enrolled agent. Connects lazily, so this does not touch the network.
    fn connect(&self, address: &str, port: u16, host_id: &str) -> AgentResult<Arc<dyn Agent>>;
}

/// The real thing: `vireo_agent::client` over HTTPS with the engine's certificates.
pub struct ClientConnector {
    pki: Arc<Pki>,
    /// Built once: every host's client shares it.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientConnector {
    pub fn new(pki: Arc<Pki>) -> ClientConnector {
        let tls = match pki.engine_client_config() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "the engine's client certificate is unusable: hosts cannot be reached");
                None
            }
        };
        ClientConnector { pki, tls }
    }
}

/// Names the agent's certificate covers: what the engine dials, so TLS verification matches.
fn cert_names(address: &str) -> Vec<String> {
    let mut names = vec![address.to_string()];
    if address != "localhost" && address.parse::<std::net::IpAddr>().is_err() {
        names.push("localhost".into());
    }
    names
}

impl Connector for ClientConnector {
    fn enroll<'a>(
        &'a self,
        address: &'a str,
        port: u16,
        secret: &'a str,
        host_id: &'a str,
    ) -> BoxFuture<'a, AgentResult<()>> {
        Box::pin(async move {
            let names = cert_names(address);
            vireo_agent::client::enroll(address, port, secret, &self.pki, host_id, &names).await
        })
    }

    fn connect(&self, address: &str, port: u16, _host_id: &str) -> AgentResult<Arc<dyn Agent>> {
        let tls = self.tls.clone().ok_or_else(|| {
            AgentError::new(
                ErrorCode::Failed,
                "the engine's client certificate is unusable",
            )
        })?;
        // The engine bounds each call itself (`bounded`); these are the outer limits.
        let timeouts = vireo_agent::client::Timeouts {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(30),
        };
        let client = vireo_agent::client::AgentClient::with_timeouts(address, port, tls, timeouts)?;
        Ok(Arc::new(client))
    }
}
