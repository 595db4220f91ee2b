//! Folds what a host reports about its VMs into the VM records: status, host, start and stop
//! times, consoles; migrations end here too (the destination reports the VM up). Only the
//! runtime members of a VM record are touched, and only when they change; a down VM is then
//! destroyed on its host, which keeps it listed (with its exit reason) until told.

use super::agent::bounded;
use super::docs::{self, to_doc};
use super::events::{self, About};
use super::jobs::{self, JobRef};
use super::monitor::HostEntry;
use super::runtime::VmTrack;
use super::Hosts;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use vireo_agent_proto::{ConsoleInfo, VmOperation, VmRuntime, VmState};
use vireo_model as m;
use vireo_store::{StoreError, Tx};

/// A VM the engine just acted on may be missing from a report taken before the action.
const VANISH_GRACE: Duration = Duration::from_secs(10);

/// oVirt's VM status for what a host reports.
pub fn vm_status(s: VmState) -> &'static str {
    match s {
        VmState::WaitForLaunch => "wait_for_launch",
        VmState::PoweringUp => "powering_up",
        VmState::Up => "up",
        VmState::PoweringDown => "powering_down",
        VmState::RebootInProgress => "reboot_in_progress",
        VmState::Paused => "paused",
        VmState::SavingState => "saving_state",
        VmState::Suspended => "suspended",
        VmState::RestoringState => "restoring_state",
        VmState::MigratingFrom | VmState::MigratingTo => "migrating",
        VmState::Down => "down",
        VmState::NotResponding => "not_responding",
    }
}

/// What changed for one VM, with what its events need.
#[derive(Debug)]
pub enum Change {
    Status {
        status: String,
        consoles: Vec<ConsoleInfo>,
        started_ms: Option<i64>,
    },
    Down {
        reason: Option<String>,
        message: Option<String>,
    },
    Suspended,
    MigrationDone {
        from: String,
        to: String,
        secs: u64,
    },
    MigrationFailed {
        from: String,
        to: String,
        why: String,
    },
}

pub struct Item {
    pub vm: String,
    pub track: VmTrack,
    pub change: Change,
}

/// A poll's full list of the host's VMs: changes, and VMs that are gone.
pub async fn sync(h: &Arc<Hosts>, e: &Arc<HostEntry>, reported: Vec<VmRuntime>) {
    fold(h, e, reported, true).await
}

/// What an action's call returned about one VM (others are not implied gone).
pub async fn report(h: &Arc<Hosts>, e: &Arc<HostEntry>, vm: VmRuntime) {
    fold(h, e, vec![vm], false).await
}

/// Records a change the engine decided itself (a VM its host does not know any more).
pub async fn apply(h: &Arc<Hosts>, host: &str, vm: &str, change: Change) {
    let Some(track) = h.runtime.lock().unwrap().vms.get(vm).cloned() else {
        return;
    };
    let names = match h.entry(host) {
        Some(e) => HostNames::of(h, &[], &e),
        None => HostNames(Default::default()),
    };
    let item = Item {
        vm: vm.to_string(),
        track,
        change,
    };
    record(h, host, vec![item], names).await;
    refresh_summary(h, host).await;
}

