//! A host's capabilities as oVirt shows them: the Host's CPU, memory, OS and versions, its
//! NICs as `hosts/nics` records, and the cluster's CPU type when the first host joins.

use super::docs::{self, to_doc};
use super::events::{self, About};
use crate::bootstrap::ids;
use crate::inventory::index;
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;
use vireo_agent_proto::Capabilities;
use vireo_model as m;
use vireo_store::{Filter, Query, StoreError, Tx};

pub const NICS: &str = "hosts/nics";

#[derive(Deserialize)]
struct LevelsFile {
    cluster_levels: Vec<Level>,
}

#[derive(Deserialize)]
struct Level {
    id: String,
    cpu_types: Vec<CpuType>,
}

#[derive(Deserialize, Clone)]
pub struct CpuType {
    pub name: String,
    pub level: i64,
    pub architecture: String,
    pub flags: Vec<String>,
    pub vdsm_cpu_model: Option<String>,
}

/// The CPU types of the newest cluster level (oVirt's ServerCPUList, with the flags that
/// decide which a host supports).
pub fn cpu_types() -> &'static [CpuType] {
    static TYPES: OnceLock<Vec<CpuType>> = OnceLock::new();
    TYPES.get_or_init(|| {
        let file: Option<LevelsFile> =
            serde_json::from_str(include_str!("../../bootstrap/cluster_levels.json")).ok();
        file.and_then(|f| f.cluster_levels.into_iter().max_by(|a, b| a.id.cmp(&b.id)))
            .map(|l| l.cpu_types)
            .unwrap_or_default()
    })
}

pub fn architecture(caps: &Capabilities) -> &'static str {
    let v = caps.cpu.vendor.to_ascii_lowercase();
    let model = caps.cpu.model.to_ascii_lowercase();
    if v.contains("ibm") || model.contains("power") {
        if model.contains("z1") || model.starts_with('z') {
            "s390x"
        } else {
            "ppc64"
        }
    } else {
        "x86_64"
    }
}

/// The best CPU type the host supports: the highest level whose flags it has all of (as
/// oVirt matches VDSM's `cpuFlags`). Agents that report no `model_*` flags (a simulation, a
/// TCG host) get the vendor's base type, so that they can still run VMs.
pub fn best_cpu_type(caps: &Capabilities) -> Option<&'static CpuType> {
    let arch = architecture(caps);
    let flags: std::collections::HashSet<&str> =
        caps.cpu.flags.iter().map(String::as_str).collect();
    let of_arch = cpu_types().iter().filter(|t| t.architecture == arch);
    if let Some(t) = of_arch
        .clone()
        .filter(|t| t.flags.iter().all(|f| flags.contains(f.as_str())))
        .max_by_key(|t| t.level)
    {
        return Some(t);
    }
    let vendor = caps.cpu.vendor.to_ascii_lowercase();
    let prefix = if vendor.contains("amd") {
        "AMD"
    } else if arch == "x86_64" {
        "Intel"
    } else {
        "IBM"
    };
    of_arch
        .filter(|t| t.name.starts_with(prefix))
        .min_by_key(|t| t.level)
}

fn version_of(text: &str, full: String) -> m::Version {
    let mut nums = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().unwrap_or(0));
    m::Version {
        major: nums.next(),
        minor: nums.next(),
        build: nums.next(),
        revision: nums.next(),
        full_version: Some(full),
        ..Default::default()
    }
}

/// Logical CPUs of a host.
pub fn cpu_count(caps: &Capabilities) -> i64 {
    (caps.cpu.sockets.max(1) * caps.cpu.cores_per_socket.max(1) * caps.cpu.threads_per_core.max(1))
        as i64
}

