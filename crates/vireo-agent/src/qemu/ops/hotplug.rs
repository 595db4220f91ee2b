//! Devices added to and removed from a running VM.

use std::sync::Arc;

use serde_json::json;
use vireo_agent_proto::{AgentResult, DiskSpec, ErrorCode, NicSpec};

use super::lifecycle::attach_tap;
use super::*;
use crate::qemu::argv;
use crate::qemu::qmp::{Event, Qmp};
use crate::qemu::vm::VmHandle;

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

pub(super) async fn hotplug_disk(h: &Arc<VmHandle>, disk: &DiskSpec) -> AgentResult<()> {
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

pub(super) async fn hotunplug_disk(h: &Arc<VmHandle>, id: &str) -> AgentResult<()> {
    let qmp = h.qmp()?;
    let path = {
        let i = h.inner.lock().unwrap();
        let disk = i.rec.spec.disks.iter().find(|d| d.id == id);
        disk.map(|d| d.path.clone())
            .ok_or_else(|| not_plugged(h, "disk", id))?
    };
    // After a live snapshot the disk's root is the overlay's node, not `d…`.
    let root = super::volumes::node_for(&qmp, std::path::Path::new(&path))
        .await
        .ok();
    let qdev = argv::disk_qdev(id);
    device_del(&qmp, &qdev).await?;
    if let Some(r) = root {
        super::volumes::del_own_nodes(&qmp, id, &r).await;
    }
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

pub(super) async fn hotplug_nic(h: &Arc<VmHandle>, nic: &NicSpec) -> AgentResult<()> {
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
    let netdev = argv::netdev_json(&vm_id, nic, &crate::qemu::host::bridges(), &mut layout);
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

pub(super) async fn hotunplug_nic(h: &Arc<VmHandle>, id: &str) -> AgentResult<()> {
    let qmp = h.qmp()?;
    let plugged = h
        .inner
        .lock()
        .unwrap()
        .rec
        .spec
        .nics
        .iter()
        .any(|n| n.id == id);
    if !plugged {
        return Err(not_plugged(h, "NIC", id));
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

fn not_plugged(h: &VmHandle, what: &str, id: &str) -> AgentError {
    err(
        ErrorCode::InvalidRequest,
        format!("{what} {id} is not plugged into VM {}", h.id),
    )
}
