//! The inventory: objects of the API kept in the store, served by one generic implementation
//! of get/list/add/update/remove over the model, with the rules of each kind in `rules`.

pub mod actions;
pub mod coverage;
pub mod record;
pub mod rules;

use crate::api::fault::{ApiError, ApiResult};
use crate::api::path::Node;
use crate::api::{render, search, Ctx};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use vireo_model::meta::{self, MethodKind, ServiceDef};
use vireo_model::*;
use vireo_store::{Filter, NameScope, Order, Query};

/// A kind of object vireo keeps, and which of its collection's methods it serves.
pub struct Kind {
    /// The store kind: the canonical collection path.
    pub kind: &'static str,
    pub ops: &'static str,
    pub unique: Unique,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    None,
    Global,
    Parent,
}

/// `l`ist, `g`et, `a`dd, `u`pdate, `r`emove.
macro_rules! kinds {
    ($( $kind:literal => $T:ty, $ops:literal, $unique:ident; )*) => {
        pub const KINDS: &[Kind] = &[ $( Kind { kind: $kind, ops: $ops, unique: Unique::$unique }, )* ];

        async fn typed(ctx: &Ctx<'_>, at: &Location, op: MethodKind) -> ApiResult<Option<Response>> {
            match at.kind.kind {
                $( $kind => serve::<$T>(ctx, at, op).await.map(Some), )*
                _ => Ok(None),
            }
        }
    };
}

kinds! {
    "datacenters" => DataCenter, "lgaur", Global;
    "clusters" => Cluster, "lgaur", Global;
    "networks" => Network, "lgaur", None;
    "vnicprofiles" => VnicProfile, "lgaur", None;
    "macpools" => MacPool, "lgaur", Global;
    "templates" => Template, "lgur", None;
    "vms" => Vm, "lgaur", Global;
    "vms/nics" => Nic, "lgaur", Parent;
    "tags" => Tag, "lgaur", Global;
    "roles" => Role, "lgaur", Global;
    "roles/permits" => Permit, "lg", None;
    "users" => User, "lg", None;
    "groups" => Group, "lg", None;
    "permissions" => Permission, "lg", None;
    "operatingsystems" => OperatingSystemInfo, "lg", None;
    "clusterlevels" => ClusterLevel, "lg", None;
    "schedulingpolicies" => SchedulingPolicy, "lg", None;
    "schedulingpolicyunits" => SchedulingPolicyUnit, "lg", None;
    "instancetypes" => InstanceType, "lg", None;
    "bookmarks" => Bookmark, "lgaur", Global;
    "affinitylabels" => AffinityLabel, "lgaur", Global;
    "hosts" => Host, "lgaur", Global;
    "hosts/nics" => HostNic, "lg", None;
    "storagedomains" => StorageDomain, "lg", None;
    "disks" => Disk, "lg", None;
    "vmpools" => VmPool, "lg", None;
    "jobs" => Job, "lg", None;
    "domains" => Domain, "lg", None;
}

/// Where a request points: a kind, the parent object that owns its members, and a member.
pub struct Location {
    pub kind: &'static Kind,
    pub parent: Option<(String, String)>,
    pub id: Option<String>,
    /// The collection's href.
    pub collection_href: String,
    pub collection: &'static ServiceDef,
    pub entity: Option<&'static ServiceDef>,
}

fn locate(ctx: &Ctx<'_>) -> Option<Location> {
    let nodes = &ctx.resolved.nodes;
    let (last_collection, id) = match nodes.last()? {
        Node::Item { id, .. } => (nodes.len().checked_sub(2)?, Some(id.clone())),
        Node::Locate { .. } => (nodes.len() - 1, None),
    };
    let mut kind = String::new();
    let mut parent = None;
    let mut href = String::from("/ovirt-engine/api");
    let mut parent_kind = String::new();
    for n in &nodes[..=last_collection] {
        match n {
            Node::Locate { segment, .. } => {
                if !kind.is_empty() {
                    kind.push('/');
                }
                kind.push_str(segment);
                href.push('/');
                href.push_str(segment);
            }
            Node::Item { id, .. } => {
                parent_kind = kind.clone();
                parent = Some((parent_kind.clone(), id.clone()));
                href.push('/');
                href.push_str(id);
            }
        }
    }
    let _ = parent_kind;
    let kind = KINDS.iter().find(|k| k.kind == kind)?;
    let collection = nodes[last_collection].service();
    let entity = collection.item.map(meta::service);
    Some(Location { kind, parent, id, collection_href: href, collection, entity })
}

