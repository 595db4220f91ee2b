//! Disks (floating or attached) and disk attachments. A new disk is `locked` until a host of
//! its storage domain's data center has created its volume (`VolumeOperation::Create`), in a
//! background task that then sets it `ok` (or `illegal`, with an event that says why); copy,
//! move and resize (an update of `provisioned_size`) work the same way.

use super::common::*;
use super::{storage, Adding};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::agent::{self, Storage};
use crate::inventory::events::{self, Who};
use crate::inventory::{crud, index, jobs, messages, tasks, Location};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::task::JoinHandle;
use vireo_agent_proto::VolumeOperation;
use vireo_store::{EventRefs, Filter, Query, Record, Store, Tx};

/// A volume to make for a new disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Create {
    pub domain: String,
    pub disk: String,
    pub volume: String,
    pub format: String,
    pub size: u64,
    pub sparse: bool,
    pub alias: String,
    pub host: String,
    pub vm: Option<String>,
    pub job: Option<String>,
}

/// A volume to copy into a new (or moved) disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Copy {
    pub from_domain: String,
    pub from_disk: String,
    pub from_volume: String,
    pub to_domain: String,
    pub to_disk: String,
    pub to_volume: String,
    pub alias: String,
    pub host: String,
    /// A move: the source volume goes once copied, and the disk keeps its id.
    pub moving: bool,
    pub job: Option<String>,
}

/// A volume to delete once its disk is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gone {
    pub domain: String,
    pub disk: String,
    pub volume: String,
    /// The volumes the disk's snapshots froze, newest first: each is the parent of the one
    /// before it, so they go in this order once `volume` is gone.
    #[serde(default)]
    pub frozen: Vec<String>,
}

pub fn first_domain(doc: &Value) -> Option<String> {
    items(doc, "storage_domains", "storage_domain")
        .first()
        .and_then(|d| str_at(d, "id"))
        .map(str::to_string)
}

/// What a new disk needs (its domain, active, with a host that can make the volume) and
/// oVirt's defaults; the disk document is completed in place.
pub async fn prepare_new_disk(ctx: &Ctx<'_>, doc: &mut Value, id: &str) -> ApiResult<Create> {
    if doc.get("lun_storage").is_some() {
        return Err(ApiError::not_implemented(
            "direct LUN disks are not implemented by vireo yet",
        ));
    }
    let size = int_at(doc, "provisioned_size").or_else(|| int_at(doc, "size"));
    let Some(size) = size else {
        return Err(ApiError::incomplete(
            "Disk [provisionedSize|size] required for add",
        ));
    };
    if size <= 0 {
        return Err(messages::invalid(
            "add",
            "disks",
            "Disk's provisioned size has to be greater than 0.",
        ));
    }
    let sd_ref = items(doc, "storage_domains", "storage_domain")
        .first()
        .map(|v| (*v).clone());
    let Some(sd_ref) = sd_ref else {
        return Err(ApiError::incomplete(
            "Disk [storageDomains.storageDomain.id|name] required for add",
        ));
    };
    let sd = lookup(ctx, "storagedomains", &sd_ref, "storage_domain").await?;
    let sdoc = crud::doc_of(&sd)?;
    if str_at(&sdoc, "type") != Some("data") {
        return Err(messages::invalid(
            "add",
            "disks",
            "Storage Domain type is illegal.",
        ));
    }
    match str_at(&sdoc, "status") {
        Some("active") => {}
        Some(st) => {
            return Err(messages::conflict(
                "add",
                "disks",
                &format!("The relevant Storage Domain's status is {st}."),
            ))
        }
        None => {
            return Err(messages::conflict(
                "add",
                "disks",
                "The relevant Storage Domain is inaccessible.",
            ))
        }
    }
    let format = str_at(doc, "format").unwrap_or("cow").to_string();
    let sparse = bool_at(doc, "sparse").unwrap_or(format == "cow");
    if !sparse && size > int_at(&sdoc, "available").unwrap_or(i64::MAX) {
        return Err(messages::conflict(
            "add",
            "disks",
            &format!(
                "Low disk space on Storage Domain {}.",
                sd.name.clone().unwrap_or_default()
            ),
        ));
    }
    let host = storage::host_for(&ctx.engine.store, &sd.id)
        .await?
        .ok_or_else(|| {
            messages::conflict(
                "add",
                "disks",
                "There is no active Host in the Data Center.",
            )
        })?;
    let name = str_at(doc, "name")
        .or_else(|| str_at(doc, "alias"))
        .map(str::to_string);
    let name = name.unwrap_or_else(|| format!("disk-{}", &id[..8]));
    let volume = uuid::Uuid::new_v4().to_string();
    let profile = where_eq(ctx, "diskprofiles", "storage_domain.id", &sd.id)
        .await?
        .into_iter()
        .next();
    set(doc, "id", json!(id));
    set(doc, "name", json!(name));
    set(doc, "alias", json!(name));
    set(doc, "provisioned_size", s(size));
    if let Value::Object(o) = doc {
        o.remove("size");
    }
    set(doc, "format", json!(format));
    set(doc, "sparse", s(sparse));
    set(doc, "status", json!("locked"));
    set(doc, "actual_size", s(0));
    set(doc, "total_size", s(0));
    set(doc, "storage_type", json!("image"));
    set(doc, "image_id", json!(volume));
    set(
        doc,
        "storage_domains",
        json!({ "storage_domain": [reference(&sd.id)] }),
    );
    default(doc, "content_type", json!("data"));
    default(doc, "shareable", s(false));
    default(doc, "wipe_after_delete", s(false));
    default(doc, "propagate_errors", s(false));
    default(doc, "backup", json!("none"));
    if format == "cow" {
        default(doc, "qcow_version", json!("qcow2_v3"));
    }
    if let Some(p) = profile {
        set(doc, "disk_profile", reference(&p.id));
    }
    // Members of the attachment, not of the disk.
    if let Value::Object(o) = doc {
        for k in [
            "bootable",
            "interface",
            "active",
            "logical_name",
            "read_only",
            "vm",
            "vms",
        ] {
            o.remove(k);
        }
    }
    Ok(Create {
        domain: sd.id,
        disk: id.to_string(),
        volume,
        format,
        size: size as u64,
        sparse,
        alias: name,
        host,
        vm: None,
        job: None,
    })
}

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let id = a.id.clone();
    let c = prepare_new_disk(ctx, &mut a.doc, &id).await?;
    a.notes = json!({ "create": c });
    a.status = StatusCode::ACCEPTED;
    Ok(())
}

pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let alias = str_at(&a.doc, "alias").unwrap_or_default().to_string();
    let job = jobs::begin(
        tx,
        &Who::of(ctx),
        &format!("Adding Disk {alias}"),
        "Executing",
    )
    .await?;
    a.notes["create"]["job"] = json!(job.id);
    Ok(())
}

pub fn after_add(ctx: &Ctx<'_>, a: &Adding) -> Option<JoinHandle<()>> {
    let c: Create = serde_json::from_value(a.notes.get("create")?.clone()).ok()?;
    Some(start_create(ctx, c))
}

fn set_status(doc: &mut Value, status: &str) {
    set(doc, "status", json!(status));
}

/// Updates a disk's document in its own transaction, with an event.
async fn finish_disk(
    store: &Store,
    disk: &str,
    f: impl FnOnce(&mut Value),
    event: Option<vireo_store::NewEvent>,
    job: Option<&str>,
    ok: bool,
) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    if let Some(r) = tx.get("disks", disk).await? {
        let mut d = crud::doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?;
        f(&mut d);
        index::update(&mut tx, &r, &d, None)
            .await
            .map_err(|e| anyhow::anyhow!("{:?}", e))?;
    }
    if let Some(e) = event {
        tx.insert_event(&e).await?;
    }
    if let Some(j) = job {
        jobs::end(&mut tx, j, ok)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
    }
    tx.commit().await?;
    Ok(())
}

fn disk_refs(domain: &str, vm: Option<&str>) -> EventRefs {
    EventRefs {
        storage_domain_id: Some(domain.to_string()),
        vm_id: vm.map(str::to_string),
        ..Default::default()
    }
}

/// Makes the volume of a new disk on a host, then marks the disk `ok` (or `illegal`).
pub fn start_create(ctx: &Ctx<'_>, c: Create) -> JoinHandle<()> {
    let store = ctx.engine.store.clone();
    let who = Who::of(ctx);
    let agent = agent_now(ctx, &c.host);
    let hosts = ctx.engine.hosts.clone();
    tasks::spawn("create disk volume", async move {
        let op = VolumeOperation::Create {
            domain_id: c.domain.clone(),
            disk_id: c.disk.clone(),
            volume_id: c.volume.clone(),
            format: c.format.clone(),
            size: c.size,
            sparse: c.sparse,
        };
        let result = run_op(&store, agent, &[c.domain.as_str()], &op).await;
        match result {
            Ok((info, a)) => {
                let text = match &c.vm {
                    Some(vm) => format!(
                        "The disk {} was successfully added to VM {}.",
                        c.alias,
                        vm_name(&store, vm).await
                    ),
                    None => format!("The disk '{}' was successfully added.", c.alias),
                };
                let code = if c.vm.is_some() { 97 } else { 2021 };
                let e = events::event(
                    &who,
                    code,
                    "normal",
                    text,
                    disk_refs(&c.domain, c.vm.as_deref()),
                );
                finish_disk(
                    &store,
                    &c.disk,
                    |d| {
                        set_status(d, "ok");
                        set(d, "actual_size", s(info.actual_size));
                        set(d, "total_size", s(info.actual_size));
                    },
                    Some(e),
                    c.job.as_deref(),
                    true,
                )
                .await?;
                storage::refresh_space(&store, a.as_ref(), &c.domain).await;
                if let Some(vm) = &c.vm {
                    plug_new_disk(&hosts, &store, vm, &c.disk).await;
                }
            }
            Err(err) => {
                let text = match &c.vm {
                    Some(vm) => format!(
                        "Add-Disk operation failed to complete on VM {}: {}",
                        vm_name(&store, vm).await,
                        err.message
                    ),
                    None => format!("Add-Disk operation failed to complete: {}", err.message),
                };
                let code = if c.vm.is_some() { 98 } else { 2022 };
                let e = events::event(
                    &who,
                    code,
                    "error",
                    text,
                    disk_refs(&c.domain, c.vm.as_deref()),
                );
                finish_disk(
                    &store,
                    &c.disk,
                    |d| set_status(d, "illegal"),
                    Some(e),
                    c.job.as_deref(),
                    false,
                )
                .await?;
            }
        }
        Ok(())
    })
}

/// A new disk attached `active` to a VM that runs now is plugged once its volume exists;
/// when the host refuses, the attachment is left inactive (and the reason logged).
async fn plug_new_disk(hosts: &crate::hosts::Hosts, store: &Store, vm: &str, disk: &str) {
    let rid = crate::bootstrap::sub_record_id(vm, disk);
    let Ok(Some(rec)) = store.get("vms/diskattachments", &rid).await else {
        return;
    };
    let Ok(att) = crud::doc_of(&rec) else { return };
    if bool_at(&att, "active") != Some(true) {
        return;
    }
    if let Err(e) = crate::hosts::devices::plug_disk_with(hosts, vm, &att, true).await {
        tracing::warn!(vm, disk, error = %e.detail, "the new disk could not be plugged");
        let _ = store
            .write(move |tx| {
                Box::pin(async move {
                    crate::hosts::docs::update_in(tx, "vms/diskattachments", &rid, |d| {
                        set(d, "active", s(false));
                    })
                    .await
                    .map(|_| ())
                })
            })
            .await;
    }
}

async fn vm_name(store: &Store, vm: &str) -> String {
    store
        .get("vms", vm)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.name)
        .unwrap_or_default()
}

