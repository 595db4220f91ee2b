#![recursion_limit = "1024"]
//! The vireo engine: the oVirt REST API v4 (XML and JSON) over the store, with oVirt's
//! authentication, the bootstrap inventory and the service tree routed from the model.

mod actions;
pub mod api;
pub mod auth;
pub mod bootstrap;
pub mod hosts;
pub mod inventory;
mod server;
mod state;
pub mod transfer;

pub use server::{serve, serve_with, ServeConfig, ServeOptions};
pub use state::Engine;
