//! The one implementation of get/list/add/update/remove every kind shares. What only a kind
//! knows comes from `rules` (defaults, references, refusals, work in the same transaction)
//! and `spec` (relations, nouns); every change writes its event in the same transaction.

use super::decorate::Decorator;
use super::rules::{self, Adding};
use super::{events, follow, index, record, spec, views, Location, Unique, KINDS};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::format::{Format, ListBody};
use crate::api::render::memo;
use crate::api::{search, Ctx};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use vireo_model::meta::{MethodKind, ServiceDef};
use vireo_model::*;
use vireo_store::{Filter, Order, Query, Record};

pub(super) async fn serve<T: Model + Send + 'static>(
    ctx: &Ctx<'_>,
    at: &Location,
    op: MethodKind,
) -> ApiResult<Response> {
    match (op, &at.id) {
        (MethodKind::List, _) => list::<T>(ctx, at).await,
        (MethodKind::Add, _) => add::<T>(ctx, at).await,
        (MethodKind::Get, Some(id)) => get::<T>(ctx, at, id).await,
        (MethodKind::Update, Some(id)) => update::<T>(ctx, at, id).await,
        (MethodKind::Remove, Some(id)) => remove(ctx, at, id).await,
        _ => Err(ApiError::not_found("no such resource")),
    }
}

pub fn href_of(at: &Location, id: &str) -> String {
    format!("{}/{id}", at.collection_href)
}

pub fn doc_of(r: &Record) -> ApiResult<Value> {
    serde_json::from_str(&r.doc).map_err(ApiError::internal)
}

/// The API id of a record: sub-collection records may be keyed `{owner}/{id}`
/// (`bootstrap::sub_record_id`); the document keeps the API id.
pub fn api_id(r: &Record, doc: &Value) -> String {
    doc.get("id")
        .and_then(Value::as_str)
        .unwrap_or(&r.id)
        .to_string()
}

/// Stored records → typed values with their links, followed links and, for relations, the
/// object they attach (one batch read for all of them, never one per record).
pub(super) async fn present_all<T: Model>(
    ctx: &Ctx<'_>,
    at: &Location,
    recs: &[Record],
    follows: &[String],
) -> ApiResult<Vec<T>> {
    let mut docs = Vec::with_capacity(recs.len());
    for r in recs {
        let doc = doc_of(r)?;
        let id = api_id(r, &doc);
        docs.push((id, doc));
    }
    if let Some(rel) = spec::relation(at.kind.kind) {
        join(ctx, rel, &mut docs).await?;
    }
    let deco = Decorator::new(T::meta(), at.entity);
    let mut out = Vec::with_capacity(docs.len());
    for (id, mut doc) in docs {
        let href = href_of(at, &id);
        rules::decorate(at.kind.kind, &mut doc);
        if ctx.params.all_content {
            rules::all_content(ctx, at.kind.kind, &mut doc).await?;
        }
        deco.references(&mut doc);
        for f in follows {
            follow::follow(ctx, at, &mut doc, T::meta(), &id, &href, f).await?;
        }
        let mut v = vireo_model::from_json_value::<T>(&doc).map_err(|e| {
            ApiError::internal(format!(
                "stored {} {id} does not read back: {e}",
                at.kind.kind
            ))
        })?;
        deco.finish(&mut v, &href);
        out.push(v);
    }
    Ok(out)
}

/// Lists without relations or `follow`, straight to the response body: each member is
/// decoded, decorated and rendered on its own (spread over the cores), and members whose
/// stored document has not changed since they were last rendered are not done again
/// (`api::render::memo`).
async fn render_many<T: Model + Send + 'static>(
    at: &Location,
    recs: Vec<Record>,
    format: Format,
) -> ApiResult<Vec<Arc<[u8]>>> {
    const CHUNK_MIN: usize = 250;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let chunk = recs.len().div_ceil(cores).max(CHUNK_MIN);
    let job = Arc::new(RenderJob {
        deco: Decorator::new(T::meta(), at.entity),
        base: at.collection_href.clone(),
        kind: at.kind.kind,
        scope: format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            at.kind.kind,
            at.collection_href,
            at.entity.map(|s| s.name).unwrap_or(""),
            T::NAME
        ),
        format,
    });
    let items = if recs.len() <= CHUNK_MIN {
        render_chunk::<T>(&job, &recs)?
    } else {
        let mut parts = Vec::new();
        let mut recs = recs;
        while !recs.is_empty() {
            let rest = recs.split_off(chunk.min(recs.len()));
            let mine = std::mem::replace(&mut recs, rest);
            let job = job.clone();
            parts.push(tokio::task::spawn_blocking(move || {
                render_chunk::<T>(&job, &mine)
            }));
        }
        let mut items = Vec::new();
        for p in parts {
            items.extend(p.await.map_err(ApiError::internal)??);
        }
        items
    };
    Ok(items)
}

