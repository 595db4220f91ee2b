//! What every request handler shares.

use crate::auth::Auth;
use std::sync::Arc;
use vireo_pki::Pki;
use vireo_store::Store;

pub struct Engine {
    pub store: Store,
    pub auth: Arc<Auth>,
    /// Shared with the host tasks (enrollment signs agents' certificates with it).
    pub pki: Arc<Pki>,
    /// Stable per data folder: `product_info.instance_id`.
    pub instance_id: String,
    /// Hosts and what runs on them: agent clients, the monitor's view, VM runtime state.
    pub hosts: Arc<crate::hosts::Hosts>,
}
