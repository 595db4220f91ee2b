//! Jobs with steps for long work, as oVirt shows them at `/jobs`: a job `started` with an
//! `executing` step when the work starts, `finished` (or `failed`) with its end time when it
//! ends. Jobs carry the request's correlation id (indexed, not in the document) so that
//! clients find them with `/jobs?search=correlation_id=X`, as Ansible does.

use super::events::Who;
use super::{crud, index};
use crate::api::fault::ApiResult;
use serde_json::{json, Value};
use vireo_store::{AttrValue, Filter, Query, Store, Tx};

pub const CORRELATION_ATTR: &str = "correlation_id";

/// A job the engine runs, and its one step.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub step: String,
}

fn correlation(who: &Who) -> Vec<(String, AttrValue)> {
    who.correlation_id
        .iter()
        .map(|c| (CORRELATION_ATTR.to_string(), AttrValue::Text(c.clone())))
        .collect()
}

/// Writes a started job with an executing step, in the caller's transaction.
pub async fn begin(tx: &mut Tx, who: &Who, description: &str, step: &str) -> ApiResult<Job> {
    let now = vireo_store::now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let mut job = json!({
        "id": id,
        "description": description,
        "status": "started",
        "start_time": now,
        "last_updated": now,
        "external": "false",
        "auto_cleared": "true",
    });
    if !who.user_id.is_empty() {
        job["owner"] = json!({ "id": who.user_id });
    }
    let extra = correlation(who);
    index::insert(tx, "jobs", &id, &job, None, &extra).await?;
    let sid = uuid::Uuid::new_v4().to_string();
    let s = json!({
        "id": sid,
        "description": step,
        "type": "executing",
        "number": "0",
        "status": "started",
        "start_time": now,
        "external": "false",
        "job": { "id": id },
    });
    index::insert(tx, "jobs/steps", &sid, &s, Some(&id), &extra).await?;
    Ok(Job { id, step: sid })
}

/// Ends a job and its open steps: `finished` or `failed`.
pub async fn end(tx: &mut Tx, job: &str, ok: bool) -> ApiResult<()> {
    let now = vireo_store::now_ms();
    let status = if ok { "finished" } else { "failed" };
    for s in tx
        .list("jobs/steps", &Query::new(Filter::ParentIs(job.to_string())))
        .await?
    {
        let mut d = crud::doc_of(&s)?;
        if d.get("status").and_then(Value::as_str) == Some("started") {
            d["status"] = json!(status);
            d["end_time"] = json!(now);
            index::update(tx, &s, &d, None).await?;
        }
    }
    if let Some(j) = tx.get("jobs", job).await? {
        let mut d = crud::doc_of(&j)?;
        d["status"] = json!(status);
        d["end_time"] = json!(now);
        d["last_updated"] = json!(now);
        index::update(tx, &j, &d, None).await?;
    }
    Ok(())
}

/// Ends a job in its own transaction (background work).
pub async fn end_in(store: &Store, job: &str, ok: bool) -> ApiResult<()> {
    let mut tx = store.begin().await?;
    end(&mut tx, job, ok).await?;
    tx.commit().await?;
    Ok(())
}
