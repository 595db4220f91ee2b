//! `cargo bench -p vireo-agent --bench qemu`: the QEMU driver's figures.
//!
//! - VM start-to-up (the guest's marker on its serial console) through `Qemu`, against a bare
//!   `qemu-system-x86_64` start of the same kernel and initramfs (target: within 1.5×);
//! - live migration of a 256 MiB guest between two agents on loopback;
//! - volume create / snapshot / merge with qemu-img.
//!
//! `VIREO_BENCH_RUNS` (default 3) sets the repetitions; medians are printed.

use std::path::Path;
use std::time::{Duration, Instant};

use vireo_agent::qemu::{guest, host, AccelChoice, Qemu};
use vireo_agent_proto::{
    AccelKind, DomainSpec, GraphicsSpec, Hypervisor, NicSpec, VmOperation, VmSpec, VmState,
    VolumeOperation,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn new_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .unwrap()
        .trim()
        .to_string()
}

async fn wait_file_contains(path: &Path, needle: &str, timeout: Duration) {
    let start = Instant::now();
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            start.elapsed() < timeout,
            "no {needle} in {} after {timeout:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn guest_spec(g: &guest::TestGuest, mode: guest::Mode, mib: u64, full: bool) -> VmSpec {
    let mut s = VmSpec {
        id: new_id(),
        name: "bench".into(),
        memory_bytes: mib << 20,
        sockets: 1,
        cores: 1,
        threads: 1,
        kernel: Some(g.kernel.to_string_lossy().into_owned()),
        initrd: Some(g.initrd.to_string_lossy().into_owned()),
        cmdline: Some(guest::cmdline(mode)),
        ..Default::default()
    };
    if full {
        s.graphics = vec![GraphicsSpec {
            protocol: "vnc".into(),
        }];
        s.nics = vec![NicSpec {
            id: "n1".into(),
            mac: "56:6f:6c:00:00:09".into(),
            model: "virtio".into(),
            network: None,
            linked: true,
        }];
        s.rng = true;
    }
    s
}

/// A bare QEMU of the same guest, started and timed to the marker the same way.
async fn bare_start(qemu: &Path, accel: &str, g: &guest::TestGuest, dir: &Path) -> Duration {
    let log = dir.join(format!("bare-{}.log", new_id()));
    let start = Instant::now();
    let mut child = tokio::process::Command::new(qemu)
        .args([
            "-accel",
            accel,
            "-machine",
            "q35",
            "-m",
            "128",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ])
        .arg("-kernel")
        .arg(&g.kernel)
        .arg("-initrd")
        .arg(&g.initrd)
        .args(["-append", &guest::cmdline(guest::Mode::PowerOff)])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_file_contains(&log, guest::MARKER, Duration::from_secs(120)).await;
    let t = start.elapsed();
    let _ = child.wait().await;
    t
}

