//! Logical networks (per data center), their vNIC profiles and labels. As oVirt does, a new
//! network gets a vNIC profile of the same name, and the management network cannot go.

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::bootstrap::ids;
use crate::inventory::{crud, index, messages, Location};
use serde_json::{json, Value};
use vireo_store::{Filter, Query, Record, Tx};

/// Linux bridge names: what a host can call the network (oVirt's `vdsm_name`).
fn bridge_name(name: &str, id: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        name.to_string()
    } else {
        format!(
            "on{}",
            id.replace('-', "").chars().take(13).collect::<String>()
        )
    }
}

fn check_vlan(action: &str, doc: &Value) -> ApiResult<Option<i64>> {
    let Some(v) = doc.get("vlan") else {
        return Ok(None);
    };
    let id = int_at(v, "id");
    match id {
        Some(n) if (0..=4094).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::operation_failed(
            axum::http::StatusCode::BAD_REQUEST,
            &[format!(
                "Cannot {action} Network. VLAN ID must be a number between 0 and 4094."
            )],
        )),
    }
}

async fn vlan_in_use(ctx: &Ctx<'_>, dc: &str, vlan: i64, except: Option<&str>) -> ApiResult<bool> {
    for n in where_eq(ctx, "networks", "data_center.id", dc).await? {
        let d = crud::doc_of(&n)?;
        if int_at(&d, "vlan.id") == Some(vlan) && Some(n.id.as_str()) != except {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let dc = require_ref(ctx, &mut a.doc, "data_center", "datacenters", "Network").await?;
    let doc = &mut a.doc;
    if let Some(v) = check_vlan("add", doc)? {
        if vlan_in_use(ctx, &dc.id, v, None).await? {
            return Err(ApiError::conflict(format!(
                "Cannot add Network. The specified VLAN ID ({v}) is already in use."
            )));
        }
    }
    if int_at(doc, "mtu").unwrap_or(0) < 0 {
        return Err(messages::invalid(
            "add",
            "networks",
            "The MTU must be 0 (the default) or more.",
        ));
    }
    default(doc, "usages", json!({"usage": ["vm"]}));
    default(doc, "mtu", s(0));
    default(doc, "stp", s(false));
    default(doc, "port_isolation", s(false));
    default(doc, "comment", json!(""));
    let name = str_at(doc, "name").unwrap_or_default().to_string();
    set(doc, "vdsm_name", json!(bridge_name(&name, &a.id)));
    // Members of the cluster attachment, not of the network.
    if let Value::Object(o) = doc {
        for k in ["cluster", "required", "display", "status"] {
            o.remove(k);
        }
    }
    Ok(())
}

/// oVirt's AddNetwork with `vnicProfileRequired` (the default): a profile of the same name.
pub async fn in_tx_add(tx: &mut Tx, _ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    if bool_at(&a.doc, "profile_required") == Some(false) {
        return Ok(());
    }
    let name = str_at(&a.doc, "name").unwrap_or_default().to_string();
    insert_profile(tx, &a.id, &name).await?;
    Ok(())
}

fn profile_doc(id: &str, network: &str, name: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "network": reference(network),
        "port_mirroring": "false",
        "pass_through": {"mode": "disabled"},
        "network_filter": reference(ids::NETWORK_FILTER_NO_MAC_SPOOFING),
    })
}

pub async fn insert_profile(tx: &mut Tx, network: &str, name: &str) -> ApiResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    index::insert(
        tx,
        "vnicprofiles",
        &id,
        &profile_doc(&id, network, name),
        None,
        &[],
    )
    .await
    .map_err(|e| index::conflict(e, "add", "vnicprofiles", &json!({"name": name})))?;
    Ok(id)
}

/// A network with its profile, as a new data center gets its management network.
pub async fn insert_network(
    tx: &mut Tx,
    dc: &str,
    name: &str,
    description: &str,
) -> ApiResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let doc = json!({
        "id": id,
        "name": name,
        "description": description,
        "comment": "",
        "data_center": reference(dc),
        "stp": "false",
        "mtu": "0",
        "usages": {"usage": ["vm"]},
        "vdsm_name": bridge_name(name, &id),
        "port_isolation": "false",
    });
    index::insert(tx, "networks", &id, &doc, None, &[]).await?;
    insert_profile(tx, &id, name).await?;
    Ok(id)
}

