//! Clusters: defaults on add (as engine-setup makes the Default cluster), the CPU type
//! checked against the cluster level, the management network attached and a CPU profile made
//! with each new cluster; networks attached to clusters; what may not be removed.

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::{crud, index, messages, Location};
use serde_json::{json, Value};
use vireo_store::{Filter, Query, Tx};

fn defaults(doc: &mut Value) {
    default(
        doc,
        "memory_policy",
        json!({"over_commit": {"percent": "100"}, "transparent_huge_pages": {"enabled": "true"}}),
    );
    default(doc, "error_handling", json!({"on_error": "migrate"}));
    default(
        doc,
        "ksm",
        json!({"enabled": "true", "merge_across_nodes": "true"}),
    );
    default(
        doc,
        "required_rng_sources",
        json!({"required_rng_source": ["urandom"]}),
    );
    default(
        doc,
        "migration",
        json!({
            "auto_converge": "inherit", "compressed": "inherit", "encrypted": "inherit",
            "parallel_migrations_policy": "disabled",
            "policy": reference(crate::bootstrap::ids::MIGRATION_POLICY_MINIMAL_DOWNTIME),
            "bandwidth": {"assignment_method": "auto"},
        }),
    );
    default(
        doc,
        "fencing_policy",
        json!({
            "enabled": "true",
            "skip_if_sd_active": {"enabled": "false"},
            "skip_if_connectivity_broken": {"enabled": "false", "threshold": "50"},
            "skip_if_gluster_bricks_up": "false",
            "skip_if_gluster_quorum_not_met": "false",
        }),
    );
    for (k, v) in [
        ("virt_service", s(true)),
        ("gluster_service", s(false)),
        ("threads_as_cores", s(false)),
        ("tunnel_migration", s(false)),
        ("trusted_service", s(false)),
        ("ha_reservation", s(false)),
        ("ballooning_enabled", s(true)),
        ("vnc_encryption", s(false)),
        ("switch_type", json!("legacy")),
        ("firewall_type", json!("firewalld")),
        ("log_max_memory_used_threshold", s(95)),
        ("log_max_memory_used_threshold_type", json!("percentage")),
        ("fips_mode", json!("undefined")),
        ("upgrade_in_progress", s(false)),
        ("upgrade_percent_complete", s(0)),
        ("comment", json!("")),
    ] {
        default(doc, k, v);
    }
}

/// The CPU type must be one the cluster level knows; its architecture follows from it.
async fn check_cpu(ctx: &Ctx<'_>, action: &str, doc: &mut Value) -> ApiResult<()> {
    let Some(cpu_type) = str_at(doc, "cpu.type").map(str::to_string) else {
        if doc.get("cpu").is_none() {
            set(doc, "cpu", json!({"architecture": "undefined"}));
        }
        return Ok(());
    };
    let level = format!(
        "{}.{}",
        int_at(doc, "version.major").unwrap_or(4),
        int_at(doc, "version.minor").unwrap_or(8)
    );
    let Some(rec) = ctx.engine.store.get("clusterlevels", &level).await? else {
        return Err(messages::invalid(
            action,
            "clusters",
            &format!("Compatibility version {level} is not supported."),
        ));
    };
    let ldoc = crud::doc_of(&rec)?;
    let known = items(&ldoc, "cpu_types", "cpu_type")
        .into_iter()
        .find(|c| str_at(c, "name") == Some(cpu_type.as_str()))
        .cloned();
    let Some(known) = known else {
        return Err(messages::invalid(
            action,
            "clusters",
            "The chosen CPU is not supported.",
        ));
    };
    let arch = str_at(&known, "architecture")
        .unwrap_or("undefined")
        .to_string();
    match str_at(doc, "cpu.architecture") {
        Some(a) if a != arch && a != "undefined" => {
            return Err(messages::invalid(
                action,
                "clusters",
                "Architecture does not match the expected value.",
            ));
        }
        _ => {}
    }
    if let Some(cpu) = doc.get_mut("cpu") {
        set(cpu, "architecture", json!(arch));
    }
    Ok(())
}

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let dc = resolve_ref(ctx, &mut a.doc, "data_center", "datacenters").await?;
    let doc = &mut a.doc;
    if let Some(dc) = &dc {
        let dcdoc = crud::doc_of(dc)?;
        default(
            doc,
            "version",
            dcdoc
                .get("version")
                .cloned()
                .unwrap_or(json!({"major": "4", "minor": "8"})),
        );
        if int_at(doc, "version.minor") < int_at(&dcdoc, "version.minor") {
            return Err(ApiError::conflict("Cannot add Cluster with Compatibility Version that is lower than the Data Center Compatibility Version.\n-Please upgrade your Cluster to a later Compatibility version first."));
        }
    }
    default(doc, "version", json!({"major": "4", "minor": "8"}));
    super::datacenters::check_version("add", "clusters", doc)?;
    check_cpu(ctx, "add", doc).await?;
    if resolve_ref(ctx, doc, "mac_pool", "macpools")
        .await?
        .is_none()
    {
        set(doc, "mac_pool", reference(crate::bootstrap::ids::MAC_POOL));
    }
    if resolve_ref(ctx, doc, "scheduling_policy", "schedulingpolicies")
        .await?
        .is_none()
    {
        set(
            doc,
            "scheduling_policy",
            reference(crate::bootstrap::ids::SCHEDULING_POLICY_NONE),
        );
    }
    defaults(doc);
    Ok(())
}

