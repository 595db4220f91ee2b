//! A VM's life: start (and adopting one started by an earlier agent), the engine's
//! operations on it, power off.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vireo_agent_proto::{
    AgentResult, ErrorCode, MigrationProgress, VmOperation, VmRuntime, VmSpec, VmState,
};

use super::hotplug::{hotplug_disk, hotplug_nic, hotunplug_disk, hotunplug_nic};
use super::migration::{follow_migration, migrate, set_migration_speed, suspend};
use super::*;
use crate::qemu::argv;
use crate::qemu::qmp::Qmp;
use crate::qemu::storage;
use crate::qemu::vm::{self, VmHandle, VmRecord};
use crate::qemu::{Inner, START_TIMEOUT};

pub async fn create(inner: &Arc<Inner>, spec: &VmSpec, start: Start) -> AgentResult<VmRuntime> {
    if spec.id.is_empty() || spec.id.contains('/') || spec.id.starts_with('.') {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("invalid VM id {:?}", spec.id),
        ));
    }
    // A down VM with this id is replaced; a live one is a conflict.
    if let Ok(old) = inner.vm(&spec.id) {
        // A VM that just migrated away is gone once its QEMU exits: the move back may come
        // before the exit has been seen.
        if old.state() == VmState::MigratingFrom {
            old.wait_down(Duration::from_secs(5)).await;
        }
        if !old.is_down() {
            return Err(wrong_state(&old, "create"));
        }
        inner.vms.lock().unwrap().remove(&spec.id);
    }
    let dir = inner.vm_dir(&spec.id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| {
        err(
            ErrorCode::Failed,
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let sock_len = dir.join("console.sock").as_os_str().len();
    if sock_len >= 108 {
        return Err(err(ErrorCode::Failed, format!("data folder too deep for unix sockets ({sock_len} ≥ 108 bytes): use a shorter --data-dir")));
    }

    let incoming = start == Start::Incoming || spec.restore_from.is_some();
    let bridges = crate::qemu::host::bridges();
    let spice_port = if inner.features.spice && spec.graphics.iter().any(|g| g.protocol == "spice")
    {
        free_port(&inner.opts.console_listen)
    } else {
        None
    };
    let ctx = argv::Context {
        accel: inner.accel.kind,
        run_dir: &dir,
        bridges: &bridges,
        console_listen: &inner.opts.console_listen,
        machines: &inner.features.machines,
        cpu_models: &inner.features.cpu_models,
        spice_available: inner.features.spice,
        spice_port,
        incoming,
    };
    // The engine names a CD by its ISO file and a saved state by where it is on storage;
    // QEMU needs paths.
    let resolved;
    let mut spec = spec;
    let cd = spec.cdrom.as_deref().filter(|c| !c.is_empty());
    if cd.is_some() || spec.restore_from.is_some() {
        resolved = VmSpec {
            cdrom: cd.map(|c| inner.storage.resolve_iso(c)).transpose()?,
            restore_from: spec
                .restore_from
                .as_deref()
                .map(|p| inner.storage.state_path(p))
                .transpose()?,
            ..spec.clone()
        };
        spec = &resolved;
    }
    let launch = argv::build(spec, &ctx)?;
    let initial = match (start, spec.restore_from.is_some()) {
        (Start::Incoming, _) => VmState::MigratingTo,
        (_, true) => VmState::RestoringState,
        _ => VmState::WaitForLaunch,
    };
    let rec = VmRecord {
        spec: spec.clone(),
        layout: launch.layout,
        state: initial,
        exit_reason: None,
        exit_message: None,
        pid: None,
        started_ms: Some(vm::now_ms()),
        vnc_port: None,
        console_address: inner.opts.console_listen.clone(),
        migration: None,
    };
    let h = VmHandle::new(dir.clone(), rec);
    h.update(|_| {}); // write vm.json before QEMU exists, so a crash in between leaves a trace
    inner.vms.lock().unwrap().insert(spec.id.clone(), h.clone());
    let _op = h.op.lock().await;

    match launch_and_setup(inner, &h, &launch.args, start).await {
        Ok(()) => Ok(h.runtime().await),
        Err(e) => {
            // Leave nothing running; the VM stays listed as down with the reason.
            if let Some(pid) = h
                .inner
                .lock()
                .unwrap()
                .rec
                .pid
                .filter(|p| crate::qemu::stats::pid_alive(*p))
            {
                vm::kill(pid, libc::SIGKILL);
            }
            h.update(|i| {
                i.rec.state = VmState::Down;
                i.rec.exit_reason = Some("error".into());
                i.rec.exit_message = Some(e.message.clone());
            });
            h.down.send_replace(true);
            Err(e)
        }
    }
}

async fn launch_and_setup(
    inner: &Arc<Inner>,
    h: &Arc<VmHandle>,
    args: &[String],
    start: Start,
) -> AgentResult<()> {
    let child = vm::spawn(&inner.qemu, args, &h.dir).await?;
    let pid = child.id();
    h.update(|i| i.rec.pid = pid);
    vm::watch_child(h.clone(), child);
    let qmp = vm::connect_qmp(h, START_TIMEOUT).await?;
    let events = qmp.events();
    *h.qmp.lock().unwrap() = Some(qmp.clone());
    vm::monitor(h.clone(), qmp.clone(), events);

    // Still frozen (-S or -incoming): wire up what QEMU cannot do itself.
    let (spec, layout) = {
        let i = h.inner.lock().unwrap();
        (i.rec.spec.clone(), i.rec.layout.clone())
    };
    for tap in layout.taps.values() {
        attach_tap(&tap.ifname, &tap.bridge).await?;
    }
    for nic in spec.nics.iter().filter(|n| !n.linked) {
        qmp.execute(
            "set_link",
            json!({ "name": argv::nic_qdev(&nic.id), "up": false }),
        )
        .await
        .map_err(qmp_err("set_link"))?;
    }
    if layout.vnc {
        let vnc = qmp.query_vnc().await.map_err(qmp_err("query-vnc"))?;
        let port = vnc.service.and_then(|s| s.parse().ok());
        h.update(|i| i.rec.vnc_port = port);
    }

    if let Some(path) = spec.restore_from.as_deref() {
        set_migration_speed(&qmp).await?;
        let uri = format!("exec:cat {}", vm::shell_quote(path));
        qmp.execute("migrate-incoming", json!({ "uri": uri }))
            .await
            .map_err(qmp_err("migrate-incoming"))?;
        follow_incoming(
            h.clone(),
            qmp,
            spec.start_paused,
            Some(std::path::PathBuf::from(path)),
        );
        return Ok(());
    }
    if start == Start::Incoming {
        let uri = format!("tcp:{}:0", inner.opts.migration_listen);
        qmp.execute("migrate-incoming", json!({ "uri": uri }))
            .await
            .map_err(qmp_err("migrate-incoming"))?;
        let info = qmp
            .query_migrate()
            .await
            .map_err(qmp_err("query-migrate"))?;
        let port = info
            .socket_address
            .iter()
            .find_map(|a| a.port.clone())
            .ok_or_else(|| {
                err(
                    ErrorCode::Failed,
                    "QEMU reported no incoming migration port",
                )
            })?;
        h.update(|i| {
            i.rec.migration = Some(MigrationProgress {
                percent: 0,
                destination: format!("{}:{port}", inner.opts.migration_listen),
            })
        });
        follow_incoming(h.clone(), qmp, spec.start_paused, None);
        return Ok(());
    }
    if spec.start_paused {
        h.set_state(VmState::Paused);
    } else {
        qmp.execute("cont", Value::Null)
            .await
            .map_err(qmp_err("cont"))?;
        // RESUME moves it to Up as well; set it here so the answer already says so.
        h.set_state(VmState::Up);
    }
    Ok(())
}

/// Waits until an incoming VM (migration or restore) has its state: then it is Up, or Paused
/// when asked to start paused. If loading fails QEMU exits, and the monitor reports that.
///
/// QEMU resumes an incoming VM only when the source was running; a suspended VM was paused
/// before its memory was saved, so it is continued here unless it should start paused.
/// Follows an incoming migration (or a restore from `state_file`) until the guest runs; a
/// state file whose memory is loaded has served and is removed (oVirt removes the memory
/// volumes of a suspended VM once it is resumed).
fn follow_incoming(
    h: Arc<VmHandle>,
    qmp: Arc<Qmp>,
    start_paused: bool,
    state_file: Option<std::path::PathBuf>,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Ok(st) = qmp.query_status().await else {
                return;
            };
            if st.status == "inmigrate" {
                continue;
            }
            let mut running = st.running;
            if !running && !start_paused && st.status == "paused" {
                running = qmp.execute("cont", Value::Null).await.is_ok();
            }
            let state = if running {
                VmState::Up
            } else {
                VmState::Paused
            };
            if matches!(h.state(), VmState::MigratingTo | VmState::RestoringState) {
                h.set_state(state);
            }
            if let Some(f) = state_file.filter(|_| running || st.status == "paused") {
                if let Err(e) = std::fs::remove_file(&f) {
                    tracing::warn!(file = %f.display(), error = %e, "the memory state of a resumed VM stays behind");
                }
            }
            return;
        }
    });
}