/// What rendering a member depends on besides its document.
struct RenderJob {
    deco: Decorator,
    base: String,
    kind: &'static str,
    /// Names the collection, its entity service and the type in memo keys.
    scope: String,
    format: Format,
}

fn render_chunk<T: Model>(job: &RenderJob, recs: &[Record]) -> ApiResult<Vec<Arc<[u8]>>> {
    let keys: Vec<(String, &str)> = recs
        .iter()
        .map(|r| (memo::key(job.format, &job.scope, &r.id), r.doc.as_str()))
        .collect();
    let known = memo::lookup(&keys);
    let mut out = Vec::with_capacity(recs.len());
    let mut made = Vec::new();
    for ((r, (k, _)), hit) in recs.iter().zip(keys).zip(known) {
        if let Some(b) = hit {
            out.push(b);
            continue;
        }
        let kind = job.kind;
        let mut doc = doc_of(r)?;
        let id = api_id(r, &doc);
        let href = format!("{}/{id}", job.base);
        rules::decorate(kind, &mut doc);
        job.deco.references(&mut doc);
        let mut v = vireo_model::from_json_value::<T>(&doc).map_err(|e| {
            ApiError::internal(format!("stored {kind} {id} does not read back: {e}"))
        })?;
        job.deco.finish(&mut v, &href);
        let b: Arc<[u8]> = job.format.render_item(&v).into();
        made.push((k, r.doc.as_str(), b.clone()));
        out.push(b);
    }
    memo::store(made);
    Ok(out)
}

/// A relation's members show the object they attach, with the attachment's own members
/// (a cluster network's `required`, an attached domain's `status`) on top.
async fn join(ctx: &Ctx<'_>, rel: &spec::Relation, docs: &mut [(String, Value)]) -> ApiResult<()> {
    if docs.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = docs.iter().map(|(id, _)| id.clone()).collect();
    let targets = ctx
        .engine
        .store
        .list(rel.target, &Query::new(Filter::IdIn(ids)))
        .await?;
    let mut by_id: HashMap<String, Value> = HashMap::with_capacity(targets.len());
    for t in &targets {
        by_id.insert(t.id.clone(), doc_of(t)?);
    }
    for (id, doc) in docs.iter_mut() {
        if let Some(target) = by_id.get(id) {
            *doc = spec::overlay(rel, target, doc);
        }
    }
    Ok(())
}

/// A sub-collection of an object that does not exist is not there either (404, as oVirt).
async fn check_owner(ctx: &Ctx<'_>, at: &Location) -> ApiResult<()> {
    let Some((kind, id)) = &at.parent else {
        return Ok(());
    };
    // Owners that are themselves members of sub-collections are checked by their own path.
    if kind.contains('/') || super::kind(kind).is_none() {
        return Ok(());
    }
    match ctx.engine.store.get(kind, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "no object with id '{id}' in /ovirt-engine/api/{kind}"
        ))),
    }
}