pub async fn dispatch(ctx: &Ctx<'_>, op: MethodKind) -> ApiResult<Option<Response>> {
    // Runtime views kept in memory, not in the store (statistics, consoles of running VMs).
    if let Some(r) = crate::hosts::runtime_read(ctx, op).await? {
        return Ok(Some(r));
    }
    let Some(at) = locate(ctx) else { return Ok(None) };
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
    if !at.kind.ops.contains(letter) {
        return Ok(None);
    }
    typed(ctx, &at, op).await
}

async fn serve<T: Model>(ctx: &Ctx<'_>, at: &Location, op: MethodKind) -> ApiResult<Response> {
    match (op, &at.id) {
        (MethodKind::List, _) => list::<T>(ctx, at).await,
        (MethodKind::Add, _) => add::<T>(ctx, at).await,
        (MethodKind::Get, Some(id)) => get::<T>(ctx, at, id).await,
        (MethodKind::Update, Some(id)) => update::<T>(ctx, at, id).await,
        (MethodKind::Remove, Some(id)) => remove(ctx, at, id).await,
        _ => Err(ApiError::not_found("no such resource")),
    }
}

fn href_of(at: &Location, id: &str) -> String {
    format!("{}/{id}", at.collection_href)
}

/// Stored document → typed value with its links, followed sub-collections and references.
async fn present<T: Model>(ctx: &Ctx<'_>, at: &Location, mut doc: Value, id: &str, follow: &[String]) -> ApiResult<T> {
    let href = href_of(at, id);
    render::decorate(&mut doc, T::meta(), &href, at.entity);
    for f in follow {
        follow_one(ctx, at, &mut doc, T::meta(), id, &href, f).await?;
    }
    vireo_model::from_json_value::<T>(&doc).map_err(|e| ApiError::internal(format!("stored {} {id} does not read back: {e}", at.kind.kind)))
}

async fn follow_one(
    ctx: &Ctx<'_>,
    at: &Location,
    doc: &mut Value,
    t: &'static meta::TypeDef,
    id: &str,
    href: &str,
    follow: &str,
) -> ApiResult<()> {
    let (head, _rest) = follow.split_once('.').unwrap_or((follow, ""));
    let Some(attr) = t.attributes.iter().find(|a| a.link == Some(head) || a.xml == head) else {
        return Err(ApiError::bad_request(format!("'{follow}' is not a link of {} that can be followed", t.name)));
    };
    let sub_kind = format!("{}/{head}", at.kind.kind);
    if let Some(k) = KINDS.iter().find(|k| k.kind == sub_kind) {
        let recs = ctx.engine.store.list(k.kind, &Query::new(Filter::ParentIs(id.to_string()))).await?;
        let sub_svc = at.entity.and_then(|e| e.locator(head)).map(meta::service);
        let item_svc = sub_svc.and_then(|s| s.item).map(meta::service);
        let meta::TypeRef::Struct(sub_type) = attr.ty else { return Ok(()) };
        let st = meta::type_def(sub_type).expect("model type");
        let mut items = Vec::new();
        for r in recs {
            let mut d: Value = serde_json::from_str(&r.doc).map_err(ApiError::internal)?;
            render::decorate(&mut d, st, &format!("{href}/{head}/{}", r.id), item_svc);
            items.push(d);
        }
        if let Value::Object(o) = doc {
            o.insert(attr.xml.to_string(), serde_json::json!({ attr.item.unwrap_or_default(): items }));
        }
        return Ok(());
    }
    Err(ApiError::not_implemented(format!("following '{follow}' of {} is not implemented yet", t.name)))
}

fn doc_of(r: &vireo_store::Record) -> ApiResult<Value> {
    serde_json::from_str(&r.doc).map_err(ApiError::internal)
}

