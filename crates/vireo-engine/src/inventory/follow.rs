//! `follow=nics,template,disk_attachments.disk`: linked collections and referenced objects
//! put inline, as oVirt's LinkFollower does. Each followed link costs its own reads, so this
//! is not for large lists (oVirt's users know `follow` as the expensive path too).

use super::{crud, resolve_collection, spec, Location};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::{render, Ctx};
use serde_json::{json, Value};
use vireo_model::meta::{self, ServiceDef, TypeDef, TypeRef};
use vireo_store::{Filter, Query};

/// Names are matched ignoring case and underscores.
fn same(a: &str, b: &str) -> bool {
    a.replace('_', "").eq_ignore_ascii_case(&b.replace('_', ""))
}

pub async fn follow(
    ctx: &Ctx<'_>,
    at: &Location,
    doc: &mut Value,
    t: &'static TypeDef,
    id: &str,
    href: &str,
    path: &str,
) -> ApiResult<()> {
    one(ctx, doc, t, at.kind.kind, id, href, at.entity, path, 0).await
}

#[allow(clippy::too_many_arguments)]
async fn one(
    ctx: &Ctx<'_>,
    doc: &mut Value,
    t: &'static TypeDef,
    kind: &str,
    id: &str,
    href: &str,
    service: Option<&'static ServiceDef>,
    path: &str,
    depth: usize,
) -> ApiResult<()> {
    if depth > 4 {
        return Err(ApiError::bad_request(format!(
            "'{path}' follows links too deep"
        )));
    }
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let Some(attr) = t
        .attributes
        .iter()
        .find(|a| a.link.map(|l| same(l, head)).unwrap_or(false) || same(a.xml, head))
    else {
        return Err(ApiError::bad_request(format!(
            "'{path}' is not a link of {} that can be followed",
            t.name
        )));
    };
    let TypeRef::Struct(target) = attr.ty else {
        return Err(ApiError::bad_request(format!(
            "'{head}' of {} is not a link",
            t.name
        )));
    };
    let tt = meta::type_def(target)
        .ok_or_else(|| ApiError::internal(format!("no model type {target}")))?;
    // A linked collection: the sub-collection of this object (or a view of another kind).
    let segment = attr.link.unwrap_or(attr.xml);
    let sub_path = format!("{kind}/{segment}");
    if let Some((k, view)) = resolve_collection(&sub_path) {
        let filter = match &view {
            Some(v) => v.filter(id),
            None => Filter::ParentIs(id.to_string()),
        };
        let recs = ctx.engine.store.list(k.kind, &Query::new(filter)).await?;
        let sub_svc = service.and_then(|e| e.locator(segment)).map(meta::service);
        let item_svc = sub_svc.and_then(|s| s.item).map(meta::service);
        let mut docs: Vec<(String, Value)> = Vec::with_capacity(recs.len());
        for r in &recs {
            let d = crud::doc_of(r)?;
            docs.push((crud::api_id(r, &d), d));
        }
        if let Some(rel) = spec::relation(k.kind) {
            let ids: Vec<String> = docs.iter().map(|(i, _)| i.clone()).collect();
            let targets = ctx
                .engine
                .store
                .list(rel.target, &Query::new(Filter::IdIn(ids)))
                .await?;
            for (tid, d) in docs.iter_mut() {
                if let Some(tr) = targets.iter().find(|x| &x.id == tid) {
                    *d = spec::overlay(rel, &crud::doc_of(tr)?, d);
                }
            }
        }
        let mut items = Vec::with_capacity(docs.len());
        for (iid, mut d) in docs {
            let ihref = format!("{href}/{segment}/{iid}");
            render::decorate(&mut d, tt, &ihref, item_svc);
            if !rest.is_empty() {
                Box::pin(one(
                    ctx,
                    &mut d,
                    tt,
                    k.kind,
                    &iid,
                    &ihref,
                    item_svc,
                    rest,
                    depth + 1,
                ))
                .await?;
            }
            items.push(d);
        }
        if let Value::Object(o) = doc {
            o.insert(
                attr.xml.to_string(),
                json!({ attr.item.unwrap_or(tt.xml): items }),
            );
        }
        return Ok(());
    }
    // A reference to a top-level object: replaced by the whole object.
    if !attr.list {
        let Some(coll) = render::collection_of(target) else {
            return Err(ApiError::not_implemented(format!(
                "following '{path}' of {} is not implemented yet",
                t.name
            )));
        };
        let Some(rid) = doc
            .get(attr.xml)
            .and_then(|r| r.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Ok(());
        };
        let Some(r) = ctx.engine.store.get(coll, &rid).await? else {
            return Ok(());
        };
        let mut d = crud::doc_of(&r)?;
        let rhref = format!("/ovirt-engine/api/{coll}/{rid}");
        let root = meta::service(meta::ROOT_SERVICE);
        let item_svc = root
            .locator(coll)
            .and_then(|s| meta::service(s).item)
            .map(meta::service);
        render::decorate(&mut d, tt, &rhref, item_svc);
        if !rest.is_empty() {
            Box::pin(one(
                ctx,
                &mut d,
                tt,
                coll,
                &rid,
                &rhref,
                item_svc,
                rest,
                depth + 1,
            ))
            .await?;
        }
        if let Value::Object(o) = doc {
            o.insert(attr.xml.to_string(), d);
        }
        return Ok(());
    }
    Err(ApiError::not_implemented(format!(
        "following '{path}' of {} is not implemented yet",
        t.name
    )))
}
