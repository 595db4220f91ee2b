//! External jobs and steps (`POST /jobs`, `/jobs/{id}/steps`): what another system reports
//! through the engine; they end with `end` (succeeded or not), and `clear` hands a job to the
//! engine's clean-up.

use super::common::*;
use super::Adding;
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::jobs::CORRELATION_ATTR;
use crate::inventory::{crud, index, messages, Location};
use axum::response::Response;
use serde_json::{json, Value};
use vireo_store::{AttrValue, Filter};

pub async fn prepare_add(ctx: &Ctx<'_>, a: &mut Adding) -> ApiResult<()> {
    if str_at(&a.doc, "description").unwrap_or_default().is_empty() {
        return Err(ApiError::incomplete("Job [description] required for add"));
    }
    let now = vireo_store::now_ms();
    let doc = &mut a.doc;
    set(doc, "status", json!("started"));
    set(doc, "external", s(true));
    default(doc, "auto_cleared", s(true));
    set(doc, "start_time", json!(now));
    set(doc, "last_updated", json!(now));
    set(doc, "owner", reference(&ctx.principal.user_id));
    if let Value::Object(o) = doc {
        o.remove("end_time");
        o.remove("steps");
    }
    if let Some(c) = &ctx.params.correlation_id {
        a.extra_attrs
            .push((CORRELATION_ATTR.into(), AttrValue::Text(c.clone())));
    }
    Ok(())
}

pub async fn prepare_add_step(ctx: &Ctx<'_>, at: &Location, a: &mut Adding) -> ApiResult<()> {
    let job = at.parent_id().unwrap_or_default().to_string();
    let jrec = ctx
        .engine
        .store
        .get("jobs", &job)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job with id '{job}'")))?;
    let jdoc = crud::doc_of(&jrec)?;
    if bool_at(&jdoc, "external") != Some(true) {
        return Err(messages::invalid(
            "add",
            "jobs/steps",
            "Steps can be added to external jobs only.",
        ));
    }
    if str_at(&jdoc, "status") != Some("started") {
        return Err(messages::conflict(
            "add",
            "jobs/steps",
            "The Job has ended.",
        ));
    }
    if str_at(&a.doc, "description").unwrap_or_default().is_empty()
        || str_at(&a.doc, "type").is_none()
    {
        return Err(ApiError::incomplete(
            "Step [description, type] required for add",
        ));
    }
    if let Some(p) = a.doc.get("parent_step").cloned().filter(|p| p.is_object()) {
        let pid = str_at(&p, "id").unwrap_or_default().to_string();
        let ok = ctx
            .engine
            .store
            .get("jobs/steps", &pid)
            .await?
            .map(|r| r.parent_id.as_deref() == Some(job.as_str()))
            .unwrap_or(false);
        if !ok {
            return Err(messages::entity_not_found("Step", "id", &pid));
        }
    }
    let number = ctx
        .engine
        .store
        .count("jobs/steps", &Filter::ParentIs(job.clone()))
        .await?;
    let doc = &mut a.doc;
    set(doc, "job", reference(&job));
    set(doc, "status", json!("started"));
    set(doc, "external", s(true));
    set(doc, "number", s(number));
    set(doc, "start_time", json!(vireo_store::now_ms()));
    if let Value::Object(o) = doc {
        o.remove("end_time");
    }
    if let Some(c) = &ctx.params.correlation_id {
        a.extra_attrs
            .push((CORRELATION_ATTR.into(), AttrValue::Text(c.clone())));
    }
    Ok(())
}

/// `end` of a job or step, and `clear` of a job.
pub async fn action(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    use crate::inventory::actions::{body, done};
    let kind = at.kind.kind;
    let id = at.id.clone().unwrap_or_default();
    if !matches!(
        (kind, action),
        ("jobs", "end") | ("jobs", "clear") | ("jobs/steps", "end")
    ) {
        return Ok(None);
    }
    let b = body(ctx)?;
    let rec = match at.parent_id() {
        Some(_) => crud::fetch(ctx, at, &id).await?,
        None => ctx
            .engine
            .store
            .get(kind, &id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no job with id '{id}'")))?,
    };
    let mut doc = crud::doc_of(&rec)?;
    let noun = if kind == "jobs" { "jobs" } else { "jobs/steps" };
    if action == "clear" {
        set(&mut doc, "auto_cleared", s(true));
    } else {
        let force = b.force == Some(true);
        if bool_at(&doc, "external") != Some(true) && !force {
            return Err(messages::invalid(
                "end",
                noun,
                "Only external jobs and steps can be ended (unless forced).",
            ));
        }
        if str_at(&doc, "status") != Some("started") {
            return Err(messages::conflict("end", noun, "It has already ended."));
        }
        let ok = b.succeeded.unwrap_or(true);
        let now = vireo_store::now_ms();
        let status = match (kind, ok) {
            (_, true) => "finished",
            ("jobs", false) => "failed",
            _ => "failed",
        };
        set(&mut doc, "status", json!(status));
        set(&mut doc, "end_time", json!(now));
        if kind == "jobs" {
            set(&mut doc, "last_updated", json!(now));
        }
    }
    let mut tx = ctx.engine.store.begin().await?;
    index::update(&mut tx, &rec, &doc, Some(rec.generation)).await?;
    // Ending a job ends its open steps.
    if kind == "jobs" && action == "end" {
        let ok = str_at(&doc, "status") == Some("finished");
        crate::inventory::jobs::end(&mut tx, &id, ok).await?;
    }
    tx.commit().await?;
    done(ctx, b, None).map(Some)
}
