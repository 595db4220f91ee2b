//! How an API object becomes a store record: the conventions every writer follows.
//!
//! - `kind` is the canonical collection path (`vms`, `datacenters`, `vms/nics`);
//! - `doc` is the object's JSON (the API's own JSON codec) without `href`, links and actions,
//!   which are derived from where the object lives when it is rendered;
//! - `name` is the object's name, the column name uniqueness and look-ups use;
//! - every top-level scalar attribute is indexed, so that search runs in the store.

use serde_json::Value;
use vireo_model::meta::{Scalar, TypeDef, TypeRef};
use vireo_model::Model;
use vireo_store::{AttrValue, ObjectWrite};

/// The record for `value` stored under `kind`.
pub fn object_write<T: Model>(kind: &str, value: &T, parent: Option<&str>) -> ObjectWrite {
    let mut doc: Value =
        serde_json::from_slice(&vireo_model::to_json(value)).expect("own JSON parses");
    strip_derived(&mut doc);
    write_from_doc(
        kind,
        T::meta(),
        value.id().unwrap_or_default(),
        &doc,
        parent,
    )
}

/// The record for a document (already checked against its type) stored under `kind`.
pub fn write_from_doc(
    kind: &str,
    t: &TypeDef,
    id: &str,
    doc: &Value,
    parent: Option<&str>,
) -> ObjectWrite {
    let mut w = ObjectWrite::new(kind, id, doc.to_string());
    if let Some(p) = parent {
        w = w.parent(p);
    }
    if let Some(n) = doc.get("name").and_then(Value::as_str) {
        w = w.name(n);
    }
    w.attrs = index_attrs(t, doc);
    w
}

/// Removes what rendering derives: `href`, `link`, `actions`.
pub fn strip_derived(doc: &mut Value) {
    if let Value::Object(o) = doc {
        o.remove("href");
        o.remove("link");
        o.remove("actions");
    }
}

/// Top-level scalars (and the ids of top-level references, as `<attr>.id`) for search.
pub fn index_attrs(t: &TypeDef, doc: &Value) -> Vec<(String, AttrValue)> {
    let mut out = Vec::new();
    let Some(o) = doc.as_object() else { return out };
    for a in t.attributes {
        let Some(v) = o.get(a.xml) else { continue };
        if a.list {
            continue;
        }
        match a.ty {
            TypeRef::Scalar(Scalar::Integer) | TypeRef::Scalar(Scalar::Date) => {
                if let Some(i) = v
                    .as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .or_else(|| v.as_i64())
                {
                    out.push((a.xml.to_string(), AttrValue::Int(i)));
                }
            }
            TypeRef::Scalar(Scalar::Decimal) => {
                if let Some(f) = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                {
                    out.push((a.xml.to_string(), AttrValue::Real(f)));
                }
            }
            TypeRef::Scalar(_) | TypeRef::Enum(_) => {
                if let Some(s) = v.as_str() {
                    if a.xml != "name" {
                        out.push((a.xml.to_string(), AttrValue::Text(s.to_string())));
                    }
                }
            }
            TypeRef::Struct(_) => {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    out.push((format!("{}.id", a.xml), AttrValue::Text(id.to_string())));
                }
            }
        }
    }
    out
}
