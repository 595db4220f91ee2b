//! Host monitoring: one task polls every enrolled host each interval (3 s), with bounded
//! concurrency and a timeout per call. Each poll lists the host's VMs (every 5th poll it
//! reads the host's statistics, which carry the VM list too). A host that fails a poll is
//! `connecting`, after `grace_polls` failures in a row `non_responsive` (its VMs `unknown`),
//! and `up` again once it answers. Status changes are written with their events in one
//! transaction, and only when something changed: a poll that finds what the engine already
//! knows writes nothing.

use super::agent::{bounded, Agent};
use super::docs;
use super::events::{self, About};
use super::runtime::VmTrack;
use super::{caps, vm_sync, Hosts};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use vireo_agent_proto::{HostStats, VmStats};
use vireo_store::{CmpOp, Filter, Query};

/// An enrolled host, as the monitor holds it.
pub struct HostEntry {
    pub id: String,
    pub agent: Arc<dyn Agent>,
    /// Held for the length of a poll: a poll still running (a host that hangs) makes the
    /// next cycle skip that host rather than pile up calls.
    pub poll: tokio::sync::Mutex<PollState>,
    pub view: Mutex<HostView>,
}

#[derive(Default)]
pub struct PollState {
    pub failures: u32,
    /// Capabilities are read when a host comes (back) up.
    pub caps_known: bool,
}

/// What readers (scheduler, statistics, actions) need without a store read.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    pub name: String,
    pub status: String,
    pub cluster_id: String,
    pub memory: i64,
    pub cpus: i64,
    pub cores: i64,
    pub stats: Option<HostStats>,
    pub stats_at: Option<Instant>,
    /// The `summary` (active, migrating, total) and `max_scheduling_memory` last written.
    pub summary: (i64, i64, i64, i64),
    pub address: String,
    pub port: u16,
    /// A simulated agent (`--simulate`): its volumes are metadata, not files.
    pub simulated: bool,
}

impl HostEntry {
    pub fn new(
        id: &str,
        name: &str,
        cluster_id: &str,
        status: &str,
        agent: Arc<dyn Agent>,
    ) -> Arc<HostEntry> {
        Arc::new(HostEntry {
            id: id.to_string(),
            agent,
            poll: tokio::sync::Mutex::new(PollState::default()),
            view: Mutex::new(HostView {
                name: name.into(),
                status: status.into(),
                cluster_id: cluster_id.into(),
                ..Default::default()
            }),
        })
    }

    pub fn view(&self) -> HostView {
        self.view.lock().unwrap().clone()
    }

    pub fn status(&self) -> String {
        self.view.lock().unwrap().status.clone()
    }

    pub fn set_status(&self, s: &str) {
        self.view.lock().unwrap().status = s.to_string();
    }
}

/// Statuses in which the monitor polls a host and may call it unreachable. Hosts in
/// maintenance are polled too (their statistics stay fresh) but keep their status.
fn may_turn_unreachable(status: &str) -> bool {
    matches!(
        status,
        "up" | "initializing"
            | "unassigned"
            | "connecting"
            | "preparing_for_maintenance"
            | "non_operational"
    )
}

