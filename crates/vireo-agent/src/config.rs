//! How an agent is started, and what each host's driver is given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use tokio::sync::watch;

/// `--accel`: how the QEMU driver runs guests. `Auto` means KVM when a probe guest really
/// runs under it, TCG otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    Kvm,
    Tcg,
    #[default]
    Auto,
}

impl FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            "auto" => Ok(AccelChoice::Auto),
            other => Err(format!("--accel must be kvm, tcg or auto, not {other:?}")),
        }
    }
}

/// `vireo agent`'s command line.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub data_dir: PathBuf,
    /// `ADDR:PORT`; with several hosts, host `i` listens on `PORT + i` (or an ephemeral port
    /// each when PORT is 0).
    pub listen: String,
    pub enroll_secret: String,
    pub simulate: bool,
    pub hosts: usize,
    pub accel: AccelChoice,
}

impl AgentConfig {
    pub fn simulated(
        data_dir: impl Into<PathBuf>,
        listen: impl Into<String>,
        enroll_secret: impl Into<String>,
    ) -> Self {
        AgentConfig {
            data_dir: data_dir.into(),
            listen: listen.into(),
            enroll_secret: enroll_secret.into(),
            simulate: true,
            hosts: 1,
            accel: AccelChoice::Auto,
        }
    }
}

/// What a host's driver (QEMU or the simulation) gets when the agent opens it.
#[derive(Debug, Clone)]
pub struct HostContext {
    /// 0 for a single host; `0..N` with `--hosts N`.
    pub index: usize,
    /// The host's own folder (the data dir, or `DATA_DIR/host-<i>`), already created, 0700.
    pub data_dir: PathBuf,
    /// Where this host's agent API listens (the bound address, real port).
    pub listen: SocketAddr,
    pub accel: AccelChoice,
    /// Stable across restarts of this data dir.
    pub machine_id: String,
    /// The engine's id for this host; `None` until enrolled, changes at re-enrollment.
    pub host_id: watch::Receiver<Option<String>>,
}
