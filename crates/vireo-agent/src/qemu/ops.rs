//! What the engine asks of VMs: start, stop, shutdown, reboot, pause, suspend and restore,
//! live migration, consoles, hot-plug — and volume work that must go through a running
//! QEMU (live merge, live resize).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vireo_agent_proto::{
    AgentError, AgentResult, DiskSpec, ErrorCode, MigrationProgress, NicSpec, VmOperation,
    VmRuntime, VmSpec, VmState, VolumeInfo, VolumeOperation,
};

use super::argv;
use super::qmp::{Event, Qmp, QmpError};
use super::storage::{self, MergePlan};
use super::vm::{self, VmHandle, VmRecord};
use super::{Inner, START_TIMEOUT};

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

pub async fn create(inner: &Arc<Inner>, spec: &VmSpec, start: Start) -> AgentResult<VmRuntime> {
    if spec.id.is_empty() || spec.id.contains('/') || spec.id.starts_with('.') {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("invalid VM id {:?}", spec.id),
        ));
    }
    // A down VM with this id is replaced; a live one is a conflict.
    if let Ok(old) = inner.vm(&spec.id) {
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
    let bridges = super::host::bridges();
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
                .filter(|p| super::stats::pid_alive(*p))
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
        follow_incoming(h.clone(), qmp, spec.start_paused);
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
        follow_incoming(h.clone(), qmp, spec.start_paused);
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
fn follow_incoming(h: Arc<VmHandle>, qmp: Arc<Qmp>, start_paused: bool) {
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
            return;
        }
    });
}

async fn attach_tap(ifname: &str, bridge: &str) -> AgentResult<()> {
    let t = Duration::from_secs(10);
    storage::run("ip", &["link", "set", "dev", ifname, "master", bridge], t).await?;
    storage::run("ip", &["link", "set", "dev", ifname, "up"], t).await?;
    Ok(())
}

async fn set_migration_speed(qmp: &Qmp) -> AgentResult<()> {
    qmp.execute(
        "migrate-set-parameters",
        json!({ "max-bandwidth": MIGRATION_BANDWIDTH }),
    )
    .await
    .map_err(qmp_err("migrate-set-parameters"))?;
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
pub async fn adopt(inner: &Arc<Inner>, h: &Arc<VmHandle>) -> AgentResult<()> {
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
        follow_migration(
            inner.clone(),
            h.clone(),
            qmp,
            dest,
            new == VmState::SavingState,
        );
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
        VmOperation::Suspend { path } => suspend(inner, &h, path).await?,
        VmOperation::Migrate {
            destination_address,
            destination_port,
        } => migrate(inner, &h, destination_address, *destination_port).await?,
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
            match path.as_deref().filter(|p| !p.is_empty()) {
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

async fn suspend(inner: &Arc<Inner>, h: &Arc<VmHandle>, path: &str) -> AgentResult<()> {
    if !matches!(h.state(), VmState::Up | VmState::Paused) {
        return Err(wrong_state(h, "suspend"));
    }
    let qmp = h.qmp()?;
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            err(
                ErrorCode::Failed,
                format!("cannot create {}: {e}", parent.display()),
            )
        })?;
    }
    h.set_state(VmState::SavingState);
    // Paused first: the saved state is then final and the copy is a single pass.
    qmp.execute("stop", Value::Null)
        .await
        .map_err(qmp_err("stop"))?;
    set_migration_speed(&qmp).await?;
    let uri = format!("exec:cat > {}", vm::shell_quote(path));
    if let Err(e) = qmp.execute("migrate", json!({ "uri": uri })).await {
        let _ = qmp.execute("cont", Value::Null).await;
        h.set_state(VmState::Up);
        return Err(qmp_err("migrate")(e));
    }
    follow_migration(inner.clone(), h.clone(), qmp, path.to_string(), true);
    Ok(())
}

async fn migrate(
    inner: &Arc<Inner>,
    h: &Arc<VmHandle>,
    address: &str,
    port: u16,
) -> AgentResult<()> {
    if h.state() != VmState::Up && h.state() != VmState::Paused {
        return Err(wrong_state(h, "migrate"));
    }
    let qmp = h.qmp()?;
    set_migration_speed(&qmp).await?;
    let host = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    let destination = format!("{host}:{port}");
    qmp.execute("migrate", json!({ "uri": format!("tcp:{destination}") }))
        .await
        .map_err(qmp_err("migrate"))?;
    h.update(|i| {
        i.rec.state = VmState::MigratingFrom;
        i.rec.migration = Some(MigrationProgress {
            percent: 0,
            destination: destination.clone(),
        });
    });
    follow_migration(inner.clone(), h.clone(), qmp, destination, false);
    Ok(())
}

