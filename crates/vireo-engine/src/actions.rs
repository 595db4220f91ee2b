//! Actions (`POST …/{action}`), routed by the kind they act on: host and VM runtime actions to
//! `hosts`, the rest to the inventory.

use crate::api::fault::ApiResult;
use crate::api::Ctx;
use crate::inventory::Location;
use axum::response::Response;

pub async fn dispatch(ctx: &Ctx<'_>, at: &Location, action: &str) -> ApiResult<Option<Response>> {
    let kind = at.kind.kind;
    if kind == "hosts" || kind.starts_with("hosts/") || kind == "vms" || kind.starts_with("vms/") {
        return crate::hosts::action(ctx, at, action).await;
    }
    crate::inventory::actions::dispatch(ctx, at, action).await
}
