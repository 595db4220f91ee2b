//! VM snapshots on the hosts' volume chains, as oVirt keeps them.
//!
//! A disk's `image_id` is its active volume. Taking a snapshot puts a qcow2 overlay on top of
//! each disk's active volume (`VolumeOperation::Snapshot`; with the VM running the host
//! switches QEMU onto it) and the overlay becomes the disk's `image_id`; the snapshot keeps
//! the volume it froze, one `vms/snapshots/disks` record per disk. So a disk's chain is the
//! volumes of its snapshots oldest first, then its `image_id`.
//!
//! - delete: the frozen volume's child (the next snapshot's volume, or the active one) is
//!   merged into it (`VolumeOperation::Merge`: qemu-img commit cold, block-commit live), and
//!   whatever named the child names the frozen volume;
//! - preview (VM down): a new overlay on the snapshot's volume becomes active, and the state
//!   before is kept as the "Active VM before the preview" snapshot; undo drops the overlay
//!   and goes back; commit keeps it and deletes the state before and the snapshots after;
//!   restore is preview and commit in one.
//!
//! Every host call happens before the store changes, so a host failure leaves the store as
//! it was. Volume work goes to the VM's host while it runs (live), else to the storage host
//! of the disk's domain.

use super::actions::{self, refuse, Target};
use super::vm_runtime::{self, VmRec};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::agent::{self as sagent, Storage};
use crate::inventory::events::{self as ievents, Who};
use crate::inventory::rules::common::*;
use crate::inventory::rules::{storage, Adding};
use crate::inventory::{doc_of, index, Location};
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use vireo_agent_proto::VolumeOperation;
use vireo_store::{EventRefs, Filter, Query, Record, Store, Tx};

pub const KIND: &str = "vms/snapshots";
pub const DISKS: &str = "vms/snapshots/disks";
const ACTIVE: &str = "Active VM";
const BEFORE_PREVIEW: &str = "Active VM before the preview";

/// A snapshot record with what the rules look at.
#[derive(Clone)]
struct Snap {
    rec: Record,
    doc: Value,
}

impl Snap {
    fn id(&self) -> &str {
        &self.rec.id
    }
    fn kind(&self) -> &str {
        str_at(&self.doc, "snapshot_type").unwrap_or("regular")
    }
    fn status(&self) -> &str {
        str_at(&self.doc, "snapshot_status").unwrap_or("ok")
    }
    fn date(&self) -> i64 {
        int_at(&self.doc, "date").unwrap_or(0)
    }
    fn description(&self) -> String {
        str_at(&self.doc, "description")
            .unwrap_or_default()
            .to_string()
    }
}

/// A disk of the VM now: its domain and active volume.
#[derive(Clone)]
struct DiskNow {
    id: String,
    domain: String,
    volume: String,
    alias: String,
    status: String,
}

fn disk_now(rec: &Record) -> ApiResult<DiskNow> {
    let doc = doc_of(rec)?;
    Ok(DiskNow {
        id: rec.id.clone(),
        domain: crate::inventory::rules::disks::first_domain(&doc).unwrap_or_default(),
        volume: str_at(&doc, "image_id").unwrap_or(&rec.id).to_string(),
        alias: str_at(&doc, "alias")
            .or_else(|| str_at(&doc, "name"))
            .unwrap_or_default()
            .to_string(),
        status: str_at(&doc, "status").unwrap_or("ok").to_string(),
    })
}

/// The VM's snapshots, oldest first.
async fn snapshots_of(store: &Store, vm: &str) -> ApiResult<Vec<Snap>> {
    let mut out = Vec::new();
    for rec in store
        .list(KIND, &Query::new(Filter::ParentIs(vm.to_string())))
        .await?
    {
        let doc = doc_of(&rec)?;
        out.push(Snap { rec, doc });
    }
    out.sort_by(|a, b| a.date().cmp(&b.date()).then(a.id().cmp(b.id())));
    Ok(out)
}