/// Polls `query-migrate` until the outgoing migration (or save to file) ends; then quits the
/// source, or puts the VM back to running when it failed.
fn follow_migration(
    _inner: Arc<Inner>,
    h: Arc<VmHandle>,
    qmp: Arc<Qmp>,
    destination: String,
    to_file: bool,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let info = match qmp.query_migrate().await {
                Ok(i) => i,
                Err(_) => return, // QEMU is gone; the monitor reports it
            };
            match info.status.as_deref() {
                Some("completed") => {
                    h.update(|i| {
                        i.requested = Some(if to_file { "suspended" } else { "migrated" })
                    });
                    let _ = qmp.execute("quit", Value::Null).await;
                    return;
                }
                Some("failed" | "cancelled") => {
                    let why = info.error_desc.unwrap_or_else(|| {
                        format!("migration {}", info.status.unwrap_or_default())
                    });
                    tracing::warn!(vm = h.id, why, "migration did not complete");
                    if let Ok(st) = qmp.query_status().await {
                        if !st.running && !to_file {
                            let _ = qmp.execute("cont", Value::Null).await;
                        }
                    }
                    if to_file {
                        let _ = qmp.execute("cont", Value::Null).await;
                    }
                    h.update(|i| {
                        i.rec.state = VmState::Up;
                        i.rec.migration = None;
                        i.rec.exit_message = Some(why);
                    });
                    return;
                }
                _ => {
                    if let Some(ram) = info.ram {
                        let done = ram.total.saturating_sub(ram.remaining) * 100;
                        let pct = done.checked_div(ram.total).unwrap_or(0).min(99) as u32;
                        h.update(|i| {
                            if i.rec.state == VmState::MigratingFrom {
                                i.rec.migration = Some(MigrationProgress {
                                    percent: pct,
                                    destination: destination.clone(),
                                });
                            }
                        });
                    }
                }
            }
        }
    });
}

/// Waits for `DEVICE_DELETED` of `qdev_id` (the guest has to let the device go).
async fn device_del(qmp: &Qmp, qdev_id: &str) -> AgentResult<()> {
    let mut events = qmp.events();
    qmp.execute("device_del", json!({ "id": qdev_id }))
        .await
        .map_err(qmp_err("device_del"))?;
    let got = Qmp::wait_event(&mut events, UNPLUG_TIMEOUT, |e: &Event| {
        (e.name == "DEVICE_DELETED" && e.data["device"].as_str() == Some(qdev_id)).then_some(())
    })
    .await;
    got.ok_or_else(|| {
        err(
            ErrorCode::Failed,
            format!(
                "the guest did not release {qdev_id} within {} s",
                UNPLUG_TIMEOUT.as_secs()
            ),
        )
    })
}

async fn hotplug_disk(h: &Arc<VmHandle>, disk: &DiskSpec) -> AgentResult<()> {
    let qmp = h.qmp()?;
    if h.inner
        .lock()
        .unwrap()
        .rec
        .spec
        .disks
        .iter()
        .any(|d| d.id == disk.id)
    {
        return Err(err(
            ErrorCode::WrongState,
            format!("disk {} is already plugged", disk.id),
        ));
    }
    if !matches!(
        disk.interface.as_str(),
        "virtio" | "virtio_blk" | "virtio_scsi"
    ) {
        return Err(err(
            ErrorCode::Unsupported,
            format!("{} disks cannot be hot-plugged", disk.interface),
        ));
    }
    let (file, fmt) = argv::blockdev_json(&disk.id, &disk.path, &disk.format, disk.read_only)?;
    qmp.execute("blockdev-add", file)
        .await
        .map_err(qmp_err("blockdev-add"))?;
    if let Err(e) = qmp.execute("blockdev-add", fmt).await {
        let _ = qmp
            .execute(
                "blockdev-del",
                json!({ "node-name": argv::node_name('f', &disk.id) }),
            )
            .await;
        return Err(qmp_err("blockdev-add")(e));
    }
    let mut layout = h.inner.lock().unwrap().rec.layout.clone();
    let dev = argv::disk_device_json(disk, &mut layout, None, &mut 0)?;
    if let Err(e) = qmp.execute("device_add", dev).await {
        let _ = qmp
            .execute(
                "blockdev-del",
                json!({ "node-name": argv::node_name('d', &disk.id) }),
            )
            .await;
        let _ = qmp
            .execute(
                "blockdev-del",
                json!({ "node-name": argv::node_name('f', &disk.id) }),
            )
            .await;
        return Err(qmp_err("device_add")(e));
    }
    h.update(|i| {
        i.rec.layout = layout;
        i.rec.spec.disks.push(disk.clone());
    });
    Ok(())
}

