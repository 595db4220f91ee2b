//! The rules of the smaller kinds: affinity groups and labels, bookmarks, roles and permits,
//! quotas, CPU and disk profiles, instance types, VM pools, graphics consoles.

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::{crud, messages};
use serde_json::{json, Value};

pub async fn prepare_add(ctx: &Ctx<'_>, kind: &str, a: &mut Adding) -> ApiResult<()> {
    let parent = a.parent.clone();
    let doc = &mut a.doc;
    match kind {
        "clusters/affinitygroups" => {
            set(
                doc,
                "cluster",
                reference(parent.as_deref().unwrap_or_default()),
            );
            default(doc, "positive", s(true));
            default(doc, "enforcing", s(false));
            default(doc, "priority", json!(1.0));
            default(
                doc,
                "vms_rule",
                json!({"enabled": "true", "positive": "true", "enforcing": "false"}),
            );
            default(
                doc,
                "hosts_rule",
                json!({"enabled": "false", "positive": "true", "enforcing": "false"}),
            );
        }
        "affinitylabels" => {
            default(doc, "read_only", s(false));
            default(doc, "has_implicit_affinity_group", s(false));
        }
        "bookmarks" if str_at(doc, "value").unwrap_or_default().is_empty() => {
            return Err(ApiError::incomplete("Bookmark [value] required for add"));
        }
        "roles" => {
            default(doc, "administrative", s(false));
            set(doc, "mutable", s(true));
            let permits = role_permits(ctx, doc).await?;
            if let Value::Object(o) = doc {
                o.remove("permits");
            }
            a.notes = json!({ "permits": permits });
        }
        "roles/permits" => {
            let role = parent.unwrap_or_default();
            let r = ctx
                .engine
                .store
                .get("roles", &role)
                .await?
                .ok_or_else(|| ApiError::not_found("no such role"))?;
            if bool_at(&crud::doc_of(&r)?, "mutable") == Some(false) {
                return Err(messages::conflict(
                    "attach",
                    "roles",
                    "The Role is Read-Only.",
                ));
            }
            let Some(permit) = a.body_id.clone() else {
                return Err(ApiError::incomplete("Permit [id] required for add"));
            };
            let known = ctx
                .engine
                .store
                .list(
                    "roles/permits",
                    &vireo_store::Query::new(vireo_store::Filter::All).limit(100_000),
                )
                .await?;
            let p = known
                .iter()
                .filter_map(|r| crud::doc_of(r).ok())
                .find(|d| str_at(d, "id") == Some(permit.as_str()))
                .ok_or_else(|| messages::entity_not_found("Permit", "id", &permit))?;
            *doc = p;
            set(doc, "role", reference(&role));
            a.set_member_id(&permit);
        }
        "datacenters/quotas" => {
            set(
                doc,
                "data_center",
                reference(parent.as_deref().unwrap_or_default()),
            );
            default(doc, "cluster_hard_limit_pct", s(20));
            default(doc, "storage_hard_limit_pct", s(20));
            default(doc, "cluster_soft_limit_pct", s(80));
            default(doc, "storage_soft_limit_pct", s(80));
        }
        "datacenters/quotas/quotastoragelimits" | "datacenters/quotas/quotaclusterlimits" => {
            let quota = parent.clone().unwrap_or_default();
            let id = quota_limit_id(ctx, kind, &quota, doc).await?;
            a.set_member_id(&id);
        }
        "hosts/fenceagents" => prepare_fence_agent(doc, parent.as_deref().unwrap_or_default()),
        "vms/numanodes" => {
            // oVirt's `BackendVmNumaNodesResource.add` requires these.
            let missing: Vec<&str> = ["index", "memory", "cpu"]
                .into_iter()
                .filter(|k| matches!(at(doc, k), None | Some(Value::Null)))
                .collect();
            if !missing.is_empty() {
                return Err(ApiError::incomplete(format!(
                    "VirtualNumaNode [{}] required for add",
                    missing.join(", ")
                )));
            }
            set(doc, "vm", reference(parent.as_deref().unwrap_or_default()));
        }
        "cpuprofiles" => {
            require_ref(ctx, doc, "cluster", "clusters", "CpuProfile").await?;
        }
        "diskprofiles" => {
            require_ref(ctx, doc, "storage_domain", "storagedomains", "DiskProfile").await?;
        }
        "instancetypes" => {
            default(doc, "memory", s(1i64 << 30));
            default(
                doc,
                "cpu",
                json!({"topology": {"sockets": "1", "cores": "1", "threads": "1"}}),
            );
            default(doc, "creation_time", now());
            super::vms::check_hardware("add", doc).map_err(|e| {
                ApiError::new(e.status, e.reason, e.detail.replace("VM", "Instance Type"))
            })?;
        }
        "vmpools" => prepare_pool(ctx, doc).await?,
        "templates/graphicsconsoles" | "instancetypes/graphicsconsoles" => {
            let protocol = str_at(doc, "protocol").unwrap_or("vnc").to_string();
            let id: String = protocol.bytes().map(|b| format!("{b:02x}")).collect();
            let owner = if kind.starts_with("templates") {
                "template"
            } else {
                "instance_type"
            };
            set(doc, owner, reference(parent.as_deref().unwrap_or_default()));
            a.set_member_id(&id);
        }
        _ => {}
    }
    Ok(())
}