/// The agent of a host, resolved while the request still holds the engine.
fn agent_now(ctx: &Ctx<'_>, host: &str) -> agent::BoxFuture<'static, ApiResult<Arc<dyn Storage>>> {
    agent::resolver(ctx.engine, host)
}

/// One volume operation on a host: its domains connected there first (harmless when they are).
async fn run_op(
    store: &Store,
    agent: impl std::future::Future<Output = ApiResult<Arc<dyn Storage>>>,
    domains: &[&str],
    op: &VolumeOperation,
) -> Result<(vireo_agent_proto::VolumeInfo, Arc<dyn Storage>), vireo_agent_proto::AgentError> {
    let a = agent.await.map_err(|e| {
        vireo_agent_proto::AgentError::new(vireo_agent_proto::ErrorCode::Unreachable, e.detail)
    })?;
    let mut seen = Vec::new();
    for d in domains {
        if !seen.contains(d) {
            storage::ensure_connected(store, a.as_ref(), d).await?;
            seen.push(d);
        }
    }
    let v = agent::bounded(agent::WORK_TIMEOUT, a.volume_operation(op)).await?;
    Ok((v, a))
}

/// Copies of a template's disks for a new VM (or of a VM's disks for a new template): the
/// new disks and their attachments, `locked` until their volumes are copied.
pub async fn copy_disks_of(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    from_kind: &str,
    from: &str,
    to_kind: &str,
    to: &str,
    owner_ref: &str,
) -> ApiResult<Vec<Copy>> {
    let mut copies = Vec::new();
    for att in tx
        .list(from_kind, &Query::new(Filter::ParentIs(from.to_string())))
        .await?
    {
        let adoc = crud::doc_of(&att)?;
        let Some(src_id) = ref_id(&adoc, "disk") else {
            continue;
        };
        let Some(src) = tx.get("disks", &src_id).await? else {
            continue;
        };
        let sdoc = crud::doc_of(&src)?;
        let Some(domain) = first_domain(&sdoc) else {
            continue;
        };
        let Some(host) = storage::host_for(&ctx.engine.store, &domain).await? else {
            return Err(messages::conflict(
                "add",
                to_kind,
                "There is no active Host in the Data Center of the disks.",
            ));
        };
        let id = uuid::Uuid::new_v4().to_string();
        let volume = uuid::Uuid::new_v4().to_string();
        let mut d = sdoc.clone();
        set(&mut d, "id", json!(id));
        set(&mut d, "image_id", json!(volume));
        set_status(&mut d, "locked");
        if let Value::Object(o) = &mut d {
            o.remove("disk_snapshots");
        }
        index::insert(tx, "disks", &id, &d, None, &[]).await?;
        let mut a = adoc.clone();
        set(&mut a, "id", json!(id));
        set(&mut a, "disk", reference(&id));
        if let Value::Object(o) = &mut a {
            o.remove("vm");
            o.remove("template");
        }
        set(&mut a, owner_ref, reference(to));
        index::insert(
            tx,
            to_kind,
            &crate::bootstrap::sub_record_id(to, &id),
            &a,
            Some(to),
            &[],
        )
        .await?;
        copies.push(Copy {
            from_domain: domain.clone(),
            from_disk: src_id,
            from_volume: str_at(&sdoc, "image_id").unwrap_or_default().to_string(),
            to_domain: domain,
            to_disk: id,
            to_volume: volume,
            alias: str_at(&d, "alias").unwrap_or_default().to_string(),
            host,
            moving: false,
            job: None,
        });
    }
    Ok(copies)
}

pub async fn copy_template_disks(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    template: &str,
    vm: &str,
    _vm_name: &str,
) -> ApiResult<Vec<Copy>> {
    copy_disks_of(
        tx,
        ctx,
        "templates/diskattachments",
        template,
        "vms/diskattachments",
        vm,
        "vm",
    )
    .await
}

/// Copies of the volumes a snapshot froze, as new disks of `vm` (a VM cloned from the
/// snapshot): each new disk is the disk as the snapshot kept it, with a new id, attached as
/// the snapshot's VM has it attached, `locked` until a host has copied the volume.
pub async fn copy_snapshot_disks(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    snapshot: &str,
    vm: &str,
) -> ApiResult<Vec<Copy>> {
    let source_vm = tx
        .get(crate::hosts::snapshots::KIND, snapshot)
        .await?
        .and_then(|r| r.parent_id);
    let mut copies = Vec::new();
    for rec in tx
        .list(
            crate::hosts::snapshots::DISKS,
            &Query::new(Filter::ParentIs(snapshot.to_string())),
        )
        .await?
    {
        let sdoc = crud::doc_of(&rec)?;
        let (Some(src_id), Some(src_volume), Some(domain)) = (
            str_at(&sdoc, "id").map(str::to_string),
            str_at(&sdoc, "image_id").map(str::to_string),
            first_domain(&sdoc),
        ) else {
            continue;
        };
        let Some(host) = storage::host_for(&ctx.engine.store, &domain).await? else {
            return Err(messages::conflict(
                "add",
                "vms",
                "There is no active Host in the Data Center of the disks.",
            ));
        };
        let id = uuid::Uuid::new_v4().to_string();
        let volume = uuid::Uuid::new_v4().to_string();
        let mut d = sdoc.clone();
        set(&mut d, "id", json!(id));
        set(&mut d, "image_id", json!(volume));
        set_status(&mut d, "locked");
        if let Value::Object(o) = &mut d {
            for k in ["disk_snapshots", "snapshot", "vm", "vms"] {
                o.remove(k);
            }
        }
        index::insert(tx, "disks", &id, &d, None, &[]).await?;
        let mut a = match &source_vm {
            Some(v) => tx
                .get(
                    "vms/diskattachments",
                    &crate::bootstrap::sub_record_id(v, &src_id),
                )
                .await?
                .map(|r| crud::doc_of(&r))
                .transpose()?,
            None => None,
        }
        .unwrap_or_else(|| json!({"interface": "virtio", "bootable": "false"}));
        set(&mut a, "id", json!(id));
        set(&mut a, "disk", reference(&id));
        set(&mut a, "active", s(true));
        set(&mut a, "vm", reference(vm));
        index::insert(
            tx,
            "vms/diskattachments",
            &crate::bootstrap::sub_record_id(vm, &id),
            &a,
            Some(vm),
            &[],
        )
        .await?;
        copies.push(Copy {
            from_domain: domain.clone(),
            from_disk: src_id,
            from_volume: src_volume,
            to_domain: domain,
            to_disk: id,
            to_volume: volume,
            alias: str_at(&d, "alias").unwrap_or_default().to_string(),
            host,
            moving: false,
            job: None,
        });
    }
    Ok(copies)
}

/// What to do when all copies of one request are done.
#[derive(Debug, Clone)]
pub enum Then {
    /// A template whose disks were being copied becomes `ok`.
    TemplateOk(String),
}

/// Runs the copies (one task each), then `then`.
pub fn start_copies(
    ctx: &Ctx<'_>,
    who: &Who,
    copies: Vec<Copy>,
    then: Option<Then>,
) -> Option<JoinHandle<()>> {
    if copies.is_empty() && then.is_none() {
        return None;
    }
    let store = ctx.engine.store.clone();
    let mut handles = Vec::new();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<bool>(copies.len().max(1));
    let n = copies.len();
    for c in copies {
        let store = store.clone();
        let who = who.clone();
        let agent = agent_now(ctx, &c.host);
        let done = done_tx.clone();
        handles.push(tasks::spawn("copy disk volume", async move {
            let ok = run_copy(&store, &who, agent, &c).await;
            let _ = done.send(ok).await;
            Ok(())
        }));
    }
    drop(done_tx);
    if let Some(Then::TemplateOk(t)) = then {
        let who = who.clone();
        handles.push(tasks::spawn("finish template", async move {
            let mut all = true;
            for _ in 0..n {
                all &= done_rx.recv().await.unwrap_or(false);
            }
            super::templates::finish(&store, &who, &t, all).await
        }));
    }
    tasks::join_all(handles)
}

async fn run_copy(
    store: &Store,
    who: &Who,
    agent: impl std::future::Future<Output = ApiResult<Arc<dyn Storage>>>,
    c: &Copy,
) -> bool {
    let op = VolumeOperation::Copy {
        from_domain_id: c.from_domain.clone(),
        disk_id: c.from_disk.clone(),
        volume_id: c.from_volume.clone(),
        to_domain_id: c.to_domain.clone(),
        to_disk_id: c.to_disk.clone(),
        to_volume_id: c.to_volume.clone(),
    };
    let result = run_op(
        store,
        agent,
        &[c.from_domain.as_str(), c.to_domain.as_str()],
        &op,
    )
    .await;
    let sd_name = store
        .get("storagedomains", &c.to_domain)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.name)
        .unwrap_or_default();
    let user = &who.user_name;
    let outcome = match result {
        Ok((info, a)) => {
            if c.moving {
                let del = VolumeOperation::Delete {
                    domain_id: c.from_domain.clone(),
                    disk_id: c.from_disk.clone(),
                    volume_id: c.from_volume.clone(),
                };
                if let Err(e) = agent::bounded(agent::WORK_TIMEOUT, a.volume_operation(&del)).await
                {
                    tracing::warn!(disk = %c.from_disk, error = %e, "the moved disk's old volume stays behind");
                }
            }
            let (code, text) = if c.moving {
                (
                    2010,
                    format!(
                        "User {user} finished moving disk {} to domain {sd_name}.",
                        c.alias
                    ),
                )
            } else {
                (
                    2006,
                    format!(
                        "User {user} finished copying disk {} to domain {sd_name}.",
                        c.alias
                    ),
                )
            };
            let e = events::event(who, code, "normal", text, disk_refs(&c.to_domain, None));
            let to_domain = c.to_domain.clone();
            let volume = c.to_volume.clone();
            let r = finish_disk(
                store,
                &c.to_disk,
                |d| {
                    set_status(d, "ok");
                    set(d, "actual_size", s(info.actual_size));
                    set(d, "total_size", s(info.actual_size));
                    set(d, "image_id", json!(volume));
                    set(
                        d,
                        "storage_domains",
                        json!({ "storage_domain": [reference(&to_domain)] }),
                    );
                },
                Some(e),
                c.job.as_deref(),
                true,
            )
            .await;
            storage::refresh_space(store, a.as_ref(), &c.to_domain).await;
            r.is_ok()
        }
        Err(err) => {
            let (code, text) = if c.moving {
                (
                    2011,
                    format!(
                        "User {user} have failed to move disk {} to domain {sd_name}: {}",
                        c.alias, err.message
                    ),
                )
            } else {
                (
                    2007,
                    format!(
                        "User {user} finished with error copying disk {} to domain {sd_name}: {}",
                        c.alias, err.message
                    ),
                )
            };
            let e = events::event(who, code, "error", text, disk_refs(&c.to_domain, None));
            // A failed move leaves the disk where it was; a failed copy leaves an illegal one.
            let moving = c.moving;
            let _ = finish_disk(
                store,
                &c.to_disk,
                |d| set_status(d, if moving { "ok" } else { "illegal" }),
                Some(e),
                c.job.as_deref(),
                false,
            )
            .await;
            false
        }
    };
    outcome
}

