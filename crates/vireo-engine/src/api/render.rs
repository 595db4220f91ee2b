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

/// List members as rendered bytes, remembered with the stored document they were made from.
///
/// Rendering is a pure function of (document, collection, format), so an entry is used only
/// when the record the store returns now has byte for byte the same document: every write,
/// monitoring's status changes included, changes the document and so misses. The store is
/// still asked on every request; this only saves decoding and formatting the unchanged
/// members again. Bounded: past `MAX_BYTES` it starts over. `VIREO_RENDER_CACHE=off` turns
/// it off (to measure the cold path).
pub mod memo {
    use super::super::format::Format;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    const MAX_BYTES: usize = 384 << 20;

    pub struct Entry {
        doc: Box<str>,
        pub bytes: Arc<[u8]>,
    }

    #[derive(Default)]
    struct Memo {
        map: HashMap<String, Entry>,
        bytes: usize,
    }

    fn memo() -> Option<&'static Mutex<Memo>> {
        static M: OnceLock<Option<Mutex<Memo>>> = OnceLock::new();
        M.get_or_init(|| {
            let off = std::env::var("VIREO_RENDER_CACHE").is_ok_and(|v| v == "off" || v == "0");
            (!off).then(Mutex::default)
        })
        .as_ref()
    }

    /// The key of a member of a collection; `scope` names the collection and type.
    pub fn key(format: Format, scope: &str, record_id: &str) -> String {
        let f = match format {
            Format::Xml => 'x',
            Format::Json => 'j',
        };
        format!("{f}\u{0}{scope}\u{0}{record_id}")
    }

    /// For each (key, document), the bytes rendered from exactly that document, if known.
    pub fn lookup(items: &[(String, &str)]) -> Vec<Option<Arc<[u8]>>> {
        let Some(m) = memo() else {
            return vec![None; items.len()];
        };
        let m = m.lock().unwrap_or_else(|e| e.into_inner());
        items
            .iter()
            .map(|(k, doc)| {
                m.map
                    .get(k)
                    .filter(|e| &*e.doc == *doc)
                    .map(|e| e.bytes.clone())
            })
            .collect()
    }

    pub fn store(items: Vec<(String, &str, Arc<[u8]>)>) {
        let Some(m) = memo() else { return };
        let mut m = m.lock().unwrap_or_else(|e| e.into_inner());
        for (k, doc, bytes) in items {
            let key_len = k.len();
            let size = key_len + doc.len() + bytes.len();
            if m.bytes + size > MAX_BYTES {
                m.map.clear();
                m.bytes = 0;
            }
            m.bytes += size;
            let old = m.map.insert(
                k,
                Entry {
                    doc: doc.into(),
                    bytes,
                },
            );
            if let Some(old) = old {
                m.bytes = m
                    .bytes
                    .saturating_sub(key_len + old.doc.len() + old.bytes.len());
            }
        }
    }
}
