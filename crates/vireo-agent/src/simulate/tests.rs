//! The simulation's behaviour under paused tokio time: transitions at their instants, the
//! operation table, resources and storage accounting.

use std::time::Duration;

use tokio::sync::watch;
use vireo_agent_proto::*;

use super::*;
use crate::config::{AccelChoice, HostContext};

fn host() -> SimHost {
    let (_, rx) = watch::channel(Some("host-1".to_string()));
    SimHost::new(HostContext {
        index: 0,
        data_dir: "/nonexistent".into(),
        listen: "127.0.0.1:54321".parse().unwrap(),
        accel: AccelChoice::Auto,
        machine_id: "0123456789abcdef".into(),
        host_id: rx,
    })
}

fn spec(id: &str, memory_gib: u64) -> VmSpec {
    VmSpec {
        id: id.into(),
        name: id.into(),
        memory_bytes: memory_gib << 30,
        sockets: 1,
        cores: 2,
        threads: 1,
        graphics: vec![GraphicsSpec {
            protocol: "vnc".into(),
        }],
        ..VmSpec::default()
    }
}

async fn state(h: &SimHost, id: &str) -> VmState {
    h.get_vm(id).await.unwrap().state
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn a_vm_launches_powers_up_and_comes_up_on_time() {
    let h = host();
    let vm = h.create_vm(&spec("vm1", 1)).await.unwrap();
    assert_eq!(vm.state, VmState::WaitForLaunch);
    sleep_ms(499).await;
    assert_eq!(state(&h, "vm1").await, VmState::WaitForLaunch);
    sleep_ms(2).await;
    assert_eq!(state(&h, "vm1").await, VmState::PoweringUp);
    sleep_ms(1000).await;
    let vm = h.get_vm("vm1").await.unwrap();
    assert_eq!(vm.state, VmState::Up);
    assert_eq!(vm.consoles.len(), 1);
    assert_eq!(
        (vm.consoles[0].address.as_str(), vm.consoles[0].port),
        ("127.0.0.1", 5900)
    );
    assert!(vm.pid.is_some() && vm.started_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn transitions_happen_at_their_instant_even_when_read_late() {
    let h = host();
    h.create_vm(&spec("vm1", 1)).await.unwrap();
    sleep_ms(60_000).await;
    assert_eq!(state(&h, "vm1").await, VmState::Up);
    h.vm_operation("vm1", &VmOperation::Shutdown { timeout_s: 120 })
        .await
        .unwrap();
    assert_eq!(state(&h, "vm1").await, VmState::PoweringDown);
    sleep_ms(10_000).await;
    let vm = h.get_vm("vm1").await.unwrap();
    assert_eq!(vm.state, VmState::Down);
    assert_eq!(vm.exit_reason.as_deref(), Some("shutdown"));
    assert!(vm.consoles.is_empty() && vm.pid.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_guest_ignoring_acpi_is_powered_off_at_the_timeout() {
    let h = host();
    h.create_vm(&spec("vm1", 1)).await.unwrap();
    sleep_ms(2000).await;
    h.vm_operation("vm1", &VmOperation::Shutdown { timeout_s: 1 })
        .await
        .unwrap();
    sleep_ms(1000).await;
    let vm = h.get_vm("vm1").await.unwrap();
    assert_eq!(vm.state, VmState::Down);
    assert!(vm.exit_message.unwrap().contains("ignored"));
}

#[tokio::test(start_paused = true)]
async fn destroy_is_immediate_and_a_second_destroy_clears_the_vm() {
    let h = host();
    h.create_vm(&spec("vm1", 1)).await.unwrap();
    let vm = h.vm_operation("vm1", &VmOperation::Destroy).await.unwrap();
    assert_eq!(
        (vm.state, vm.exit_reason.as_deref()),
        (VmState::Down, Some("user"))
    );
    assert_eq!(
        h.list_vms().await.unwrap().len(),
        1,
        "a down VM stays listed for the engine"
    );
    h.vm_operation("vm1", &VmOperation::Destroy).await.unwrap();
    assert_eq!(h.get_vm("vm1").await.unwrap_err().code, ErrorCode::NoSuchVm);
}

#[tokio::test(start_paused = true)]
async fn pause_resume_reboot_and_the_wrong_states() {
    let h = host();
    h.create_vm(&spec("vm1", 1)).await.unwrap();
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::Reboot)
            .await
            .unwrap_err()
            .code,
        ErrorCode::WrongState,
        "not up yet"
    );
    sleep_ms(1500).await;
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::Pause)
            .await
            .unwrap()
            .state,
        VmState::Paused
    );
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::Resume)
            .await
            .unwrap()
            .state,
        VmState::Up
    );
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::Resume)
            .await
            .unwrap_err()
            .code,
        ErrorCode::WrongState
    );
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::Reboot)
            .await
            .unwrap()
            .state,
        VmState::RebootInProgress
    );
    sleep_ms(1000).await;
    assert_eq!(state(&h, "vm1").await, VmState::Up);
}

