//! Storage domains: added through a host (whose agent connects the storage and reports its
//! space), attached to a data center (`locked`, then `active` once a host of the data center
//! has connected it; the first data domain becomes the master and the data center goes `up`),
//! activated, deactivated (`preparing_for_maintenance` → `maintenance`), detached, removed.
//! The files of ISO domains come from a host's agent.

use super::common::*;
use super::{datacenters, Adding};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::agent::{self, Storage};
use crate::inventory::events::{self, Who};
use crate::inventory::{crud, index, jobs, messages, tasks, Location};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::task::JoinHandle;
use vireo_agent_proto::DomainSpec;
use vireo_model::meta::MethodKind;
use vireo_store::{AttrValue, EventRefs, Filter, Query, Record, Store, Tx};

/// Attribute of domain records: the host that connected it when it was added (the host that
/// serves it while it is attached to no data center).
pub const CONNECTED_HOST: &str = "connected_host";
const ATTACHED: &str = "datacenters/storagedomains";

/// The data centers a domain is attached to.
async fn data_centers_of(store: &Store, sd: &str) -> ApiResult<Vec<String>> {
    let recs = store
        .list(ATTACHED, &Query::new(Filter::eq(index::TARGET, sd)))
        .await?;
    Ok(recs.into_iter().filter_map(|r| r.parent_id).collect())
}

/// Hosts that are up in a data center.
pub async fn hosts_up_in(store: &Store, dc: &str) -> ApiResult<Vec<Record>> {
    let clusters = store
        .list("clusters", &Query::new(Filter::eq("data_center.id", dc)))
        .await?;
    if clusters.is_empty() {
        return Ok(Vec::new());
    }
    let any_cluster = Filter::Or(
        clusters
            .iter()
            .map(|c| Filter::eq("cluster.id", c.id.as_str()))
            .collect(),
    );
    Ok(store
        .list(
            "hosts",
            &Query::new(Filter::And(vec![any_cluster, Filter::eq("status", "up")])),
        )
        .await?)
}

/// A host that can work on a domain: one that is up in its data center, or, for a domain
/// attached nowhere, the host that added it.
pub async fn host_for(store: &Store, sd: &str) -> ApiResult<Option<String>> {
    for dc in data_centers_of(store, sd).await? {
        // Like oVirt's SPM: one host does the storage work of a data center, the first one up
        // (a stable choice while it stays up).
        if let Some(h) = hosts_up_in(store, &dc).await?.into_iter().next() {
            return Ok(Some(h.id));
        }
    }
    let attrs = store.get_attrs("storagedomains", sd).await?;
    for (f, v) in attrs {
        if let (true, AttrValue::Text(h)) = (f == CONNECTED_HOST, v) {
            if let Some(r) = store.get("hosts", &h).await? {
                if str_at(&crud::doc_of(&r)?, "status") == Some("up") {
                    return Ok(Some(h));
                }
            }
        }
    }
    Ok(None)
}

