//! What runs where, in memory: the engine's view of every VM that is not down. The store
//! keeps what clients read (status, host, times); this keeps what the monitor needs to tell
//! a change from a repetition, what the scheduler counts, and who asked for what (so that
//! the event for a VM coming up names the user who started it).

use super::jobs::JobRef;
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use vireo_agent_proto::{ConsoleInfo, VmState, VmStats};

#[derive(Default)]
pub struct Runtime {
    pub vms: HashMap<String, VmTrack>,
    /// The VMs each host holds (a migrating VM is on both of its hosts).
    pub by_host: HashMap<String, HashSet<String>>,
}

#[derive(Debug, Clone)]
pub struct VmTrack {
    pub name: String,
    pub cluster_id: String,
    /// Where it runs (the source while it migrates).
    pub host: String,
    /// The status in the VM record.
    pub status: String,
    pub memory: i64,
    pub vcpus: i64,
    /// What its host last reported (None: not reported yet).
    pub seen: Option<VmState>,
    pub consoles: Vec<ConsoleInfo>,
    pub stats: VmStats,
    /// When the engine last acted on it: reports that predate an action are not trusted to
    /// say the VM is gone.
    pub since: Instant,
    pub launch: Option<Launch>,
    pub migration: Option<Migration>,
    /// A stop the user asked for, for the down event's words.
    pub stopping: Option<Stopping>,
    /// The job of the last action still waiting for the VM to reach its state.
    pub job: Option<JobRef>,
    /// The CD-ROM medium of this run when it differs from the stored CD-ROM (a run-once CD,
    /// or a change with `current=true`); `Some(None)`: ejected. `None`: the stored one.
    pub cdrom: Option<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct Launch {
    pub user_name: String,
    pub user_id: String,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Migration {
    pub from: String,
    pub to: String,
    pub started: Instant,
    pub user_name: String,
    pub job: Option<JobRef>,
    /// Percent done, as the source host last reported it.
    pub progress: u32,
}

#[derive(Debug, Clone)]
pub struct Stopping {
    pub user_name: String,
    /// `stop` or `shutdown`.
    pub how: &'static str,
}

impl Runtime {
    /// Puts (or moves) a VM on `host`.
    pub fn place(&mut self, vm_id: &str, track: VmTrack) {
        if let Some(old) = self.vms.get(vm_id) {
            let old_host = old.host.clone();
            if let Some(set) = self.by_host.get_mut(&old_host) {
                set.remove(vm_id);
            }
        }
        self.by_host
            .entry(track.host.clone())
            .or_default()
            .insert(vm_id.to_string());
        self.vms.insert(vm_id.to_string(), track);
    }

    /// Also counts the VM on `host` (a migration's destination).
    pub fn add_holder(&mut self, vm_id: &str, host: &str) {
        self.by_host
            .entry(host.to_string())
            .or_default()
            .insert(vm_id.to_string());
    }

    pub fn drop_holder(&mut self, vm_id: &str, host: &str) {
        if let Some(set) = self.by_host.get_mut(host) {
            set.remove(vm_id);
        }
    }

    /// The VM is down: it holds nothing any more.
    pub fn remove(&mut self, vm_id: &str) -> Option<VmTrack> {
        let t = self.vms.remove(vm_id)?;
        for set in self.by_host.values_mut() {
            set.remove(vm_id);
        }
        Some(t)
    }

    pub fn on_host(&self, host: &str) -> Vec<String> {
        self.by_host
            .get(host)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Memory and vCPUs committed to VMs on `host` (migrations count on both ends).
    pub fn committed(&self, host: &str) -> (i64, i64, usize) {
        let mut mem = 0;
        let mut cpus = 0;
        let mut n = 0;
        for id in self.by_host.get(host).into_iter().flatten() {
            if let Some(t) = self.vms.get(id) {
                mem += t.memory;
                cpus += t.vcpus;
                n += 1;
            }
        }
        (mem, cpus, n)
    }

    /// `(active, migrating, total)` for a host's `summary`.
    pub fn summary(&self, host: &str) -> (i64, i64, i64) {
        let mut active = 0;
        let mut migrating = 0;
        for id in self.by_host.get(host).into_iter().flatten() {
            if let Some(t) = self.vms.get(id) {
                if t.host == host {
                    active += 1;
                }
                if t.migration.is_some() {
                    migrating += 1;
                }
            }
        }
        (active, migrating, active)
    }
}
