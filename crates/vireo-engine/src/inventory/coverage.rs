//! Which of the model's 706 methods vireo implements, found by walking the service tree the
//! way requests do: a method counts when some path to its service reaches an implementation.

use super::actions::IMPLEMENTED;
use super::{resolve_collection, spec};
use vireo_model::meta::{self, MethodKind};

pub struct Coverage {
    /// (service, SDK method name, implemented)
    pub methods: Vec<(&'static str, &'static str, bool)>,
}

impl Coverage {
    pub fn implemented(&self) -> usize {
        self.methods.iter().filter(|m| m.2).count()
    }
}

pub fn coverage() -> Coverage {
    let mut done = vec![vec![false; 0]; meta::SERVICES.len()];
    for (i, s) in meta::SERVICES.iter().enumerate() {
        done[i] = vec![false; s.methods.len()];
    }
    // the entry point
    mark(&mut done, meta::ROOT_SERVICE, |k, _| k == MethodKind::Get);
    walk(&mut done, meta::ROOT_SERVICE, None, 0);
    let mut methods = Vec::new();
    for (i, s) in meta::SERVICES.iter().enumerate() {
        for (j, m) in s.methods.iter().enumerate() {
            methods.push((s.name, m.sdk_name, done[i][j]));
        }
    }
    Coverage { methods }
}

/// Overloads such as `add_from_configuration` share the route of `add` but mean more (an OVF
/// import); they count only when named here as done.
const OVERLOADS_DONE: &[(&str, &str)] = &[
    // One `add` serves them: the holder (user or group) and the object (the path's owner, or
    // the body's reference) decide what the permission is on.
    ("AssignedPermissionsService", "add_cluster_permission"),
    ("AssignedPermissionsService", "add_data_center_permission"),
    ("AssignedPermissionsService", "add_group_level"),
    ("AssignedPermissionsService", "add_host_permission"),
    (
        "AssignedPermissionsService",
        "add_storage_domain_permission",
    ),
    ("AssignedPermissionsService", "add_template_permission"),
    ("AssignedPermissionsService", "add_user_level"),
    ("AssignedPermissionsService", "add_vm_permission"),
    ("AssignedPermissionsService", "add_vm_pool_permission"),
    ("SystemPermissionsService", "add_cluster_permission"),
    ("SystemPermissionsService", "add_data_center_permission"),
    ("SystemPermissionsService", "add_group_level"),
    ("SystemPermissionsService", "add_host_permission"),
    ("SystemPermissionsService", "add_storage_domain_permission"),
    ("SystemPermissionsService", "add_template_permission"),
    ("SystemPermissionsService", "add_user_level"),
    ("SystemPermissionsService", "add_vm_permission"),
    ("SystemPermissionsService", "add_vm_pool_permission"),
    // A disk with its storage domain in the body; a template from the VM in the body.
    ("DisksService", "add_on_storage_domain"),
    ("TemplatesService", "add_from_vm"),
    // A VM from a template (Blank for one from scratch), or cloned from the snapshot in the body.
    ("VmsService", "add_from_scratch"),
    ("VmsService", "add_from_snapshot"),
    // A transfer of the disk in the body (or of its volume, the deprecated `image`).
    ("ImageTransfersService", "add_for_disk"),
    ("ImageTransfersService", "add_for_image"),
];

fn mark(done: &mut [Vec<bool>], service: usize, pred: impl Fn(MethodKind, &str) -> bool) {
    let svc = meta::service(service);
    for (j, m) in svc.methods.iter().enumerate() {
        let plain = matches!(m.sdk_name, "add" | "list" | "get" | "update" | "remove")
            || m.kind == MethodKind::Action
            || OVERLOADS_DONE.contains(&(svc.name, m.sdk_name));
        if plain && pred(m.kind, m.sdk_name) {
            done[service][j] = true;
        }
    }
}

/// Walks the tree the way `locate_nodes` resolves paths: after each `{id}` the next segment is
/// relative to the canonical kind of that member (or, for a relation, of its target).
fn walk(
    done: &mut [Vec<bool>],
    service: usize,
    owner: Option<(String, Option<String>)>,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    for l in meta::service(service).locators {
        let sub = match &owner {
            None => l.segment.to_string(),
            Some((k, alias)) => {
                let direct = format!("{k}/{}", l.segment);
                match alias {
                    Some(a) if resolve_collection(&direct).is_none() => {
                        format!("{a}/{}", l.segment)
                    }
                    _ => direct,
                }
            }
        };
        let item = meta::service(l.service).item;
        let resolved = resolve_collection(&sub);
        if let Some((k, view)) = &resolved {
            let ops = view.as_ref().map(|v| v.ops).unwrap_or(k.ops);
            let kind = k.kind;
            mark(done, l.service, |m, _| {
                (m == MethodKind::List && ops.contains('l'))
                    || (m == MethodKind::Add && ops.contains('a'))
            });
            if let Some(item) = item {
                let svc = meta::service(item);
                mark(done, item, |m, _| {
                    (m == MethodKind::Get && ops.contains('g'))
                        || (m == MethodKind::Update && ops.contains('u'))
                        || (m == MethodKind::Remove && ops.contains('r'))
                });
                for (j, m) in svc.methods.iter().enumerate() {
                    if m.kind == MethodKind::Action
                        && m.path
                            .map(|p| {
                                IMPLEMENTED.contains(&(kind, p))
                                    || crate::hosts::IMPLEMENTED.contains(&(kind, p))
                            })
                            .unwrap_or(false)
                    {
                        done[item][j] = true;
                    }
                }
            }
        }
        // Collections that are not store objects.
        if let Some(ops) = special(&sub).or_else(|| crate::hosts::runtime_collection(&sub)) {
            mark(done, l.service, |m, _| {
                (m == MethodKind::List && ops.contains('l'))
                    || (m == MethodKind::Add && ops.contains('a'))
            });
            if let Some(item) = item {
                mark(done, item, |m, _| {
                    (m == MethodKind::Get && ops.contains('g'))
                        || (m == MethodKind::Remove && ops.contains('r'))
                });
                let svc = meta::service(item);
                for (j, m) in svc.methods.iter().enumerate() {
                    let path = m.path.unwrap_or_default();
                    if m.kind == MethodKind::Action
                        && crate::hosts::IMPLEMENTED.contains(&(sub.as_str(), path))
                    {
                        done[item][j] = true;
                    }
                }
            }
        }
        if let Some(item) = item {
            let canonical = resolved
                .as_ref()
                .map(|(k, _)| k.kind.to_string())
                .unwrap_or(sub.clone());
            let alias = spec::relation(&canonical).map(|r| r.target.to_string());
            walk(done, item, Some((canonical, alias)), depth + 1);
        }
    }
}

fn special(path: &str) -> Option<&'static str> {
    match path {
        "events" => Some("lgar"),
        "storagedomains/files" => Some("lg"),
        _ => None,
    }
}
