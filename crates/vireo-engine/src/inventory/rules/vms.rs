//! VMs: made from a template (its configuration, NICs and disks) and an optional instance
//! type (its hardware), with the client's members on top; `down` when made; refused removal
//! while running or protected. Runtime members (status, host, start time) belong to the hosts
//! module and are kept across updates.

use super::common::*;
use super::{disks, macpools, Adding};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::events::Who;
use crate::inventory::{crud, index, messages, Location};
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use vireo_store::{Filter, Query, Record, Tx};

/// oVirt's `MaxVmNameLength`.
pub const MAX_NAME: usize = 64;
/// oVirt's limit of vCPUs per VM.
const MAX_VCPUS: i64 = 710;
/// oVirt: maximum memory defaults to this many times the memory.
const MAX_MEMORY_RATIO: i64 = 4;
pub const CDROM_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Members of a template (or instance type) that a new VM takes (oVirt's VmBase, without
/// identity, placement and history).
pub(super) const FROM_TEMPLATE: &[&str] = &[
    "auto_pinning_policy",
    "bios",
    "console",
    "cpu",
    "cpu_pinning_policy",
    "cpu_shares",
    "custom_compatibility_version",
    "custom_cpu_model",
    "custom_emulated_machine",
    "custom_properties",
    "delete_protected",
    "display",
    "domain",
    "high_availability",
    "initialization",
    "io",
    "large_icon",
    "lease",
    "memory",
    "memory_policy",
    "migration",
    "migration_downtime",
    "multi_queues_enabled",
    "os",
    "placement_policy",
    "rng_device",
    "serial_number",
    "small_icon",
    "soundcard_enabled",
    "sso",
    "start_paused",
    "stateless",
    "storage_error_resume_behaviour",
    "time_zone",
    "tpm_enabled",
    "tunnel_migration",
    "type",
    "usb",
    "virtio_scsi",
    "virtio_scsi_multi_queues",
    "virtio_scsi_multi_queues_enabled",
];

/// The configuration of a VM a snapshot keeps (and a VM cloned from the snapshot takes).
pub const CONFIGURATION: &[&str] = FROM_TEMPLATE;

/// What an instance type decides over the template: the hardware.
const FROM_INSTANCE_TYPE: &[&str] = &[
    "cpu",
    "memory",
    "memory_policy",
    "high_availability",
    "io",
    "display",
    "usb",
    "migration",
    "migration_downtime",
    "console",
    "virtio_scsi",
    "soundcard_enabled",
    "tpm_enabled",
    "rng_device",
    "placement_policy",
    "cpu_shares",
];

/// Members the hosts module keeps (the running VM), which no update from a client changes.
pub const RUNTIME: &[&str] = &[
    "status",
    "status_detail",
    "host",
    "start_time",
    "stop_time",
    "stop_reason",
    "run_once",
    "fqdn",
    "guest_operating_system",
    "guest_time_zone",
    "next_run_configuration_exists",
    "has_illegal_images",
];

/// A template by id, or by name (the base version when several share it).
pub async fn find_template(ctx: &Ctx<'_>, r: &Value) -> ApiResult<Record> {
    if let Some(id) = r.get("id").and_then(Value::as_str) {
        return ctx
            .engine
            .store
            .get("templates", id)
            .await?
            .ok_or_else(|| messages::entity_not_found("Template", "id", id));
    }
    let Some(name) = r.get("name").and_then(Value::as_str) else {
        return Err(ApiError::incomplete(
            "Vm [template.id|name] required for add",
        ));
    };
    let mut found = ctx
        .engine
        .store
        .list(
            "templates",
            &Query::new(Filter::Like {
                field: "name".into(),
                pattern: name.replace('*', "\\*"),
                case_sensitive: true,
            }),
        )
        .await?;
    found.sort_by_key(|t| {
        crud::doc_of(t)
            .ok()
            .and_then(|d| int_at(&d, "version.version_number"))
            .unwrap_or(0)
    });
    found
        .into_iter()
        .next()
        .ok_or_else(|| messages::entity_not_found("Template", "name", name))
}

fn copy(from: &Value, into: &mut Value, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k) {
            set(into, k, v.clone());
        }
    }
}

