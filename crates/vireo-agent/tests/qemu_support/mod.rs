//! Shared by the QEMU driver's integration tests: the tiny guest, temporary data folders,
//! and the rule for skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vireo_agent::qemu::{guest, host, AccelChoice, Qemu};
use vireo_agent_proto::{DiskSpec, GraphicsSpec, Hypervisor, NicSpec, VmRuntime, VmSpec, VmState};

/// Whether QEMU tests can run here. Missing QEMU (or the guest's packages) skips a test only
/// when CI is unset; in CI it is a failure.
pub fn available() -> bool {
    let missing: Vec<&str> = [
        (
            host::find_qemu().is_none(),
            "qemu-system-x86_64 (apt-get install qemu-system-x86)",
        ),
        (
            host::find_in_path("qemu-img").is_none(),
            "qemu-img (apt-get install qemu-utils)",
        ),
        (
            guest::find_kernel().is_none(),
            "/boot/vmlinuz-* (apt-get install linux-image-amd64)",
        ),
        (
            guest::find_busybox().is_none(),
            "busybox (apt-get install busybox-static)",
        ),
    ]
    .into_iter()
    .filter_map(|(m, what)| m.then_some(what))
    .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and the QEMU tests need: {}", missing.join(", "));
    }
    eprintln!("SKIPPED (CI unset): missing {}", missing.join(", "));
    false
}

/// `VIREO_TEST_ACCEL=kvm|tcg|auto` (default auto: the probe decides, as the agent does).
pub fn accel() -> AccelChoice {
    std::env::var("VIREO_TEST_ACCEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(AccelChoice::Auto)
}

/// One guest-running test at a time: TCG guests on a 2-core machine slow each other down
/// past any sane timeout when they run together.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The same, for a test that runs its own runtimes.
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

/// A temporary folder; QEMUs left behind by a failed test are killed when it goes.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub guest: guest::TestGuest,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("vq")
            .tempdir_in("/tmp")
            .unwrap();
        let guest = guest::prepare(&dir.path().join("guest")).unwrap();
        Env { dir, guest }
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for pidfile in glob_pidfiles(self.dir.path()) {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                unsafe { libc_kill(pid) };
            }
        }
    }
}

fn glob_pidfiles(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for agent in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for vm in std::fs::read_dir(agent.path().join("vms"))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(vm.path().join("qemu.pid"));
        }
    }
    out
}

unsafe fn libc_kill(pid: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    kill(pid, 9);
}

pub async fn agent(env: &Env, name: &str) -> Qemu {
    Qemu::new(env.path(name), accel()).await.unwrap()
}

pub fn new_id() -> String {
    let b = std::fs::read("/proc/sys/kernel/random/uuid").unwrap();
    String::from_utf8(b).unwrap().trim().to_string()
}

/// The tiny guest by direct kernel boot, with a VNC console, a user-mode NIC and an RNG.
pub fn spec(env: &Env, mode: guest::Mode, memory_mib: u64) -> VmSpec {
    let id = new_id();
    VmSpec {
        name: format!("t-{}", &id[..8]),
        id,
        memory_bytes: memory_mib << 20,
        sockets: 1,
        cores: 1,
        threads: 1,
        kernel: Some(env.guest.kernel.to_string_lossy().into_owned()),
        initrd: Some(env.guest.initrd.to_string_lossy().into_owned()),
        cmdline: Some(guest::cmdline(mode)),
        graphics: vec![GraphicsSpec {
            protocol: "vnc".into(),
        }],
        nics: vec![NicSpec {
            id: "nic1".into(),
            mac: "56:6f:6c:00:00:01".into(),
            model: "virtio".into(),
            network: Some("ovirtmgmt".into()),
            linked: true,
        }],
        serial_console: true,
        rng: true,
        ..Default::default()
    }
}

pub fn disk(id: &str, path: &Path, format: &str) -> DiskSpec {
    DiskSpec {
        id: id.into(),
        path: path.to_string_lossy().into_owned(),
        format: format.into(),
        interface: "virtio".into(),
        bootable: false,
        read_only: false,
    }
}

pub fn serial_log(q: &Qemu, id: &str) -> String {
    std::fs::read_to_string(q.vm_dir(id).join("serial.log")).unwrap_or_default()
}

/// Polls `check` every 100 ms until it gives `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_marker(q: &Qemu, id: &str) {
    wait_for(
        "the guest's marker on its serial console",
        Duration::from_secs(50),
        || async { serial_log(q, id).contains(guest::MARKER).then_some(()) },
    )
    .await;
}

pub async fn wait_state(q: &Qemu, id: &str, state: VmState, timeout: Duration) -> VmRuntime {
    let start = Instant::now();
    loop {
        let rt = q.get_vm(id).await;
        if let Ok(rt) = &rt {
            if rt.state == state {
                return rt.clone();
            }
        }
        if start.elapsed() > timeout {
            let log = std::fs::read_to_string(q.vm_dir(id).join("qemu.log")).unwrap_or_default();
            panic!("timed out after {timeout:?} waiting for VM {id} {state:?}: last {rt:?}; qemu.log: {log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn ps_shows(id: &str) -> bool {
    let out = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.contains("qemu-system") && l.contains(id))
}