async fn fold(h: &Arc<Hosts>, e: &Arc<HostEntry>, reported: Vec<VmRuntime>, complete: bool) {
    let host = e.id.clone();
    let mut items = Vec::new();
    let mut leftovers = Vec::new();
    {
        let mut rt = h.runtime.lock().unwrap();
        let mine: HashSet<String> = rt.by_host.get(&host).cloned().unwrap_or_default();
        let mut listed = HashSet::new();
        for r in &reported {
            listed.insert(r.id.clone());
            let Some(t) = rt.vms.get_mut(&r.id) else {
                // Not running here as far as the engine knows: a VM that went down (or moved
                // away) and that the host still lists.
                if matches!(r.state, VmState::Down | VmState::Suspended) {
                    leftovers.push(r.id.clone());
                }
                continue;
            };
            t.stats = r.stats.clone();
            // The source reports how far its migration got.
            if let (Some(m), Some(p)) = (t.migration.as_mut(), r.migration.as_ref()) {
                if m.from == host {
                    m.progress = p.percent.min(100);
                }
            }
            if t.host != host
                && t.migration
                    .as_ref()
                    .map(|m| m.to != host && m.from != host)
                    .unwrap_or(true)
            {
                if matches!(r.state, VmState::Down) {
                    leftovers.push(r.id.clone());
                }
                continue;
            }
            if let Some(change) = classify(&host, t, r) {
                items.push(Item {
                    vm: r.id.clone(),
                    track: t.clone(),
                    change,
                });
            } else if t.seen != Some(r.state) {
                t.seen = Some(r.state);
            }
        }
        for id in mine.difference(&listed).filter(|_| complete) {
            let Some(t) = rt.vms.get(id) else { continue };
            if t.since.elapsed() < VANISH_GRACE {
                continue;
            }
            let change = match &t.migration {
                // The source let go: the destination's report ends the migration.
                Some(m) if m.from == host => continue,
                Some(m) if m.to == host => Change::MigrationFailed {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    why: "the destination host does not run the VM".into(),
                },
                _ if t.host == host => Change::Down {
                    reason: Some("error".into()),
                    message: Some("VM is not running on the host any more".into()),
                },
                _ => continue,
            };
            items.push(Item {
                vm: id.clone(),
                track: t.clone(),
                change,
            });
        }
    }
    if !items.is_empty() {
        let names = HostNames::of(h, &items, e);
        let mut involved: HashSet<String> = names.0.keys().cloned().collect();
        involved.insert(host.clone());
        if let Some(done) = record(h, &host, items, names).await {
            leftovers.extend(done);
        }
        for hid in involved {
            refresh_summary(h, &hid).await;
        }
    }
    for vm in leftovers {
        // Started again since the report, or about to arrive here by migration (the new
        // incoming QEMU has replaced the record reported down): leave it alone.
        if h.runtime
            .lock()
            .unwrap()
            .vms
            .get(&vm)
            .is_some_and(|t| t.host == host || t.migration.as_ref().is_some_and(|m| m.to == host))
        {
            continue;
        }
        let _ = bounded(
            h.config.call_timeout,
            e.agent.vm_operation(&vm, &VmOperation::Destroy),
        )
        .await;
    }
}

fn classify(host: &str, t: &VmTrack, r: &VmRuntime) -> Option<Change> {
    if let Some(m) = &t.migration {
        if host == m.to {
            return match r.state {
                // What the destination still lists from when the VM migrated away from it
                // (before the monitor's clean-up reached it) says nothing of this migration.
                VmState::Down if r.exit_reason.as_deref() == Some("migrated") => None,
                VmState::Up => Some(Change::MigrationDone {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    secs: m.started.elapsed().as_secs(),
                }),
                VmState::Down => Some(Change::MigrationFailed {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    why: r
                        .exit_message
                        .clone()
                        .unwrap_or_else(|| "the destination stopped the VM".into()),
                }),
                _ => None,
            };
        }
        if host == m.from {
            return match r.state {
                VmState::MigratingFrom => None,
                VmState::Down if r.exit_reason.as_deref() == Some("migrated") => None,
                VmState::Down => Some(Change::Down {
                    reason: r.exit_reason.clone(),
                    message: r.exit_message.clone(),
                }),
                VmState::Up if m.started.elapsed() > Duration::from_secs(2) => {
                    Some(Change::MigrationFailed {
                        from: m.from.clone(),
                        to: m.to.clone(),
                        why: r
                            .exit_message
                            .clone()
                            .unwrap_or_else(|| "the source host resumed the VM".into()),
                    })
                }
                _ => None,
            };
        }
    }
    match r.state {
        VmState::Down => Some(Change::Down {
            reason: r.exit_reason.clone(),
            message: r.exit_message.clone(),
        }),
        VmState::Suspended => Some(Change::Suspended),
        s => {
            let status = vm_status(s);
            let consoles_changed = status == "up" && r.consoles != t.consoles;
            (status != t.status || consoles_changed).then(|| Change::Status {
                status: status.to_string(),
                consoles: r.consoles.clone(),
                started_ms: r.started_ms,
            })
        }
    }
}

/// Host names for event texts.
struct HostNames(std::collections::HashMap<String, String>);

impl HostNames {
    fn of(h: &Hosts, items: &[Item], e: &HostEntry) -> HostNames {
        let mut m = std::collections::HashMap::new();
        m.insert(e.id.clone(), e.view().name);
        for it in items {
            let mut ids = vec![it.track.host.clone()];
            if let Change::MigrationDone { from, to, .. }
            | Change::MigrationFailed { from, to, .. } = &it.change
            {
                ids.push(from.clone());
                ids.push(to.clone());
            }
            for id in ids {
                if let (std::collections::hash_map::Entry::Vacant(slot), Some(x)) =
                    (m.entry(id.clone()), h.entry(&id))
                {
                    slot.insert(x.view().name);
                }
            }
        }
        HostNames(m)
    }
    fn name(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_string())
    }
}