pub fn spec_of(id: &str, doc: &Value) -> DomainSpec {
    DomainSpec {
        id: id.to_string(),
        domain_type: str_at(doc, "type").unwrap_or("data").to_string(),
        storage_type: str_at(doc, "storage.type").unwrap_or("nfs").to_string(),
        address: str_at(doc, "storage.address").map(str::to_string),
        path: str_at(doc, "storage.path").unwrap_or_default().to_string(),
        vfs_type: str_at(doc, "storage.vfs_type").map(str::to_string),
        mount_options: str_at(doc, "storage.mount_options").map(str::to_string),
    }
}

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let host_ref = a
        .doc
        .get("host")
        .cloned()
        .ok_or_else(|| ApiError::incomplete("StorageDomain [host.id|name] required for add"))?;
    let host = lookup(ctx, "hosts", &host_ref, "host").await?;
    let hdoc = crud::doc_of(&host)?;
    if str_at(&hdoc, "status") != Some("up") {
        return Err(messages::conflict(
            "add",
            "storagedomains",
            &format!(
                "Host {} is not up (its status is {}).",
                host.name.clone().unwrap_or_default(),
                str_at(&hdoc, "status").unwrap_or("unknown")
            ),
        ));
    }
    let doc = &mut a.doc;
    default(doc, "type", json!("data"));
    let kind = str_at(doc, "type").unwrap_or("data").to_string();
    if !matches!(kind.as_str(), "data" | "iso" | "export") {
        return Err(messages::invalid(
            "add",
            "storagedomains",
            "Storage Domain type is illegal (data, iso and export are supported).",
        ));
    }
    let st = str_at(doc, "storage.type").unwrap_or_default().to_string();
    let path = str_at(doc, "storage.path").unwrap_or_default().to_string();
    match st.as_str() {
        "nfs" => {
            if str_at(doc, "storage.address").unwrap_or_default().is_empty() || path.is_empty() {
                return Err(ApiError::incomplete("HostStorage [address, path] required for add"));
            }
        }
        "posixfs" | "glusterfs" => {
            if path.is_empty() || (st == "posixfs" && str_at(doc, "storage.vfs_type").is_none()) {
                return Err(ApiError::incomplete("HostStorage [path, vfs_type] required for add"));
            }
        }
        "localfs" => {
            if path.is_empty() {
                return Err(ApiError::incomplete("HostStorage [path] required for add"));
            }
        }
        "" => return Err(ApiError::incomplete("StorageDomain [storage.type] required for add")),
        other => return Err(ApiError::not_implemented(format!("storage domains of type '{other}' are not implemented by vireo yet (nfs, posixfs, glusterfs, localfs are)"))),
    }
    if !path.starts_with('/') && st != "glusterfs" {
        return Err(messages::invalid(
            "add",
            "storagedomains",
            &format!("The path '{path}' must be absolute."),
        ));
    }
    // One connection, one domain.
    let address = str_at(doc, "storage.address")
        .unwrap_or_default()
        .to_string();
    for other in ctx
        .engine
        .store
        .list("storagedomains", &Query::new(Filter::All))
        .await?
    {
        let o = crud::doc_of(&other)?;
        if str_at(&o, "storage.path") == Some(path.as_str())
            && str_at(&o, "storage.address").unwrap_or_default() == address
        {
            return Err(messages::conflict(
                "add",
                "storagedomains",
                &format!(
                    "Storage connection {address}:{path} already exists for {}.",
                    other.name.unwrap_or_default()
                ),
            ));
        }
    }
    let spec = spec_of(&a.id, doc);
    let agent = agent::storage_for(ctx.engine, &host.id).await?;
    let info = agent::bounded(agent::REQUEST_TIMEOUT, agent.connect_domain(&spec))
        .await
        .map_err(|e| agent::fault("add", "storagedomains", &e))?;
    if let Value::Object(o) = doc {
        o.remove("host");
        o.remove("data_center");
        o.remove("data_centers");
    }
    set(doc, "status", json!("unattached"));
    set(doc, "available", s(info.available_bytes));
    set(doc, "used", s(info.used_bytes));
    set(doc, "committed", s(0));
    set(doc, "master", s(false));
    set(doc, "external_status", json!("ok"));
    default(doc, "storage_format", json!("v5"));
    for (k, v) in [
        ("backup", s(false)),
        ("block_size", s(512)),
        ("discard_after_delete", s(false)),
        ("supports_discard", s(false)),
        ("supports_discard_zeroes_data", s(false)),
        ("wipe_after_delete", s(false)),
        ("warning_low_space_indicator", s(10)),
        ("critical_space_action_blocker", s(5)),
        ("comment", json!("")),
    ] {
        default(doc, k, v);
    }
    a.extra_attrs
        .push((CONNECTED_HOST.into(), AttrValue::Text(host.id.clone())));
    Ok(())
}

/// oVirt makes a disk profile named after each new data domain.
pub async fn in_tx_add(tx: &mut Tx, a: &mut Adding) -> ApiResult<()> {
    if str_at(&a.doc, "type") != Some("data") {
        return Ok(());
    }
    let id = uuid::Uuid::new_v4().to_string();
    let p = json!({"id": id, "name": str_at(&a.doc, "name").unwrap_or_default(), "storage_domain": reference(&a.id)});
    index::insert(tx, "diskprofiles", &id, &p, None, &[]).await?;
    Ok(())
}

