//! `--simulate`: a host without QEMU. VMs are state machines moved by time ([`vm`]),
//! storage is metadata ([`storage`]), the hardware and its load are made up ([`hardware`]).
//!
//! Everything lives in memory and is bounded (VMs, domains and volumes per host). A restarted
//! simulated agent keeps its enrollment but forgets its VMs and storage: the engine sees the
//! VMs gone, as after a host crash. (The QEMU driver finds its running VMs again.)

mod hardware;
mod storage;
mod vm;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use vireo_agent_proto::{
    AgentError, AgentResult, Capabilities, DomainInfo, DomainSpec, ErrorCode, FileInfo, HostStats,
    Hypervisor, VmOperation, VmRuntime, VmSpec, VmState, VolumeInfo, VolumeOperation,
};

use crate::config::HostContext;
use hardware::Profile;
use storage::{check_id, Storage};
use vm::{holds_resources, SimVm};

pub use vm::{BOOT, LAUNCH, MIGRATION};

/// Bound on VMs a host lists, down ones included.
const MAX_VMS: usize = 2048;
/// A down VM nobody cleared is forgotten after this long, so the table cannot only grow.
const FORGET_DOWN_AFTER: Duration = Duration::from_secs(600);
const FIRST_CONSOLE_PORT: u16 = 5900;
const LAST_CONSOLE_PORT: u16 = 65000;
/// Per-VM bounds, so that a host's memory stays small whatever the engine sends.
const MAX_SPEC_BYTES: usize = 64 << 10;
const MAX_GRAPHICS: usize = 4;
pub(crate) const MAX_DISKS: usize = 256;
pub(crate) const MAX_NICS: usize = 64;
const MAX_VCPUS: u32 = 710;
/// The host has been "up" this long when the agent starts.
const PRETEND_UPTIME_S: i64 = 3 * 24 * 3600;

/// One simulated host.
pub struct SimHost {
    profile: Profile,
    host_id: watch::Receiver<Option<String>>,
    boot_time_s: i64,
    /// A plain mutex: no lock is ever held across an await, and every operation is short.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    vms: HashMap<String, SimVm>,
    storage: Storage,
}

impl State {
    fn settle(&mut self, now: Instant) {
        for vm in self.vms.values_mut() {
            vm.settle(now);
        }
        self.vms
            .retain(|_, vm| holds_resources(vm.state) || vm.in_state_for(now) < FORGET_DOWN_AFTER);
    }

    fn reserved_memory(&self) -> u64 {
        self.vms
            .values()
            .filter(|v| holds_resources(v.state))
            .map(|v| v.spec.memory_bytes)
            .sum()
    }

    /// Admits a new VM (`spec.id` not running here): memory and table size.
    fn admit(&mut self, spec: &VmSpec) -> AgentResult<()> {
        check_id("VM id", &spec.id)?;
        check_spec_size(spec)?;
        if spec.memory_bytes == 0 {
            return Err(AgentError::new(
                ErrorCode::InvalidRequest,
                "a VM needs memory",
            ));
        }
        let vcpus = u64::from(spec.sockets.max(1))
            * u64::from(spec.cores.max(1))
            * u64::from(spec.threads.max(1));
        if vcpus > u64::from(MAX_VCPUS) {
            return Err(AgentError::new(
                ErrorCode::InvalidRequest,
                format!("{vcpus} vCPUs: at most {MAX_VCPUS}"),
            ));
        }
        if let Some(existing) = self.vms.get(&spec.id) {
            if holds_resources(existing.state) {
                return Err(AgentError::new(
                    ErrorCode::WrongState,
                    format!("VM {} already runs here ({:?})", spec.id, existing.state),
                ));
            }
        }
        let usable = hardware::MEMORY_BYTES - hardware::HOST_RESERVED_BYTES;
        let free = usable.saturating_sub(self.reserved_memory());
        if spec.memory_bytes > free {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "not enough memory: {} MiB free, VM {} needs {} MiB",
                    free >> 20,
                    spec.id,
                    spec.memory_bytes >> 20
                ),
            ));
        }
        if !self.vms.contains_key(&spec.id) && self.vms.len() >= MAX_VMS {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                format!("this host holds {MAX_VMS} VMs already"),
            ));
        }
        Ok(())
    }

    /// Lowest free console ports, one per graphics device (SPICE also takes the next one,
    /// for TLS). `None` when the host has run out of them.
    fn console_ports(&self, spec: &VmSpec) -> Option<Vec<u16>> {
        let used: HashSet<u32> = self
            .vms
            .values()
            .filter(|v| holds_resources(v.state))
            .flat_map(|v| {
                v.spec
                    .graphics
                    .iter()
                    .zip(&v.console_ports)
                    .flat_map(|(g, p)| (0..port_width(g)).map(move |i| u32::from(*p) + i))
            })
            .collect();
        let mut ports = Vec::new();
        let mut next = u32::from(FIRST_CONSOLE_PORT);
        for g in &spec.graphics {
            let width = port_width(g);
            while (next..next + width).any(|p| used.contains(&p)) {
                next += 1;
            }
            if next + width > u32::from(LAST_CONSOLE_PORT) {
                return None;
            }
            ports.push(u16::try_from(next).ok()?);
            next += width;
        }
        Some(ports)
    }

    fn start(&mut self, spec: VmSpec, state: VmState, now: Instant) -> AgentResult<&SimVm> {
        self.admit(&spec)?;
        let ports = self.console_ports(&spec).ok_or_else(|| {
            AgentError::new(
                ErrorCode::ResourceExhausted,
                "no console ports left on this host",
            )
        })?;
        let id = spec.id.clone();
        self.vms
            .insert(id.clone(), SimVm::new(spec, state, now, ports));
        self.vms
            .get(&id)
            .ok_or_else(|| AgentError::new(ErrorCode::Failed, "VM vanished"))
    }
}