/// Writes the changes with their events in one transaction, then updates the runtime view.
/// Returns the VMs to destroy on the reporting host (down ones it still lists).
async fn record(
    h: &Arc<Hosts>,
    host: &str,
    items: Vec<Item>,
    names: HostNames,
) -> Option<Vec<String>> {
    let host_s = host.to_string();
    let r = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                for it in &items {
                    write_one(tx, &host_s, it, &names).await?;
                }
                Ok(items)
            })
        })
        .await;
    let items = match r {
        Ok(items) => items,
        Err(err) => {
            tracing::warn!(error = %err, "cannot store VM state changes; they are retried at the next poll");
            return None;
        }
    };
    let mut destroy = Vec::new();
    let mut rt = h.runtime.lock().unwrap();
    for it in items {
        match it.change {
            Change::Status {
                status, consoles, ..
            } => {
                if let Some(t) = rt.vms.get_mut(&it.vm) {
                    if status == "up" {
                        t.launch = None;
                        t.job = None;
                    }
                    t.status = status;
                    t.consoles = consoles;
                }
            }
            Change::Down { .. } | Change::Suspended => {
                rt.remove(&it.vm);
                if it.track.host == host {
                    destroy.push(it.vm);
                }
            }
            Change::MigrationDone { from, to, .. } => {
                rt.drop_holder(&it.vm, &from);
                if let Some(t) = rt.vms.get_mut(&it.vm) {
                    t.host = to.clone();
                    t.migration = None;
                    t.status = "up".into();
                    t.job = None;
                }
                rt.add_holder(&it.vm, &to);
            }
            Change::MigrationFailed { to, .. } => {
                rt.drop_holder(&it.vm, &to);
                if let Some(t) = rt.vms.get_mut(&it.vm) {
                    t.migration = None;
                    t.status = "up".into();
                    t.job = None;
                }
            }
        }
    }
    Some(destroy)
}

async fn write_one(
    tx: &mut Tx,
    host: &str,
    it: &Item,
    names: &HostNames,
) -> Result<(), StoreError> {
    let t = &it.track;
    let about = About {
        vm_id: Some(&it.vm),
        host_id: Some(&t.host),
        cluster_id: Some(&t.cluster_id),
        ..Default::default()
    };
    let vm_name = &t.name;
    match &it.change {
        Change::Status {
            status,
            consoles,
            started_ms,
        } => {
            let launching = matches!(
                t.status.as_str(),
                "wait_for_launch" | "down" | "unknown" | "restoring_state"
            ) || t.launch.is_some();
            docs::update_in(tx, "vms", &it.vm, |d| {
                set_running(
                    d,
                    status,
                    host,
                    consoles,
                    launching.then_some(started_ms.unwrap_or_else(docs::now_ms)),
                )
            })
            .await?;
            if status == "up" && t.launch.is_some() {
                let text = format!("VM {vm_name} started on Host {}", names.name(host));
                tx.insert_event(&events::event(events::USER_RUN_VM, text, about.clone()))
                    .await?;
            }
            if status == "paused" && t.status != "paused" {
                tx.insert_event(&events::event(
                    events::VM_PAUSED,
                    format!("VM {vm_name} has been paused."),
                    about.clone(),
                ))
                .await?;
            }
            if status == "up" {
                end_job(tx, &t.job, true).await?;
            }
        }
        Change::Down { reason, message } => {
            docs::update_in(tx, "vms", &it.vm, |d| set_down(d, "down")).await?;
            let (code, text) = down_words(vm_name, t, reason.as_deref(), message.as_deref());
            tx.insert_event(&events::event(code, text, about.clone()))
                .await?;
            end_job(tx, &t.job, code == events::VM_DOWN).await?;
        }
        Change::Suspended => {
            docs::update_in(tx, "vms", &it.vm, |d| set_down(d, "suspended")).await?;
            let text = format!("VM {vm_name} on Host {} is suspended.", names.name(&t.host));
            tx.insert_event(&events::event(
                events::USER_SUSPEND_VM_OK,
                text,
                about.clone(),
            ))
            .await?;
            end_job(tx, &t.job, true).await?;
        }
        Change::MigrationDone { from, to, secs } => {
            docs::update_in(tx, "vms", &it.vm, |d| set_running(d, "up", to, &[], None)).await?;
            let text = format!(
                "Migration completed (VM: {vm_name}, Source: {}, Destination: {}, Duration: {secs} seconds, Total: {secs} seconds, Actual downtime: (N/A))",
                names.name(from),
                names.name(to)
            );
            let about = About {
                host_id: Some(to),
                ..about.clone()
            };
            tx.insert_event(&events::event(events::VM_MIGRATION_DONE, text, about))
                .await?;
            end_job(tx, &t.migration.as_ref().and_then(|m| m.job.clone()), true).await?;
        }
        Change::MigrationFailed { from, why, .. } => {
            docs::update_in(tx, "vms", &it.vm, |d| set_running(d, "up", from, &[], None)).await?;
            let text = format!(
                "Migration failed due to an error: {why} (VM: {vm_name}, Source: {}).",
                names.name(from)
            );
            tx.insert_event(&events::event(
                events::VM_MIGRATION_FAILED,
                text,
                about.clone(),
            ))
            .await?;
            end_job(tx, &t.migration.as_ref().and_then(|m| m.job.clone()), false).await?;
        }
    }
    Ok(())
}

