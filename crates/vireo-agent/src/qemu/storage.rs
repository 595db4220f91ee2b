//! Storage domains and volumes on a host, laid out as oVirt's file domains are, so a domain
//! written by one host is read by another and can be re-attached:
//!
//! ```text
//! <mount or folder>/<sd id>/dom_md/metadata          key=value lines, sealed by _SHA_CKSUM
//! <mount or folder>/<sd id>/dom_md/{ids,leases,xleases,inbox,outbox}
//! <mount or folder>/<sd id>/images/<disk id>/<volume id>        the image (qcow2 or raw)
//! <mount or folder>/<sd id>/images/<disk id>/<volume id>.meta   CAP, FORMAT, PUUID, VOLTYPE, …
//! <mount or folder>/<sd id>/images/<disk id>/<volume id>.lease
//! <mount or folder>/<sd id>/images/11111111-1111-1111-1111-111111111111/*.iso   (ISO domains)
//! ```
//!
//! Snapshot overlays name their backing file by volume id alone (relative to the image's
//! folder), as vdsm does, so chains survive a different mount point.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vireo_agent_proto::{
    AgentError, AgentResult, DomainInfo, DomainSpec, ErrorCode, FileInfo, VolumeInfo,
};

pub const ISO_IMAGE_UUID: &str = "11111111-1111-1111-1111-111111111111";
pub const BLANK_UUID: &str = "00000000-0000-0000-0000-000000000000";
const DOMAIN_VERSION: u32 = 5;

fn err(code: ErrorCode, msg: impl Into<String>) -> AgentError {
    AgentError::new(code, msg)
}
fn failed(msg: impl Into<String>) -> AgentError {
    err(ErrorCode::Failed, msg)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DomainRecord {
    spec: DomainSpec,
    /// The folder that holds `<sd id>/`: the mount point, or the local folder.
    root: PathBuf,
}

pub struct Storage {
    data_dir: PathBuf,
    domains: Mutex<HashMap<String, DomainRecord>>,
}

/// A volume's `.meta` file (vdsm's format for v5 domains).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeMeta {
    pub capacity: u64,
    /// `COW` or `RAW`.
    pub format: String,
    pub parent: Option<String>,
    /// `SPARSE` or `PREALLOCATED`.
    pub alloc: String,
    /// `LEAF` or `INTERNAL`.
    pub voltype: String,
    pub domain: String,
    pub image: String,
    pub ctime: u64,
    pub generation: u64,
}

impl VolumeMeta {
    pub fn render(&self) -> String {
        let mut kv: BTreeMap<&str, String> = BTreeMap::new();
        kv.insert("CAP", self.capacity.to_string());
        kv.insert("CTIME", self.ctime.to_string());
        kv.insert("DESCRIPTION", String::new());
        kv.insert("DISKTYPE", "DATA".into());
        kv.insert("DOMAIN", self.domain.clone());
        kv.insert("FORMAT", self.format.clone());
        kv.insert("GEN", self.generation.to_string());
        kv.insert("IMAGE", self.image.clone());
        kv.insert("LEGALITY", "LEGAL".into());
        kv.insert(
            "PUUID",
            self.parent.clone().unwrap_or_else(|| BLANK_UUID.into()),
        );
        kv.insert("SEQ", "0".into());
        kv.insert("TYPE", self.alloc.clone());
        kv.insert("VOLTYPE", self.voltype.clone());
        let mut s: String = kv.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        s.push_str("EOF\n");
        s
    }

