//! Host and VM actions: routing, the `<action>` body, and the answer oVirt gives
//! (`<action><status>complete</status><job/><vm/></action>`, or 202 `pending` with `async`
//! or `Expect: 202-accepted`).

use super::{consoles, devices, host_actions, snapshots, vm_runtime};
use crate::api::fault::{ApiError, ApiResult};
use crate::api::Ctx;
use crate::inventory::Location;
use axum::http::StatusCode;
use axum::response::Response;
use vireo_model as m;

pub async fn dispatch(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    let Some(id) = at.id.as_deref() else {
        return Ok(None);
    };
    let r = match (at.kind.kind, action) {
        ("hosts", "activate") => host_actions::activate(ctx, id).await?,
        ("hosts", "deactivate") => host_actions::deactivate(ctx, id).await?,
        ("hosts", "refresh") => host_actions::refresh(ctx, id).await?,
        ("hosts", "fence") => host_actions::fence(ctx, id).await?,
        ("vms", "start") => vm_runtime::start(ctx, id).await?,
        ("vms", "stop") => vm_runtime::stop(ctx, id, vm_runtime::StopHow::Stop).await?,
        ("vms", "shutdown") => vm_runtime::stop(ctx, id, vm_runtime::StopHow::Shutdown).await?,
        ("vms", "reboot") => vm_runtime::reboot(ctx, id).await?,
        ("vms", "suspend") => vm_runtime::suspend(ctx, id).await?,
        ("vms", "migrate") => vm_runtime::migrate(ctx, id).await?,
        ("vms", "cancelmigration") => vm_runtime::cancel_migration(ctx, id).await?,
        ("vms", "ticket") => consoles::vm_ticket(ctx, id).await?,
        ("vms", "previewsnapshot") => snapshots::preview(ctx, id).await?,
        ("vms", "undosnapshot") => snapshots::undo(ctx, id).await?,
        ("vms", "commitsnapshot") => snapshots::commit(ctx, id).await?,
        ("vms/snapshots", "restore") => snapshots::restore(ctx, at).await?,
        ("vms/nics", "activate") => devices::nic_action(ctx, at, true).await?,
        ("vms/nics", "deactivate") => devices::nic_action(ctx, at, false).await?,
        _ => return Ok(None),
    };
    Ok(Some(r))
}

/// The action's body; an empty body is an empty action (`POST …/start` with nothing).
pub fn parse(ctx: &Ctx<'_>) -> ApiResult<m::Action> {
    if ctx.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(m::Action::default());
    }
    ctx.parse_body::<m::Action>()
}

/// `async=true` in the body or the query, or `Expect: 202-accepted`.
pub fn is_async(ctx: &Ctx<'_>, a: &m::Action) -> bool {
    let header = ctx
        .headers
        .get(axum::http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase().contains("202-accepted"))
        .unwrap_or(false);
    header || a.async_ == Some(true) || ctx.params.flag("async").ok().flatten() == Some(true)
}

/// What the action acted on, for the answer.
pub enum Target<'a> {
    Vm(&'a str),
    Host(&'a str),
}

/// The answer to a successful action: the request's action echoed with its status, the job
/// and a reference to the entity.
pub fn answer(ctx: &Ctx<'_>, mut a: m::Action, job: Option<&str>, target: Target<'_>) -> Response {
    let pending = is_async(ctx, &a);
    a.status = Some(if pending {
        "pending".into()
    } else {
        "complete".into()
    });
    if pending {
        a.async_ = Some(true);
    }
    if let Some(j) = job {
        a.job = Some(Box::new(m::Job {
            id: Some(j.to_string()),
            href: Some(format!("/ovirt-engine/api/jobs/{j}")),
            ..Default::default()
        }));
    }
    match target {
        Target::Vm(id) => {
            a.vm = Some(Box::new(m::Vm {
                id: Some(id.to_string()),
                href: Some(format!("/ovirt-engine/api/vms/{id}")),
                ..Default::default()
            }))
        }
        Target::Host(id) => {
            a.host = Some(Box::new(m::Host {
                id: Some(id.to_string()),
                href: Some(format!("/ovirt-engine/api/hosts/{id}")),
                ..Default::default()
            }))
        }
    }
    // Sensitive input is not echoed.
    a.root_password = None;
    ctx.ok(
        if pending {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        &a,
    )
}

/// oVirt's validation fault: `Cannot {action} {type}. {why}` as a 409.
pub fn refuse(action: &str, ty: &str, why: &str) -> ApiError {
    ApiError::conflict(format!("Cannot {action} {ty}. {why}"))
}