/// Memory and CPU as oVirt checks them on add and edit.
pub fn check_hardware(action: &str, doc: &Value) -> ApiResult<()> {
    let bad = |m: &str| {
        ApiError::operation_failed(
            StatusCode::BAD_REQUEST,
            &[messages::cannot(action, "vms", m)],
        )
    };
    let memory = int_at(doc, "memory").unwrap_or(0);
    if memory <= 0 {
        return Err(bad("Memory size must be a positive number of bytes."));
    }
    let mib = |b: i64| b >> 20;
    if let Some(g) = int_at(doc, "memory_policy.guaranteed") {
        if g < 0 {
            return Err(bad(&format!(
                "Physical Memory Guaranteed cannot be negative ({}MB).",
                mib(g)
            )));
        }
        if g > memory {
            return Err(bad("Physical Memory Guaranteed cannot exceed Memory Size."));
        }
    }
    if let Some(max) = int_at(doc, "memory_policy.max") {
        if max < memory {
            return Err(bad(&format!(
                "Memory size ({}MB) cannot exceed maximum memory size ({}MB).",
                mib(memory),
                mib(max)
            )));
        }
    }
    let t = |k: &str| int_at(doc, &format!("cpu.topology.{k}")).unwrap_or(1);
    let (sockets, cores, threads) = (t("sockets"), t("cores"), t("threads"));
    if sockets < 1 || cores < 1 || threads < 1 {
        return Err(bad(
            "The number of sockets, cores and threads must be at least 1.",
        ));
    }
    if sockets * cores * threads > MAX_VCPUS {
        return Err(bad("Maximum number of CPUs exceeded."));
    }
    Ok(())
}

/// The memory policy follows the memory unless the client gave it.
fn memory_defaults(doc: &mut Value, body: &Value) {
    let Some(memory) = int_at(body, "memory") else {
        return;
    };
    let policy = doc.get("memory_policy").cloned().unwrap_or(json!({}));
    let mut policy = if policy.is_object() {
        policy
    } else {
        json!({})
    };
    if int_at(body, "memory_policy.guaranteed").is_none() {
        policy["guaranteed"] = s(memory);
    }
    if int_at(body, "memory_policy.max").is_none() {
        policy["max"] = s(memory.saturating_mul(MAX_MEMORY_RATIO));
    }
    set(doc, "memory_policy", policy);
}

/// The document of a new VM of `cluster` from `template` (and `instance_type`), with the
/// client's `body` on top.
pub async fn build(
    ctx: &Ctx<'_>,
    id: &str,
    cluster: &Record,
    template: &Record,
    instance_type: Option<&Record>,
    body: &Value,
) -> ApiResult<Value> {
    let tdoc = crud::doc_of(template)?;
    let cdoc = crud::doc_of(cluster)?;
    let mut doc = json!({});
    copy(&tdoc, &mut doc, FROM_TEMPLATE);
    if let Some(it) = instance_type {
        copy(&crud::doc_of(it)?, &mut doc, FROM_INSTANCE_TYPE);
    }
    crud::merge(&mut doc, body);
    memory_defaults(&mut doc, body);
    for k in RUNTIME {
        if let Value::Object(o) = &mut doc {
            o.remove(*k);
        }
    }
    set(&mut doc, "id", json!(id));
    set(&mut doc, "status", json!("down"));
    set(&mut doc, "origin", json!("ovirt"));
    set(&mut doc, "creation_time", now());
    set(&mut doc, "cluster", reference(&cluster.id));
    set(&mut doc, "template", reference(&template.id));
    set(&mut doc, "original_template", reference(&template.id));
    set(&mut doc, "next_run_configuration_exists", s(false));
    set(&mut doc, "run_once", s(false));
    set(&mut doc, "has_illegal_images", s(false));
    default(&mut doc, "numa_tune_mode", json!("interleave"));
    default(&mut doc, "use_latest_template_version", s(false));
    default(&mut doc, "type", json!("server"));
    default(&mut doc, "memory", s(1i64 << 30));
    default(
        &mut doc,
        "os",
        json!({"type": "other", "boot": {"devices": {"device": ["hd"]}}}),
    );
    if str_at(&doc, "os.type").is_none() {
        if let Some(os) = doc.get_mut("os") {
            set(os, "type", json!("other"));
        }
    }
    default(
        &mut doc,
        "cpu",
        json!({"topology": {"sockets": "1", "cores": "1", "threads": "1"}}),
    );
    if let Some(it) = instance_type {
        set(&mut doc, "instance_type", reference(&it.id));
    }
    if ref_id(&doc, "cpu_profile").is_none() {
        if let Some(p) = where_eq(ctx, "cpuprofiles", "cluster.id", &cluster.id)
            .await?
            .into_iter()
            .next()
        {
            set(&mut doc, "cpu_profile", reference(&p.id));
        }
    }
    let _ = cdoc;
    Ok(doc)
}

