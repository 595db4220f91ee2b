//! VMs: what the engine asks a host to run, and what the host reports back.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VmSpec {
    pub id: String,
    pub name: String,
    pub memory_bytes: u64,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
    /// `q35`, `pc`, or a full machine type such as `pc-q35-8.2`.
    pub machine: Option<String>,
    pub cpu_model: Option<String>,
    /// In order: `hd`, `cdrom`, `network`.
    pub boot: Vec<String>,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub disks: Vec<DiskSpec>,
    pub nics: Vec<NicSpec>,
    pub cdrom: Option<String>,
    pub graphics: Vec<GraphicsSpec>,
    pub serial_console: bool,
    pub watchdog: Option<WatchdogSpec>,
    pub rng: bool,
    pub start_paused: bool,
    /// Saved memory state to resume from (a suspended VM).
    pub restore_from: Option<String>,
    /// Where the source has its devices (a migration's destination must match them, hot-plugs
    /// included); empty for a fresh start.
    #[serde(default, skip_serializing_if = "PciPlacement::is_empty")]
    pub pci: PciPlacement,
}

/// PCIe placement of a running VM's devices: how many root ports, and which device (by
/// the driver's device id) sits on which.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PciPlacement {
    pub root_ports: u32,
    pub ports: std::collections::BTreeMap<String, u32>,
}

impl PciPlacement {
    pub fn is_empty(&self) -> bool {
        self.root_ports == 0 && self.ports.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DiskSpec {
    pub id: String,
    /// The image file (top of the chain).
    pub path: String,
    /// `qcow2` or `raw`.
    pub format: String,
    /// `virtio`, `virtio_scsi`, `ide`, `sata`.
    pub interface: String,
    pub bootable: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NicSpec {
    pub id: String,
    pub mac: String,
    /// `virtio`, `e1000`, `rtl8139`.
    pub model: String,
    /// The logical network; the host plugs the NIC into its bridge, or user networking.
    pub network: Option<String>,
    pub linked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GraphicsSpec {
    /// `vnc` or `spice`.
    pub protocol: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchdogSpec {
    pub model: String,
    pub action: String,
}

/// oVirt's VM statuses, as the host sees them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    WaitForLaunch,
    PoweringUp,
    Up,
    PoweringDown,
    RebootInProgress,
    Paused,
    SavingState,
    Suspended,
    RestoringState,
    MigratingFrom,
    MigratingTo,
    Down,
    NotResponding,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VmRuntime {
    pub id: String,
    pub state: VmState,
    /// Why the VM went down: `user`, `shutdown`, `crash`, `error`, `migrated`, `suspended`
    /// (memory state saved: the VM is `suspended`, and holds nothing on the host any more).
    pub exit_reason: Option<String>,
    pub exit_message: Option<String>,
    pub pid: Option<u32>,
    pub started_ms: Option<i64>,
    pub consoles: Vec<ConsoleInfo>,
    pub stats: VmStats,
    pub migration: Option<MigrationProgress>,
    /// Devices as the running VM has them (after hot-plug).
    pub disks: Vec<String>,
    pub nics: Vec<String>,
    #[serde(default, skip_serializing_if = "PciPlacement::is_empty")]
    pub pci: PciPlacement,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsoleInfo {
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub tls_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VmStats {
    pub cpu_percent: f64,
    pub memory_used: u64,
    pub disk_read_bytes: u64,
    pub disk_write_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationProgress {
    pub percent: u32,
    pub destination: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum VmOperation {
    /// Power off now.
    Destroy,
    /// ACPI shutdown; the agent powers off after `timeout_s` when the guest ignores it.
    Shutdown {
        timeout_s: u32,
    },
    Reboot,
    Pause,
    Resume,
    /// Save memory state to `path` and stop.
    Suspend {
        path: String,
    },
    /// Live-migrate to another agent, which has been told to expect it (`PrepareIncoming`).
    Migrate {
        destination_address: String,
        destination_port: u16,
    },
    /// On the destination: start a VM that waits for an incoming migration.
    PrepareIncoming {
        spec: Box<VmSpec>,
    },
    CancelMigration,
    /// Set a one-time console password.
    SetTicket {
        protocol: String,
        password: String,
        ttl_s: u32,
    },
    HotplugDisk {
        disk: DiskSpec,
    },
    HotunplugDisk {
        id: String,
    },
    HotplugNic {
        nic: NicSpec,
    },
    HotunplugNic {
        id: String,
    },
    ChangeCdrom {
        path: Option<String>,
    },
}

impl VmOperation {
    /// The operation's name: its `op` tag in JSON and its path segment in `/vms/{id}/{name}`.
    pub fn name(&self) -> &'static str {
        match self {
            VmOperation::Destroy => "destroy",
            VmOperation::Shutdown { .. } => "shutdown",
            VmOperation::Reboot => "reboot",
            VmOperation::Pause => "pause",
            VmOperation::Resume => "resume",
            VmOperation::Suspend { .. } => "suspend",
            VmOperation::Migrate { .. } => "migrate",
            VmOperation::PrepareIncoming { .. } => "prepare_incoming",
            VmOperation::CancelMigration => "cancel_migration",
            VmOperation::SetTicket { .. } => "set_ticket",
            VmOperation::HotplugDisk { .. } => "hotplug_disk",
            VmOperation::HotunplugDisk { .. } => "hotunplug_disk",
            VmOperation::HotplugNic { .. } => "hotplug_nic",
            VmOperation::HotunplugNic { .. } => "hotunplug_nic",
            VmOperation::ChangeCdrom { .. } => "change_cdrom",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path segment and the JSON tag must never drift apart: the server checks one
    /// against the other.
    #[test]
    fn operation_names_match_their_json_tags() {
        let ops = [
            VmOperation::Destroy,
            VmOperation::Shutdown { timeout_s: 1 },
            VmOperation::Reboot,
            VmOperation::Pause,
            VmOperation::Resume,
            VmOperation::Suspend { path: "p".into() },
            VmOperation::Migrate {
                destination_address: "a".into(),
                destination_port: 1,
            },
            VmOperation::PrepareIncoming {
                spec: Box::default(),
            },
            VmOperation::CancelMigration,
            VmOperation::SetTicket {
                protocol: "vnc".into(),
                password: "x".into(),
                ttl_s: 1,
            },
            VmOperation::HotunplugDisk { id: "d".into() },
            VmOperation::HotunplugNic { id: "n".into() },
            VmOperation::ChangeCdrom { path: None },
        ];
        for op in ops {
            let json = serde_json::to_value(&op).unwrap();
            assert_eq!(json["op"], op.name());
        }
    }
}
