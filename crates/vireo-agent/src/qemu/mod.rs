//! The QEMU hypervisor driver: what `vireo agent` runs without `--simulate`.
//!
//! One QEMU process per VM, under `DATA_DIR/vms/<vm id>/` (QMP socket, serial log, pidfile,
//! record), driven over QMP. Host storage lives in [`storage`]. The accelerator is decided
//! once at start by [`probe`]: KVM only when a probe guest really ran under it.
//!
//! Modules: [`probe`] (KVM or TCG), [`qmp`] (the QMP client), [`argv`] (spec → command
//! line), [`vm`] (process, record, events), [`ops`] (lifecycle, migration, hot-plug),
//! [`storage`] (domains and volumes), [`stats`] and [`host`] (figures and capabilities),
//! [`guest`] (a tiny guest for tests and benchmarks).

pub mod argv;
pub mod guest;
pub mod host;
mod ops;
pub mod probe;
pub mod qmp;
pub mod stats;
pub mod storage;
pub mod vm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vireo_agent_proto::{
    Accel, AgentError, AgentResult, Capabilities, DomainInfo, DomainSpec, ErrorCode, FileInfo,
    HostStats, Hypervisor, VmOperation, VmRuntime, VmSpec, VmState, VolumeInfo, VolumeOperation,
    PROTOCOL_VERSION,
};

pub use probe::AccelChoice;

use vm::{VmHandle, VmRecord};

/// Settings beyond the data folder and the accelerator.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// The QEMU binary; default `$VIREO_QEMU` or `qemu-system-x86_64` from the `PATH`.
    pub qemu_binary: Option<PathBuf>,
    /// Where VNC/SPICE listen, and the address consoles report.
    pub console_listen: String,
    /// Where incoming migrations listen (the port is picked per migration).
    pub migration_listen: String,
}

impl Default for QemuOptions {
    fn default() -> Self {
        QemuOptions {
            qemu_binary: None,
            console_listen: "127.0.0.1".into(),
            migration_listen: "0.0.0.0".into(),
        }
    }
}

pub struct Qemu {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    data_dir: PathBuf,
    qemu: PathBuf,
    accel: Accel,
    features: host::QemuFeatures,
    opts: QemuOptions,
    vms: Mutex<HashMap<String, Arc<VmHandle>>>,
    storage: storage::Storage,
    host_cpu_prev: Mutex<Option<stats::CpuTimes>>,
    /// The engine's id for this host, once enrolled (reported in the capabilities).
    host_id: Option<tokio::sync::watch::Receiver<Option<String>>>,
}

impl Qemu {
    /// Probes the accelerator, then finds the VMs a previous run of the agent left running.
    pub async fn new(data_dir: impl AsRef<Path>, accel: AccelChoice) -> anyhow::Result<Qemu> {
        Self::with_options(data_dir, accel, QemuOptions::default()).await
    }

