//! Host storage through the QEMU driver: oVirt's domain layout, qcow2/raw volumes made with
//! qemu-img, snapshot chains and their merge (cold with qemu-img, live with block-commit),
//! copy, resize, delete, ISO domains.

mod qemu_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use qemu_support::*;
use vireo_agent::qemu::guest::Mode;
use vireo_agent_proto::{DomainSpec, ErrorCode, Hypervisor, VmOperation, VmState, VolumeOperation};

fn localfs(id: &str, path: &Path, domain_type: &str) -> DomainSpec {
    DomainSpec {
        id: id.into(),
        domain_type: domain_type.into(),
        storage_type: "localfs".into(),
        address: None,
        path: path.to_string_lossy().into_owned(),
        vfs_type: None,
        mount_options: None,
    }
}

/// Writes `pattern` at `offset` through the chain whose top is `path` (qemu-io, as a guest would).
fn write_pattern(path: &str, pattern: u8, offset: u64) {
    let out = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            &format!("write -P {pattern} {offset} 64k"),
            path,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_pattern(path: &str, pattern: u8, offset: u64) -> bool {
    let out = Command::new("qemu-io")
        .args([
            "-U",
            "-r",
            "-f",
            "qcow2",
            "-c",
            &format!("read -P {pattern} {offset} 64k"),
            path,
        ])
        .output()
        .unwrap();
    out.status.success()
        && !String::from_utf8_lossy(&out.stdout).contains("Pattern verification failed")
}

fn qemu_img_info(path: &str) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json", path])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_layout_like_ovirt_and_reattach() {
    if !available() {
        return;
    }
    let env = Env::new();
    let q = agent(&env, "a").await;
    let folder = env.path("localfs");
    std::fs::create_dir(&folder).unwrap();
    let info = q
        .connect_domain(&localfs("sd-1", &folder, "data"))
        .await
        .unwrap();
    assert!(info.total_bytes > 0 && info.available_bytes <= info.total_bytes);
    let md = std::fs::read_to_string(folder.join("sd-1/dom_md/metadata")).unwrap();
    for line in [
        "CLASS=Data",
        "SDUUID=sd-1",
        "TYPE=LOCALFS",
        "VERSION=5",
        "_SHA_CKSUM=",
    ] {
        assert!(md.contains(line), "{line} in {md}");
    }
    for f in ["ids", "leases", "inbox", "outbox", "xleases"] {
        assert!(folder.join("sd-1/dom_md").join(f).exists(), "dom_md/{f}");
    }
    q.volume_operation(&VolumeOperation::Create {
        domain_id: "sd-1".into(),
        disk_id: "img-1".into(),
        volume_id: "vol-1".into(),
        format: "cow".into(),
        size: 1 << 30,
        sparse: true,
    })
    .await
    .unwrap();

    // Another agent (another host) attaches the same folder and finds the volume.
    let other = agent(&env, "b").await;
    other
        .connect_domain(&localfs("sd-1", &folder, "data"))
        .await
        .unwrap();
    let v = other
        .volume_operation(&VolumeOperation::Info {
            domain_id: "sd-1".into(),
            disk_id: "img-1".into(),
            volume_id: "vol-1".into(),
        })
        .await
        .unwrap();
    assert_eq!((v.format.as_str(), v.virtual_size), ("qcow2", 1 << 30));
    // A folder may hold several domains; a domain folder holding another domain is refused.
    other
        .connect_domain(&localfs("sd-2", &folder, "data"))
        .await
        .unwrap();
    let copy = env.path("copy");
    std::fs::create_dir_all(copy.join("sd-9/dom_md")).unwrap();
    std::fs::copy(
        folder.join("sd-1/dom_md/metadata"),
        copy.join("sd-9/dom_md/metadata"),
    )
    .unwrap();
    let e = other
        .connect_domain(&localfs("sd-9", &copy, "data"))
        .await
        .unwrap_err();
    assert!(
        e.code == ErrorCode::InvalidRequest && e.message.contains("holds storage domain sd-1"),
        "{e:?}"
    );
    let missing = other
        .connect_domain(&localfs("sd-4", &env.path("nowhere"), "data"))
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::InvalidRequest);

    // An NFS server that is not there fails with words, not a hang.
    let nfs = DomainSpec {
        storage_type: "nfs".into(),
        address: Some("127.0.0.1".into()),
        path: "/nonexistent".into(),
        mount_options: Some("timeo=10,retrans=1".into()),
        ..localfs("sd-nfs", Path::new("/"), "data")
    };
    let e = tokio::time::timeout(Duration::from_secs(120), q.connect_domain(&nfs))
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        e.message
            .contains("mounting nfs 127.0.0.1:/nonexistent failed"),
        "{}",
        e.message
    );
    // The agent restarts and still knows its domains.
    drop(q);
    let q = agent(&env, "a").await;
    assert!(q.domain_info("sd-1").await.is_ok());
    assert_eq!(
        q.domain_info("sd-x").await.unwrap_err().code,
        ErrorCode::NoSuchDomain
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_snapshot_chain_cold_merge_copy_resize_delete() {
    if !available() {
        return;
    }
    let env = Env::new();
    let q = agent(&env, "a").await;
    for sd in ["sd-a", "sd-b"] {
        std::fs::create_dir(env.path(sd)).unwrap();
        q.connect_domain(&localfs(sd, &env.path(sd), "data"))
            .await
            .unwrap();
    }
    let vol = |v: &str| VolumeOperation::Info {
        domain_id: "sd-a".into(),
        disk_id: "img".into(),
        volume_id: v.into(),
    };
    let base = q
        .volume_operation(&VolumeOperation::Create {
            domain_id: "sd-a".into(),
            disk_id: "img".into(),
            volume_id: "base".into(),
            format: "cow".into(),
            size: 1 << 30,
            sparse: true,
        })
        .await
        .unwrap();
    assert_eq!(
        base.path,
        env.path("sd-a/sd-a/images/img/base").to_string_lossy()
    );
    let text = String::from_utf8(
        Command::new("qemu-img")
            .args(["info", &base.path])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("file format: qcow2") && text.contains("virtual size: 1 GiB"),
        "{text}"
    );
    write_pattern(&base.path, 0x11, 0);

    let s1 = q
        .volume_operation(&VolumeOperation::Snapshot {
            domain_id: "sd-a".into(),
            disk_id: "img".into(),
            volume_id: "s1".into(),
            parent_volume_id: "base".into(),
        })
        .await
        .unwrap();
    assert_eq!(s1.parent.as_deref(), Some("base"));
    write_pattern(&s1.path, 0x22, 65536);
    let s2 = q
        .volume_operation(&VolumeOperation::Snapshot {
            domain_id: "sd-a".into(),
            disk_id: "img".into(),
            volume_id: "s2".into(),
            parent_volume_id: "s1".into(),
        })
        .await
        .unwrap();
    write_pattern(&s2.path, 0x33, 131072);
    assert_eq!(
        qemu_img_info(&s2.path)["backing-filename"],
        "s1",
        "backing files are named relative, as vdsm does"
    );
    let meta = std::fs::read_to_string(format!("{}.meta", s1.path)).unwrap();
    assert!(
        meta.contains("VOLTYPE=INTERNAL")
            && meta.contains("PUUID=base")
            && meta.contains("FORMAT=COW")
            && meta.ends_with("EOF\n"),
        "{meta}"
    );

    // Deleting the middle snapshot: s1 merges into base, s2 now sits on base.
    let merged = q
        .volume_operation(&VolumeOperation::Merge {
            domain_id: "sd-a".into(),
            disk_id: "img".into(),
            volume_id: "s1".into(),
        })
        .await
        .unwrap();
    assert_eq!(merged.volume_id, "base");
    assert!(!Path::new(&s1.path).exists() && !Path::new(&format!("{}.meta", s1.path)).exists());
    let s2i = q.volume_operation(&vol("s2")).await.unwrap();
    assert_eq!(s2i.parent.as_deref(), Some("base"));
    assert_eq!(qemu_img_info(&s2.path)["backing-filename"], "base");
    for (p, off) in [(0x11, 0), (0x22, 65536), (0x33, 131072)] {
        assert!(
            read_pattern(&s2.path, p, off),
            "data {p:#x} at {off} survives the merge"
        );
    }
    assert_eq!(
        q.volume_operation(&vol("s1")).await.unwrap_err().code,
        ErrorCode::NoSuchVolume
    );
    // The base still has a child: it cannot be deleted, only merged into.
    let e = q
        .volume_operation(&VolumeOperation::Delete {
            domain_id: "sd-a".into(),
            disk_id: "img".into(),
            volume_id: "base".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::WrongState);

    // Copy to another domain: the chain collapses into one volume with all the data.
    let c = q
        .volume_operation(&VolumeOperation::Copy {
            from_domain_id: "sd-a".into(),
            disk_id: "img".into(),
            volume_id: "s2".into(),
            to_domain_id: "sd-b".into(),
            to_disk_id: "img2".into(),
            to_volume_id: "v".into(),
        })
        .await
        .unwrap();
    assert_eq!(c.parent, None);
    assert!(qemu_img_info(&c.path).get("backing-filename").is_none());
    for (p, off) in [(0x11, 0), (0x22, 65536), (0x33, 131072)] {
        assert!(read_pattern(&c.path, p, off));
    }
    let r = q
        .volume_operation(&VolumeOperation::Resize {
            domain_id: "sd-b".into(),
            disk_id: "img2".into(),
            volume_id: "v".into(),
            size: 2 << 30,
        })
        .await
        .unwrap();
    assert_eq!(r.virtual_size, 2 << 30);
    let shrink = q
        .volume_operation(&VolumeOperation::Resize {
            domain_id: "sd-b".into(),
            disk_id: "img2".into(),
            volume_id: "v".into(),
            size: 1 << 20,
        })
        .await;
    assert_eq!(shrink.unwrap_err().code, ErrorCode::InvalidRequest);

    // Raw, preallocated: the blocks are there from the start.
    let raw = q
        .volume_operation(&VolumeOperation::Create {
            domain_id: "sd-b".into(),
            disk_id: "img3".into(),
            volume_id: "r".into(),
            format: "raw".into(),
            size: 8 << 20,
            sparse: false,
        })
        .await
        .unwrap();
    assert_eq!(raw.format, "raw");
    assert!(raw.actual_size >= 8 << 20, "{raw:?}");
    let sparse = q
        .volume_operation(&VolumeOperation::Create {
            domain_id: "sd-b".into(),
            disk_id: "img4".into(),
            volume_id: "r".into(),
            format: "raw".into(),
            size: 8 << 20,
            sparse: true,
        })
        .await
        .unwrap();
    assert!(sparse.actual_size < 1 << 20, "{sparse:?}");

    // Deleting the leaf (snapshot s2's removal without merge, e.g. an undone preview).
    q.volume_operation(&VolumeOperation::Delete {
        domain_id: "sd-a".into(),
        disk_id: "img".into(),
        volume_id: "s2".into(),
    })
    .await
    .unwrap();
    let b = std::fs::read_to_string(format!("{}.meta", base.path)).unwrap();
    assert!(b.contains("VOLTYPE=LEAF"), "base is the leaf again: {b}");
    q.volume_operation(&VolumeOperation::Delete {
        domain_id: "sd-a".into(),
        disk_id: "img".into(),
        volume_id: "base".into(),
    })
    .await
    .unwrap();
    assert!(
        !env.path("sd-a/sd-a/images/img").exists(),
        "the empty image folder goes too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iso_domain_lists_its_files() {
    if !available() {
        return;
    }
    let env = Env::new();
    let q = agent(&env, "a").await;
    std::fs::create_dir(env.path("iso")).unwrap();
    q.connect_domain(&localfs("iso-1", &env.path("iso"), "iso"))
        .await
        .unwrap();
    let dir = env.path("iso/iso-1/images/11111111-1111-1111-1111-111111111111");
    assert!(dir.is_dir(), "oVirt's fixed ISO image folder");
    std::fs::write(dir.join("b.iso"), vec![0u8; 2048]).unwrap();
    std::fs::write(dir.join("a.iso"), b"x").unwrap();
    let files = q.list_files("iso-1").await.unwrap();
    let names: Vec<(&str, u64)> = files.iter().map(|f| (f.name.as_str(), f.size)).collect();
    assert_eq!(names, [("a.iso", 1), ("b.iso", 2048)]);
    // posixfs with vfs_type none: an existing folder, as is.
    std::fs::create_dir(env.path("posix")).unwrap();
    let posix = DomainSpec {
        storage_type: "posixfs".into(),
        vfs_type: Some("none".into()),
        ..localfs("px-1", &env.path("posix"), "data")
    };
    q.connect_domain(&posix).await.unwrap();
    assert!(env.path("posix/px-1/dom_md/metadata").exists());
    assert!(
        std::fs::read_to_string(env.path("posix/px-1/dom_md/metadata"))
            .unwrap()
            .contains("TYPE=POSIXFS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_merge_with_the_vm_running() {
    if !available() {
        return;
    }
    let _s = serial().await;
    let env = Env::new();
    let q = agent(&env, "a").await;
    std::fs::create_dir(env.path("sd")).unwrap();
    q.connect_domain(&localfs("sd", &env.path("sd"), "data"))
        .await
        .unwrap();
    let mk = |v: &str, parent: Option<&str>| match parent {
        None => VolumeOperation::Create {
            domain_id: "sd".into(),
            disk_id: "img".into(),
            volume_id: v.into(),
            format: "cow".into(),
            size: 64 << 20,
            sparse: true,
        },
        Some(p) => VolumeOperation::Snapshot {
            domain_id: "sd".into(),
            disk_id: "img".into(),
            volume_id: v.into(),
            parent_volume_id: p.into(),
        },
    };
    let base = q.volume_operation(&mk("base", None)).await.unwrap();
    write_pattern(&base.path, 0x11, 0);
    let mid = q.volume_operation(&mk("mid", Some("base"))).await.unwrap();
    write_pattern(&mid.path, 0x22, 65536);
    let top = q.volume_operation(&mk("top", Some("mid"))).await.unwrap();
    write_pattern(&top.path, 0x33, 131072);

    let mut spec = spec(&env, Mode::Stay, 128);
    spec.disks.push(disk("img", Path::new(&top.path), "qcow2"));
    q.create_vm(&spec).await.unwrap();
    wait_marker(&q, &spec.id).await;

    // An inner volume: block-commit of mid into base while the VM runs on top.
    let m = q
        .volume_operation(&VolumeOperation::Merge {
            domain_id: "sd".into(),
            disk_id: "img".into(),
            volume_id: "mid".into(),
        })
        .await
        .unwrap();
    assert_eq!(m.volume_id, "base");
    assert!(!Path::new(&mid.path).exists());
    assert_eq!(qemu_img_info(&top.path)["backing-filename"], "base");
    // The active volume: commit, then the VM pivots onto base.
    let m = q
        .volume_operation(&VolumeOperation::Merge {
            domain_id: "sd".into(),
            disk_id: "img".into(),
            volume_id: "top".into(),
        })
        .await
        .unwrap();
    assert_eq!(m.parent, None);
    assert!(!Path::new(&top.path).exists());
    for (p, off) in [(0x11, 0), (0x22, 65536), (0x33, 131072)] {
        assert!(
            read_pattern(&base.path, p, off),
            "data {p:#x} at {off} is in base"
        );
    }
    let rt = q.get_vm(&spec.id).await.unwrap();
    assert_eq!(rt.state, VmState::Up, "the guest kept running");
    let rec = std::fs::read_to_string(q.vm_dir(&spec.id).join("vm.json")).unwrap();
    assert!(
        rec.contains(&base.path) && !rec.contains(&top.path),
        "the VM's disk is base now"
    );
    // Live resize of the active volume goes through QEMU.
    let r = q
        .volume_operation(&VolumeOperation::Resize {
            domain_id: "sd".into(),
            disk_id: "img".into(),
            volume_id: "base".into(),
            size: 128 << 20,
        })
        .await
        .unwrap();
    assert_eq!(r.virtual_size, 128 << 20);
    // In use: not deletable.
    let e = q
        .volume_operation(&VolumeOperation::Delete {
            domain_id: "sd".into(),
            disk_id: "img".into(),
            volume_id: "base".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::WrongState);
    q.vm_operation(&spec.id, &VmOperation::Destroy)
        .await
        .unwrap();
}
