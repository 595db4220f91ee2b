//! The inventory: objects of the API kept in the store, served by one generic implementation
//! of get/list/add/update/remove over the model (`crud`), with the rules of each kind in
//! `rules`.
//!
//! A request path is resolved to a [`Location`]: the store kind it names (the canonical
//! collection path, `vms`, `vms/nics`, `datacenters/storagedomains`), the owner of that
//! collection, and a member id. Two kinds of collections are not stored under their own path:
//! *views* (`/datacenters/{id}/clusters` shows the clusters whose data center is `{id}`, see
//! `views`) and *relations* (`/clusters/{id}/networks` holds attachments of networks that live
//! in `/networks`, see `spec::RELATIONS`).

pub mod actions;
pub mod agent;
pub mod coverage;
mod crud;
mod decorate;
pub mod events;
mod follow;
pub mod index;
pub mod jobs;
pub mod messages;
pub mod record;
pub mod rules;
pub mod spec;
pub mod tasks;
pub mod views;

use crate::api::fault::ApiResult;
use crate::api::path::Node;
use crate::api::Ctx;
use axum::response::Response;
use vireo_model::meta::{self, MethodKind, ServiceDef, TypeDef};
use vireo_model::*;

pub use crud::{doc_of, href_of};

/// A kind of object vireo keeps, and which of its collection's methods it serves.
pub struct Kind {
    /// The store kind: the canonical collection path.
    pub kind: &'static str,
    pub ops: &'static str,
    pub unique: Unique,
}

/// Where a name must be unique (oVirt's rules): nowhere, among all objects of the kind, among
/// the siblings under one owner, or within the data center / network / cluster / storage
/// domain the object references.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unique {
    None,
    Global,
    Parent,
    DataCenter,
    Network,
    Cluster,
    StorageDomain,
}

/// `l`ist, `g`et, `a`dd, `u`pdate, `r`emove.
macro_rules! kinds {
    ($( $kind:literal => $T:ty, $ops:literal, $unique:ident; )*) => {
        pub const KINDS: &[Kind] = &[ $( Kind { kind: $kind, ops: $ops, unique: Unique::$unique }, )* ];

        async fn typed(ctx: &Ctx<'_>, at: &Location, op: MethodKind) -> ApiResult<Option<Response>> {
            match at.kind.kind {
                $( $kind => crud::serve::<$T>(ctx, at, op).await.map(Some), )*
                _ => Ok(None),
            }
        }

        /// The model type the records of a kind hold.
        pub fn type_of(kind: &str) -> Option<&'static TypeDef> {
            match kind {
                $( $kind => Some(<$T as Model>::meta()), )*
                _ => None,
            }
        }
    };
}