pub async fn prepare_update(_ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    for k in [
        "status",
        "available",
        "used",
        "committed",
        "master",
        "data_centers",
        "data_center",
        "storage",
        "type",
        "storage_format",
        "external_status",
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
    if let Value::Object(o) = doc {
        o.remove("host");
    }
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    if str_at(doc, "status") == Some("locked") {
        return Err(messages::locked("remove", "storagedomains"));
    }
    let destroy = ctx.params.flag("destroy")?.unwrap_or(false);
    let dcs = data_centers_of(&ctx.engine.store, id).await?;
    if !dcs.is_empty() && !destroy {
        let dc = ctx
            .engine
            .store
            .get("datacenters", &dcs[0])
            .await?
            .and_then(|r| r.name)
            .unwrap_or_default();
        return Err(messages::conflict("remove", "storagedomains", &format!("The Storage Domain is attached to Data Center {dc}; detach it first (or remove it with destroy=true).")));
    }
    Ok(())
}

/// Its disks and profiles go with it; the data centers it was attached to (destroy) follow.
pub async fn in_tx_remove(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    doc: &Value,
    notes: &mut Value,
) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default().to_string();
    let format = ctx.params.flag("format")?.unwrap_or(false);
    for d in tx
        .list(
            "disks",
            &Query::new(Filter::eq("storage_domains.id", id.as_str())),
        )
        .await?
    {
        let mut scratch = Value::Null;
        super::disks::delete_disk(tx, &d, if format { notes } else { &mut scratch }).await?;
    }
    for p in tx
        .list(
            "diskprofiles",
            &Query::new(Filter::eq("storage_domain.id", id.as_str())),
        )
        .await?
    {
        tx.delete("diskprofiles", &p.id).await?;
    }
    let dcs: Vec<String> = tx
        .list(
            ATTACHED,
            &Query::new(Filter::eq(index::TARGET, id.as_str())),
        )
        .await?
        .into_iter()
        .filter_map(|r| r.parent_id)
        .collect();
    for r in tx
        .list(
            ATTACHED,
            &Query::new(Filter::eq(index::TARGET, id.as_str())),
        )
        .await?
    {
        tx.delete(ATTACHED, &r.id).await?;
    }
    for dc in dcs {
        datacenters::refresh_status(tx, &dc).await?;
    }
    Ok(())
}

/// The host forgets the domain (its data stays on the storage).
pub async fn after_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default().to_string();
    let attrs = ctx
        .engine
        .store
        .list("hosts", &Query::new(Filter::eq("status", "up")))
        .await?;
    for h in attrs {
        let agent = agent::resolver(ctx.engine, &h.id);
        let id = id.clone();
        tasks::spawn("disconnect storage domain", async move {
            if let Ok(a) = agent.await {
                let _ = agent::bounded(agent::REQUEST_TIMEOUT, a.disconnect_domain(&id)).await;
            }
            Ok(())
        });
    }
    Ok(())
}

// ---- attached to data centers ------------------------------------------------------------

pub async fn prepare_attach(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let dc = at.parent_id().unwrap_or_default().to_string();
    let dc_rec = ctx
        .engine
        .store
        .get("datacenters", &dc)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no data center with id '{dc}'")))?;
    let by = match (&a.body_id, str_at(&a.doc, "name")) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(n)) => json!({ "name": n }),
        _ => {
            return Err(ApiError::incomplete(
                "StorageDomain [id|name] required for add",
            ))
        }
    };
    let sd = lookup(ctx, "storagedomains", &by, "storage_domain").await?;
    let sdoc = crud::doc_of(&sd)?;
    let attached = data_centers_of(&ctx.engine.store, &sd.id).await?;
    if attached.contains(&dc) {
        return Err(messages::conflict(
            "attach",
            ATTACHED,
            "The Storage Domain is already attached to this Data Center.",
        ));
    }
    if !attached.is_empty() && str_at(&sdoc, "type") == Some("data") {
        return Err(messages::conflict(
            "attach",
            ATTACHED,
            "The Storage Domain is already attached to another Data Center.",
        ));
    }
    if str_at(&sdoc, "status") == Some("locked") {
        return Err(messages::locked("attach", ATTACHED));
    }
    let dcdoc = crud::doc_of(&dc_rec)?;
    let local = bool_at(&dcdoc, "local") == Some(true);
    if local != (str_at(&sdoc, "storage.type") == Some("localfs")) {
        return Err(messages::conflict("attach", ATTACHED, "Local storage domains attach to local Data Centers only, and shared ones to shared Data Centers."));
    }
    let hosts = hosts_up_in(&ctx.engine.store, &dc).await?;
    let Some(host) = hosts.first() else {
        return Err(messages::conflict(
            "attach",
            ATTACHED,
            "There is no active Host in the Data Center.",
        ));
    };
    let master =
        str_at(&sdoc, "type") == Some("data") && !has_master(&ctx.engine.store, &dc).await?;
    a.doc =
        json!({ "data_center": reference(&dc), "status": "locked", "master": master.to_string() });
    a.set_member_id(&sd.id);
    a.notes = json!({ "host": host.id, "master": master, "spec": serde_json::to_value(spec_of(&sd.id, &sdoc)).unwrap_or(Value::Null) });
    Ok(())
}