async fn hotunplug_disk(h: &Arc<VmHandle>, id: &str) -> AgentResult<()> {
    let qmp = h.qmp()?;
    if !h
        .inner
        .lock()
        .unwrap()
        .rec
        .spec
        .disks
        .iter()
        .any(|d| d.id == id)
    {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("disk {id} is not plugged into VM {}", h.id),
        ));
    }
    let qdev = argv::disk_qdev(id);
    device_del(&qmp, &qdev).await?;
    // The nodes may have been replaced by a live merge's pivot; then these are gone already.
    let _ = qmp
        .execute(
            "blockdev-del",
            json!({ "node-name": argv::node_name('d', id) }),
        )
        .await;
    let _ = qmp
        .execute(
            "blockdev-del",
            json!({ "node-name": argv::node_name('f', id) }),
        )
        .await;
    h.update(|i| {
        i.rec.spec.disks.retain(|d| d.id != id);
        i.rec.layout.ports.remove(&qdev);
    });
    Ok(())
}

async fn hotplug_nic(h: &Arc<VmHandle>, nic: &NicSpec) -> AgentResult<()> {
    let qmp = h.qmp()?;
    let (vm_id, mut layout) = {
        let i = h.inner.lock().unwrap();
        if i.rec.spec.nics.iter().any(|n| n.id == nic.id) {
            return Err(err(
                ErrorCode::WrongState,
                format!("NIC {} is already plugged", nic.id),
            ));
        }
        (i.rec.spec.id.clone(), i.rec.layout.clone())
    };
    let netdev = argv::netdev_json(&vm_id, nic, &super::host::bridges(), &mut layout);
    qmp.execute("netdev_add", netdev)
        .await
        .map_err(qmp_err("netdev_add"))?;
    if let Some(tap) = layout.taps.get(&nic.id) {
        if let Err(e) = attach_tap(&tap.ifname, &tap.bridge).await {
            let _ = qmp
                .execute("netdev_del", json!({ "id": argv::netdev_id(&nic.id) }))
                .await;
            return Err(e);
        }
    }
    let dev = argv::nic_device_json(nic, &mut layout, None)?;
    if let Err(e) = qmp.execute("device_add", dev).await {
        let _ = qmp
            .execute("netdev_del", json!({ "id": argv::netdev_id(&nic.id) }))
            .await;
        return Err(qmp_err("device_add")(e));
    }
    if !nic.linked {
        let _ = qmp
            .execute(
                "set_link",
                json!({ "name": argv::nic_qdev(&nic.id), "up": false }),
            )
            .await;
    }
    h.update(|i| {
        i.rec.layout = layout;
        i.rec.spec.nics.push(nic.clone());
    });
    Ok(())
}

async fn hotunplug_nic(h: &Arc<VmHandle>, id: &str) -> AgentResult<()> {
    let qmp = h.qmp()?;
    if !h
        .inner
        .lock()
        .unwrap()
        .rec
        .spec
        .nics
        .iter()
        .any(|n| n.id == id)
    {
        return Err(err(
            ErrorCode::InvalidRequest,
            format!("NIC {id} is not plugged into VM {}", h.id),
        ));
    }
    let qdev = argv::nic_qdev(id);
    device_del(&qmp, &qdev).await?;
    let _ = qmp
        .execute("netdev_del", json!({ "id": argv::netdev_id(id) }))
        .await;
    h.update(|i| {
        i.rec.spec.nics.retain(|n| n.id != id);
        i.rec.layout.ports.remove(&qdev);
        i.rec.layout.taps.remove(id);
    });
    Ok(())
}

/// The running VM (if any) whose disk chain lives in `image_dir`, with that disk.
fn vm_using(inner: &Inner, image_dir: &Path) -> Option<(Arc<VmHandle>, DiskSpec)> {
    let vms: Vec<Arc<VmHandle>> = inner.vms.lock().unwrap().values().cloned().collect();
    vms.into_iter().filter(|h| !h.is_down()).find_map(|h| {
        let disk = h
            .inner
            .lock()
            .unwrap()
            .rec
            .spec
            .disks
            .iter()
            .find(|d| Path::new(&d.path).parent() == Some(image_dir))
            .cloned();
        disk.map(|d| (h, d))
    })
}

