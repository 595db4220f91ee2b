//! Tags: a tree under the root tag (names unique, no cycles, the root fixed); removing a tag
//! removes its sub-tags and every assignment of them.

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::bootstrap::ids::ROOT_TAG;
use crate::inventory::{crud, index, messages};
use serde_json::Value;
use vireo_store::{Filter, Query, Tx};

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    if resolve_ref(ctx, &mut a.doc, "parent", "tags")
        .await?
        .is_none()
    {
        set(&mut a.doc, "parent", reference(ROOT_TAG));
    }
    for k in ["vm", "host", "template", "user", "group"] {
        if let Value::Object(o) = &mut a.doc {
            o.remove(k);
        }
    }
    Ok(())
}

/// The ancestors of a tag, nearest first (bounded: stored data could hold a cycle).
async fn ancestors(ctx: &Ctx<'_>, id: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = Some(id.to_string());
    while let Some(t) = cur.take() {
        if out.len() > 256 {
            break;
        }
        let Some(r) = ctx.engine.store.get("tags", &t).await? else {
            break;
        };
        cur = ref_id(&crud::doc_of(&r)?, "parent");
        out.push(t);
    }
    Ok(out)
}

pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    let id = str_at(before, "id").unwrap_or_default().to_string();
    if id == ROOT_TAG {
        return Err(ApiError::conflict("Cannot edit readonly tag"));
    }
    if let Some(p) = resolve_ref(ctx, doc, "parent", "tags").await? {
        if ancestors(ctx, &p.id).await?.contains(&id) {
            return Err(ApiError::conflict(
                "Operation canceled, recursive Tag hierarchy cannot be defined.",
            ));
        }
    }
    Ok(())
}

pub async fn check_remove(_ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    if str_at(doc, "id") == Some(ROOT_TAG) {
        return Err(messages::conflict(
            "remove",
            "tags",
            "The root tag cannot be removed.",
        ));
    }
    Ok(())
}

/// Sub-tags (recursively) and their assignments go too.
pub async fn in_tx_remove(tx: &mut Tx, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default().to_string();
    let mut stack = vec![id];
    let mut seen = 0;
    while let Some(t) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        for c in tx
            .list("tags", &Query::new(Filter::eq("parent.id", t.as_str())))
            .await?
        {
            stack.push(c.id.clone());
            crud::cascade(tx, "tags", &c.id).await?;
            let cdoc = crud::doc_of(&c)?;
            tx.delete("tags", &c.id).await?;
            index::after_remove(tx, "tags", &c, &cdoc).await?;
        }
    }
    Ok(())
}