async fn list<T: Model>(ctx: &Ctx<'_>, at: &Location) -> ApiResult<Response> {
    let mut filters = Vec::new();
    if let Some((_, pid)) = &at.parent {
        filters.push(Filter::ParentIs(pid.clone()));
    }
    let mut query = Query::new(Filter::All).order_by("name", Order::Asc);
    if let Some(q) = ctx.params.search.as_deref().filter(|q| !q.trim().is_empty()) {
        let s = search::parse(q, T::meta(), ctx.params.case_sensitive)?;
        if let Some(f) = s.filter {
            filters.push(f);
        }
        if let Some((field, order)) = s.sort {
            query = query.order_by(field, order);
        }
        if let (Some(page), Some(max)) = (s.page, ctx.params.max) {
            query = query.offset((page - 1) * max);
        }
    }
    query.filter = match filters.len() {
        0 => Filter::All,
        1 => filters.pop().unwrap(),
        _ => Filter::And(filters),
    };
    if let Some(max) = ctx.params.max {
        query = query.limit(max);
    }
    let recs = ctx.engine.store.list(at.kind.kind, &query).await?;
    let mut items: Vec<T> = Vec::with_capacity(recs.len());
    for r in &recs {
        let doc = doc_of(r)?;
        // Sub-collection records may be keyed `{parent}/{id}` (bootstrap::sub_record_id); the
        // document keeps the API id.
        let id = doc.get("id").and_then(Value::as_str).unwrap_or(&r.id).to_string();
        items.push(present::<T>(ctx, at, doc, &id, &ctx.params.follow).await?);
    }
    let mut res = (StatusCode::OK, ctx.format.render_list(&items)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, ctx.format.content_type());
    Ok(res)
}

