//! Image transfers (`/imagetransfers`): upload and download of a disk's image through the
//! data path of a host agent (the ovirt-imageio protocol at `transfer_url`).
//!
//! `POST /imagetransfers` checks the disk (exists, `ok`, not plugged into a VM that is not
//! down), picks an up host that reaches its storage domain, locks the disk and stores the
//! transfer `initializing`; [`watch`] then opens a ticket on the host (`transferring`) and
//! follows the transfer until it ends, as oVirt's TransferDiskImageCommand does: ticket
//! renewal, `transferred`/`active` from the host, inactivity per `timeout_policy`, and the
//! user's `finalize`/`cancel`/`pause`/`resume` (actions here, phases in the store).

pub mod proxy;
pub mod watch;

use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::actions as act;
use crate::inventory::events::Who;
use crate::inventory::rules::common::*;
use crate::inventory::rules::{disks, storage, Adding};
use crate::inventory::{doc_of, index, messages, Location};
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use tokio::task::JoinHandle;
use vireo_agent::AgentClient;
use vireo_store::{Store, Tx};

pub const KIND: &str = "imagetransfers";

/// Actions implemented, for the coverage count.
pub const ACTIONS: &[&str] = &["finalize", "cancel", "pause", "resume", "extend"];

/// Phases after which nothing happens any more.
pub fn is_final(phase: &str) -> bool {
    matches!(phase, "finished_success" | "finished_failure")
}

fn cannot(rest: &str) -> ApiError {
    messages::conflict("transfer", "disks", rest)
}

/// The agent of a host, kept per address (each client holds a connection pool).
pub async fn client_of(
    store: &Store,
    tls: Arc<rustls::ClientConfig>,
    host_id: &str,
) -> Result<(AgentClient, String), String> {
    type Clients = RwLock<HashMap<String, (String, AgentClient)>>;
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Default::default);
    let rec = store
        .get("hosts", host_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no host {host_id}"))?;
    let doc = doc_of(&rec).map_err(|e| e.detail)?;
    let address = str_at(&doc, "address").unwrap_or_default().to_string();
    let port = int_at(&doc, "port").unwrap_or(54321) as u16;
    let key = format!("{address}:{port}");
    if let Some((k, c)) = clients
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(host_id)
    {
        if *k == key {
            return Ok((c.clone(), rec.name.clone().unwrap_or_default()));
        }
    }
    let c = AgentClient::new(&address, port, tls).map_err(|e| e.message)?;
    clients
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(host_id.to_string(), (key, c.clone()));
    Ok((c, rec.name.unwrap_or_default()))
}

/// The disk a transfer names: `disk` (or the deprecated `image`, a volume id); snapshots and
/// backups are not transferred by vireo yet.
async fn disk_of(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<vireo_store::Record> {
    if doc.get("snapshot").is_some() || doc.get("backup").is_some() {
        return Err(ApiError::not_implemented(
            "transfers of disk snapshots and backups are not implemented by vireo yet",
        ));
    }
    if let Some(id) = str_at(doc, "disk.id") {
        return ctx
            .engine
            .store
            .get("disks", id)
            .await?
            .ok_or_else(|| messages::entity_not_found("Disk", "id", id));
    }
    if let Some(image) = str_at(doc, "image.id") {
        return where_eq(ctx, "disks", "image_id", image)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| messages::entity_not_found("Image", "id", image));
    }
    Err(ApiError::incomplete(
        "ImageTransfer [disk.id|image.id|snapshot.id] required for add",
    ))
}

/// The VMs that are not down with the disk plugged in.
async fn running_vms_of(ctx: &Ctx<'_>, disk: &str) -> ApiResult<Vec<String>> {
    let mut names = Vec::new();
    for att in where_eq(ctx, "vms/diskattachments", "disk.id", disk).await? {
        let Some(vm) = att.parent_id.clone() else {
            continue;
        };
        let Some(v) = ctx.engine.store.get("vms", &vm).await? else {
            continue;
        };
        let vdoc = doc_of(&v)?;
        let adoc = doc_of(&att)?;
        if !matches!(str_at(&vdoc, "status"), Some("down") | None)
            && bool_at(&adoc, "active") != Some(false)
        {
            names.push(v.name.unwrap_or_default());
        }
    }
    Ok(names)
}

