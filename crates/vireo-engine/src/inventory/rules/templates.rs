//! Templates: made from a VM that is down (its configuration, NICs and disks, the disks
//! copied by a host, the template `locked` until they are), as a new template or a new
//! version of one; the Blank template and templates VMs are based on cannot be removed.

use super::common::*;
use super::{disks, vms, Adding};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::events::{self, Who};
use crate::inventory::{crud, index, messages};
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use vireo_store::{EventRefs, Filter, Query, Store, Tx};

/// What a template keeps of the VM it is made from: the settings a VM takes from a template,
/// and where it ran.
const FROM_VM_PLACEMENT: &[&str] = &["cluster", "cpu_profile"];

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let name = str_at(&a.doc, "name").unwrap_or_default().to_string();
    check_name("add", "templates", &name, 255)?;
    let vm_ref = a
        .doc
        .get("vm")
        .cloned()
        .ok_or_else(|| ApiError::incomplete("Template [vm.id|name] required for add"))?;
    let vm = lookup(ctx, "vms", &vm_ref, "vm").await?;
    let vdoc = crud::doc_of(&vm)?;
    if !matches!(str_at(&vdoc, "status"), Some("down") | None) {
        return Err(messages::conflict(
            "add",
            "templates",
            "VM is not down. Please stop it first.",
        ));
    }
    let mut doc = json!({});
    for k in super::vms::FROM_TEMPLATE.iter().chain(FROM_VM_PLACEMENT) {
        if let Some(v) = vdoc.get(*k) {
            set(&mut doc, k, v.clone());
        }
    }
    let body = a.doc.clone();
    crud::merge(&mut doc, &body);
    resolve_ref(ctx, &mut doc, "cluster", "clusters").await?;
    set(&mut doc, "id", json!(a.id));
    set(&mut doc, "vm", reference(&vm.id));
    set(&mut doc, "status", json!("locked"));
    set(&mut doc, "origin", json!("ovirt"));
    set(&mut doc, "creation_time", now());
    // A new version of a base template shares its name; a new template's name is its own.
    let base = match doc
        .get("version")
        .and_then(|v| v.get("base_template"))
        .cloned()
        .filter(|b| b.is_object())
    {
        Some(b) => Some(lookup(ctx, "templates", &b, "version.base_template").await?),
        None => None,
    };
    let version_name = str_at(&doc, "version.version_name")
        .unwrap_or_default()
        .to_string();
    match base {
        Some(b) => {
            if b.id == BLANK {
                return Err(messages::invalid(
                    "add",
                    "templates",
                    "The Blank template cannot have versions.",
                ));
            }
            let versions = where_eq(ctx, "templates", "version.base_template.id", &b.id).await?;
            let next = versions
                .iter()
                .filter_map(|v| crud::doc_of(v).ok())
                .filter_map(|d| int_at(&d, "version.version_number"))
                .max()
                .unwrap_or(1)
                + 1;
            set(&mut doc, "name", json!(b.name.clone().unwrap_or_default()));
            set(
                &mut doc,
                "version",
                json!({"version_name": version_name, "version_number": next.to_string(), "base_template": reference(&b.id)}),
            );
        }
        None => {
            let same = ctx
                .engine
                .store
                .get_by_name("templates", &name, None)
                .await?;
            if same.is_some() {
                return Err(messages::name_in_use("add", "templates"));
            }
            set(
                &mut doc,
                "version",
                json!({"version_name": version_name, "version_number": "1", "base_template": reference(&a.id)}),
            );
        }
    }
    vms::check_hardware("add", &doc)
        .map_err(|e| ApiError::new(e.status, e.reason, e.detail.replace("VM", "Template")))?;
    a.doc = doc;
    a.status = StatusCode::ACCEPTED;
    Ok(())
}

pub async fn in_tx_add(tx: &mut Tx, ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    let vm = ref_id(&a.doc, "vm").unwrap_or_default();
    for n in tx
        .list("vms/nics", &Query::new(Filter::ParentIs(vm.clone())))
        .await?
    {
        let mut d = crud::doc_of(&n)?;
        let id = uuid::Uuid::new_v4().to_string();
        set(&mut d, "id", json!(id));
        if let Value::Object(o) = &mut d {
            o.remove("mac");
            o.remove("vm");
        }
        set(&mut d, "template", reference(&a.id));
        index::insert(tx, "templates/nics", &id, &d, Some(&a.id), &[]).await?;
    }
    let cd = tx
        .get(
            "vms/cdroms",
            &crate::bootstrap::sub_record_id(&vm, vms::CDROM_ID),
        )
        .await?;
    let mut tcd = json!({ "id": vms::CDROM_ID, "template": reference(&a.id) });
    if let Some(f) = cd
        .and_then(|c| crud::doc_of(&c).ok())
        .and_then(|d| d.get("file").cloned())
    {
        tcd["file"] = f;
    }
    index::insert(
        tx,
        "templates/cdroms",
        &crate::bootstrap::sub_record_id(&a.id, vms::CDROM_ID),
        &tcd,
        Some(&a.id),
        &[],
    )
    .await?;
    let copies = disks::copy_disks_of(
        tx,
        ctx,
        "vms/diskattachments",
        &vm,
        "templates/diskattachments",
        &a.id,
        "template",
    )
    .await?;
    a.notes = json!({ "copies": copies });
    Ok(())
}