pub(super) async fn attach_tap(ifname: &str, bridge: &str) -> AgentResult<()> {
    let t = Duration::from_secs(10);
    storage::run("ip", &["link", "set", "dev", ifname, "master", bridge], t).await?;
    storage::run("ip", &["link", "set", "dev", ifname, "up"], t).await?;
    Ok(())
}

fn free_port(addr: &str) -> Option<u16> {
    std::net::TcpListener::bind((addr, 0))
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

/// Takes over a QEMU that an earlier agent started.
pub async fn adopt(h: &Arc<VmHandle>) -> AgentResult<()> {
    let qmp = Arc::new(
        Qmp::connect(&h.dir.join("qmp.sock"))
            .await
            .map_err(qmp_err("connect"))?,
    );
    let events = qmp.events();
    *h.qmp.lock().unwrap() = Some(qmp.clone());
    vm::monitor(h.clone(), qmp.clone(), events);
    let status = qmp.query_status().await.map_err(qmp_err("query-status"))?;
    let migration = qmp.query_migrate().await.unwrap_or_default();
    let migrating = matches!(
        migration.status.as_deref(),
        Some("active" | "setup" | "pre-switchover" | "device")
    );
    let state = h.state();
    let new = match status.status.as_str() {
        _ if migrating && state == VmState::SavingState => VmState::SavingState,
        _ if migrating => VmState::MigratingFrom,
        "running" => VmState::Up,
        "inmigrate" => VmState::MigratingTo,
        "postmigrate" => {
            // The migration finished while we were away: the VM runs elsewhere now.
            h.update(|i| i.requested = Some("migrated"));
            let _ = qmp.execute("quit", Value::Null).await;
            return Ok(());
        }
        "paused" | "prelaunch" | "suspended" => VmState::Paused,
        _ => state,
    };
    h.set_state(new);
    if matches!(new, VmState::MigratingFrom | VmState::SavingState) {
        let dest = h
            .inner
            .lock()
            .unwrap()
            .rec
            .migration
            .as_ref()
            .map(|m| m.destination.clone())
            .unwrap_or_default();
        follow_migration(h.clone(), qmp, dest, new == VmState::SavingState);
    }
    Ok(())
}

pub async fn operation(inner: &Arc<Inner>, id: &str, op: &VmOperation) -> AgentResult<VmRuntime> {
    let h = inner.vm(id)?;
    let _op = h.op.lock().await;
    match op {
        VmOperation::Destroy => {
            if h.is_down() {
                // The engine has seen it down: forget it.
                inner.vms.lock().unwrap().remove(id);
                let rt = h.runtime().await;
                let _ = std::fs::remove_dir_all(&h.dir);
                return Ok(rt);
            }
            destroy(&h, "user", None).await?;
        }
        VmOperation::Shutdown { timeout_s } => {
            let qmp = h.qmp()?;
            h.update(|i| i.requested = Some("user"));
            qmp.execute("system_powerdown", Value::Null)
                .await
                .map_err(qmp_err("system_powerdown"))?;
            h.set_state(VmState::PoweringDown);
            let (h2, secs) = (h.clone(), *timeout_s);
            tokio::spawn(async move {
                if !h2.wait_down(Duration::from_secs(u64::from(secs))).await {
                    let _op = h2.op.lock().await;
                    let msg = format!("the guest did not power off within {secs} s after the ACPI shutdown request: powered off");
                    if let Err(e) = destroy(&h2, "user", Some(msg)).await {
                        tracing::warn!(vm = h2.id, error = %e, "power off after shutdown timeout failed");
                    }
                }
            });
        }
        VmOperation::Reboot => {
            let qmp = h.qmp()?;
            h.set_state(VmState::RebootInProgress);
            qmp.execute("system_reset", Value::Null)
                .await
                .map_err(qmp_err("system_reset"))?;
        }
        VmOperation::Pause => {
            if h.state() != VmState::Up && h.state() != VmState::Paused {
                return Err(wrong_state(&h, "pause"));
            }
            h.qmp()?
                .execute("stop", Value::Null)
                .await
                .map_err(qmp_err("stop"))?;
            h.set_state(VmState::Paused);
        }
        VmOperation::Resume => {
            if h.state() != VmState::Paused && h.state() != VmState::Up {
                return Err(wrong_state(&h, "resume"));
            }
            h.qmp()?
                .execute("cont", Value::Null)
                .await
                .map_err(qmp_err("cont"))?;
            h.set_state(VmState::Up);
        }
        VmOperation::Suspend { path } => suspend(&h, &inner.storage.state_path(path)?).await?,
        VmOperation::Migrate {
            destination_address,
            destination_port,
        } => migrate(&h, destination_address, *destination_port).await?,
        VmOperation::CancelMigration => match h.state() {
            VmState::MigratingFrom => {
                h.qmp()?
                    .execute("migrate_cancel", Value::Null)
                    .await
                    .map_err(qmp_err("migrate_cancel"))?;
            }
            // The destination of a cancelled migration holds nothing worth keeping.
            VmState::MigratingTo => {
                destroy(&h, "user", Some("incoming migration cancelled".into())).await?
            }
            _ => return Err(wrong_state(&h, "cancel the migration of")),
        },
        VmOperation::PrepareIncoming { .. } => unreachable!("handled by the caller"),
        VmOperation::SetTicket {
            protocol,
            password,
            ttl_s,
        } => {
            let qmp = h.qmp()?;
            let protocol = if protocol == "spice" { "spice" } else { "vnc" };
            qmp.execute(
                "set_password",
                json!({ "protocol": protocol, "password": password }),
            )
            .await
            .map_err(qmp_err("set_password"))?;
            let time = if *ttl_s == 0 {
                "never".to_string()
            } else {
                format!("+{ttl_s}")
            };
            qmp.execute(
                "expire_password",
                json!({ "protocol": protocol, "time": time }),
            )
            .await
            .map_err(qmp_err("expire_password"))?;
        }
        VmOperation::HotplugDisk { disk } => hotplug_disk(&h, disk).await?,
        VmOperation::HotunplugDisk { id } => hotunplug_disk(&h, id).await?,
        VmOperation::HotplugNic { nic } => hotplug_nic(&h, nic).await?,
        VmOperation::HotunplugNic { id } => hotunplug_nic(&h, id).await?,
        VmOperation::ChangeCdrom { path } => {
            let qmp = h.qmp()?;
            let path = match path.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => Some(inner.storage.resolve_iso(p)?),
                None => None,
            };
            match path.as_deref() {
                Some(p) => {
                    qmp.execute("blockdev-change-medium", json!({ "id": argv::CDROM_ID, "filename": p, "format": "raw", "read-only-mode": "read-only" }))
                        .await
                        .map_err(qmp_err("blockdev-change-medium"))?;
                }
                None => {
                    qmp.execute("eject", json!({ "id": argv::CDROM_ID, "force": true }))
                        .await
                        .map_err(qmp_err("eject"))?;
                }
            }
            h.update(|i| i.rec.spec.cdrom = path.clone());
        }
    }
    Ok(h.runtime().await)
}

/// Powers off now: QMP `quit`, then signals if QEMU does not go.
async fn destroy(
    h: &Arc<VmHandle>,
    reason: &'static str,
    message: Option<String>,
) -> AgentResult<()> {
    h.update(|i| {
        i.requested = Some(reason);
        i.requested_message = message;
    });
    if let Ok(qmp) = h.qmp() {
        let _ = qmp
            .execute_timeout("quit", Value::Null, Duration::from_secs(5))
            .await;
    }
    if h.wait_down(Duration::from_secs(5)).await {
        return Ok(());
    }
    let pid = h.inner.lock().unwrap().rec.pid;
    if let Some(pid) = pid {
        vm::kill(pid, libc::SIGTERM);
        if !h.wait_down(Duration::from_secs(5)).await {
            vm::kill(pid, libc::SIGKILL);
        }
    }
    if !h.wait_down(Duration::from_secs(10)).await {
        // No QMP and no process: nothing follows it, so say it is down ourselves.
        vm::mark_down(h);
    }
    Ok(())
}