async fn end_job(tx: &mut Tx, job: &Option<JobRef>, ok: bool) -> Result<(), StoreError> {
    match job {
        Some(j) => jobs::end(tx, j, ok).await,
        None => Ok(()),
    }
}

/// The down event: oVirt's words for why.
fn down_words(vm: &str, t: &VmTrack, reason: Option<&str>, message: Option<&str>) -> (i64, String) {
    let exit = match (reason, &t.stopping) {
        (_, Some(s)) if s.how == "stop" => "Admin shut down from the engine".to_string(),
        (Some("user"), _) => "Admin shut down from the engine".to_string(),
        (Some("shutdown"), _) | (_, Some(_)) => "User shut down from within the guest".to_string(),
        (Some("crash") | Some("error"), _) => {
            return (
                events::VM_DOWN_ERROR,
                format!(
                    "VM {vm} is down with error. Exit message: {}.",
                    message.unwrap_or("the VM stopped unexpectedly")
                ),
            )
        }
        _ => message.unwrap_or("Down").to_string(),
    };
    (
        events::VM_DOWN,
        format!("VM {vm} is down. Exit message: {exit}"),
    )
}

/// A VM running on `host`: status, host, start time (when it was launching) and the
/// address of its first console.
pub fn set_running(
    d: &mut Value,
    status: &str,
    host: &str,
    consoles: &[ConsoleInfo],
    start_ms: Option<i64>,
) {
    let o = docs::obj(d);
    o.insert("status".into(), status.into());
    o.insert("host".into(), serde_json::json!({ "id": host }));
    if let Some(ms) = start_ms {
        o.insert("start_time".into(), ms.into());
    }
    if let Some(c) = consoles.first() {
        let display = o
            .entry("display")
            .or_insert_with(|| Value::Object(Default::default()));
        let disp = docs::obj(display);
        disp.insert("address".into(), c.address.clone().into());
        disp.insert("port".into(), c.port.to_string().into());
        match c.tls_port {
            Some(p) => disp.insert("secure_port".into(), p.to_string().into()),
            None => disp.remove("secure_port"),
        };
    }
}

/// A VM that holds nothing on a host any more (`down` or `suspended`).
pub fn set_down(d: &mut Value, status: &str) {
    let o = docs::obj(d);
    o.insert("status".into(), status.into());
    o.remove("host");
    o.insert("stop_time".into(), docs::now_ms().into());
    if o.contains_key("run_once") {
        o.insert("run_once".into(), "false".into());
    }
    if let Some(Value::Object(disp)) = o.get_mut("display") {
        for k in ["address", "port", "secure_port"] {
            disp.remove(k);
        }
    }
}

/// Keeps the host's `summary` (VM counts) and `max_scheduling_memory` (what is left for new
/// VMs) in step with what runs on it; written only when they change.
pub async fn refresh_summary(h: &Arc<Hosts>, host: &str) {
    let Some(e) = h.entry(host) else { return };
    let (counts, committed) = {
        let rt = h.runtime.lock().unwrap();
        (rt.summary(host), rt.committed(host).0)
    };
    let free = (e.view.lock().unwrap().memory - committed).max(0);
    let now = (counts.0, counts.1, counts.2, free);
    if e.view.lock().unwrap().summary == now {
        return;
    }
    let id = host.to_string();
    let summary = m::VmSummary {
        active: Some(now.0),
        migrating: Some(now.1),
        total: Some(now.2),
        ..Default::default()
    };
    let doc = to_doc(&summary);
    let r = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                docs::update_in(tx, "hosts", &id, |d| {
                    let o = docs::obj(d);
                    o.insert("summary".into(), doc);
                    o.insert("max_scheduling_memory".into(), free.to_string().into());
                })
                .await
            })
        })
        .await;
    if r.is_ok() {
        e.view.lock().unwrap().summary = now;
    }
}
