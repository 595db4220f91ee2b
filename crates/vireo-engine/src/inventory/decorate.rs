//! The derived parts of a representation (`href`, sub-collection links, actions, hrefs of
//! references), as `api::render::decorate` adds them, with what depends only on the type and
//! the service worked out once per request instead of once per object: a list of 10,000 VMs
//! formats hrefs, it does not re-sort the VM service's actions 10,000 times.

use crate::api::render::collection_of;
use serde_json::{Map, Value};
use vireo_model::meta::{ServiceDef, TypeDef, TypeRef};
use vireo_model::{Link, Model};

pub struct Decorator {
    links: Vec<&'static str>,
    actions: Vec<&'static str>,
    /// (member, item element of a list, the collection its objects live in)
    refs: Vec<(&'static str, Option<&'static str>, &'static str)>,
}

impl Decorator {
    pub fn new(t: &TypeDef, service: Option<&ServiceDef>) -> Decorator {
        let links = service
            .map(|s| s.locators.iter().map(|l| l.segment).collect())
            .unwrap_or_default();
        let mut actions: Vec<&'static str> = service
            .map(|s| s.methods.iter().filter_map(|m| m.path).collect())
            .unwrap_or_default();
        actions.sort_unstable();
        actions.dedup();
        let refs = t
            .attributes
            .iter()
            .filter_map(|a| match a.ty {
                TypeRef::Struct(target) => collection_of(target).map(|c| {
                    (
                        a.xml,
                        if a.list {
                            Some(a.item.unwrap_or_default())
                        } else {
                            None
                        },
                        c,
                    )
                }),
                _ => None,
            })
            .collect();
        Decorator {
            links,
            actions,
            refs,
        }
    }

    /// The same parts set on the typed value: cheaper than reading them back from JSON.
    pub fn finish<T: Model>(&self, v: &mut T, href: &str) {
        // `href/segment`, sized once (no formatting machinery: a VM has ~50 of them).
        let link = |s: &&str| {
            let mut h = String::with_capacity(href.len() + 1 + s.len());
            h.push_str(href);
            h.push('/');
            h.push_str(s);
            Link {
                rel: s.to_string(),
                href: h,
            }
        };
        *v.href_mut() = Some(href.to_string());
        *v.links_mut() = self.links.iter().map(link).collect();
        *v.actions_mut() = self.actions.iter().map(link).collect();
    }

    /// Hrefs of the references to top-level objects.
    pub fn references(&self, doc: &mut Value) {
        let Value::Object(o) = doc else { return };
        for (xml, item, coll) in &self.refs {
            let Some(v) = o.get_mut(*xml) else { continue };
            match item {
                None => set_href(v, coll),
                Some(item) => {
                    let arr = match v {
                        Value::Object(w) => w.get_mut(*item),
                        other => Some(other),
                    };
                    if let Some(Value::Array(arr)) = arr {
                        for r in arr {
                            set_href(r, coll);
                        }
                    }
                }
            }
        }
    }
}

fn set_href(v: &mut Value, coll: &str) {
    if let Value::Object(r) = v {
        add_href(r, coll);
    }
}

fn add_href(r: &mut Map<String, Value>, coll: &str) {
    if r.contains_key("href") {
        return;
    }
    if let Some(Value::String(id)) = r.get("id") {
        let h = format!("/ovirt-engine/api/{coll}/{id}");
        r.insert("href".into(), Value::String(h));
    }
}
