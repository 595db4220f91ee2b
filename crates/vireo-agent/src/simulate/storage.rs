//! Simulated storage: domains of 1 TiB whose use grows with the volumes made in them, laid
//! out (in the paths reported) like oVirt's `<mount>/<domain>/images/<disk>/<volume>`.
//! Volumes are metadata only: nothing is written to any disk.

use std::collections::BTreeMap;

use vireo_agent_proto::{
    AgentError, AgentResult, DomainInfo, DomainSpec, ErrorCode, FileInfo, VolumeInfo,
    VolumeOperation,
};

use super::hardware::GIB;

pub const DOMAIN_BYTES: u64 = 1 << 40;
/// A fresh qcow2 image: header, L1 table and refcounts.
const QCOW2_METADATA: u64 = 1 << 20;
/// Largest disk oVirt allows on a VM.
const MAX_VOLUME_BYTES: u64 = 64 << 40;
/// Bounds that keep one simulated host's memory small whatever the engine asks.
const MAX_DOMAINS: usize = 64;
const MAX_VOLUMES_PER_DOMAIN: usize = 10_000;
const MAX_TEXT: usize = 4096;

/// What an ISO domain of a simulated host holds.
const ISO_FILES: &[(&str, u64)] = &[
    ("CentOS-Stream-9-latest-x86_64-dvd1.iso", 10_603_118_592),
    ("debian-12.5.0-amd64-netinst.iso", 659_554_304),
    ("Fedora-Server-dvd-x86_64-40-1.14.iso", 2_612_854_784),
    ("virtio-win-0.1.240.iso", 627_519_488),
];

struct Domain {
    spec: DomainSpec,
    /// By (disk, volume).
    volumes: BTreeMap<(String, String), VolumeInfo>,
    files: Vec<FileInfo>,
}

impl Domain {
    fn used(&self) -> u64 {
        self.volumes.values().map(|v| v.actual_size).sum::<u64>()
            + self.files.iter().map(|f| f.size).sum::<u64>()
    }

    fn info(&self) -> DomainInfo {
        let used = self.used().min(DOMAIN_BYTES);
        DomainInfo {
            id: self.spec.id.clone(),
            total_bytes: DOMAIN_BYTES,
            available_bytes: DOMAIN_BYTES - used,
            used_bytes: used,
        }
    }

    /// Where the domain would be mounted on an oVirt host.
    fn root(&self) -> String {
        let s = &self.spec;
        match s.storage_type.as_str() {
            "localfs" => s.path.clone(),
            _ => {
                let source =
                    format!("{}:{}", s.address.as_deref().unwrap_or(""), s.path).replace('/', "_");
                format!("/rhev/data-center/mnt/{source}")
            }
        }
    }

    fn path(&self, disk: &str, volume: &str) -> String {
        format!("{}/{}/images/{disk}/{volume}", self.root(), self.spec.id)
    }

    fn volume(&self, disk: &str, volume: &str) -> AgentResult<&VolumeInfo> {
        self.volumes
            .get(&(disk.to_string(), volume.to_string()))
            .ok_or_else(|| no_volume(&self.spec.id, disk, volume))
    }

    fn make_room(&self, bytes: u64) -> AgentResult<()> {
        if self.volumes.len() >= MAX_VOLUMES_PER_DOMAIN {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "domain {} holds {MAX_VOLUMES_PER_DOMAIN} volumes already",
                    self.spec.id
                ),
            ));
        }
        let free = self.info().available_bytes;
        if bytes > free {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "domain {} has {} GiB free, {} GiB needed",
                    self.spec.id,
                    free / GIB,
                    bytes.div_ceil(GIB)
                ),
            ));
        }
        Ok(())
    }

    fn absent(&self, disk: &str, volume: &str) -> AgentResult<()> {
        if self
            .volumes
            .contains_key(&(disk.to_string(), volume.to_string()))
        {
            return Err(AgentError::new(
                ErrorCode::WrongState,
                format!(
                    "volume {disk}/{volume} already exists in domain {}",
                    self.spec.id
                ),
            ));
        }
        Ok(())
    }

    fn has_children(&self, disk: &str, volume: &str) -> bool {
        self.volumes
            .iter()
            .any(|((d, _), v)| d == disk && v.parent.as_deref() == Some(volume))
    }
}

fn no_volume(domain: &str, disk: &str, volume: &str) -> AgentError {
    AgentError::new(
        ErrorCode::NoSuchVolume,
        format!("no volume {disk}/{volume} in domain {domain}"),
    )
}

fn invalid(message: impl Into<String>) -> AgentError {
    AgentError::new(ErrorCode::InvalidRequest, message)
}

/// Ids become path components: keep them to characters that cannot climb out of a folder.
pub fn check_id(what: &str, id: &str) -> AgentResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {id:?} must be 1-128 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

fn normalize_format(format: &str) -> AgentResult<&'static str> {
    match format {
        "cow" | "qcow2" => Ok("qcow2"),
        "raw" => Ok("raw"),
        other => Err(invalid(format!(
            "volume format must be qcow2 (cow) or raw, not {other:?}"
        ))),
    }
}

