//! Devices of running VMs: NICs and disks plugged and unplugged, the CD-ROM's medium.
//!
//! The inventory rules call these before they write: a VM that is down changes in the store
//! only (the next start builds its devices from there); a running VM changes on its host
//! first, and when the host fails the request that failure is the fault and nothing is
//! written.

use super::actions::{self, refuse, Target};
use super::agent::bounded;
use super::docs::{self, text};
use super::monitor::HostEntry;
use super::{vm_runtime, vm_spec, Hosts};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::Location;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use vireo_agent_proto::{VmOperation, VmSpec};

/// Unplugging waits for the guest to let the device go (the agent allows 15 s).
const PLUG_TIMEOUT: Duration = Duration::from_secs(30);

/// The host of a VM whose devices must change there too; `None` when the VM is down (or
/// suspended: nothing runs). Other statuses are in transition: refused, as oVirt does.
async fn host_of(
    h: &Hosts,
    vm_id: &str,
    action: &str,
    noun: &str,
) -> ApiResult<Option<Arc<HostEntry>>> {
    let vm = vm_runtime::load(h, vm_id).await?;
    match vm.status.as_str() {
        "down" | "suspended" | "image_locked" => Ok(None),
        "up" | "paused" => {
            let entry = vm
                .host
                .as_deref()
                .and_then(|id| h.entry(id))
                .ok_or_else(|| refuse(action, noun, "The VM's host is not known."))?;
            Ok(Some(entry))
        }
        s => Err(refuse(
            action,
            noun,
            &format!(
                "VM {} is {s}: devices change only while it is up or down.",
                vm.name
            ),
        )),
    }
}

async fn run(
    entry: &HostEntry,
    vm_id: &str,
    op: VmOperation,
    action: &str,
    noun: &str,
) -> ApiResult<()> {
    bounded(PLUG_TIMEOUT, entry.agent.vm_operation(vm_id, &op))
        .await
        .map(|_| ())
        .map_err(|e| {
            refuse(
                action,
                noun,
                &format!(
                    "Host {} failed the request: {}",
                    entry.view().name,
                    e.message
                ),
            )
        })
}

/// Plugs (or unplugs) a NIC of a running VM; `false` when the VM is down.
pub async fn plug_nic(ctx: &Ctx<'_>, vm_id: &str, nic: &Value, plug: bool) -> ApiResult<bool> {
    let h = &ctx.engine.hosts;
    let action = if plug { "activate" } else { "deactivate" };
    let Some(entry) = host_of(h, vm_id, action, "Interface").await? else {
        return Ok(false);
    };
    let op = if plug {
        VmOperation::HotplugNic {
            nic: vm_spec::nic_spec(&h.store, nic).await?,
        }
    } else {
        VmOperation::HotunplugNic {
            id: text(nic, &["id"]).unwrap_or_default().to_string(),
        }
    };
    run(&entry, vm_id, op, action, "Interface").await?;
    Ok(true)
}

/// Plugs (or unplugs) the disk of an attachment into a running VM; `false` when it is down.
pub async fn plug_disk(ctx: &Ctx<'_>, vm_id: &str, att: &Value, plug: bool) -> ApiResult<bool> {
    plug_disk_with(&ctx.engine.hosts, vm_id, att, plug).await
}

pub async fn plug_disk_with(h: &Hosts, vm_id: &str, att: &Value, plug: bool) -> ApiResult<bool> {
    let action = if plug { "activate" } else { "deactivate" };
    let noun = "Virtual Disk";
    let Some(entry) = host_of(h, vm_id, action, noun).await? else {
        return Ok(false);
    };
    let Some(disk) = vm_spec::disk_spec(&h.store, att).await? else {
        return Err(ApiError::incomplete(
            "DiskAttachment [disk.id] required for activate",
        ));
    };
    let op = if plug {
        let mut spec = VmSpec {
            disks: vec![disk],
            ..Default::default()
        };
        vm_spec::resolve_disk_paths(
            &h.store,
            entry.agent.as_ref(),
            entry.view().simulated,
            h.config.call_timeout,
            &mut spec,
        )
        .await
        .map_err(|why| refuse(action, noun, &why))?;
        VmOperation::HotplugDisk {
            disk: spec.disks.remove(0),
        }
    } else {
        VmOperation::HotunplugDisk { id: disk.id }
    };
    run(&entry, vm_id, op, action, noun).await?;
    Ok(true)
}

/// Changes the medium of a running VM's CD-ROM (`None` ejects); `false` when it is down.
pub async fn change_cdrom(ctx: &Ctx<'_>, vm_id: &str, file: Option<String>) -> ApiResult<bool> {
    let h = &ctx.engine.hosts;
    let Some(entry) = host_of(h, vm_id, "change", "CD-ROM").await? else {
        return Ok(false);
    };
    if file.is_some() && !entry.view().simulated {
        vm_spec::connect_iso_domains(&h.store, entry.agent.as_ref(), PLUG_TIMEOUT).await;
    }
    let op = VmOperation::ChangeCdrom { path: file };
    run(&entry, vm_id, op, "change", "CD-ROM").await?;
    Ok(true)
}

/// `POST /vms/{vm}/nics/{nic}/activate|deactivate`: plugged on the running VM, and the NIC's
/// `plugged` recorded.
pub async fn nic_action(ctx: &Ctx<'_>, at: &Location, plug: bool) -> ApiResult<Response> {
    let a = actions::parse(ctx)?;
    let vm_id = at.parent_id().unwrap_or_default().to_string();
    let nic_id = at.id.clone().unwrap_or_default();
    let store = &ctx.engine.store;
    let rec = store
        .get("vms/nics", &nic_id)
        .await?
        .filter(|r| r.parent_id.as_deref() == Some(vm_id.as_str()))
        .ok_or_else(|| ApiError::not_found(format!("no NIC with id '{nic_id}'")))?;
    let doc = docs::parse(&rec);
    if docs::boolean(&doc, &["plugged"]) != Some(plug) {
        plug_nic(ctx, &vm_id, &doc, plug).await?;
        let id = rec.id.clone();
        store
            .write(move |tx| {
                Box::pin(async move {
                    docs::update_in(tx, "vms/nics", &id, |d| {
                        docs::obj(d).insert("plugged".into(), plug.to_string().into());
                    })
                    .await
                    .map(|_| ())
                })
            })
            .await?;
    }
    Ok(actions::answer(ctx, a, None, Target::Vm(&vm_id)))
}