async fn has_master(store: &Store, dc: &str) -> ApiResult<bool> {
    for r in store
        .list(ATTACHED, &Query::new(Filter::ParentIs(dc.to_string())))
        .await?
    {
        if bool_at(&crud::doc_of(&r)?, "master") == Some(true) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sets a domain's status (and master flag) on both its record and its attachment.
async fn set_state(
    tx: &mut Tx,
    dc: &str,
    sd: &str,
    status: &str,
    master: Option<bool>,
) -> ApiResult<()> {
    if let Some(r) = tx
        .get(ATTACHED, &crate::bootstrap::sub_record_id(dc, sd))
        .await?
    {
        let mut d = crud::doc_of(&r)?;
        set(&mut d, "status", json!(status));
        if let Some(m) = master {
            set(&mut d, "master", s(m));
        }
        index::update(tx, &r, &d, None).await?;
    }
    if let Some(r) = tx.get("storagedomains", sd).await? {
        let mut d = crud::doc_of(&r)?;
        set(&mut d, "status", json!(status));
        if let Some(m) = master {
            set(&mut d, "master", s(m));
        }
        set(
            &mut d,
            "data_centers",
            json!({ "data_center": [reference(dc)] }),
        );
        index::update(tx, &r, &d, None).await?;
    }
    Ok(())
}

pub async fn in_tx_attach(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    at: &Location,
    a: &mut Adding,
) -> ApiResult<()> {
    let dc = at.parent_id().unwrap_or_default().to_string();
    let master = a
        .notes
        .get("master")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(r) = tx.get("storagedomains", &a.id).await? {
        let mut d = crud::doc_of(&r)?;
        set(&mut d, "status", json!("locked"));
        set(&mut d, "master", s(master));
        set(
            &mut d,
            "data_centers",
            json!({ "data_center": [reference(&dc)] }),
        );
        index::update(tx, &r, &d, None).await?;
    }
    let sd_name = tx
        .get("storagedomains", &a.id)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default();
    let dc_name = tx
        .get("datacenters", &dc)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default();
    let job = jobs::begin(
        tx,
        &Who::of(ctx),
        &format!("Attaching Storage Domain {sd_name} to Data Center {dc_name}"),
        "Executing",
    )
    .await?;
    a.notes["job"] = json!(job.id);
    Ok(())
}

pub fn after_attach(ctx: &Ctx<'_>, at: &Location, a: &Adding) -> Option<JoinHandle<()>> {
    let dc = at.parent_id()?.to_string();
    let host = str_at(&a.notes, "host")?.to_string();
    let spec: DomainSpec = serde_json::from_value(a.notes.get("spec")?.clone()).ok()?;
    let job = str_at(&a.notes, "job").map(str::to_string);
    Some(activate_in_background(ctx, dc, spec, host, job, 962))
}

/// Connects the domain on a host of the data center, then marks it `active` (and the data
/// center `up` when it is the master).
fn activate_in_background(
    ctx: &Ctx<'_>,
    dc: String,
    spec: DomainSpec,
    host: String,
    job: Option<String>,
    failed_code: i64,
) -> JoinHandle<()> {
    let store = ctx.engine.store.clone();
    let who = Who::of(ctx);
    let agent = agent::resolver(ctx.engine, &host);
    tasks::spawn("activate storage domain", async move {
        let sd = spec.id.clone();
        let result = match agent.await {
            Ok(a) => agent::bounded(agent::WORK_TIMEOUT, a.connect_domain(&spec))
                .await
                .map(|i| (i, a))
                .map_err(|e| e.message),
            Err(e) => Err(e.detail),
        };
        let mut tx = store.begin().await?;
        let sd_name = tx
            .get("storagedomains", &sd)
            .await?
            .and_then(|r| r.name)
            .unwrap_or_default();
        let dc_name = tx
            .get("datacenters", &dc)
            .await?
            .and_then(|r| r.name)
            .unwrap_or_default();
        let refs = EventRefs {
            storage_domain_id: Some(sd.clone()),
            data_center_id: Some(dc.clone()),
            ..Default::default()
        };
        let ok = result.is_ok();
        match result {
            Ok((info, _)) => {
                set_state(&mut tx, &dc, &sd, "active", None)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.detail))?;
                if let Some(r) = tx.get("storagedomains", &sd).await? {
                    let mut d = crud::doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?;
                    set(&mut d, "available", s(info.available_bytes));
                    set(&mut d, "used", s(info.used_bytes));
                    index::update(&mut tx, &r, &d, None)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
                let text = format!(
                    "Storage Domain {sd_name} (Data Center {dc_name}) was activated by {}",
                    who.user_name
                );
                tx.insert_event(&events::event(&who, 966, "normal", text, refs))
                    .await?;
            }
            Err(why) => {
                set_state(&mut tx, &dc, &sd, "inactive", None)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.detail))?;
                let text = if failed_code == 962 {
                    format!(
                        "Failed to attach Storage Domain {sd_name} to Data Center {dc_name}: {why}"
                    )
                } else {
                    format!("Failed to activate Storage Domain {sd_name} (Data Center {dc_name}): {why}")
                };
                tx.insert_event(&events::event(&who, failed_code + 1, "error", text, refs))
                    .await?;
            }
        }
        datacenters::refresh_status(&mut tx, &dc)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        if let Some(j) = &job {
            jobs::end(&mut tx, j, ok)
                .await
                .map_err(|e| anyhow::anyhow!(e.detail))?;
        }
        tx.commit().await?;
        Ok(())
    })
}

