//! Hosts and what runs on them: enrollment of agents, monitoring, VM lifecycle, scheduling.
//!
//! - [`enroll`]: `POST /hosts` stores the host `installing` and answers at once; a task
//!   enrolls the agent (secret, certificate), then the monitor takes it to `up`;
//! - [`monitor`]: one task polls every host every 3 s (statistics every 5th cycle), and
//!   [`vm_sync`] folds the VMs the hosts report into the VM records; nothing is written when
//!   nothing changed;
//! - [`scheduler`]: where a VM may run (filters) and where it should (weights);
//! - [`vm_runtime`], [`host_actions`]: the actions; [`consoles`], [`statistics`]: runtime
//!   views that live in memory, not in the store.
//!
//! No request handler waits on an agent except for short calls bounded by timeouts
//! ([`agent::bounded`]): starting a VM sends the create and returns.

pub mod actions;
pub mod agent;
pub mod caps;
pub mod consoles;
pub mod devices;
pub mod docs;
pub mod enroll;
pub mod events;
pub mod host_actions;
pub mod jobs;
pub mod monitor;
pub mod pool_monitor;
pub mod runtime;
pub mod scheduler;
pub mod snapshots;
pub mod statistics;
pub mod vm_runtime;
pub mod vm_spec;
pub mod vm_sync;

use crate::api::fault::ApiResult;
use crate::api::Ctx;
use crate::inventory::Location;
use agent::{Agent, ClientConnector, Connector};
use axum::response::Response;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use vireo_model::meta::MethodKind;
use vireo_pki::Pki;
use vireo_store::Store;

/// How hosts are watched. oVirt polls every 3 s, reads statistics every 5th poll and waits
/// up to 180 s before it calls a host non-responsive; vireo's grace is counted in failed
/// polls (3 by default, about 9 s), since a simulated or local agent that misses three polls
/// in a row is gone, not slow.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub interval: Duration,
    /// Host statistics every this many polls.
    pub stats_every: u64,
    /// Failed polls in a row before `non_responsive` (the first failure shows `connecting`).
    pub grace_polls: u32,
    /// Each call of a poll.
    pub call_timeout: Duration,
    /// Hosts polled at once.
    pub concurrency: usize,
    /// Enrollment of a new host.
    pub enroll_timeout: Duration,
    /// Calls a request handler makes (create, destroy, migrate …).
    pub action_timeout: Duration,
    /// How often the pool monitor starts the prestarted VMs of VM pools (oVirt's
    /// `VmPoolMonitorIntervalInMinutes`, 5 minutes).
    pub pool_interval: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_secs(3),
            stats_every: 5,
            grace_polls: 3,
            call_timeout: Duration::from_millis(2500),
            concurrency: 64,
            enroll_timeout: Duration::from_secs(30),
            action_timeout: Duration::from_secs(15),
            pool_interval: Duration::from_secs(300),
        }
    }
}

impl MonitorConfig {
    /// The defaults, with `VIREO_MONITOR_INTERVAL_MS`, `VIREO_HOST_GRACE_POLLS` and
    /// `VIREO_POOL_MONITOR_INTERVAL_MS` when set.
    pub fn from_env() -> Self {
        let mut c = MonitorConfig::default();
        if let Some(ms) = std::env::var("VIREO_MONITOR_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            c.interval = Duration::from_millis(ms.max(50));
            c.call_timeout = c.interval.mul_f64(0.8).max(Duration::from_millis(200));
        }
        if let Some(n) = std::env::var("VIREO_HOST_GRACE_POLLS")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
        {
            c.grace_polls = n.max(1);
        }
        if let Some(ms) = std::env::var("VIREO_POOL_MONITOR_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            c.pool_interval = Duration::from_millis(ms.max(100));
        }
        c
    }
}

