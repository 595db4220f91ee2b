//! Events: every change to the inventory writes one, in the same transaction, with oVirt's
//! code and wording (`AuditLogType`, `AuditLogMessages.properties`); and `/events`, the store's
//! audit log as the API shows it (list with `from`, `max` and `search`, get, add external
//! events, remove).

use super::{crud, Location};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::search::{self, Cond, Expr, Op};
use crate::api::Ctx;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use vireo_model::meta::MethodKind;
use vireo_model::*;
use vireo_store::{
    CmpOp, Event as StoredEvent, EventField, EventFilter, EventQuery, EventRefs, NewEvent, Order,
    Tx,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Update,
    Remove,
}

/// Who caused a change, carried into work that outlives the request.
#[derive(Debug, Clone, Default)]
pub struct Who {
    pub user_id: String,
    pub user_name: String,
    pub correlation_id: Option<String>,
}

impl Who {
    pub fn of(ctx: &Ctx<'_>) -> Who {
        Who {
            user_id: ctx.principal.user_id.clone(),
            user_name: ctx.principal.user_name.clone(),
            correlation_id: ctx.params.correlation_id.clone(),
        }
    }
    /// The engine itself (monitoring, background work with nobody behind it).
    pub fn system() -> Who {
        Who::default()
    }
}

/// An event as the engine writes it; `origin` oVirt.
pub fn event(
    who: &Who,
    code: i64,
    severity: &str,
    description: String,
    refs: EventRefs,
) -> NewEvent {
    let mut refs = refs;
    if refs.user_id.is_none() && !who.user_id.is_empty() {
        refs.user_id = Some(who.user_id.clone());
    }
    NewEvent {
        code,
        severity: severity.to_string(),
        description,
        time_ms: vireo_store::now_ms(),
        correlation_id: who.correlation_id.clone(),
        origin: Some("oVirt".into()),
        refs,
        doc: String::new(),
    }
}

pub async fn emit(tx: &mut Tx, e: NewEvent) -> ApiResult<i64> {
    Ok(tx.insert_event(&e).await?)
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

fn ref_of(doc: &Value, attr: &str) -> Option<String> {
    doc.get(attr).and_then(id_of)
}

fn str_of<'a>(doc: &'a Value, attr: &str) -> &'a str {
    doc.get(attr).and_then(Value::as_str).unwrap_or("")
}

async fn name_of(tx: &mut Tx, kind: &str, id: Option<&str>) -> ApiResult<String> {
    let Some(id) = id else {
        return Ok(String::new());
    };
    Ok(tx
        .get(kind, id)
        .await?
        .and_then(|r| r.name)
        .unwrap_or_default())
}

