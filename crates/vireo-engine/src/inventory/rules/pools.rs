//! VM pools: a pool of `size` VMs made from its template in its cluster, named
//! `{pool}-{n}` as oVirt names them; a larger size adds VMs; removing the pool removes its
//! VMs, which must all be down.

use super::common::*;
use super::{vms, Adding};
use crate::api::fault::ApiResult;
use crate::api::Ctx;
use crate::inventory::events::Who;
use crate::inventory::{crud, index, messages};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use vireo_store::{Filter, Query, Tx};

/// VMs a pool gets: their documents are built before the transaction (reads), inserted in it.
async fn plan(
    ctx: &Ctx<'_>,
    pool: &str,
    doc: &Value,
    from: i64,
    to: i64,
) -> ApiResult<Vec<Adding>> {
    let store = &ctx.engine.store;
    let cluster = lookup(
        ctx,
        "clusters",
        doc.get("cluster").unwrap_or(&Value::Null),
        "cluster",
    )
    .await?;
    let template = vms::find_template(ctx, doc.get("template").unwrap_or(&Value::Null)).await?;
    let name = str_at(doc, "name").unwrap_or_default().to_string();
    let mut out = Vec::new();
    let mut n = from;
    while (out.len() as i64) < to - from + 1 {
        let vm_name = format!("{name}-{n}");
        n += 1;
        // A name taken by another VM is skipped, as oVirt numbers around it.
        if store.get_by_name("vms", &vm_name, None).await?.is_some() {
            continue;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let body = json!({ "name": vm_name, "vm_pool": reference(pool), "stateless": s(bool_at(doc, "stateful") != Some(true)) });
        let vm = vms::build(ctx, &id, &cluster, &template, None, &body).await?;
        let mut a = Adding::new(id, vm, None);
        a.notes = json!({ "template": template.id });
        out.push(a);
    }
    Ok(out)
}

async fn insert_all(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    pool_name: &str,
    planned: &mut [Adding],
) -> ApiResult<Vec<Value>> {
    let mut copies = Vec::new();
    // The pool itself may not be stored yet: its name is given, not looked up.
    let extra = [(
        "vm_pool".to_string(),
        vireo_store::AttrValue::Text(pool_name.to_string()),
    )];
    for a in planned.iter_mut() {
        vms::in_tx_add(tx, ctx, a).await?;
        index::insert(tx, "vms", &a.record_id, &a.doc, None, &extra)
            .await
            .map_err(|e| index::conflict(e, "add", "vms", &a.doc))?;
        if let Some(Value::Array(c)) = a.notes.get("copies") {
            copies.extend(c.iter().cloned());
        }
    }
    Ok(copies)
}

/// The pool's VMs, in the pool's transaction (their documents are read from committed data).
pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let size = int_at(&a.doc, "size").unwrap_or(1);
    let mut planned = plan(ctx, &a.id, &a.doc, 1, size).await?;
    let copies = insert_all(
        tx,
        ctx,
        str_at(&a.doc, "name").unwrap_or_default(),
        &mut planned,
    )
    .await?;
    a.notes["copies"] = json!(copies);
    Ok(())
}

pub fn after(ctx: &Ctx<'_>, notes: &Value) -> Option<JoinHandle<()>> {
    let copies: Vec<super::disks::Copy> = notes
        .get("copies")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    super::disks::start_copies(ctx, &Who::of(ctx), copies, None)
}

/// A larger size adds VMs (a smaller one is refused: oVirt removes pool VMs one by one).
pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    for k in ["cluster", "template"] {
        if let Some(v) = before.get(k) {
            set(doc, k, v.clone());
        }
    }
    let (old, new) = (
        int_at(before, "size").unwrap_or(0),
        int_at(doc, "size").unwrap_or(0),
    );
    if new < old {
        return Err(messages::invalid(
            "edit",
            "vmpools",
            "The size of a pool cannot be lowered; remove its VMs instead.",
        ));
    }
    if new > 1000 {
        return Err(messages::invalid(
            "edit",
            "vmpools",
            "The pool size must be between 0 and 1000.",
        ));
    }
    let _ = ctx;
    Ok(())
}

pub async fn in_tx_update(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    before: &Value,
    doc: &Value,
) -> ApiResult<()> {
    let (old, new) = (
        int_at(before, "size").unwrap_or(0),
        int_at(doc, "size").unwrap_or(0),
    );
    if new <= old {
        return Ok(());
    }
    let id = str_at(doc, "id").unwrap_or_default().to_string();
    let mut planned = plan(ctx, &id, doc, old + 1, new).await?;
    insert_all(
        tx,
        ctx,
        str_at(doc, "name").unwrap_or_default(),
        &mut planned,
    )
    .await?;
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    let running: Vec<_> = where_eq(ctx, "vms", "vm_pool.id", id)
        .await?
        .into_iter()
        .filter(|v| {
            crud::doc_of(v)
                .ok()
                .and_then(|d| str_at(&d, "status").map(str::to_string))
                .as_deref()
                != Some("down")
        })
        .collect();
    if !running.is_empty() {
        return Err(messages::conflict(
            "remove",
            "vmpools",
            &format!(
                "The following VMs of the pool are running: {}.",
                names(&running, 10)
            ),
        ));
    }
    Ok(())
}

pub async fn in_tx_remove(tx: &mut Tx, doc: &Value, notes: &mut Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    for v in tx
        .list("vms", &Query::new(Filter::eq("vm_pool.id", id)))
        .await?
    {
        for att in tx
            .list(
                "vms/diskattachments",
                &Query::new(Filter::ParentIs(v.id.clone())),
            )
            .await?
        {
            if let Some(d) = ref_id(&crud::doc_of(&att)?, "disk") {
                if let Some(dr) = tx.get("disks", &d).await? {
                    super::disks::delete_disk(tx, &dr, notes).await?;
                }
            }
        }
        crud::cascade(tx, "vms", &v.id).await?;
        tx.delete("vms", &v.id).await?;
    }
    Ok(())
}
