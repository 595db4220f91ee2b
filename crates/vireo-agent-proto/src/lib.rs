//! The protocol between the engine and a host agent: JSON over HTTPS, mutually authenticated
//! once the host is enrolled. Both sides share these types; [`Hypervisor`] is what an agent
//! implements (QEMU, or the simulation), and what the engine's client calls.
//!
//! Versioned by path (`/vireo-agent/v1/…`); a breaking change gets a new version, and
//! [`Capabilities::protocol`] tells the engine which ones an agent speaks.

pub mod storage;
pub mod transfer;
pub mod vm;

pub use storage::*;
pub use transfer::{ExtendTicket, TicketSpec, TicketStatus, VerifyRequest, VerifyResult};
pub use vm::*;

use serde::{Deserialize, Serialize};
use std::future::Future;

pub const PROTOCOL_VERSION: u32 = 1;
pub const PREFIX: &str = "/vireo-agent/v1";

/// Paths of the protocol, below [`PREFIX`].
pub mod paths {
    pub const ENROLL: &str = "/enroll";
    pub const ENROLL_COMPLETE: &str = "/enroll/complete";
    pub const CAPABILITIES: &str = "/capabilities";
    pub const STATS: &str = "/stats";
    /// GET: all VMs' runtime state; POST: create and start one (`VmSpec`).
    pub const VMS: &str = "/vms";
    /// `/vms/{id}` GET; `/vms/{id}/{operation}` POST, operation from [`super::VmOperation`].
    pub const VM: &str = "/vms/";
    /// POST: connect a domain (`DomainSpec`); `/storage/domains/{id}` GET info, DELETE
    /// disconnect; `/storage/domains/{id}/files` GET the files of an ISO domain.
    pub const STORAGE_DOMAINS: &str = "/storage/domains";
    pub const VOLUMES: &str = "/storage/volumes";

    /// `/vms/{id}`.
    pub fn vm(id: &str) -> String {
        format!("{VM}{id}")
    }

    /// `/vms/{id}/{operation}`.
    pub fn vm_operation(id: &str, op: &super::VmOperation) -> String {
        format!("{VM}{id}/{}", op.name())
    }

    /// `/storage/domains/{id}`.
    pub fn domain(id: &str) -> String {
        format!("{STORAGE_DOMAINS}/{id}")
    }

    /// `/storage/domains/{id}/files`.
    pub fn domain_files(id: &str) -> String {
        format!("{STORAGE_DOMAINS}/{id}/files")
    }
}