    pub fn parse(text: &str) -> Option<VolumeMeta> {
        let mut kv = HashMap::new();
        for line in text.lines() {
            if line.starts_with("EOF") {
                break;
            }
            if let Some((k, v)) = line.split_once('=') {
                kv.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        // Pre-v5 volumes carry SIZE in 512-byte blocks instead of CAP in bytes.
        let capacity = match kv.get("CAP") {
            Some(c) => c.parse().ok()?,
            None => kv.get("SIZE")?.parse::<u64>().ok()? * 512,
        };
        Some(VolumeMeta {
            capacity,
            format: kv.get("FORMAT")?.clone(),
            parent: kv
                .get("PUUID")
                .filter(|p| p.as_str() != BLANK_UUID && !p.is_empty())
                .cloned(),
            alloc: kv.get("TYPE").cloned().unwrap_or_else(|| "SPARSE".into()),
            voltype: kv.get("VOLTYPE").cloned().unwrap_or_else(|| "LEAF".into()),
            domain: kv.get("DOMAIN").cloned().unwrap_or_default(),
            image: kv.get("IMAGE").cloned().unwrap_or_default(),
            ctime: kv.get("CTIME").and_then(|c| c.parse().ok()).unwrap_or(0),
            generation: kv.get("GEN").and_then(|c| c.parse().ok()).unwrap_or(0),
        })
    }
}

/// The domain's `dom_md/metadata`, sealed like vdsm's: SHA-1 over the sorted `key=value`
/// lines (without newlines), appended as `_SHA_CKSUM`.
pub fn domain_metadata(spec: &DomainSpec) -> String {
    let class = match spec.domain_type.as_str() {
        "iso" => "Iso",
        "export" => "Backup",
        _ => "Data",
    };
    let remote = match &spec.address {
        Some(a) if !a.is_empty() => format!("{a}:{}", spec.path),
        _ => spec.path.clone(),
    };
    let mut kv: BTreeMap<&str, String> = BTreeMap::new();
    kv.insert("ALIGNMENT", "1048576".into());
    kv.insert("BLOCK_SIZE", "512".into());
    kv.insert("CLASS", class.into());
    kv.insert("DESCRIPTION", spec.id.clone());
    kv.insert("IOOPTIMEOUTSEC", "10".into());
    kv.insert("LEASERETRIES", "3".into());
    kv.insert("LEASETIMESEC", "60".into());
    kv.insert("LOCKPOLICY", String::new());
    kv.insert("LOCKRENEWALINTERVALSEC", "5".into());
    kv.insert("POOL_UUID", String::new());
    kv.insert("REMOTE_PATH", remote);
    kv.insert("ROLE", "Regular".into());
    kv.insert("SDUUID", spec.id.clone());
    kv.insert("TYPE", spec.storage_type.to_uppercase());
    kv.insert("VERSION", DOMAIN_VERSION.to_string());
    let lines: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for l in &lines {
        ctx.update(l.as_bytes());
    }
    let sum: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut s: String = lines.iter().map(|l| format!("{l}\n")).collect();
    s.push_str(&format!("_SHA_CKSUM={sum}\n"));
    s
}

fn metadata_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

/// vdsm's mount point name for a remote path: `_` doubled, `/` turned into `_`.
pub fn transform_path(remote: &str) -> String {
    remote.replace('_', "__").replace('/', "_")
}

/// Runs a command, its stderr in the error.
pub async fn run(cmd: &str, args: &[&str], timeout: Duration) -> AgentResult<String> {
    let mut c = tokio::process::Command::new(cmd);
    c.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, c.output())
        .await
        .map_err(|_| {
            failed(format!(
                "{cmd} {} timed out after {} s",
                args.join(" "),
                timeout.as_secs()
            ))
        })?
        .map_err(|e| failed(format!("cannot run {cmd}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(failed(format!(
            "{cmd} {}: {}",
            args.join(" "),
            stderr.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(3600);

async fn qemu_img(args: &[&str]) -> AgentResult<String> {
    run("qemu-img", args, QEMU_IMG_TIMEOUT).await
}

/// `qemu-img info` of one image, without following its chain (`-U`: the VM may hold it).
pub async fn image_info(path: &Path) -> AgentResult<serde_json::Value> {
    let out = qemu_img(&["info", "-U", "--output=json", &path.to_string_lossy()]).await?;
    serde_json::from_str(&out).map_err(|e| failed(format!("qemu-img info: {e}")))
}

fn qemu_format(meta_format: &str) -> &'static str {
    if meta_format.eq_ignore_ascii_case("COW") || meta_format == "qcow2" {
        "qcow2"
    } else {
        "raw"
    }
}

fn is_mounted(mount_point: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mp = mount_point.to_string_lossy();
    // /proc/mounts escapes spaces as \040.
    mounts.lines().any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|m| m.replace("\\040", " ") == mp)
    })
}

/// What merging `volume` into its parent involves.
#[derive(Debug, Clone)]
pub struct MergePlan {
    pub domain_id: String,
    pub disk_id: String,
    pub top_id: String,
    pub top: PathBuf,
    pub base_id: String,
    pub base: PathBuf,
    pub base_format: String,
    /// Volumes whose parent is `top`: they get `base` as their parent.
    pub children: Vec<String>,
    pub top_capacity: u64,
}

impl Storage {
    pub fn open(data_dir: &Path) -> Storage {
        let mut domains = HashMap::new();
        if let Ok(dir) = std::fs::read_dir(data_dir.join("storage")) {
            for e in dir.flatten() {
                if let Some(rec) = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<DomainRecord>(&b).ok())
                {
                    domains.insert(rec.spec.id.clone(), rec);
                }
            }
        }
        Storage {
            data_dir: data_dir.to_path_buf(),
            domains: Mutex::new(domains),
        }
    }

