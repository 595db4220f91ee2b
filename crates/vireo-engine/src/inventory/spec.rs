//! Facts about kinds that the generic implementation needs: which kinds are relations (an
//! attachment of an object that lives elsewhere) and the words oVirt uses for each kind in its
//! messages.

use serde_json::{Map, Value};

/// A collection whose members attach objects of another kind: the record (kind `kind`, owner
/// = the collection's owner, record id `{owner}/{target id}`) holds only the attachment's own
/// members; the rest is read from the target when it is shown.
pub struct Relation {
    pub kind: &'static str,
    pub target: &'static str,
    /// Members that belong to the attachment, not to the target.
    pub own: &'static [&'static str],
}

pub const RELATIONS: &[Relation] = &[
    Relation {
        kind: "clusters/networks",
        target: "networks",
        own: &["cluster", "required", "usages", "display", "status"],
    },
    Relation {
        kind: "datacenters/storagedomains",
        target: "storagedomains",
        own: &["data_center", "status", "master"],
    },
    Relation {
        kind: "clusters/affinitygroups/vms",
        target: "vms",
        own: &[],
    },
    Relation {
        kind: "clusters/affinitygroups/hosts",
        target: "hosts",
        own: &[],
    },
    Relation {
        kind: "affinitylabels/vms",
        target: "vms",
        own: &[],
    },
    Relation {
        kind: "affinitylabels/hosts",
        target: "hosts",
        own: &[],
    },
    Relation {
        kind: "vms/affinitylabels",
        target: "affinitylabels",
        own: &[],
    },
    Relation {
        kind: "hosts/affinitylabels",
        target: "affinitylabels",
        own: &[],
    },
    Relation {
        kind: "vms/tags",
        target: "tags",
        own: &["vm"],
    },
    Relation {
        kind: "hosts/tags",
        target: "tags",
        own: &["host"],
    },
    Relation {
        kind: "templates/tags",
        target: "tags",
        own: &["template"],
    },
    Relation {
        kind: "users/tags",
        target: "tags",
        own: &["user"],
    },
    Relation {
        kind: "groups/tags",
        target: "tags",
        own: &["group"],
    },
];

pub fn relation(kind: &str) -> Option<&'static Relation> {
    RELATIONS.iter().find(|r| r.kind == kind)
}

/// The target's document with the attachment's own members on top.
pub fn overlay(rel: &Relation, target: &Value, own: &Value) -> Value {
    let mut out = target.clone();
    if let (Value::Object(o), Value::Object(mine)) = (&mut out, own) {
        for k in rel.own {
            if let Some(v) = mine.get(*k) {
                o.insert((*k).to_string(), v.clone());
            }
        }
    }
    out
}

/// Drops what does not belong to the attachment from a change to one.
pub fn keep_own(rel: &Relation, change: &mut Value) {
    if let Value::Object(o) = change {
        let kept: Map<String, Value> = o
            .iter()
            .filter(|(k, _)| rel.own.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        *o = kept;
    }
}

/// oVirt's word for a kind in messages (`VAR__TYPE__…` in its AppErrors bundle).
pub fn noun(kind: &str) -> &'static str {
    match kind {
        "vms" | "clusters/affinitygroups/vms" | "affinitylabels/vms" => "VM",
        "vms/nics" | "templates/nics" | "instancetypes/nics" => "Interface",
        "vms/diskattachments" | "templates/diskattachments" | "disks" => "Virtual Disk",
        "vms/cdroms" | "templates/cdroms" => "CD-ROM",
        "clusters" => "Cluster",
        "clusters/networks" | "networks" => "Network",
        "clusters/affinitygroups" => "Affinity Group",
        "affinitylabels" | "vms/affinitylabels" | "hosts/affinitylabels" => "Label",
        "datacenters" => "Data Center",
        "datacenters/quotas" => "Quota",
        "datacenters/storagedomains" | "storagedomains" => "Storage",
        "vnicprofiles" => "VM network interface profile",
        "networks/networklabels" => "Label",
        "macpools" => "MAC Pool",
        "cpuprofiles" => "CPU Profile",
        "diskprofiles" => "Disk Profile",
        "templates" => "Template",
        "instancetypes" => "Instance Type",
        "vmpools" => "VM-Pool",
        "tags" | "vms/tags" | "hosts/tags" | "templates/tags" | "users/tags" | "groups/tags" => {
            "Tag"
        }
        "bookmarks" => "Bookmark",
        "roles" => "Role",
        "roles/permits" => "Permit",
        "permissions" => "Permission",
        "hosts" | "clusters/affinitygroups/hosts" | "affinitylabels/hosts" => "Host",
        "jobs" => "External Job",
        "jobs/steps" => "External Step",
        "users" => "User",
        "groups" => "Group",
        _ => "Object",
    }
}