pub async fn prepare_update(_ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    if str_at(before, "status") == Some("locked") {
        return Err(ApiError::conflict(
            "Cannot edit Virtual Disk: Disk is locked. Please try again later.",
        ));
    }
    if str_at(before, "status") == Some("illegal") {
        return Err(messages::conflict(
            "edit",
            "disks",
            "Disk is in an illegal state. Disks in an illegal state can only be deleted.",
        ));
    }
    for k in [
        "status",
        "actual_size",
        "total_size",
        "image_id",
        "storage_type",
        "storage_domains",
        "format",
        "sparse",
        "disk_snapshots",
        "qcow_version",
    ] {
        match before.get(k) {
            Some(v) => set(doc, k, v.clone()),
            None => {
                if let Value::Object(o) = doc {
                    o.remove(k);
                }
            }
        }
    }
    // oVirt's disk name is its alias.
    if str_at(doc, "name") != str_at(before, "name") {
        let n = doc.get("name").cloned().unwrap_or(Value::Null);
        set(doc, "alias", n);
    } else if str_at(doc, "alias") != str_at(before, "alias") {
        let n = doc.get("alias").cloned().unwrap_or(Value::Null);
        set(doc, "name", n);
    }
    let (old, new) = (
        int_at(before, "provisioned_size").unwrap_or(0),
        int_at(doc, "provisioned_size").unwrap_or(0),
    );
    if new < old {
        return Err(messages::invalid(
            "edit",
            "disks",
            "New disk size must be larger than the current disk size.",
        ));
    }
    if new > old {
        set_status(doc, "locked");
    }
    Ok(())
}