/// The snapshot a new VM is cloned from (by id, any VM's; not the "Active VM" one) and the
/// VM it belongs to: (snapshot document, VM document).
async fn clone_source(ctx: &Ctx<'_>, r: &Value) -> ApiResult<(Value, Value)> {
    let Some(id) = str_at(r, "id").filter(|s| !s.is_empty()) else {
        return Err(ApiError::incomplete(
            "Vm [snapshots.snapshot.id] required for add",
        ));
    };
    let rec = ctx
        .engine
        .store
        .get(crate::hosts::snapshots::KIND, id)
        .await?
        .ok_or_else(|| messages::entity_not_found("Snapshot", "id", id))?;
    let snap = crud::doc_of(&rec)?;
    match str_at(&snap, "snapshot_type") {
        Some("active") | Some("preview") => {
            return Err(messages::conflict(
                "add",
                "vms",
                "The snapshot is the VM's current state; choose a regular snapshot.",
            ))
        }
        _ => {}
    }
    if str_at(&snap, "snapshot_status") != Some("ok") {
        return Err(messages::conflict(
            "add",
            "vms",
            "Snapshot is currently being created or locked.",
        ));
    }
    let vm = rec.parent_id.clone().or_else(|| ref_id(&snap, "vm"));
    let vdoc = match vm {
        Some(v) => match ctx.engine.store.get("vms", &v).await? {
            Some(r) => crud::doc_of(&r)?,
            None => json!({}),
        },
        None => json!({}),
    };
    // A snapshot taken before snapshots kept the configuration: the VM's own.
    let mut snap = snap;
    if CONFIGURATION.iter().all(|k| snap.get(*k).is_none()) {
        copy(&vdoc, &mut snap, CONFIGURATION);
    }
    Ok((snap, vdoc))
}

