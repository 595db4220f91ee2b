//! Adding to a relation: the object named by id (or name) is attached once. Affinity label
//! membership is kept on both sides (`/affinitylabels/{id}/vms` and `/vms/{id}/affinitylabels`
//! are one relation seen from each end).

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::{index, messages, spec, Location};
use serde_json::{json, Value};
use vireo_store::Tx;

/// The other side of a two-sided relation.
fn mirror(kind: &str) -> Option<&'static str> {
    match kind {
        "affinitylabels/vms" => Some("vms/affinitylabels"),
        "vms/affinitylabels" => Some("affinitylabels/vms"),
        "affinitylabels/hosts" => Some("hosts/affinitylabels"),
        "hosts/affinitylabels" => Some("affinitylabels/hosts"),
        _ => None,
    }
}

/// The owner's reference in a tag assignment (`vm` of `/vms/{id}/tags`).
fn owner_ref(kind: &str) -> Option<&'static str> {
    match kind {
        "vms/tags" => Some("vm"),
        "hosts/tags" => Some("host"),
        "templates/tags" => Some("template"),
        "users/tags" => Some("user"),
        "groups/tags" => Some("group"),
        _ => None,
    }
}

pub async fn prepare_add(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let rel = spec::relation(at.kind.kind).ok_or_else(|| ApiError::internal("not a relation"))?;
    let by = match (&a.body_id, str_at(&a.doc, "name")) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(n)) => json!({ "name": n }),
        _ => {
            return Err(ApiError::incomplete(format!(
                "{} [id|name] required for add",
                spec::noun(at.kind.kind)
            )))
        }
    };
    let target = lookup(ctx, rel.target, &by, "id").await?;
    let owner = at.parent_id().unwrap_or_default().to_string();
    let key = crate::bootstrap::sub_record_id(&owner, &target.id);
    if ctx.engine.store.get(at.kind.kind, &key).await?.is_some() {
        return Err(messages::conflict(
            "attach",
            at.kind.kind,
            &format!("The {} is already attached.", spec::noun(rel.target)),
        ));
    }
    let mut doc = json!({});
    for k in rel.own {
        if let Some(v) = a.doc.get(*k) {
            set(&mut doc, k, v.clone());
        }
    }
    if let Some(r) = owner_ref(at.kind.kind) {
        set(&mut doc, r, reference(&owner));
    }
    a.doc = doc;
    a.set_member_id(&target.id);
    Ok(())
}

pub async fn in_tx_add(tx: &mut Tx, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let Some(other) = mirror(at.kind.kind) else {
        return Ok(());
    };
    let owner = at.parent_id().unwrap_or_default().to_string();
    let doc = json!({ "id": owner });
    let key = crate::bootstrap::sub_record_id(&a.id, &owner);
    if tx.get(other, &key).await?.is_none() {
        index::insert(tx, other, &key, &doc, Some(&a.id), &[]).await?;
    }
    Ok(())
}

pub async fn in_tx_remove(tx: &mut Tx, at: &Location, doc: &Value) -> ApiResult<()> {
    let Some(other) = mirror(at.kind.kind) else {
        return Ok(());
    };
    let owner = at.parent_id().unwrap_or_default();
    let target = str_at(doc, "id").unwrap_or_default();
    tx.delete(other, &crate::bootstrap::sub_record_id(target, owner))
        .await?;
    Ok(())
}
