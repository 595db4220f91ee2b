//! The rules of each kind that the generic implementation cannot know: defaults oVirt fills
//! in, references given by name, what may not be removed, the records that go with an object
//! (a VM's CD-ROM, a network's vNIC profile), and the work that follows (a disk's volume).
//!
//! Hooks, in the order the generic code calls them:
//! - `prepare_add` / `prepare_update` / `check_remove`: before any transaction; validate,
//!   resolve references, fill in defaults, refuse;
//! - `in_tx_*`: inside the transaction of the change, for records that must commit with it;
//! - `after_*`: after the commit; start background work (`after_add` may hand back a handle
//!   the request waits on when the client sent `Expect: 201-created`).

pub mod clusters;
pub mod common;
pub mod datacenters;
pub mod disks;
pub mod jobs;
pub mod macpools;
pub mod misc;
pub mod networks;
pub mod nics;
pub mod permissions;
pub mod pools;
pub mod relations;
pub mod storage;
pub mod tags;
pub mod templates;
pub mod vms;

use super::Location;
use crate::api::fault::ApiResult;
use crate::api::Ctx;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use vireo_store::{AttrValue, Tx};

pub use common::resolve_ref;

/// A new object on its way into the store.
pub struct Adding {
    /// The API id.
    pub id: String,
    /// The store record id (`{owner}/{id}` for relation members).
    pub record_id: String,
    pub doc: Value,
    pub parent: Option<String>,
    /// Attributes indexed beside the document's own (a job's correlation id).
    pub extra_attrs: Vec<(String, AttrValue)>,
    /// 201, or 202 when long work goes on after the answer.
    pub status: StatusCode,
    /// The rule writes its own event.
    pub quiet: bool,
    /// The `id` the body carried (what a relation attaches).
    pub body_id: Option<String>,
    /// Scratch space between the hooks of one add.
    pub notes: Value,
}

impl Adding {
    pub fn new(id: String, mut doc: Value, parent: Option<String>) -> Adding {
        if let Value::Object(o) = &mut doc {
            o.insert("id".into(), Value::String(id.clone()));
        }
        Adding {
            record_id: id.clone(),
            id,
            doc,
            parent,
            extra_attrs: Vec::new(),
            status: StatusCode::CREATED,
            quiet: false,
            body_id: None,
            notes: Value::Null,
        }
    }

    /// An object whose API id is given (a relation member's is its target's).
    pub fn set_id(&mut self, id: &str) {
        self.id = id.to_string();
        self.record_id = id.to_string();
        if let Value::Object(o) = &mut self.doc {
            o.insert("id".into(), Value::String(id.to_string()));
        }
    }

    /// A member whose API id repeats under other owners: its record id is `{owner}/{id}`.
    pub fn set_member_id(&mut self, id: &str) {
        self.set_id(id);
        if let Some(p) = &self.parent {
            self.record_id = crate::bootstrap::sub_record_id(p, id);
        }
    }
}

pub async fn prepare_add(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    match at.kind.kind {
        "hosts" => crate::hosts::prepare_add(ctx, &mut a.doc).await?,
        "datacenters" => datacenters::prepare_add(ctx, a).await?,
        "clusters" => clusters::prepare_add(ctx, a).await?,
        "clusters/networks" => clusters::prepare_attach_network(ctx, at, a).await?,
        "networks" => networks::prepare_add(ctx, a).await?,
        "vnicprofiles" => networks::prepare_add_profile(ctx, a).await?,
        "networks/networklabels" => networks::prepare_add_label(ctx, at, a).await?,
        "macpools" => macpools::validate(ctx, &a.doc, "add").await?,
        "vms" => vms::prepare_add(ctx, a).await?,
        "vms/nics" | "templates/nics" | "instancetypes/nics" => {
            nics::prepare_add(ctx, at, a).await?
        }
        "vms/cdroms" => vms::refuse_second_cdrom()?,
        "vms/diskattachments" => disks::prepare_attachment(ctx, at, a).await?,
        "vms/snapshots" => crate::hosts::snapshots::prepare_add(ctx, at, a).await?,
        "disks" => disks::prepare_add(ctx, a).await?,
        "imagetransfers" => crate::transfer::prepare_add(ctx, a).await?,
        "storagedomains" => storage::prepare_add(ctx, a).await?,
        "datacenters/storagedomains" => storage::prepare_attach(ctx, at, a).await?,
        "templates" => templates::prepare_add(ctx, a).await?,
        "tags" => tags::prepare_add(ctx, a).await?,
        "permissions" => permissions::prepare_add(ctx, at, a).await?,
        "jobs" => jobs::prepare_add(ctx, a).await?,
        "jobs/steps" => jobs::prepare_add_step(ctx, at, a).await?,
        k if super::spec::relation(k).is_some() => relations::prepare_add(ctx, at, a).await?,
        k => misc::prepare_add(ctx, k, a).await?,
    }
    Ok(())
}

pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    match at.kind.kind {
        "datacenters" => datacenters::in_tx_add(tx, ctx, a).await,
        "clusters" => clusters::in_tx_add(tx, ctx, a).await,
        "networks" => networks::in_tx_add(tx, ctx, a).await,
        "vms" => vms::in_tx_add(tx, ctx, a).await,
        "vms/nics" => nics::in_tx_add(tx, ctx, a).await,
        "vms/diskattachments" => disks::in_tx_add_attachment(tx, ctx, at, a).await,
        "vms/snapshots" => crate::hosts::snapshots::in_tx_add(tx, ctx, a).await,
        "datacenters/storagedomains" => storage::in_tx_attach(tx, ctx, at, a).await,
        "storagedomains" => storage::in_tx_add(tx, a).await,
        "disks" => disks::in_tx_add(tx, ctx, a).await,
        "imagetransfers" => crate::transfer::in_tx_add(tx, ctx, a).await,
        k if super::spec::relation(k).is_some() => relations::in_tx_add(tx, at, a).await,
        "templates" => templates::in_tx_add(tx, ctx, a).await,
        "vmpools" => pools::in_tx_add(tx, ctx, a).await,
        "roles" => misc::in_tx_add_role(tx, a).await,
        k @ ("datacenters/quotas/quotastoragelimits" | "datacenters/quotas/quotaclusterlimits") => {
            misc::in_tx_add_quota_limit(tx, k, a).await
        }
        _ => Ok(()),
    }
}

/// Whether a change to `kind` can change who a cached Basic credential is or may do.
fn changes_principals(kind: &str) -> bool {
    matches!(kind, "users" | "groups" | "roles" | "roles/permits")
        || kind == "permissions"
        || kind.ends_with("/permissions")
}

fn forget_principals(ctx: &Ctx<'_>, at: &Location) {
    if changes_principals(at.kind.kind) {
        ctx.engine.auth.forget_all_users();
    }
}

/// After the commit. A handle, when work goes on: the request may wait for it.
pub async fn after_add(
    ctx: &Ctx<'_>,
    at: &Location,
    a: &Adding,
) -> ApiResult<Option<JoinHandle<()>>> {
    forget_principals(ctx, at);
    match at.kind.kind {
        "hosts" => crate::hosts::after_add(ctx, &a.id, &a.doc)
            .await
            .map(|_| None),
        "disks" => Ok(disks::after_add(ctx, a)),
        "imagetransfers" => Ok(crate::transfer::after_add(ctx, a)),
        "vms/diskattachments" => Ok(disks::after_add_attachment(ctx, a)),
        "datacenters/storagedomains" => Ok(storage::after_attach(ctx, at, a)),
        "templates" => Ok(templates::after_add(ctx, a)),
        "vms" => Ok(vms::after_add(ctx, a)),
        "vmpools" => Ok(pools::after(ctx, &a.notes)),
        _ => Ok(None),
    }
}

pub async fn prepare_update(
    ctx: &Ctx<'_>,
    at: &Location,
    before: &Value,
    doc: &mut Value,
    change: &Value,
) -> ApiResult<()> {
    common::immutable(at.kind.kind, before, doc)?;
    match at.kind.kind {
        "hosts" => crate::hosts::prepare_update(ctx, before, doc).await,
        "datacenters" => datacenters::prepare_update(ctx, before, doc).await,
        "clusters" => clusters::prepare_update(ctx, before, doc).await,
        "networks" => networks::prepare_update(ctx, before, doc).await,
        "macpools" => macpools::validate(ctx, doc, "edit").await,
        "vms" => vms::prepare_update(ctx, before, doc, change).await,
        "vms/nics" => nics::prepare_update(ctx, at, before, doc).await,
        "vms/cdroms" => vms::prepare_cdrom_update(ctx, at, doc).await,
        "vms/diskattachments" => {
            disks::prepare_attachment_update(ctx, at, before, doc, change).await
        }
        "disks" => disks::prepare_update(ctx, before, doc).await,
        "storagedomains" => storage::prepare_update(ctx, before, doc).await,
        "templates" => templates::prepare_update(ctx, before, doc).await,
        "tags" => tags::prepare_update(ctx, before, doc).await,
        "vmpools" => pools::prepare_update(ctx, before, doc).await,
        _ => Ok(()),
    }
}

