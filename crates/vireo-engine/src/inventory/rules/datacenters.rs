//! Data centers: compatibility version and defaults on add; what oVirt creates with each one
//! (the management network with its vNIC profile, the default quota); what may not be removed;
//! the status that follows from their storage.

use super::common::*;
use super::networks;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::{crud, index, messages};
use serde_json::{json, Value};
use vireo_store::{Filter, Query, Tx};

/// The compatibility levels this engine serves (oVirt 4.5: 4.2 to 4.8).
pub const LEVELS: std::ops::RangeInclusive<i64> = 2..=8;

pub fn check_version(action: &str, kind: &str, doc: &Value) -> ApiResult<()> {
    let major = int_at(doc, "version.major").unwrap_or(4);
    let minor = int_at(doc, "version.minor").unwrap_or(8);
    if major != 4 || !LEVELS.contains(&minor) {
        return Err(messages::invalid(
            action,
            kind,
            &format!("Compatibility version {major}.{minor} is not supported (4.2 to 4.8 are)."),
        ));
    }
    Ok(())
}

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let doc = &mut a.doc;
    default(doc, "local", s(false));
    default(doc, "quota_mode", json!("disabled"));
    default(doc, "version", json!({"major": "4", "minor": "8"}));
    check_version("add", "datacenters", doc)?;
    // Status and what follows from storage are the engine's, not the client's.
    set(doc, "status", json!("uninitialized"));
    if let Value::Object(o) = doc {
        o.remove("storage_format");
    }
    let minor = int_at(doc, "version.minor").unwrap_or(8);
    set(
        doc,
        "supported_versions",
        json!({"version": (minor..=*LEVELS.end()).map(|m| json!({"major": "4", "minor": m.to_string()})).collect::<Vec<_>>()}),
    );
    match resolve_ref(ctx, doc, "mac_pool", "macpools").await? {
        Some(_) => {}
        None => set(doc, "mac_pool", reference(crate::bootstrap::ids::MAC_POOL)),
    }
    Ok(())
}

/// oVirt's AddEmptyStoragePool: the default quota and the management network come with it.
pub async fn in_tx_add(tx: &mut Tx, _ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let quota = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "name": "Default",
        "description": "Default unlimited quota",
        "data_center": reference(&a.id),
        "cluster_hard_limit_pct": "20",
        "storage_hard_limit_pct": "20",
        "cluster_soft_limit_pct": "80",
        "storage_soft_limit_pct": "80",
    });
    let qid = quota["id"].as_str().unwrap_or_default().to_string();
    index::insert(
        tx,
        "datacenters/quotas",
        &crate::bootstrap::sub_record_id(&a.id, &qid),
        &quota,
        Some(&a.id),
        &[],
    )
    .await?;
    networks::insert_network(tx, &a.id, "ovirtmgmt", "Management Network").await?;
    Ok(())
}

pub async fn prepare_update(_ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    check_version("edit", "datacenters", doc)?;
    for k in ["status", "storage_format", "supported_versions"] {
        match before.get(k) {
            Some(v) => set(doc, k, v.clone()),
            None => {
                if let Value::Object(o) = doc {
                    o.remove(k);
                }
            }
        }
    }
    if int_at(doc, "version.minor") < int_at(before, "version.minor") {
        return Err(messages::invalid(
            "edit",
            "datacenters",
            "The compatibility version of a Data Center cannot be lowered.",
        ));
    }
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    if str_at(doc, "status") == Some("up") {
        return Err(ApiError::conflict("Cannot remove an active Data Center."));
    }
    let attached = ctx
        .engine
        .store
        .list(
            "datacenters/storagedomains",
            &Query::new(Filter::ParentIs(id.to_string())),
        )
        .await?;
    if attached.len() > 1 {
        return Err(ApiError::conflict(
            "Cannot remove Data Center when more than one Storage Domain is attached.",
        ));
    }
    for r in &attached {
        let d = crud::doc_of(r)?;
        if !matches!(
            str_at(&d, "status"),
            Some("maintenance") | Some("inactive") | Some("unattached")
        ) {
            return Err(ApiError::conflict("Cannot remove Data Center which contains active/locked Storage Domains.\n-Please deactivate all domains and wait for tasks to finish before removing the Data Center."));
        }
    }
    Ok(())
}

/// Networks, quotas and attachments go with it; its clusters stay, without a data center.
pub async fn in_tx_remove(tx: &mut Tx, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default().to_string();
    for n in tx
        .list(
            "networks",
            &Query::new(Filter::eq("data_center.id", id.as_str())),
        )
        .await?
    {
        networks::delete_network(tx, &n).await?;
    }
    for r in tx
        .list(
            "datacenters/storagedomains",
            &Query::new(Filter::ParentIs(id.clone())),
        )
        .await?
    {
        let d = crud::doc_of(&r)?;
        if let Some(sd) = str_at(&d, "id") {
            super::storage::mark_unattached(tx, sd).await?;
        }
    }
    for c in tx
        .list(
            "clusters",
            &Query::new(Filter::eq("data_center.id", id.as_str())),
        )
        .await?
    {
        let mut d = crud::doc_of(&c)?;
        if let Value::Object(o) = &mut d {
            o.remove("data_center");
        }
        index::update(tx, &c, &d, None).await?;
    }
    Ok(())
}

/// Recomputes a data center's status from its storage, as oVirt's pool status follows its
/// master domain: `up` once a master data domain is active, `maintenance` when it is in
/// maintenance, `uninitialized` with no data domain, `not_operational` otherwise.
pub async fn refresh_status(tx: &mut Tx, dc: &str) -> ApiResult<()> {
    let Some(rec) = tx.get("datacenters", dc).await? else {
        return Ok(());
    };
    let mut doc = crud::doc_of(&rec)?;
    let attached = tx
        .list(
            "datacenters/storagedomains",
            &Query::new(Filter::ParentIs(dc.to_string())),
        )
        .await?;
    let mut status = "uninitialized";
    for r in &attached {
        let d = crud::doc_of(r)?;
        if bool_at(&d, "master") == Some(true) {
            status = match str_at(&d, "status") {
                Some("active") => "up",
                Some("maintenance") => "maintenance",
                Some("locked") => "uninitialized",
                _ => "not_operational",
            };
        }
    }
    if str_at(&doc, "status") != Some(status) {
        set(&mut doc, "status", json!(status));
        if status == "up" {
            default(&mut doc, "storage_format", json!("v5"));
        }
        index::update(tx, &rec, &doc, None).await?;
    }
    Ok(())
}