    /// The driver factory `hosts::start` takes: the host's folder and `--accel` from the
    /// agent; consoles listen on the agent's address (loopback when it listens on all).
    pub async fn open(ctx: crate::config::HostContext) -> anyhow::Result<Qemu> {
        let ip = ctx.listen.ip();
        let console_listen = if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            ip.to_string()
        };
        let opts = QemuOptions {
            console_listen,
            ..QemuOptions::default()
        };
        Self::build(ctx.data_dir, ctx.accel, opts, Some(ctx.host_id)).await
    }

    pub async fn with_options(
        data_dir: impl AsRef<Path>,
        accel: AccelChoice,
        opts: QemuOptions,
    ) -> anyhow::Result<Qemu> {
        Self::build(data_dir.as_ref().to_path_buf(), accel, opts, None).await
    }

    async fn build(
        data_dir: PathBuf,
        accel: AccelChoice,
        opts: QemuOptions,
        host_id: Option<tokio::sync::watch::Receiver<Option<String>>>,
    ) -> anyhow::Result<Qemu> {
        std::fs::create_dir_all(&data_dir)?;
        // Absolute: QEMU gets these paths, and runs with the VM's folder as its cwd.
        let data_dir = std::fs::canonicalize(&data_dir)?;
        std::fs::create_dir_all(data_dir.join("vms"))?;
        let qemu = opts.qemu_binary.clone().or_else(host::find_qemu).ok_or_else(|| anyhow::anyhow!("qemu-system-x86_64 is not installed (set VIREO_QEMU or install qemu-system-x86)"))?;
        let features = host::qemu_features(&qemu).await?;
        let accel = probe::choose(accel, &qemu, &data_dir.join("probe")).await?;
        tracing::info!(kind = ?accel.kind, detail = accel.detail, qemu = features.version, "hypervisor acceleration");
        let inner = Arc::new(Inner {
            storage: storage::Storage::open(&data_dir),
            data_dir,
            qemu,
            accel,
            features,
            opts,
            vms: Mutex::new(HashMap::new()),
            host_cpu_prev: Mutex::new(None),
            host_id,
        });
        inner.recover().await;
        Ok(Qemu { inner })
    }

    pub fn accel(&self) -> &Accel {
        &self.inner.accel
    }

    /// The runtime folder of a VM (serial log, QMP socket, pidfile, record).
    pub fn vm_dir(&self, id: &str) -> PathBuf {
        self.inner.vm_dir(id)
    }

    pub fn qemu_binary(&self) -> &Path {
        &self.inner.qemu
    }
}

fn no_vm(id: &str) -> AgentError {
    AgentError::new(ErrorCode::NoSuchVm, format!("no VM {id} on this host"))
}

