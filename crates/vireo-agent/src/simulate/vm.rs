//! A simulated VM: oVirt's states, moved by time rather than by anyone waiting.
//!
//! Every state that is on its way somewhere ([`timed`]) names how long it lasts and where it
//! goes; reading a VM first [`SimVm::settle`]s it, replaying the transitions whose time has
//! come, each at its exact instant. So a VM reaches `up` 1.5 s after creation whether it is
//! read every 100 ms or once a minute, and no task or handler waits for it. The requests that
//! move a VM are in [`SimVm::apply`]: one table of which operation is allowed in which state.

use std::time::Duration;

use tokio::time::Instant;
use vireo_agent_proto::{
    AgentError, AgentResult, ConsoleInfo, ErrorCode, MigrationProgress, VmOperation, VmRuntime,
    VmSpec, VmState, VmStats,
};

use super::hardware::{fnv, wobble};

pub const LAUNCH: Duration = Duration::from_millis(500);
pub const BOOT: Duration = Duration::from_millis(1000);
pub const REBOOT: Duration = Duration::from_millis(1000);
pub const RESTORE: Duration = Duration::from_millis(1000);
pub const SAVE: Duration = Duration::from_millis(1000);
/// A guest that honours ACPI takes this long to power itself off.
pub const GUEST_SHUTDOWN: Duration = Duration::from_millis(1500);
pub const MIGRATION: Duration = Duration::from_millis(2000);
/// The destination comes up a little after the source has handed over.
const INCOMING_SLACK: Duration = Duration::from_millis(200);

/// Where a timed state goes, and why if that is down.
struct Next {
    after: Duration,
    state: VmState,
    exit: Option<(&'static str, String)>,
}

pub struct SimVm {
    pub spec: VmSpec,
    pub state: VmState,
    /// When `state` was entered (its exact instant, even when settled late).
    since: Instant,
    /// When the guest last started running, for uptime-driven statistics.
    booted: Instant,
    started_ms: i64,
    exit: Option<(String, String)>,
    shutdown_after: Duration,
    migration_to: Option<String>,
    seed: u64,
    pub console_ports: Vec<u16>,
    pub disks: Vec<String>,
    pub nics: Vec<String>,
    pub cdrom: Option<String>,
    /// The memory image a suspend wrote.
    pub saved_to: Option<String>,
    ticket: Option<(String, Instant)>,
}

/// Whether a VM in `state` holds memory and consoles on the host.
pub fn holds_resources(state: VmState) -> bool {
    !matches!(state, VmState::Down | VmState::Suspended)
}

fn wrong_state(id: &str, state: VmState, what: &str) -> AgentError {
    AgentError::new(
        ErrorCode::WrongState,
        format!("VM {id} is {state:?}: cannot {what}"),
    )
}

fn timed(vm: &SimVm) -> Option<Next> {
    let next = |after, state| {
        Some(Next {
            after,
            state,
            exit: None,
        })
    };
    match vm.state {
        VmState::WaitForLaunch if vm.spec.start_paused => next(LAUNCH, VmState::Paused),
        VmState::WaitForLaunch => next(LAUNCH, VmState::PoweringUp),
        VmState::PoweringUp => next(BOOT, VmState::Up),
        VmState::RestoringState => next(RESTORE, VmState::Up),
        VmState::RebootInProgress => next(REBOOT, VmState::Up),
        VmState::MigratingTo => next(MIGRATION + INCOMING_SLACK, VmState::Up),
        VmState::PoweringDown => {
            let message = if vm.shutdown_after < GUEST_SHUTDOWN {
                format!(
                    "the guest ignored the ACPI shutdown: powered off after {} s",
                    vm.shutdown_after.as_secs()
                )
            } else {
                "the guest shut down".to_string()
            };
            Some(Next {
                after: vm.shutdown_after,
                state: VmState::Down,
                exit: Some(("shutdown", message)),
            })
        }
        VmState::SavingState => Some(Next {
            after: SAVE,
            state: VmState::Suspended,
            exit: Some(("suspended", "memory state saved".into())),
        }),
        VmState::MigratingFrom => Some(Next {
            after: MIGRATION,
            state: VmState::Down,
            exit: Some((
                "migrated",
                format!("migrated to {}", vm.migration_to.as_deref().unwrap_or("?")),
            )),
        }),
        _ => None,
    }
}

impl SimVm {
    /// A VM starting now: launching, restoring a saved state, or waiting for a migration.
    pub fn new(spec: VmSpec, state: VmState, now: Instant, console_ports: Vec<u16>) -> SimVm {
        let seed = fnv(spec.id.as_bytes());
        SimVm {
            disks: spec.disks.iter().map(|d| d.id.clone()).collect(),
            nics: spec.nics.iter().map(|n| n.id.clone()).collect(),
            cdrom: spec.cdrom.clone(),
            spec,
            state,
            since: now,
            booted: now,
            started_ms: wall_ms(),
            exit: None,
            shutdown_after: GUEST_SHUTDOWN,
            migration_to: None,
            seed,
            console_ports,
            saved_to: None,
            ticket: None,
        }
    }

