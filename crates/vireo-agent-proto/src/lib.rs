//! The protocol between the engine and a host agent: JSON over HTTPS, mutually authenticated
//! once the host is enrolled. Both sides share these types; [`Hypervisor`] is what an agent
//! implements (QEMU, or the simulation), and what the engine's client calls.
//!
//! Versioned by path (`/vireo-agent/v1/…`); a breaking change gets a new version, and
//! [`Capabilities::protocol`] tells the engine which ones an agent speaks.

pub mod storage;
pub mod vm;

pub use storage::*;
pub use vm::*;

use serde::{Deserialize, Serialize};

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
    pub const STORAGE_DOMAINS: &str = "/storage/domains";
    pub const VOLUMES: &str = "/storage/volumes";
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
}

impl AgentError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AgentError { code, message: message.into() }
    }
}

pub type AgentResult<T> = Result<T, AgentError>;

/// What a host does for the engine. The QEMU driver and the simulation implement it; the
/// agent's HTTP server serves it; the engine's client speaks it over the wire.
#[allow(async_fn_in_trait)]
pub trait Hypervisor: Send + Sync {
    async fn capabilities(&self) -> AgentResult<Capabilities>;
    async fn stats(&self) -> AgentResult<HostStats>;
    async fn list_vms(&self) -> AgentResult<Vec<VmRuntime>>;
    async fn get_vm(&self, id: &str) -> AgentResult<VmRuntime>;
    /// Defines and starts a VM (paused when `spec.start_paused`).
    async fn create_vm(&self, spec: &VmSpec) -> AgentResult<VmRuntime>;
    async fn vm_operation(&self, id: &str, op: &VmOperation) -> AgentResult<VmRuntime>;
    async fn connect_domain(&self, spec: &DomainSpec) -> AgentResult<DomainInfo>;
    async fn domain_info(&self, id: &str) -> AgentResult<DomainInfo>;
    async fn list_files(&self, domain_id: &str) -> AgentResult<Vec<FileInfo>>;
    async fn volume_operation(&self, op: &VolumeOperation) -> AgentResult<VolumeInfo>;
}