/// `placement_policy.hosts` given by name become references by id (oVirt stores the hosts'
/// ids; an unknown host is a 404).
async fn resolve_pinned_hosts(ctx: &Ctx<'_>, doc: &mut Value) -> ApiResult<()> {
    let Some(list) = doc
        .get("placement_policy")
        .and_then(|p| p.get("hosts"))
        .and_then(|h| h.get("host"))
        .and_then(Value::as_array)
        .cloned()
    else {
        return Ok(());
    };
    let mut ids = Vec::with_capacity(list.len());
    for item in &list {
        let host = lookup(ctx, "hosts", item, "host").await?;
        ids.push(reference(&host.id));
    }
    if let Some(h) = doc
        .get_mut("placement_policy")
        .and_then(|p| p.get_mut("hosts"))
    {
        set(h, "host", Value::Array(ids));
    }
    Ok(())
}

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let name = str_at(&a.doc, "name").unwrap_or_default().to_string();
    check_name("add", "vms", &name, MAX_NAME)?;
    // `snapshots` without a template: a clone of a VM as it was at that snapshot (oVirt's
    // `cloneVmFromSnapshot`), from the Blank template.
    let snapshot = match items(&a.doc, "snapshots", "snapshot").first() {
        Some(s) if a.doc.get("template").is_none() => Some(clone_source(ctx, s).await?),
        _ => None,
    };
    if let Value::Object(o) = &mut a.doc {
        o.remove("snapshots");
    }
    if let Some((_, svm)) = &snapshot {
        default(&mut a.doc, "template", reference(BLANK));
        if let Some(c) = svm.get("cluster").cloned() {
            default(&mut a.doc, "cluster", c);
        }
    }
    let cluster_ref = a.doc.get("cluster").cloned().unwrap_or(Value::Null);
    let cluster = lookup(ctx, "clusters", &cluster_ref, "cluster").await?;
    let template = find_template(ctx, a.doc.get("template").unwrap_or(&Value::Null)).await?;
    let tdoc = crud::doc_of(&template)?;
    if template.id != BLANK {
        if let (Some(tc), Some(vc)) = (ref_id(&tdoc, "cluster"), Some(cluster.id.clone())) {
            let dc_of = |c: Option<Record>| {
                c.and_then(|c| crud::doc_of(&c).ok())
                    .and_then(|d| ref_id(&d, "data_center"))
            };
            let tdc = dc_of(ctx.engine.store.get("clusters", &tc).await?);
            let vdc = dc_of(ctx.engine.store.get("clusters", &vc).await?);
            if tdc != vdc {
                return Err(ApiError::conflict("Cannot add VM. The specified Template doesn't exist in the current Data Center."));
            }
        }
        if str_at(&tdoc, "status") == Some("locked") {
            return Err(messages::conflict(
                "add",
                "vms",
                "Template is locked. Please try again in a few minutes.",
            ));
        }
    }
    let it = match a
        .doc
        .get("instance_type")
        .cloned()
        .filter(|v| v.is_object())
    {
        Some(r) => Some(lookup(ctx, "instancetypes", &r, "instance_type").await?),
        None => None,
    };
    let mut body = a.doc.clone();
    if let Some((snap, _)) = &snapshot {
        // The snapshot's configuration, with the client's members on top.
        let mut base = json!({});
        copy(snap, &mut base, CONFIGURATION);
        crud::merge(&mut base, &body);
        body = base;
    }
    a.doc = build(ctx, &a.id, &cluster, &template, it.as_ref(), &body).await?;
    check_hardware("add", &a.doc)?;
    resolve_ref(ctx, &mut a.doc, "cpu_profile", "cpuprofiles").await?;
    resolve_ref(ctx, &mut a.doc, "vm_pool", "vmpools").await?;
    resolve_pinned_hosts(ctx, &mut a.doc).await?;
    a.notes = json!({ "template": template.id });
    if let Some((snap, _)) = &snapshot {
        a.notes["snapshot"] = snap["id"].clone();
    }
    Ok(())
}

/// The CD-ROM every VM has, and copies of the template's NICs and disks.
pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let template = str_at(&a.notes, "template").unwrap_or(BLANK).to_string();
    let tcd = tx
        .get(
            "templates/cdroms",
            &crate::bootstrap::sub_record_id(&template, CDROM_ID),
        )
        .await?;
    let file = tcd
        .and_then(|r| crud::doc_of(&r).ok())
        .and_then(|d| d.get("file").cloned());
    let mut cd = json!({ "id": CDROM_ID, "vm": reference(&a.id) });
    if let Some(f) = file {
        cd["file"] = f;
    }
    index::insert(
        tx,
        "vms/cdroms",
        &crate::bootstrap::sub_record_id(&a.id, CDROM_ID),
        &cd,
        Some(&a.id),
        &[],
    )
    .await?;
    let nics = tx
        .list(
            "templates/nics",
            &Query::new(Filter::ParentIs(template.clone())),
        )
        .await?;
    if !nics.is_empty() {
        let pool = cluster_pool(tx, &a.doc).await?;
        for n in nics {
            let mut d = crud::doc_of(&n)?;
            let id = uuid::Uuid::new_v4().to_string();
            set(&mut d, "id", json!(id));
            if let Value::Object(o) = &mut d {
                o.remove("template");
            }
            set(&mut d, "vm", reference(&a.id));
            let mac = macpools::allocate(tx, &pool).await?;
            set(&mut d, "mac", json!({ "address": mac }));
            index::insert(tx, "vms/nics", &id, &d, Some(&a.id), &[]).await?;
        }
    }
    let mut copies = disks::copy_template_disks(
        tx,
        ctx,
        &template,
        &a.id,
        str_at(&a.doc, "name").unwrap_or_default(),
    )
    .await?;
    if let Some(snap) = str_at(&a.notes, "snapshot").map(str::to_string) {
        copies.extend(disks::copy_snapshot_disks(tx, ctx, &snap, &a.id).await?);
    }
    if !copies.is_empty() {
        a.notes["copies"] = json!(copies);
    }
    Ok(())
}