async fn fetch(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<vireo_store::Record> {
    let mut rec = ctx.engine.store.get(at.kind.kind, id).await?;
    if rec.is_none() {
        if let Some((_, parent)) = &at.parent {
            rec = ctx.engine.store.get(at.kind.kind, &crate::bootstrap::sub_record_id(parent, id)).await?;
        }
    }
    match rec {
        Some(r) if at.parent.as_ref().map(|(_, p)| r.parent_id.as_deref() == Some(p)).unwrap_or(true) => Ok(r),
        _ => Err(ApiError::not_found(format!("no object with id '{id}' in {}", at.collection_href))),
    }
}

async fn get<T: Model>(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<Response> {
    let rec = fetch(ctx, at, id).await?;
    let v = present::<T>(ctx, at, doc_of(&rec)?, id, &ctx.params.follow).await?;
    Ok(ctx.ok(StatusCode::OK, &v))
}

/// `Vm [name] required for add`: oVirt's wording for a missing mandatory input.
fn check_requirements<T: Model>(svc: &ServiceDef, doc: &Value, method: MethodKind) -> ApiResult<()> {
    let Some(m) = svc.methods_of(method).find(|m| m.sdk_name == "add" || m.sdk_name == "update") else { return Ok(()) };
    let mut missing = Vec::new();
    for group in m.requirements {
        let present = group.iter().any(|p| {
            let mut cur = doc;
            for part in p.split('.').skip(1) {
                let part = part.trim_end_matches("[]");
                match cur.get(part) {
                    Some(Value::Null) | None => return false,
                    Some(v) => cur = v,
                }
            }
            true
        });
        if !present {
            let alts: Vec<String> = group.iter().map(|p| p.split('.').skip(1).collect::<Vec<_>>().join(".")).collect();
            missing.push(alts.join("|"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        let verb = if method == MethodKind::Add { "add" } else { "update" };
        Err(ApiError::incomplete(format!("{} [{}] required for {verb}", T::NAME, missing.join(", "))))
    }
}

fn name_scope(at: &Location) -> NameScope {
    match (at.kind.unique, &at.parent) {
        (Unique::Global, _) => NameScope::Global,
        (Unique::Parent, Some(_)) => NameScope::Parent,
        _ => NameScope::None,
    }
}

async fn add<T: Model>(ctx: &Ctx<'_>, at: &Location) -> ApiResult<Response> {
    let mut value: T = ctx.parse_body()?;
    let id = uuid::Uuid::new_v4().to_string();
    value.set_id(Some(id.clone()));
    let mut doc: Value = serde_json::from_slice(&vireo_model::to_json(&value)).map_err(ApiError::internal)?;
    record::strip_derived(&mut doc);
    check_requirements::<T>(at.collection, &doc, MethodKind::Add)?;
    let parent = at.parent.as_ref().map(|(_, p)| p.as_str());
    rules::prepare_add(ctx, at.kind.kind, parent, &mut doc).await?;
    vireo_model::from_json_value::<T>(&doc).map_err(ApiError::from_codec)?;
    let mut w = record::write_from_doc(at.kind.kind, T::meta(), &id, &doc, parent);
    w.name_scope = name_scope(at);
    let kind = at.kind.kind;
    if w.name_scope != NameScope::None && w.name.is_none() {
        return Err(ApiError::incomplete(format!("{} [name] required for add", T::NAME)));
    }
    ctx.engine
        .store
        .write(|tx| Box::pin(async move { tx.insert(&w).await }))
        .await
        .map_err(|e| match e {
            vireo_store::StoreError::Conflict { .. } => ApiError::conflict(format!(
                "Cannot add {}. The name '{}' is already in use",
                T::NAME,
                doc.get("name").and_then(Value::as_str).unwrap_or_default()
            )),
            other => other.into(),
        })?;
    let rec = fetch(ctx, at, &id).await?;
    rules::after_add(ctx, kind, &id, &doc_of(&rec)?).await?;
    let rec = fetch(ctx, at, &id).await?;
    let v = present::<T>(ctx, at, doc_of(&rec)?, &id, &[]).await?;
    let mut res = ctx.ok(StatusCode::CREATED, &v);
    if let Ok(loc) = HeaderValue::from_str(&href_of(at, &id)) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

/// Objects merge member by member; lists and scalars are replaced.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

async fn update<T: Model>(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<Response> {
    let rec = fetch(ctx, at, id).await?;
    let value: T = ctx.parse_body()?;
    let mut change: Value = serde_json::from_slice(&vireo_model::to_json(&value)).map_err(ApiError::internal)?;
    record::strip_derived(&mut change);
    if let Value::Object(o) = &mut change {
        o.remove("id");
    }
    let mut doc = doc_of(&rec)?;
    let before = doc.clone();
    merge(&mut doc, &change);
    let parent = at.parent.as_ref().map(|(_, p)| p.as_str());
    rules::prepare_update(ctx, at.kind.kind, &before, &mut doc).await?;
    vireo_model::from_json_value::<T>(&doc).map_err(ApiError::from_codec)?;
    let mut w = record::write_from_doc(at.kind.kind, T::meta(), &rec.id, &doc, parent);
    w.name_scope = name_scope(at);
    let generation = rec.generation;
    ctx.engine
        .store
        .write(|tx| Box::pin(async move { tx.update(&w, Some(generation)).await }))
        .await
        .map_err(|e| match e {
            vireo_store::StoreError::Conflict { .. } => ApiError::conflict(format!(
                "Cannot edit {}. The name '{}' is already in use",
                T::NAME,
                doc.get("name").and_then(Value::as_str).unwrap_or_default()
            )),
            other => other.into(),
        })?;
    let rec = fetch(ctx, at, id).await?;
    let v = present::<T>(ctx, at, doc_of(&rec)?, id, &[]).await?;
    Ok(ctx.ok(StatusCode::OK, &v))
}

async fn remove(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<Response> {
    let rec = fetch(ctx, at, id).await?;
    rules::check_remove(ctx, at.kind.kind, &doc_of(&rec)?).await?;
    let kind = at.kind.kind;
    let children: Vec<&'static str> = KINDS
        .iter()
        .filter(|k| k.kind.strip_prefix(kind).map(|r| r.starts_with('/') && !r[1..].contains('/')).unwrap_or(false))
        .map(|k| k.kind)
        .collect();
    let id_owned = rec.id.clone();
    let api_id = id.to_string();
    ctx.engine
        .store
        .write(|tx| {
            Box::pin(async move {
                for child in children {
                    for r in tx.list(child, &Query::new(Filter::ParentIs(api_id.clone()))).await? {
                        tx.delete(child, &r.id).await?;
                    }
                }
                tx.delete(kind, &id_owned).await
            })
        })
        .await?;
    let done = Action { status: Some("complete".into()), ..Default::default() };
    Ok(ctx.ok(StatusCode::OK, &done))
}