/// Validates a new transfer and fills in what oVirt fills in.
pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let disk = disk_of(ctx, &a.doc).await?;
    let ddoc = doc_of(&disk)?;
    let alias = str_at(&ddoc, "alias")
        .or(disk.name.as_deref())
        .unwrap_or_default()
        .to_string();
    let direction = match str_at(&a.doc, "direction").unwrap_or("upload") {
        d @ ("upload" | "download") => d.to_string(),
        d => {
            return Err(ApiError::bad_request(format!(
                "Invalid value '{d}' for direction: upload or download"
            )))
        }
    };
    let disk_format = str_at(&ddoc, "format").unwrap_or("cow").to_string();
    // Without a format, oVirt moves the volume's own bytes.
    let format = match str_at(&a.doc, "format") {
        None => disk_format.clone(),
        Some(f @ ("raw" | "cow")) => f.to_string(),
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "Invalid value '{f}' for format: raw or cow"
            )))
        }
    };
    match str_at(&ddoc, "status") {
        Some("ok") => {}
        Some("locked") => {
            return Err(cannot(&format!(
                "The following disks are locked: {alias}. Please try again in a few minutes."
            )))
        }
        Some("illegal") => {
            return Err(cannot(&format!(
                "Disk {alias} is illegal. Illegal disks can only be removed."
            )))
        }
        s => {
            return Err(cannot(&format!(
                "The disk's status is {}.",
                s.unwrap_or("unknown")
            )))
        }
    }
    if str_at(&ddoc, "storage_type").unwrap_or("image") != "image" {
        return Err(ApiError::not_implemented(
            "only image disks can be transferred by vireo",
        ));
    }
    let running = running_vms_of(ctx, &disk.id).await?;
    if !running.is_empty() {
        return Err(cannot(&format!(
            "The disk {alias} is plugged to non-Down VMs: {}",
            running.join(", ")
        )));
    }
    let domain =
        disks::first_domain(&ddoc).ok_or_else(|| cannot("The disk has no storage domain."))?;
    let volume = str_at(&ddoc, "image_id")
        .ok_or_else(|| cannot("The disk has no volume."))?
        .to_string();
    let sd = ctx
        .engine
        .store
        .get("storagedomains", &domain)
        .await?
        .ok_or_else(|| cannot("The disk's storage domain does not exist."))?;
    let sdoc = doc_of(&sd)?;
    if str_at(&sdoc, "status") != Some("active") {
        return Err(cannot(&format!(
            "The relevant Storage Domain's status is {}.",
            str_at(&sdoc, "status").unwrap_or("inaccessible")
        )));
    }
    let host = match a.doc.get("host").cloned().filter(Value::is_object) {
        Some(r) => {
            let h = lookup(ctx, "hosts", &r, "host").await?;
            if str_at(&doc_of(&h)?, "status") != Some("up") {
                return Err(cannot(&format!(
                    "Host {} is not up.",
                    h.name.clone().unwrap_or_default()
                )));
            }
            h.id
        }
        None => storage::host_for(&ctx.engine.store, &domain)
            .await?
            .ok_or_else(|| cannot("There is no active Host in the Data Center."))?,
    };
    let inactivity = match a.doc.get("inactivity_timeout") {
        None => watch::DEFAULT_INACTIVITY_S,
        Some(_) => match int_at(&a.doc, "inactivity_timeout") {
            Some(n) if n >= 0 => n,
            _ => {
                return Err(ApiError::bad_request(
                    "Invalid value for inactivity_timeout: a number of seconds",
                ))
            }
        },
    };
    let policy = match str_at(&a.doc, "timeout_policy").unwrap_or("legacy") {
        p @ ("legacy" | "pause" | "cancel") => p.to_string(),
        p => {
            return Err(ApiError::bad_request(format!(
                "Invalid value '{p}' for timeout_policy: legacy, pause or cancel"
            )))
        }
    };
    let id = a.id.clone();
    a.doc = json!({
        "id": id,
        "direction": direction,
        "format": format,
        "phase": "initializing",
        "active": s(false),
        "transferred": s(0),
        "inactivity_timeout": s(inactivity),
        "timeout_policy": policy,
        "shallow": s(false),
        "disk": reference(&disk.id),
        "image": reference(&volume),
        "host": reference(&host),
    });
    a.quiet = true;
    a.notes = json!({
        "disk": disk.id,
        "alias": alias,
        "disk_format": disk_format,
        "domain": domain,
        "volume": volume,
        "host": host,
    });
    Ok(())
}