/// The volumes a snapshot froze: (disk id, volume id).
async fn frozen(store: &Store, snap: &str) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for rec in store
        .list(DISKS, &Query::new(Filter::ParentIs(snap.to_string())))
        .await?
    {
        let doc = doc_of(&rec)?;
        if let (Some(d), Some(v)) = (str_at(&doc, "id"), str_at(&doc, "image_id")) {
            out.push((d.to_string(), v.to_string()));
        }
    }
    Ok(out)
}

async fn vm_disks(store: &Store, vm: &str) -> ApiResult<Vec<DiskNow>> {
    let mut out = Vec::new();
    for att in store
        .list(
            "vms/diskattachments",
            &Query::new(Filter::ParentIs(vm.to_string())),
        )
        .await?
    {
        let adoc = doc_of(&att)?;
        // Another VM's disk attached as a snapshot froze it is no disk of this VM's chains.
        if crate::inventory::rules::disks::is_snapshot_attachment(&adoc) {
            continue;
        }
        let Some(id) = ref_id(&adoc, "disk").or_else(|| str_at(&adoc, "id").map(str::to_string))
        else {
            continue;
        };
        if let Some(rec) = store.get("disks", &id).await? {
            out.push(disk_now(&rec)?);
        }
    }
    Ok(out)
}

fn is_running(vm: &VmRec) -> bool {
    !matches!(vm.status.as_str(), "down" | "suspended" | "image_locked")
}

/// The agent that works on `domain` for `vm`: the VM's host while it runs on a real host
/// (the volumes are open there), else the domain's storage host.
async fn agent_for(
    ctx: &Ctx<'_>,
    vm: &VmRec,
    domain: &str,
    action: &str,
) -> ApiResult<Arc<dyn Storage>> {
    let h = &ctx.engine.hosts;
    let running_host = vm
        .host
        .clone()
        .filter(|_| is_running(vm))
        .filter(|host| h.entry(host).map(|e| !e.view().simulated).unwrap_or(false));
    let host = match running_host {
        Some(x) => x,
        None => storage::host_for(&ctx.engine.store, domain)
            .await?
            .ok_or_else(|| {
                refuse(
                    action,
                    "Snapshot",
                    "There is no active Host in the Data Center.",
                )
            })?,
    };
    let a = sagent::storage_for(ctx.engine, &host).await?;
    storage::ensure_connected(&ctx.engine.store, a.as_ref(), domain)
        .await
        .map_err(|e| refuse(action, "Snapshot", &e.message))?;
    Ok(a)
}

async fn vol_op(a: &dyn Storage, op: &VolumeOperation, action: &str) -> ApiResult<()> {
    sagent::bounded(sagent::WORK_TIMEOUT, a.volume_operation(op))
        .await
        .map(|_| ())
        .map_err(|e| {
            refuse(
                action,
                "Snapshot",
                &format!("The host failed the request: {}", e.message),
            )
        })
}

fn refs(vm: &str) -> EventRefs {
    EventRefs {
        vm_id: Some(vm.to_string()),
        ..Default::default()
    }
}

async fn set_disk_volume(tx: &mut Tx, disk: &str, volume: &str) -> ApiResult<()> {
    if let Some(rec) = tx.get("disks", disk).await? {
        let mut doc = doc_of(&rec)?;
        set(&mut doc, "image_id", json!(volume));
        index::update(tx, &rec, &doc, None).await?;
    }
    Ok(())
}

/// Records that `snap` froze `volume` of `disk` (a copy of the disk's document).
async fn add_frozen(tx: &mut Tx, snap: &str, disk: &str, volume: &str) -> ApiResult<()> {
    let Some(rec) = tx.get("disks", disk).await? else {
        return Ok(());
    };
    let mut doc = doc_of(&rec)?;
    set(&mut doc, "image_id", json!(volume));
    set(&mut doc, "snapshot", reference(snap));
    if let Value::Object(o) = &mut doc {
        o.remove("disk_profile");
    }
    let rid = crate::bootstrap::sub_record_id(snap, disk);
    index::insert(tx, DISKS, &rid, &doc, Some(snap), &[]).await?;
    Ok(())
}

