//! `VmSpec` → the QEMU command line, and the device layout that hot-plug needs later.
//!
//! Pure: no I/O, so every rule here is unit-tested. Block devices use `-blockdev` JSON (paths
//! need no escaping there); other options use QEMU's `key=value,…` syntax, where a comma in a
//! value is written twice ([`opt_escape`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;
use vireo_agent_proto::{AccelKind, AgentError, AgentResult, DiskSpec, ErrorCode, NicSpec, VmSpec};

/// Spare PCIe root ports on q35 for hot-plug: on q35, devices on the root bus cannot be
/// hot-plugged, so every PCI device sits behind a root port and a few stay free.
pub const SPARE_ROOT_PORTS: u32 = 8;
/// The first PCI slot used for root ports (0 is the host bridge, 1 the VGA).
const FIRST_PORT_SLOT: u32 = 2;
pub const CDROM_ID: &str = "cdrom0";
pub const SCSI_ID: &str = "scsi0";

/// How the engine's VM becomes a process, and what later operations need to know.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Layout {
    pub machine: String,
    pub q35: bool,
    pub root_ports: u32,
    /// qdev id → root port index (q35 only).
    pub ports: BTreeMap<String, u32>,
    /// NIC id → tap device, when the NIC is plugged into a host bridge.
    pub taps: BTreeMap<String, Tap>,
    pub scsi: bool,
    pub vnc: bool,
    pub spice_port: Option<u16>,
    /// Bus of the CD-ROM (its medium is changed by qdev id).
    pub cdrom_bus: String,
    /// Ports a migration's source has its devices on: they get the same.
    #[serde(default, skip)]
    pub wanted: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tap {
    pub ifname: String,
    pub bridge: String,
}

impl Layout {
    /// A free root port for a hot-plugged device, recorded under `qdev_id`.
    pub fn take_port(&mut self, qdev_id: &str) -> Option<u32> {
        let used: std::collections::BTreeSet<u32> = self.ports.values().copied().collect();
        if let Some(p) = self.wanted.get(qdev_id).copied() {
            if p < self.root_ports && !used.contains(&p) {
                self.ports.insert(qdev_id.to_string(), p);
                return Some(p);
            }
        }
        // Ports another device wants stay free for it.
        let free = (0..self.root_ports)
            .find(|p| !used.contains(p) && !self.wanted.values().any(|w| w == p))?;
        self.ports.insert(qdev_id.to_string(), free);
        Some(free)
    }
}

/// What the command line depends on besides the spec.
pub struct Context<'a> {
    pub accel: AccelKind,
    pub run_dir: &'a Path,
    /// Linux bridges on this host: a NIC whose network has one gets a tap on it.
    pub bridges: &'a [String],
    pub console_listen: &'a str,
    /// Machine types and CPU models this QEMU knows (empty: do not check).
    pub machines: &'a [String],
    pub cpu_models: &'a [String],
    pub spice_available: bool,
    /// A free port for SPICE, chosen by the caller (SPICE cannot pick one itself).
    pub spice_port: Option<u16>,
    /// Start with `-incoming defer`: the caller then says where the state comes from.
    pub incoming: bool,
}

pub struct Launch {
    pub args: Vec<String>,
    pub layout: Layout,
}

/// Doubles commas so a value survives QEMU's `key=value,…` parser.
pub fn opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

/// A qdev id or node name: QEMU wants a letter first, then letters, digits, `-`, `.`, `_`.
pub fn qid(prefix: &str, id: &str) -> String {
    let clean: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    format!("{prefix}{clean}")
}

/// Block node names are limited to 31 characters; dashes of UUIDs are dropped to fit.
pub fn node_name(prefix: char, id: &str) -> String {
    let clean: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(30)
        .collect();
    format!("{prefix}{clean}")
}

pub fn disk_qdev(id: &str) -> String {
    qid("disk-", id)
}
pub fn nic_qdev(id: &str) -> String {
    qid("nic-", id)
}
pub fn netdev_id(id: &str) -> String {
    qid("net-", id)
}

/// A tap name (at most 15 bytes) that is stable for a VM's NIC.
pub fn tap_name(vm_id: &str, nic_id: &str) -> String {
    // FNV-1a: short, stable across runs and builds (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in vm_id.bytes().chain([0]).chain(nic_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("vt{:013x}", h & 0x000f_ffff_ffff_ffff)
}

pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn invalid(msg: impl Into<String>) -> AgentError {
    AgentError::new(ErrorCode::InvalidRequest, msg)
}

/// Maps the engine's machine type onto one this QEMU has: oVirt sends versioned types of
/// its own (`pc-q35-rhel8.6.0`), which upstream QEMU does not know; the family is kept.
pub fn resolve_machine(requested: Option<&str>, known: &[String]) -> AgentResult<String> {
    let m = requested.unwrap_or("q35");
    if known.is_empty() || known.iter().any(|k| k == m) {
        return Ok(m.to_string());
    }
    if m.starts_with("pc-q35") || m.starts_with("q35") {
        Ok("q35".into())
    } else if m == "pc" || m.starts_with("pc-i440fx") || m.starts_with("i440fx") {
        Ok("pc".into())
    } else {
        Err(invalid(format!(
            "machine type {m:?} is not supported by this host's QEMU"
        )))
    }
}

fn is_q35(machine: &str) -> bool {
    machine == "q35" || machine.starts_with("pc-q35")
}

fn watchdog_action(action: &str) -> &'static str {
    // oVirt's actions; `dump` has no QEMU action without libvirt, so the guest is kept
    // paused for inspection instead of being lost.
    match action {
        "reset" => "reset",
        "poweroff" => "poweroff",
        "pause" | "dump" => "pause",
        _ => "none",
    }
}

fn nic_driver(model: &str) -> AgentResult<&'static str> {
    match model {
        "virtio" | "" => Ok("virtio-net-pci"),
        "e1000" => Ok("e1000"),
        "e1000e" => Ok("e1000e"),
        "rtl8139" => Ok("rtl8139"),
        other => Err(invalid(format!("NIC model {other:?} is not supported"))),
    }
}

/// `-blockdev` pair (protocol node, then format node) for an image file.
pub fn blockdev_json(
    disk_id: &str,
    path: &str,
    format: &str,
    read_only: bool,
) -> AgentResult<(serde_json::Value, serde_json::Value)> {
    let driver = match format {
        "qcow2" | "cow" => "qcow2",
        "raw" => "raw",
        other => return Err(invalid(format!("disk format {other:?} is not supported"))),
    };
    let file = json!({
        "driver": "file", "filename": path, "node-name": node_name('f', disk_id),
        "read-only": read_only, "discard": "unmap", "auto-read-only": true,
    });
    let fmt = json!({
        "driver": driver, "file": node_name('f', disk_id), "node-name": node_name('d', disk_id),
        "read-only": read_only, "discard": "unmap",
    });
    Ok((file, fmt))
}

/// The `device_add` arguments of a disk: JSON for QMP; `-device` takes the same JSON.
pub fn disk_device_json(
    disk: &DiskSpec,
    layout: &mut Layout,
    bootindex: Option<u32>,
    sata_slot: &mut u32,
) -> AgentResult<serde_json::Value> {
    let id = disk_qdev(&disk.id);
    let drive = node_name('d', &disk.id);
    let mut dev = match disk.interface.as_str() {
        "virtio" | "virtio_blk" => {
            let mut d = json!({ "driver": "virtio-blk-pci", "id": id, "drive": drive });
            if layout.q35 {
                let port = layout.take_port(&id).ok_or_else(|| {
                    AgentError::new(ErrorCode::ResourceExhausted, "no free PCIe root port")
                })?;
                d["bus"] = json!(format!("rp{port}"));
            }
            d
        }
        "virtio_scsi" => {
            if !layout.scsi {
                return Err(AgentError::new(
                    ErrorCode::Unsupported,
                    "the VM has no virtio-scsi controller",
                ));
            }
            json!({ "driver": "scsi-hd", "id": id, "drive": drive, "bus": format!("{SCSI_ID}.0") })
        }
        "ide" | "sata" => {
            let (bus, unit) = ide_slot(layout.q35, disk.interface == "sata", sata_slot)?;
            let mut d = json!({ "driver": "ide-hd", "id": id, "drive": drive, "bus": bus });
            if let Some(u) = unit {
                d["unit"] = json!(u);
            }
            d
        }
        other => {
            return Err(invalid(format!(
                "disk interface {other:?} is not supported"
            )))
        }
    };
    if let Some(b) = bootindex {
        dev["bootindex"] = json!(b);
    }
    Ok(dev)
}

