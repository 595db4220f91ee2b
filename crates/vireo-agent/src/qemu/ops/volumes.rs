//! Volume operations, and those that must go through a running QEMU: live merge
//! (block-commit) and live resize.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vireo_agent_proto::{AgentResult, DiskSpec, ErrorCode, VolumeInfo, VolumeOperation};

use super::*;
use crate::qemu::argv;
use crate::qemu::qmp::{Event, Qmp};
use crate::qemu::storage::MergePlan;
use crate::qemu::vm::VmHandle;
use crate::qemu::Inner;

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
            match vm_using(inner, parent.parent().unwrap()) {
                Some((h, d)) if Path::new(&d.path) == parent => {
                    let info = st
                        .snapshot(domain_id, disk_id, volume_id, parent_volume_id, true)
                        .await?;
                    if let Err(e) = live_snapshot(&h, &d, &info).await {
                        let _ = st.delete(domain_id, disk_id, volume_id).await;
                        return Err(e);
                    }
                    Ok(info)
                }
                _ => {
                    st.snapshot(domain_id, disk_id, volume_id, parent_volume_id, false)
                        .await
                }
            }
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

/// Switches a running VM's disk onto the new overlay `info` (already made on top of the
/// disk's active volume): the overlay's nodes are added without a backing, and
/// `blockdev-snapshot` makes the current top their backing and the overlay the disk's root.
async fn live_snapshot(h: &Arc<VmHandle>, disk: &DiskSpec, info: &VolumeInfo) -> AgentResult<()> {
    let _op = h.op.lock().await;
    let qmp = h.qmp()?;
    let top = node_for(&qmp, Path::new(&disk.path)).await?;
    let (fnode, dnode) = (
        argv::node_name('f', &info.volume_id),
        argv::node_name('s', &info.volume_id),
    );
    qmp.execute(
        "blockdev-add",
        json!({ "driver": "file", "filename": info.path, "node-name": fnode,
                "discard": "unmap", "auto-read-only": true }),
    )
    .await
    .map_err(qmp_err("blockdev-add"))?;
    let undo_file = || async {
        let _ = qmp
            .execute("blockdev-del", json!({ "node-name": fnode }))
            .await;
    };
    if let Err(e) = qmp
        .execute(
            "blockdev-add",
            json!({ "driver": "qcow2", "file": fnode, "node-name": dnode,
                    "backing": null, "discard": "unmap" }),
        )
        .await
    {
        undo_file().await;
        return Err(qmp_err("blockdev-add")(e));
    }
    if let Err(e) = qmp
        .execute(
            "blockdev-snapshot",
            json!({ "node": top, "overlay": dnode }),
        )
        .await
    {
        let _ = qmp
            .execute("blockdev-del", json!({ "node-name": dnode }))
            .await;
        undo_file().await;
        return Err(qmp_err("blockdev-snapshot")(e));
    }
    let path = info.path.clone();
    h.update(|i| {
        if let Some(d) = i.rec.spec.disks.iter_mut().find(|d| d.id == disk.id) {
            d.path = path;
            d.format = "qcow2".into();
        }
    });
    Ok(())
}

/// The format node QEMU has open for `path`.
pub(super) async fn node_for(qmp: &Qmp, path: &Path) -> AgentResult<String> {
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
    inner: &Arc<Inner>,
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
    let mut top_node = None;
    if !active {
        let t = node_for(&qmp, &plan.top).await?;
        args["top-node"] = json!(t);
        top_node = Some(t);
        // Keep the chain relative, as vdsm writes it.
        args["backing-file"] = json!(plan.base_id);
    }
    let bmeta = inner_meta(inner, plan)?;
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
    if !active {
        // The committed intermediate is out of the chain; free it if the monitor made it.
        if let Some(t) = top_node.as_deref() {
            del_own_nodes(&qmp, &disk.id, t).await;
        }
    }
    if active {
        // The disk now writes into base. The old top's nodes were made by -blockdev, so the
        // monitor still owns them, and through its backing link the old top would keep base
        // from being resized: delete them (format node first, then its file).
        del_own_nodes(&qmp, &disk.id, &root).await;
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
    let st = &inner.storage;
    st.finish_merge(plan)?;
    st.info_of(&plan.domain_id, &plan.disk_id, &plan.base_id)
        .await
}

/// Deletes a format node the monitor added (the disk's own `d…`, or a live snapshot's `s…`)
/// and its file node; nodes QEMU opened itself (backing files) go with their parent.
pub(super) async fn del_own_nodes(qmp: &Qmp, disk_id: &str, node: &str) {
    let file = if node == argv::node_name('d', disk_id) {
        argv::node_name('f', disk_id)
    } else if let Some(rest) = node.strip_prefix('s') {
        format!("f{rest}")
    } else {
        return;
    };
    let _ = qmp
        .execute("blockdev-del", json!({ "node-name": node }))
        .await;
    let _ = qmp
        .execute("blockdev-del", json!({ "node-name": file }))
        .await;
}

fn inner_meta(inner: &Inner, plan: &MergePlan) -> AgentResult<u64> {
    Ok(inner
        .storage
        .read_meta(&plan.domain_id, &plan.disk_id, &plan.base_id)?
        .capacity)
}