kinds! {
    "datacenters" => DataCenter, "lgaur", Global;
    "datacenters/quotas" => Quota, "lgaur", Parent;
    "datacenters/quotas/quotastoragelimits" => QuotaStorageLimit, "lgar", None;
    "datacenters/quotas/quotaclusterlimits" => QuotaClusterLimit, "lgar", None;
    "datacenters/storagedomains" => StorageDomain, "lgar", None;
    "clusters" => Cluster, "lgaur", Global;
    "clusters/networks" => Network, "lgaur", None;
    "clusters/affinitygroups" => AffinityGroup, "lgaur", Parent;
    "clusters/affinitygroups/vms" => Vm, "lar", None;
    "clusters/affinitygroups/hosts" => Host, "lar", None;
    "cpuprofiles" => CpuProfile, "lgaur", Cluster;
    "diskprofiles" => DiskProfile, "lgaur", StorageDomain;
    "networks" => Network, "lgaur", DataCenter;
    "networks/networklabels" => NetworkLabel, "lgar", None;
    "vnicprofiles" => VnicProfile, "lgaur", Network;
    "macpools" => MacPool, "lgaur", Global;
    "templates" => Template, "lgaur", None;
    "templates/nics" => Nic, "lgaur", Parent;
    "templates/cdroms" => Cdrom, "lg", None;
    "templates/diskattachments" => DiskAttachment, "lgr", None;
    "templates/graphicsconsoles" => GraphicsConsole, "lgar", None;
    "templates/tags" => Tag, "lgar", None;
    "instancetypes" => InstanceType, "lgaur", Global;
    "instancetypes/nics" => Nic, "lgaur", Parent;
    "instancetypes/graphicsconsoles" => GraphicsConsole, "lgar", None;
    "vms" => Vm, "lgaur", Global;
    "vms/nics" => Nic, "lgaur", Parent;
    "vms/cdroms" => Cdrom, "lgau", None;
    "vms/diskattachments" => DiskAttachment, "lgaur", None;
    "vms/tags" => Tag, "lgar", None;
    "vms/affinitylabels" => AffinityLabel, "lgar", None;
    "vms/snapshots" => Snapshot, "lgar", None;
    "vms/snapshots/disks" => Disk, "lg", None;
    "vms/numanodes" => VirtualNumaNode, "lgaur", None;
    "vms/reporteddevices" => ReportedDevice, "lg", None;
    "vmpools" => VmPool, "lgaur", Global;
    "tags" => Tag, "lgaur", Global;
    "roles" => Role, "lgaur", Global;
    "roles/permits" => Permit, "lgar", None;
    "users" => User, "lg", None;
    "users/tags" => Tag, "lgar", None;
    "groups" => Group, "lg", None;
    "groups/tags" => Tag, "lgar", None;
    "permissions" => Permission, "lgar", None;
    "operatingsystems" => OperatingSystemInfo, "lg", None;
    "clusterlevels" => ClusterLevel, "lg", None;
    "schedulingpolicies" => SchedulingPolicy, "lg", None;
    "schedulingpolicyunits" => SchedulingPolicyUnit, "lg", None;
    "bookmarks" => Bookmark, "lgaur", Global;
    "affinitylabels" => AffinityLabel, "lgaur", Global;
    "affinitylabels/vms" => Vm, "lgar", None;
    "affinitylabels/hosts" => Host, "lgar", None;
    "hosts" => Host, "lgaur", Global;
    "hosts/nics" => HostNic, "lg", None;
    "hosts/tags" => Tag, "lgar", None;
    "hosts/affinitylabels" => AffinityLabel, "lgar", None;
    "hosts/fenceagents" => Agent, "lgaur", None;
    "storagedomains" => StorageDomain, "lgaur", Global;
    "disks" => Disk, "lgaur", None;
    "jobs" => Job, "lga", None;
    "jobs/steps" => Step, "lga", None;
    "domains" => Domain, "lg", None;
    "networkfilters" => NetworkFilter, "lg", None;
    "imagetransfers" => ImageTransfer, "lga", None;
}

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.kind == name)
}

/// Where a request points: a kind, the object that owns the collection, and a member.
pub struct Location {
    /// The store kind of the members (for a view: the kind it shows).
    pub kind: &'static Kind,
    /// The collection path as requested, canonicalised (`datacenters/clusters` for a view).
    pub path: String,
    /// (owner kind, owner id).
    pub parent: Option<(String, String)>,
    pub id: Option<String>,
    /// Set when the collection is a filtered view of another kind.
    pub view: Option<views::View>,
    /// The collection's href.
    pub collection_href: String,
    pub collection: &'static ServiceDef,
    pub entity: Option<&'static ServiceDef>,
}

impl Location {
    pub fn parent_id(&self) -> Option<&str> {
        self.parent.as_ref().map(|(_, p)| p.as_str())
    }
}

/// The store kind of `path` under `owner`, or a view of one. `None` for what vireo does not
/// keep (yet).
fn resolve_collection(path: &str) -> Option<(&'static Kind, Option<views::View>)> {
    if let Some(k) = kind(path) {
        return Some((k, None));
    }
    let v = views::view(path)?;
    Some((kind(v.kind)?, Some(v)))
}

