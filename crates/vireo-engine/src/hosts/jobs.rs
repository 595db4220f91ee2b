//! Jobs with steps for long host and VM work, as oVirt shows them under `/jobs`: the job
//! (`Launching VM myvm`) is `started` with an `Executing` step, and both become `finished`
//! or `failed` when the work ends. Clients find them by correlation id (`/jobs?search=…`),
//! so the job record indexes it as the attribute `correlation_id` (the Job type has no
//! member for it).

use super::docs::{self, to_doc};
use vireo_model as m;
use vireo_store::{AttrValue, StoreError, Tx};

pub const KIND: &str = "jobs";
pub const STEPS: &str = "jobs/steps";

/// A job and its one step, to be ended later by id.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub job_id: String,
    pub step_id: String,
}

/// Inserts a `started` job with an `Executing` step.
pub async fn start(tx: &mut Tx, description: &str, user_id: Option<&str>, correlation_id: Option<&str>) -> Result<JobRef, StoreError> {
    let job_id = uuid::Uuid::new_v4().to_string();
    let step_id = uuid::Uuid::new_v4().to_string();
    let now = docs::date(docs::now_ms());
    let job = m::Job {
        id: Some(job_id.clone()),
        description: Some(description.to_string()),
        status: Some(m::JobStatus::Started),
        start_time: Some(now),
        last_updated: Some(now),
        external: Some(false),
        auto_cleared: Some(true),
        owner: user_id.map(|u| {
            Box::new(m::User {
                id: Some(u.to_string()),
                ..Default::default()
            })
        }),
        ..Default::default()
    };
    let mut w = docs::write_of::<m::Job>(KIND, &job_id, &to_doc(&job), None);
    if let Some(c) = correlation_id {
        w.attrs.push(("correlation_id".into(), AttrValue::Text(c.to_string())));
    }
    tx.insert(&w).await?;
    let step = m::Step {
        id: Some(step_id.clone()),
        description: Some("Executing".into()),
        r#type: Some(m::StepEnum::Executing),
        number: Some(0),
        status: Some(m::StepStatus::Started),
        start_time: Some(now),
        external: Some(false),
        job: Some(Box::new(m::Job {
            id: Some(job_id.clone()),
            ..Default::default()
        })),
        ..Default::default()
    };
    tx.insert(&docs::write_of::<m::Step>(STEPS, &step_id, &to_doc(&step), Some(&job_id)))
        .await?;
    Ok(JobRef { job_id, step_id })
}

/// Ends the job and its step: `finished`, or `failed`.
pub async fn end(tx: &mut Tx, job: &JobRef, ok: bool) -> Result<(), StoreError> {
    let now = docs::now_ms();
    let (job_status, step_status) = if ok { ("finished", "finished") } else { ("failed", "failed") };
    // The correlation id is an attribute outside the document: keep it on rewrite.
    let attrs = tx.get_attrs(KIND, &job.job_id).await?;
    if let Some(rec) = tx.get(KIND, &job.job_id).await? {
        let mut doc = docs::parse(&rec);
        let o = docs::obj(&mut doc);
        o.insert("status".into(), job_status.into());
        o.insert("end_time".into(), now.into());
        o.insert("last_updated".into(), now.into());
        let mut w = docs::write_of::<m::Job>(KIND, &rec.id, &doc, None);
        w.attrs.extend(attrs.into_iter().filter(|(k, _)| k == "correlation_id"));
        tx.update(&w, None).await?;
    }
    docs::update_in::<m::Step, _>(tx, STEPS, &job.step_id, |doc| {
        let o = docs::obj(doc);
        o.insert("status".into(), step_status.into());
        o.insert("end_time".into(), now.into());
    })
    .await?;
    Ok(())
}
