//! What the engine asks of VMs: start, stop, shutdown, reboot, pause, suspend and restore,
//! live migration, consoles, hot-plug — and volume work that must go through a running
//! QEMU (live merge, live resize).

use std::time::Duration;

use vireo_agent_proto::{AgentError, ErrorCode};

use super::qmp::QmpError;
use super::vm::VmHandle;

fn err(code: ErrorCode, msg: impl Into<String>) -> AgentError {
    AgentError::new(code, msg)
}

fn qmp_err(what: &str) -> impl Fn(QmpError) -> AgentError + '_ {
    move |e| match e {
        QmpError::Closed(_) => err(
            ErrorCode::WrongState,
            format!("{what}: the VM is not running"),
        ),
        e => err(ErrorCode::Failed, format!("{what}: {e}")),
    }
}

fn wrong_state(h: &VmHandle, what: &str) -> AgentError {
    err(
        ErrorCode::WrongState,
        format!("cannot {what} VM {}: it is {:?}", h.id, h.state()),
    )
}

/// Migration and save/restore bandwidth: unlimited in practice. QEMU's default (32 MiB/s)
/// would make a 256 MiB guest take 8 s on loopback.
const MIGRATION_BANDWIDTH: u64 = 10 << 30;
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    Boot,
    /// A migration destination: waits for the state from the source.
    Incoming,
}

mod hotplug;
mod lifecycle;
mod migration;
mod volumes;

pub use lifecycle::{adopt, create, operation};
pub use volumes::volume;