/// Start: the hosts and the VMs that are not down, from the store. A host the engine was
/// still installing when it stopped lost its secret with the process: it is marked
/// `install_failed`, to be re-added.
pub async fn load(h: &Arc<Hosts>) -> anyhow::Result<()> {
    let recs = h.store.list("hosts", &Query::new(Filter::All)).await?;
    for rec in recs {
        let doc = docs::parse(&rec);
        let status = docs::text(&doc, &["status"])
            .unwrap_or("unassigned")
            .to_string();
        let name = rec.name.clone().unwrap_or_default();
        let cluster = docs::text(&doc, &["cluster", "id"])
            .unwrap_or_default()
            .to_string();
        if status == "installing" {
            let (id, n) = (rec.id.clone(), name.clone());
            let about_cluster = cluster.clone();
            h.store
                .write(move |tx| {
                    Box::pin(async move {
                        docs::update_in(tx, "hosts", &id, |d| {
                            docs::obj(d).insert("status".into(), "install_failed".into());
                        })
                        .await?;
                        let about = About {
                            host_id: Some(&id),
                            cluster_id: Some(&about_cluster),
                            ..Default::default()
                        };
                        let text = format!("Host {n} installation failed. The engine stopped during the installation; add the host again.");
                        tx.insert_event(&events::event(events::VDS_INSTALL_FAILED, text, about))
                            .await
                            .map(|_| ())
                    })
                })
                .await?;
            continue;
        }
        if matches!(
            status.as_str(),
            "install_failed" | "installing_os" | "pending_approval"
        ) {
            continue;
        }
        let address = docs::text(&doc, &["address"])
            .unwrap_or_default()
            .to_string();
        let port = docs::int(&doc, &["port"]).unwrap_or(super::enroll::DEFAULT_PORT) as u16;
        let agent = match h.connector.connect(&address, port, &rec.id) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(host = %name, error = %e, "cannot make a client for the host");
                continue;
            }
        };
        let e = HostEntry::new(&rec.id, &name, &cluster, &status, agent);
        remember_capacity(&e, &doc);
        h.table.write().unwrap().insert(rec.id.clone(), e);
    }
    let vms = h
        .store
        .list("vms", &Query::new(Filter::cmp("status", CmpOp::Ne, "down")))
        .await?;
    let mut rt = h.runtime.lock().unwrap();
    for rec in vms {
        let doc = docs::parse(&rec);
        let Some(host) = docs::text(&doc, &["host", "id"]) else {
            continue;
        };
        rt.place(&rec.id, track_of(&rec.id, &doc, host));
    }
    Ok(())
}

/// A VM record's runtime view.
pub fn track_of(_id: &str, doc: &serde_json::Value, host: &str) -> VmTrack {
    let sockets = docs::int(doc, &["cpu", "topology", "sockets"]).unwrap_or(1);
    let cores = docs::int(doc, &["cpu", "topology", "cores"]).unwrap_or(1);
    let threads = docs::int(doc, &["cpu", "topology", "threads"]).unwrap_or(1);
    VmTrack {
        name: docs::text(doc, &["name"]).unwrap_or_default().to_string(),
        cluster_id: docs::text(doc, &["cluster", "id"])
            .unwrap_or_default()
            .to_string(),
        host: host.to_string(),
        status: docs::text(doc, &["status"]).unwrap_or("down").to_string(),
        memory: docs::int(doc, &["memory"]).unwrap_or(0),
        vcpus: (sockets * cores * threads).max(1),
        seen: None,
        consoles: Vec::new(),
        stats: VmStats::default(),
        since: Instant::now(),
        launch: None,
        migration: None,
        stopping: None,
        job: None,
        // A run-once CD is this run's medium.
        cdrom: docs::list_items(doc.get("cdroms"), "cdrom")
            .first()
            .and_then(|c| docs::text(c, &["file", "id"]))
            .filter(|f| !f.is_empty())
            .map(|f| Some(f.to_string())),
    }
}

/// Keeps the host's size in the view, for the scheduler.
pub fn remember_capacity(e: &HostEntry, doc: &serde_json::Value) {
    let mut v = e.view.lock().unwrap();
    v.memory = docs::int(doc, &["memory"]).unwrap_or(0);
    let sockets = docs::int(doc, &["cpu", "topology", "sockets"]).unwrap_or(0);
    let cores = docs::int(doc, &["cpu", "topology", "cores"]).unwrap_or(0);
    let threads = docs::int(doc, &["cpu", "topology", "threads"]).unwrap_or(1);
    v.cores = sockets * cores;
    v.cpus = sockets * cores * threads.max(1);
    v.address = docs::text(doc, &["address"])
        .unwrap_or_default()
        .to_string();
    v.port = docs::int(doc, &["port"]).unwrap_or(super::enroll::DEFAULT_PORT) as u16;
    if let Some(n) = docs::text(doc, &["name"]) {
        v.name = n.to_string();
    }
    if let Some(c) = docs::text(doc, &["cluster", "id"]) {
        v.cluster_id = c.to_string();
    }
}

/// The monitoring loop, until shutdown.
pub async fn run(h: Arc<Hosts>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(h.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = Arc::new(Semaphore::new(h.config.concurrency.max(1)));
    let mut cycle: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if h.stopping() {
            return;
        }
        cycle += 1;
        let entries: Vec<Arc<HostEntry>> = h.table.read().unwrap().values().cloned().collect();
        let mut set = tokio::task::JoinSet::new();
        for e in entries {
            let (h, limit) = (h.clone(), limit.clone());
            set.spawn(async move {
                let Ok(_permit) = limit.acquire().await else {
                    return;
                };
                poll(&h, &e, cycle).await;
            });
        }
        // A cycle ends when its polls do; polls are bounded by their call timeouts.
        while set.join_next().await.is_some() {}
    }
}