async fn vms_running_on(ctx: &Ctx<'_>, sd: &str) -> ApiResult<Vec<Record>> {
    let mut vms = Vec::new();
    for d in where_eq(ctx, "disks", "storage_domains.id", sd).await? {
        for att in where_eq(ctx, "vms/diskattachments", "disk.id", &d.id).await? {
            let Some(vm) = att.parent_id else { continue };
            if let Some(v) = ctx.engine.store.get("vms", &vm).await? {
                if !matches!(str_at(&crud::doc_of(&v)?, "status"), Some("down") | None)
                    && !vms.iter().any(|x: &Record| x.id == v.id)
                {
                    vms.push(v);
                }
            }
        }
    }
    Ok(vms)
}

pub async fn check_detach(ctx: &Ctx<'_>, at: &Location, doc: &Value) -> ApiResult<()> {
    let dc = at.parent_id().unwrap_or_default();
    let sd = str_at(doc, "id").unwrap_or_default();
    match str_at(doc, "status") {
        Some("maintenance") | Some("inactive") | Some("unknown") => {}
        Some(st) => {
            return Err(messages::conflict(
                "detach",
                ATTACHED,
                &format!("The Storage Domain's status is {st}; move it to maintenance first."),
            ))
        }
        None => {}
    }
    if bool_at(doc, "master") == Some(true) {
        let others = ctx
            .engine
            .store
            .count(ATTACHED, &Filter::ParentIs(dc.to_string()))
            .await?;
        if others > 1 {
            return Err(ApiError::conflict("Cannot detach the master Storage Domain from the Data Center while there are other storage domains attached to it.\n-Please try to activate another Storage Domain in the Data Center."));
        }
        let disks = where_eq(ctx, "disks", "storage_domains.id", sd).await?;
        let mut vms = Vec::new();
        for d in &disks {
            for att in where_eq(ctx, "vms/diskattachments", "disk.id", &d.id).await? {
                if let Some(vm) = att.parent_id {
                    if let Some(v) = ctx.engine.store.get("vms", &vm).await? {
                        vms.push(v);
                    }
                }
            }
        }
        if !vms.is_empty() {
            return Err(messages::conflict(
                "detach",
                ATTACHED,
                &format!(
                    "The master Storage Domain holds disks of VMs ({}). Remove or move them first.",
                    names(&vms, 10)
                ),
            ));
        }
        if !disks.is_empty() {
            return Err(messages::conflict(
                "detach",
                ATTACHED,
                &format!(
                    "The master Storage Domain holds {} disk(s). Remove or move them first.",
                    disks.len()
                ),
            ));
        }
    }
    Ok(())
}

pub async fn mark_unattached(tx: &mut Tx, sd: &str) -> ApiResult<()> {
    if let Some(r) = tx.get("storagedomains", sd).await? {
        let mut d = crud::doc_of(&r)?;
        set(&mut d, "status", json!("unattached"));
        set(&mut d, "master", s(false));
        if let Value::Object(o) = &mut d {
            o.remove("data_centers");
            o.remove("data_center");
        }
        index::update(tx, &r, &d, None).await?;
    }
    Ok(())
}

