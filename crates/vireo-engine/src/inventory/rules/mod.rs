//! The rules of each kind that the generic implementation cannot know: defaults oVirt fills
//! in, references given by name, what may not be removed.

use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use serde_json::{json, Value};

const BLANK: &str = "00000000-0000-0000-0000-000000000000";

pub async fn prepare_add(ctx: &Ctx<'_>, kind: &str, parent: Option<&str>, doc: &mut Value) -> ApiResult<()> {
    let _ = parent;
    match kind {
        "hosts" => crate::hosts::prepare_add(ctx, doc).await?,
        "datacenters" => {
            default(doc, "local", json!("false"));
            default(doc, "status", json!("uninitialized"));
            default(doc, "storage_format", json!("v5"));
            default(doc, "quota_mode", json!("disabled"));
            default(doc, "version", json!({"major": "4", "minor": "8"}));
            doc["supported_versions"] = json!({"version": (2..=8).map(|m| json!({"major": "4", "minor": m.to_string()})).collect::<Vec<_>>()});
        }
        "clusters" => {
            resolve_ref(ctx, doc, "data_center", "datacenters").await?;
            default(doc, "version", json!({"major": "4", "minor": "8"}));
        }
        "networks" => {
            resolve_ref(ctx, doc, "data_center", "datacenters").await?;
            default(doc, "usages", json!({"usage": ["vm"]}));
            default(doc, "mtu", json!("0"));
            default(doc, "stp", json!("false"));
        }
        _ => {}
    }
    Ok(())
}

/// After the new object is committed: work that needs it stored (a host's enrollment).
pub async fn after_add(ctx: &Ctx<'_>, kind: &str, id: &str, doc: &Value) -> ApiResult<()> {
    match kind {
        "hosts" => crate::hosts::after_add(ctx, id, doc).await,
        _ => Ok(()),
    }
}

pub async fn prepare_update(ctx: &Ctx<'_>, kind: &str, before: &Value, doc: &mut Value) -> ApiResult<()> {
    match kind {
        "hosts" => crate::hosts::prepare_update(ctx, before, doc).await,
        _ => Ok(()),
    }
}

pub async fn check_remove(ctx: &Ctx<'_>, kind: &str, doc: &Value) -> ApiResult<()> {
    if kind == "hosts" {
        return crate::hosts::check_remove(ctx, doc).await;
    }
    if kind == "templates" && doc.get("id").and_then(Value::as_str) == Some(BLANK) {
        return Err(ApiError::conflict("Cannot delete Template. Removing the Blank template is not allowed"));
    }
    Ok(())
}

fn default(doc: &mut Value, key: &str, v: Value) {
    if let Value::Object(o) = doc {
        o.entry(key.to_string()).or_insert(v);
    }
}

/// A reference given by name (`<cluster><name>Default</name></cluster>`) becomes one by id;
/// a reference to nothing is a 404 naming it, as oVirt answers.
pub async fn resolve_ref(ctx: &Ctx<'_>, doc: &mut Value, attr: &str, kind: &str) -> ApiResult<()> {
    let Some(r) = doc.get(attr).cloned() else { return Ok(()) };
    let store = &ctx.engine.store;
    let found = if let Some(id) = r.get("id").and_then(Value::as_str) {
        store.get(kind, id).await?
    } else if let Some(name) = r.get("name").and_then(Value::as_str) {
        store.get_by_name(kind, name, None).await?
    } else {
        return Err(ApiError::incomplete(format!("{attr} [id|name] required")));
    };
    match found {
        Some(rec) => {
            doc[attr] = json!({ "id": rec.id });
            Ok(())
        }
        None => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "Operation Failed",
            format!("Entity not found: {attr} {}", r.get("name").or_else(|| r.get("id")).cloned().unwrap_or_default()),
        )),
    }
}