/// The engine's live knowledge of hosts and of the VMs on them.
pub struct Hosts {
    pub(crate) store: Store,
    pub(crate) config: MonitorConfig,
    pub(crate) connector: Arc<dyn Connector>,
    /// Enrolled hosts the monitor polls, by id.
    pub(crate) table: RwLock<HashMap<String, Arc<monitor::HostEntry>>>,
    /// What runs where.
    pub(crate) runtime: Mutex<runtime::Runtime>,
    /// Enroll secrets between `POST /hosts` and the enrollment task (never stored).
    secrets: Mutex<HashMap<String, String>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Hosts {
    pub fn new(store: Store, pki: Arc<Pki>, config: MonitorConfig) -> Arc<Hosts> {
        Self::with_connector(store, Arc::new(ClientConnector::new(pki)), config)
    }

    pub fn with_connector(
        store: Store,
        connector: Arc<dyn Connector>,
        config: MonitorConfig,
    ) -> Arc<Hosts> {
        let (stop, _) = tokio::sync::watch::channel(false);
        Arc::new(Hosts {
            store,
            config,
            connector,
            table: RwLock::new(HashMap::new()),
            runtime: Mutex::new(runtime::Runtime::default()),
            secrets: Mutex::new(HashMap::new()),
            stop,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Loads hosts and running VMs from the store and starts the monitor.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        monitor::load(self).await?;
        let (me, stop) = (self.clone(), self.stop.subscribe());
        self.spawn(async move { monitor::run(me, stop).await });
        let (me, stop) = (self.clone(), self.stop.subscribe());
        self.spawn(async move { monitor::run_fast(me, stop).await });
        let (me, stop) = (self.clone(), self.stop.subscribe());
        self.spawn(async move { pool_monitor::run(me, stop).await });
        Ok(())
    }

    /// Stops the monitor and every task the hosts started, waiting briefly for them.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for t in &tasks {
            if !t.is_finished() {
                t.abort();
            }
        }
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    /// Runs background work owned by the hosts (aborted on shutdown).
    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(fut));
    }

    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub(crate) fn entry(&self, host_id: &str) -> Option<Arc<monitor::HostEntry>> {
        self.table.read().unwrap().get(host_id).cloned()
    }

    /// The client of an enrolled host, for whoever needs to call it (storage work).
    pub fn agent_of(&self, host_id: &str) -> Option<Arc<dyn Agent>> {
        self.entry(host_id).map(|e| e.agent.clone())
    }

    pub(crate) fn put_secret(&self, host_id: &str, secret: String) {
        self.secrets
            .lock()
            .unwrap()
            .insert(host_id.to_string(), secret);
    }

    pub(crate) fn take_secret(&self, host_id: &str) -> Option<String> {
        self.secrets.lock().unwrap().remove(host_id)
    }

    /// Forgets a removed host.
    pub(crate) fn forget(&self, host_id: &str) {
        self.table.write().unwrap().remove(host_id);
        self.runtime.lock().unwrap().by_host.remove(host_id);
    }
}

/// Host and VM actions served here, as (collection path, action), for the coverage count.
pub const IMPLEMENTED: &[(&str, &str)] = &[
    ("hosts", "activate"),
    ("hosts", "deactivate"),
    ("hosts", "refresh"),
    ("hosts", "fence"),
    ("vms", "start"),
    ("vms", "stop"),
    ("vms", "shutdown"),
    ("vms", "reboot"),
    ("vms", "suspend"),
    ("vms", "migrate"),
    ("vms", "cancelmigration"),
    ("vms", "ticket"),
    ("vms", "previewsnapshot"),
    ("vms", "undosnapshot"),
    ("vms", "commitsnapshot"),
    ("vms/snapshots", "restore"),
    ("vms/nics", "activate"),
    ("vms/nics", "deactivate"),
    ("vms/graphicsconsoles", "ticket"),
    ("vms/graphicsconsoles", "remoteviewerconnectionfile"),
];

/// Collections served from memory by [`runtime_read`], and their methods (`l`ist, `g`et).
pub fn runtime_collection(path: &str) -> Option<&'static str> {
    match path {
        "hosts/statistics" | "vms/statistics" | "vms/graphicsconsoles" => Some("lg"),
        _ => None,
    }
}

// ---- hooks the inventory calls ---------------------------------------------------------

pub async fn prepare_add(ctx: &Ctx<'_>, doc: &mut Value) -> ApiResult<()> {
    enroll::prepare_add(ctx, doc).await
}

pub async fn after_add(ctx: &Ctx<'_>, id: &str, doc: &Value) -> ApiResult<()> {
    enroll::after_add(ctx, id, doc).await
}

pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    host_actions::prepare_update(ctx, before, doc).await
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    host_actions::check_remove(ctx, doc).await
}

/// `None`: not implemented yet, the caller answers 501 naming the method.
pub async fn action(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    actions::dispatch(ctx, at, action).await
}

/// Reads of what lives in memory rather than in the store: host and VM statistics, the
/// consoles of running VMs (and their actions). `None` for everything else.
pub async fn runtime_read(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    if let Some(r) = statistics::dispatch(ctx, op).await? {
        return Ok(Some(r));
    }
    if let Some(r) = devices::current_cdroms(ctx, op).await? {
        return Ok(Some(r));
    }
    consoles::dispatch(ctx, op).await
}