pub async fn in_tx_detach(tx: &mut Tx, at: &Location, doc: &Value) -> ApiResult<()> {
    let sd = str_at(doc, "id").unwrap_or_default().to_string();
    mark_unattached(tx, &sd).await?;
    // The attachment is deleted by the caller after this; the status must not count it.
    if let Some(dc) = at.parent_id() {
        if let Some(r) = tx
            .get(ATTACHED, &crate::bootstrap::sub_record_id(dc, &sd))
            .await?
        {
            tx.delete(ATTACHED, &r.id).await?;
        }
        datacenters::refresh_status(tx, dc).await?;
    }
    Ok(())
}

/// Connects the domain on the host about to work on it (connecting again is harmless): a host
/// that restarted, or became the one that does the work, may not have it yet.
pub async fn ensure_connected(
    store: &Store,
    agent: &dyn Storage,
    sd: &str,
) -> Result<(), vireo_agent_proto::AgentError> {
    let doc = match store.get("storagedomains", sd).await {
        Ok(Some(r)) => crud::doc_of(&r).ok(),
        _ => None,
    };
    let Some(doc) = doc else { return Ok(()) };
    agent::bounded(
        agent::REQUEST_TIMEOUT,
        agent.connect_domain(&spec_of(sd, &doc)),
    )
    .await
    .map(|_| ())
}

/// Space on the domain as a host reports it; committed = what its disks may grow to.
pub async fn refresh_space(store: &Store, agent: &dyn Storage, sd: &str) {
    let Ok(info) = agent::bounded(agent::REQUEST_TIMEOUT, agent.domain_info(sd)).await else {
        return;
    };
    let r: anyhow::Result<()> = async {
        let committed: i64 = store
            .list("disks", &Query::new(Filter::eq("storage_domains.id", sd)))
            .await?
            .iter()
            .filter_map(|d| crud::doc_of(d).ok())
            .filter_map(|d| int_at(&d, "provisioned_size"))
            .sum();
        let mut tx = store.begin().await?;
        if let Some(r) = tx.get("storagedomains", sd).await? {
            let mut d = crud::doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?;
            set(&mut d, "available", s(info.available_bytes));
            set(&mut d, "used", s(info.used_bytes));
            set(&mut d, "committed", s(committed));
            index::update(&mut tx, &r, &d, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    if let Err(e) = r {
        tracing::debug!(storage_domain = sd, error = %e, "space of the domain not refreshed");
    }
}

// ---- actions ------------------------------------------------------------------------------

/// Actions on domains: activate and deactivate (on a data center's), and `is_attached` and
/// `update_ovf_store` on the domain itself.
pub async fn action(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    use crate::inventory::actions::{body, done};
    let sd = at.id.clone().unwrap_or_default();
    match (at.kind.kind, action) {
        ("storagedomains", "isattached") => {
            let b = body(ctx)?;
            ctx.engine
                .store
                .get("storagedomains", &sd)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no storage domain with id '{sd}'")))?;
            let attached = !data_centers_of(&ctx.engine.store, &sd).await?.is_empty();
            let a = vireo_model::Action {
                is_attached: Some(attached),
                status: Some("complete".into()),
                ..b
            };
            Ok(Some(ctx.ok(StatusCode::OK, &a)))
        }
        ("storagedomains", "updateovfstore") => {
            let b = body(ctx)?;
            ctx.engine
                .store
                .get("storagedomains", &sd)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no storage domain with id '{sd}'")))?;
            done(ctx, b, None).map(Some)
        }
        (ATTACHED, "activate") => activate(ctx, at, &sd).await.map(Some),
        (ATTACHED, "deactivate") => deactivate(ctx, at, &sd).await.map(Some),
        _ => Ok(None),
    }
}

async fn attached_doc(ctx: &Ctx<'_>, dc: &str, sd: &str) -> ApiResult<Value> {
    let r = ctx
        .engine
        .store
        .get(ATTACHED, &crate::bootstrap::sub_record_id(dc, sd))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no storage domain with id '{sd}' in this data center"
            ))
        })?;
    crud::doc_of(&r)
}

