//! Actions on inventory objects (storage domains, disks, jobs), and the shape every action
//! answer has: the request's `<action>` echoed, with `status` and the job when there is one.

use super::rules;
use super::Location;
use crate::api::fault::ApiResult;
use crate::api::Ctx;
use axum::http::StatusCode;
use axum::response::Response;
use vireo_model::{Action, Job};

/// Actions vireo's inventory implements, as (store kind, action path), for the coverage count.
pub const IMPLEMENTED: &[(&str, &str)] = &[
    ("disks", "copy"),
    ("disks", "move"),
    ("storagedomains", "isattached"),
    ("storagedomains", "updateovfstore"),
    ("datacenters/storagedomains", "activate"),
    ("datacenters/storagedomains", "deactivate"),
    ("jobs", "end"),
    ("jobs", "clear"),
    ("jobs/steps", "end"),
    ("imagetransfers", "finalize"),
    ("imagetransfers", "cancel"),
    ("imagetransfers", "pause"),
    ("imagetransfers", "resume"),
    ("imagetransfers", "extend"),
];

/// `None`: not implemented yet, the caller answers 501 naming the method.
pub async fn dispatch(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    match at.kind.kind {
        "disks" => rules::disks::action(ctx, at, action).await,
        "storagedomains" | "datacenters/storagedomains" => {
            rules::storage::action(ctx, at, action).await
        }
        "jobs" | "jobs/steps" => rules::jobs::action(ctx, at, action).await,
        "imagetransfers" => crate::transfer::action(ctx, at, action).await,
        _ => Ok(None),
    }
}

/// The action the client sent (an empty body is an empty action).
pub fn body(ctx: &Ctx<'_>) -> ApiResult<Action> {
    if ctx.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Action::default());
    }
    ctx.parse_body()
}

/// oVirt runs an action asynchronously unless its body says `<async>false</async>`.
pub fn is_async(_ctx: &Ctx<'_>, body: &Action) -> bool {
    body.async_ != Some(false)
}

/// The answer of an action that was done (or started): the echo, `complete`, the job.
pub fn done(ctx: &Ctx<'_>, mut body: Action, job: Option<&str>) -> ApiResult<Response> {
    body.status = Some("complete".into());
    if let Some(j) = job {
        body.job = Some(Box::new(Job {
            id: Some(j.to_string()),
            href: Some(format!("/ovirt-engine/api/jobs/{j}")),
            ..Default::default()
        }));
    }
    Ok(ctx.ok(StatusCode::OK, &body))
}
