//! One VM: its QEMU process, its record on disk, and the task that follows its QMP events.
//!
//! QEMU runs in its own session (`setsid`), so neither a signal to the agent's process
//! group nor the agent's exit touches it; the record `DATA_DIR/vms/<id>/vm.json`, the
//! pidfile and the QMP socket are what a restarted agent finds it again by.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use vireo_agent_proto::{
    AgentError, AgentResult, ConsoleInfo, ErrorCode, MigrationProgress, VmRuntime, VmSpec, VmState,
    VmStats,
};

use super::argv::Layout;
use super::qmp::{Event, Qmp};
use super::stats::{self, PidSample};

/// What is kept on disk about a VM, so that an agent restart knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRecord {
    pub spec: VmSpec,
    pub layout: Layout,
    pub state: VmState,
    pub exit_reason: Option<String>,
    pub exit_message: Option<String>,
    pub pid: Option<u32>,
    pub started_ms: Option<i64>,
    pub vnc_port: Option<u16>,
    pub console_address: String,
    pub migration: Option<MigrationProgress>,
}

pub struct VmInner {
    pub rec: VmRecord,
    /// The exit reason to report when the VM goes down because the engine asked for it
    /// (`user`, `migrated`, `suspended`); None for anything the guest or QEMU did.
    pub requested: Option<&'static str>,
    /// Message to report with a requested exit (e.g. a shutdown that timed out).
    pub requested_message: Option<String>,
    /// The reason of QEMU's SHUTDOWN event (`guest-shutdown`, `guest-panic`, `host-qmp-quit`…).
    pub shutdown_event: Option<String>,
    pub cpu_prev: Option<PidSample>,
    /// How our child QEMU exited, when we started it (an adopted one is not our child).
    pub child_exit: Option<String>,
}

pub struct VmHandle {
    pub id: String,
    pub dir: PathBuf,
    pub inner: Mutex<VmInner>,
    pub qmp: Mutex<Option<Arc<Qmp>>>,
    /// One lifecycle operation at a time per VM.
    pub op: tokio::sync::Mutex<()>,
    /// True once the process is gone and the record says so.
    pub down: watch::Sender<bool>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn failed(msg: impl Into<String>) -> AgentError {
    AgentError::new(ErrorCode::Failed, msg)
}

impl VmHandle {
    pub fn new(dir: PathBuf, rec: VmRecord) -> Arc<VmHandle> {
        let down = matches!(rec.state, VmState::Down | VmState::Suspended);
        Arc::new(VmHandle {
            id: rec.spec.id.clone(),
            dir,
            inner: Mutex::new(VmInner {
                rec,
                requested: None,
                requested_message: None,
                shutdown_event: None,
                cpu_prev: None,
                child_exit: None,
            }),
            qmp: Mutex::new(None),
            op: tokio::sync::Mutex::new(()),
            down: watch::channel(down).0,
        })
    }

    pub fn qmp(&self) -> AgentResult<Arc<Qmp>> {
        self.qmp
            .lock()
            .unwrap()
            .clone()
            .filter(|q| !q.is_closed())
            .ok_or_else(|| {
                AgentError::new(
                    ErrorCode::WrongState,
                    format!("VM {} is not running", self.id),
                )
            })
    }

    pub fn state(&self) -> VmState {
        self.inner.lock().unwrap().rec.state
    }

    pub fn is_down(&self) -> bool {
        *self.down.borrow()
    }

    /// Changes the state (and persists the record).
    pub fn set_state(&self, state: VmState) {
        let mut i = self.inner.lock().unwrap();
        i.rec.state = state;
        if state != VmState::MigratingFrom && state != VmState::MigratingTo {
            i.rec.migration = None;
        }
        self.save_locked(&i.rec);
    }

    pub fn update(&self, f: impl FnOnce(&mut VmInner)) {
        let mut i = self.inner.lock().unwrap();
        f(&mut i);
        self.save_locked(&i.rec);
    }

    pub fn save_locked(&self, rec: &VmRecord) {
        let path = self.dir.join("vm.json");
        let tmp = self.dir.join("vm.json.tmp");
        if let Err(e) = std::fs::write(&tmp, serde_json::to_vec_pretty(rec).unwrap())
            .and_then(|_| std::fs::rename(&tmp, &path))
        {
            tracing::warn!(vm = self.id, error = %e, "cannot save the VM record");
        }
    }