/// A larger `provisioned_size`: the volume is resized by a host, then the disk is `ok` again.
pub async fn after_update(ctx: &Ctx<'_>, before: &Value, doc: &Value) -> ApiResult<()> {
    let (old, new) = (
        int_at(before, "provisioned_size").unwrap_or(0),
        int_at(doc, "provisioned_size").unwrap_or(0),
    );
    if new <= old {
        return Ok(());
    }
    let Some(domain) = first_domain(doc) else {
        return Ok(());
    };
    let disk = str_at(doc, "id").unwrap_or_default().to_string();
    let volume = str_at(doc, "image_id").unwrap_or_default().to_string();
    let alias = str_at(doc, "alias").unwrap_or_default().to_string();
    let store = ctx.engine.store.clone();
    let who = Who::of(ctx);
    let host = storage::host_for(&store, &domain).await?;
    let agent = host.as_deref().map(|h| agent_now(ctx, h));
    let mut tx = store.begin().await?;
    let gib = new >> 30;
    events::emit(
        &mut tx,
        events::event(
            &who,
            377,
            "normal",
            format!(
                "Extending disk '{alias}' to {gib} GB was initiated by {}.",
                who.user_name
            ),
            disk_refs(&domain, None),
        ),
    )
    .await?;
    let job = jobs::begin(
        &mut tx,
        &who,
        &format!("Extending Disk {alias}"),
        "Executing",
    )
    .await?;
    tx.commit().await?;
    tasks::spawn("resize disk volume", async move {
        let op = VolumeOperation::Resize {
            domain_id: domain.clone(),
            disk_id: disk.clone(),
            volume_id: volume,
            size: new as u64,
        };
        let r = match agent {
            Some(a) => match a.await {
                Ok(a) => agent::bounded(agent::WORK_TIMEOUT, a.volume_operation(&op))
                    .await
                    .map_err(|e| e.message),
                Err(e) => Err(e.detail),
            },
            None => Err("there is no active host in the data center".to_string()),
        };
        let user = who.user_name.clone();
        match r {
            Ok(_) => {
                let e = events::event(&who, 371, "normal", format!("Size of the disk '{alias}' was successfully updated to {gib} GB by {user}."), disk_refs(&domain, None));
                finish_disk(
                    &store,
                    &disk,
                    |d| set_status(d, "ok"),
                    Some(e),
                    Some(&job.id),
                    true,
                )
                .await
            }
            Err(why) => {
                let e = events::event(&who, 374, "error", format!("Failed to extend size of the disk '{alias}' to {gib} GB, User: {user}: {why}"), disk_refs(&domain, None));
                finish_disk(
                    &store,
                    &disk,
                    |d| {
                        set_status(d, "ok");
                        set(d, "provisioned_size", s(old));
                    },
                    Some(e),
                    Some(&job.id),
                    false,
                )
                .await
            }
        }
    });
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    if str_at(doc, "status") == Some("locked") {
        return Err(ApiError::conflict(
            "Cannot remove Virtual Disk: Disk is locked. Please try again later.",
        ));
    }
    let id = str_at(doc, "id").unwrap_or_default();
    if count_eq(ctx, "templates/diskattachments", "disk.id", id).await? > 0 {
        return Err(messages::conflict(
            "remove",
            "disks",
            "The disk belongs to a Template; remove the Template instead.",
        ));
    }
    for att in where_eq(ctx, "vms/diskattachments", "disk.id", id).await? {
        let Some(vm) = att.parent_id.clone() else {
            continue;
        };
        let Some(v) = ctx.engine.store.get("vms", &vm).await? else {
            continue;
        };
        let vdoc = crud::doc_of(&v)?;
        let adoc = crud::doc_of(&att)?;
        if !matches!(str_at(&vdoc, "status"), Some("down") | None)
            && bool_at(&adoc, "active") != Some(false)
        {
            return Err(messages::conflict(
                "remove",
                "disks",
                &format!(
                    "The disk is plugged into the running VM {}.",
                    v.name.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// The disk's attachments go with it; its volume once the removal has committed.
pub async fn delete_disk(tx: &mut Tx, rec: &Record, notes: &mut Value) -> ApiResult<()> {
    let doc = crud::doc_of(rec)?;
    let mut vms = Vec::new();
    for att in tx
        .list(
            "vms/diskattachments",
            &Query::new(Filter::eq("disk.id", rec.id.as_str())),
        )
        .await?
    {
        vms.extend(att.parent_id.clone());
        tx.delete("vms/diskattachments", &att.id).await?;
    }
    crud::cascade(tx, "disks", &rec.id).await?;
    tx.delete("disks", &rec.id).await?;
    let frozen = take_frozen(tx, &rec.id, &vms).await?;
    note_gone(&doc, frozen, notes);
    Ok(())
}

/// The volumes snapshots froze of a disk that goes, newest snapshot first, with the
/// snapshots' records of it (the disk is no longer in those snapshots).
async fn take_frozen(tx: &mut Tx, disk: &str, vms: &[String]) -> ApiResult<Vec<String>> {
    use crate::hosts::snapshots::{DISKS, KIND};
    let mut found: Vec<(i64, String)> = Vec::new();
    for vm in vms {
        for snap in tx
            .list(KIND, &Query::new(Filter::ParentIs(vm.clone())))
            .await?
        {
            let rid = crate::bootstrap::sub_record_id(&snap.id, disk);
            let Some(r) = tx.get(DISKS, &rid).await? else {
                continue;
            };
            let date = int_at(&crud::doc_of(&snap)?, "date").unwrap_or(0);
            if let Some(v) = str_at(&crud::doc_of(&r)?, "image_id") {
                if !found.iter().any(|(_, f)| f == v) {
                    found.push((date, v.to_string()));
                }
            }
            tx.delete(DISKS, &r.id).await?;
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found.into_iter().map(|(_, v)| v).collect())
}

fn note_gone(doc: &Value, frozen: Vec<String>, notes: &mut Value) {
    let (Some(domain), Some(volume)) = (first_domain(doc), str_at(doc, "image_id")) else {
        return;
    };
    let g = Gone {
        domain,
        disk: str_at(doc, "id").unwrap_or_default().to_string(),
        volume: volume.to_string(),
        frozen: frozen.into_iter().filter(|v| v != volume).collect(),
    };
    if !notes.is_object() {
        *notes = json!({});
    }
    let list = notes
        .as_object_mut()
        .map(|o| o.entry("volumes").or_insert_with(|| json!([])));
    if let Some(Value::Array(a)) = list {
        a.push(json!(g));
    }
}

pub async fn in_tx_remove(tx: &mut Tx, doc: &Value, notes: &mut Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    let mut vms = Vec::new();
    for att in tx
        .list(
            "vms/diskattachments",
            &Query::new(Filter::eq("disk.id", id)),
        )
        .await?
    {
        vms.extend(att.parent_id.clone());
        tx.delete("vms/diskattachments", &att.id).await?;
    }
    let frozen = take_frozen(tx, id, &vms).await?;
    note_gone(doc, frozen, notes);
    Ok(())
}

/// Deletes the volumes of removed disks on a host of their domain (best effort: a volume
/// that stays behind is logged, the disk is gone either way).
pub async fn delete_volumes(ctx: &Ctx<'_>, notes: &Value) {
    let gone: Vec<Gone> = notes
        .get("volumes")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    for g in gone {
        let store = ctx.engine.store.clone();
        let Ok(Some(host)) = storage::host_for(&store, &g.domain).await else {
            continue;
        };
        let agent = agent_now(ctx, &host);
        tasks::spawn("delete disk volume", async move {
            let a = agent.await.map_err(|e| anyhow::anyhow!(e.detail))?;
            // The active volume, then the frozen ones down the chain.
            for volume in std::iter::once(&g.volume).chain(g.frozen.iter()) {
                let op = VolumeOperation::Delete {
                    domain_id: g.domain.clone(),
                    disk_id: g.disk.clone(),
                    volume_id: volume.clone(),
                };
                if let Err(e) = agent::bounded(agent::WORK_TIMEOUT, a.volume_operation(&op)).await {
                    tracing::warn!(disk = %g.disk, volume = %volume, error = %e, "a volume of a removed disk stays behind");
                    break;
                }
            }
            storage::refresh_space(&store, a.as_ref(), &g.domain).await;
            Ok(())
        });
    }
}

// ---- disk attachments -------------------------------------------------------------------

async fn vm_of(ctx: &Ctx<'_>, at: &Location) -> ApiResult<(Record, Value)> {
    let vm = at.parent_id().unwrap_or_default();
    let rec = ctx
        .engine
        .store
        .get("vms", vm)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no VM with id '{vm}'")))?;
    let doc = crud::doc_of(&rec)?;
    Ok((rec, doc))
}

async fn has_bootable(ctx: &Ctx<'_>, vm: &str, except: Option<&str>) -> ApiResult<bool> {
    for a in ctx
        .engine
        .store
        .list(
            "vms/diskattachments",
            &Query::new(Filter::ParentIs(vm.to_string())),
        )
        .await?
    {
        let d = crud::doc_of(&a)?;
        if bool_at(&d, "bootable") == Some(true) && str_at(&d, "id") != except {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn prepare_attachment(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let (vm, _vdoc) = vm_of(ctx, at).await?;
    let doc = &mut a.doc;
    default(doc, "bootable", s(false));
    default(doc, "active", s(true));
    default(doc, "pass_discard", s(false));
    default(doc, "read_only", s(false));
    default(doc, "uses_scsi_reservation", s(false));
    if doc.get("interface").is_none() {
        return Err(ApiError::incomplete(
            "DiskAttachment [interface] required for add",
        ));
    }
    if bool_at(doc, "bootable") == Some(true) && has_bootable(ctx, &vm.id, None).await? {
        return Err(messages::conflict(
            "attach",
            "vms/diskattachments",
            "Disk boot option is already in use by another disk.",
        ));
    }
    let disk_ref = doc.get("disk").cloned().unwrap_or(Value::Null);
    let existing = match disk_ref.get("id").and_then(Value::as_str) {
        Some(id) => Some(
            ctx.engine
                .store
                .get("disks", id)
                .await?
                .ok_or_else(|| messages::entity_not_found("Disk", "id", id))?,
        ),
        None => None,
    };
    set(doc, "vm", reference(&vm.id));
    match existing {
        Some(d) => {
            let ddoc = crud::doc_of(&d)?;
            if str_at(&ddoc, "status") == Some("locked") {
                return Err(ApiError::conflict(
                    "Cannot attach Virtual Disk: Disk is locked. Please try again later.",
                ));
            }
            let users = where_eq(ctx, "vms/diskattachments", "disk.id", &d.id).await?;
            if users
                .iter()
                .any(|u| u.parent_id.as_deref() == Some(vm.id.as_str()))
            {
                return Err(messages::conflict(
                    "attach",
                    "vms/diskattachments",
                    "The disk is already attached to VM.",
                ));
            }
            // A disk snapshot (oVirt's backup flow: a snapshot's disk attached to another VM)
            // is attached read-only as the snapshot froze it; AttachDiskToVm skips the
            // shareable check for it.
            let snapshot = str_at(&disk_ref, "snapshot.id")
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            if let Some(snap) = &snapshot {
                let frozen = ctx
                    .engine
                    .store
                    .get(
                        crate::hosts::snapshots::DISKS,
                        &crate::bootstrap::sub_record_id(snap, &d.id),
                    )
                    .await?;
                if frozen.is_none() {
                    return Err(messages::entity_not_found("Snapshot", "id", snap));
                }
            } else if !users.is_empty() && bool_at(&ddoc, "shareable") != Some(true) {
                return Err(messages::conflict(
                    "attach",
                    "vms/diskattachments",
                    "The disk is already attached to another VM and is not shareable.",
                ));
            }
            match &snapshot {
                Some(snap) => {
                    set(
                        doc,
                        "disk",
                        json!({"id": d.id, "snapshot": reference(snap)}),
                    );
                    set(doc, "read_only", s(true));
                }
                None => set(doc, "disk", reference(&d.id)),
            }
            // A running VM gets the disk now (a host failure and nothing is attached).
            if bool_at(doc, "active") == Some(true) {
                crate::hosts::devices::plug_disk(ctx, &vm.id, doc, true).await?;
            }
            a.set_member_id(&d.id);
            a.notes = json!({ "existing": true });
        }
        None => {
            let disk_id = uuid::Uuid::new_v4().to_string();
            let mut ddoc = disk_ref.clone();
            if !ddoc.is_object() {
                return Err(ApiError::incomplete(
                    "DiskAttachment [disk.id|disk.provisioned_size] required for add",
                ));
            }
            let mut c = prepare_new_disk(ctx, &mut ddoc, &disk_id).await?;
            c.vm = Some(vm.id.clone());
            set(doc, "disk", reference(&disk_id));
            a.set_member_id(&disk_id);
            a.notes = json!({ "new_disk": ddoc, "create": c });
            a.quiet = true;
            a.status = StatusCode::ACCEPTED;
        }
    }
    Ok(())
}

pub async fn in_tx_add_attachment(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    at: &Location,
    a: &mut Adding,
) -> ApiResult<()> {
    let Some(ddoc) = a.notes.get("new_disk").cloned() else {
        return Ok(());
    };
    let disk_id = str_at(&ddoc, "id").unwrap_or_default().to_string();
    index::insert(tx, "disks", &disk_id, &ddoc, None, &[])
        .await
        .map_err(|e| index::conflict(e, "add", "disks", &ddoc))?;
    let who = Who::of(ctx);
    let alias = str_at(&ddoc, "alias").unwrap_or_default().to_string();
    let vm = at.parent_id().unwrap_or_default().to_string();
    let vm_name = tx
        .get("vms", &vm)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default();
    let refs = EventRefs {
        vm_id: Some(vm.clone()),
        storage_domain_id: first_domain(&ddoc),
        ..Default::default()
    };
    events::emit(
        tx,
        events::event(
            &who,
            78,
            "normal",
            format!(
                "Add-Disk operation of {alias} was initiated on VM {vm_name} by {}.",
                who.user_name
            ),
            refs,
        ),
    )
    .await?;
    let job = jobs::begin(
        tx,
        &who,
        &format!("Adding Disk {alias} to VM {vm_name}"),
        "Executing",
    )
    .await?;
    a.notes["create"]["job"] = json!(job.id);
    Ok(())
}

pub fn after_add_attachment(ctx: &Ctx<'_>, a: &Adding) -> Option<JoinHandle<()>> {
    let c: Create = serde_json::from_value(a.notes.get("create")?.clone()).ok()?;
    Some(start_create(ctx, c))
}

/// Members of a disk an update of its attachment may change (oVirt's
/// `BackendDiskAttachmentResource.update` runs `UpdateDisk` with them).
const DISK_VIA_ATTACHMENT: &[&str] = &[
    "provisioned_size",
    "name",
    "alias",
    "description",
    "shareable",
    "wipe_after_delete",
    "propagate_errors",
    "sgio",
];

/// The stored disk of an attachment with the incoming disk's members on it, validated as
/// `PUT /disks/{id}` validates (locked, illegal, shrinking); `None` when nothing changes.
async fn disk_change_of_attachment(
    ctx: &Ctx<'_>,
    before: &Value,
    incoming: &Value,
) -> ApiResult<Option<(Record, Value, Value)>> {
    let Some(id) = ref_id(before, "disk") else {
        return Ok(None);
    };
    let Some(rec) = ctx.engine.store.get("disks", &id).await? else {
        return Ok(None);
    };
    let old = crud::doc_of(&rec)?;
    let mut new = old.clone();
    for k in DISK_VIA_ATTACHMENT {
        if let Some(v) = incoming.get(*k).filter(|v| !v.is_null()) {
            set(&mut new, k, v.clone());
        }
    }
    if new == old {
        return Ok(None);
    }
    prepare_update(ctx, &old, &mut new).await?;
    vireo_model::from_json_value::<vireo_model::Disk>(&new).map_err(ApiError::from_codec)?;
    Ok(Some((rec, old, new)))
}

pub async fn prepare_attachment_update(
    ctx: &Ctx<'_>,
    at: &Location,
    before: &Value,
    doc: &mut Value,
    change: &Value,
) -> ApiResult<()> {
    let disk_change = match change.get("disk").filter(|d| d.is_object()) {
        Some(incoming) => disk_change_of_attachment(ctx, before, incoming).await?,
        None => None,
    };
    // The attachment keeps its reference; the disk's own members went to the disk.
    for k in ["disk", "vm"] {
        if let Some(v) = before.get(k) {
            set(doc, k, v.clone());
        }
    }
    let vm = at.parent_id().unwrap_or_default();
    let id = str_at(doc, "id").map(str::to_string);
    let active = bool_at(doc, "active");
    if active.is_some() && active != bool_at(before, "active") {
        if str_at(before, "disk.id").is_some() && active == Some(true) {
            refuse_locked_disk(ctx, before, "activate").await?;
        }
        crate::hosts::devices::plug_disk(ctx, vm, doc, active == Some(true)).await?;
    }
    if bool_at(doc, "bootable") == Some(true)
        && bool_at(before, "bootable") != Some(true)
        && has_bootable(ctx, vm, id.as_deref()).await?
    {
        return Err(messages::conflict(
            "edit",
            "vms/diskattachments",
            "Disk boot option is already in use by another disk.",
        ));
    }
    // Last, once the attachment's own change is known to be acceptable: the disk is updated
    // (and extended by a host) as `PUT /disks/{id}` does it.
    if let Some((rec, old, new)) = disk_change {
        let mut tx = ctx.engine.store.begin().await?;
        index::update(&mut tx, &rec, &new, Some(rec.generation))
            .await
            .map_err(|e| index::conflict(e, "update", "disks", &new))?;
        index::after_write(&mut tx, "disks", &rec.id, Some(&old), &new).await?;
        tx.commit().await?;
        after_update(ctx, &old, &new).await?;
    }
    Ok(())
}

async fn refuse_locked_disk(ctx: &Ctx<'_>, att: &Value, action: &str) -> ApiResult<()> {
    if let Some(d) = ref_id(att, "disk") {
        if let Some(r) = ctx.engine.store.get("disks", &d).await? {
            if str_at(&crud::doc_of(&r)?, "status") != Some("ok") {
                return Err(ApiError::conflict(format!(
                    "Cannot {action} Virtual Disk: Disk is locked. Please try again later."
                )));
            }
        }
    }
    Ok(())
}

pub async fn check_detach(ctx: &Ctx<'_>, at: &Location, doc: &Value) -> ApiResult<()> {
    let (_vm, vdoc) = vm_of(ctx, at).await?;
    if !matches!(str_at(&vdoc, "status"), Some("down") | None)
        && bool_at(doc, "active") != Some(false)
    {
        return Err(messages::conflict(
            "detach",
            "vms/diskattachments",
            "The disk is plugged into the running VM; deactivate it first.",
        ));
    }
    if let Some(d) = ref_id(doc, "disk") {
        if let Some(r) = ctx.engine.store.get("disks", &d).await? {
            if str_at(&crud::doc_of(&r)?, "status") == Some("locked") {
                return Err(ApiError::conflict(
                    "Cannot detach Virtual Disk: Disk is locked. Please try again later.",
                ));
            }
        }
    }
    Ok(())
}

/// An attachment of a disk as one of its snapshots froze it (another VM's disk, read-only).
pub fn is_snapshot_attachment(att: &Value) -> bool {
    str_at(att, "disk.snapshot.id").is_some_and(|s| !s.is_empty())
}

/// `detach_only=false` removes the disk too (oVirt's default is to only detach).
pub async fn in_tx_detach(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    doc: &Value,
    notes: &mut Value,
) -> ApiResult<()> {
    if ctx.params.flag("detach_only")?.unwrap_or(true) || is_snapshot_attachment(doc) {
        return Ok(());
    }
    if let Some(d) = ref_id(doc, "disk") {
        if let Some(r) = tx.get("disks", &d).await? {
            delete_disk(tx, &r, notes).await?;
        }
    }
    Ok(())
}

// ---- actions ------------------------------------------------------------------------------

/// `POST /disks/{id}/copy` and `/move`: a copy on another data domain (a new disk), or the
/// disk itself moved there.
pub async fn action(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    if !matches!(action, "copy" | "move") {
        return Ok(None);
    }
    let id = at.id.clone().unwrap_or_default();
    let rec = ctx
        .engine
        .store
        .get("disks", &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no disk with id '{id}'")))?;
    let doc = crud::doc_of(&rec)?;
    let body: vireo_model::Action = if ctx.body.iter().all(|b| b.is_ascii_whitespace()) {
        Default::default()
    } else {
        ctx.parse_body()?
    };
    let body_doc: Value =
        serde_json::from_slice(&vireo_model::to_json(&body)).map_err(ApiError::internal)?;
    let target_ref = body_doc.get("storage_domain").cloned().ok_or_else(|| {
        ApiError::incomplete(format!(
            "Action [storageDomain.id|name] required for {action}"
        ))
    })?;
    let target = lookup(ctx, "storagedomains", &target_ref, "storage_domain").await?;
    let tdoc = crud::doc_of(&target)?;
    if str_at(&doc, "status") != Some("ok") {
        return Err(messages::conflict(
            action,
            "disks",
            &format!(
                "The disk's status is {}.",
                str_at(&doc, "status").unwrap_or("unknown")
            ),
        ));
    }
    if str_at(&tdoc, "status") != Some("active") || str_at(&tdoc, "type") != Some("data") {
        return Err(messages::conflict(
            action,
            "disks",
            "The target Storage Domain is not an active data domain.",
        ));
    }
    let from_domain = first_domain(&doc).unwrap_or_default();
    if action == "move" && from_domain == target.id {
        return Err(messages::conflict(
            action,
            "disks",
            "The disk is already on that Storage Domain.",
        ));
    }
    let host = storage::host_for(&ctx.engine.store, &from_domain)
        .await?
        .ok_or_else(|| {
            messages::conflict(
                action,
                "disks",
                "There is no active Host in the Data Center.",
            )
        })?;
    let who = Who::of(ctx);
    let alias = str_at(&doc, "alias").unwrap_or_default().to_string();
    let sd_name = target.name.clone().unwrap_or_default();
    let moving = action == "move";
    let (to_disk, to_volume) = if moving {
        (id.clone(), uuid::Uuid::new_v4().to_string())
    } else {
        (
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::new_v4().to_string(),
        )
    };
    let mut tx = ctx.engine.store.begin().await?;
    if moving {
        let mut d = doc.clone();
        set_status(&mut d, "locked");
        index::update(&mut tx, &rec, &d, Some(rec.generation)).await?;
    } else {
        let mut d = doc.clone();
        let name = str_at(&body_doc, "disk.name")
            .or_else(|| str_at(&body_doc, "disk.alias"))
            .unwrap_or(&alias)
            .to_string();
        set(&mut d, "id", json!(to_disk));
        set(&mut d, "name", json!(name));
        set(&mut d, "alias", json!(name));
        set(&mut d, "image_id", json!(to_volume));
        set(
            &mut d,
            "storage_domains",
            json!({ "storage_domain": [reference(&target.id)] }),
        );
        set_status(&mut d, "locked");
        index::insert(&mut tx, "disks", &to_disk, &d, None, &[]).await?;
    }
    let (code, text) = if moving {
        (
            2008,
            format!(
                "User {} moving disk {alias} to domain {sd_name}.",
                who.user_name
            ),
        )
    } else {
        (
            2004,
            format!(
                "User {} is copying disk {alias} to domain {sd_name}.",
                who.user_name
            ),
        )
    };
    events::emit(
        &mut tx,
        events::event(&who, code, "normal", text, disk_refs(&target.id, None)),
    )
    .await?;
    let job = jobs::begin(
        &mut tx,
        &who,
        &format!(
            "{} Disk {alias} to {sd_name}",
            if moving { "Moving" } else { "Copying" }
        ),
        "Executing",
    )
    .await?;
    tx.commit().await?;
    let c = Copy {
        from_domain,
        from_disk: id.clone(),
        from_volume: str_at(&doc, "image_id").unwrap_or_default().to_string(),
        to_domain: target.id.clone(),
        to_disk,
        to_volume,
        alias,
        host,
        moving,
        job: Some(job.id.clone()),
    };
    let handle = start_copies(ctx, &who, vec![c], None);
    if !crate::inventory::actions::is_async(ctx, &body) {
        if let Some(h) = handle {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(300), h).await;
        }
    }
    crate::inventory::actions::done(ctx, body, Some(&job.id)).map(Some)
}