async fn driver_start(q: &Qemu, g: &guest::TestGuest, full: bool) -> Duration {
    let spec = guest_spec(g, guest::Mode::PowerOff, 128, full);
    let start = Instant::now();
    q.create_vm(&spec).await.unwrap();
    wait_file_contains(
        &q.vm_dir(&spec.id).join("serial.log"),
        guest::MARKER,
        Duration::from_secs(120),
    )
    .await;
    let t = start.elapsed();
    while q.get_vm(&spec.id).await.unwrap().state != VmState::Down {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    q.vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
    t
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(qemu_bin) = host::find_qemu() else {
        println!("qemu bench: SKIPPED, qemu-system-x86_64 is not installed");
        return;
    };
    let runs: usize = std::env::var("VIREO_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let tmp = tempfile::Builder::new()
        .prefix("vqb")
        .tempdir_in("/tmp")
        .unwrap();
    let g = guest::prepare(&tmp.path().join("guest"))
        .expect("the guest's packages (linux-image-amd64, busybox-static)");
    let q = Qemu::new(tmp.path().join("a"), AccelChoice::Auto)
        .await
        .unwrap();
    let accel = if q.accel().kind == AccelKind::Kvm {
        "kvm"
    } else {
        "tcg"
    };
    println!("accelerator: {:?} ({})", q.accel().kind, q.accel().detail);
    println!("runs: {runs} (medians)");

    // Start-to-up, alternating so that both see the same machine load.
    let (mut bare, mut minimal, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        bare.push(bare_start(&qemu_bin, accel, &g, tmp.path()).await);
        minimal.push(driver_start(&q, &g, false).await);
        full.push(driver_start(&q, &g, true).await);
    }
    let (b, m, f) = (median(bare), median(minimal), median(full));
    println!("start-to-up, bare qemu-system-x86_64:            {}", ms(b));
    println!(
        "start-to-up, Qemu driver (same devices):          {}  = {:.2}x bare (target ≤ 1.5x)",
        ms(m),
        m.as_secs_f64() / b.as_secs_f64()
    );
    println!(
        "start-to-up, Qemu driver (+VNC, NIC, RNG, ports): {}  = {:.2}x bare",
        ms(f),
        f.as_secs_f64() / b.as_secs_f64()
    );

    // Live migration of a 256 MiB guest, loopback.
    let dst = Qemu::new(tmp.path().join("b"), AccelChoice::Auto)
        .await
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..runs {
        let spec = guest_spec(&g, guest::Mode::Stay, 256, false);
        q.create_vm(&spec).await.unwrap();
        wait_file_contains(
            &q.vm_dir(&spec.id).join("serial.log"),
            "VIREO-TICK",
            Duration::from_secs(120),
        )
        .await;
        let start = Instant::now();
        let rt = dst
            .vm_operation(
                &spec.id,
                &VmOperation::PrepareIncoming {
                    spec: Box::new(spec.clone()),
                },
            )
            .await
            .unwrap();
        let port = rt
            .migration
            .unwrap()
            .destination
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        q.vm_operation(
            &spec.id,
            &VmOperation::Migrate {
                destination_address: "127.0.0.1".into(),
                destination_port: port,
            },
        )
        .await
        .unwrap();
        loop {
            let (s, d) = (
                q.get_vm(&spec.id).await.unwrap().state,
                dst.get_vm(&spec.id).await.unwrap().state,
            );
            if s == VmState::Down && d == VmState::Up {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "migration stuck: {s:?} → {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(start.elapsed());
        q.vm_operation(&spec.id, &VmOperation::Destroy)
            .await
            .unwrap();
        dst.vm_operation(&spec.id, &VmOperation::Destroy)
            .await
            .unwrap();
        dst.vm_operation(&spec.id, &VmOperation::Destroy)
            .await
            .unwrap();
    }
    println!(
        "live migration, 256 MiB guest, loopback (prepare → source down, destination up): {}",
        ms(median(times))
    );

    // Volumes.
    std::fs::create_dir(tmp.path().join("sd")).unwrap();
    let sd = DomainSpec {
        id: "sd".into(),
        domain_type: "data".into(),
        storage_type: "localfs".into(),
        address: None,
        path: tmp.path().join("sd").to_string_lossy().into_owned(),
        vfs_type: None,
        mount_options: None,
    };
    q.connect_domain(&sd).await.unwrap();
    let n = 20;
    let (mut create, mut snap, mut merge, mut prealloc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let disk = format!("img{i}");
        let t = Instant::now();
        q.volume_operation(&VolumeOperation::Create {
            domain_id: "sd".into(),
            disk_id: disk.clone(),
            volume_id: "base".into(),
            format: "cow".into(),
            size: 10 << 30,
            sparse: true,
        })
        .await
        .unwrap();
        create.push(t.elapsed());
        let t = Instant::now();
        q.volume_operation(&VolumeOperation::Snapshot {
            domain_id: "sd".into(),
            disk_id: disk.clone(),
            volume_id: "s1".into(),
            parent_volume_id: "base".into(),
        })
        .await
        .unwrap();
        snap.push(t.elapsed());
        let t = Instant::now();
        q.volume_operation(&VolumeOperation::Merge {
            domain_id: "sd".into(),
            disk_id: disk.clone(),
            volume_id: "s1".into(),
        })
        .await
        .unwrap();
        merge.push(t.elapsed());
        let t = Instant::now();
        q.volume_operation(&VolumeOperation::Create {
            domain_id: "sd".into(),
            disk_id: format!("raw{i}"),
            volume_id: "r".into(),
            format: "raw".into(),
            size: 256 << 20,
            sparse: false,
        })
        .await
        .unwrap();
        prealloc.push(t.elapsed());
    }
    println!(
        "volume create, qcow2 10 GiB sparse:   {}",
        ms(median(create))
    );
    println!("volume snapshot (qcow2 overlay):      {}", ms(median(snap)));
    println!(
        "volume merge, cold (qemu-img commit): {}",
        ms(median(merge))
    );
    println!(
        "volume create, raw 256 MiB falloc:    {}",
        ms(median(prealloc))
    );
}
