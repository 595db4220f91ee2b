//! Reading and rewriting stored documents from the host code, through the inventory's
//! record conventions (`inventory::record`, `inventory::index`): the doc is the object's API
//! JSON, and writes keep everything search finds it by.
//!
//! The monitor and the runtime actions only ever touch runtime fields (status, host,
//! times, consoles, capabilities), and always by reading the record inside the transaction
//! that rewrites it, so a user's concurrent edit of other fields is never lost.

use crate::api::fault::ApiError;
use crate::inventory::{index, record};
use serde_json::{Map, Value};
use vireo_model::Model;
use vireo_store::{Record, StoreError, Tx};

/// The value of `T` as a stored document (the API's own JSON: integers and booleans as
/// strings, dates as epoch milliseconds), without derived parts.
pub fn to_doc<T: Model>(v: &T) -> Value {
    let mut doc: Value = serde_json::from_slice(&vireo_model::to_json(v)).unwrap_or(Value::Null);
    record::strip_derived(&mut doc);
    doc
}

/// Objects merge member by member; anything else is replaced.
pub fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

pub fn obj(doc: &mut Value) -> &mut Map<String, Value> {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    doc.as_object_mut().expect("object")
}

/// A string member (`doc.a.b`).
pub fn text<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = doc;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// An integer member, stored as a string by the codec (or a number).
pub fn int(doc: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = doc;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_i64()
        .or_else(|| cur.as_str().and_then(|s| s.trim().parse().ok()))
}

pub fn boolean(doc: &Value, path: &[&str]) -> Option<bool> {
    let mut cur = doc;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_bool()
        .or_else(|| match cur.as_str()?.to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        })
}

/// The ids of a list of references, whether wrapped (`{"host": [..]}`) or bare.
pub fn ref_ids(v: Option<&Value>, item: &str) -> Vec<String> {
    let items = match v {
        Some(Value::Object(o)) => o
            .get(item)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    items
        .iter()
        .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Items of a wrapped list (`{"nic": [..]}`) or a bare array.
pub fn list_items<'a>(v: Option<&'a Value>, item: &str) -> Vec<&'a Value> {
    match v {
        Some(Value::Object(o)) => o
            .get(item)
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    }
}

pub fn parse(rec: &Record) -> Value {
    serde_json::from_str(&rec.doc).unwrap_or(Value::Null)
}

/// An inventory error inside a store transaction (the transaction is then rolled back).
pub fn store_err(e: impl Into<ApiError>) -> StoreError {
    let e: ApiError = e.into();
    StoreError::Invalid(e.detail)
}

/// Reads a record inside `tx`, lets `change` edit its document, and writes it back with the
/// inventory's indexes (`index::write_runtime`) when it changed. `Ok(None)` when the record
/// is gone.
pub async fn update_in<R>(
    tx: &mut Tx,
    kind: &str,
    id: &str,
    change: impl FnOnce(&mut Value) -> R,
) -> Result<Option<R>, StoreError> {
    let Some(rec) = tx.get(kind, id).await? else {
        return Ok(None);
    };
    let mut doc = parse(&rec);
    let before = doc.clone();
    let r = change(&mut doc);
    if doc != before {
        index::write_runtime(tx, &rec, &doc)
            .await
            .map_err(store_err)?;
    }
    Ok(Some(r))
}

/// Epoch milliseconds now, the representation of dates in stored documents.
pub fn now_ms() -> i64 {
    vireo_store::now_ms()
}

/// A date value from epoch milliseconds.
pub fn date(ms: i64) -> vireo_model::Date {
    vireo_model::scalar::date_from_millis(ms).unwrap_or_else(|_| chrono::Utc::now().fixed_offset())
}

/// A stable id derived from names (for records that must keep their id across refreshes,
/// like a host's NICs): a UUID-shaped digest of the parts.
pub fn derived_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_read_in_either_spelling() {
        let d = json!({"memory": "1024", "cpu": {"topology": {"sockets": 2}}, "stateless": "true"});
        assert_eq!(int(&d, &["memory"]), Some(1024));
        assert_eq!(int(&d, &["cpu", "topology", "sockets"]), Some(2));
        assert_eq!(boolean(&d, &["stateless"]), Some(true));
        assert_eq!(
            ref_ids(Some(&json!({"host": [{"id": "a"}, {"id": "b"}]})), "host"),
            vec!["a", "b"]
        );
    }

    #[test]
    fn derived_ids_are_stable_and_uuid_shaped() {
        let a = derived_id(&["host", "eth0"]);
        assert_eq!(a, derived_id(&["host", "eth0"]));
        assert_ne!(a, derived_id(&["host", "eth1"]));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