/// First contact: the engine proves it knows the enroll secret (oVirt's root password) and
/// tells the agent whom to trust from now on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollRequest {
    pub secret: String,
    pub host_id: String,
    /// The engine's CA: after enrollment the agent accepts only clients it signed.
    pub engine_ca_pem: String,
    /// Names and addresses the host's certificate must cover.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollResponse {
    /// A certificate request for a key the agent made and keeps.
    pub csr_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollComplete {
    pub secret: String,
    /// The host certificate, signed by the engine's CA.
    pub cert_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capabilities {
    pub protocol: Vec<u32>,
    pub agent_version: String,
    pub host_id: Option<String>,
    pub hostname: String,
    pub simulated: bool,
    pub cpu: CpuInfo,
    pub memory_bytes: u64,
    pub nics: Vec<HostNic>,
    /// Linux bridges, by logical network name, that VM NICs can be plugged into.
    pub bridges: Vec<String>,
    pub accel: Accel,
    pub os: OsInfo,
    pub qemu_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CpuInfo {
    pub model: String,
    pub vendor: String,
    pub sockets: u32,
    pub cores_per_socket: u32,
    pub threads_per_core: u32,
    pub speed_mhz: u32,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostNic {
    pub name: String,
    pub mac: String,
    pub speed_mbps: Option<u64>,
    pub ipv4: Option<String>,
    pub mtu: u32,
    pub up: bool,
}

/// How the agent runs guests: KVM only when a probe guest really ran under it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Accel {
    pub kind: AccelKind,
    /// Why this one: e.g. "KVM probe guest exited in 12 ms", "/dev/kvm hangs: probe timed out".
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccelKind {
    Kvm,
    Tcg,
    /// `--simulate`: no guest code runs at all.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OsInfo {
    pub name: String,
    pub version: String,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostStats {
    pub time_ms: i64,
    pub memory_total: u64,
    pub memory_used: u64,
    pub memory_free: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    /// Percentages of all CPUs over the last interval.
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub cpu_idle: f64,
    pub load_avg_5m: f64,
    pub boot_time_s: i64,
    pub vms: Vec<VmRuntime>,
}

/// Every failure an agent reports: a code the engine maps to a fault or an event, and words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AgentError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadSecret,
    NotEnrolled,
    AlreadyEnrolled,
    NoSuchVm,
    NoSuchDomain,
    NoSuchVolume,
    WrongState,
    InvalidRequest,
    Unsupported,
    ResourceExhausted,
    Failed,
    /// An enrolled agent was called without a client certificate from the engine's CA.
    Unauthenticated,
    /// Client side only: the agent could not be reached, or did not answer in time.
    /// The engine's monitoring counts these towards `non_responsive`.
    Unreachable,
}

impl ErrorCode {
    /// The HTTP status an agent answers with, so both sides agree on it.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::BadSecret | ErrorCode::NotEnrolled => 403,
            ErrorCode::NoSuchVm | ErrorCode::NoSuchDomain | ErrorCode::NoSuchVolume => 404,
            ErrorCode::AlreadyEnrolled | ErrorCode::WrongState => 409,
            ErrorCode::Unsupported => 501,
            ErrorCode::Unreachable => 502,
            ErrorCode::ResourceExhausted => 507,
            ErrorCode::Failed => 500,
        }
    }
}

impl AgentError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AgentError {
            code,
            message: message.into(),
        }
    }
}

pub type AgentResult<T> = Result<T, AgentError>;

/// What a host does for the engine. The QEMU driver and the simulation implement it; the
/// agent's HTTP server serves it; the engine's client speaks it over the wire.
///
/// The futures are `Send` so that the server and the engine can run them on spawned tasks;
/// an implementation may still be written with `async fn`.
///
/// A VM that goes down (or is suspended) stays listed with its state and exit reason, so the
/// engine sees why it stopped, until a `Destroy` of the down VM, or a new `create_vm` with its
/// id, removes it.
pub trait Hypervisor: Send + Sync {
    fn capabilities(&self) -> impl Future<Output = AgentResult<Capabilities>> + Send;
    fn stats(&self) -> impl Future<Output = AgentResult<HostStats>> + Send;
    fn list_vms(&self) -> impl Future<Output = AgentResult<Vec<VmRuntime>>> + Send;
    fn get_vm(&self, id: &str) -> impl Future<Output = AgentResult<VmRuntime>> + Send;
    /// Defines and starts a VM (paused when `spec.start_paused`).
    fn create_vm(&self, spec: &VmSpec) -> impl Future<Output = AgentResult<VmRuntime>> + Send;
    fn vm_operation(
        &self,
        id: &str,
        op: &VmOperation,
    ) -> impl Future<Output = AgentResult<VmRuntime>> + Send;
    fn connect_domain(
        &self,
        spec: &DomainSpec,
    ) -> impl Future<Output = AgentResult<DomainInfo>> + Send;
    fn domain_info(&self, id: &str) -> impl Future<Output = AgentResult<DomainInfo>> + Send;
    fn list_files(
        &self,
        domain_id: &str,
    ) -> impl Future<Output = AgentResult<Vec<FileInfo>>> + Send;
    fn volume_operation(
        &self,
        op: &VolumeOperation,
    ) -> impl Future<Output = AgentResult<VolumeInfo>> + Send;
    /// Forgets a domain (unmounts it); its volumes stay on the storage. Optional for drivers.
    fn disconnect_domain(&self, id: &str) -> impl Future<Output = AgentResult<()>> + Send {
        let message = format!("this agent cannot disconnect storage domain {id}");
        async move { Err(AgentError::new(ErrorCode::Unsupported, message)) }
    }
}