/// Locks the disk in the transaction that stores the transfer (a second transfer of the same
/// disk sees it locked), with oVirt's "initiated" event.
pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let disk = str_at(&a.notes, "disk").unwrap_or_default().to_string();
    let alias = str_at(&a.notes, "alias").unwrap_or_default().to_string();
    let rec = tx
        .get("disks", &disk)
        .await?
        .ok_or_else(|| messages::entity_not_found("Disk", "id", &disk))?;
    let mut d = doc_of(&rec)?;
    if str_at(&d, "status") != Some("ok") {
        return Err(cannot(&format!(
            "The following disks are locked: {alias}. Please try again in a few minutes."
        )));
    }
    set(&mut d, "status", json!("locked"));
    index::update(tx, &rec, &d, None)
        .await
        .map_err(|e| index::conflict(e, "transfer", "disks", &d))?;
    let who = Who::of(ctx);
    let direction = str_at(&a.doc, "direction").unwrap_or("upload");
    let e = watch::event(
        &who,
        1031,
        "normal",
        format!(
            "Image {} with disk {alias} was initiated by {}.",
            watch::transfer_type(direction),
            who.user_name
        ),
        str_at(&a.notes, "domain"),
    );
    tx.insert_event(&e).await?;
    Ok(())
}

/// Starts following the transfer; the handle ends when it is `transferring` (or failed to).
pub fn after_add(ctx: &Ctx<'_>, a: &Adding) -> Option<JoinHandle<()>> {
    let w = watch::Watch::new(ctx, &a.id, &a.notes)?;
    Some(watch::start(w))
}

/// `finalize`, `cancel`, `pause`, `resume`, `extend`.
pub async fn action(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    let Some(id) = at.id.as_deref() else {
        return Ok(None);
    };
    if !ACTIONS.contains(&action) {
        return Ok(None);
    }
    let body = act::body(ctx)?;
    let who = Who::of(ctx);
    let mut tx = ctx.engine.store.begin().await?;
    let rec = tx
        .get(KIND, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no image transfer {id}")))?;
    let mut doc = doc_of(&rec)?;
    let phase = str_at(&doc, "phase").unwrap_or("unknown").to_string();
    let next = match (action, phase.as_str()) {
        ("finalize", "transferring" | "paused_user" | "paused_system") => "finalizing_success",
        ("cancel", p)
            if !is_final(p) && !p.starts_with("finalizing") && !p.starts_with("cancelled") =>
        {
            "cancelled_user"
        }
        ("pause", "transferring" | "initializing") => "paused_user",
        ("resume", "paused_user" | "paused_system") => "resuming",
        // Tickets are renewed while the transfer lives; extend asks for nothing more.
        ("extend", p) if !is_final(p) => "",
        ("resume", _) => {
            return Err(ApiError::conflict(
                "Cannot resume image transfer as it's not in a paused state.",
            ))
        }
        (a, p) => {
            return Err(ApiError::conflict(format!(
                "Cannot {a} image transfer: its phase is {p}."
            )))
        }
    };
    if !next.is_empty() {
        set(&mut doc, "phase", json!(next));
        index::update(&mut tx, &rec, &doc, None)
            .await
            .map_err(|e| index::conflict(e, action, KIND, &doc))?;
        if action == "pause" {
            let e = watch::event(
                &who,
                1073,
                "normal",
                format!("Image transfer was paused by user ({}).", who.user_name),
                None,
            );
            tx.insert_event(&e).await?;
        }
    }
    tx.commit().await?;
    watch::wake(id);
    act::done(ctx, body, None).map(Some)
}