async fn activate(ctx: &Ctx<'_>, at: &Location, sd: &str) -> ApiResult<Response> {
    let b = crate::inventory::actions::body(ctx)?;
    let dc = at.parent_id().unwrap_or_default().to_string();
    let att = attached_doc(ctx, &dc, sd).await?;
    match str_at(&att, "status") {
        Some("maintenance") | Some("inactive") | Some("unknown") => {}
        Some("active") => {
            return Err(messages::conflict(
                "activate",
                ATTACHED,
                "The Storage Domain is already active.",
            ))
        }
        Some("locked") => return Err(messages::locked("activate", ATTACHED)),
        Some(st) => {
            return Err(messages::conflict(
                "activate",
                ATTACHED,
                &format!("The Storage Domain's status is {st}."),
            ))
        }
        None => {}
    }
    let host = hosts_up_in(&ctx.engine.store, &dc)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            messages::conflict(
                "activate",
                ATTACHED,
                "There is no active Host in the Data Center.",
            )
        })?;
    let sdrec = ctx
        .engine
        .store
        .get("storagedomains", sd)
        .await?
        .ok_or_else(|| ApiError::not_found("no such storage domain"))?;
    let sdoc = crud::doc_of(&sdrec)?;
    let becomes_master =
        str_at(&sdoc, "type") == Some("data") && !has_active_master(&ctx.engine.store, &dc).await?;
    let mut tx = ctx.engine.store.begin().await?;
    if becomes_master {
        clear_master(&mut tx, &dc).await?;
    }
    set_state(&mut tx, &dc, sd, "locked", becomes_master.then_some(true)).await?;
    let job = jobs::begin(
        &mut tx,
        &Who::of(ctx),
        &format!(
            "Activating Storage Domain {}",
            sdrec.name.clone().unwrap_or_default()
        ),
        "Executing",
    )
    .await?;
    tx.commit().await?;
    let h = activate_in_background(
        ctx,
        dc,
        spec_of(sd, &sdoc),
        host.id,
        Some(job.id.clone()),
        966,
    );
    if !crate::inventory::actions::is_async(ctx, &b) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(120), h).await;
    }
    crate::inventory::actions::done(ctx, b, Some(&job.id))
}

async fn has_active_master(store: &Store, dc: &str) -> ApiResult<bool> {
    for r in store
        .list(ATTACHED, &Query::new(Filter::ParentIs(dc.to_string())))
        .await?
    {
        let d = crud::doc_of(&r)?;
        if bool_at(&d, "master") == Some(true)
            && matches!(str_at(&d, "status"), Some("active") | Some("locked"))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn clear_master(tx: &mut Tx, dc: &str) -> ApiResult<()> {
    for r in tx
        .list(ATTACHED, &Query::new(Filter::ParentIs(dc.to_string())))
        .await?
    {
        let d = crud::doc_of(&r)?;
        if bool_at(&d, "master") == Some(true) {
            if let Some(id) = str_at(&d, "id") {
                let status = str_at(&d, "status").unwrap_or("maintenance").to_string();
                set_state(tx, dc, id, &status, Some(false)).await?;
            }
        }
    }
    Ok(())
}

async fn deactivate(ctx: &Ctx<'_>, at: &Location, sd: &str) -> ApiResult<Response> {
    let b = crate::inventory::actions::body(ctx)?;
    let dc = at.parent_id().unwrap_or_default().to_string();
    let att = attached_doc(ctx, &dc, sd).await?;
    match str_at(&att, "status") {
        Some("active") => {}
        Some("locked") => return Err(messages::locked("deactivate", ATTACHED)),
        Some(st) => {
            return Err(messages::conflict(
                "deactivate",
                ATTACHED,
                &format!("The Storage Domain's status is {st}."),
            ))
        }
        None => {}
    }
    let running = vms_running_on(ctx, sd).await?;
    if !running.is_empty() {
        return Err(messages::conflict(
            "deactivate",
            ATTACHED,
            &format!(
                "The following VMs are running with disks on the Storage Domain: {}.",
                names(&running, 10)
            ),
        ));
    }
    let is_master = bool_at(&att, "master") == Some(true);
    let mut new_master = None;
    if is_master {
        let mut others_non_data = false;
        for r in ctx
            .engine
            .store
            .list(ATTACHED, &Query::new(Filter::ParentIs(dc.clone())))
            .await?
        {
            let d = crud::doc_of(&r)?;
            let id = str_at(&d, "id").unwrap_or_default().to_string();
            if id == sd || str_at(&d, "status") != Some("active") {
                continue;
            }
            let t = ctx
                .engine
                .store
                .get("storagedomains", &id)
                .await?
                .map(|r| crud::doc_of(&r))
                .transpose()?;
            match t.as_ref().and_then(|t| str_at(t, "type")) {
                Some("data") if new_master.is_none() => new_master = Some(id),
                Some("data") => {}
                _ => others_non_data = true,
            }
        }
        if new_master.is_none() && others_non_data {
            return Err(ApiError::conflict("Cannot deactivate Master Storage Domain while there are other active non-data domains (ISO/Export) in the Data Center.\n-Please deactivate them first."));
        }
    }
    let store = ctx.engine.store.clone();
    let who = Who::of(ctx);
    let mut tx = store.begin().await?;
    set_state(
        &mut tx,
        &dc,
        sd,
        "preparing_for_maintenance",
        is_master.then_some(new_master.is_none()),
    )
    .await?;
    if let Some(m) = &new_master {
        set_state(&mut tx, &dc, m, "active", Some(true)).await?;
    }
    let sd_name = tx
        .get("storagedomains", sd)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default();
    let dc_name = tx
        .get("datacenters", &dc)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default();
    let refs = EventRefs {
        storage_domain_id: Some(sd.to_string()),
        data_center_id: Some(dc.clone()),
        ..Default::default()
    };
    let text = format!("Storage Domain {sd_name} (Data Center {dc_name}) was deactivated and has moved to 'Preparing for maintenance' until it will no longer be accessed by any Host of the Data Center.");
    events::emit(
        &mut tx,
        events::event(&who, 968, "normal", text, refs.clone()),
    )
    .await?;
    let job = jobs::begin(
        &mut tx,
        &who,
        &format!("Deactivating Storage Domain {sd_name}"),
        "Executing",
    )
    .await?;
    tx.commit().await?;
    let sd = sd.to_string();
    let job_id = job.id.clone();
    let h = tasks::spawn("deactivate storage domain", async move {
        // Hosts stop using the domain: what a real engine waits for on its hosts.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut tx = store.begin().await?;
        set_state(&mut tx, &dc, &sd, "maintenance", None)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        let text = format!("Storage Domain {sd_name} (Data Center {dc_name}) successfully moved to Maintenance as it's no longer accessed by any Host of the Data Center.");
        tx.insert_event(&events::event(&who, 1029, "normal", text, refs))
            .await?;
        datacenters::refresh_status(&mut tx, &dc)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        jobs::end(&mut tx, &job_id, true)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        tx.commit().await?;
        Ok(())
    });
    if !crate::inventory::actions::is_async(ctx, &b) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), h).await;
    }
    crate::inventory::actions::done(ctx, b, Some(&job.id))
}

