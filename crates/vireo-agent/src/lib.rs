//! The vireo host agent: what VDSM is to oVirt. It serves the engine the protocol of
//! [`vireo_agent_proto`] over HTTPS, mutually authenticated once the engine has enrolled it,
//! and drives a hypervisor through the [`Hypervisor`](vireo_agent_proto::Hypervisor) trait:
//! the simulation ([`simulate`], `--simulate`) or QEMU (issue 5, `src/qemu/`).
//!
//! - [`hosts`] starts one host, or many simulated ones in one process (`--hosts N`).
//! - [`server`] is a host's listener and routes; [`enroll`], [`identity`] and [`tls`] are how
//!   it comes to trust the engine and stays that way across restarts.
//! - [`client`] is the engine's side: enrollment, and `Hypervisor` over the wire.

pub mod client;
pub mod config;
pub mod enroll;
pub mod files;
pub mod hosts;
pub mod identity;
pub mod qemu;
pub mod server;
pub mod simulate;
pub mod tls;
pub mod transfer;

pub use client::{AgentClient, Timeouts};
pub use config::{AccelChoice, AgentConfig, HostContext};
pub use hosts::{host_dir, run, start, RunningAgent, RunningHost};
