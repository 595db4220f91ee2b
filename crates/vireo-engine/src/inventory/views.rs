//! Collections that show objects stored under another kind, filtered by their owner:
//! `/datacenters/{id}/clusters` are the clusters whose `data_center` is `{id}`,
//! `/storagedomains/{id}/disks` the disks on that domain, `/vms/{id}/permissions` the
//! permissions given on that VM. Adding through a view sets the owner reference.

use serde_json::{json, Value};
use vireo_store::Filter;

#[derive(Clone, Debug)]
pub struct View {
    /// The kind it shows.
    pub kind: &'static str,
    pub by: By,
    pub ops: &'static str,
}

#[derive(Clone, Debug)]
pub enum By {
    /// `doc[attr].id` is the owner.
    Ref(&'static str),
    /// `doc[attr][item][*].id` contains the owner.
    RefList(&'static str, &'static str),
    /// Permissions given on the owner (`object`), or held by it (`user`, `group`).
    Permission {
        field: &'static str,
        object_type: &'static str,
        reference: Option<&'static str>,
    },
}

const REF_VIEWS: &[(&str, &str, &str, &str)] = &[
    ("datacenters/clusters", "clusters", "data_center", "lgaur"),
    ("datacenters/networks", "networks", "data_center", "lgaur"),
    ("networks/vnicprofiles", "vnicprofiles", "network", "lgar"),
    ("clusters/cpuprofiles", "cpuprofiles", "cluster", "lgar"),
    (
        "storagedomains/diskprofiles",
        "diskprofiles",
        "storage_domain",
        "lgar",
    ),
];

/// The permission object type (oVirt's `VdcObjectType`, as the auth module spells it) and the
/// `Permission` member that references it, per kind of object.
pub fn object_type(kind: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match kind {
        "datacenters" => ("data_center", Some("data_center")),
        "clusters" => ("cluster", Some("cluster")),
        "hosts" => ("host", Some("host")),
        "storagedomains" => ("storage_domain", Some("storage_domain")),
        "vms" => ("vm", Some("vm")),
        "vmpools" => ("vm_pool", Some("vm_pool")),
        "templates" => ("template", Some("template")),
        "disks" => ("disk", Some("disk")),
        "networks" => ("network", None),
        "vnicprofiles" => ("vnic_profile", None),
        "macpools" => ("mac_pool", None),
        "cpuprofiles" => ("cpu_profile", None),
        "diskprofiles" => ("disk_profile", None),
        "datacenters/quotas" => ("quota", None),
        _ => return None,
    })
}

pub fn view(path: &str) -> Option<View> {
    if let Some((_, kind, attr, ops)) = REF_VIEWS.iter().find(|v| v.0 == path) {
        return Some(View {
            kind,
            by: By::Ref(attr),
            ops,
        });
    }
    if path == "storagedomains/disks" {
        return Some(View {
            kind: "disks",
            by: By::RefList("storage_domains", "storage_domain"),
            ops: "lgaur",
        });
    }
    let owner = path.strip_suffix("/permissions")?;
    let by = match owner {
        "users" => By::Permission {
            field: "user",
            object_type: "",
            reference: Some("user"),
        },
        "groups" => By::Permission {
            field: "group",
            object_type: "",
            reference: Some("group"),
        },
        other => {
            let (object_type, reference) = object_type(other)?;
            By::Permission {
                field: "object",
                object_type,
                reference,
            }
        }
    };
    Some(View {
        kind: "permissions",
        by,
        ops: "lgar",
    })
}

impl View {
    /// The members of the view owned by `owner`: one indexed condition.
    pub fn filter(&self, owner: &str) -> Filter {
        match &self.by {
            By::Ref(attr) | By::RefList(attr, _) => Filter::eq(format!("{attr}.id"), owner),
            By::Permission { field, .. } => Filter::eq(*field, owner),
        }
    }

    pub fn contains(&self, doc: &Value, owner: &str) -> bool {
        let id_of = |v: &Value| v.get("id").and_then(Value::as_str) == Some(owner);
        match &self.by {
            By::Ref(attr) => doc.get(*attr).map(id_of).unwrap_or(false),
            By::RefList(attr, item) => doc
                .get(*attr)
                .and_then(|w| w.get(*item))
                .and_then(Value::as_array)
                .map(|a| a.iter().any(id_of))
                .unwrap_or(false),
            // Some object types have no member in `Permission`; the owner is in the record's
            // attributes then, which the list filter uses.
            By::Permission {
                reference: Some(r), ..
            } => doc.get(*r).map(id_of).unwrap_or(false),
            By::Permission {
                reference: None, ..
            } => true,
        }
    }

    /// What adding through the view implies about the new member.
    pub fn set_owner(&self, doc: &mut Value, owner: &str) {
        let Value::Object(o) = doc else { return };
        match &self.by {
            By::Ref(attr) => {
                o.insert((*attr).to_string(), json!({ "id": owner }));
            }
            By::RefList(attr, item) => {
                o.insert((*attr).to_string(), json!({ *item: [{ "id": owner }] }));
            }
            By::Permission {
                reference: Some(r), ..
            } => {
                o.insert((*r).to_string(), json!({ "id": owner }));
            }
            By::Permission {
                reference: None, ..
            } => {}
        }
    }
}

/// Permissions given on (or held by) an object of `kind`, for removing them with it.
pub fn permissions_on(kind: &str, id: &str) -> Filter {
    match kind {
        "users" => Filter::eq("user", id),
        "groups" => Filter::eq("group", id),
        k if object_type(k).is_some() => Filter::eq("object", id),
        _ => Filter::IdIn(Vec::new()),
    }
}