    /// Waits until the VM is down, up to `timeout`; true if it is.
    pub async fn wait_down(&self, timeout: Duration) -> bool {
        let mut rx = self.down.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|d| *d))
            .await
            .is_ok_and(|r| r.is_ok());
        ok
    }

    /// The runtime view, with fresh statistics.
    pub async fn runtime(&self) -> VmRuntime {
        let qmp = self.qmp.lock().unwrap().clone().filter(|q| !q.is_closed());
        let blockstats = match &qmp {
            Some(q) => q.query_blockstats().await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut i = self.inner.lock().unwrap();
        let running = !matches!(i.rec.state, VmState::Down | VmState::Suspended);
        let mut stats = VmStats::default();
        if let (true, Some(pid)) = (running, i.rec.pid) {
            let vcpus =
                i.rec.spec.sockets.max(1) * i.rec.spec.cores.max(1) * i.rec.spec.threads.max(1);
            stats.cpu_percent = stats::pid_cpu_percent(pid, vcpus, &mut i.cpu_prev);
            stats.memory_used = stats::pid_rss_bytes(pid);
            for b in &blockstats {
                stats.disk_read_bytes += b.stats.rd_bytes;
                stats.disk_write_bytes += b.stats.wr_bytes;
            }
            for tap in i.rec.layout.taps.values() {
                let (rx, tx) = stats::tap_bytes(&tap.ifname);
                stats.net_rx_bytes += rx;
                stats.net_tx_bytes += tx;
            }
        }
        let rec = &i.rec;
        let mut consoles = Vec::new();
        if running {
            if let Some(port) = rec.vnc_port {
                consoles.push(ConsoleInfo {
                    protocol: "vnc".into(),
                    address: rec.console_address.clone(),
                    port,
                    tls_port: None,
                });
            }
            if let Some(port) = rec.layout.spice_port {
                consoles.push(ConsoleInfo {
                    protocol: "spice".into(),
                    address: rec.console_address.clone(),
                    port,
                    tls_port: None,
                });
            }
        }
        VmRuntime {
            id: self.id.clone(),
            state: rec.state,
            exit_reason: rec.exit_reason.clone(),
            exit_message: rec.exit_message.clone(),
            pid: if running { rec.pid } else { None },
            started_ms: rec.started_ms,
            consoles,
            stats,
            migration: rec.migration.clone(),
            disks: rec.spec.disks.iter().map(|d| d.id.clone()).collect(),
            nics: rec.spec.nics.iter().map(|n| n.id.clone()).collect(),
            pci: vireo_agent_proto::PciPlacement {
                root_ports: rec.layout.root_ports,
                ports: rec.layout.ports.clone(),
            },
        }
    }
}

