//! Placement, as oVirt's scheduler does it: filters remove hosts that cannot run the VM (not
//! up, another cluster, not enough memory or CPUs, pinning, enforcing affinity), weights rank
//! the rest by the cluster's policy, and the best-ranked host wins. [`place`] is pure;
//! [`gather`] collects its inputs from the monitor's view and the store.

use super::docs;
use super::Hosts;
use crate::api::fault::{ApiError, ApiResult};
use std::collections::HashSet;
use vireo_store::{Filter, Query};

/// Ids of oVirt's scheduling policies (bootstrap inventory).
pub const POLICY_NONE: &str = "b4ed2332-a7ac-4d5f-9596-99a439cb2812";
pub const POLICY_EVENLY: &str = "20d25257-b4bd-4589-92a6-c4c5c5d3fd1a";
pub const POLICY_POWER_SAVING: &str = "5a2b0939-7d46-4b73-a469-e9c2c7fc6a53";
pub const POLICY_VM_EVENLY: &str = "8d5d7bec-68de-4a67-b53e-0ac54686d579";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// oVirt's `none`: no balancing; vireo spreads by VM count so that placement stays
    /// predictable.
    None,
    /// Least loaded CPU first, then most free memory.
    EvenlyDistributed,
    /// Pack: the most used host that still fits.
    PowerSaving,
    /// Fewest VMs first.
    VmEvenlyDistributed,
}