/// VM statuses on their way somewhere.
fn transitional(status: &str) -> bool {
    matches!(
        status,
        "wait_for_launch"
            | "powering_up"
            | "powering_down"
            | "reboot_in_progress"
            | "migrating"
            | "saving_state"
            | "restoring_state"
    )
}

/// The fast lane: hosts holding VMs on their way somewhere are asked for their VMs six times
/// per interval, so that a started VM shows `up` about when its guest is, not up to a whole
/// interval later (VDSM pushes such changes to oVirt as events). Hosts with only settled VMs
/// cost nothing here.
pub async fn run_fast(h: Arc<Hosts>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let period = (h.config.interval / 6).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if h.stopping() {
            return;
        }
        let busy: std::collections::HashSet<String> = {
            let rt = h.runtime.lock().unwrap();
            rt.vms
                .values()
                .filter(|t| transitional(&t.status) || t.migration.is_some() || t.launch.is_some())
                .flat_map(|t| {
                    std::iter::once(t.host.clone())
                        .chain(t.migration.as_ref().map(|m| m.to.clone()))
                })
                .collect()
        };
        let mut set = tokio::task::JoinSet::new();
        for e in busy.iter().filter_map(|id| h.entry(id)) {
            let h = h.clone();
            set.spawn(async move { poll_vms(&h, &e).await });
        }
        while set.join_next().await.is_some() {}
    }
}

/// Only the VM list; reachability is the main cycle's business.
async fn poll_vms(h: &Arc<Hosts>, e: &Arc<HostEntry>) {
    let Ok(ps) = e.poll.try_lock() else { return };
    if !ps.caps_known || ps.failures > 0 {
        return;
    }
    if let Ok(vms) = bounded(h.config.call_timeout, e.agent.list_vms()).await {
        vm_sync::sync(h, e, vms).await;
        super::host_actions::check_maintenance(h, &e.id).await;
    }
}

/// One poll of one host (also run right after enrollment and activation).
pub async fn poll(h: &Arc<Hosts>, e: &Arc<HostEntry>, cycle: u64) {
    let Ok(mut ps) = e.poll.try_lock() else {
        return;
    };
    let t = h.config.call_timeout;
    if !ps.caps_known {
        match bounded(t, e.agent.capabilities()).await {
            Ok(c) => {
                let id = e.id.clone();
                let c2 = c.clone();
                let r = h
                    .store
                    .write(move |tx| Box::pin(async move { caps::apply(tx, &id, &c2).await }))
                    .await;
                match r {
                    Ok(Some(status)) => {
                        ps.caps_known = true;
                        ps.failures = 0;
                        e.set_status(&status);
                        {
                            let mut v = e.view.lock().unwrap();
                            v.memory = c.memory_bytes as i64;
                            v.simulated = c.simulated;
                            v.cpus = caps::cpu_count(&c);
                            v.cores = (c.cpu.sockets.max(1) * c.cpu.cores_per_socket.max(1)) as i64;
                        }
                        vm_sync::refresh_summary(h, &e.id).await;
                    }
                    Ok(None) => {
                        h.forget(&e.id);
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(host = %e.view().name, error = %err, "cannot store the host's capabilities");
                        return;
                    }
                }
            }
            Err(err) => {
                failed(h, e, &mut ps, &err.message).await;
                return;
            }
        }
    }
    let with_stats =
        cycle.is_multiple_of(h.config.stats_every.max(1)) || e.view.lock().unwrap().stats.is_none();
    let report = if with_stats {
        bounded(t, e.agent.stats()).await.map(|s| {
            let vms = s.vms.clone();
            let mut v = e.view.lock().unwrap();
            v.stats = Some(s);
            v.stats_at = Some(Instant::now());
            vms
        })
    } else {
        bounded(t, e.agent.list_vms()).await
    };
    match report {
        Ok(vms) => {
            if ps.failures > 0 {
                reached(h, e, &mut ps).await;
            }
            vm_sync::sync(h, e, vms).await;
            super::host_actions::check_maintenance(h, &e.id).await;
        }
        Err(err) => failed(h, e, &mut ps, &err.message).await,
    }
}

