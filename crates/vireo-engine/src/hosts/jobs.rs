//! Jobs with steps for long host and VM work, as oVirt shows them under `/jobs`
//! (`Launching VM myvm`, `started` with an `Executing` step, then `finished` or `failed`).
//! The records are the inventory's (`inventory::jobs`): the same shape, and the correlation
//! id indexed for `/jobs?search=correlation_id=…`.

use super::docs::store_err;
use crate::inventory::events::Who;
use crate::inventory::jobs as inventory_jobs;
use vireo_store::{StoreError, Tx};

/// A job and its one step, to be ended later.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub job_id: String,
    pub step_id: String,
}

/// Inserts a `started` job with an `Executing` step.
pub async fn start(
    tx: &mut Tx,
    description: &str,
    user_id: Option<&str>,
    correlation_id: Option<&str>,
) -> Result<JobRef, StoreError> {
    let who = Who {
        user_id: user_id.unwrap_or_default().to_string(),
        user_name: String::new(),
        correlation_id: correlation_id.map(str::to_string),
    };
    let job = inventory_jobs::begin(tx, &who, description, "Executing")
        .await
        .map_err(store_err)?;
    Ok(JobRef {
        job_id: job.id,
        step_id: job.step,
    })
}

/// Ends the job and its step: `finished`, or `failed`.
pub async fn end(tx: &mut Tx, job: &JobRef, ok: bool) -> Result<(), StoreError> {
    inventory_jobs::end(tx, &job.job_id, ok)
        .await
        .map_err(store_err)
}