async fn cluster_pool(tx: &mut Tx, vm: &Value) -> ApiResult<Value> {
    let pool = match ref_id(vm, "cluster") {
        Some(c) => match tx.get("clusters", &c).await? {
            Some(r) => ref_id(&crud::doc_of(&r)?, "mac_pool"),
            None => None,
        },
        None => None,
    }
    .unwrap_or_else(|| crate::bootstrap::ids::MAC_POOL.to_string());
    match tx.get("macpools", &pool).await? {
        Some(p) => crud::doc_of(&p),
        None => Err(messages::conflict(
            "add",
            "vms",
            "The MAC Address Pool of the Cluster does not exist.",
        )),
    }
}

pub fn after_add(ctx: &Ctx<'_>, a: &Adding) -> Option<JoinHandle<()>> {
    let copies: Vec<disks::Copy> = a
        .notes
        .get("copies")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    disks::start_copies(ctx, &Who::of(ctx), copies, None)
}

pub async fn prepare_update(
    ctx: &Ctx<'_>,
    before: &Value,
    doc: &mut Value,
    change: &Value,
) -> ApiResult<()> {
    for k in RUNTIME
        .iter()
        .chain(["template", "original_template", "creation_time", "origin"].iter())
    {
        match before.get(*k) {
            Some(v) => set(doc, k, v.clone()),
            None => {
                if let Value::Object(o) = doc {
                    o.remove(*k);
                }
            }
        }
    }
    if let Some(n) = str_at(doc, "name") {
        check_name("edit", "vms", n, MAX_NAME)?;
    }
    if change.get("memory").is_some() {
        memory_defaults(doc, change);
    }
    check_hardware("edit", doc)?;
    let running = !matches!(str_at(before, "status"), Some("down") | None);
    if let Some(c) = resolve_ref(ctx, doc, "cluster", "clusters").await? {
        if Some(c.id.as_str()) != ref_id(before, "cluster").as_deref() {
            if running {
                return Err(messages::conflict("edit", "vms", "VM is running."));
            }
            let dc_of = |r: Option<Record>| {
                r.and_then(|c| crud::doc_of(&c).ok())
                    .and_then(|d| ref_id(&d, "data_center"))
            };
            let old = dc_of(
                ctx.engine
                    .store
                    .get("clusters", &ref_id(before, "cluster").unwrap_or_default())
                    .await?,
            );
            if dc_of(Some(c)) != old {
                return Err(ApiError::conflict(
                    "VM can be moved only to a Cluster in the same Data Center.",
                ));
            }
        }
    }
    resolve_ref(ctx, doc, "cpu_profile", "cpuprofiles").await?;
    resolve_ref(ctx, doc, "instance_type", "instancetypes").await?;
    if change.get("placement_policy").is_some() {
        resolve_pinned_hosts(ctx, doc).await?;
    }
    // Hardware of a running VM changes at its next run.
    let hardware = ["memory", "cpu", "os", "bios", "display"]
        .iter()
        .any(|k| change.get(*k).is_some() && before.get(*k) != doc.get(*k));
    if running && hardware {
        set(doc, "next_run_configuration_exists", s(true));
    }
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    match str_at(doc, "status").unwrap_or("down") {
        "down" => {}
        "image_locked" => {
            return Err(ApiError::conflict(
                "Cannot remove VM: VM is locked. Please try again in a few minutes.",
            ))
        }
        "up" | "powering_up" | "powering_down" | "paused" | "migrating" | "reboot_in_progress"
        | "wait_for_launch" => return Err(messages::conflict("remove", "vms", "VM is running.")),
        _ => {
            return Err(ApiError::conflict(
                "Cannot remove VM that its state is not down.\n-Please stop the VM first.",
            ))
        }
    }
    if bool_at(doc, "delete_protected") == Some(true) {
        return Err(messages::conflict(
            "remove",
            "vms",
            "VM is delete protected.",
        ));
    }
    let id = str_at(doc, "id").unwrap_or_default();
    for att in ctx
        .engine
        .store
        .list(
            "vms/diskattachments",
            &Query::new(Filter::ParentIs(id.to_string())),
        )
        .await?
    {
        let Some(disk) = ref_id(&crud::doc_of(&att)?, "disk") else {
            continue;
        };
        if let Some(d) = ctx.engine.store.get("disks", &disk).await? {
            if str_at(&crud::doc_of(&d)?, "status") == Some("locked") {
                return Err(ApiError::conflict(
                    "Cannot remove VM: Disk is locked. Please try again later.",
                ));
            }
        }
    }
    Ok(())
}

