//! What a host needs to run a VM ([`VmSpec`]), built from the VM record, its devices
//! (disk attachments and disks, NICs and their profiles' networks, CD-ROMs, graphics
//! consoles, watchdogs) and the run-once overrides of a start action
//! (`<action><vm><os><boot>…`), which apply to this run only.

use super::agent::{bounded, Agent};
use super::docs::{self, int, text};
use crate::api::fault::ApiResult;
use serde_json::Value;
use vireo_agent_proto::{DiskSpec, GraphicsSpec, NicSpec, VmSpec, VolumeOperation, WatchdogSpec};
use vireo_store::{Filter, Query, Store};

/// The VM with the run-once members of the start action laid over it.
pub fn with_run_once(vm: &Value, run_once: Option<&Value>) -> Value {
    let mut v = vm.clone();
    if let Some(ro) = run_once {
        let mut ro = ro.clone();
        // Identity and placement stay the VM's own.
        if let Value::Object(o) = &mut ro {
            for k in ["id", "name", "cluster", "template", "href"] {
                o.remove(k);
            }
        }
        // Lists (boot devices) replace, objects merge.
        docs::merge(&mut v, &ro);
    }
    v
}

fn boot_devices(vm: &Value) -> Vec<String> {
    let devices = vm
        .get("os")
        .and_then(|o| o.get("boot"))
        .and_then(|b| b.get("devices"));
    let list: Vec<String> = match devices {
        Some(Value::Object(o)) => o
            .get("device")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
    .iter()
    .filter_map(|d| d.as_str().map(str::to_string))
    .collect();
    if list.is_empty() {
        vec!["hd".into()]
    } else {
        list
    }
}

fn opt_text(vm: &Value, path: &[&str]) -> Option<String> {
    text(vm, path).filter(|s| !s.is_empty()).map(str::to_string)
}

async fn children(store: &Store, kind: &str, vm_id: &str) -> ApiResult<Vec<Value>> {
    Ok(store
        .list(kind, &Query::new(Filter::ParentIs(vm_id.to_string())))
        .await?
        .iter()
        .map(docs::parse)
        .collect())
}

/// Where a disk's image is, as its host sees it: `<domain id>/images/<disk id>/<volume id>`
/// below the agent's mount of the domain (the layout volume creation uses).
fn disk_path(disk: &Value, disk_id: &str) -> String {
    let domain = docs::ref_ids(disk.get("storage_domains"), "storage_domain")
        .into_iter()
        .next()
        .unwrap_or_default();
    let volume = text(disk, &["image_id"]).unwrap_or(disk_id);
    format!("{domain}/images/{disk_id}/{volume}")
}

/// The disk an attachment stands for, as a host runs it (the path in the layout; see
/// [`resolve_disk_paths`]). `None` when the attachment names no disk.
pub async fn disk_spec(store: &Store, att: &Value) -> ApiResult<Option<DiskSpec>> {
    let Some(disk_id) = text(att, &["disk", "id"])
        .or_else(|| text(att, &["id"]))
        .map(str::to_string)
    else {
        return Ok(None);
    };
    let disk = match store.get("disks", &disk_id).await? {
        Some(r) => docs::parse(&r),
        None => att.get("disk").cloned().unwrap_or_default(),
    };
    // A disk snapshot attached to this VM: the volume that snapshot froze, read-only.
    let snapshot = text(att, &["disk", "snapshot", "id"]).filter(|s| !s.is_empty());
    let mut disk = disk;
    if let Some(snap) = snapshot {
        let rid = crate::bootstrap::sub_record_id(snap, &disk_id);
        if let Some(r) = store.get(super::snapshots::DISKS, &rid).await? {
            if let Some(v) = text(&docs::parse(&r), &["image_id"]) {
                disk["image_id"] = Value::String(v.to_string());
            }
        }
    }
    let format = match text(&disk, &["format"]) {
        Some("raw") => "raw",
        _ => "qcow2",
    };
    Ok(Some(DiskSpec {
        id: disk_id.clone(),
        path: disk_path(&disk, &disk_id),
        format: format.into(),
        interface: text(att, &["interface"]).unwrap_or("virtio").to_string(),
        bootable: docs::boolean(att, &["bootable"]).unwrap_or(false),
        read_only: snapshot.is_some() || docs::boolean(att, &["read_only"]).unwrap_or(false),
    }))
}

/// A VM's NIC as a host plugs it: its MAC, model and the network of its vNIC profile.
pub async fn nic_spec(store: &Store, nic: &Value) -> ApiResult<NicSpec> {
    let network = match text(nic, &["vnic_profile", "id"]) {
        Some(p) => match store.get("vnicprofiles", p).await? {
            Some(r) => {
                let net_id = text(&docs::parse(&r), &["network", "id"])
                    .unwrap_or_default()
                    .to_string();
                store.get("networks", &net_id).await?.and_then(|n| n.name)
            }
            None => None,
        },
        None => None,
    };
    Ok(NicSpec {
        id: text(nic, &["id"]).unwrap_or_default().to_string(),
        mac: text(nic, &["mac", "address"])
            .unwrap_or_default()
            .to_string(),
        model: match text(nic, &["interface"]) {
            Some("e1000") => "e1000",
            Some("rtl8139") | Some("rtl8139_virtio") => "rtl8139",
            _ => "virtio",
        }
        .into(),
        network,
        linked: docs::boolean(nic, &["linked"]).unwrap_or(true),
    })
}

/// The spec for a run of `vm` (already merged with run-once overrides).
pub async fn build(store: &Store, vm_id: &str, vm: &Value) -> ApiResult<VmSpec> {
    let mut disks = Vec::new();
    for att in children(store, "vms/diskattachments", vm_id).await? {
        if docs::boolean(&att, &["active"]) == Some(false) {
            continue;
        }
        if let Some(d) = disk_spec(store, &att).await? {
            disks.push(d);
        }
    }
    let mut nics = Vec::new();
    for nic in children(store, "vms/nics", vm_id).await? {
        if docs::boolean(&nic, &["plugged"]) == Some(false) {
            continue;
        }
        nics.push(nic_spec(store, &nic).await?);
    }
    // The run-once CD wins over the VM's.
    let cdrom = docs::list_items(vm.get("cdroms"), "cdrom")
        .first()
        .and_then(|c| text(c, &["file", "id"]).map(str::to_string))
        .or(None)
        .filter(|s| !s.is_empty());
    let cdrom = match cdrom {
        Some(c) => Some(c),
        None => children(store, "vms/cdroms", vm_id)
            .await?
            .iter()
            .find_map(|c| opt_text(c, &["file", "id"])),
    };
    let mut graphics: Vec<GraphicsSpec> = children(store, "vms/graphicsconsoles", vm_id)
        .await?
        .iter()
        .filter_map(|g| {
            text(g, &["protocol"]).map(|p| GraphicsSpec {
                protocol: p.to_string(),
            })
        })
        .collect();
    if graphics.is_empty() {
        // No console records: the display type says which (VNC when unset, as the Blank
        // template has it).
        let p = text(vm, &["display", "type"]).unwrap_or("vnc");
        graphics.push(GraphicsSpec {
            protocol: p.to_string(),
        });
    }
    let watchdog = children(store, "vms/watchdogs", vm_id)
        .await?
        .first()
        .map(|w| WatchdogSpec {
            model: text(w, &["model"]).unwrap_or("i6300esb").to_string(),
            action: text(w, &["action"]).unwrap_or("reset").to_string(),
        });
    Ok(VmSpec {
        id: vm_id.to_string(),
        name: text(vm, &["name"]).unwrap_or(vm_id).to_string(),
        memory_bytes: int(vm, &["memory"]).unwrap_or(1 << 30).max(0) as u64,
        sockets: int(vm, &["cpu", "topology", "sockets"]).unwrap_or(1).max(1) as u32,
        cores: int(vm, &["cpu", "topology", "cores"]).unwrap_or(1).max(1) as u32,
        threads: int(vm, &["cpu", "topology", "threads"]).unwrap_or(1).max(1) as u32,
        machine: opt_text(vm, &["custom_emulated_machine"]),
        cpu_model: opt_text(vm, &["custom_cpu_model"]),
        boot: boot_devices(vm),
        kernel: opt_text(vm, &["os", "kernel"]),
        initrd: opt_text(vm, &["os", "initrd"]),
        cmdline: opt_text(vm, &["os", "cmdline"]),
        disks,
        nics,
        cdrom,
        graphics,
        serial_console: docs::boolean(vm, &["console", "enabled"]).unwrap_or(false),
        watchdog,
        rng: vm.get("rng_device").is_some(),
        start_paused: docs::boolean(vm, &["start_paused"]).unwrap_or(false),
        restore_from: None,
        pci: Default::default(),
    })
}

/// Connects the ISO domains on a real host, so that it finds a CD-ROM's file (best effort:
/// the host names a file it does not find).
pub async fn connect_iso_domains(store: &Store, agent: &dyn Agent, limit: std::time::Duration) {
    let Ok(isos) = store
        .list("storagedomains", &Query::new(Filter::eq("type", "iso")))
        .await
    else {
        return;
    };
    for r in isos {
        let sd = crate::inventory::rules::storage::spec_of(&r.id, &docs::parse(&r));
        let _ = bounded(limit, agent.connect_domain(&sd)).await;
    }
}

/// Disk paths as the chosen host sees them: the host is asked where each volume is. A
/// simulated host that does not know a volume (simulated storage lives on the host that made
/// it) keeps the layout path; a real host must know it, or the VM cannot run there.
pub async fn resolve_disk_paths(
    store: &Store,
    agent: &dyn Agent,
    simulated: bool,
    limit: std::time::Duration,
    spec: &mut VmSpec,
) -> Result<(), String> {
    if !simulated && spec.cdrom.is_some() {
        connect_iso_domains(store, agent, limit.max(std::time::Duration::from_secs(10))).await;
    }
    let mut connected: Vec<String> = Vec::new();
    for d in &mut spec.disks {
        let parts: Vec<&str> = d.path.split('/').collect();
        let [domain_id, "images", disk_id, volume_id] = parts.as_slice() else {
            continue;
        };
        // Every host of a data center has its domains (oVirt connects the pool): a host that
        // never worked on this one (a migration's destination) connects it now.
        if !simulated && !connected.iter().any(|c| c == domain_id) {
            if let Ok(Some(r)) = store.get("storagedomains", domain_id).await {
                let sd = crate::inventory::rules::storage::spec_of(domain_id, &docs::parse(&r));
                bounded(
                    limit.max(std::time::Duration::from_secs(10)),
                    agent.connect_domain(&sd),
                )
                .await
                .map_err(|e| {
                    format!(
                        "The host cannot connect the storage domain of disk {}: {}",
                        d.id, e.message
                    )
                })?;
            }
            connected.push(domain_id.to_string());
        }
        let op = VolumeOperation::Info {
            domain_id: domain_id.to_string(),
            disk_id: disk_id.to_string(),
            volume_id: volume_id.to_string(),
        };
        match bounded(limit, agent.volume_operation(&op)).await {
            Ok(info) => d.path = info.path,
            Err(_) if simulated => {}
            Err(e) => {
                return Err(format!(
                    "The host cannot reach the image of disk {}: {}",
                    d.id, e.message
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn run_once_boot_devices_replace_the_vms() {
        let vm =
            json!({"name": "v", "os": {"boot": {"devices": {"device": ["hd"]}}, "type": "other"}});
        let ro = json!({"os": {"boot": {"devices": {"device": ["cdrom"]}}}});
        let merged = with_run_once(&vm, Some(&ro));
        assert_eq!(boot_devices(&merged), vec!["cdrom"]);
        assert_eq!(merged["os"]["type"], "other");
        assert_eq!(boot_devices(&json!({})), vec!["hd"]);
    }
}