/// What the event of a change references.
fn refs_of(at: &Location, doc: &Value) -> EventRefs {
    let id = id_of(doc);
    let parent = at.parent_id().map(str::to_string);
    let mut r = EventRefs::default();
    let top = at.kind.kind.split('/').next().unwrap_or_default();
    let owner = if at.kind.kind.contains('/') {
        parent.clone()
    } else {
        id.clone()
    };
    match top {
        "vms" => r.vm_id = owner,
        "hosts" => r.host_id = owner,
        "clusters" => r.cluster_id = owner,
        "datacenters" => r.data_center_id = owner,
        "storagedomains" => r.storage_domain_id = owner,
        "templates" => r.template_id = owner,
        _ => {}
    }
    r.cluster_id = r.cluster_id.or_else(|| ref_of(doc, "cluster"));
    r.data_center_id = r.data_center_id.or_else(|| ref_of(doc, "data_center"));
    if at.kind.kind == "datacenters/storagedomains" {
        r.storage_domain_id = id;
    }
    if at.kind.kind == "disks" {
        r.storage_domain_id = doc
            .get("storage_domains")
            .and_then(|s| s.get("storage_domain"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(id_of);
    }
    r
}

/// Writes the event of an add, update or remove (nothing for kinds oVirt does not audit, and
/// for hosts, whose module writes its own).
pub async fn changed(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    at: &Location,
    verb: Verb,
    doc: &Value,
    before: Option<&Value>,
) -> ApiResult<()> {
    let _ = before;
    let Some((code, text)) = describe(tx, ctx, at, verb, doc).await? else {
        return Ok(());
    };
    let e = event(&Who::of(ctx), code, "normal", text, refs_of(at, doc));
    emit(tx, e).await?;
    Ok(())
}

async fn describe(
    tx: &mut Tx,
    ctx: &Ctx<'_>,
    at: &Location,
    verb: Verb,
    doc: &Value,
) -> ApiResult<Option<(i64, String)>> {
    use Verb::*;
    let user = ctx.principal.user_name.as_str();
    let name = str_of(doc, "name");
    let parent = at.parent_id();
    let pick = |a: i64, u: i64, r: i64| match verb {
        Add => a,
        Update => u,
        Remove => r,
    };
    Ok(Some(match at.kind.kind {
        "vms" => match verb {
            Add => (34, format!("VM {name} was created by {user}.")),
            Update => (
                35,
                format!("VM {name} configuration was updated by {user}."),
            ),
            Remove => (
                113,
                format!("VM {name} was successfully removed by {user}."),
            ),
        },
        "clusters" => match verb {
            Add => (809, format!("Cluster {name} was added by {user}")),
            Update => (811, format!("Host cluster {name} was updated by {user}")),
            Remove => (813, format!("Host cluster {name} was removed by {user}")),
        },
        "datacenters" => match verb {
            Add => {
                let v = doc
                    .get("version")
                    .map(|v| format!("{}.{}", str_of(v, "major"), str_of(v, "minor")))
                    .unwrap_or_default();
                let q = str_of(doc, "quota_mode").to_uppercase();
                (950, format!("Data Center {name}, Compatibility Version {v} and Quota Type {q} was added by {user}"))
            }
            Update => (952, format!("Data Center {name} was updated by {user}")),
            Remove => (954, format!("Data Center {name} was removed by {user}")),
        },
        "networks" => {
            let dc = name_of(tx, "datacenters", ref_of(doc, "data_center").as_deref()).await?;
            match verb {
                Add => (
                    942,
                    format!("Finished adding Network {name} to Data Center: {dc}"),
                ),
                Update => (
                    1114,
                    format!("Finished Network {name} update on Data Center: {dc}"),
                ),
                Remove => (
                    944,
                    format!("Finished Network {name} removal from Data Center: {dc}"),
                ),
            }
        }
        "clusters/networks" => {
            let net = name_of(tx, "networks", id_of(doc).as_deref()).await?;
            let cl = name_of(tx, "clusters", parent).await?;
            match verb {
                Add => (946, format!("Network {net} attached to Cluster {cl}")),
                Update => (1112, format!("Network {net} on Cluster {cl} updated.")),
                Remove => (948, format!("Network {net} detached from Cluster {cl}")),
            }
        }
        "vnicprofiles" => {
            let net_id = ref_of(doc, "network");
            let net = name_of(tx, "networks", net_id.as_deref()).await?;
            let dc_id = match &net_id {
                Some(n) => tx
                    .get("networks", n)
                    .await?
                    .map(|r| crud::doc_of(&r))
                    .transpose()?
                    .and_then(|d| ref_of(&d, "data_center")),
                None => None,
            };
            let dc = name_of(tx, "datacenters", dc_id.as_deref()).await?;
            let what = pick(1122, 1124, 1126);
            let how = match verb {
                Add => "was added to",
                Update => "was updated for",
                Remove => "was removed from",
            };
            (what, format!("VM network interface profile {name} {how} network {net} in Data Center: {dc}. (User: {user})"))
        }
        "vms/nics" => {
            let vm = name_of(tx, "vms", parent).await?;
            let iface = str_of(doc, "interface");
            match verb {
                Add => (
                    932,
                    format!("Interface {name} ({iface}) was added to VM {vm}. (User: {user})"),
                ),
                Update => (
                    934,
                    format!("Interface {name} ({iface}) was updated for VM {vm}.  (User: {user})"),
                ),
                Remove => (
                    930,
                    format!("Interface {name} ({iface}) was removed from VM {vm}. (User: {user})"),
                ),
            }
        }
        "macpools" => {
            let id = id_of(doc).unwrap_or_default();
            let how = match verb {
                Add => "created",
                Update => "changed",
                Remove => "removed",
            };
            (
                pick(10700, 10702, 10704),
                format!("MAC Pool '{name}' (id={id}) was {how}. (User: {user})"),
            )
        }
        "storagedomains" => match verb {
            Add => (956, format!("Storage Domain {name} was added by {user}")),
            Update => (958, format!("Storage Domain {name} was updated by {user}")),
            Remove => (960, format!("Storage Domain {name} was removed by {user}")),
        },
        "datacenters/storagedomains" => {
            let sd = name_of(tx, "storagedomains", id_of(doc).as_deref()).await?;
            let dc = name_of(tx, "datacenters", parent).await?;
            match verb {
                Add => (
                    962,
                    format!("Storage Domain {sd} was attached to Data Center {dc} by {user}"),
                ),
                Update => return Ok(None),
                Remove => (
                    964,
                    format!("Storage Domain {sd} was detached from Data Center {dc} by {user}"),
                ),
            }
        }
        "disks" => {
            let alias = if name.is_empty() {
                str_of(doc, "alias")
            } else {
                name
            };
            match verb {
                Add => (
                    2020,
                    format!("Add-Disk operation of '{alias}' was initiated by {user}."),
                ),
                Update => (86, format!("Disk {alias} was updated by {user}.")),
                Remove => {
                    let sd = doc
                        .get("storage_domains")
                        .and_then(|s| s.get("storage_domain"))
                        .and_then(Value::as_array)
                        .and_then(|a| a.first())
                        .and_then(id_of);
                    let sd = name_of(tx, "storagedomains", sd.as_deref()).await?;
                    (
                        2014,
                        format!(
                            "Disk {alias} was successfully removed from domain {sd} (User {user})."
                        ),
                    )
                }
            }
        }
        "vms/diskattachments" => {
            let vm = name_of(tx, "vms", parent).await?;
            let alias = name_of(tx, "disks", ref_of(doc, "disk").as_deref()).await?;
            match verb {
                Add => (
                    2016,
                    format!("Disk {alias} was successfully attached to VM {vm} by {user}."),
                ),
                Update => (88, format!("VM {vm} {alias} disk was updated by {user}.")),
                Remove => (
                    2018,
                    format!("Disk {alias} was successfully detached from VM {vm} by {user}."),
                ),
            }
        }
        "vms/cdroms" => {
            let vm = name_of(tx, "vms", parent).await?;
            match doc.get("file").and_then(id_of).filter(|f| !f.is_empty()) {
                Some(f) => (38, format!("CD {f} was inserted to VM {vm} by {user}.")),
                None => (528, format!("CD was ejected from VM {vm} by {user}.")),
            }
        }
        "templates" => match verb {
            Add => {
                let vm = name_of(tx, "vms", ref_of(doc, "vm").as_deref()).await?;
                (
                    48,
                    format!("Creation of Template {name} from VM {vm} was initiated by {user}."),
                )
            }
            Update => (
                49,
                format!("Template {name} configuration was updated by {user}."),
            ),
            Remove => (
                50,
                format!("Removal of Template {name} was initiated by {user}."),
            ),
        },
        "tags" => match verb {
            Add => (432, format!("New Tag {name} was created by {user}.")),
            Update => (
                430,
                format!("Tag {name} configuration was updated by {user}."),
            ),
            Remove => (434, format!("Tag {name} was removed by {user}.")),
        },
        k @ ("vms/tags" | "hosts/tags" | "templates/tags" | "users/tags" | "groups/tags") => {
            let tag = name_of(tx, "tags", id_of(doc).as_deref()).await?;
            let owner_kind = k.split('/').next().unwrap_or_default();
            let owner = name_of(tx, owner_kind, parent).await?;
            let (a, r, what) = match owner_kind {
                "vms" => (440, 446, "VM(s)"),
                "hosts" => (442, 444, "Host(s)"),
                "templates" => (183, 185, "Template(s)"),
                "users" => (436, 448, "User(s)"),
                _ => (438, 450, "Group(s)"),
            };
            match verb {
                Add => (
                    a,
                    format!("Tag {tag} was attached to {what} {owner} by {user}."),
                ),
                Update => return Ok(None),
                Remove => (
                    r,
                    format!("Tag {tag} was detached from {what} {owner} by {user}."),
                ),
            }
        }
        "permissions" => {
            let role = name_of(tx, "roles", ref_of(doc, "role").as_deref()).await?;
            let subject = match ref_of(doc, "user") {
                Some(u) => name_of(tx, "users", Some(&u)).await?,
                None => name_of(tx, "groups", ref_of(doc, "group").as_deref()).await?,
            };
            let on = at
                .parent
                .as_ref()
                .map(|(k, _)| super::spec::noun(k))
                .unwrap_or("System");
            let object = match &at.parent {
                Some((k, id)) => name_of(tx, k, Some(id)).await?,
                None => String::new(),
            };
            match verb {
                Add => (850, format!("User/Group {subject} was granted permission for Role {role} on {on} {object}, by {user}.")),
                Update => return Ok(None),
                Remove => (852, format!("User/Group {subject} Role {role} permission was removed from {on} {object} by {user}")),
            }
        }
        "roles" => match verb {
            Add => (854, format!("Role {name} granted to {user}")),
            Update => (856, format!("{user} Role was updated to the {name} Role")),
            Remove => (858, format!("Role {name} removed from {user}")),
        },
        "bookmarks" => (
            pick(350, 352, 354),
            format!("Bookmark {name} was {} by {user}.", past(verb)),
        ),
        "vmpools" => match verb {
            Add => (
                302,
                format!(
                    "VM Pool {name} (containing {} VMs) was created by {user}.",
                    str_of(doc, "size")
                ),
            ),
            Update => (
                314,
                format!("VM Pool {name} configuration was updated by {user}."),
            ),
            Remove => (304, format!("VM Pool {name} was removed by {user}.")),
        },
        "datacenters/quotas" => {
            let how = match verb {
                Add => "added",
                Update => "updated",
                Remove => "deleted",
            };
            (
                pick(3000, 3002, 3004),
                format!("Quota {name} has been {how} by {user}."),
            )
        }
        "clusters/affinitygroups" => (
            pick(10350, 10352, 10354),
            format!("Affinity Group {name} was {}. (User: {user})", past(verb)),
        ),
        "affinitylabels" => (
            pick(10380, 10382, 10384),
            format!("Affinity Label {name} was {}. (User: {user})", past(verb)),
        ),
        "cpuprofiles" => (
            pick(10130, 10134, 10132),
            format!(
                "CPU Profile {name} was successfully {} (User: {user}).",
                past(verb)
            ),
        ),
        "diskprofiles" => (
            pick(10120, 10124, 10122),
            format!(
                "Disk Profile {name} was successfully {} (User: {user}).",
                past(verb)
            ),
        ),
        "jobs" if verb == Add => (
            11000,
            format!(
                "New external Job {} was added by user {user}",
                str_of(doc, "description")
            ),
        ),
        _ => return Ok(None),
    }))
}

fn past(verb: Verb) -> &'static str {
    match verb {
        Verb::Add => "added",
        Verb::Update => "updated",
        Verb::Remove => "removed",
    }
}

// ---- /events ----------------------------------------------------------------------------

/// oVirt's severities in their order (`AuditLogSeverity`: NORMAL 0, WARNING 1, ERROR 2,
/// ALERT 10), for `severity>normal`.
fn severity_rank(s: &str) -> Option<i64> {
    match s.to_ascii_lowercase().as_str() {
        "normal" => Some(0),
        "warning" => Some(1),
        "error" => Some(2),
        "alert" => Some(10),
        _ => None,
    }
}

fn present(e: &StoredEvent) -> Event {
    let id = e.id.to_string();
    let extra: Value = serde_json::from_str(&e.doc).unwrap_or(Value::Null);
    let r = |id: &Option<String>, coll: &str| {
        id.as_ref()
            .map(|i| (i.clone(), format!("/ovirt-engine/api/{coll}/{i}")))
    };
    macro_rules! reference {
        ($T:ident, $id:expr, $coll:literal) => {
            r($id, $coll).map(|(id, href)| {
                Box::new($T {
                    id: Some(id),
                    href: Some(href),
                    ..Default::default()
                })
            })
        };
    }
    Event {
        id: Some(id.clone()),
        href: Some(format!("/ovirt-engine/api/events/{id}")),
        code: Some(e.code),
        severity: match e.severity.as_str() {
            "warning" => Some(LogSeverity::Warning),
            "error" => Some(LogSeverity::Error),
            "alert" => Some(LogSeverity::Alert),
            _ => Some(LogSeverity::Normal),
        },
        description: Some(e.description.clone()),
        time: chrono::DateTime::from_timestamp_millis(e.time_ms).map(|t| t.fixed_offset()),
        correlation_id: e.correlation_id.clone(),
        origin: e.origin.clone(),
        custom_id: Some(extra.get("custom_id").and_then(Value::as_i64).unwrap_or(-1)),
        flood_rate: Some(
            extra
                .get("flood_rate")
                .and_then(Value::as_i64)
                .unwrap_or(30),
        ),
        custom_data: extra
            .get("custom_data")
            .and_then(Value::as_str)
            .map(str::to_string),
        log_on_host: extra.get("log_on_host").and_then(Value::as_bool),
        vm: reference!(Vm, &e.refs.vm_id, "vms"),
        host: reference!(Host, &e.refs.host_id, "hosts"),
        cluster: reference!(Cluster, &e.refs.cluster_id, "clusters"),
        data_center: reference!(DataCenter, &e.refs.data_center_id, "datacenters"),
        storage_domain: reference!(StorageDomain, &e.refs.storage_domain_id, "storagedomains"),
        template: reference!(Template, &e.refs.template_id, "templates"),
        user: reference!(User, &e.refs.user_id, "users"),
        ..Default::default()
    }
}

pub async fn serve(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Response> {
    let id = match ctx.resolved.nodes.get(1) {
        Some(crate::api::path::Node::Item { id, .. }) => Some(id.clone()),
        _ => None,
    };
    match (op, id) {
        (MethodKind::List, _) => list(ctx).await,
        (MethodKind::Add, _) => add(ctx).await,
        (MethodKind::Get, Some(id)) => {
            let e = get(ctx, &id).await?;
            Ok(ctx.ok(StatusCode::OK, &present(&e)))
        }
        (MethodKind::Remove, Some(id)) => {
            let e = get(ctx, &id).await?;
            let eid = e.id;
            ctx.engine
                .store
                .write(|tx| Box::pin(async move { tx.delete_event(eid).await }))
                .await?;
            Ok(ctx.ok(
                StatusCode::OK,
                &Action {
                    status: Some("complete".into()),
                    ..Default::default()
                },
            ))
        }
        (MethodKind::Action, _) => Err(ApiError::not_implemented(
            "EventsService.undelete is not implemented by vireo yet",
        )),
        _ => Err(ApiError::not_found("no such resource")),
    }
}

async fn get(ctx: &Ctx<'_>, id: &str) -> ApiResult<StoredEvent> {
    let n: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no event with id '{id}'")))?;
    ctx.engine
        .store
        .get_event(n)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event with id '{id}'")))
}

/// External events (`POST /events`): oVirt's EXTERNAL_EVENT_* codes by severity.
async fn add(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let e: Event = ctx.parse_body()?;
    let mut missing = Vec::new();
    if e.description.is_none() {
        missing.push("description");
    }
    if e.severity.is_none() {
        missing.push("severity");
    }
    if e.origin.is_none() {
        missing.push("origin");
    }
    if e.custom_id.is_none() {
        missing.push("customId");
    }
    if !missing.is_empty() {
        return Err(ApiError::incomplete(format!(
            "Event [{}] required for add",
            missing.join(", ")
        )));
    }
    let (code, severity) = match e.severity {
        Some(LogSeverity::Warning) => (9802, "warning"),
        Some(LogSeverity::Error) => (9803, "error"),
        Some(LogSeverity::Alert) => (9804, "alert"),
        _ => (9801, "normal"),
    };
    let rid = |r: Option<String>| r.filter(|s| !s.is_empty());
    let refs = EventRefs {
        vm_id: rid(e.vm.as_ref().and_then(|v| v.id.clone())),
        host_id: rid(e.host.as_ref().and_then(|v| v.id.clone())),
        cluster_id: rid(e.cluster.as_ref().and_then(|v| v.id.clone())),
        data_center_id: rid(e.data_center.as_ref().and_then(|v| v.id.clone())),
        storage_domain_id: rid(e.storage_domain.as_ref().and_then(|v| v.id.clone())),
        template_id: rid(e.template.as_ref().and_then(|v| v.id.clone())),
        user_id: Some(ctx.principal.user_id.clone()),
    };
    let doc = json!({
        "custom_id": e.custom_id,
        "flood_rate": e.flood_rate.unwrap_or(30),
        "custom_data": e.custom_data,
        "log_on_host": e.log_on_host.unwrap_or(false),
    });
    let new = NewEvent {
        code,
        severity: severity.into(),
        description: e.description.clone().unwrap_or_default(),
        time_ms: vireo_store::now_ms(),
        correlation_id: ctx.params.correlation_id.clone(),
        origin: e.origin.clone(),
        refs,
        doc: doc.to_string(),
    };
    let id = ctx
        .engine
        .store
        .write(|tx| Box::pin(async move { tx.insert_event(&new).await }))
        .await?;
    let stored = ctx
        .engine
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("the new event is gone"))?;
    let mut res = ctx.ok(StatusCode::CREATED, &present(&stored));
    if let Ok(loc) = HeaderValue::from_str(&format!("/ovirt-engine/api/events/{id}")) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

/// A search on events, compiled to one store filter: every condition (severity, code, text,
/// time, object ids and names) is part of the statement, so `max` counts matching events.
struct EventSearch {
    filter: EventFilter,
    order: Order,
}

fn compile(ctx: &Ctx<'_>, q: &str) -> ApiResult<EventSearch> {
    let p = search::parse(q)?;
    if let Some(e) = &p.entity {
        if !matches!(e.as_str(), "events" | "event") {
            return Err(search::error(0, format!("'{e}:' does not search events")));
        }
    }
    let mut order = Order::Desc;
    if let Some((f, o, pos)) = &p.sort {
        if f != "time" && f != "id" {
            return Err(search::error(
                *pos,
                format!("events sort by time only, not '{f}'"),
            ));
        }
        order = *o;
    }
    let filter = match &p.expr {
        None => EventFilter::All,
        Some(expr) => {
            check(expr)?;
            to_filter(expr, ctx.params.case_sensitive)
        }
    };
    Ok(EventSearch { filter, order })
}

fn store_op(op: Op) -> CmpOp {
    match op {
        Op::Eq => CmpOp::Eq,
        Op::Ne => CmpOp::Ne,
        Op::Lt => CmpOp::Lt,
        Op::Le => CmpOp::Le,
        Op::Gt => CmpOp::Gt,
        Op::Ge => CmpOp::Ge,
    }
}

/// `field op value` on a text column: `=`/`!=` match wildcards, the others compare.
fn text(field: EventField, c: &Cond, case_sensitive: bool) -> EventFilter {
    let like = EventFilter::Like {
        field,
        pattern: c.value.clone(),
        case_sensitive,
    };
    match c.op {
        Op::Eq => like,
        Op::Ne => EventFilter::Not(Box::new(like)),
        op => EventFilter::Text {
            field,
            op: store_op(op),
            value: c.value.clone(),
            case_sensitive,
        },
    }
}

/// Reference columns by the search word that names them, with the kind they point to.
const REFS: &[(&str, EventField, &str)] = &[
    ("vm", EventField::VmId, "vms"),
    ("host", EventField::HostId, "hosts"),
    ("cluster", EventField::ClusterId, "clusters"),
    ("datacenter", EventField::DataCenterId, "datacenters"),
    ("storage", EventField::StorageDomainId, "storagedomains"),
    ("template", EventField::TemplateId, "templates"),
    ("user", EventField::UserId, "users"),
];

/// `check` has accepted every field and value, so the fallbacks below are never taken.
fn to_filter(e: &Expr, cs: bool) -> EventFilter {
    match e {
        Expr::And(p) => EventFilter::And(p.iter().map(|x| to_filter(x, cs)).collect()),
        Expr::Or(p) => EventFilter::Or(p.iter().map(|x| to_filter(x, cs)).collect()),
        Expr::Cond(c) => {
            let int = |field: EventField, value: i64| EventFilter::Int {
                field,
                op: store_op(c.op),
                value,
            };
            let number = || c.value.parse::<i64>().unwrap_or(0);
            // Exact ids and correlation ids compare as stored: the columns' indexes serve them.
            let exact = c.op == Op::Eq && !c.value.contains('*');
            match c.field.as_str() {
                "severity" => {
                    let want = severity_rank(&c.value).unwrap_or(0);
                    EventFilter::SeverityIn(
                        ["normal", "warning", "error", "alert"]
                            .iter()
                            .filter(|s| {
                                let r = severity_rank(s).unwrap_or(0);
                                match c.op {
                                    Op::Eq => r == want,
                                    Op::Ne => r != want,
                                    Op::Lt => r < want,
                                    Op::Le => r <= want,
                                    Op::Gt => r > want,
                                    Op::Ge => r >= want,
                                }
                            })
                            .map(|s| s.to_string())
                            .collect(),
                    )
                }
                "type" | "code" => int(EventField::Code, number()),
                "id" => int(EventField::Id, number()),
                "custom_event_id" | "custom_id" => int(EventField::CustomId, number()),
                "time" => int(
                    EventField::TimeMs,
                    search::parse_date(&c.value).unwrap_or(0),
                ),
                "message" | "description" => text(EventField::Description, c, cs),
                "origin" => text(EventField::Origin, c, cs),
                "correlation_id" => text(EventField::CorrelationId, c, cs || exact),
                f => {
                    let (word, tail) = f.split_once('.').unwrap_or((f, "name"));
                    let word = if word == "usrname" { "user" } else { word };
                    let Some((_, field, kind)) = REFS.iter().find(|(w, _, _)| *w == word) else {
                        return EventFilter::Or(Vec::new());
                    };
                    if tail == "id" {
                        return text(*field, c, cs || exact);
                    }
                    // Names: `!=` is the complement; oVirt orders names only for sorting.
                    let named = EventFilter::RefNamed {
                        field: *field,
                        kind: kind.to_string(),
                        pattern: c.value.clone(),
                        case_sensitive: cs,
                    };
                    if c.op == Op::Ne {
                        EventFilter::Not(Box::new(named))
                    } else {
                        named
                    }
                }
            }
        }
    }
}

const EVENT_FIELDS: &[&str] = &[
    "severity",
    "type",
    "code",
    "message",
    "description",
    "time",
    "origin",
    "correlation_id",
    "custom_event_id",
    "custom_id",
    "id",
    "vm",
    "vm.name",
    "vm.id",
    "host",
    "host.name",
    "host.id",
    "cluster",
    "cluster.name",
    "cluster.id",
    "datacenter",
    "datacenter.name",
    "datacenter.id",
    "storage",
    "storage.name",
    "storage.id",
    "template",
    "template.name",
    "template.id",
    "user",
    "user.name",
    "user.id",
    "usrname",
];

fn check(e: &Expr) -> ApiResult<()> {
    match e {
        Expr::And(p) | Expr::Or(p) => p.iter().try_for_each(check),
        Expr::Cond(c) => {
            if !EVENT_FIELDS.contains(&c.field.as_str()) {
                return Err(search::error(
                    c.pos,
                    format!("'{}' is not a searchable field of events", c.field),
                ));
            }
            let numeric = matches!(
                c.field.as_str(),
                "type" | "code" | "custom_event_id" | "custom_id" | "id"
            );
            if numeric && c.value.parse::<i64>().is_err() {
                return Err(search::error(
                    c.pos,
                    format!("'{}' is not an integer", c.value),
                ));
            }
            if c.field == "severity" && severity_rank(&c.value).is_none() {
                return Err(search::error(
                    c.pos,
                    format!(
                        "'{}' is not a severity (normal, warning, error, alert)",
                        c.value
                    ),
                ));
            }
            if c.field == "time" && search::parse_date(&c.value).is_none() {
                return Err(search::error(c.pos, format!("'{}' is not a date", c.value)));
            }
            Ok(())
        }
    }
}

async fn list(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let from = match ctx.params.get("from") {
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "the value '{v}' of parameter 'from' is not a number"
            ))
        })?),
        None => None,
    };
    let max = ctx.params.max;
    let s = match ctx
        .params
        .search
        .as_deref()
        .filter(|q| !q.trim().is_empty())
    {
        Some(q) => compile(ctx, q)?,
        None => EventSearch {
            filter: EventFilter::All,
            order: Order::Desc,
        },
    };
    let found = ctx
        .engine
        .store
        .list_events(&EventQuery {
            from,
            max,
            order: s.order,
            filter: s.filter,
            ..Default::default()
        })
        .await?;
    let items: Vec<Event> = found.iter().map(present).collect();
    let mut res = (StatusCode::OK, ctx.format.render_list(&items)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, ctx.format.content_type());
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order() {
        assert!(severity_rank("warning") > severity_rank("normal"));
        assert!(severity_rank("alert") > severity_rank("error"));
    }
}
