//! Host actions and rules: activate (maintenance → up), deactivate (→ preparing for
//! maintenance, migrating the running VMs away, then maintenance), refresh (capabilities
//! again), fence (status only: vireo has no power management), remove only where oVirt
//! allows it, and updates that cannot touch what the host reports.

use super::actions::{self, refuse, Target};
use super::agent::bounded;
use super::docs::{self, text};
use super::events::{self, About};
use super::vm_runtime::{self, Who};
use super::{caps, monitor, Hosts};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use vireo_model as m;

struct HostRec {
    id: String,
    name: String,
    status: String,
    cluster_id: String,
}

async fn load(h: &Hosts, id: &str) -> ApiResult<HostRec> {
    let rec = h
        .store
        .get("hosts", id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no host with id '{id}'")))?;
    let doc = docs::parse(&rec);
    Ok(HostRec {
        id: rec.id.clone(),
        name: rec.name.clone().unwrap_or_default(),
        status: text(&doc, &["status"]).unwrap_or("unassigned").to_string(),
        cluster_id: text(&doc, &["cluster", "id"])
            .unwrap_or_default()
            .to_string(),
    })
}

/// Sets the host's status with an event, in one transaction.
async fn set_status(
    h: &Hosts,
    host: &HostRec,
    status: &str,
    code: i64,
    text: String,
    who: Option<&Who>,
) -> ApiResult<()> {
    let (id, cluster, s) = (host.id.clone(), host.cluster_id.clone(), status.to_string());
    let (uid, corr) = (
        who.map(|w| w.user_id.clone()),
        who.and_then(|w| w.correlation_id.clone()),
    );
    h.store
        .write(move |tx| {
            Box::pin(async move {
                docs::update_in(tx, "hosts", &id, |d| {
                    docs::obj(d).insert("status".into(), s.into());
                })
                .await?;
                let about = About {
                    host_id: Some(&id),
                    cluster_id: Some(&cluster),
                    user_id: uid.as_deref(),
                    correlation_id: corr.as_deref(),
                    ..Default::default()
                };
                tx.insert_event(&events::event(code, text, about))
                    .await
                    .map(|_| ())
            })
        })
        .await?;
    if let Some(e) = h.entry(&host.id) {
        e.set_status(status);
    }
    Ok(())
}

fn who(ctx: &Ctx<'_>) -> Who {
    Who {
        user_name: ctx.principal.user_name.clone(),
        user_id: ctx.principal.user_id.clone(),
        correlation_id: ctx.params.correlation_id.clone(),
    }
}

pub async fn activate(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let host = load(&h, id).await?;
    if !matches!(
        host.status.as_str(),
        "maintenance" | "preparing_for_maintenance" | "non_operational" | "non_responsive" | "down"
    ) {
        return Err(refuse("activate", "Host", "Operation can be performed only when Host status is Maintenance, PreparingForMaintenance, NonOperational, NonResponsive, Down."));
    }
    if h.entry(id).is_none() {
        return Err(refuse("activate", "Host", "The host is not installed."));
    }
    let w = who(ctx);
    // As oVirt does: unassigned until monitoring has seen the host answer, then up.
    set_status(
        &h,
        &host,
        "unassigned",
        events::VDS_ACTIVATE,
        format!(
            "Activation of host {} initiated by {}.",
            host.name, w.user_name
        ),
        Some(&w),
    )
    .await?;
    if let Some(e) = h.entry(id) {
        if let Ok(mut ps) = e.poll.try_lock() {
            ps.caps_known = false;
        }
    }
    monitor::poll_soon(&h, id);
    Ok(actions::answer(ctx, a, None, Target::Host(id)))
}

pub async fn deactivate(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let host = load(&h, id).await?;
    match host.status.as_str() {
        "maintenance" => {
            return Err(ApiError::conflict(
                "Cannot switch Host to Maintenance mode. Host is already in Maintenance mode.",
            ))
        }
        "up"
        | "non_operational"
        | "preparing_for_maintenance"
        | "unassigned"
        | "initializing"
        | "connecting"
        | "install_failed"
        | "down" => {}
        "non_responsive" if h.runtime.lock().unwrap().on_host(id).is_empty() => {}
        "non_responsive" => {
            return Err(ApiError::conflict(
                "Cannot switch Host to Maintenance mode.\nHost still has running VMs on it and is in Non Responsive state.",
            ))
        }
        _ => {
            return Err(ApiError::conflict(
                "Cannot switch Host to Maintenance mode, Host is not operational.",
            ))
        }
    }
    let w = who(ctx);
    let vms = h.runtime.lock().unwrap().on_host(id);
    let text = format!(
        "Host {} was switched to Maintenance mode by {}.",
        host.name, w.user_name
    );
    set_status(
        &h,
        &host,
        "preparing_for_maintenance",
        events::USER_VDS_MAINTENANCE_WITHOUT_REASON,
        text,
        Some(&w),
    )
    .await?;
    if vms.is_empty() {
        enter_maintenance(&h, &host).await?;
    } else {
        let (h2, host_id) = (h.clone(), id.to_string());
        h.spawn(async move { evacuate(h2, host_id, w).await });
    }
    Ok(actions::answer(ctx, a, None, Target::Host(id)))
}

/// Moves every VM off a host going to maintenance; the monitor switches the host to
/// maintenance once nothing runs on it.
async fn evacuate(h: Arc<Hosts>, host_id: String, w: Who) {
    let vms = h.runtime.lock().unwrap().on_host(&host_id);
    let mut failed = Vec::new();
    for vm_id in vms {
        let Ok(vm) = vm_runtime::load(&h, &vm_id).await else {
            continue;
        };
        if vm.host.as_deref() != Some(host_id.as_str()) || vm.status == "migrating" {
            continue;
        }
        if let Err(e) =
            vm_runtime::migrate_vm(&h, &vm, None, &w, Some("Host preparing for maintenance")).await
        {
            tracing::warn!(vm = %vm.name, reason = %e.words(), "cannot migrate the VM off a host going to maintenance");
            failed.push(vm.name.clone());
        }
    }
    if !failed.is_empty() {
        if let Ok(host) = load(&h, &host_id).await {
            let text = format!(
                "Host {} cannot change into maintenance mode - not all Vms have been migrated successfully. Consider manual intervention: stopping/migrating Vms running on this host. (User: {}).",
                host.name, w.user_name
            );
            let ev = events::event(
                events::USER_VDS_MAINTENANCE_MIGRATION_FAILED,
                text,
                About {
                    host_id: Some(&host_id),
                    cluster_id: Some(&host.cluster_id),
                    ..Default::default()
                },
            );
            let _ = h
                .store
                .write(move |tx| Box::pin(async move { tx.insert_event(&ev).await.map(|_| ()) }))
                .await;
        }
    }
    check_maintenance(&h, &host_id).await;
}

async fn enter_maintenance(h: &Hosts, host: &HostRec) -> ApiResult<()> {
    let (id, cluster, name) = (host.id.clone(), host.cluster_id.clone(), host.name.clone());
    h.store
        .write(move |tx| {
            Box::pin(async move {
                docs::update_in(tx, "hosts", &id, |d| {
                    docs::obj(d).insert("status".into(), "maintenance".into());
                })
                .await?;
                let about = About {
                    host_id: Some(&id),
                    cluster_id: Some(&cluster),
                    ..Default::default()
                };
                tx.insert_event(&events::event(
                    events::VDS_MAINTENANCE,
                    format!("Host {name} was switched to Maintenance Mode."),
                    about,
                ))
                .await
                .map(|_| ())
            })
        })
        .await?;
    if let Some(e) = h.entry(&host.id) {
        e.set_status("maintenance");
    }
    Ok(())
}

/// A host preparing for maintenance with nothing left on it goes to maintenance (called
/// after every poll of it).
pub async fn check_maintenance(h: &Arc<Hosts>, host_id: &str) {
    let Some(e) = h.entry(host_id) else { return };
    let v = e.view();
    if v.status != "preparing_for_maintenance"
        || !h.runtime.lock().unwrap().on_host(host_id).is_empty()
    {
        return;
    }
    let host = HostRec {
        id: host_id.to_string(),
        name: v.name,
        status: v.status,
        cluster_id: v.cluster_id,
    };
    if let Err(err) = enter_maintenance(h, &host).await {
        tracing::warn!(host = %host.name, error = %err.detail, "cannot switch the host to maintenance");
    }
}

pub async fn refresh(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let a = actions::parse(ctx)?;
    let host = load(&h, id).await?;
    let e = h
        .entry(id)
        .ok_or_else(|| refuse("refresh", "Host", "The host is not installed."))?;
    let c = bounded(h.config.action_timeout, e.agent.capabilities())
        .await
        .map_err(|err| {
            refuse(
                "refresh",
                "Host",
                &format!("The host did not answer: {}", err.message),
            )
        })?;
    let (hid, cluster, name) = (host.id.clone(), host.cluster_id.clone(), host.name.clone());
    let c2 = c.clone();
    let status = h
        .store
        .write(move |tx| {
            Box::pin(async move {
                let s = caps::apply(tx, &hid, &c2).await?;
                let about = About {
                    host_id: Some(&hid),
                    cluster_id: Some(&cluster),
                    ..Default::default()
                };
                tx.insert_event(&events::event(
                    events::HOST_REFRESHED_CAPABILITIES,
                    format!("Successfully refreshed the capabilities of host {name}."),
                    about,
                ))
                .await?;
                Ok(s)
            })
        })
        .await?;
    if let Some(s) = status {
        e.set_status(&s);
    }
    {
        let mut v = e.view.lock().unwrap();
        v.memory = c.memory_bytes as i64;
        v.cpus = caps::cpu_count(&c);
    }
    Ok(actions::answer(ctx, a, None, Target::Host(id)))
}

/// `fence_type=status` tells whether the host answers; vireo has no power management to
/// restart or stop hosts with.
pub async fn fence(ctx: &Ctx<'_>, id: &str) -> ApiResult<Response> {
    let h = ctx.engine.hosts.clone();
    let mut a = actions::parse(ctx)?;
    let _ = load(&h, id).await?;
    let kind = a
        .fence_type
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if kind != "status" {
        return Err(refuse(
            if kind.is_empty() { "fence" } else { &kind },
            "Host",
            "Fence operation failed. Power management is not configured for the host.",
        ));
    }
    let on = match h.entry(id) {
        Some(e) => bounded(h.config.call_timeout, e.agent.list_vms())
            .await
            .is_ok(),
        None => false,
    };
    a.power_management = Some(Box::new(m::PowerManagement {
        status: Some(if on {
            m::PowerManagementStatus::On
        } else {
            m::PowerManagementStatus::Unknown
        }),
        ..Default::default()
    }));
    Ok(actions::answer(ctx, a, None, Target::Host(id)))
}

/// oVirt's `statusLegalForRemove`.
pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let h = ctx.engine.hosts.clone();
    let id = text(doc, &["id"]).unwrap_or_default().to_string();
    let status = text(doc, &["status"]).unwrap_or("unassigned");
    if !matches!(
        status,
        "maintenance"
            | "non_responsive"
            | "down"
            | "unassigned"
            | "install_failed"
            | "pending_approval"
            | "non_operational"
    ) {
        return Err(refuse(
            "remove",
            "Host",
            "Host is operational. Please switch Host to Maintenance mode first.",
        ));
    }
    if !h.runtime.lock().unwrap().on_host(&id).is_empty() {
        return Err(refuse(
            "remove",
            "Host",
            "One or more VMs are still running on this Host.",
        ));
    }
    let name = text(doc, &["name"]).unwrap_or_default().to_string();
    let cluster = text(doc, &["cluster", "id"])
        .unwrap_or_default()
        .to_string();
    let user = ctx.principal.user_name.clone();
    let uid = ctx.principal.user_id.clone();
    // The generic remove deletes the record after this returns: forget the host and say so
    // once it is gone (the event refers to a host that no longer exists, as oVirt's does).
    let h2 = h.clone();
    h.spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match h2.store.get("hosts", &id).await {
                Ok(None) => {
                    h2.forget(&id);
                    let about = About {
                        host_id: Some(&id),
                        cluster_id: Some(&cluster),
                        user_id: Some(&uid),
                        ..Default::default()
                    };
                    let ev = events::event(
                        events::USER_REMOVE_VDS,
                        format!("Host {name} was removed by {user}."),
                        about,
                    );
                    let _ = h2
                        .store
                        .write(move |tx| {
                            Box::pin(async move { tx.insert_event(&ev).await.map(|_| ()) })
                        })
                        .await;
                    return;
                }
                Ok(Some(_)) => continue,
                Err(_) => return,
            }
        }
    });
    Ok(())
}