// ---- files of ISO domains ----------------------------------------------------------------

/// `/storagedomains/{id}/files`: what a host finds in the domain (ISO images for CD-ROMs).
pub async fn files(
    ctx: &Ctx<'_>,
    sd: &str,
    id: Option<&str>,
    op: MethodKind,
) -> ApiResult<Option<Response>> {
    if !matches!(op, MethodKind::List | MethodKind::Get) {
        return Ok(None);
    }
    let rec = ctx
        .engine
        .store
        .get("storagedomains", sd)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no storage domain with id '{sd}'")))?;
    let doc = crud::doc_of(&rec)?;
    let list: Vec<vireo_agent_proto::FileInfo> = if str_at(&doc, "type") != Some("iso") {
        Vec::new()
    } else {
        let host = host_for(&ctx.engine.store, sd).await?.ok_or_else(|| {
            ApiError::conflict(
                "Cannot get the files of the Storage Domain: no host that can reach it is up.",
            )
        })?;
        let agent: Arc<dyn Storage> = agent::storage_for(ctx.engine, &host).await?;
        agent::bounded(agent::REQUEST_TIMEOUT, agent.list_files(sd))
            .await
            .map_err(|e| agent::fault("list files of", "storagedomains", &e))?
    };
    let file = |f: &vireo_agent_proto::FileInfo| vireo_model::File {
        id: Some(f.name.clone()),
        name: Some(f.name.clone()),
        href: Some(format!(
            "/ovirt-engine/api/storagedomains/{sd}/files/{}",
            f.name
        )),
        storage_domain: Some(Box::new(vireo_model::StorageDomain {
            id: Some(sd.to_string()),
            href: Some(format!("/ovirt-engine/api/storagedomains/{sd}")),
            ..Default::default()
        })),
        ..Default::default()
    };
    match id {
        Some(id) => {
            let f = list
                .iter()
                .find(|f| f.name == id)
                .ok_or_else(|| ApiError::not_found(format!("no file '{id}' in the domain")))?;
            Ok(Some(ctx.ok(StatusCode::OK, &file(f))))
        }
        None => {
            let items: Vec<vireo_model::File> = list.iter().map(file).collect();
            let mut res = (StatusCode::OK, ctx.format.render_list(&items)).into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, ctx.format.content_type());
            Ok(Some(res))
        }
    }
}
