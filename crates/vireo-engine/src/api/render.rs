//! Derived parts of a representation: `href`, sub-collection links, actions, and hrefs of
//! references to top-level objects.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;
use vireo_model::meta::{self, MethodKind, ServiceDef, TypeDef, TypeRef};

/// Type name → the top-level collection its objects live in (`Cluster` → `clusters`).
pub fn collection_of(type_name: &str) -> Option<&'static str> {
    static MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        let root = meta::service(meta::ROOT_SERVICE);
        let mut m = HashMap::new();
        for l in root.locators {
            let svc = meta::service(l.service);
            if let Some(list) = svc.methods_of(MethodKind::List).next() {
                if let Some(TypeRef::Struct(t)) = list.outputs.first().map(|o| o.ty) {
                    m.entry(t).or_insert(l.segment);
                }
            }
        }
        m
    })
    .get(type_name)
    .copied()
}

pub fn links(service: &ServiceDef, href: &str) -> Vec<Value> {
    service
        .locators
        .iter()
        .map(|l| json!({"href": format!("{href}/{}", l.segment), "rel": l.segment}))
        .collect()
}

pub fn actions(service: &ServiceDef, href: &str) -> Vec<Value> {
    let mut paths: Vec<&str> = service.methods.iter().filter_map(|m| m.path).collect();
    paths.sort_unstable();
    paths.dedup();
    paths
        .into_iter()
        .map(|p| json!({"href": format!("{href}/{p}"), "rel": p}))
        .collect()
}

/// Adds `href`, links and actions to a stored document, and hrefs to its references.
pub fn decorate(doc: &mut Value, t: &TypeDef, href: &str, service: Option<&ServiceDef>) {
    let Value::Object(o) = doc else { return };
    o.insert("href".into(), Value::String(href.to_string()));
    if let Some(svc) = service {
        let l = links(svc, href);
        if !l.is_empty() {
            o.insert("link".into(), Value::Array(l));
        }
        let a = actions(svc, href);
        if !a.is_empty() {
            o.insert("actions".into(), json!({ "link": a }));
        }
    }
    reference_hrefs(o, t);
}

fn reference_hrefs(o: &mut Map<String, Value>, t: &TypeDef) {
    for a in t.attributes {
        let TypeRef::Struct(target) = a.ty else {
            continue;
        };
        let Some(coll) = collection_of(target) else {
            continue;
        };
        let Some(v) = o.get_mut(a.xml) else { continue };
        let items: Vec<&mut Value> = if a.list {
            match v {
                Value::Object(w) => match w.get_mut(a.item.unwrap_or_default()) {
                    Some(Value::Array(arr)) => arr.iter_mut().collect(),
                    _ => Vec::new(),
                },
                Value::Array(arr) => arr.iter_mut().collect(),
                _ => Vec::new(),
            }
        } else {
            vec![v]
        };
        for item in items {
            if let Value::Object(r) = item {
                if let (Some(Value::String(id)), false) = (r.get("id"), r.contains_key("href")) {
                    let h = format!("/ovirt-engine/api/{coll}/{id}");
                    r.insert("href".into(), Value::String(h));
                }
            }
        }
    }
}