#[derive(Default)]
pub struct Storage {
    domains: BTreeMap<String, Domain>,
}

impl Storage {
    pub fn connect(&mut self, spec: &DomainSpec) -> AgentResult<DomainInfo> {
        check_id("domain id", &spec.id)?;
        if !matches!(spec.domain_type.as_str(), "data" | "iso" | "export") {
            return Err(invalid(format!(
                "domain type must be data, iso or export, not {:?}",
                spec.domain_type
            )));
        }
        match spec.storage_type.as_str() {
            "nfs" if spec.address.as_deref().is_none_or(str::is_empty) => {
                return Err(invalid("an NFS domain needs the server's address"))
            }
            "posixfs" if spec.vfs_type.as_deref().is_none_or(str::is_empty) => {
                return Err(invalid("a POSIX domain needs its vfs_type"))
            }
            "nfs" | "posixfs" | "localfs" => {}
            other => {
                return Err(AgentError::new(
                    ErrorCode::Unsupported,
                    format!("storage type {other:?} is not supported (nfs, posixfs, localfs)"),
                ))
            }
        }
        let texts = [
            Some(&spec.path),
            spec.address.as_ref(),
            spec.vfs_type.as_ref(),
            spec.mount_options.as_ref(),
        ];
        if texts.iter().flatten().any(|t| t.len() > MAX_TEXT) {
            return Err(invalid(format!(
                "a domain's path, address and options have at most {MAX_TEXT} characters"
            )));
        }
        if !spec.path.starts_with('/') {
            return Err(invalid(format!(
                "the domain's path must be absolute, not {:?}",
                spec.path
            )));
        }
        if let Some(domain) = self.domains.get_mut(&spec.id) {
            // Connecting again (a host re-activated) keeps the volumes: they live on the storage.
            domain.spec = spec.clone();
            return Ok(domain.info());
        }
        if self.domains.len() >= MAX_DOMAINS {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                format!("this host has {MAX_DOMAINS} domains connected already"),
            ));
        }
        let files = if spec.domain_type == "iso" {
            ISO_FILES
                .iter()
                .map(|(name, size)| FileInfo {
                    name: name.to_string(),
                    size: *size,
                })
                .collect()
        } else {
            Vec::new()
        };
        let domain = Domain {
            spec: spec.clone(),
            volumes: BTreeMap::new(),
            files,
        };
        let info = domain.info();
        self.domains.insert(spec.id.clone(), domain);
        Ok(info)
    }

    pub fn disconnect(&mut self, id: &str) -> AgentResult<()> {
        self.domains
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| no_domain(id))
    }

    pub fn info(&self, id: &str) -> AgentResult<DomainInfo> {
        self.domains
            .get(id)
            .map(Domain::info)
            .ok_or_else(|| no_domain(id))
    }

    pub fn files(&self, id: &str) -> AgentResult<Vec<FileInfo>> {
        self.domains
            .get(id)
            .map(|d| d.files.clone())
            .ok_or_else(|| no_domain(id))
    }

    fn volume_domain(&mut self, id: &str) -> AgentResult<&mut Domain> {
        let domain = self.domains.get_mut(id).ok_or_else(|| no_domain(id))?;
        if domain.spec.domain_type == "iso" {
            return Err(invalid(format!(
                "domain {id} is an ISO domain: it holds files, not volumes"
            )));
        }
        Ok(domain)
    }

    pub fn volume(&mut self, op: &VolumeOperation) -> AgentResult<VolumeInfo> {
        match op {
            VolumeOperation::Create {
                domain_id,
                disk_id,
                volume_id,
                format,
                size,
                sparse,
            } => {
                check_id("disk id", disk_id)?;
                check_id("volume id", volume_id)?;
                let format = normalize_format(format)?;
                if *size == 0 || *size > MAX_VOLUME_BYTES {
                    return Err(invalid(format!(
                        "a volume's size must be between 1 byte and 64 TiB, not {size}"
                    )));
                }
                let domain = self.volume_domain(domain_id)?;
                domain.absent(disk_id, volume_id)?;
                let actual = match (format, sparse) {
                    ("qcow2", true) => QCOW2_METADATA,
                    ("qcow2", false) => size + QCOW2_METADATA,
                    (_, true) => 0,
                    (_, false) => *size,
                };
                domain.make_room(actual)?;
                let info = VolumeInfo {
                    domain_id: domain_id.clone(),
                    disk_id: disk_id.clone(),
                    volume_id: volume_id.clone(),
                    path: domain.path(disk_id, volume_id),
                    format: format.into(),
                    virtual_size: *size,
                    actual_size: actual,
                    parent: None,
                };
                domain
                    .volumes
                    .insert((disk_id.clone(), volume_id.clone()), info.clone());
                Ok(info)
            }
            VolumeOperation::Snapshot {
                domain_id,
                disk_id,
                volume_id,
                parent_volume_id,
            } => {
                check_id("volume id", volume_id)?;
                let domain = self.volume_domain(domain_id)?;
                let parent = domain.volume(disk_id, parent_volume_id)?.clone();
                domain.absent(disk_id, volume_id)?;
                domain.make_room(QCOW2_METADATA)?;
                let info = VolumeInfo {
                    volume_id: volume_id.clone(),
                    path: domain.path(disk_id, volume_id),
                    format: "qcow2".into(),
                    actual_size: QCOW2_METADATA,
                    parent: Some(parent.volume_id),
                    ..parent
                };
                domain
                    .volumes
                    .insert((disk_id.clone(), volume_id.clone()), info.clone());
                Ok(info)
            }
            VolumeOperation::Merge {
                domain_id,
                disk_id,
                volume_id,
            } => {
                let domain = self.volume_domain(domain_id)?;
                let top = domain.volume(disk_id, volume_id)?.clone();
                let parent_id = top.parent.clone().ok_or_else(|| {
                    invalid(format!(
                        "volume {volume_id} is a base volume: nothing to merge it into"
                    ))
                })?;
                let parent_key = (disk_id.clone(), parent_id.clone());
                let parent = domain
                    .volumes
                    .get_mut(&parent_key)
                    .ok_or_else(|| no_volume(domain_id, disk_id, &parent_id))?;
                // The parent takes the data; it cannot grow past its virtual size plus metadata.
                let cap = parent.virtual_size
                    + if parent.format == "qcow2" {
                        QCOW2_METADATA
                    } else {
                        0
                    };
                parent.actual_size =
                    (parent.actual_size + top.actual_size.saturating_sub(QCOW2_METADATA)).min(cap);
                parent.virtual_size = parent.virtual_size.max(top.virtual_size);
                let merged = parent.clone();
                domain.volumes.remove(&(disk_id.clone(), volume_id.clone()));
                // What sat on the merged volume now sits on its parent.
                for v in domain.volumes.values_mut().filter(|v| {
                    v.disk_id == *disk_id && v.parent.as_deref() == Some(volume_id.as_str())
                }) {
                    v.parent = Some(parent_id.clone());
                }
                Ok(merged)
            }
            VolumeOperation::Copy {
                from_domain_id,
                disk_id,
                volume_id,
                to_domain_id,
                to_disk_id,
                to_volume_id,
            } => {
                check_id("disk id", to_disk_id)?;
                check_id("volume id", to_volume_id)?;
                let source = self
                    .volume_domain(from_domain_id)?
                    .volume(disk_id, volume_id)?
                    .clone();
                let target = self.volume_domain(to_domain_id)?;
                target.absent(to_disk_id, to_volume_id)?;
                target.make_room(source.actual_size)?;
                // A copy is a flat image: the chain is collapsed into it.
                let info = VolumeInfo {
                    domain_id: to_domain_id.clone(),
                    disk_id: to_disk_id.clone(),
                    volume_id: to_volume_id.clone(),
                    path: target.path(to_disk_id, to_volume_id),
                    parent: None,
                    ..source
                };
                target
                    .volumes
                    .insert((to_disk_id.clone(), to_volume_id.clone()), info.clone());
                Ok(info)
            }
            VolumeOperation::Resize {
                domain_id,
                disk_id,
                volume_id,
                size,
            } => {
                let domain = self.volume_domain(domain_id)?;
                let current = domain.volume(disk_id, volume_id)?.clone();
                if *size < current.virtual_size {
                    return Err(invalid(format!(
                        "volumes only grow: {size} is less than {}",
                        current.virtual_size
                    )));
                }
                if *size > MAX_VOLUME_BYTES {
                    return Err(invalid("a volume cannot be larger than 64 TiB"));
                }
                // A preallocated raw image grows on the storage too.
                let grow = if current.format == "raw" && current.actual_size >= current.virtual_size
                {
                    size - current.virtual_size
                } else {
                    0
                };
                domain.make_room(grow)?;
                let v = domain
                    .volumes
                    .get_mut(&(disk_id.clone(), volume_id.clone()))
                    .ok_or_else(|| no_volume(domain_id, disk_id, volume_id))?;
                v.virtual_size = *size;
                v.actual_size += grow;
                Ok(v.clone())
            }
            VolumeOperation::Delete {
                domain_id,
                disk_id,
                volume_id,
            } => {
                let domain = self.volume_domain(domain_id)?;
                domain.volume(disk_id, volume_id)?;
                if domain.has_children(disk_id, volume_id) {
                    return Err(AgentError::new(ErrorCode::WrongState, format!("volume {volume_id} has snapshots on top of it: delete or merge those first")));
                }
                domain
                    .volumes
                    .remove(&(disk_id.clone(), volume_id.clone()))
                    .ok_or_else(|| no_volume(domain_id, disk_id, volume_id))
            }
            VolumeOperation::Info {
                domain_id,
                disk_id,
                volume_id,
            } => Ok(self
                .volume_domain(domain_id)?
                .volume(disk_id, volume_id)?
                .clone()),
        }
    }
}

fn no_domain(id: &str) -> AgentError {
    AgentError::new(
        ErrorCode::NoSuchDomain,
        format!("storage domain {id} is not connected to this host"),
    )
}