pub async fn volume(inner: &Arc<Inner>, op: &VolumeOperation) -> AgentResult<VolumeInfo> {
    let st = &inner.storage;
    match op {
        VolumeOperation::Create {
            domain_id,
            disk_id,
            volume_id,
            format,
            size,
            sparse,
        } => {
            st.create(domain_id, disk_id, volume_id, format, *size, *sparse)
                .await
        }
        VolumeOperation::Snapshot {
            domain_id,
            disk_id,
            volume_id,
            parent_volume_id,
        } => {
            let parent = st.volume_path(domain_id, disk_id, parent_volume_id)?;
            if let Some((h, d)) = vm_using(inner, parent.parent().unwrap()) {
                if Path::new(&d.path) == parent {
                    // Live snapshots need the VM to switch to the overlay (blockdev-snapshot);
                    // the engine takes them with the VM down or hands us the new chain at start.
                    return Err(err(
                        ErrorCode::Unsupported,
                        format!("volume {parent_volume_id} is in use by running VM {}", h.id),
                    ));
                }
            }
            st.snapshot(domain_id, disk_id, volume_id, parent_volume_id)
                .await
        }
        VolumeOperation::Merge {
            domain_id,
            disk_id,
            volume_id,
        } => {
            let plan = st.merge_plan(domain_id, disk_id, volume_id)?;
            match vm_using(inner, plan.top.parent().unwrap()) {
                Some((h, disk)) => live_merge(inner, &h, &disk, &plan).await,
                None => st.cold_merge(&plan).await,
            }
        }
        VolumeOperation::Copy {
            from_domain_id,
            disk_id,
            volume_id,
            to_domain_id,
            to_disk_id,
            to_volume_id,
        } => {
            st.copy(
                from_domain_id,
                disk_id,
                volume_id,
                to_domain_id,
                to_disk_id,
                to_volume_id,
            )
            .await
        }
        VolumeOperation::Resize {
            domain_id,
            disk_id,
            volume_id,
            size,
        } => {
            let path = st.volume_path(domain_id, disk_id, volume_id)?;
            let live = match vm_using(inner, path.parent().unwrap()) {
                Some((h, d)) if Path::new(&d.path) == path => {
                    let qmp = h.qmp()?;
                    let root = root_node(&qmp, &path).await?;
                    qmp.execute("block_resize", json!({ "node-name": root, "size": size }))
                        .await
                        .map_err(qmp_err("block_resize"))?;
                    true
                }
                Some((h, _)) => {
                    return Err(err(
                        ErrorCode::WrongState,
                        format!(
                            "only the active volume of running VM {}'s disk can be resized",
                            h.id
                        ),
                    ))
                }
                None => false,
            };
            st.resize(domain_id, disk_id, volume_id, *size, live).await
        }
        VolumeOperation::Delete {
            domain_id,
            disk_id,
            volume_id,
        } => {
            let path = st.volume_path(domain_id, disk_id, volume_id)?;
            if let Some((h, d)) = vm_using(inner, path.parent().unwrap()) {
                if Path::new(&d.path) == path {
                    return Err(err(
                        ErrorCode::WrongState,
                        format!("volume {volume_id} is in use by running VM {}", h.id),
                    ));
                }
            }
            st.delete(domain_id, disk_id, volume_id).await
        }
        VolumeOperation::Info {
            domain_id,
            disk_id,
            volume_id,
        } => st.info_of(domain_id, disk_id, volume_id).await,
    }
}

/// The format node QEMU has open for `path`.
async fn node_for(qmp: &Qmp, path: &Path) -> AgentResult<String> {
    let nodes = qmp
        .query_named_block_nodes()
        .await
        .map_err(qmp_err("query-named-block-nodes"))?;
    let p = path.to_string_lossy();
    nodes
        .iter()
        .find(|n| n.drv != "file" && image_file(&n.file) == p)
        .map(|n| n.node_name.clone())
        .ok_or_else(|| {
            let have: Vec<String> = nodes
                .iter()
                .map(|n| format!("{} ({}): {}", n.node_name, n.drv, n.file))
                .collect();
            err(
                ErrorCode::Failed,
                format!(
                    "the VM has no block node for {p}; it has {}",
                    have.join(", ")
                ),
            )
        })
}