/// Starts QEMU in its own session, its output appended to `qemu.log`.
pub async fn spawn(qemu: &Path, args: &[String], dir: &Path) -> AgentResult<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("qemu.log"))
        .map_err(|e| failed(format!("qemu.log: {e}")))?;
    let log2 = log.try_clone().map_err(|e| failed(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(qemu);
    cmd.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", qemu.display())))
}

/// The last lines QEMU wrote, for error messages.
pub fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// Connects to a starting QEMU's QMP socket, giving up when the process exits first.
pub async fn connect_qmp(h: &VmHandle, timeout: Duration) -> AgentResult<Arc<Qmp>> {
    let sock = h.dir.join("qmp.sock");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if sock.exists() {
            match Qmp::connect(&sock).await {
                Ok(q) => return Ok(Arc::new(q)),
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(failed(format!("QMP: {e}")))
                }
                Err(_) => {}
            }
        }
        let exited = h.inner.lock().unwrap().child_exit.clone();
        if let Some(how) = exited {
            return Err(failed(format!("QEMU {how}: {}", log_tail(&h.dir))));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(failed(format!(
                "QEMU did not open its QMP socket within {} s: {}",
                timeout.as_secs(),
                log_tail(&h.dir)
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reaps our child and records how it ended.
pub fn watch_child(h: Arc<VmHandle>, mut child: tokio::process::Child) {
    tokio::spawn(async move {
        let how = match child.wait().await {
            Ok(st) => match (
                st.code(),
                std::os::unix::process::ExitStatusExt::signal(&st),
            ) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "exited".to_string(),
            },
            Err(e) => format!("could not be waited for: {e}"),
        };
        h.inner.lock().unwrap().child_exit = Some(how);
    });
}

/// Follows QMP events until the connection ends, then records the VM as down.
pub fn monitor(h: Arc<VmHandle>, qmp: Arc<Qmp>, mut events: broadcast::Receiver<Event>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => on_event(&h, &ev),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = qmp.closed() => {
                    // Events sent just before the socket closed (SHUTDOWN) are still queued.
                    while let Ok(ev) = events.try_recv() {
                        on_event(&h, &ev);
                    }
                    break;
                }
            }
        }
        let pid = h.inner.lock().unwrap().rec.pid;
        // QEMU closes QMP as it exits; give it a moment to finish flushing and exit.
        for _ in 0..200 {
            if !pid.is_some_and(stats::pid_alive) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if let Some(pid) = pid.filter(|p| stats::pid_alive(*p)) {
            tracing::warn!(vm = h.id, pid, "QMP closed but QEMU still runs: killing it");
            kill(pid, libc::SIGKILL);
        }
        mark_down(&h);
    });
}

fn on_event(h: &VmHandle, ev: &Event) {
    tracing::debug!(vm = h.id, event = ev.name, data = %ev.data, "QMP event");
    let mut i = h.inner.lock().unwrap();
    let state = i.rec.state;
    let new = match ev.name.as_str() {
        "SHUTDOWN" => {
            let reason = ev.data["reason"].as_str().unwrap_or("").to_string();
            // A panic is reported first (GUEST_PANICKED); its SHUTDOWN must not hide it.
            if i.shutdown_event.as_deref() != Some("guest-panic") {
                i.shutdown_event = Some(reason);
            }
            None
        }
        "GUEST_PANICKED" => {
            i.shutdown_event = Some("guest-panic".into());
            None
        }
        "STOP" if matches!(state, VmState::Up | VmState::PoweringUp) => Some(VmState::Paused),
        "RESUME"
            if matches!(
                state,
                VmState::Paused
                    | VmState::RebootInProgress
                    | VmState::MigratingTo
                    | VmState::RestoringState
                    | VmState::WaitForLaunch
            ) =>
        {
            Some(VmState::Up)
        }
        "POWERDOWN" if state == VmState::Up => Some(VmState::PoweringDown),
        "RESET" if state == VmState::RebootInProgress => Some(VmState::Up),
        _ => None,
    };
    if let Some(s) = new {
        i.rec.state = s;
        if s == VmState::Up {
            i.rec.migration = None;
        }
        h.save_locked(&i.rec);
    }
}

/// The VM's process is gone: decide why, clean up, and tell waiters.
pub fn mark_down(h: &VmHandle) {
    *h.qmp.lock().unwrap() = None;
    {
        let mut i = h.inner.lock().unwrap();
        let (state, reason, message) = exit_reason(&i, &h.dir);
        i.rec.state = state;
        i.rec.exit_reason = Some(reason);
        i.rec.exit_message = message;
        i.rec.migration = None;
        h.save_locked(&i.rec);
    }
    for f in ["qmp.sock", "console.sock", "qemu.pid"] {
        let _ = std::fs::remove_file(h.dir.join(f));
    }
    tracing::info!(vm = h.id, "VM is down");
    h.down.send_replace(true);
}

fn exit_reason(i: &VmInner, dir: &Path) -> (VmState, String, Option<String>) {
    match (i.requested, i.shutdown_event.as_deref()) {
        (Some("suspended"), _) => (VmState::Suspended, "suspended".into(), None),
        (_, Some("guest-panic")) => (
            VmState::Down,
            "crash".into(),
            Some("the guest operating system crashed (kernel panic)".into()),
        ),
        (Some(r), _) => (VmState::Down, r.into(), i.requested_message.clone()),
        (None, Some("guest-shutdown")) => (
            VmState::Down,
            "shutdown".into(),
            Some("the guest powered itself off".into()),
        ),
        (None, Some("host-signal")) => (
            VmState::Down,
            "error".into(),
            Some("QEMU was terminated by a signal on the host".into()),
        ),
        (None, Some(other)) => (
            VmState::Down,
            "shutdown".into(),
            Some(format!("QEMU shut down: {other}")),
        ),
        (None, None) => {
            let how = i.child_exit.clone().unwrap_or_else(|| "exited".into());
            let tail = log_tail(dir);
            let msg = if tail.is_empty() {
                format!("the QEMU process {how} unexpectedly")
            } else {
                format!("the QEMU process {how} unexpectedly: {tail}")
            };
            (VmState::Down, "error".into(), Some(msg))
        }
    }
}

pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we recorded for this VM; no memory is involved.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Reads a pidfile QEMU wrote, and checks that the process is still that VM's QEMU (pids
/// are reused): its command line must name the VM.
pub fn running_pid(dir: &Path, vm_id: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (stats::pid_alive(pid) && cmdline.contains(&format!("process=vireo-{vm_id}"))).then_some(pid)
}

/// Quotes for `/bin/sh` (QEMU runs `exec:` migration URIs through it).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