/// oVirt's AddCluster: the data center's management network is attached, and a CPU profile
/// named after the cluster is made.
pub async fn in_tx_add(tx: &mut Tx, _ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    if let Some(dc) = ref_id(&a.doc, "data_center") {
        let wanted = str_at(&a.doc, "management_network.name").map(str::to_string);
        let wanted_id = ref_id(&a.doc, "management_network");
        let nets = tx
            .list(
                "networks",
                &Query::new(Filter::eq("data_center.id", dc.as_str())),
            )
            .await?;
        let mgmt = nets.iter().find(|n| match (&wanted_id, &wanted) {
            (Some(id), _) => &n.id == id,
            (None, Some(name)) => n.name.as_deref() == Some(name.as_str()),
            (None, None) => n.name.as_deref() == Some("ovirtmgmt"),
        });
        if let Some(n) = mgmt {
            let att = json!({
                "id": n.id,
                "cluster": reference(&a.id),
                "usages": {"usage": ["vm", "display", "migration", "management", "default_route"]},
                "display": "true",
                "required": "true",
                "status": "operational",
            });
            index::insert(
                tx,
                "clusters/networks",
                &crate::bootstrap::sub_record_id(&a.id, &n.id),
                &att,
                Some(&a.id),
                &[],
            )
            .await?;
        }
    }
    let pid = uuid::Uuid::new_v4().to_string();
    let profile = json!({"id": pid, "name": str_at(&a.doc, "name").unwrap_or_default(), "cluster": reference(&a.id)});
    index::insert(tx, "cpuprofiles", &pid, &profile, None, &[]).await?;
    Ok(())
}

pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    resolve_ref(ctx, doc, "data_center", "datacenters").await?;
    if ref_id(before, "data_center").is_some()
        && ref_id(before, "data_center") != ref_id(doc, "data_center")
    {
        return Err(ApiError::conflict(
            "Cannot change Data Center association when editing a Cluster.",
        ));
    }
    resolve_ref(ctx, doc, "mac_pool", "macpools").await?;
    resolve_ref(ctx, doc, "scheduling_policy", "schedulingpolicies").await?;
    super::datacenters::check_version("edit", "clusters", doc)?;
    check_cpu(ctx, "edit", doc).await?;
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    if count_eq(ctx, "hosts", "cluster.id", id).await? > 0 {
        return Err(messages::conflict(
            "remove",
            "clusters",
            "Host Cluster contains one or more Hosts.",
        ));
    }
    if count_eq(ctx, "vms", "cluster.id", id).await? > 0 {
        return Err(messages::conflict(
            "remove",
            "clusters",
            "One or more VMs are still assigned to the Cluster",
        ));
    }
    if count_eq(ctx, "templates", "cluster.id", id).await? > 0 {
        return Err(messages::conflict(
            "remove",
            "clusters",
            "One or more Template(s) are still associated with the Cluster",
        ));
    }
    if count_eq(ctx, "vmpools", "cluster.id", id).await? > 0 {
        return Err(messages::conflict(
            "remove",
            "clusters",
            "One or more VM-Pools are still associated with it",
        ));
    }
    Ok(())
}