/// The Host members that come from capabilities.
pub fn host_fragment(host_id: &str, caps: &Capabilities) -> m::Host {
    let c = &caps.cpu;
    let libvirt = caps.qemu_version.clone().unwrap_or_else(|| {
        if caps.simulated {
            "simulated".into()
        } else {
            "unknown".into()
        }
    });
    m::Host {
        cpu: Some(Box::new(m::Cpu {
            name: Some(c.model.clone()),
            speed: Some(c.speed_mhz as f64),
            r#type: best_cpu_type(caps).map(|t| t.name.clone()),
            topology: Some(Box::new(m::CpuTopology {
                sockets: Some(c.sockets.max(1) as i64),
                cores: Some(c.cores_per_socket.max(1) as i64),
                threads: Some(c.threads_per_core.max(1) as i64),
                ..Default::default()
            })),
            ..Default::default()
        })),
        memory: Some(caps.memory_bytes as i64),
        os: Some(Box::new(m::OperatingSystem {
            r#type: Some(caps.os.name.clone()),
            version: Some(Box::new(version_of(
                &caps.os.version,
                caps.os.version.clone(),
            ))),
            reported_kernel_cmdline: Some(format!("kernel {}", caps.os.kernel)),
            custom_kernel_cmdline: Some(String::new()),
            ..Default::default()
        })),
        version: Some(Box::new(version_of(
            &caps.agent_version,
            format!("vireo-agent-{}", caps.agent_version),
        ))),
        libvirt_version: Some(Box::new(version_of(&libvirt, libvirt.clone()))),
        hardware_information: Some(Box::new(m::HardwareInformation {
            manufacturer: Some(if caps.simulated {
                "vireo (simulated)".into()
            } else {
                c.vendor.clone()
            }),
            product_name: Some(caps.hostname.clone()),
            family: Some(c.model.clone()),
            serial_number: Some(host_id.to_string()),
            uuid: Some(host_id.to_string()),
            version: Some(caps.agent_version.clone()),
            supported_rng_sources: Some(vec![m::RngSource::Random, m::RngSource::Urandom]),
            ..Default::default()
        })),
        kdump_status: Some(m::KdumpStatus::Disabled),
        se_linux: Some(Box::new(m::SeLinux {
            mode: Some(m::SeLinuxMode::Disabled),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A host NIC record (`hosts/nics`): ids stay the same across refreshes.
pub fn nic_doc(
    host_id: &str,
    host_address: &str,
    nic: &vireo_agent_proto::HostNic,
) -> (String, Value) {
    let id = docs::derived_id(&[host_id, "nic", &nic.name]);
    let management = nic
        .ipv4
        .as_deref()
        .map(|ip| ip.split('/').next() == Some(host_address))
        .unwrap_or(false);
    let ip = nic.ipv4.as_ref().map(|cidr| {
        let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr.as_str(), "24"));
        let bits: u32 = prefix.parse().unwrap_or(24).min(32);
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        let netmask = std::net::Ipv4Addr::from(mask).to_string();
        m::Ip {
            address: Some(addr.to_string()),
            netmask: Some(netmask),
            version: Some(m::IpVersion::V4),
            ..Default::default()
        }
    });
    let v = m::HostNic {
        id: Some(id.clone()),
        name: Some(nic.name.clone()),
        mac: Some(Box::new(m::Mac {
            address: Some(nic.mac.clone()),
            ..Default::default()
        })),
        // oVirt shows the speed in bits per second.
        speed: nic.speed_mbps.map(|s| (s * 1_000_000) as i64),
        boot_protocol: Some(if ip.is_some() {
            m::BootProtocol::Dhcp
        } else {
            m::BootProtocol::None
        }),
        ip: ip.map(Box::new),
        mtu: Some(nic.mtu as i64),
        status: Some(if nic.up {
            m::NicStatus::Up
        } else {
            m::NicStatus::Down
        }),
        bridged: Some(management),
        host: Some(Box::new(m::Host {
            id: Some(host_id.to_string()),
            ..Default::default()
        })),
        network: management.then(|| {
            Box::new(m::Network {
                id: Some(ids::MANAGEMENT_NETWORK.to_string()),
                ..Default::default()
            })
        }),
        ..Default::default()
    };
    (id, to_doc(&v))
}

/// Writes the capabilities into the host record and its NICs (only what changed), sets the
/// cluster's CPU when it has none, and moves the host to `up` when it was coming up.
/// Returns the host's new status, or None when the host is gone.
pub async fn apply(
    tx: &mut Tx,
    host_id: &str,
    caps: &Capabilities,
) -> Result<Option<String>, StoreError> {
    let Some(rec) = tx.get("hosts", host_id).await? else {
        return Ok(None);
    };
    let before = docs::parse(&rec);
    let mut doc = before.clone();
    let o = docs::obj(&mut doc);
    for k in [
        "cpu",
        "os",
        "version",
        "libvirt_version",
        "hardware_information",
    ] {
        o.remove(k);
    }
    docs::merge(&mut doc, &to_doc(&host_fragment(host_id, caps)));
    let status = docs::text(&doc, &["status"])
        .unwrap_or("unassigned")
        .to_string();
    let new_status = match status.as_str() {
        "initializing" | "unassigned" | "non_responsive" | "connecting" | "non_operational" => {
            "up".to_string()
        }
        s => s.to_string(),
    };
    docs::obj(&mut doc).insert("status".into(), new_status.clone().into());
    let name = rec.name.clone().unwrap_or_default();
    let cluster_id = docs::text(&doc, &["cluster", "id"])
        .unwrap_or_default()
        .to_string();
    if doc != before {
        index::write_runtime(tx, &rec, &doc)
            .await
            .map_err(docs::store_err)?;
    }
    if new_status != status {
        let about = About {
            host_id: Some(host_id),
            cluster_id: Some(&cluster_id),
            ..Default::default()
        };
        tx.insert_event(&events::event(
            events::VDS_DETECTED,
            format!("Status of host {name} was set to Up."),
            about,
        ))
        .await?;
    }
    apply_nics(
        tx,
        host_id,
        docs::text(&doc, &["address"]).unwrap_or_default(),
        caps,
    )
    .await?;
    set_cluster_cpu(tx, &cluster_id, caps).await?;
    Ok(Some(new_status))
}

async fn apply_nics(
    tx: &mut Tx,
    host_id: &str,
    address: &str,
    caps: &Capabilities,
) -> Result<(), StoreError> {
    let existing = tx
        .list(NICS, &Query::new(Filter::ParentIs(host_id.to_string())))
        .await?;
    let mut keep = std::collections::HashSet::new();
    for nic in &caps.nics {
        let (id, doc) = nic_doc(host_id, address, nic);
        keep.insert(id.clone());
        match existing.iter().find(|r| r.id == id) {
            Some(r) if docs::parse(r) == doc => {}
            Some(r) => {
                index::update(tx, r, &doc, None).await.map_err(write_err)?;
            }
            None => {
                index::insert(tx, NICS, &id, &doc, Some(host_id), &[])
                    .await
                    .map_err(write_err)?;
            }
        }
    }
    for r in existing.iter().filter(|r| !keep.contains(&r.id)) {
        tx.delete(NICS, &r.id).await?;
    }
    Ok(())
}

/// oVirt gives a cluster without a CPU type the type (and architecture) of its first host.
async fn set_cluster_cpu(
    tx: &mut Tx,
    cluster_id: &str,
    caps: &Capabilities,
) -> Result<(), StoreError> {
    let Some(t) = best_cpu_type(caps) else {
        return Ok(());
    };
    let Some(rec) = tx.get("clusters", cluster_id).await? else {
        return Ok(());
    };
    let mut doc = docs::parse(&rec);
    if docs::text(&doc, &["cpu", "type"]).is_some_and(|s| !s.is_empty()) {
        return Ok(());
    }
    let cpu = docs::obj(&mut doc)
        .entry("cpu")
        .or_insert_with(|| Value::Object(Default::default()));
    let c = docs::obj(cpu);
    c.insert("type".into(), t.name.clone().into());
    c.insert("architecture".into(), t.architecture.clone().into());
    index::update(tx, &rec, &doc, None)
        .await
        .map_err(write_err)?;
    Ok(())
}

fn write_err(e: index::WriteError) -> StoreError {
    match e {
        index::WriteError::Conflict(what) => StoreError::Conflict { what },
        index::WriteError::Api(e) => docs::store_err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_agent_proto::*;

    pub fn caps(flags: &[&str], vendor: &str) -> Capabilities {
        Capabilities {
            protocol: vec![1],
            agent_version: "0.1.0".into(),
            host_id: None,
            hostname: "h1".into(),
            simulated: true,
            cpu: CpuInfo {
                model: "Intel(R) Xeon(R)".into(),
                vendor: vendor.into(),
                sockets: 2,
                cores_per_socket: 4,
                threads_per_core: 2,
                speed_mhz: 2400,
                flags: flags.iter().map(|s| s.to_string()).collect(),
            },
            memory_bytes: 16 << 30,
            nics: vec![HostNic {
                name: "eth0".into(),
                mac: "52:54:00:00:00:01".into(),
                speed_mbps: Some(1000),
                ipv4: Some("127.0.0.1/8".into()),
                mtu: 1500,
                up: true,
            }],
            bridges: vec![],
            accel: Accel {
                kind: AccelKind::None,
                detail: String::new(),
            },
            os: OsInfo {
                name: "Debian GNU/Linux".into(),
                version: "12".into(),
                kernel: "6.1.0".into(),
            },
            qemu_version: None,
        }
    }

    #[test]
    fn cpu_types_match_flags_or_fall_back_to_the_vendor_base() {
        let c = caps(
            &["vmx", "nx", "model_Nehalem", "model_Westmere", "aes"],
            "GenuineIntel",
        );
        assert_eq!(best_cpu_type(&c).unwrap().name, "Intel Westmere Family");
        assert_eq!(
            best_cpu_type(&caps(&[], "GenuineIntel")).unwrap().name,
            "Intel Nehalem Family"
        );
        assert_eq!(
            best_cpu_type(&caps(&[], "AuthenticAMD")).unwrap().name,
            "AMD Opteron G4"
        );
    }

    #[test]
    fn nics_carry_ip_mask_speed_and_the_management_network() {
        let c = caps(&[], "GenuineIntel");
        let (id, doc) = nic_doc("h", "127.0.0.1", &c.nics[0]);
        assert_eq!(doc["ip"]["netmask"], "255.0.0.0");
        assert_eq!(doc["speed"], "1000000000");
        assert_eq!(doc["status"], "up");
        assert_eq!(doc["network"]["id"], ids::MANAGEMENT_NETWORK);
        assert_eq!(id, nic_doc("h", "127.0.0.1", &c.nics[0]).0);
        let h = to_doc(&host_fragment("h", &c));
        assert_eq!(h["cpu"]["topology"]["cores"], "4");
        assert_eq!(h["memory"], (16u64 << 30).to_string());
    }
}