impl Inner {
    fn vm_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("vms").join(id)
    }

    fn vm(&self, id: &str) -> AgentResult<Arc<VmHandle>> {
        self.vms
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| no_vm(id))
    }

    /// Finds the VMs of earlier runs: live ones are adopted over QMP, dead ones reported down.
    async fn recover(self: &Arc<Self>) {
        let Ok(dir) = std::fs::read_dir(self.data_dir.join("vms")) else {
            return;
        };
        for e in dir.flatten() {
            let path = e.path();
            let Some(rec) = std::fs::read(path.join("vm.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<VmRecord>(&b).ok())
            else {
                continue;
            };
            let id = rec.spec.id.clone();
            let was_down = matches!(rec.state, VmState::Down | VmState::Suspended);
            let h = VmHandle::new(path.clone(), rec);
            self.vms.lock().unwrap().insert(id.clone(), h.clone());
            if was_down {
                continue;
            }
            match vm::running_pid(&path, &id) {
                Some(pid) => {
                    h.update(|i| i.rec.pid = Some(pid));
                    if let Err(e) = ops::adopt(&h).await {
                        tracing::warn!(vm = id, error = %e, "running VM found but QMP failed");
                    } else {
                        tracing::info!(vm = id, pid, state = ?h.state(), "found running VM again");
                    }
                }
                None => {
                    h.update(|i| {
                        i.rec.state = VmState::Down;
                        i.rec.exit_reason = Some("error".into());
                        i.rec.exit_message =
                            Some("QEMU exited while the agent was not running".into());
                    });
                    h.down.send_replace(true);
                }
            }
        }
    }

    fn host_stats_now(&self) -> (f64, f64, f64, i64) {
        let (cpu, btime) =
            stats::parse_proc_stat(&std::fs::read_to_string("/proc/stat").unwrap_or_default());
        let mut prev = self.host_cpu_prev.lock().unwrap();
        let (u, s, i) = match *prev {
            Some(p) => stats::cpu_percent(p, cpu),
            None => stats::cpu_percent(stats::CpuTimes::default(), cpu),
        };
        *prev = Some(cpu);
        (u, s, i, btime)
    }
}

impl Hypervisor for Qemu {
    async fn capabilities(&self) -> AgentResult<Capabilities> {
        let mem =
            stats::parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        Ok(Capabilities {
            protocol: vec![PROTOCOL_VERSION],
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            host_id: self.inner.host_id.as_ref().and_then(|h| h.borrow().clone()),
            hostname: host::hostname(),
            simulated: false,
            cpu: host::cpu_info(),
            memory_bytes: mem.get("MemTotal").copied().unwrap_or(0),
            nics: host::nics(),
            bridges: host::bridges(),
            accel: self.inner.accel.clone(),
            os: host::os_info(),
            qemu_version: Some(self.inner.features.version.clone()),
        })
    }

    async fn stats(&self) -> AgentResult<HostStats> {
        let mem =
            stats::parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        let g = |k: &str| mem.get(k).copied().unwrap_or(0);
        let (cpu_user, cpu_system, cpu_idle, boot_time_s) = self.inner.host_stats_now();
        let available = if g("MemAvailable") > 0 {
            g("MemAvailable")
        } else {
            g("MemFree") + g("Cached")
        };
        Ok(HostStats {
            time_ms: vm::now_ms(),
            memory_total: g("MemTotal"),
            memory_used: g("MemTotal").saturating_sub(available),
            memory_free: available,
            swap_total: g("SwapTotal"),
            swap_used: g("SwapTotal").saturating_sub(g("SwapFree")),
            cpu_user,
            cpu_system,
            cpu_idle,
            load_avg_5m: stats::parse_loadavg_5m(
                &std::fs::read_to_string("/proc/loadavg").unwrap_or_default(),
            ),
            boot_time_s,
            vms: self.list_vms().await?,
        })
    }

    async fn list_vms(&self) -> AgentResult<Vec<VmRuntime>> {
        let mut handles: Vec<Arc<VmHandle>> =
            self.inner.vms.lock().unwrap().values().cloned().collect();
        handles.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.runtime().await);
        }
        Ok(out)
    }

    async fn get_vm(&self, id: &str) -> AgentResult<VmRuntime> {
        Ok(self.inner.vm(id)?.runtime().await)
    }

    async fn create_vm(&self, spec: &VmSpec) -> AgentResult<VmRuntime> {
        ops::create(&self.inner, spec, ops::Start::Boot).await
    }

    async fn vm_operation(&self, id: &str, op: &VmOperation) -> AgentResult<VmRuntime> {
        if let VmOperation::PrepareIncoming { spec } = op {
            if spec.id != id {
                return Err(AgentError::new(
                    ErrorCode::InvalidRequest,
                    format!("the spec is for VM {}, not {id}", spec.id),
                ));
            }
            return ops::create(&self.inner, spec, ops::Start::Incoming).await;
        }
        ops::operation(&self.inner, id, op).await
    }

    async fn connect_domain(&self, spec: &DomainSpec) -> AgentResult<DomainInfo> {
        self.inner.storage.connect(spec).await
    }

    async fn domain_info(&self, id: &str) -> AgentResult<DomainInfo> {
        self.inner.storage.info(id)
    }

    async fn list_files(&self, domain_id: &str) -> AgentResult<Vec<FileInfo>> {
        self.inner.storage.list_files(domain_id)
    }

    async fn volume_operation(&self, op: &VolumeOperation) -> AgentResult<VolumeInfo> {
        ops::volume(&self.inner, op).await
    }

    async fn disconnect_domain(&self, id: &str) -> AgentResult<()> {
        self.inner.storage.disconnect(id).await
    }
}

/// How long a starting QEMU may take to open QMP (it opens disks and firmware first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    /// `hosts::start` takes this driver as it takes the simulation's: this only has to compile.
    #[allow(dead_code)]
    async fn plugs_into_hosts_start(
        config: crate::config::AgentConfig,
    ) -> anyhow::Result<crate::hosts::RunningAgent> {
        crate::hosts::start(&config, super::Qemu::open).await
    }
}