/// The permits a new role is given: oVirt requires them (`BackendRolesResource.add`
/// validates `permits.id`, as the model's mandatory inputs do before this) and maps each id
/// to a permit it knows.
async fn role_permits(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<Vec<Value>> {
    let wanted = items(doc, "permits", "permit");
    if wanted.is_empty() {
        return Err(ApiError::incomplete("Role [permits.id] required for add"));
    }
    // The permits oVirt knows are those its cluster levels list.
    let levels = ctx
        .engine
        .store
        .list(
            "clusterlevels",
            &vireo_store::Query::new(vireo_store::Filter::All).limit(1_000),
        )
        .await?;
    let mut known: Vec<Value> = Vec::new();
    for level in levels.iter().filter_map(|r| crud::doc_of(r).ok()) {
        for p in items(&level, "permits", "permit") {
            if !known.iter().any(|k| str_at(k, "id") == str_at(p, "id")) {
                known.push(p.clone());
            }
        }
    }
    let mut out: Vec<Value> = Vec::new();
    for id in wanted.iter().filter_map(|w| str_at(w, "id")) {
        let p = known
            .iter()
            .find(|d| str_at(d, "id") == Some(id))
            .ok_or_else(|| messages::entity_not_found("Permit", "id", id))?;
        if !out.iter().any(|o| str_at(o, "id") == Some(id)) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Inside the role's transaction: the permits `prepare_add` found, as the role's own.
pub async fn in_tx_add_role(tx: &mut vireo_store::Tx, a: &Adding) -> ApiResult<()> {
    let permits = a.notes.get("permits").and_then(Value::as_array);
    for p in permits.into_iter().flatten() {
        let mut doc = p.clone();
        set(&mut doc, "role", reference(&a.id));
        let id = str_at(&doc, "id").unwrap_or_default().to_string();
        let rid = crate::bootstrap::sub_record_id(&a.id, &id);
        crate::inventory::index::insert(tx, "roles/permits", &rid, &doc, Some(&a.id), &[])
            .await
            .map_err(|e| crate::inventory::index::conflict(e, "add", "roles/permits", &doc))?;
    }
    Ok(())
}

/// Inside the limit's transaction: a limit on what already has one replaces it (oVirt's
/// `UpdateQuota` sets the limit of that storage domain or cluster).
pub async fn in_tx_add_quota_limit(
    tx: &mut vireo_store::Tx,
    kind: &str,
    a: &Adding,
) -> ApiResult<()> {
    tx.delete(kind, &a.record_id).await?;
    Ok(())
}

/// A host's fence agent. oVirt requires its address, order, type, user name and password
/// (`BackendFenceAgentsResource.add`; the model's mandatory inputs, checked before this) and
/// never shows the password again. vireo fences nothing, so the password is not kept.
fn prepare_fence_agent(doc: &mut Value, host: &str) {
    if let Value::Object(o) = doc {
        o.remove("password");
    }
    set(doc, "host", reference(host));
    default(doc, "encrypt_options", s(false));
    default(doc, "concurrent", s(false));
}

/// A quota's limit on one storage domain or cluster is known by that object's id; a limit
/// naming none is the quota's global limit and is known by the quota's id (oVirt's
/// `BackendQuotaStorageLimitsResource`). Nothing used yet: the usage starts at zero.
async fn quota_limit_id(
    ctx: &Ctx<'_>,
    kind: &str,
    quota: &str,
    doc: &mut Value,
) -> ApiResult<String> {
    let storage = kind.ends_with("quotastoragelimits");
    let (attr, target) = if storage {
        ("storage_domain", "storagedomains")
    } else {
        ("cluster", "clusters")
    };
    set(doc, "quota", reference(quota));
    if storage {
        default(doc, "limit", s(-1));
        set(doc, "usage", json!(0.0));
    } else {
        default(doc, "vcpu_limit", s(-1));
        default(doc, "memory_limit", json!(-1.0));
        set(doc, "vcpu_usage", s(0));
        set(doc, "memory_usage", json!(0.0));
    }
    let id = match resolve_ref(ctx, doc, attr, target).await? {
        Some(r) => crud::api_id(&r, &crud::doc_of(&r)?),
        None => quota.to_string(),
    };
    Ok(id)
}

/// A pool: its cluster and template; its VMs are made by the hosts side when it is used.
async fn prepare_pool(ctx: &Ctx<'_>, doc: &mut Value) -> ApiResult<()> {
    require_ref(ctx, doc, "cluster", "clusters", "VmPool").await?;
    let t = doc
        .get("template")
        .cloned()
        .ok_or_else(|| ApiError::incomplete("VmPool [template.id|name] required for add"))?;
    let tr = super::vms::find_template(ctx, &t).await?;
    set(doc, "template", reference(&tr.id));
    default(doc, "size", s(1));
    default(doc, "prestarted_vms", s(0));
    default(doc, "max_user_vms", s(1));
    default(doc, "type", json!("automatic"));
    default(doc, "stateful", s(false));
    if int_at(doc, "size").unwrap_or(0) < 0 || int_at(doc, "size").unwrap_or(0) > 1000 {
        return Err(messages::invalid(
            "add",
            "vmpools",
            "The pool size must be between 0 and 1000.",
        ));
    }
    if int_at(doc, "prestarted_vms").unwrap_or(0) > int_at(doc, "size").unwrap_or(0) {
        return Err(messages::invalid(
            "add",
            "vmpools",
            "Prestarted VMs cannot exceed the number of VMs in the pool.",
        ));
    }
    Ok(())
}

pub fn check_remove_group(doc: &Value) -> ApiResult<()> {
    if str_at(doc, "id") == Some(crate::bootstrap::ids::EVERYONE) {
        return Err(ApiError::conflict(
            "Cannot remove the built-in group \"Everyone\".",
        ));
    }
    Ok(())
}

pub async fn check_remove_role(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    if bool_at(doc, "mutable") == Some(false) {
        return Err(messages::conflict(
            "remove",
            "roles",
            "The Role is Read-Only.",
        ));
    }
    let id = str_at(doc, "id").unwrap_or_default();
    if count_eq(ctx, "permissions", "role", id).await? > 0 {
        return Err(ApiError::conflict("One or more Permissions is still associated with Role.\n- Please remove all Permissions first."));
    }
    Ok(())
}