async fn delete_snapshot(tx: &mut Tx, snap: &str) -> ApiResult<()> {
    for r in tx
        .list(DISKS, &Query::new(Filter::ParentIs(snap.to_string())))
        .await?
    {
        tx.delete(DISKS, &r.id).await?;
    }
    tx.delete(KIND, snap).await?;
    Ok(())
}

async fn set_status(tx: &mut Tx, snap: &str, status: &str) -> ApiResult<()> {
    if let Some(rec) = tx.get(KIND, snap).await? {
        let mut doc = doc_of(&rec)?;
        set(&mut doc, "snapshot_status", json!(status));
        index::update(tx, &rec, &doc, None).await?;
    }
    Ok(())
}

fn snapshot_doc(id: &str, vm: &str, description: &str, kind: &str) -> Value {
    json!({
        "id": id,
        "description": description,
        "snapshot_type": kind,
        "snapshot_status": "ok",
        "date": vireo_store::now_ms(),
        "persist_memorystate": "false",
        "vm": reference(vm),
    })
}

// ---- create ------------------------------------------------------------------------------

/// `POST /vms/{vm}/snapshots`: the overlays are made (and a running VM switched onto them)
/// before anything is stored; `in_tx_add` records them.
pub async fn prepare_add(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let vm_id = at.parent_id().unwrap_or_default().to_string();
    let vm = vm_runtime::load(&ctx.engine.hosts, &vm_id).await?;
    let description = str_at(&a.doc, "description")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::incomplete("Snapshot [description] required for add"))?
        .to_string();
    if !matches!(vm.status.as_str(), "down" | "up" | "paused") {
        return Err(refuse(
            "create",
            "Snapshot",
            &format!("VM {} is {}.", vm.name, vm.status),
        ));
    }
    let store = &ctx.engine.store;
    if snapshots_of(store, &vm_id)
        .await?
        .iter()
        .any(|s| s.status() == "in_preview")
    {
        return Err(refuse("create", "Snapshot", "VM is previewing a Snapshot."));
    }
    // `disk_attachments` chooses the disks; all of the VM's by default.
    let wanted: Vec<String> = items(&a.doc, "disk_attachments", "disk_attachment")
        .iter()
        .filter_map(|d| ref_id(d, "disk").or_else(|| str_at(d, "id").map(str::to_string)))
        .collect();
    let disks: Vec<DiskNow> = vm_disks(store, &vm_id)
        .await?
        .into_iter()
        .filter(|d| wanted.is_empty() || wanted.contains(&d.id))
        .collect();
    if let Some(d) = disks.iter().find(|d| d.status != "ok") {
        return Err(refuse(
            "create",
            "Snapshot",
            &format!("Disk {} is {}. Please try again later.", d.alias, d.status),
        ));
    }
    let live = is_running(&vm);
    let mut made: Vec<(DiskNow, String, Arc<dyn Storage>)> = Vec::new();
    for d in &disks {
        let new = uuid::Uuid::new_v4().to_string();
        let step = async {
            let agent = agent_for(ctx, &vm, &d.domain, "create").await?;
            let op = VolumeOperation::Snapshot {
                domain_id: d.domain.clone(),
                disk_id: d.id.clone(),
                volume_id: new.clone(),
                parent_volume_id: d.volume.clone(),
            };
            vol_op(agent.as_ref(), &op, "create").await?;
            Ok::<_, ApiError>(agent)
        };
        match step.await {
            Ok(agent) => made.push((d.clone(), new, agent)),
            Err(e) => {
                // Undo what was made: a running VM's overlays are merged back into it.
                for (d, v, agent) in made {
                    let op = if live {
                        VolumeOperation::Merge {
                            domain_id: d.domain.clone(),
                            disk_id: d.id.clone(),
                            volume_id: v,
                        }
                    } else {
                        VolumeOperation::Delete {
                            domain_id: d.domain.clone(),
                            disk_id: d.id.clone(),
                            volume_id: v,
                        }
                    };
                    let _ = vol_op(agent.as_ref(), &op, "create").await;
                }
                return Err(e);
            }
        }
    }
    let id = a.id.clone();
    a.doc = snapshot_doc(&id, &vm_id, &description, "regular");
    // The VM's configuration as it is now (a Snapshot is a Vm in oVirt's model): what a VM
    // cloned from this snapshot is made of.
    if let Some(v) = store.get("vms", &vm_id).await? {
        let vdoc = doc_of(&v)?;
        for k in crate::inventory::rules::vms::CONFIGURATION {
            if let Some(val) = vdoc.get(*k) {
                set(&mut a.doc, k, val.clone());
            }
        }
    }
    a.notes = json!({
        "vm_name": vm.name,
        "disks": made.iter().map(|(d, v, _)| json!({"disk": d.id, "frozen": d.volume, "active": v})).collect::<Vec<_>>(),
    });
    a.quiet = true;
    Ok(())
}

pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let vm = a.parent.clone().unwrap_or_default();
    let has_active = tx
        .list(KIND, &Query::new(Filter::ParentIs(vm.clone())))
        .await?
        .iter()
        .any(|r| {
            doc_of(r)
                .map(|d| str_at(&d, "snapshot_type") == Some("active"))
                .unwrap_or(false)
        });
    if !has_active {
        // oVirt lists the VM's current state as the "Active VM" snapshot.
        let id = uuid::Uuid::new_v4().to_string();
        let doc = snapshot_doc(&id, &vm, ACTIVE, "active");
        index::insert(tx, KIND, &id, &doc, Some(&vm), &[]).await?;
    }
    let disks = a.notes["disks"].as_array().cloned().unwrap_or_default();
    for d in &disks {
        let (disk, frozen_vol, active) = (
            str_at(d, "disk").unwrap_or_default(),
            str_at(d, "frozen").unwrap_or_default(),
            str_at(d, "active").unwrap_or_default(),
        );
        add_frozen(tx, &a.id, disk, frozen_vol).await?;
        set_disk_volume(tx, disk, active).await?;
    }
    let who = Who::of(ctx);
    let (desc, vm_name) = (
        str_at(&a.doc, "description")
            .unwrap_or_default()
            .to_string(),
        str_at(&a.notes, "vm_name").unwrap_or_default().to_string(),
    );
    ievents::emit(
        tx,
        ievents::event(
            &who,
            45,
            "normal",
            format!(
                "Snapshot '{desc}' creation for VM '{vm_name}' was initiated by {}.",
                who.user_name
            ),
            refs(&vm),
        ),
    )
    .await?;
    ievents::emit(
        tx,
        ievents::event(
            &who,
            68,
            "normal",
            format!("Snapshot '{desc}' creation for VM '{vm_name}' has been completed."),
            refs(&vm),
        ),
    )
    .await?;
    Ok(())
}

// ---- delete ------------------------------------------------------------------------------