/// IDE/SATA disks: q35's built-in AHCI has buses `ide.0`‥`ide.5` (the last is the CD-ROM's);
/// on `pc`, IDE disks use the PIIX buses (`ide.1` unit 0 is the CD-ROM's) and SATA disks an
/// AHCI controller `sata0` added for them.
fn ide_slot(q35: bool, sata: bool, next: &mut u32) -> AgentResult<(String, Option<u32>)> {
    let n = *next;
    *next += 1;
    if q35 {
        if n >= 5 {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                "at most 5 IDE/SATA disks on q35",
            ));
        }
        Ok((format!("ide.{n}"), None))
    } else if sata {
        if n >= 6 {
            return Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                "at most 6 SATA disks",
            ));
        }
        Ok((format!("sata0.{n}"), None))
    } else {
        // ide.0 unit 0/1, then ide.1 unit 1 (ide.1 unit 0 holds the CD-ROM).
        match n {
            0 => Ok(("ide.0".into(), Some(0))),
            1 => Ok(("ide.0".into(), Some(1))),
            2 => Ok(("ide.1".into(), Some(1))),
            _ => Err(AgentError::new(
                ErrorCode::ResourceExhausted,
                "at most 3 IDE disks on pc",
            )),
        }
    }
}

/// `netdev_add` arguments of a NIC: a tap on the network's bridge, else user networking.
pub fn netdev_json(
    vm_id: &str,
    nic: &NicSpec,
    bridges: &[String],
    layout: &mut Layout,
) -> serde_json::Value {
    let id = netdev_id(&nic.id);
    match nic
        .network
        .as_deref()
        .filter(|n| bridges.iter().any(|b| b == n))
    {
        Some(bridge) => {
            let ifname = tap_name(vm_id, &nic.id);
            layout.taps.insert(
                nic.id.clone(),
                Tap {
                    ifname: ifname.clone(),
                    bridge: bridge.to_string(),
                },
            );
            json!({ "type": "tap", "id": id, "ifname": ifname, "script": "no", "downscript": "no" })
        }
        None => json!({ "type": "user", "id": id }),
    }
}

pub fn nic_device_json(
    nic: &NicSpec,
    layout: &mut Layout,
    bootindex: Option<u32>,
) -> AgentResult<serde_json::Value> {
    let id = nic_qdev(&nic.id);
    let mut dev = json!({ "driver": nic_driver(&nic.model)?, "id": id, "netdev": netdev_id(&nic.id), "mac": nic.mac });
    if layout.q35 {
        let port = layout.take_port(&id).ok_or_else(|| {
            AgentError::new(ErrorCode::ResourceExhausted, "no free PCIe root port")
        })?;
        dev["bus"] = json!(format!("rp{port}"));
    }
    if let Some(b) = bootindex {
        dev["bootindex"] = json!(b);
    }
    Ok(dev)
}

/// `-netdev` takes `key=value` options rather than JSON in QEMU 7.2.
fn netdev_opts(v: &serde_json::Value) -> String {
    let mut s = v["type"].as_str().unwrap_or("user").to_string();
    for (k, val) in v.as_object().into_iter().flatten() {
        if k == "type" {
            continue;
        }
        let val = val
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| val.to_string());
        s.push_str(&format!(",{k}={}", opt_escape(&val)));
    }
    s
}

