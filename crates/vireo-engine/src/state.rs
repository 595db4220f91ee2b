//! What every request handler shares.

use crate::auth::Auth;
use std::sync::Arc;
use vireo_pki::Pki;
use vireo_store::Store;

pub struct Engine {
    pub store: Store,
    pub auth: Arc<Auth>,
    pub pki: Pki,
    /// Stable per data folder: `product_info.instance_id`.
    pub instance_id: String,
}