    /// Replays every timed transition due by `now`.
    pub fn settle(&mut self, now: Instant) {
        while let Some(next) = timed(self) {
            let at = self.since + next.after;
            if now < at {
                break;
            }
            self.enter(next.state, at);
            if let Some((reason, message)) = next.exit {
                self.exit = Some((reason.into(), message));
            }
        }
    }

    fn enter(&mut self, state: VmState, at: Instant) {
        if state == VmState::Up
            && matches!(
                self.state,
                VmState::PoweringUp | VmState::RestoringState | VmState::MigratingTo
            )
        {
            self.booted = at;
        }
        if state == VmState::Up {
            self.migration_to = None;
        }
        if !holds_resources(state) {
            self.ticket = None;
        }
        self.state = state;
        self.since = at;
    }

    /// Applies an engine request at `now` (the VM already settled). `Destroy` of a VM that is
    /// already down is handled by the caller, which forgets it.
    pub fn apply(&mut self, op: &VmOperation, now: Instant, own: &str) -> AgentResult<()> {
        use VmState::*;
        let id = self.spec.id.clone();
        let state = self.state;
        let running = matches!(
            state,
            Up | Paused | PoweringUp | RebootInProgress | MigratingFrom
        );
        match op {
            VmOperation::Destroy => {
                self.enter(Down, now);
                self.exit = Some(("user".into(), "powered off by the engine".into()));
            }
            VmOperation::Shutdown { timeout_s } => match state {
                PoweringDown => {}
                Up | PoweringUp | RebootInProgress => {
                    self.shutdown_after =
                        GUEST_SHUTDOWN.min(Duration::from_secs(u64::from(*timeout_s)));
                    self.enter(PoweringDown, now);
                }
                _ => return Err(wrong_state(&id, state, "shut down")),
            },
            VmOperation::Reboot => match state {
                Up => self.enter(RebootInProgress, now),
                _ => return Err(wrong_state(&id, state, "reboot")),
            },
            VmOperation::Pause => match state {
                Paused => {}
                Up | PoweringUp => self.enter(Paused, now),
                _ => return Err(wrong_state(&id, state, "pause")),
            },
            VmOperation::Resume => match state {
                Paused => self.enter(Up, now),
                _ => return Err(wrong_state(&id, state, "resume")),
            },
            VmOperation::Suspend { path } => match state {
                Up | Paused => {
                    self.saved_to = Some(path.clone());
                    self.enter(SavingState, now);
                }
                _ => return Err(wrong_state(&id, state, "suspend")),
            },
            VmOperation::Migrate {
                destination_address,
                destination_port,
            } => {
                let destination = format!("{destination_address}:{destination_port}");
                if destination_address.is_empty() || *destination_port == 0 {
                    return Err(AgentError::new(
                        ErrorCode::InvalidRequest,
                        "a migration needs a destination address and port",
                    ));
                }
                if destination == own {
                    return Err(AgentError::new(
                        ErrorCode::InvalidRequest,
                        "cannot migrate a VM to the host it runs on",
                    ));
                }
                match state {
                    Up | Paused => {
                        self.migration_to = Some(destination);
                        self.enter(MigratingFrom, now);
                    }
                    _ => return Err(wrong_state(&id, state, "migrate")),
                }
            }
            VmOperation::PrepareIncoming { .. } => {
                return Err(wrong_state(
                    &id,
                    state,
                    "receive a migration: it exists here",
                ))
            }
            VmOperation::CancelMigration => match state {
                MigratingFrom => {
                    self.migration_to = None;
                    self.enter(Up, now);
                }
                // The destination's half: the incoming VM is dropped.
                MigratingTo => {
                    self.enter(Down, now);
                    self.exit = Some(("error".into(), "incoming migration canceled".into()));
                }
                _ => {
                    return Err(wrong_state(
                        &id,
                        state,
                        "cancel a migration: none is running",
                    ))
                }
            },
            VmOperation::SetTicket {
                protocol,
                password,
                ttl_s,
            } => {
                if !running {
                    return Err(wrong_state(&id, state, "set a console ticket"));
                }
                if !self.spec.graphics.iter().any(|g| &g.protocol == protocol) {
                    return Err(AgentError::new(
                        ErrorCode::InvalidRequest,
                        format!("VM {id} has no {protocol} console"),
                    ));
                }
                self.ticket = Some((
                    password.clone(),
                    now + Duration::from_secs(u64::from(*ttl_s)),
                ));
            }
            VmOperation::HotplugDisk { disk } => {
                self.require_running(running, "hot-plug a disk")?;
                if self.disks.len() >= super::MAX_DISKS {
                    return Err(AgentError::new(
                        ErrorCode::ResourceExhausted,
                        "no free disk slot",
                    ));
                }
                if self.disks.contains(&disk.id) {
                    return Err(AgentError::new(
                        ErrorCode::InvalidRequest,
                        format!("disk {} is already plugged", disk.id),
                    ));
                }
                self.disks.push(disk.id.clone());
            }
            VmOperation::HotunplugDisk { id: disk } => {
                self.require_running(running, "hot-unplug a disk")?;
                remove(&mut self.disks, disk, "disk")?;
            }
            VmOperation::HotplugNic { nic } => {
                self.require_running(running, "hot-plug a NIC")?;
                if self.nics.len() >= super::MAX_NICS {
                    return Err(AgentError::new(
                        ErrorCode::ResourceExhausted,
                        "no free NIC slot",
                    ));
                }
                if self.nics.contains(&nic.id) {
                    return Err(AgentError::new(
                        ErrorCode::InvalidRequest,
                        format!("NIC {} is already plugged", nic.id),
                    ));
                }
                self.nics.push(nic.id.clone());
            }
            VmOperation::HotunplugNic { id: nic } => {
                self.require_running(running, "hot-unplug a NIC")?;
                remove(&mut self.nics, nic, "NIC")?;
            }
            VmOperation::ChangeCdrom { path } => {
                self.require_running(running, "change the CD")?;
                self.cdrom = path.clone();
            }
        }
        Ok(())
    }