async fn list<T: Model + Send + 'static>(ctx: &Ctx<'_>, at: &Location) -> ApiResult<Response> {
    check_owner(ctx, at).await?;
    let mut filters = Vec::new();
    match (&at.view, at.parent_id()) {
        (Some(v), Some(p)) => filters.push(v.filter(p)),
        (None, Some(p)) => filters.push(Filter::ParentIs(p.to_string())),
        _ => {}
    }
    let mut query = Query::new(Filter::All).order_by("name", Order::Asc);
    let mut page = None;
    if let Some(q) = ctx
        .params
        .search
        .as_deref()
        .filter(|q| !q.trim().is_empty())
    {
        let s = search::parse_for(q, at.kind.kind, T::meta(), ctx.params.case_sensitive)?;
        if let Some(f) = s.filter {
            filters.push(f);
        }
        if let Some((field, order)) = s.sort {
            query = query.order_by(field, order);
        }
        page = s.page;
    }
    query.filter = match filters.len() {
        0 => Filter::All,
        1 => filters.pop().unwrap_or_default(),
        _ => Filter::And(filters),
    };
    // `page N` without `max` pages by oVirt's default search page size.
    let max = ctx.params.max.or(page.map(|_| search::DEFAULT_PAGE_SIZE));
    if let Some(max) = max {
        query = query.limit(max);
        if let Some(page) = page {
            query = query.offset((page - 1) * max);
        }
    }
    let t0 = std::time::Instant::now();
    let recs = ctx.engine.store.list(at.kind.kind, &query).await?;
    let t1 = t0.elapsed();
    let n = recs.len();
    let body = if ctx.params.follow.is_empty() && spec::relation(at.kind.kind).is_none() {
        ListBody::new::<T>(ctx.format, render_many::<T>(at, recs, ctx.format).await?)
    } else {
        let items: Vec<T> = present_all(ctx, at, &recs, &ctx.params.follow).await?;
        ListBody::raw(ctx.format.render_list(&items))
    };
    tracing::debug!(
        kind = at.kind.kind,
        n,
        store_ms = t1.as_millis() as u64,
        render_ms = (t0.elapsed() - t1).as_millis() as u64,
        bytes = body.len(),
        "list"
    );
    let mut res = (StatusCode::OK, axum::body::Body::new(body)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, ctx.format.content_type());
    Ok(res)
}

/// The record a member id names in this collection; 404 when it is not there (including a
/// member of another owner).
pub(super) async fn fetch(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<Record> {
    let store = &ctx.engine.store;
    let not_found = || {
        ApiError::not_found(format!(
            "no object with id '{id}' in {}",
            at.collection_href
        ))
    };
    if let Some(v) = &at.view {
        let rec = store.get(at.kind.kind, id).await?.ok_or_else(not_found)?;
        let doc = doc_of(&rec)?;
        return match at.parent_id() {
            Some(p) if !v.contains(&doc, p) => Err(not_found()),
            _ => Ok(rec),
        };
    }
    let mut rec = store.get(at.kind.kind, id).await?;
    if rec.is_none() {
        if let Some(p) = at.parent_id() {
            rec = store
                .get(at.kind.kind, &crate::bootstrap::sub_record_id(p, id))
                .await?;
        }
    }
    match rec {
        Some(r)
            if at
                .parent_id()
                .map(|p| r.parent_id.as_deref() == Some(p))
                .unwrap_or(true) =>
        {
            Ok(r)
        }
        _ => Err(not_found()),
    }
}

async fn get<T: Model>(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<Response> {
    let rec = fetch(ctx, at, id).await?;
    let mut v: Vec<T> =
        present_all(ctx, at, std::slice::from_ref(&rec), &ctx.params.follow).await?;
    Ok(ctx.ok(StatusCode::OK, &v.remove(0)))
}

/// Whether `doc` has what a requirement path names (`vm.cluster.id`,
/// `mac_pool.ranges[].from`): lists travel wrapped (`{"range": [..]}`), and every item of a
/// list must have the rest of the path.
fn has_path(doc: &Value, parts: &[&str]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return true;
    };
    let (name, list) = match first.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (*first, false),
    };
    match doc.get(name) {
        Some(Value::Null) | None => false,
        Some(v) if list => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                Value::Object(o) => o.values().filter_map(Value::as_array).flatten().collect(),
                _ => Vec::new(),
            };
            !items.is_empty() && items.iter().all(|i| has_path(i, rest))
        }
        Some(v) => has_path(v, rest),
    }
}

/// Requirements the API model states but the running engine does not enforce: a disk has no
/// interface since 4.0 (its attachment has).
const NOT_ENFORCED: &[(&str, &str)] = &[
    ("DisksService", "interface"),
    ("StorageDomainDisksService", "interface"),
];