/// The image file of a format node. After a graph change QEMU describes a node by a
/// `json:{…}` pseudo-filename instead of a path; its protocol child names the file.
fn image_file(file: &str) -> String {
    match file
        .strip_prefix("json:")
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
    {
        Some(v) => v["file"]["filename"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        None => file.to_string(),
    }
}

async fn root_node(qmp: &Qmp, active: &Path) -> AgentResult<String> {
    node_for(qmp, active).await
}

/// Merge with the VM running: `block-commit` of `top` into `base`. When `top` is the active
/// layer the job mirrors new writes until READY and then pivots the disk onto `base`.
async fn live_merge(
    _inner: &Arc<Inner>,
    h: &Arc<VmHandle>,
    disk: &DiskSpec,
    plan: &MergePlan,
) -> AgentResult<VolumeInfo> {
    let _op = h.op.lock().await;
    let qmp = h.qmp()?;
    let active_path = Path::new(&disk.path).to_path_buf();
    let active = active_path == plan.top;
    let root = root_node(&qmp, &active_path).await?;
    let base_node = node_for(&qmp, &plan.base).await?;
    let job = format!("commit-{}", &argv::node_name('j', &plan.top_id)[1..]);
    let mut args = json!({ "job-id": job, "device": root, "base-node": base_node });
    if !active {
        args["top-node"] = json!(node_for(&qmp, &plan.top).await?);
        // Keep the chain relative, as vdsm writes it.
        args["backing-file"] = json!(plan.base_id);
    }
    let bmeta = inner_meta(_inner, plan)?;
    if bmeta < plan.top_capacity {
        qmp.execute(
            "block_resize",
            json!({ "node-name": base_node, "size": plan.top_capacity }),
        )
        .await
        .map_err(qmp_err("block_resize"))?;
    }
    let mut events = qmp.events();
    qmp.execute("block-commit", args)
        .await
        .map_err(qmp_err("block-commit"))?;
    let job_event = |names: &'static [&'static str]| {
        let job = job.clone();
        move |e: &Event| {
            (names.contains(&e.name.as_str()) && e.data["device"].as_str() == Some(job.as_str()))
                .then(|| e.clone())
        }
    };
    const JOB_TIMEOUT: Duration = Duration::from_secs(3600);
    if active {
        let ev = Qmp::wait_event(
            &mut events,
            JOB_TIMEOUT,
            job_event(&["BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_ERROR"]),
        )
        .await
        .ok_or_else(|| err(ErrorCode::Failed, "block-commit did not become ready"))?;
        if ev.name != "BLOCK_JOB_READY" {
            return Err(err(
                ErrorCode::Failed,
                format!("block-commit failed: {}", ev.data),
            ));
        }
        qmp.execute("block-job-complete", json!({ "device": job }))
            .await
            .map_err(qmp_err("block-job-complete"))?;
    }
    let ev = Qmp::wait_event(
        &mut events,
        JOB_TIMEOUT,
        job_event(&["BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"]),
    )
    .await
    .ok_or_else(|| err(ErrorCode::Failed, "block-commit did not complete"))?;
    if ev.name != "BLOCK_JOB_COMPLETED" || ev.data.get("error").is_some() {
        return Err(err(
            ErrorCode::Failed,
            format!("block-commit failed: {}", ev.data),
        ));
    }
    if active {
        // The disk now writes into base. The old top's nodes were made by -blockdev, so the
        // monitor still owns them, and through its backing link the old top would keep base
        // from being resized: delete them (format node first, then its file).
        if root == argv::node_name('d', &disk.id) {
            let _ = qmp
                .execute("blockdev-del", json!({ "node-name": root }))
                .await;
            let _ = qmp
                .execute(
                    "blockdev-del",
                    json!({ "node-name": argv::node_name('f', &disk.id) }),
                )
                .await;
        }
        let (base, fmt) = (
            plan.base.to_string_lossy().into_owned(),
            plan.base_format.clone(),
        );
        h.update(|i| {
            if let Some(d) = i.rec.spec.disks.iter_mut().find(|d| d.id == disk.id) {
                d.path = base;
                d.format = fmt;
            }
        });
    }
    let st = &_inner.storage;
    st.finish_merge(plan)?;
    st.info_of(&plan.domain_id, &plan.disk_id, &plan.base_id)
        .await
}

fn inner_meta(inner: &Inner, plan: &MergePlan) -> AgentResult<u64> {
    Ok(inner
        .storage
        .read_meta(&plan.domain_id, &plan.disk_id, &plan.base_id)?
        .capacity)
}
