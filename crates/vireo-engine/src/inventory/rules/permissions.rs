//! Permissions on every object: a role given to a user or a group on an object (or on the
//! system). Stored the way the auth module reads them (attributes `role`, `user`/`group`,
//! `object_type`, `object`); enforcement beyond the one check point is a later issue.

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::bootstrap::ids::SYSTEM;
use crate::inventory::{views, Location};

use vireo_store::{AttrValue, Filter};

// The attribute names the auth module reads permissions by (`auth::users`).
const PERM_USER: &str = "user";
const PERM_ROLE: &str = "role";
const PERM_OBJECT_TYPE: &str = "object_type";
const PERM_OBJECT: &str = "object";

/// Object references a permission may carry, with their kinds and object types.
const OBJECTS: &[(&str, &str, &str)] = &[
    ("data_center", "datacenters", "data_center"),
    ("cluster", "clusters", "cluster"),
    ("host", "hosts", "host"),
    ("storage_domain", "storagedomains", "storage_domain"),
    ("vm", "vms", "vm"),
    ("vm_pool", "vmpools", "vm_pool"),
    ("template", "templates", "template"),
    ("disk", "disks", "disk"),
];

pub async fn prepare_add(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let role = require_ref(ctx, &mut a.doc, "role", "roles", "Permission").await?;
    // Who holds it: the owner of /users/{id}/permissions, or the body's user or group.
    let (holder_field, holder) = match at.parent.as_ref().map(|(k, id)| (k.as_str(), id.clone())) {
        Some(("users", id)) => ("user", id),
        Some(("groups", id)) => ("group", id),
        _ => {
            if let Some(u) = resolve_ref(ctx, &mut a.doc, "user", "users").await? {
                ("user", u.id)
            } else if let Some(g) = resolve_ref(ctx, &mut a.doc, "group", "groups").await? {
                ("group", g.id)
            } else {
                return Err(ApiError::incomplete(
                    "Permission [user|group.id] required for add",
                ));
            }
        }
    };
    set(&mut a.doc, holder_field, reference(&holder));
    // What it is on: the owner of /vms/{id}/permissions and the like, else the body's object,
    // else the system.
    let (object_type, object) = match at.parent.as_ref() {
        Some((k, id)) if k != "users" && k != "groups" => {
            let (t, _) = views::object_type(k).ok_or_else(|| {
                ApiError::bad_request(format!("permissions cannot be given on {k}"))
            })?;
            (t.to_string(), id.clone())
        }
        _ => {
            let mut found = None;
            for (attr, kind, t) in OBJECTS {
                if let Some(r) = resolve_ref(ctx, &mut a.doc, attr, kind).await? {
                    found = Some((t.to_string(), r.id));
                    break;
                }
            }
            found.unwrap_or_else(|| ("system".to_string(), SYSTEM.to_string()))
        }
    };
    // Only one permission of a role for a holder on an object.
    let same = ctx
        .engine
        .store
        .count(
            "permissions",
            &Filter::And(vec![
                Filter::eq(PERM_ROLE, role.id.as_str()),
                Filter::eq(holder_field, holder.as_str()),
                Filter::eq(PERM_OBJECT, object.as_str()),
            ]),
        )
        .await?;
    if same > 0 {
        return Err(ApiError::conflict(
            "Cannot add Permission. Permission already exists.",
        ));
    }
    a.extra_attrs = vec![
        (PERM_ROLE.into(), AttrValue::Text(role.id.clone())),
        (
            if holder_field == "user" {
                PERM_USER.into()
            } else {
                "group".into()
            },
            AttrValue::Text(holder),
        ),
        (PERM_OBJECT_TYPE.into(), AttrValue::Text(object_type)),
        (PERM_OBJECT.into(), AttrValue::Text(object)),
    ];
    Ok(())
}