/// `DELETE /vms/{vm}/snapshots/{id}`: each frozen volume takes in its child (merge), then
/// what named the child names the frozen volume; `in_tx_remove` drops the records.
pub async fn check_remove(ctx: &Ctx<'_>, at: &Location, doc: &Value) -> ApiResult<()> {
    let vm_id = at.parent_id().unwrap_or_default().to_string();
    let snap_id = str_at(doc, "id").unwrap_or_default().to_string();
    if str_at(doc, "snapshot_type") == Some("active") {
        return Err(refuse(
            "remove",
            "Snapshot",
            "The Active VM snapshot cannot be removed.",
        ));
    }
    let vm = vm_runtime::load(&ctx.engine.hosts, &vm_id).await?;
    if !matches!(vm.status.as_str(), "down" | "up" | "paused") {
        return Err(refuse(
            "remove",
            "Snapshot",
            &format!("VM {} is {}.", vm.name, vm.status),
        ));
    }
    let store = &ctx.engine.store;
    let snaps = snapshots_of(store, &vm_id).await?;
    if snaps
        .iter()
        .any(|s| s.status() == "in_preview" || s.kind() == "preview")
    {
        return Err(refuse("remove", "Snapshot", "VM is previewing a Snapshot."));
    }
    let Some(pos) = snaps.iter().position(|s| s.id() == snap_id) else {
        return Ok(());
    };
    let newer: Vec<&Snap> = snaps[pos + 1..]
        .iter()
        .filter(|s| s.kind() == "regular")
        .collect();
    let disks = vm_disks(store, &vm_id).await?;
    // (disk, frozen volume, the child merged into it, the snapshot that named the child)
    let mut plan: Vec<(DiskNow, String, String, Option<String>)> = Vec::new();
    for (disk, vol) in frozen(store, &snap_id).await? {
        let mut child = None;
        for s in &newer {
            if let Some((_, v)) = frozen(store, s.id())
                .await?
                .into_iter()
                .find(|(d, _)| *d == disk)
            {
                child = Some((v, Some(s.id().to_string())));
                break;
            }
        }
        // A disk no longer attached keeps its chain as it is.
        let Some(d) = disks.iter().find(|d| d.id == disk).cloned() else {
            continue;
        };
        let (child, named_by) = child.unwrap_or_else(|| (d.volume.clone(), None));
        if child == vol {
            continue;
        }
        plan.push((d, vol, child, named_by));
    }
    // Each merged disk is recorded at once: should a later one fail, the snapshot keeps
    // only the disks it still holds, and the store matches the chains.
    for (d, vol, child, named_by) in &plan {
        let agent = agent_for(ctx, &vm, &d.domain, "remove").await?;
        let op = VolumeOperation::Merge {
            domain_id: d.domain.clone(),
            disk_id: d.id.clone(),
            volume_id: child.clone(),
        };
        vol_op(agent.as_ref(), &op, "remove").await?;
        let mut tx = store.begin().await?;
        match named_by {
            Some(s) => {
                let rid = crate::bootstrap::sub_record_id(s, &d.id);
                if let Some(rec) = tx.get(DISKS, &rid).await? {
                    let mut sd = doc_of(&rec)?;
                    set(&mut sd, "image_id", json!(vol));
                    index::update(&mut tx, &rec, &sd, None).await?;
                }
            }
            None => set_disk_volume(&mut tx, &d.id, vol).await?,
        }
        tx.delete(DISKS, &crate::bootstrap::sub_record_id(&snap_id, &d.id))
            .await?;
        tx.commit().await?;
    }
    let who = Who::of(ctx);
    let desc = str_at(doc, "description").unwrap_or_default().to_string();
    let vm_name = vm.name.clone();
    let mut tx = store.begin().await?;
    ievents::emit(
        &mut tx,
        ievents::event(
            &who,
            342,
            "normal",
            format!(
                "Snapshot '{desc}' deletion for VM '{vm_name}' was initiated by {}.",
                who.user_name
            ),
            refs(&vm_id),
        ),
    )
    .await?;
    ievents::emit(
        &mut tx,
        ievents::event(
            &who,
            356,
            "normal",
            format!("Snapshot '{desc}' deletion for VM '{vm_name}' has been completed."),
            refs(&vm_id),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn in_tx_remove(tx: &mut Tx, doc: &Value) -> ApiResult<()> {
    let snap = str_at(doc, "id").unwrap_or_default().to_string();
    for r in tx.list(DISKS, &Query::new(Filter::ParentIs(snap))).await? {
        tx.delete(DISKS, &r.id).await?;
    }
    Ok(())
}

// ---- preview, undo, commit, restore ------------------------------------------------------

async fn down_vm(ctx: &Ctx<'_>, vm_id: &str, action: &str) -> ApiResult<VmRec> {
    let vm = vm_runtime::load(&ctx.engine.hosts, vm_id).await?;
    if vm.status != "down" {
        return Err(refuse(action, "Snapshot", "VM is not down."));
    }
    Ok(vm)
}

/// Puts a new overlay on the snapshot's volumes and makes it the disks' active one.
async fn preview_of(ctx: &Ctx<'_>, vm: &VmRec, snap_id: &str, action: &str) -> ApiResult<()> {
    let store = &ctx.engine.store;
    let snaps = snapshots_of(store, &vm.id).await?;
    if snaps.iter().any(|s| s.status() == "in_preview") {
        return Err(refuse(action, "Snapshot", "VM is previewing a Snapshot."));
    }
    let snap = snaps
        .iter()
        .find(|s| s.id() == snap_id)
        .ok_or_else(|| ApiError::not_found(format!("no snapshot with id '{snap_id}'")))?;
    if snap.kind() != "regular" || snap.status() != "ok" {
        return Err(refuse(
            action,
            "Snapshot",
            "Only a regular snapshot that is OK can be previewed.",
        ));
    }
    let disks = vm_disks(store, &vm.id).await?;
    let mut made: Vec<(DiskNow, String)> = Vec::new();
    for (disk, vol) in frozen(store, snap_id).await? {
        let Some(d) = disks.iter().find(|d| d.id == disk).cloned() else {
            continue;
        };
        let new = uuid::Uuid::new_v4().to_string();
        let agent = agent_for(ctx, vm, &d.domain, action).await?;
        let op = VolumeOperation::Snapshot {
            domain_id: d.domain.clone(),
            disk_id: d.id.clone(),
            volume_id: new.clone(),
            parent_volume_id: vol,
        };
        if let Err(e) = vol_op(agent.as_ref(), &op, action).await {
            for (d, v) in made {
                if let Ok(a) = agent_for(ctx, vm, &d.domain, action).await {
                    let op = VolumeOperation::Delete {
                        domain_id: d.domain.clone(),
                        disk_id: d.id.clone(),
                        volume_id: v,
                    };
                    let _ = vol_op(a.as_ref(), &op, action).await;
                }
            }
            return Err(e);
        }
        made.push((d, new));
    }
    let who = Who::of(ctx);
    let text = format!(
        "Snapshot-Preview {} for VM {} has been completed.",
        snap.description(),
        vm.name
    );
    let mut tx = store.begin().await?;
    let before = uuid::Uuid::new_v4().to_string();
    let doc = snapshot_doc(&before, &vm.id, BEFORE_PREVIEW, "preview");
    index::insert(&mut tx, KIND, &before, &doc, Some(&vm.id), &[]).await?;
    for (d, new) in &made {
        add_frozen(&mut tx, &before, &d.id, &d.volume).await?;
        set_disk_volume(&mut tx, &d.id, new).await?;
    }
    set_status(&mut tx, snap_id, "in_preview").await?;
    ievents::emit(
        &mut tx,
        ievents::event(&who, 46, "normal", text, refs(&vm.id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The snapshot in preview and the state before it.
async fn in_preview(store: &Store, vm: &str, action: &str) -> ApiResult<(Snap, Snap, Vec<Snap>)> {
    let snaps = snapshots_of(store, vm).await?;
    let shown = snaps.iter().find(|s| s.status() == "in_preview").cloned();
    let before = snaps.iter().find(|s| s.kind() == "preview").cloned();
    match (shown, before) {
        (Some(s), Some(b)) => Ok((s, b, snaps)),
        _ => Err(refuse(
            action,
            "Snapshot",
            "VM is not previewing a Snapshot.",
        )),
    }
}

/// Back to the state before the preview: the preview's overlays go.
async fn undo_of(ctx: &Ctx<'_>, vm: &VmRec) -> ApiResult<()> {
    let store = &ctx.engine.store;
    let (shown, before, _) = in_preview(store, &vm.id, "undo").await?;
    let disks = vm_disks(store, &vm.id).await?;
    let back = frozen(store, before.id()).await?;
    for (disk, _) in &back {
        let Some(d) = disks.iter().find(|d| d.id == *disk) else {
            continue;
        };
        let agent = agent_for(ctx, vm, &d.domain, "undo").await?;
        let op = VolumeOperation::Delete {
            domain_id: d.domain.clone(),
            disk_id: d.id.clone(),
            volume_id: d.volume.clone(),
        };
        vol_op(agent.as_ref(), &op, "undo").await?;
    }
    let who = Who::of(ctx);
    let text = format!(
        "Undoing a Snapshot-Preview for VM {} has been completed.",
        vm.name
    );
    let mut tx = store.begin().await?;
    for (disk, vol) in &back {
        set_disk_volume(&mut tx, disk, vol).await?;
    }
    delete_snapshot(&mut tx, before.id()).await?;
    set_status(&mut tx, shown.id(), "ok").await?;
    ievents::emit(
        &mut tx,
        ievents::event(&who, 47, "normal", text, refs(&vm.id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Keeps the previewed state: the state before the preview and the snapshots taken after
/// the previewed one go, with their volumes (newest first: each is a leaf by then).
async fn commit_of(ctx: &Ctx<'_>, vm: &VmRec) -> ApiResult<()> {
    let store = &ctx.engine.store;
    let (shown, before, snaps) = in_preview(store, &vm.id, "commit").await?;
    let after: Vec<Snap> = snaps
        .iter()
        .filter(|s| s.kind() == "regular" && s.date() > shown.date() && s.id() != shown.id())
        .cloned()
        .collect();
    let disks = vm_disks(store, &vm.id).await?;
    let mut doomed: Vec<(String, String)> = frozen(store, before.id()).await?;
    for s in after.iter().rev() {
        doomed.extend(frozen(store, s.id()).await?);
    }
    for (disk, vol) in &doomed {
        let Some(d) = disks.iter().find(|d| d.id == *disk) else {
            continue;
        };
        let agent = agent_for(ctx, vm, &d.domain, "commit").await?;
        let op = VolumeOperation::Delete {
            domain_id: d.domain.clone(),
            disk_id: d.id.clone(),
            volume_id: vol.clone(),
        };
        vol_op(agent.as_ref(), &op, "commit").await?;
    }
    let who = Who::of(ctx);
    let text = format!(
        "Snapshot {} for VM {} has been committed.",
        shown.description(),
        vm.name
    );
    let mut tx = store.begin().await?;
    delete_snapshot(&mut tx, before.id()).await?;
    for s in &after {
        delete_snapshot(&mut tx, s.id()).await?;
    }
    set_status(&mut tx, shown.id(), "ok").await?;
    ievents::emit(
        &mut tx,
        ievents::event(&who, 47, "normal", text, refs(&vm.id)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `POST /vms/{id}/previewsnapshot`.
pub async fn preview(ctx: &Ctx<'_>, vm_id: &str) -> ApiResult<Response> {
    let a = actions::parse(ctx)?;
    let snap = a
        .snapshot
        .as_ref()
        .and_then(|s| s.id.clone())
        .ok_or_else(|| ApiError::incomplete("Action [snapshot.id] required for previewSnapshot"))?;
    let vm = down_vm(ctx, vm_id, "preview").await?;
    preview_of(ctx, &vm, &snap, "preview").await?;
    Ok(actions::answer(ctx, a, None, Target::Vm(vm_id)))
}

/// `POST /vms/{id}/undosnapshot`.
pub async fn undo(ctx: &Ctx<'_>, vm_id: &str) -> ApiResult<Response> {
    let a = actions::parse(ctx)?;
    let vm = down_vm(ctx, vm_id, "undo").await?;
    undo_of(ctx, &vm).await?;
    Ok(actions::answer(ctx, a, None, Target::Vm(vm_id)))
}

/// `POST /vms/{id}/commitsnapshot`.
pub async fn commit(ctx: &Ctx<'_>, vm_id: &str) -> ApiResult<Response> {
    let a = actions::parse(ctx)?;
    let vm = down_vm(ctx, vm_id, "commit").await?;
    commit_of(ctx, &vm).await?;
    Ok(actions::answer(ctx, a, None, Target::Vm(vm_id)))
}

/// `POST /vms/{vm}/snapshots/{id}/restore`: preview and commit in one.
pub async fn restore(ctx: &Ctx<'_>, at: &Location) -> ApiResult<Response> {
    let a = actions::parse(ctx)?;
    let vm_id = at.parent_id().unwrap_or_default().to_string();
    let snap = at.id.clone().unwrap_or_default();
    let vm = down_vm(ctx, &vm_id, "restore").await?;
    preview_of(ctx, &vm, &snap, "restore").await?;
    commit_of(ctx, &vm).await?;
    Ok(actions::answer(ctx, a, None, Target::Vm(&vm_id)))
}