pub fn after_add(ctx: &Ctx<'_>, a: &Adding) -> Option<JoinHandle<()>> {
    let copies: Vec<disks::Copy> = a
        .notes
        .get("copies")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    disks::start_copies(
        ctx,
        &Who::of(ctx),
        copies,
        Some(disks::Then::TemplateOk(a.id.clone())),
    )
}

/// The template's disks are copied: `ok` (or `illegal`), and oVirt's completion event.
pub async fn finish(store: &Store, who: &Who, template: &str, ok: bool) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let Some(r) = tx.get("templates", template).await? else {
        return Ok(());
    };
    let mut d = crud::doc_of(&r).map_err(|e| anyhow::anyhow!(e.detail))?;
    set(&mut d, "status", json!(if ok { "ok" } else { "illegal" }));
    index::update(&mut tx, &r, &d, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let name = r.name.clone().unwrap_or_default();
    let vm = match ref_id(&d, "vm") {
        Some(v) => tx
            .get("vms", &v)
            .await?
            .and_then(|r| r.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    let refs = EventRefs {
        template_id: Some(template.to_string()),
        ..Default::default()
    };
    let e = if ok {
        events::event(
            who,
            51,
            "normal",
            format!("Creation of Template {name} from VM {vm} has been completed."),
            refs,
        )
    } else {
        events::event(
            who,
            52,
            "error",
            format!("Failed to complete creation of Template {name} from VM {vm}."),
            refs,
        )
    };
    tx.insert_event(&e).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn prepare_update(ctx: &Ctx<'_>, before: &Value, doc: &mut Value) -> ApiResult<()> {
    if str_at(before, "status") == Some("locked") {
        return Err(messages::locked("edit", "templates"));
    }
    for k in ["status", "version", "creation_time", "vm", "origin"] {
        match before.get(k) {
            Some(v) => set(doc, k, v.clone()),
            None => {
                if let Value::Object(o) = doc {
                    o.remove(k);
                }
            }
        }
    }
    if str_at(before, "id") == Some(BLANK) && str_at(doc, "name") != str_at(before, "name") {
        return Err(messages::conflict(
            "edit",
            "templates",
            "The Blank template cannot be renamed.",
        ));
    }
    resolve_ref(ctx, doc, "cluster", "clusters").await?;
    Ok(())
}

pub async fn check_remove(ctx: &Ctx<'_>, doc: &Value) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    if id == BLANK {
        return Err(messages::conflict(
            "remove",
            "templates",
            "Removing Blank Template is not allowed.",
        ));
    }
    if str_at(doc, "status") == Some("locked") {
        return Err(messages::locked("remove", "templates"));
    }
    let vms = where_eq(ctx, "vms", "template.id", id).await?;
    if !vms.is_empty() {
        return Err(ApiError::conflict(format!(
            "Cannot delete Template. Template is being used by the following VMs: {}.",
            names(&vms, 10)
        )));
    }
    let versions: Vec<_> = where_eq(ctx, "templates", "version.base_template.id", id)
        .await?
        .into_iter()
        .filter(|t| t.id != id)
        .collect();
    if !versions.is_empty() {
        let list: Vec<String> = versions
            .iter()
            .filter_map(|v| crud::doc_of(v).ok())
            .filter_map(|d| str_at(&d, "version.version_name").map(str::to_string))
            .collect();
        return Err(ApiError::conflict(format!("Cannot delete Base Template that has Template Versions, please first remove all Template Versions for this Template: {}.", list.join(", "))));
    }
    Ok(())
}

pub async fn in_tx_remove(
    tx: &mut Tx,
    _ctx: &Ctx<'_>,
    doc: &Value,
    notes: &mut Value,
) -> ApiResult<()> {
    let id = str_at(doc, "id").unwrap_or_default();
    for att in tx
        .list(
            "templates/diskattachments",
            &Query::new(Filter::ParentIs(id.to_string())),
        )
        .await?
    {
        let Some(disk) = ref_id(&crud::doc_of(&att)?, "disk") else {
            continue;
        };
        if let Some(d) = tx.get("disks", &disk).await? {
            disks::delete_disk(tx, &d, notes).await?;
        }
    }
    Ok(())
}