/// The VM's disks go with it (`detach_only=true` keeps them, floating), as oVirt's RemoveVm
/// removes the disks it does not share.
pub async fn in_tx_remove(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    doc: &Value,
    notes: &mut Value,
) -> ApiResult<()> {
    let detach_only = ctx.params.flag("detach_only")?.unwrap_or(false);
    let id = str_at(doc, "id").unwrap_or_default().to_string();
    if detach_only {
        return Ok(());
    }
    for att in tx
        .list(
            "vms/diskattachments",
            &Query::new(Filter::ParentIs(id.clone())),
        )
        .await?
    {
        let adoc = crud::doc_of(&att)?;
        // A snapshot of another VM's disk attached here stays that VM's.
        if disks::is_snapshot_attachment(&adoc) {
            continue;
        }
        let Some(disk) = ref_id(&adoc, "disk") else {
            continue;
        };
        let Some(d) = tx.get("disks", &disk).await? else {
            continue;
        };
        let ddoc = crud::doc_of(&d)?;
        let shared = tx
            .count("vms/diskattachments", &Filter::eq("disk.id", disk.as_str()))
            .await?
            > 1;
        if bool_at(&ddoc, "shareable") == Some(true) && shared {
            continue;
        }
        disks::delete_disk(tx, &d, notes).await?;
    }
    Ok(())
}

pub fn refuse_second_cdrom() -> ApiResult<()> {
    Err(messages::conflict(
        "add",
        "vms/cdroms",
        "The VM already has a CD-ROM; change its file instead.",
    ))
}

