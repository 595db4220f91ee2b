//! What this host is: CPU, memory, NICs, bridges, OS, and what its QEMU can do.

use std::collections::BTreeSet;
use std::path::Path;

use vireo_agent_proto::{CpuInfo, HostNic, OsInfo};

pub fn cpu_info() -> CpuInfo {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    parse_cpuinfo(&text)
}

pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model = String::new();
    let mut vendor = String::new();
    let mut mhz = 0.0f64;
    let mut flags = Vec::new();
    let mut sockets = BTreeSet::new();
    let mut cores_per_socket = 0u32;
    let mut siblings = 0u32;
    let mut logical = 0u32;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => logical += 1,
            "model name" if model.is_empty() => model = v.to_string(),
            "vendor_id" if vendor.is_empty() => vendor = v.to_string(),
            "cpu MHz" if mhz == 0.0 => mhz = v.parse().unwrap_or(0.0),
            "flags" if flags.is_empty() => {
                flags = v.split_whitespace().map(str::to_string).collect()
            }
            "physical id" => {
                sockets.insert(v.to_string());
            }
            "cpu cores" if cores_per_socket == 0 => cores_per_socket = v.parse().unwrap_or(0),
            "siblings" if siblings == 0 => siblings = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let sockets = (sockets.len() as u32).max(1);
    let cores = if cores_per_socket == 0 {
        (logical / sockets).max(1)
    } else {
        cores_per_socket
    };
    let threads = if siblings >= cores && cores > 0 {
        (siblings / cores).max(1)
    } else {
        1
    };
    CpuInfo {
        model,
        vendor,
        sockets,
        cores_per_socket: cores,
        threads_per_core: threads,
        speed_mhz: mhz as u32,
        flags,
    }
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The host's NICs (not loopback, bridges, or the taps of our own VMs).
pub fn nics() -> Vec<HostNic> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    let addrs = ipv4_addresses();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let base = e.path();
        if name == "lo" || base.join("bridge").exists() || name.starts_with("vt") {
            continue;
        }
        out.push(HostNic {
            mac: read_trim(base.join("address")).unwrap_or_default(),
            speed_mbps: read_trim(base.join("speed"))
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|s| *s > 0)
                .map(|s| s as u64),
            ipv4: addrs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| a.clone()),
            mtu: read_trim(base.join("mtu"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(1500),
            up: read_trim(base.join("operstate")).is_some_and(|s| s == "up" || s == "unknown"),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Linux bridges: VM NICs of the logical network of the same name are plugged into them.
pub fn bridges() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("bridge").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// (interface, address) pairs from `ip -4 -o addr`, which knows addresses /sys does not show.
fn ipv4_addresses() -> Vec<(String, String)> {
    let Ok(out) = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let i = f.iter().position(|x| *x == "inet")?;
            Some((
                f.get(1)?.to_string(),
                f.get(i + 1)?.split('/').next()?.to_string(),
            ))
        })
        .collect()
}

pub fn os_info() -> OsInfo {
    let rel = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        rel.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    OsInfo {
        name: get("NAME"),
        version: get("VERSION_ID"),
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
    }
}

pub fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into())
}

/// What the installed QEMU offers, asked once at start.
#[derive(Debug, Clone, Default)]
pub struct QemuFeatures {
    pub version: String,
    pub machines: Vec<String>,
    pub cpu_models: Vec<String>,
    pub spice: bool,
}

pub async fn qemu_features(qemu: &Path) -> anyhow::Result<QemuFeatures> {
    let run = |args: &'static [&'static str]| {
        let qemu = qemu.to_path_buf();
        async move {
            let out = tokio::process::Command::new(&qemu)
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .await?;
            anyhow::Ok((
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ))
        }
    };
    let (ok, version) = run(&["--version"])
        .await
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", qemu.display()))?;
    if !ok {
        anyhow::bail!("{} --version failed", qemu.display());
    }
    let version = version
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string();
    let (_, machines) = run(&["-machine", "help"]).await?;
    let machines = machines
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let (_, cpus) = run(&["-cpu", "help"]).await?;
    let cpu_models = cpus
        .lines()
        .filter_map(|l| l.trim().strip_prefix("x86 "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let (spice, _) = run(&["-spice", "help"]).await?;
    Ok(QemuFeatures {
        version,
        machines,
        cpu_models,
        spice,
    })
}

/// `qemu-system-x86_64` from `$VIREO_QEMU` or the `PATH`.
pub fn find_qemu() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VIREO_QEMU") {
        return Some(p.into());
    }
    find_in_path("qemu-system-x86_64")
}

pub fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_topology() {
        let mut text = String::new();
        for i in 0..8 {
            text.push_str(&format!(
                "processor\t: {i}\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\ncpu MHz\t\t: 2400.5\nphysical id\t: {}\nsiblings\t: 4\ncpu cores\t: 2\nflags\t\t: fpu vmx\n\n",
                i / 4
            ));
        }
        let c = parse_cpuinfo(&text);
        assert_eq!(
            (
                c.sockets,
                c.cores_per_socket,
                c.threads_per_core,
                c.speed_mhz
            ),
            (2, 2, 2, 2400)
        );
        assert_eq!(c.flags, ["fpu", "vmx"]);
        assert_eq!(c.vendor, "GenuineIntel");
    }
}