    /// Mounts (when needed) and opens a domain; makes its layout when the folder has none.
    pub async fn connect(&self, spec: &DomainSpec) -> AgentResult<DomainInfo> {
        if spec.id.is_empty() || spec.id.contains('/') || spec.id.starts_with('.') {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("invalid storage domain id {:?}", spec.id),
            ));
        }
        let root = self.mount(spec).await?;
        let dir = root.join(&spec.id);
        let md_path = dir.join("dom_md").join("metadata");
        match std::fs::read_to_string(&md_path) {
            Ok(md) => {
                // Re-attaching: the folder must hold this very domain.
                let found = metadata_value(&md, "SDUUID").unwrap_or_default();
                if found != spec.id {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        format!(
                            "{} holds storage domain {found}, not {}",
                            md_path.display(),
                            spec.id
                        ),
                    ));
                }
            }
            Err(_) => create_layout(&dir, spec).map_err(|e| {
                failed(format!(
                    "cannot lay out storage domain in {}: {e}",
                    dir.display()
                ))
            })?,
        }
        let rec = DomainRecord {
            spec: spec.clone(),
            root,
        };
        self.save(&rec)?;
        self.domains.lock().unwrap().insert(spec.id.clone(), rec);
        self.info(&spec.id)
    }

    async fn mount(&self, spec: &DomainSpec) -> AgentResult<PathBuf> {
        let vfs = spec.vfs_type.as_deref().unwrap_or("none");
        let (source, vfs) = match spec.storage_type.as_str() {
            "localfs" => (None, "none"),
            "posixfs" if vfs == "none" || vfs.is_empty() => (None, "none"),
            "posixfs" => (Some(spec.path.clone()), vfs),
            "nfs" => {
                let addr = spec
                    .address
                    .as_deref()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        err(ErrorCode::InvalidRequest, "an NFS domain needs an address")
                    })?;
                (Some(format!("{addr}:{}", spec.path)), "nfs")
            }
            other => {
                return Err(err(
                    ErrorCode::Unsupported,
                    format!("storage type {other:?} is not supported on this host"),
                ))
            }
        };
        let Some(source) = source else {
            let p = PathBuf::from(&spec.path);
            if !p.is_dir() {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!("{} is not an existing folder", p.display()),
                ));
            }
            return Ok(p);
        };
        let mp = self.data_dir.join("mnt").join(transform_path(&source));
        std::fs::create_dir_all(&mp)
            .map_err(|e| failed(format!("cannot create mount point {}: {e}", mp.display())))?;
        if is_mounted(&mp) {
            return Ok(mp);
        }
        // vdsm's NFS defaults: soft mounts, so a dead server fails I/O instead of hanging
        // every process that touches it.
        let mut opts = if vfs == "nfs" {
            vec![
                "soft".to_string(),
                "nosharecache".into(),
                "timeo=100".into(),
                "retrans=3".into(),
            ]
        } else {
            vec![]
        };
        opts.extend(
            spec.mount_options
                .iter()
                .flat_map(|o| o.split(','))
                .filter(|o| !o.is_empty())
                .map(str::to_string),
        );
        let mut args: Vec<String> = vec!["-t".into(), vfs.into()];
        if !opts.is_empty() {
            args.push("-o".into());
            args.push(opts.join(","));
        }
        args.push(source.clone());
        args.push(mp.to_string_lossy().into_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("mount", &args, Duration::from_secs(90))
            .await
            .map_err(|e| failed(format!("mounting {vfs} {source} failed: {}", e.message)))?;
        Ok(mp)
    }

    /// Forgets a domain and unmounts what we mounted; the data stays.
    pub async fn disconnect(&self, id: &str) -> AgentResult<()> {
        let rec = self
            .domains
            .lock()
            .unwrap()
            .remove(id)
            .ok_or_else(|| no_domain(id))?;
        let _ = std::fs::remove_file(self.record_path(id));
        if rec.root.starts_with(self.data_dir.join("mnt")) && is_mounted(&rec.root) {
            run(
                "umount",
                &[&rec.root.to_string_lossy()],
                Duration::from_secs(60),
            )
            .await?;
        }
        Ok(())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.data_dir.join("storage").join(format!("{id}.json"))
    }

    fn save(&self, rec: &DomainRecord) -> AgentResult<()> {
        let path = self.record_path(&rec.spec.id);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap())?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(rec).unwrap())?;
            std::fs::rename(tmp, &path)
        };
        write().map_err(|e| failed(format!("cannot record domain {}: {e}", rec.spec.id)))
    }

    pub fn domain_dir(&self, id: &str) -> AgentResult<PathBuf> {
        let domains = self.domains.lock().unwrap();
        let rec = domains.get(id).ok_or_else(|| no_domain(id))?;
        Ok(rec.root.join(id))
    }

    pub fn info(&self, id: &str) -> AgentResult<DomainInfo> {
        let dir = self.domain_dir(id)?;
        let (total, avail) =
            statvfs(&dir).map_err(|e| failed(format!("statvfs {}: {e}", dir.display())))?;
        Ok(DomainInfo {
            id: id.to_string(),
            total_bytes: total,
            available_bytes: avail,
            used_bytes: total.saturating_sub(avail),
        })
    }

    /// The files of an ISO domain (oVirt keeps them all in one fixed image folder).
    pub fn list_files(&self, id: &str) -> AgentResult<Vec<FileInfo>> {
        let dir = self.domain_dir(id)?.join("images").join(ISO_IMAGE_UUID);
        let mut out: Vec<FileInfo> = match std::fs::read_dir(&dir) {
            Ok(d) => d
                .flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file().then(|| FileInfo {
                        name: e.file_name().to_string_lossy().into_owned(),
                        size: m.len(),
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Where a saved memory state goes (suspend) or comes from (resume): `<domain id>/…` is
    /// inside that connected domain, any other relative path below the agent's data folder.
    pub fn state_path(&self, rel: &str) -> AgentResult<String> {
        let p = Path::new(rel);
        if p.is_absolute() {
            return Ok(rel.to_string());
        }
        if p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("invalid state path {rel:?}"),
            ));
        }
        let mut parts = rel.splitn(2, '/');
        let (first, rest) = (parts.next().unwrap_or_default(), parts.next());
        if let (Ok(dir), Some(rest)) = (self.domain_dir(first), rest) {
            return Ok(dir.join(rest).to_string_lossy().into_owned());
        }
        Ok(self.data_dir.join(rel).to_string_lossy().into_owned())
    }

    /// A CD-ROM file as the engine names it (the ISO file's name, as oVirt's `file id`): the
    /// file of that name in a connected ISO domain. Absolute paths are taken as they are.
    pub fn resolve_iso(&self, name: &str) -> AgentResult<String> {
        if name.starts_with('/') {
            return Ok(name.to_string());
        }
        if name.contains('/') || name.starts_with('.') {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!("invalid ISO file name {name:?}"),
            ));
        }
        let domains = self.domains.lock().unwrap();
        domains
            .values()
            .filter(|r| r.spec.domain_type == "iso")
            .map(|r| {
                r.root
                    .join(&r.spec.id)
                    .join("images")
                    .join(ISO_IMAGE_UUID)
                    .join(name)
            })
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
            .ok_or_else(|| {
                err(
                    ErrorCode::InvalidRequest,
                    format!("no ISO domain connected to this host has the file {name:?}"),
                )
            })
    }

    pub fn volume_path(&self, domain: &str, disk: &str, volume: &str) -> AgentResult<PathBuf> {
        for part in [disk, volume] {
            if part.is_empty() || part.contains('/') || part.starts_with('.') {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!("invalid id {part:?}"),
                ));
            }
        }
        Ok(self
            .domain_dir(domain)?
            .join("images")
            .join(disk)
            .join(volume))
    }

    pub fn read_meta(&self, domain: &str, disk: &str, volume: &str) -> AgentResult<VolumeMeta> {
        let p = meta_path(&self.volume_path(domain, disk, volume)?);
        let text = std::fs::read_to_string(&p).map_err(|_| {
            err(
                ErrorCode::NoSuchVolume,
                format!("no volume {volume} in disk {disk} of domain {domain}"),
            )
        })?;
        VolumeMeta::parse(&text)
            .ok_or_else(|| failed(format!("{} is not valid volume metadata", p.display())))
    }

    fn write_meta(
        &self,
        domain: &str,
        disk: &str,
        volume: &str,
        meta: &VolumeMeta,
    ) -> AgentResult<()> {
        let p = meta_path(&self.volume_path(domain, disk, volume)?);
        let tmp = p.with_extension("meta.tmp");
        std::fs::write(&tmp, meta.render())
            .and_then(|_| std::fs::rename(&tmp, &p))
            .map_err(|e| failed(format!("cannot write {}: {e}", p.display())))
    }

    /// The volumes of a disk, with their metadata.
    fn volumes_of(&self, domain: &str, disk: &str) -> AgentResult<Vec<(String, VolumeMeta)>> {
        let dir = self.domain_dir(domain)?.join("images").join(disk);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(vol) = name.strip_suffix(".meta") {
                if let Ok(m) = self.read_meta(domain, disk, vol) {
                    out.push((vol.to_string(), m));
                }
            }
        }
        Ok(out)
    }

    pub async fn create(
        &self,
        domain: &str,
        disk: &str,
        volume: &str,
        format: &str,
        size: u64,
        sparse: bool,
    ) -> AgentResult<VolumeInfo> {
        let path = self.volume_path(domain, disk, volume)?;
        if path.exists() {
            return Err(err(
                ErrorCode::WrongState,
                format!("volume {volume} exists"),
            ));
        }
        let fmt = match format {
            "cow" | "qcow2" => "qcow2",
            "raw" => "raw",
            other => {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!("volume format {other:?}: expected cow (qcow2) or raw"),
                ))
            }
        };
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| failed(e.to_string()))?;
        let p = path.to_string_lossy().into_owned();
        let size_s = size.to_string();
        let mut args = vec!["create", "-q", "-f", fmt];
        if !sparse {
            args.extend(["-o", "preallocation=falloc"]);
        }
        args.extend([p.as_str(), size_s.as_str()]);
        qemu_img(&args).await?;
        let _ = std::fs::File::create(lease_path(&path));
        let meta = VolumeMeta {
            capacity: size,
            format: if fmt == "qcow2" {
                "COW".into()
            } else {
                "RAW".into()
            },
            parent: None,
            alloc: if sparse {
                "SPARSE".into()
            } else {
                "PREALLOCATED".into()
            },
            voltype: "LEAF".into(),
            domain: domain.into(),
            image: disk.into(),
            ctime: now_s(),
            generation: 0,
        };
        self.write_meta(domain, disk, volume, &meta)?;
        self.info_of(domain, disk, volume).await
    }

    /// A qcow2 overlay on `parent`: the parent becomes read-only history (INTERNAL).
    pub async fn snapshot(
        &self,
        domain: &str,
        disk: &str,
        volume: &str,
        parent: &str,
        live: bool,
    ) -> AgentResult<VolumeInfo> {
        let path = self.volume_path(domain, disk, volume)?;
        if path.exists() {
            return Err(err(
                ErrorCode::WrongState,
                format!("volume {volume} exists"),
            ));
        }
        let mut pmeta = self.read_meta(domain, disk, parent)?;
        let p = path.to_string_lossy().into_owned();
        let size = pmeta.capacity.to_string();
        let mut args = vec![
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            parent,
            "-F",
            qemu_format(&pmeta.format),
        ];
        // A running VM holds the parent's write lock: do not open it, give the size instead.
        if live {
            args.push("-u");
        }
        args.push(&p);
        if live {
            args.push(&size);
        }
        qemu_img(&args).await?;
        let _ = std::fs::File::create(lease_path(&path));
        let meta = VolumeMeta {
            capacity: pmeta.capacity,
            format: "COW".into(),
            parent: Some(parent.into()),
            alloc: "SPARSE".into(),
            voltype: "LEAF".into(),
            domain: domain.into(),
            image: disk.into(),
            ctime: now_s(),
            generation: 0,
        };
        self.write_meta(domain, disk, volume, &meta)?;
        pmeta.voltype = "INTERNAL".into();
        self.write_meta(domain, disk, parent, &pmeta)?;
        self.info_of(domain, disk, volume).await
    }

    pub fn merge_plan(&self, domain: &str, disk: &str, volume: &str) -> AgentResult<MergePlan> {
        let meta = self.read_meta(domain, disk, volume)?;
        let base_id = meta.parent.clone().ok_or_else(|| {
            err(
                ErrorCode::InvalidRequest,
                format!("volume {volume} has no parent to merge into"),
            )
        })?;
        let bmeta = self.read_meta(domain, disk, &base_id)?;
        let children = self
            .volumes_of(domain, disk)?
            .into_iter()
            .filter(|(_, m)| m.parent.as_deref() == Some(volume))
            .map(|(v, _)| v)
            .collect();
        Ok(MergePlan {
            domain_id: domain.into(),
            disk_id: disk.into(),
            top_id: volume.into(),
            top: self.volume_path(domain, disk, volume)?,
            base: self.volume_path(domain, disk, &base_id)?,
            base_format: qemu_format(&bmeta.format).into(),
            base_id,
            children,
            top_capacity: meta.capacity,
        })
    }

    /// Merge with no VM running: `qemu-img commit` into the parent, then rebase the children.
    pub async fn cold_merge(&self, plan: &MergePlan) -> AgentResult<VolumeInfo> {
        let base = plan.base.to_string_lossy().into_owned();
        let top = plan.top.to_string_lossy().into_owned();
        let bmeta = self.read_meta(&plan.domain_id, &plan.disk_id, &plan.base_id)?;
        if bmeta.capacity < plan.top_capacity {
            // The top was extended after the snapshot: the base must hold all of it.
            qemu_img(&[
                "resize",
                "-q",
                "-f",
                &plan.base_format,
                &base,
                &plan.top_capacity.to_string(),
            ])
            .await?;
        }
        // -d: the top is deleted right after, no need to empty it.
        qemu_img(&["commit", "-q", "-d", "-f", "qcow2", &top]).await?;
        for child in &plan.children {
            let c = self
                .volume_path(&plan.domain_id, &plan.disk_id, child)?
                .to_string_lossy()
                .into_owned();
            // Unsafe rebase is right: the data the child sees is unchanged, only its name moved.
            qemu_img(&[
                "rebase",
                "-q",
                "-u",
                "-f",
                "qcow2",
                "-b",
                &plan.base_id,
                "-F",
                &plan.base_format,
                &c,
            ])
            .await?;
        }
        self.finish_merge(plan)?;
        self.info_of(&plan.domain_id, &plan.disk_id, &plan.base_id)
            .await
    }

    /// After the data of `top` is in `base` (by qemu-img or a block job): metadata and files.
    pub fn finish_merge(&self, plan: &MergePlan) -> AgentResult<()> {
        for child in &plan.children {
            let mut m = self.read_meta(&plan.domain_id, &plan.disk_id, child)?;
            m.parent = Some(plan.base_id.clone());
            self.write_meta(&plan.domain_id, &plan.disk_id, child, &m)?;
        }
        let mut b = self.read_meta(&plan.domain_id, &plan.disk_id, &plan.base_id)?;
        b.voltype = if plan.children.is_empty() {
            "LEAF".into()
        } else {
            "INTERNAL".into()
        };
        b.capacity = b.capacity.max(plan.top_capacity);
        b.generation += 1;
        self.write_meta(&plan.domain_id, &plan.disk_id, &plan.base_id, &b)?;
        remove_volume_files(&plan.top);
        Ok(())
    }

    /// Copies the data a volume shows (its chain collapsed) into a new volume.
    pub async fn copy(
        &self,
        from_domain: &str,
        disk: &str,
        volume: &str,
        to_domain: &str,
        to_disk: &str,
        to_volume: &str,
    ) -> AgentResult<VolumeInfo> {
        let src_meta = self.read_meta(from_domain, disk, volume)?;
        let src = self.volume_path(from_domain, disk, volume)?;
        let dst = self.volume_path(to_domain, to_disk, to_volume)?;
        if dst.exists() {
            return Err(err(
                ErrorCode::WrongState,
                format!("volume {to_volume} exists"),
            ));
        }
        std::fs::create_dir_all(dst.parent().unwrap()).map_err(|e| failed(e.to_string()))?;
        let fmt = qemu_format(&src_meta.format);
        let (s, d) = (
            src.to_string_lossy().into_owned(),
            dst.to_string_lossy().into_owned(),
        );
        if let Err(e) = qemu_img(&[
            "convert", "-U", "-f", fmt, "-O", fmt, "-t", "none", "-T", "none", &s, &d,
        ])
        .await
        {
            // cache=none needs O_DIRECT, which tmpfs and some FUSE file systems lack.
            if !e.message.contains("O_DIRECT") && !e.message.contains("Invalid argument") {
                return Err(e);
            }
            let _ = std::fs::remove_file(&dst);
            qemu_img(&["convert", "-U", "-f", fmt, "-O", fmt, &s, &d]).await?;
        }
        let _ = std::fs::File::create(lease_path(&dst));
        let meta = VolumeMeta {
            parent: None,
            voltype: "LEAF".into(),
            domain: to_domain.into(),
            image: to_disk.into(),
            ctime: now_s(),
            generation: 0,
            ..src_meta
        };
        self.write_meta(to_domain, to_disk, to_volume, &meta)?;
        self.info_of(to_domain, to_disk, to_volume).await
    }

    /// Extends a volume that no running VM has open (a running one uses QMP `block_resize`).
    pub async fn resize(
        &self,
        domain: &str,
        disk: &str,
        volume: &str,
        size: u64,
        done_live: bool,
    ) -> AgentResult<VolumeInfo> {
        let mut meta = self.read_meta(domain, disk, volume)?;
        if size < meta.capacity {
            return Err(err(
                ErrorCode::InvalidRequest,
                format!(
                    "volume {volume} can only grow: {} < {}",
                    size, meta.capacity
                ),
            ));
        }
        if !done_live {
            let p = self
                .volume_path(domain, disk, volume)?
                .to_string_lossy()
                .into_owned();
            let fmt = qemu_format(&meta.format);
            let mut args = vec!["resize", "-q", "-f", fmt];
            if meta.alloc == "PREALLOCATED" {
                args.push("--preallocation=falloc");
            }
            let size_s = size.to_string();
            args.extend([p.as_str(), size_s.as_str()]);
            qemu_img(&args).await?;
        }
        meta.capacity = size;
        meta.generation += 1;
        self.write_meta(domain, disk, volume, &meta)?;
        self.info_of(domain, disk, volume).await
    }

    pub async fn delete(&self, domain: &str, disk: &str, volume: &str) -> AgentResult<VolumeInfo> {
        let info = self.info_of(domain, disk, volume).await?;
        let vols = self.volumes_of(domain, disk)?;
        if let Some((child, _)) = vols
            .iter()
            .find(|(_, m)| m.parent.as_deref() == Some(volume))
        {
            return Err(err(
                ErrorCode::WrongState,
                format!("volume {volume} is the parent of {child}: merge instead"),
            ));
        }
        let path = self.volume_path(domain, disk, volume)?;
        remove_volume_files(&path);
        if let Some(parent) = &info.parent {
            // The parent is a leaf again once its only child is gone.
            if let Ok(mut pm) = self.read_meta(domain, disk, parent) {
                if !vols
                    .iter()
                    .any(|(v, m)| v != volume && m.parent.as_deref() == Some(parent))
                {
                    pm.voltype = "LEAF".into();
                    let _ = self.write_meta(domain, disk, parent, &pm);
                }
            }
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir(dir); // only when empty
        }
        Ok(info)
    }

    pub async fn info_of(&self, domain: &str, disk: &str, volume: &str) -> AgentResult<VolumeInfo> {
        let meta = self.read_meta(domain, disk, volume)?;
        let path = self.volume_path(domain, disk, volume)?;
        let qi = image_info(&path).await?;
        Ok(VolumeInfo {
            domain_id: domain.into(),
            disk_id: disk.into(),
            volume_id: volume.into(),
            path: path.to_string_lossy().into_owned(),
            format: qi["format"]
                .as_str()
                .unwrap_or(qemu_format(&meta.format))
                .to_string(),
            virtual_size: qi["virtual-size"].as_u64().unwrap_or(meta.capacity),
            actual_size: qi["actual-size"].as_u64().unwrap_or(0),
            parent: meta.parent,
        })
    }
}

