//! The QEMU driver with real guests (TCG where KVM does not run guests): boot by direct kernel
//! boot, consoles, pause/resume, crash, hot-plug, live migration, suspend/restore, and an agent
//! restart that finds its VMs again.

mod qemu_support;

use std::io::Read;
use std::time::Duration;

use qemu_support::*;
use vireo_agent::qemu::{guest::Mode, probe, AccelChoice, Qemu};
use vireo_agent_proto::{AccelKind, ErrorCode, Hypervisor, NicSpec, VmOperation, VmState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_decides_the_accelerator_and_says_why() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = Qemu::new(env.path("a"), AccelChoice::Auto).await.unwrap();
    let accel = q.accel().clone();
    eprintln!("accelerator: {:?}: {}", accel.kind, accel.detail);
    assert!(matches!(accel.kind, AccelKind::Kvm | AccelKind::Tcg));
    assert!(
        accel.detail.contains(" ms"),
        "the detail gives timings: {}",
        accel.detail
    );
    let caps = q.capabilities().await.unwrap();
    assert_eq!(caps.accel, accel);
    assert!(!caps.simulated && caps.qemu_version.is_some() && caps.memory_bytes > 0);
    // The probe guest itself is sound: under TCG it always reaches the exit port.
    let run = probe::run(
        q.qemu_binary(),
        "tcg",
        &env.path("p"),
        Duration::from_secs(20),
    )
    .await;
    assert!(run.ok, "{}", run.detail);
    assert_eq!(run.stages, "RLMC");
    let tcg = Qemu::new(env.path("b"), AccelChoice::Tcg).await.unwrap();
    assert_eq!(tcg.accel().kind, AccelKind::Tcg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_boots_prints_its_marker_and_powers_off() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = agent(&env, "a").await;
    let mut spec = spec(&env, Mode::PowerOff, 128);
    spec.watchdog = Some(vireo_agent_proto::WatchdogSpec {
        model: "i6300esb".into(),
        action: "reset".into(),
    });
    let rt = q.create_vm(&spec).await.unwrap();
    assert_eq!(rt.state, VmState::Up);
    let pid = rt.pid.expect("a pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&cmdline).contains(&spec.id),
        "the process names the VM"
    );
    wait_marker(&q, &spec.id).await;
    let down = wait_state(&q, &spec.id, VmState::Down, Duration::from_secs(30)).await;
    assert_eq!(down.exit_reason.as_deref(), Some("shutdown"), "{down:?}");
    assert!(down.pid.is_none());
    assert!(!ps_shows(&spec.id));
    // Listed as down until destroyed; then gone.
    assert_eq!(q.list_vms().await.unwrap().len(), 1);
    q.vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
    assert_eq!(
        q.get_vm(&spec.id).await.unwrap_err().code,
        ErrorCode::NoSuchVm
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_crash_is_reported() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = agent(&env, "a").await;
    let spec = spec(&env, Mode::Panic, 128);
    q.create_vm(&spec).await.unwrap();
    let down = wait_state(&q, &spec.id, VmState::Down, Duration::from_secs(50)).await;
    assert_eq!(down.exit_reason.as_deref(), Some("crash"), "{down:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnc_console_ticket_pause_resume_and_stop() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = agent(&env, "a").await;
    let spec = spec(&env, Mode::Stay, 128);
    let rt = q.create_vm(&spec).await.unwrap();
    assert!(ps_shows(&spec.id), "ps shows the VM id");
    let vnc = rt
        .consoles
        .iter()
        .find(|c| c.protocol == "vnc")
        .expect("a VNC console")
        .clone();
    assert_eq!(vnc.address, "127.0.0.1");
    let mut s = std::net::TcpStream::connect((vnc.address.as_str(), vnc.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = [0u8; 12];
    s.read_exact(&mut hello).unwrap();
    assert!(
        hello.starts_with(b"RFB 003."),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );
    drop(s);
    q.vm_operation(
        &spec.id,
        &VmOperation::SetTicket {
            protocol: "vnc".into(),
            password: "s3cr3t".into(),
            ttl_s: 120,
        },
    )
    .await
    .unwrap();

    wait_marker(&q, &spec.id).await;
    let rt = q.vm_operation(&spec.id, &VmOperation::Pause).await.unwrap();
    assert_eq!(rt.state, VmState::Paused);
    // Paused means no guest progress: the tick counter stands still.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = serial_log(&q, &spec.id);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        serial_log(&q, &spec.id),
        before,
        "a paused guest prints nothing"
    );
    assert_eq!(q.get_vm(&spec.id).await.unwrap().state, VmState::Paused);
    let rt = q
        .vm_operation(&spec.id, &VmOperation::Resume)
        .await
        .unwrap();
    assert_eq!(rt.state, VmState::Up);
    wait_for("ticks after resume", Duration::from_secs(20), || async {
        (serial_log(&q, &spec.id).len() > before.len()).then_some(())
    })
    .await;

    let st = q.stats().await.unwrap();
    assert!(st.memory_total > 0 && st.vms.len() == 1);
    assert!(st.vms[0].stats.memory_used > 0);

    let rt = q
        .vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
    assert_eq!(rt.state, VmState::Down);
    assert_eq!(rt.exit_reason.as_deref(), Some("user"));
    assert!(!ps_shows(&spec.id), "the QEMU process is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotplug_nic_disk_and_cdrom() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = agent(&env, "a").await;
    let spec = spec(&env, Mode::Stay, 128);
    q.create_vm(&spec).await.unwrap();
    wait_marker(&q, &spec.id).await;

    let nic = NicSpec {
        id: "nic2".into(),
        mac: "56:6f:6c:00:00:02".into(),
        model: "virtio".into(),
        network: None,
        linked: true,
    };
    let rt = q
        .vm_operation(&spec.id, &VmOperation::HotplugNic { nic })
        .await
        .unwrap();
    assert_eq!(rt.nics, ["nic1", "nic2"]);

    let img = env.path("hot.qcow2");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg("64M")
        .status()
        .unwrap();
    assert!(st.success());
    let rt = q
        .vm_operation(
            &spec.id,
            &VmOperation::HotplugDisk {
                disk: disk("hd2", &img, "qcow2"),
            },
        )
        .await
        .unwrap();
    assert_eq!(rt.disks, ["hd2"]);

    let iso = env.path("media.iso");
    std::fs::write(&iso, vec![0u8; 1 << 20]).unwrap();
    q.vm_operation(
        &spec.id,
        &VmOperation::ChangeCdrom {
            path: Some(iso.to_string_lossy().into_owned()),
        },
    )
    .await
    .unwrap();
    q.vm_operation(&spec.id, &VmOperation::ChangeCdrom { path: None })
        .await
        .unwrap();

    // Unplugging needs the guest's PCIe hot-plug driver to let go (it waits 5 s by design).
    let rt = q
        .vm_operation(&spec.id, &VmOperation::HotunplugNic { id: "nic2".into() })
        .await
        .unwrap();
    assert_eq!(rt.nics, ["nic1"]);
    // The record follows the hot-plugs: an agent restart would see the same devices.
    let rec = std::fs::read_to_string(q.vm_dir(&spec.id).join("vm.json")).unwrap();
    assert!(rec.contains("hd2") && !rec.contains("nic2"));
    q.vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_migration_between_two_agents_on_loopback() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let src = agent(&env, "src").await;
    let dst = agent(&env, "dst").await;
    let spec = spec(&env, Mode::Stay, 128);
    let rt = src.create_vm(&spec).await.unwrap();
    let src_pid = rt.pid.unwrap();
    wait_marker(&src, &spec.id).await;

    let rt = dst
        .vm_operation(
            &spec.id,
            &VmOperation::PrepareIncoming {
                spec: Box::new(spec.clone()),
            },
        )
        .await
        .unwrap();
    assert_eq!(rt.state, VmState::MigratingTo);
    let port: u16 = rt
        .migration
        .as_ref()
        .unwrap()
        .destination
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rt = src
        .vm_operation(
            &spec.id,
            &VmOperation::Migrate {
                destination_address: "127.0.0.1".into(),
                destination_port: port,
            },
        )
        .await
        .unwrap();
    assert_eq!(rt.state, VmState::MigratingFrom);

    let down = wait_state(&src, &spec.id, VmState::Down, Duration::from_secs(50)).await;
    assert_eq!(down.exit_reason.as_deref(), Some("migrated"), "{down:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{src_pid}")).exists()
            || !vireo_agent::qemu::stats::pid_alive(src_pid),
        "source QEMU gone"
    );
    let up = wait_state(&dst, &spec.id, VmState::Up, Duration::from_secs(20)).await;
    assert!(up.pid.is_some());
    // The guest goes on where it was: its ticks continue on the destination's console.
    wait_for(
        "the guest ticking on the destination",
        Duration::from_secs(20),
        || async {
            serial_log(&dst, &spec.id)
                .contains("VIREO-TICK")
                .then_some(())
        },
    )
    .await;
    dst.vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_to_file_and_restore() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = agent(&env, "a").await;
    let mut spec = spec(&env, Mode::Stay, 128);
    q.create_vm(&spec).await.unwrap();
    wait_marker(&q, &spec.id).await;
    let state_file = env.path("sd/memory.state");
    q.vm_operation(
        &spec.id,
        &VmOperation::Suspend {
            path: state_file.to_string_lossy().into_owned(),
        },
    )
    .await
    .unwrap();
    let rt = wait_state(&q, &spec.id, VmState::Suspended, Duration::from_secs(40)).await;
    assert_eq!(rt.exit_reason.as_deref(), Some("suspended"));
    assert!(!ps_shows(&spec.id));
    assert!(std::fs::metadata(&state_file).unwrap().len() > 1 << 20);

    let ticks_before = serial_log(&q, &spec.id).matches("VIREO-TICK").count();
    spec.restore_from = Some(state_file.to_string_lossy().into_owned());
    q.create_vm(&spec).await.unwrap();
    wait_state(&q, &spec.id, VmState::Up, Duration::from_secs(30)).await;
    // A restored guest does not boot again: no marker, only more ticks.
    wait_for("ticks after restore", Duration::from_secs(20), || async {
        serial_log(&q, &spec.id)
            .contains("VIREO-TICK")
            .then_some(())
    })
    .await;
    assert!(
        !serial_log(&q, &spec.id).contains(vireo_agent::qemu::guest::MARKER),
        "restored, not rebooted (before: {ticks_before} ticks)"
    );
    q.vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
}

#[test]
fn agent_restart_finds_the_running_vm_again() {
    if !available() {
        return;
    }
    let _s = serial_blocking();
    let env = Env::new();
    let spec = spec(&env, Mode::Stay, 128);
    // The first agent runs in its own runtime; dropping that runtime ends all its tasks and
    // connections, as the agent process exiting would.
    let first_pid = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let q = agent(&env, "a").await;
            let vm = q.create_vm(&spec).await.unwrap();
            wait_marker(&q, &spec.id).await;
            vm.pid.unwrap()
        })
    };
    assert!(
        vireo_agent::qemu::stats::pid_alive(first_pid),
        "the VM outlives the agent"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let q = agent(&env, "a").await;
        let vms = q.list_vms().await.unwrap();
        assert_eq!(vms.len(), 1);
        assert_eq!(vms[0].state, VmState::Up);
        assert_eq!(vms[0].pid, Some(first_pid));
        assert!(vms[0].consoles.iter().any(|c| c.protocol == "vnc"));
        // Driven over QMP again: pause and resume, then stop.
        assert_eq!(
            q.vm_operation(&spec.id, &VmOperation::Pause)
                .await
                .unwrap()
                .state,
            VmState::Paused
        );
        assert_eq!(
            q.vm_operation(&spec.id, &VmOperation::Resume)
                .await
                .unwrap()
                .state,
            VmState::Up
        );
        let down = q
            .vm_operation(&spec.id, &VmOperation::Destroy)
            .await
            .unwrap();
        assert_eq!(down.state, VmState::Down);
    });
}