    fn require_running(&self, running: bool, what: &str) -> AgentResult<()> {
        if running {
            Ok(())
        } else {
            Err(wrong_state(&self.spec.id, self.state, what))
        }
    }

    /// How long the VM has been in its current state.
    pub fn in_state_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    pub fn stats(&self, now: Instant) -> VmStats {
        let t = now.saturating_duration_since(self.booted).as_secs_f64();
        let w = wobble(self.seed, t);
        let cpu_percent = match self.state {
            VmState::PoweringUp | VmState::RestoringState => 60.0 + 30.0 * w,
            VmState::Up | VmState::MigratingFrom => 3.0 + 25.0 * w,
            VmState::RebootInProgress | VmState::PoweringDown | VmState::SavingState => {
                20.0 + 20.0 * w
            }
            _ => 0.0,
        };
        if !holds_resources(self.state) || self.state == VmState::WaitForLaunch {
            return VmStats::default();
        }
        // A booting guest touches more memory over its first minute, then hovers.
        let ramp = (t / 60.0).min(1.0);
        let memory_used =
            (self.spec.memory_bytes as f64 * (0.15 + 0.45 * ramp) * (0.95 + 0.05 * w)) as u64;
        let rate = 1.0 + (self.seed % 7) as f64 / 7.0;
        VmStats {
            cpu_percent: (cpu_percent * 100.0).round() / 100.0,
            memory_used,
            disk_read_bytes: (t * rate * 2.0 * 1048576.0) as u64,
            disk_write_bytes: (t * rate * 0.5 * 1048576.0) as u64,
            net_rx_bytes: (t * rate * 100.0 * 1024.0) as u64,
            net_tx_bytes: (t * rate * 50.0 * 1024.0) as u64,
        }
    }

    pub fn runtime(&self, now: Instant, console_address: &str) -> VmRuntime {
        let live = holds_resources(self.state);
        let consoles = if live {
            self.spec
                .graphics
                .iter()
                .zip(&self.console_ports)
                .map(|(g, port)| ConsoleInfo {
                    protocol: g.protocol.clone(),
                    address: console_address.into(),
                    port: *port,
                    // SPICE takes a second port for TLS, right after the plain one.
                    tls_port: (g.protocol == "spice").then(|| port + 1),
                })
                .collect()
        } else {
            Vec::new()
        };
        let migration = match (self.state, &self.migration_to) {
            (VmState::MigratingFrom, Some(dest)) => Some(MigrationProgress {
                percent: ((self.in_state_for(now).as_secs_f64() / MIGRATION.as_secs_f64()) * 100.0)
                    .min(99.0) as u32,
                destination: dest.clone(),
            }),
            _ => None,
        };
        VmRuntime {
            id: self.spec.id.clone(),
            state: self.state,
            exit_reason: if live {
                None
            } else {
                self.exit.as_ref().map(|e| e.0.clone())
            },
            exit_message: if live {
                None
            } else {
                self.exit.as_ref().map(|e| e.1.clone())
            },
            pid: live.then(|| 10_000 + (self.seed % 50_000) as u32),
            started_ms: live.then_some(self.started_ms),
            consoles,
            stats: self.stats(now),
            migration,
            disks: self.disks.clone(),
            nics: self.nics.clone(),
            pci: Default::default(),
        }
    }
}

fn remove(list: &mut Vec<String>, id: &str, what: &str) -> AgentResult<()> {
    let before = list.len();
    list.retain(|d| d != id);
    if list.len() == before {
        return Err(AgentError::new(
            ErrorCode::InvalidRequest,
            format!("no {what} {id} is plugged"),
        ));
    }
    Ok(())
}

pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