fn no_domain(id: &str) -> AgentError {
    err(
        ErrorCode::NoSuchDomain,
        format!("storage domain {id} is not connected on this host"),
    )
}

fn meta_path(volume: &Path) -> PathBuf {
    let mut s = volume.as_os_str().to_owned();
    s.push(".meta");
    s.into()
}

fn lease_path(volume: &Path) -> PathBuf {
    let mut s = volume.as_os_str().to_owned();
    s.push(".lease");
    s.into()
}

fn remove_volume_files(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(meta_path(path));
    let _ = std::fs::remove_file(lease_path(path));
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn create_layout(dir: &Path, spec: &DomainSpec) -> std::io::Result<()> {
    let md = dir.join("dom_md");
    std::fs::create_dir_all(&md)?;
    // vdsm's special volumes: sanlock's ids/leases/xleases and the SPM mailboxes. Nothing
    // here uses them; they exist so that the folder is a complete domain for vdsm too.
    for (name, size) in [
        ("ids", 0u64),
        ("leases", 0),
        ("xleases", 0),
        ("inbox", 16 << 20),
        ("outbox", 16 << 20),
    ] {
        let f = std::fs::File::create(md.join(name))?;
        f.set_len(size)?;
    }
    std::fs::create_dir_all(dir.join("images"))?;
    if spec.domain_type == "iso" {
        std::fs::create_dir_all(dir.join("images").join(ISO_IMAGE_UUID))?;
    }
    let tmp = md.join("metadata.tmp");
    std::fs::write(&tmp, domain_metadata(spec))?;
    std::fs::rename(tmp, md.join("metadata"))
}

/// (total, available) bytes of the file system holding `path`.
fn statvfs(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("NUL in path"))?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = s.f_frsize as u64;
    Ok((s.f_blocks as u64 * frsize, s.f_bavail as u64 * frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_meta_round_trips_in_vdsm_format() {
        let m = VolumeMeta {
            capacity: 1 << 30,
            format: "COW".into(),
            parent: Some("p".into()),
            alloc: "SPARSE".into(),
            voltype: "LEAF".into(),
            domain: "sd".into(),
            image: "img".into(),
            ctime: 1,
            generation: 2,
        };
        let text = m.render();
        assert!(text.starts_with("CAP=1073741824\nCTIME=1\n"));
        assert!(text.ends_with("VOLTYPE=LEAF\nEOF\n"));
        assert_eq!(VolumeMeta::parse(&text).unwrap(), m);
        let old = "FORMAT=RAW\nSIZE=2048\nPUUID=00000000-0000-0000-0000-000000000000\nEOF\n";
        let o = VolumeMeta::parse(old).unwrap();
        assert_eq!((o.capacity, o.parent), (1 << 20, None));
    }

    #[test]
    fn domain_metadata_is_sealed() {
        let spec = DomainSpec {
            id: "sd1".into(),
            domain_type: "data".into(),
            storage_type: "nfs".into(),
            address: Some("srv".into()),
            path: "/exports/a".into(),
            vfs_type: None,
            mount_options: None,
        };
        let md = domain_metadata(&spec);
        assert!(
            md.contains("CLASS=Data\n")
                && md.contains("REMOTE_PATH=srv:/exports/a\n")
                && md.contains("TYPE=NFS\n")
        );
        let (body, sum) = md.rsplit_once("_SHA_CKSUM=").unwrap();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        for l in body.lines() {
            ctx.update(l.as_bytes());
        }
        let want: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sum.trim(), want);
        assert_eq!(
            transform_path("srv:/exports/my_dir"),
            "srv:_exports_my__dir"
        );
    }
}
