//! Hosts and what runs on them: enrollment of agents, monitoring, VM lifecycle, scheduling.
//! (Being built for issue 4.)

use crate::api::fault::ApiResult;
use crate::api::Ctx;
use crate::inventory::Location;
use axum::response::Response;
use serde_json::Value;

pub async fn prepare_add(_ctx: &Ctx<'_>, _doc: &mut Value) -> ApiResult<()> {
    Ok(())
}

pub async fn after_add(_ctx: &Ctx<'_>, _id: &str, _doc: &Value) -> ApiResult<()> {
    Ok(())
}

/// `None`: not implemented yet, the caller answers 501 naming the method.
pub async fn action(_ctx: &Ctx<'_>, _at: &Location, _action: &str) -> ApiResult<Option<Response>> {
    Ok(None)
}