impl Policy {
    pub fn of(id: &str, name: Option<&str>) -> Policy {
        match (id, name.unwrap_or_default()) {
            (POLICY_EVENLY, _) | (_, "evenly_distributed") => Policy::EvenlyDistributed,
            (POLICY_POWER_SAVING, _) | (_, "power_saving") => Policy::PowerSaving,
            (POLICY_VM_EVENLY, _) | (_, "vm_evenly_distributed") => Policy::VmEvenlyDistributed,
            _ => Policy::None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub status: String,
    pub cluster_id: String,
    pub memory: i64,
    /// Logical CPUs and cores (sockets × cores).
    pub cpus: i64,
    pub cores: i64,
    pub committed_memory: i64,
    pub vm_count: usize,
    /// Percent of the host's CPUs in use, from its last statistics.
    pub cpu_load: f64,
}

#[derive(Debug, Clone)]
pub struct AffinityRule {
    pub group: String,
    pub positive: bool,
    pub enforcing: bool,
    /// The hosts the rule is about: where the group's other VMs run (VM to VM), or the
    /// group's hosts (VM to host).
    pub hosts: HashSet<String>,
    pub vm_to_vm: bool,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub vm_name: String,
    pub cluster_id: String,
    pub memory: i64,
    pub vcpus: i64,
    pub threads_as_cores: bool,
    pub overcommit_percent: i64,
    /// `placement_policy.hosts`: only these, when not empty.
    pub pinned: Vec<String>,
    /// The host the VM runs on now (a migration's source).
    pub current: Option<String>,
    pub affinity: Vec<AffinityRule>,
    pub policy: Policy,
    /// "run" or "migrate", for the fault's words.
    pub action: &'static str,
}

/// A host that passed a filter, or why it did not.
fn filter(req: &Request, c: &Candidate) -> Result<(), String> {
    let fail = |filter: &str, why: String| {
        Err(format!(
            "The host {} did not satisfy internal filter {filter} because {why}.",
            c.name
        ))
    };
    if req.current.as_deref() == Some(c.id.as_str()) {
        return fail("Migration", "it currently hosts the VM".into());
    }
    if !req.pinned.is_empty() && !req.pinned.contains(&c.id) {
        return fail(
            "PinToHost",
            "the host is not present in the pinning list".into(),
        );
    }
    let cpus = if req.threads_as_cores {
        c.cpus
    } else {
        c.cores.max(1)
    };
    if req.vcpus > cpus {
        return fail(
            "CPU",
            "it has an insufficient amount of CPU cores to run the VM".into(),
        );
    }
    let free = c.memory * req.overcommit_percent.max(1) / 100 - c.committed_memory;
    if req.memory > free {
        return fail(
            "Memory",
            format!(
                "its available memory is too low ({} MB) to run the VM",
                free.max(0) / (1 << 20)
            ),
        );
    }
    for r in req.affinity.iter().filter(|r| r.enforcing) {
        let on = r.hosts.contains(&c.id);
        // A positive VM-to-VM group whose other VMs run nowhere yet constrains nothing.
        let empty_positive_vms = r.vm_to_vm && r.positive && r.hosts.is_empty();
        if r.positive && !on && !empty_positive_vms {
            let name = if r.vm_to_vm {
                "VmAffinityGroups"
            } else {
                "VmToHostsAffinityGroups"
            };
            return fail(
                name,
                format!("it did not match positive affinity rules {}", r.group),
            );
        }
        if !r.positive && on {
            let name = if r.vm_to_vm {
                "VmAffinityGroups"
            } else {
                "VmToHostsAffinityGroups"
            };
            return fail(
                name,
                format!("it matched negative affinity rules {}", r.group),
            );
        }
    }
    Ok(())
}

/// Soft (non-enforcing) affinity rules a host breaks: fewer is better.
fn soft_violations(req: &Request, c: &Candidate) -> usize {
    req.affinity
        .iter()
        .filter(|r| !r.enforcing)
        .filter(|r| {
            let on = r.hosts.contains(&c.id);
            (r.positive && !on && !(r.vm_to_vm && r.hosts.is_empty())) || (!r.positive && on)
        })
        .count()
}

/// The host to run on, or the fault oVirt answers when none fits (409).
pub fn place(req: &Request, candidates: &[Candidate]) -> Result<String, Vec<String>> {
    let head = format!(
        "Cannot {} VM. There is no host that satisfies current scheduling constraints. See below for details:",
        req.action
    );
    let usable: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.status == "up" && c.cluster_id == req.cluster_id)
        .collect();
    if usable.is_empty() {
        return Err(vec![
            head,
            "There are no hosts to use. Check that the cluster contains at least one host in Up state.".into(),
        ]);
    }
    let mut reasons = Vec::new();
    let mut fit = Vec::new();
    for c in usable {
        match filter(req, c) {
            Ok(()) => fit.push(c),
            Err(r) => reasons.push(r),
        }
    }
    if fit.is_empty() {
        let mut all = vec![head];
        all.extend(reasons);
        return Err(all);
    }
    let free_ratio = |c: &Candidate| {
        let cap = (c.memory * req.overcommit_percent.max(1) / 100).max(1) as f64;
        (cap - c.committed_memory as f64) / cap
    };
    fit.sort_by(|a, b| {
        let soft = soft_violations(req, a).cmp(&soft_violations(req, b));
        let by_policy = match req.policy {
            Policy::EvenlyDistributed => a
                .cpu_load
                .total_cmp(&b.cpu_load)
                .then(free_ratio(b).total_cmp(&free_ratio(a)))
                .then(a.vm_count.cmp(&b.vm_count)),
            Policy::PowerSaving => free_ratio(a)
                .total_cmp(&free_ratio(b))
                .then(b.vm_count.cmp(&a.vm_count)),
            Policy::VmEvenlyDistributed | Policy::None => a
                .vm_count
                .cmp(&b.vm_count)
                .then(free_ratio(b).total_cmp(&free_ratio(a))),
        };
        soft.then(by_policy).then(a.name.cmp(&b.name))
    });
    Ok(fit[0].id.clone())
}

/// The fault for [`place`]'s reasons: oVirt answers 409 with them as a list.
pub fn fault(reasons: &[String]) -> ApiError {
    ApiError::operation_failed(axum::http::StatusCode::CONFLICT, reasons)
}

/// What the VM asks of a host, from its record and its cluster's.
pub async fn request_for(
    h: &Hosts,
    vm_id: &str,
    vm: &serde_json::Value,
    action: &'static str,
    current: Option<String>,
) -> ApiResult<Request> {
    let cluster_id = docs::text(vm, &["cluster", "id"])
        .unwrap_or_default()
        .to_string();
    let cluster = h
        .store
        .get("clusters", &cluster_id)
        .await?
        .map(|r| docs::parse(&r))
        .unwrap_or_default();
    let policy_id = docs::text(&cluster, &["scheduling_policy", "id"])
        .unwrap_or(POLICY_NONE)
        .to_string();
    let policy_name = match h.store.get("schedulingpolicies", &policy_id).await? {
        Some(r) => r.name,
        None => None,
    };
    let sockets = docs::int(vm, &["cpu", "topology", "sockets"]).unwrap_or(1);
    let cores = docs::int(vm, &["cpu", "topology", "cores"]).unwrap_or(1);
    let threads = docs::int(vm, &["cpu", "topology", "threads"]).unwrap_or(1);
    let threads_as_cores = docs::boolean(&cluster, &["threads_as_cores"]).unwrap_or(false);
    let vcpus = if threads_as_cores {
        sockets * cores * threads
    } else {
        sockets * cores
    };
    let pinned = docs::ref_ids(
        vm.get("placement_policy").and_then(|p| p.get("hosts")),
        "host",
    );
    let pinned = resolve_host_refs(
        h,
        vm.get("placement_policy").and_then(|p| p.get("hosts")),
        pinned,
    )
    .await?;
    Ok(Request {
        vm_name: docs::text(vm, &["name"]).unwrap_or_default().to_string(),
        memory: docs::int(vm, &["memory"]).unwrap_or(1 << 30),
        vcpus: vcpus.max(1),
        threads_as_cores,
        overcommit_percent: docs::int(&cluster, &["memory_policy", "over_commit", "percent"])
            .unwrap_or(100),
        pinned,
        current,
        affinity: affinity_rules(h, &cluster_id, vm_id).await?,
        policy: Policy::of(&policy_id, policy_name.as_deref()),
        cluster_id,
        action,
    })
}

/// Pinned hosts may be given by name in a stored VM.
async fn resolve_host_refs(
    h: &Hosts,
    v: Option<&serde_json::Value>,
    mut ids: Vec<String>,
) -> ApiResult<Vec<String>> {
    for item in docs::list_items(v, "host") {
        if item.get("id").is_none() {
            if let Some(name) = item.get("name").and_then(|n| n.as_str()) {
                if let Some(r) = h.store.get_by_name("hosts", name, None).await? {
                    ids.push(r.id);
                }
            }
        }
    }
    Ok(ids)
}

/// The cluster's affinity groups that name this VM.
async fn affinity_rules(h: &Hosts, cluster_id: &str, vm_id: &str) -> ApiResult<Vec<AffinityRule>> {
    let groups = h
        .store
        .list(
            "clusters/affinitygroups",
            &Query::new(Filter::ParentIs(cluster_id.to_string())),
        )
        .await?;
    let mut rules = Vec::new();
    for g in groups {
        let d = docs::parse(&g);
        let vms = docs::ref_ids(d.get("vms"), "vm");
        if !vms.iter().any(|v| v == vm_id) {
            continue;
        }
        let name = docs::text(&d, &["name"]).unwrap_or(&g.id).to_string();
        let legacy_positive = docs::boolean(&d, &["positive"]);
        let legacy_enforcing = docs::boolean(&d, &["enforcing"]);
        let rule = |key: &str| {
            let enabled = docs::boolean(&d, &[key, "enabled"]).unwrap_or(true);
            let positive = docs::boolean(&d, &[key, "positive"])
                .or(legacy_positive)
                .unwrap_or(true);
            let enforcing = docs::boolean(&d, &[key, "enforcing"])
                .or(legacy_enforcing)
                .unwrap_or(false);
            (enabled, positive, enforcing)
        };
        let (on, positive, enforcing) = rule("vms_rule");
        if on && vms.len() > 1 {
            let rt = h.runtime.lock().unwrap();
            let hosts = vms
                .iter()
                .filter(|v| v.as_str() != vm_id)
                .filter_map(|v| rt.vms.get(v).map(|t| t.host.clone()))
                .collect();
            rules.push(AffinityRule {
                group: name.clone(),
                positive,
                enforcing,
                hosts,
                vm_to_vm: true,
            });
        }
        let hosts: HashSet<String> = docs::ref_ids(d.get("hosts"), "host").into_iter().collect();
        let (on, positive, enforcing) = rule("hosts_rule");
        if on && !hosts.is_empty() {
            rules.push(AffinityRule {
                group: name,
                positive,
                enforcing,
                hosts,
                vm_to_vm: false,
            });
        }
    }
    Ok(rules)
}

/// Every enrolled host as a candidate, with what is committed on it now.
pub fn candidates(h: &Hosts) -> Vec<Candidate> {
    let entries: Vec<_> = h.table.read().unwrap().values().cloned().collect();
    let rt = h.runtime.lock().unwrap();
    entries
        .iter()
        .map(|e| {
            let v = e.view();
            let (committed_memory, _, vm_count) = rt.committed(&e.id);
            let cpu_load = v
                .stats
                .as_ref()
                .map(|s| s.cpu_user + s.cpu_system)
                .unwrap_or(0.0);
            Candidate {
                id: e.id.clone(),
                name: v.name,
                status: v.status,
                cluster_id: v.cluster_id,
                memory: v.memory,
                cpus: v.cpus,
                cores: v.cores,
                committed_memory,
                vm_count,
                cpu_load,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, mem_gib: i64, committed_gib: i64, vms: usize) -> Candidate {
        Candidate {
            id: id.into(),
            name: format!("host-{id}"),
            status: "up".into(),
            cluster_id: "c".into(),
            memory: mem_gib << 30,
            cpus: 8,
            cores: 4,
            committed_memory: committed_gib << 30,
            vm_count: vms,
            cpu_load: 0.0,
        }
    }

    fn req(mem_gib: i64) -> Request {
        Request {
            vm_name: "vm".into(),
            cluster_id: "c".into(),
            memory: mem_gib << 30,
            vcpus: 1,
            threads_as_cores: false,
            overcommit_percent: 100,
            pinned: vec![],
            current: None,
            affinity: vec![],
            policy: Policy::None,
            action: "run",
        }
    }

    #[test]
    fn memory_filter_and_no_host_fault() {
        let hosts = [host("a", 4, 3, 1), host("b", 8, 0, 0)];
        assert_eq!(place(&req(2), &hosts).unwrap(), "b");
        let err = place(&req(16), &hosts).unwrap_err();
        assert!(err[0].starts_with(
            "Cannot run VM. There is no host that satisfies current scheduling constraints."
        ));
        assert!(
            err[1].contains("did not satisfy internal filter Memory"),
            "{err:?}"
        );
        let none = place(&req(1), &[]).unwrap_err();
        assert!(none[1].starts_with("There are no hosts to use"));
    }

    #[test]
    fn policies_spread_or_pack() {
        let hosts = [host("a", 16, 8, 2), host("b", 16, 2, 1)];
        let mut r = req(1);
        assert_eq!(place(&r, &hosts).unwrap(), "b");
        r.policy = Policy::PowerSaving;
        assert_eq!(place(&r, &hosts).unwrap(), "a");
        r.policy = Policy::EvenlyDistributed;
        assert_eq!(place(&r, &hosts).unwrap(), "b");
    }

    #[test]
    fn pinning_cpu_migration_and_affinity() {
        let hosts = [host("a", 16, 0, 0), host("b", 16, 0, 0)];
        let mut r = req(1);
        r.pinned = vec!["b".into()];
        assert_eq!(place(&r, &hosts).unwrap(), "b");
        r.pinned.clear();
        r.current = Some("a".into());
        assert_eq!(place(&r, &hosts).unwrap(), "b");
        r.current = None;
        r.vcpus = 5;
        assert!(place(&r, &hosts).is_err());
        r.vcpus = 1;
        r.affinity = vec![AffinityRule {
            group: "g".into(),
            positive: true,
            enforcing: true,
            hosts: ["b".to_string()].into(),
            vm_to_vm: true,
        }];
        assert_eq!(place(&r, &hosts).unwrap(), "b");
        r.affinity[0].positive = false;
        assert_eq!(place(&r, &hosts).unwrap(), "a");
        r.affinity[0].enforcing = false;
        r.affinity[0].positive = true;
        assert_eq!(place(&r, &hosts).unwrap(), "b", "soft affinity ranks first");
    }
}