impl SimHost {
    pub fn new(ctx: HostContext) -> SimHost {
        let profile = Profile {
            listen: ctx.listen,
            machine_id: ctx.machine_id,
        };
        SimHost {
            profile,
            host_id: ctx.host_id,
            boot_time_s: vm::wall_ms() / 1000 - PRETEND_UPTIME_S,
            state: Mutex::new(State::default()),
        }
    }

    /// The driver factory `hosts::start` takes.
    pub async fn open(ctx: HostContext) -> anyhow::Result<SimHost> {
        Ok(SimHost::new(ctx))
    }

    /// Runs `f` on the settled state at one instant.
    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> AgentResult<T>) -> AgentResult<T> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.settle(now);
        f(&mut state, now)
    }

    fn console_address(&self) -> String {
        let ip = self.profile.listen.ip();
        if ip.is_unspecified() {
            "127.0.0.1".into()
        } else {
            ip.to_string()
        }
    }

    fn own_address(&self) -> String {
        self.profile.listen.to_string()
    }
}

fn port_width(g: &vireo_agent_proto::GraphicsSpec) -> u32 {
    if g.protocol == "spice" {
        2
    } else {
        1
    }
}

fn check_spec_size(spec: &VmSpec) -> AgentResult<()> {
    let invalid = |m: String| Err(AgentError::new(ErrorCode::InvalidRequest, m));
    if spec.graphics.len() > MAX_GRAPHICS
        || spec.disks.len() > MAX_DISKS
        || spec.nics.len() > MAX_NICS
    {
        return invalid(format!(
            "a VM has at most {MAX_GRAPHICS} consoles, {MAX_DISKS} disks and {MAX_NICS} NICs"
        ));
    }
    if serde_json::to_vec(spec).map_or(usize::MAX, |v| v.len()) > MAX_SPEC_BYTES {
        return invalid(format!(
            "the VM's definition is over {} KiB",
            MAX_SPEC_BYTES >> 10
        ));
    }
    Ok(())
}

fn no_vm(id: &str) -> AgentError {
    AgentError::new(ErrorCode::NoSuchVm, format!("no VM {id} on this host"))
}

impl Hypervisor for SimHost {
    async fn capabilities(&self) -> AgentResult<Capabilities> {
        Ok(hardware::capabilities(
            &self.profile,
            self.host_id.borrow().clone(),
        ))
    }