pub async fn in_tx_update(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    at: &Location,
    before: &Value,
    doc: &mut Value,
) -> ApiResult<()> {
    match at.kind.kind {
        "vms/nics" => nics::in_tx_update(tx, at, before, doc).await,
        "vmpools" => pools::in_tx_update(tx, ctx, before, doc).await,
        _ => {
            let _ = ctx;
            Ok(())
        }
    }
}

pub async fn after_update(
    ctx: &Ctx<'_>,
    at: &Location,
    before: &Value,
    doc: &Value,
) -> ApiResult<()> {
    forget_principals(ctx, at);
    match at.kind.kind {
        "disks" => disks::after_update(ctx, before, doc).await,
        _ => Ok(()),
    }
}

pub async fn check_remove(ctx: &Ctx<'_>, at: &Location, doc: &Value) -> ApiResult<()> {
    match at.kind.kind {
        "hosts" => crate::hosts::check_remove(ctx, doc).await,
        "templates" => templates::check_remove(ctx, doc).await,
        "vms" => vms::check_remove(ctx, doc).await,
        "datacenters" => datacenters::check_remove(ctx, doc).await,
        "clusters" => clusters::check_remove(ctx, doc).await,
        "clusters/networks" => clusters::check_detach_network(ctx, at, doc).await,
        "networks" => networks::check_remove(ctx, doc).await,
        "vnicprofiles" => networks::check_remove_profile(ctx, doc).await,
        "macpools" => macpools::check_remove(ctx, doc).await,
        "storagedomains" => storage::check_remove(ctx, doc).await,
        "datacenters/storagedomains" => storage::check_detach(ctx, at, doc).await,
        "disks" => disks::check_remove(ctx, doc).await,
        "vms/diskattachments" => disks::check_detach(ctx, at, doc).await,
        "vms/nics" => nics::check_remove(ctx, at, doc).await,
        "vms/snapshots" => crate::hosts::snapshots::check_remove(ctx, at, doc).await,
        "tags" => tags::check_remove(ctx, doc).await,
        "groups" => misc::check_remove_group(doc),
        "roles" => misc::check_remove_role(ctx, doc).await,
        "vmpools" => pools::check_remove(ctx, doc).await,
        _ => Ok(()),
    }
}

/// `notes` carries what the transaction removed to [`after_remove`] (volumes to delete on the
/// storage once the removal has committed).
pub async fn in_tx_remove(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    at: &Location,
    doc: &Value,
    notes: &mut Value,
) -> ApiResult<()> {
    match at.kind.kind {
        "vms" => vms::in_tx_remove(tx, ctx, doc, notes).await,
        "datacenters" => datacenters::in_tx_remove(tx, doc).await,
        "clusters" => clusters::in_tx_remove(tx, doc).await,
        "networks" => networks::in_tx_remove(tx, doc).await,
        "tags" => tags::in_tx_remove(tx, doc).await,
        "datacenters/storagedomains" => storage::in_tx_detach(tx, at, doc).await,
        "storagedomains" => storage::in_tx_remove(tx, ctx, doc, notes).await,
        "disks" => disks::in_tx_remove(tx, doc, notes).await,
        "vms/diskattachments" => disks::in_tx_detach(tx, ctx, doc, notes).await,
        "vms/snapshots" => crate::hosts::snapshots::in_tx_remove(tx, doc).await,
        "templates" => templates::in_tx_remove(tx, ctx, doc, notes).await,
        "vmpools" => pools::in_tx_remove(tx, doc, notes).await,
        k if super::spec::relation(k).is_some() => relations::in_tx_remove(tx, at, doc).await,
        _ => Ok(()),
    }
}

pub async fn after_remove(
    ctx: &Ctx<'_>,
    at: &Location,
    doc: &Value,
    notes: &Value,
) -> ApiResult<()> {
    forget_principals(ctx, at);
    disks::delete_volumes(ctx, notes).await;
    match at.kind.kind {
        "storagedomains" => storage::after_remove(ctx, doc).await,
        _ => Ok(()),
    }
}

/// Presentation: members derived when the object is shown.
pub fn decorate(kind: &str, doc: &mut Value) {
    if kind == "vms/cdroms" || kind == "templates/cdroms" {
        vms::decorate_cdrom(doc);
    } else if kind == "vms" {
        vms::decorate_vm(doc);
    }
}

/// What `all_content=true` adds when an object is shown (a VM's OVF configuration).
pub async fn all_content(ctx: &Ctx<'_>, kind: &str, doc: &mut Value) -> ApiResult<()> {
    if kind == "vms" {
        vms::add_configuration(ctx, doc).await?;
    }
    Ok(())
}
