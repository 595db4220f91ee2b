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
use crate::api::path::Node;
use crate::api::{render, Ctx};
use crate::inventory::Location;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use vireo_agent_proto::{VmOperation, VmSpec};
use vireo_model as m;
use vireo_model::meta::{self, MethodKind};
use vireo_model::Model;

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
    let op = VmOperation::ChangeCdrom { path: file.clone() };
    run(&entry, vm_id, op, "change", "CD-ROM").await?;
    if let Some(t) = h.runtime.lock().unwrap().vms.get_mut(vm_id) {
        t.cdrom = Some(file);
    }
    Ok(true)
}

/// The medium a running VM has now when it is not its stored CD-ROM's (`Some(None)`:
/// ejected); `None` when the stored CD-ROM is what runs, or the VM does not run.
pub fn current_cdrom(h: &Hosts, vm_id: &str) -> Option<Option<String>> {
    h.runtime.lock().unwrap().vms.get(vm_id)?.cdrom.clone()
}

/// `GET /vms/{id}/cdroms[/{cd}]?current=true`: the CD-ROM with the medium of the running VM
/// (oVirt's `BackendVmCdromResource`: `vm.getCurrentCd()`). `None` (the stored CD-ROM,
/// served by the inventory) without `current`, or when the run's medium is the stored one.
pub async fn current_cdroms(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    let n = &ctx.resolved.nodes;
    let (vm_id, cd) = match (n.first(), n.get(1), n.get(2), n.get(3)) {
        (
            Some(Node::Locate { segment: a, .. }),
            Some(Node::Item { id, .. }),
            Some(Node::Locate { segment: c, .. }),
            rest,
        ) if a == "vms" && c == "cdroms" && n.len() <= 4 => {
            let cd = match rest {
                Some(Node::Item { id, .. }) => Some(id.clone()),
                _ => None,
            };
            (id.clone(), cd)
        }
        _ => return Ok(None),
    };
    match (op, &cd) {
        (MethodKind::List, None) | (MethodKind::Get, Some(_)) => {}
        _ => return Ok(None),
    }
    if ctx.params.flag("current")? != Some(true) {
        return Ok(None);
    }
    let Some(medium) = current_cdrom(&ctx.engine.hosts, &vm_id) else {
        return Ok(None);
    };
    let list_href = format!("/ovirt-engine/api/vms/{vm_id}/cdroms");
    let item_svc = match &cd {
        Some(_) => Some(ctx.resolved.service()),
        None => ctx.resolved.service().item.map(meta::service),
    };
    let recs = ctx
        .engine
        .store
        .list(
            "vms/cdroms",
            &vireo_store::Query::new(vireo_store::Filter::ParentIs(vm_id.clone())),
        )
        .await?;
    let mut items = Vec::new();
    for r in &recs {
        let mut d = docs::parse(r);
        let id = text(&d, &["id"]).unwrap_or_default().to_string();
        if cd.as_ref().is_some_and(|c| c != &id) {
            continue;
        }
        match &medium {
            Some(f) => d["file"] = json!({ "id": f }),
            None => {
                docs::obj(&mut d).remove("file");
            }
        }
        d["vm"] = json!({ "id": vm_id, "href": format!("/ovirt-engine/api/vms/{vm_id}") });
        render::decorate(
            &mut d,
            m::Cdrom::meta(),
            &format!("{list_href}/{id}"),
            item_svc,
        );
        items.push(
            vireo_model::from_json_value::<m::Cdrom>(&d)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        );
    }
    if cd.is_some() {
        let one = items
            .pop()
            .ok_or_else(|| ApiError::not_found("no such CD-ROM"))?;
        return Ok(Some(ctx.ok(StatusCode::OK, &one)));
    }
    let mut res = (StatusCode::OK, ctx.format.render_list(&items)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, ctx.format.content_type());
    Ok(Some(res))
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