pub async fn in_tx_remove(tx: &mut Tx, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    for p in tx
        .list("cpuprofiles", &Query::new(Filter::eq("cluster.id", id)))
        .await?
    {
        tx.delete("cpuprofiles", &p.id).await?;
    }
    for g in tx
        .list(
            "clusters/affinitygroups",
            &Query::new(Filter::ParentIs(id.to_string())),
        )
        .await?
    {
        crud::cascade(tx, "clusters/affinitygroups", &g.id).await?;
    }
    Ok(())
}

/// `POST /clusters/{id}/networks`: attaches a network of the cluster's data center.
pub async fn prepare_attach_network(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let cluster = at.parent_id().unwrap_or_default().to_string();
    let crec = ctx
        .engine
        .store
        .get("clusters", &cluster)
        .await?
        .ok_or_else(|| ApiError::not_found("no such cluster"))?;
    let cdoc = crud::doc_of(&crec)?;
    let dc = ref_id(&cdoc, "data_center");
    let net = match (&a.body_id, str_at(&a.doc, "name")) {
        (Some(id), _) => ctx
            .engine
            .store
            .get("networks", id)
            .await?
            .ok_or_else(|| messages::entity_not_found("Network", "id", id))?,
        (None, Some(name)) => {
            let dc = dc.clone().unwrap_or_default();
            where_eq(ctx, "networks", "data_center.id", &dc)
                .await?
                .into_iter()
                .find(|n| n.name.as_deref() == Some(name))
                .ok_or_else(|| messages::entity_not_found("Network", "name", name))?
        }
        _ => return Err(ApiError::incomplete("Network [id|name] required for add")),
    };
    let ndoc = crud::doc_of(&net)?;
    if ref_id(&ndoc, "data_center") != dc {
        return Err(messages::conflict(
            "attach",
            "clusters/networks",
            "The Network does not belong to the Data Center of the Cluster.",
        ));
    }
    if ctx
        .engine
        .store
        .get(
            "clusters/networks",
            &crate::bootstrap::sub_record_id(&cluster, &net.id),
        )
        .await?
        .is_some()
    {
        return Err(messages::conflict(
            "attach",
            "clusters/networks",
            "Logical Network is already attached to Cluster.",
        ));
    }
    let body = a.doc.clone();
    a.doc = json!({
        "cluster": reference(&cluster),
        "required": body.get("required").cloned().unwrap_or(s(true)),
        "usages": body.get("usages").cloned().or_else(|| ndoc.get("usages").cloned()).unwrap_or(json!({"usage": ["vm"]})),
        "display": body.get("display").cloned().unwrap_or(s(false)),
        "status": "operational",
    });
    a.set_member_id(&net.id);
    Ok(())
}

pub async fn check_detach_network(ctx: &Ctx<'_>, at: &Location, doc: &Value) -> ApiResult<()> {
    let usages: Vec<&str> = items(doc, "usages", "usage")
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    if usages.contains(&"management") {
        return Err(messages::conflict(
            "detach",
            "clusters/networks",
            "The management network cannot be detached from the Cluster.",
        ));
    }
    let cluster = at.parent_id().unwrap_or_default();
    let net = str_at(doc, "id").unwrap_or_default();
    let mut users = Vec::new();
    for p in where_eq(ctx, "vnicprofiles", "network.id", net).await? {
        for n in where_eq(ctx, "vms/nics", "vnic_profile.id", &p.id).await? {
            let Some(vm) = n.parent_id else { continue };
            if let Some(v) = ctx.engine.store.get("vms", &vm).await? {
                if ref_id(&crud::doc_of(&v)?, "cluster").as_deref() == Some(cluster) {
                    users.push(v);
                }
            }
        }
    }
    if !users.is_empty() {
        let net_name = ctx
            .engine
            .store
            .get("networks", net)
            .await?
            .and_then(|r| r.name)
            .unwrap_or_default();
        return Err(messages::conflict(
            "detach",
            "clusters/networks",
            &format!("The following Logical Network: '{net_name}' is being used by the following VM(s): '{}' . Please stop the VM(s) and try again.", names(&users, 10)),
        ));
    }
    Ok(())
}