    async fn stats(&self) -> AgentResult<HostStats> {
        let console = self.console_address();
        self.with(|state, now| {
            let vms: Vec<VmRuntime> = state
                .vms
                .values()
                .map(|v| v.runtime(now, &console))
                .collect();
            let t = vm::wall_ms() as f64 / 1000.0;
            let w = hardware::wobble(hardware::fnv(self.profile.machine_id.as_bytes()), t);
            let guest_memory: u64 = vms.iter().map(|v| v.stats.memory_used).sum();
            let memory_used =
                (hardware::HOST_RESERVED_BYTES as f64 * (0.7 + 0.1 * w)) as u64 + guest_memory;
            let memory_used = memory_used.min(hardware::MEMORY_BYTES);
            // Guest load spread over the host's threads, weighted by each VM's vCPUs.
            let guest_cpu: f64 = state
                .vms
                .values()
                .zip(&vms)
                .map(|(v, r)| {
                    r.stats.cpu_percent
                        * f64::from(
                            v.spec.sockets.max(1) * v.spec.cores.max(1) * v.spec.threads.max(1),
                        )
                })
                .sum::<f64>()
                / f64::from(hardware::HOST_THREADS);
            let cpu_user = (0.5 + 0.85 * guest_cpu + w).min(95.0);
            let cpu_system = (0.3 + 0.15 * guest_cpu + 0.5 * w).min(100.0 - cpu_user);
            let round = |x: f64| (x * 100.0).round() / 100.0;
            Ok(HostStats {
                time_ms: vm::wall_ms(),
                memory_total: hardware::MEMORY_BYTES,
                memory_used,
                memory_free: hardware::MEMORY_BYTES - memory_used,
                swap_total: hardware::SWAP_BYTES,
                swap_used: 0,
                cpu_user: round(cpu_user),
                cpu_system: round(cpu_system),
                cpu_idle: round((100.0 - cpu_user - cpu_system).max(0.0)),
                load_avg_5m: round(
                    (cpu_user + cpu_system) / 100.0 * f64::from(hardware::HOST_THREADS),
                ),
                boot_time_s: self.boot_time_s,
                vms,
            })
        })
    }

    async fn list_vms(&self) -> AgentResult<Vec<VmRuntime>> {
        let console = self.console_address();
        self.with(|state, now| {
            Ok(state
                .vms
                .values()
                .map(|v| v.runtime(now, &console))
                .collect())
        })
    }

    async fn get_vm(&self, id: &str) -> AgentResult<VmRuntime> {
        let console = self.console_address();
        self.with(|state, now| {
            state
                .vms
                .get(id)
                .map(|v| v.runtime(now, &console))
                .ok_or_else(|| no_vm(id))
        })
    }

    async fn create_vm(&self, spec: &VmSpec) -> AgentResult<VmRuntime> {
        let console = self.console_address();
        let initial = if spec.restore_from.is_some() {
            VmState::RestoringState
        } else {
            VmState::WaitForLaunch
        };
        self.with(|state, now| {
            Ok(state
                .start(spec.clone(), initial, now)?
                .runtime(now, &console))
        })
    }

    async fn vm_operation(&self, id: &str, op: &VmOperation) -> AgentResult<VmRuntime> {
        let console = self.console_address();
        let own = self.own_address();
        self.with(|state, now| {
            if let VmOperation::PrepareIncoming { spec } = op {
                if spec.id != id {
                    return Err(AgentError::new(
                        ErrorCode::InvalidRequest,
                        format!("the path names VM {id}, the spec {}", spec.id),
                    ));
                }
                return Ok(state
                    .start((**spec).clone(), VmState::MigratingTo, now)?
                    .runtime(now, &console));
            }
            let vm = state.vms.get_mut(id).ok_or_else(|| no_vm(id))?;
            if matches!(op, VmOperation::Destroy) && !holds_resources(vm.state) {
                // Destroying what is already down clears it from the host.
                let last = vm.runtime(now, &console);
                state.vms.remove(id);
                return Ok(last);
            }
            vm.apply(op, now, &own)?;
            Ok(vm.runtime(now, &console))
        })
    }

    async fn connect_domain(&self, spec: &DomainSpec) -> AgentResult<DomainInfo> {
        self.with(|state, _| state.storage.connect(spec))
    }

    async fn domain_info(&self, id: &str) -> AgentResult<DomainInfo> {
        self.with(|state, _| state.storage.info(id))
    }

    async fn list_files(&self, domain_id: &str) -> AgentResult<Vec<FileInfo>> {
        self.with(|state, _| state.storage.files(domain_id))
    }

    async fn volume_operation(&self, op: &VolumeOperation) -> AgentResult<VolumeInfo> {
        self.with(|state, _| state.storage.volume(op))
    }

    async fn disconnect_domain(&self, id: &str) -> AgentResult<()> {
        self.with(|state, _| state.storage.disconnect(id))
    }
}

#[cfg(test)]
mod tests;
