//! Actions on inventory objects (storage domains, disks, templates, …).

use crate::api::fault::ApiResult;
use crate::api::Ctx;
use crate::inventory::Location;
use axum::response::Response;

/// `None`: not implemented yet, the caller answers 501 naming the method.
pub async fn dispatch(_ctx: &Ctx<'_>, _at: &Location, _action: &str) -> ApiResult<Option<Response>> {
    Ok(None)
}