#[tokio::test(start_paused = true)]
async fn start_paused_stops_in_paused() {
    let h = host();
    h.create_vm(&VmSpec {
        start_paused: true,
        ..spec("vm1", 1)
    })
    .await
    .unwrap();
    sleep_ms(5000).await;
    assert_eq!(state(&h, "vm1").await, VmState::Paused);
}

#[tokio::test(start_paused = true)]
async fn suspend_saves_then_frees_the_host_and_restore_comes_back_up() {
    let h = host();
    h.create_vm(&spec("vm1", 60)).await.unwrap();
    sleep_ms(1500).await;
    let vm = h
        .vm_operation(
            "vm1",
            &VmOperation::Suspend {
                path: "/sd/mem".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(vm.state, VmState::SavingState);
    sleep_ms(1000).await;
    let vm = h.get_vm("vm1").await.unwrap();
    assert_eq!(
        (vm.state, vm.exit_reason.as_deref()),
        (VmState::Suspended, Some("suspended"))
    );
    // Its 60 GiB are free again: another big VM fits.
    h.create_vm(&spec("vm2", 60)).await.unwrap();
    h.vm_operation("vm2", &VmOperation::Destroy).await.unwrap();
    let restored = h
        .create_vm(&VmSpec {
            restore_from: Some("/sd/mem".into()),
            ..spec("vm1", 60)
        })
        .await
        .unwrap();
    assert_eq!(restored.state, VmState::RestoringState);
    sleep_ms(1000).await;
    assert_eq!(state(&h, "vm1").await, VmState::Up);
}

#[tokio::test(start_paused = true)]
async fn migration_source_and_destination() {
    let (src, dst) = (host(), host());
    src.create_vm(&spec("vm1", 1)).await.unwrap();
    sleep_ms(1500).await;
    let incoming = dst
        .vm_operation(
            "vm1",
            &VmOperation::PrepareIncoming {
                spec: Box::new(spec("vm1", 1)),
            },
        )
        .await
        .unwrap();
    assert_eq!(incoming.state, VmState::MigratingTo);
    let op = VmOperation::Migrate {
        destination_address: "127.0.0.1".into(),
        destination_port: 54322,
    };
    let vm = src.vm_operation("vm1", &op).await.unwrap();
    assert_eq!(vm.state, VmState::MigratingFrom);
    sleep_ms(1000).await;
    let vm = src.get_vm("vm1").await.unwrap();
    let progress = vm.migration.unwrap();
    assert!((40..=60).contains(&progress.percent), "{progress:?}");
    assert_eq!(progress.destination, "127.0.0.1:54322");
    sleep_ms(1000).await;
    let vm = src.get_vm("vm1").await.unwrap();
    assert_eq!(
        (vm.state, vm.exit_reason.as_deref()),
        (VmState::Down, Some("migrated"))
    );
    sleep_ms(300).await;
    assert_eq!(state(&dst, "vm1").await, VmState::Up);
}

#[tokio::test(start_paused = true)]
async fn a_migration_can_be_canceled_and_not_sent_home() {
    let h = host();
    h.create_vm(&spec("vm1", 1)).await.unwrap();
    sleep_ms(1500).await;
    let home = VmOperation::Migrate {
        destination_address: "127.0.0.1".into(),
        destination_port: 54321,
    };
    assert_eq!(
        h.vm_operation("vm1", &home).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let op = VmOperation::Migrate {
        destination_address: "10.0.0.2".into(),
        destination_port: 54321,
    };
    h.vm_operation("vm1", &op).await.unwrap();
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::CancelMigration)
            .await
            .unwrap()
            .state,
        VmState::Up
    );
    sleep_ms(5000).await;
    assert_eq!(state(&h, "vm1").await, VmState::Up);
}

#[tokio::test(start_paused = true)]
async fn memory_is_admitted_against_the_host() {
    let h = host();
    h.create_vm(&spec("big", 40)).await.unwrap();
    let err = h.create_vm(&spec("too-big", 30)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceExhausted, "{err}");
    assert_eq!(
        h.create_vm(&spec("big", 1)).await.unwrap_err().code,
        ErrorCode::WrongState,
        "already running"
    );
    assert_eq!(
        h.create_vm(&spec("../etc", 1)).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    h.create_vm(&spec("fits", 20)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn tickets_hotplug_and_cdrom_on_a_running_vm() {
    let h = host();
    h.create_vm(&spec("vm1", 1)).await.unwrap();
    sleep_ms(1500).await;
    let ticket = VmOperation::SetTicket {
        protocol: "vnc".into(),
        password: "pw".into(),
        ttl_s: 120,
    };
    h.vm_operation("vm1", &ticket).await.unwrap();
    let spice = VmOperation::SetTicket {
        protocol: "spice".into(),
        password: "pw".into(),
        ttl_s: 120,
    };
    assert_eq!(
        h.vm_operation("vm1", &spice).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let disk = DiskSpec {
        id: "d1".into(),
        path: "/x".into(),
        format: "qcow2".into(),
        interface: "virtio".into(),
        bootable: false,
        read_only: false,
    };
    let vm = h
        .vm_operation("vm1", &VmOperation::HotplugDisk { disk })
        .await
        .unwrap();
    assert_eq!(vm.disks, ["d1"]);
    let vm = h
        .vm_operation("vm1", &VmOperation::HotunplugDisk { id: "d1".into() })
        .await
        .unwrap();
    assert!(vm.disks.is_empty());
    let nic = NicSpec {
        id: "n1".into(),
        mac: "56:6f:00:00:00:01".into(),
        model: "virtio".into(),
        network: None,
        linked: true,
    };
    assert_eq!(
        h.vm_operation("vm1", &VmOperation::HotplugNic { nic })
            .await
            .unwrap()
            .nics,
        ["n1"]
    );
    h.vm_operation(
        "vm1",
        &VmOperation::ChangeCdrom {
            path: Some("/iso/a.iso".into()),
        },
    )
    .await
    .unwrap();
    h.vm_operation("vm1", &VmOperation::Destroy).await.unwrap();
    assert_eq!(
        h.vm_operation("vm1", &ticket).await.unwrap_err().code,
        ErrorCode::WrongState
    );
}

#[tokio::test(start_paused = true)]
async fn statistics_move_and_count_guests() {
    let h = host();
    let idle = h.stats().await.unwrap();
    assert_eq!(idle.memory_total, 64 << 30);
    h.create_vm(&spec("vm1", 16)).await.unwrap();
    sleep_ms(30_000).await;
    let a = h.stats().await.unwrap();
    sleep_ms(3_000).await;
    let b = h.stats().await.unwrap();
    assert!(
        a.memory_used > idle.memory_used + (2 << 30),
        "a running guest uses host memory"
    );
    let (va, vb) = (&a.vms[0].stats, &b.vms[0].stats);
    assert!(va.cpu_percent > 0.0 && va.memory_used > 0);
    assert!(
        vb.disk_read_bytes > va.disk_read_bytes && vb.net_rx_bytes > va.net_rx_bytes,
        "counters grow"
    );
    assert!(
        va.cpu_percent != vb.cpu_percent || va.memory_used != vb.memory_used,
        "figures move"
    );
    assert!((a.cpu_user + a.cpu_system + a.cpu_idle - 100.0).abs() < 0.1);
}

#[tokio::test(start_paused = true)]
async fn capabilities_describe_the_simulated_machine() {
    let caps = host().capabilities().await.unwrap();
    assert!(caps.simulated);
    assert_eq!(
        (
            caps.cpu.sockets,
            caps.cpu.cores_per_socket,
            caps.cpu.threads_per_core
        ),
        (2, 8, 2)
    );
    assert_eq!(caps.cpu.vendor, "GenuineIntel");
    assert_eq!(caps.memory_bytes, 64 << 30);
    assert_eq!(
        caps.nics
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["eth0", "eth1"]
    );
    assert_eq!(caps.bridges, ["ovirtmgmt"]);
    assert_eq!(caps.accel.kind, AccelKind::None);
    assert_eq!(caps.nics[0].mac, super::hardware::mac("host-1", 0));
}

fn nfs(id: &str, kind: &str) -> DomainSpec {
    DomainSpec {
        id: id.into(),
        domain_type: kind.into(),
        storage_type: "nfs".into(),
        address: Some("mynfs.example.com".into()),
        path: "/exports/data".into(),
        vfs_type: None,
        mount_options: None,
    }
}

#[tokio::test(start_paused = true)]
async fn storage_domains_volumes_and_iso_files() {
    let h = host();
    let info = h.connect_domain(&nfs("sd1", "data")).await.unwrap();
    assert_eq!((info.total_bytes, info.used_bytes), (1 << 40, 0));
    let iso = h.connect_domain(&nfs("iso1", "iso")).await.unwrap();
    assert!(iso.used_bytes > 0);
    assert!(h
        .list_files("iso1")
        .await
        .unwrap()
        .iter()
        .any(|f| f.name.ends_with(".iso")));
    assert!(h.list_files("sd1").await.unwrap().is_empty());
    let create = |vol: &str, size: u64, sparse: bool| VolumeOperation::Create {
        domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: vol.into(),
        format: "cow".into(),
        size,
        sparse,
    };
    let v = h
        .volume_operation(&create("v1", 8 << 30, false))
        .await
        .unwrap();
    assert_eq!(v.format, "qcow2");
    assert!(
        v.path.ends_with("/sd1/images/disk1/v1")
            && v.path
                .starts_with("/rhev/data-center/mnt/mynfs.example.com:_exports_data"),
        "{}",
        v.path
    );
    assert!(
        h.domain_info("sd1").await.unwrap().used_bytes > 8 << 30,
        "used grows with volumes"
    );
    assert_eq!(
        h.volume_operation(&create("v1", 1, true))
            .await
            .unwrap_err()
            .code,
        ErrorCode::WrongState
    );
    assert_eq!(
        h.volume_operation(&create("huge", 2 << 40, false))
            .await
            .unwrap_err()
            .code,
        ErrorCode::ResourceExhausted
    );
    let snap = VolumeOperation::Snapshot {
        domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: "v2".into(),
        parent_volume_id: "v1".into(),
    };
    assert_eq!(
        h.volume_operation(&snap).await.unwrap().parent.as_deref(),
        Some("v1")
    );
    let del_base = VolumeOperation::Delete {
        domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: "v1".into(),
    };
    assert_eq!(
        h.volume_operation(&del_base).await.unwrap_err().code,
        ErrorCode::WrongState,
        "has a snapshot on top"
    );
    let merge = VolumeOperation::Merge {
        domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: "v2".into(),
    };
    assert_eq!(h.volume_operation(&merge).await.unwrap().volume_id, "v1");
    let resize = VolumeOperation::Resize {
        domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: "v1".into(),
        size: 16 << 30,
    };
    assert_eq!(
        h.volume_operation(&resize).await.unwrap().virtual_size,
        16 << 30
    );
    let shrink = VolumeOperation::Resize {
        domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: "v1".into(),
        size: 1,
    };
    assert_eq!(
        h.volume_operation(&shrink).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    h.connect_domain(&nfs("sd2", "data")).await.unwrap();
    let copy = VolumeOperation::Copy {
        from_domain_id: "sd1".into(),
        disk_id: "disk1".into(),
        volume_id: "v1".into(),
        to_domain_id: "sd2".into(),
        to_disk_id: "disk2".into(),
        to_volume_id: "v9".into(),
    };
    assert_eq!(h.volume_operation(&copy).await.unwrap().domain_id, "sd2");
    h.volume_operation(&del_base).await.unwrap();
    assert!(h.domain_info("sd1").await.unwrap().used_bytes == 0);
    let on_iso = VolumeOperation::Create {
        domain_id: "iso1".into(),
        disk_id: "d".into(),
        volume_id: "v".into(),
        format: "raw".into(),
        size: 1,
        sparse: true,
    };
    assert_eq!(
        h.volume_operation(&on_iso).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let bad = DomainSpec {
        storage_type: "iscsi".into(),
        ..nfs("sd3", "data")
    };
    assert_eq!(
        h.connect_domain(&bad).await.unwrap_err().code,
        ErrorCode::Unsupported
    );
    h.disconnect_domain("sd2").await.unwrap();
    assert_eq!(
        h.domain_info("sd2").await.unwrap_err().code,
        ErrorCode::NoSuchDomain
    );
}

#[tokio::test(start_paused = true)]
async fn oversized_definitions_are_refused() {
    let h = host();
    let many = VmSpec {
        graphics: vec![
            GraphicsSpec {
                protocol: "vnc".into()
            };
            5
        ],
        ..spec("vm1", 1)
    };
    assert_eq!(
        h.create_vm(&many).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let long = VmSpec {
        cmdline: Some("x".repeat(100_000)),
        ..spec("vm1", 1)
    };
    assert_eq!(
        h.create_vm(&long).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    // SPICE takes two ports; VNC after it gets the next free one.
    let spice = VmSpec {
        graphics: vec![GraphicsSpec {
            protocol: "spice".into(),
        }],
        ..spec("a", 1)
    };
    let a = h.create_vm(&spice).await.unwrap();
    let b = h.create_vm(&spec("b", 1)).await.unwrap();
    sleep_ms(1500).await;
    let a = h.get_vm(&a.id).await.unwrap();
    assert_eq!(
        (a.consoles[0].port, a.consoles[0].tls_port),
        (5900, Some(5901))
    );
    assert_eq!(h.get_vm(&b.id).await.unwrap().consoles[0].port, 5902);
}
