//! Small tools every kind's rules use: reading and defaulting members of stored documents
//! (the API's JSON: integers and booleans may be strings), and references given by id or
//! name.

use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::{crud, messages, type_of};
use axum::http::StatusCode;
use serde_json::{json, Value};
use vireo_store::{Filter, Query, Record};

pub const BLANK: &str = "00000000-0000-0000-0000-000000000000";

pub fn default(doc: &mut Value, key: &str, v: Value) {
    if let Value::Object(o) = doc {
        match o.get(key) {
            None | Some(Value::Null) => {
                o.insert(key.to_string(), v);
            }
            _ => {}
        }
    }
}

pub fn set(doc: &mut Value, key: &str, v: Value) {
    if let Value::Object(o) = doc {
        o.insert(key.to_string(), v);
    }
}

/// The API's JSON spelling of an integer or boolean (a string).
pub fn s(v: impl ToString) -> Value {
    Value::String(v.to_string())
}

pub fn reference(id: &str) -> Value {
    json!({ "id": id })
}

pub fn now() -> Value {
    json!(vireo_store::now_ms())
}

/// `a.b.c` inside a document.
pub fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |cur, part| cur.get(part))
}

pub fn str_at<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    at(doc, path).and_then(Value::as_str)
}

pub fn int_at(doc: &Value, path: &str) -> Option<i64> {
    at(doc, path).and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

pub fn bool_at(doc: &Value, path: &str) -> Option<bool> {
    at(doc, path).and_then(|v| {
        v.as_bool().or_else(|| {
            v.as_str()
                .map(|s| s.eq_ignore_ascii_case("true") || s == "1")
        })
    })
}

pub fn ref_id(doc: &Value, attr: &str) -> Option<String> {
    str_at(doc, &format!("{attr}.id"))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The items of a wrapped list member (`{"storage_domain": [..]}`).
pub fn items<'a>(doc: &'a Value, attr: &str, item: &str) -> Vec<&'a Value> {
    doc.get(attr)
        .and_then(|w| w.get(item))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The model type name oVirt's "Entity not found" message uses for a kind.
fn type_name(kind: &str) -> &'static str {
    type_of(kind).map(|t| t.name).unwrap_or("Entity")
}

/// The object a reference (`{"id": ..}` or `{"name": ..}`) names, in `kind`; a reference to
/// nothing is oVirt's 404 `Entity not found: Cluster: name=foo`.
pub async fn lookup(ctx: &Ctx<'_>, kind: &str, r: &Value, attr: &str) -> ApiResult<Record> {
    let store = &ctx.engine.store;
    if let Some(id) = r
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return store
            .get(kind, id)
            .await?
            .ok_or_else(|| messages::entity_not_found(type_name(kind), "id", id));
    }
    if let Some(name) = r.get("name").and_then(Value::as_str) {
        return store
            .get_by_name(kind, name, None)
            .await?
            .ok_or_else(|| messages::entity_not_found(type_name(kind), "name", name));
    }
    Err(ApiError::incomplete(format!(
        "{} [{attr}.id|name] required",
        type_name(kind)
    )))
}

/// A reference given by name (`<cluster><name>Default</name></cluster>`) becomes one by id;
/// the record it names is returned. `None` when the document has no such reference.
pub async fn resolve_ref(
    ctx: &Ctx<'_>,
    doc: &mut Value,
    attr: &str,
    kind: &str,
) -> ApiResult<Option<Record>> {
    let Some(r) = doc.get(attr).cloned().filter(|r| r.is_object()) else {
        return Ok(None);
    };
    let rec = lookup(ctx, kind, &r, attr).await?;
    let id = crud::api_id(&rec, &crud::doc_of(&rec)?);
    set(doc, attr, reference(&id));
    Ok(Some(rec))
}

/// Like [`resolve_ref`], for a reference the object must have.
pub async fn require_ref(
    ctx: &Ctx<'_>,
    doc: &mut Value,
    attr: &str,
    kind: &str,
    noun: &str,
) -> ApiResult<Record> {
    match resolve_ref(ctx, doc, attr, kind).await? {
        Some(r) => Ok(r),
        None => Err(ApiError::incomplete(format!(
            "{noun} [{attr}.id|name] required for add"
        ))),
    }
}

/// oVirt's names of VMs, templates, pools and the like: letters, digits, `_`, `-`, `.`.
pub fn check_name(action: &str, kind: &str, name: &str, max: usize) -> ApiResult<()> {
    let noun = crate::inventory::spec::noun(kind);
    if name.is_empty() {
        return Err(ApiError::operation_failed(
            StatusCode::BAD_REQUEST,
            &[format!("Can not {action} {noun}. The given name is empty.")],
        ));
    }
    if name.chars().count() > max {
        return Err(messages::invalid(
            action,
            kind,
            "The given name is too long.",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ApiError::operation_failed(
            StatusCode::BAD_REQUEST,
            &[format!("Can not {action} {noun}. The given name contains special characters. Only lower-case and upper-case letters, numbers, '_', '-', '.' are allowed.")],
        ));
    }
    Ok(())
}

/// Members that never change once set (oVirt's `MutabilityAssertor`).
pub fn immutable(kind: &str, before: &Value, doc: &Value) -> ApiResult<()> {
    let fixed: &[&str] = match kind {
        "networks" | "clusters/networks" => &["data_center"],
        "vnicprofiles" => &["network"],
        "disks" => &["format", "storage_type"],
        "storagedomains" => &["type", "storage"],
        "jobs/steps" => &["job"],
        _ => &[],
    };
    for f in fixed {
        let (a, b) = (before.get(*f), doc.get(*f));
        if a.is_some() && a != b {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Broken immutability constraint",
                format!("Attempt to set immutable field: {f}"),
            ));
        }
    }
    Ok(())
}

/// The records of `kind` whose `attr` is `value`.
pub async fn where_eq(
    ctx: &Ctx<'_>,
    kind: &str,
    attr: &str,
    value: &str,
) -> ApiResult<Vec<Record>> {
    Ok(ctx
        .engine
        .store
        .list(kind, &Query::new(Filter::eq(attr, value)))
        .await?)
}

pub async fn count_eq(ctx: &Ctx<'_>, kind: &str, attr: &str, value: &str) -> ApiResult<i64> {
    Ok(ctx
        .engine
        .store
        .count(kind, &Filter::eq(attr, value))
        .await?)
}

/// The names of some records, for messages (`VMs: a, b`).
pub fn names(recs: &[Record], limit: usize) -> String {
    let mut n: Vec<String> = recs
        .iter()
        .take(limit)
        .filter_map(|r| r.name.clone())
        .collect();
    if recs.len() > limit {
        n.push("…".into());
    }
    n.join(", ")
}
