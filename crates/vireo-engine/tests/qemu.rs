//! The engine with REAL host agents (the QEMU driver, not the simulation): the tiny guest of
//! `vireo_agent::qemu::guest` (Debian's kernel, a busybox initramfs, direct kernel boot) run
//! through the REST API — hot-plug, CD-ROM, snapshots on real qcow2 chains, consoles, live
//! migration between two agents on loopback, suspend/resume, a guest powering itself off.
//!
//! Missing QEMU or the guest's packages skips these tests, unless `CI` is set: then it fails.
//! Guests share the machine's 2 cores under TCG, so the tests take turns (`SERIAL`) and each
//! boots as few guests as it can, checking several things on one.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{int, Env};
use vireo_agent::qemu::{guest, host};
use vireo_agent::{AccelChoice, AgentConfig, RunningAgent};

fn available() -> bool {
    let missing: Vec<&str> = [
        (host::find_qemu().is_none(), "qemu-system-x86_64"),
        (host::find_in_path("qemu-img").is_none(), "qemu-img"),
        (guest::find_kernel().is_none(), "/boot/vmlinuz-*"),
        (guest::find_busybox().is_none(), "busybox"),
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

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An engine, real agents on loopback, and a short folder for their data (unix sockets
/// must stay under 108 bytes). QEMUs left behind by a failed test are killed on drop.
struct Q {
    env: Env,
    root: tempfile::TempDir,
    agents: Vec<RunningAgent>,
    guest: guest::TestGuest,
}

impl Drop for Q {
    fn drop(&mut self) {
        for pid in qemu_pids(self.root.path()) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn qemu_pids(root: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for agent in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for vm in std::fs::read_dir(agent.path().join("vms"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(pid) = std::fs::read_to_string(vm.path().join("qemu.pid"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                out.push(pid);
            }
        }
    }
    out
}

fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

impl Q {
    async fn start() -> Q {
        let env = Env::start().await;
        let root = tempfile::Builder::new()
            .prefix("ve")
            .tempdir_in("/tmp")
            .unwrap();
        let guest = guest::prepare(&root.path().join("guest")).unwrap();
        Q {
            env,
            root,
            agents: Vec::new(),
            guest,
        }
    }

    fn agent_dir(&self, n: usize) -> PathBuf {
        self.root.path().join(format!("a{n}"))
    }

    /// A real agent in the Default cluster, up.
    async fn add_host(&mut self, name: &str) -> String {
        let n = self.agents.len();
        let secret = format!("enroll-{n}-{}", uuid::Uuid::new_v4().simple());
        let accel = std::env::var("VIREO_TEST_ACCEL")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(AccelChoice::Auto);
        let config = AgentConfig {
            simulate: false,
            accel,
            ..AgentConfig::simulated(self.agent_dir(n), "127.0.0.1:0", &secret)
        };
        let running = vireo_agent::start(&config, vireo_agent::qemu::Qemu::open)
            .await
            .expect("the agent starts");
        let port = running.hosts()[0].addr.port();
        self.agents.push(running);
        let r = self
            .env
            .post("/hosts", json!({"name": name, "address": "127.0.0.1", "port": port.to_string(), "root_password": secret, "cluster": {"name": "Default"}}))
            .await;
        assert_eq!(r.status, 201, "{r}");
        let id = r.id();
        self.wait("host up", &format!("/hosts/{id}"), 30, |h| {
            h["status"] == "up"
        })
        .await;
        id
    }

    /// A posixfs domain on an existing folder (`vfs_type=none`) every agent here shares,
    /// attached to the Default data center and active.
    async fn domain(&self, name: &str, kind: &str, host: &str) -> (String, PathBuf) {
        let folder = self.root.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let r = self
            .env
            .post(
                "/storagedomains",
                json!({"name": name, "type": kind, "host": {"name": host},
                       "storage": {"type": "posixfs", "vfs_type": "none", "path": folder.display().to_string()}}),
            )
            .await;
        assert_eq!(r.status, 201, "{r}");
        let id = r.id();
        let dc = self.env.default_dc().await;
        let a = self
            .env
            .post(
                &format!("/datacenters/{dc}/storagedomains"),
                json!({"id": id}),
            )
            .await;
        assert_eq!(a.status, 201, "{a}");
        self.wait(
            "domain active",
            &format!("/datacenters/{dc}/storagedomains/{id}"),
            30,
            |d| d["status"] == "active",
        )
        .await;
        (id, folder)
    }

    /// A VM of the tiny guest: direct kernel boot, serial console, VNC, one NIC.
    async fn add_vm(&self, name: &str, mode: guest::Mode) -> String {
        let r = self
            .env
            .post(
                "/vms",
                json!({"name": name, "cluster": {"name": "Default"}, "template": {"name": "Blank"},
                       "memory": (128u64 << 20).to_string(),
                       "os": {"type": "other_linux",
                              "kernel": self.guest.kernel.display().to_string(),
                              "initrd": self.guest.initrd.display().to_string(),
                              "cmdline": guest::cmdline(mode)},
                       "console": {"enabled": "true"},
                       "display": {"type": "vnc"}}),
            )
            .await;
        assert_eq!(r.status, 201, "{r}");
        r.id()
    }

    async fn wait(
        &self,
        what: &str,
        path: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.env.get(path).await;
            if r.status == 200 && pred(&r.body) {
                return r.body;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: last answer {r}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn start_vm(&self, vm: &str) {
        let r = self.env.post(&format!("/vms/{vm}/start"), json!({})).await;
        assert_eq!(r.status, 200, "start: {r}");
        self.wait("VM up", &format!("/vms/{vm}"), 60, |v| v["status"] == "up")
            .await;
    }

    /// The agent's record of a VM (what runs: devices after hot-plug, disk paths).
    fn vm_record(&self, agent: usize, vm: &str) -> Value {
        let p = self.agent_dir(agent).join("vms").join(vm).join("vm.json");
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    }

    async fn wait_marker(&self, agent: usize, vm: &str) {
        let log = self
            .agent_dir(agent)
            .join("vms")
            .join(vm)
            .join("serial.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(guest::MARKER)
        {
            assert!(Instant::now() < deadline, "the guest's marker never came");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop_vm(&self, vm: &str) {
        let r = self.env.post(&format!("/vms/{vm}/stop"), json!({})).await;
        assert_eq!(r.status, 200, "stop: {r}");
        self.wait("VM down", &format!("/vms/{vm}"), 30, |v| {
            v["status"] == "down"
        })
        .await;
    }

    async fn disk_ok(&self, disk: &str) -> Value {
        self.wait("disk ok", &format!("/disks/{disk}"), 30, |d| {
            d["status"] == "ok"
        })
        .await
    }

    async fn stop(mut self) {
        for a in self.agents.drain(..) {
            a.stop().await;
        }
        self.env.engine.halt().await;
    }
}

fn spec_nics(rec: &Value) -> Vec<String> {
    rec["spec"]["nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

fn spec_disk(rec: &Value, disk: &str) -> Option<Value> {
    rec["spec"]["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == disk)
        .cloned()
}

const OVIRTMGMT_PROFILE: &str = "0000000a-000a-000a-000a-000000000398";

/// Hot-plug of NICs and disks, CD-ROM changes and the console of one running guest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotplug_cdrom_and_console_of_a_running_vm() {
    if !available() {
        return;
    }
    let _s = SERIAL.lock().await;
    let t0 = Instant::now();
    let mut q = Q::start().await;
    q.add_host("h1").await;
    let (sd, _) = q.domain("data1", "data", "h1").await;
    let (_iso, iso_dir) = q.domain("iso1", "iso", "h1").await;
    let vm = q.add_vm("hot", guest::Mode::Stay).await;
    let env = &q.env;

    // An ISO file in the ISO domain's one image folder, as oVirt lays it out.
    let iso_id = std::fs::read_dir(&iso_dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().join("images").is_dir())
        .expect("the ISO domain's folder")
        .path();
    let files = iso_id
        .join("images")
        .join("11111111-1111-1111-1111-111111111111");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("tiny.iso"), vec![0u8; 1 << 20]).unwrap();

    // A floating disk to attach later, made while the VM is down.
    let r = env
        .post(
            "/disks",
            json!({"name": "spare", "format": "cow", "provisioned_size": (64u64 << 20).to_string(),
                   "storage_domains": {"storage_domain": [{"id": sd}]}}),
        )
        .await;
    assert_eq!(r.status, 202, "{r}");
    let spare = r.id();
    q.disk_ok(&spare).await;

    q.start_vm(&vm).await;
    q.wait_marker(0, &vm).await;
    assert!(spec_nics(&q.vm_record(0, &vm)).is_empty());

    // ---- NICs: added to the running VM, deactivated, activated, removed
    let r = env
        .post(
            &format!("/vms/{vm}/nics"),
            json!({"name": "nic1", "vnic_profile": {"id": OVIRTMGMT_PROFILE}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let nic = r.id();
    assert_eq!(r.body["plugged"], "true");
    assert_eq!(spec_nics(&q.vm_record(0, &vm)), vec![nic.clone()]);
    let r = env.delete(&format!("/vms/{vm}/nics/{nic}")).await;
    assert_eq!(r.status, 409, "a plugged NIC of a running VM stays: {r}");
    let r = env
        .post(&format!("/vms/{vm}/nics/{nic}/deactivate"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(spec_nics(&q.vm_record(0, &vm)).is_empty());
    assert_eq!(
        env.get(&format!("/vms/{vm}/nics/{nic}")).await.body["plugged"],
        "false"
    );
    let r = env
        .post(&format!("/vms/{vm}/nics/{nic}/activate"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(spec_nics(&q.vm_record(0, &vm)), vec![nic.clone()]);
    // `plugged` by update works the same way.
    let r = env
        .put(
            &format!("/vms/{vm}/nics/{nic}"),
            json!({"plugged": "false"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(spec_nics(&q.vm_record(0, &vm)).is_empty());
    let r = env.delete(&format!("/vms/{vm}/nics/{nic}")).await;
    assert_eq!(r.status, 200, "{r}");

    // ---- disks: an existing disk attached active, deactivated and activated by update
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"disk": {"id": spare}, "interface": "virtio", "active": "true"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    let d = spec_disk(&q.vm_record(0, &vm), &spare).expect("the disk is plugged");
    assert!(d["path"].as_str().unwrap().contains(&sd), "{d}");
    let r = env
        .put(
            &format!("/vms/{vm}/diskattachments/{spare}"),
            json!({"active": "false"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(spec_disk(&q.vm_record(0, &vm), &spare).is_none());
    let r = env
        .delete(&format!("/vms/{vm}/diskattachments/{spare}"))
        .await;
    assert_eq!(r.status, 200, "an inactive disk detaches: {r}");

    // A host that refuses: IDE disks cannot be hot-plugged. A clear fault, nothing attached.
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"disk": {"id": spare}, "interface": "ide", "active": "true"}),
        )
        .await;
    assert_eq!(r.status, 409, "{r}");
    assert!(r.detail().contains("cannot be hot-plugged"), "{r}");
    assert!(env
        .list(&format!("/vms/{vm}/diskattachments"))
        .await
        .is_empty());

    // A new disk added active to the running VM is plugged once its volume exists.
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "active": "true",
                   "disk": {"name": "fresh", "format": "cow", "provisioned_size": (32u64 << 20).to_string(),
                            "storage_domains": {"storage_domain": [{"id": sd}]}}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let fresh = r.body["disk"]["id"].as_str().unwrap().to_string();
    q.disk_ok(&fresh).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while spec_disk(&q.vm_record(0, &vm), &fresh).is_none() {
        assert!(Instant::now() < deadline, "the new disk was never plugged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // ---- CD-ROM: `current=true` changes the running VM's medium only
    let cds = env.list(&format!("/vms/{vm}/cdroms")).await;
    let cd = cds[0]["id"].as_str().unwrap().to_string();
    let r = env
        .put(
            &format!("/vms/{vm}/cdroms/{cd}?current=true"),
            json!({"file": {"id": "tiny.iso"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let rec = q.vm_record(0, &vm);
    assert!(
        rec["spec"]["cdrom"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/tiny.iso"),
        "{}",
        rec["spec"]
    );
    assert!(env
        .get(&format!("/vms/{vm}/cdroms/{cd}"))
        .await
        .body
        .get("file")
        .is_none());
    let r = env
        .put(
            &format!("/vms/{vm}/cdroms/{cd}?current=true"),
            json!({"file": {"id": "missing.iso"}}),
        )
        .await;
    assert_eq!(r.status, 409, "{r}");
    let r = env
        .put(
            &format!("/vms/{vm}/cdroms/{cd}?current=true"),
            json!({"file": {"id": ""}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert!(q.vm_record(0, &vm)["spec"]["cdrom"].is_null());
    // Without `current` the stored CD changes, for the next run.
    let r = env
        .put(
            &format!("/vms/{vm}/cdroms/{cd}"),
            json!({"file": {"id": "tiny.iso"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        env.get(&format!("/vms/{vm}/cdroms/{cd}")).await.body["file"]["id"],
        "tiny.iso"
    );

    // ---- console: a ticket sets the VNC password, the .vv file names the real port
    let consoles = env
        .list(&format!("/vms/{vm}/graphicsconsoles?current=true"))
        .await;
    let gc = consoles[0]["id"].as_str().unwrap().to_string();
    let port = int(&consoles[0]["port"]);
    assert!(port >= 5900, "{}", consoles[0]);
    let r = env
        .post(
            &format!("/vms/{vm}/graphicsconsoles/{gc}/ticket"),
            json!({"ticket": {"value": "s3cret", "expiry": "120"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    // A VNC server with a password offers VNC authentication (security type 2).
    assert_eq!(vnc_security_types(port as u16).await, vec![2]);
    let r = env
        .post(
            &format!("/vms/{vm}/graphicsconsoles/{gc}/remoteviewerconnectionfile"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let vv = r.body["remote_viewer_connection_file"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    for want in [
        "[virt-viewer]",
        "type=vnc",
        "host=127.0.0.1",
        &format!("port={port}"),
        "password=",
        "delete-this-file=1",
        "title=",
    ] {
        assert!(vv.contains(want), "{want} in {vv}");
    }

    q.stop_vm(&vm).await;
    assert!(qemu_pids(q.root.path())
        .iter()
        .all(|p| !pid_alive(*p as i64)));
    eprintln!("hot-plug, CD-ROM, console: {:?}", t0.elapsed());
    q.stop().await;
}

/// The security types a VNC server offers (RFB 3.8 handshake).
async fn vnc_security_types(port: u16) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await.unwrap();
    s.write_all(b"RFB 003.008\n").await.unwrap();
    let n = s.read_u8().await.unwrap();
    let mut types = vec![0u8; n as usize];
    s.read_exact(&mut types).await.unwrap();
    types
}

fn qemu_io(file: &Path, cmd: &str) -> String {
    // Reads share the image (-U, read-only); writes happen with the VM down.
    let mut args = vec!["-c", cmd];
    if cmd.starts_with("read") {
        args.extend(["-r", "-U"]);
    }
    let out = std::process::Command::new("qemu-io")
        .args(&args)
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "qemu-io {cmd}: {text}");
    text
}

/// The chain of a volume, top first, as file names.
fn chain(file: &Path) -> Vec<String> {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--backing-chain", "--output=json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            Path::new(i["filename"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

async fn image_id(env: &Env, disk: &str) -> String {
    env.get(&format!("/disks/{disk}")).await.body["image_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn snapshot(q: &Q, vm: &str, description: &str) -> String {
    let r = q
        .env
        .post(
            &format!("/vms/{vm}/snapshots"),
            json!({"description": description, "persist_memorystate": "false"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.body["snapshot_status"], "ok", "{r}");
    r.id()
}

/// Snapshots on real qcow2 chains: cold and live, delete (cold and live merge), preview,
/// undo, commit and restore, with the data each volume holds checked by qemu-io.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_on_real_chains() {
    if !available() {
        return;
    }
    let _s = SERIAL.lock().await;
    let t0 = Instant::now();
    let mut q = Q::start().await;
    q.add_host("h1").await;
    let (sd, folder) = q.domain("data1", "data", "h1").await;
    let vm = q.add_vm("snap", guest::Mode::Stay).await;
    let env = &q.env;
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "active": "true", "bootable": "false",
                   "disk": {"name": "d1", "format": "cow", "provisioned_size": (32u64 << 20).to_string(),
                            "storage_domains": {"storage_domain": [{"id": sd}]}}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let disk = r.body["disk"]["id"].as_str().unwrap().to_string();
    q.disk_ok(&disk).await;
    let images = folder.join(&sd).join("images").join(&disk);
    let vol = |v: &str| images.join(v);
    let v0 = image_id(env, &disk).await;
    qemu_io(&vol(&v0), "write -P 0x11 0 64k");

    // ---- cold snapshot: the disk writes into a new overlay, the snapshot keeps v0
    let s1 = snapshot(&q, &vm, "cold").await;
    let v1 = image_id(env, &disk).await;
    assert_ne!(v1, v0);
    assert_eq!(chain(&vol(&v1)), [v1.clone(), v0.clone()]);
    let sdisks = env.list(&format!("/vms/{vm}/snapshots/{s1}/disks")).await;
    assert_eq!(sdisks.len(), 1, "{sdisks:?}");
    assert_eq!(sdisks[0]["image_id"], v0.as_str());
    let snaps = env.list(&format!("/vms/{vm}/snapshots")).await;
    let mut descs: Vec<&str> = snaps
        .iter()
        .map(|s| s["description"].as_str().unwrap())
        .collect();
    descs.sort();
    assert_eq!(descs, ["Active VM", "cold"]);
    qemu_io(&vol(&v1), "write -P 0x22 0 64k");

    // ---- live snapshot and live merge on the running VM
    q.start_vm(&vm).await;
    let path = |q: &Q| {
        spec_disk(&q.vm_record(0, &vm), &disk).unwrap()["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(path(&q).ends_with(&v1), "the VM runs on the active volume");
    let s2 = snapshot(&q, &vm, "live").await;
    let v2 = image_id(env, &disk).await;
    assert!(path(&q).ends_with(&v2), "QEMU writes into the new overlay");
    assert_eq!(chain(&vol(&v2)), [v2.clone(), v1.clone(), v0.clone()]);
    let r = env.delete(&format!("/vms/{vm}/snapshots/{s2}")).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(
        image_id(env, &disk).await,
        v1,
        "the active layer merged into v1"
    );
    assert!(path(&q).ends_with(&v1), "QEMU pivoted onto v1");
    assert!(!vol(&v2).exists());
    let r = env
        .post(
            &format!("/vms/{vm}/previewsnapshot"),
            json!({"snapshot": {"id": s1}}),
        )
        .await;
    assert_eq!(r.status, 409, "preview needs the VM down: {r}");
    q.stop_vm(&vm).await;

    // ---- preview and undo
    let s3 = snapshot(&q, &vm, "third").await;
    let v3 = image_id(env, &disk).await;
    let r = env
        .post(
            &format!("/vms/{vm}/previewsnapshot"),
            json!({"snapshot": {"id": s1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let vp = image_id(env, &disk).await;
    assert_eq!(chain(&vol(&vp)), [vp.clone(), v0.clone()]);
    qemu_io(&vol(&vp), "read -P 0x11 0 64k");
    assert_eq!(
        env.get(&format!("/vms/{vm}/snapshots/{s1}")).await.body["snapshot_status"],
        "in_preview"
    );
    let snaps = env.list(&format!("/vms/{vm}/snapshots")).await;
    assert!(
        snaps.iter().any(|s| s["snapshot_type"] == "preview"),
        "{snaps:?}"
    );
    let r = env
        .post(&format!("/vms/{vm}/snapshots"), json!({"description": "x"}))
        .await;
    assert_eq!(r.status, 409, "no snapshot during a preview: {r}");
    let r = env
        .post(&format!("/vms/{vm}/undosnapshot"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(image_id(env, &disk).await, v3);
    assert!(!vol(&vp).exists());
    assert_eq!(env.list(&format!("/vms/{vm}/snapshots")).await.len(), 3);

    // ---- preview and commit: the snapshots after s1 go, with their volumes
    let r = env
        .post(
            &format!("/vms/{vm}/previewsnapshot"),
            json!({"snapshot": {"id": s1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let vp = image_id(env, &disk).await;
    let r = env
        .post(&format!("/vms/{vm}/commitsnapshot"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(image_id(env, &disk).await, vp);
    assert_eq!(
        env.get(&format!("/vms/{vm}/snapshots/{s3}")).await.status,
        404
    );
    assert!(!vol(&v3).exists() && !vol(&v1).exists());
    assert_eq!(chain(&vol(&vp)), [vp.clone(), v0.clone()]);

    // ---- restore (preview + commit) and a cold merge into v0
    qemu_io(&vol(&vp), "write -P 0x33 0 64k");
    let r = env
        .post(&format!("/vms/{vm}/snapshots/{s1}/restore"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    let vr = image_id(env, &disk).await;
    assert!(!vol(&vp).exists());
    qemu_io(&vol(&vr), "read -P 0x11 0 64k");
    qemu_io(&vol(&vr), "write -P 0x44 0 64k");
    let r = env.delete(&format!("/vms/{vm}/snapshots/{s1}")).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(image_id(env, &disk).await, v0);
    assert!(!vol(&vr).exists());
    qemu_io(&vol(&v0), "read -P 0x44 0 64k");
    let snaps = env.list(&format!("/vms/{vm}/snapshots")).await;
    assert_eq!(snaps.len(), 1, "only the Active VM is left: {snaps:?}");
    let r = env
        .delete(&format!(
            "/vms/{vm}/snapshots/{}",
            snaps[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 409, "{r}");

    // The VM still boots from its (merged) disk.
    q.start_vm(&vm).await;
    assert!(path(&q).ends_with(&v0));
    q.stop_vm(&vm).await;
    eprintln!("snapshots: {:?}", t0.elapsed());
    q.stop().await;
}

async fn events_of(env: &Env, vm: &str) -> Vec<(i64, String)> {
    env.list("/events")
        .await
        .iter()
        .filter(|e| e["vm"]["id"] == vm)
        .map(|e| {
            (
                int(&e["code"]),
                e["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn host_of(vm: &Value) -> String {
    vm["host"]["id"].as_str().unwrap_or_default().to_string()
}

/// Live migration through the API between two real agents on loopback (shared posixfs
/// storage): to a chosen host, to the scheduler's, and away from a host going to maintenance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_and_maintenance_between_two_agents() {
    if !available() {
        return;
    }
    let _s = SERIAL.lock().await;
    let t0 = Instant::now();
    let mut q = Q::start().await;
    let h1 = q.add_host("h1").await;
    let h2 = q.add_host("h2").await;
    let (sd, _) = q.domain("shared", "data", "h1").await;
    let vm = q.add_vm("mover", guest::Mode::Stay).await;
    let env = &q.env;
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "active": "true",
                   "disk": {"name": "m1", "format": "cow", "provisioned_size": (32u64 << 20).to_string(),
                            "storage_domains": {"storage_domain": [{"id": sd}]}}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    q.disk_ok(r.body["disk"]["id"].as_str().unwrap()).await;
    q.start_vm(&vm).await;
    let agent_of = |host: &str| if host == h1 { 0 } else { 1 };
    let mut at = host_of(&env.get(&format!("/vms/{vm}")).await.body);
    q.wait_marker(agent_of(&at), &vm).await;
    // A NIC hot-plugged before the move: the destination must have the same devices.
    let r = env
        .post(
            &format!("/vms/{vm}/nics"),
            json!({"name": "nic1", "vnic_profile": {"id": OVIRTMGMT_PROFILE}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r}");

    // To a chosen host, then to wherever the scheduler puts it (the other one).
    for chosen in [true, false] {
        let from = at.clone();
        let to = if from == h1 { h2.clone() } else { h1.clone() };
        let src_pid = q.vm_record(agent_of(&from), &vm)["pid"].as_i64().unwrap();
        let body = if chosen {
            json!({"host": {"id": to}})
        } else {
            json!({})
        };
        let r = env.post(&format!("/vms/{vm}/migrate"), body).await;
        assert_eq!(r.status, 200, "{r}");
        let mut seen_migrating = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = env.get(&format!("/vms/{vm}")).await.body;
            if v["status"] == "migrating" {
                seen_migrating = true;
                let stats = env.list(&format!("/vms/{vm}/statistics")).await;
                assert!(stats.iter().any(|s| s["name"] == "migration.progress"));
            }
            if v["status"] == "up" && host_of(&v) == to {
                break;
            }
            if Instant::now() > deadline {
                let log = |n: usize| {
                    std::fs::read_to_string(q.agent_dir(n).join("vms").join(&vm).join("qemu.log"))
                        .unwrap_or_default()
                };
                panic!(
                    "never up on the destination: status {}, events {:?}, qemu logs {} / {}",
                    v["status"],
                    events_of(env, &vm).await,
                    log(0),
                    log(1)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("migration to {to} (chosen: {chosen}), migrating seen: {seen_migrating}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while pid_alive(src_pid) {
            assert!(Instant::now() < deadline, "the source QEMU is still there");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let dst_pid = q.vm_record(agent_of(&to), &vm)["pid"].as_i64().unwrap();
        assert!(pid_alive(dst_pid));
        at = to;
    }
    let codes: Vec<i64> = events_of(env, &vm).await.iter().map(|e| e.0).collect();
    assert!(codes.contains(&62) && codes.contains(&63), "{codes:?}");

    // Maintenance moves the VM away first.
    let r = env
        .post(&format!("/hosts/{at}/deactivate"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    let other = if at == h1 { h2.clone() } else { h1.clone() };
    q.wait("the VM on the other host", &format!("/vms/{vm}"), 60, |v| {
        v["status"] == "up" && host_of(v) == other
    })
    .await;
    q.wait("maintenance", &format!("/hosts/{at}"), 30, |h| {
        h["status"] == "maintenance"
    })
    .await;
    assert!(events_of(env, &vm).await.iter().any(|e| e.0 == 67));
    q.stop_vm(&vm).await;
    eprintln!("migrations: {:?}", t0.elapsed());
    q.stop().await;
}

/// Suspend to the storage domain and resume from it, then a guest that powers itself off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_a_guest_that_powers_off() {
    if !available() {
        return;
    }
    let _s = SERIAL.lock().await;
    let t0 = Instant::now();
    let mut q = Q::start().await;
    q.add_host("h1").await;
    let (sd, folder) = q.domain("data1", "data", "h1").await;
    let vm = q.add_vm("sleeper", guest::Mode::Stay).await;
    let env = &q.env;
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "active": "true",
                   "disk": {"name": "s1", "format": "cow", "provisioned_size": (32u64 << 20).to_string(),
                            "storage_domains": {"storage_domain": [{"id": sd}]}}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    q.disk_ok(r.body["disk"]["id"].as_str().unwrap()).await;
    q.start_vm(&vm).await;
    q.wait_marker(0, &vm).await;
    let log = q.agent_dir(0).join("vms").join(&vm).join("serial.log");
    let ticks = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("VIREO-TICK")
            .count()
    };
    while ticks() < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let r = env.post(&format!("/vms/{vm}/suspend"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    q.wait("suspended", &format!("/vms/{vm}"), 60, |v| {
        v["status"] == "suspended"
    })
    .await;
    let state = folder
        .join(&sd)
        .join("images")
        .join(&vm)
        .join("memory.state");
    assert!(
        std::fs::metadata(&state)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "the memory state is on the storage domain: {}",
        state.display()
    );
    assert!(qemu_pids(q.root.path())
        .iter()
        .all(|p| !pid_alive(*p as i64)));

    // `start` resumes it: the guest goes on counting where it stopped.
    let before = ticks();
    q.start_vm(&vm).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks() <= before {
        assert!(Instant::now() < deadline, "the restored guest does not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once resumed, the memory state has served: it leaves the domain.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.exists() {
        assert!(
            Instant::now() < deadline,
            "the memory state stays after the resume: {}",
            state.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text[text.len().saturating_sub(4000)..].contains("VIREO-GUEST-OK\nVIREO-TICK 1\n")
            || text.matches(guest::MARKER).count() == 1,
        "resumed, not rebooted"
    );
    q.stop_vm(&vm).await;

    // A guest that powers itself off is down, and the engine says why.
    let r = env
        .put(
            &format!("/vms/{vm}"),
            json!({"os": {"cmdline": guest::cmdline(guest::Mode::PowerOff)}}),
        )
        .await;
    assert_eq!(r.status, 200, "{r}");
    let r = env.post(&format!("/vms/{vm}/start"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    q.wait("the guest down by itself", &format!("/vms/{vm}"), 60, |v| {
        v["status"] == "down"
    })
    .await;
    let down = events_of(env, &vm).await;
    assert!(
        down.iter()
            .any(|(c, d)| *c == 61 && d.contains("User shut down from within the guest")),
        "{down:?}"
    );
    eprintln!("suspend, resume, power-off: {:?}", t0.elapsed());
    q.stop().await;
}

/// The same snapshot operations on simulated hosts, whose volumes are metadata: no QEMU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_on_simulated_hosts() {
    let mut env = Env::start().await;
    env.add_host("s1").await;
    let sd = env.data_domain("simdata", "s1").await;
    let vm = env.add_vm("simsnap").await;
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "active": "true",
                   "disk": {"name": "sd1", "format": "cow", "provisioned_size": (1u64 << 30).to_string(),
                            "storage_domains": {"storage_domain": [{"id": sd}]}}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let disk = r.body["disk"]["id"].as_str().unwrap().to_string();
    env.wait("disk ok", &format!("/disks/{disk}"), |d| {
        d["status"] == "ok"
    })
    .await;
    let v0 = image_id(&env, &disk).await;
    let take = |d: &'static str| {
        let (env, vm) = (&env, vm.clone());
        async move {
            let r = env
                .post(&format!("/vms/{vm}/snapshots"), json!({"description": d}))
                .await;
            assert_eq!(r.status, 201, "{r}");
            r.id()
        }
    };
    let s1 = take("one").await;
    let v1 = image_id(&env, &disk).await;
    assert_ne!(v0, v1);
    // Running (on a simulated host): the snapshot and its merge are metadata too.
    let r = env.post(&format!("/vms/{vm}/start"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("up", &format!("/vms/{vm}"), |v| v["status"] == "up")
        .await;
    let s2 = take("two").await;
    assert_ne!(image_id(&env, &disk).await, v1);
    let r = env.delete(&format!("/vms/{vm}/snapshots/{s2}")).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(image_id(&env, &disk).await, v1);
    let r = env.post(&format!("/vms/{vm}/stop"), json!({})).await;
    assert_eq!(r.status, 200, "{r}");
    env.wait("down", &format!("/vms/{vm}"), |v| v["status"] == "down")
        .await;
    for (action, body) in [
        ("previewsnapshot", json!({"snapshot": {"id": s1}})),
        ("undosnapshot", json!({})),
        ("previewsnapshot", json!({"snapshot": {"id": s1}})),
        ("commitsnapshot", json!({})),
    ] {
        let r = env.post(&format!("/vms/{vm}/{action}"), body).await;
        assert_eq!(r.status, 200, "{action}: {r}");
    }
    let r = env
        .post(&format!("/vms/{vm}/snapshots/{s1}/restore"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{r}");
    let r = env.delete(&format!("/vms/{vm}/snapshots/{s1}")).await;
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(image_id(&env, &disk).await, v0);
    let r = env
        .post(&format!("/vms/{vm}/undosnapshot"), json!({}))
        .await;
    assert_eq!(r.status, 409, "nothing in preview: {r}");
    let r = env
        .post(
            &format!("/vms/{vm}/snapshots"),
            json!({"persist_memorystate": "false"}),
        )
        .await;
    assert_eq!(r.status, 400, "a description is required: {r}");
    env.stop().await;
}

/// A VM cloned from a snapshot on real volumes: its disk is a copy of the volume the snapshot
/// froze (the data of then, not of the active layer), on a chain of its own; removing the
/// source VM then deletes every volume of its disk, the frozen ones too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_cloned_from_a_snapshot_on_real_volumes() {
    if !available() {
        return;
    }
    let _s = SERIAL.lock().await;
    let mut q = Q::start().await;
    q.add_host("h1").await;
    let (sd, folder) = q.domain("data1", "data", "h1").await;
    let vm = q.add_vm("origin", guest::Mode::Stay).await;
    let env = &q.env;
    let r = env
        .post(
            &format!("/vms/{vm}/diskattachments"),
            json!({"interface": "virtio", "active": "true", "bootable": "false",
                   "disk": {"name": "c1", "format": "cow", "provisioned_size": (32u64 << 20).to_string(),
                            "storage_domains": {"storage_domain": [{"id": sd}]}}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let disk = r.body["disk"]["id"].as_str().unwrap().to_string();
    q.disk_ok(&disk).await;
    let images = folder.join(&sd).join("images");
    let v0 = image_id(env, &disk).await;
    qemu_io(&images.join(&disk).join(&v0), "write -P 0x11 0 64k");
    let s1 = snapshot(&q, &vm, "then").await;
    let v1 = image_id(env, &disk).await;
    qemu_io(&images.join(&disk).join(&v1), "write -P 0x22 0 64k");

    let r = env
        .post(
            "/vms",
            json!({"name": "fromthen", "snapshots": {"snapshot": [{"id": s1}]}}),
        )
        .await;
    assert!(r.status == 201 || r.status == 202, "{r}");
    let clone = r.id();
    let atts = env.list(&format!("/vms/{clone}/diskattachments")).await;
    assert_eq!(atts.len(), 1, "{atts:?}");
    let copy = atts[0]["disk"]["id"].as_str().unwrap().to_string();
    q.disk_ok(&copy).await;
    let cv = image_id(env, &copy).await;
    let cfile = images.join(&copy).join(&cv);
    assert_eq!(chain(&cfile), vec![cv.clone()], "a chain of its own");
    let text = qemu_io(&cfile, "read -P 0x11 0 64k");
    assert!(!text.contains("failed"), "the snapshot's data: {text}");

    // The source goes with all its volumes; the clone keeps its copy.
    let r = env.delete(&format!("/vms/{vm}")).await;
    assert_eq!(r.status, 200, "{r}");
    let dir = images.join(&disk);
    let deadline = Instant::now() + Duration::from_secs(20);
    while [&v0, &v1].iter().any(|v| dir.join(v).exists()) {
        assert!(
            Instant::now() < deadline,
            "volumes of the removed VM stay: {:?}",
            std::fs::read_dir(&dir).map(|d| d.count())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cfile.exists());
    q.stop().await;
}