/// `Vm [name] required for add`: oVirt's wording for a missing mandatory input.
fn check_requirements<T: Model>(
    svc: &ServiceDef,
    doc: &Value,
    method: MethodKind,
) -> ApiResult<()> {
    let Some(m) = svc
        .methods_of(method)
        .find(|m| m.sdk_name == "add" || m.sdk_name == "update")
    else {
        return Ok(());
    };
    let mut missing = Vec::new();
    for group in m.requirements {
        // The model spells Python keywords with a leading `_` (`_interface`).
        let parts = |p: &str| {
            p.split('.')
                .skip(1)
                .map(|s| s.trim_start_matches('_').to_string())
                .collect::<Vec<_>>()
        };
        if group
            .iter()
            .any(|p| NOT_ENFORCED.contains(&(svc.name, parts(p).join(".").as_str())))
        {
            continue;
        }
        let present = group.iter().any(|p| {
            has_path(
                doc,
                &parts(p).iter().map(String::as_str).collect::<Vec<_>>(),
            )
        });
        if !present {
            let alts: Vec<String> = group.iter().map(|p| parts(p).join(".")).collect();
            missing.push(alts.join("|"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        let verb = if method == MethodKind::Add {
            "add"
        } else {
            "update"
        };
        Err(ApiError::incomplete(format!(
            "{} [{}] required for {verb}",
            T::NAME,
            missing.join(", ")
        )))
    }
}

pub(super) fn body_doc<T: Model>(ctx: &Ctx<'_>) -> ApiResult<Value> {
    let value: T = ctx.parse_body()?;
    let mut doc: Value =
        serde_json::from_slice(&vireo_model::to_json(&value)).map_err(ApiError::internal)?;
    record::strip_derived(&mut doc);
    Ok(doc)
}

async fn add<T: Model>(ctx: &Ctx<'_>, at: &Location) -> ApiResult<Response> {
    check_owner(ctx, at).await?;
    let mut doc = body_doc::<T>(ctx)?;
    // New objects get their id from the engine; the body's names what a relation attaches
    // (or is the id itself, for a network label).
    let body_id = match &mut doc {
        Value::Object(o) => o.remove("id").and_then(|v| v.as_str().map(str::to_string)),
        _ => None,
    };
    if let (Some(v), Some(p)) = (&at.view, at.parent_id()) {
        v.set_owner(&mut doc, p);
    }
    // Relations name an existing object; everything else must have what the model requires.
    if spec::relation(at.kind.kind).is_none() {
        check_requirements::<T>(at.collection, &doc, MethodKind::Add)?;
    }
    let mut adding = Adding::new(
        uuid::Uuid::new_v4().to_string(),
        doc,
        at.parent_id().map(str::to_string),
    );
    adding.body_id = body_id;
    rules::prepare_add(ctx, at, &mut adding).await?;
    vireo_model::from_json_value::<T>(&adding.doc).map_err(ApiError::from_codec)?;
    if needs_name(at) && adding.doc.get("name").and_then(Value::as_str).is_none() {
        return Err(ApiError::incomplete(format!(
            "{} [name] required for add",
            T::NAME
        )));
    }
    let kind = at.kind.kind;
    let mut tx = ctx.engine.store.begin().await?;
    rules::in_tx_add(&mut tx, ctx, at, &mut adding).await?;
    index::insert(
        &mut tx,
        kind,
        &adding.record_id,
        &adding.doc,
        adding.parent.as_deref(),
        &adding.extra_attrs,
    )
    .await
    .map_err(|e| index::conflict(e, "add", kind, &adding.doc))?;
    if !adding.quiet {
        events::changed(&mut tx, ctx, at, events::Verb::Add, &adding.doc, None).await?;
    }
    tx.commit().await?;
    let waiter = rules::after_add(ctx, at, &adding).await?;
    if let Some(w) = waiter {
        // `Expect: 201-created`: oVirt answers when the work has ended.
        if expects_created(ctx) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(300), w).await;
            adding.status = StatusCode::CREATED;
        }
    }
    let rec = ctx
        .engine
        .store
        .get(kind, &adding.record_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the new object is gone"))?;
    let mut v: Vec<T> = present_all(ctx, at, std::slice::from_ref(&rec), &[]).await?;
    let mut res = ctx.ok(adding.status, &v.remove(0));
    if let Ok(loc) = HeaderValue::from_str(&href_of(at, &adding.id)) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

fn expects_created(ctx: &Ctx<'_>) -> bool {
    ["expect", "x-ovirt-expect"]
        .iter()
        .filter_map(|h| ctx.headers.get(*h).and_then(|v| v.to_str().ok()))
        .any(|v| v.contains("201"))
}

fn needs_name(at: &Location) -> bool {
    spec::relation(at.kind.kind).is_none() && at.kind.unique != Unique::None
}

/// Objects merge member by member; lists and scalars are replaced.
pub fn merge(into: &mut Value, from: &Value) {
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
    let mut change = body_doc::<T>(ctx)?;
    if let Value::Object(o) = &mut change {
        o.remove("id");
    }
    let before = doc_of(&rec)?;
    let mut doc = before.clone();
    // A relation's member keeps only the attachment's own members; the rest belongs to the
    // object it attaches.
    if let Some(rel) = spec::relation(at.kind.kind) {
        spec::keep_own(rel, &mut change);
    }
    merge(&mut doc, &change);
    rules::prepare_update(ctx, at, &before, &mut doc, &change).await?;
    vireo_model::from_json_value::<T>(&doc).map_err(ApiError::from_codec)?;
    let kind = at.kind.kind;
    let mut tx = ctx.engine.store.begin().await?;
    rules::in_tx_update(&mut tx, ctx, at, &before, &mut doc).await?;
    index::update(&mut tx, &rec, &doc, Some(rec.generation))
        .await
        .map_err(|e| index::conflict(e, "update", kind, &doc))?;
    index::after_write(&mut tx, kind, &api_id(&rec, &doc), Some(&before), &doc).await?;
    events::changed(&mut tx, ctx, at, events::Verb::Update, &doc, Some(&before)).await?;
    tx.commit().await?;
    rules::after_update(ctx, at, &before, &doc).await?;
    let rec = fetch(ctx, at, id).await?;
    let mut v: Vec<T> = present_all(ctx, at, std::slice::from_ref(&rec), &[]).await?;
    Ok(ctx.ok(StatusCode::OK, &v.remove(0)))
}

async fn remove(ctx: &Ctx<'_>, at: &Location, id: &str) -> ApiResult<Response> {
    let rec = fetch(ctx, at, id).await?;
    let doc = doc_of(&rec)?;
    rules::check_remove(ctx, at, &doc).await?;
    let api = api_id(&rec, &doc);
    let mut notes = Value::Null;
    let mut tx = ctx.engine.store.begin().await?;
    rules::in_tx_remove(&mut tx, ctx, at, &doc, &mut notes).await?;
    cascade(&mut tx, at.kind.kind, &api).await?;
    tx.delete(at.kind.kind, &rec.id).await?;
    index::after_remove(&mut tx, at.kind.kind, &rec, &doc).await?;
    events::changed(&mut tx, ctx, at, events::Verb::Remove, &doc, None).await?;
    tx.commit().await?;
    rules::after_remove(ctx, at, &doc, &notes).await?;
    let done = Action {
        status: Some("complete".into()),
        ..Default::default()
    };
    Ok(ctx.ok(StatusCode::OK, &done))
}

/// What goes with an object: its sub-collections (recursively), the relations that attach
/// it elsewhere, and the permissions given on it.
pub(super) async fn cascade(tx: &mut vireo_store::Tx, kind: &str, id: &str) -> ApiResult<()> {
    let children: Vec<&'static str> = KINDS
        .iter()
        .filter(|k| {
            k.kind
                .strip_prefix(kind)
                .map(|r| r.starts_with('/') && !r[1..].contains('/'))
                .unwrap_or(false)
        })
        .map(|k| k.kind)
        .collect();
    for child in children {
        for r in tx
            .list(child, &Query::new(Filter::ParentIs(id.to_string())))
            .await?
        {
            let cdoc = doc_of(&r)?;
            let cid = api_id(&r, &cdoc);
            Box::pin(cascade(tx, child, &cid)).await?;
            tx.delete(child, &r.id).await?;
        }
    }
    for rel in spec::RELATIONS.iter().filter(|r| r.target == kind) {
        for r in tx
            .list(rel.kind, &Query::new(Filter::eq(index::TARGET, id)))
            .await?
        {
            tx.delete(rel.kind, &r.id).await?;
            let rdoc = doc_of(&r)?;
            index::after_remove(tx, rel.kind, &r, &rdoc).await?;
        }
    }
    for r in tx
        .list("permissions", &Query::new(views::permissions_on(kind, id)))
        .await?
    {
        tx.delete("permissions", &r.id).await?;
    }
    Ok(())
}