pub async fn delete_network(tx: &mut Tx, rec: &Record) -> ApiResult<()> {
    for p in tx
        .list(
            "vnicprofiles",
            &Query::new(Filter::eq("network.id", rec.id.as_str())),
        )
        .await?
    {
        tx.delete("vnicprofiles", &p.id).await?;
    }
    crud::cascade(tx, "networks", &rec.id).await?;
    tx.delete("networks", &rec.id).await?;
    Ok(())
}

pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    if let Some(v) = check_vlan("edit", doc)? {
        let dc = ref_id(doc, "data_center").unwrap_or_default();
        let id = str_at(doc, "id").unwrap_or_default().to_string();
        if int_at(before, "vlan.id") != Some(v) && vlan_in_use(ctx, &dc, v, Some(&id)).await? {
            return Err(ApiError::conflict(format!(
                "Cannot edit Network. The specified VLAN ID ({v}) is already in use."
            )));
        }
    }
    if is_management(before) && str_at(before, "name") != str_at(doc, "name") {
        return Err(messages::conflict(
            "edit",
            "networks",
            "The management network cannot be renamed while hosts use it.",
        ));
    }
    Ok(())
}

fn is_management(doc: &Value) -> bool {
    str_at(doc, "name") == Some("ovirtmgmt") || str_at(doc, "id") == Some(ids::MANAGEMENT_NETWORK)
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    if is_management(doc) {
        return Err(ApiError::conflict(format!(
            "The Management Network ('{}') is mandatory and cannot be removed.",
            str_at(doc, "name").unwrap_or_default()
        )));
    }
    let mut users = Vec::new();
    for p in where_eq(ctx, "vnicprofiles", "network.id", id).await? {
        for n in where_eq(ctx, "vms/nics", "vnic_profile.id", &p.id).await? {
            if let Some(vm) = n.parent_id {
                if let Some(v) = ctx.engine.store.get("vms", &vm).await? {
                    users.push(v);
                }
            }
        }
    }
    if !users.is_empty() {
        return Err(messages::conflict(
            "remove",
            "networks",
            &format!("The Network is in use by the following VM(s): {}. Remove their interfaces from it first.", names(&users, 10)),
        ));
    }
    Ok(())
}

pub async fn in_tx_remove(tx: &mut Tx, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    for p in tx
        .list("vnicprofiles", &Query::new(Filter::eq("network.id", id)))
        .await?
    {
        tx.delete("vnicprofiles", &p.id).await?;
    }
    Ok(())
}

pub async fn prepare_add_profile(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    require_ref(ctx, &mut a.doc, "network", "networks", "VnicProfile").await?;
    let doc = &mut a.doc;
    default(doc, "port_mirroring", s(false));
    default(doc, "pass_through", json!({"mode": "disabled"}));
    if bool_at(doc, "port_mirroring") == Some(true)
        && str_at(doc, "pass_through.mode") == Some("enabled")
    {
        return Err(messages::invalid(
            "add",
            "vnicprofiles",
            "Port mirroring and passthrough cannot be used together.",
        ));
    }
    if doc.get("network_filter").is_none() && str_at(doc, "pass_through.mode") != Some("enabled") {
        set(
            doc,
            "network_filter",
            reference(ids::NETWORK_FILTER_NO_MAC_SPOOFING),
        );
    }
    Ok(())
}

pub async fn check_remove_profile(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    let nics = where_eq(ctx, "vms/nics", "vnic_profile.id", id).await?;
    if !nics.is_empty() {
        let mut vms = Vec::new();
        for n in &nics {
            if let Some(vm) = &n.parent_id {
                if let Some(v) = ctx.engine.store.get("vms", vm).await? {
                    vms.push(v);
                }
            }
        }
        return Err(messages::conflict(
            "remove",
            "vnicprofiles",
            &format!(
                "The VM network interface profile is in use by the following VM(s): {}.",
                names(&vms, 10)
            ),
        ));
    }
    Ok(())
}

/// Network labels: the label text is the id.
pub async fn prepare_add_label(_ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let label = match a.body_id.clone().filter(|l| !l.is_empty()) {
        Some(l) => l,
        None => return Err(ApiError::incomplete("NetworkLabel [id] required for add")),
    };
    if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::bad_request(format!(
            "Label '{label}' may contain only letters, digits and '_'."
        )));
    }
    a.set_member_id(&label);
    if let Some(n) = at.parent_id() {
        set(&mut a.doc, "network", reference(n));
    }
    Ok(())
}