/// The host answered after failing: `connecting` goes back to what it was (up).
async fn reached(h: &Arc<Hosts>, e: &Arc<HostEntry>, ps: &mut PollState) {
    ps.failures = 0;
    if e.status() == "connecting" {
        let id = e.id.clone();
        let r = h
            .store
            .write(move |tx| {
                Box::pin(async move {
                    docs::update_in(tx, "hosts", &id, |d| {
                        if docs::text(d, &["status"]) == Some("connecting") {
                            docs::obj(d).insert("status".into(), "up".into());
                        }
                    })
                    .await
                })
            })
            .await;
        if r.is_ok() {
            e.set_status("up");
        }
    }
}

async fn failed(h: &Arc<Hosts>, e: &Arc<HostEntry>, ps: &mut PollState, why: &str) {
    ps.failures += 1;
    let status = e.status();
    if !may_turn_unreachable(&status) {
        return;
    }
    let grace = h.config.grace_polls.max(1);
    let target = if ps.failures >= grace {
        "non_responsive"
    } else if status != "connecting" {
        "connecting"
    } else {
        return;
    };
    tracing::info!(host = %e.view().name, failures = ps.failures, error = why, status = target, "host does not answer");
    let vms = if target == "non_responsive" {
        h.runtime.lock().unwrap().on_host(&e.id)
    } else {
        Vec::new()
    };
    let (id, name, cluster) = {
        let v = e.view();
        (e.id.clone(), v.name, v.cluster_id)
    };
    let grace_s = (h.config.interval * (grace - 1).max(1)).as_secs();
    let target_s = target.to_string();
    let vm_ids = vms.clone();
    let r = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                let found = docs::update_in(tx, "hosts", &id, |d| {
                    docs::obj(d).insert("status".into(), target_s.clone().into());
                })
                .await?;
                if found.is_none() {
                    return Ok(());
                }
                let about = About { host_id: Some(&id), cluster_id: Some(&cluster), ..Default::default() };
                if target_s == "connecting" {
                    let text = format!("Host {name} is not responding. It will stay in Connecting state for a grace period of {grace_s} seconds and after that an attempt to fence the host will be issued.");
                    tx.insert_event(&events::event(events::VDS_HOST_NOT_RESPONDING_CONNECTING, text, about)).await?;
                    return Ok(());
                }
                tx.insert_event(&events::event(events::VDS_FAILURE, format!("Host {name} is non responsive."), about)).await?;
                // oVirt cannot tell what became of the VMs of a host it cannot reach.
                for vm in &vm_ids {
                    let vm_name = docs::update_in(tx, "vms", vm, |d| {
                        let on_host = docs::text(d, &["host", "id"]) == Some(id.as_str());
                        if on_host {
                            docs::obj(d).insert("status".into(), "unknown".into());
                        }
                        on_host.then(|| docs::text(d, &["name"]).unwrap_or_default().to_string())
                    })
                    .await?;
                    if let Some(Some(n)) = vm_name {
                        let about = About { host_id: Some(&id), vm_id: Some(vm), cluster_id: Some(&cluster), ..Default::default() };
                        tx.insert_event(&events::event(events::VM_SET_TO_UNKNOWN_STATUS, format!("VM {n} was set to the Unknown status."), about)).await?;
                    }
                }
                Ok(())
            })
        })
        .await;
    match r {
        Ok(()) => {
            e.set_status(target);
            if target == "non_responsive" {
                // Read everything again when it comes back: it may be another agent now.
                ps.caps_known = false;
                let mut rt = h.runtime.lock().unwrap();
                for vm in &vms {
                    if let Some(t) = rt.vms.get_mut(vm) {
                        if t.host == e.id {
                            t.status = "unknown".into();
                            t.seen = None;
                        }
                    }
                }
            }
        }
        Err(err) => {
            tracing::warn!(host = %e.view().name, error = %err, "cannot store the host's status")
        }
    }
}

/// Polls a host now, off the caller (after activation or a refresh).
pub fn poll_soon(h: &Arc<Hosts>, host_id: &str) {
    let Some(e) = h.entry(host_id) else { return };
    let h2 = h.clone();
    h.spawn(async move {
        // Give a poll that is running now the chance to finish.
        for _ in 0..20 {
            if e.poll.try_lock().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        poll(&h2, &e, 0).await;
    });
}