/// Walks the resolved path: after each `{id}`, what follows is relative to the canonical kind
/// of that member (`/datacenters/{dc}/clusters/{c}/networks` is `clusters/networks` of `c`).
/// A resolved path: the canonical collection path, its owner `(kind, id)`, the member id, the
/// collection's href, and the index of the collection's node.
pub(crate) struct Walked {
    pub path: String,
    pub owner: Option<(String, String)>,
    pub id: Option<String>,
    pub href: String,
    pub last: usize,
}

pub(crate) fn locate_nodes(nodes: &[Node]) -> Option<Walked> {
    let (last_collection, id) = match nodes.last()? {
        Node::Item { id, .. } => (nodes.len().checked_sub(2)?, Some(id.clone())),
        Node::Locate { .. } => (nodes.len() - 1, None),
    };
    let mut owner: Option<(String, String)> = None;
    // A member of a relation also stands for its target (an attached storage domain is a
    // storage domain): its sub-collections are looked up under both.
    let mut alias: Option<String> = None;
    let mut path = String::new();
    let mut href = String::from("/ovirt-engine/api");
    for n in &nodes[..=last_collection] {
        match n {
            Node::Locate { segment, .. } => {
                path = match &owner {
                    None => segment.clone(),
                    Some((k, _)) => {
                        let direct = format!("{k}/{segment}");
                        match &alias {
                            Some(a) if resolve_collection(&direct).is_none() => {
                                format!("{a}/{segment}")
                            }
                            _ => direct,
                        }
                    }
                };
                href.push('/');
                href.push_str(segment);
            }
            Node::Item { id, .. } => {
                let canonical = match resolve_collection(&path) {
                    Some((k, _)) => k.kind.to_string(),
                    None => path.clone(),
                };
                alias = spec::relation(&canonical).map(|r| r.target.to_string());
                owner = Some((canonical, id.clone()));
                href.push('/');
                href.push_str(id);
            }
        }
    }
    Some(Walked {
        path,
        owner,
        id,
        href,
        last: last_collection,
    })
}

fn locate(ctx: &Ctx<'_>) -> Option<Location> {
    let nodes = &ctx.resolved.nodes;
    let w = locate_nodes(nodes)?;
    let (kind, view) = resolve_collection(&w.path)?;
    let collection = nodes[w.last].service();
    let entity = collection.item.map(meta::service);
    Some(Location {
        kind,
        path: w.path,
        parent: w.owner,
        id: w.id,
        view,
        collection_href: w.href,
        collection,
        entity,
    })
}

pub async fn dispatch(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    index::ensure_current(&ctx.engine.store, &ctx.engine.instance_id).await?;
    // Runtime views kept in memory, not in the store (statistics, consoles of running VMs).
    if let Some(r) = crate::hosts::runtime_read(ctx, op).await? {
        return Ok(Some(r));
    }
    // Collections that are not objects of the store.
    if let Some(r) = special(ctx, op).await? {
        return Ok(Some(r));
    }
    let Some(at) = locate(ctx) else {
        return Ok(None);
    };
    let letter = match op {
        MethodKind::List => 'l',
        MethodKind::Get => 'g',
        MethodKind::Add => 'a',
        MethodKind::Update => 'u',
        MethodKind::Remove => 'r',
        MethodKind::Action => {
            let action = ctx.resolved.action.clone().unwrap_or_default();
            return crate::actions::dispatch(ctx, &at, &action).await;
        }
    };
    let ops = at.view.as_ref().map(|v| v.ops).unwrap_or(at.kind.ops);
    if !ops.contains(letter) {
        return Ok(None);
    }
    typed(ctx, &at, op).await
}

/// Events (the store's audit log) and what the host agents answer (files of ISO domains).
async fn special(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    let nodes = &ctx.resolved.nodes;
    let Some(Node::Locate { segment, .. }) = nodes.first() else {
        return Ok(None);
    };
    if segment == "events" {
        return events::serve(ctx, op).await.map(Some);
    }
    let Some(w) = locate_nodes(nodes) else {
        return Ok(None);
    };
    match (w.path.as_str(), w.owner) {
        ("storagedomains/files", Some((_, sd))) => {
            rules::storage::files(ctx, &sd, w.id.as_deref(), op).await
        }
        _ => Ok(None),
    }
}