/// `file id=""` ejects; a file is an ISO image name (oVirt: the file's id). With
/// `current=true` the running VM's medium changes and the stored CD-ROM does not (oVirt: the
/// change is for this run only); without it the stored one changes, for the next run.
pub async fn prepare_cdrom_update(ctx: &Ctx<'_>, at: &Location, doc: &mut Value) -> ApiResult<()> {
    let file = str_at(doc, "file.id").map(str::to_string);
    if let Some(f) = &file {
        if f.contains('/') || f.starts_with('.') {
            return Err(messages::invalid(
                "edit",
                "vms/cdroms",
                "The file name may not leave the ISO domain.",
            ));
        }
    }
    if at.kind.kind == "vms/cdroms" && ctx.params.flag("current")? == Some(true) {
        let vm = at.parent_id().unwrap_or_default();
        let medium = file.clone().filter(|f| !f.is_empty());
        if crate::hosts::devices::change_cdrom(ctx, vm, medium).await? {
            // The stored CD-ROM stays as it was.
            let id = at.id.clone().unwrap_or_default();
            let rid = crate::bootstrap::sub_record_id(vm, &id);
            let store = &ctx.engine.store;
            let before = match store.get("vms/cdroms", &rid).await? {
                Some(r) => Some(r),
                None => store.get("vms/cdroms", &id).await?,
            };
            if let Some(r) = before {
                let old = crud::doc_of(&r)?;
                match old.get("file") {
                    Some(f) => set(doc, "file", f.clone()),
                    None => {
                        if let Value::Object(o) = doc {
                            o.remove("file");
                        }
                    }
                }
            }
            return Ok(());
        }
    }
    match file {
        Some(f) if f.is_empty() => {
            if let Value::Object(o) = doc {
                o.remove("file");
            }
        }
        Some(f) => {
            if f.contains('/') && f.contains("..") {
                return Err(messages::invalid(
                    "edit",
                    "vms/cdroms",
                    "The file name may not leave the ISO domain.",
                ));
            }
            set(doc, "file", json!({ "id": f }));
        }
        None => {}
    }
    Ok(())
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `initialization.configuration` of `GET /vms/{id}?all_content=true`: an OVF document of
/// the VM's stored configuration (type `ovf`), as oVirt adds it — the VM's identity, OS,
/// CPU topology and memory, its disks (with their volumes and domains) and its NICs.
pub async fn add_configuration(ctx: &Ctx<'_>, doc: &mut Value) -> ApiResult<()> {
    let Some(id) = str_at(doc, "id").map(str::to_string) else {
        return Ok(());
    };
    let store = &ctx.engine.store;
    let e = |k: &str| xml_escape(str_at(doc, k).unwrap_or_default());
    let t = |k: &str| {
        int_at(doc, &format!("cpu.topology.{k}"))
            .unwrap_or(1)
            .max(1)
    };
    let (sockets, cores, threads) = (t("sockets"), t("cores"), t("threads"));
    let mib = int_at(doc, "memory").unwrap_or(0) >> 20;
    let mut refs = String::new();
    let mut disk_section = String::new();
    let mut items = String::new();
    let atts = store
        .list(
            "vms/diskattachments",
            &Query::new(Filter::ParentIs(id.clone())),
        )
        .await?;
    for a in &atts {
        let adoc = crud::doc_of(a)?;
        let Some(disk_id) = ref_id(&adoc, "disk") else {
            continue;
        };
        let Some(d) = store.get("disks", &disk_id).await? else {
            continue;
        };
        let d = crud::doc_of(&d)?;
        let volume = str_at(&d, "image_id").unwrap_or(&disk_id).to_string();
        let file = format!("{disk_id}/{volume}");
        let alias = xml_escape(str_at(&d, "alias").unwrap_or_default());
        let size = int_at(&d, "provisioned_size").unwrap_or(0);
        let sd = disks::first_domain(&d).unwrap_or_default();
        let cow = str_at(&d, "format") != Some("raw");
        let iface = match str_at(&adoc, "interface") {
            Some("virtio_scsi") => "VirtIO_SCSI",
            Some("ide") => "IDE",
            Some("sata") => "SATA",
            _ => "VirtIO",
        };
        refs.push_str(&format!(
            "<File ovf:href=\"{file}\" ovf:id=\"{volume}\" ovf:size=\"{size}\" ovf:description=\"{alias}\"/>"
        ));
        disk_section.push_str(&format!(
            "<Disk ovf:diskId=\"{volume}\" ovf:size=\"{}\" ovf:fileRef=\"{file}\" ovf:volume-format=\"{}\" ovf:volume-type=\"{}\" ovf:disk-interface=\"{iface}\" ovf:boot=\"{}\" ovf:disk-alias=\"{alias}\" ovf:wipe-after-delete=\"{}\"/>",
            (size + (1 << 30) - 1) >> 30,
            if cow { "COW" } else { "RAW" },
            if bool_at(&d, "sparse") == Some(false) { "Preallocated" } else { "Sparse" },
            bool_at(&adoc, "bootable") == Some(true),
            bool_at(&d, "wipe_after_delete") == Some(true),
        ));
        items.push_str(&format!(
            "<Item><rasd:Caption>{alias}</rasd:Caption><rasd:InstanceId>{volume}</rasd:InstanceId><rasd:ResourceType>17</rasd:ResourceType><rasd:HostResource>{file}</rasd:HostResource><rasd:StorageId>{sd}</rasd:StorageId><Type>disk</Type><Device>disk</Device><IsPlugged>{}</IsPlugged><IsReadOnly>{}</IsReadOnly></Item>",
            bool_at(&adoc, "active") != Some(false),
            bool_at(&adoc, "read_only") == Some(true),
        ));
    }
    for n in store
        .list("vms/nics", &Query::new(Filter::ParentIs(id.clone())))
        .await?
    {
        let ndoc = crud::doc_of(&n)?;
        let name = xml_escape(str_at(&ndoc, "name").unwrap_or_default());
        let mac = xml_escape(str_at(&ndoc, "mac.address").unwrap_or_default());
        let profile = xml_escape(&ref_id(&ndoc, "vnic_profile").unwrap_or_default());
        items.push_str(&format!(
            "<Item><rasd:Caption>Ethernet adapter {name}</rasd:Caption><rasd:InstanceId>{}</rasd:InstanceId><rasd:ResourceType>10</rasd:ResourceType><rasd:Name>{name}</rasd:Name><rasd:MACAddress>{mac}</rasd:MACAddress><rasd:Connection>{profile}</rasd:Connection><Type>interface</Type><Device>bridge</Device><IsPlugged>{}</IsPlugged></Item>",
            xml_escape(&n.id),
            bool_at(&ndoc, "plugged") != Some(false),
        ));
    }
    let ovf = format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<ovf:Envelope xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1/\" ",
            "xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" ",
            "xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\" ",
            "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ovf:version=\"4.4.0.0\">",
            "<References>{refs}</References>",
            "<Section xsi:type=\"ovf:DiskSection_Type\"><Info>List of Virtual Disks</Info>{disks}</Section>",
            "<Content ovf:id=\"out\" xsi:type=\"ovf:VirtualSystem_Type\">",
            "<Name>{name}</Name><Description>{description}</Description><Comment>{comment}</Comment>",
            "<TemplateId>{template}</TemplateId><OriginalTemplateId>{original}</OriginalTemplateId>",
            "<ClusterId>{cluster}</ClusterId><VmType>{vm_type}</VmType><IsStateless>{stateless}</IsStateless>",
            "<Section ovf:id=\"{id}\" ovf:required=\"false\" xsi:type=\"ovf:OperatingSystemSection_Type\">",
            "<Info>Guest Operating System</Info><Description>{os}</Description></Section>",
            "<Section xsi:type=\"ovf:VirtualHardwareSection_Type\"><Info>{vcpus} CPU, {mib} Memory</Info>",
            "<Item><rasd:Caption>{vcpus} virtual cpu</rasd:Caption><rasd:Description>Number of virtual CPU</rasd:Description>",
            "<rasd:InstanceId>1</rasd:InstanceId><rasd:ResourceType>3</rasd:ResourceType>",
            "<rasd:num_of_sockets>{sockets}</rasd:num_of_sockets><rasd:cpu_per_socket>{cores}</rasd:cpu_per_socket>",
            "<rasd:threads_per_cpu>{threads}</rasd:threads_per_cpu></Item>",
            "<Item><rasd:Caption>{mib} MB of memory</rasd:Caption><rasd:Description>Memory Size</rasd:Description>",
            "<rasd:InstanceId>2</rasd:InstanceId><rasd:ResourceType>4</rasd:ResourceType>",
            "<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:VirtualQuantity>{mib}</rasd:VirtualQuantity></Item>",
            "{items}</Section></Content></ovf:Envelope>"
        ),
        refs = refs,
        disks = disk_section,
        name = e("name"),
        description = e("description"),
        comment = e("comment"),
        template = xml_escape(&ref_id(doc, "template").unwrap_or_default()),
        original = xml_escape(&ref_id(doc, "original_template").unwrap_or_default()),
        cluster = xml_escape(&ref_id(doc, "cluster").unwrap_or_default()),
        vm_type = if str_at(doc, "type") == Some("desktop") { 0 } else { 1 },
        stateless = bool_at(doc, "stateless") == Some(true),
        id = xml_escape(&id),
        os = xml_escape(str_at(doc, "os.type").unwrap_or("other")),
        vcpus = sockets * cores * threads,
        mib = mib,
        sockets = sockets,
        cores = cores,
        threads = threads,
        items = items,
    );
    if !doc.get("initialization").is_some_and(Value::is_object) {
        set(doc, "initialization", json!({}));
    }
    if let Some(init) = doc.get_mut("initialization") {
        set(init, "configuration", json!({ "type": "ovf", "data": ovf }));
    }
    Ok(())
}

/// The pinned hosts' references carry their hrefs, as oVirt shows them.
pub fn decorate_vm(doc: &mut Value) {
    let Some(Value::Array(hosts)) = doc
        .get_mut("placement_policy")
        .and_then(|p| p.get_mut("hosts"))
        .and_then(|h| h.get_mut("host"))
    else {
        return;
    };
    for h in hosts {
        if let Some(id) = str_at(h, "id").map(str::to_string) {
            if h.get("href").is_none() {
                set(h, "href", json!(format!("/ovirt-engine/api/hosts/{id}")));
            }
        }
    }
}

pub fn decorate_cdrom(doc: &mut Value) {
    if str_at(doc, "file.id") == Some("") {
        if let Value::Object(o) = doc {
            o.remove("file");
        }
    }
}