/// What a client may not change on a host: what the host reports, and (while it is
/// operational) where it is and which cluster it is in.
pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    let status = text(before, &["status"])
        .unwrap_or("unassigned")
        .to_string();
    let o = docs::obj(doc);
    o.remove("root_password");
    for k in [
        "status",
        "status_detail",
        "cpu",
        "memory",
        "max_scheduling_memory",
        "summary",
        "version",
        "libvirt_version",
        "hardware_information",
        "certificate",
        "kdump_status",
        "type",
        "protocol",
        "external_status",
        "numa_supported",
        "auto_numa_status",
        "update_available",
        "reinstallation_required",
        "se_linux",
        "transparent_huge_pages",
    ] {
        match before.get(k) {
            Some(v) => o.insert(k.into(), v.clone()),
            None => o.remove(k),
        };
    }
    let operational = !matches!(
        status.as_str(),
        "maintenance" | "install_failed" | "non_responsive" | "down" | "unassigned"
    );
    let changed = |path: &[&str]| {
        text(before, path) != text(doc, path) || docs::int(before, path) != docs::int(doc, path)
    };
    if operational && (changed(&["address"]) || changed(&["port"])) {
        return Err(refuse(
            "edit",
            "Host",
            "Host parameters cannot be modified while Host is operational.\nPlease switch Host to Maintenance mode first.",
        ));
    }
    if changed(&["cluster", "id"])
        || (doc.get("cluster").is_some() && text(doc, &["cluster", "id"]).is_none())
    {
        if operational {
            return Err(refuse(
                "edit",
                "Host",
                "Host parameters cannot be modified while Host is operational.\nPlease switch Host to Maintenance mode first.",
            ));
        }
        crate::inventory::rules::resolve_ref(ctx, doc, "cluster", "clusters").await?;
    }
    // The monitor's copy (name, cluster, address) follows once the update is stored.
    let h = ctx.engine.hosts.clone();
    if let Some(id) = text(before, &["id"]).map(str::to_string) {
        let h2 = h.clone();
        h.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            reload_entry(&h2, &id).await;
        });
    }
    Ok(())
}

/// Re-reads a host record into the monitor's entry; a new address or port gets a new client.
async fn reload_entry(h: &Arc<Hosts>, id: &str) {
    let Some(e) = h.entry(id) else { return };
    let Ok(Some(rec)) = h.store.get("hosts", id).await else {
        return;
    };
    let doc = docs::parse(&rec);
    let (old_addr, old_port) = {
        let v = e.view();
        (v.address, v.port)
    };
    monitor::remember_capacity(&e, &doc);
    let v = e.view();
    if v.address != old_addr || v.port != old_port {
        if let Ok(agent) = h.connector.connect(&v.address, v.port, id) {
            let fresh = monitor::HostEntry::new(id, &v.name, &v.cluster_id, &v.status, agent);
            monitor::remember_capacity(&fresh, &doc);
            h.table.write().unwrap().insert(id.to_string(), fresh);
        }
    }
}
