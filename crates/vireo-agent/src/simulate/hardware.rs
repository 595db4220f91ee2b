//! The simulated machine: what it reports as its hardware, and how busy it looks.

use std::net::SocketAddr;

use vireo_agent_proto::{
    Accel, AccelKind, Capabilities, CpuInfo, HostNic, OsInfo, PROTOCOL_VERSION,
};

pub const GIB: u64 = 1 << 30;
pub const MEMORY_BYTES: u64 = 64 * GIB;
/// What the host's own processes keep: VMs may use the rest.
pub const HOST_RESERVED_BYTES: u64 = 2 * GIB;
pub const SOCKETS: u32 = 2;
pub const CORES_PER_SOCKET: u32 = 8;
pub const THREADS_PER_CORE: u32 = 2;
pub const HOST_THREADS: u32 = SOCKETS * CORES_PER_SOCKET * THREADS_PER_CORE;
pub const SWAP_BYTES: u64 = 8 * GIB;

/// Broadwell's flags, with the `model_*` entries VDSM adds: the engine picks the cluster's
/// CPU type from these.
const CPU_FLAGS: &[&str] = &[
    "fpu",
    "vme",
    "de",
    "pse",
    "tsc",
    "msr",
    "pae",
    "mce",
    "cx8",
    "apic",
    "sep",
    "mtrr",
    "pge",
    "mca",
    "cmov",
    "pat",
    "pse36",
    "clflush",
    "mmx",
    "fxsr",
    "sse",
    "sse2",
    "ss",
    "ht",
    "syscall",
    "nx",
    "pdpe1gb",
    "rdtscp",
    "lm",
    "constant_tsc",
    "pni",
    "pclmulqdq",
    "vmx",
    "ssse3",
    "fma",
    "cx16",
    "pcid",
    "sse4_1",
    "sse4_2",
    "x2apic",
    "movbe",
    "popcnt",
    "aes",
    "xsave",
    "avx",
    "f16c",
    "rdrand",
    "lahf_lm",
    "abm",
    "3dnowprefetch",
    "fsgsbase",
    "bmi1",
    "hle",
    "avx2",
    "smep",
    "bmi2",
    "erms",
    "invpcid",
    "rtm",
    "rdseed",
    "adx",
    "smap",
    "xsaveopt",
    "spec_ctrl",
    "ssbd",
    "md_clear",
    "model_Broadwell",
    "model_Broadwell-noTSX",
    "model_Haswell",
    "model_Haswell-noTSX",
    "model_IvyBridge",
    "model_SandyBridge",
    "model_Westmere",
    "model_Nehalem",
    "model_Penryn",
    "model_Conroe",
];

/// Who this simulated machine is.
#[derive(Debug, Clone)]
pub struct Profile {
    pub listen: SocketAddr,
    pub machine_id: String,
}

impl Profile {
    pub fn hostname(&self) -> String {
        format!(
            "vireo-sim-{}",
            // chars, not bytes: the id comes from a file an operator may have edited.
            self.machine_id.chars().take(8).collect::<String>()
        )
    }

    /// The address a NIC reports: where the agent listens, or loopback when that is a
    /// wildcard.
    fn ipv4(&self) -> Option<String> {
        match self.listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => Some("127.0.0.1".into()),
            std::net::IpAddr::V4(ip) => Some(ip.to_string()),
            std::net::IpAddr::V6(_) => None,
        }
    }
}

/// FNV-1a: a stable, dependency-free hash for seeds and addresses (not for security).
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A locally administered unicast MAC, derived from the host's id so it is stable.
pub fn mac(seed: &str, nic: u8) -> String {
    let h = fnv(format!("{seed}/{nic}").as_bytes()).to_be_bytes();
    format!("56:6f:{:02x}:{:02x}:{:02x}:{:02x}", h[0], h[1], h[2], h[3])
}

/// A smooth value in [0, 1] that moves with time: two slow sine waves, phase-shifted by the
/// seed so that no two VMs move together.
pub fn wobble(seed: u64, t_secs: f64) -> f64 {
    let phase = (seed % 10_000) as f64;
    (0.5 + 0.3 * (t_secs / 7.0 + phase).sin() + 0.2 * (t_secs / 2.3 + phase * 1.7).sin())
        .clamp(0.0, 1.0)
}

pub fn capabilities(profile: &Profile, host_id: Option<String>) -> Capabilities {
    let seed = host_id
        .clone()
        .unwrap_or_else(|| profile.machine_id.clone());
    let nic = |name: &str, i: u8, ipv4: Option<String>| HostNic {
        name: name.into(),
        mac: mac(&seed, i),
        speed_mbps: Some(10_000),
        ipv4,
        mtu: 1500,
        up: true,
    };
    Capabilities {
        protocol: vec![PROTOCOL_VERSION],
        agent_version: env!("CARGO_PKG_VERSION").into(),
        host_id,
        hostname: profile.hostname(),
        simulated: true,
        cpu: CpuInfo {
            model: "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz".into(),
            vendor: "GenuineIntel".into(),
            sockets: SOCKETS,
            cores_per_socket: CORES_PER_SOCKET,
            threads_per_core: THREADS_PER_CORE,
            speed_mhz: 2400,
            flags: CPU_FLAGS.iter().map(|f| f.to_string()).collect(),
        },
        memory_bytes: MEMORY_BYTES,
        nics: vec![nic("eth0", 0, profile.ipv4()), nic("eth1", 1, None)],
        bridges: vec!["ovirtmgmt".into()],
        accel: Accel {
            kind: AccelKind::None,
            detail: "simulated host: no guest code runs".into(),
        },
        os: OsInfo {
            name: "RHEL".into(),
            version: "9.4".into(),
            kernel: "5.14.0-427.13.1.el9_4.x86_64".into(),
        },
        qemu_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_unicast_and_local() {
        assert_eq!(mac("host-a", 0), mac("host-a", 0));
        assert_ne!(mac("host-a", 0), mac("host-a", 1));
        assert_ne!(mac("host-a", 0), mac("host-b", 0));
        let first = u8::from_str_radix(&mac("x", 0)[..2], 16).unwrap();
        assert_eq!(first & 1, 0, "unicast");
        assert_eq!(first & 2, 2, "locally administered");
    }

    #[test]
    fn wobble_stays_in_range_and_moves() {
        let v: Vec<f64> = (0..100).map(|t| wobble(42, t as f64)).collect();
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!(v.iter().any(|x| (x - v[0]).abs() > 0.05));
    }
}
