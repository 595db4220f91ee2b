//! NICs of VMs (and of templates and instance types, which carry no address): defaults, the
//! vNIC profile, and for VMs an address from the MAC pool of their cluster.

use super::common::*;
use super::macpools;
use super::Adding;
use crate::api::fault::ApiResult;
use crate::api::Ctx;
use crate::inventory::{crud, messages, Location};
use serde_json::{json, Value};
use vireo_store::Tx;

pub async fn prepare_add(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let doc = &mut a.doc;
    default(doc, "interface", json!("virtio"));
    default(doc, "linked", s(true));
    default(doc, "plugged", s(true));
    resolve_ref(ctx, doc, "vnic_profile", "vnicprofiles").await?;
    if at.kind.kind != "vms/nics" {
        if let Value::Object(o) = doc {
            o.remove("mac");
        }
    }
    if let Some(p) = at.parent_id() {
        let owner = match at.kind.kind {
            "vms/nics" => "vm",
            "templates/nics" => "template",
            _ => "instance_type",
        };
        set(doc, owner, reference(p));
    }
    Ok(())
}

pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let vm = a.parent.clone().unwrap_or_default();
    let pool = macpools::pool_of_vm(tx, &vm).await?;
    let mac = match str_at(&a.doc, "mac.address").map(str::to_string) {
        Some(m) => macpools::reserve(tx, &pool, &m, "add").await?,
        None => macpools::allocate(tx, &pool).await?,
    };
    set(&mut a.doc, "mac", json!({ "address": mac }));
    // A running VM gets the NIC now, with its address: a host failure rolls the add back.
    if bool_at(&a.doc, "plugged") == Some(true) {
        crate::hosts::devices::plug_nic(ctx, &vm, &a.doc, true).await?;
    }
    Ok(())
}

pub async fn prepare_update(
    ctx: &Ctx<'_>,
    at: &Location,
    before: &Value,
    doc: &mut Value,
) -> ApiResult<()> {
    resolve_ref(ctx, doc, "vnic_profile", "vnicprofiles").await?;
    let plugged = bool_at(doc, "plugged");
    if at.kind.kind == "vms/nics" && plugged.is_some() && plugged != bool_at(before, "plugged") {
        if let Some(vm) = at.parent_id() {
            crate::hosts::devices::plug_nic(ctx, vm, doc, plugged == Some(true)).await?;
        }
    }
    Ok(())
}

pub async fn in_tx_update(
    tx: &mut Tx,
    at: &Location,
    before: &Value,
    doc: &mut Value,
) -> ApiResult<()> {
    let (old, new) = (
        str_at(before, "mac.address"),
        str_at(doc, "mac.address").map(str::to_string),
    );
    if let Some(new) = new {
        if old.map(|o| !o.eq_ignore_ascii_case(&new)).unwrap_or(true) {
            let pool = macpools::pool_of_vm(tx, at.parent_id().unwrap_or_default()).await?;
            let mac = macpools::reserve(tx, &pool, &new, "edit").await?;
            set(doc, "mac", json!({ "address": mac }));
        }
    }
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, at: &Location, doc: &Value) -> ApiResult<()> {
    let Some(vm) = at.parent_id() else {
        return Ok(());
    };
    let Some(v) = ctx.engine.store.get("vms", vm).await? else {
        return Ok(());
    };
    let status = str_at(&crud::doc_of(&v)?, "status")
        .unwrap_or("down")
        .to_string();
    if bool_at(doc, "plugged") == Some(true) && !matches!(status.as_str(), "down" | "image_locked")
    {
        return Err(messages::conflict(
            "remove",
            "vms/nics",
            "The VM Network Interface is plugged to a running VM.",
        ));
    }
    Ok(())
}