/// Builds the command line (without the binary). The caller adds nothing but the binary.
pub fn build(spec: &VmSpec, ctx: &Context) -> AgentResult<Launch> {
    if spec.id.is_empty() {
        return Err(invalid("the VM has no id"));
    }
    let machine = resolve_machine(spec.machine.as_deref(), ctx.machines)?;
    let q35 = is_q35(&machine);
    let run = |f: &str| ctx.run_dir.join(f).to_string_lossy().into_owned();
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));

    let name = if spec.name.is_empty() {
        spec.id.clone()
    } else {
        spec.name.clone()
    };
    // The id first: `ps` cuts lines at the terminal's width, and tools look for it there.
    if is_uuid(&spec.id) {
        push(&["-uuid", &spec.id]);
    }
    push(&[
        "-name",
        &format!(
            "guest={},process=vireo-{},debug-threads=on",
            opt_escape(&name),
            opt_escape(&spec.id)
        ),
    ]);
    push(&["-nodefaults", "-no-user-config"]);
    // Frozen at start, so that QMP is connected (and no event missed) before the guest runs.
    // An incoming VM waits for its state anyway and should run the moment it has it.
    if !ctx.incoming || spec.start_paused {
        push(&["-S"]);
    }
    push(&[
        "-machine",
        &format!("{machine},usb=off,dump-guest-core=off"),
    ]);
    push(&[
        "-accel",
        if ctx.accel == AccelKind::Kvm {
            "kvm"
        } else {
            "tcg"
        },
    ]);
    if let Some(cpu) = spec.cpu_model.as_deref() {
        if ctx.cpu_models.is_empty() || ctx.cpu_models.iter().any(|m| m == cpu) {
            push(&["-cpu", cpu]);
        } else {
            tracing::warn!(
                vm = spec.id,
                cpu,
                "CPU model unknown to this QEMU; using its default"
            );
        }
    }
    let mib = spec.memory_bytes.div_ceil(1 << 20).max(16);
    push(&["-m", &format!("{mib}M")]);
    let (s, c, t) = (spec.sockets.max(1), spec.cores.max(1), spec.threads.max(1));
    push(&[
        "-smp",
        &format!("{},sockets={s},cores={c},threads={t}", s * c * t),
    ]);
    push(&["-pidfile", &run("qemu.pid")]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", opt_escape(&run("qmp.sock"))),
    ]);
    push(&["-display", "none"]);
    // Guests that crash say so (pvpanic → GUEST_PANICKED), and then power off so the
    // engine sees the VM down with reason `crash` rather than a hung one.
    push(&["-device", "pvpanic", "-action", "panic=shutdown"]);

    let mut layout = Layout {
        machine: machine.clone(),
        q35,
        cdrom_bus: String::new(),
        ..Default::default()
    };

    // Serial console: a socket for interactive use, logged to a file whoever is connected.
    push(&[
        "-chardev",
        &format!(
            "socket,id=charserial0,path={},server=on,wait=off,logfile={},logappend=on",
            opt_escape(&run("console.sock")),
            opt_escape(&run("serial.log"))
        ),
        "-device",
        "isa-serial,chardev=charserial0,id=serial0",
    ]);

    // Graphics.
    let vnc = spec.graphics.iter().any(|g| g.protocol == "vnc");
    let spice = ctx.spice_available && spec.graphics.iter().any(|g| g.protocol == "spice");
    if vnc || spice {
        let vga = if spice { "qxl-vga" } else { "VGA" };
        let addr = if q35 { ",bus=pcie.0,addr=0x1" } else { "" };
        push(&["-device", &format!("{vga},id=video0{addr}")]);
    }
    if vnc {
        // QEMU picks the first free display from :0 up to :1000; query-vnc tells which.
        // A password is required, and none is valid until the engine sets a ticket.
        push(&[
            "-vnc",
            &format!("{}:0,to=1000,password=on", ctx.console_listen),
        ]);
        layout.vnc = true;
    }
    if spice {
        let port = ctx.spice_port.ok_or_else(|| invalid("no port for SPICE"))?;
        push(&[
            "-spice",
            &format!(
                "port={port},addr={},seamless-migration=on",
                ctx.console_listen
            ),
        ]);
        layout.spice_port = Some(port);
    }

    // PCI devices: on q35 each sits behind its own root port so that it can be unplugged.
    let pci_devices = spec.disks.iter().filter(|d| d.interface.starts_with("virtio") && d.interface != "virtio_scsi").count()
        + spec.nics.len()
        + 1 // virtio-scsi controller
        + usize::from(spec.rng)
        + usize::from(spec.watchdog.is_some());
    if q35 {
        layout.root_ports = (pci_devices as u32 + SPARE_ROOT_PORTS).max(spec.pci.root_ports);
        layout.wanted = spec.pci.ports.clone();
        for p in 0..layout.root_ports {
            let (slot, func) = (FIRST_PORT_SLOT + p / 8, p % 8);
            let mf = if func == 0 { ",multifunction=on" } else { "" };
            push(&["-device", &format!("pcie-root-port,id=rp{p},chassis={},port=0x{:x},bus=pcie.0,addr=0x{slot:x}.0x{func:x}{mf}", p + 1, p + 0x10)]);
        }
    }
    let pci_bus = |layout: &mut Layout, qdev: &str| -> AgentResult<String> {
        if !layout.q35 {
            return Ok(String::new());
        }
        let p = layout.take_port(qdev).ok_or_else(|| {
            AgentError::new(ErrorCode::ResourceExhausted, "no free PCIe root port")
        })?;
        Ok(format!(",bus=rp{p}"))
    };

    // virtio-scsi controller: always there, so that SCSI disks can be hot-plugged.
    let bus = pci_bus(&mut layout, SCSI_ID)?;
    push(&["-device", &format!("virtio-scsi-pci,id={SCSI_ID}{bus}")]);
    layout.scsi = true;
    if !q35 && spec.disks.iter().any(|d| d.interface == "sata") {
        push(&["-device", "ahci,id=sata0"]);
    }

    // Boot order: bootindex on devices, in the order of `spec.boot`; a direct kernel boot
    // needs none.
    let direct_boot = spec.kernel.is_some();
    let mut next_index = 1u32;
    let mut boot_of: BTreeMap<String, u32> = BTreeMap::new();
    if !direct_boot {
        let order: Vec<&str> = if spec.boot.is_empty() {
            vec!["hd"]
        } else {
            spec.boot.iter().map(String::as_str).collect()
        };
        for dev in order {
            match dev {
                "hd" => {
                    let mut disks: Vec<&DiskSpec> =
                        spec.disks.iter().filter(|d| d.bootable).collect();
                    if disks.is_empty() {
                        disks.extend(spec.disks.first());
                    }
                    for d in disks {
                        boot_of.entry(disk_qdev(&d.id)).or_insert_with(|| {
                            next_index += 1;
                            next_index - 1
                        });
                    }
                }
                "cdrom" => {
                    boot_of.entry(CDROM_ID.into()).or_insert_with(|| {
                        next_index += 1;
                        next_index - 1
                    });
                }
                "network" => {
                    for n in &spec.nics {
                        boot_of.entry(nic_qdev(&n.id)).or_insert_with(|| {
                            next_index += 1;
                            next_index - 1
                        });
                    }
                }
                other => return Err(invalid(format!("unknown boot device {other:?}"))),
            }
        }
    }

    let mut sata_slot = 0u32;
    for d in &spec.disks {
        let (file, fmt) = blockdev_json(&d.id, &d.path, &d.format, d.read_only)?;
        push(&[
            "-blockdev",
            &file.to_string(),
            "-blockdev",
            &fmt.to_string(),
        ]);
        let dev = disk_device_json(
            d,
            &mut layout,
            boot_of.get(&disk_qdev(&d.id)).copied(),
            &mut sata_slot,
        )?;
        push(&["-device", &dev.to_string()]);
    }

    // CD-ROM: always present, so that a medium can be inserted later.
    let cd_bus = if q35 {
        "ide.5".to_string()
    } else {
        "ide.1".to_string()
    };
    layout.cdrom_bus = cd_bus.clone();
    let mut cd = json!({ "driver": "ide-cd", "id": CDROM_ID, "bus": cd_bus });
    if !q35 {
        cd["unit"] = json!(0);
    }
    if let Some(iso) = spec.cdrom.as_deref().filter(|p| !p.is_empty()) {
        let file =
            json!({ "driver": "file", "filename": iso, "node-name": "fcdrom0", "read-only": true });
        let fmt = json!({ "driver": "raw", "file": "fcdrom0", "node-name": "dcdrom0", "read-only": true });
        push(&[
            "-blockdev",
            &file.to_string(),
            "-blockdev",
            &fmt.to_string(),
        ]);
        cd["drive"] = json!("dcdrom0");
    }
    if let Some(b) = boot_of.get(CDROM_ID) {
        cd["bootindex"] = json!(b);
    }
    push(&["-device", &cd.to_string()]);

    for n in &spec.nics {
        let netdev = netdev_json(&spec.id, n, ctx.bridges, &mut layout);
        push(&["-netdev", &netdev_opts(&netdev)]);
        let dev = nic_device_json(n, &mut layout, boot_of.get(&nic_qdev(&n.id)).copied())?;
        push(&["-device", &dev.to_string()]);
    }

    if spec.rng {
        let bus = pci_bus(&mut layout, "rng0")?;
        push(&[
            "-object",
            "rng-random,id=objrng0,filename=/dev/urandom",
            "-device",
            &format!("virtio-rng-pci,rng=objrng0,id=rng0{bus}"),
        ]);
    }
    if let Some(w) = &spec.watchdog {
        let bus = pci_bus(&mut layout, "watchdog0")?;
        let dev = match w.model.as_str() {
            "ib700" => "ib700,id=watchdog0".to_string(),
            _ => format!("i6300esb,id=watchdog0{bus}"),
        };
        push(&[
            "-device",
            &dev,
            "-action",
            &format!("watchdog={}", watchdog_action(&w.action)),
        ]);
    }

    if let Some(k) = &spec.kernel {
        push(&["-kernel", k]);
        if let Some(i) = &spec.initrd {
            push(&["-initrd", i]);
        }
        if let Some(c) = &spec.cmdline {
            push(&["-append", c]);
        }
    }
    if ctx.incoming {
        push(&["-incoming", "defer"]);
    }
    Ok(Launch { args: a, layout })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vireo_agent_proto::{GraphicsSpec, WatchdogSpec};

    fn ctx<'a>(dir: &'a Path, bridges: &'a [String]) -> Context<'a> {
        Context {
            accel: AccelKind::Tcg,
            run_dir: dir,
            bridges,
            console_listen: "127.0.0.1",
            machines: &[],
            cpu_models: &[],
            spice_available: false,
            spice_port: None,
            incoming: false,
        }
    }

    fn spec() -> VmSpec {
        VmSpec {
            id: "0b7c2b4e-6f3a-4c1e-9d2a-3f4e5a6b7c8d".into(),
            name: "web,1".into(),
            memory_bytes: 300 << 20,
            sockets: 2,
            cores: 2,
            threads: 1,
            boot: vec!["cdrom".into(), "hd".into()],
            disks: vec![
                DiskSpec {
                    id: "d1".into(),
                    path: "/sd/a,b".into(),
                    format: "qcow2".into(),
                    interface: "virtio".into(),
                    bootable: true,
                    read_only: false,
                },
                DiskSpec {
                    id: "d2".into(),
                    path: "/sd/c".into(),
                    format: "raw".into(),
                    interface: "virtio_scsi".into(),
                    bootable: false,
                    read_only: false,
                },
                DiskSpec {
                    id: "d3".into(),
                    path: "/sd/e".into(),
                    format: "raw".into(),
                    interface: "sata".into(),
                    bootable: false,
                    read_only: true,
                },
            ],
            nics: vec![
                NicSpec {
                    id: "n1".into(),
                    mac: "56:6f:00:00:00:01".into(),
                    model: "virtio".into(),
                    network: Some("ovirtmgmt".into()),
                    linked: true,
                },
                NicSpec {
                    id: "n2".into(),
                    mac: "56:6f:00:00:00:02".into(),
                    model: "e1000".into(),
                    network: Some("nobridge".into()),
                    linked: true,
                },
            ],
            graphics: vec![GraphicsSpec {
                protocol: "vnc".into(),
            }],
            watchdog: Some(WatchdogSpec {
                model: "i6300esb".into(),
                action: "reset".into(),
            }),
            rng: true,
            ..Default::default()
        }
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn command_line_carries_the_vm() {
        let dir = Path::new("/run/vms/x");
        let bridges = vec!["ovirtmgmt".to_string()];
        let l = build(&spec(), &ctx(dir, &bridges)).unwrap();
        let a = &l.args;
        assert_eq!(after(a, "-m"), ["300M"]);
        assert_eq!(after(a, "-smp"), ["4,sockets=2,cores=2,threads=1"]);
        assert_eq!(after(a, "-uuid"), ["0b7c2b4e-6f3a-4c1e-9d2a-3f4e5a6b7c8d"]);
        assert!(after(a, "-name")[0].starts_with("guest=web,,1,process=vireo-0b7c2b4e"));
        assert!(
            a.contains(&"-nodefaults".to_string()) && a.contains(&"-no-user-config".to_string())
        );
        assert_eq!(after(a, "-machine"), ["q35,usb=off,dump-guest-core=off"]);
        assert_eq!(after(a, "-vnc"), ["127.0.0.1:0,to=1000,password=on"]);
        // Paths go through -blockdev JSON: the comma needs no escaping there.
        assert!(after(a, "-blockdev")
            .iter()
            .any(|b| b.contains(r#""filename":"/sd/a,b""#)));
        let devices = after(a, "-device");
        let find = |id: &str| {
            devices
                .iter()
                .find(|d| d.contains(&format!(r#""id":"{id}""#)))
                .copied()
                .unwrap_or_else(|| panic!("{id} in {devices:?}"))
        };
        assert!(
            find("disk-d1").contains("virtio-blk-pci")
                && find("disk-d1").contains(r#""bootindex":2"#)
        );
        assert!(find("disk-d2").contains("scsi-hd") && find("disk-d2").contains("scsi0.0"));
        assert!(find("disk-d3").contains("ide-hd") && find("disk-d3").contains(r#""bus":"ide.0""#));
        assert!(find("cdrom0").contains(r#""bootindex":1"#));
        assert!(find("nic-n1").contains(r#""mac":"56:6f:00:00:00:01""#));
        let netdevs = after(a, "-netdev");
        assert!(
            netdevs[0].starts_with("tap,") && netdevs[0].contains("script=no"),
            "{netdevs:?}"
        );
        assert!(
            netdevs[1].starts_with("user,"),
            "no bridge: user networking"
        );
        assert_eq!(l.layout.taps["n1"].bridge, "ovirtmgmt");
        assert!(devices.iter().any(|d| d.starts_with("virtio-rng-pci")));
        assert!(devices.iter().any(|d| d.starts_with("i6300esb")));
        assert!(after(a, "-action").contains(&"watchdog=reset"));
        // One root port per PCI device plus spares; every PCI device is behind one.
        assert_eq!(l.layout.root_ports, 6 + SPARE_ROOT_PORTS);
        assert_eq!(l.layout.ports.len(), 6);
        let serial = after(a, "-chardev")[0];
        assert!(serial.contains("logfile=/run/vms/x/serial.log"));
        assert!(!a.contains(&"-kernel".to_string()));
    }

    #[test]
    fn direct_kernel_boot_and_pc_machine() {
        let mut s = spec();
        s.machine = Some("pc-i440fx-rhel7.6.0".into());
        s.kernel = Some("/boot/vmlinuz".into());
        s.initrd = Some("/tmp/initrd".into());
        s.cmdline = Some("console=ttyS0 quiet".into());
        let known = vec!["pc".to_string(), "q35".to_string()];
        let mut c = ctx(Path::new("/r"), &[]);
        c.machines = &known;
        let l = build(&s, &c).unwrap();
        assert_eq!(l.layout.machine, "pc");
        assert_eq!(after(&l.args, "-append"), ["console=ttyS0 quiet"]);
        assert_eq!(after(&l.args, "-kernel"), ["/boot/vmlinuz"]);
        assert!(
            !l.args.iter().any(|x| x.contains("bootindex")),
            "direct boot sets no boot order"
        );
        assert!(!l.args.iter().any(|x| x.contains("pcie-root-port")));
        assert!(after(&l.args, "-device").contains(&"ahci,id=sata0"));
    }

    #[test]
    fn machine_and_ids() {
        let known = vec![
            "pc".to_string(),
            "q35".to_string(),
            "pc-q35-7.2".to_string(),
        ];
        assert_eq!(
            resolve_machine(Some("pc-q35-rhel8.6.0"), &known).unwrap(),
            "q35"
        );
        assert_eq!(
            resolve_machine(Some("pc-q35-7.2"), &known).unwrap(),
            "pc-q35-7.2"
        );
        assert!(resolve_machine(Some("virt"), &known).is_err());
        assert_eq!(
            node_name('d', "0b7c2b4e-6f3a-4c1e-9d2a-3f4e5a6b7c8d").len(),
            31
        );
        assert_eq!(tap_name("vm", "nic").len(), 15);
        assert_ne!(tap_name("vm", "nic1"), tap_name("vm", "nic2"));
        assert!(is_uuid("0b7c2b4e-6f3a-4c1e-9d2a-3f4e5a6b7c8d") && !is_uuid("vm-1"));
        assert_eq!(opt_escape("a,b"), "a,,b");
    }
}
