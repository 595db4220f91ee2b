//! Audit events of hosts and VMs, with oVirt's codes, severities and message shapes
//! (`AuditLogType` and `AuditLogMessages.properties` in ovirt-engine 4.5).

use vireo_store::{EventRefs, NewEvent};

pub const VDS_FAILURE: i64 = 12; // error: "Host ${VdsName} is non responsive."
pub const VDS_DETECTED: i64 = 13; // "Status of host ${VdsName} was set to ${HostStatus}."
pub const VDS_MAINTENANCE: i64 = 15; // "Host ${VdsName} was switched to Maintenance Mode."
pub const VDS_ACTIVATE: i64 = 16; // "Activation of host ${VdsName} initiated by ${UserName}."
pub const USER_RUN_VM: i64 = 32; // "VM ${VmName} started on Host ${VdsName}"
pub const USER_STOP_VM: i64 = 33;
pub const USER_ADD_VDS: i64 = 42;
pub const USER_REMOVE_VDS: i64 = 44;
pub const USER_FAILED_RUN_VM: i64 = 54; // error
pub const VM_DOWN: i64 = 61;
pub const VM_MIGRATION_START: i64 = 62;
pub const VM_MIGRATION_DONE: i64 = 63;
pub const VM_MIGRATION_FAILED: i64 = 65; // error
pub const VM_MIGRATION_START_SYSTEM_INITIATED: i64 = 67;
pub const USER_INITIATED_SHUTDOWN_VM: i64 = 73;
pub const VM_DOWN_ERROR: i64 = 119; // error
pub const VM_SET_TO_UNKNOWN_STATUS: i64 = 142;
pub const USER_STARTED_VM: i64 = 153; // "VM ${VmName} was started by ${UserName} (Host: ${VdsName})."
pub const USER_REBOOT_VM: i64 = 157;
pub const VM_CANCEL_MIGRATION: i64 = 161;
pub const VM_SET_TICKET: i64 = 164;
pub const USER_SUSPEND_VM: i64 = 501;
pub const USER_SUSPEND_VM_OK: i64 = 503;
pub const VDS_INSTALL: i64 = 504;
pub const VDS_INSTALL_FAILED: i64 = 505; // error
pub const VDS_INSTALL_IN_PROGRESS: i64 = 509;
pub const USER_VDS_MAINTENANCE_MIGRATION_FAILED: i64 = 602; // warning
pub const HOST_REFRESHED_CAPABILITIES: i64 = 606;
pub const USER_VDS_MAINTENANCE_WITHOUT_REASON: i64 = 620;
pub const VDS_HOST_NOT_RESPONDING_CONNECTING: i64 = 9008; // warning
pub const VM_PAUSED: i64 = 1025;
pub const USER_RESUME_VM: i64 = 40;
pub const USER_PAUSE_VM: i64 = 39;

/// oVirt marks events from the engine itself with this origin.
const ORIGIN: &str = "oVirt";

fn severity(code: i64) -> &'static str {
    match code {
        VDS_FAILURE | USER_FAILED_RUN_VM | VM_MIGRATION_FAILED | VM_DOWN_ERROR
        | VDS_INSTALL_FAILED => "error",
        USER_VDS_MAINTENANCE_MIGRATION_FAILED | VDS_HOST_NOT_RESPONDING_CONNECTING => "warning",
        _ => "normal",
    }
}

/// Who and what an event concerns.
#[derive(Default, Clone)]
pub struct About<'a> {
    pub host_id: Option<&'a str>,
    pub vm_id: Option<&'a str>,
    pub cluster_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
}

pub fn event(code: i64, description: String, about: About<'_>) -> NewEvent {
    let own = |s: Option<&str>| s.map(str::to_string);
    NewEvent {
        code,
        severity: severity(code).to_string(),
        description,
        time_ms: vireo_store::now_ms(),
        correlation_id: own(about.correlation_id),
        origin: Some(ORIGIN.to_string()),
        refs: EventRefs {
            vm_id: own(about.vm_id),
            host_id: own(about.host_id),
            cluster_id: own(about.cluster_id),
            user_id: own(about.user_id),
            ..EventRefs::default()
        },
        doc: String::new(),
    }
}

/// oVirt's host status as its messages spell it (`VDSStatus` names).
pub fn host_status_word(status: &str) -> &'static str {
    match status {
        "up" => "Up",
        "maintenance" => "Maintenance",
        "non_responsive" => "NonResponsive",
        "installing" => "Installing",
        "install_failed" => "InstallFailed",
        "initializing" => "Initializing",
        "connecting" => "Connecting",
        "preparing_for_maintenance" => "PreparingForMaintenance",
        "non_operational" => "NonOperational",
        "unassigned" => "Unassigned",
        "down" => "Down",
        _ => "Unknown",
    }
}
